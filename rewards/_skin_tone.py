"""Skin tone of a face crop: CIELAB, the Monk Skin Tone scale, ITA and the paper's 4 buckets.

Skin pixels inside the face box (CIELAB red–yellow quadrant, with luminance outliers such as eyes
and highlights removed) are averaged in CIELAB, matched to the nearest Monk Skin Tone shade (ΔE*76)
and measured as an Individual Typology Angle. Both map to the 4 buckets in `SKIN_BUCKETS` (see
`MONK_TO_BUCKET` and `ITA_TO_BUCKET`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# Monk Skin Tone scale, the published sRGB swatches MST 1 (lightest) .. MST 10 (darkest):
# https://skintone.google/get-started (Google, E. Monk 2019); the same values HEIM uses in
# helm/benchmark/metrics/image_generation/skin_tone_metrics.py `SKIN_TONES_RGB`.
MONK_HEX = ("#f6ede4", "#f3e7db", "#f7ead0", "#eadaba", "#d7bd96",
            "#a07e56", "#825c43", "#604134", "#3a312a", "#292420")

# The paper's 4 buckets, dark to light. Its classifier is not published; our documented mapping:
SKIN_BUCKETS = ("dark", "medium-dark", "medium-light", "light")
# Monk shade (1..10) -> bucket index: MST 8-10 dark, 6-7 medium-dark, 4-5 medium-light, 1-3 light
# (the swatches' lightness L* falls in 4 clusters: 92-94, 78-88, 42-55 and 15-31).
MONK_TO_BUCKET = {1: 3, 2: 3, 3: 3, 4: 2, 5: 2, 6: 1, 7: 1, 8: 0, 9: 0, 10: 0}

# Individual Typology Angle, ITA = arctan((L* - 50) / b*) * 180 / pi, with the standard categories
# (Chardon, Cretois & Hourseau 1991, Int. J. Cosmet. Sci. 13:191; Del Bino et al. 2006, Pigment Cell
# Res. 19:606): very light > 55°, light 41-55°, intermediate 28-41°, tan 10-28°, brown -30-10°,
# dark < -30°. Lower bounds of each category, lightest first:
ITA_CATEGORIES = (("very light", 55.0), ("light", 41.0), ("intermediate", 28.0), ("tan", 10.0),
                  ("brown", -30.0), ("dark", -math.inf))
# ITA category -> bucket: very light + light -> light, intermediate -> medium-light,
# tan -> medium-dark, brown + dark -> dark.
ITA_TO_BUCKET = {"very light": 3, "light": 3, "intermediate": 2, "tan": 1, "brown": 0, "dark": 0}

# Softness of the Monk shade probabilities: p(shade) ∝ exp(-ΔE² / (2 σ²)). A heuristic, not a
# calibrated probability; σ = 10 ΔE*76 is about half the median gap between adjacent swatches.
MONK_SIGMA = 10.0
# Inner part of a face box used for skin (fractions of width / height): cheeks, nose and forehead,
# leaving out hair, background and the neck at the box edges.
FACE_SKIN_REGION = (0.2, 0.8, 0.25, 0.85)  # x0, x1, y0, y1
# Pixels whose L* is outside these percentiles of the region are eyes, brows, nostrils or highlights.
SKIN_L_PERCENTILES = (0.1, 0.9)
MIN_SKIN_FRACTION = 0.1  # below this share of the region passing the skin test, use the whole region

# sRGB (IEC 61966-2-1) -> linear -> XYZ (D65) -> CIELAB (CIE 15:2004), white point D65.
_SRGB_TO_XYZ = torch.tensor([[0.4124564, 0.3575761, 0.1804375],
                             [0.2126729, 0.7151522, 0.0721750],
                             [0.0193339, 0.1191920, 0.9503041]], dtype=torch.float64)
_D65 = torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64)


def srgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1], channels last ``[..., 3]`` → CIELAB ``[..., 3]`` (L* in [0, 100]), D65.

    Example:
        >>> [round(v) for v in srgb_to_lab(torch.tensor([1.0, 1.0, 1.0])).tolist()]
        [100, 0, 0]
    """
    x = rgb.double().clamp(0, 1)
    lin = torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    xyz = lin @ _SRGB_TO_XYZ.T.to(x.device) / _D65.to(x.device)
    eps, kappa = 216 / 24389, 24389 / 27  # CIE constants
    f = torch.where(xyz > eps, xyz.clamp(min=1e-12) ** (1 / 3), (kappa * xyz + 16) / 116)
    lab = torch.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], dim=-1)
    return lab.to(rgb.dtype if rgb.is_floating_point() else torch.float32)


def _hex_to_rgb01(h: str) -> tuple[float, float, float]:
    return tuple(int(h[i:i + 2], 16) / 255.0 for i in (1, 3, 5))  # type: ignore[return-value]


MONK_LAB = srgb_to_lab(torch.tensor([_hex_to_rgb01(h) for h in MONK_HEX], dtype=torch.float64))


def ita_degrees(L: float | torch.Tensor, b: float | torch.Tensor) -> torch.Tensor:
    """ITA = arctan((L* - 50) / b*) · 180/π. b* ≤ 0 (achromatic or bluish, outside skin) is
    clamped to a tiny positive value, which gives ±90°."""
    L = torch.as_tensor(L, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64).clamp(min=1e-6)
    return torch.rad2deg(torch.atan((L - 50) / b))


def ita_category(ita: float) -> str:
    for name, lower in ITA_CATEGORIES:
        if ita > lower:
            return name
    return ITA_CATEGORIES[-1][0]


@dataclass
class SkinTone:
    """The skin tone of one face. ``monk``: 1..10; ``monk_probs``: 10 probabilities; ``lab``: the
    mean skin colour in CIELAB; ``ita`` (degrees) and its category; ``bucket`` / ``bucket_probs``:
    the 4 `SKIN_BUCKETS` by the scale chosen (``"monk"`` or ``"ita"``); ``skin_pixels``: how many
    pixels were averaged; ``fallback``: True when too few pixels passed the skin test and the whole
    inner face region was averaged."""

    monk: int
    monk_probs: list[float]
    lab: tuple[float, float, float]
    ita: float
    ita_category: str
    bucket: int
    bucket_probs: list[float]
    skin_pixels: int
    fallback: bool

    @property
    def bucket_name(self) -> str:
        return SKIN_BUCKETS[self.bucket]


def skin_tone(face: torch.Tensor, scale: str = "monk") -> SkinTone | None:
    """Skin tone of a face crop ``[3, h, w]`` (floats in [0, 1]); None when the crop is empty.

    1. take the inner region `FACE_SKIN_REGION` of the box;
    2. skin pixels: CIELAB a* > 0 and b* > 0 (skin is red–yellow at every tone — the premise of
       ITA; a luminance-free test, so dark skin is not rejected as RGB/YCrCb thresholds such as
       Kolkur et al. 2017's do) and L* inside the `SKIN_L_PERCENTILES` of the region;
    3. mean L*, a*, b* of those pixels → nearest Monk swatch by ΔE*76, and ITA;
    4. bucket by `MONK_TO_BUCKET` (``scale="monk"``) or `ITA_TO_BUCKET` (``scale="ita"``).

    Example:
        >>> swatch = torch.tensor(_hex_to_rgb01(MONK_HEX[6])).view(3, 1, 1).expand(3, 20, 20)
        >>> t = skin_tone(swatch); (t.monk, t.bucket_name)
        (7, 'medium-dark')
    """
    if scale not in ("monk", "ita"):
        raise ValueError(f"scale must be 'monk' or 'ita', got {scale!r}")
    _, h, w = face.shape
    x0, x1, y0, y1 = FACE_SKIN_REGION
    top, left = int(h * y0), int(w * x0)
    region = face[:, top:max(top + 1, int(round(h * y1))), left:max(left + 1, int(round(w * x1)))]
    if region.numel() == 0 or h == 0 or w == 0:
        return None
    lab = srgb_to_lab(region.detach().double().permute(1, 2, 0).reshape(-1, 3))  # (pixels, 3)
    lo, hi = torch.quantile(lab[:, 0], torch.tensor(SKIN_L_PERCENTILES, dtype=lab.dtype))
    in_range = (lab[:, 0] >= lo) & (lab[:, 0] <= hi)
    skin = in_range & (lab[:, 1] > 0) & (lab[:, 2] > 0)
    fallback = int(skin.sum()) < max(1, MIN_SKIN_FRACTION * lab.shape[0])
    chosen = lab[in_range if fallback else skin]
    if chosen.shape[0] == 0:
        chosen, fallback = lab, True
    mean = chosen.mean(0)
    d2 = ((MONK_LAB.to(mean) - mean) ** 2).sum(-1)  # squared ΔE*76 to each swatch
    monk_probs = torch.softmax(-d2 / (2 * MONK_SIGMA ** 2), dim=0)
    monk = int(torch.argmin(d2)) + 1
    ita = float(ita_degrees(mean[0], mean[2]))
    cat = ita_category(ita)
    if scale == "monk":
        bucket_probs = [0.0] * len(SKIN_BUCKETS)
        for shade, p in enumerate(monk_probs.tolist(), start=1):
            bucket_probs[MONK_TO_BUCKET[shade]] += p
        bucket = MONK_TO_BUCKET[monk]
    else:
        bucket = ITA_TO_BUCKET[cat]
        bucket_probs = [float(i == bucket) for i in range(len(SKIN_BUCKETS))]  # ITA is a measurement
    return SkinTone(monk, monk_probs.tolist(), tuple(float(v) for v in mean), ita, cat, bucket, bucket_probs,
                    int(chosen.shape[0]), fallback)
