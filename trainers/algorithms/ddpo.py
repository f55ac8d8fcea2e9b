"""DDPO as the paper runs it (arXiv 2401.12244, Algorithm 1; DDPO, arXiv 2305.13301, and its code ddpo-pytorch)
on Stable Diffusion UNet pipelines: ``train.algorithm: ddpo``, the default.

SAMPLING  DDIM with eta = 1 (``sample.eta``) and CFG, keeping every step's latents x_T..x_0 and the
          log-probability of each step under the sampling policy (trainers/pipeline.py).
TRAINING  K = ``train.timesteps_per_iter`` random timesteps per sample; at each, the UNet's guided prediction
          (CFG in the training pass too) gives the step's log-probability now, and the PPO-clipped ratio
          against the sampling one (clip range 1e-4) is the loss (trainers/ddpo_math.py). ``train.step_mode``:
          "paper" draws K timesteps for the whole batch and takes an optimizer step per timestep; "ddpo" draws K
          per sample and takes one step for all of them (ddpo-pytorch).
L_PRE     eps-prediction (or v-prediction) MSE on image-caption pairs, the paper's Eq. 9.

Its defaults are the config's own (trainers/config.py: the paper's values).

    >>> from rewardbench.trainers.algorithms import algorithm_entry
    >>> algorithm_entry("ddpo").defaults
    {}
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from ..ddpo_math import clipped_policy_loss, ddim_step_with_logprob
from ..pipeline import (
    encode_prompts,
    load_pipeline,
    prepare_for_training,
    resolution_problem,
    sample_with_logprob,
    unet_eps,
    vae_scale,
)
from . import Optimization, UpdateStats

WEIGHT_DTYPES = {"no": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}  # model.mixed_precision


@dataclass
class DDPOSamples:
    """What DDPO keeps of one task's samples for its loss (shapes per process)."""

    cond: torch.Tensor  # (B, 77, D) prompt embeddings
    latents: torch.Tensor  # (B, steps + 1, 4, h, w): x_T ... x_0
    log_probs: torch.Tensor  # (B, steps): log p(x_{t-1} | x_t) under the sampling policy
    timesteps: torch.Tensor  # (steps,) the DDIM timesteps, the same for every sample
    images: torch.Tensor  # (B, 3, H, W) in [0, 1]


class DDPO:
    """The paper's algorithm (see the module's docstring) on a diffusers UNet pipeline, LoRA or full UNet."""

    def __init__(self, config, accelerator):
        m = config.model
        self.config, self.accelerator, self.device = config, accelerator, accelerator.device
        self.weight_dtype = WEIGHT_DTYPES[m.mixed_precision]
        self.pipe = load_pipeline(m.pretrained, revision=m.revision, seed=m.tiny_seed)
        if problem := resolution_problem(m.resolution, vae_scale(self.pipe)):  # a hub pipeline: known only now
            from rewardbench.errors import UsageError

            raise UsageError(f"model.resolution={m.resolution}: {problem}")
        self.params = prepare_for_training(self.pipe, m, self.device, self.weight_dtype)
        self.model = self.pipe.unet
        self.neg_emb = encode_prompts(self.pipe, [config.sample.negative_prompt])  # (1, 77, D)
        self.alphas_cumprod = self.pipe.scheduler.alphas_cumprod.to(self.device)

    #### SAMPLING ####
    def sample(self, prompts: list[str], generator: torch.Generator) -> Iterator[DDPOSamples]:
        s, m = self.config.sample, self.config.model
        self.model.eval()
        cond = encode_prompts(self.pipe, prompts)  # (B, 77, D)
        for lo in range(0, len(prompts), s.micro_batch_size):
            c = cond[lo:lo + s.micro_batch_size]
            smp = sample_with_logprob(self.pipe, c, self.neg_emb.expand(c.shape[0], -1, -1), num_steps=s.num_steps,
                                      eta=s.eta, guidance_scale=s.guidance_scale, resolution=m.resolution,
                                      generator=generator, unet=self.model,
                                      reduction=self.config.train.logprob_reduction, autocast=self.accelerator.autocast)
            yield DDPOSamples(c, smp.latents, smp.log_probs, smp.timesteps, smp.images)

    def join(self, parts: list[DDPOSamples]) -> DDPOSamples:
        return DDPOSamples(cond=torch.cat([x.cond for x in parts]),  # (B, 77, D)
                           latents=torch.cat([x.latents for x in parts]),  # (B, steps + 1, 4, h, w)
                           log_probs=torch.cat([x.log_probs for x in parts]),  # (B, steps)
                           timesteps=parts[0].timesteps.to(self.device),  # (steps,)
                           images=torch.cat([x.images for x in parts]))  # (B, 3, H, W)

    #### TRAINING ####
    def update(self, samples: DDPOSamples, advantages: torch.Tensor, opt: Optimization, *, weight: float, seed: int,
               generator: torch.Generator, pretrain: Callable[[], torch.Tensor] | None = None) -> UpdateStats:
        """The PPO-clipped policy gradient on K timesteps per sample, ``train.step_mode``'s optimizer steps."""
        tr = self.config.train
        self.model.train()
        chosen, steps = self._timesteps(samples.latents.shape[0], samples.timesteps.shape[0], seed, generator)
        n, K = samples.latents.shape[0], tr.timesteps_per_iter
        batches = [torch.arange(lo, min(lo + tr.micro_batch_size, n), device=self.device)
                   for lo in range(0, n, tr.micro_batch_size)]
        stats = UpdateStats()
        for si, js in enumerate(steps):
            pretrain_here = pretrain is not None and si == len(steps) - 1
            n_backward, done = len(batches) * len(js) + pretrain_here, 0
            for idx in batches:
                for j in js:
                    # gradients are synchronised across processes on the last backward before the step only
                    sync = contextlib.nullcontext() if done == n_backward - 1 else opt.accelerator.no_sync(opt.model)
                    with sync:
                        loss, info = self._loss(samples, advantages, idx, chosen[idx, j], opt.model)
                        # the mean over this step's samples and timesteps; the task weight scales its update
                        opt.accelerator.backward(loss * weight * len(idx) / n / len(js))
                    done += 1
                    stats.policy_loss += float(loss.detach()) * len(idx) / n / K
                    stats.clipfrac += float(info["clipfrac"]) * len(idx) / n / K
                    stats.approx_kl += float(info["approx_kl"]) * len(idx) / n / K
            if pretrain_here:  # interleaved order: L_pre joins the task's (last) update
                mse = pretrain()
                opt.accelerator.backward(mse * self.config.pretrain.beta)
                stats.pretrain_loss = float(mse.detach())
            stats.grad_norm = opt.step()
        return stats

    def _timesteps(self, n: int, n_steps: int, seed: int, generator: torch.Generator
                   ) -> tuple[torch.Tensor, list[list[int]]]:
        """The trained steps' indices ``(B, K)`` and the optimizer steps, each a list of columns of them."""
        K = self.config.train.timesteps_per_iter
        if self.config.train.step_mode == "paper":  # K timesteps for the whole batch (every process), a step each
            shared = torch.Generator().manual_seed(seed)
            return torch.randperm(n_steps, generator=shared)[:K].expand(n, K).to(self.device), [[j] for j in range(K)]
        # ddpo-pytorch: K distinct random timesteps per sample, one optimizer step for all of them
        chosen = torch.stack([torch.randperm(n_steps, generator=generator)[:K] for _ in range(n)])  # (B, K)
        return chosen.to(self.device), [list(range(K))]

    def _loss(self, samples: DDPOSamples, advantages: torch.Tensor, idx: torch.Tensor, k: torch.Tensor,
              model: torch.nn.Module) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The clipped loss of the samples ``idx`` at their steps ``k`` ``(b,)``: the log-probability of the stored
        x_{t-1} given x_t under the model now (CFG as in sampling), against the sampling policy's."""
        s, sched = self.config.sample, self.pipe.scheduler
        n_steps = samples.timesteps.shape[0]
        x_t, x_prev, t = samples.latents[idx, k], samples.latents[idx, k + 1], samples.timesteps[k]
        with self.accelerator.autocast():
            eps = unet_eps(model, x_t, t, samples.cond[idx], self.neg_emb.expand(len(idx), -1, -1), s.guidance_scale)
        _, logp = ddim_step_with_logprob(
            eps, t, x_t, self.alphas_cumprod, sched.config.num_train_timesteps // n_steps, eta=s.eta,
            final_alpha_cumprod=sched.final_alpha_cumprod, prediction_type=sched.config.prediction_type,
            prev_sample=x_prev, reduction=self.config.train.logprob_reduction,
            clip_sample_range=sched.config.clip_sample_range if sched.config.clip_sample else None)
        return clipped_policy_loss(logp, samples.log_probs[idx, k], advantages[idx],
                                   clip_range=self.config.train.clip_range)

    #### L_PRE ####
    def pretrain_loss(self, model: torch.nn.Module, pixels: torch.Tensor, captions: list[str],
                      generator: torch.Generator) -> torch.Tensor:
        """The paper's Eq. 9: the UNet's noise (or velocity) prediction MSE on real image-caption pairs."""
        pipe, sched = self.pipe, self.pipe.scheduler
        with torch.no_grad():
            z = pipe.vae.encode(pixels.to(self.device, self.weight_dtype)).latent_dist.sample()
            z = z.float() * pipe.vae.config.scaling_factor  # (n, 4, h, w)
            enc = encode_prompts(pipe, captions)
        noise = torch.randn(z.shape, generator=generator).to(self.device)
        tt = torch.randint(sched.config.num_train_timesteps, (z.shape[0],), generator=generator).to(self.device)
        target = noise if sched.config.prediction_type == "epsilon" else sched.get_velocity(z, noise, tt)
        with self.accelerator.autocast():
            pred = model(sched.add_noise(z, noise, tt), tt, encoder_hidden_states=enc).sample
        return torch.nn.functional.mse_loss(pred.float(), target.float())

    def save_weights(self, model: torch.nn.Module, dest: Path) -> Path:
        """LoRA: diffusers-format ``pytorch_lora_weights.safetensors`` (loads with
        ``pipe.load_lora_weights(dest)``); full fine-tuning: the UNet in ``dest/unet``."""
        if self.config.model.lora:
            from diffusers import StableDiffusionPipeline
            from diffusers.utils import convert_state_dict_to_diffusers
            from peft.utils import get_peft_model_state_dict

            layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(model))
            StableDiffusionPipeline.save_lora_weights(dest, unet_lora_layers=layers, safe_serialization=True)
        else:
            model.save_pretrained(dest / "unet")
        return dest

    def extra_state(self) -> dict[str, torch.Tensor]:
        return {}  # the trainable weights, optimizer and RNGs are all DDPO needs to resume

    def load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        pass
