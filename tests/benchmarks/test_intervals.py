"""rewardbench.benchmarks.intervals against independent computations: scipy's exact binomial intervals, the published
Korn–Graubard and Student-t formulas written out here, and simulated coverage near the extremes with several
images per prompt (prompt-level random effects)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import beta, binomtest, norm
from scipy.stats import t as student_t

from rewardbench.benchmarks import intervals


def _exact(k: int, n: int, level: float = 0.95):
    ci = binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    return ci.low, ci.high


def test_clopper_pearson_matches_scipys_exact_interval():
    for n in (1, 2, 7, 30, 101):
        for k in {0, 1, n // 2, n - 1, n}:
            for level in (0.95, 0.975):
                assert np.allclose(intervals.clopper_pearson(k, n, level), _exact(k, n, level), atol=1e-10), (k, n)
    lo, hi = intervals.clopper_pearson(np.array([0, 3]), np.array([5, 5]))  # vectorised
    assert np.allclose([lo[1], hi[1]], _exact(3, 5)) and lo[0] == 0.0


def test_prompt_outcome_bounds_are_two_exact_intervals_over_prompts():
    """One image per prompt: 'won or tied' and 'won' are binomial counts over prompts; the bounds are the means of
    their 97.5% Clopper–Pearson intervals (scipy's)."""
    w = [1.0] * 9 + [0.5] * 3 + [0.0] * 2  # 9 won, 3 tied, 2 lost of 14
    lo, hi = intervals.prompt_outcome_bounds(w, [1] * 14)
    won_or_tied, won = _exact(12, 14, 0.975), _exact(9, 14, 0.975)
    assert (lo, hi) == pytest.approx(((won_or_tied[0] + won[0]) / 2, (won_or_tied[1] + won[1]) / 2))
    assert lo < (9 + 1.5) / 14 < hi
    lo8, hi8 = intervals.prompt_outcome_bounds([1.0] * 8, [3] * 8)  # 8 of 8 prompts won (3 images each)
    assert lo8 == pytest.approx(_exact(8, 8, 0.975)[0]) and hi8 == 1.0 and lo8 < _exact(8, 8)[0]


def test_korn_graubard_follows_the_published_formula():
    rng = np.random.default_rng(1)
    pairs = rng.integers(2, 6, size=12).astype(float)
    outcome = [rng.choice([0.0, 0.5, 1.0], size=int(m), p=[0.3, 0.1, 0.6]) for m in pairs]
    sums = np.array([o.sum() for o in outcome])
    squares = np.array([(o**2).sum() for o in outcome])
    lo, hi = intervals.korn_graubard(sums, pairs, squares)
    # written out: ratio estimate, its linearised variance over the 12 prompts, design-based n_eff truncated at the
    # independent-pairs n, the degrees-of-freedom factor, then the beta quantiles of Clopper–Pearson
    flat = np.concatenate(outcome)
    p = flat.mean()
    v = np.sum((sums - p * pairs) ** 2) * 12 / 11 / pairs.sum() ** 2
    n_eff = min(p * (1 - p) / v, len(flat) * p * (1 - p) / flat.var()) * (norm.ppf(0.975) / student_t.ppf(0.975, 11))**2
    assert n_eff > 12  # above the floor of one per prompt
    assert lo == pytest.approx(beta.ppf(0.025, n_eff * p, n_eff * (1 - p) + 1))
    assert hi == pytest.approx(beta.ppf(0.975, n_eff * p + 1, n_eff * (1 - p)))
    assert np.isnan(intervals.korn_graubard([2, 2], [4, 4], [2, 2])).all()  # no spread: not this method's case


def test_one_image_per_prompt_is_exactly_clopper_pearson_over_prompts():
    """Win/loss outcomes, one pair per prompt: the spread over prompts implies n_eff = P - 1, less with the degrees of
    freedom, and the floor of one per prompt makes the interval the exact one of k of P (scipy's)."""
    for k, n in ((5, 8), (1, 12), (30, 50), (0, 9), (9, 9)):
        outcome = np.array([1.0] * k + [0.0] * (n - k))
        value, lo, hi = intervals.win_rate_interval(np.arange(n), outcome)
        assert value == k / n and (lo, hi) == pytest.approx(_exact(k, n), abs=1e-9), (k, n)


def test_independent_images_give_about_the_binomial_interval_over_pairs():
    """100 prompts of 4 independent images: the win-rate interval is about the binomial one over 400 pairs
    (not the 4x wider one of 100 all-or-nothing prompts)."""
    rng = np.random.default_rng(3)
    codes = np.repeat(np.arange(100), 4)
    widths = []
    for _ in range(20):
        outcome = (rng.random(400) < 0.6).astype(float)
        _, lo, hi = intervals.win_rate_interval(codes, outcome)
        widths.append(hi - lo)
    wald = 2 * norm.ppf(0.975) * np.sqrt(0.6 * 0.4 / 400)
    assert 0.9 * wald < np.mean(widths) < 1.2 * wald


@pytest.mark.parametrize("n_prompts,icc", [(8, 0.0), (8, 0.6), (20, 0.6), (50, 0.6)])
def test_coverage_near_the_extremes_with_several_images_per_prompt(n_prompts, icc):
    """True win rate 0.95; 4 images per prompt; each prompt's win probability ~ Beta with mean 0.95 and
    intra-prompt correlation ``icc`` (0: independent images). 250 datasets: coverage >= 95% less 3 Monte Carlo
    standard errors."""
    rng = np.random.default_rng(n_prompts * 10 + int(10 * icc))
    n_sim, m, p = 250, 4, 0.95
    if icc == 0:
        q = np.full((n_sim, n_prompts), p)
    else:
        a = 1 / icc - 1
        q = rng.beta(p * a, (1 - p) * a, size=(n_sim, n_prompts))
    wins = rng.random((n_sim, n_prompts, m)) < q[..., None]
    codes = np.repeat(np.arange(n_prompts), m)
    covered = 0
    for s in range(n_sim):
        _, lo, hi = intervals.win_rate_interval(codes, wins[s].ravel().astype(float))
        covered += lo <= p <= hi
    assert covered / n_sim >= 0.95 - 3 * np.sqrt(0.95 * 0.05 / n_sim), covered / n_sim


def test_mean_interval_contains_the_student_t_interval():
    """Equal images per prompt: the t-interval over prompt means (scipy's) is inside the reported interval, which
    is wider than the percentile bootstrap alone for few prompts."""
    rng = np.random.default_rng(5)
    codes = np.repeat(np.arange(5), 3)
    values = rng.normal(size=15) + np.repeat(rng.normal(size=5), 3)
    value, lo, hi, note = intervals.mean_interval(codes, values, n_boot=500, seed=0, level=0.95)
    means = values.reshape(5, 3).mean(axis=1)
    t_lo, t_hi = student_t.interval(0.95, 4, loc=means.mean(), scale=means.std(ddof=1) / np.sqrt(5))
    assert value == pytest.approx(values.mean()) and note is None
    assert lo <= t_lo + 1e-12 and hi >= t_hi - 1e-12


def test_a_mean_with_no_spread_does_not_collapse_to_a_point():
    codes = np.repeat(np.arange(10), 2)
    value, lo, hi, note = intervals.mean_interval(codes, np.full(20, 0.2), n_boot=200, seed=0, level=0.95)
    assert value == pytest.approx(0.2) and np.isnan(lo) and np.isnan(hi)  # no scale in the data, no bounds given
    q = _exact(0, 10)[1]  # at most this share of prompts could score otherwise
    assert note == f"no spread across 10 prompts: up to {100 * q:.1f}% of prompts could score otherwise"
    _, lo, hi, _ = intervals.mean_interval(codes, np.full(20, 0.2), n_boot=200, seed=0, level=0.95, bounds=(0, 1))
    assert (lo, hi) == pytest.approx((0.2 - q * 0.2, 0.2 + q * 0.8))
    out = intervals.mean_interval(codes, np.full(20, 3.0), n_boot=200, seed=0, level=0.95, bounds=(0, 1))
    assert np.isnan(out[1]) and out[3].startswith("no spread")  # a value outside the bounds: they do not apply
    within = np.tile([1.0, 3.0], 10)  # images differ, prompt means do not: still no spread across prompts
    assert intervals.mean_interval(codes, within, n_boot=200, seed=0, level=0.95)[3].startswith("no spread")


def test_one_prompt_or_none():
    assert np.isnan(intervals.win_rate_interval(np.zeros(3, int), np.ones(3))[1])
    assert np.isnan(intervals.win_rate_interval(np.array([], int), np.array([]))[0])
    assert intervals.mean_interval(np.zeros(2, int), np.ones(2), n_boot=100, seed=0, level=0.95)[1:] == (
        pytest.approx(float("nan"), nan_ok=True), pytest.approx(float("nan"), nan_ok=True), None)
