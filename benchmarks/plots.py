"""run-benchmark's PNG plots (matplotlib `Figure` objects, no pyplot: no display and no global state).

    plots/win_rates.png     win rate of each model over the baseline per judge, 95% CI whiskers, 50% line
    plots/scores.png        score distribution per model, one panel per judge (box plots)
    plots/categories.png    per-category win rate (or mean, with one model) per judge

A judge with random weights carries "(random weights)" in its panel title, and every figure title says
so when any judge or generator has random weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import stats
from .report import judge_label


def _note(plan, judges: dict[str, dict]) -> str:
    rnd = [j for j in plan.judges if judges.get(j, {}).get("random_weights")]
    gen = [g.name for g in plan.generators if g.random_weights]
    parts = ([f"judges with random weights: {', '.join(rnd)}"] if rnd else []) + \
        ([f"generators with random weights: {', '.join(gen)}"] if gen else [])
    return ("\n[" + "; ".join(parts) + ": not meaningful scores]") if parts else ""


def _figure(**kw):
    from matplotlib.figure import Figure

    return Figure(**kw)


def _grid(n: int):
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig = _figure(figsize=(4.6 * cols, 3.4 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _bars(ax, rows: pd.DataFrame, by: str, order: list, horizontal: bool) -> np.ndarray:
    """One bar per (``by`` value, model) with its 95% CI as a whisker; returns the group positions."""
    models = list(dict.fromkeys(rows["model"]))
    width = 0.8 / len(models)
    at = np.arange(len(order))
    for k, m in enumerate(models):
        sub = rows[rows["model"] == m].set_index(by).reindex(order)
        v = sub["value"].to_numpy(float)
        err = np.nan_to_num(np.vstack([v - sub["ci_low"].to_numpy(float), sub["ci_high"].to_numpy(float) - v]))
        pos = at + (k - (len(models) - 1) / 2) * width
        if horizontal:
            ax.barh(pos, v, width, xerr=err, capsize=2, label=m)
        else:
            ax.bar(pos, v, width, yerr=err, capsize=3, label=m)
    return at


def win_rate_plot(rows: pd.DataFrame, plan, judges: dict[str, dict], path: Path) -> Path | None:
    wr = rows[(rows["metric"] == "win_rate") & (rows["category"] == stats.ALL)]
    if wr.empty:
        return None
    js = [j for j in plan.judges if j in set(wr["judge"])]
    models = list(dict.fromkeys(wr["model"]))
    fig = _figure(figsize=(max(5.0, 1.3 * len(js) * len(models) + 2), 4.2))
    ax = fig.subplots()
    x = _bars(ax, wr, "judge", js, horizontal=False)
    ax.axhline(0.5, color="grey", lw=1, ls="--")
    ax.set_xticks(x, [judge_label(j, judges) for j in js], rotation=20, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"win rate over {plan.baseline}")
    ax.legend(fontsize=8)
    ax.set_title(f"Win rate over {plan.baseline} (95% CI, bootstrap over prompts){_note(plan, judges)}", fontsize=9)
    return _save(fig, path)


def score_plot(scores: pd.DataFrame, plan, judges: dict[str, dict], path: Path) -> Path:
    js = [j for j in plan.judges if j in set(scores["judge"])]
    fig, axes = _grid(len(js))
    for ax, j in zip(axes, js):
        sub = scores[scores["judge"] == j].dropna(subset=["score"])
        models = list(dict.fromkeys(sub["model"]))
        ax.boxplot([sub.loc[sub["model"] == m, "score"].to_numpy() for m in models], showmeans=True)
        ax.set_xticks(range(1, len(models) + 1), models, rotation=20, ha="right", fontsize=8)
        ax.set_title(judge_label(j, judges), fontsize=9)
    fig.suptitle(f"Score distribution per model{_note(plan, judges)}", fontsize=9)
    return _save(fig, path)


def category_plot(rows: pd.DataFrame, plan, judges: dict[str, dict], path: Path) -> Path | None:
    cat = rows[(rows["category"] != stats.ALL)]
    if cat.empty:
        return None
    metric = "win_rate" if (cat["metric"] == "win_rate").any() else "mean"
    cat = cat[cat["metric"] == metric]
    js = [j for j in plan.judges if j in set(cat["judge"])]
    fig, axes = _grid(len(js))
    for ax, j in zip(axes, js):
        sub = cat[cat["judge"] == j]
        cats = sorted(sub["category"].unique(), key=str)
        y = _bars(ax, sub, "category", cats, horizontal=True)
        if metric == "win_rate":
            ax.axvline(0.5, color="grey", lw=1, ls="--")
            ax.set_xlim(0, 1)
        ax.set_yticks(y, [str(c)[:28] for c in cats], fontsize=7)
        ax.set_title(judge_label(j, judges), fontsize=9)
        ax.legend(fontsize=7)
    what = f"win rate over {plan.baseline}" if metric == "win_rate" else "mean score"
    fig.suptitle(f"Per category: {what} (95% CI){_note(plan, judges)}", fontsize=9)
    return _save(fig, path)


def write_plots(folder: Path, rows: pd.DataFrame, scores: pd.DataFrame, plan, judges: dict[str, dict]) -> list[Path]:
    """Every plot that applies; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    made = [win_rate_plot(rows, plan, judges, folder / "win_rates.png"),
            score_plot(scores, plan, judges, folder / "scores.png"),
            category_plot(rows, plan, judges, folder / "categories.png")]
    return [p for p in made if p is not None]
