"""The board writer: tidy rows, replacement of re-measured rows, and no row from random weights, ever."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from rewardbench.leaderboards.board import (
    COLUMNS,
    RandomWeightsError,
    append_rows,
    boards_dir,
    list_boards,
    make_row,
    read_board,
    read_boards,
)
from rewardbench.leaderboards.perf import TIMING_PROVENANCE, TIMING_WEIGHTS, ingest_perf, perf_rows
from rewardbench.provenance import NO_WEIGHTS, Provenance

ROOT = Path(__file__).resolve().parents[2]
PERF_RESULTS = sorted((ROOT / "scripts" / "perf" / "results").glob("*.json"))


def _row(**kw):
    base = dict(subject="jpeg-incompressibility", judge="human", suite="toy", metric="accuracy", value=0.7,
                ci_low=0.6, ci_high=0.8, n=50, protocol="drop-ties (tie threshold 0)", weights=[NO_WEIGHTS])
    return make_row(**{**base, **kw})


def test_rows_have_every_column_and_provenance():
    r = _row()
    assert list(r) == COLUMNS
    assert (r["weights"], r["weights_kind"]) == ("none (no weights needed)", "none")
    assert r["date"] and r["version"] and r["split"] == "-" and r["category"] == "all"
    with pytest.raises(ValueError, match="unknown row field"):
        make_row(subject="x", colour="red")


def test_append_replaces_the_same_key_and_keeps_others(tmp_path):
    append_rows("b", [_row(), _row(subject="nsfw", value=0.4)], root=tmp_path)
    append_rows("b", [_row(value=0.9)], root=tmp_path)  # re-measured: replaces
    append_rows("b", [_row(category="blur", value=1.0)], root=tmp_path)  # another key: added
    df = read_board("b", root=tmp_path)
    assert len(df) == 3
    assert df.set_index(["subject", "category"]).loc[("jpeg-incompressibility", "all"), "value"] == 0.9
    assert list_boards(tmp_path) == ["b"] and list(read_boards(root=tmp_path).columns) == ["board", *COLUMNS]


@pytest.mark.parametrize("weights", [
    [Provenance("random", "not loaded")], [Provenance("random", "pretrained=False")],
    [Provenance("hub", "x").of("clip"), Provenance("random").of("head")],
    {"a": [NO_WEIGHTS], "b": [Provenance("random", "pretrained=False")]}])
def test_random_weights_are_refused_and_nothing_is_written(tmp_path, weights):
    with pytest.raises(RandomWeightsError, match="random weights"):
        append_rows("b", [_row(), _row(subject="pickscore", weights=weights)], root=tmp_path)
    assert not (tmp_path / "b.csv").exists()  # the good row was not written either


def test_the_decision_reads_the_kind_not_the_text(tmp_path):
    # a real checkpoint whose path says "random" is a real result; a row given as text alone has no kind
    path = append_rows("b", [_row(weights=[Provenance("file", "/models/random-forest-head.pt")])], root=tmp_path)
    assert read_board("b", root=tmp_path)["weights_kind"].tolist() == ["file"] and path.is_file()
    with pytest.raises(ValueError, match="lacks .*weights_kind"):
        append_rows("b", [_row(weights="hub:x")], root=tmp_path)


def test_timing_rows_may_say_random_but_scores_may_not(tmp_path):
    append_rows("perf", [_row(metric="img_per_s", value=700.0, weights=[TIMING_PROVENANCE])], root=tmp_path)
    assert read_board("perf", root=tmp_path)["weights"].tolist() == [TIMING_WEIGHTS]
    with pytest.raises(RandomWeightsError):
        append_rows("perf", [_row(metric="accuracy", weights=[TIMING_PROVENANCE])], root=tmp_path)


def test_bad_rows_and_names(tmp_path):
    with pytest.raises(ValueError, match="lacks"):
        append_rows("b", [_row(protocol="")], root=tmp_path)
    with pytest.raises(ValueError, match="non-numeric"):
        append_rows("b", [_row(value="high")], root=tmp_path)
    with pytest.raises(ValueError, match="board name"):
        append_rows("../escape", [_row()], root=tmp_path)
    with pytest.raises(FileNotFoundError, match="known: none"):
        read_board("missing", root=tmp_path)


def test_boards_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("REWARDBENCH_BOARDS", str(tmp_path))
    assert boards_dir() == tmp_path
    monkeypatch.delenv("REWARDBENCH_BOARDS")
    assert boards_dir() == ROOT / "leaderboards" / "boards"


@pytest.mark.skipif(not PERF_RESULTS, reason="no scripts/perf/results/*.json in this checkout")
def test_perf_results_become_timing_rows(tmp_path):
    path = ingest_perf(PERF_RESULTS, root=tmp_path)
    df = pd.read_csv(path)
    assert set(df["weights"]) == {TIMING_WEIGHTS} and set(df["weights_kind"]) == {"random"} and (df["value"] > 0).all()
    cpu = json.loads((ROOT / "scripts/perf/results/cpu_b32.json").read_text()) if (
        ROOT / "scripts/perf/results/cpu_b32.json").exists() else None
    if cpu:
        rows = perf_rows(cpu)
        ratio = [r for r in rows if r["metric"] == "fraction_of_ceiling"][0]
        assert ratio["value"] == pytest.approx(cpu["throughput"]["2_over_1"])
        assert ratio["split"] == "CPU, 2 cores"


def test_generator_rows_from_the_benchmark_statistics(tmp_path):
    """What run-benchmark hands the writer: stats.result_rows -> rows_from_stats -> append_rows."""
    from rewardbench.benchmarks.stats import result_rows
    from rewardbench.leaderboards.board import rows_from_stats

    scores = pd.DataFrame({"model": ["ft"] * 4 + ["base"] * 4, "prompt": ["a", "b", "c", "d"] * 2, "index": 0,
                           "judge": "pickscore", "score": [3.0, 2.0, 2.0, 1.0, 1.0, 2.0, 1.0, 1.0]})
    stats = result_rows(scores, "base", n_boot=200)
    pickscore = [Provenance("hub", "yuvalkirstain/PickScore_v1")]
    rows = rows_from_stats(stats, suite="drawbench", weights={"pickscore": pickscore}, command="run-benchmark")
    win = [r for r in rows if r["metric"] == "win_rate"][0]
    assert win["subject"] == "ft" and win["subject_kind"] == "model" and win["judge"] == "pickscore"
    assert win["value"] == pytest.approx(0.75) and win["n"] == 4 and "vs base" in win["protocol"]
    append_rows("generators", rows, root=tmp_path)
    assert len(read_board("generators", root=tmp_path)) == len(stats)
    with pytest.raises(RandomWeightsError):
        append_rows("generators", rows_from_stats(stats, suite="drawbench",
                                                  weights={"pickscore": [Provenance("random")]}), root=tmp_path)
