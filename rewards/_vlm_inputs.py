"""What a Qwen-VL judge feeds its model (`rewards._vlm` runs it): the architectures, the chat template, the image's
size and patch layout, and the rotary position ids.

- **the families** (`FAMILIES`): each transformers Qwen-VL class with its image processor's constants, its chat
  template's default system turn and a tiny configuration;
- **the chat template** (`chat_text`) and the special tokens the runtime reads (`IMAGE_PAD`, `PAD_TOKEN`,
  `EOS_TOKENS`);
- **the image** (`PixelBudget`, `smart_resize`, `pil_resize`, `torchvision_resize`, `patchify`): the judge's pixel
  budget, the official pipelines' resizes and ``Qwen2VLImageProcessor``'s patch layout;
- **the positions** (`mrope_positions`, `sequential_positions`) of a left-padded batch.

No model and no tokenizer here: those are `rewards._vlm` and `rewards._vlm_build`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from rewardbench.transforms import CLIP_MEAN, CLIP_STD

__all__ = ["Family", "FAMILIES", "EOS_TOKENS", "PAD_TOKEN", "IMAGE_PAD", "PixelBudget", "smart_resize", "patchify",
           "pil_resize", "torchvision_resize", "chat_text", "mrope_positions", "sequential_positions"]

# generation_config.json of the Qwen2-VL / Qwen2.5-VL / Qwen3-VL instruct models: eos_token_id [151645, 151643]
EOS_TOKENS = ("<|im_end|>", "<|endoftext|>")
PAD_TOKEN = "<|endoftext|>"  # tokenizer_config.json pad_token of the same models
IMAGE_PAD = "<|image_pad|>"

_TINY = dict(hidden=32, layers=2, heads=2, intermediate=64)


@dataclass(frozen=True)
class Family:
    """A transformers Qwen-VL architecture: its classes, its image processor's constants, its chat template's
    default system turn and a tiny configuration (flat ``config.json`` keys, token ids filled in by the builder)."""

    key: str
    model_class: str
    patch_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    default_system: str | None
    tiny: dict[str, Any] = field(default_factory=dict)
    merge_size: int = 2  # preprocessor_config.json merge_size / vision_config spatial_merge_size
    temporal_patch_size: int = 2

    @property
    def factor(self) -> int:
        """The side of one merged patch in pixels: sides are resized to multiples of it."""
        return self.patch_size * self.merge_size

    def config_class(self):
        import transformers

        return getattr(transformers, self.model_class.replace("ForConditionalGeneration", "Config"))

    def model_cls(self):
        import transformers

        return getattr(transformers, self.model_class)


_TEXT_TINY = dict(hidden_size=_TINY["hidden"], num_hidden_layers=_TINY["layers"],
                  num_attention_heads=_TINY["heads"], num_key_value_heads=1, intermediate_size=_TINY["intermediate"],
                  max_position_embeddings=4096, rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=False,
                  hidden_act="silu")
# head_dim 16 -> 8 rotary frequencies split over (temporal, height, width) as the 7B configs split 64 as (16, 24, 24)
_MROPE = {"type": "mrope", "mrope_section": [2, 3, 3]}

FAMILIES: dict[str, Family] = {
    # Qwen/Qwen2-VL-7B-Instruct: preprocessor_config.json patch_size 14, merge_size 2, temporal_patch_size 2,
    # OpenAI CLIP mean/std; chat_template.json's default system turn
    "qwen2_vl": Family(
        "qwen2_vl", "Qwen2VLForConditionalGeneration", 14, CLIP_MEAN, CLIP_STD, "You are a helpful assistant.",
        tiny=dict(_TEXT_TINY, rope_scaling=_MROPE,
                  vision_config=dict(depth=_TINY["layers"], embed_dim=_TINY["hidden"], num_heads=_TINY["heads"],
                                     mlp_ratio=2, hidden_size=_TINY["hidden"], patch_size=14, spatial_merge_size=2,
                                     temporal_patch_size=2))),
    # Qwen/Qwen2.5-VL-7B-Instruct: the same processor constants and chat template as Qwen2-VL
    "qwen2_5_vl": Family(
        "qwen2_5_vl", "Qwen2_5_VLForConditionalGeneration", 14, CLIP_MEAN, CLIP_STD, "You are a helpful assistant.",
        tiny=dict(_TEXT_TINY, rope_scaling=_MROPE,
                  vision_config=dict(depth=_TINY["layers"], hidden_size=_TINY["hidden"], num_heads=_TINY["heads"],
                                     intermediate_size=_TINY["intermediate"], out_hidden_size=_TINY["hidden"],
                                     patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                                     fullatt_block_indexes=[1], tokens_per_second=2, hidden_act="silu"))),
    # Qwen/Qwen3-VL-8B-Instruct: preprocessor_config.json patch_size 16, merge_size 2, mean = std = 0.5; its chat
    # template has no default system turn
    "qwen3_vl": Family(
        "qwen3_vl", "Qwen3VLForConditionalGeneration", 16, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), None,
        tiny=dict(text_config=dict(_TEXT_TINY, head_dim=16, rope_scaling=dict(
                      rope_type="default", mrope_section=[2, 3, 3], mrope_interleaved=True)),
                  vision_config=dict(depth=_TINY["layers"], hidden_size=_TINY["hidden"], num_heads=_TINY["heads"],
                                     intermediate_size=_TINY["intermediate"], out_hidden_size=_TINY["hidden"],
                                     patch_size=16, spatial_merge_size=2, temporal_patch_size=2,
                                     num_position_embeddings=64, deepstack_visual_indexes=[0]),
                  tie_word_embeddings=False)),
}


# ---------------------------------------------------------------------------------------------
# the pixel budget and the patch layout


@dataclass(frozen=True)
class PixelBudget:
    """How many pixels an image is resized to: ``smart_resize``'s ``min_pixels`` / ``max_pixels``."""

    min_pixels: int
    max_pixels: int

    def __post_init__(self) -> None:
        if not 0 < self.min_pixels <= self.max_pixels:
            raise ValueError(f"PixelBudget needs 0 < min_pixels <= max_pixels, "
                             f"got {self.min_pixels}, {self.max_pixels}")


MAX_RATIO = 200  # qwen-vl-utils vision_process.py MAX_RATIO


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """The resized (height, width): both multiples of ``factor``, the pixel count within [min_pixels, max_pixels],
    the aspect ratio kept as closely as possible (qwen-vl-utils 0.0.14 ``vision_process.smart_resize``, the same
    formula as transformers' ``qwen2_vl.image_processing_qwen2_vl.smart_resize`` and HPSv3's
    ``hpsv3/dataset/utils.py``).

    Example:
        >>> smart_resize(512, 512, 28, 256 * 28 * 28, 256 * 28 * 28)  # HPSv3's fixed budget
        (448, 448)
        >>> smart_resize(1024, 768, 32, 4 * 32 * 32, 16384 * 32 * 32)  # qwen-vl-utils' default, Qwen3-VL
        (1024, 768)
    """
    if max(height, width) / min(height, width) > MAX_RATIO:
        raise ValueError(f"absolute aspect ratio must be smaller than {MAX_RATIO}, "
                         f"got {max(height, width) / min(height, width)}")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def patchify(x: torch.Tensor, patch_size: int, merge_size: int = 2,
             temporal_patch_size: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised images ``[B,C,H,W]`` (sides multiples of patch x merge) → ``pixel_values``
    ``[B*gh*gw, C*T*p*p]`` and ``image_grid_thw`` ``[B,3]``, the layout of transformers' ``Qwen2VLImageProcessor``
    for one image: the frame repeated to ``temporal_patch_size`` frames, patches ordered by 2x2 merge window
    (``reshape(t, T, C, gh/m, m, p, gw/m, m, p).transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)``)."""
    b, c, h, w = x.shape
    p, m, t = patch_size, merge_size, temporal_patch_size
    gh, gw = h // p, w // p
    if gh * p != h or gw * p != w or gh % m or gw % m:
        raise ValueError(f"image sides {h}x{w} are not multiples of patch x merge = {p * m}")
    frames = x[:, None].expand(b, t, c, h, w)  # (B, T, C, H, W): one image is T identical frames
    patches = frames.reshape(b, t, c, gh // m, m, p, gw // m, m, p)
    patches = patches.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)  # (B, gh/m, gw/m, m, m, C, T, p, p)
    pixel_values = patches.reshape(b * gh * gw, c * t * p * p)
    grid = torch.tensor([[1, gh, gw]] * b, dtype=torch.long, device=x.device)
    return pixel_values, grid


def pil_resize(pixels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[B,3,H,W]`` in [0, 1] → ``[B,3,h,w]``: rounded to uint8 and resized by PIL's bicubic filter (``Image.resize``'s
    default for RGB), as qwen-vl-utils' ``fetch_image`` and HPSv3's ``fetch_image`` resize; float in [0, 1] again."""
    import numpy as np
    from PIL import Image

    h, w = size
    arr = (pixels.detach().float() * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = np.stack([np.asarray(Image.fromarray(a).resize((w, h), Image.BICUBIC)) for a in arr])
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().div(255).to(pixels.device)


def torchvision_resize(pixels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[B,3,H,W]`` in [0, 1] → ``[B,3,h,w]``: rounded to uint8 and resized by torchvision's bicubic with
    anti-aliasing on the uint8 tensor, as transformers' fast Qwen2-VL image processor does
    (``TorchvisionBackend.resize``; Qwen3-VL's ``preprocessor_config.json`` names ``Qwen2VLImageProcessorFast``); float
    in [0, 1] again."""
    from torchvision.transforms.v2 import functional as tvF

    x = (pixels.detach().float() * 255).round().clamp(0, 255).to(torch.uint8)
    out = tvF.resize(x, list(size), interpolation=tvF.InterpolationMode.BICUBIC, antialias=True)
    return out.float().div(255)


# ---------------------------------------------------------------------------------------------
# the chat template


def chat_text(family: Family | str, text: str, *, system: str | None = None) -> str:
    """The prompt the model's chat template renders for one user turn ``[image, text]`` with
    ``add_generation_prompt=True`` (the image placeholder not yet expanded).

    The Qwen2-VL / Qwen2.5-VL template (``chat_template.json`` of Qwen/Qwen2-VL-7B-Instruct and
    Qwen/Qwen2.5-VL-7B-Instruct) opens with a system turn "You are a helpful assistant." when the first message is
    not a system message; an image item renders as ``<|vision_start|><|image_pad|><|vision_end|>``, a text item as
    its text; the turn ends with ``<|im_end|>\\n`` and the generation prompt is ``<|im_start|>assistant\\n``.
    Qwen3-VL-*-Instruct's template renders the same turn with no default system turn.

    Example:
        >>> print(chat_text("qwen2_vl", "Describe it."))
        <|im_start|>system
        You are a helpful assistant.<|im_end|>
        <|im_start|>user
        <|vision_start|><|image_pad|><|vision_end|>Describe it.<|im_end|>
        <|im_start|>assistant
        <BLANKLINE>
        >>> chat_text("qwen3_vl", "Hi.")
        '<|im_start|>user\\n<|vision_start|><|image_pad|><|vision_end|>Hi.<|im_end|>\\n<|im_start|>assistant\\n'
    """
    fam = FAMILIES[family] if isinstance(family, str) else family
    sys_text = system if system is not None else fam.default_system
    head = f"<|im_start|>system\n{sys_text}<|im_end|>\n" if sys_text is not None else ""
    return f"{head}<|im_start|>user\n<|vision_start|>{IMAGE_PAD}<|vision_end|>{text}<|im_end|>\n<|im_start|>assistant\n"


# ---------------------------------------------------------------------------------------------
# positions


def mrope_positions(ids: torch.Tensor, mask: torch.Tensor, image_token_id: int, grid: torch.Tensor,
                    merge_size: int = 2) -> torch.Tensor:
    """The 3-D multimodal rotary position ids ``[3,B,L]`` of left-padded sequences holding one image each: text
    counts up from 0 at the first real token; the image's tokens sit at (t, h, w) = (s, s + row, s + col) on the
    merged grid, s the image's first index; text after it resumes at s + max(rows, cols). Padding gets 0.
    transformers' ``Qwen2VLModel.get_rope_index`` (and Qwen2.5-VL's, Qwen3-VL's) computes the same for one image
    (a test compares them)."""
    b, n = ids.shape
    pos = torch.zeros(3, b, n, dtype=torch.long, device=ids.device)
    for i in range(b):
        real = mask[i].bool()
        seq = ids[i][real]
        img = (seq == image_token_id).nonzero().flatten()
        if len(img) == 0:
            p = torch.arange(len(seq), device=ids.device).expand(3, -1)
        else:
            s, e = int(img[0]), int(img[-1]) + 1
            gh, gw = int(grid[i, 1]) // merge_size, int(grid[i, 2]) // merge_size
            if e - s != gh * gw:
                raise ValueError(f"sequence {i}: {e - s} image tokens for a {gh}x{gw} merged grid")
            rows = torch.arange(gh, device=ids.device).repeat_interleave(gw)
            cols = torch.arange(gw, device=ids.device).repeat(gh)
            vis = torch.stack([torch.zeros_like(rows), rows, cols]) + s
            after = torch.arange(len(seq) - e, device=ids.device).expand(3, -1) + s + max(gh, gw)
            p = torch.cat([torch.arange(s, device=ids.device).expand(3, -1), vis, after], dim=1)
        pos[:, i, real] = p
    return pos


def sequential_positions(mask: torch.Tensor) -> torch.Tensor:
    """Plain positions ``[3,B,L]`` (the same on the three rotary axes) counted from each left-padded sequence's first
    real token: what a decoder called without position ids computes for a right-padded batch."""
    pos = (mask.long().cumsum(-1) - 1).clamp_min(0)
    return pos[None].expand(3, -1, -1)
