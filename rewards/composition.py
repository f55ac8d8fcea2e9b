"""Compositional rewards: the paper's detection reward, T2I-CompBench and GenEval-style checks.

Every reward reads the objects, counts, colours and relations from the prompt with the rule-based
parser of `rewards._prompts` (no NLP model), detects objects with ultralytics YOLO trained on COCO
(`rewards._detect`), and applies the benchmark's rule to the boxes. The rules are plain functions
on `Detections` (tested on hand-made boxes):

=====================  ========================================================================
reward                 rule
=====================  ========================================================================
detection-score        Zhang et al. 2024 (arXiv 2401.12244): mean over the prompt's objects of
                       the best detection confidence of that object (0 when not detected).
object-presence        share of the prompt's objects detected (score > 0.3, GenEval's threshold).
compbench-spatial      T2I-CompBench 2D spatial (UniDet_eval/2D_spatial_eval.py): 0.25 * conf of
                       each object + 0.5 * the relation's soft score from the box centres and IoU;
                       totals under 0.5 become 0.
compbench-numeracy     T2I-CompBench numeracy (UniDet_eval/numeracy_eval.py): per object,
                       weight 1/n: +0.5 if detected, +0.5 more if the count is exact.
geneval-counting       GenEval counting (evaluation/evaluate_images.py): 1 if every object has
                       exactly its count of detections with score > 0.9, else 0.
geneval-position       GenEval position: objects present and the subject "left of/right of/
                       above/below" the reference by the box-centre rule (threshold 0.1).
geneval-color          GenEval colours: the object's colour, by CLIP zero-shot on the box crop,
                       is the prompt's colour (one object).
geneval-color-attr     GenEval colour attribution: every coloured object has its own colour.
geneval                GenEval's full check of the prompt's spec (counts, colours, positions).
compbench-vqa          T2I-CompBench BLIP-VQA (attribute binding): product over noun phrases of
                       P(yes | image, "<noun phrase>?").
compbench-nonspatial   T2I-CompBench CLIPScore: cosine similarity, CLIP ViT-B/32 (via the registry).
compbench-complex      T2I-CompBench 3-in-1: mean of BLIP-VQA and spatial (prompt with a spatial
                       relation) or BLIP-VQA and CLIP (otherwise).
=====================  ========================================================================

Objects the detector does not know (not one of the 80 COCO classes, after the synonym table:
"lamp", "frog", ...) are scored as not detected — as the official pipelines do when their detector
misses an object — and each such row says so in ``details["note"]``. A prompt with no object gives
0 and a note. Detection-based rewards are not differentiable (detection, thresholds and counting
are discrete); ``compbench-vqa`` and ``compbench-nonspatial`` are.

The detector is YOLOv8x (COCO) by default, where T2I-CompBench used UniDet and GenEval
Mask2Former: scores are comparable between models judged by this package, not with numbers
published with the official detectors.

Example (random weights, so the scores mean nothing):
    >>> import torch, rewardbench
    >>> r = rewardbench.load_reward("detection-score", pretrained=False, model="yolov8n", imgsz=64)
    >>> out = r(torch.rand(2, 3, 96, 96), ["a cat next to a dog", "a lamp"])
    >>> out.scores.shape, out.details["note"][1][:10]
    (torch.Size([2]), 'not in the')
"""

from __future__ import annotations

import abc
import json
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rewardbench import BackboneReward, RewardModel, RewardOutput, RewardSpec, WeightSource, register_reward
from rewardbench.transforms import CLIP_MEAN, CLIP_STD, normalize, resize

from ._detect import Detections, YoloDetector, pack_detections, unpack_detections, yolo_weight_sources
from ._prompts import COLORS, GENEVAL_COLORS, SHAPES, TEXTURES, ParsedPrompt, parse_prompt

_PAPER = "Zhang, Tzeng, Du, Kislyuk, Large-scale Reinforcement Learning for Diffusion Models, arXiv 2401.12244"
_COMPBENCH = "Huang et al., T2I-CompBench: A Comprehensive Benchmark for Open-world Compositional Text-to-image Generation, arXiv 2307.06350"
_GENEVAL = "Ghosh et al., GenEval: An Object-Focused Framework for Evaluating Text-to-Image Alignment, arXiv 2310.11513"
_YOLO_LICENSE = "AGPL-3.0 (ultralytics YOLO weights and code)"
DEFAULT_DETECTOR = "yolov8x"
DETECTOR_BACKBONE = f"ultralytics:{DEFAULT_DETECTOR}/coco"  # the detection rewards share their detections

# GenEval evaluation/evaluate_images.py defaults (its --options): threshold 0.3, counting_threshold
# 0.9, max_objects 16, max_overlap 1.0 (no extra NMS), position_threshold 0.1.
GENEVAL_THRESHOLD = 0.3
GENEVAL_COUNTING_THRESHOLD = 0.9
GENEVAL_MAX_OBJECTS = 16
GENEVAL_POSITION_THRESHOLD = 0.1
# T2I-CompBench determine_position(): iou_threshold=0.1, distance_threshold=150 (pixels of its
# 512 x 512 samples; scaled here to the image's longer side).
COMPBENCH_IOU_THRESHOLD = 0.1
COMPBENCH_DISTANCE_THRESHOLD = 150.0
COMPBENCH_REFERENCE_SIZE = 512.0
# T2I-CompBench numeracy_eval.py calculate_iou(): boxes of one class with IoU > 0.9, or covering
# > 0.9 of each other, are one object.
COMPBENCH_DEDUP_IOU = 0.9
# UniDet's score threshold lives in its detectron2 config; with YOLO we keep detections above this.
COMPBENCH_DETECTION_THRESHOLD = 0.3

_COMPBENCH_RELATION = {"left of": "on the left of", "right of": "on the right of", "above": "on the top of",
                       "below": "on the bottom of", "near": "near", "next to": "next to", "beside": "next to",
                       "on side of": "on side of"}


# =============================================================================================
# rules on boxes (pure functions)


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def compbench_position_score(relation: str | None, box1: Sequence[float], box2: Sequence[float],
                             image_size: tuple[int, int] = (512, 512), iou_threshold: float = COMPBENCH_IOU_THRESHOLD,
                             distance_threshold: float = COMPBENCH_DISTANCE_THRESHOLD) -> float:
    """T2I-CompBench's soft score in [0, 1] that ``box1`` (subject, xyxy) stands in ``relation``
    to ``box2``. Directions: 1 when the centre offset is mainly along the relation's axis and the
    boxes overlap little (IoU < 0.1), ``0.1 / IoU`` when they overlap more, 0 on the wrong side.
    Proximity (near / next to / beside / on side of): 1 when the centres are closer than the
    distance threshold on either axis, else threshold / largest offset. Unknown relation: 0.

        >>> compbench_position_score("left of", (0, 0, 10, 10), (20, 0, 30, 10))
        1.0
    """
    rel = _COMPBENCH_RELATION.get(relation or "", relation)
    c1 = ((box1[0] + box1[2]) / 2, (box1[1] + box1[3]) / 2)
    c2 = ((box2[0] + box2[2]) / 2, (box2[1] + box2[3]) / 2)
    dx, dy = c2[0] - c1[0], c2[1] - c1[1]  # > 0: the reference is right of / below the subject
    iou = _iou(box1, box2)
    thr = distance_threshold * max(image_size) / COMPBENCH_REFERENCE_SIZE

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


def _pair_instances(det: Detections, a: str, b: str, min_score: float):
    """Best instance of ``a`` and of ``b`` (the second best of ``b`` when ``a == b``)."""
    ba, sa = det.of(a, min_score)
    bb, sb = det.of(b, min_score)
    ia = 0 if len(sa) else None
    ib = (1 if len(sb) > 1 else None) if a == b else (0 if len(sb) else None)
    return ((ba[ia].tolist(), float(sa[ia])) if ia is not None else None,
            (bb[ib].tolist(), float(sb[ib])) if ib is not None else None)


def compbench_spatial(parsed: ParsedPrompt, det: Detections, min_score: float = COMPBENCH_DETECTION_THRESHOLD) -> float:
    """T2I-CompBench 2D spatial score of one image: subject and reference are the relation's two
    objects (the first and last object when no relation is found, as the official code takes the
    first and last noun). ``0.25 * conf(subject) + 0.25 * conf(reference) + position / 2`` when both
    are detected, ``0.25 * conf`` when one is, 0 when none; a total under 0.5 is 0."""
    if not parsed.objects:
        return 0.0
    if parsed.relations:
        r = parsed.relations[0]
        o1, o2, rel = parsed.objects[r.subject], parsed.objects[r.object], r.relation
    else:
        o1, o2, rel = parsed.objects[0], parsed.objects[-1], None
    i1, i2 = _pair_instances(det, o1.coco or "", o2.coco or "", min_score) if o1.coco and o2.coco else (
        _pair_instances(det, o1.coco, o1.coco, min_score)[0] if o1.coco else None,
        _pair_instances(det, o2.coco, o2.coco, min_score)[0] if o2.coco else None)
    if i1 and i2:
        score = 0.25 * i1[1] + 0.25 * i2[1] + compbench_position_score(rel, i1[0], i2[0], det.image_size) / 2
    elif i1 or i2:
        score = 0.25 * (i1 or i2)[1]  # type: ignore[index]
    else:
        score = 0.0
    return score if score >= 0.5 else 0.0  # official: `if (score<0.5): score=0`


def dedup_boxes(boxes: torch.Tensor, iou_threshold: float = COMPBENCH_DEDUP_IOU) -> int:
    """Number of distinct objects among boxes of one class (T2I-CompBench numeracy): a box is a
    duplicate of a kept one when their IoU (or the share of either box covered) exceeds 0.9."""
    kept: list[list[float]] = []
    for b in boxes.tolist():
        dup = False
        for k in kept:
            ix = max(0.0, min(b[2], k[2]) - max(b[0], k[0]))
            iy = max(0.0, min(b[3], k[3]) - max(b[1], k[1]))
            inter = ix * iy
            ab = max((b[2] - b[0]) * (b[3] - b[1]), 1e-9)
            ak = max((k[2] - k[0]) * (k[3] - k[1]), 1e-9)
            if _iou(b, k) > iou_threshold or inter / ab > iou_threshold or inter / ak > iou_threshold:
                dup = True
                break
        if not dup:
            kept.append(b)
    return len(kept)


def compbench_numeracy(parsed: ParsedPrompt, det: Detections, min_score: float = COMPBENCH_DETECTION_THRESHOLD) -> float:
    """T2I-CompBench numeracy score: objects introduced by a number word or "a"/"an"; each weighs
    1/n and earns half for being detected and half for the exact count (duplicates merged)."""
    objs = [o for o in parsed.objects if o.det.split()[:1] and o.det.split()[-1] in _COUNT_WORDS]
    if not objs:
        objs = list(parsed.objects)
    if not objs:
        return 0.0
    w = 1.0 / len(objs)
    score = 0.0
    for o in objs:
        if o.coco is None:
            continue
        boxes, _ = det.of(o.coco, min_score)
        n = dedup_boxes(boxes)
        if n > 0:
            score += 0.5 * w
            if n == (o.count or 1):
                score += 0.5 * w
    return score


_COUNT_WORDS = frozenset(("a", "an", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                          "ten", "eleven", "twelve", "single", "pair", "couple"))


def detection_score(parsed: ParsedPrompt, det: Detections) -> float:
    """The paper's reward: mean over the prompt's objects of the best confidence of that object."""
    if not parsed.objects:
        return 0.0
    return sum(det.best(o.coco) if o.coco else 0.0 for o in parsed.objects) / len(parsed.objects)


def object_presence(parsed: ParsedPrompt, det: Detections, min_score: float = GENEVAL_THRESHOLD) -> float:
    """Share of the prompt's objects detected with score > ``min_score``."""
    if not parsed.objects:
        return 0.0
    return sum(bool(o.coco) and len(det.of(o.coco, min_score)[1]) > 0 for o in parsed.objects) / len(parsed.objects)


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


def geneval_evaluate(spec: dict, det: Detections, *, counting: bool = False, check_counts: bool = True,
                     check_colors: bool = True, check_positions: bool = True,
                     color_of: Callable[[str, list[list[float]]], list[str]] | None = None,
                     threshold: float = GENEVAL_THRESHOLD, counting_threshold: float = GENEVAL_COUNTING_THRESHOLD,
                     max_objects: int = GENEVAL_MAX_OBJECTS, position_threshold: float = GENEVAL_POSITION_THRESHOLD,
                     colors_for: set[int] | None = None) -> tuple[bool, list[str]]:
    """GenEval's ``evaluate``: ``include`` clauses must all hold (at least ``count`` detections of
    the class; their colours by ``color_of``; each of them in ``position`` to every object of the
    target clause), ``exclude`` clauses must not (``count`` or more detections). Detections are the
    class's boxes above ``threshold`` (``counting_threshold`` when ``counting``), best first, at most
    ``max_objects``. ``check_*`` switch clause kinds off for the single-task rewards;
    ``colors_for`` limits the colour check to those include indices. Returns (correct, reasons)."""
    thr = counting_threshold if counting else threshold
    found: dict[str, list[list[float]]] = {}
    for cls in {c["class"] for c in spec.get("include", []) + spec.get("exclude", [])}:
        boxes, _ = det.of(cls, thr)
        found[cls] = boxes[:max_objects].tolist()
    correct, reasons, groups = True, [], []
    for idx, req in enumerate(spec.get("include", [])):
        cls, need = req["class"], (req["count"] if check_counts else 1)
        objs = found.get(cls, [])[:need]
        matched = True
        if len(objs) < need:
            correct = matched = False
            reasons.append(f"expected {cls}>={need}, found {len(objs)}")
        else:
            if check_colors and "color" in req and color_of is not None and (colors_for is None or idx in colors_for):
                colors = color_of(cls, objs)
                if colors.count(req["color"]) < need:
                    correct = matched = False
                    reasons.append(f"expected {req['color']} {cls}, found " + ", ".join(colors))
            if check_positions and "position" in req and matched:
                rel, target = req["position"]
                if target >= len(groups) or groups[target] is None:
                    correct = matched = False
                    reasons.append(f"no target for {cls} to be {rel}")
                else:
                    for a in objs:
                        for b in groups[target]:
                            got = geneval_relative_position(a, b, position_threshold)
                            if rel not in got:
                                correct = matched = False
                                reasons.append(f"expected {cls} {rel} target, found {' and '.join(sorted(got)) or 'no relation'}")
                                break
                        if not matched:
                            break
        groups.append(objs if matched else None)
    if check_counts:
        for req in spec.get("exclude", []):
            n = len(found.get(req["class"], []))
            if n >= req["count"]:
                correct = False
                reasons.append(f"expected {req['class']}<{req['count']}, found {n}")
    return correct, reasons


# =============================================================================================
# rewards


_DETECTOR_TINY = {"model": "yolov8n", "imgsz": 64}


class _DetectionReward(BackboneReward):
    """Base of the detector-based rewards: parse, detect (batched), apply ``rule`` per image.

    The detector is the shareable backbone: rewards that declare the same ``spec.backbone`` (and
    detector settings, see `backbone_fingerprint`) get their detections computed once per image by
    the scoring harness (`embed_images` packs them into a tensor, `score_embeddings` unpacks).
    Rewards that need the pixels after detection (GenEval colours) declare no backbone."""

    @classmethod
    def weight_sources(cls, spec, cfg):
        # the detector's checkpoint for the configured model size; a tiny/random build needs none
        return None if cfg.get("detector") is not None else yolo_weight_sources(cfg.get("model", DEFAULT_DETECTOR))

    def __init__(self, model: str = DEFAULT_DETECTOR, imgsz: int = 640, detector: nn.Module | None = None, **rule_kw: Any):
        super().__init__()
        # `detector` may be any module pixels -> list[Detections] (tests inject hand-made boxes)
        self.backbone = detector if detector is not None else YoloDetector(model=model, imgsz=imgsz)
        self.rule_kw = rule_kw

    @property
    def detector(self) -> nn.Module:
        return self.backbone

    def backbone_fingerprint(self) -> tuple:
        d = self.backbone
        settings = tuple(getattr(d, k, None) for k in ("model_name", "imgsz", "conf", "iou", "max_det"))
        return (*super().backbone_fingerprint(), type(d).__name__, settings)

    def load_pretrained(self, weights: str | os.PathLike | None = None) -> str:
        from rewardbench.weights import resolve_weights

        if not isinstance(self.detector, YoloDetector):
            return self.weights_used
        found = resolve_weights(yolo_weight_sources(self.detector.model_name), reward=self.spec.name, override=weights)
        self.detector.load(found.path)
        self.weights_used = f"{found.source} ({self.detector.model_name})"
        return self.weights_used

    @abc.abstractmethod
    def rule(self, parsed: ParsedPrompt, det: Detections, pixels: torch.Tensor | None) -> tuple[float, dict[str, Any]]:
        """One image's score and details from its parsed prompt and detections."""

    # -- the BackboneReward protocol ------------------------------------------------------------
    def embed_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return pack_detections(self.detector(pixels), getattr(self.detector, "max_det", 300)).to(pixels.device)

    def score_embeddings(self, image_embeds, prompts, groups) -> RewardOutput:
        names = getattr(self.detector, "names", None) or Detections.from_list([]).names
        return self._score_detections(unpack_detections(image_embeds, tuple(names)), prompts, None,
                                      image_embeds.device)

    def score(self, pixels, prompts, groups) -> RewardOutput:
        return self._score_detections(self.detector(pixels), prompts, pixels, pixels.device)

    def _score_detections(self, dets: list[Detections], prompts: list[str], pixels: torch.Tensor | None,
                          device: torch.device) -> RewardOutput:
        scores, notes, objects, found = [], [], [], []
        extra: dict[str, list] = {}
        for i, (prompt, det) in enumerate(zip(prompts, dets)):
            parsed = parse_prompt(prompt)
            value, info = self.rule(parsed, det, None if pixels is None else pixels[i])
            scores.append(float(value))
            notes.append("; ".join(x for x in (parsed.note(), info.pop("note", "")) if x))
            objects.append(", ".join(f"{o.count or 'n'} {o.coco or o.noun + '(?)'}" for o in parsed.objects))
            found.append(json.dumps(det.as_lists()[:20]))
            for k, v in info.items():
                extra.setdefault(k, []).append(v)
        details: dict[str, Any] = {"note": notes, "objects": objects, "detections": found, **extra}
        return RewardOutput(torch.tensor(scores, dtype=torch.float32, device=device), details)


def _det_spec(name: str, description: str, paper: str, range_=(0.0, 1.0), aliases=()) -> RewardSpec:
    return RewardSpec(
        name=name, aliases=tuple(aliases), category="composition", higher_is_better=True, range=range_,
        differentiable=False, needs_prompt=True, weights=yolo_weight_sources(DEFAULT_DETECTOR),
        backbone=DETECTOR_BACKBONE,
        license=_YOLO_LICENSE, paper=paper,
        description=description + f"; detector ultralytics {DEFAULT_DETECTOR} (COCO); not differentiable",
        tiny_config=_DETECTOR_TINY,
    )


@register_reward()
class DetectionScore(_DetectionReward):
    """The paper's compositional reward: mean best detection confidence of the prompt's objects."""

    spec = _det_spec("detection-score", "mean over the prompt's objects of the best detection confidence",
                     _PAPER, aliases=("detection_score", "object-detection"))

    def rule(self, parsed, det, pixels):
        return detection_score(parsed, det), {}


@register_reward()
class ObjectPresence(_DetectionReward):
    """Share of the prompt's objects that are detected (score > 0.3)."""

    spec = _det_spec("object-presence", "share of the prompt's objects detected with confidence > 0.3", _GENEVAL,
                     aliases=("object_presence",))

    def rule(self, parsed, det, pixels):
        return object_presence(parsed, det, self.rule_kw.get("threshold", GENEVAL_THRESHOLD)), {}


@register_reward()
class CompBenchSpatial(_DetectionReward):
    """T2I-CompBench 2D spatial score (UniDet rule on YOLO boxes)."""

    spec = _det_spec("compbench-spatial", "T2I-CompBench 2D spatial: 0.25*conf per object + relation score/2, "
                     "zeroed below 0.5", _COMPBENCH, aliases=("t2i-compbench-spatial",))

    def rule(self, parsed, det, pixels):
        note = "" if parsed.relations else "no spatial relation found in the prompt: position score 0"
        return compbench_spatial(parsed, det, self.rule_kw.get("threshold", COMPBENCH_DETECTION_THRESHOLD)), {"note": note}


@register_reward()
class CompBenchNumeracy(_DetectionReward):
    """T2I-CompBench numeracy score (UniDet rule on YOLO boxes)."""

    spec = _det_spec("compbench-numeracy", "T2I-CompBench numeracy: per object 0.5 if detected + 0.5 if the count "
                     "is exact, averaged", _COMPBENCH, aliases=("t2i-compbench-numeracy",))

    def rule(self, parsed, det, pixels):
        return compbench_numeracy(parsed, det, self.rule_kw.get("threshold", COMPBENCH_DETECTION_THRESHOLD)), {}


class _GenEvalReward(_DetectionReward):
    """GenEval's binary check of the spec parsed from the prompt (1 = correct)."""

    task = "overall"
    needs_color = False

    def __init__(self, model: str = DEFAULT_DETECTOR, imgsz: int = 640, detector: nn.Module | None = None,
                 clip_arch: str = "ViT-L-14", clip_pretrained: str = "openai", tiny: bool = False, **rule_kw: Any):
        super().__init__(model=model, imgsz=imgsz, detector=detector, **rule_kw)
        self.clip = None
        if self.needs_color:
            from .clip import build_clip

            # GenEval: open_clip ViT-L-14 (OpenAI weights) zero-shot colour classifier on the box crops
            self.clip = build_clip(clip_arch, clip_pretrained, tiny=tiny)
            self._classifiers: dict[str, torch.Tensor] = {}

    def load_pretrained(self, weights=None) -> str:
        used = super().load_pretrained(weights)
        if self.clip is not None:
            from .clip import load_clip_weights

            used += f"; CLIP {load_clip_weights(self.clip, reward=self.spec.name)}"
            self._classifiers.clear()
            self.weights_used = used
        return used

    def _color_of(self, pixels: torch.Tensor) -> Callable[[str, list[list[float]]], list[str]]:
        def classify(cls: str, boxes: list[list[float]]) -> list[str]:
            if cls not in self._classifiers:
                # GenEval's templates (evaluate_images.py color_classification), averaged per colour
                # as clip_benchmark's zero_shot_classifier does
                feats = []
                for c in GENEVAL_COLORS:
                    t = self.clip.encode_text([f"a photo of a {c} {cls}", f"a photo of a {c}-colored {cls}",
                                               f"a photo of a {c} object"])
                    feats.append(F.normalize(t.mean(0), dim=-1))
                self._classifiers[cls] = torch.stack(feats)  # [10, D]
            h, w = pixels.shape[-2:]
            out = []
            for b in boxes:
                x1, y1 = int(max(0, math.floor(b[0]))), int(max(0, math.floor(b[1])))
                x2, y2 = int(min(w, max(x1 + 1, math.ceil(b[2])))), int(min(h, max(y1 + 1, math.ceil(b[3]))))
                crop = pixels[None, :, y1:y2, x1:x2]
                feat = self.clip.encode_image(crop.float())
                out.append(GENEVAL_COLORS[int((feat @ self._classifiers[cls].T).argmax())])
            return out

        return classify

    def rule(self, parsed, det, pixels):
        if not parsed.objects:
            return 0.0, {"reason": "no object found in the prompt"}
        spec = parsed.geneval_spec()
        counting = bool(spec.get("exclude"))
        kw = dict(counting=counting)
        if self.task == "counting":
            kw.update(counting=True, check_colors=False, check_positions=False)
        elif self.task == "position":
            kw.update(check_counts=False, check_colors=False)
        elif self.task in ("color", "color_attr"):
            kw.update(check_counts=False, check_positions=False)
            colored = [i for i, c in enumerate(spec["include"]) if "color" in c]
            if self.task == "color":
                kw["colors_for"] = set(colored[:1])
        if self.clip is not None and pixels is not None:
            kw["color_of"] = self._color_of(pixels)
        kw.update({k: v for k, v in self.rule_kw.items() if k in ("threshold", "counting_threshold", "max_objects",
                                                                   "position_threshold")})
        ok, reasons = geneval_evaluate(spec, det, **kw)
        if parsed.unknown:
            ok = False
            reasons.append("unknown to the detector: " + ", ".join(parsed.unknown))
        note = ""
        if self.task == "position" and not any(r.relation in ("left of", "right of", "above", "below") for r in parsed.relations):
            note = "no left/right/above/below relation in the prompt: only presence is checked"
        if self.task in ("color", "color_attr") and not any(o.color in GENEVAL_COLORS for o in parsed.objects):
            note = "no GenEval colour in the prompt: only presence is checked"
        return float(ok), {"reason": "; ".join(reasons), "note": note}


def _geneval_spec(name: str, task: str, description: str, aliases=()) -> RewardSpec:
    s = _det_spec(name, description, _GENEVAL, aliases=aliases)
    if task in ("color", "color_attr", "overall"):
        s = s.replace(weights=s.weights + (
            WeightSource("hub", "timm/vit_large_patch14_clip_224.openai", filename="open_clip_model.safetensors",
                         note="CLIP ViT-L/14 for the colour classifier"),),
            tiny_config={**_DETECTOR_TINY, "tiny": True}, license=_YOLO_LICENSE + "; MIT (OpenAI CLIP)",
            backbone=None)  # the colour check needs the pixels after detection: no shared features
    return s


@register_reward()
class GenEvalCounting(_GenEvalReward):
    spec = _geneval_spec("geneval-counting", "counting", "GenEval counting: exactly the prompt's count of each "
                         "object (detections > 0.9); 1 or 0")
    task = "counting"


@register_reward()
class GenEvalPosition(_GenEvalReward):
    spec = _geneval_spec("geneval-position", "position", "GenEval position: objects present and in the prompt's "
                         "left/right/above/below relation; 1 or 0")
    task = "position"


@register_reward()
class GenEvalColor(_GenEvalReward):
    spec = _geneval_spec("geneval-color", "color", "GenEval colours: the object has the prompt's colour (CLIP "
                         "zero-shot on the box crop); 1 or 0", aliases=("geneval-colors",))
    task = "color"
    needs_color = True


@register_reward()
class GenEvalColorAttr(_GenEvalReward):
    spec = _geneval_spec("geneval-color-attr", "color_attr", "GenEval colour attribution: every object has its "
                         "own colour (CLIP zero-shot on crops); 1 or 0")
    task = "color_attr"
    needs_color = True


@register_reward()
class GenEval(_GenEvalReward):
    spec = _geneval_spec("geneval", "overall", "GenEval: the prompt's full spec (counts, colours, positions); "
                         "1 or 0", aliases=("geneval-overall",))
    task = "overall"
    needs_color = True


# =============================================================================================
# BLIP-VQA (attribute binding), CLIPScore (non-spatial) and 3-in-1 (complex)

# Salesforce/blip-vqa-base (transformers config.json): ViT-B/16 at 384 px, BERT-base text encoder
# and decoder with cross-attention, vocabulary 30,524 (bert-base-uncased + [DEC] + [ENC]).
BLIP_VQA_BASE = dict(
    vision=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                image_size=384, patch_size=16, layer_norm_eps=1e-5),
    text=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              encoder_hidden_size=768, vocab_size=30524, max_position_embeddings=512, layer_norm_eps=1e-12),
)
BLIP_VQA_TINY = dict(
    vision=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2, image_size=32,
                patch_size=8, layer_norm_eps=1e-5),
    text=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2,
              encoder_hidden_size=32, vocab_size=30524, max_position_embeddings=64, layer_norm_eps=1e-12),
)
# T2I-CompBench BLIPvqa_eval/models/blip_vqa.py vqa_prob(): the decoder starts from [DEC] (30522)
# and the answer is P("yes") / (P("yes") + P("no")) of the first token; "yes" = 2748, "no" = 2053 in
# bert-base-uncased's vocabulary. Questions: the noun phrase + "?", at most 35 tokens, first token
# replaced by [ENC] (30523) as BLIP's VQA encoder expects; at most 8 noun phrases (--np_num 8).
BLIP_DEC_ID, BLIP_ENC_ID, BLIP_YES_ID, BLIP_NO_ID = 30522, 30523, 2748, 2053
BLIP_MAX_QUESTION_TOKENS = 35
COMPBENCH_MAX_PHRASES = 8


@register_reward()
class CompBenchVQA(RewardModel):
    """T2I-CompBench's BLIP-VQA score for attribute binding (colour, shape, texture): one question
    per noun phrase of the prompt ("a green bench?"), the probability of "yes" among yes/no,
    multiplied over the phrases. Differentiable with respect to the pixels."""

    spec = RewardSpec(
        name="compbench-vqa", aliases=("blip-vqa", "t2i-compbench-vqa"), category="composition",
        higher_is_better=True, range=(0.0, 1.0), differentiable=True, needs_prompt=True,
        weights=(WeightSource("hub", "Salesforce/blip-vqa-base", filename="model.safetensors"),),
        license="BSD-3-Clause (Salesforce BLIP)", paper=_COMPBENCH + "; Li et al., BLIP, arXiv 2201.12086",
        description="T2I-CompBench BLIP-VQA: product over noun phrases of P(yes | image, '<phrase>?'), "
                    "transformers BlipForQuestionAnswering (Salesforce/blip-vqa-base)",
        tiny_config={"tiny": True},
    )

    def __init__(self, tiny: bool = False, image_size: int | None = None, tokenizer: str | None = None):
        super().__init__()
        from transformers import BlipConfig, BlipForQuestionAnswering

        arch = BLIP_VQA_TINY if tiny else BLIP_VQA_BASE
        cfg = BlipConfig(text_config=dict(arch["text"]), vision_config=dict(arch["vision"]))
        self.vqa = BlipForQuestionAnswering(cfg).eval()
        self.image_size = int(image_size or arch["vision"]["image_size"])
        from ._blip import blip_tokenizer  # BLIP's tokenizer, offline from the packaged vocabulary

        self.tokenizer = blip_tokenizer(tokenizer)

    def load_pretrained(self, weights=None) -> str:
        from rewardbench.weights import CheckpointMismatchError, load_into, load_state_dict, resolve_weights

        found = resolve_weights(self.spec.weights, reward=self.spec.name, override=weights)
        sd = load_state_dict(found.path, map_location="cpu")
        own = self.vqa.state_dict()
        missing = set(own) - set(sd)
        tied = {"text_decoder.cls.predictions.decoder.weight", "text_decoder.cls.predictions.decoder.bias"}
        if missing - tied:
            raise CheckpointMismatchError(f"{found.path}: missing keys {sorted(missing - tied)[:20]}")
        load_into(self.vqa, {k: v for k, v in sd.items() if k in own}, strict=False, source=str(found.path))
        self.vqa.tie_weights()
        self.weights_used = found.source
        return found.source

    @staticmethod
    def questions(prompt: str) -> list[str]:
        """The noun-phrase questions T2I-CompBench asks for a prompt (at most 8)."""
        return [f"{o.phrase}?" for o in parse_prompt(prompt).objects][:COMPBENCH_MAX_PHRASES]

    def yes_probability(self, pixels: torch.Tensor, questions: list[list[str]]) -> list[torch.Tensor]:
        """P(yes)/(P(yes)+P(no)) for each question of each image: a list of ``[Q_i]`` tensors."""
        dev = pixels.device
        # BLIP's eval transform: resize to S x S (bicubic), normalise with the CLIP mean/std
        x = normalize(resize(pixels, (self.image_size, self.image_size)), CLIP_MEAN, CLIP_STD)
        image_embeds = self.vqa.vision_model(pixel_values=x.to(self.dtype)).last_hidden_state  # [B, P+1, D]
        flat = [(i, q) for i, qs in enumerate(questions) for q in qs]
        if not flat:
            return [torch.zeros(0, device=dev) for _ in questions]
        # padded to a fixed length so that a question's result does not depend on its batch-mates
        enc = self.tokenizer([q for _, q in flat], padding="max_length", truncation=True,
                             max_length=BLIP_MAX_QUESTION_TOKENS, return_tensors="pt")
        ids = enc["input_ids"].to(dev)
        ids[:, 0] = BLIP_ENC_ID
        mask = enc["attention_mask"].to(dev)
        owner = torch.tensor([i for i, _ in flat], device=dev)
        img = image_embeds[owner]  # (questions, P+1, D)
        img_mask = torch.ones(img.shape[:-1], dtype=torch.long, device=dev)
        q = self.vqa.text_encoder(input_ids=ids, attention_mask=mask, encoder_hidden_states=img,
                                  encoder_attention_mask=img_mask).last_hidden_state
        start = torch.full((len(flat), 1), BLIP_DEC_ID, dtype=torch.long, device=dev)
        logits = self.vqa.text_decoder(input_ids=start, encoder_hidden_states=q, encoder_attention_mask=mask,
                                       return_logits=False).logits[:, 0, :].float()
        prob = logits.softmax(dim=-1)
        p = prob[:, BLIP_YES_ID] / (prob[:, BLIP_YES_ID] + prob[:, BLIP_NO_ID])
        out, k = [], 0
        for qs in questions:
            out.append(p[k:k + len(qs)])
            k += len(qs)
        return out

    def score(self, pixels, prompts, groups) -> RewardOutput:
        qs = [self.questions(p) for p in prompts]
        probs = self.yes_probability(pixels, qs)
        ones = pixels.sum(dim=(1, 2, 3)) * 0 + 1  # keeps the graph for prompts without a phrase
        scores = torch.stack([pr.prod() if len(pr) else ones[i] for i, pr in enumerate(probs)]).float()
        notes = ["" if q else "no noun phrase found: score 1 (as T2I-CompBench scores a missing phrase)" for q in qs]
        return RewardOutput(scores, {"questions": [" | ".join(q) for q in qs],
                                     "yes_probs": [",".join(f"{float(v):.4f}" for v in pr.detach()) for pr in probs],
                                     "note": notes})


def _strip_adjectives(prompt: str) -> str:
    """The prompt without attribute words (T2I-CompBench complex: CLIP sees the prompt without
    adjectives; here without the colour/shape/texture vocabulary)."""
    import re

    words = re.findall(r"\S+", prompt)
    keep = [w for w in words if w.lower().strip(".,;:!?") not in COLORS | SHAPES | TEXTURES]
    return " ".join(keep) or prompt


@register_reward()
class CompBenchNonSpatial(RewardModel):
    """T2I-CompBench's non-spatial score: the CLIP ViT-B/32 cosine similarity of image and prompt
    (CLIPScore_eval/CLIP_similarity.py: no 2.5 factor, no clamp), through the registry's
    ``clipscore-b32`` with ``scale=1, clamp_at_zero=False``."""

    spec = RewardSpec(
        name="compbench-nonspatial", aliases=("t2i-compbench-nonspatial", "compbench-clip"), category="composition",
        higher_is_better=True, range=(-1.0, 1.0), differentiable=True, needs_prompt=True,
        weights=(WeightSource("hub", "timm/vit_base_patch32_clip_224.openai", filename="open_clip_model.safetensors"),),
        license="MIT (OpenAI CLIP weights)", paper=_COMPBENCH,
        description="T2I-CompBench non-spatial: CLIP ViT-B/32 image-text cosine similarity",
        tiny_config={"tiny": True},
    )

    def __init__(self, tiny: bool = False, strip_adjectives: bool = False):
        super().__init__()
        from rewardbench.registry import REGISTRY

        self.clip = REGISTRY.build("clipscore-b32", tiny=tiny, scale=1.0, clamp_at_zero=False)
        self.strip_adjectives = strip_adjectives

    def load_pretrained(self, weights=None) -> str:
        self.weights_used = self.clip.load_pretrained(weights)
        return self.weights_used

    def score(self, pixels, prompts, groups) -> RewardOutput:
        text = [_strip_adjectives(p) for p in prompts] if self.strip_adjectives else list(prompts)
        out = self.clip.score(pixels, text, None)
        return RewardOutput(out.scores.float(), {})


@register_reward()
class CompBenchComplex(RewardModel):
    """T2I-CompBench's 3-in-1 score for complex prompts (3_in_1_eval/3_in_1.py): the mean of the
    BLIP-VQA attribute score and the spatial score when the prompt has a spatial relation, else of
    the BLIP-VQA score and the CLIP score (on the prompt without adjectives). The official split
    uses hand-made lists of which val prompts are spatial/action; here the parser decides."""

    spec = RewardSpec(
        name="compbench-complex", aliases=("t2i-compbench-complex", "compbench-3-in-1"), category="composition",
        higher_is_better=True, range=(0.0, 1.0), differentiable=False, needs_prompt=True,
        weights=CompBenchVQA.spec.weights + yolo_weight_sources(DEFAULT_DETECTOR) + CompBenchNonSpatial.spec.weights,
        license="BSD-3-Clause (BLIP); " + _YOLO_LICENSE + "; MIT (OpenAI CLIP)", paper=_COMPBENCH,
        description="T2I-CompBench 3-in-1: mean of BLIP-VQA and (spatial if a relation is named, else CLIP)",
        tiny_config={**_DETECTOR_TINY, "tiny": True},
    )

    def __init__(self, model: str = DEFAULT_DETECTOR, imgsz: int = 640, tiny: bool = False,
                 detector: nn.Module | None = None):
        super().__init__()
        self.attribute = CompBenchVQA(tiny=tiny)
        self.spatial = CompBenchSpatial(model=model, imgsz=imgsz, detector=detector)
        self.clip = CompBenchNonSpatial(tiny=tiny, strip_adjectives=True)

    def load_pretrained(self, weights=None) -> str:
        if weights is not None:
            raise ValueError("compbench-complex combines three models; set $REWARDBENCH_WEIGHTS or load them separately")
        parts = [m.load_pretrained() for m in (self.attribute, self.spatial, self.clip)]
        self.weights_used = "; ".join(parts)
        return self.weights_used

    def score(self, pixels, prompts, groups) -> RewardOutput:
        attr = self.attribute.score(pixels, prompts, None)
        spatial = self.spatial.score(pixels, prompts, None)
        clip = self.clip.score(pixels, prompts, None)
        has_rel = torch.tensor([bool(parse_prompt(p).relations) for p in prompts], device=pixels.device)
        second = torch.where(has_rel, spatial.scores.to(pixels.device), clip.scores.to(pixels.device))
        scores = ((attr.scores + second) / 2).float()
        return RewardOutput(scores, {"attribute": attr.scores.detach(), "spatial": spatial.scores.detach(),
                                     "clip": clip.scores.detach(),
                                     "mode": ["attribute+spatial" if r else "attribute+clip" for r in has_rel.tolist()],
                                     "note": spatial.details["note"]})
