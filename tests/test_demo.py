"""The README's main job: real photos scored offline, end to end through the CLI."""

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
    assert "weights" not in table.columns  # recorded once per run, not on every row
    assert "weights used:\n  jpeg-compressibility: none (no weights needed)\n  jpeg-incompressibility: none" in r.output
    assert (out / "scores.csv").is_file()


def test_demo_default_uses_every_offline_reward(tmp_path):
    offline = [s.name for s in rewardbench.list_rewards() if s.offline]
    r = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "d")])
    assert r.exit_code == 0, r.output
    table = pd.read_parquet(tmp_path / "d" / "scores.parquet")
    assert set(offline) <= set(table.columns)
    assert table["error"].isna().all(), table["error"].dropna().tolist()


def test_demo_prints_group_rewards_once_per_group_with_their_notes(tmp_path):
    r = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "d"), "--model", "jpeg-compressibility,vendi,"
                                  "skin-tone-parity"])
    assert r.exit_code == 0, r.output
    per_image, per_group = r.output.split("group rewards, one row per group (prompt):")
    prompts = list(dict.fromkeys(p for _, _, p in DEMO_PHOTOS))
    assert "skin-tone-parity" not in per_image.splitlines()[1]  # the per-image table has image rewards only
    for p in prompts:  # each group once
        assert sum(line.startswith(p + " ") for line in per_group.splitlines()) == 1, p
    coffee = next(line for line in per_group.splitlines() if line.startswith("a cup of coffee"))
    # one photo: too small for a group reward (and nobody in it), said in its cells and its note, not as numbers
    assert coffee.count("too small") == 2 and "no face found in any of its 1 images" in coffee
    assert "-0.75" not in coffee and "1.0" not in coffee
    people = next(line for line in per_group.splitlines() if line.startswith("a portrait of a person"))
    assert "too small" not in people and "UserWarning" not in r.output
    groups = pd.read_csv(tmp_path / "d" / "groups.csv")
    assert sorted(groups["prompt"]) == sorted(prompts) and groups["size"].sum() == len(DEMO_PHOTOS)


def test_demo_refuses_an_output_folder_under_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    r = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "file" / "d"), "--model", "jpeg-compressibility"])
    assert r.exit_code == 2 and "is a file, not a folder" in r.output, r.output
