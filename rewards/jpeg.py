"""JPEG (in)compressibility, the weight-free rewards of DDPO (Black et al. 2023, arXiv 2305.13301).

As ddpo-pytorch ``ddpo_pytorch/rewards.py`` defines them: the image is rounded to uint8, saved as
JPEG at quality 95 with PIL, and its size in kB (bytes / 1000) is the incompressibility; the
compressibility is its negation. Not differentiable (JPEG encoding is not).
"""

from __future__ import annotations

import io

import torch
from PIL import Image

from rewardbench import RewardModel, RewardOutput, RewardSpec, register_reward
from rewardbench.images import pixels_to_uint8

JPEG_QUALITY = 95  # ddpo-pytorch rewards.py: pil.save(buffer, format="JPEG", quality=95)
_DDPO = "Black et al., Training Diffusion Models with Reinforcement Learning (DDPO), arXiv 2305.13301"


def jpeg_size_kb(pixels: torch.Tensor, quality: int = JPEG_QUALITY) -> torch.Tensor:
    """Size in kB (1000 bytes) of each image of ``[B,3,H,W]`` saved as JPEG."""
    sizes = []
    for arr in pixels_to_uint8(pixels):
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
        sizes.append(buf.tell() / 1000.0)
    return torch.tensor(sizes, dtype=torch.float32, device=pixels.device)


@register_reward()
class JpegIncompressibility(RewardModel):
    """JPEG file size in kB: rewards detail and texture (DDPO's incompressibility task)."""

    spec = RewardSpec(
        name="jpeg-incompressibility", aliases=("jpeg_incompressibility",), category="baseline",
        higher_is_better=True, range=(0.0, 200.0), license="MIT", paper=_DDPO,
        description="JPEG size (kB) at quality 95; no weights",
    )

    def __init__(self, quality: int = JPEG_QUALITY):
        super().__init__()
        self.quality = quality

    def score(self, pixels, prompts, groups) -> RewardOutput:
        kb = jpeg_size_kb(pixels, self.quality)
        return RewardOutput(kb, {"jpeg_kb": kb})


@register_reward()
class JpegCompressibility(JpegIncompressibility):
    """Negative JPEG file size in kB: rewards smooth, simple images (DDPO's compressibility task)."""

    spec = RewardSpec(
        name="jpeg-compressibility", aliases=("jpeg_compressibility",), category="baseline",
        higher_is_better=True, range=(-200.0, 0.0), license="MIT", paper=_DDPO,
        description="minus JPEG size (kB) at quality 95; no weights",
    )

    def score(self, pixels, prompts, groups) -> RewardOutput:
        kb = jpeg_size_kb(pixels, self.quality)
        return RewardOutput(-kb, {"jpeg_kb": kb})
