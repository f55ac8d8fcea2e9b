"""The paper's detection reward, object presence, and the base of every detector-based reward.

Every detector-based reward (here, in `rewards.geneval` and in `rewards.compbench`) reads the
objects, counts, colours and relations from the prompt with the rule-based parser of
`rewards._prompts` (no NLP model), detects objects with ultralytics YOLO trained on COCO
(`rewards._detect`), and applies the benchmark's rule to the boxes (plain functions on
`Detections`, tested on hand-made boxes; `rewards._boxes` holds the geometry):

=====================  ========================================================================
reward                 rule
=====================  ========================================================================
detection-score        Zhang et al. 2024 (arXiv 2401.12244): mean over the prompt's objects of
                       the best detection confidence of that object (0 when not detected).
object-presence        share of the prompt's objects detected (score > 0.3, GenEval's threshold).
=====================  ========================================================================

Objects the detector does not know (not one of the 80 COCO classes, after the synonym table:
"lamp", "frog", ...) are scored as not detected — as the official pipelines do when their detector
misses an object — and each such row says so in ``details["note"]``. A prompt with no object gives
0 and a note. Detection-based rewards are not differentiable (detection, thresholds and counting
are discrete).

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
import dataclasses
import json
import os
from typing import Any

import torch
from torch import nn

from rewardbench import BackboneReward, Option, RewardOutput, RewardSpec, register_reward

from ._detect import (
    Detections,
    YoloDetector,
    pack_detections,
    unpack_detections,
    yolo_architecture,
    yolo_weight_sources,
)
from ._prompts import ParsedPrompt, parse_prompt

_PAPER = "Zhang, Tzeng, Du, Kislyuk, Large-scale Reinforcement Learning for Diffusion Models, arXiv 2401.12244"
_GENEVAL = "Ghosh et al., GenEval: An Object-Focused Framework for Evaluating Text-to-Image Alignment, arXiv 2310.11513"
_YOLO_LICENSE = "AGPL-3.0 (ultralytics YOLO weights and code)"
DEFAULT_DETECTOR = "yolov8x"
DETECTOR_BACKBONE = f"ultralytics:{DEFAULT_DETECTOR}/coco"  # the detection rewards share their detections
_DETECTOR_TINY = {"model": "yolov8n", "imgsz": 64}

# GenEval evaluation/evaluate_images.py --threshold default: a detection counts above 0.3 (GenEval's
# other defaults are in rewards.geneval).
GENEVAL_THRESHOLD = 0.3
# every detection reward's options (`_det_spec`); a reward's rule adds its own
DETECTOR_OPTIONS = {
    "model": Option(str, DEFAULT_DETECTOR, "the YOLO detector: an ultralytics name (yolov8n ... yolov8x, yolo11n ...) "
                    "or a local checkpoint named after its architecture (/models/yolov8x.pt)"),
    "imgsz": Option(int, 640, "the detector's input size in pixels (letterbox)", low=32, high=4096),
}


def threshold_option(default: float) -> Option:
    """A rule's detection threshold: detections count above this confidence."""
    return Option(float, default, "detections count above this confidence", low=0.0, high=1.0)


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


class _DetectionReward(BackboneReward):
    """Base of the detector-based rewards: parse, detect (batched), apply ``rule`` per image.

    The detector is the shareable backbone: rewards that declare the same ``spec.backbone`` (and
    detector settings, see `backbone_fingerprint`) get their detections computed once per image by
    the scoring harness (`embed_images` packs them into a tensor, `score_embeddings` unpacks).
    Rewards that need the pixels after detection (GenEval colours) declare no backbone.
    Subclasses implement `rule`; ``rule_kw`` (the build's other options) reach it as ``self.rule_kw``."""

    @classmethod
    def weight_sources(cls, spec, cfg):
        # the detector's checkpoint for the configured model size; a tiny/random build needs none
        return None if cfg.get("detector") is not None else yolo_weight_sources(cfg.get("model", DEFAULT_DETECTOR))

    def __init__(self, model: str = DEFAULT_DETECTOR, imgsz: int = 640, detector: nn.Module | None = None, *,
                 spec: RewardSpec | None = None, **rule_kw: Any):
        super().__init__(spec)  # `spec`: for one class serving several names (GenEval's tasks)
        # `detector` may be any module pixels -> list[Detections] (tests inject hand-made boxes)
        self.backbone = detector if detector is not None else YoloDetector(model=yolo_architecture(model), imgsz=imgsz)
        self.model_source = model  # a name (the official checkpoint) or a local checkpoint file
        self.rule_kw = rule_kw

    @property
    def detector(self) -> nn.Module:
        return self.backbone

    def backbone_fingerprint(self) -> tuple:
        d = self.backbone
        settings = tuple(getattr(d, k, None) for k in ("model_name", "imgsz", "conf", "iou", "max_det"))
        return (*super().backbone_fingerprint(), type(d).__name__, settings)

    def load_pretrained(self, weights: str | os.PathLike | None = None):
        from rewardbench.weights import resolve_weights

        if not isinstance(self.detector, YoloDetector):
            return self.provenance()
        found = resolve_weights(yolo_weight_sources(self.model_source), reward=self.spec.name, override=weights)
        self.detector.load(found.path)
        self.record_weights(dataclasses.replace(found.provenance, note=self.detector.model_name))
        return self.provenance()

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


def _det_spec(name: str, description: str, paper: str, range_=(0.0, 1.0), aliases=(),
              options: dict[str, Option] | None = None) -> RewardSpec:
    return RewardSpec(
        name=name, aliases=tuple(aliases), category="composition", higher_is_better=True, range=range_,
        differentiable=False, needs_prompt=True, weights=yolo_weight_sources(DEFAULT_DETECTOR),
        backbone=DETECTOR_BACKBONE,
        license=_YOLO_LICENSE, paper=paper,
        description=description + f"; detector ultralytics {DEFAULT_DETECTOR} (COCO); not differentiable",
        tiny_config=_DETECTOR_TINY, options={**DETECTOR_OPTIONS, **(options or {})},
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
                     aliases=("object_presence",), options={"threshold": threshold_option(GENEVAL_THRESHOLD)})

    def rule(self, parsed, det, pixels):
        return object_presence(parsed, det, self.rule_kw.get("threshold", GENEVAL_THRESHOLD)), {}
