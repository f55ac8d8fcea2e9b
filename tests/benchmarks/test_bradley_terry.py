"""rewardbench.benchmarks.bradley_terry: when outcomes identify the strengths (checked against scipy's strongly
connected components), what the note says under separation, and what stats.bradley_terry reports then."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.sparse.csgraph import connected_components

from rewardbench.benchmarks import bradley_terry, stats


def test_identified_exactly_when_the_beat_graph_is_strongly_connected():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(2, 6))
        w = rng.integers(0, 3, size=(n, n)) * (rng.random((n, n)) < 0.4)
        np.fill_diagonal(w, 0)
        n_strong = connected_components(w > 0, directed=True, connection="strong")[0]
        note = bradley_terry.separation(w, [f"m{i}" for i in range(n)])
        assert (note is None) == (n_strong == 1), (w, note)
        assert (note is None) == bool(np.isfinite(bradley_terry.fit_bradley_terry(w)).all())


@pytest.mark.parametrize("wins,expected", [
    ([[0, 2, 3], [0, 0, 1], [0, 1, 0]], "not identified: a won every comparison"),
    ([[0, 2, 3], [1, 0, 1], [0, 0, 0]], "not identified: c lost every comparison"),
    ([[0, 2, 3], [0, 0, 1], [0, 0, 0]], "not identified: outcomes separate a > b > c"),
    ([[0, 1, 1, 1], [1, 0, 1, 1], [0, 0, 0, 1], [0, 0, 1, 0]], "not identified: outcomes separate a, b > c, d"),
    ([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]],
     "not identified: groups that never beat each other: a, b | c, d"),
])
def test_separation_in_words(wins, expected):
    assert bradley_terry.separation(wins, list("abcd")[:len(wins)]) == expected


def _table(scores_by_prompt):
    models = list("abc")
    return pd.DataFrame([{"model": m, "prompt": f"p{i}", "index": 0, "judge": "j", "score": s}
                         for i, row in enumerate(scores_by_prompt) for m, s in zip(models, row)])


def test_a_separated_ranking_says_so_instead_of_a_point():
    """a beats b and c on every prompt: before, a zero-width interval at a prior-made point; now a note and no
    interval; b and c (who split their prompts) keep the observed order below a."""
    t = _table([[3, 2, 1], [3, 1, 2], [3, 2, 1], [3, 1, 2], [3, 2, 1]])
    bt = stats.bradley_terry(t, "j", n_boot=200).set_index("model")
    assert (bt["note"] == "not identified: a won every comparison").all()
    assert bt["ci_low"].isna().all() and bt["ci_high"].isna().all()
    assert bt.loc["a", "rank"] == 1 and bt.loc["a", "log_strength"] > bt.loc["b", "log_strength"]
    rows = stats.result_rows(t, "c", n_boot=200)
    bt_rows = rows[rows["metric"] == "bt_log_strength"]
    assert (bt_rows["note"] == "not identified: a won every comparison").all()


def test_an_identified_ranking_has_no_note_and_finite_intervals():
    t = _table([[3, 2, 1], [1, 3, 2], [3, 2, 1], [2, 3, 1], [1, 2, 3], [3, 1, 2]])
    bt = stats.bradley_terry(t, "j", n_boot=200)
    assert bt["note"].isna().all() and np.isfinite(bt[["ci_low", "ci_high"]].to_numpy()).all()
    assert (bt["ci_low"] < bt["log_strength"]).all() and (bt["log_strength"] < bt["ci_high"]).all()
