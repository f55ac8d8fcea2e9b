"""run-benchmark's PNG plots (matplotlib `Figure` objects, no pyplot: no display and no global state).

    plots/win_rates.png     win rate of each model over the baseline, one panel per judge, 95% CI whiskers, 50% line
    plots/scores.png        score distribution per model, one panel per judge (box plots)
    plots/categories.png    per-category win rate (or mean, with one model), one panel per judge

Readable at any number of judges and models: panels wrap into rows of at most four, models and categories run
down the panels (long names fit), so a figure is at most 4 panels wide and `MAX_HEIGHT` inches tall; a
constrained layout keeps the figure title clear of the panel titles, and the legend sits outside the panels.
Every value carries a marker, so a 0% bar or an interval that is a single point still shows.

A judge with random weights carries "(random weights)" in its panel title, and every figure title says
so when any judge or generator has random weights.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from . import stats
from .report import judge_label

MAX_COLUMNS = 4  # panels per row
PANEL_WIDTH = 3.8  # inches
MAX_HEIGHT = 22.0  # inches: panels shrink rather than the figure grow past this
DPI = 110


def _note(plan, judges: dict[str, dict]) -> str:
    rnd = [j for j in plan.judges if judges.get(j, {}).get("random_weights")]
    gen = [g.name for g in plan.generators if g.random_weights]
    parts = ([f"judges with random weights: {', '.join(rnd)}"] if rnd else []) + \
        ([f"generators with random weights: {', '.join(gen)}"] if gen else [])
    return ("\n[" + "; ".join(parts) + ": not meaningful scores]") if parts else ""


def _grid(n: int, rows_per_panel: int):
    """A figure of ``n`` panels in rows of at most `MAX_COLUMNS`, each tall enough for ``rows_per_panel`` bars or
    boxes (within `MAX_HEIGHT` for the whole figure); constrained layout, so titles and legends get their room."""
    from matplotlib.figure import Figure

    cols = min(n, MAX_COLUMNS)
    rows = math.ceil(n / cols)
    panel_height = max(1.7, 0.28 * rows_per_panel + 0.9)
    fig = Figure(figsize=(max(5.0, PANEL_WIDTH * cols), min(MAX_HEIGHT, rows * panel_height + 0.9)),
                 layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()[:n]


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    return path


def _labels_fontsize(n: int) -> int:
    return 8 if n <= 12 else 6


def _hbar(ax, pos, sub: pd.DataFrame, height: float, color: str, label: str) -> None:
    """Bars of ``sub``'s values at ``pos``, its 95% CIs as whiskers, and a marker at each value (so a 0 bar and an
    interval that is a single point stay visible)."""
    v = sub["value"].to_numpy(float)
    lo, hi = sub["ci_low"].to_numpy(float), sub["ci_high"].to_numpy(float)
    err = np.nan_to_num(np.vstack([v - lo, hi - v]))
    ax.barh(pos, np.nan_to_num(v), height, color=color, alpha=0.55, label=label)
    ok = ~np.isnan(v)
    ax.errorbar(v[ok], np.asarray(pos)[ok], xerr=err[:, ok], fmt="o", ms=4, color=color, ecolor="black",
                elinewidth=1, capsize=2, zorder=3)


def _bars(ax, rows: pd.DataFrame, by: str, order: list, models: list) -> np.ndarray:
    """Horizontal bars, one per (``by`` value, model), grouped by ``by`` value; returns the group positions (top to
    bottom)."""
    height = 0.8 / len(models)
    at = np.arange(len(order))[::-1].astype(float)
    for k, m in enumerate(models):
        sub = rows[rows["model"] == m].set_index(by).reindex(order)
        _hbar(ax, at + ((len(models) - 1) / 2 - k) * height, sub, height, f"C{k % 10}", m)
    return at


def win_rate_figure(rows: pd.DataFrame, plan, judges: dict[str, dict]):
    """Win rates over the baseline (category "all"): one panel per judge, models down the panel; None if none."""
    wr = rows[(rows["metric"] == "win_rate") & (rows["category"] == stats.ALL)]
    if wr.empty:
        return None
    js = [j for j in plan.judges if j in set(wr["judge"])]
    models = list(dict.fromkeys(wr["model"]))
    fig, axes = _grid(len(js), len(models))
    y = np.arange(len(models))[::-1].astype(float)
    for ax, j in zip(axes, js):
        sub = wr[wr["judge"] == j].set_index("model")
        for k, m in enumerate(models):  # one colour per model, the same in every panel
            _hbar(ax, y[k:k + 1], sub.reindex([m]), 0.7, f"C{k % 10}", m)
        ax.axvline(0.5, color="grey", lw=1, ls="--")
        ax.set_xlim(-0.03, 1.03)  # room for a marker at 0% or 100%
        ax.set_yticks(y, models, fontsize=_labels_fontsize(len(models)))
        ax.set_title(judge_label(j, judges), fontsize=9)
    fig.supxlabel(f"win rate over {plan.baseline}", fontsize=9)
    fig.suptitle(f"Win rate over {plan.baseline} (95% CI over prompts){_note(plan, judges)}", fontsize=10)
    return fig


def score_figure(scores: pd.DataFrame, plan, judges: dict[str, dict]):
    """Score distributions: one panel per judge, a horizontal box per model (mean marked)."""
    js = [j for j in plan.judges if j in set(scores["judge"])]
    models = list(dict.fromkeys(scores["model"]))
    fig, axes = _grid(len(js), len(models))
    for ax, j in zip(axes, js):
        sub = scores[scores["judge"] == j].dropna(subset=["score"])
        present = [m for m in models if (sub["model"] == m).any()]
        ax.boxplot([sub.loc[sub["model"] == m, "score"].to_numpy() for m in present][::-1], showmeans=True,
                   orientation="horizontal")
        ax.set_yticks(range(1, len(present) + 1), present[::-1], fontsize=_labels_fontsize(len(present)))
        ax.set_title(judge_label(j, judges), fontsize=9)
    fig.suptitle(f"Score distribution per model{_note(plan, judges)}", fontsize=10)
    return fig


def category_figure(rows: pd.DataFrame, plan, judges: dict[str, dict]):
    """Per-category win rate over the baseline (or mean, with one model): one panel per judge, categories down the
    panel, one bar per model, the legend below the panels; None without categories."""
    cat = rows[(rows["category"] != stats.ALL)]
    if cat.empty:
        return None
    metric = "win_rate" if (cat["metric"] == "win_rate").any() else "mean"
    cat = cat[cat["metric"] == metric]
    js = [j for j in plan.judges if j in set(cat["judge"])]
    models = list(dict.fromkeys(cat["model"]))
    n_cats = cat.groupby("judge")["category"].nunique().max()
    fig, axes = _grid(len(js), int(n_cats) * max(1, len(models)) // 2 + 1)
    for ax, j in zip(axes, js):
        sub = cat[cat["judge"] == j]
        cats = sorted(sub["category"].unique(), key=str)
        y = _bars(ax, sub, "category", cats, models)
        if metric == "win_rate":
            ax.axvline(0.5, color="grey", lw=1, ls="--")
            ax.set_xlim(-0.03, 1.03)  # room for a marker at 0% or 100%
        ax.set_yticks(y, [str(c)[:28] for c in cats], fontsize=_labels_fontsize(len(cats)))
        ax.set_title(judge_label(j, judges), fontsize=9)
    if len(models) > 1:
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(models), 4), fontsize=8)
    what = f"win rate over {plan.baseline}" if metric == "win_rate" else "mean score"
    fig.suptitle(f"Per category: {what} (95% CI){_note(plan, judges)}", fontsize=10)
    return fig


def win_rate_plot(rows: pd.DataFrame, plan, judges: dict[str, dict], path: Path) -> Path | None:
    fig = win_rate_figure(rows, plan, judges)
    return None if fig is None else _save(fig, path)


def score_plot(scores: pd.DataFrame, plan, judges: dict[str, dict], path: Path) -> Path:
    return _save(score_figure(scores, plan, judges), path)


def category_plot(rows: pd.DataFrame, plan, judges: dict[str, dict], path: Path) -> Path | None:
    fig = category_figure(rows, plan, judges)
    return None if fig is None else _save(fig, path)


def write_plots(folder: Path, rows: pd.DataFrame, scores: pd.DataFrame, plan, judges: dict[str, dict]) -> list[Path]:
    """Every plot that applies; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    made = [win_rate_plot(rows, plan, judges, folder / "win_rates.png"),
            score_plot(scores, plan, judges, folder / "scores.png"),
            category_plot(rows, plan, judges, folder / "categories.png")]
    return [p for p in made if p is not None]
