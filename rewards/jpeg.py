"""JPEG (in)compressibility, the weight-free rewards of DDPO (Black et al. 2023, arXiv 2305.13301).

As ddpo-pytorch ``ddpo_pytorch/rewards.py`` defines them: the image is rounded to uint8, saved as
JPEG at quality 95 with PIL, and its size in kB (bytes / 1000) is the incompressibility; the
compressibility is its negation. Not differentiable (JPEG encoding is not). The size has no upper bound
(it grows with the image), so the declared ranges are open on that side: ``[0, None]`` and ``[None, 0]``
(a composite with ``normalize="range"`` cannot map them to [0, 1]: use ``"zscore"``).

Both declare one backbone, the encoder (`JpegSize`): scored together, each image is encoded once. Images the
scoring harness decoded from files are encoded from their decoded bytes
(`rewardbench.images.pixels_from_uint8`), with no float round trip.
"""

from __future__ import annotations

import io

import torch
from PIL import Image
from torch import nn

from rewardbench import BackboneReward, Option, RewardOutput, RewardSpec, register_reward
from rewardbench.images import uint8_view

from ._runtime import parallel_map

JPEG_QUALITY = 95  # ddpo-pytorch rewards.py: pil.save(buffer, format="JPEG", quality=95)
_DDPO = "Black et al., Training Diffusion Models with Reinforcement Learning (DDPO), arXiv 2305.13301"
JPEG_BACKBONE = "jpeg-size:pil"  # spec.backbone of both rewards: PIL's JPEG encoder, sizes shared
# PIL takes any number and libjpeg clamps it to 1..100 (0 is read as 1): 0..100 is the scale there is
_OPTIONS = {"quality": Option(int, JPEG_QUALITY, "JPEG quality on PIL's scale, 0 (worst) to 100; DDPO uses 95 "
                              "(PIL advises against more: 100 turns parts of the compression off)", low=0, high=100)}


def jpeg_size_kb(pixels: torch.Tensor, quality: int = JPEG_QUALITY) -> torch.Tensor:
    """Size in kB (1000 bytes) of each image of ``[B,3,H,W]`` (floats in [0, 1], or uint8) saved as JPEG."""
    def size(arr) -> float:
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
        return buf.tell() / 1000.0

    # PIL encodes without holding the GIL: images side by side on the cores torch was given
    sizes = parallel_map(size, uint8_view(pixels))
    return torch.tensor(sizes, dtype=torch.float32, device=pixels.device)


class JpegSize(nn.Module):
    """The JPEG rewards' shared backbone: each image's JPEG size in kB at ``quality``, as ``[B, 1]``."""

    def __init__(self, quality: int = JPEG_QUALITY):
        super().__init__()
        self.quality = quality

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return jpeg_size_kb(pixels, self.quality)[:, None]


@register_reward()
class JpegIncompressibility(BackboneReward):
    """JPEG file size in kB: rewards detail and texture (DDPO's incompressibility task)."""

    spec = RewardSpec(
        name="jpeg-incompressibility", aliases=("jpeg_incompressibility",), category="baseline",
        # no upper bound: the size grows with the pixels and their detail (300 Stable Diffusion images of 512 px:
        # 5-181 kB, median 98; scikit-image's 1000 px hubble_deep_field: 404 kB)
        higher_is_better=True, range=(0.0, None), backbone=JPEG_BACKBONE, license="MIT", paper=_DDPO,
        description="JPEG size (kB) at quality 95; no weights", options=_OPTIONS,
    )
    sign = 1.0
    takes_uint8 = True  # the harness hands it the decoded bytes (rewardbench.engine.takes_uint8): no float pass

    def __init__(self, quality: int = JPEG_QUALITY):
        super().__init__()
        self.quality = quality
        self.backbone = JpegSize(quality)

    def backbone_fingerprint(self) -> tuple:
        return (self.spec.backbone, self.quality)

    def forward(self, images, prompts=None, groups=None) -> RewardOutput:
        """As `rewardbench.RewardModel.forward`; a uint8 batch ``[B,3,H,W]`` is encoded as it is, with no
        float pass (the same bytes: floats are rounded back to them first)."""
        if isinstance(images, torch.Tensor) and images.dtype == torch.uint8 and images.ndim == 4 \
                and images.shape[1] == 3 and images.shape[0]:
            n = images.shape[0]
            prompt_list, group_t = self.check_inputs(prompts, groups, n)
            return self.check_output(self.score(images.to(self.device), prompt_list, group_t), n, group_t)
        return super().forward(images, prompts, groups)

    def embed_images(self, pixels) -> torch.Tensor:
        return self.backbone(pixels)

    def score_embeddings(self, image_embeds, prompts, groups) -> RewardOutput:
        kb = image_embeds[:, 0].float()
        return RewardOutput(self.sign * kb, {"jpeg_kb": kb})


@register_reward()
class JpegCompressibility(JpegIncompressibility):
    """Negative JPEG file size in kB: rewards smooth, simple images (DDPO's compressibility task)."""

    spec = RewardSpec(
        name="jpeg-compressibility", aliases=("jpeg_compressibility",), category="baseline",
        higher_is_better=True, range=(None, 0.0), backbone=JPEG_BACKBONE, license="MIT", paper=_DDPO,
        description="minus JPEG size (kB) at quality 95; no weights", options=_OPTIONS,
    )
    sign = -1.0
