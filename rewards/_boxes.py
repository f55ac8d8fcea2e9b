"""Benchmark rules on boxes: IoU, T2I-CompBench's position score and duplicate merge, GenEval's relative position.

Pure functions on xyxy boxes in pixels (y down), tested on hand-made boxes."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

# T2I-CompBench UniDet_eval/2D_spatial_eval.py (commit 6d58bed) line 23, determine_position(): iou_threshold=0.1,
# distance_threshold=150 (pixels, whatever the image size; its samples are 512 x 512).
COMPBENCH_IOU_THRESHOLD = 0.1
COMPBENCH_DISTANCE_THRESHOLD = 150.0
# The image size at which the corrected rule's threshold is 150 px (it scales with the image's longer side).
COMPBENCH_REFERENCE_SIZE = 512.0
# T2I-CompBench numeracy_eval.py calculate_iou(): boxes of one class with IoU > 0.9, or covering
# > 0.9 of each other, are one object.
COMPBENCH_DEDUP_IOU = 0.9
# GenEval evaluation/evaluate_images.py --position_threshold default.
GENEVAL_POSITION_THRESHOLD = 0.1

_COMPBENCH_RELATION = {"left of": "on the left of", "right of": "on the right of", "above": "on the top of",
                       "below": "on the bottom of", "near": "near", "next to": "next to", "beside": "next to",
                       "on side of": "on side of"}


def _intersection(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return ix * iy


def _area(a: Sequence[float]) -> float:
    return (a[2] - a[0]) * (a[3] - a[1])


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    inter = _intersection(a, b)
    union = _area(a) + _area(b) - inter
    return inter / union if union > 0 else 0.0


def compbench_position_score(relation: str | None, box1: Sequence[float], box2: Sequence[float],
                             image_size: tuple[int, int] = (512, 512), iou_threshold: float = COMPBENCH_IOU_THRESHOLD,
                             distance_threshold: float = COMPBENCH_DISTANCE_THRESHOLD,
                             reference_size: float | None = COMPBENCH_REFERENCE_SIZE) -> float:
    """T2I-CompBench's soft score in [0, 1] that ``box1`` (subject, xyxy) stands in ``relation``
    to ``box2``. Directions: 1 when the centre offset is mainly along the relation's axis and the
    boxes overlap little (IoU < 0.1), ``0.1 / IoU`` when they overlap more, 0 on the wrong side.
    Proximity (near / next to / beside / on side of): 1 when the centres are closer than the
    distance threshold on either axis, else threshold / largest offset. Unknown relation: 0.

    ``relation``: a canonical relation of the parser ("left of", "above", ...) or one of
    T2I-CompBench's phrases ("on the left of", "on the top of", ...). The distance threshold is
    ``distance_threshold`` pixels at an image of ``reference_size`` (scaled to ``image_size``'s
    longer side); ``reference_size=None``: pixels at any size, as the official rule.

        >>> compbench_position_score("left of", (0, 0, 10, 10), (20, 0, 30, 10))
        1.0
    """
    rel = _COMPBENCH_RELATION.get(relation or "", relation)
    c1 = ((box1[0] + box1[2]) / 2, (box1[1] + box1[3]) / 2)
    c2 = ((box2[0] + box2[2]) / 2, (box2[1] + box2[3]) / 2)
    dx, dy = c2[0] - c1[0], c2[1] - c1[1]  # > 0: the reference is right of / below the subject
    iou = _iou(box1, box2)
    thr = distance_threshold if reference_size is None else distance_threshold * max(image_size) / reference_size

    def directional(along: float, across: float, sign: int) -> float:
        if sign * along <= 0 or abs(along) <= abs(across):
            return 0.0
        return 1.0 if iou < iou_threshold else iou_threshold / iou

    if rel in ("next to", "on side of", "near"):
        if abs(dx) < thr or abs(dy) < thr:
            return 1.0
        return thr / max(abs(dx), abs(dy))
    if rel == "on the right of":
        return directional(dx, dy, -1)
    if rel == "on the left of":
        return directional(dx, dy, +1)
    if rel == "on the bottom of":
        return directional(dy, dx, -1)
    if rel == "on the top of":
        return directional(dy, dx, +1)
    return 0.0


def dedup_boxes(boxes: torch.Tensor, iou_threshold: float = COMPBENCH_DEDUP_IOU) -> int:
    """Number of distinct objects among boxes of one class (T2I-CompBench numeracy): a box is a
    duplicate of a kept one when their IoU (or the share of either box covered) exceeds 0.9."""
    kept: list[list[float]] = []
    for b in boxes.tolist():
        dup = False
        for k in kept:
            inter = _intersection(b, k)
            ab = max(_area(b), 1e-9)
            ak = max(_area(k), 1e-9)
            if _iou(b, k) > iou_threshold or inter / ab > iou_threshold or inter / ak > iou_threshold:
                dup = True
                break
        if not dup:
            kept.append(b)
    return len(kept)


def geneval_relative_position(box_a: Sequence[float], box_b: Sequence[float],
                              threshold: float = GENEVAL_POSITION_THRESHOLD) -> set[str]:
    """GenEval's relations of box A to box B (xyxy, y down): the centre offset shrunk by
    ``threshold * (width/height of A + of B)`` per axis; a relation holds when its axis carries more
    than half of the (unshrunk) offset's length. Equal or near centres: no relation.

        >>> sorted(geneval_relative_position((0, 0, 10, 10), (100, 100, 110, 110)))
        ['above', 'left of']
    """
    ca = ((box_a[0] + box_a[2]) / 2, (box_a[1] + box_a[3]) / 2)
    cb = ((box_b[0] + box_b[2]) / 2, (box_b[1] + box_b[3]) / 2)
    dims = [abs(box_a[2] - box_a[0]) + abs(box_b[2] - box_b[0]), abs(box_a[3] - box_a[1]) + abs(box_b[3] - box_b[1])]
    offset = [ca[0] - cb[0], ca[1] - cb[1]]
    revised = [max(abs(o) - threshold * d, 0.0) * math.copysign(1.0, o) if o else 0.0 for o, d in zip(offset, dims)]
    if all(abs(r) < 1e-3 for r in revised):
        return set()
    norm = math.hypot(*offset)
    dx, dy = revised[0] / norm, revised[1] / norm
    rels = set()
    if dx < -0.5:
        rels.add("left of")
    if dx > 0.5:
        rels.add("right of")
    if dy < -0.5:
        rels.add("above")
    if dy > 0.5:
        rels.add("below")
    return rels
