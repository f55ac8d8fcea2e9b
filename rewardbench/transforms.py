"""Image preprocessing in torch, on the model's device, differentiable end to end.

Reward models resize, crop and normalise inside ``forward`` so that a ``[B,3,H,W]`` batch straight
from a VAE decoder is scored without a PIL round trip. Where an official pipeline resizes with PIL,
`pil_resize_shorter` offers the exact path for file inputs (see each reward's docs for how far the
two paths are apart).

Example:
    >>> import torch
    >>> x = torch.rand(2, 3, 300, 400)
    >>> clip_preprocess(x, 224).shape
    torch.Size([2, 3, 224, 224])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

# OpenAI CLIP normalisation (openai/CLIP clip/clip.py `_transform`; also open_clip/constants.py
# OPENAI_DATASET_MEAN/STD). BLIP and ImageReward use the same constants.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resize_shorter(x: torch.Tensor, size: int, mode: str = "bicubic", antialias: bool = True) -> torch.Tensor:
    """Resize ``[B,C,H,W]`` so that the shorter side is ``size`` (aspect kept), like
    ``torchvision.transforms.Resize(size)``. Bicubic output is clamped to [0, 1]."""
    h, w = x.shape[-2:]
    if min(h, w) == size:
        return x
    if h <= w:
        new_h, new_w = size, max(1, int(size * w / h))
    else:
        new_h, new_w = max(1, int(size * h / w)), size
    out = F.interpolate(x, size=(new_h, new_w), mode=mode, antialias=antialias,
                        align_corners=False if mode in ("bilinear", "bicubic") else None)
    return out.clamp(0, 1) if mode == "bicubic" else out


def resize(x: torch.Tensor, size: tuple[int, int], mode: str = "bicubic", antialias: bool = True,
           clamp: bool = True) -> torch.Tensor:
    """Resize ``[B,C,H,W]`` to exactly ``size`` = (H, W). ``clamp``: clip bicubic overshoot to [0, 1], as a
    resize of uint8 pixels (PIL) does; ``False`` reproduces torchvision's resize of a float tensor, which
    does not clamp (torchvision transforms/_functional_tensor.py ``resize``: only uint8 output is clamped)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    out = F.interpolate(x, size=size, mode=mode, antialias=antialias,
                        align_corners=False if mode in ("bilinear", "bicubic") else None)
    return out.clamp(0, 1) if mode == "bicubic" and clamp else out


def _crop_offset(excess: int, offset: str) -> int:
    if offset == "round":  # torchvision CenterCrop (transforms/functional.py center_crop): int(round(excess / 2.0))
        return int(round(excess / 2.0))
    if offset == "floor":  # Hugging Face CLIPImageProcessor (image_transforms.py center_crop): excess // 2
        return excess // 2
    raise ValueError(f"offset must be 'round' or 'floor', got {offset!r}")


def center_crop(x: torch.Tensor, size: int | tuple[int, int], offset: str = "round") -> torch.Tensor:
    """Centre crop ``[..., H, W]``. ``offset="round"`` places the crop as ``torchvision.transforms.CenterCrop``
    does (OpenAI CLIP, open_clip, BLIP); ``"floor"`` as Hugging Face's ``CLIPImageProcessor`` does. They differ
    by one pixel when half the excess rounds up (a 427×640 photo resized to 224×335: excess 111, offsets 56 vs 55).

    Example:
        >>> x = torch.arange(5.0).view(1, 1, 1, 5)
        >>> center_crop(x, (1, 2)).tolist(), center_crop(x, (1, 2), offset="floor").tolist()
        ([[[[2.0, 3.0]]]], [[[[1.0, 2.0]]]])
    """
    th, tw = (size, size) if isinstance(size, int) else size
    h, w = x.shape[-2:]
    if h < th or w < tw:  # torchvision pads; reward pipelines always resize first, so this is rare
        pw, ph = max(0, tw - w), max(0, th - h)
        x = F.pad(x, [pw // 2, (pw + 1) // 2, ph // 2, (ph + 1) // 2])
        h, w = x.shape[-2:]
    top, left = _crop_offset(h - th, offset), _crop_offset(w - tw, offset)
    return x[..., top:top + th, left:left + tw]


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


def clip_preprocess(x: torch.Tensor, size: int = 224, mean: Sequence[float] = CLIP_MEAN,
                    std: Sequence[float] = CLIP_STD, mode: str = "bicubic", crop_offset: str = "round") -> torch.Tensor:
    """CLIP's eval transform in torch: resize shorter side (bicubic), centre crop, normalise."""
    return normalize(center_crop(resize_shorter(x, size, mode=mode), size, crop_offset), mean, std)


def pil_resize_shorter(img: Image.Image, size: int, resample: int = Image.BICUBIC) -> Image.Image:
    """The PIL path of ``torchvision.transforms.Resize(size)`` for file inputs (exact official parity)."""
    w, h = img.size
    if min(w, h) == size:
        return img
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    return img.resize((new_w, new_h), resample=resample)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """``torchvision.transforms.ToTensor`` of an RGB PIL image: float ``[3,H,W]`` = uint8 / 255."""
    return torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255.0


def pil_clip_preprocess(img: Image.Image, size: int = 224, mean: Sequence[float] = CLIP_MEAN,
                        std: Sequence[float] = CLIP_STD, crop_offset: str = "round") -> torch.Tensor:
    """CLIP's eval transform on a PIL image, with PIL's bicubic resize as the official code does.
    Returns a normalised ``[3,size,size]`` tensor."""
    img = pil_resize_shorter(img.convert("RGB"), size)
    return normalize(center_crop(to_tensor(img)[None], size, crop_offset), mean, std)[0]
