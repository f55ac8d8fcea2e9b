"""Resumable results: finished rows go to parquet shards in ``OUT.parts/`` (atomic renames), with the run's
fingerprint, so that a killed run resumes where it stopped and never mixes results of another run.

Shards are named ``part-a<attempt>-r<rank>-<seq>-<tag>.parquet``: name order is attempt order, so when a
re-run scores a row again (a retried failure) its newer row wins."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import numpy as np

from .provenance import Provenance, describe

FINGERPRINT_FILE = "run.json"
# the input row's position in a shard's rows: the resume key, not a results column (so an input's own `index`
# column passes through); shards written before it was named so keep it in `index`
ROW = "_row"


class ResumeMismatchError(RuntimeError):
    """``out`` already holds partial results of a different run (rewards, weights or input)."""


class ShardWriter:
    """Buffers finished rows and writes them as parquet shards (atomically: temp file + rename)."""

    def __init__(self, parts: Path | None, rank: int, flush_rows: int, flush_seconds: float, attempt: int = 1):
        self.parts, self.rank, self.attempt = parts, rank, attempt
        self.flush_rows, self.flush_seconds = flush_rows, flush_seconds
        self.buf: list[dict] = []
        self.memory: list[dict] = []  # when there is no `out`
        self.last = time.monotonic()
        self.tag = uuid.uuid4().hex[:8]
        self.seq = 0

    def add(self, rows: list[dict]) -> None:
        if self.parts is None:
            self.memory.extend(rows)
            return
        self.buf.extend(rows)
        if len(self.buf) >= self.flush_rows or time.monotonic() - self.last > self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        if self.parts is None or not self.buf:
            return
        import pandas as pd

        from .results import tidy_columns

        name = f"part-a{self.attempt:05d}-r{self.rank}-{self.seq:06d}-{self.tag}.parquet"
        tmp = self.parts / (name + ".tmp")
        tidy_columns(pd.DataFrame(self.buf)).to_parquet(tmp, index=False)
        os.replace(tmp, self.parts / name)
        self.seq += 1
        self.buf = []
        self.last = time.monotonic()


def list_shards(parts: Path) -> list[Path]:
    """The finished shard files of a results folder, in name (= attempt) order."""
    return sorted(parts.glob("part-*.parquet"))


def shard_row_key(columns) -> str:
    """The column of a shard's rows that holds their input position (`ROW`; ``index`` in older shards)."""
    return ROW if ROW in columns else "index"


def done_bitmap(parts: Path, n: int, retry_failed: bool = True) -> np.ndarray:
    """Which of the ``n`` input rows already have a result in the shards; with ``retry_failed`` a row
    whose latest result is an error counts as not done (a transient failure is retried)."""
    import pyarrow.parquet as pq

    done = np.zeros(n, dtype=bool)
    for f in list_shards(parts):  # later attempts overwrite earlier ones
        key = shard_row_key(pq.read_schema(f).names)
        t = pq.read_table(f, columns=[key, "error"] if retry_failed else [key])
        idx = t.column(key).to_numpy()
        ok = t.column("error").is_null().to_numpy(zero_copy_only=False) if retry_failed else np.ones(len(idx), bool)
        keep = idx < n
        done[idx[keep]] = ok[keep]
    return done


def _weights_text(reward: dict) -> str:
    return describe(Provenance.from_dict(d) for d in reward.get("weights") or [])


def fingerprint_diff(old: dict, new: dict) -> str:
    """The first difference between two run fingerprints, in words."""
    if old.get("version") != new.get("version"):
        return f"written by another version of rewardbench (fingerprint v{old.get('version')})"
    o = {r["name"]: r for r in old.get("rewards", [])}
    n = {r["name"]: r for r in new.get("rewards", [])}
    if set(o) != set(n):
        return f"rewards were {sorted(o)}, now {sorted(n)}"
    for k in n:
        if o[k].get("weights") != n[k].get("weights"):
            return f"{k}: weights were {_weights_text(o[k])!r}, now {_weights_text(n[k])!r}"
        ob, nb = o[k].get("build", {}), n[k].get("build", {})
        for field in sorted(set(ob) | set(nb)):
            if ob.get(field) != nb.get(field):
                return f"{k}: {field} was {ob.get(field)!r}, now {nb.get(field)!r}"
        if o[k].get("params") != n[k].get("params"):
            return f"{k}: different model parameters (e.g. another random init)"
    if old.get("input") != new.get("input"):
        return f"input was {old.get('input')}, now {new.get('input')}"
    if old.get("group_by") != new.get("group_by"):
        return f"group_by was {old.get('group_by')!r}, now {new.get('group_by')!r}"
    return "different settings"
