"""run-benchmark's own overhead, measured side by side in one run (a benchmark, not a test).

    python scripts/perf/bench_benchmark.py --json scripts/perf/results/run_benchmark_cpu.json

Measures, on the same pre-generated JPEG images of three "models" and the same judges:
  1. `rewardbench.Scorer` alone: build the judges, score every image into a parquet table;
  2. `run-benchmark` end to end (`rewardbench.benchmarks.run.run_benchmark` from the manifest): the same
     Scorer, plus pairing, the statistics (win rates, bootstrap CIs, sign tests, Bradley-Terry, categories),
     the tables, results.json, report.md and the PNG plots;
  (1) and (2) alternate round by round, so a change in machine load hits both; the table gives the best time
  of each and the median of the per-round ratios (target (1)/(2) >= 0.90: the statistics and reports cost little);
  3. the statistics alone (`rewardbench.benchmarks.stats.result_rows`) on 100k paired rows: 2 models x 10,000
     prompts x 10 images, 10 categories, 2,000 bootstrap resamples; and 3 models (adds Bradley-Terry) x 100k rows each.
Judges use RANDOM weights (speed does not depend on the weights' values). The time run-benchmark spends outside
the Scorer (building it and running it are timed inside run-benchmark) is reported too: it does not depend on
how fast the judges are, so it says what the ratio becomes for heavier judges or more images.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scoring import _write_jpegs  # noqa: E402

from rewardbench.benchmarks import run as run_module  # noqa: E402
from rewardbench.benchmarks import stats  # noqa: E402
from rewardbench.benchmarks.run import BenchmarkRun, build_scorer, run_benchmark  # noqa: E402
from rewardbench.harness import Scorer  # noqa: E402


def _manifests(folder: Path, paths: list[Path], n_models: int) -> tuple[Path, Path]:
    """Models sharing prompts (model k's image of prompt p is a distinct JPEG): the generated-images manifest
    run-benchmark reads, and the same images and prompts as the Scorer's plain input."""
    per = len(paths) // n_models
    rows = [{"image": str(paths[k * per + p]), "prompt": f"prompt number {p}", "model": f"model{k}", "index": 0,
             "category": f"category {p % 4}"} for k in range(n_models) for p in range(per)]
    generated, plain = folder / "generated.jsonl", folder / "scorer_input.jsonl"
    generated.write_text("".join(json.dumps(r) + "\n" for r in rows))
    plain.write_text("".join(json.dumps({"image": r["image"], "prompt": r["prompt"]}) + "\n" for r in rows))
    return generated, plain


def bench_overhead(args, tmp: Path) -> dict:
    paths = _write_jpegs(tmp / "jpegs", args.n_images, args.image_size)
    manifest, plain = _manifests(tmp, paths, args.models)
    judges = [j.strip() for j in args.judges.split(",")]
    n = len(pd.read_json(manifest, lines=True))

    def scorer_alone(out: Path) -> None:
        torch.manual_seed(0)
        s = Scorer(judges, batch_size=args.batch_size, num_workers=args.workers, pretrained=False, progress=False)
        try:
            out.mkdir(parents=True, exist_ok=True)
            res = s.run(plain, out=out / "scores.parquet")
            assert res.n_rows == n and res.n_failed == 0
        finally:
            s.close()

    parts: list[float] = []  # seconds inside the Scorer (build + run) of the latest run-benchmark call

    def timed_scorer(plan, run):
        t = time.perf_counter()
        scorer = build_scorer(plan, run)
        parts.append(time.perf_counter() - t)
        inner = scorer.run

        def run_and_time(*a, **kw):
            t = time.perf_counter()
            try:
                return inner(*a, **kw)
            finally:
                parts.append(time.perf_counter() - t)

        scorer.run = run_and_time
        return scorer

    def benchmark(out: Path) -> None:
        parts.clear()
        res = run_benchmark(BenchmarkRun(out=str(out), images=str(manifest), baseline="model0", judges=tuple(judges),
                                         random_weights=True, score_batch_size=args.batch_size,
                                         num_workers=args.workers, n_boot=args.n_boot, progress=False))
        assert res.summary["images"] == n and res.summary["failed"] == 0

    def timed(fn, out: Path) -> float:
        t = time.perf_counter()
        fn(out)
        return time.perf_counter() - t

    run_module.build_scorer = timed_scorer  # run_benchmark looks it up in its module at call time
    try:
        # first calls in this process: imports (matplotlib, scipy, diffusers), kernels, caches; reported apart
        warm = {"scorer_s": timed(scorer_alone, tmp / "warm_scorer"),
                "run_benchmark_s": timed(benchmark, tmp / "warm")}
        print(f"first calls: Scorer {warm['scorer_s']:.2f} s, run-benchmark {warm['run_benchmark_s']:.2f} s",
              flush=True)
        rounds, outside = [], []
        for r in range(args.repeats):
            a = timed(scorer_alone, tmp / f"scorer{r}")
            b = timed(benchmark, tmp / f"bench{r}")
            rounds.append((a, b))
            outside.append(b - sum(parts))  # pairing, statistics, tables, report, plots: what run-benchmark adds
            print(f"round {r}: Scorer {a:.2f} s, run-benchmark {b:.2f} s ({a / b:.3f}); outside the Scorer "
                  f"{outside[-1]:.2f} s", flush=True)
    finally:
        run_module.build_scorer = build_scorer
    return derive({"judges": judges, "images": n, "models": args.models, "image_size": args.image_size,
                   "batch_size": args.batch_size, "workers": args.workers, "n_boot": args.n_boot,
                   "first_calls": warm, "rounds_s": rounds, "outside_scorer_s": outside})


def derive(o: dict) -> dict:
    """The ratios from the raw times: (1)/(2) from separate runs (best; median round), and from inside each
    run-benchmark call (the share of its time spent in the Scorer), which a busy machine disturbs far less."""
    rounds, outside = o["rounds_s"], o["outside_scorer_s"]
    best_a, best_b = min(a for a, _ in rounds), min(b for _, b in rounds)
    shares = [1 - x / b for (_, b), x in zip(rounds, outside)]
    return {**o, "scorer_s": best_a, "run_benchmark_s": best_b, "scorer_over_benchmark": best_a / best_b,
            "scorer_over_benchmark_median_round": statistics.median(a / b for a, b in rounds),
            "outside_scorer_best_s": min(outside), "scorer_share_of_benchmark": shares,
            "scorer_share_of_benchmark_median": statistics.median(shares)}


def bench_stats(args) -> dict:
    rng = np.random.default_rng(0)
    prompts, per = args.stats_prompts, args.stats_images
    out = {"prompts": prompts, "images_per_prompt": per, "n_boot": args.n_boot}
    for n_models in (2, 3):
        models = [f"m{k}" for k in range(n_models)]
        p = np.repeat(np.arange(prompts), per)
        table = pd.DataFrame({
            "model": np.repeat(models, prompts * per), "prompt": np.tile(p, n_models).astype(str),
            "index": np.tile(np.tile(np.arange(per), prompts), n_models), "judge": "j",
            "score": rng.normal(size=n_models * prompts * per) + np.repeat(np.arange(n_models) * 0.05, prompts * per),
            "category": np.tile(p % 10, n_models).astype(str)})
        t = time.perf_counter()
        rows = stats.result_rows(table, "m0", n_boot=args.n_boot)
        sec = time.perf_counter() - t
        out[f"{n_models}_models"] = {"rows_per_model": prompts * per, "paired_rows": prompts * per * (n_models - 1),
                                     "seconds": sec, "result_rows": len(rows),
                                     "metrics": sorted(rows["metric"].unique().tolist())}
        print(f"statistics, {n_models} models x {prompts * per} rows: {sec:.2f} s ({len(rows)} result rows)",
              flush=True)
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--judges", default="clipscore-b32,jpeg-compressibility")
    ap.add_argument("--n-images", type=int, default=192, help="JPEGs in all (split over the models)")
    ap.add_argument("--models", type=int, default=3)
    ap.add_argument("--image-size", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--stats-prompts", type=int, default=10_000)
    ap.add_argument("--stats-images", type=int, default=10)
    ap.add_argument("--skip", default="", help="comma-separated: overhead, stats")
    ap.add_argument("--json", dest="json_path", default=None)
    args = ap.parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    results: dict = {"env": {"torch": torch.__version__, "cpu_count": os.cpu_count(),
                             "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
                             "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}}
    with tempfile.TemporaryDirectory() as tmp:
        if "overhead" not in skip:
            results["overhead"] = bench_overhead(args, Path(tmp))
    if "stats" not in skip:
        results["stats_100k"] = bench_stats(args)
    if args.json_path:  # the raw numbers first, then the table
        Path(args.json_path).write_text(json.dumps(results, indent=2))
    print("\n" + render(results))
    return results


def render(r: dict) -> str:
    lines = [f"{r['env']['cpu_count']} CPUs, torch {r['env']['torch']}, GPU {r['env']['gpu'] or 'none'}", "",
             f"{'measurement':84s} {'value':>14s}  target"]

    def row(name, value, target=""):
        lines.append(f"{name:84s} {value:>14s}  {target}")

    if "overhead" in r:
        o = r["overhead"]
        what = f"{o['images']} JPEGs {o['image_size']}px, {o['models']} models, {', '.join(o['judges'])}"
        row(f"(1) Scorer alone ({what})", f"{o['scorer_s']:.2f} s")
        row("(2) run-benchmark end to end (same images and judges; stats, reports, plots)",
            f"{o['run_benchmark_s']:.2f} s")
        row("(1)/(2) (best times; median round)",
            f"{o['scorer_over_benchmark']:.3f}; {o['scorer_over_benchmark_median_round']:.3f}", ">= 0.90")
        row("    (2) outside the Scorer: pairing, statistics, tables, report, plots (best round)",
            f"{o['outside_scorer_best_s']:.2f} s")
        row("    share of (2) spent in the Scorer, timed inside each call (median round)",
            f"{o['scorer_share_of_benchmark_median']:.3f}", ">= 0.90")
    if "stats_100k" in r:
        s = r["stats_100k"]
        for k in ("2_models", "3_models"):
            if k in s:
                row(f"(3) statistics, {k.replace('_', ' ')} x {s[k]['rows_per_model']} rows ({s['n_boot']} resamples)",
                    f"{s[k]['seconds']:.2f} s")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
