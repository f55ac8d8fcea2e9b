"""Flow-GRPO (Liu et al., arXiv 2505.05470; code yifan123/flow_grpo) and its Fast variant on Stable Diffusion 3 /
3.5 and FLUX.1: ``train.algorithm: flow_grpo`` or ``flow_grpo_fast``.

SAMPLING   the flow-matching scheduler's steps made stochastic (Flow-GRPO's SDE, or its "cps" step, noise level
           ``flow.noise_level``) with CFG as SD3 samples (``sample.guidance_scale``; FLUX.1: its guidance
           embedding at that value, as Flow-GRPO's train_flux.py samples and trains), keeping the latents before and
           after each trained step and the step's log-probability (trainers/flow_sampling.py, trainers/flow_math.py).
           Flow-GRPO trains the first ``int(num_steps * flow.timestep_fraction)`` steps; Fast
           (``flow.window_size`` > 0) makes only a window of consecutive steps stochastic (its start drawn in
           ``flow.window_range``, the first half by default), deterministic elsewhere, and trains the window.
ADVANTAGES the shared loop's, per prompt group (``train.group_advantages``: each reward against its prompt's
           images in the batch gathered from every process, std + 1e-4, or the whole batch's std with
           ``train.global_std``), clamped to ±``train.adv_clip_max`` (5).
TRAINING   samples with advantage 0 left out (scripts/train_sd3.py@ac4c86e: "Filter out samples where the entire
           time dimension of advantages is zero"), the rest shuffled and split into ``flow.optimizer_steps``
           parts; each part, every trained step of every sample, the PPO-clipped ratio (``train.clip_range``) plus
           ``flow.kl_beta`` times the KL of the step's mean to the reference model's (the base: LoRA disabled,
           or a frozen copy in full fine-tuning), gradients accumulated into one optimizer step. CFG in this pass
           too (``flow.train_cfg``). An EMA of the trained weights (``flow.ema``) is what evaluation and the
           exported weights use, as Flow-GRPO evaluates and saves it.

Defaults (``algorithm_entry("flow_grpo").defaults`` and the ``flow`` section): Flow-GRPO's SD3.5-M configurations,
config/grpo.py@54809b5 ``general_ocr_sd3`` / ``geneval_sd3`` (10 steps, CFG 4.5, 512 px, timestep fraction 0.99,
beta 0.04, global std, EMA) on config/base.py@ac4c86e (lr 3e-4, weight decay 1e-4, clip 1e-4, advantages ±5, noise
level 0.7) and scripts/train_sd3.py@ac4c86e (LoRA r 32, alpha 64, its eight attention projections; EMA 0.9 every 8
steps); Fast: ``geneval_sd3_fast_nocfg`` (a 3-step "cps" window in the first half, noise level 0.8, no CFG, clip
1e-5, beta 0). Not Flow-GRPO's: its 24 images per prompt spread over 32 GPUs are here a process's batch of 24 images
of one prompt (``sample.batch_size`` = ``sample.images_per_prompt`` = 24); the EMA steps once per optimizer step.

    >>> from rewardbench.trainers.algorithms import algorithm_entry
    >>> d = algorithm_entry("flow_grpo_fast").defaults
    >>> d["flow.window_size"], d["flow.sde_type"], d["sample.guidance_scale"]
    (3, 'cps', 1.0)
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from ..ddpo_math import clipped_policy_loss
from ..flow_math import EMA, kl_to_reference, sde_step_with_logprob, sde_window, trained_steps
from ..flow_sampling import (
    TextEmbeds,
    encode_prompts,
    is_flux,
    prepare_transformer,
    sample_flow,
    save_transformer,
    schedule,
    velocity,
)
from . import Optimization, UpdateStats
from .ddpo import WEIGHT_DTYPES


@dataclass
class FlowGRPOSamples:
    """What Flow-GRPO keeps of one task's samples (shapes per process; S = trained steps)."""

    text: TextEmbeds  # (B, L, D) and (B, P)
    latents: torch.Tensor  # (B, S, C, h, w): x before each trained step
    next_latents: torch.Tensor  # (B, S, C, h, w): after it
    log_probs: torch.Tensor  # (B, S) under the sampling policy
    steps: torch.Tensor  # (B, S) the trained steps' indices in the schedule (a Fast window may differ per batch)
    images: torch.Tensor  # (B, 3, H, W) in [0, 1]


class FlowModel:
    """What the flow algorithms share: the SD3 or FLUX pipeline, the trainable transformer (LoRA or full), the reference
    model, the EMA of the trained weights, the schedule, the pretraining loss and the export."""

    def __init__(self, config, accelerator):
        from rewardbench.benchmarks.pipelines import load_flow_pipeline, resolution_problem, vae_scale

        m, f = config.model, config.flow
        self.config, self.accelerator, self.device = config, accelerator, accelerator.device
        self.weight_dtype = WEIGHT_DTYPES[m.mixed_precision]
        self.pipe = load_flow_pipeline(m.pretrained, m.revision, m.tiny_seed)
        if problem := resolution_problem(m.resolution, vae_scale(self.pipe)):  # a hub pipeline: known only now
            from rewardbench.errors import UsageError

            raise UsageError(f"model.resolution={m.resolution}: {problem}")
        self.params = prepare_transformer(self.pipe, m, self.device, self.weight_dtype)
        self.model = self.pipe.transformer
        self.neg = encode_prompts(self.pipe, [config.sample.negative_prompt])  # (1, L, D), (1, P)
        self.timesteps, self.sigmas = schedule(self.pipe, config.sample.num_steps, self.device, m.resolution)
        # a pass without CFG: SD3 unguided; FLUX with its guidance embedding at the sampling scale (guidance-distilled)
        self.plain_guidance = config.sample.guidance_scale if is_flux(self.model) else 1.0
        # the reference of a full fine-tuning: a frozen copy of the base (LoRA: the adapters disabled)
        self.ref = copy.deepcopy(self.model).requires_grad_(False).eval() \
            if self._kl_weight() > 0 and not m.lora else None
        self.ema = EMA(self.params, f.ema_decay, f.ema_every) if f.ema else None

    def _kl_weight(self) -> float:
        return self.config.flow.kl_beta

    def reference_velocity(self, x, t, text, neg, guidance_scale) -> torch.Tensor:
        """The reference model's velocity (no gradient): the base, LoRA disabled, or the frozen copy."""
        with torch.no_grad():
            if self.ref is not None:
                return velocity(self.ref, x, t, text, neg, guidance_scale)
            self.model.disable_adapters()
            try:
                return velocity(self.model, x, t, text, neg, guidance_scale)
            finally:
                self.model.enable_adapters()

    def optimizer_step(self, opt: Optimization) -> float:
        """One optimizer step, then the EMA's (at the optimizer step's index, which a resume restores)."""
        grad_norm = opt.step()
        if self.ema is not None:
            self.ema.step(self.params, opt.lr_scheduler.last_epoch - 1)
        return grad_norm

    #### L_PRE ####
    def pretrain_loss(self, model: torch.nn.Module, pixels: torch.Tensor, captions: list[str],
                      generator: torch.Generator) -> torch.Tensor:
        """The flow-matching loss on real image-caption pairs: x_sigma = (1 - sigma) z + sigma noise with sigma
        uniform in (0, 1), the velocity target noise - z (SD3's training objective, unweighted)."""
        vae = self.pipe.vae
        with torch.no_grad():
            z = vae.encode(pixels.to(self.device, vae.dtype)).latent_dist.sample()
            z = (z.float() - vae.config.shift_factor) * vae.config.scaling_factor
            text = encode_prompts(self.pipe, captions)
        noise = torch.randn(z.shape, generator=generator).to(self.device)
        sigma = torch.rand(z.shape[0], generator=generator).to(self.device)
        s = sigma.view(-1, 1, 1, 1)
        with self.accelerator.autocast():
            pred = velocity(model, (1 - s) * z + s * noise, sigma * 1000, text, None, self.plain_guidance)
        return torch.nn.functional.mse_loss(pred.float(), (noise - z).float())

    def save_weights(self, model: torch.nn.Module, dest: Path) -> Path:
        """The trained weights (the EMA's, with ``flow.ema``) as LoRA (``pytorch_lora_weights.safetensors``) or the
        transformer (``dest/transformer``); run-benchmark loads either."""
        with self.swapped(self.ema.shadow if self.ema is not None else None):
            return save_transformer(model, dest, self.config.model.lora)

    @contextlib.contextmanager
    def swapped(self, tensors: list[torch.Tensor] | None):
        """``tensors`` (an EMA's, an old model's) in the trainable parameters for the duration, the trained
        weights back after; nothing changes with None."""
        if tensors is None:
            yield
            return
        kept = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for p, e in zip(self.params, tensors, strict=True):
                p.copy_(e.to(p.device, p.dtype))
        try:
            yield
        finally:
            with torch.no_grad():
                for p, k in zip(self.params, kept, strict=True):
                    p.copy_(k)

    def extra_state(self) -> dict[str, torch.Tensor]:
        return self.ema.state_dict() if self.ema is not None else {}

    def load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        if self.ema is not None:
            if not state:
                raise RuntimeError("the checkpoint holds no EMA weights, which flow.ema=true needs to resume exactly")
            self.ema.load_state_dict(state)


class FlowGRPO(FlowModel):
    """Flow-GRPO and Flow-GRPO-Fast (see the module's docstring) on an SD3 or FLUX pipeline, LoRA or full
    transformer."""

    #### SAMPLING ####
    def sample(self, prompts: list[str], generator: torch.Generator) -> Iterator[FlowGRPOSamples]:
        s, m, f = self.config.sample, self.config.model, self.config.flow
        self.model.eval()
        text = encode_prompts(self.pipe, prompts)
        for lo in range(0, len(prompts), s.micro_batch_size):
            part = text[lo:lo + s.micro_batch_size]
            b = part.embeds.shape[0]
            if f.window_size:  # Fast: a window drawn for each sampling call, as its pipeline draws it
                window, train = sde_window(s.num_steps, f.window_size, f.window_range or None, generator), None
            else:
                window, train = (0, s.num_steps), trained_steps(s.num_steps, f.timestep_fraction)
            smp = sample_flow(self.pipe, self.model, part, self.neg.expand(b), num_steps=s.num_steps,
                              resolution=m.resolution, guidance_scale=s.guidance_scale, noise_level=f.noise_level,
                              window=window, train_steps=train, sde_type=f.sde_type, generator=generator,
                              reduction=self.config.train.logprob_reduction, autocast=self.accelerator.autocast)
            yield FlowGRPOSamples(part, smp.latents, smp.next_latents, smp.log_probs,
                                  smp.steps.to(self.device).expand(b, -1), smp.images)

    def join(self, parts: list[FlowGRPOSamples]) -> FlowGRPOSamples:
        return FlowGRPOSamples(text=TextEmbeds.cat([x.text for x in parts]),
                               latents=torch.cat([x.latents for x in parts]),  # (B, S, C, h, w)
                               next_latents=torch.cat([x.next_latents for x in parts]),  # (B, S, C, h, w)
                               log_probs=torch.cat([x.log_probs for x in parts]),  # (B, S)
                               steps=torch.cat([x.steps for x in parts]),  # (B, S)
                               images=torch.cat([x.images for x in parts]))  # (B, 3, H, W)

    #### TRAINING ####
    def update(self, samples: FlowGRPOSamples, advantages: torch.Tensor, opt: Optimization, *, weight: float,
               seed: int, generator: torch.Generator, pretrain: Callable[[], torch.Tensor] | None = None
               ) -> UpdateStats:
        """The samples with a non-zero advantage, shuffled, in ``flow.optimizer_steps`` parts: each part's clipped
        loss (plus beta KL) over every trained step, accumulated into one optimizer step."""
        parts = self._parts(advantages, generator, opt)
        n_steps = samples.steps.shape[1]
        stats, kl_sum, n = UpdateStats(), 0.0, max(1, int((advantages != 0).sum()))
        self.model.train()
        for pi, (idx, batches) in enumerate(parts):
            pretrain_here = pretrain is not None and pi == len(parts) - 1
            n_backward, done = len(batches) * n_steps + pretrain_here, 0
            for mb in batches:
                real = mb.numel() > 0
                mb = mb if real else torch.zeros(1, dtype=torch.long, device=self.device)  # keeps DDP in step
                for j in range(n_steps):
                    sync = contextlib.nullcontext() if done == n_backward - 1 else opt.accelerator.no_sync(opt.model)
                    with sync:
                        loss, info = self._loss(samples, advantages, mb, j, opt.model)
                        # the part's mean over its samples and steps; the task weight scales its update
                        scale = weight * len(mb) / max(1, idx.numel()) / n_steps if real else 0.0
                        opt.accelerator.backward(loss * scale)
                    done += 1
                    if real:
                        share = len(mb) / n / n_steps
                        stats.policy_loss += float(info["policy_loss"]) * share
                        stats.clipfrac += float(info["clipfrac"]) * share
                        stats.approx_kl += float(info["approx_kl"]) * share
                        kl_sum += float(info["kl"]) * share
            if pretrain_here:
                mse = pretrain()
                opt.accelerator.backward(mse * self.config.pretrain.beta)
                stats.pretrain_loss = float(mse.detach())
            stats.grad_norm = self.optimizer_step(opt)
        stats.extra = {"kl_loss": kl_sum, "trained_samples": float((advantages != 0).sum())}
        return stats

    def _parts(self, advantages: torch.Tensor, generator: torch.Generator, opt: Optimization
               ) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        """The kept samples (advantage != 0) shuffled into ``flow.optimizer_steps`` parts, each as its micro-batches;
        every process takes the same number of micro-batches per part (the most any has; the others' extra ones
        are empty), so their gradients are synchronised at the same backward. A part no process has samples for
        takes no optimizer step (none at all when every advantage is 0, as in Flow-GRPO)."""
        mb_size, k = self.config.train.micro_batch_size, self.config.flow.optimizer_steps
        # a permutation of every sample, then the kept ones in its order: the stream advances alike whatever the
        # advantages (a constant-reward control keeps its noise in step with the rewarded runs)
        order = torch.randperm(advantages.numel(), generator=generator).to(self.device)
        kept = order[advantages[order] != 0]
        chunks = list(torch.tensor_split(kept, k))
        counts = torch.tensor([math.ceil(c.numel() / mb_size) for c in chunks], device=self.device)
        acc = opt.accelerator
        if acc.num_processes > 1:
            counts = acc.gather(counts).reshape(acc.num_processes, -1).amax(0)
        out = []
        for c, count in zip(chunks, counts.tolist()):
            if count == 0:
                continue
            batches = [c[lo:lo + mb_size] for lo in range(0, c.numel(), mb_size)]
            batches += [c[:0]] * (count - len(batches))
            out.append((c, batches))
        return out

    def _loss(self, samples: FlowGRPOSamples, advantages: torch.Tensor, idx: torch.Tensor, j: int,
              model: torch.nn.Module) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The clipped loss of the samples ``idx`` at their j-th trained step, plus beta times the KL of the step's
        mean to the reference's (scripts/train_sd3.py@ac4c86e, the training loop)."""
        s, f = self.config.sample, self.config.flow
        k = samples.steps[idx, j]  # (b,) indices in the schedule
        x, x_next = samples.latents[idx, j], samples.next_latents[idx, j]
        t, sigma, sigma_next = self.timesteps[k], self.sigmas[k], self.sigmas[k + 1]
        text = samples.text[idx]
        neg = self.neg.expand(len(idx)) if f.train_cfg and s.guidance_scale > 1 else None
        with self.accelerator.autocast():
            v = velocity(model, x, t, text, neg, s.guidance_scale)
        kw = dict(noise_level=f.noise_level, sigma_max=float(self.sigmas[1]), sde_type=f.sde_type, prev_sample=x_next,
                  reduction=self.config.train.logprob_reduction)
        step = sde_step_with_logprob(v, x, sigma, sigma_next, **kw)
        loss, info = clipped_policy_loss(step.log_prob, samples.log_probs[idx, j], advantages[idx],
                                         clip_range=self.config.train.clip_range)
        info["policy_loss"] = loss.detach()
        info["kl"] = torch.zeros(())
        if f.kl_beta > 0:
            with self.accelerator.autocast():
                v_ref = self.reference_velocity(x, t, text, neg, s.guidance_scale)
            ref = sde_step_with_logprob(v_ref, x, sigma, sigma_next, **kw)
            kl = kl_to_reference(step.mean, ref.mean, step.std_dev_t).mean()
            loss = loss + f.kl_beta * kl
            info["kl"] = kl.detach()
        return loss, info
