"""Stable Diffusion 3 / 3.5 and FLUX.1 for the flow-matching trainers (Flow-GRPO, DiffusionNFT): prompt embeddings,
the transformer's velocity (SD3: with or without CFG; FLUX.1: its embedded guidance), sampling that keeps what a
loss needs (Flow-GRPO: the latents before and after each trained step and the step's log-probability;
DiffusionNFT: the clean latents of a deterministic run), decoding, LoRA or full fine-tuning of the transformer, and
saving what was trained.

Latents are kept as images of latents, ``(B, C, h, w)``, for both families: FLUX's transformer takes them packed
into 2x2 patches (a sequence of ``h/2 * w/2`` tokens of ``4C`` channels, as diffusers' ``FluxPipeline`` packs
them), which `velocity` does and undoes around the call. The step maths is element-wise and its log-probability a
mean over every latent element, so packing changes no value. FLUX follows Flow-GRPO's FLUX pipeline
(yifan123/flow_grpo@74db691, ``flow_grpo/diffusers_patch/flux_pipeline_with_logprob.py`` and
``scripts/train_flux.py``): its schedule (sigmas ``linspace(1, 1/n, n)`` shifted by ``mu`` from the image's token
count, FLUX's dynamic shifting), the timestep ``sigma`` (not ``1000 sigma``) given to the transformer, the
guidance embedding at ``sample.guidance_scale`` in sampling and training (FLUX.1-dev is guidance-distilled: no
negative prompt, one pass), the same SDE step as SD3.

The step maths is `rewardbench.trainers.flow_math` (Flow-GRPO's SDE/CPS step, bit-identical to its code); the
loop's order follows Flow-GRPO's ``pipeline_with_logprob`` (yifan123/flow_grpo@ac4c86e,
``flow_grpo/diffusers_patch/pipeline_with_logprob.py``) and its Fast pipeline (``sde_window``, 54809b5): the
scheduler's sigmas (``set_timesteps(num_steps)``), the timestep ``sigma * 1000`` given to the transformer, noise
level a on the steps inside the window and the deterministic (Euler) step outside it.

Example (offline, CPU: the tiny random SD3)::

    >>> import torch
    >>> from rewardbench.benchmarks.pipelines import load_flow_pipeline
    >>> pipe = load_flow_pipeline("tiny-sd3")
    >>> text = encode_prompts(pipe, ["a cat", "a dog"])
    >>> g = torch.Generator().manual_seed(0)
    >>> out = sample_flow(pipe, pipe.transformer, text, encode_prompts(pipe, ["", ""]), num_steps=4, resolution=32,
    ...                   guidance_scale=4.5, noise_level=0.7, window=(0, 3), generator=g)
    >>> out.latents.shape, out.log_probs.shape, out.steps.tolist(), out.images.shape
    (torch.Size([2, 3, 4, 16, 16]), torch.Size([2, 3]), [0, 1, 2], torch.Size([2, 3, 32, 32]))

The same calls on the tiny random FLUX (`encode_prompts` picks the family's encoders)::

    >>> pipe = load_flow_pipeline("tiny-flux")
    >>> text = encode_prompts(pipe, ["a cat", "a dog"])
    >>> out = sample_flow(pipe, pipe.transformer, text, None, num_steps=4, resolution=32, guidance_scale=3.5,
    ...                   noise_level=0.9, window=(0, 3), generator=torch.Generator().manual_seed(0))
    >>> out.latents.shape, out.images.shape
    (torch.Size([2, 3, 4, 16, 16]), torch.Size([2, 3, 32, 32]))
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .flow_math import sde_step_with_logprob
from .pipeline import make_trainable

# Flow-GRPO's compute_text_embeddings: max_sequence_length=128 for the T5 tokens (train_sd3.py and train_flux.py)
MAX_SEQUENCE_LENGTH = 128


def unwrapped(model):
    """The module inside the wrappers a training run puts around a transformer (``DistributedDataParallel``'s
    ``module``, ``torch.compile``'s ``_orig_mod``); ``model`` itself when there are none."""
    for attr in ("module", "_orig_mod"):
        inner = getattr(model, attr, None)
        if isinstance(inner, torch.nn.Module):
            return unwrapped(inner)
    return model


def is_flux(obj) -> bool:
    """Whether ``obj`` (a pipeline, or a transformer, wrapped for training or not) is FLUX.1's (``FluxPipeline``,
    ``FluxTransformer2DModel``)."""
    return type(unwrapped(obj)).__name__.startswith("Flux")


@dataclass
class TextEmbeds:
    """A flow transformer's two text inputs for a batch of prompts."""

    embeds: torch.Tensor  # (B, L, D) the joint attention's text tokens (SD3: 77 CLIP + T5 tokens; FLUX: T5 tokens)
    pooled: torch.Tensor  # (B, P) SD3: the two CLIP projections side by side; FLUX: CLIP's pooled output

    def __getitem__(self, idx) -> TextEmbeds:
        return TextEmbeds(self.embeds[idx], self.pooled[idx])

    def expand(self, n: int) -> TextEmbeds:
        """One prompt's embeddings (batch 1) repeated ``n`` times."""
        return TextEmbeds(self.embeds.expand(n, -1, -1), self.pooled.expand(n, -1))

    @staticmethod
    def cat(parts: list[TextEmbeds]) -> TextEmbeds:
        return TextEmbeds(torch.cat([p.embeds for p in parts]), torch.cat([p.pooled for p in parts]))


@torch.no_grad()
def encode_prompts(pipe, prompts: list[str]) -> TextEmbeds:
    """The prompt embeddings of an SD3 (both CLIPs, and T5 where the pipeline has one; zeros in its place
    otherwise) or FLUX.1 pipeline (T5's tokens, CLIP's pooled output)."""
    prompts = list(prompts)
    device = pipe.text_encoder.device
    if is_flux(pipe):
        embeds, pooled, _ = pipe.encode_prompt(prompt=prompts, prompt_2=prompts, device=device,
                                               max_sequence_length=MAX_SEQUENCE_LENGTH)
        return TextEmbeds(embeds.float(), pooled.float())
    embeds, _, pooled, _ = pipe.encode_prompt(prompt=prompts, prompt_2=prompts, prompt_3=prompts, device=device,
                                              do_classifier_free_guidance=False,
                                              max_sequence_length=MAX_SEQUENCE_LENGTH)
    return TextEmbeds(embeds.float(), pooled.float())


def pack_latents(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, h, w)`` -> FLUX's token sequence ``(B, h/2 * w/2, 4C)`` of 2x2 patches (diffusers' ``_pack_latents``
    order); `unpack_latents` undoes it.

    >>> x = torch.arange(2 * 4 * 4 * 6.).view(2, 4, 4, 6)
    >>> pack_latents(x).shape, torch.equal(unpack_latents(pack_latents(x), 4, 6), x)
    (torch.Size([2, 6, 16]), True)
    """
    b, c, h, w = x.shape
    return x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)


def unpack_latents(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    b, _, d = tokens.shape
    c = d // 4
    return tokens.view(b, h // 2, w // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)


def latent_ids(h: int, w: int, device, dtype=torch.float32) -> torch.Tensor:
    """FLUX's position ids of the packed latent tokens ``(h/2 * w/2, 3)``: (0, row, column) of each 2x2 patch."""
    ids = torch.zeros(h // 2, w // 2, 3, device=device, dtype=dtype)
    ids[..., 1] = torch.arange(h // 2, device=device, dtype=dtype)[:, None]
    ids[..., 2] = torch.arange(w // 2, device=device, dtype=dtype)[None, :]
    return ids.reshape(-1, 3)


def _flux_velocity(model, x: torch.Tensor, t: torch.Tensor, text: TextEmbeds, guidance_scale: float) -> torch.Tensor:
    """FLUX.1's velocity at ``x`` ``(B, C, h, w)``: packed, the timestep as sigma (t / 1000), the guidance embedding
    when the model has one (FLUX.1-dev; schnell has none), text ids zero (Flow-GRPO's ``compute_log_prob``)."""
    dtype = next(model.parameters()).dtype
    b, _, h, w = x.shape
    guidance = torch.full((b,), float(guidance_scale), device=x.device, dtype=torch.float32) \
        if unwrapped(model).config.guidance_embeds else None
    out = model(hidden_states=pack_latents(x).to(dtype), timestep=(t / 1000).to(dtype), guidance=guidance,
                pooled_projections=text.pooled.to(dtype), encoder_hidden_states=text.embeds.to(dtype),
                txt_ids=torch.zeros(text.embeds.shape[1], 3, device=x.device, dtype=dtype),
                img_ids=latent_ids(h, w, x.device, dtype), return_dict=False)[0]
    return unpack_latents(out.float(), h, w)


def velocity(model, x: torch.Tensor, t: torch.Tensor, text: TextEmbeds, neg: TextEmbeds | None,
             guidance_scale: float) -> torch.Tensor:
    """The transformer's velocity at latents ``x`` ``(B, C, h, w)`` and timesteps ``t`` ``(B,)`` (sigma * 1000).
    SD3: guided when ``neg`` is given: one batched call on [negative; prompt], v = v_u + g (v_c - v_u) with v_u taken
    as fixed (Flow-GRPO's training pass detaches it, scripts/train_sd3.py@ac4c86e ``compute_log_prob``; in sampling
    nothing has a gradient anyway). FLUX.1: ``guidance_scale`` is the guidance embedding's value and ``neg`` is not
    used (one pass)."""
    if is_flux(model):
        return _flux_velocity(model, x, t, text, guidance_scale)
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


def decode_latents(pipe, latents: torch.Tensor) -> torch.Tensor:
    """Latents ``(B, C, h, w)`` -> float images in [0, 1], ``(B, 3, H, W)`` (the SD3 and FLUX VAEs: scaling and shift
    factors)."""
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


def schedule(pipe, num_steps: int, device: torch.device, resolution: int | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """The scheduler's timesteps ``(num_steps,)`` and sigmas ``(num_steps + 1,)`` (the last 0), on ``device``.
    FLUX: ``FluxPipeline``'s sigmas ``linspace(1, 1/n, n)``, shifted (a scheduler with dynamic shifting) by ``mu``,
    which grows with the image's token count: it needs the ``resolution`` (diffusers' ``calculate_shift``, as
    Flow-GRPO's FLUX pipeline calls it)."""
    sched = pipe.scheduler
    if is_flux(pipe):
        from diffusers.pipelines.flux.pipeline_flux import calculate_shift

        c, mu = sched.config, None
        if c.get("use_dynamic_shifting"):
            if resolution is None:
                raise ValueError("this scheduler shifts its sigmas by the image size: give the resolution")
            tokens = latent_size(pipe, resolution) ** 2 // 4  # the packed 2x2 patches
            mu = calculate_shift(tokens, c.get("base_image_seq_len", 256), c.get("max_image_seq_len", 4096),
                                 c.get("base_shift", 0.5), c.get("max_shift", 1.15))
        sched.set_timesteps(num_steps, device=device, sigmas=np.linspace(1.0, 1 / num_steps, num_steps), mu=mu)
    else:
        sched.set_timesteps(num_steps, device=device)
    return sched.timesteps.clone().float(), sched.sigmas.clone().float().to(device)


def latent_size(pipe, resolution: int) -> int:
    """A latent side for images of ``resolution`` pixels: ``resolution / vae_scale_factor``; FLUX rounds it down to
    an even number (its 2x2 packing), as ``FluxPipeline.prepare_latents`` does."""
    f = pipe.vae_scale_factor
    return 2 * (resolution // (f * 2)) if is_flux(pipe) else resolution // f


def latent_channels(model) -> int:
    """The latent channels a flow transformer denoises (FLUX's ``in_channels`` count packed 2x2 patches)."""
    channels = unwrapped(model).config.in_channels
    return channels // 4 if is_flux(model) else channels


@torch.no_grad()
def sample_flow(pipe, model, text: TextEmbeds, neg: TextEmbeds | None, *, num_steps: int, resolution: int,
                guidance_scale: float, noise_level: float, window: tuple[int, int], train_steps: int | None = None,
                sde_type: str = "sde", generator: torch.Generator | None = None, reduction: str = "mean",
                autocast: Callable[[], Any] | None = None) -> FlowSamples:
    """Sample ``text``'s prompts: steps ``window[0] <= i < window[1]`` stochastic (noise level ``noise_level``, with
    their log-probabilities), the others deterministic; the steps kept for training are the window's, or the first
    ``train_steps`` when given (Flow-GRPO's timestep fraction; they must be stochastic). CFG when
    ``guidance_scale > 1`` and ``neg`` is given (SD3's pipeline; FLUX: ``guidance_scale`` is its guidance embedding).
    Noise is drawn on the CPU from ``generator``: the same samples on every device. ``noise_level=0``: the
    deterministic (ODE, Euler) sampler, DiffusionNFT's CFG-free sampling."""
    device, b = text.embeds.device, text.embeds.shape[0]
    timesteps, sigmas = schedule(pipe, num_steps, device, resolution)
    side = latent_size(pipe, resolution)
    shape = (b, latent_channels(model), side, side)
    x = torch.randn(shape, generator=generator, dtype=torch.float32).to(device)  # x_1 = noise (sigma = 1)
    lo, hi = window
    kept = list(range(lo, hi)) if train_steps is None else list(range(train_steps))
    xs, nexts, logps = [], [], []
    ctx = autocast or contextlib.nullcontext
    use_neg = neg if guidance_scale > 1 and not is_flux(model) else None
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
        images = decode_latents(pipe, x)
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
    """LoRA: diffusers-format ``pytorch_lora_weights.safetensors`` (``pipe.load_lora_weights(dest)`` on the SD3 or
    FLUX base); full fine-tuning: the transformer in ``dest/transformer`` (run-benchmark loads either from
    ``final/``)."""
    dest = Path(dest)
    if lora:
        from diffusers import FluxPipeline, StableDiffusion3Pipeline
        from peft.utils import get_peft_model_state_dict

        cls = FluxPipeline if is_flux(model) else StableDiffusion3Pipeline
        cls.save_lora_weights(dest, transformer_lora_layers=get_peft_model_state_dict(model), safe_serialization=True)
    else:
        model.save_pretrained(dest / "transformer")
    return dest
