"""`rewardbench leaderboard`: every format, the committed boards, perf ingestion, and its errors."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from rewardbench.cli.leaderboard import leaderboard
from rewardbench.leaderboards.board import (
    TIMING_METRICS,
    append_rows,
    is_random_kind,
    list_boards,
    make_row,
    read_board,
)
from rewardbench.leaderboards.published import published, side_by_side
from rewardbench.provenance import Provenance

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def boards(tmp_path):
    append_rows("agreement", [make_row(subject="hpsv2", judge="human", suite="hpdv2", split="test", metric="accuracy",
                                       value=0.81, ci_low=0.8, ci_high=0.82, n=400, protocol="hpdv2",
                                       weights=[Provenance("hub", "xswu/HPSv2")]),
                              make_row(subject="nsfw", judge="human", suite="hpdv2", split="test", metric="accuracy",
                                       value=0.5, n=400, protocol="hpdv2", weights=[Provenance("bundled", "nudenet")])],
                root=tmp_path)
    append_rows("perf", [make_row(subject="hpsv2", judge="-", suite="scorer-performance", metric="img_per_s",
                                  value=737.0, n=8192, protocol="timing: x",
                                  weights=[Provenance("random", "timing only")])],
                root=tmp_path)
    return tmp_path


def run(*args):
    return CliRunner().invoke(leaderboard, [str(a) for a in args])


def test_markdown_lists_boards_protocols_and_published_numbers(boards):
    out = run("--dir", boards)
    assert out.exit_code == 0, out.output
    assert "## agreement" in out.output and "## perf" in out.output
    assert "| hpsv2 | human | hpdv2 | test | all | accuracy | 0.810 | [0.800, 0.820] | 400 | hpdv2 |" in out.output
    assert "## Protocols" in out.output and "inversion score" in out.output
    # our hpsv2 number beside both papers' 83.3, with their sources
    assert "## Published numbers beside ours" in out.output and "| 81.0 |" in out.output
    assert out.output.count("| 83.3 |") >= 2 and "## Published numbers" in out.output


def test_csv_json_html_and_one_board(boards, tmp_path):
    out = run("--dir", boards, "--board", "perf", "--format", "csv")
    df = pd.read_csv(io.StringIO(out.output))
    assert list(df.board.unique()) == ["perf"] and df.value.tolist() == [737.0]
    rows = json.loads(run("--dir", boards, "--format", "json").output)
    assert {r["board"] for r in rows} == {"agreement", "perf"} and all("protocol" in r for r in rows)
    page = tmp_path / "page.html"
    assert run("--dir", boards, "--format", "html", "--out", page).exit_code == 0
    text = page.read_text()
    assert text.count('<table class="board"') == 4  # two boards, ours beside published, published
    assert "<script src" not in text and "<link" not in text and "data:image/png;base64," in text


def test_list_and_errors(boards, tmp_path):
    listed = run("--dir", boards, "--list")
    assert listed.exit_code == 0 and "agreement\t2 rows" in listed.output
    assert run("--dir", boards, "--board", "nope").exit_code == 2
    assert run("--dir", tmp_path / "empty").exit_code == 2  # no such folder: a usage error
    (tmp_path / "empty").mkdir()
    no_boards = run("--dir", tmp_path / "empty")
    assert no_boards.exit_code == 2 and "no boards in" in no_boards.output


def test_add_perf_ingests_result_files(tmp_path):
    results = sorted((ROOT / "scripts" / "perf" / "results").glob("*.json"))
    if not results:
        pytest.skip("no perf results in this checkout")
    out = run("--dir", tmp_path, "--add-perf", results[0], "--to-leaderboard", "speed")
    assert out.exit_code == 0, out.output
    assert (read_board("speed", root=tmp_path)["value"] > 0).all()


def test_the_committed_boards_are_real_and_readable():
    """Whatever is committed in leaderboards/boards: every row validated, none from random weights except
    timing rows, and each with the command that produced it."""
    names = list_boards()
    if not names:
        pytest.skip("no committed boards")
    for name in names:
        df = read_board(name)
        assert len(df) and df["command"].notna().all(), name
        scores = df[~df["metric"].isin(TIMING_METRICS)]
        assert df["weights_kind"].notna().all() and not any(map(is_random_kind, scores["weights_kind"])), name


def test_published_numbers_cite_a_source():
    p = published()
    assert len(p) >= 40 and p["source"].str.len().min() > 10 and p["url"].str.startswith("http").all()
    assert set(p["dataset"]) >= {"hpdv2", "imagerewarddb", "pickapic-v1", "hpdv3", "mmrb2-t2i"}
    ours = pd.DataFrame([{"subject": "pickscore", "suite": "pickapic-v1", "split": "test_unique", "category": "all",
                          "metric": "accuracy", "value": 0.7, "ci_low": None, "ci_high": None,
                          "protocol": "pickapic (tie threshold 0.3)"}])
    beside = side_by_side(ours)
    assert beside["published (%)"].tolist() == [70.2] and beside["ours CI"].tolist() == ["-"]


def test_leaderboard_runs_from_the_installed_command(tmp_path):
    exe = shutil.which("rewardbench") or str(Path(__import__("sys").executable).parent / "rewardbench")
    import subprocess

    res = subprocess.run([exe, "leaderboard", "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "Examples" in res.stdout
