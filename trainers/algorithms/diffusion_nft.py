"""DiffusionNFT (Zheng et al., arXiv 2509.16117; code NVlabs/DiffusionNFT@24af555, scripts/train_nft_sd3.py) on
Stable Diffusion 3 / 3.5 and FLUX.1: ``train.algorithm: diffusion_nft``.

SAMPLING   the old model (below) samples deterministically (the flow ODE, Euler steps; no log-probabilities) and,
           as DiffusionNFT's configs do, CFG-free (``sample.guidance_scale`` 1); only the clean latents x_0 are kept.
           FLUX.1 (guidance-distilled, never two passes) samples and trains with its guidance embedding at
           ``sample.guidance_scale`` (not DiffusionNFT's: its released code trains SD3.5 only).
ADVANTAGES the shared loop's per prompt group (``train.group_advantages``, ``train.global_std``), clamped to ±5,
           mapped to the optimality probability r = clamp(A / 5 / 2 + 1/2, 0, 1) (trainers/flow_math.nft_reward).
TRAINING   the forward process: for each sample, ``int(num_steps * flow.timestep_fraction)`` of the schedule's
           timesteps in a random order of its own, fresh noise, x_t = (1 - t) x_0 + t noise; the velocities of the
           current model v, the old model v_old and the reference v_ref at x_t; the loss of the implicit positive
           and negative policies v+ = beta v + (1 - beta) v_old and v- = (1 + beta) v_old - beta v with their
           adaptive weights (trainers/flow_math.nft_loss, ``flow.nft_beta``) plus ``flow.nft_kl_beta`` times
           ||v - v_ref||^2, the velocity regulariser; gradients of ``flow.optimizer_steps`` parts accumulated into
           one optimizer step each. Every sample trains (DiffusionNFT filters none).
OLD MODEL  after each iteration, old <- d old + (1 - d) current with d = ``nft_old_decay(optimizer steps,
           flow.nft_decay_type)`` (type 1: rising 0.001 a step to 0.5); the old model starts as the current one.
EMA        of the trained weights, 0.9 every step (``flow.ema_every`` 1), what evaluation and the exported
           weights use, as DiffusionNFT evaluates and saves it.

Not DiffusionNFT's: it samples for training with a second-order DPM solver (config/nft.py ``sample.solver =
"dpm2"``); here the Euler ODE step (its evaluation sampler, ``solver="flow"``). The old model is a copy of the
trainable weights swapped in (DiffusionNFT: a second LoRA adapter "old"), so full fine-tuning works too, with the
reference a frozen copy (DiffusionNFT asserts LoRA). The old and reference velocities are computed before the
update's gradient passes (they do not change during it), from the same noise and timesteps.

    >>> from rewardbench.trainers.algorithms import algorithm_entry
    >>> d = algorithm_entry("diffusion_nft").defaults
    >>> d["sample.guidance_scale"], d["flow.ema_every"], d["flow.optimizer_steps"]
    (1.0, 1, 1)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from ..flow_math import nft_loss, nft_old_decay, nft_reward, trained_steps
from ..flow_sampling import TextEmbeds, encode_prompts, is_flux, sample_flow, velocity
from . import Optimization, UpdateStats
from .flow_grpo import FlowModel


@dataclass
class NFTSamples:
    """What DiffusionNFT keeps of one task's samples (shapes per process)."""

    text: TextEmbeds  # (B, L, D) and (B, P)
    x0: torch.Tensor  # (B, C, h, w): the clean latents
    images: torch.Tensor  # (B, 3, H, W) in [0, 1]


@dataclass
class _Targets:
    """The forward-process points of one update and the fixed velocities there (no gradient)."""

    t: torch.Tensor  # (B, S) sigma in (0, 1]
    x_t: torch.Tensor  # (B, S, C, h, w)
    v_old: torch.Tensor  # (B, S, C, h, w)
    v_ref: torch.Tensor | None  # (B, S, C, h, w), None without the regulariser


class DiffusionNFT(FlowModel):
    """DiffusionNFT (see the module's docstring) on an SD3 or FLUX pipeline, LoRA or full transformer."""

    def __init__(self, config, accelerator):
        super().__init__(config, accelerator)
        if config.sample.guidance_scale != 1 and not is_flux(self.model):  # a base the config check could not read
            from rewardbench.errors import UsageError

            raise UsageError(f"sample.guidance_scale={config.sample.guidance_scale}: DiffusionNFT samples and trains "
                             f"CFG-free (guidance 1), and {config.model.pretrained} is no FLUX.1 (whose guidance is "
                             "an embedding)")
        self.old = [p.detach().clone() for p in self.params]  # the old (sampling) model's trainable weights

    def _kl_weight(self) -> float:
        return self.config.flow.nft_kl_beta

    #### SAMPLING ####
    def sample(self, prompts: list[str], generator: torch.Generator) -> Iterator[NFTSamples]:
        s, m = self.config.sample, self.config.model
        self.model.eval()
        text = encode_prompts(self.pipe, prompts)
        for lo in range(0, len(prompts), s.micro_batch_size):
            part = text[lo:lo + s.micro_batch_size]
            with self.swapped(self.old):
                smp = sample_flow(self.pipe, self.model, part, self.neg.expand(part.embeds.shape[0]),
                                  num_steps=s.num_steps, resolution=m.resolution, guidance_scale=s.guidance_scale,
                                  noise_level=0.0, window=(0, 0), generator=generator,
                                  autocast=self.accelerator.autocast)
            yield NFTSamples(part, smp.final, smp.images)

    def join(self, parts: list[NFTSamples]) -> NFTSamples:
        return NFTSamples(text=TextEmbeds.cat([x.text for x in parts]), x0=torch.cat([x.x0 for x in parts]),
                          images=torch.cat([x.images for x in parts]))

    #### TRAINING ####
    def update(self, samples: NFTSamples, advantages: torch.Tensor, opt: Optimization, *, weight: float, seed: int,
               generator: torch.Generator, pretrain: Callable[[], torch.Tensor] | None = None) -> UpdateStats:
        """DiffusionNFT's loss on every sample at its trained timesteps, ``flow.optimizer_steps`` optimizer steps;
        then the old model moves towards the trained one."""
        f, tr = self.config.flow, self.config.train
        n = samples.x0.shape[0]
        r = nft_reward(advantages, tr.adv_clip_max)  # (B,) in [0, 1]
        targets = self._targets(samples, generator)
        n_steps = targets.t.shape[1]
        order = torch.randperm(n, generator=generator).to(self.device)  # DiffusionNFT shuffles the samples
        parts = [p for p in torch.tensor_split(order, f.optimizer_steps) if p.numel()]
        stats, terms = UpdateStats(), {"kl_loss": 0.0, "nft_positive": 0.0, "nft_negative": 0.0}
        self.model.train()
        for pi, part in enumerate(parts):
            batches = [part[lo:lo + tr.micro_batch_size] for lo in range(0, part.numel(), tr.micro_batch_size)]
            pretrain_here = pretrain is not None and pi == len(parts) - 1
            n_backward, done = len(batches) * n_steps + pretrain_here, 0
            for idx in batches:
                for j in range(n_steps):
                    sync = contextlib.nullcontext() if done == n_backward - 1 else opt.accelerator.no_sync(opt.model)
                    with sync:
                        loss, info = self._loss(samples, targets, r, idx, j, opt.model)
                        opt.accelerator.backward(loss * weight * len(idx) / part.numel() / n_steps)
                    done += 1
                    share = len(idx) / n / n_steps
                    stats.policy_loss += float(info["policy_loss"]) * share
                    for k in terms:
                        terms[k] += float(info[k]) * share
            if pretrain_here:
                mse = pretrain()
                opt.accelerator.backward(mse * self.config.pretrain.beta)
                stats.pretrain_loss = float(mse.detach())
            stats.grad_norm = self.optimizer_step(opt)
        decay = nft_old_decay(opt.lr_scheduler.last_epoch, f.nft_decay_type)
        with torch.no_grad():  # old <- decay old + (1 - decay) current (train_nft_sd3.py, after each epoch)
            for o, p in zip(self.old, self.params, strict=True):
                o.copy_(o * decay + p.detach().to(o.dtype) * (1.0 - decay))
        stats.extra = {**terms, "old_decay": decay}
        return stats

    @torch.no_grad()
    def _targets(self, samples: NFTSamples, generator: torch.Generator) -> _Targets:
        """Each sample's trained timesteps (a random order of the schedule's, the first
        ``int(num_steps * timestep_fraction)``), noise, x_t, and the old and reference models' velocities there."""
        f, tr = self.config.flow, self.config.train
        n, num = samples.x0.shape[0], self.timesteps.shape[0]
        k = trained_steps(num, f.timestep_fraction)
        picks = torch.stack([torch.randperm(num, generator=generator)[:k] for _ in range(n)]).to(self.device)  # (B, S)
        t = self.timesteps[picks] / 1000.0  # (B, S) sigma (FlowMatchEulerDiscreteScheduler: timestep = 1000 sigma)
        noise = torch.randn((n, k, *samples.x0.shape[1:]), generator=generator).to(self.device)
        te = t.view(n, k, *([1] * (samples.x0.ndim - 1)))
        x_t = (1 - te) * samples.x0[:, None] + te * noise  # (B, S, C, h, w)
        v_old, v_ref = torch.empty_like(x_t), torch.empty_like(x_t) if f.nft_kl_beta > 0 else None
        self.model.eval()
        g = self.plain_guidance
        for out, fn in ((v_old, lambda x, tj, text: velocity(self.model, x, tj, text, None, g)),
                        (v_ref, lambda x, tj, text: self.reference_velocity(x, tj, text, None, g))):
            if out is None:
                continue
            with self.swapped(self.old if out is v_old else None), self.accelerator.autocast():
                for lo in range(0, n, tr.micro_batch_size):
                    sl = slice(lo, lo + tr.micro_batch_size)
                    for j in range(k):
                        out[sl, j] = fn(x_t[sl, j], t[sl, j] * 1000.0, samples.text[sl])
        return _Targets(t, x_t, v_old, v_ref)

    def _loss(self, samples: NFTSamples, targets: _Targets, r: torch.Tensor, idx: torch.Tensor, j: int,
              model: torch.nn.Module) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The samples ``idx`` at their j-th trained timestep: DiffusionNFT's policy loss plus the regulariser."""
        f, tr = self.config.flow, self.config.train
        x_t, t = targets.x_t[idx, j], targets.t[idx, j]
        with self.accelerator.autocast():
            v = velocity(model, x_t, t * 1000.0, samples.text[idx], None, self.plain_guidance)
        loss, info = nft_loss(v, targets.v_old[idx, j], x_t, samples.x0[idx], t, r[idx], f.nft_beta,
                              tr.adv_clip_max)
        policy = loss.mean()
        out = {"policy_loss": policy.detach(), "nft_positive": info["positive"].mean(),
               "nft_negative": info["negative"].mean(), "kl_loss": torch.zeros(())}
        if targets.v_ref is not None:
            kl = ((v - targets.v_ref[idx, j]) ** 2).mean(dim=tuple(range(1, v.ndim))).mean()
            out["kl_loss"] = kl.detach()
            return policy + f.nft_kl_beta * kl, out
        return policy, out

    def extra_state(self) -> dict[str, torch.Tensor]:
        return {**super().extra_state(), **{f"old.{i}": o for i, o in enumerate(self.old)}}

    def load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        if not any(k.startswith("old.") for k in state):
            raise RuntimeError("the checkpoint holds no old model, which DiffusionNFT needs to resume exactly")
        super().load_extra_state({k: v for k, v in state.items() if k.startswith("ema.")})
        for i, o in enumerate(self.old):
            o.copy_(state[f"old.{i}"].to(o.device, o.dtype))
