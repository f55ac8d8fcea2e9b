"""The performance scripts run end to end (tiny random CLIP models, a few small JPEGs), and the
counts they report are the work the Scorer really did. Their timings are not checked here: speed is
measured by running the scripts (scripts/perf/README.md), never asserted in tests."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

PERF = Path(__file__).resolve().parents[2] / "scripts" / "perf"
sys.path.insert(0, str(PERF))

import bench_scoring  # noqa: E402
import profile_scorer  # noqa: E402

TINY = "clipscore-b32:tiny=True"


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "r.json"
    r = bench_scoring.main([
        "--reward", TINY, "--text-reward", TINY,
        "--shared", f"{TINY};{TINY},as=second;{TINY},as=third",
        "--n-images", "8", "--batch-size", "4", "--workers", "1", "--image-size", "48",
        "--naive-images", "2", "--naive-reload-images", "1", "--shared-images", "8", "--repeats", "1",
        "--memory-rows", "300,600", "--json", str(out)])
    return r, out


def test_bench_scoring_reports_every_measurement(bench):
    r, out = bench
    assert out.exists()
    t = r["throughput"]
    assert t["images"] == 8 and t["naive_images_timed"] == 2 and t["naive_reload_images_timed"] == 1
    assert t["naive_prompt_encoded_per_image"] is True  # clipscore needs a prompt
    text = bench_scoring.render(r)
    for label in ("(1) ceiling", "(2) Scorer", "(3) naive", "(3b)", "(4) 3 rewards", "(5) prompts", "(6) RSS"):
        assert label in text


def test_bench_counts_are_the_work_done(bench):
    r, _ = bench
    s = r["shared_backbone"]
    assert s["clusters_when_shared"] == 1 and len(s["backbone_ids"]) == 1
    c = r["text_cache"]
    assert c["unique_prompts"] == 1  # 8 images, 16 per prompt
    assert c["cached_prompts_encoded"] == 1 and c["cached_summary_text_calls"] == 1
    assert c["uncached_prompts_encoded"] == 8
    m = r["memory"]
    assert m["rows"] == 600 and {"rss_after_300_rows_mb", "rss_after_600_rows_mb"} <= set(m)


def test_official_style_copy_preprocesses_with_pil_and_skips_the_text_cache():
    import rewardbench

    reward = rewardbench.load_reward(TINY.split(":")[0], pretrained=False, tiny=True)
    official = bench_scoring._official_style(reward)
    assert official.backbone.pil_preprocess and not reward.backbone.pil_preprocess
    import torch

    x = torch.rand(2, 3, 40, 40)
    for _ in range(2):
        official(x, ["a cat", "a cat"])
    assert official.backbone.text_cache.encoded == 4  # every prompt of every call is encoded
    assert reward.backbone.text_cache.encoded == 0  # the original is untouched


def test_profile_scorer_splits_the_main_thread_time(tmp_path):
    r = profile_scorer.main(["--reward", TINY, "--n-images", "12", "--batch-size", "4", "--workers", "1",
                             "--image-size", "48", "--profile-images", "8", "--out", str(tmp_path)])
    e = r["E_scorer"]
    assert e["batches"] == math.ceil(12 / 4)
    assert 0 < e["in_score_batch_s"] < e["seconds"]
    assert (tmp_path / "profile.json").exists() and (tmp_path / "top_ops.txt").read_text().strip()
    assert r["F_top_cpu_ops"] and all(op["count"] > 0 for op in r["F_top_cpu_ops"])


def test_bench_offline_times_both_checkouts_and_writes_its_tables(shared_data, tmp_path):
    """A tiny run of scripts/perf/bench_offline.py on calibration images, with this checkout standing in for the
    older one (``--before``): every measurement is there, in JSON, CSV and markdown, and a profile is written."""
    import bench_offline

    data = shared_data / "faces-calibration"
    if not (data / "labels.csv").is_file():
        pytest.skip(f"{data}/labels.csv not found")
    out = tmp_path / "offline.json"
    root = str(PERF.parents[1])
    r = bench_offline.main(["--n-images", "6", "--rounds", "1", "--configs", "jpeg", "--workers", "0",
                            "--before", root, "--data", str(data), "--json", str(out)])
    assert set(r["results"]) == {"pil", "jpeg/after", "jpeg/before"} and r["checkouts"]["before"] == root
    assert r["results"]["jpeg/after"]["images_per_s"] > 0 and r["goals"]["jpeg"]["metric"] == "ratio_to_pil"
    assert out.with_suffix(".csv").read_text().count("\n") == 4 and "jpeg-compressibility" in \
        out.with_suffix(".md").read_text()
    p = bench_offline.main(["--profile", "--n-images", "3", "--data", str(data), "--results", str(tmp_path)])
    text = (tmp_path / "offline_profile_after.txt").read_text()
    assert p["after"]["seconds"] > 0 and "CenterFace |" in text and "## top 30 by cumulative" in text


def test_bench_memory_scores_large_images_one_per_batch_under_the_cap(tmp_path):
    """Two images at the cap ($REWARDBENCH_MAX_PIXELS = 64 x 64 in the scoring processes): one batch without the
    bound, one each with it; the numbers themselves are the script's to report, not checked here."""
    import bench_memory

    r = bench_memory.main(["--n", "2", "--size", "64", "--cap", str(64 * 64), "--rewards", "jpeg", "--plan-rows", "20",
                           "--json", str(tmp_path / "m.json")])
    batches = {run["config"]: run["batches"] for run in r["runs"]}
    assert batches == {"unbounded": [2], "bounded": [1, 1], "batch1": [1, 1]}
    assert all(run["failed"] == 0 and run["rss_peak_mb"] > 0 for run in r["runs"])
    assert r["planning"]["rows"] == 20 and (tmp_path / "m.json").exists()
