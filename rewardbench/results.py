"""Results tables: `ScoreResult` and reading/writing parquet, CSV and JSONL tables.

A run's reward weights are stored once, not on every row: `ScoreResult.provenance` (and the summary's
``rewards``/``provenance``), and in a finished parquet table's metadata (`table_provenance`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .provenance import Provenance

RESULT_EXTENSIONS = (".parquet", ".csv", ".jsonl")
TABLE_METADATA_KEY = b"rewardbench.fingerprint"  # a finished parquet table carries its run's fingerprint


@dataclass
class ScoreResult:
    """What `Scorer.run` returns. ``table`` has one row per input, in input order; ``groups`` one row
    per group when the run scored group rewards (None otherwise); ``summary`` the run's counts and
    each reward's statistics (``summary["scores"]``: group rewards over groups, each group once)."""

    summary: dict[str, Any]
    reward_names: list[str]
    out: Path | None = None
    _table: Any = None
    groups: Any = None
    group_by: tuple[str, ...] | None = None

    @property
    def table(self):
        """pandas DataFrame: image, prompt, [group], the input's other columns, one float column per
        reward, each reward's details (``<reward>.<key>``, group rewards' ``<reward>.group_<key>``), error."""
        if self._table is None and self.out is not None:
            self._table = read_table(self.out)
        return self._table

    @property
    def provenance(self) -> dict[str, list[Provenance]]:
        """Each reward's weights: `rewardbench.provenance.Provenance` values (``kind == "random"``, ...)."""
        return {name: [Provenance.from_dict(d) for d in ds] for name, ds in self.summary["provenance"].items()}

    @property
    def n_rows(self) -> int:
        return int(self.summary["rows"])

    @property
    def n_failed(self) -> int:
        return int(self.summary["failed"])

    def failures(self):
        """The failed rows (image, error)."""
        t = self.table
        return t[t["error"].notna()][["image", "error"]]


def tidy_columns(df):
    """A column mixing numbers and text (a pass-through column typed differently on different rows)
    becomes text, so that parquet can store it; everything else is left as it is."""
    for c in df.columns:
        if df[c].dtype != object:
            continue
        kinds = {("num" if isinstance(v, (int, float)) and not isinstance(v, bool) else type(v).__name__)
                 for v in df[c] if v is not None and not (isinstance(v, float) and v != v)}
        if len(kinds) > 1:
            df[c] = df[c].map(lambda v: v if v is None or (isinstance(v, float) and v != v) else str(v))
    return df


def write_table(df, path: str | os.PathLike, metadata: dict | None = None) -> None:
    """Write a results table as parquet, CSV or JSONL, chosen by the extension (atomically: a temp
    file, then a rename). ``metadata`` (the run's fingerprint) goes into a parquet file's schema."""
    path = Path(path)
    ext = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    df = tidy_columns(df)
    if ext == ".parquet" and metadata is not None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        t = pa.Table.from_pandas(df, preserve_index=False)
        t = t.replace_schema_metadata({**(t.schema.metadata or {}), TABLE_METADATA_KEY: json.dumps(metadata)})
        pq.write_table(t, tmp)
    elif ext == ".parquet":
        df.to_parquet(tmp, index=False)
    elif ext == ".csv":
        df.to_csv(tmp, index=False)
    elif ext == ".jsonl":
        df.to_json(tmp, orient="records", lines=True, force_ascii=False)
    else:
        raise ValueError(f"{path}: unknown results format; use one of {', '.join(RESULT_EXTENSIONS)}")
    os.replace(tmp, path)


def table_metadata(path: str | os.PathLike) -> dict | None:
    """The run fingerprint a finished parquet table carries in its metadata (None for CSV/JSONL or none)."""
    path = Path(path)
    if path.suffix.lower() != ".parquet" or not path.is_file():
        return None
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception:
        return None
    raw = meta.get(TABLE_METADATA_KEY)
    return json.loads(raw) if raw else None


def table_provenance(path: str | os.PathLike) -> dict[str, list[Provenance]] | None:
    """Each reward's weights, as a finished parquet results table records them once in its metadata;
    None when the table carries none (CSV, JSONL, or not written by `rewardbench.Scorer`)."""
    meta = table_metadata(path)
    if not meta or not isinstance(meta.get("rewards"), list):
        return None
    out = {}
    for r in meta["rewards"]:
        w = r.get("weights")
        if isinstance(w, list) and all(isinstance(d, dict) for d in w):
            out[r["name"]] = [Provenance.from_dict(d) for d in w]
    return out


def read_table(path: str | os.PathLike):
    """Read a results table written by `write_table` (the format follows the extension)."""
    import pandas as pd

    path = Path(path)
    ext = path.suffix.lower()
    if ext == ".parquet":
        return pd.read_parquet(path)
    if ext == ".csv":
        df = pd.read_csv(path)
        if "error" in df.columns:
            df["error"] = df["error"].astype(object).where(df["error"].notna(), None)
        return df
    return pd.read_json(path, orient="records", lines=True)
