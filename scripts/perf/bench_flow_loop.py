"""Flow-GRPO's throughput in our loop against Flow-GRPO's own training-loop structure, on the same tiny SD3 (or
FLUX.1: ``--pretrained tiny-flux``, against the same structure as Flow-GRPO's ``scripts/train_flux.py``@74db691 has
it, with FLUX's guidance embedding in place of CFG).

Two arms on the same model (the tiny random SD3 or FLUX, LoRA), the same batch, steps, guidance and micro-batches:

- ``ours``: the real loop, ``rewardbench.trainers.train`` with ``train.algorithm=flow_grpo``;
- ``flow_grpo_structure``: a re-implementation, written for this measurement, of the per-batch structure of
  Flow-GRPO's ``scripts/train_sd3.py`` (yifan123/flow_grpo@ac4c86e) — NOT its code, which needs its own
  environment: for each sampling batch the text embeddings are computed again (``compute_text_embeddings``), the
  SDE sampler keeps every step's latents and log-probabilities (``pipeline_with_logprob``) and the reward runs in
  a thread; then the samples are collated, advantages computed per prompt (global std), zero-advantage samples
  masked out, the samples shuffled and re-batched into ``num_batches_per_epoch`` minibatches, and each minibatch is
  trained timestep by timestep (CFG forward on [negative; prompt], the reference forward with the LoRA disabled,
  the clipped loss + beta KL, backward), accumulating into two optimizer steps per epoch, then the EMA. Its step
  maths is ours (bit-identical to Flow-GRPO's, scripts/parity/flow_grpo.py), so the arms differ only in structure.

Reported as measured: samples/s of the sampling phase and optimizer updates/s of the training phase, each from the
fastest iteration (the first dropped as warm-up; on a shared machine the fastest is the least disturbed), the best of
``--repeats`` alternating runs of each arm.

    .venv/bin/python scripts/perf/bench_flow_loop.py --out scripts/perf/results/flow_loop_cpu.json
    .venv/bin/python scripts/perf/bench_flow_loop.py --batch 16 --steps 6 --iterations 4   # a quicker run
    .venv/bin/python scripts/perf/bench_flow_loop.py --pretrained tiny-flux \\
        --out scripts/perf/results/flow_loop_flux_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

PROMPTS = ["a cat on a sofa", "a dog on a lawn"]


def brightness(images, prompts, metadata=None):
    return images.mean(dim=(1, 2, 3)), {}


def overrides(args, out: str) -> list[str]:
    guidance = ["sample.guidance_scale=3.5"] if args.pretrained == "tiny-flux" else []  # FLUX: its embedding
    return [*guidance, "train.algorithm=flow_grpo", f"model.pretrained={args.pretrained}",
            f"model.resolution={args.resolution}",
            "model.lora=true", "model.lora_rank=4", "model.lora_alpha=8", "run.device=cpu", "run.tensorboard=false",
            "run.progress=false", f"sample.num_steps={args.steps}", f"sample.batch_size={args.batch}",
            f"sample.micro_batch_size={args.micro}", f"sample.images_per_prompt={args.batch // 2}",
            f"train.micro_batch_size={args.micro}", f"run.iterations={args.iterations}", "run.checkpoint_every=0",
            "run.sample_every=0", "tasks.0.name=bench", f"tasks.0.prompts={json.dumps(PROMPTS)}",
            "tasks.0.allow_eval_overlap=true", f"run.output_dir={out}"]


def ours(args) -> dict:
    from rewardbench.trainers.config import load_config
    from rewardbench.trainers.train import train

    cfg = load_config(None, overrides(args, tempfile.mkdtemp(prefix="rb_flow_bench_")))
    rows = train(cfg, rewards={"bench": brightness})["history"][1:]
    return {"samples_per_s": args.batch / min(r["sample_s"] for r in rows),
            "updates_per_s": cfg.flow.optimizer_steps / min(r["update_s"] for r in rows)}


def flow_grpo_structure(args) -> dict:
    """Flow-GRPO's train_sd3.py epoch, re-implemented on our model and step maths (see the module docstring)."""
    import torch

    from rewardbench.benchmarks.pipelines import load_flow_pipeline
    from rewardbench.trainers.config import load_config
    from rewardbench.trainers.ddpo_math import clipped_policy_loss
    from rewardbench.trainers.flow_math import EMA, group_advantages, kl_to_reference, sde_step_with_logprob
    from rewardbench.trainers.flow_sampling import (
        TextEmbeds,
        decode_latents,
        encode_prompts,
        latent_channels,
        latent_size,
        prepare_transformer,
        schedule,
        velocity,
    )

    cfg = load_config(None, overrides(args, "unused"))
    s, f, tr = cfg.sample, cfg.flow, cfg.train
    torch.manual_seed(0)
    pipe = load_flow_pipeline(args.pretrained)
    dev = torch.device("cpu")
    params = prepare_transformer(pipe, cfg.model, dev)
    model = pipe.transformer
    opt = torch.optim.AdamW(params, lr=tr.lr, betas=tuple(tr.adam_betas), weight_decay=tr.weight_decay,
                            eps=tr.adam_eps)
    ema = EMA(params, f.ema_decay, f.ema_every)
    neg = encode_prompts(pipe, [""])
    timesteps, sigmas = schedule(pipe, s.num_steps, dev, args.resolution)
    side, channels = latent_size(pipe, args.resolution), latent_channels(model)
    n_train = int(s.num_steps * f.timestep_fraction)
    executor = ThreadPoolExecutor(max_workers=1)
    g = torch.Generator().manual_seed(0)
    n_batches = args.batch // args.micro  # num_batches_per_epoch, each of train_batch_size = micro
    accumulate = max(1, n_batches // 2)  # gradient_accumulation_steps = num_batches_per_epoch // 2
    global_step, sample_times, update_times = 0, [], []
    for _epoch in range(args.iterations):
        # SAMPLING: per batch, embeddings again, every step's latents and log-probs kept, the reward in a thread
        t0 = time.perf_counter()
        batches = []
        for _ in range(n_batches):
            prompts = [PROMPTS[int(torch.randint(2, (1,), generator=g))] for _ in range(args.micro)]
            text = encode_prompts(pipe, prompts)
            b = len(prompts)
            x = torch.randn((b, channels, side, side), generator=g)
            lat, logps = [x], []
            with torch.no_grad():
                for i, t in enumerate(timesteps):
                    v = velocity(model, x, t.expand(b), text, neg.expand(b), s.guidance_scale)
                    st = sde_step_with_logprob(v, x, sigmas[i], sigmas[i + 1], noise_level=f.noise_level,
                                               sigma_max=float(sigmas[1]), generator=g)
                    x = st.prev_sample
                    lat.append(x)
                    logps.append(st.log_prob)
                images = decode_latents(pipe, x)
            batches.append({"prompts": prompts, "text": text, "latents": torch.stack(lat[:-1], 1),
                            "next": torch.stack(lat[1:], 1), "logp": torch.stack(logps, 1),
                            "reward": executor.submit(brightness, images, prompts)})
        rewards = torch.cat([bt["reward"].result()[0] for bt in batches])
        sample_times.append(time.perf_counter() - t0)
        # TRAINING: advantages, mask, shuffle, re-batch, timestep by timestep with accumulation
        t0 = time.perf_counter()
        prompts = [p for bt in batches for p in bt["prompts"]]
        adv = group_advantages(rewards, prompts, global_std=True).clamp(-tr.adv_clip_max, tr.adv_clip_max)
        keep = (adv != 0).nonzero().flatten()
        perm = keep[torch.randperm(len(keep), generator=g)]
        emb = torch.cat([bt["text"].embeds for bt in batches])[perm]
        pooled = torch.cat([bt["text"].pooled for bt in batches])[perm]
        lat = torch.cat([bt["latents"] for bt in batches])[perm]
        nxt = torch.cat([bt["next"] for bt in batches])[perm]
        old = torch.cat([bt["logp"] for bt in batches])[perm]
        a = adv[perm]
        model.train()
        n_steps_done = 0
        for mb, lo in enumerate(range(0, len(perm), args.micro)):
            sl = slice(lo, lo + args.micro)
            b = len(a[sl])
            text = TextEmbeds(emb[sl], pooled[sl])
            for j in range(n_train):
                k = torch.full((b,), j)
                v = velocity(model, lat[sl, j], timesteps[k], text, neg.expand(b), s.guidance_scale)
                kw = dict(noise_level=f.noise_level, sigma_max=float(sigmas[1]), prev_sample=nxt[sl, j])
                st = sde_step_with_logprob(v, lat[sl, j], sigmas[k], sigmas[k + 1], **kw)
                loss, _ = clipped_policy_loss(st.log_prob, old[sl, j], a[sl], clip_range=tr.clip_range)
                with torch.no_grad():
                    model.disable_adapters()
                    v_ref = velocity(model, lat[sl, j], timesteps[k], text, neg.expand(b), s.guidance_scale)
                    model.enable_adapters()
                ref = sde_step_with_logprob(v_ref, lat[sl, j], sigmas[k], sigmas[k + 1], **kw)
                loss = loss + f.kl_beta * kl_to_reference(st.mean, ref.mean, st.std_dev_t).mean()
                (loss / (accumulate * n_train)).backward()
            if (mb + 1) % accumulate == 0:
                torch.nn.utils.clip_grad_norm_(params, tr.max_grad_norm)
                opt.step()
                opt.zero_grad()
                global_step += 1
                n_steps_done += 1
            ema.step(params, global_step)
        update_times.append((time.perf_counter() - t0, n_steps_done))
    executor.shutdown()
    sample_times, update_times = sample_times[1:], update_times[1:]
    return {"samples_per_s": args.batch / min(sample_times),
            "updates_per_s": max(n / t for t, n in update_times)}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=16, help="images per iteration")
    p.add_argument("--micro", type=int, default=4, help="images per sampling call and per training forward")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--pretrained", default="tiny-sd3", choices=["tiny-sd3", "tiny-flux"])
    p.add_argument("--iterations", type=int, default=4, help="the first is warm-up and dropped")
    p.add_argument("--repeats", type=int, default=3, help="each arm this many times, alternating")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    import torch

    results = {"ours": [], "flow_grpo_structure": []}
    for _ in range(args.repeats):  # alternating, so that a busy machine weighs on both arms alike
        results["ours"].append(ours(args))
        results["flow_grpo_structure"].append(flow_grpo_structure(args))
    best = {arm: {k: max(r[k] for r in rs) for k in ("samples_per_s", "updates_per_s")} for arm, rs in results.items()}
    ratio = {k: best["ours"][k] / best["flow_grpo_structure"][k] for k in ("samples_per_s", "updates_per_s")}
    report = {"settings": vars(args), "weights": f"{args.pretrained}: random weights (seed 0)", "runs": results,
              "best": best, "ours_over_flow_grpo_structure": ratio, "device": "cpu",
              "threads": torch.get_num_threads(), "machine": platform.platform()}
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
