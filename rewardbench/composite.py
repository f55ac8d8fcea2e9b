"""Weighted sums of rewards: ``load_reward({"a": 1.0, "b": 0.5}, normalize="zscore")``."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from .model import RewardModel
from .spec import RewardOutput, RewardSpec

NORMALIZERS = (None, "zscore", "range")


class CompositeReward(RewardModel):
    """``sum_k w_k * norm(r_k)``; each member's own score is kept in ``details[name]``. Higher is
    better for the composite in every mode: lower-is-better members (``spec.higher_is_better=False``,
    e.g. ``nsfw``) are flipped.

    normalize:
      * ``None``: raw scores (a lower-is-better member enters as ``-score``);
      * ``"zscore"``: each member standardised over the batch (mean 0, std 1) before weighting, so
        rewards on different scales contribute by their weights. This is batch-relative: an image's
        value depends on the other images of the call (score a whole evaluation set in one call, or
        use ``"range"``); a batch of one has no spread and raises ``ValueError``;
      * ``"range"``: each member mapped to [0, 1] by its spec's declared range (1 = best); every
        member must declare a finite range (``ValueError`` otherwise: JPEG sizes and Vendi have no upper bound).

    Example:
        >>> import torch, rewardbench
        >>> c = rewardbench.load_reward({"open-nsfw": 1.0, "nsfw": 10.0}, normalize="range")
        >>> c.spec.range, c.spec.higher_is_better
        ((0.0, 11.0), True)
    """

    spec = RewardSpec(name="composite", category="baseline")

    def __init__(self, members: Mapping[str, RewardModel], weights: Mapping[str, float], normalize: str | None = None):
        if normalize not in NORMALIZERS:
            raise ValueError(f"normalize must be one of {NORMALIZERS}, got {normalize!r}")
        if set(members) != set(weights) or not members:
            raise ValueError("composite: members and weights must name the same, non-empty set of rewards")
        specs = [m.spec for m in members.values()]
        if normalize == "range":
            for name, m in members.items():
                lo, hi = m.spec.range
                if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
                    raise ValueError(f"composite normalize='range': {name} declares no finite range "
                                     f"({m.spec.range}); use normalize='zscore' or None")
        label = " + ".join(f"{w:g}*{n}" for n, w in weights.items())
        spec = RewardSpec(
            name=f"composite({label})",
            category=specs[0].category if len({s.category for s in specs}) == 1 else "baseline",
            granularity="group" if any(s.granularity == "group" for s in specs) else "image",
            min_group_size=max(s.min_group_size for s in specs),
            differentiable=all(s.differentiable for s in specs),
            needs_prompt=any(s.needs_prompt for s in specs),
            range=_range(normalize, weights),
            license="; ".join(dict.fromkeys(s.license for s in specs if s.license)),
            paper="; ".join(dict.fromkeys(s.paper for s in specs if s.paper)),
            description=f"weighted sum ({normalize or 'raw'}; lower-is-better members flipped): {label}",
        )
        super().__init__(spec=spec)
        self.members = torch.nn.ModuleDict(dict(members))
        self.member_weights = {n: float(w) for n, w in weights.items()}
        self.normalize = normalize

    def provenance(self):
        """Each member's provenance, as that member's part."""
        return [p.of(name) for name, m in self.members.items() for p in m.provenance()]

    def _norm(self, name: str, s: torch.Tensor) -> torch.Tensor:
        spec = self.members[name].spec
        sign = 1.0 if spec.higher_is_better else -1.0
        if self.normalize == "zscore":
            if s.numel() < 2:
                raise ValueError("composite normalize='zscore' is relative to the batch and a batch of one image "
                                 "has no spread: score several images per call, or use normalize='range'")
            return sign * (s - s.mean()) / (s.std() + 1e-8)
        if self.normalize == "range":
            lo, hi = spec.range
            x = (s - lo) / (hi - lo)
            return x if spec.higher_is_better else 1 - x
        return sign * s

    def score(self, pixels, prompts, groups) -> RewardOutput:
        total = None
        details: dict = {}
        for name, member in self.members.items():
            out = member(pixels, prompts, groups)
            details[name] = out.scores
            part = self.member_weights[name] * self._norm(name, out.scores.to(self.device))
            total = part if total is None else total + part
        return RewardOutput(total, details)


def _range(normalize: str | None, weights: Mapping[str, float]) -> tuple[float | None, float | None]:
    """The composite's declared range: known for "range" (each member in [0, 1]), open otherwise."""
    if normalize != "range":
        return (None, None)
    lo = sum(min(w, 0.0) for w in weights.values())
    hi = sum(max(w, 0.0) for w in weights.values())
    return (float(lo), float(hi)) if hi > lo else (None, None)
