"""Helpers shared by the group-level rewards (fairness, diversity): grouping and distribution metrics.

`iter_groups` splits a batch by group id (a group reward reports each group's facts in
`rewardbench.RewardOutput.group_details`, keyed by that id); the metrics (`parity`,
`normalized_entropy`, `kl_to_uniform`, `imbalance`, by name in `GROUP_METRICS`) score the shares
``p`` of K labels within a group (length K, summing to 1 unless a reward counts images without a label
in the denominator).

Example:
    >>> import torch
    >>> [(g, idx.tolist()) for g, idx in iter_groups(torch.tensor([3, 1, 3]))]
    [(1, [1]), (3, [0, 2])]
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch


def iter_groups(groups: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
    """``(group id, member indices)`` in ascending id order; members keep their batch order.

    Each group is computed from its own members only, so a group's value does not depend on the
    other groups in the batch or on their order.
    """
    g = groups.detach().cpu()
    for gid in torch.unique(g).tolist():
        yield int(gid), torch.nonzero(g == gid, as_tuple=False).flatten()


# Distribution metrics over the shares p of K labels in a group


def parity(p: torch.Tensor) -> torch.Tensor:
    """The paper's statistical parity, ``-sum_a (p_a - 1/K)^2``: 0 when uniform, ``-(K-1)/K`` when
    everything falls in one bucket."""
    return -((p - 1.0 / p.numel()) ** 2).sum()


def normalized_entropy(p: torch.Tensor) -> torch.Tensor:
    """``H(p) / log K`` in [0, 1]: 1 when uniform."""
    q = p[p > 0]
    return -(q * q.log()).sum() / math.log(p.numel())


def kl_to_uniform(p: torch.Tensor) -> torch.Tensor:
    """``KL(p || uniform) = log K - H(p)`` in [0, log K]: 0 when uniform."""
    q = p[p > 0]
    return (q * (q * p.numel()).log()).sum()


def imbalance(p: torch.Tensor) -> torch.Tensor:
    """HEIM's gender imbalance ``|P(female) - 0.5|`` (gender_metrics.py, ``IDEAL_FRAC = 0.5``);
    ``p[0]`` is the share of the first label (female)."""
    return (p[0] - 0.5).abs()


GROUP_METRICS = {"parity": parity, "entropy": normalized_entropy, "kl": kl_to_uniform, "imbalance": imbalance}


PRESENCE_MODES = ("scale", "penalty", "none")


def with_presence(value: float, share: float, mode: str, worst: float, weight: float,
                  higher_is_better: bool) -> float:
    """A group's metric ``value`` adjusted for ``share`` = images showing a measured person / images:
    ``scale``: ``worst + share * (value - worst)``; ``penalty``: ``value -/+ weight * (1 - share)``
    (towards worse); ``none``: ``value`` (the paper's formula).

    Example:
        >>> [with_presence(-0.25, 0.5, mode, -0.75, 0.75, True) for mode in ("scale", "penalty", "none")]
        [-0.5, -0.625, -0.25]
    """
    if mode == "scale":
        return worst + share * (value - worst) + 0.0
    if mode == "penalty":
        return value - (1 if higher_is_better else -1) * weight * (1 - share) + 0.0
    if mode == "none":
        return value
    raise ValueError(f"presence must be one of {', '.join(PRESENCE_MODES)}, got {mode!r}")


def worst_value(metric: str, k: int) -> float:
    """The metric's value when every person falls in one bucket (used for groups with no face)."""
    one = torch.zeros(k, dtype=torch.float64)
    one[0] = 1
    return float(GROUP_METRICS[metric](one)) + 0.0
