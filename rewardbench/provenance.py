"""Weight provenance as a value: where each part of a reward's weights came from.

A reward reports a list of `Provenance` (`rewardbench.RewardModel.provenance`); the scoring harness stores
it once per run (the results' metadata and summary, run-benchmark's ``results.json``), and every decision
reads its fields (``kind == "random"``), never its text. ``str()`` gives the text people read.

Example:
    >>> prov = [Provenance("hub", "yuvalkirstain/PickScore_v1"), Provenance("random", "pretrained=False")]
    >>> describe(prov)
    'hub:yuvalkirstain/PickScore_v1; random init (pretrained=False)'
    >>> kinds(prov), any(p.random for p in prov)
    ('hub+random', True)
    >>> Provenance.from_dict(prov[0].as_dict()) == prov[0]
    True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

ProvenanceKind = Literal["hub", "file", "url", "bundled", "random", "none", "unknown"]
KINDS: tuple[str, ...] = ("hub", "file", "url", "bundled", "random", "none", "unknown")


@dataclass(frozen=True)
class Provenance:
    """One part of a reward's weights.

    kind: ``hub`` (a Hugging Face repository), ``file`` (a path on disk), ``url`` (a download), ``bundled``
      (shipped inside an installed package), ``random`` (random init: scores are not meaningful),
      ``none`` (the reward has no weights) or ``unknown`` (not recorded, e.g. a CSV results table read back).
    location: the repository (``org/name[/file][@revision]``), path, URL or ``package:path``; for
      ``random``, why (``pretrained=False``, ``not loaded``).
    digest: the checksum the source publishes and the file was checked against, when there is one.
    part: which part of the reward, when it has several (``head``, ``CLIP ViT-L-14``, ``encoder clipscore``).
    note: a remark for people (e.g. the detector size a checkpoint is for).
    """

    kind: ProvenanceKind
    location: str = ""
    digest: str | None = None
    part: str = ""
    note: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Provenance kind must be one of {', '.join(KINDS)}, got {self.kind!r}")

    @property
    def random(self) -> bool:
        return self.kind == "random"

    def __str__(self) -> str:
        if self.kind == "none":
            text = "none (no weights needed)"
        elif self.kind == "unknown":
            text = f"unknown ({self.location})" if self.location else "unknown"
        elif self.kind == "random":
            text = f"random init ({self.location})" if self.location else "random init"
            text += f": {self.note}" if self.note else ""
        else:
            text = f"{self.kind}:{self.location}" + (f" ({self.note})" if self.note else "")
        return f"{self.part}: {text}" if self.part else text

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Provenance:
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})

    def of(self, part: str) -> Provenance:
        """The same source, as part ``part`` of a reward (a part it already names is kept inside)."""
        return dataclasses.replace(self, part=f"{part}: {self.part}" if self.part else part)


NO_WEIGHTS = Provenance("none")
NOT_LOADED = Provenance("random", "not loaded")


def describe(provenance: Iterable[Provenance]) -> str:
    """The text of a reward's provenance: each part once, ``"; "``-separated."""
    return "; ".join(dict.fromkeys(str(p) for p in provenance))


def kinds(provenance: Iterable[Provenance]) -> str:
    """The kinds present, sorted and ``+``-joined (``"bundled"``, ``"hub+random"``): the leaderboards'
    ``weights_kind`` column."""
    return "+".join(sorted({p.kind for p in provenance}))
