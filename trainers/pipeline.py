"""Stable Diffusion components for the trainer: load any diffusers SD pipeline (hub id or local path),
or build a tiny one (or an SD2-base-size one with random weights) from configs, offline.

Also the two model-facing steps of the algorithm: `encode_prompts` and `sample_with_logprob`
(DDIM with eta > 0, keeping every step's latents and log-probabilities).

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
from pathlib import Path
from typing import Any

import torch

from rewardbench.text import clip_tokenizer

from .ddpo_math import ddim_step_with_logprob, guided

# --- tiny components, after diffusers' StableDiffusionPipelineFastTests.get_dummy_components ---------
_TINY_UNET = dict(block_out_channels=(4, 8), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
                  down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                  up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32, norm_num_groups=2,
                  attention_head_dim=2)
_TINY_VAE = dict(block_out_channels=[4, 8], in_channels=3, out_channels=3, norm_num_groups=2,
                 down_encoder_blocks=None, latent_channels=4)
_TINY_TEXT = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                  layer_norm_eps=1e-5, max_position_embeddings=77, pad_token_id=1, vocab_size=49408,
                  bos_token_id=49406, eos_token_id=49407)

# --- Stable Diffusion 2 base, written out (stabilityai/stable-diffusion-2-base unet/config.json) ---
SD2_BASE_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True,
    norm_num_groups=32, norm_eps=1e-5, flip_sin_to_cos=True, freq_shift=0, act_fn="silu",
)
# vae/config.json (shared by SD 1.x and 2.x): 4 blocks, scaling_factor 0.18215
SD2_BASE_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
                    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                    layers_per_block=2, norm_num_groups=32, sample_size=512, scaling_factor=0.18215)
# text_encoder/config.json: OpenCLIP ViT-H/14 text tower, 23 layers (SD2 uses the penultimate layer)
SD2_BASE_TEXT = dict(hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=23,
                     max_position_embeddings=77, vocab_size=49408, hidden_act="gelu", projection_dim=512,
                     bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
# scheduler/scheduler_config.json of SD 2 base (DDIM fields)
SD_SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                    clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon")


def build_components(kind: str = "tiny", seed: int = 0) -> dict[str, Any]:
    """Random-weight SD components: ``"tiny"`` (diffusers' dummy sizes; VAE downsamples by 2) or
    ``"sd2-base-random"`` (SD2-base sizes: 865M-parameter UNet)."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    if kind == "tiny":
        unet = UNet2DConditionModel(**_TINY_UNET)
        torch.manual_seed(seed)
        vae_kw = {k: v for k, v in _TINY_VAE.items() if v is not None}
        vae = AutoencoderKL(down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                            **vae_kw)
        torch.manual_seed(seed)
        text = CLIPTextModel(CLIPTextConfig(**_TINY_TEXT))
    elif kind == "sd2-base-random":
        unet = UNet2DConditionModel(**SD2_BASE_UNET)
        vae = AutoencoderKL(**SD2_BASE_VAE)
        text = CLIPTextModel(CLIPTextConfig(**SD2_BASE_TEXT))
    else:
        raise ValueError(f"unknown component set {kind!r}; use 'tiny' or 'sd2-base-random'")
    return dict(unet=unet, vae=vae, text_encoder=text, tokenizer=clip_tokenizer(),
                scheduler=DDIMScheduler(**SD_SCHEDULER))


def load_pipeline(pretrained: str = "tiny", revision: str | None = None, seed: int = 0):
    """A ``StableDiffusionPipeline`` with a ``DDIMScheduler``: ``"tiny"`` / ``"sd2-base-random"``
    (random weights, offline) or any diffusers SD pipeline id or local directory."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    if pretrained in ("tiny", "sd2-base-random"):
        comps = build_components(pretrained, seed=seed)
        pipe = StableDiffusionPipeline(**comps, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
    else:
        try:
            pipe = StableDiffusionPipeline.from_pretrained(pretrained, revision=revision, safety_checker=None,
                                                           requires_safety_checker=False)
        except (OSError, ValueError) as e:
            local = Path(pretrained).expanduser()
            where = f"local directory {local}" if local.exists() else f"hub id {pretrained!r} (hub unreachable?)"
            raise OSError(f"cannot load the diffusion pipeline from {where}: {e}. Point model.pretrained at a local "
                          "diffusers pipeline directory (with model_index.json), or use model.pretrained=tiny "
                          "for an offline smoke run.") from None
        pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def prepare_for_training(pipe, model_cfg, device, weight_dtype=torch.float32) -> list[torch.nn.Parameter]:
    """Freeze the VAE and text encoder (cast to ``weight_dtype``), make the UNet trainable: LoRA
    adapters (peft, via diffusers' ``unet.add_adapter``; base weights frozen in ``weight_dtype``,
    adapters in fp32) or every UNet weight (fp32, autocast does the rest). Returns the trainable params."""
    for frozen in (pipe.vae, pipe.text_encoder):
        frozen.requires_grad_(False).eval().to(device)
        if weight_dtype != torch.float32:
            frozen.to(weight_dtype)
    unet = pipe.unet
    if model_cfg.lora:
        from diffusers.training_utils import cast_training_params
        from peft import LoraConfig

        unet.requires_grad_(False).to(device)
        if weight_dtype != torch.float32:
            unet.to(weight_dtype)
        unet.add_adapter(LoraConfig(r=model_cfg.lora_rank, lora_alpha=model_cfg.lora_alpha,
                                    init_lora_weights="gaussian", target_modules=list(model_cfg.lora_targets)))
        cast_training_params(unet, dtype=torch.float32)
    else:
        unet.requires_grad_(True).to(device)
    if model_cfg.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    return [p for p in unet.parameters() if p.requires_grad]


def vae_scale(pipe) -> int:
    return 2 ** (len(pipe.vae.config.block_out_channels) - 1)


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
