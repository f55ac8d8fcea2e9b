"""Throughput of the RL trainer (trainers/train.py): samples/s and where the time goes.

Runs the real loop for a few iterations and reads its per-iteration timings (the first iteration
is warm-up and is dropped): sampling (DDIM with CFG, keeping latents and log-probs, + VAE decode),
reward (compute in its thread, and the time the loop waited for it), and update (K timesteps of
forward + backward with CFG, the optimizer step).

    # CPU, tiny offline pipeline (defaults)
    .venv/bin/python scripts/perf/bench_trainer.py
    # GPU, SD2-base-size UNet/VAE/text encoder with random weights, bf16 autocast, 512 px, 50 steps
    python scripts/perf/bench_trainer.py --pipeline sd2-base-random --resolution 512 --steps 50 \\
        --batch 8 --mixed-precision bf16 --device cuda --iterations 4 --out bench.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def run(args) -> dict:
    import torch

    from rewardbench.trainers.config import load_config
    from rewardbench.trainers.train import train

    over = [f"model.pretrained={args.pipeline}", f"model.resolution={args.resolution}", f"model.lora={args.lora}",
            f"model.mixed_precision={args.mixed_precision}", f"model.gradient_checkpointing={args.grad_ckpt}",
            f"sample.num_steps={args.steps}", f"sample.batch_size={args.batch}",
            f"sample.micro_batch_size={args.sample_micro}", f"train.micro_batch_size={args.train_micro}",
            f"train.timesteps_per_iter={args.k}", f"run.iterations={args.iterations}", "run.checkpoint_every=0",
            "run.sample_every=0", "run.tensorboard=false", f"tasks.0.reward={args.reward}", "tasks.0.name=bench",
            f"run.output_dir={tempfile.mkdtemp(prefix='rb_bench_trainer_')}"]
    if args.device == "cpu":
        over.append("run.device=cpu")
    t0 = time.perf_counter()
    hist = train(load_config(None, over))["history"]
    total = time.perf_counter() - t0
    rows = hist[1:] if len(hist) > 1 else hist  # drop the warm-up iteration

    def mean(k):
        return sum(r[k] for r in rows) / len(rows)

    sample_s, wait_s, update_s, reward_s = mean("sample_s"), mean("reward_wait_s"), mean("update_s"), mean("reward_s")
    it_s = sample_s + wait_s + update_s
    n = args.batch
    res = {
        "pipeline": args.pipeline, "resolution": args.resolution, "steps": args.steps, "batch": n, "K": args.k,
        "lora": args.lora, "mixed_precision": args.mixed_precision, "reward": args.reward,
        "device": torch.cuda.get_device_name() if args.device == "cuda" else f"cpu ({platform.processor() or 'x86'}, "
                  f"{torch.get_num_threads()} threads)",
        "iterations_timed": len(rows), "wall_s_total": round(total, 2),
        "samples_per_s": round(n / it_s, 4),
        "sampling_images_per_s": round(n / sample_s, 4),
        "update_timestep_samples_per_s": round(n * args.k / update_s, 4),
        "iteration_s": round(it_s, 4),
        "split": {"sampling": round(sample_s / it_s, 3), "reward_wait": round(wait_s / it_s, 3),
                  "update": round(update_s / it_s, 3)},
        "reward_compute_s": round(reward_s, 4),
    }
    if args.device == "cuda":
        res["peak_gpu_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2 ** 30, 2)
    return res


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pipeline", default="tiny", help="tiny | sd2-base-random | a diffusers id or path")
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch", type=int, default=16, help="images per iteration (per process)")
    p.add_argument("--sample-micro", type=int, default=16)
    p.add_argument("--train-micro", type=int, default=8)
    p.add_argument("--k", type=int, default=5, help="timesteps trained per sample")
    p.add_argument("--iterations", type=int, default=4)
    p.add_argument("--lora", type=lambda s: s.lower() in ("1", "true", "yes"), default=False)
    p.add_argument("--grad-ckpt", type=lambda s: s.lower() in ("1", "true", "yes"), default=False)
    p.add_argument("--mixed-precision", default="no")
    p.add_argument("--reward", default="jpeg-compressibility")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--out", default=None, help="append the result as a JSON line to this file")
    args = p.parse_args(argv)
    res = run(args)
    print(json.dumps(res, indent=2))
    if args.out:
        with open(args.out, "a") as f:
            f.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
