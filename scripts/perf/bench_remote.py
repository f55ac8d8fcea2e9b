"""The reward service's overhead on loopback, measured side by side in one run (a benchmark, not a test).

    python scripts/perf/bench_remote.py --json scripts/perf/results/remote_cpu.json \
        --md scripts/perf/results/remote_cpu.md

Starts a local Ray cluster, serves each reward (one replica with the CPUs the local model gets, so both run the
same kernels on the same cores), and measures, with the same model, weights and images:
  1. latency of one call at batch ``--batch`` (default 32): the local model (`reward(pixels, prompts)`) and the same
     reward through `rewardbench.load_reward(name, remote="ray")`, interleaved round by round so that a change in
     machine load hits both; the overhead is the median of the per-round ratios remote/local - 1 (goal <= 10%),
     and, apart from where each process runs its kernels, what the wire and the queue cost: the remote call's time
     less the served forward pass (timed in the replica);
     Pixels are decoded images (floats made from bytes, as the Scorer has them: the bytes travel); for the JPEG
     reward also float pixels made otherwise (float32 travels);
  2. throughput and p50/p99 latency of the service under ``--clients`` concurrent callers sending batches of
     ``--client-batch`` images for ``--seconds`` (the service batches them together), beside the local model's
     images per second at ``--batch``.
Rewards: ``clipscore-b32`` (the full OpenAI CLIP ViT-B/32 architecture with RANDOM weights: speed does not depend
on the weights' values; 224 px inputs) and ``jpeg-compressibility`` (no model: what the wire costs when the reward
is nearly free).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

import rewardbench  # noqa: E402
from rewardbench.images import pixels_from_uint8  # noqa: E402
from rewardbench.service import RewardService, ServedReward  # noqa: E402

REWARDS = {"clipscore-b32": {"pretrained": False}, "jpeg-compressibility": {}}


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def side_by_side(name: str, local, remote, pixels: torch.Tensor, prompts: list[str], rounds: int) -> dict:
    """Per-call latency of the local and the remote reward at one batch size, alternating round by round."""
    for model in (local, remote):  # warm-up: first calls allocate, trace and cache
        with torch.inference_mode():
            model(pixels, prompts)
    lt, rt, ratios, wire = [], [], [], []
    equal = True
    for _ in range(rounds):
        with torch.inference_mode():
            t = time.perf_counter()
            a = local(pixels, prompts).scores
            lt.append(time.perf_counter() - t)
            t = time.perf_counter()
            b = remote(pixels, prompts).scores
            rt.append(time.perf_counter() - t)
            wire.append(rt[-1] - remote.last_call["served_seconds"])  # all but the served forward pass
        equal = equal and torch.equal(a, b)
        ratios.append(rt[-1] / lt[-1])
    n = pixels.shape[0]
    return {"reward": name, "batch": n, "rounds": rounds, "scores_equal": equal,
            "local_s": {"best": min(lt), "median": statistics.median(lt)},
            "remote_s": {"best": min(rt), "median": statistics.median(rt)},
            "overhead_median_ratio": statistics.median(ratios) - 1.0,
            "overhead_of_medians": statistics.median(rt) / statistics.median(lt) - 1.0,
            "wire_s": {"median": statistics.median(wire), "p99": _pct(wire, 99)},
            "wire_share_of_remote_call": statistics.median(w / r for w, r in zip(wire, rt)),
            "local_images_per_s": n / statistics.median(lt), "remote_images_per_s": n / statistics.median(rt)}


def load(name: str, clients: int, client_batch: int, seconds: float, size: int) -> dict:
    """``clients`` threads, each with its own RemoteReward, calling for ``seconds``: throughput and latency."""
    lat: list[float] = []
    images = [0]
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client(k: int) -> None:
        model = rewardbench.load_reward(name, remote="ray")
        x = pixels_from_uint8(torch.randint(0, 256, (client_batch, size, size, 3), dtype=torch.uint8,
                                            generator=torch.Generator().manual_seed(k)))
        prompts = [f"a photo number {k}"] * client_batch
        while time.perf_counter() < stop:
            t = time.perf_counter()
            model(x, prompts)
            with lock:
                lat.append(time.perf_counter() - t)
                images[0] += client_batch

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    return {"reward": name, "clients": clients, "client_batch": client_batch, "seconds": wall, "calls": len(lat),
            "images_per_s": images[0] / wall, "latency_p50_s": _pct(lat, 50), "latency_p99_s": _pct(lat, 99)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=224, help="image side (px)")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--client-batch", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--cpus", type=int, default=os.cpu_count() or 2, help="CPUs of the replica and the local model")
    ap.add_argument("--rewards", default=",".join(REWARDS))
    ap.add_argument("--json", default=None)
    ap.add_argument("--md", default=None)
    ap.add_argument("--from-json", default=None, help="only render --md from a results file of an earlier run")
    args = ap.parse_args()
    if args.from_json:
        Path(args.md).write_text(markdown(json.loads(Path(args.from_json).read_text())))
        return
    import ray

    torch.set_num_threads(args.cpus)
    names = [n for n in args.rewards.split(",") if n]
    # logical CPUs: one replica per reward, each asking for --cpus (torch threads); they run one at a time here
    ray.init(num_cpus=args.cpus * len(names) + 1, include_dashboard=False, log_to_driver=False, namespace="rewardbench")
    service = RewardService([ServedReward(n, num_cpus=args.cpus, seed=0, max_batch_size=256, **REWARDS.get(n, {}))
                             for n in names]).start()
    results = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                           "ray": ray.__version__, "python": platform.python_version()},
               "args": vars(args), "side_by_side": [], "load": []}
    try:
        for n in names:
            torch.manual_seed(0)
            local = rewardbench.load_reward(n, **REWARDS.get(n, {}))
            remote = rewardbench.load_reward(n, remote="ray", **REWARDS.get(n, {}))
            g = torch.Generator().manual_seed(1)
            u8 = torch.randint(0, 256, (args.batch, args.size, args.size, 3), dtype=torch.uint8, generator=g)
            prompts = [f"a photo of thing {i}" for i in range(args.batch)]
            # decoded images, as the Scorer has them (their bytes travel), and, for the nearly free reward, float
            # pixels made otherwise (float32 travels: 4x the bytes)
            inputs = {"decoded": pixels_from_uint8(u8)}
            if n == "jpeg-compressibility":
                inputs["float32"] = torch.rand(args.batch, 3, args.size, args.size, generator=g)
            for kind, pixels in inputs.items():
                row = {**side_by_side(n, local, remote, pixels, prompts, args.rounds), "pixels": kind}
                print(json.dumps(row), flush=True)
                results["side_by_side"].append(row)
            row = load(n, args.clients, args.client_batch, args.seconds, args.size)
            print(json.dumps(row), flush=True)
            results["load"].append(row)
    finally:
        service.shutdown()
        ray.shutdown()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    if args.md:
        Path(args.md).write_text(markdown(results))


def markdown(r: dict) -> str:
    a = r["args"]
    cmd = (f"python scripts/perf/bench_remote.py --batch {a['batch']} --size {a['size']} --rounds {a['rounds']} "
           f"--clients {a['clients']} --client-batch {a['client_batch']} --seconds {a['seconds']:g} "
           f"--cpus {a['cpus']} --json scripts/perf/results/remote_cpu.json --md scripts/perf/results/remote_cpu.md")
    lines = [f"`{cmd}`", "",
             f"Machine: {r['machine']['platform']}, {r['machine']['cpus']} CPUs, torch {r['machine']['torch']}, "
             f"Ray {r['machine']['ray']}. The replica gets the CPUs the local model gets ({a['cpus']}). Random weights "
             "(speed does not depend on their values).", "",
             f"### One call at batch {a['batch']}, local vs remote (interleaved, {a['rounds']} rounds)", "",
             "| reward | pixels | local median (s) | remote median (s) | overhead vs local (median of per-round "
             "ratios) | wire and queue, median (s) | share of the remote call | scores equal |",
             "|---|---|---|---|---|---|---|---|"]
    for s in r["side_by_side"]:
        lines.append(f"| {s['reward']} | {s.get('pixels', 'float32')} | {s['local_s']['median']:.4f} | "
                     f"{s['remote_s']['median']:.4f} | {100 * s['overhead_median_ratio']:+.1f}% | "
                     f"{s['wire_s']['median']:.4f} | {100 * s['wire_share_of_remote_call']:.1f}% | "
                     f"{s['scores_equal']} |")
    lines += ["", f"### Under load: {a['clients']} concurrent clients, batches of {a['client_batch']}, "
              f"{a['seconds']:g} s", "",
              "| reward | images/s (service) | images/s (local, batch {}) | p50 latency (s) | p99 latency (s) | calls |"
              .format(a["batch"]), "|---|---|---|---|---|---|"]
    local = {s["reward"]: s["local_images_per_s"] for s in r["side_by_side"] if s.get("pixels") != "float32"}
    for x in r["load"]:
        lines.append(f"| {x['reward']} | {x['images_per_s']:.1f} | {local[x['reward']]:.1f} | "
                     f"{x['latency_p50_s']:.4f} | {x['latency_p99_s']:.4f} | {x['calls']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
