"""The vision-language judges batched vs the official per-sample loop, side by side in one run.

    python scripts/perf/bench_vlm.py [--batch 32] [--rounds 3] [--device cpu] [--json out.json] [--md out.md]

Each judge scores the same ``--batch`` images (real photos from scikit-image/matplotlib, 64x80 pixels, three prompts
repeated) two ways on the same model (tiny random configuration: speed, not scores, is measured; weights are
random):

- **batched**: the reward's one call (`rewards._vlm`'s left-padded forward / batched greedy generation;
  CLIP-FlanT5's padded forward);
- **per-sample loop, as the official code runs**: for the Qwen-VL VQAScore backends, t2v_metrics' loop (one
  ``model.generate(max_new_tokens=1, output_scores=True)`` per item); for Soft-TIFA, GenEval 2's ``evaluation.py``
  (one such ``generate`` per image *and question*); for UnifiedReward, one transformers ``generate`` (greedy) per
  image; for HPSv3 and CLIP-FlanT5, one forward per image (the official inferencer / t2v_metrics called with
  one image; t2v_metrics batches CLIP-FlanT5 itself when given a list, so its row is an upper bound of the gain).

Rounds interleave the two ways, so machine load hits both alike; the table gives the best time of each (after one
untimed warm-up call of each), the ratio of the best times, and the largest difference between the two ways'
scores (they compute the same numbers).
"""

from __future__ import annotations

import argparse
import inspect
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

# the prompts of tests/data/geneval2_tiny.jsonl (Soft-TIFA asks their 3, 3 and 5 questions), repeated
PROMPTS = ("two red cats", "a dog to the left of a bicycle", "ten wooden horses jumping over a fence")
JUDGES = ("hpsv3", "vqascore-qwen2.5-vl", "vqascore-qwen3-vl", "vqascore", "soft-tifa", "unifiedreward")


def images(n: int, size=(64, 80)) -> torch.Tensor:
    import torch.nn.functional as F

    from rewardbench.samples import sample_photo

    names = ("astronaut", "coffee", "chelsea", "rocket", "grace_hopper")
    out = []
    for i in range(n):
        a = torch.from_numpy(sample_photo(names[i % len(names)])).permute(2, 0, 1).float()[None] / 255
        out.append(F.interpolate(a, size=size, mode="bilinear", antialias=True).clamp(0, 1))
    return torch.cat(out)


def _hf_generate(vl, pixels, text, max_new_tokens, pil=False):
    """transformers' generate on one item (what the official loops call), greedy; returns its output and the
    prompt's length."""
    pv, grid = vl.preprocess(pixels, _hf_generate.budget, pil=pil)
    ids, mask = vl.sequences([text], grid)
    kw = {}
    if "mm_token_type_ids" in inspect.signature(vl.model.forward).parameters:
        kw["mm_token_type_ids"] = (ids == vl.image_token_id).int()
    vl.model.model.rope_deltas = None
    out = vl.model.generate(input_ids=ids, attention_mask=mask, pixel_values=pv, image_grid_thw=grid,
                            max_new_tokens=max_new_tokens, do_sample=False, output_scores=True,
                            return_dict_in_generate=True, pad_token_id=vl.pad_id, **kw)
    return out, ids.shape[1]


def per_sample(name: str, r, x: torch.Tensor, prompts: list[str]) -> torch.Tensor:
    """The official per-sample loop for judge ``name`` on the reward's own model; its scores."""
    if name in ("hpsv3", "vqascore"):
        return torch.cat([r(x[i:i + 1], prompts[i:i + 1]).scores for i in range(len(prompts))])
    vl = r.vlm
    _hf_generate.budget = r.budget
    if name.startswith("vqascore-"):
        out = []
        for i, p in enumerate(prompts):
            g, _ = _hf_generate(vl, x[i:i + 1], r.questions([p])[0], 1)
            out.append(torch.softmax(g.scores[0][0].float(), -1)[r.answer_id()])
        return torch.stack(out)
    if name == "soft-tifa":
        out = []
        for i, p in enumerate(prompts):
            item, probs = r.item(p), []
            for q, a in item.vqa:
                g, _ = _hf_generate(vl, x[i:i + 1], r.questions([q])[0], 1)
                dist = torch.softmax(g.scores[0][0].float(), -1)
                probs.append(sum(dist[t] for t in r.form_ids(q, a)))
            out.append(torch.exp(torch.log(torch.stack(probs)).mean()))
        return torch.stack(out)
    if name == "unifiedreward":
        from rewardbench.rewards.unifiedreward import flow_grpo_pixels, parse_final_score

        out = []
        for i, p in enumerate(prompts):
            xi = flow_grpo_pixels(x[i:i + 1], r.resize)
            g, n = _hf_generate(vl, xi, r.questions([p])[0], r.max_new_tokens, pil=True)
            text = vl.tokenizer.decode(g.sequences[0, n:].tolist(), skip_special_tokens=True)
            out.append(torch.tensor(float(parse_final_score(text) or 0.0) / 5))
        return torch.stack(out)
    raise ValueError(name)


def build(name: str):
    import rewardbench

    cfg = dict(rewardbench.get_spec(name).tiny_config)
    if name == "soft-tifa":  # GenEval 2's questions for the prompts: the hand-made test file in its format
        cfg = {"tiny": True, "data": str(ROOT / "tests" / "data" / "geneval2_tiny.jsonl")}
    return rewardbench.load_reward(name, pretrained=False, **cfg)


def measure(name: str, x: torch.Tensor, prompts: list[str], rounds: int) -> dict:
    r = build(name)
    best = {"batched": float("inf"), "per_sample": float("inf")}
    with torch.inference_mode():
        r(x[:2], prompts[:2])  # warm-up, untimed: first calls allocate and build caches
        per_sample(name, r, x[:2], prompts[:2])
        for _ in range(rounds):
            t0 = time.perf_counter()
            batched = r(x, prompts).scores
            best["batched"] = min(best["batched"], time.perf_counter() - t0)
            t0 = time.perf_counter()
            loop = per_sample(name, r, x, prompts)
            best["per_sample"] = min(best["per_sample"], time.perf_counter() - t0)
    diff = float((batched.float() - loop.float()).abs().max())
    n = len(prompts)
    return {"judge": name, "images": n, "batched_s": best["batched"], "per_sample_s": best["per_sample"],
            "batched_img_s": n / best["batched"], "per_sample_img_s": n / best["per_sample"],
            "speedup": best["per_sample"] / best["batched"], "max_abs_score_diff": diff,
            "weights": r.weights_used}


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [f"Tiny random configurations on {meta['device']} ({meta['machine']}), torch {meta['torch']}, "
             f"transformers {meta['transformers']}, batch {meta['batch']}, best of {meta['rounds']} interleaved "
             f"rounds. Command: `{meta['command']}`.", "",
             "| judge | batched (img/s) | per-sample loop (img/s) | speed-up | max abs score diff | GPU (7B/8B) |",
             "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| `{r['judge']}` | {r['batched_img_s']:.1f} | {r['per_sample_img_s']:.1f} | {r['speedup']:.1f}x | "
              f"{r['max_abs_score_diff']:.1e} | not measured |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    import transformers

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--judges", default=",".join(JUDGES))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    x = images(args.batch).to(args.device)
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(args.batch)]
    meta = {"device": args.device, "machine": platform.machine(), "torch": torch.__version__,
            "transformers": transformers.__version__, "batch": args.batch, "rounds": args.rounds,
            "threads": torch.get_num_threads(),
            "command": "python scripts/perf/bench_vlm.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    rows = []
    for name in args.judges.split(","):
        rows.append(measure(name, x, prompts, args.rounds))
        print(f"{name}: batched {rows[-1]['batched_img_s']:.1f} img/s, per-sample {rows[-1]['per_sample_img_s']:.1f} "
              f"img/s, {rows[-1]['speedup']:.1f}x, max diff {rows[-1]['max_abs_score_diff']:.1e}", flush=True)
    out = {"meta": meta, "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    if args.md:
        args.md.write_text(markdown(rows, meta))
    print(markdown(rows, meta))
    return out


if __name__ == "__main__":
    main()
