"""How far the torch preprocessing of the CLIP-family rewards is from the official PIL path.

    python scripts/perf/bench_preprocess.py [--json out.json]

The official pipelines (openai/CLIP, open_clip, HF CLIPImageProcessor, hpsv2, the LAION aesthetic
scripts) resize a PIL image with PIL's bicubic filter. Our rewards resize in torch (bicubic,
anti-aliased) so that a decoder's ``[B,3,H,W]`` output is scored on the device with gradients. On
the real photos that ship with scikit-image and matplotlib, at their native sizes, this prints,
for CLIP's transform (shorter side → 224, centre crop) and HPSv2's (longer side → 224, pad):

  * the mean / 99th-percentile / max absolute difference of the 224×224 inputs, in [0, 1] pixel
    units (i.e. before mean/std normalisation);
  * the time per image of each path (one run, side by side: a ratio, not a target).

Weights play no part: the inputs are compared, not model outputs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "grace_hopper")


def _photo(name: str) -> np.ndarray:
    from rewardbench.samples import sample_photo

    return sample_photo(name)


def main() -> dict:
    from PIL import Image

    from rewardbench.rewards.clip import build_clip
    from rewardbench.transforms import CLIP_STD

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()

    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    rows = []
    for mode in ("shortest", "longest_pad"):
        bb = build_clip("ViT-B-32", "openai", tiny=True, resize_mode=mode)
        for name in PHOTOS:
            arr = np.ascontiguousarray(_photo(name))
            pixels = torch.from_numpy(arr).permute(2, 0, 1).float()[None] / 255  # exactly the file's pixels
            t0 = time.perf_counter()
            for _ in range(5):
                ours = bb.preprocess(pixels)
            t1 = time.perf_counter()
            for _ in range(5):
                pil = bb.pil_preprocess_images([Image.fromarray(arr)])
            t2 = time.perf_counter()
            d = ((ours - pil) * std).abs().flatten()  # back to [0, 1] pixel units
            rows.append({"transform": mode, "photo": name, "size": f"{arr.shape[1]}x{arr.shape[0]}",
                         "mean_abs": float(d.mean()), "p99_abs": float(d.quantile(0.99)), "max_abs": float(d.max()),
                         "torch_ms": (t1 - t0) / 5 * 1e3, "pil_ms": (t2 - t1) / 5 * 1e3})

    print(f"{'transform':<12} {'photo':<13} {'WxH':>8} {'mean|d|':>8} {'p99|d|':>8} {'max|d|':>8} "
          f"{'torch ms':>9} {'PIL ms':>7}")
    for r in rows:
        print(f"{r['transform']:<12} {r['photo']:<13} {r['size']:>8} {r['mean_abs']:8.4f} {r['p99_abs']:8.4f} "
              f"{r['max_abs']:8.4f} {r['torch_ms']:9.2f} {r['pil_ms']:7.2f}")
    summary = {}
    for mode in ("shortest", "longest_pad"):
        sel = [r for r in rows if r["transform"] == mode]
        summary[mode] = {"mean_abs": float(np.mean([r["mean_abs"] for r in sel])),
                         "max_p99_abs": max(r["p99_abs"] for r in sel), "max_abs": max(r["max_abs"] for r in sel)}
        print(f"{mode}: mean |d| {summary[mode]['mean_abs']:.4f} (= {summary[mode]['mean_abs'] * 255:.2f}/255), "
              f"worst p99 {summary[mode]['max_p99_abs']:.4f}, worst max {summary[mode]['max_abs']:.4f}")
    out = {"rows": rows, "summary": summary, "torch": torch.__version__}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
