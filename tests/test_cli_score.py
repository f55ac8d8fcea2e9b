"""`rewardbench score` end to end on real photos (CliRunner on the command itself)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

import rewardbench
from rewardbench.cli.score import score
from rewardbench.results import table_provenance


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
                                   "jpeg-compressibility.jpeg_kb", "jpeg-incompressibility.jpeg_kb", "error"]
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
    # the weights are recorded once: in the summary, and in a parquet table's metadata
    assert "none (no weights needed)" in res.output  # the summary's weights column
    recorded = table_provenance(out)
    if ext == "parquet":
        assert {n: [p.kind for p in ps] for n, ps in recorded.items()} == {
            "jpeg-compressibility": ["none"], "jpeg-incompressibility": ["none"]}
    else:
        assert recorded is None
    assert "jpeg-incompressibility" in res.output and "5 rows: 5 scored, 0 failed" in res.output


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


# ----------------------------------------------------------------------------------------------
# refused before any model loads: exit 2, one line


@pytest.fixture
def no_model_loads(monkeypatch):
    """Building any reward fails the test: the refusals below must come before that."""
    from rewardbench.registry import REGISTRY

    def build(*a, **k):
        raise AssertionError("a model was built before the run was refused")

    monkeypatch.setattr(REGISTRY, "build", build)


def _manifest(tmp_path, photo_dir, **cols):
    path = tmp_path / "m.csv"
    pd.DataFrame({"image": [str(photo_dir / "coffee.jpg"), str(photo_dir / "chelsea.jpg")], **cols}).to_csv(
        path, index=False)
    return path


@pytest.mark.parametrize("case", ["prompted-folder", "prompted-manifest", "group-without-grouping",
                                  "file-as-folder", "no-permission", "cuda", "config-key", "config-reward",
                                  "group-by-column", "column-clash", "group-table-without-group-reward"])
def test_runs_that_cannot_work_are_refused_up_front(case, photo_dir, tmp_path, monkeypatch, no_model_loads):
    import os

    import torch

    args = ["--model", "jpeg-compressibility", "--images", photo_dir]
    expected = {
        "prompted-folder": "clipscore-b32 needs a prompt per image, and", "prompted-manifest": "add a 'prompt' column",
        "group-without-grouping": "vendi is a group reward: pass --group-by",
        "file-as-folder": "is a file, not a folder", "no-permission": "no permission to write in",
        "cuda": "no CUDA GPU is visible", "config-key": "takes no option 'qualty'",
        "config-reward": "'vendi' is not among the rewards", "group-by-column": "has no 'model' column",
        "column-clash": "input column 'jpeg-compressibility' of", "group-table-without-group-reward": "no group reward",
    }[case]
    if case == "prompted-folder":
        args = ["--model", "clipscore-b32", "--images", photo_dir]
    elif case == "prompted-manifest":
        args = ["--model", "clipscore-b32", "--images", _manifest(tmp_path, photo_dir, model=["a", "b"])]
    elif case == "group-without-grouping":
        args = ["--model", "vendi", "--images", _manifest(tmp_path, photo_dir, prompt=["x", "x"])]
    elif case == "file-as-folder":
        (tmp_path / "f").write_text("x")
        args += ["--out", tmp_path / "f" / "s.parquet"]
    elif case == "no-permission":
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, m: False if str(p) == str(tmp_path) else real(p, m))
        args += ["--out", tmp_path / "s.parquet"]
    elif case == "cuda":
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        args += ["--device", "cuda"]
    elif case == "config-key":
        args += ["--config", "jpeg-compressibility:qualty=50"]
    elif case == "config-reward":
        args += ["--config", "vendi:q=2"]
    elif case == "group-by-column":
        args = ["--model", "vendi", "--images", _manifest(tmp_path, photo_dir, prompt=["x", "x"]), "--group-by",
                "model"]
    elif case == "column-clash":
        args = ["--model", "jpeg-compressibility", "--images",
                _manifest(tmp_path, photo_dir, **{"jpeg-compressibility": [1, 2]})]
    elif case == "group-table-without-group-reward":
        args += ["--out", tmp_path / "s.parquet", "--group-table", tmp_path / "g.parquet"]
    res = _run(*args)
    assert res.exit_code == 2, res.output
    assert expected in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1, res.output


def test_a_locked_or_finished_out_is_a_usage_error(photo_dir, tmp_path):
    from rewardbench.outputs import RunLock

    out = tmp_path / "s.parquet"
    assert _run("--model", "jpeg-compressibility", "--images", photo_dir, "--out", out).exit_code == 0
    res = _run("--model", "jpeg-incompressibility", "--images", photo_dir, "--out", out)
    assert res.exit_code == 2 and "already holds a complete results table" in res.output and "--overwrite" in res.output
    with RunLock(out):
        res = _run("--model", "jpeg-incompressibility", "--images", photo_dir, "--out", out, "--overwrite")
        assert res.exit_code == 2 and "another run" in res.output
    res = _run("--model", "jpeg-incompressibility", "--images", photo_dir, "--out", out, "--overwrite")
    assert res.exit_code == 0 and "jpeg-incompressibility" in pd.read_parquet(out).columns


def test_an_unexpected_error_is_one_line_with_a_way_to_the_traceback(photo_dir, monkeypatch):
    from rewardbench.harness import Scorer

    def boom(self, *a, **k):
        raise OSError("disk on fire\nsecond line")

    monkeypatch.setattr(Scorer, "run", boom)
    # recorded by monkeypatch, so the REWARDBENCH_DEBUG that --debug sets below is undone after this test
    monkeypatch.setenv("REWARDBENCH_DEBUG", "0")
    res = _run("--model", "jpeg-compressibility", "--images", photo_dir)
    assert res.exit_code == 1
    assert res.output.strip() == ("error: OSError: disk on fire second line (run with --debug or REWARDBENCH_DEBUG=1 "
                                  "for the traceback)")
    res = CliRunner().invoke(score, ["--model", "jpeg-compressibility", "--images", str(photo_dir), "--debug",
                                     "--no-progress"])
    assert res.exit_code == 1 and "Traceback" in res.output and "in boom" in res.output
    monkeypatch.delenv("REWARDBENCH_DEBUG", raising=False)  # --debug set it for this process
    monkeypatch.setenv("REWARDBENCH_DEBUG", "1")
    assert "Traceback" in _run("--model", "jpeg-compressibility", "--images", photo_dir).output


def test_the_main_command_reports_uncaught_errors_in_one_line(monkeypatch):
    from rewardbench.cli import main
    from rewardbench.cli import prompts as cli_prompts

    def boom(*a, **k):
        raise KeyError("no such prompt set table")

    monkeypatch.delenv("REWARDBENCH_DEBUG", raising=False)
    monkeypatch.setattr(cli_prompts.prompts.commands["list"], "callback", boom)
    res = CliRunner().invoke(main, ["prompts", "list"])
    assert res.exit_code == 1 and res.output.startswith("error: KeyError:") and "--debug" in res.output
    assert "Traceback" not in res.output


def test_summary_counts_failed_rows_truthfully(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    for i in range(8):
        (d / f"{i}.png").write_bytes(b"not a png")
    res = _run("--model", "jpeg-compressibility", "--images", d)
    assert res.exit_code == 1 and "8 rows: 0 scored, 8 failed" in res.output
    payload = json.loads(_run("--model", "jpeg-compressibility", "--images", d, "--json").output)
    assert (payload["summary"]["scored"], payload["summary"]["failed"]) == (0, 8)


def test_multi_model_manifest_keeps_its_columns_and_gets_a_group_table(photo_dir, tmp_path):
    rows = [{"image": f"photos/{n}", "prompt": p, "model": m, "seed": s}
            for (n, p) in (("astronaut.jpg", "a person"), ("grace_hopper.jpg", "a person"), ("coffee.jpg", "coffee"))
            for m in ("sd1.5", "sd2.1") for s in (0,)]
    m = tmp_path / "m.jsonl"
    m.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out, groups = tmp_path / "s.parquet", tmp_path / "g.parquet"
    res = _run("--model", "jpeg-compressibility,vendi", "--images", m, "--group-by", "prompt", "--out", out,
               "--group-table", groups)
    assert res.exit_code == 0, res.output
    assert "warning: the input has a 'model' column but groups are formed by prompt alone" in res.output
    assert res.output.count("warning:") == 1
    res = _run("--model", "jpeg-compressibility,vendi", "--images", m, "--group-by", "prompt,model", "--out", out,
               "--group-table", groups, "--overwrite")
    # coffee's groups hold one image each: fewer than Vendi measures, so the one warning says so
    assert res.exit_code == 0 and [w for w in res.output.splitlines() if w.startswith("warning")] == [
        "warning: 2 of 4 groups by prompt,model have fewer than the 2 images vendi measures: scored, marked "
        "(vendi.group_too_small) and left out of the summary"], res.output
    t, g = pd.read_parquet(out), pd.read_parquet(groups)
    assert list(t["image"]) == [r["image"] for r in rows] and list(t["model"]) == [r["model"] for r in rows]
    assert len(g) == 4 and g["size"].tolist() == [2, 2, 1, 1]
    assert g["vendi.group_too_small"].tolist() == [False, False, True, True]
    assert "6 rows: 6 scored, 0 failed; 4 groups by prompt,model" in res.output
    assert not (tmp_path / "s.parquet.parts").exists() and not (tmp_path / "s.parquet.lock").exists()
