"""Peak memory of scoring large images, with and without the per-batch pixel budget (a benchmark, not a test).

    python scripts/perf/bench_memory.py --json scripts/perf/results/memory_cpu.json     # 4 PNGs of 4000 x 4000
    python scripts/perf/bench_memory.py --size 8000 --cap 67108864                      # issue 24's own case

Issue 24: the per-image pixel cap bounded one image, not a batch; four 8000 x 8000 PNGs at the default batch size
peaked at 10.4 GB. The planner now bounds a batch's pixels too (`rewardbench.batching.DEFAULT_BATCH_PIXELS`, the
per-image cap). This script writes ``--n`` PNGs of ``--size`` pixels square and scores them with
``jpeg-compressibility`` (the issue's reward, which reads every pixel) in a fresh process per configuration:

  * ``unbounded``: batch 16, no pixel bound (``max_batch_pixels=None``: how batches were planned before);
  * ``bounded``: batch 16, the default bound;
  * ``batch1``: batch 1 (the floor: one image at a time).

Each runs twice: with ``jpeg-compressibility`` (the issue's reward; it reads the decoded bytes) and with
``clipscore-b32`` (tiny, random weights; it reads float pixels and resizes them in torch, as every network reward
does: 12 bytes per pixel for the float batch alone).

``--cap`` sets ``$REWARDBENCH_MAX_PIXELS`` (the per-image cap, and so the default bound) in those processes: the
default run scales the issue's case down by four (4000 x 4000 images, a cap of 4096 x 4096), so the images sit
just under the cap as the issue's 8000 x 8000 sit under 8192 x 8192. Peak memory is the scoring process's own
peak resident set (``ru_maxrss``) with decoding in it (``--workers 0``, the default here), and with ``--workers N``
also the peak of the summed proportional set size (PSS) of the process and its decode workers, sampled every 20 ms.

A second measurement prices what the bound costs where it does not bind: planning ``--plan-rows`` small PNG files
with and without reading their headers (`rewardbench.batching.row_pixels`), best of 3.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = {"unbounded": dict(batch_size=16, bound=None), "bounded": dict(batch_size=16, bound="default"),
           "batch1": dict(batch_size=1, bound="default")}
# the reward, which reads the decoded bytes, and a CLIP reward (tiny, random weights), which reads float
# pixels and resizes them in torch: 12 bytes per pixel for the float batch alone
REWARDS = {"jpeg": ("jpeg-compressibility", None), "clip": ("clipscore-b32", {"tiny": True})}
_CHILD = """
import json, os, resource, sys
import rewardbench
from rewardbench.batching import DEFAULT_BATCH_PIXELS
folder, batch_size, bound, workers = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
reward, config = sys.argv[5], json.loads(sys.argv[6])
kw = {} if bound == "default" else {"max_batch_pixels": None}
scorer = rewardbench.Scorer(reward, batch_size=batch_size, device="cpu", num_workers=workers, progress=False,
                            pretrained=not config, reward_config={reward: config} if config else None, **kw)
calls = []
real = scorer._score_batch
scorer._score_batch = lambda engine, batch: calls.append(len(batch["index"])) or real(engine, batch)
res = scorer.run(folder, prompts=["a smooth gradient"] * len(os.listdir(folder)))
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"batches": calls, "failed": res.n_failed, "rss_peak_mb": own / 1024,
                  "worker_rss_peak_mb": kids / 1024, "bound": scorer.max_batch_pixels,
                  "default_bound": DEFAULT_BATCH_PIXELS}))
"""


def write_pngs(folder: Path, n: int, size: int) -> None:
    """``n`` PNGs of ``size`` x ``size``: smooth gradients with a per-image offset (quick to encode)."""
    import numpy as np
    from PIL import Image

    ramp = np.linspace(0, 255, size, dtype=np.float32)
    for i in range(n):
        img = np.empty((size, size, 3), np.uint8)
        img[..., 0] = ramp[None, :]
        img[..., 1] = ramp[:, None]
        img[..., 2] = (ramp[None, :] * 0.5 + 40 * i) % 256
        Image.fromarray(img).save(folder / f"{i:02d}.png", compress_level=1)


def _tree_pss_mb(proc) -> float:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_full_info().pss
        except Exception:  # a worker that just ended
            pass
    return total / 2**20


def measure(folder: Path, config: str, workers: int, cap: int | None, reward: str = "jpeg-compressibility",
            reward_config: dict | None = None) -> dict:
    """One configuration in a fresh process: its batches, peak RSS and (with workers) the sampled tree PSS."""
    c = CONFIGS[config]
    env = dict(os.environ)
    if cap:
        env["REWARDBENCH_MAX_PIXELS"] = str(cap)
    cmd = [sys.executable, "-c", _CHILD, str(folder), str(c["batch_size"]), str(c["bound"]), str(workers), reward,
           json.dumps(reward_config or {})]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak_pss = 0.0
    if workers:
        import psutil

        ps = psutil.Process(proc.pid)
        while proc.poll() is None:
            peak_pss = max(peak_pss, _tree_pss_mb(ps))
            time.sleep(0.02)
    out, err = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"{config}: exit {proc.returncode}\n{err[-2000:]}")
    r = json.loads(out.strip().splitlines()[-1])
    r.update(config=config, reward=reward, batch_size=c["batch_size"], seconds=round(time.perf_counter() - t0, 1))
    if workers:
        r["tree_pss_peak_mb"] = round(peak_pss, 1)
    return r


def plan_cost(rows: int) -> dict:
    """Seconds to plan ``rows`` small PNGs in batches of 16, without and with reading their headers."""
    from PIL import Image

    from rewardbench.batching import BatchPlan, plan_batches
    from rewardbench.data import open_source

    with tempfile.TemporaryDirectory() as d:
        for i in range(rows):
            Image.new("RGB", (64, 64), (i % 256, 0, 0)).save(Path(d) / f"{i:06d}.png")
        src = open_source(d)
        out = {}
        for label, bound in (("no_bound", None), ("headers_read", 1 << 40)):
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                n = sum(len(b) for b in plan_batches(BatchPlan(src, 16, max_batch_pixels=bound)))
                best = min(best, time.perf_counter() - t0)
            assert n == rows
            out[f"{label}_s"] = round(best, 4)
        out["headers_us_per_row"] = round((out["headers_read_s"] - out["no_bound_s"]) / rows * 1e6, 1)
        out["rows"] = rows
        return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4, help="images (default 4, as in the issue)")
    ap.add_argument("--size", type=int, default=4000, help="their width and height in pixels")
    ap.add_argument("--cap", type=int, default=4096 * 4096,
                    help="$REWARDBENCH_MAX_PIXELS for the scoring processes (0: leave it unset, 8192 x 8192)")
    ap.add_argument("--workers", type=int, default=0, help="decode workers (0: decode in the scoring process)")
    ap.add_argument("--configs", default=",".join(CONFIGS), help="which of " + ", ".join(CONFIGS))
    ap.add_argument("--rewards", default=",".join(REWARDS), help="which of " + ", ".join(REWARDS))
    ap.add_argument("--plan-rows", type=int, default=2000, help="small files for the planning cost (0: skip)")
    ap.add_argument("--json", default=None, help="write the results here")
    a = ap.parse_args(argv)
    result = {"n": a.n, "size": a.size, "cap": a.cap or None, "workers": a.workers,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}",
              "date": time.strftime("%Y-%m-%d"), "runs": []}
    with tempfile.TemporaryDirectory() as d:
        write_pngs(Path(d), a.n, a.size)
        for reward in a.rewards.split(","):
            for config in a.configs.split(","):
                r = measure(Path(d), config, a.workers, a.cap, *REWARDS[reward])
                result["runs"].append(r)
                print(f"{reward:>5} {config:>10}: batches {r['batches']}, peak RSS {r['rss_peak_mb']:.0f} MB"
                      + (f", tree PSS {r['tree_pss_peak_mb']:.0f} MB" if a.workers else "") + f" ({r['seconds']} s)",
                      flush=True)
    if a.plan_rows:
        result["planning"] = plan_cost(a.plan_rows)
        p = result["planning"]
        print(f"planning {p['rows']} small PNGs: {p['no_bound_s']} s without headers, {p['headers_read_s']} s reading "
              f"them ({p['headers_us_per_row']} us per row)")
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
