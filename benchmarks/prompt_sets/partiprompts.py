"""PartiPrompts (Yu et al., "Scaling Autoregressive Models for Content-Rich Text-to-Image Generation",
arXiv 2206.10789): 1,632 prompts, each with a ``Category`` (Animals, People, Abstract, ...) and a
``Challenge`` (Basic, Complex, Fine-grained Detail, ...).

Sources, in order: ``path`` (a local copy of ``PartiPrompts.tsv`` or any URL), the official file on GitHub,
or ``source="hub"`` for the Hugging Face dataset ``nateraw/parti-prompts`` (the same columns).
``category=`` / ``challenge=`` keep one category or challenge.

    >>> from rewardbench.benchmarks.prompt_sets import load_prompt_set
    >>> path = "../shared/data/prompts/partiprompts/PartiPrompts.tsv"  # a downloaded copy
    >>> rows = load_prompt_set("partiprompts", path=path)  # doctest: +SKIP
    >>> rows[0]  # doctest: +SKIP
    {'prompt': 'bond', 'category': 'Abstract', 'challenge': 'Basic', 'note': '...', 'index': 0}
"""

from __future__ import annotations

import csv
import io
import os

from . import hub_rows, read_text

OFFICIAL_URL = "https://raw.githubusercontent.com/google-research/parti/main/PartiPrompts.tsv"
HUB_DATASET = "nateraw/parti-prompts"


def load_partiprompts(path: str | os.PathLike | None = None, source: str = "file", category: str | None = None,
                      challenge: str | None = None) -> list[dict]:
    """Rows ``{"prompt", "category", "challenge", "note", "index"}`` in the file's order."""
    if source == "hub" and path is None:
        records = hub_rows(HUB_DATASET, "train", "partiprompts")
    else:
        text = read_text(path if path is not None else OFFICIAL_URL)
        records = list(csv.DictReader(io.StringIO(text), delimiter="\t"))
        if records and "Prompt" not in records[0]:
            raise ValueError(f"PartiPrompts file: expected a tab-separated 'Prompt' column, got {list(records[0])}")
    rows = []
    for r in records:
        p = (r.get("Prompt") or "").strip()
        if not p:
            continue
        row = {"prompt": p, "category": r.get("Category"), "challenge": r.get("Challenge"), "note": r.get("Note")}
        if (category is None or row["category"] == category) and (challenge is None or row["challenge"] == challenge):
            rows.append({**row, "index": len(rows)})
    return rows


PROMPT_SETS = {"partiprompts": load_partiprompts}
