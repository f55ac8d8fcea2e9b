"""DrawBench (Saharia et al., Imagen, arXiv 2205.11487): 200 prompts in 11 categories (Colors, Counting,
Conflicting, DALL-E, Descriptions, Gary Marcus et al., Misspellings, Positional, Rare Words, Reddit, Text).

Sources, in order: ``path`` (a local CSV/TSV with a ``Prompts`` (or ``prompt``) column and a ``Category``
column, or any URL), the official Google Sheet (as CSV), or ``source="hub"`` for the Hugging Face dataset
``sayakpaul/drawbench``. ``category=`` keeps one category.
"""

from __future__ import annotations

import csv
import io
import os

from . import hub_rows, read_text

OFFICIAL_URL = ("https://docs.google.com/spreadsheets/d/1y7nAbmR4FREi6npB1u-Bo3GFdwdOPYJc617rBOxIRHY"
                "/export?format=csv")
HUB_DATASET = "sayakpaul/drawbench"


def _column(record: dict, *names: str):
    lower = {k.strip().lower(): v for k, v in record.items() if k}
    return next((lower[n] for n in names if n in lower), None)


def load_drawbench(path: str | os.PathLike | None = None, source: str = "file",
                   category: str | None = None) -> list[dict]:
    """Rows ``{"prompt", "category", "index"}`` in the file's order."""
    if source == "hub" and path is None:
        records = hub_rows(HUB_DATASET, "train", "drawbench")
    else:
        text = read_text(path if path is not None else OFFICIAL_URL)
        delimiter = "\t" if str(path or "").endswith(".tsv") else ","
        records = list(csv.DictReader(io.StringIO(text), delimiter=delimiter))
    rows = []
    for r in records:
        p = _column(r, "prompts", "prompt")
        if p is None:
            raise ValueError(f"DrawBench file: expected a 'Prompts' or 'prompt' column, got {list(r)}")
        p, cat = str(p).strip(), _column(r, "category")
        if p and (category is None or cat == category):
            rows.append({"prompt": p, "category": cat, "index": len(rows)})
    return rows


PROMPT_SETS = {"drawbench": load_drawbench}
