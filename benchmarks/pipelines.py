"""Stable Diffusion pipelines for generating and training: load any diffusers SD pipeline (hub id or local
directory), put LoRA weights or a fine-tuned UNet on top (the trainer's ``final/`` output loads directly),
or build a tiny one (or an SD2-base-size one) with random weights from configs, offline.

Benchmarks generate with these pipelines; the trainer (``rewardbench.trainers.pipeline``) imports them from
here, since the layers point one way (trainers may import benchmarks, not the other way round).

A generator source is one string (`parse_source`):

    ``tiny``, ``tiny:3``                 the tiny random pipeline (weights seeded 0, or 3), offline
    ``tiny-sd3``, ``tiny-sd3:3``         a tiny random Stable Diffusion 3 pipeline (flow matching), offline
    ``tiny-flux``, ``tiny-flux:3``       a tiny random FLUX.1 pipeline (flow matching, guidance embedding), offline
    ``sd2-base-random[:SEED]``           SD2-base sizes with random weights (speed tests)
    ``stabilityai/stable-diffusion-2-base``, ``/models/sd15``   a hub id or a local diffusers directory (any
                                         text-to-image pipeline: SD 1/2, SDXL, SD3/3.5, FLUX.1, ...)
    ``runs/ir/final``                    a trainer's output: LoRA, UNet or transformer, on the base its run
                                         was trained from
    ``BASE+LORA``                        LoRA weights (a folder or .safetensors) on BASE, e.g. ``tiny+runs/x/final``

Example (offline, CPU)::

    >>> src = parse_source("tiny:1")
    >>> src.pretrained, src.tiny_seed, src.describe()
    ('tiny', 1, 'tiny random-weight pipeline (seed 1)')
    >>> pipe = load_pipeline(src.pretrained, seed=src.tiny_seed)
    >>> type(pipe).__name__, type(pipe.scheduler).__name__, vae_scale(pipe)
    ('StableDiffusionPipeline', 'DDIMScheduler', 2)
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from rewardbench.text import clip_tokenizer

RANDOM_KINDS = ("tiny", "sd2-base-random", "tiny-sd3", "tiny-flux")  # built from configs, random weights, no download
FLOW_KINDS = ("tiny-sd3", "tiny-flux")  # of those, the flow-matching pipelines (FlowMatchEulerDiscreteScheduler)
LORA_FILE = "pytorch_lora_weights.safetensors"  # diffusers' LoRA file name (the trainer writes it in final/)

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

# --- tiny Stable Diffusion 3, after diffusers' StableDiffusion3PipelineFastTests.get_dummy_components --------
# (two layers; VAE downsampling by 2 and 2x2 patches, so a 32 px image is 8 x 8 tokens). No T5: the pipeline takes
# text_encoder_3=None and gives zeros in its place. The transformer's pooled input is the two CLIP projections
# side by side (32 + 32), its joint attention input their hidden states side by side (32 + 32).
_TINY_SD3_TRANSFORMER = dict(sample_size=16, patch_size=2, in_channels=4, out_channels=4, num_layers=2,
                             attention_head_dim=8, num_attention_heads=4, joint_attention_dim=64,
                             caption_projection_dim=32, pooled_projection_dim=64, pos_embed_max_size=32)
_TINY_SD3_VAE = dict(block_out_channels=[4, 8], in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=2,
                     layers_per_block=1, down_block_types=["DownEncoderBlock2D"] * 2,
                     up_block_types=["UpDecoderBlock2D"] * 2, use_quant_conv=False, use_post_quant_conv=False,
                     shift_factor=0.0609, scaling_factor=1.5035)
_TINY_SD3_TEXT = dict(_TINY_TEXT, hidden_act="gelu", projection_dim=32)
# stabilityai/stable-diffusion-3.5-medium scheduler/scheduler_config.json
SD3_SCHEDULER = dict(num_train_timesteps=1000, shift=3.0)

# --- tiny FLUX.1, after diffusers' FluxPipelineFastTests.get_dummy_components ------------------------------------
# (one double and one single block, the guidance embedding of FLUX.1-dev; 4 latent channels packed into 2x2 patches:
# in_channels 16; VAE downsampling by 2, so a 32 px image is a 16 x 16 latent, 8 x 8 tokens). CLIP's pooled output
# (32) and a tiny T5 encoder (d_model 32) with an offline Unigram tokenizer in place of T5's.
_TINY_FLUX_TRANSFORMER = dict(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=8,
                              num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
                              axes_dims_rope=(2, 2, 4), guidance_embeds=True)
_TINY_FLUX_T5 = dict(d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4, relative_attention_num_buckets=8,
                     feed_forward_proj="gated-gelu", is_encoder_decoder=False, pad_token_id=0, eos_token_id=1,
                     decoder_start_token_id=0, dropout_rate=0.0)
# black-forest-labs/FLUX.1-dev scheduler/scheduler_config.json: dynamic shifting by the image's token count
FLUX_SCHEDULER = dict(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_image_seq_len=256,
                      max_image_seq_len=4096, base_shift=0.5, max_shift=1.15)

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
    elif kind == "tiny-sd3":
        return _tiny_sd3_components(seed)
    elif kind == "tiny-flux":
        return _tiny_flux_components(seed)
    elif kind == "sd2-base-random":
        unet = UNet2DConditionModel(**SD2_BASE_UNET)
        vae = AutoencoderKL(**SD2_BASE_VAE)
        text = CLIPTextModel(CLIPTextConfig(**SD2_BASE_TEXT))
    else:
        raise ValueError(f"unknown component set {kind!r}; use one of {', '.join(RANDOM_KINDS)}")
    return dict(unet=unet, vae=vae, text_encoder=text, tokenizer=clip_tokenizer(),
                scheduler=DDIMScheduler(**SD_SCHEDULER))


def _tiny_sd3_components(seed: int) -> dict[str, Any]:
    """A tiny Stable Diffusion 3 pipeline's components, random weights seeded ``seed``: the SD3 transformer, a VAE,
    the two CLIP text encoders with projections (the real CLIP BPE tokenizer, built offline), no T5."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    transformer = SD3Transformer2DModel(**_TINY_SD3_TRANSFORMER)
    torch.manual_seed(seed)
    vae = AutoencoderKL(**_TINY_SD3_VAE)
    torch.manual_seed(seed)
    text = CLIPTextModelWithProjection(CLIPTextConfig(**_TINY_SD3_TEXT))
    torch.manual_seed(seed + 1)
    text_2 = CLIPTextModelWithProjection(CLIPTextConfig(**_TINY_SD3_TEXT))
    return dict(transformer=transformer, vae=vae, text_encoder=text, tokenizer=clip_tokenizer(),
                text_encoder_2=text_2, tokenizer_2=clip_tokenizer(), text_encoder_3=None, tokenizer_3=None,
                scheduler=FlowMatchEulerDiscreteScheduler(**SD3_SCHEDULER))


def _tiny_flux_components(seed: int) -> dict[str, Any]:
    """A tiny FLUX.1 pipeline's components, random weights seeded ``seed``: the FLUX transformer, a VAE (as
    tiny-sd3's), CLIP (the real CLIP BPE tokenizer, built offline) and a tiny T5 encoder with an offline tokenizer."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, PreTrainedTokenizerFast, T5Config, T5EncoderModel

    from rewardbench.text import tiny_t5_tokenizer

    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(**_TINY_FLUX_TRANSFORMER)
    torch.manual_seed(seed)
    vae = AutoencoderKL(**_TINY_SD3_VAE)
    torch.manual_seed(seed)
    text = CLIPTextModel(CLIPTextConfig(**_TINY_SD3_TEXT))
    tok_2 = PreTrainedTokenizerFast(tokenizer_object=tiny_t5_tokenizer(), pad_token="<pad>", eos_token="</s>",
                                    unk_token="<unk>", model_max_length=512)
    torch.manual_seed(seed + 1)
    t5 = T5EncoderModel(T5Config(vocab_size=tok_2.vocab_size, **_TINY_FLUX_T5))
    return dict(transformer=transformer, vae=vae, text_encoder=text, tokenizer=clip_tokenizer(), text_encoder_2=t5,
                tokenizer_2=tok_2, scheduler=FlowMatchEulerDiscreteScheduler(**FLUX_SCHEDULER))


def load_pipeline(pretrained: str = "tiny", revision: str | None = None, seed: int = 0, *,
                  lora: str | Path | None = None, unet: str | Path | None = None, any_pipeline: bool = False):
    """A ``StableDiffusionPipeline`` with a ``DDIMScheduler``: ``"tiny"`` / ``"sd2-base-random"``
    (random weights seeded ``seed``, offline) or any diffusers SD pipeline id or local directory; ``"tiny-sd3"``
    is a ``StableDiffusion3Pipeline`` with its ``FlowMatchEulerDiscreteScheduler`` (random weights, offline; the
    flow-matching trainers load hub ids with `load_flow_pipeline`). Then ``unet`` (a fine-tuned UNet folder, as
    the trainer's ``final/unet``, or a transformer folder, its ``final/transformer``) replaces the denoiser and
    ``lora`` (a folder with ``pytorch_lora_weights.safetensors``, or the file) is loaded on top.

    ``any_pipeline`` (generation): whatever text-to-image pipeline the id or folder holds (SDXL, PixArt,
    Flux, ...) through ``DiffusionPipeline``; its scheduler becomes DDIM only where DDIM is compatible
    with it (the Stable Diffusion family), flow-matching pipelines keep their own."""
    from diffusers import DDIMScheduler, DiffusionPipeline, StableDiffusionPipeline

    if pretrained in FLOW_KINDS:
        from diffusers import FluxPipeline, StableDiffusion3Pipeline

        cls = FluxPipeline if pretrained == "tiny-flux" else StableDiffusion3Pipeline
        # in eval mode, as from_pretrained leaves a model (tiny T5's dropout would make every encoding differ)
        pipe = cls(**{k: v.eval() if isinstance(v, torch.nn.Module) else v
                      for k, v in build_components(pretrained, seed=seed).items()})
    elif pretrained in RANDOM_KINDS:
        comps = build_components(pretrained, seed=seed)
        pipe = StableDiffusionPipeline(**comps, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
    else:
        cls = DiffusionPipeline if any_pipeline else StableDiffusionPipeline
        try:  # no safety checker: it blacks out images, which would be judged as the model's (pipelines
            # without one ignore the argument)
            pipe = cls.from_pretrained(pretrained, revision=revision, safety_checker=None,
                                       requires_safety_checker=False)
        except (OSError, ValueError) as e:
            local = Path(pretrained).expanduser()
            where = f"local directory {local}" if local.exists() else f"hub id {pretrained!r} (hub unreachable?)"
            raise OSError(f"cannot load the diffusion pipeline from {where}: {e}. Point at a local diffusers "
                          "pipeline directory (with model_index.json), or use `tiny` (a UNet pipeline) or "
                          "`tiny-sd3` (flow matching) for an offline smoke run (trainer: model.pretrained=tiny; "
                          "run-benchmark: --model tiny).") from None
        if not any_pipeline or DDIMScheduler in getattr(pipe.scheduler, "compatibles", ()):
            pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    if unet is not None:  # a fine-tuned denoiser: a UNet, or a flow-matching pipeline's transformer
        if hasattr(pipe, "transformer"):
            pipe.transformer = type(pipe.transformer).from_pretrained(str(unet))
        else:
            from diffusers import UNet2DConditionModel

            pipe.unet = UNet2DConditionModel.from_pretrained(str(unet))
    if lora is not None:
        lora = Path(lora)
        if lora.is_file():
            pipe.load_lora_weights(str(lora.parent), weight_name=lora.name)
        elif (lora / LORA_FILE).is_file():
            pipe.load_lora_weights(str(lora))
        else:
            raise OSError(f"no LoRA weights at {lora}: expected a .safetensors file or a folder with {LORA_FILE}")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load_flow_pipeline(pretrained: str = "tiny-sd3", revision: str | None = None, seed: int = 0):
    """A flow-matching pipeline for the flow trainers (Flow-GRPO, DiffusionNFT): ``"tiny-sd3"`` / ``"tiny-flux"``
    (random weights, offline) or a Stable Diffusion 3 / 3.5 or FLUX.1 hub id or local folder, with its
    ``FlowMatchEulerDiscreteScheduler``. Other flow pipelines load for generation (`load_pipeline`'s
    ``any_pipeline``) but are refused here, saying so: the trainer's sampler and training pass are written for the
    SD3 and FLUX transformers.

    >>> pipe = load_flow_pipeline("tiny-sd3")
    >>> type(pipe).__name__, type(pipe.scheduler).__name__, vae_scale(pipe)
    ('StableDiffusion3Pipeline', 'FlowMatchEulerDiscreteScheduler', 4)
    >>> pipe = load_flow_pipeline("tiny-flux")
    >>> type(pipe).__name__, pipe.transformer.config.guidance_embeds, vae_scale(pipe)
    ('FluxPipeline', True, 4)
    """
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, StableDiffusion3Pipeline

    if pretrained in RANDOM_KINDS and pretrained not in FLOW_KINDS:
        raise ValueError(f"model.pretrained={pretrained} is a UNet pipeline (DDIM): the flow-matching algorithms "
                         f"need a flow-matching one, e.g. {FLOW_KINDS[0]} or stabilityai/stable-diffusion-3.5-medium")
    pipe = load_pipeline(pretrained, revision, seed, any_pipeline=True)
    if not isinstance(pipe, (StableDiffusion3Pipeline, FluxPipeline)) or not isinstance(
            pipe.scheduler, FlowMatchEulerDiscreteScheduler):
        raise ValueError(f"model.pretrained={pretrained} holds a {type(pipe).__name__} with a "
                         f"{type(pipe.scheduler).__name__}: the flow-matching trainers take Stable Diffusion 3 / 3.5 "
                         "and FLUX.1 pipelines (StableDiffusion3Pipeline, FluxPipeline; "
                         "FlowMatchEulerDiscreteScheduler); other pipelines generate in run-benchmark")
    return pipe


def vae_scale(pipe) -> int:
    """How much an image side shrinks to a latent the denoiser's grid takes: the VAE's downsampling (8 for Stable
    Diffusion, 2 for the tiny pipeline) times a transformer's patch size (SD3: 8 x 2; tiny-sd3: 2 x 2; FLUX packs
    2 x 2 latents into a token: 8 x 2, tiny-flux 2 x 2)."""
    transformer = getattr(pipe, "transformer", None)
    return 2 ** (len(pipe.vae.config.block_out_channels) - 1) * _patch(type(transformer).__name__,
                                                                       getattr(transformer, "config", None) or {})


def _patch(cls_name: str, config: Any) -> int:
    """A transformer's side of latent pixels per token: FLUX's packing (2), else its config's ``patch_size``."""
    if cls_name.startswith("Flux"):
        return 2
    value = config.get("patch_size") if isinstance(config, dict) else getattr(config, "patch_size", None)
    return int(value or 1)


def vae_scale_before_loading(pretrained: str, revision: str | None = None) -> int | None:
    """`vae_scale` of the pipeline ``pretrained`` names, read without loading it: the built-in random pipelines'
    configs, or the ``vae/config.json`` of a local diffusers folder or of the hub cache; None when only loading the
    pipeline can tell (a hub id not in the cache).

    Example:
        >>> [vae_scale_before_loading(k) for k in ("tiny", "sd2-base-random", "tiny-sd3", "tiny-flux")]
        [2, 8, 4, 4]
    """
    if pretrained in ("tiny-sd3", "tiny-flux"):
        return 2 ** (len(_TINY_SD3_VAE["block_out_channels"]) - 1) * 2
    if pretrained in RANDOM_KINDS:
        return 2 ** (len((_TINY_VAE if pretrained == "tiny" else SD2_BASE_VAE)["block_out_channels"]) - 1)
    vae = _config_before_loading(pretrained, "vae/config.json", revision)
    if vae is None:
        return None
    transformer = _config_before_loading(pretrained, "transformer/config.json", revision) or {}
    try:
        return 2 ** (len(vae["block_out_channels"]) - 1) * _patch(str(transformer.get("_class_name", "")), transformer)
    except (ValueError, KeyError, TypeError):
        return None


def flow_family_before_loading(pretrained: str, revision: str | None = None) -> str | None:
    """``"flux"`` or ``"sd3"``: the transformer family of the flow pipeline ``pretrained`` names, read without
    loading it (the built-in random pipelines, or the ``transformer/config.json`` of a local folder or of the hub
    cache); None when only loading it can tell.

    >>> flow_family_before_loading("tiny-flux"), flow_family_before_loading("tiny-sd3")
    ('flux', 'sd3')
    """
    if pretrained in FLOW_KINDS:
        return pretrained.removeprefix("tiny-")
    name = str((_config_before_loading(pretrained, "transformer/config.json", revision) or {}).get("_class_name", ""))
    return "flux" if name.startswith("Flux") else "sd3" if name.startswith("SD3") else None


def _config_before_loading(pretrained: str, name: str, revision: str | None) -> dict | None:
    """A pipeline component's config file (e.g. ``vae/config.json``) from a local folder or the hub cache."""
    path = Path(pretrained).expanduser() / name
    if not path.is_file():
        try:
            from huggingface_hub import try_to_load_from_cache

            found = try_to_load_from_cache(pretrained, name, revision=revision)
        except Exception:  # not a hub id either: loading the pipeline says what it is
            return None
        if not isinstance(found, str):
            return None
        path = Path(found)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def resolution_problem(resolution: int, scale: int) -> str | None:
    """Why a pipeline whose VAE downsamples by ``scale`` cannot make images of ``resolution`` pixels a side, or None.

    The UNet takes any latent size (diffusers' UNet upsamples to its skip connections' sizes), so the constraint
    is the VAE's: a side that is not a multiple of ``scale`` would come out smaller than asked (the tiny pipeline
    makes 30 px images when asked for 31), and one below ``scale`` has no latent at all.

    Example:
        >>> resolution_problem(512, 8) is None, resolution_problem(500, 8)
        (True, 'not a multiple of 8, the VAE downsampling factor (the images would be 496 px): use 496 or 504')
    """
    if resolution % scale == 0:
        return None
    lower = resolution // scale * scale
    made = f"the images would be {lower} px" if lower else "no image can be made"
    return (f"not a multiple of {scale}, the VAE downsampling factor ({made}): use "
            + (f"{lower} or {lower + scale}" if lower else f"{scale}"))


@dataclasses.dataclass(frozen=True)
class PipelineSource:
    """Where a generator's weights come from (see `parse_source`)."""

    pretrained: str  # "tiny", "sd2-base-random", a hub id or a local pipeline directory
    revision: str | None = None
    tiny_seed: int = 0  # weights seed of a random pipeline
    lora: str | None = None  # LoRA folder or file on top
    unet: str | None = None  # fine-tuned denoiser folder replacing the base's (a UNet, or an SD3 transformer)

    @property
    def random_weights(self) -> bool:
        return self.pretrained in RANDOM_KINDS

    def describe(self) -> str:
        if self.random_weights:
            base = f"{self.pretrained} random-weight pipeline (seed {self.tiny_seed})"
        else:
            base = self.pretrained + (f"@{self.revision}" if self.revision else "")
        denoiser = "transformer" if Path(self.unet or "").name == "transformer" else "UNet"
        return base + (f" + {denoiser} {self.unet}" if self.unet else "") + \
            (f" + LoRA {self.lora}" if self.lora else "")

    def load(self):
        """The pipeline for generation (any text-to-image pipeline class: `load_pipeline`'s ``any_pipeline``)."""
        return load_pipeline(self.pretrained, self.revision, self.tiny_seed, lora=self.lora, unet=self.unet,
                             any_pipeline=True)


def _random_kind(text: str) -> tuple[str, int] | None:
    kind, _, seed = text.partition(":")
    if kind in RANDOM_KINDS:
        if seed and not seed.isdigit():
            raise ValueError(f"{text!r}: the seed of a random pipeline is an integer, e.g. {kind}:1")
        return kind, int(seed or 0)
    return None


def _trainer_output(path: Path) -> PipelineSource | None:
    """A trainer's ``final/`` folder: LoRA weights, a UNet or a transformer, on the base named in the run's
    config.json."""
    lora = path / LORA_FILE
    denoiser = next((path / d for d in ("unet", "transformer") if (path / d / "config.json").is_file()), None)
    if not (lora.is_file() or denoiser is not None) or (path / "model_index.json").exists():
        return None
    cfg_file = path.parent / "config.json"
    if not cfg_file.is_file():
        raise ValueError(f"{path} holds trained weights but {cfg_file} (the run's config, naming its base pipeline) "
                         f"is missing; name the base explicitly: BASE+{path}")
    model = json.loads(cfg_file.read_text()).get("model", {})
    return PipelineSource(model.get("pretrained", "tiny"), model.get("revision"), int(model.get("tiny_seed", 0)),
                          lora=str(path) if lora.is_file() else None,
                          unet=str(denoiser) if not lora.is_file() else None)


def parse_source(text: str) -> PipelineSource:
    """A generator source string -> `PipelineSource` (the forms are listed in the module docstring).

        >>> parse_source("tiny+runs/x/final.safetensors").lora
        'runs/x/final.safetensors'
        >>> parse_source("stabilityai/stable-diffusion-2-base").pretrained
        'stabilityai/stable-diffusion-2-base'
    """
    text = text.strip()
    if not text:
        raise ValueError("empty generator source")
    base, plus, lora = text.partition("+")
    if plus:
        src = parse_source(base)
        if src.lora:
            raise ValueError(f"{text!r}: one LoRA per generator")
        return dataclasses.replace(src, lora=lora.strip())
    rnd = _random_kind(text)
    if rnd is not None:
        return PipelineSource(rnd[0], tiny_seed=rnd[1])
    path = Path(text).expanduser()
    if path.is_dir():
        trained = _trainer_output(path)
        if trained is not None:
            return trained
    return PipelineSource(text)
