"""The README's main job: real photos scored offline, end to end through the CLI."""

import json

import pandas as pd
from click.testing import CliRunner

import rewardbench
from rewardbench.cli import main
from rewardbench.demo import DEMO_PHOTOS


def test_demo_scores_real_photos_with_offline_rewards(tmp_path):
    out = tmp_path / "demo"
    r = CliRunner().invoke(main, ["demo", "--out", str(out), "--model", "jpeg-compressibility,jpeg-incompressibility"])
    assert r.exit_code == 0, r.output
    table = pd.read_parquet(out / "scores.parquet")
    assert len(table) == len(DEMO_PHOTOS)
    assert table["error"].isna().all()
    # compressibility is minus incompressibility, row by row, and the photos differ
    assert (table["jpeg-compressibility"] + table["jpeg-incompressibility"]).abs().max() < 1e-4
    assert table["jpeg-incompressibility"].nunique() == len(DEMO_PHOTOS)
    weights = json.loads(table["weights"].iloc[0])
    assert set(weights) == {"jpeg-compressibility", "jpeg-incompressibility"}
    assert (out / "scores.csv").is_file() and "weights used" in r.output


def test_demo_default_uses_every_offline_reward(tmp_path):
    offline = [s.name for s in rewardbench.list_rewards() if s.offline]
    r = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "d")])
    assert r.exit_code == 0, r.output
    table = pd.read_parquet(tmp_path / "d" / "scores.parquet")
    assert set(offline) <= set(table.columns)
    assert table["error"].isna().all(), table["error"].dropna().tolist()
