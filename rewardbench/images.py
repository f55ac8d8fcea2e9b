"""Turn whatever a user has (paths, PIL images, arrays, tensors) into float pixels in [0, 1].

Conventions:
  * torch tensors are channel-first: ``[3,H,W]`` or ``[B,3,H,W]`` (an unambiguous ``[H,W,C]`` is
    accepted too); numpy arrays are channel-last: ``[H,W]``, ``[H,W,C]`` or ``[B,H,W,C]``;
  * uint8 is scaled by 1/255, uint16 by 1/65535; floats must already lie in [0, 1];
  * grayscale is repeated to 3 channels; an alpha channel is dropped, as PIL's ``convert("RGB")``
    (which the official reward pipelines use) drops it;
  * float tensors keep their autograd graph, so a VAE decoder's output can be scored with gradients.

Anything else raises `ImageError` (a ``ValueError``) naming the offending item.

Example:
    >>> import numpy as np
    >>> to_image_batch([np.zeros((8, 8, 3), np.uint8), np.ones((8, 8), np.float32)]).shape
    torch.Size([2, 3, 8, 8])
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

__all__ = [
    "ImageError",
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "load_image",
    "to_pixels",
    "as_pixels",
    "to_image_batch",
    "pixels_to_uint8",
    "pixels_from_uint8",
    "uint8_view",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
# Largest image we decode (width * height). Beyond this a file is treated as a decompression bomb.
# 8192 x 8192 covers every generator output we know of; override with $REWARDBENCH_MAX_PIXELS.
MAX_PIXELS = int(os.environ.get("REWARDBENCH_MAX_PIXELS", 8192 * 8192))
_FLOAT_TOLERANCE = 1e-2  # decoders overshoot [0, 1] by a little; [-1, 1] input is an error


def _pil_open(path):
    """PIL's own ``Image.open``. ultralytics replaces ``PIL.Image.open`` process-wide with a wrapper
    that, on an unidentifiable file, imports (and may try to pip-install) a HEIF plugin; a corrupt
    input must fail here with a clear error instead."""
    opener = Image.open
    if getattr(opener, "__module__", "").startswith("ultralytics"):
        opener = getattr(sys.modules.get(opener.__module__), "_image_open", opener)
    return opener(path)


class ImageError(ValueError):
    """An input that is not a usable image; the message names the item and why."""


def path_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` is not a file that can be read, in words, or None when it is one (symbolic links followed).

    Example:
        >>> import os, tempfile
        >>> d = tempfile.mkdtemp()
        >>> os.symlink("gone.png", os.path.join(d, "a.png")); os.symlink("b.png", os.path.join(d, "c.png"))
        >>> os.symlink("c.png", os.path.join(d, "b.png")); os.mkdir(os.path.join(d, "x.jpg"))
        >>> for name in ("a.png", "c.png", "x.jpg", "nothing.png"):
        ...     print(path_problem(os.path.join(d, name)))
        dangling symbolic link (to gone.png, which does not exist)
        symbolic link loop
        a directory, not an image file
        no such file
    """
    import errno
    import stat

    try:
        st = os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symbolic link loop"
        if os.path.islink(path):
            return f"dangling symbolic link (to {os.readlink(path)}, which does not exist)"
        return "no such file" if e.errno == errno.ENOENT else (e.strerror or str(e)).lower()
    if stat.S_ISDIR(st.st_mode):
        return "a directory, not an image file"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (a pipe, socket or device)"
    return None


def load_image(path: str | os.PathLike, max_pixels: int | None = None) -> Image.Image:
    """Open and fully decode an image file, returning an RGB PIL image.

    Raises `ImageError` for a missing, empty, truncated, unidentifiable or oversized file.

    Example:
        >>> import matplotlib.cbook as cbook
        >>> load_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).size
        (512, 600)
    """
    path = Path(path)
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    if not path.is_file():
        raise ImageError(f"{path}: {path_problem(path) or 'not a readable file'}")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with _pil_open(path) as img:
                w, h = img.size
                if w * h > limit:
                    raise ImageError(
                        f"{path}: {w}x{h} = {w * h} pixels exceeds the limit of {limit} "
                        "(possible decompression bomb; raise $REWARDBENCH_MAX_PIXELS to allow it)"
                    )
                img.load()
                return _pil_to_rgb(img)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"{path}: decompression bomb refused ({e})") from None
    except Image.UnidentifiedImageError:
        raise ImageError(f"{path}: not a recognised image format") from None
    except (OSError, SyntaxError, ValueError) as e:  # truncated or corrupt data
        raise ImageError(f"{path}: cannot decode image ({e})") from None


def _pil_to_rgb(img: Image.Image) -> Image.Image:
    """RGB copy of any PIL mode; 16/32-bit integer and float modes are rescaled, not clipped."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img)
        if img.mode == "F":
            arr = np.clip(arr, 0.0, 1.0)
        else:
            arr = np.clip(arr.astype(np.float64) / 65535.0, 0.0, 1.0)
        gray = np.round(arr * 255.0).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if img.mode == "RGB":  # already: no copy (decoding a generated JPEG or PNG lands here)
        return img
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    return img.convert("RGB")


def _from_numpy(arr: np.ndarray, where: str) -> torch.Tensor:
    if not arr.flags.writeable:  # torch warns on read-only arrays (e.g. np.asarray of a PIL image)
        arr = arr.copy()
    if arr.dtype == np.uint8:
        t = torch.from_numpy(np.ascontiguousarray(arr)).float().div_(255.0)
    elif arr.dtype == np.uint16:
        t = torch.from_numpy(arr.astype(np.float32) / 65535.0)
    elif arr.dtype == np.bool_:
        t = torch.from_numpy(arr.astype(np.float32))
    elif np.issubdtype(arr.dtype, np.floating):
        t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    else:
        raise ImageError(f"{where}: unsupported array dtype {arr.dtype} (use uint8, uint16 or float in [0, 1])")
    if t.ndim == 2:
        t = t[None]
    elif t.ndim == 3 and t.shape[-1] in (1, 3, 4):
        t = t.permute(2, 0, 1)
    elif t.ndim == 3 and t.shape[0] in (1, 3, 4):
        pass  # already channel-first
    else:
        raise ImageError(f"{where}: array of shape {tuple(arr.shape)} is not an image ([H,W], [H,W,C] with C in 1/3/4)")
    return t


def _tensor_to_float(t: torch.Tensor, where: str) -> torch.Tensor:
    """uint8 / uint16 / bool tensors scaled to float in [0, 1]; float tensors as they are."""
    if t.dtype == torch.uint8:
        return t.float() / 255.0
    if t.dtype == torch.bool:
        return t.float()
    if getattr(torch, "uint16", None) is not None and t.dtype == torch.uint16:
        return t.to(torch.int32).float() / 65535.0
    if not t.is_floating_point():
        raise ImageError(f"{where}: unsupported tensor dtype {t.dtype} (use uint8 or float in [0, 1])")
    return t


def _from_tensor(t: torch.Tensor, where: str) -> torch.Tensor:
    t = _tensor_to_float(t, where)
    if t.ndim == 2:
        t = t[None]
    elif t.ndim == 3 and t.shape[0] not in (1, 3, 4) and t.shape[-1] in (1, 3, 4):
        t = t.permute(2, 0, 1)
    elif not (t.ndim == 3 and t.shape[0] in (1, 3, 4)):
        raise ImageError(f"{where}: tensor of shape {tuple(t.shape)} is not an image ([C,H,W] with C in 1/3/4)")
    return t


def _channels_to_rgb(t: torch.Tensor, where: str, layout: str = "[C,H,W]") -> torch.Tensor:
    """``[..., C, H, W]`` with C in 1/3/4 → 3 channels (gray repeated, alpha dropped)."""
    c = t.shape[-3]
    if c == 1:
        t = t.expand(*t.shape[:-3], 3, -1, -1)
    elif c == 4:
        t = t[..., :3, :, :]
    elif c != 3:
        raise ImageError(f"{where}: tensor of shape {tuple(t.shape)} is not {layout} with C in 1/3/4")
    if t.shape[-2] == 0 or t.shape[-1] == 0:
        raise ImageError(f"{where}: empty image of size {tuple(t.shape[-2:])}")
    return t


def _check_range(t: torch.Tensor, where: str) -> None:
    if not t.is_floating_point() or t.numel() == 0 or uint8_source(t) is not None:  # k / 255: in range by making
        return
    lo, hi = torch.stack(torch.aminmax(t.detach())).float().tolist()  # one pass, one device sync
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ImageError(f"{where}: contains NaN or infinity")
    if lo < -_FLOAT_TOLERANCE or hi > 1 + _FLOAT_TOLERANCE:
        hint = " (looks like [-1, 1]: pass (x + 1) / 2)" if lo < -0.5 else ""
        hint = hint or (" (looks like [0, 255]: pass uint8 or x / 255)" if hi > 2 else "")
        raise ImageError(f"{where}: float pixel values span [{lo:.3g}, {hi:.3g}], expected [0, 1]{hint}")


def to_pixels(item: Any, where: str = "image") -> torch.Tensor:
    """One image (path, PIL image, array or tensor) → float tensor ``[3,H,W]`` in [0, 1]."""
    if isinstance(item, (str, os.PathLike)):
        item = load_image(item)
    if isinstance(item, Image.Image):
        rgb = _pil_to_rgb(item)
        t = torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255.0)
        return t
    if isinstance(item, np.ndarray):
        t = _from_numpy(item, where)
    elif isinstance(item, torch.Tensor):
        t = _from_tensor(item, where)
    else:
        raise ImageError(f"{where}: unsupported type {type(item).__name__} "
                         "(expected a path, PIL image, array or tensor)")
    t = _channels_to_rgb(t, where)
    _check_range(t, where)
    return t


def as_pixels(images: Any, device: torch.device | str | None = None,
              dtype: torch.dtype = torch.float32) -> torch.Tensor | list[torch.Tensor]:
    """A batch of images → ``[B,3,H,W]`` float tensor, or a list of ``[3,H,W]`` when sizes differ.

    Accepts a 4-D tensor/array, or a sequence of single images of any supported kind.
    """
    if isinstance(images, torch.Tensor) and images.ndim == 4:
        batch = _batch_tensor(images)
        return batch.to(device=device, dtype=dtype)
    if isinstance(images, np.ndarray) and images.ndim == 4:
        images = list(images)
    if isinstance(images, (str, os.PathLike, Image.Image, np.ndarray, torch.Tensor)):
        images = [images]
    if not isinstance(images, Sequence) or isinstance(images, (bytes, bytearray)):
        raise ImageError(f"images: unsupported type {type(images).__name__} (expected a batch tensor or a list)")
    if len(images) == 0:
        raise ImageError("images: empty batch")
    items = [to_pixels(x, where=f"images[{i}]").to(device=device, dtype=dtype) for i, x in enumerate(images)]
    return one_batch_if_one_size(items)


def image_size(image: torch.Tensor | np.ndarray) -> tuple[int, int]:
    """(H, W) of a ``[..., C, H, W]`` tensor or an ``[H, W, C]`` array (a decoded file)."""
    return tuple(image.shape[:2]) if isinstance(image, np.ndarray) else tuple(image.shape[-2:])  # type: ignore


def size_groups(images: Sequence[torch.Tensor | np.ndarray]) -> list[list[int]]:
    """Positions of the images of each size, in first-seen order: the one rule for batches of mixed sizes
    (the harness decodes each size into one tensor and hands a reward one tensor per size; an image-level
    reward that does not take ragged batches is called once per size).

    Example:
        >>> size_groups([torch.zeros(3, 8, 8), torch.zeros(3, 4, 6), torch.zeros(3, 8, 8)])
        [[0, 2], [1]]
    """
    by: dict[tuple[int, int], list[int]] = {}
    for i, im in enumerate(images):
        by.setdefault(image_size(im), []).append(i)
    return list(by.values())


def one_batch_if_one_size(images: Sequence[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
    """``[3, H, W]`` images as one ``[B, 3, H, W]`` tensor when they share a size (`size_groups`), else
    the list itself."""
    return torch.stack(list(images)) if len(size_groups(images)) == 1 else list(images)


def _batch_tensor(t: torch.Tensor) -> torch.Tensor:
    if t.shape[1] not in (1, 3, 4) and t.shape[-1] in (1, 3, 4):
        t = t.permute(0, 3, 1, 2)
    if t.shape[0] == 0:
        raise ImageError("images: empty batch")
    if t.dtype == torch.uint8 and t.shape[1] == 3 and t.shape[-2] and t.shape[-1]:
        return pixels_from_uint8(t.permute(0, 2, 3, 1))  # the bytes stay known: `pixels_to_uint8` gives them back
    t = _channels_to_rgb(_tensor_to_float(t, "images"), "images", layout="[B,C,H,W]")
    _check_range(t, "images")
    return t


def to_image_batch(images: Any, size: tuple[int, int] | None = None, device=None,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Like `as_pixels` but always a ``[B,3,H,W]`` tensor: images of different sizes are resized
    (bilinear, antialiased) to ``size``, which is required in that case."""
    px = as_pixels(images, device=device, dtype=dtype)
    if isinstance(px, torch.Tensor):
        if size is not None and tuple(px.shape[-2:]) != tuple(size):
            px = torch.nn.functional.interpolate(px, size=size, mode="bilinear", antialias=True, align_corners=False)
        return px
    if size is None:
        shapes = sorted({tuple(t.shape[-2:]) for t in px})
        raise ImageError(f"images: sizes differ ({shapes[:4]}...); pass size=(H, W) to resize them to one size")
    return torch.cat([
        torch.nn.functional.interpolate(t[None], size=size, mode="bilinear", antialias=True, align_corners=False)
        for t in px
    ])


# A float batch made from uint8 by `pixels_from_uint8` carries the uint8 it came from in this attribute, with the
# tensor's version counter at that time (an in-place change of the floats makes it stale, and it is then ignored).
# Tensors made under torch.inference_mode (the Scorer's) keep no version counter: rewards must not change the
# pixels they are given in place (other rewards of the run score the same tensor).
_UINT8_ATTR = "_rb_uint8"


def _version(t: torch.Tensor) -> int | None:
    try:
        return t._version
    except RuntimeError:  # an inference tensor
        return None


def pixels_from_uint8(images: torch.Tensor) -> torch.Tensor:
    """Decoded uint8 images ``[B,H,W,3]`` (channels last, as files decode) → float ``[B,3,H,W]`` in [0, 1] on the
    same device, in one pass, remembering the uint8 they came from: `pixels_to_uint8` of the result (or of
    `select_rows` of it) hands those bytes back instead of converting the floats again, and the range check
    skips it. Both are exact: ``round(k / 255 * 255) == k`` for every byte ``k``.

    Example:
        >>> u8 = torch.randint(0, 256, (2, 4, 5, 3), dtype=torch.uint8)
        >>> px = pixels_from_uint8(u8)
        >>> tuple(px.shape), bool((pixels_to_uint8(px) == u8.numpy()).all())
        ((2, 3, 4, 5), True)
    """
    n, h, w, c = images.shape
    out = torch.empty((n, c, h, w), dtype=torch.float32, device=images.device)
    out.copy_(images.permute(0, 3, 1, 2)).div_(255.0)
    return _remember_uint8(out, images)


def _remember_uint8(pixels: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    setattr(pixels, _UINT8_ATTR, (_version(pixels), images))
    return pixels


def uint8_source(pixels: torch.Tensor) -> torch.Tensor | None:
    """The uint8 ``[B,H,W,3]`` that float ``pixels`` were made from by `pixels_from_uint8`, or None (made
    otherwise, or changed in place since)."""
    src = getattr(pixels, _UINT8_ATTR, None)
    return src[1] if src is not None and src[0] == _version(pixels) else None


def select_rows(pixels: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``pixels.index_select(0, rows)``, keeping what `uint8_source` knows of those rows."""
    out = pixels.index_select(0, rows)
    src = uint8_source(pixels)
    return out if src is None else _remember_uint8(out, src.index_select(0, rows.to(src.device)))


def pixels_to_uint8(pixels: torch.Tensor) -> np.ndarray:
    """``[B,3,H,W]`` floats in [0, 1] → ``[B,H,W,3]`` uint8, rounding as diffusers' ``numpy_to_pil`` does
    (``round(clamp(x, 0, 1) * 255)``); a new array each call. A uint8 batch passes through (channels last);
    pixels made by `pixels_from_uint8` give back their bytes (the same values, without the float pass)."""
    out = uint8_view(pixels)
    return out.copy() if not out.flags.writeable else out


def uint8_view(pixels: torch.Tensor) -> np.ndarray:
    """`pixels_to_uint8` for readers: the same values, read-only, and without a copy when the bytes are at hand
    (a uint8 batch, or pixels made by `pixels_from_uint8`, on the CPU)."""
    src = pixels.permute(0, 2, 3, 1) if pixels.dtype == torch.uint8 else uint8_source(pixels)
    if src is not None:
        out = src.detach().cpu().contiguous().numpy()
    else:
        x = pixels.detach().float().mul(255).round_().clamp_(0, 255)  # = round(clamp(x, 0, 1) * 255), one buffer
        b, c, h, w = x.shape
        out = torch.empty((b, h, w, c), dtype=torch.uint8, device=x.device).copy_(x.permute(0, 2, 3, 1)).cpu().numpy()
        return out  # a new array: writeable
    out = out.view()
    out.flags.writeable = False
    return out
