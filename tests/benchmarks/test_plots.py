"""run-benchmark's plots stay readable at any number of judges and models: bounded PNG sizes, a marker for every value
(a 0% win rate and a point interval still draw something), figure titles clear of panel titles, legends outside
the panels. Behaviour of the figures (sizes, artists, layout boxes), not pixels."""

from __future__ import annotations

import functools
import types

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image

from rewardbench.benchmarks import plots, stats


@functools.cache
def _run(n_models: int, n_judges: int):
    """Rows and scores (cached: not to be changed) of ``n_models`` models (the first is the baseline; with two or
    more, 'm1' loses every pair under the first judge) under ``n_judges`` judges, 10 prompts of 2 images in 3
    categories."""
    rng = np.random.default_rng(0)
    models = [f"m{i}" for i in range(n_models)]
    js = [f"judge-{k:02d}" for k in range(n_judges)]
    prompts = np.repeat([f"p{i}" for i in range(10)], 2)
    parts = []
    for j in js:
        for i, m in enumerate(models):
            score = rng.normal(0.2 * i, 1, 20) + (-100 if (m == "m1" and j == js[0]) else 0)
            parts.append(pd.DataFrame({"model": m, "prompt": prompts, "index": np.tile([0, 1], 10), "judge": j,
                                       "score": score, "category": np.repeat(list("abcabcabca"), 2)}))
    scores = pd.concat(parts, ignore_index=True)
    means = stats.mean_scores(scores, by_category=True, n_boot=100)
    rows = [means.assign(metric="mean", value=means["mean"])]
    if n_models > 1:  # the rows plots read (stats.result_rows without its slower Bradley–Terry rows)
        wins = stats.win_rates(scores, "m0", by_category=True)
        rows.append(wins.assign(metric="win_rate", value=wins["win_rate"]))
    rows = pd.concat(rows, ignore_index=True)
    plan = types.SimpleNamespace(judges=js, generators=[], baseline="m0")
    return rows, scores, plan


@pytest.mark.parametrize("n_models,n_judges", [(3, 13), (1, 1), (2, 1), (10, 3)])
def test_png_sizes_stay_bounded(tmp_path, n_models, n_judges):
    rows, scores, plan = _run(n_models, n_judges)
    written = plots.write_plots(tmp_path, rows, scores, plan, {})
    assert {p.name for p in written} == ({"scores.png", "categories.png"} | ({"win_rates.png"} if n_models > 1
                                                                             else set()))
    for path in written:
        width, height = Image.open(path).size
        assert 300 <= width <= 2400 and 200 <= height <= 2600, (path.name, width, height)
        assert 1 / 4 <= width / height <= 4, (path.name, width, height)


def _drawn(fig):
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_a_zero_win_rate_still_draws_a_marker_and_its_interval():
    rows, _, plan = _run(3, 13)
    zero = rows[(rows["metric"] == "win_rate") & (rows["category"] == "all") & (rows["model"] == "m1")
                & (rows["judge"] == "judge-00")].iloc[0]
    assert zero["value"] == 0.0 and zero["ci_high"] > 0  # the statistics: 0 of 20, an interval that reflects n
    fig = plots.win_rate_figure(rows, plan, {})
    ax = fig.axes[0]
    assert ax.get_title() == "judge-00"
    at = {t.get_text(): y for t, y in zip(ax.get_yticklabels(), ax.get_yticks())}
    markers = [ln for ln in ax.lines if ln.get_marker() == "o"]
    points = {(float(x), float(y)) for ln in markers for x, y in zip(ln.get_xdata(), ln.get_ydata())}
    assert (0.0, float(at["m1"])) in points  # a visible marker where the bar has no width
    assert len(points) == 2  # one per compared model (m1, m2)


def test_a_point_interval_still_draws_a_marker():
    rows, _, plan = _run(2, 1)
    rows = rows.copy()
    at = (rows["metric"] == "win_rate") & (rows["category"] == "all")
    rows.loc[at, ["value", "ci_low", "ci_high"]] = 0.25  # an interval that is a single point
    ax = plots.win_rate_figure(rows, plan, {}).axes[0]
    xs = [float(x) for ln in ax.lines if ln.get_marker() == "o" for x in ln.get_xdata()]
    assert xs == [0.25]


def test_titles_and_legends_do_not_cover_panels():
    rows, scores, plan = _run(3, 13)
    for fig in (plots.win_rate_figure(rows, plan, {}), plots.score_figure(scores, plan, {}),
                plots.category_figure(rows, plan, {})):
        renderer = _drawn(fig)
        title = fig._suptitle.get_window_extent(renderer)
        panels = [ax for ax in fig.axes if ax.get_visible()]
        assert len(panels) == 13 and len({ax.get_position().x0.round(3) for ax in panels}) == plots.MAX_COLUMNS
        for ax in panels:
            assert not _overlap(title, ax.title.get_window_extent(renderer)), ax.get_title()
            assert not _overlap(title, ax.get_window_extent(renderer))
            for legend in fig.legends:
                assert not _overlap(legend.get_window_extent(renderer), ax.get_window_extent(renderer))
    assert len(fig.legends) == 1 and [t.get_text() for t in fig.legends[0].get_texts()] == ["m1", "m2"]
    assert all(ax.get_legend() is None for ax in fig.axes)
