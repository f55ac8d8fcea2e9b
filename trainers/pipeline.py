"""Stable Diffusion for the trainer: the two model-facing steps of the algorithm, `encode_prompts` and
`sample_with_logprob` (DDIM with eta > 0, keeping every step's latents and log-probabilities), and
`prepare_for_training` (LoRA or full fine-tuning).

Loading and building pipelines (hub id, local path, LoRA on top, the tiny offline pipeline) lives in
``rewardbench.benchmarks.pipelines``, shared with run-benchmark's generators; it is re-exported here.

Example (offline, CPU)::

    >>> import torch
    >>> from rewardbench.trainers.pipeline import load_pipeline, encode_prompts, sample_with_logprob
    >>> pipe = load_pipeline("tiny")
    >>> emb = encode_prompts(pipe, ["a cat", "a dog"])
    >>> out = sample_with_logprob(pipe, emb, encode_prompts(pipe, ["", ""]), num_steps=3, resolution=32,
    ...                           generator=torch.Generator().manual_seed(0))
    >>> out.latents.shape, out.log_probs.shape, out.images.shape
    (torch.Size([2, 4, 4, 16, 16]), torch.Size([2, 3]), torch.Size([2, 3, 32, 32]))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from rewardbench.benchmarks.pipelines import (
    SD2_BASE_TEXT,
    SD2_BASE_UNET,
    SD2_BASE_VAE,
    SD_SCHEDULER,
    build_components,
    load_pipeline,
    resolution_problem,
    vae_scale,
)

from .ddpo_math import ddim_step_with_logprob, guided

__all__ = ["SD2_BASE_TEXT", "SD2_BASE_UNET", "SD2_BASE_VAE", "SD_SCHEDULER", "build_components", "load_pipeline",
           "vae_scale", "resolution_problem", "prepare_for_training", "encode_prompts", "Samples", "unet_eps", "decode",
           "sample_with_logprob"]


def prepare_for_training(pipe, model_cfg, device, weight_dtype=torch.float32) -> list[torch.nn.Parameter]:
    """Freeze the VAE and text encoder (cast to ``weight_dtype``), make the UNet trainable: LoRA
    adapters (peft, via diffusers' ``unet.add_adapter``; base weights frozen in ``weight_dtype``,
    adapters in fp32) or every UNet weight (fp32, autocast does the rest). Returns the trainable params."""
    for frozen in (pipe.vae, pipe.text_encoder):
        frozen.requires_grad_(False).eval().to(device)
        if weight_dtype != torch.float32:
            frozen.to(weight_dtype)
    return make_trainable(pipe.unet, model_cfg, device, weight_dtype)


def make_trainable(denoiser: torch.nn.Module, model_cfg, device,
                   weight_dtype=torch.float32) -> list[torch.nn.Parameter]:
    """A denoiser (a UNet, an SD3 transformer) made trainable as ``model_cfg`` says: LoRA adapters (peft, via
    diffusers' ``add_adapter``; base weights frozen in ``weight_dtype``, adapters float32) on
    ``model_cfg.lora_targets``, or every weight (float32); gradient checkpointing if asked. Returns the trainable
    parameters."""
    if model_cfg.lora:
        from diffusers.training_utils import cast_training_params
        from peft import LoraConfig

        denoiser.requires_grad_(False).to(device)
        if weight_dtype != torch.float32:
            denoiser.to(weight_dtype)
        denoiser.add_adapter(LoraConfig(r=model_cfg.lora_rank, lora_alpha=model_cfg.lora_alpha,
                                        init_lora_weights="gaussian", target_modules=list(model_cfg.lora_targets)))
        cast_training_params(denoiser, dtype=torch.float32)
    else:
        denoiser.requires_grad_(True).to(device)
    if model_cfg.gradient_checkpointing:
        denoiser.enable_gradient_checkpointing()
    return [p for p in denoiser.parameters() if p.requires_grad]


@torch.no_grad()
def encode_prompts(pipe, prompts: list[str]) -> torch.Tensor:
    """Text-encoder hidden states ``(B, 77, D)`` for ``prompts`` (padded to the tokenizer's max length)."""
    tok = pipe.tokenizer(list(prompts), padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt")
    te = pipe.text_encoder
    return te(tok.input_ids.to(te.device))[0]


@dataclass
class Samples:
    """What sampling keeps for the training pass (shapes per process)."""

    latents: torch.Tensor  # (B, steps + 1, 4, h, w): x_T ... x_0
    log_probs: torch.Tensor  # (B, steps): log p(x_{t-1} | x_t) under the sampling policy
    timesteps: torch.Tensor  # (steps,) the DDIM timesteps, same for every sample
    images: torch.Tensor  # (B, 3, H, W) float in [0, 1]


def unet_eps(unet, latents: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor,
             guidance_scale: float) -> torch.Tensor:
    """The guided model output at ``latents`` (one batched UNet call on [uncond; cond])."""
    x = torch.cat([latents, latents])
    tt = t.reshape(-1).expand(latents.shape[0]) if t.numel() == 1 else t
    pred = unet(x, torch.cat([tt, tt]), encoder_hidden_states=torch.cat([uncond, cond])).sample
    return guided(pred, guidance_scale)


def decode(pipe, latents: torch.Tensor) -> torch.Tensor:
    """Latents -> float images in [0, 1], ``(B, 3, H, W)``."""
    vae = pipe.vae
    img = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor).sample
    return (img.float() / 2 + 0.5).clamp(0, 1)


@torch.no_grad()
def sample_with_logprob(pipe, cond: torch.Tensor, uncond: torch.Tensor, num_steps: int = 50, eta: float = 1.0,
                        guidance_scale: float = 7.0, resolution: int = 512, generator: torch.Generator | None = None,
                        unet: torch.nn.Module | None = None, reduction: str = "mean",
                        autocast: Callable[[], Any] | None = None) -> Samples:
    """DDIM sampling with eta > 0 that keeps x_T..x_0 and each step's log-probability.

    Noise is drawn on the CPU from ``generator`` and moved to the device, so a seed gives the same
    samples on every device. ``unet`` overrides ``pipe.unet`` (e.g. the trained, unwrapped model).
    """
    import contextlib

    unet = unet if unet is not None else pipe.unet
    sched = pipe.scheduler
    sched.set_timesteps(num_steps)
    device = cond.device
    b = cond.shape[0]
    f = vae_scale(pipe)
    shape = (b, unet.config.in_channels, resolution // f, resolution // f)
    latents = torch.randn(shape, generator=generator, dtype=torch.float32).to(device)
    latents = latents * sched.init_noise_sigma
    all_latents, all_logps = [latents], []
    ac = sched.alphas_cumprod.to(device)
    step_ratio = sched.config.num_train_timesteps // sched.num_inference_steps
    ctx = autocast or contextlib.nullcontext
    for t in sched.timesteps:
        tb = t.to(device).reshape(1).expand(b)
        with ctx():
            eps = unet_eps(unet, latents, tb, cond, uncond, guidance_scale)
        noise = torch.randn(shape, generator=generator, dtype=torch.float32).to(device)
        latents, logp = ddim_step_with_logprob(
            eps, tb, latents, ac, step_ratio, eta=eta, final_alpha_cumprod=sched.final_alpha_cumprod,
            prediction_type=sched.config.prediction_type, noise=noise, reduction=reduction,
            clip_sample_range=sched.config.clip_sample_range if sched.config.clip_sample else None)
        latents = latents.float()
        all_latents.append(latents)
        all_logps.append(logp)
    with ctx():
        images = decode(pipe, latents)
    return Samples(latents=torch.stack(all_latents, dim=1), log_probs=torch.stack(all_logps, dim=1),
                   timesteps=sched.timesteps.clone(), images=images.float())
