"""`rewardbench score` end to end on real photos (CliRunner on the command itself)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

import rewardbench
from rewardbench.cli_score import score


def _run(*args):
    return CliRunner().invoke(score, [*map(str, args), "--no-progress", "--num-workers", "0"])


@pytest.mark.parametrize("ext", ["parquet", "csv", "jsonl"])
def test_folder_with_prompts_writes_one_row_per_image(photo_dir, tmp_path, ext):
    out = tmp_path / f"scores.{ext}"
    res = _run("--model", "jpeg-compressibility,jpeg-incompressibility", "--images", photo_dir,
               "--prompts", photo_dir / "prompts.txt", "--out", out)
    assert res.exit_code == 0, res.output
    table = rewardbench.harness.read_table(out)
    assert len(table) == 5
    assert list(table.columns) == ["image", "prompt", "jpeg-compressibility", "jpeg-incompressibility",
                                   "jpeg-compressibility.jpeg_kb", "jpeg-incompressibility.jpeg_kb", "weights", "error"]
    # per-row details of each reward are kept as "<reward>.<key>" columns
    assert table["jpeg-compressibility.jpeg_kb"].to_numpy() == pytest.approx(table["jpeg-incompressibility"].to_numpy(),
                                                                              rel=1e-6)
    assert table["error"].isna().all()
    # prompts follow the sorted file names
    names = [p.split("/")[-1] for p in table["image"]]
    assert names == sorted(names)
    assert table.loc[names.index("chelsea.jpg"), "prompt"] == "a photo of a cat"
    # the scores are the reward's own
    reward = rewardbench.load_reward("jpeg-incompressibility")
    direct = reward([str(photo_dir / "coffee.jpg")]).scores.item()
    assert table.loc[names.index("coffee.jpg"), "jpeg-incompressibility"] == pytest.approx(direct, rel=1e-6)
    assert (table["jpeg-compressibility"] == -table["jpeg-incompressibility"]).all()
    assert json.loads(table["weights"][0])["jpeg-compressibility"].startswith("none")
    assert "jpeg-incompressibility" in res.output and "5 rows, 0 failed" in res.output


def test_failed_rows_exit_1_and_are_listed(photo_dir, tmp_path):
    (photo_dir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    res = _run("--model", "jpeg-compressibility", "--images", photo_dir, "--out", tmp_path / "s.csv")
    assert res.exit_code == 1, res.output
    assert "broken.png" in res.output and "1 failed" in res.output


def test_json_output(photo_dir):
    res = _run("--model", "jpeg-compressibility", "--images", photo_dir, "--json")
    assert res.exit_code == 0, res.output
    payload = json.loads(res.output)
    assert payload["summary"]["rows"] == 5 and payload["summary"]["failed"] == 0
    assert len(payload["rows"]) == 5 and all(r["jpeg-compressibility"] < 0 for r in payload["rows"])


def test_manifest_with_relative_paths(photo_dir, tmp_path):
    manifest = photo_dir / "m.csv"
    pd.DataFrame({"image": ["astronaut.jpg", "rocket.png"], "prompt": ["an astronaut", "a rocket"]}).to_csv(
        manifest, index=False)
    res = _run("--model", "jpeg-compressibility", "--images", manifest, "--json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)["rows"]
    assert [r["prompt"] for r in rows] == ["an astronaut", "a rocket"]


@pytest.mark.parametrize("args, expected", [
    (["--model", "jpeg_compresibility"], "Did you mean 'jpeg-compressibility'"),
    (["--model", "jpeg-compressibility", "--images", "/nonexistent/dir"], "no such file or folder"),
    (["--model", "jpeg-compressibility", "--weights", "oops"], "NAME=PATH"),
    (["--model", "jpeg-compressibility", "--out", "x.xlsx"], ".parquet, .csv, .jsonl"),
])
def test_usage_errors_exit_2_without_traceback(photo_dir, args, expected):
    if "--images" not in args:
        args = [*args, "--images", str(photo_dir)]
    res = _run(*args)
    assert res.exit_code == 2, res.output
    assert expected in res.output
    assert "Traceback" not in res.output


def test_missing_images_option_is_a_usage_error():
    res = CliRunner().invoke(score, ["--model", "jpeg-compressibility"])
    assert res.exit_code == 2 and "--images" in res.output


def test_prompt_count_mismatch(photo_dir, tmp_path):
    p = tmp_path / "p.txt"
    p.write_text("one\ntwo\n")
    res = _run("--model", "jpeg-compressibility", "--images", photo_dir, "--prompts", p)
    assert res.exit_code == 2 and "2 prompts for 5 images" in res.output


def test_missing_weights_offline_is_a_usage_error(photo_dir, tmp_path):
    res = _run("--model", "jpeg-compressibility", "--images", photo_dir,
               "--weights", f"jpeg-compressibility={tmp_path / 'nope.safetensors'}")
    assert res.exit_code == 2, res.output
    assert "weights for reward 'jpeg-compressibility' not found" in res.output
    assert "Traceback" not in res.output


def test_help_has_a_worked_example():
    res = CliRunner().invoke(score, ["--help"])
    assert res.exit_code == 0
    assert "rewardbench score --model" in res.output and "Exit codes" in res.output
