"""Performance-benchmark results (``scripts/perf/results/*.json`` from ``bench_scoring.py``) as board rows.

The perf scripts time the scorer with random weights, since speed does not depend on weight values;
the rows say so in their ``weights`` field and use timing metrics only (`board.TIMING_METRICS`), which is
what lets the board writer take them.

    >>> rows = perf_rows({"env": {"device": "cpu", "cpu_count": 2, "preset": "cpu-b32", "gpu": None},
    ...                   "throughput": {"reward": "clipscore-b32", "images": 128, "batch_size": 16,
    ...                                  "image_size": 512, "1_ceiling_img_s": 16.6, "2_scorer_img_s": 15.5,
    ...                                  "2_over_1": 0.93}}, source="cpu_b32.json")
    >>> for r in rows:
    ...     print(r["category"], r["metric"], r["value"], sep=" | ")
    batched forward (ceiling) | img_per_s | 16.6
    Scorer from files | img_per_s | 15.5
    Scorer / ceiling | fraction_of_ceiling | 0.93
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from rewardbench.provenance import Provenance

from .board import make_row

# timing rows are measured with random weights: speed and memory do not depend on the weights' values
TIMING_PROVENANCE = Provenance("random", "timing and memory only: they do not depend on weight values")
TIMING_WEIGHTS = str(TIMING_PROVENANCE)
_THROUGHPUT = [  # (key in the JSON, category, metric, key of the number of images it timed)
    ("1_ceiling_img_s", "batched forward (ceiling)", "img_per_s", "images"),
    ("2_scorer_img_s", "Scorer from files", "img_per_s", "images"),
    ("3_naive_img_s", "naive per-image loop", "img_per_s", "naive_images_timed"),
    ("3b_naive_reload_img_s", "naive loop, checkpoint reloaded per call", "img_per_s", "naive_reload_images_timed"),
    ("2_over_1", "Scorer / ceiling", "fraction_of_ceiling", "images"),
    ("2_over_3", "Scorer / naive loop", "speedup", "naive_images_timed"),
    ("2_over_3b", "Scorer / naive loop with reloads", "speedup", "naive_reload_images_timed"),
]


def _machine(env: dict) -> str:
    return env.get("gpu") or f"CPU, {env.get('cpu_count', '?')} cores"


def perf_rows(result: dict, *, source: str = "") -> list[dict]:
    """Rows of one ``bench_scoring.py`` JSON result: throughput, ratios, shared-backbone cost, memory."""
    env = result.get("env", {})
    machine, preset = _machine(env), env.get("preset") or "-"
    # the command that makes these rows (`rewardbench leaderboard --verify` re-runs it); the note is a shell comment
    command = (f"rewardbench leaderboard --add-perf {source}  # a bench_scoring.py --preset {preset} result" if source
               else f"bench_scoring.py --preset {preset}")
    rows = []

    def add(subject, category, metric, value, n, protocol):
        if value is not None:
            rows.append(make_row(subject=subject, subject_kind="reward", judge="-", suite="scorer-performance",
                                 split=machine, category=category, metric=metric, value=float(value), n=n,
                                 protocol=protocol, weights=[TIMING_PROVENANCE], command=command))

    dtype = env.get("dtype") if env.get("dtype") not in (None, "None") else "the reward's own"
    t = result.get("throughput") or {}
    for key, category, metric, n_key in _THROUGHPUT:
        add(t.get("reward"), category, metric, t.get(key), t.get(n_key, t.get("images")),
            f"timing: {t.get('images')} images of {t.get('image_size')} px, batch {t.get('batch_size')}, "
            f"dtype {dtype}, interleaved rounds as bench_scoring.py reports them")
    s = result.get("shared_backbone") or {}
    if s:
        subject = "+".join(s.get("rewards", [])[:3])
        add(subject, "3 rewards sharing a backbone, time / 1 reward's time", "time_ratio", s.get("shared_over_one"),
            s.get("images"), "timing: wall time of three rewards sharing one backbone over that of one reward")
    m = result.get("memory") or {}
    for key, category in (("rss_after_10000_rows_mb", "resident memory after 10k rows"),
                          ("rss_after_100000_rows_mb", "resident memory after 100k rows")):
        add("Scorer", category, "rss_mb", m.get(key), m.get("rows"), "timing: resident set size of the process")
    return rows


def ingest_perf(paths: Iterable[str | os.PathLike], board: str = "perf", *, root=None) -> Path:
    """Append the rows of every JSON result file to ``board``; returns the board's path."""
    from .board import append_rows

    rows = []
    for p in paths:
        p = Path(p)
        rows += perf_rows(json.loads(p.read_text()), source=str(p))
    return append_rows(board, rows, root=root)
