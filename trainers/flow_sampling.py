"""Stable Diffusion 3 for the flow-matching trainers (Flow-GRPO, DiffusionNFT): prompt embeddings, the
transformer's velocity with or without CFG, sampling that keeps what a loss needs (Flow-GRPO: the latents before
and after each trained step and the step's log-probability; DiffusionNFT: the clean latents of a deterministic
run), decoding, LoRA or full fine-tuning of the transformer, and saving what was trained.

The step maths is `rewardbench.trainers.flow_math` (Flow-GRPO's SDE/CPS step, bit-identical to its code); the
loop's order follows Flow-GRPO's ``pipeline_with_logprob`` (yifan123/flow_grpo@ac4c86e,
``flow_grpo/diffusers_patch/pipeline_with_logprob.py``) and its Fast pipeline (``sde_window``, 54809b5): the
scheduler's sigmas (``set_timesteps(num_steps)``), the timestep ``sigma * 1000`` given to the transformer, noise
level a on the steps inside the window and the deterministic (Euler) step outside it.

Example (offline, CPU: the tiny random SD3)::

    >>> import torch
    >>> from rewardbench.benchmarks.pipelines import load_flow_pipeline
    >>> pipe = load_flow_pipeline("tiny-sd3")
    >>> text = encode_sd3(pipe, ["a cat", "a dog"])
    >>> g = torch.Generator().manual_seed(0)
    >>> out = sample_flow(pipe, pipe.transformer, text, encode_sd3(pipe, ["", ""]), num_steps=4, resolution=32,
    ...                   guidance_scale=4.5, noise_level=0.7, window=(0, 3), generator=g)
    >>> out.latents.shape, out.log_probs.shape, out.steps.tolist(), out.images.shape
    (torch.Size([2, 3, 4, 16, 16]), torch.Size([2, 3]), [0, 1, 2], torch.Size([2, 3, 32, 32]))
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .flow_math import sde_step_with_logprob
from .pipeline import make_trainable

# Flow-GRPO's SD3 LoRA (scripts/train_sd3.py@ac4c86e; DiffusionNFT's train_nft_sd3.py@24af555 is the same):
# r = 32, alpha = 64, Gaussian init, on the joint attention's projections of both streams
SD3_LORA_TARGETS = ("attn.add_k_proj", "attn.add_q_proj", "attn.add_v_proj", "attn.to_add_out", "attn.to_k",
                    "attn.to_out.0", "attn.to_q", "attn.to_v")
# Flow-GRPO's compute_text_embeddings: max_sequence_length=128 for the T5 tokens
MAX_SEQUENCE_LENGTH = 128


@dataclass
class TextEmbeds:
    """SD3's two text inputs for a batch of prompts."""

    embeds: torch.Tensor  # (B, 77 + T5 tokens, D) the joint attention's text tokens
    pooled: torch.Tensor  # (B, P) the two CLIP projections side by side

    def __getitem__(self, idx) -> TextEmbeds:
        return TextEmbeds(self.embeds[idx], self.pooled[idx])

    def expand(self, n: int) -> TextEmbeds:
        """One prompt's embeddings (batch 1) repeated ``n`` times."""
        return TextEmbeds(self.embeds.expand(n, -1, -1), self.pooled.expand(n, -1))

    @staticmethod
    def cat(parts: list[TextEmbeds]) -> TextEmbeds:
        return TextEmbeds(torch.cat([p.embeds for p in parts]), torch.cat([p.pooled for p in parts]))


@torch.no_grad()
def encode_sd3(pipe, prompts: list[str]) -> TextEmbeds:
    """SD3's prompt embeddings (both CLIPs, and T5 where the pipeline has one; zeros in its place otherwise)."""
    prompts = list(prompts)
    device = pipe.text_encoder.device
    embeds, _, pooled, _ = pipe.encode_prompt(prompt=prompts, prompt_2=prompts, prompt_3=prompts, device=device,
                                              do_classifier_free_guidance=False,
                                              max_sequence_length=MAX_SEQUENCE_LENGTH)
    return TextEmbeds(embeds.float(), pooled.float())


def velocity(model, x: torch.Tensor, t: torch.Tensor, text: TextEmbeds, neg: TextEmbeds | None,
             guidance_scale: float) -> torch.Tensor:
    """The transformer's velocity at latents ``x`` ``(B, C, h, w)`` and timesteps ``t`` ``(B,)`` (sigma * 1000),
    guided when ``neg`` is given: one batched call on [negative; prompt], v = v_u + g (v_c - v_u) with v_u taken as
    fixed (Flow-GRPO's training pass detaches it, scripts/train_sd3.py@ac4c86e ``compute_log_prob``; in sampling
    nothing has a gradient anyway)."""
    dtype = next(model.parameters()).dtype
    if neg is None:
        return model(hidden_states=x.to(dtype), timestep=t, encoder_hidden_states=text.embeds.to(dtype),
                     pooled_projections=text.pooled.to(dtype), return_dict=False)[0].float()
    both = model(hidden_states=torch.cat([x, x]).to(dtype), timestep=torch.cat([t, t]),
                 encoder_hidden_states=torch.cat([neg.embeds, text.embeds]).to(dtype),
                 pooled_projections=torch.cat([neg.pooled, text.pooled]).to(dtype), return_dict=False)[0].float()
    uncond, cond = both.chunk(2)
    uncond = uncond.detach()
    return uncond + guidance_scale * (cond - uncond)


def decode_sd3(pipe, latents: torch.Tensor) -> torch.Tensor:
    """Latents -> float images in [0, 1], ``(B, 3, H, W)`` (SD3's VAE: scaling and shift factors)."""
    vae = pipe.vae
    z = latents.to(vae.dtype) / vae.config.scaling_factor + vae.config.shift_factor
    return (vae.decode(z).sample.float() / 2 + 0.5).clamp(0, 1)


@dataclass
class FlowSamples:
    """What sampling keeps (shapes per process; S = the trained steps)."""

    latents: torch.Tensor  # (B, S, C, h, w): x before each trained step
    next_latents: torch.Tensor  # (B, S, C, h, w): x after it
    log_probs: torch.Tensor  # (B, S): the step's log-probability under the sampling policy (zeros when deterministic)
    steps: torch.Tensor  # (S,) the trained steps' indices in the schedule
    final: torch.Tensor  # (B, C, h, w): the clean latent x_0
    images: torch.Tensor  # (B, 3, H, W) in [0, 1]


def schedule(pipe, num_steps: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The scheduler's timesteps ``(num_steps,)`` and sigmas ``(num_steps + 1,)`` (the last 0), on ``device``."""
    sched = pipe.scheduler
    sched.set_timesteps(num_steps, device=device)
    return sched.timesteps.clone().float(), sched.sigmas.clone().float().to(device)


@torch.no_grad()
def sample_flow(pipe, model, text: TextEmbeds, neg: TextEmbeds, *, num_steps: int, resolution: int,
                guidance_scale: float, noise_level: float, window: tuple[int, int], train_steps: int | None = None,
                sde_type: str = "sde", generator: torch.Generator | None = None, reduction: str = "mean",
                autocast: Callable[[], Any] | None = None) -> FlowSamples:
    """Sample ``text``'s prompts: steps ``window[0] <= i < window[1]`` stochastic (noise level ``noise_level``, with
    their log-probabilities), the others deterministic; the steps kept for training are the window's, or the first
    ``train_steps`` when given (Flow-GRPO's timestep fraction; they must be stochastic). CFG when
    ``guidance_scale > 1`` (SD3's pipeline). Noise is drawn on the CPU from ``generator``: the same samples on every
    device. ``noise_level=0``: the deterministic (ODE, Euler) sampler, DiffusionNFT's CFG-free sampling."""
    device, b = text.embeds.device, text.embeds.shape[0]
    timesteps, sigmas = schedule(pipe, num_steps, device)
    f = pipe.vae_scale_factor
    shape = (b, model.config.in_channels, resolution // f, resolution // f)
    x = torch.randn(shape, generator=generator, dtype=torch.float32).to(device)  # x_1 = noise (sigma = 1)
    lo, hi = window
    kept = list(range(lo, hi)) if train_steps is None else list(range(train_steps))
    xs, nexts, logps = [], [], []
    ctx = autocast or contextlib.nullcontext
    use_neg = neg if guidance_scale > 1 else None
    for i, t in enumerate(timesteps):
        with ctx():
            v = velocity(model, x, t.expand(b), text, use_neg, guidance_scale)
        a = noise_level if lo <= i < hi else 0.0
        # Flow-GRPO passes sigma_max = the schedule's second sigma (sd3_sde_with_logprob: sigmas[1])
        step = sde_step_with_logprob(v, x, sigmas[i], sigmas[i + 1], noise_level=a, sigma_max=float(sigmas[1]),
                                     sde_type=sde_type, generator=generator, reduction=reduction)
        if i in kept:
            xs.append(x)
            nexts.append(step.prev_sample)
            logps.append(step.log_prob if step.log_prob is not None else torch.zeros(b, device=device))
        x = step.prev_sample
    with ctx():
        images = decode_sd3(pipe, x)
    empty = torch.zeros((b, 0, *shape[1:]), device=device)
    return FlowSamples(latents=torch.stack(xs, 1) if xs else empty, next_latents=torch.stack(nexts, 1) if xs else empty,
                       log_probs=torch.stack(logps, 1) if xs else torch.zeros(b, 0, device=device),
                       steps=torch.tensor(kept, dtype=torch.long), final=x, images=images.float())


def prepare_transformer(pipe, model_cfg, device, weight_dtype=torch.float32) -> list[torch.nn.Parameter]:
    """Freeze the VAE and text encoders (cast to ``weight_dtype``; the VAE stays float32, as Flow-GRPO keeps it),
    make the transformer trainable: LoRA adapters (peft, via diffusers' ``add_adapter``; base weights frozen in
    ``weight_dtype``, adapters float32) or every weight (float32). Returns the trainable parameters."""
    pipe.vae.requires_grad_(False).eval().to(device)
    for frozen in (pipe.text_encoder, pipe.text_encoder_2, getattr(pipe, "text_encoder_3", None)):
        if frozen is not None:
            frozen.requires_grad_(False).eval().to(device)
            if weight_dtype != torch.float32:
                frozen.to(weight_dtype)
    return make_trainable(pipe.transformer, model_cfg, device, weight_dtype)


def save_transformer(model: torch.nn.Module, dest: Path, lora: bool) -> Path:
    """LoRA: diffusers-format ``pytorch_lora_weights.safetensors`` (``pipe.load_lora_weights(dest)`` on the SD3 base);
    full fine-tuning: the transformer in ``dest/transformer`` (run-benchmark loads either from ``final/``)."""
    dest = Path(dest)
    if lora:
        from diffusers import StableDiffusion3Pipeline
        from peft.utils import get_peft_model_state_dict

        StableDiffusion3Pipeline.save_lora_weights(dest, transformer_lora_layers=get_peft_model_state_dict(model),
                                                   safe_serialization=True)
    else:
        model.save_pretrained(dest / "transformer")
    return dest
