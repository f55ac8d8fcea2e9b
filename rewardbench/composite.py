"""Weighted sums of rewards: ``load_reward({"a": 1.0, "b": 0.5}, normalize="zscore")``."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .model import RewardModel
from .spec import RewardOutput, RewardSpec

NORMALIZERS = (None, "zscore", "range")


class CompositeReward(RewardModel):
    """``sum_k w_k * norm(r_k)``; each member's own score is kept in ``details[name]``.

    normalize:
      * ``None``: raw scores;
      * ``"zscore"``: each member standardised over the batch (mean 0, std 1) before weighting, so
        rewards on different scales contribute by their weights (a batch of one gives 0);
      * ``"range"``: each member mapped to [0, 1] by its spec's typical range (members without a
        finite range are left raw). Lower-is-better members are flipped in both normalisations.
    """

    spec = RewardSpec(name="composite", category="baseline")

    def __init__(self, members: Mapping[str, RewardModel], weights: Mapping[str, float], normalize: str | None = None):
        if normalize not in NORMALIZERS:
            raise ValueError(f"normalize must be one of {NORMALIZERS}, got {normalize!r}")
        if set(members) != set(weights) or not members:
            raise ValueError("composite: members and weights must name the same, non-empty set of rewards")
        specs = [m.spec for m in members.values()]
        label = " + ".join(f"{w:g}*{n}" for n, w in weights.items())
        spec = RewardSpec(
            name=f"composite({label})",
            category=specs[0].category if len({s.category for s in specs}) == 1 else "baseline",
            granularity="group" if any(s.granularity == "group" for s in specs) else "image",
            differentiable=all(s.differentiable for s in specs),
            needs_prompt=any(s.needs_prompt for s in specs),
            description=f"weighted sum ({normalize or 'raw'}): {label}",
        )
        super().__init__(spec=spec)
        self.members = torch.nn.ModuleDict(dict(members))
        self.member_weights = {n: float(w) for n, w in weights.items()}
        self.normalize = normalize
        self.weights_used = "; ".join(f"{n}={m.weights_used}" for n, m in members.items())

    def _norm(self, name: str, s: torch.Tensor) -> torch.Tensor:
        spec = self.members[name].spec
        sign = 1.0 if spec.higher_is_better else -1.0
        if self.normalize == "zscore":
            if s.numel() < 2:
                return torch.zeros_like(s)
            return sign * (s - s.mean()) / (s.std() + 1e-8)
        if self.normalize == "range":
            lo, hi = spec.range
            if lo is None or hi is None or hi <= lo:
                return s
            x = (s - lo) / (hi - lo)
            return x if spec.higher_is_better else 1 - x
        return s

    def score(self, pixels, prompts, groups) -> RewardOutput:
        total = None
        details: dict = {}
        for name, member in self.members.items():
            out = member(pixels, prompts, groups)
            details[name] = out.scores
            part = self.member_weights[name] * self._norm(name, out.scores.to(self.device))
            total = part if total is None else total + part
        return RewardOutput(total, details)
