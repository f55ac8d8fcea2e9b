"""scripts/perf/bench_benchmark.py runs end to end on a few small JPEGs, and what it reports is the work
done (images, result rows, the time split). Its timings are not checked: speed is measured by running the
script (scripts/perf/README.md), never asserted in tests."""

from __future__ import annotations

import json
import sys
from pathlib import Path

PERF = Path(__file__).resolve().parents[2] / "scripts" / "perf"
sys.path.insert(0, str(PERF))

import bench_benchmark  # noqa: E402


def test_bench_benchmark_reports_both_sides_and_the_statistics(tmp_path):
    out = tmp_path / "r.json"
    r = bench_benchmark.main(["--judges", "jpeg-compressibility", "--n-images", "9", "--image-size", "48",
                              "--repeats", "1", "--n-boot", "100", "--workers", "0", "--stats-prompts", "50",
                              "--stats-images", "2", "--json", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(r))
    o = r["overhead"]
    assert o["images"] == 9 and o["models"] == 3 and len(o["rounds_s"]) == 1
    (a, b), = o["rounds_s"]
    assert 0 < o["outside_scorer_s"][0] < b and o["scorer_share_of_benchmark"][0] == 1 - o["outside_scorer_s"][0] / b
    s = r["stats_100k"]
    assert s["2_models"]["paired_rows"] == 100 and s["3_models"]["paired_rows"] == 200
    assert s["2_models"]["metrics"] == ["mean", "win_rate"] and "bt_log_strength" in s["3_models"]["metrics"]
    text = bench_benchmark.render(r)
    assert "(1) Scorer alone" in text and "(2) run-benchmark" in text and "(3) statistics" in text
