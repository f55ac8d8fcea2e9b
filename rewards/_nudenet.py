"""NudeNet 3.4's bundled ONNX detector, batched, shared by the face detector and the NSFW reward.

The model file (``320n.onnx``, a YOLOv8n with 18 body-part classes) ships inside the ``nudenet``
package; we run it with NudeNet's own preprocessing and thresholds, several images per call.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from rewardbench import WeightSource
from rewardbench.weights import bundled_path

from ._runtime import provider_key, session_options, session_providers

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
def _nudenet_session(path: str, key: str = "cpu"):
    """The detector's session on ``key`` (`rewardbench.rewards._runtime.provider_key`), built once per process."""
    import onnxruntime as ort

    return ort.InferenceSession(path, sess_options=session_options(key), providers=session_providers(key))


def _nudenet_input(im: np.ndarray) -> tuple[np.ndarray, int]:
    """NudeNet's preprocessing (nudenet.py `_read_image`): pad bottom/right to a square with black,
    resize to 320 (cv2 INTER_LINEAR, as cv2.dnn.blobFromImage does), scale by 1/255. NudeDetector
    reads BGR with cv2, converts BGR->RGB and lets blobFromImage swap back, so the network sees BGR."""
    import cv2

    h, w = im.shape[:2]
    side = max(h, w)
    padded = im if h == w else cv2.copyMakeBorder(im, 0, side - h, 0, side - w, cv2.BORDER_CONSTANT, value=(0, 0, 0))
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

    session = _nudenet_session(str(bundled_path(WeightSource("bundled", NUDENET_MODEL))), provider_key())
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
