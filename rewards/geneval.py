"""GenEval's pass/fail checks (counting, position, colour, colour attribution, overall), declared from one table.

Each reward parses the prompt into GenEval's ``include``/``exclude`` spec (`ParsedPrompt.geneval_spec`)
and checks it on the detector's boxes with GenEval's rule (djghosh13/geneval evaluation/evaluate_images.py),
`geneval_evaluate`; see `rewards.detection` for the shared pipeline, unknown objects and the detector:

=====================  ========================================================================
reward                 rule
=====================  ========================================================================
geneval-counting       GenEval counting (evaluation/evaluate_images.py): 1 if every object has
                       exactly its count of detections with score > 0.9, else 0.
geneval-position       GenEval position: objects present and the subject "left of/right of/
                       above/below" the reference by the box-centre rule (threshold 0.1).
geneval-color          GenEval colours: the object's colour, by CLIP zero-shot on the box crop,
                       is the prompt's colour (one object).
geneval-color-attr     GenEval colour attribution: every coloured object has its own colour.
geneval                GenEval's full check of the prompt's spec (counts, colours, positions).
=====================  ========================================================================

The five are one class, `_GenEvalReward`, built for a ``task`` by the rows of `_GENEVAL_REWARDS`.

    >>> from rewardbench.rewards._detect import Detections
    >>> from rewardbench.rewards._prompts import parse_prompt
    >>> spec = parse_prompt("a photo of two clocks").geneval_spec()
    >>> geneval_evaluate(spec, Detections.from_list([("clock", 0.95, (0, 0, 10, 10))]), counting=True)
    (False, ['expected clock>=2, found 1'])
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rewardbench import Option, RewardSpec, WeightSource, register_reward

from ._boxes import GENEVAL_POSITION_THRESHOLD, geneval_relative_position
from ._detect import Detections
from ._vocab import GENEVAL_COLORS, GENEVAL_POSITIONS
from .detection import (
    _DETECTOR_TINY,
    _GENEVAL,
    _YOLO_LICENSE,
    DEFAULT_DETECTOR,
    GENEVAL_THRESHOLD,
    _det_spec,
    _DetectionReward,
    threshold_option,
)

# GenEval evaluation/evaluate_images.py defaults (its --options): threshold 0.3 (GENEVAL_THRESHOLD,
# rewards.detection), counting_threshold 0.9, max_objects 16, max_overlap 1.0 (no extra NMS),
# position_threshold 0.1 (rewards._boxes).
GENEVAL_COUNTING_THRESHOLD = 0.9
GENEVAL_MAX_OBJECTS = 16
_RULE_OPTIONS = ("threshold", "counting_threshold", "max_objects", "position_threshold")


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
                                found_rel = " and ".join(sorted(got)) or "no relation"
                                reasons.append(f"expected {cls} {rel} target, found {found_rel}")
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
# the rewards: one class, one row per registered name

# GenEval's tasks; those whose check needs the colour classifier (CLIP on the box crops)
_TASKS = ("counting", "position", "color", "color_attr", "overall")
_COLOR_TASKS = ("color", "color_attr", "overall")


class _GenEvalReward(_DetectionReward):
    """GenEval's binary check of the spec parsed from the prompt (1 = correct), for one ``task``:
    ``counting`` (counts only, at the counting threshold), ``position`` (presence and positions),
    ``color`` (the first coloured object's colour), ``color_attr`` (every object's colour) or
    ``overall`` (the whole spec)."""

    def __init__(self, model: str = DEFAULT_DETECTOR, imgsz: int = 640, detector: nn.Module | None = None,
                 clip_arch: str = "ViT-L-14", clip_pretrained: str = "openai", tiny: bool = False, *,
                 task: str = "overall", spec: RewardSpec | None = None, **rule_kw: Any):
        if task not in _TASKS:
            raise ValueError(f"GenEval task {task!r}: choose from {', '.join(_TASKS)}")
        super().__init__(model=model, imgsz=imgsz, detector=detector, spec=spec, **rule_kw)
        self.task = task
        self.needs_color = task in _COLOR_TASKS
        self.clip = None
        if self.needs_color:
            from ._clip_backbone import build_clip

            # GenEval: open_clip ViT-L-14 (OpenAI weights) zero-shot colour classifier on the box crops
            self.clip = build_clip(clip_arch, clip_pretrained, tiny=tiny)
            self._classifiers: dict[str, torch.Tensor] = {}

    def load_pretrained(self, weights=None):
        used = super().load_pretrained(weights)
        if self.clip is not None:
            from ._clip_backbone import load_clip_weights

            self.record_weights(*used, load_clip_weights(self.clip, reward=self.spec.name).of("CLIP"))
            self._classifiers.clear()
        return self.provenance()

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
        kw.update({k: v for k, v in self.rule_kw.items() if k in _RULE_OPTIONS})
        ok, reasons = geneval_evaluate(spec, det, **kw)
        if parsed.unknown:
            ok = False
            reasons.append("unknown to the detector: " + ", ".join(parsed.unknown))
        note = ""
        if self.task == "position" and not any(r.relation in GENEVAL_POSITIONS for r in parsed.relations):
            note = "no left/right/above/below relation in the prompt: only presence is checked"
        if self.task in ("color", "color_attr") and not any(o.color in GENEVAL_COLORS for o in parsed.objects):
            note = "no GenEval colour in the prompt: only presence is checked"
        return float(ok), {"reason": "; ".join(reasons), "note": note}


_OPTIONS = {  # GenEval's own (its evaluate_images.py --options) and the colour classifier's
    "threshold": threshold_option(GENEVAL_THRESHOLD),
    "counting_threshold": Option(float, GENEVAL_COUNTING_THRESHOLD, "detections count above this confidence when "
                                 "counting", low=0.0, high=1.0),
    "max_objects": Option(int, GENEVAL_MAX_OBJECTS, "at most this many detections of a class", low=1),
    "position_threshold": Option(float, GENEVAL_POSITION_THRESHOLD, "how far apart (a share of the box size) two "
                                 "objects must be to be left/right/above/below", low=0.0),
    "clip_arch": Option(str, "ViT-L-14", "the colour classifier's open_clip architecture"),
    "clip_pretrained": Option(str, "openai", "the colour classifier's open_clip weights tag"),
    "tiny": Option(bool, False, "a tiny random colour classifier (tests)"),
}


def _geneval_spec(name: str, task: str, description: str, aliases=()) -> RewardSpec:
    s = _det_spec(name, description, _GENEVAL, aliases=aliases, options=_OPTIONS)
    if task in _COLOR_TASKS:
        s = s.replace(weights=s.weights + (
            WeightSource("hub", "timm/vit_large_patch14_clip_224.openai", filename="open_clip_model.safetensors",
                         note="CLIP ViT-L/14 for the colour classifier"),),
            tiny_config={**_DETECTOR_TINY, "tiny": True}, license=_YOLO_LICENSE + "; MIT (OpenAI CLIP)",
            backbone=None)  # the colour check needs the pixels after detection: no shared features
    return s


# One row per registered GenEval reward: name, task, description, aliases.
_GENEVAL_REWARDS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("geneval-counting", "counting",
     "GenEval counting: exactly the prompt's count of each object (detections > 0.9); 1 or 0", ()),
    ("geneval-position", "position",
     "GenEval position: objects present and in the prompt's left/right/above/below relation; 1 or 0", ()),
    ("geneval-color", "color",
     "GenEval colours: the object has the prompt's colour (CLIP zero-shot on the box crop); 1 or 0",
     ("geneval-colors",)),
    ("geneval-color-attr", "color_attr",
     "GenEval colour attribution: every object has its own colour (CLIP zero-shot on crops); 1 or 0", ()),
    ("geneval", "overall", "GenEval: the prompt's full spec (counts, colours, positions); 1 or 0",
     ("geneval-overall",)),
)


def _declare(name: str, task: str, description: str, aliases: tuple[str, ...]) -> None:
    """Register ``name``: a factory building `_GenEvalReward` for ``task``, with the row's spec."""
    spec = _geneval_spec(name, task, description, aliases)

    def build(**cfg: Any) -> _GenEvalReward:
        return _GenEvalReward(task=task, spec=spec, **cfg)

    build.__name__ = build.__qualname__ = f"geneval_{task}"
    # the options it passes on (rewardbench.preflight.builder_options reads them): the class's, but task and spec
    params = inspect.signature(_GenEvalReward).parameters.values()
    build.__signature__ = inspect.Signature([p for p in params if p.name not in ("task", "spec")])
    build.weight_sources = _GenEvalReward.weight_sources  # load_reward's check before the build
    register_reward(spec=spec)(build)


for _row in _GENEVAL_REWARDS:
    _declare(*_row)
