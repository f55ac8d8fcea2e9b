"""HPDv2's benchmark prompts (Wu et al., "Human Preference Score v2", arXiv 2306.09341): 3,200 prompts,
800 in each of four styles (anime, concept-art, paintings, photo), as ``hpsv2.benchmark_prompts`` gives them.

Sources, in order: ``path`` (a local folder holding ``anime.json``, ``concept-art.json``, ``paintings.json``
and ``photo.json`` — each a JSON list of prompts — or one such file), else the files of the Hugging Face
dataset ``zhwang/HPDv2`` (``benchmark/<style>.json``). ``style=`` keeps one style.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from . import read_text

STYLES = ("anime", "concept-art", "paintings", "photo")
OFFICIAL_URL = "https://huggingface.co/datasets/zhwang/HPDv2/resolve/main/benchmark/{style}.json"


def _prompts(text: str, where: str) -> list[str]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: not JSON ({e})") from None
    if not isinstance(data, list) or not all(isinstance(p, str) for p in data):
        raise ValueError(f"{where}: expected a JSON list of prompt strings")
    return data


def load_hpdv2(path: str | os.PathLike | None = None, style: str | None = None) -> list[dict]:
    """Rows ``{"prompt", "category" (the style), "index"}``, style by style in `STYLES` order."""
    if style is not None and style not in STYLES:
        raise ValueError(f"unknown HPDv2 style {style!r}; choose from {', '.join(STYLES)}")
    styles = [style] if style else list(STYLES)
    files: dict[str, str] = {}
    if path is not None and not str(path).startswith(("http://", "https://")) and Path(path).is_file():
        stem = Path(path).stem
        files = {stem if stem in STYLES else "hpdv2": str(path)}
    else:
        for s in styles:
            files[s] = str(Path(path) / f"{s}.json") if path is not None else OFFICIAL_URL.format(style=s)
    rows = []
    for s, where in files.items():
        if style is not None and s != style:
            continue
        for p in _prompts(read_text(where), where):
            if p.strip():
                rows.append({"prompt": p.strip(), "category": s, "index": len(rows)})
    return rows


PROMPT_SETS = {"hpdv2": load_hpdv2}
