"""scripts/perf/bench_vlm.py runs end to end on two judges (tiny random models, two images): both ways score every
image and agree on the scores. Timings are not checked (scripts/perf/README.md has the measured ones)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

PERF = Path(__file__).resolve().parents[2] / "scripts" / "perf"
sys.path.insert(0, str(PERF))

import bench_vlm  # noqa: E402


def test_bench_vlm_compares_both_ways_on_the_same_scores(tmp_path):
    out = bench_vlm.main(["--batch", "3", "--rounds", "1", "--judges", "vqascore-qwen3-vl,soft-tifa",
                          "--json", str(tmp_path / "r.json"), "--md", str(tmp_path / "r.md")])
    rows = {r["judge"]: r for r in out["rows"]}
    assert set(rows) == {"vqascore-qwen3-vl", "soft-tifa"}
    for r in rows.values():
        assert r["images"] == 3 and r["batched_s"] > 0 and r["per_sample_s"] > 0
        assert r["max_abs_score_diff"] < 1e-5 and "random" in r["weights"]
    assert json.loads((tmp_path / "r.json").read_text())["meta"]["batch"] == 3
    assert "| `soft-tifa` |" in (tmp_path / "r.md").read_text()
