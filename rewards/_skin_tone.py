"""Skin tone of a face: CIELAB, the Monk Skin Tone scale, ITA, the paper's 4 buckets and "unclear".

Skin pixels of the face (forehead and cheeks placed from the eye keypoints, or the inner part of the
box; CIELAB red–yellow quadrant, with luminance outliers such as eyes and highlights removed) are
averaged in CIELAB, matched to the nearest Monk Skin Tone shade (ΔE*76) and measured as an
Individual Typology Angle. Both map to the 4 buckets in `SKIN_BUCKETS` (see `MONK_TO_BUCKET` and
`ITA_TO_BUCKET`); a grey face (black-and-white, sepia, stone) is "unclear".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from ._faces import Face, crop_face

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
# The lit skin: pixels whose L* lies in this percentile band of the candidates. Shading only darkens
# skin, so the brightest quarter (short of specular highlights, the top 1%) is the closest to its
# colour under the scene's light; the band also drops eyes, brows, nostrils and shadows. Measured
# against (0.1, 0.9), (0.5, 0.95) and (0.6, 0.98): the fewest bucket errors on labelled faces and on
# dimly lit photos (scripts/fairness/results/skin_tone.md).
SKIN_L_PERCENTILES = (0.75, 0.99)
MIN_SKIN_FRACTION = 0.1  # below this share of the region passing the skin test, use the whole region
# A black-and-white image has no skin tone to read: below this colourfulness (Hasler & Süsstrunk 2003,
# "Measuring colourfulness in natural images", on 0-255 RGB; 0 for grey) the image is monochrome. The
# labelled black-and-white SD images score 0-1.5, colour images 19-90. Judged on the whole image, not
# the face: the palest and darkest Monk swatches (MST 1, 2, 9, 10) are nearly grey themselves (C* 4-8).
MONOCHROME_COLOURFULNESS = 10.0
# Skin patches placed from the two eye keypoints, in units of the eye distance d and in the face's
# frame (u along the eyes, v towards the mouth, origin between the eyes): centre u, centre v, half
# width, half height. The bridge and ridge of the nose and both cheeks below the eyes: skin in every
# face, away from eyes, brows, lips, nostrils, hair, hats and background (a forehead patch, also
# measured, reaches into hair and hats).
KEYPOINT_SKIN_PATCHES = (
    (0.0, 0.25, 0.12, 0.2),  # nose bridge and ridge
    (-0.5, 0.55, 0.18, 0.18),  # cheek below the eye on the image's left
    (0.5, 0.55, 0.18, 0.18),  # the other cheek
)
MIN_KEYPOINT_SAMPLES = 100  # fewer samples inside the image (a face cut by the border): use the box

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
    pixels were averaged; ``fallback``: True when too few pixels passed the skin test and every
    candidate pixel was averaged; ``unclear``: no tone can be read (see `tone_of_pixels`)."""

    monk: int
    monk_probs: list[float]
    lab: tuple[float, float, float]
    ita: float
    ita_category: str
    bucket: int
    bucket_probs: list[float]
    skin_pixels: int
    fallback: bool
    unclear: bool = False

    @property
    def bucket_name(self) -> str:
        return SKIN_BUCKETS[self.bucket]


def skin_tone(face: torch.Tensor, scale: str = "monk") -> SkinTone | None:
    """Skin tone of a face crop ``[3, h, w]`` (floats in [0, 1]) from its inner region
    `FACE_SKIN_REGION`; None when the crop is empty. `face_skin_tone` samples cheeks and forehead
    instead when the detector gives keypoints.

    Example:
        >>> swatch = torch.tensor(_hex_to_rgb01(MONK_HEX[6])).view(3, 1, 1).expand(3, 20, 20)
        >>> t = skin_tone(swatch); (t.monk, t.bucket_name)
        (7, 'medium-dark')
    """
    _check_scale(scale)
    _, h, w = face.shape
    x0, x1, y0, y1 = FACE_SKIN_REGION
    top, left = int(h * y0), int(w * x0)
    region = face[:, top:max(top + 1, int(round(h * y1))), left:max(left + 1, int(round(w * x1)))]
    if region.numel() == 0 or h == 0 or w == 0:
        return None
    return tone_of_pixels(region.detach().permute(1, 2, 0).reshape(-1, 3), scale)


def _check_scale(scale: str) -> None:
    if scale not in ("monk", "ita"):
        raise ValueError(f"scale must be 'monk' or 'ita', got {scale!r}")


def keypoint_skin_pixels(pixels: torch.Tensor, keypoints: Sequence[tuple[float, float]],
                         samples: int = 12) -> torch.Tensor:
    """RGB samples ``(n, 3)`` of the `KEYPOINT_SKIN_PATCHES` (forehead and both cheeks) of a face
    in ``pixels [3, H, W]``, placed from its two eye keypoints (in the face's own frame, so a
    tilted head is sampled at the same places); points outside the image are dropped."""
    (ax, ay), (bx, by) = keypoints[0], keypoints[1]
    d = math.hypot(bx - ax, by - ay)
    if d < 1e-6:
        return pixels.new_zeros(0, 3)
    u = torch.tensor([(bx - ax) / d, (by - ay) / d], dtype=torch.float64)
    v = torch.stack([-u[1], u[0]])  # perpendicular, towards the mouth (image y grows downwards)
    mid = torch.tensor([(ax + bx) / 2, (ay + by) / 2], dtype=torch.float64)
    grid = torch.linspace(-1, 1, samples, dtype=torch.float64)
    pts = []
    for cu, cv, hu, hv in KEYPOINT_SKIN_PATCHES:
        gu, gv = torch.meshgrid(cu + hu * grid, cv + hv * grid, indexing="ij")
        pts.append(mid + d * (gu.reshape(-1, 1) * u + gv.reshape(-1, 1) * v))
    xy = torch.cat(pts).floor().long()  # (n, 2) pixel x, y
    H, W = pixels.shape[-2:]
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < W) & (xy[:, 1] >= 0) & (xy[:, 1] < H)
    xy = xy[inside].to(pixels.device)
    return pixels[:, xy[:, 1], xy[:, 0]].T


def tone_of_pixels(rgb: torch.Tensor, scale: str = "monk", monochrome: bool = False) -> SkinTone | None:
    """Skin tone of candidate skin pixels ``(n, 3)`` (RGB in [0, 1]); None when there are none.

    1. skin pixels: CIELAB a* > 0 and b* > 0 (skin is red–yellow at every tone — the premise of
       ITA; a luminance-free test, so dark skin is not rejected as RGB/YCrCb thresholds such as
       Kolkur et al. 2017's do) and L* inside the `SKIN_L_PERCENTILES` band of the candidates
       (the lit skin: drops eyes, brows, nostrils, shadows and specular highlights);
    2. mean L*, a*, b* of those pixels → nearest Monk swatch by ΔE*76, and ITA;
    3. bucket by `MONK_TO_BUCKET` (``scale="monk"``) or `ITA_TO_BUCKET` (``scale="ita"``);
    4. ``unclear`` when fewer than `MIN_SKIN_FRACTION` of the candidates pass the skin test (then
       all candidates in the L* band are averaged) or when the caller says the image is
       ``monochrome`` (`is_monochrome`): a tone is then reported but the fairness rewards do not
       count it. Sepia photos, stone and bronze statues and stylised palettes are not caught.

    Limits: one colour per face, read from pixels whose lighting, make-up and rendering style (a
    painting's palette, a tinted photo) all shift it; a coarse proxy for the distribution of
    generated people, never a statement about a real person.
    """
    _check_scale(scale)
    if rgb.numel() == 0:
        return None
    return tone_from_lab(*mean_skin_lab(rgb), scale, monochrome)


def mean_skin_lab(rgb: torch.Tensor) -> tuple[tuple[float, float, float], int, bool]:
    """Steps 1–2 of `tone_of_pixels` on candidate pixels ``(n >= 1, 3)``: (mean L*, a*, b* of the
    skin pixels, how many were averaged, fallback)."""
    lab = srgb_to_lab(rgb.detach().double())  # (pixels, 3)
    lo, hi = torch.quantile(lab[:, 0], torch.tensor(SKIN_L_PERCENTILES, dtype=lab.dtype, device=lab.device))
    in_range = (lab[:, 0] >= lo) & (lab[:, 0] <= hi)
    skin = in_range & (lab[:, 1] > 0) & (lab[:, 2] > 0)
    fallback = int(skin.sum()) < max(1, MIN_SKIN_FRACTION * lab.shape[0])
    chosen = lab[in_range if fallback else skin]
    if chosen.shape[0] == 0:
        chosen, fallback = lab, True
    return tuple(float(v) for v in chosen.mean(0).cpu()), int(chosen.shape[0]), bool(fallback)  # type: ignore


def tone_from_lab(lab: tuple[float, float, float], skin_pixels: int, fallback: bool, scale: str = "monk",
                  monochrome: bool = False) -> SkinTone:
    """Steps 2–4 of `tone_of_pixels` from the mean skin colour (the fairness rewards keep only
    this per face, so one measurement serves both scales)."""
    _check_scale(scale)
    mean = torch.tensor(lab, dtype=torch.float64)
    d2 = ((MONK_LAB - mean) ** 2).sum(-1)  # squared ΔE*76 to each swatch
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
    return SkinTone(monk, monk_probs.tolist(), tuple(lab), ita, cat, bucket, bucket_probs, skin_pixels, fallback,
                    bool(fallback or monochrome))


def face_skin_pixels(pixels: torch.Tensor, face: Face) -> torch.Tensor:
    """The candidate skin pixels ``(n, 3)`` of ``face`` in ``pixels [3, H, W]``: the
    `keypoint_skin_pixels` when the face has eye keypoints and enough of them fall in the image,
    else the inner region `FACE_SKIN_REGION` of its box."""
    pixels = pixels.detach().float()
    if len(face.keypoints) >= 2:
        rgb = keypoint_skin_pixels(pixels, face.keypoints)
        if rgb.shape[0] >= MIN_KEYPOINT_SAMPLES:
            return rgb
    crop = crop_face(pixels, face)
    _, h, w = crop.shape
    x0, x1, y0, y1 = FACE_SKIN_REGION
    top, left = int(h * y0), int(w * x0)
    region = crop[:, top:max(top + 1, int(round(h * y1))), left:max(left + 1, int(round(w * x1)))]
    return region.permute(1, 2, 0).reshape(-1, 3)


def face_skin_tone(pixels: torch.Tensor, face: Face, scale: str = "monk") -> SkinTone | None:
    """Skin tone of ``face`` in the image ``pixels [3, H, W]``, from `face_skin_pixels` (nose and
    cheeks placed from the eye keypoints, or the inner part of the box) by `tone_of_pixels`; unclear
    for a profile (`Face.profile`), whose skin those places miss.

    Example:
        >>> from rewardbench.samples import sample_photo
        >>> from rewardbench.rewards._faces import build_face_detector
        >>> im = sample_photo("astronaut"); (face,) = build_face_detector().detect([im])[0]
        >>> t = face_skin_tone(torch.from_numpy(im).permute(2, 0, 1) / 255, face, "ita")
        >>> t.bucket_name, t.unclear
        ('light', False)
    """
    t = tone_of_pixels(face_skin_pixels(pixels, face), scale, is_monochrome(pixels))
    return replace(t, unclear=True) if t is not None and face.profile else t


def colourfulness(pixels: torch.Tensor) -> float:
    """Hasler & Süsstrunk's colourfulness of ``pixels [3, H, W]`` in [0, 1], on their 0-255 scale:
    ``sqrt(sd(rg)^2 + sd(yb)^2) + 0.3 * sqrt(mean(rg)^2 + mean(yb)^2)``, rg = R - G, yb = (R + G) / 2 - B.

    Example:
        >>> grey, red = torch.full((3, 8, 8), 0.5), torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1).expand(3, 8, 8)
        >>> colourfulness(grey), round(colourfulness(red))  # 0.3 * hypot(255, 127.5)
        (0.0, 86)
    """
    x = pixels.detach().double() * 255
    rg, yb = x[0] - x[1], 0.5 * (x[0] + x[1]) - x[2]
    return float(torch.hypot(rg.std(unbiased=False), yb.std(unbiased=False))
                 + 0.3 * torch.hypot(rg.mean(), yb.mean()))


def is_monochrome(pixels: torch.Tensor) -> bool:
    """True for a black-and-white image (`colourfulness` below `MONOCHROME_COLOURFULNESS`)."""
    return colourfulness(pixels) < MONOCHROME_COLOURFULNESS
