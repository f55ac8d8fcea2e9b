"""Leaderboard boards: tidy result rows, one CSV per board, appended by the commands that measure them.

A row says what was measured about whom, by which judge, on what, under which protocol, with which
weights, when and by which version (`COLUMNS`). Weights are given as provenance values
(`rewardbench.provenance.Provenance`): the row keeps their text for people (``weights``) and their kinds
(``weights_kind``: ``hub``, ``bundled+none``, ``random``, ...), which every decision reads. The writer
refuses any row whose weights were random: a score from random weights is never presented as a result.
The one exception is a timing row (`TIMING_METRICS`: throughput, speed-ups, memory), whose value does
not depend on weight values.

Boards live in ``$REWARDBENCH_BOARDS`` or, by default, in ``leaderboards/boards/`` of this checkout
(the committed boards). Re-measuring replaces the row with the same key (`KEY`) instead of adding a
second one.

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> from rewardbench.provenance import NO_WEIGHTS, Provenance
    >>> row = make_row(subject="jpeg-incompressibility", judge="human", suite="toy", metric="accuracy",
    ...                value=0.5, n=10, protocol="drop-ties", weights=[NO_WEIGHTS])
    >>> path = append_rows("demo", [row], root=d)
    >>> read_board("demo", root=d)[["subject", "value", "weights", "weights_kind"]].to_dict("records")
    [{'subject': 'jpeg-incompressibility', 'value': 0.5, 'weights': 'none (no weights needed)', 'weights_kind': 'none'}]
    >>> append_rows("demo", [make_row(**{**row, "weights": [Provenance("random", "pretrained=False")]})], root=d)
    Traceback (most recent call last):
    ...
    rewardbench.leaderboards.board.RandomWeightsError: board 'demo': row 0 (...) was measured with random weights ...
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from rewardbench.provenance import Provenance, describe, kinds

COLUMNS = ["subject", "subject_kind", "judge", "suite", "split", "category", "metric", "value", "ci_low",
           "ci_high", "n", "protocol", "weights", "weights_kind", "date", "version", "command"]
KEY = ["subject", "judge", "suite", "split", "category", "metric", "protocol"]
REQUIRED = ["subject", "judge", "suite", "metric", "value", "protocol", "weights", "weights_kind"]
# metrics whose value is a speed or a size: they do not depend on the weights' values
TIMING_METRICS = frozenset({"img_per_s", "speedup", "fraction_of_ceiling", "time_ratio", "samples_per_s",
                            "rss_mb", "seconds"})
ENV_BOARDS = "REWARDBENCH_BOARDS"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class RandomWeightsError(ValueError):
    """A row measured with random weights was offered to a board."""


def boards_dir(root: str | os.PathLike | None = None) -> Path:
    """Where boards live: ``root``, ``$REWARDBENCH_BOARDS``, or ``leaderboards/boards`` of this package."""
    if root is not None:
        return Path(root)
    env = os.environ.get(ENV_BOARDS)
    return Path(env) if env else Path(__file__).resolve().parent / "boards"


def is_random_kind(weights_kind: Any) -> bool:
    """Does a row's ``weights_kind`` (`rewardbench.provenance.kinds`) include random weights?

        >>> is_random_kind("hub+random"), is_random_kind("bundled+none")
        (True, False)
    """
    return isinstance(weights_kind, str) and "random" in weights_kind.split("+")


def weights_fields(weights: Sequence[Provenance] | Mapping[str, Sequence[Provenance]]) -> dict[str, str]:
    """A row's ``weights`` (text) and ``weights_kind`` from provenance values: one reward's list, or
    ``{reward: list}`` for a row about several rewards (each named in the text).

        >>> from rewardbench.provenance import NO_WEIGHTS, Provenance
        >>> weights_fields({"a": [NO_WEIGHTS], "b": [Provenance("bundled", "nudenet:320n.onnx")]})
        {'weights': 'a: none (no weights needed); b: bundled:nudenet:320n.onnx', 'weights_kind': 'bundled+none'}
    """
    if isinstance(weights, Mapping):
        return {"weights": "; ".join(f"{name}: {describe(p)}" for name, p in weights.items()),
                "weights_kind": kinds(p for ps in weights.values() for p in ps)}
    return {"weights": describe(weights), "weights_kind": kinds(weights)}


def make_row(**fields: Any) -> dict[str, Any]:
    """A row with every column, today's date and this package's version filled in when not given.
    ``weights`` may be given as provenance values (`weights_fields`); as text, the row needs its
    ``weights_kind`` too before a board takes it."""
    from rewardbench import __version__

    if fields.get("weights") is not None and not isinstance(fields["weights"], str):
        fields = {**fields, **weights_fields(fields["weights"])}
    row = {c: None for c in COLUMNS}
    row.update(subject_kind="reward", split="-", category="all",
               date=_dt.datetime.now(_dt.timezone.utc).date().isoformat(), version=__version__)
    unknown = set(fields) - set(COLUMNS)
    if unknown:
        raise ValueError(f"unknown row field(s) {sorted(unknown)}; columns are {COLUMNS}")
    row.update({k: v for k, v in fields.items() if v is not None})
    return row


def check_rows(board: str, rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Validate rows for ``board`` (names, required fields, numbers, no random weights) as a DataFrame."""
    if not _NAME.match(board):
        raise ValueError(f"board name {board!r}: use lowercase letters, digits, '-', '_' or '.'")
    rows = [make_row(**{k: v for k, v in dict(r).items() if k in COLUMNS}) for r in rows]
    if not rows:
        raise ValueError(f"board {board!r}: no rows to write")
    for i, r in enumerate(rows):
        missing = [c for c in REQUIRED if r.get(c) in (None, "")]
        if missing:
            raise ValueError(f"board {board!r}: row {i} lacks {missing}")
        what = f"{r['subject']} / {r['judge']} / {r['metric']}"
        if is_random_kind(r["weights_kind"]) and r["metric"] not in TIMING_METRICS:
            raise RandomWeightsError(f"board {board!r}: row {i} ({what}) was measured with random weights "
                                     f"({r['weights']!r}); boards take only results from real weights")
        try:
            float(r["value"])
        except (TypeError, ValueError):
            raise ValueError(f"board {board!r}: row {i} ({what}) has a non-numeric value {r['value']!r}") from None
    return pd.DataFrame(rows, columns=COLUMNS)


def append_rows(board: str, rows: Iterable[Mapping[str, Any]], *, root: str | os.PathLike | None = None) -> Path:
    """Add rows to ``board`` (creating it); a row with the same `KEY` as an existing one replaces it.
    Returns the board's CSV path. Raises `RandomWeightsError` before writing anything if any row is
    from random weights."""
    new = check_rows(board, rows)
    path = boards_dir(root) / f"{board}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        old = read_board(board, root=root)
        key = new[KEY].astype(str).agg("\x1f".join, axis=1)
        old = old[~old[KEY].astype(str).agg("\x1f".join, axis=1).isin(set(key))]
        new = pd.concat([old, new], ignore_index=True) if len(old) else new
    new = new.sort_values(["suite", "split", "metric", "category", "subject", "judge"], kind="stable")
    tmp = path.with_name(path.name + ".tmp")
    new.to_csv(tmp, index=False, float_format="%.6g")
    os.replace(tmp, path)
    return path


_STATS_PROTOCOL = {
    "win_rate": "win rate vs {baseline}: paired by (prompt, seed); ties (|delta| <= {tie_tol:g}) count half; "
                "prompt bootstrap",
    "mean": "mean score over images; prompt bootstrap",
    "bt_log_strength": "Bradley-Terry log-strength (sum over models = 0) from paired comparisons; prompt bootstrap",
    "group_mean": "mean of the group-level reward over prompts; prompt bootstrap",
}


def rows_from_stats(stats_rows: pd.DataFrame, *, suite: str, weights: Mapping[str, Sequence[Provenance]],
                    split: str = "-", command: str | None = None) -> list[dict[str, Any]]:
    """Board rows from `rewardbench.benchmarks.stats.result_rows` (generators judged by rewards: ``model`` becomes the
    subject, ``judge`` the reward); ``weights`` maps each judge to the weights it ran with
    (provenance values), so a judge with random weights is refused when the rows are appended.

        >>> import pandas as pd

from rewardbench.provenance import Provenance, describe, kinds
        >>> from rewardbench.benchmarks.stats import result_rows
        >>> t = pd.DataFrame({"model": ["ft"] * 2 + ["base"] * 2, "prompt": ["a", "b"] * 2, "index": 0,
        ...                   "judge": "jpeg-incompressibility", "score": [2.0, 1.0, 1.0, 1.0]})
        >>> from rewardbench.provenance import NO_WEIGHTS
        >>> rows = rows_from_stats(result_rows(t, "base"), suite="toy",
        ...                        weights={"jpeg-incompressibility": [NO_WEIGHTS]})
        >>> [(r["subject"], r["metric"], r["value"], r["n"]) for r in rows]
        [('base', 'mean', 1.0, 2), ('ft', 'mean', 1.5, 2), ('ft', 'win_rate', 0.75, 2)]
    """
    out = []
    for r in stats_rows.to_dict("records"):
        metric = r["metric"]
        n = r.get("n_pairs") if metric in ("win_rate", "bt_log_strength") else r.get("n_images")
        n = r.get("n_prompts") if n is None or n != n else n
        protocol = _STATS_PROTOCOL.get(metric, metric).format(baseline=r.get("baseline"), tie_tol=r.get("tie_tol")
                                                              if r.get("tie_tol") == r.get("tie_tol") else 0.0)
        out.append(make_row(subject=r["model"], subject_kind="model", judge=r["judge"], suite=suite, split=split,
                            category=r.get("category", "all"), metric=metric, value=r["value"], ci_low=r.get("ci_low"),
                            ci_high=r.get("ci_high"), n=None if n is None or n != n else int(n), protocol=protocol,
                            weights=weights.get(r["judge"]), command=command))
    return out


def read_board(board: str, *, root: str | os.PathLike | None = None) -> pd.DataFrame:
    """One board as a DataFrame with `COLUMNS` (FileNotFoundError naming the known boards)."""
    path = boards_dir(root) / f"{board}.csv"
    if not path.exists():
        known = ", ".join(list_boards(root)) or "none"
        raise FileNotFoundError(f"no board {board!r} in {path.parent} (known: {known})")
    df = pd.read_csv(path, keep_default_na=False, na_values=[""])
    for c in COLUMNS:
        if c not in df.columns:
            df[c] = None
    for c in ("split", "category"):  # "-" and "all" are the fill values; keep them as text
        df[c] = df[c].astype(object).where(df[c].notna(), "-" if c == "split" else "all")
    return df[COLUMNS]


def list_boards(root: str | os.PathLike | None = None) -> list[str]:
    """Names of the boards in the boards folder."""
    d = boards_dir(root)
    return sorted(p.stem for p in d.glob("*.csv")) if d.is_dir() else []


def read_boards(names: Iterable[str] | None = None, *, root: str | os.PathLike | None = None) -> pd.DataFrame:
    """Several boards in one table with a leading ``board`` column."""
    names = list(names) if names else list_boards(root)
    frames = [read_board(n, root=root).assign(board=n) for n in names]
    if not frames:
        return pd.DataFrame(columns=["board", *COLUMNS])
    return pd.concat(frames, ignore_index=True)[["board", *COLUMNS]]
