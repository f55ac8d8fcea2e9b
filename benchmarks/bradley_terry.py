"""Bradley–Terry strengths from pairwise outcomes: the fit, the prior it adds, and when the data identify it.

P(i beats j) = 1 / (1 + exp(s_j - s_i)) (Bradley & Terry 1952). The maximum-likelihood strengths exist only when the
directed graph "i beat j at least once" is strongly connected (Zermelo 1929; Ford 1957; Hunter 2004, Assumption 1):
if some model won (or lost) every comparison, or the models split into groups that never beat a higher group,
the likelihood keeps growing as the gap between groups grows and no finite strength is "the" estimate.
`fit_bradley_terry`'s ``prior`` adds virtual ties to every compared pair, which keeps the fit finite, but then the
gap across a separation is set by the prior, not by the data: `separation` names the case so that a report can
say "not identified" instead of printing a point. `rewardbench.benchmarks.stats.bradley_terry` uses both.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

BT_PRIOR = 1.0  # virtual ties per compared pair (half a win each way), added to the summed outcomes


def _reach(w: np.ndarray) -> np.ndarray:
    """Reachability of the "i beat j" graph (each model reaches itself), by repeated squaring; batched."""
    n_models = w.shape[-1]
    eye = np.eye(n_models, dtype=bool)
    reach = ((w > 0) | eye).astype(float)
    for _ in range(int(np.ceil(np.log2(max(n_models, 2))))):
        reach = ((reach @ reach) > 0).astype(float)
    return reach > 0


def fit_bradley_terry(wins, *, prior: float = 0.0, max_iter: int = 10000, tol: float = 1e-10) -> np.ndarray:
    """Bradley-Terry log-strengths from ``wins[..., i, j]`` (times i beat j; a tie is half a win to each),
    by Hunter's (2004) MM algorithm, vectorised over leading batch dimensions. Normalised to sum to 0
    (P(i beats j) = 1 / (1 + exp(s_j - s_i))). ``prior`` adds that many virtual ties to every compared
    pair. Where the maximum-likelihood estimate does not exist (the "i beat j" graph is not strongly
    connected: a model never wins, never loses, or a group is never compared), the result is NaN.

        >>> s = fit_bradley_terry([[0, 2], [1, 0]])
        >>> s.round(4).tolist(), round(float(s[0] - s[1]), 4) == round(float(np.log(2)), 4)
        ([0.3466, -0.3466], True)
        >>> bool(np.isnan(fit_bradley_terry([[0, 1], [0, 0]])).all())
        True
    """
    w = np.asarray(wins, dtype=float)
    n_models = w.shape[-1]
    eye = np.eye(n_models, dtype=bool)
    w = np.where(eye, 0.0, w)
    n = w + np.swapaxes(w, -1, -2)
    w = w + np.where(n > 0, prior / 2.0, 0.0)
    n = w + np.swapaxes(w, -1, -2)
    ok = _reach(w).reshape(*w.shape[:-2], -1).all(axis=-1)
    total = np.where(ok[..., None], w.sum(axis=-1), 1.0)
    n = np.where(ok[..., None, None], n, 1.0 - eye)
    logp = np.zeros(w.shape[:-1])
    for _ in range(max_iter):
        p = np.exp(logp - logp.max(axis=-1, keepdims=True))
        new = np.log(total) - np.log((n / (p[..., :, None] + p[..., None, :])).sum(axis=-1))
        new = new - new.mean(axis=-1, keepdims=True)
        done = np.max(np.abs(new - logp)) < tol
        logp = new
        if done:
            break
    return np.where(ok[..., None], logp, np.nan)


def separation(wins, models) -> str | None:
    """None when the outcomes ``wins[i, j]`` (times ``models[i]`` beat ``models[j]``, ties half to each) identify
    Bradley–Terry strengths; otherwise why not, in words (the report prints it instead of a point).

    The strongly connected groups of the "i beat j" graph, ordered from the group that no other group beat: with
    two groups, a group of one at the top "won every comparison", one at the bottom "lost every comparison"; with
    more, the order of the groups ("outcomes separate a > b, c > d": no model of a lower group beat one of a
    higher group); groups with no win between them are "groups that never beat each other".

        >>> separation([[0, 3, 2], [0, 0, 1], [0, 1, 0]], ["a", "b", "c"])
        'not identified: a won every comparison'
        >>> separation([[0, 1, 2], [1, 0, 0], [0, 0, 0]], ["a", "b", "c"])
        'not identified: c lost every comparison'
        >>> separation([[0, 2, 2], [0, 0, 1], [0, 0, 0]], ["a", "b", "c"])
        'not identified: outcomes separate a > b > c'
        >>> separation([[0, 1], [1, 0]], ["a", "b"]) is None
        True
    """
    w = np.where(np.eye(len(models), dtype=bool), 0.0, np.asarray(wins, dtype=float))
    reach = _reach(w)
    if reach.all():
        return None
    mutual = reach & reach.T
    groups = []
    for i in range(len(models)):
        if not any(i in g for g in groups):
            groups.append([j for j in range(len(models)) if mutual[i, j]])
    groups.sort(key=lambda g: -int(reach[g[0]].sum()))  # a higher group reaches (beat, directly or not) more models
    names = [[str(models[i]) for i in g] for g in groups]
    ordered = all(reach[a[0], b[0]] for a, b in zip(groups, groups[1:]))
    if not ordered:
        split = " | ".join(", ".join(g) for g in names)
        return f"not identified: groups that never beat each other: {split}"
    if len(groups) == 2 and len(groups[0]) == 1:
        return f"not identified: {names[0][0]} won every comparison"
    if len(groups) == 2 and len(groups[1]) == 1:
        return f"not identified: {names[1][0]} lost every comparison"
    return "not identified: outcomes separate " + " > ".join(", ".join(g) for g in names)


def pair_outcomes(clean: pd.DataFrame, judge: str, models: list, higher_is_better: bool, tie_tol: float):
    """Per-prompt win matrices (P, M, M), comparisons per model and the prompt count for one judge, from a
    validated tidy scores table (`rewardbench.benchmarks.stats`): models compared on shared (prompt, index)
    slots, ties (|difference| <= ``tie_tol``) half a win to each."""
    sub = clean[(clean["judge"] == judge) & clean["model"].isin(models)]
    wide = sub.pivot(index=["prompt", "index"], columns="model", values="score").reindex(columns=models)
    codes, prompts = pd.factorize(wide.index.get_level_values("prompt"))
    x = wide.to_numpy() * (1.0 if higher_is_better else -1.0)
    n_models, n_prompts = len(models), len(prompts)
    per = np.zeros((n_prompts, n_models, n_models))
    comparisons = np.zeros(n_models, dtype=int)
    for i in range(n_models):
        for j in range(i + 1, n_models):
            both = ~np.isnan(x[:, i]) & ~np.isnan(x[:, j])
            d, c = x[both, i] - x[both, j], codes[both]
            tie = np.abs(d) <= tie_tol
            per[:, i, j] = np.bincount(c, weights=((d > 0) & ~tie) + 0.5 * tie, minlength=n_prompts)
            per[:, j, i] = np.bincount(c, weights=((d < 0) & ~tie) + 0.5 * tie, minlength=n_prompts)
            comparisons[[i, j]] += int(both.sum())
    return per, comparisons, n_prompts
