"""What each protocol name on a board means: one definition per protocol, shown beside every number.

The agreement benchmark (`rewardbench.benchmarks.agreement_metrics`) computes the protocols named here;
a row's ``protocol`` field starts with one of these names and may add its parameters, e.g.
``pickapic (tie threshold 0.3, tuned on validation_unique)``.

    >>> describe("pickapic (tie threshold 0.3)").startswith("Pick-a-Pic")
    True
    >>> describe("something else entirely")
    ''
"""

from __future__ import annotations

PROTOCOLS = {
    "pickapic": "Pick-a-Pic (PickScore's eval_preference_predictor.py): pairs; the reward predicts a tie when "
                "|p0 - p1| <= threshold, p = softmax of the two scores; 1 when right, 0.5 when exactly one side "
                "(human or reward) is a tie, 0 when wrong; human ties kept; mean over pairs",
    "drop-ties": "human-tied pairs dropped; every untied pair of images of an item counts; a reward tie "
                 "(|s_i - s_j| <= threshold) earns 0.5; pooled over pairs",
    "imagereward": "ImageReward test.py: all pairs with different human ranks, pooled over the test set; a reward "
                   "tie counts as wrong",
    "hpdv2": "HPSv2 inversion score: per prompt 1 - discordant pairs / all pairs (a pair tied on either side is "
             "not discordant), mean over prompts",
    "hpdv3": "HPDv3 pairwise accuracy as reported by the HPSv3 paper",
    "mmrb2": "Multimodal RewardBench 2: the expert-chosen image of each pair; a reward tie is wrong; pooled",
    "same preference": "reward vs reward: both rewards prefer the same image of a pair of images of one prompt; "
                       "0.5 when either ties; pooled over pairs",
    "Kendall": "rank correlation (Kendall tau-b)",
    "Spearman": "rank correlation (Spearman rho)",
    "win rate": "paired win rate of a model over the baseline under a judge: images paired by (prompt, seed), a "
                "tie counts half; 95% interval by bootstrap over prompts",
    "mean score": "mean of a judge's score over a model's images; 95% interval by bootstrap over prompts",
    "Bradley-Terry": "Bradley-Terry log-strengths fitted to the paired comparisons of all models",
    "timing": "wall-clock measurement; random weights, since speed does not depend on their values",
}


def describe(protocol: str) -> str:
    """The definition of the protocol a row's ``protocol`` text starts with ('' when unknown)."""
    text = str(protocol or "")
    for name in sorted(PROTOCOLS, key=len, reverse=True):
        if text.startswith(name):
            return PROTOCOLS[name]
    return ""
