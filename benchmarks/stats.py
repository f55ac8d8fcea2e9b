"""Benchmark statistics: paired win rates, prompt-bootstrap CIs, sign tests, means, Bradley-Terry, tidy rows.

Input is a tidy table of scores, one row per image: ``model``, ``prompt``, ``index`` (image index or seed
within the prompt), ``judge``, ``score`` and optionally ``category`` (a property of the prompt). A model
and the baseline are paired by (prompt, index). The unit of resampling is the prompt: all images of a
resampled prompt are kept (cluster bootstrap), because images of one prompt are not independent.

Decisions, applied everywhere:
  * a duplicate (model, judge, prompt, index) row, a missing column, a non-numeric score, a prompt with
    two categories, a model or baseline with no scores, or a model with no pair at all: ``ValueError``;
  * NaN scores (a reward that failed on an image) are dropped and counted (``dropped_nan``); rows of a
    model or the baseline without a partner are dropped and counted (``unpaired``);
  * a tie is ``|model - baseline| <= tie_tol`` (default 0: exact equality); it counts as half a win in
    the win rate, is reported separately and is dropped from the sign test (p = 1.0 when all are ties);
  * per-category rows carry their category; suite-wide rows carry category ``"all"``;
  * ``higher_is_better=False`` judges: the lower score wins;
  * intervals (`rewardbench.benchmarks.intervals`) are no more certain than the number of prompts allows: a
    win rate's is Clopper–Pearson at the effective number of pairs that the spread across prompts implies,
    never fewer than the prompts, and exact over prompts when every prompt agrees (`WIN_RATE_METHOD`; 8 of 8
    prompts won is [63.1%, 100%], not [100%, 100%]); a mean's, the union of a seeded prompt-bootstrap percentile
    interval and a Student-t interval, and where every prompt's mean is the same, a bound from the share of
    prompts that could differ (`MEAN_METHOD`; ``note`` says "no spread"); Bradley-Terry intervals are percentile
    intervals of the prompt bootstrap; with fewer than 2 prompts intervals are NaN (one cluster says nothing
    about prompt-to-prompt variation);
  * Bradley-Terry strengths are normalised so the log-strengths sum to 0 (geometric mean strength 1); the fit
    adds ``BT_PRIOR`` virtual ties per compared pair; where the outcomes separate the models the strengths are
    not identified: NaN intervals and a ``note`` (`rewardbench.benchmarks.bradley_terry`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .bradley_terry import BT_PRIOR, fit_bradley_terry, pair_outcomes, separation
from .intervals import MEAN_METHOD, WIN_RATE_METHOD, bootstrap_sums, mean_interval, percentile, win_rate_interval

__all__ = ["ALL", "BT_PRIOR", "MEAN_METHOD", "ROW_COLUMNS", "SCORE_COLUMNS", "WIN_RATE_METHOD", "GroupRewards",
           "WinRate", "bootstrap_sums", "bradley_terry", "fit_bradley_terry", "group_rewards", "mean_scores",
           "result_rows", "sign_test", "win_rate", "win_rates"]

SCORE_COLUMNS = ("model", "prompt", "index", "judge", "score")
ROW_COLUMNS = ["model", "baseline", "judge", "category", "metric", "value", "ci_low", "ci_high", "n_prompts",
               "n_pairs", "n_images", "wins", "losses", "ties", "p_value", "tie_tol", "higher_is_better",
               "count", "unpaired", "dropped_nan", "note"]
ALL = "all"  # the category of suite-wide rows (a real category may not be called "all")
Bounds = Mapping[str, tuple[float | None, float | None]]  # judge -> (lowest, highest) possible score


def _validate(scores: pd.DataFrame, key: Sequence[str] = ("model", "judge", "prompt", "index"),
              required: Sequence[str] = SCORE_COLUMNS) -> tuple[pd.DataFrame, pd.Series]:
    """Checks the tidy table; returns it without NaN scores and the NaN count per (model, judge)."""
    missing = [c for c in required if c not in scores.columns]
    if missing:
        raise ValueError(f"scores table lacks column(s) {missing}; it needs {list(required)}")
    df = scores.copy()
    try:
        df["score"] = pd.to_numeric(df["score"]).astype(float)
    except (ValueError, TypeError) as e:
        raise ValueError(f"scores must be numeric: {e}") from None
    dup = df.duplicated(list(key), keep=False)
    if dup.any():
        raise ValueError(f"{int(dup.sum())} rows share a ({', '.join(key)}) key, e.g. "
                         f"{df.loc[dup, list(key)].head(3).to_dict('records')}; each must be unique")
    if "category" in df.columns:
        n_cat = df.groupby("prompt")["category"].nunique(dropna=False)
        if (n_cat > 1).any():
            raise ValueError(f"prompts with more than one category: {list(n_cat[n_cat > 1].index[:5])}")
        if (df["category"] == ALL).any():
            raise ValueError(f"category {ALL!r} is reserved for suite-wide rows")
    nan = df["score"].isna()
    dropped = nan.groupby([df["model"], df["judge"]]).sum()
    return df[~nan], dropped


def _nan_count(dropped: pd.Series, model, judge) -> int:
    return int(dropped.get((model, judge), 0))


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided sign test of wins against losses (ties already dropped): H0 P(win) = 1/2.

    Returns ``scipy.stats.binomtest(wins, wins + losses).pvalue``, and 1.0 when there is no untied pair.

        >>> round(sign_test(9, 1), 4)
        0.0215
        >>> sign_test(0, 0)
        1.0
    """
    from scipy.stats import binomtest

    n = int(wins) + int(losses)
    return 1.0 if n == 0 else float(binomtest(int(wins), n, 0.5).pvalue)


@dataclasses.dataclass(frozen=True)
class WinRate:
    """The paired comparison of ``model`` against ``baseline`` under one judge (see `win_rate`)."""

    model: str
    baseline: str
    judge: str
    wins: int
    losses: int
    ties: int
    win_rate: float  # (wins + ties / 2) / pairs
    ci_low: float
    ci_high: float
    p_value: float  # exact sign test, ties dropped
    n_prompts: int
    n_pairs: int
    tie_tol: float
    higher_is_better: bool
    unpaired: int  # rows of model or baseline without a partner, dropped
    dropped_nan: int  # NaN scores of model or baseline, dropped


def _paired(clean, model, baseline, judge, had_nan: bool):
    """Rows of ``model`` and ``baseline`` under ``judge`` joined on (prompt, index). Nothing to pair is an
    error, unless NaN scores (``had_nan``: some were dropped) explain it: then the comparison is empty."""
    a = clean[(clean["model"] == model) & (clean["judge"] == judge)]
    b = clean[(clean["model"] == baseline) & (clean["judge"] == judge)]
    for name, rows in ((model, a), (baseline, b)):
        if rows.empty and not had_nan:
            raise ValueError(f"no scores of model {name!r} under judge {judge!r}")
    m = a[["prompt", "index", "score"]].merge(b[["prompt", "index", "score"]], on=["prompt", "index"],
                                              suffixes=("_m", "_b"))
    if m.empty and not had_nan:
        raise ValueError(f"model {model!r} has no (prompt, index) pair with baseline {baseline!r} "
                         f"under {judge!r}")
    return m, len(a) + len(b) - 2 * len(m)


def _win_rate(clean, dropped, model, baseline, judge, higher_is_better, tie_tol, level) -> WinRate:
    n_nan = _nan_count(dropped, model, judge) + _nan_count(dropped, baseline, judge)
    m, unpaired = _paired(clean, model, baseline, judge, n_nan > 0)
    d = (m["score_m"] - m["score_b"]).to_numpy()
    d = d if higher_is_better else -d
    tie = np.abs(d) <= tie_tol
    win, loss = (d > 0) & ~tie, (d < 0) & ~tie
    codes, prompts = pd.factorize(m["prompt"])
    value, lo, hi = win_rate_interval(codes, win + 0.5 * tie, level=level)
    w, lo_, t = int(win.sum()), int(loss.sum()), int(tie.sum())
    return WinRate(model, baseline, judge, w, lo_, t, float(value), lo, hi, sign_test(w, lo_), len(prompts), len(d),
                   float(tie_tol), bool(higher_is_better), int(unpaired), n_nan)


def win_rate(scores: pd.DataFrame, model: str, baseline: str, judge: str, *, higher_is_better: bool = True,
             tie_tol: float = 0.0, level: float = 0.95) -> WinRate:
    """Paired win rate of ``model`` over ``baseline`` under ``judge``: wins, losses, ties (|delta| <= tie_tol,
    half a win each), its interval over prompts (`WIN_RATE_METHOD`) and the exact sign test.

        >>> t = pd.DataFrame({"model": ["ft"] * 3 + ["base"] * 3, "prompt": ["a", "b", "c"] * 2,
        ...                   "index": 0, "judge": "j", "score": [3, 2, 1, 1, 2, 3]})
        >>> r = win_rate(t, "ft", "base", "j")
        >>> r.wins, r.losses, r.ties, r.win_rate, r.n_prompts
        (1, 1, 1, 0.5, 3)
        >>> win_rate(t, "ft", "base", "j", higher_is_better=False, tie_tol=2).ties
        3
    """
    clean, dropped = _validate(scores)
    return _win_rate(clean, dropped, model, baseline, judge, higher_is_better, tie_tol, level)


def _direction(higher_is_better: bool | Mapping[str, bool], judge: str) -> bool:
    if isinstance(higher_is_better, Mapping):
        return bool(higher_is_better.get(judge, True))
    return bool(higher_is_better)


def _categories(clean: pd.DataFrame, by_category: bool) -> list:
    """[ALL] plus each category when asked and present."""
    if not by_category or "category" not in clean.columns:
        return [ALL]
    return [ALL] + sorted(clean["category"].dropna().unique().tolist(), key=str)


def _subset(clean: pd.DataFrame, category):
    return clean if category == ALL else clean[clean["category"] == category]


def win_rates(scores: pd.DataFrame, baseline: str, *, judges: Sequence[str] | None = None,
              higher_is_better: bool | Mapping[str, bool] = True, tie_tol: float = 0.0, by_category: bool = False,
              level: float = 0.95) -> pd.DataFrame:
    """`win_rate` of every other model over ``baseline`` for each judge (``higher_is_better``: one bool or
    judge -> bool), and per category when ``by_category`` (category ``"all"`` = all prompts). One row each.

        >>> t = pd.DataFrame({"model": ["ft"] * 2 + ["base"] * 2, "prompt": ["a", "b"] * 2, "index": 0,
        ...                   "judge": "j", "score": [2, 0, 1, 1], "category": ["x", "y"] * 2})
        >>> win_rates(t, "base", by_category=True)[["category", "wins", "losses", "win_rate"]]
          category  wins  losses  win_rate
        0      all     1       1       0.5
        1        x     1       0       1.0
        2        y     0       1       0.0
    """
    clean, dropped = _validate(scores)
    if baseline not in set(scores["model"]):  # only NaN scores (e.g. no face for a parity): 0 prompts compared
        raise ValueError(f"baseline {baseline!r} has no scores; models: {sorted(set(scores['model']))}")
    rows = []
    for judge in judges if judges is not None else sorted(scores["judge"].unique()):
        hib = _direction(higher_is_better, judge)
        for model in sorted(set(scores.loc[scores["judge"] == judge, "model"]) - {baseline}):
            for cat in _categories(clean, by_category):
                r = _win_rate(_subset(clean, cat), dropped, model, baseline, judge, hib, tie_tol, level)
                rows.append({"category": cat, **dataclasses.asdict(r)})
    return pd.DataFrame(rows)


def mean_scores(scores: pd.DataFrame, *, judges: Sequence[str] | None = None, by_category: bool = False,
                bounds: Bounds | None = None, n_boot: int = 2000, seed: int | None = 0,
                level: float = 0.95) -> pd.DataFrame:
    """Mean score per (judge, model) over its images (each image weighs the same) with its interval over prompts
    (`rewardbench.benchmarks.intervals.mean_interval`; ``bounds``: judge -> (lowest, highest) score, which clip
    the interval and bound it when every prompt's mean is the same, as ``note`` then says); per category too when
    ``by_category``.

        >>> t = pd.DataFrame({"model": "m", "prompt": ["a", "a", "b", "b"], "index": [0, 1, 0, 1],
        ...                   "judge": "j", "score": [1.0, 2.0, 3.0, float("nan")]})
        >>> mean_scores(t)[["judge", "model", "mean", "n_prompts", "n_images", "dropped_nan"]]
          judge model  mean  n_prompts  n_images  dropped_nan
        0     j     m   2.0          2         3            1
    """
    clean, dropped = _validate(scores)
    rows = []
    for judge in judges if judges is not None else sorted(scores["judge"].unique()):
        for cat in _categories(clean, by_category):
            sub = _subset(clean, cat)
            groups = dict(tuple(sub[sub["judge"] == judge].groupby("model", sort=True)))
            if cat == ALL:  # a model whose scores are all NaN (e.g. a parity with no face anywhere): an empty row
                nan_only = set(scores.loc[scores["judge"] == judge, "model"]) - set(groups)
                groups.update({m: sub.iloc[:0] for m in nan_only})
            for model in sorted(groups):
                g = groups[model]
                codes, prompts = pd.factorize(g["prompt"])
                s = g["score"].to_numpy()
                value, lo, hi, note = mean_interval(codes, s, n_boot=n_boot, seed=seed, level=level,
                                                    bounds=(bounds or {}).get(judge))
                rows.append({"judge": judge, "model": model, "category": cat, "mean": value, "ci_low": lo,
                             "ci_high": hi, "n_prompts": len(prompts), "n_images": len(s),
                             "dropped_nan": _nan_count(dropped, model, judge), "note": note})
    return pd.DataFrame(rows)


def bradley_terry(scores: pd.DataFrame, judge: str, *, models: Sequence[str] | None = None,
                  higher_is_better: bool = True, tie_tol: float = 0.0, prior: float = BT_PRIOR, n_boot: int = 1000,
                  seed: int | None = 0, level: float = 0.95) -> pd.DataFrame:
    """Ranks models by Bradley-Terry strengths fitted to every pairwise outcome on shared (prompt, index)
    slots under one judge (ties half a win each), with prompt-bootstrap CIs on the log-strengths.

    Log-strengths sum to 0; ``strength = exp(log_strength)`` (geometric mean 1); rank 1 is the strongest.
    ``prior`` virtual ties per compared pair keep the fit finite when a model never wins or never loses
    (negligible with thousands of comparisons); with ``prior=0`` the plain MLE, a ``ValueError`` if it does
    not exist, and NaN CIs if it does not exist in some bootstrap resample. When the outcomes separate the models
    (`rewardbench.benchmarks.bradley_terry.separation`: a model won or lost every comparison, ...) the strengths
    are not identified: the prior alone sets the gap, so the CIs are NaN and ``note`` says why (the log-strengths
    stay, as the prior makes them, and keep the observed order).

        >>> t = pd.DataFrame({"model": list("abc") * 4, "prompt": np.repeat(list("pqrs"), 3), "index": 0,
        ...                   "judge": "j", "score": [3, 2, 1, 3, 2, 1, 2, 3, 1, 2, 1, 3]})
        >>> bradley_terry(t, "j")[["model", "rank", "n_comparisons"]]
          model  rank  n_comparisons
        0     a     1              8
        1     b     2              8
        2     c     3              8
    """
    clean, _ = _validate(scores)
    models = list(models) if models is not None else sorted(clean.loc[clean["judge"] == judge, "model"].unique())
    if len(models) < 2:
        raise ValueError(f"Bradley-Terry needs at least 2 models under judge {judge!r}, got {models}")
    per, comparisons, n_prompts = pair_outcomes(clean, judge, models, higher_is_better, tie_tol)
    if (comparisons == 0).any():
        raise ValueError(f"models never compared under {judge!r}: {[m for m, c in zip(models, comparisons) if not c]}")
    est = fit_bradley_terry(per.sum(axis=0), prior=prior)
    if np.isnan(est).any():
        raise ValueError(f"no Bradley-Terry MLE under {judge!r} (a model never wins or never loses, or the "
                         "comparisons split into groups); use prior > 0")
    lo = hi = np.full(len(models), np.nan)
    note = separation(per.sum(axis=0), models)
    if n_prompts >= 2 and note is None:
        sums = bootstrap_sums(per.reshape(n_prompts, -1), n_boot=n_boot, seed=seed)
        reps = fit_bradley_terry(sums.reshape(n_boot, len(models), len(models)), prior=prior)
        if not np.isnan(reps).any():
            lo, hi = percentile(reps, n_prompts, level)
    out = pd.DataFrame({"model": models, "log_strength": est, "ci_low": lo, "ci_high": hi,
                        "strength": np.exp(est), "n_prompts": n_prompts, "n_comparisons": comparisons, "note": note})
    out["rank"] = out["log_strength"].rank(ascending=False, method="min").astype(int)
    return out.sort_values("rank", kind="stable").reset_index(drop=True)


@dataclasses.dataclass(frozen=True)
class GroupRewards:
    """Group rewards (one value per prompt): the validated per-prompt table and the suite summary."""

    per_prompt: pd.DataFrame
    summary: pd.DataFrame


def group_rewards(groups: pd.DataFrame, *, count: str | None = None, by_category: bool = False,
                  bounds: Bounds | None = None, n_boot: int = 2000, seed: int | None = 0,
                  level: float = 0.95) -> GroupRewards:
    """Suite mean of a group reward (a value per prompt: diversity, statistical parity, ...) per (judge, model):
    ``groups`` has ``model``, ``prompt``, ``judge``, ``score`` and optionally ``category`` and a ``count``
    column (e.g. faces found) that is summed. Prompts weigh the same; intervals as `mean_scores`'; NaN
    values (e.g. no face found) are dropped and counted; a duplicate (model, judge, prompt) raises.

        >>> g = pd.DataFrame({"model": "m", "prompt": ["a", "b", "c"], "judge": "parity",
        ...                   "score": [0.2, 0.4, float("nan")], "faces": [4, 6, 0]})
        >>> group_rewards(g, count="faces").summary[["mean", "n_prompts", "count", "dropped_nan"]].round(2)
           mean  n_prompts  count  dropped_nan
        0   0.3          2     10            1
    """
    required = ("model", "prompt", "judge", "score") + ((count,) if count else ())
    clean, dropped = _validate(groups, key=("model", "judge", "prompt"), required=required)
    per_prompt = clean.sort_values(["judge", "model", "prompt"], kind="stable").reset_index(drop=True)
    rows = []
    for cat in _categories(clean, by_category):
        for (judge, model), g in _subset(clean, cat).groupby(["judge", "model"], sort=True):
            codes = pd.factorize(g["prompt"])[0]
            value, lo, hi, note = mean_interval(codes, g["score"].to_numpy(), n_boot=n_boot, seed=seed, level=level,
                                                bounds=(bounds or {}).get(judge))
            rows.append({"judge": judge, "model": model, "category": cat, "mean": value, "ci_low": lo,
                         "ci_high": hi, "n_prompts": len(g), "dropped_nan": _nan_count(dropped, model, judge),
                         "note": note,
                         **({"count": g[count].sum()} if count else {})})
    return GroupRewards(per_prompt, pd.DataFrame(rows))


def result_rows(scores: pd.DataFrame, baseline: str, *, judges: Sequence[str] | None = None,
                higher_is_better: bool | Mapping[str, bool] = True, tie_tol: float = 0.0, by_category: bool = True,
                groups: pd.DataFrame | None = None, group_count: str | None = None, bt_prior: float = BT_PRIOR,
                bounds: Bounds | None = None, n_boot: int = 2000, seed: int | None = 0,
                level: float = 0.95) -> pd.DataFrame:
    """Everything above as tidy rows (`ROW_COLUMNS`), one per (model, judge, category, metric), for reports
    and leaderboards. Metrics: ``mean`` (every model), ``win_rate`` (each model vs ``baseline``; with
    wins/losses/ties and the sign test's ``p_value``), ``bt_log_strength`` (3 or more models), and
    ``group_mean`` for the optional per-prompt ``groups`` table. Category ``"all"``: all prompts. ``note``:
    a qualification of the row in words (no spread across prompts; Bradley–Terry strengths not identified).

        >>> t = pd.DataFrame({"model": ["ft"] * 2 + ["base"] * 2, "prompt": ["a", "b"] * 2, "index": 0,
        ...                   "judge": "j", "score": [2.0, 1.0, 1.0, 1.0]})
        >>> r = result_rows(t, "base")
        >>> r[["model", "metric", "value", "n_prompts", "ties"]]
          model    metric  value  n_prompts  ties
        0  base      mean   1.00          2   NaN
        1    ft      mean   1.50          2   NaN
        2    ft  win_rate   0.75          2   1.0
    """
    clean, _ = _validate(scores)
    judges = list(judges) if judges is not None else sorted(clean["judge"].unique())
    rows = []
    for m in mean_scores(scores, judges=judges, by_category=by_category, bounds=bounds, n_boot=n_boot, seed=seed,
                         level=level).to_dict("records"):
        rows.append({**m, "metric": "mean", "value": m["mean"], "higher_is_better": _direction(higher_is_better,
                                                                                               m["judge"])})
    for w in win_rates(scores, baseline, judges=judges, higher_is_better=higher_is_better, tie_tol=tie_tol,
                       by_category=by_category, level=level).to_dict("records"):
        rows.append({**w, "metric": "win_rate", "value": w["win_rate"]})
    for judge in judges:
        hib = _direction(higher_is_better, judge)
        for cat in _categories(clean, by_category):
            sub = _subset(clean, cat)
            if sub.loc[sub["judge"] == judge, "model"].nunique() < 3:
                continue
            bt = bradley_terry(sub, judge, higher_is_better=hib, tie_tol=tie_tol, prior=bt_prior,
                               n_boot=n_boot, seed=seed, level=level)
            for b in bt.to_dict("records"):
                rows.append({**b, "judge": judge, "category": cat, "metric": "bt_log_strength",
                             "value": b["log_strength"], "n_pairs": b["n_comparisons"], "tie_tol": tie_tol,
                             "higher_is_better": hib})
    if groups is not None:
        summary = group_rewards(groups, count=group_count, by_category=by_category, bounds=bounds, n_boot=n_boot,
                                seed=seed, level=level).summary
        for g in summary.to_dict("records"):
            rows.append({**g, "metric": "group_mean", "value": g["mean"],
                         "higher_is_better": _direction(higher_is_better, g["judge"])})
    out = pd.DataFrame(rows, columns=ROW_COLUMNS)
    out["baseline"] = baseline
    return out
