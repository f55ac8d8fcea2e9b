"""Results tables: `ScoreResult` and reading/writing parquet, CSV and JSONL tables."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULT_EXTENSIONS = (".parquet", ".csv", ".jsonl")


@dataclass
class ScoreResult:
    """What `Scorer.run` returns. ``table`` has one row per input, in input order."""

    summary: dict[str, Any]
    reward_names: list[str]
    out: Path | None = None
    _table: Any = None

    @property
    def table(self):
        """pandas DataFrame: image, prompt, [group], one float column per reward, weights, error."""
        if self._table is None and self.out is not None:
            self._table = read_table(self.out)
        return self._table

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


def write_table(df, path: str | os.PathLike) -> None:
    """Write a results table as parquet, CSV or JSONL, chosen by the extension."""
    path = Path(path)
    ext = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if ext == ".parquet":
        df.to_parquet(tmp, index=False)
    elif ext == ".csv":
        df.to_csv(tmp, index=False)
    elif ext == ".jsonl":
        df.to_json(tmp, orient="records", lines=True, force_ascii=False)
    else:
        raise ValueError(f"{path}: unknown results format; use one of {', '.join(RESULT_EXTENSIONS)}")
    os.replace(tmp, path)


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
