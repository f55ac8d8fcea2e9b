"""rewardbench.benchmarks.stats against independent computations: hand-counted win rates, scipy's binomtest, simulated
coverage of the prompt-level intervals (exact coverage at the extremes, from the binomial distribution),
Bradley-Terry on simulated outcomes and a direct likelihood maximisation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from scipy.stats import binom, binomtest, norm

from rewardbench.benchmarks import intervals, stats


def tidy(model_scores, base_scores, prompts, index=None, judge="j", category=None):
    """A tidy table holding one 'ft' and one 'base' score per (prompt, index) slot."""
    n = len(model_scores)
    index = list(range(n)) if index is None else list(index)
    df = pd.DataFrame({"model": ["ft"] * n + ["base"] * n, "prompt": list(prompts) * 2, "index": index * 2,
                       "judge": judge, "score": list(model_scores) + list(base_scores)})
    if category is not None:
        df["category"] = list(category) * 2
    return df


# deltas ft - base: 1, 0, -1, -0.05, 0, 3, 2 (hand-made; two exact ties, one near tie)
FT = [5.0, 3.0, 2.0, 2.0, 1.0, 4.0, 2.5]
BASE = [4.0, 3.0, 3.0, 2.05, 1.0, 1.0, 0.5]
PROMPTS = ["p1", "p1", "p2", "p2", "p3", "p3", "p4"]
CATS = ["x", "x", "x", "x", "y", "y", "y"]


def test_hand_made_win_rate_ties_tolerance_and_direction():
    df = tidy(FT, BASE, PROMPTS)
    r = stats.win_rate(df, "ft", "base", "j")
    assert (r.wins, r.losses, r.ties, r.n_pairs, r.n_prompts) == (3, 2, 2, 7, 4)
    assert r.win_rate == pytest.approx((3 + 2 / 2) / 7)
    assert r.tie_tol == 0.0 and r.unpaired == 0 and r.dropped_nan == 0
    assert r.ci_low <= r.win_rate <= r.ci_high

    tol = stats.win_rate(df, "ft", "base", "j", tie_tol=0.1)  # the -0.05 becomes a tie
    assert (tol.wins, tol.losses, tol.ties, tol.tie_tol) == (3, 1, 3, 0.1)
    assert tol.win_rate == pytest.approx((3 + 3 / 2) / 7)

    low = stats.win_rate(df, "ft", "base", "j", higher_is_better=False)  # lower score wins
    assert (low.wins, low.losses, low.ties, low.higher_is_better) == (2, 3, 2, False)
    assert low.win_rate == pytest.approx((2 + 2 / 2) / 7)


def test_per_category_breakdown_counts():
    df = tidy(FT, BASE, PROMPTS, category=CATS)
    w = stats.win_rates(df, "base", by_category=True).set_index("category")
    assert list(w.index) == ["all", "x", "y"]
    assert w.loc["x", ["wins", "losses", "ties", "n_prompts"]].tolist() == [1, 2, 1, 2]  # deltas 1, 0, -1, -0.05
    assert w.loc["y", ["wins", "losses", "ties", "n_prompts"]].tolist() == [2, 0, 1, 2]  # deltas 0, 3, 2
    assert w.loc["x", "win_rate"] == pytest.approx(1.5 / 4)
    assert w.loc["y", "win_rate"] == pytest.approx(2.5 / 3)
    assert w.loc["all", "wins"] == 3
    means = stats.mean_scores(df, by_category=True).set_index(["model", "category"])
    assert means.loc[("ft", "y"), "mean"] == pytest.approx(np.mean([1.0, 4.0, 2.5]))
    assert means.loc[("base", "all"), "n_images"] == 7


def test_sign_test_matches_binomtest_on_independently_counted_outcomes():
    rng = np.random.default_rng(7)
    a = rng.integers(0, 5, size=300).astype(float)  # small integer scores: many exact ties
    b = rng.integers(0, 5, size=300).astype(float) - (rng.random(300) < 0.3)
    prompts = np.repeat(np.arange(60), 5).astype(str)
    r = stats.win_rate(tidy(a, b, prompts, index=np.tile(np.arange(5), 60)), "ft", "base", "j")
    wins, losses = int(np.sum(a > b)), int(np.sum(a < b))
    assert (r.wins, r.losses, r.ties) == (wins, losses, int(np.sum(a == b)))
    assert r.p_value == pytest.approx(binomtest(wins, wins + losses, 0.5).pvalue, rel=1e-12)
    assert stats.sign_test(wins, losses) == pytest.approx(binomtest(wins, wins + losses).pvalue, rel=1e-12)
    assert r.p_value < 0.05  # the shift of -0.3 on b shows


def test_prompt_level_interval_covers_and_per_image_interval_under_covers():
    """200 datasets with prompt-level random effects: the 95% interval over prompts covers the true win rate
    close to nominally; treating each image as independent (every image its own prompt) does not."""
    n_prompts, k, mu, sd_prompt = 40, 8, 0.3, 1.5
    truth = norm.cdf(mu / np.sqrt(sd_prompt**2 + 2))  # P(mu + u + e1 - e2 > 0), u ~ N(0, 1.5^2), e ~ N(0, 1)
    rng = np.random.default_rng(2024)
    prompts = np.repeat(np.arange(n_prompts), k).astype(str)
    index = np.tile(np.arange(k), n_prompts)
    covered = {"prompt": 0, "image": 0}
    n_sim = 200
    for _ in range(n_sim):
        shared = np.repeat(rng.normal(size=n_prompts), k)
        effect = np.repeat(rng.normal(0, sd_prompt, size=n_prompts), k)
        base = shared + rng.normal(size=n_prompts * k)
        ft = shared + mu + effect + rng.normal(size=n_prompts * k)
        df = tidy(ft, base, prompts, index=index)
        naive = df.assign(prompt=df["prompt"] + "/" + df["index"].astype(str))  # every image its own cluster
        for name, table in (("prompt", df), ("image", naive)):
            r = stats.win_rate(table, "ft", "base", "j")
            covered[name] += r.ci_low <= truth <= r.ci_high
    prompt_cov, image_cov = covered["prompt"] / n_sim, covered["image"] / n_sim
    assert 0.88 <= prompt_cov <= 0.99, prompt_cov
    assert image_cov < 0.86 and prompt_cov - image_cov > 0.08, (prompt_cov, image_cov)


@pytest.mark.parametrize("p", [1.0, 0.95])
def test_win_rate_coverage_at_the_extremes(p):
    """One image per prompt, true win probability p (1 or 0.95), n from 8 to 50 prompts. A dataset is then k wins
    in n prompts, so the coverage is exact: sum over k of Binom(k; n, p) * [the interval of k wins covers p]
    (every k with probability > 1e-7, through stats.win_rate). A prompt bootstrap alone covers 0.95 with
    probability P(k < n) (0.34 at n = 8) and reports 8 of 8 as [100%, 100%]."""
    for n in (8, 9, 10, 12, 15, 20, 25, 30, 40, 50):
        ks = np.arange(n + 1)
        pmf = binom.pmf(ks, n, p)
        coverage = 0.0
        for k in ks[pmf > 1e-7]:
            df = tidy([1.0] * k + [0.0] * (n - k), [0.5] * n, [f"p{i}" for i in range(n)])
            r = stats.win_rate(df, "ft", "base", "j")
            coverage += pmf[k] * (r.ci_low <= p <= r.ci_high)
            if k == n:  # every prompt won: an interval that reflects n, containing the exact one
                exact = binomtest(n, n).proportion_ci(confidence_level=0.95, method="exact")
                assert r.ci_high == 1.0 and r.ci_low <= exact.low + 1e-12 and exact.low < 1.0, (n, r.ci_low)
        assert coverage >= 0.95 - 0.005, (n, p, coverage)


def test_bootstrap_sums_moments_and_chunking(monkeypatch):
    x = np.random.default_rng(0).exponential(size=(30, 2))
    monkeypatch.setattr(intervals, "_CHUNK", 100)  # force many chunks
    sums = stats.bootstrap_sums(x, n_boot=20000, seed=1)
    assert sums.shape == (20000, 2)
    # a resample of n prompts: sum has mean n * mean(x) and variance n * var(x) (population variance)
    np.testing.assert_allclose(sums.mean(axis=0), 30 * x.mean(axis=0), rtol=0.01)
    np.testing.assert_allclose(sums.var(axis=0), 30 * x.var(axis=0), rtol=0.05)
    again = stats.bootstrap_sums(x, n_boot=20000, seed=1)
    np.testing.assert_array_equal(sums, again)  # seeded


def test_mean_scores_value_and_ci():
    rng = np.random.default_rng(3)
    prompts = np.repeat(np.arange(50), 4).astype(str)
    df = tidy(rng.normal(1, 1, 200), rng.normal(0, 1, 200), prompts, index=np.tile(np.arange(4), 50))
    m = stats.mean_scores(df).set_index("model")
    for model in ("ft", "base"):
        expected = df.loc[df["model"] == model, "score"].mean()
        assert m.loc[model, "mean"] == pytest.approx(expected)
        assert m.loc[model, "ci_low"] < expected < m.loc[model, "ci_high"]
        assert m.loc[model, "ci_high"] - m.loc[model, "ci_low"] < 4 * 1.96 / np.sqrt(200)
    assert m.loc["ft", "n_prompts"] == 50 and m.loc["ft", "n_images"] == 200


def test_bradley_terry_recovers_known_strengths():
    theta = np.array([-0.8, -0.2, 0.3, 0.7])  # sums to 0
    models = ["m0", "m1", "m2", "m3"]
    rng = np.random.default_rng(11)
    n_prompts, k = 600, 5
    rows = []
    for m, t in zip(models, theta):  # score = theta + Gumbel: P(i beats j) = 1 / (1 + exp(theta_j - theta_i))
        rows.append(pd.DataFrame({"model": m, "prompt": np.repeat(np.arange(n_prompts), k), "judge": "j",
                                  "index": np.tile(np.arange(k), n_prompts),
                                  "score": t + rng.gumbel(size=n_prompts * k)}))
    bt = stats.bradley_terry(pd.concat(rows), "j", n_boot=200).set_index("model").loc[models]
    assert bt["rank"].tolist() == [4, 3, 2, 1]
    assert np.abs(bt["log_strength"].to_numpy() - theta).max() < 0.1
    assert bt["log_strength"].sum() == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(bt["strength"], np.exp(bt["log_strength"]))
    assert ((bt["ci_low"] < bt["log_strength"]) & (bt["log_strength"] < bt["ci_high"])).all()
    assert (bt["ci_high"] - bt["ci_low"] < 0.3).all()
    assert (bt["n_comparisons"] == 3 * n_prompts * k).all()


def test_bradley_terry_mm_matches_direct_likelihood_maximisation():
    rng = np.random.default_rng(5)
    w = rng.integers(1, 30, size=(4, 4)).astype(float) + 0.5  # + a half-tie
    np.fill_diagonal(w, 0)

    def nll(s):
        diff = s[:, None] - s[None, :]
        return -np.sum(w * -np.logaddexp(0, -diff))

    direct = minimize(nll, np.zeros(4), method="BFGS", options={"gtol": 1e-10}).x
    direct -= direct.mean()
    np.testing.assert_allclose(stats.fit_bradley_terry(w), direct, atol=1e-5)
    batch = stats.fit_bradley_terry(np.stack([w, w.T]))  # vectorised; transposed outcomes flip the strengths
    np.testing.assert_allclose(batch[1], -direct, atol=1e-5)


def test_bradley_terry_without_mle():
    losers = pd.DataFrame({"model": list("abc") * 3, "prompt": np.repeat(list("pqr"), 3), "index": 0,
                           "judge": "j", "score": [3, 2, 1, 2, 3, 1, 3, 2, 1]})  # c never wins
    assert np.isnan(stats.fit_bradley_terry([[0, 3, 0], [1, 0, 0], [0, 0, 0]])).all()
    with pytest.raises(ValueError, match="prior > 0"):
        stats.bradley_terry(losers, "j", prior=0)
    bt = stats.bradley_terry(losers, "j")  # default prior: finite, but the data do not identify it: said, no interval
    assert np.isfinite(bt["log_strength"]).all() and bt.iloc[-1]["model"] == "c"
    assert (bt["note"] == "not identified: c lost every comparison").all() and bt["ci_low"].isna().all()


def test_all_ties():
    """Every prompt tied: not [50%, 50%], but how far from 1/2 the win rate could be if some prompts were decided:
    the share of won-or-tied prompts is at least the Clopper–Pearson low of 3 of 3, that of won prompts at most
    the high of 0 of 3 (each at 97.5%, Bonferroni), and the win rate is their mean."""
    df = tidy([1.0] * 6, [1.0] * 6, ["a", "a", "b", "b", "c", "c"])
    r = stats.win_rate(df, "ft", "base", "j")
    assert (r.wins, r.losses, r.ties) == (0, 0, 6)
    tied = binomtest(3, 3).proportion_ci(confidence_level=0.975)
    won = binomtest(0, 3).proportion_ci(confidence_level=0.975)
    assert r.win_rate == 0.5 and r.p_value == 1.0
    assert r.ci_low == pytest.approx((tied.low + won.low) / 2)
    assert r.ci_high == pytest.approx((tied.high + won.high) / 2)


def test_one_prompt_has_no_interval():
    df = tidy([2.0, 0.0, 3.0], [1.0, 1.0, 1.0], ["only"] * 3)
    r = stats.win_rate(df, "ft", "base", "j")
    assert (r.wins, r.losses, r.n_prompts) == (2, 1, 1) and r.win_rate == pytest.approx(2 / 3)
    assert np.isnan(r.ci_low) and np.isnan(r.ci_high)
    m = stats.mean_scores(df).set_index("model")
    assert m.loc["ft", "mean"] == pytest.approx(5 / 3) and np.isnan(m.loc["ft", "ci_low"])


def test_missing_pairs_and_nan_scores_are_dropped_and_counted():
    df = tidy(FT, BASE, PROMPTS)
    extra = pd.DataFrame([{"model": "ft", "prompt": "p9", "index": 0, "judge": "j", "score": 1.0}])
    df = pd.concat([df, extra], ignore_index=True)
    df.loc[(df["model"] == "base") & (df["index"] == 6), "score"] = np.nan  # base's partner of delta 2
    r = stats.win_rate(df, "ft", "base", "j")
    assert r.dropped_nan == 1 and r.unpaired == 2  # the extra ft row and ft's row whose partner was NaN
    assert (r.n_pairs, r.wins, r.losses, r.ties) == (6, 2, 2, 2)


def test_invalid_inputs_raise():
    df = tidy(FT, BASE, PROMPTS)
    with pytest.raises(ValueError, match="unique"):
        stats.win_rate(pd.concat([df, df.iloc[:1]]), "ft", "base", "j")
    with pytest.raises(ValueError, match="lacks column"):
        stats.win_rate(df.drop(columns="index"), "ft", "base", "j")
    no_pair = df.assign(prompt=np.where(df["model"] == "ft", df["prompt"] + "-other", df["prompt"]))
    with pytest.raises(ValueError, match="no \\(prompt, index\\) pair"):
        stats.win_rate(no_pair, "ft", "base", "j")
    with pytest.raises(ValueError, match="baseline"):
        stats.win_rates(df, "nobody")
    with pytest.raises(ValueError, match="more than one category"):
        stats.win_rate(df.assign(category=["x"] * 7 + ["y"] * 7), "ft", "base", "j")
    with pytest.raises(ValueError, match="numeric"):
        stats.mean_scores(df.assign(score="high"))


def test_group_rewards():
    g = pd.DataFrame({"model": ["m"] * 4 + ["n"] * 4, "prompt": list("abcd") * 2, "judge": "parity",
                      "score": [0.1, 0.3, 0.8, np.nan, 0.5, 0.5, 0.5, 0.5], "faces": [3, 4, 5, 0, 2, 2, 2, 2],
                      "category": list("xxyy") * 2})
    res = stats.group_rewards(g, count="faces", by_category=True)
    assert len(res.per_prompt) == 7  # the NaN prompt dropped
    s = res.summary.set_index(["model", "category"])
    assert s.loc[("m", "all"), "mean"] == pytest.approx(np.mean([0.1, 0.3, 0.8]))  # prompts weigh the same
    assert s.loc[("m", "all"), ["n_prompts", "count", "dropped_nan"]].tolist() == [3, 12, 1]
    assert s.loc[("m", "x"), "mean"] == pytest.approx(0.2)
    # n scores 0.5 on every prompt: no spread, so no interval without bounds; with bounds, the share of prompts that
    # could differ (Clopper–Pearson high of 0 of 4) times the room to each bound
    assert np.isnan(s.loc[("n", "all"), "ci_low"]) and "no spread across 4 prompts" in s.loc[("n", "all"), "note"]
    q = binomtest(0, 4).proportion_ci(confidence_level=0.95).high
    bounded = stats.group_rewards(g, bounds={"parity": (0.0, 1.0)}).summary.set_index("model").loc["n"]
    assert bounded[["ci_low", "ci_high"]].tolist() == pytest.approx([0.5 - q * 0.5, 0.5 + q * 0.5])
    with pytest.raises(ValueError, match="unique"):
        stats.group_rewards(pd.concat([g, g.iloc[:1]]))


def test_result_rows_are_tidy_and_consistent():
    rng = np.random.default_rng(4)
    n = 120
    prompts = np.repeat(np.arange(30), 4).astype(str)
    rows = [pd.DataFrame({"model": m, "prompt": prompts, "index": np.tile(np.arange(4), 30), "judge": j,
                          "score": rng.normal(shift, 1, n), "category": np.where(prompts.astype(int) < 15, "x", "y")})
            for m, shift in (("base", 0), ("ft", 0.5), ("other", -0.5)) for j in ("up", "down")]
    df = pd.concat(rows, ignore_index=True)
    groups = pd.DataFrame({"model": "ft", "prompt": [str(i) for i in range(30)], "judge": "div",
                           "score": rng.random(30), "faces": 1})
    r = stats.result_rows(df, "base", higher_is_better={"down": False}, tie_tol=0.01, groups=groups,
                          group_count="faces", n_boot=200)
    assert list(r.columns) == stats.ROW_COLUMNS
    assert set(r["metric"]) == {"mean", "win_rate", "bt_log_strength", "group_mean"}
    assert set(r["category"]) == {"all", "x", "y"} and (r["baseline"] == "base").all()
    assert len(r[r["metric"] == "mean"]) == 3 * 2 * 3  # models x judges x (all, x, y)
    wr = r[(r["metric"] == "win_rate") & (r["category"] == "all")].set_index(["model", "judge"])
    assert len(wr) == 4 and (wr["tie_tol"] == 0.01).all()
    direct = stats.win_rate(df, "ft", "base", "down", higher_is_better=False, tie_tol=0.01)
    row = wr.loc[("ft", "down")]
    assert (row["value"], row["wins"], row["ties"], row["p_value"]) == (
        direct.win_rate, direct.wins, direct.ties, direct.p_value)
    assert row["n_pairs"] == n and row["n_prompts"] == 30 and not row["higher_is_better"]
    assert wr.loc[("ft", "up"), "value"] > 0.5 > wr.loc[("ft", "down"), "value"]
    bt = r[(r["metric"] == "bt_log_strength") & (r["category"] == "all") & (r["judge"] == "up")]
    assert bt.sort_values("value")["model"].tolist() == ["other", "base", "ft"]
    grp = r[r["metric"] == "group_mean"].iloc[0]
    assert grp["value"] == pytest.approx(groups["score"].mean()) and grp["count"] == 30


def test_a_baseline_whose_scores_are_all_nan_compares_zero_prompts():
    """A group reward can be NaN for every prompt of a model (a parity where no image had a face): the
    comparison is then empty (NaN win rate, 0 prompts, the NaNs counted), not an error about a missing model."""
    t = pd.DataFrame({"model": ["ft"] * 2 + ["base"] * 2, "prompt": ["a", "b"] * 2, "index": 0,
                      "judge": "parity", "score": [0.5, 1.0, float("nan"), float("nan")]})
    r = stats.win_rates(t, "base").iloc[0]
    assert (r["model"], r["n_prompts"], r["n_pairs"], r["dropped_nan"]) == ("ft", 0, 0, 2)
    assert np.isnan(r["win_rate"]) and np.isnan(r["ci_low"]) and r["p_value"] == 1.0
    with pytest.raises(ValueError, match="baseline 'other' has no scores"):
        stats.win_rates(t, "other")
