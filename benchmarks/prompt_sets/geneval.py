"""GenEval prompt set (Ghosh et al., NeurIPS 2023, arXiv 2310.11513): 553 prompts in six tasks,
each with GenEval's structured spec (``tag``; ``include``/``exclude`` with class, count, colour,
position) — the ground truth the ``geneval*`` rewards re-derive from the prompt text.

Sources: ``path`` (a local ``evaluation_metadata.jsonl`` or any URL), else the official file on GitHub.
``tag=`` keeps one task (single_object, two_object, counting, colors, position, color_attr).
"""

from __future__ import annotations

import functools
import json
import os

from . import read_text

OFFICIAL_URL = "https://raw.githubusercontent.com/djghosh13/geneval/main/prompts/evaluation_metadata.jsonl"
OBJECT_NAMES_URL = "https://raw.githubusercontent.com/djghosh13/geneval/main/prompts/object_names.txt"
TAGS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")


def load_geneval(path: str | os.PathLike | None = None, tag: str | None = None) -> list[dict]:
    if tag is not None and tag not in TAGS:
        raise ValueError(f"unknown GenEval tag {tag!r}; choose from {', '.join(TAGS)}")
    rows = []
    for n, line in enumerate(read_text(path if path is not None else OFFICIAL_URL).splitlines(), 1):
        if not line.strip():
            continue
        try:
            meta = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"GenEval metadata line {n}: not JSON ({e})") from None
        if tag is None or meta.get("tag") == tag:
            rows.append({**meta, "category": meta.get("tag"), "index": len(rows)})
    return rows


PROMPT_SETS = {"geneval": load_geneval,
          **{f"geneval-{t.replace('_', '-')}": functools.partial(load_geneval, tag=t) for t in TAGS}}
