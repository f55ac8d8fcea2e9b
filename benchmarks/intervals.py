"""Confidence intervals over prompts: the cluster bootstrap, exact Clopper–Pearson bounds, and the rules that keep an
interval no more certain than the number of prompts allows.

The unit is the prompt: images of one prompt are not independent, so every interval here is computed from
per-prompt sufficient statistics. A percentile bootstrap over prompts alone collapses to a point when every prompt
agrees (8 of 8 prompts won gives [100%, 100%]) and is too narrow for few prompts, so:

  * a **win rate** interval is Clopper–Pearson at the effective number of pairs (`korn_graubard`: the binomial n
    that the spread over prompts implies, with P - 1 degrees of freedom, never fewer than the P prompts); when every
    prompt has the same outcome the spread says nothing, and the interval is the exact one over prompts instead
    (8 of 8 prompts won gives [63.1%, 100%]; 13 tied prompts, `prompt_outcome_bounds`, [35.7%, 64.3%]);
  * a **mean** interval is the union of the prompt-bootstrap percentile interval and a Student-t interval with the
    ratio estimator's linearised standard error over prompts, clipped to the score's range where the caller knows
    it; when every prompt's mean is the same (no spread), the data show no scale: the interval then comes from the
    Clopper–Pearson bound on the share of prompts that could differ and the score's range, when the caller knows
    it, and is NaN otherwise (`no_spread_note` says so).

With fewer than 2 prompts every interval is NaN (one cluster says nothing about prompt-to-prompt variation).
"""

from __future__ import annotations

import numpy as np

WIN_RATE_METHOD = ("Clopper–Pearson at the effective number of pairs (Korn & Graubard 1998: set by the spread across "
                   "prompts, P - 1 degrees of freedom, never fewer than the P prompts); no spread across prompts: "
                   "exact Clopper–Pearson over prompts (with tied prompts: won-or-tied and won prompts, Bonferroni)")
MEAN_METHOD = ("union of the prompt-bootstrap percentile interval and a Student-t interval over prompts (linearised "
               "ratio variance, P - 1 degrees of freedom), within the score's range; no spread across prompts: the "
               "Clopper–Pearson bound on the share of prompts that could differ, times the score's range (none "
               "without a range)")
_CHUNK = 1 << 22  # resampled prompt slots per bootstrap chunk (bounds memory: 32 MiB of counts)


def bootstrap_sums(per_prompt, *, n_boot: int = 2000, seed: int | None = 0) -> np.ndarray:
    """Cluster bootstrap: resample the P prompts with replacement ``n_boot`` times and sum each column of
    ``per_prompt`` (shape (P,) or (P, k): sufficient statistics of each prompt) over the resampled prompts.

    Returns shape (n_boot, k). Vectorised: per chunk of replicates the prompt counts come from one
    ``np.bincount`` and the sums from one matrix product.

        >>> bootstrap_sums([[1.0, 1.0], [3.0, 1.0]], n_boot=4).shape
        (4, 2)
        >>> bool(np.all(bootstrap_sums([[2.0, 1.0], [2.0, 1.0]], n_boot=3)[:, 0] == 4.0))
        True
    """
    stats = np.asarray(per_prompt, dtype=float)
    stats = stats[:, None] if stats.ndim == 1 else stats
    n_prompts = len(stats)
    if n_prompts == 0:
        raise ValueError("bootstrap_sums: no prompts")
    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, stats.shape[1]))
    step = max(1, _CHUNK // n_prompts)
    for start in range(0, n_boot, step):
        b = min(step, n_boot - start)
        idx = rng.integers(0, n_prompts, size=(b, n_prompts), dtype=np.int32)
        idx += (np.arange(b, dtype=np.int32) * n_prompts)[:, None]
        counts = np.bincount(idx.ravel(), minlength=b * n_prompts).reshape(b, n_prompts)
        out[start:start + b] = counts @ stats
    return out


def percentile(reps: np.ndarray, n_prompts: int, level: float):
    """The percentile interval of bootstrap replicates (along axis 0); NaN with fewer than 2 prompts."""
    if n_prompts < 2:
        return float("nan"), float("nan")
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(reps, [alpha, 1.0 - alpha], axis=0)
    return lo, hi


def clopper_pearson(k, n, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Exact two-sided interval for a binomial proportion from ``k`` successes in ``n`` trials (vectorised).

    Clopper & Pearson (1934), Biometrika 26(4): 404-413, in its beta-quantile form: low = Beta(alpha/2; k, n-k+1),
    high = Beta(1-alpha/2; k+1, n-k), with low = 0 at k = 0 and high = 1 at k = n. A fractional ``k`` (a count of
    prompt-level outcomes that are themselves fractions) uses the same quantiles, as Korn & Graubard (1998,
    Survey Methodology 24(2): 193-201) do with effective counts.

        >>> lo, hi = clopper_pearson(8, 8)  # low = 0.025 ** (1 / 8)
        >>> round(float(lo), 4), float(hi)
        (0.6306, 1.0)
        >>> [round(float(x), 4) for x in clopper_pearson(0, 20)]
        [0.0, 0.1684]
    """
    from scipy.stats import beta

    k, n = np.broadcast_arrays(np.asarray(k, dtype=float), np.asarray(n, dtype=float))
    alpha = 1.0 - level
    k = np.clip(np.where(np.abs(k - n) < 1e-9 * np.maximum(n, 1), n, k), 0.0, n)  # n * mean may miss n by rounding
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = np.where(k > 0, beta.ppf(alpha / 2, np.maximum(k, 1e-300), n - k + 1), 0.0)
        hi = np.where(k < n, beta.ppf(1 - alpha / 2, k + 1, np.maximum(n - k, 1e-300)), 1.0)
    return lo, hi


def prompt_outcome_bounds(win_fraction, pairs, level: float = 0.95) -> tuple[float, float]:
    """Exact bounds on a win rate from its prompt-level outcomes, assuming nothing about how alike the images of a
    prompt are: ``win_fraction[p]`` = the share of prompt p's pairs the model won (ties half), ``pairs[p]`` its
    pair count. The win-rate interval when every prompt has the same outcome but not an outright win or loss
    (all tied, say: `win_rate_interval`).

    A win rate is the mean of u1 = min(2w, 1) and u2 = max(2w - 1, 0) (pair-weighted over prompts): with one image
    per prompt, u1 says "won or tied" and u2 "won", two binomial proportions over the n prompts. Each gets a
    Clopper–Pearson interval at level 1 - alpha/2 (Bonferroni: the win rate's bounds hold together with
    probability >= level), and the win rate's bounds are their means. A prompt-level tie is thus handled
    explicitly: all ties in n prompts gives about [0.5 - q/2, 0.5 + q/2] with q the share of prompts that could
    be decided, not the width of a coin flip. With several images per prompt u1 and u2 are fractions and their
    sums fractional counts (`clopper_pearson`).

        >>> lo, hi = prompt_outcome_bounds([1.0] * 8, [1] * 8)  # 8 of 8 prompts won: low = 0.0125 ** (1 / 8)
        >>> round(lo, 3), hi
        (0.578, 1.0)
        >>> [round(x, 3) for x in prompt_outcome_bounds([0.5] * 13, [1] * 13)]  # 13 ties
        [0.357, 0.643]
    """
    w, m = np.asarray(win_fraction, dtype=float), np.asarray(pairs, dtype=float)
    n = len(w)
    share = m / m.sum()
    lows, highs = [], []
    for u in (np.minimum(2 * w, 1.0), np.maximum(2 * w - 1, 0.0)):
        lo, hi = clopper_pearson(n * float(share @ u), n, 1.0 - (1.0 - level) / 2)
        lows.append(float(lo))
        highs.append(float(hi))
    return float(np.mean(lows)), float(np.mean(highs))


def _per_prompt(codes: np.ndarray, num: np.ndarray, den: np.ndarray) -> np.ndarray:
    n_prompts = int(codes.max()) + 1
    return np.stack([np.bincount(codes, weights=num, minlength=n_prompts),
                     np.bincount(codes, weights=den, minlength=n_prompts)], axis=1)


def korn_graubard(sums, pairs, squares, level: float = 0.95) -> tuple[float, float]:
    """Clopper–Pearson bounds at the effective number of pairs, for a win rate whose pairs are clustered in prompts.

    Per prompt p: ``sums[p]`` = sum of its pair outcomes (1 win, 0.5 tie, 0 loss), ``pairs[p]`` their count,
    ``squares[p]`` the sum of their squares. Korn & Graubard (1998, Survey Methodology 24(2): 193-201, eq. 2.2 and
    the degrees-of-freedom adjustment of their section 3): n_eff = p(1-p) / v, v the linearised variance of the
    ratio estimate over prompts (Cochran 1977, Sampling Techniques, 3rd ed., ch. 6), times (z / t_{P-1})^2, and
    truncated at what the same pairs would give were they independent: n_pairs p(1-p) / s^2, s^2 the outcomes'
    variance (= n_pairs for win/loss outcomes as in Korn & Graubard; ties lower s^2, so three-valued outcomes are
    not held to a binomial variance). Never below the number of prompts P: a prompt's win rate lies in [0, 1], so
    its variance is at most p(1-p) (reached when each prompt is all won or all lost), and n_eff = P is that worst
    case, which makes one image per prompt exactly Clopper–Pearson over prompts. NaN where v = 0 (no spread
    across prompts: see `prompt_outcome_bounds`).

        >>> lo, hi = korn_graubard([3, 1, 2, 4], [4, 4, 4, 4], [3, 1, 2, 4])  # 10 of 16 won, in 4 prompts
        >>> round(lo, 3), round(hi, 3)  # n_eff = 9 from the spread, times (1.96 / t_3)^2 = 3.4: floored at 4
        (0.123, 0.972)
    """
    from scipy.stats import norm
    from scipy.stats import t as student_t

    y, m, sq = (np.asarray(a, dtype=float) for a in (sums, pairs, squares))
    n, total = len(y), m.sum()
    value = y.sum() / total
    var = n / (n - 1) * np.sum((y - value * m) ** 2) / total**2
    if not var > 0 or not 0 < value < 1:
        return float("nan"), float("nan")
    pair_var = sq.sum() / total - value**2
    n_eff = value * (1 - value) / var
    if pair_var > 0:
        n_eff = min(n_eff, total * value * (1 - value) / pair_var)
    n_eff *= (norm.ppf(0.5 + level / 2) / student_t.ppf(0.5 + level / 2, n - 1)) ** 2
    n_eff = max(n_eff, n)
    lo, hi = clopper_pearson(n_eff * value, n_eff, level)
    return float(lo), float(hi)


def win_rate_interval(codes: np.ndarray, outcome: np.ndarray, *, level: float = 0.95):
    """Win rate = mean of ``outcome`` (1 win, 0.5 tie, 0 loss per pair; ``codes``: prompt ids 0..P-1) and its
    interval (`WIN_RATE_METHOD`): `korn_graubard`'s, or, when every prompt has the same outcome, the exact one over
    prompts: Clopper–Pearson of P of P prompts won (or 0 of P) when every prompt was won (lost) outright, else
    `prompt_outcome_bounds`'. All NaN with no pair; NaN interval with one prompt.

        >>> value, lo, hi = win_rate_interval(np.arange(8), np.ones(8))  # 8 of 8 won: low = 0.025 ** (1 / 8)
        >>> value, round(lo, 3), hi
        (1.0, 0.631, 1.0)
    """
    if len(codes) == 0:
        return float("nan"), float("nan"), float("nan")
    n_prompts = int(codes.max()) + 1
    per = np.stack([np.bincount(codes, weights=w, minlength=n_prompts)
                    for w in (outcome, np.ones(len(outcome)), outcome**2)], axis=1)
    value = float(per[:, 0].sum() / per[:, 1].sum())
    if n_prompts < 2:
        return value, float("nan"), float("nan")
    rate = per[:, 0] / per[:, 1]
    if np.ptp(rate) > 1e-12:
        return (value, *korn_graubard(per[:, 0], per[:, 1], per[:, 2], level))
    if value in (0.0, 1.0):
        # P(every prompt won outright) <= P(a prompt is won outright)^P <= p^P: one exact interval suffices
        lo, hi = clopper_pearson(n_prompts * value, n_prompts, level)
        return value, float(lo), float(hi)
    return (value, *prompt_outcome_bounds(rate, per[:, 1], level))


def no_spread_note(n_prompts: int, level: float = 0.95) -> str:
    """What a mean whose prompts all agree can say: how many prompts, and the Clopper–Pearson upper bound on the
    share of prompts that could still score otherwise.

        >>> no_spread_note(100)
        'no spread across 100 prompts: up to 3.6% of prompts could score otherwise'
    """
    q = float(clopper_pearson(0, n_prompts, level)[1])
    return f"no spread across {n_prompts} prompts: up to {100 * q:.1f}% of prompts could score otherwise"


def mean_interval(codes: np.ndarray, values: np.ndarray, *, n_boot: int, seed, level: float,
                  bounds: tuple[float | None, float | None] | None = None):
    """Mean of ``values`` (each image weighs the same; ``codes``: prompt ids 0..P-1), its interval (`MEAN_METHOD`)
    and a note (None, or `no_spread_note` when every prompt's mean is the same): `ratio_interval` with a weight of
    one per value.

        >>> mean_interval(np.arange(8), np.zeros(8), n_boot=100, seed=0, level=0.95, bounds=(0.0, 1.0))[:3]
        (0.0, 0.0, 0.36941...)
        >>> mean_interval(np.arange(8), np.zeros(8), n_boot=100, seed=0, level=0.95)[3]
        'no spread across 8 prompts: up to 36.9% of prompts could score otherwise'
    """
    return ratio_interval(codes, values, np.ones(len(values)), n_boot=n_boot, seed=seed, level=level, bounds=bounds)


def ratio_interval(codes: np.ndarray, num: np.ndarray, den: np.ndarray, *, n_boot: int, seed, level: float,
                   bounds: tuple[float | None, float | None] | None = None):
    """``sum(num) / sum(den)`` over clusters (``codes``: cluster ids 0..P-1; e.g. credit and pair counts of
    preference items grouped by prompt), its interval (`MEAN_METHOD`) and a note (None, or `no_spread_note` when
    every cluster's ratio is the same).

    The t-interval uses the linearised variance of a ratio estimator over clusters (Cochran 1977, Sampling
    Techniques, 3rd ed., ch. 6 and ch. 9: v = n / (n - 1) * sum_p (y_p - mean * m_p)^2 / (sum_p m_p)^2)
    with n - 1 degrees of freedom, which widens small-n intervals that the percentile bootstrap makes too
    narrow. ``bounds`` (the ratio's lowest and highest possible values per element, e.g. (0, 1) for an accuracy)
    apply when every element's ratio lies within them (bounds that the data contradict are ignored): the interval
    is clipped to them, and with no spread they give the conservative interval [c - q (c - low), c + q (high - c)],
    q the Clopper–Pearson upper bound on the share of clusters that could differ (1 - (alpha/2)^(1/n)); with no
    spread and no such bounds, NaN.

        >>> ratio_interval(np.arange(4), np.array([2., 1., 2., 2.]), np.full(4, 2.), n_boot=200, seed=0,
        ...                level=0.95, bounds=(0.0, 1.0))[:1]
        (0.875,)
    """
    from scipy.stats import t as student_t

    num, den = np.asarray(num, float), np.asarray(den, float)
    if len(codes) == 0 or den.sum() == 0:
        return float("nan"), float("nan"), float("nan"), None
    per = _per_prompt(codes, num, den)
    n = len(per)
    value = float(per[:, 0].sum() / per[:, 1].sum())
    if n < 2:
        return value, float("nan"), float("nan"), None
    lo_b, hi_b = bounds if bounds is not None else (None, None)
    ratios = num[den > 0] / den[den > 0]
    bounded = (lo_b is not None and hi_b is not None and bool(np.isfinite([lo_b, hi_b]).all())
               and lo_b <= float(np.min(ratios)) and float(np.max(ratios)) <= hi_b)
    means = per[:, 0] / per[:, 1]
    if np.ptp(means) <= 1e-12 * max(1.0, abs(value)):
        if not bounded:
            return value, float("nan"), float("nan"), no_spread_note(n, level)
        q = float(clopper_pearson(0, n, level)[1])
        return value, value - q * (value - lo_b), value + q * (hi_b - value), no_spread_note(n, level)
    sums = bootstrap_sums(per, n_boot=n_boot, seed=seed)
    lo, hi = percentile(sums[:, 0] / sums[:, 1], n, level)
    se = np.sqrt(n / (n - 1) * np.sum((per[:, 0] - value * per[:, 1]) ** 2)) / per[:, 1].sum()
    half = float(student_t.ppf(0.5 + level / 2, n - 1)) * se
    lo, hi = float(min(lo, value - half)), float(max(hi, value + half))
    if bounded:
        lo, hi = max(lo, float(lo_b)), min(hi, float(hi_b))
    return value, lo, hi, None
