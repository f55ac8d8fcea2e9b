"""Resumable results: finished rows go to parquet shards in ``OUT.parts/`` (atomic renames), with the run's
fingerprint, so that a killed run resumes where it stopped and never mixes results of another run."""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from .distributed import broadcast

FINGERPRINT_FILE = "run.json"


class ResumeMismatchError(RuntimeError):
    """``out`` already holds partial results of a different run (rewards, weights or input)."""


class ShardWriter:
    """Buffers finished rows and writes them as parquet shards (atomically: temp file + rename)."""

    def __init__(self, parts: Path | None, rank: int, flush_rows: int, flush_seconds: float):
        self.parts, self.rank = parts, rank
        self.flush_rows, self.flush_seconds = flush_rows, flush_seconds
        self.buf: list[dict] = []
        self.memory: list[dict] = []  # when there is no `out`
        self.last = time.monotonic()
        self.tag = f"{int(time.time() * 1000):x}-{uuid.uuid4().hex[:6]}"
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

        name = f"part-r{self.rank}-{self.tag}-{self.seq:06d}.parquet"
        tmp = self.parts / (name + ".tmp")
        pd.DataFrame(self.buf).to_parquet(tmp, index=False)
        os.replace(tmp, self.parts / name)
        self.seq += 1
        self.buf = []
        self.last = time.monotonic()


def list_shards(parts: Path) -> list[Path]:
    """The finished shard files of a results folder, in name order."""
    return sorted(parts.glob("part-*.parquet"))


def done_bitmap(parts: Path, n: int) -> np.ndarray:
    """Which of the ``n`` input rows already have a result in the shards."""
    import pyarrow.parquet as pq

    done = np.zeros(n, dtype=bool)
    for f in list_shards(parts):
        idx = pq.read_table(f, columns=["index"]).column("index").to_numpy()
        done[idx[idx < n]] = True
    return done


def prepare_parts(out: Path, fp: dict[str, Any], resume: bool, rank: int, world: int) -> Path:
    """The shard folder ``OUT.parts`` beside ``out``, ready for this run: created, emptied when not
    resuming, its fingerprint ``fp`` recorded; `ResumeMismatchError` if it holds shards of a run with
    another fingerprint. Rank 0 decides; every rank gets the same outcome."""
    parts = out.with_name(out.name + ".parts")
    error = None
    if rank == 0:
        if parts.exists() and not resume:
            shutil.rmtree(parts)
        parts.mkdir(parents=True, exist_ok=True)
        fp_file = parts / FINGERPRINT_FILE
        if fp_file.exists() and list_shards(parts):
            old = json.loads(fp_file.read_text())
            if old != json.loads(json.dumps(fp)):
                error = (f"{out}: {parts} holds partial results of a different run "
                         f"({fingerprint_diff(old, fp)}); not mixing them. Pass another --out, delete {parts}, "
                         "or start over with resume=False (CLI: --no-resume).")
        if error is None:
            tmp = fp_file.with_name(fp_file.name + ".tmp")
            tmp.write_text(json.dumps(fp, indent=1))
            os.replace(tmp, fp_file)
        for stale in parts.glob("*.tmp"):  # half-written shards of a killed run
            stale.unlink(missing_ok=True)
    error = broadcast(error, world)
    if error:
        raise ResumeMismatchError(error)
    return parts


def fingerprint_diff(old: dict, new: dict) -> str:
    """The first difference between two run fingerprints, in words."""
    o = {r["name"]: r for r in old.get("rewards", [])}
    n = {r["name"]: r for r in new.get("rewards", [])}
    if set(o) != set(n):
        return f"rewards were {sorted(o)}, now {sorted(n)}"
    for k in n:
        if o[k].get("weights") != n[k].get("weights"):
            return f"{k}: weights were {o[k].get('weights')!r}, now {n[k].get('weights')!r}"
        if o[k].get("params") != n[k].get("params"):
            return f"{k}: different model parameters (e.g. another random init)"
    if old.get("input") != new.get("input"):
        return f"input was {old.get('input')}, now {new.get('input')}"
    if old.get("group_by") != new.get("group_by"):
        return f"group_by was {old.get('group_by')!r}, now {new.get('group_by')!r}"
    return "different settings"
