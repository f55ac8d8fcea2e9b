"""Agreement protocols against hand counts and against transcriptions of the official evaluation code."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from rewardbench.benchmarks import agreement_metrics as am


def official_imagereward_acc(rankings, rewards):
    """ImageReward test.py `acc` (ranking: 1 = best; rewards: higher = better), transcribed."""
    tol, true = 0.0, 0.0
    for base, item in zip(rankings, rewards):
        for i in range(len(base)):
            for j in range(i + 1, len(base)):
                if base[i] > base[j]:
                    tol += 1
                    true += item[i] < item[j]
                elif base[i] < base[j]:
                    tol += 1
                    true += item[i] > item[j]
    return true / tol


def official_inversion_score(p1, p2):
    """HPSv2 inversion_score (p1: predicted ranks, p2: human ranks; 0 = best), transcribed."""
    n, cnt = len(p1), 0
    for i in range(n - 1):
        for j in range(i + 1, n):
            if (p1[i] > p1[j] and p2[i] < p2[j]) or (p1[i] < p1[j] and p2[i] > p2[j]):
                cnt += 1
    return 1 - cnt / (n * (n - 1) / 2)


def official_pickapic(label_0, prob_0, prob_1, threshold):
    """PickScore eval_preference_predictor.py get_label/get_pred/calc_score, transcribed."""
    label = "tie" if label_0 == 0.5 else ("0" if label_0 == 1 else "1")
    pred = "tie" if abs(prob_1 - prob_0) <= threshold else ("0" if prob_0 > prob_1 else "1")
    return 1 if label == pred else (0.5 if "tie" in (label, pred) else 0)


def test_pickapic_matches_the_official_scoring_on_every_case():
    rng = np.random.default_rng(0)
    for _ in range(300):
        label_0 = rng.choice([0.0, 0.5, 1.0])
        s = rng.normal(0, 2, 2)
        if rng.random() < 0.2:
            s[1] = s[0]
        p = np.exp(s) / np.exp(s).sum()
        thr = float(rng.choice([0.0, 0.1, 0.5, 0.9]))
        ours, count = am.pair_credit(np.array([label_0, 1 - label_0]), s, "pickapic", thr)
        assert count == 1 and ours == pytest.approx(official_pickapic(label_0, p[0], p[1], thr))


def test_imagereward_protocol_equals_the_official_accuracy_pooled_over_items():
    rng = np.random.default_rng(1)
    rankings = [list(rng.integers(1, 5, size=int(k))) for k in rng.integers(2, 8, size=40)]
    rewards = [list(np.round(rng.normal(size=len(r)), 1)) for r in rankings]  # rounding makes reward ties
    credit = np.array([am.pair_credit(-np.array(r, float), np.array(s), "imagereward") for r, s in zip(rankings,
                                                                                                   rewards)])
    assert credit[:, 0].sum() / credit[:, 1].sum() == pytest.approx(official_imagereward_acc(rankings, rewards))


def test_hpdv2_protocol_equals_the_official_inversion_score():
    rng = np.random.default_rng(2)
    for _ in range(100):
        k = int(rng.integers(2, 9))
        human_rank = list(rng.integers(0, 4, size=k))
        scores = np.round(rng.normal(size=k), 1)
        pred_rank = [list(np.argsort(-scores)).index(j) for j in range(k)]  # as HPSv2 turns logits into ranks
        ours, count = am.pair_credit(-np.array(human_rank, float), scores, "hpdv2")
        # HPSv2's argsort breaks score ties by position; ours counts a score tie as not discordant
        if len(set(scores)) == k:
            assert count == 1 and ours == pytest.approx(official_inversion_score(pred_rank, human_rank))


def test_drop_ties_by_hand():
    # human: a > b = c; reward: a > c > b. Untied human pairs: (a,b) right, (a,c) right -> 2 of 2
    assert am.pair_credit(np.array([2.0, 1.0, 1.0]), np.array([3.0, 1.0, 2.0]), "drop-ties") == (2.0, 2.0)
    # a reward tie earns half; the threshold widens what a tie is
    assert am.pair_credit(np.array([1.0, 0.0]), np.array([1.0, 1.0]), "drop-ties") == (0.5, 1.0)
    assert am.pair_credit(np.array([1.0, 0.0]), np.array([1.2, 1.0]), "drop-ties", 0.5) == (0.5, 1.0)
    # a human tie contributes nothing
    assert am.pair_credit(np.array([0.5, 0.5]), np.array([3.0, 1.0]), "drop-ties") == (0.0, 0.0)


def test_mmrb2_counts_reward_ties_as_wrong():
    assert am.pair_credit(np.array([1.0, 0.0]), np.array([1.0, 1.0]), "mmrb2") == (0.0, 1.0)
    assert am.pair_credit(np.array([0.0, 1.0]), np.array([0.0, 2.0]), "mmrb2") == (1.0, 1.0)


def test_unknown_protocol_and_pickapic_on_triples_are_errors():
    with pytest.raises(ValueError, match="unknown protocol"):
        am.pair_credit(np.array([1.0, 0.0]), np.array([1.0, 0.0]), "nope")
    with pytest.raises(ValueError, match="pairs"):
        am.pair_credit(np.array([1.0, 0.0, 2.0]), np.array([1.0, 0.0, 2.0]), "pickapic")
    assert set(am.PROTOCOLS) == {"pickapic", "drop-ties", "imagereward", "hpdv2", "mmrb2"}


def test_tie_threshold_is_tuned_like_pickscore():
    # 5 human ties with small score gaps and 5 clear pairs: predicting ties for gaps < ~0.4 is best
    humans = [np.array([0.5, 0.5])] * 5 + [np.array([1.0, 0.0])] * 5
    scores = [np.array([0.0, 0.3])] * 5 + [np.array([3.0, 0.0])] * 5
    best = am.tune_tie_threshold(humans, scores)
    assert math.tanh(0.15) <= best < math.tanh(1.5)
    acc = sum(am.pair_credit(h, s, "pickapic", best)[0] for h, s in zip(humans, scores)) / 10
    assert acc == 1.0


def test_ratio_estimate_interval_and_clusters():
    credit = np.array([1.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    e = am.ratio_estimate(credit, np.ones(6), np.array(["a", "a", "b", "b", "c", "c"]), n_boot=500)
    assert e.value == pytest.approx(4 / 6) and e.n == 6 and e.n_clusters == 3
    assert e.ci_low <= e.value <= e.ci_high and e.ci_low >= 0.0 and e.ci_high <= 1.0
    one = am.ratio_estimate(credit, np.ones(6), np.zeros(6))
    assert math.isnan(one.ci_low) and one.n_clusters == 1  # one cluster says nothing about variation
    empty = am.ratio_estimate(np.zeros(2), np.zeros(2), np.array([0, 1]))
    assert math.isnan(empty.value) and empty.n == 0


def test_interval_covers_the_truth_in_simulation():
    rng = np.random.default_rng(3)
    hits = 0
    for rep in range(60):
        p = rng.uniform(0.6, 0.7, size=40)  # 40 prompts, 5 pairs each
        credit = (rng.random((40, 5)) < p[:, None]).astype(float).ravel()
        e = am.ratio_estimate(credit, np.ones(200), np.repeat(np.arange(40), 5), n_boot=400, seed=rep)
        hits += e.ci_low <= p.mean() <= e.ci_high
    assert hits >= 50  # nominal 95%: at least 83% of 60 here


def test_correlations_match_scipy():
    rng = np.random.default_rng(4)
    hs = [rng.normal(size=5) for _ in range(6)]
    ss = [h + rng.normal(scale=0.5, size=5) for h in hs]
    tau = am.within_item_correlation(hs, ss, np.arange(6), "kendall", n_boot=200)
    assert tau.value == pytest.approx(np.mean([kendalltau(h, s)[0] for h, s in zip(hs, ss)]))
    rho = am.within_item_correlation(hs, ss, np.arange(6), "spearman", n_boot=200)
    assert rho.value == pytest.approx(np.mean([spearmanr(h, s)[0] for h, s in zip(hs, ss)]))
    flat = am.within_item_correlation([np.ones(3)], [np.arange(3.0)], np.zeros(1), "kendall")
    assert flat.n == 0  # a constant side has no order
    h, s = np.concatenate(hs), np.concatenate(ss)
    pooled = am.pooled_correlation(h, s, "spearman")
    assert pooled.value == pytest.approx(spearmanr(h, s)[0]) and pooled.ci_low < pooled.value < pooled.ci_high


def test_concordance_by_hand():
    a = np.array([1.0, 2.0, 3.0, 1.0, 1.0])
    b = np.array([1.0, 3.0, 2.0, 5.0, 5.0])
    c, n, g = am.concordance(a, b, np.array([0, 0, 0, 1, 1]))
    # prompt 0 pairs: (0,1) agree, (0,2) agree, (1,2) disagree; prompt 1: a ties -> half
    assert c.tolist() == [1.0, 1.0, 0.0, 0.5] and n.sum() == 4 and g.tolist() == [0, 0, 0, 1]
    self_c = am.concordance(a, a, np.zeros(5))[0]  # a reward with itself: 1 for every pair it orders, 0.5 for ties
    i, j = np.triu_indices(5, 1)
    assert self_c.tolist() == np.where(a[i] == a[j], 0.5, 1.0).tolist()


def test_an_accuracy_every_prompt_agrees_on_still_has_an_interval_that_reflects_n():
    """8 prompts, each pair judged right (or each a tie): the cluster bootstrap alone would print [1, 1] (or
    [0.5, 0.5]); the interval is the exact one for 8 of 8 prompts instead (scipy's Clopper–Pearson)."""
    from scipy.stats import binomtest

    from rewardbench.benchmarks.agreement_metrics import ratio_estimate

    exact = binomtest(8, 8).proportion_ci(confidence_level=0.95, method="exact")
    e = ratio_estimate(np.ones(8), np.ones(8), np.arange(8))
    assert e.value == 1.0 and abs(e.ci_low - exact.low) < 1e-9 and e.ci_high == 1.0
    ties = ratio_estimate(np.full(16, 0.5), np.ones(16), np.repeat(np.arange(8), 2))
    assert ties.value == 0.5 and ties.ci_low < 0.5 < ties.ci_high and ties.n_clusters == 8
    more = ratio_estimate(np.ones(50), np.ones(50), np.arange(50))
    assert e.ci_low < more.ci_low < 1.0  # narrower with more prompts, never a point
