"""Agreement of a reward with human judgements: each dataset's own pairwise-accuracy protocol, rank correlations.

Inputs are per item (one prompt with two or more images): ``human`` utilities (higher = preferred; equal
values are a human tie) and the reward's ``scores`` oriented so that higher is better. Every protocol
turns an item into ``(credit, count)``; the accuracy is ``sum(credit) / sum(count)`` over items, and its
95% interval is taken over prompts, because the pairs of one prompt are not independent: a cluster bootstrap with a
Student-t interval, never narrower than the number of prompts allows (`ratio_estimate`: when every prompt agrees,
the Clopper–Pearson bound on the share of prompts that could differ).

Protocols (the name is part of every number):

  * ``pickapic``: Pick-a-Pic's evaluation (PickScore ``eval_preference_predictor.py``): pairs only; the
    reward predicts a tie when the difference of its softmax probabilities, ``|tanh((s0 - s1) / 2)|``, is
    at most ``tie_threshold``; 1 for the right answer, 0.5 when exactly one side (human or reward) is a
    tie, 0 otherwise; mean over pairs (human ties included).
  * ``drop-ties``: human ties dropped; every untied pair of an item counts; a reward tie
    (``|s_i - s_j| <= tie_threshold``, default exact equality) earns half; pooled over pairs.
  * ``imagereward``: ImageReward's ``test.py``: pairs with different human ranks, pooled; a reward tie
    counts as wrong.
  * ``hpdv2``: HPSv2's ``inversion_score``: per item ``1 - discordant / (k (k - 1) / 2)`` over all pairs
    (a pair tied on either side is not discordant), averaged over items.
  * ``mmrb2``: Multimodal RewardBench 2: the chosen image of each pair, pooled; a reward tie is wrong.

    >>> import numpy as np
    >>> pair_credit(np.array([1.0, 0.0]), np.array([2.0, 1.0]), "pickapic")
    (1.0, 1.0)
    >>> pair_credit(np.array([0.5, 0.5]), np.array([2.0, 1.0]), "pickapic")   # human tie, reward prefers one
    (0.5, 1.0)
    >>> pair_credit(np.array([3.0, 2.0, 1.0]), np.array([1.0, 2.0, 3.0]), "hpdv2")
    (0.0, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rewardbench.leaderboards.protocols import PROTOCOLS as AGREEMENT_PROTOCOLS

PROTOCOLS = {k: AGREEMENT_PROTOCOLS[k] for k in ("pickapic", "drop-ties", "imagereward", "hpdv2", "mmrb2")}
TIE_GRID = tuple(round(0.1 * i, 1) for i in range(11))  # the thresholds PickScore's evaluation tries


def _pairs(k: int) -> tuple[np.ndarray, np.ndarray]:
    i, j = np.triu_indices(k, 1)
    return i, j


def pair_credit(human: np.ndarray, scores: np.ndarray, protocol: str, tie_threshold: float = 0.0
                ) -> tuple[float, float]:
    """``(credit, count)`` of one item under ``protocol`` (see the module docstring)."""
    h, s = np.asarray(human, float), np.asarray(scores, float)
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    if protocol == "pickapic":
        if len(h) != 2:
            raise ValueError(f"protocol 'pickapic' takes pairs; this item has {len(h)} images")
        human_side = 0 if h[0] == h[1] else (1 if h[0] > h[1] else -1)
        d = float(s[0] - s[1])
        pred_side = 0 if abs(math.tanh(d / 2.0)) <= tie_threshold else (1 if d > 0 else -1)
        if pred_side == human_side:
            return 1.0, 1.0
        return (0.5 if 0 in (pred_side, human_side) else 0.0), 1.0
    i, j = _pairs(len(h))
    dh, ds = np.sign(h[i] - h[j]), s[i] - s[j]
    if protocol == "hpdv2":
        if len(i) == 0:
            return 0.0, 0.0
        discordant = (dh * np.sign(ds)) < 0
        return 1.0 - float(discordant.sum()) / len(i), 1.0
    untied = dh != 0
    dh, ds = dh[untied], ds[untied]
    if protocol == "drop-ties":
        tie = np.abs(ds) <= tie_threshold
        return float(((dh * ds > 0) & ~tie).sum() + 0.5 * tie.sum()), float(len(dh))
    return float((dh * ds > 0).sum()), float(len(dh))  # imagereward, mmrb2: a reward tie is wrong


def tune_tie_threshold(humans: Sequence[np.ndarray], scores: Sequence[np.ndarray],
                       grid: Sequence[float] = TIE_GRID) -> float:
    """The ``pickapic`` tie threshold with the best accuracy on a calibration split (the first on ties), as
    PickScore's evaluation picks it on ``validation_unique`` before scoring ``test_unique``.

        >>> import numpy as np
        >>> tune_tie_threshold([np.array([.5, .5]), np.array([1., 0.])], [np.array([0., .1]), np.array([3., 0.])])
        0.1
    """
    best, best_acc = grid[0], -1.0
    for t in grid:
        credit = sum(pair_credit(h, s, "pickapic", t)[0] for h, s in zip(humans, scores))
        acc = credit / max(len(humans), 1)
        if acc > best_acc + 1e-12:
            best, best_acc = t, acc
    return float(best)


@dataclass(frozen=True)
class Estimate:
    """A value with its interval over clusters (`ratio_estimate`; NaN with fewer than 2 clusters)."""

    value: float
    ci_low: float
    ci_high: float
    n: int  # what the value averages over: pairs (pooled protocols) or items (per-item means)
    n_clusters: int


def ratio_estimate(credit: np.ndarray, count: np.ndarray, clusters: np.ndarray, *, n_boot: int = 2000,
                   seed: int | None = 0, level: float = 0.95, bounds: tuple[float, float] = (0.0, 1.0)) -> Estimate:
    """``sum(credit) / sum(count)`` with an interval over clusters (clusters: any hashable labels) that reflects
    their number (`rewardbench.benchmarks.intervals.ratio_interval`: cluster bootstrap with a Student-t interval;
    when every cluster agrees, the Clopper–Pearson bound on the share of clusters that could differ, within
    ``bounds``, the range of one element's ``credit / count``), never a point.

        >>> import numpy as np
        >>> e = ratio_estimate(np.array([1., 1., 0., 1.]), np.ones(4), np.array(["a", "b", "c", "d"]))
        >>> e.value, e.n, e.n_clusters
        (0.75, 4, 4)
        >>> e = ratio_estimate(np.full(8, 0.5), np.ones(8), np.arange(8))  # 8 ties: no spread, still an interval
        >>> e.value, round(e.ci_low, 3), round(e.ci_high, 3)
        (0.5, 0.315, 0.685)
    """
    from .intervals import ratio_interval

    credit, count = np.asarray(credit, float), np.asarray(count, float)
    keep = count > 0
    credit, count, clusters = credit[keep], count[keep], np.asarray(clusters)[keep]
    if count.sum() == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0, 0)
    _, codes = np.unique(clusters, return_inverse=True)
    value, lo, hi, _ = ratio_interval(codes, credit, count, n_boot=n_boot, seed=seed, level=level, bounds=bounds)
    return Estimate(value, lo, hi, int(count.sum()), int(codes.max()) + 1)


def within_item_correlation(humans: Sequence[np.ndarray], scores: Sequence[np.ndarray], clusters: np.ndarray,
                            method: str, **boot) -> Estimate:
    """Mean over items of the within-item rank correlation (``kendall``: tau-b, ``spearman``), items where
    either side is constant left out; interval over clusters by `ratio_estimate`.

        >>> import numpy as np
        >>> within_item_correlation([np.array([1., 2., 3.])], [np.array([1., 3., 2.])], np.array([0]),
        ...                         "kendall").value
        0.333...
    """
    from scipy.stats import kendalltau, spearmanr

    fn = kendalltau if method == "kendall" else spearmanr
    vals, keep = [], []
    for idx, (h, s) in enumerate(zip(humans, scores)):
        if len(h) < 2 or np.ptp(h) == 0 or np.ptp(s) == 0:
            continue
        vals.append(float(fn(h, s)[0]))
        keep.append(idx)
    if not vals:
        return Estimate(float("nan"), float("nan"), float("nan"), 0, 0)
    return ratio_estimate(np.array(vals), np.ones(len(vals)), np.asarray(clusters)[keep], bounds=(-1.0, 1.0), **boot)


def pooled_correlation(human: np.ndarray, scores: np.ndarray, method: str, level: float = 0.95) -> Estimate:
    """Rank correlation over all images at once (for absolute ratings, e.g. GenAI-Bench's 1-5 scale), with a
    Fisher-z interval (which treats images as independent: read it as a lower bound on the uncertainty).

        >>> import numpy as np
        >>> round(pooled_correlation(np.arange(10.), np.arange(10.) ** 2, "spearman").value, 3)
        1.0
    """
    from scipy.stats import kendalltau, norm, spearmanr

    h, s = np.asarray(human, float), np.asarray(scores, float)
    n = len(h)
    if n < 4 or np.ptp(h) == 0 or np.ptp(s) == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), n, n)
    r = float((kendalltau if method == "kendall" else spearmanr)(h, s)[0])
    se = (math.sqrt(0.437 / (n - 4)) if method == "kendall" else 1.0 / math.sqrt(n - 3))  # Fieller et al. 1957
    z, q = math.atanh(max(min(r, 0.999999), -0.999999)), norm.ppf(0.5 + level / 2.0)
    return Estimate(r, math.tanh(z - q * se), math.tanh(z + q * se), n, n)


def concordance(a: np.ndarray, b: np.ndarray, clusters: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image pair within each cluster: 1 when two rewards (both oriented higher = better) prefer the same
    image, 0.5 when either ties, 0 when they disagree. Returns ``(credit, count, cluster)`` per pair.

        >>> import numpy as np
        >>> c, n, g = concordance(np.array([1., 2., 3.]), np.array([3., 2., 1.]), np.zeros(3))
        >>> float(c.sum()), float(n.sum())
        (0.0, 3.0)
    """
    a, b, clusters = np.asarray(a, float), np.asarray(b, float), np.asarray(clusters)
    credits, groups = [], []
    for g in np.unique(clusters):
        idx = np.flatnonzero(clusters == g)
        if len(idx) < 2:
            continue
        i, j = _pairs(len(idx))
        prod = np.sign(a[idx[i]] - a[idx[j]]) * np.sign(b[idx[i]] - b[idx[j]])
        credits.append(np.where(prod > 0, 1.0, np.where(prod == 0, 0.5, 0.0)))
        groups.append(np.full(len(i), g))
    if not credits:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    c = np.concatenate(credits)
    return c, np.ones(len(c)), np.concatenate(groups)
