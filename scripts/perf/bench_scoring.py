"""Scoring-harness performance, measured side by side in one run (a benchmark, not a test).

    python scripts/perf/bench_scoring.py                       # CPU: open_clip ViT-B-32, random weights
    python scripts/perf/bench_scoring.py --preset gpu-h14      # GPU: ViT-H-14 (HPSv2 size) in bf16

Measures, on the same model and the same JPEG files:
  1. ceiling: the reward's batched forward on ready pixel tensors (already decoded, on the device,
     same size as the files; the reward's own resize/normalise included);
  2. `rewardbench.Scorer` end to end from JPEG files on disk (DataLoader decode workers, ...);
  3. a naive loop as the official score functions run: per image, PIL open and preprocessing on the
     main thread, the prompt encoded again, one forward; (3b) also reloading the checkpoint per call;
  4. three rewards sharing one CLIP backbone vs one of them alone (and vs three unshared);
  5. 16 images per prompt with and without the text-feature cache (text-encoder calls counted);
  6. resident memory after 10k and after 100k manifest rows (a cheap reward, tiny images).
Prints a table and writes JSON (``--json PATH``). Models use RANDOM weights: speed does not
depend on the weights' values. Targets (issue 7): (2)/(1) >= 0.90; (2) >= 5x (3); (4) <= 1.3x one
reward; text-encoder prompts = unique prompts; memory growth 10k -> 100k rows <= 10%.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

import rewardbench  # noqa: E402
from rewardbench import RewardModel, RewardOutput, RewardSpec, TextFeatureCache  # noqa: E402
from rewardbench.harness import Scorer  # noqa: E402

PRESETS = {
    # single reward for 1-3 | prompted reward for 5 | three rewards on one backbone for 4
    "cpu-b32": dict(reward="clipscore-b32", text_reward="clipscore-b32",
                    shared=["aesthetic-v1-b32", "clipscore-b32", "clipscore-b32:scale=100,clamp_at_zero=False"],
                    device="cpu", dtype=None, n_images=128, batch_size=16, image_size=512, workers=2),
    "gpu-h14": dict(reward="hpsv2", text_reward="hpsv2",
                    shared=["hpsv2", "hpsv2:as=hpsv2-b", "hpsv2:as=hpsv2-c"],
                    device="cuda", dtype="bf16", n_images=1024, batch_size=64, image_size=512, workers=8),
}


# ----------------------------------------------------------------------------------------------
# helpers


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rss_mb(pid: int | None = None, children: bool = False) -> float:
    import psutil

    p = psutil.Process(pid)
    rss = p.memory_info().rss
    if children:
        for c in p.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                rss += c.memory_info().rss
    return rss / 2**20


def _parse_reward(token: str) -> tuple[str, str, dict]:
    """"name" or "name:key=val,key=val" (as=COLUMN renames)."""
    name, _, rest = token.partition(":")
    cfg: dict = {}
    for kv in filter(None, rest.split(",")):
        k, _, v = kv.partition("=")
        cfg[k] = {"True": True, "False": False}.get(v, v)
        if isinstance(cfg[k], str):
            with contextlib.suppress(ValueError):
                cfg[k] = float(v)
    column = cfg.pop("as", None) or (name if not cfg else f"{name}[{','.join(f'{k}={v}' for k, v in cfg.items())}]")
    return name, column, cfg


_MODELS: dict[tuple, RewardModel] = {}


def _load(token: str, device, dtype, fresh: bool = False) -> tuple[str, RewardModel]:
    """Build a reward once (random weights, seeded); later requests for the same name and config
    get a deep copy when ``fresh`` or when the column name differs (a ViT-H-14 takes a minute to
    initialise on a CPU; a copy on the GPU takes a moment)."""
    import copy

    name, column, cfg = _parse_reward(token)
    key = (name, tuple(sorted(cfg.items())), str(device), str(dtype))
    if key not in _MODELS:
        torch.manual_seed(0)
        _MODELS[key] = rewardbench.load_reward(name, device=device, dtype=dtype, pretrained=False, **cfg)
        _MODELS[key]._bench_column = column
        return column, _MODELS[key]
    model = _MODELS[key]
    if fresh or getattr(model, "_bench_column", column) != column:
        model = copy.deepcopy(model)
    return column, model


def _write_jpegs(folder: Path, n: int, size: int) -> list[Path]:
    """Varied real-photo crops (skimage/matplotlib photos), saved as JPEG quality 90."""
    import matplotlib.cbook as cbook
    import skimage.data

    srcs = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as im:
        srcs.append(np.asarray(im.convert("RGB")))
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        a = srcs[i % len(srcs)]
        h, w = a.shape[:2]
        s = int(min(h, w) * rng.uniform(0.6, 1.0))
        y, x = rng.integers(0, h - s + 1), rng.integers(0, w - s + 1)
        img = Image.fromarray(np.ascontiguousarray(a[y:y + s, x:x + s])).resize((size, size), Image.BICUBIC)
        p = folder / f"img_{i:05d}.jpg"
        img.save(p, quality=90)
        paths.append(p)
    return paths


def _timed(fn, device, repeats: int = 1) -> float:
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return best


def _autocast(device, dtype):
    if dtype in (torch.float16, torch.bfloat16):
        return torch.autocast(device_type=device.type, dtype=dtype)
    return contextlib.nullcontext()


class _NoCache(TextFeatureCache):
    """The uncached baseline: every prompt of every call goes to the encoder."""

    def __call__(self, prompts):
        self.calls += 1
        self.encoded += len(prompts)
        return self.encode(list(prompts)).detach()


class _Brightness(RewardModel):
    """A near-free reward for the memory measurement; records the process's RSS as rows pass."""

    spec = RewardSpec(name="brightness", category="baseline", license="MIT", paper="-")

    def __init__(self, marks: list[int]):
        super().__init__()
        self.rows = 0
        self.marks = sorted(marks)
        self.rss: dict[int, tuple[float, float]] = {}

    def score(self, pixels, prompts, groups):
        self.rows += pixels.shape[0]
        while self.marks and self.rows >= self.marks[0]:
            self.rss[self.marks.pop(0)] = (_rss_mb(), _rss_mb(children=True))
        return RewardOutput(pixels.mean(dim=(1, 2, 3)))


# ----------------------------------------------------------------------------------------------
# the measurements


def bench_throughput(args, folder: Path, paths: list[Path], device, dtype) -> dict:
    col, reward = _load(args.reward, device, dtype)
    n, bs = len(paths), args.batch_size
    res: dict = {"reward": args.reward, "backbone": reward.spec.backbone, "images": n, "batch_size": bs,
                 "image_size": args.image_size, "workers": args.workers}

    # (1) ceiling: ready tensors on the device, batched
    ready = torch.stack([torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1) for p in paths])
    ready = ready.to(device).float().div_(255)
    prompts = [f"a photo number {i // 16}" for i in range(n)]

    def ceiling():
        with torch.inference_mode(), _autocast(device, dtype):
            for s in range(0, n, bs):
                reward(ready[s:s + bs], prompts[s:s + bs]).scores.cpu()

    # (2) Scorer end to end from the JPEG files
    scorer = Scorer({col: reward}, batch_size=bs, device=device, dtype=dtype, num_workers=args.workers,
                    progress=False)
    items = [{"image": str(p), "prompt": pr} for p, pr in zip(paths, prompts)]
    summary = {}

    def harness():
        summary.update(scorer.run(items).summary)

    # (3) naive, as the official score functions do it (e.g. hpsv2.score, github.com/tgxs002/HPSv2
    # hpsv2/img_score.py): per image, PIL open + PIL preprocessing on the main thread, the prompt
    # tokenised and encoded again, one forward; (3b) also reloads the checkpoint on every call, as
    # hpsv2.score does when it is called once per image
    official = _official_style(reward)
    m = min(n, args.naive_images)

    def naive(k: int, ckpt: Path | None = None):
        with torch.no_grad(), _autocast(device, dtype):
            for p, pr in zip(paths[:k], prompts[:k]):
                if ckpt is not None:
                    official.load_state_dict(torch.load(ckpt, map_location=device, weights_only=True))
                with Image.open(p) as im:
                    img = im.convert("RGB")
                official([img], [pr]).scores.item()

    ceiling()  # warm-up (kernels, allocator, text cache)
    scorer.run(items[: 2 * bs])  # warm-up (worker start-up stays inside every timed run)
    naive(1)
    # interleaved rounds: on a shared machine the load changes between measurements, so each
    # round times all three back to back; we report the best time of each and the median round ratio
    rounds = [(_timed(ceiling, device), _timed(harness, device), _timed(lambda: naive(m), device) * n / m)
              for _ in range(args.repeats)]
    t1, t2, t3 = (min(r[i] for r in rounds) for i in range(3))
    assert summary["failed"] == 0, summary
    ready = None  # free the device memory before (3b); the closures are done with it
    res.update({
        "1_ceiling_img_s": n / t1,
        "2_scorer_img_s": n / t2,
        "3_naive_img_s": n / t3,
        "2_over_1": t1 / t2,
        "2_over_1_median_round": float(np.median([a / b for a, b, _ in rounds])),
        "rounds_s": rounds,
        "2_over_3": t3 / t2,
        "2_over_3_median_round": float(np.median([c / b for _, b, c in rounds])),
        "naive_images_timed": m,
        "naive_prompt_encoded_per_image": official.spec.needs_prompt,
    })
    if args.naive_reload_images:
        k = min(n, args.naive_reload_images)
        ckpt = folder.parent / "checkpoint.pt"
        torch.save(official.state_dict(), ckpt)
        t3b = _timed(lambda: naive(k, ckpt), device, 1) * n / k
        ckpt.unlink()
        res.update({"3b_naive_reload_img_s": n / t3b, "2_over_3b": t3b / t2, "naive_reload_images_timed": k})
    return res


def _official_style(reward: RewardModel) -> RewardModel:
    """A copy of ``reward`` that works like the official packages: PIL preprocessing (CLIP
    backbones' ``pil_preprocess``) and no text cache (every prompt goes to the text encoder)."""
    import copy

    m = copy.deepcopy(reward)
    for mod in m.modules():
        if hasattr(mod, "pil_preprocess"):
            mod.pil_preprocess = True
        cache = getattr(mod, "text_cache", None)
        if isinstance(cache, TextFeatureCache):
            mod.text_cache = _NoCache(cache.encode)
    return m


def bench_shared(args, paths: list[Path], device, dtype) -> dict:
    n = min(len(paths), args.shared_images)
    items = [{"image": str(p), "prompt": f"a photo number {i // 16}"} for i, p in enumerate(paths[:n])]
    models = dict(_load(tok, device, dtype) for tok in args.shared)
    one_name = next(iter(models))
    backbones = {m.spec.backbone for m in models.values()}

    def make(rewards: dict, share: bool) -> Scorer:
        s = Scorer(rewards, batch_size=args.batch_size, device=device, dtype=dtype, num_workers=args.workers,
                   progress=False, share_backbones=share)
        s.run(items[: args.batch_size])  # warm-up
        return s

    one = make({one_name: models[one_name]}, True)
    unshared = make(models, False)  # built before the shared one, which re-points the members' backbones
    shared = make(models, True)
    rounds = []
    for _ in range(args.repeats):  # interleaved, as above
        rounds.append(tuple(_timed(lambda s=s: s.run(items), device) for s in (one, shared, unshared)))
    t_one, t_shared, t_unshared = (min(r[i] for r in rounds) for i in range(3))
    return {"rewards": list(models), "backbone_ids": sorted(map(str, backbones)), "images": n,
            "clusters_when_shared": len(shared.clusters), "one_reward_s": t_one, "three_shared_s": t_shared,
            "three_unshared_s": t_unshared, "shared_over_one": t_shared / t_one,
            "shared_over_one_median_round": float(np.median([r[1] / r[0] for r in rounds])),
            "unshared_over_one": t_unshared / t_one, "rounds_s": rounds}


def bench_text_cache(args, paths: list[Path], device, dtype) -> dict:
    n = min(len(paths), args.shared_images)
    per_prompt = 16
    items = [{"image": str(p), "prompt": f"a photo of object number {i // per_prompt}"}
             for i, p in enumerate(paths[:n])]
    unique = len({it["prompt"] for it in items})
    col, reward = _load(args.text_reward, device, dtype, fresh=True)  # its text cache gets swapped below
    bb = reward.backbone
    out = {"reward": args.text_reward, "images": n, "images_per_prompt": per_prompt, "unique_prompts": unique}
    for label, cache in (("cached", TextFeatureCache(bb._encode_text_uncached)),
                         ("uncached", _NoCache(bb._encode_text_uncached))):
        bb.text_cache = cache
        s = Scorer({col: reward}, batch_size=args.batch_size, device=device, dtype=dtype, num_workers=args.workers,
                   progress=False)
        s.run(items[:1])  # warm-up on one prompt
        cache.clear()
        cache.calls = cache.encoded = 0
        summ = {}
        t = _timed(lambda s=s, summ=summ: summ.update(s.run(items).summary), device, 1)
        out[f"{label}_s"] = t
        out[f"{label}_encoder_calls"] = cache.calls
        out[f"{label}_prompts_encoded"] = cache.encoded
        out[f"{label}_summary_text_calls"] = summ["text_encoder_calls"]
    out["uncached_over_cached"] = out["uncached_s"] / out["cached_s"]
    return out


def bench_memory(args, tmp: Path) -> dict:
    img_dir = tmp / "tiny"
    img_dir.mkdir()
    for i in range(64):
        Image.fromarray(np.full((16, 16, 3), i * 4, np.uint8)).save(img_dir / f"t{i}.png")
    rows = max(args.memory_rows)
    manifest = tmp / "big.jsonl"
    with open(manifest, "w") as f:
        for i in range(rows):
            f.write(json.dumps({"image": f"tiny/t{i % 64}.png", "prompt": f"prompt {i}"}) + "\n")
    reward = _Brightness(args.memory_rows)
    s = Scorer({"brightness": reward}, batch_size=256, device="cpu", num_workers=args.workers, progress=False)
    before = _rss_mb()
    t = time.perf_counter()
    res = s.run(manifest, out=tmp / "big.parquet")
    secs = time.perf_counter() - t
    after = _rss_mb()
    lo, hi = min(args.memory_rows), max(args.memory_rows)
    return {"rows": res.n_rows, "seconds": secs, "rows_per_s": res.n_rows / secs, "rss_before_mb": before,
            **{f"rss_after_{k}_rows_mb": v[0] for k, v in reward.rss.items()},
            **{f"rss_with_workers_after_{k}_rows_mb": v[1] for k, v in reward.rss.items()},
            "rss_after_run_incl_table_mb": after,
            "growth": reward.rss[hi][0] / reward.rss[lo][0] - 1}


# ----------------------------------------------------------------------------------------------


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu-b32")
    ap.add_argument("--reward", help="reward for (1)-(3) (registry name[:key=val,...])")
    ap.add_argument("--text-reward", help="prompted reward with a CLIP text tower for (5)")
    ap.add_argument("--shared", help="comma-free list separated by ';' of rewards on one backbone for (4)")
    ap.add_argument("--device")
    ap.add_argument("--dtype")
    ap.add_argument("--n-images", type=int)
    ap.add_argument("--naive-images", type=int, default=32, help="images timed in the naive loop (extrapolated)")
    ap.add_argument("--naive-reload-images", type=int, default=4,
                    help="images timed in the naive loop that reloads the checkpoint per call (0: skip)")
    ap.add_argument("--shared-images", type=int, default=64)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--image-size", type=int)
    ap.add_argument("--workers", type=int)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds of the timed runs")
    ap.add_argument("--memory-rows", default="10000,100000")
    ap.add_argument("--skip", default="", help="comma list of: throughput,shared,text,memory")
    ap.add_argument("--json", dest="json_path", help="write the results here")
    args = ap.parse_args(argv)
    preset = PRESETS[args.preset]
    for k, v in preset.items():
        if getattr(args, k, None) is None:
            setattr(args, k, v)
    if isinstance(args.shared, str):
        args.shared = [s for s in args.shared.split(";") if s]
    args.memory_rows = [int(x) for x in str(args.memory_rows).split(",")]
    skip = set(filter(None, args.skip.split(",")))
    device = torch.device(args.device)
    from rewardbench.loading import parse_dtype

    dtype = parse_dtype(args.dtype)

    results: dict = {"env": {"torch": torch.__version__, "device": str(device), "dtype": str(dtype),
                             "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                             "platform": platform.platform(), "preset": args.preset,
                             "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        paths = _write_jpegs(tmp / "jpegs", args.n_images, args.image_size)
        print(f"wrote {len(paths)} JPEGs ({args.image_size}px) in {time.perf_counter() - t:.1f} s", flush=True)
        if "memory" not in skip:  # first, before any model is loaded: growth is then measured on a small base
            results["memory"] = bench_memory(args, tmp)
            print(json.dumps(results["memory"], indent=1), flush=True)
        if "throughput" not in skip:
            results["throughput"] = bench_throughput(args, tmp / "jpegs", paths, device, dtype)
            print(json.dumps(results["throughput"], indent=1), flush=True)
        if "shared" not in skip:
            results["shared_backbone"] = bench_shared(args, paths, device, dtype)
            print(json.dumps(results["shared_backbone"], indent=1), flush=True)
        if "text" not in skip:
            results["text_cache"] = bench_text_cache(args, paths, device, dtype)
            print(json.dumps(results["text_cache"], indent=1), flush=True)
    print()
    print(render(results))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(results, indent=2))
    return results


def render(r: dict) -> str:
    lines = [f"device {r['env']['device']} ({r['env']['gpu'] or platform.processor() or 'cpu'}), dtype "
             f"{r['env']['dtype']}, torch {r['env']['torch']}, {r['env']['cpu_count']} CPUs", "",
             f"{'measurement':58s} {'value':>12s}  target"]

    def row(name, value, target=""):
        lines.append(f"{name:58s} {value:>12s}  {target}")

    if "throughput" in r:
        t = r["throughput"]
        row(f"(1) ceiling: batched forward on ready tensors [{t['reward']}]", f"{t['1_ceiling_img_s']:.1f} img/s")
        row(f"(2) Scorer from JPEG files ({t['image_size']}px, {t['workers']} workers, bs {t['batch_size']})",
            f"{t['2_scorer_img_s']:.1f} img/s")
        row("(3) naive per-image loop (PIL, prompt encoded per image)", f"{t['3_naive_img_s']:.1f} img/s")
        if "3b_naive_reload_img_s" in t:
            row("(3b) ... and the checkpoint reloaded per call", f"{t['3b_naive_reload_img_s']:.1f} img/s")
        row("(2)/(1) share of the ceiling (best times; median round)",
            f"{t['2_over_1']:.2f}; {t['2_over_1_median_round']:.2f}", ">= 0.90")
        row("(2)/(3) speed-up over the naive loop (best times; median round)",
            f"{t['2_over_3']:.1f}x; {t['2_over_3_median_round']:.1f}x", ">= 5x")
        if "2_over_3b" in t:
            row("(2)/(3b) speed-up over the naive loop with reloads", f"{t['2_over_3b']:.1f}x", ">= 5x")
    if "shared_backbone" in r:
        s = r["shared_backbone"]
        row(f"(4) 3 rewards, shared backbone / 1 reward ({s['images']} img)",
            f"{s['shared_over_one']:.2f}x; {s['shared_over_one_median_round']:.2f}x", "<= 1.3x")
        row("    3 rewards, unshared / 1 reward", f"{s['unshared_over_one']:.2f}x")
    if "text_cache" in r:
        c = r["text_cache"]
        row(f"(5) prompts encoded, cache ({c['images']} img, {c['unique_prompts']} unique prompts)",
            f"{c['cached_prompts_encoded']} ({c['cached_encoder_calls']} calls)", f"= {c['unique_prompts']}")
        row("    prompts encoded, no cache", f"{c['uncached_prompts_encoded']}")
        row("    time without / with cache", f"{c['uncached_over_cached']:.2f}x")
    if "memory" in r:
        m = r["memory"]
        keys = sorted(int(k.split("_")[2]) for k in m if k.startswith("rss_after_") and k.endswith("_rows_mb"))
        for k in keys:
            row(f"(6) RSS after {k} manifest rows (main process)", f"{m[f'rss_after_{k}_rows_mb']:.0f} MB")
        row("    growth from the first to the last mark", f"{100 * m['growth']:+.1f}%", "<= 10%")
        row("    rows/s with a near-free reward", f"{m['rows_per_s']:.0f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
