"""The paper's compositional prompts (Zhang et al., arXiv 2401.12244, Sec. 4.3): two objects joined
by one of five relations — "a {A} {relation} a {B}" — generated from an object list (by default the
80 COCO classes, the objects a COCO detector can score; the ``detection-score`` reward is the
training signal for these prompts).

    >>> from rewardbench.suites.object_pairs import object_pairs
    >>> rows = object_pairs(objects=["cat", "dog", "apple"], relations=["next to"])
    >>> [r["prompt"] for r in rows]  # doctest: +NORMALIZE_WHITESPACE
    ['a cat next to a dog', 'a cat next to an apple', 'a dog next to a cat', 'a dog next to an apple',
     'an apple next to a cat', 'an apple next to a dog']
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence

from . import read_text

RELATIONS = ("and", "next to", "near", "on side of", "beside")  # the paper's five


def _article(noun: str) -> str:
    return "an" if noun[0] in "aeiou" else "a"


def object_pairs(path: str | os.PathLike | None = None, objects: Sequence[str] | None = None,
                 relations: Sequence[str] = RELATIONS, n: int | None = None, seed: int = 0) -> list[dict]:
    """Every ordered pair of distinct objects with every relation (80 * 79 * 5 = 31,600 with the
    defaults); ``n`` draws a seeded random sample of that many; ``path`` is an object list, one a line."""
    if objects is None:
        if path is not None:
            objects = [line.strip() for line in read_text(path).splitlines() if line.strip()]
        else:
            from rewardbench.coco import COCO_CLASSES

            objects = COCO_CLASSES
    rows = [{"prompt": f"{_article(a)} {a} {rel} {_article(b)} {b}", "category": rel, "objects": [a, b],
             "relation": rel}
            for a in objects for b in objects if a != b for rel in relations]
    if n is not None and n < len(rows):
        rows = random.Random(seed).sample(rows, n)
    for i, r in enumerate(rows):
        r["index"] = i
    return rows


SUITES = {"object-pairs": object_pairs}
