"""The paper's RL fine-tuning loop (arXiv 2401.12244, Algorithm 1), top to bottom, on diffusers + accelerate.

Each iteration (``train.task_order="algorithm1"``, the paper's order):
  SAMPLING  every task (prompt source + reward + weight) samples its batch from the same model: DDIM
            (eta = 1) with CFG, keeping every step's latents and log-probabilities;
  REWARDS   scored (in a thread while the next micro-batch is sampled, for image-level rewards; group
            rewards over each process's minibatch), gathered from every process, turned into advantages
            (batch z-score, std + 1e-7, clamped to ±10; or DDPO's per-prompt statistics);
  TRAINING  task by task: K random timesteps, PPO-clipped ratio with CFG in the training pass, one
            optimizer step per timestep (``train.step_mode="paper"``) or one per task (``"ddpo"``);
  L_PRE     one step on the pretraining loss (eps-prediction MSE on image-caption pairs, weight beta);
  EVALUATION every ``run.eval_every`` iterations: held-out prompts judged through run-benchmark
            (trainers/evaluate.py), logged beside the training reward.
``task_order="interleaved"`` samples and updates each task in turn, adding L_pre to each task's update.

Run it with ``rewardbench train --config trainers/recipes/tiny_smoke.yaml`` or, on many GPUs,
``accelerate launch -m rewardbench.trainers.cli --config RECIPE``. From Python::

    >>> from rewardbench.trainers.config import load_config
    >>> from rewardbench.trainers.train import train
    >>> cfg = load_config("trainers/recipes/tiny_smoke.yaml", ["run.iterations=1", "run.output_dir=/tmp/rb_doc"])
    >>> result = train(cfg)                                   # doctest: +SKIP
    >>> result["history"][-1]["reward_mean"]                  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from . import _io
from .config import Config
from .ddpo_math import PerPromptStatTracker, clipped_policy_loss, ddim_step_with_logprob, normalize_advantages
from .pipeline import encode_prompts, load_pipeline, prepare_for_training, sample_with_logprob, unet_eps


def train(config: Config, rewards: Mapping[str, Callable | Any] | None = None) -> dict[str, Any]:
    """Run the trainer. ``rewards`` maps task names to reward objects (a `RewardModel` or a
    ddpo-style callable) that replace the task's ``reward`` name. Returns ``{"history": [rows],
    "output_dir": str, "final_weights": str | None, "step": int, "unet": the trained UNet, "eval_dir":
    str | None (the held-out evaluations' reports), "eval_plot": str | None}``."""
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    cfg = config
    m, s, tr, run = cfg.model, cfg.sample, cfg.train, cfg.run
    accelerator = Accelerator(mixed_precision=m.mixed_precision, cpu=run.device == "cpu")
    device, rank, world = accelerator.device, accelerator.process_index, accelerator.num_processes
    out = Path(run.output_dir)
    weight_dtype = {"no": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[m.mixed_precision]

    # same seed on every process for the model (LoRA init); a per-process stream for sampling
    torch.manual_seed(run.seed)
    pipe = load_pipeline(m.pretrained, revision=m.revision, seed=m.tiny_seed)
    params = prepare_for_training(pipe, m, device, weight_dtype)
    unet = pipe.unet
    optimizer = torch.optim.AdamW(params, lr=tr.lr, betas=tuple(tr.adam_betas), weight_decay=tr.weight_decay,
                                  eps=tr.adam_eps)
    lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / tr.warmup_steps) if tr.warmup_steps > 0 else 1.0)
    unet, optimizer = accelerator.prepare(unet, optimizer)
    raw_unet = accelerator.unwrap_model(unet)

    tasks, unchecked = [], set()
    with accelerator.main_process_first():  # a suite's official file downloads once into the shared cache
        for task in cfg.tasks:
            fn, whole_batch, desc = _io.resolve_reward((rewards or {}).get(task.name, task.reward), device,
                                                       dict(task.reward_kwargs))
            prompts = _io.load_prompts(task.prompts, run.suite_paths)
            if not task.allow_eval_overlap:  # never train on a benchmark's held-out prompts by accident
                prompts, dropped, missing = _io.check_eval_overlap(task.name, prompts, run.suite_paths,
                                                                   drop=task.drop_eval_overlap, skip=unchecked)
                unchecked.update(missing)
                if dropped:
                    accelerator.print(f"task {task.name}: left out {sum(dropped.values())} training prompt(s) that "
                                      f"are held-out evaluation prompts ({dropped})")
            tracker = PerPromptStatTracker(tr.stat_buffer_size, tr.stat_min_count)
            tasks.append(dict(index=len(tasks), cfg=task, fn=fn, whole_batch=whole_batch, desc=desc, prompts=prompts,
                              sizes=task.sizes(s), tracker=tracker))
    if unchecked:
        names = sorted(unchecked)
        accelerator.print(f"held-out overlap not checked against {len(names)} suite(s) that cannot be loaded here "
                          f"({', '.join(names[:4])}{', ...' if len(names) > 4 else ''}); give local copies of their "
                          "files in run.suite_paths to check them")
    caption_data = None
    if cfg.pretrain.beta > 0:
        p = cfg.pretrain
        caption_data = _io.CaptionData(p.dataset, p.split, p.image_column, p.caption_column, m.resolution)
    neg_emb = encode_prompts(pipe, [s.negative_prompt])  # (1, 77, D)

    gen = torch.Generator().manual_seed(run.seed * 1_000_003 + rank)  # sampling noise, prompts, timesteps
    torch.manual_seed(run.seed * 1_000_003 + rank)
    start = 0
    ckpt_dir = out / "checkpoints"
    fingerprint = _io.run_fingerprint(cfg, tasks)
    if run.resume:
        found = _io.find_checkpoint(run.resume, out)
        if found is not None:
            changes = _io.check_resume(found, fingerprint, force=run.resume_force)
            state = _io.load_checkpoint(found, unet=unet, optimizer=optimizer, lr_scheduler=lr_scheduler, gen=gen,
                                        accelerator=accelerator)
            start = state["step"]
            for t in tasks:  # a task the checkpoint does not know (resume_force) starts with empty statistics
                if t["cfg"].name in state.get("trackers", {}):
                    t["tracker"].load_state_dict(state["trackers"][t["cfg"].name])
            forced = f" (run.resume_force, changed: {'; '.join(changes)})" if changes else ""
            accelerator.print(f"resumed from {found} at iteration {start}{forced}")
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    logger = _io.Logger(out, run.tensorboard, resume_step=start) if accelerator.is_main_process else None
    history: list[dict] = []
    executor = ThreadPoolExecutor(max_workers=1) if run.async_rewards else None
    sched = pipe.scheduler
    ac = sched.alphas_cumprod.to(device)
    autocast = accelerator.autocast

    def rollout(task: dict) -> dict:
        """SAMPLING and REWARDS for one task: its batch of images with latents, log-probs and advantages."""
        #### SAMPLING ####
        t0 = time.perf_counter()
        raw_unet.eval()
        n, per_prompt = task["sizes"]
        pick = torch.randint(len(task["prompts"]), (n // per_prompt,), generator=gen).tolist()
        prompts = [task["prompts"][i] for i in pick for _ in range(per_prompt)]
        # group ids (B,): one group per prompt, or the whole minibatch as one group (the paper)
        groups = torch.arange(len(pick)).repeat_interleave(per_prompt) if s.group_by == "prompt" \
            else torch.zeros(n, dtype=torch.long)
        cond = encode_prompts(pipe, prompts)  # (B, 77, D)
        samples, pending, reward_s = [], [], [0.0]

        def timed_reward(images, ps, gs, fn=task["fn"]):
            t = time.perf_counter()
            r = fn(images, ps, gs.to(device)).float().cpu()
            reward_s[0] += time.perf_counter() - t
            return r

        for lo in range(0, n, s.micro_batch_size):
            sl = slice(lo, lo + s.micro_batch_size)
            b = cond[sl].shape[0]
            smp = sample_with_logprob(pipe, cond[sl], neg_emb.expand(b, -1, -1), num_steps=s.num_steps, eta=s.eta,
                                      guidance_scale=s.guidance_scale, resolution=m.resolution, generator=gen,
                                      unet=raw_unet, reduction=tr.logprob_reduction, autocast=autocast)
            samples.append(smp)
            if not task["whole_batch"]:  # image-level reward: score this micro-batch while sampling the next
                args = (smp.images, prompts[sl], groups[sl])
                pending.append(executor.submit(timed_reward, *args) if executor else timed_reward(*args))
        ro = dict(prompts=prompts, cond=cond, reward_s=reward_s,
                  latents=torch.cat([x.latents for x in samples]),  # (B, steps + 1, 4, h, w)
                  old_logps=torch.cat([x.log_probs for x in samples]),  # (B, steps)
                  images=torch.cat([x.images for x in samples]),  # (B, 3, H, W)
                  timesteps=samples[0].timesteps.to(device))  # (steps,)
        _sync(device)
        ro["sample_s"] = time.perf_counter() - t0

        #### REWARDS ####
        t0 = time.perf_counter()
        if task["whole_batch"]:  # group rewards see every member of each group at once
            local = timed_reward(ro["images"], prompts, groups)
        else:
            local = torch.cat([f.result() if executor else f for f in pending])
        all_rewards = accelerator.gather(local.to(device)).float().cpu()  # (B * world,)
        if tr.per_prompt_stats:
            from accelerate.utils import gather_object

            all_prompts = gather_object(prompts) if world > 1 else prompts
            adv_all = task["tracker"].update(all_prompts, all_rewards)
        else:
            adv_all = normalize_advantages(all_rewards, clip=tr.adv_clip_max)
        ro["advantages"] = adv_all.reshape(world, -1)[rank].clamp(-tr.adv_clip_max, tr.adv_clip_max).to(device)  # (B,)
        ro.update(rewards=local, all_rewards=all_rewards, reward_wait_s=time.perf_counter() - t0)
        return ro

    def pretrain_loss() -> torch.Tensor:
        """L_pre: eps-prediction MSE on real image-caption pairs (the paper's Eq. 9)."""
        pix, caps = caption_data.batch(cfg.pretrain.batch_size, gen)
        with torch.no_grad():
            z = pipe.vae.encode(pix.to(device, weight_dtype)).latent_dist.sample()
            z = z.float() * pipe.vae.config.scaling_factor
            enc = encode_prompts(pipe, caps)
        noise = torch.randn(z.shape, generator=gen).to(device)
        tt = torch.randint(sched.config.num_train_timesteps, (z.shape[0],), generator=gen).to(device)
        target = noise if sched.config.prediction_type == "epsilon" else sched.get_velocity(z, noise, tt)
        with autocast():
            pred = unet(sched.add_noise(z, noise, tt), tt, encoder_hidden_states=enc).sample
        return torch.nn.functional.mse_loss(pred.float(), target.float())

    def optimizer_step() -> float:
        grad_norm = accelerator.clip_grad_norm_(params, tr.max_grad_norm)
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        return float(grad_norm) if grad_norm is not None else math.nan

    def update(task: dict, ro: dict, it: int, with_pretrain: bool) -> dict:
        """TRAINING for one task: the PPO-clipped policy gradient on K timesteps per sample."""
        t0 = time.perf_counter()
        raw_unet.train()
        tc, n, K = task["cfg"], task["sizes"][0], tr.timesteps_per_iter
        n_steps = ro["timesteps"].shape[0]
        if tr.step_mode == "paper":  # K timesteps for the whole batch (the same on every process), a step each
            shared = torch.Generator().manual_seed((run.seed * 1_000_003 + it) * 1_009 + task["index"])
            chosen = torch.randperm(n_steps, generator=shared)[:K].expand(n, K).to(device)  # (B, K)
            steps = [[j] for j in range(K)]
        else:  # ddpo-pytorch: K distinct random timesteps per sample, one optimizer step for all of them
            chosen = torch.stack([torch.randperm(n_steps, generator=gen)[:K] for _ in range(n)]).to(device)  # (B, K)
            steps = [list(range(K))]
        batches = [torch.arange(lo, min(lo + tr.micro_batch_size, n), device=device)
                   for lo in range(0, n, tr.micro_batch_size)]
        stats = {"policy_loss": 0.0, "clipfrac": 0.0, "approx_kl": 0.0, "pretrain_loss": 0.0}
        for si, js in enumerate(steps):
            pretrain_here = with_pretrain and si == len(steps) - 1
            n_backward, done = len(batches) * len(js) + pretrain_here, 0
            for idx in batches:
                for j in js:
                    k = chosen[idx, j]  # (b,) index of the step
                    x_t, x_prev, t = ro["latents"][idx, k], ro["latents"][idx, k + 1], ro["timesteps"][k]
                    with contextlib.nullcontext() if done == n_backward - 1 else accelerator.no_sync(unet):
                        with autocast():
                            eps = unet_eps(unet, x_t, t, ro["cond"][idx], neg_emb.expand(len(idx), -1, -1),
                                           s.guidance_scale)
                        _, logp = ddim_step_with_logprob(
                            eps, t, x_t, ac, sched.config.num_train_timesteps // n_steps, eta=s.eta,
                            final_alpha_cumprod=sched.final_alpha_cumprod,
                            prediction_type=sched.config.prediction_type, prev_sample=x_prev,
                            reduction=tr.logprob_reduction,
                            clip_sample_range=sched.config.clip_sample_range if sched.config.clip_sample else None)
                        loss, info = clipped_policy_loss(logp, ro["old_logps"][idx, k], ro["advantages"][idx],
                                                         clip_range=tr.clip_range, adv_clip=tr.adv_clip_max)
                        # the mean over this step's samples and timesteps; the task weight scales its update
                        accelerator.backward(loss * tc.weight * len(idx) / n / len(js))
                    done += 1
                    for key, v in (("policy_loss", loss), ("clipfrac", info["clipfrac"]),
                                   ("approx_kl", info["approx_kl"])):
                        stats[key] += float(v.detach()) * len(idx) / n / K
            if pretrain_here:  # interleaved order: L_pre joins the task's (last) update
                mse = pretrain_loss()
                accelerator.backward(mse * cfg.pretrain.beta)
                stats["pretrain_loss"] = float(mse.detach())
            stats["grad_norm"] = optimizer_step()
        _sync(device)
        stats["update_s"] = time.perf_counter() - t0
        return stats

    def log(row: dict, images=None, prompts=None, rewards=None) -> None:
        history.append(row)
        if logger is not None:
            logger.log(row)
            if images is not None and run.sample_every and (row["iteration"] % run.sample_every == 0
                                                            or row["iteration"] == run.iterations - 1):
                logger.save_grid(images, prompts, rewards, f"it{row['iteration']:05d}_{row['task']}")

    judges = []
    if run.eval_every:  # held-out judges: the tasks' registered rewards (not Python callables) and eval.judges
        from . import evaluate as _evaluate

        judges = _evaluate.eval_judges(cfg, [t["cfg"].reward for t in tasks if t["cfg"].name not in (rewards or {})])

    def evaluate(step: int) -> None:
        """EVALUATION on the main process (the others wait); the training RNG streams are left untouched."""
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            with _evaluate.rng_preserved():
                rows = _evaluate.evaluate(cfg, raw_unet, step, judges, device, world,
                                          save_weights=lambda u, dest: _save_weights(u, dest, m.lora))
            for row in rows:
                log(row)
            _evaluate.plot_training_vs_heldout(out / "metrics.csv", out / "training_vs_heldout.png")
        accelerator.wait_for_everyone()

    bar = tqdm(range(start, run.iterations), initial=start, total=run.iterations, desc="train",
               disable=not accelerator.is_local_main_process)
    interleaved = tr.task_order == "interleaved"
    for it in bar:
        # Algorithm 1: every task samples from the same model (p_theta_old) before any task updates it;
        # interleaved, each task samples just before its own update
        rollouts = [None] * len(tasks) if interleaved else [rollout(task) for task in tasks]
        for task, ro in zip(tasks, rollouts):
            ro = ro if ro is not None else rollout(task)
            st = update(task, ro, it, with_pretrain=interleaved and caption_data is not None)
            reduced = accelerator.reduce(torch.tensor([st["policy_loss"], st["clipfrac"], st["approx_kl"],
                                                       st["pretrain_loss"]], device=device), reduction="mean").tolist()
            tc = task["cfg"]
            row = {"iteration": it, "task": tc.name, "reward_mean": float(ro["all_rewards"].mean()),
                   "reward_std": float(ro["all_rewards"].std(unbiased=False)), "policy_loss": reduced[0],
                   "clipfrac": reduced[1], "approx_kl": reduced[2], "pretrain_loss": reduced[3],
                   "loss": reduced[0] * tc.weight + cfg.pretrain.beta * reduced[3], "grad_norm": st["grad_norm"],
                   "lr": lr_scheduler.get_last_lr()[0], "sample_s": ro["sample_s"], "reward_s": ro["reward_s"][0],
                   "reward_wait_s": ro["reward_wait_s"], "update_s": st["update_s"]}
            log(row, ro["images"], ro["prompts"], ro["rewards"])
            bar.set_postfix({f"r[{tc.name}]": f"{row['reward_mean']:.3g}"})

        #### L_PRE ####
        if not interleaved and caption_data is not None:  # Algorithm 1: one pretraining-loss step per iteration
            t0 = time.perf_counter()
            raw_unet.train()
            mse = pretrain_loss()
            accelerator.backward(mse * cfg.pretrain.beta)
            grad_norm = optimizer_step()
            mse = accelerator.reduce(mse.detach().reshape(1), reduction="mean").item()
            log({"iteration": it, "task": "pretrain", "pretrain_loss": mse, "loss": cfg.pretrain.beta * mse,
                 "grad_norm": grad_norm, "lr": lr_scheduler.get_last_lr()[0], "update_s": time.perf_counter() - t0})

        step = it + 1
        if (run.checkpoint_every and step % run.checkpoint_every == 0) or step == run.iterations:
            _io.save_checkpoint(ckpt_dir, unet=unet, optimizer=optimizer, lr_scheduler=lr_scheduler, step=step,
                                extra={"trackers": {t["cfg"].name: t["tracker"].state_dict() for t in tasks},
                                       "fingerprint": fingerprint},
                                gen=gen, accelerator=accelerator, keep=run.keep_checkpoints)
        if run.eval_every and (step % run.eval_every == 0 or step == run.iterations):
            evaluate(step)

    if executor:
        executor.shutdown()
    final = None
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        final = str(_save_weights(raw_unet, out / "final", m.lora))
        logger.plot()
        logger.close()
    accelerator.wait_for_everyone()
    plot = out / "training_vs_heldout.png"
    return {"history": history, "output_dir": str(out), "final_weights": final, "step": max(start, run.iterations),
            "unet": raw_unet, "eval_dir": str(out / "eval") if run.eval_every else None,
            "eval_plot": str(plot) if run.eval_every and plot.is_file() else None}


def _sync(device: torch.device) -> None:
    """Wait for queued GPU work, so the phase timings (sample_s, update_s) are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _save_weights(unet, dest: Path, lora: bool) -> Path:
    """LoRA: diffusers-format ``pytorch_lora_weights.safetensors`` (loads with
    ``pipe.load_lora_weights(dest)``); full fine-tuning: the UNet in ``dest/unet``."""
    if lora:
        from diffusers import StableDiffusionPipeline
        from diffusers.utils import convert_state_dict_to_diffusers
        from peft.utils import get_peft_model_state_dict

        layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
        StableDiffusionPipeline.save_lora_weights(dest, unet_lora_layers=layers, safe_serialization=True)
    else:
        unet.save_pretrained(dest / "unet")
    return dest
