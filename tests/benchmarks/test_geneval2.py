"""The ``geneval2`` suite end to end, offline: GenEval 2's prompts from a local copy of the data (a tiny hand-made
file in the official format, tests/data/geneval2_tiny.jsonl), the tiny pipeline, Soft-TIFA on a tiny random Qwen3-VL,
and the report's per-skill and per-atom-count rows (benchmarks/atoms.py) checked against GenEval 2's analysis
formulas (soft_tifa_analysis.py @ a6e82d2) recomputed from the per-image details."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pandas as pd
import pytest

from rewardbench.benchmarks.prompt_sets import PromptSourceError, load_prompt_set
from rewardbench.benchmarks.run import BenchmarkRun, GenerationSettings, run_benchmark
from rewardbench.benchmarks.suite import load_benchmark_suite, resolve_judge_config

DATA = Path(__file__).resolve().parents[1] / "data" / "geneval2_tiny.jsonl"


def test_prompt_set_rows_and_categories():
    rows = load_prompt_set("geneval2", path=str(DATA))
    assert [r["category"] for r in rows] == ["3 atoms", "3 atoms", "5 atoms"]
    assert rows[2]["skills"][3] == "verb" and rows[0]["questions"][0] == "How many cats are in the image?"
    assert [r["prompt"] for r in load_prompt_set("geneval2", path=str(DATA), atom_count=5)] == [
        "ten wooden horses jumping over a fence"]


def test_offline_url_fails_fast_with_the_way_out(monkeypatch):
    from rewardbench import geneval2

    monkeypatch.setattr(geneval2, "OFFICIAL_URL", "http://127.0.0.1:9/geneval2_data.jsonl")
    t0 = time.perf_counter()
    with pytest.raises(PromptSourceError, match="CC BY-NC.*--path geneval2=FILE"):
        load_prompt_set("geneval2")
    assert time.perf_counter() - t0 < 15


def test_judge_reads_the_prompt_source_file():
    suite = load_benchmark_suite("geneval2")
    assert suite.judges == ("soft-tifa",) and suite.images_per_prompt == 1
    assert resolve_judge_config(suite, {"geneval2": str(DATA)}) == {"soft-tifa": {"data": str(DATA)}}
    assert resolve_judge_config(suite) == {"soft-tifa": {}}  # no file: the judge's own default (the official URL)
    broken = type(suite)(**{**suite.__dict__, "judge_config": {"soft-tifa": {"data": "{path:geneval}"}}})
    with pytest.raises(ValueError, match="names 'geneval', not one of its prompt sources"):
        resolve_judge_config(broken)


def test_run_benchmark_writes_the_geneval2_report(tmp_path):
    run = BenchmarkRun(suite="geneval2", out=str(tmp_path), models=("ft=tiny:1",), baseline="tiny",
                       paths={"geneval2": str(DATA)}, judge_config={"soft-tifa": {"tiny": True}}, random_weights=True,
                       generation=GenerationSettings(steps=2, resolution=64, device="cpu"), score_device="cpu",
                       n_boot=100, plots=False, progress=False, num_workers=0)
    result = run_benchmark(run)
    assert result.summary["images"] == 6 and result.summary["failed"] == 0
    scores = pd.read_csv(tmp_path / "scores.csv")
    atoms = pd.read_csv(tmp_path / "atoms.csv", dtype={"key": str})
    table = pd.read_parquet(next((tmp_path / "scores").glob("*.parquet")))
    manifest = pd.read_json(tmp_path / "manifest.jsonl", lines=True)
    for model in ("ft", "tiny"):
        got = {(r.breakdown, r.key, r.metric): r.value for r in atoms[atoms["model"] == model].itertuples()}
        # GM overall: 100 x the mean of the judge's scores (its score is the geometric mean)
        assert got[("all", "all", "soft_tifa_gm")] == pytest.approx(
            100 * scores.loc[scores["model"] == model, "score"].mean(), rel=1e-6)
        # soft_tifa_analysis.py: per skill, sum of atom scores / number of atoms; per atomicity, mean gmean
        mine = manifest.index[manifest["model"] == model]
        per_atom = [(s, k) for i in mine for s, k in zip(json.loads(table["soft-tifa.atom_scores"][i]),
                                                          json.loads(table["soft-tifa.atom_skills"][i]))]
        for skill in ("object", "attribute", "count", "position", "verb"):
            vals = [s for s, k in per_atom if k == skill]
            assert got[("skill", skill, "soft_tifa_am")] == pytest.approx(100 * sum(vals) / len(vals), rel=1e-6)
        five = [i for i in mine if table["soft-tifa.atom_count"][i] == 5]
        gm5 = [math.exp(sum(map(math.log, json.loads(table["soft-tifa.atom_scores"][i]))) / 5) for i in five]
        assert got[("atom_count", "5", "soft_tifa_gm")] == pytest.approx(100 * sum(gm5) / len(gm5), rel=1e-6)
    report = (tmp_path / "report.md").read_text()
    assert "## Per atom (GenEval 2's analysis)" in report and "| 3 atoms | 5 atoms |" in report
    assert "soft-tifa (random weights)" in report
    config = json.loads((tmp_path / "results.json").read_text())
    assert "random" in json.dumps(config).lower()
