"""T2I-CompBench prompt sets (Huang et al., NeurIPS 2023, arXiv 2307.06350): eight categories.

Sources, in order: ``path`` (a local copy of ``<category>_val.txt`` or any URL), the official file
on GitHub (``examples/dataset/<category>_<split>.txt``), or ``source="hub"`` for the Hugging Face
dataset ``NinaKarine/t2i-compbench`` (one config per file, e.g. ``color_val``).

    >>> from rewardbench.benchmarks.prompt_sets import load_prompt_set
    >>> local = "../shared/data/prompts/t2i-compbench/color_val.txt"  # a downloaded copy
    >>> rows = load_prompt_set("t2i-compbench-color", path=local)  # doctest: +SKIP
    >>> rows[0]   # doctest: +SKIP
    {'prompt': 'a green bench and a blue bowl', 'category': 'color', 'split': 'val', 'index': 0}
"""

from __future__ import annotations

import functools
import os

from . import read_text

CATEGORIES = ("color", "shape", "texture", "spatial", "non_spatial", "complex", "numeracy", "3d_spatial")
OFFICIAL_URL = "https://raw.githubusercontent.com/Karine-Huang/T2I-CompBench/main/examples/dataset/{file}"
HUB_DATASET = "NinaKarine/t2i-compbench"
# the reward that T2I-CompBench evaluates each category with (its README's evaluation table)
EVALUATOR = {"color": "compbench-vqa", "shape": "compbench-vqa", "texture": "compbench-vqa",
             "spatial": "compbench-spatial", "non_spatial": "compbench-nonspatial", "complex": "compbench-complex",
             "numeracy": "compbench-numeracy", "3d_spatial": "compbench-spatial"}


def load_compbench(category: str, path: str | os.PathLike | None = None, split: str = "val",
                   source: str = "file") -> list[dict]:
    """Prompts of one T2I-CompBench category (one prompt a line)."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown T2I-CompBench category {category!r}; choose from {', '.join(CATEGORIES)}")
    file = f"{category}_{split}.txt"
    if source == "hub" and path is None:
        import datasets

        ds = datasets.load_dataset(HUB_DATASET, f"{category}_{split}")
        table = ds[next(iter(ds))]
        col = next(c for c, f in table.features.items() if getattr(f, "dtype", None) == "string")
        lines = [str(x) for x in table[col]]
    else:
        text = read_text(path if path is not None else OFFICIAL_URL.format(file=file))
        lines = text.splitlines()
    rows = []
    for line in lines:
        p = line.strip()
        if p:
            rows.append({"prompt": p, "category": category, "split": split, "index": len(rows),
                         "evaluator": EVALUATOR[category]})
    return rows


PROMPT_SETS = {f"t2i-compbench-{c.replace('_', '-')}": functools.partial(load_compbench, c) for c in CATEGORIES}
