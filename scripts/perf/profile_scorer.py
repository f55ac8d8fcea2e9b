"""Where the Scorer's time goes: input pipeline alone, model alone, both, and a profiler trace.

    python scripts/perf/profile_scorer.py --out prof/                 # CPU, ViT-B-32
    python scripts/perf/profile_scorer.py --preset gpu-h14 --out prof/  # GPU, ViT-H-14 bf16

A diagnostic companion of ``bench_scoring.py`` (same presets, same JPEGs). It measures, in one run:

  A. the ceiling: the reward's batched forward on ready tensors (as in bench_scoring);
  B. decoding alone: one process building batches (``_make_batch``), images/s per process;
  C. the input pipeline alone: the Scorer's DataLoader (workers, pinned memory) and the copy to
     the device, no model;
  D. the Scorer with a near-free reward (everything but the model);
  E. the Scorer with the reward, with the main thread's time split into "waiting for the next
     batch" and "scoring a batch";
  F. a ``torch.profiler`` trace of E: the share of wall time the GPU is busy, top host ops.

If C or D is not well above A, the input pipeline caps the Scorer; if E's waiting share is near
zero and F's GPU busy share is high, the model is the limit. Writes ``profile.json`` (and
``trace.json.gz`` with ``--trace``) under ``--out``. Models use random weights.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import bench_scoring as bs  # noqa: E402

from rewardbench import RewardModel, RewardOutput, RewardSpec, batching, harness  # noqa: E402
from rewardbench.data import open_source  # noqa: E402
from rewardbench.images import load_image  # noqa: E402


class _Free(RewardModel):
    """Near-free reward: the mean pixel, computed on the device."""

    spec = RewardSpec(name="free", category="baseline", license="MIT", paper="-")

    def score(self, pixels, prompts, groups):
        return RewardOutput(pixels.mean(dim=(1, 2, 3)))


class _TimedScorer(harness.Scorer):
    """Splits the main thread's time into scoring a batch and everything else (mostly waiting for
    the DataLoader's next batch)."""

    batch_seconds = 0.0
    batches = 0

    def _score_batch(self, engine, batch):
        t = time.perf_counter()
        try:
            return super()._score_batch(engine, batch)
        finally:
            self.batch_seconds += time.perf_counter() - t
            self.batches += 1


def _loader_only(items, args, device, pin: bool) -> float:
    src = open_source(items)
    loader = batching.make_loader(batching.BatchPlan(src, args.batch_size), args.workers, pin)  # the Scorer's own
    n = 0
    bs._sync(device)
    t = time.perf_counter()
    for batch in loader:
        for _, x in batch["buckets"]:
            x.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255)
            n += x.shape[0]
    bs._sync(device)
    return n / (time.perf_counter() - t)


def _gpu_busy(prof) -> dict:
    """Union of device-kernel intervals over the profiled span."""
    spans = []
    lo, hi = float("inf"), 0.0
    for e in prof.events():
        start, end = e.time_range.start, e.time_range.end
        lo, hi = min(lo, start), max(hi, end)
        if getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA:
            spans.append((start, end))
    spans.sort()
    busy, cur_s, cur_e = 0.0, None, None
    for s, e in spans:
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                busy += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        busy += cur_e - cur_s
    total = hi - lo if hi > lo else float("nan")
    return {"device_kernels": len(spans), "span_ms": total / 1e3, "busy_ms": busy / 1e3, "busy_share": busy / total}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(bs.PRESETS), default="cpu-b32")
    ap.add_argument("--reward", help="registry name[:key=val,...] (default: the preset's)")
    ap.add_argument("--image-size", type=int)
    ap.add_argument("--n-images", type=int)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--workers", type=int)
    ap.add_argument("--profile-images", type=int, default=512)
    ap.add_argument("--trace", action="store_true", help="also write trace.json.gz (chrome://tracing)")
    ap.add_argument("--skip", default="", help="comma list of: A,B,C,D,E,F")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    p = bs.PRESETS[args.preset]
    for k in ("reward", "image_size", "n_images", "batch_size", "workers"):
        if getattr(args, k) is None:
            setattr(args, k, p[k])
    skip = set(filter(None, args.skip.split(",")))
    device = torch.device(p["device"])
    from rewardbench.loading import parse_dtype

    dtype = parse_dtype(p["dtype"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    res: dict = {"preset": args.preset, "reward": args.reward, "images": args.n_images,
                 "batch_size": args.batch_size, "workers": args.workers, "torch": torch.__version__,
                 "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}

    def save():
        (out / "profile.json").write_text(json.dumps(res, indent=1))
        print(json.dumps(res, indent=1), flush=True)

    tmp = Path(tempfile.mkdtemp())
    try:
        paths = bs._write_jpegs(tmp / "jpegs", args.n_images, args.image_size)
        n = len(paths)
        items = [{"image": str(q), "prompt": f"a photo number {i // 16}"} for i, q in enumerate(paths)]
        col, reward = bs._load(args.reward, device, dtype)
        b = args.batch_size

        if "A" not in skip:
            ready = torch.stack([torch.from_numpy(np.array(load_image(q))).permute(2, 0, 1)
                                 for q in paths]).to(device).float().div_(255)
            prompts = [it["prompt"] for it in items]

            def ceiling():
                with torch.inference_mode(), bs._autocast(device, dtype):
                    for s in range(0, n, b):
                        reward(ready[s:s + b], prompts[s:s + b]).scores.cpu()

            ceiling()
            res["A_ceiling_img_s"] = n / bs._timed(ceiling, device, 2)
            del ready
            save()
        if "B" not in skip:
            rows = [{"index": i, "image": it["image"], "prompt": it["prompt"], "group": None}
                    for i, it in enumerate(items[: 4 * b])]
            t = time.perf_counter()
            for s in range(0, len(rows), b):
                batching.make_batch(rows[s:s + b])
            res["B_decode_img_s_one_process"] = len(rows) / (time.perf_counter() - t)
            save()
        if "C" not in skip:
            _loader_only(items[: 2 * b], args, device, device.type == "cuda")  # warm-up
            if device.type == "cuda":
                res["C_loader_pinned_img_s"] = max(_loader_only(items, args, device, True) for _ in range(2))
            res["C_loader_unpinned_img_s"] = max(_loader_only(items, args, device, False) for _ in range(2))
            save()
        if "D" not in skip:
            free = harness.Scorer({"free": _Free().to(device)}, batch_size=b, device=device, dtype=dtype,
                                  num_workers=args.workers, progress=False)
            free.run(items[: 2 * b])
            res["D_scorer_free_reward_img_s"] = max(n / bs._timed(lambda: free.run(items), device) for _ in range(2))
            save()
        if "E" not in skip or "F" not in skip:
            sc = _TimedScorer({col: reward}, batch_size=b, device=device, dtype=dtype, num_workers=args.workers,
                              progress=False)
            sc.run(items[: 2 * b])
        if "E" not in skip:
            best = None
            for _ in range(2):
                sc.batch_seconds, sc.batches = 0.0, 0
                secs = bs._timed(lambda: sc.run(items), device)
                row = {"img_s": n / secs, "seconds": secs, "in_score_batch_s": sc.batch_seconds,
                       "outside_score_batch_s": secs - sc.batch_seconds, "batches": sc.batches}
                if best is None or row["img_s"] > best["img_s"]:
                    best = row
            res["E_scorer"] = best
            save()
        if "F" not in skip:
            from torch.profiler import ProfilerActivity, profile

            acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
            sub = items[: args.profile_images]
            with profile(activities=acts) as prof:
                sc.run(sub)
                bs._sync(device)
            if device.type == "cuda":
                res["F_gpu"] = _gpu_busy(prof)
            table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
            (out / "top_ops.txt").write_text(table)
            res["F_top_cpu_ops"] = [
                {"name": e.key, "self_cpu_ms": e.self_cpu_time_total / 1e3, "count": e.count}
                for e in sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:12]]
            if args.trace:
                raw = out / "trace.json"
                prof.export_chrome_trace(str(raw))
                with open(raw, "rb") as f_in, gzip.open(out / "trace.json.gz", "wb") as f_out:
                    shutil.copyfileobj(f_in, f_out)
                raw.unlink()
            save()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return res


if __name__ == "__main__":
    main()
