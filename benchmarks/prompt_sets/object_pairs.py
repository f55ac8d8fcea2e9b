"""The paper's compositional prompts (Zhang et al., arXiv 2401.12244, Sec. 4.3): two objects joined
by one of five relations — "a {A} {relation} a {B}" — generated from an object list (by default the
80 COCO classes, the objects a COCO detector can score; the ``detection-score`` reward is the
training signal for these prompts).

The seen/unseen split holds out whole object combinations: an unordered pair {A, B} is "unseen" when
the sha256 of ``"A|B"`` (names sorted) falls in the first ``unseen_percent`` (20) of 100 buckets, so a
model trained on ``object-pairs-seen`` is judged on pairs it never saw (``object-pairs-unseen``), in
every relation and both orders. The split depends on the two names only, not on the list or its order.

The paper also holds out whole objects (82 of its 532 for testing, Sec. 4.3, Table 4): an object is unseen
when the sha256 of its name falls in the first ``unseen_object_percent`` (20) of 100 buckets (16 of the 80
COCO classes). ``object-pairs-train`` is what a model may be trained on: pairs of two seen objects that the
pair-level split keeps as well, so it shares no prompt with ``object-pairs-unseen`` or with
``object-pairs-unseen-objects`` (pairs naming at least one unseen object; ``unseen_objects`` counts them).

    >>> from rewardbench.benchmarks.prompt_sets.object_pairs import object_pairs
    >>> rows = object_pairs(objects=["cat", "dog", "apple"], relations=["next to"])
    >>> [r["prompt"] for r in rows]  # doctest: +NORMALIZE_WHITESPACE
    ['a cat next to a dog', 'a cat next to an apple', 'a dog next to a cat', 'a dog next to an apple',
     'an apple next to a cat', 'an apple next to a dog']
"""

from __future__ import annotations

import functools
import hashlib
import os
import random
from collections.abc import Sequence

from . import read_text

RELATIONS = ("and", "next to", "near", "on side of", "beside")  # the paper's five


def _article(noun: str) -> str:
    return "an" if noun[0] in "aeiou" else "a"


def is_unseen(a: str, b: str, unseen_percent: int = 20) -> bool:
    """Whether the unordered pair {a, b} is held out (see the module docstring).

        >>> is_unseen("cat", "dog") == is_unseen("dog", "cat")
        True
    """
    return _bucket("|".join(sorted((a, b)))) < unseen_percent


def _bucket(key: str) -> int:
    """A stable number in 0..99 for a string (its sha256): what both splits hold out by."""
    return int(hashlib.sha256(key.encode()).hexdigest(), 16) % 100


def _sample(rows: list[dict], n: int | None, seed: int) -> list[dict]:
    """A seeded random sample of ``n`` rows (all when ``n`` is None or larger), indexed in order."""
    if n is not None and n < len(rows):
        rows = random.Random(seed).sample(rows, n)
    for i, r in enumerate(rows):
        r["index"] = i
    return rows


def object_pairs(path: str | os.PathLike | None = None, objects: Sequence[str] | None = None,
                 relations: Sequence[str] = RELATIONS, n: int | None = None, seed: int = 0, split: str = "all",
                 unseen_percent: int = 20) -> list[dict]:
    """Every ordered pair of distinct objects with every relation (80 * 79 * 5 = 31,600 with the
    defaults); ``split`` keeps the ``"seen"`` or ``"unseen"`` pairs only; ``n`` draws a seeded random
    sample of that many; ``path`` is an object list, one a line."""
    if split not in ("all", "seen", "unseen"):
        raise ValueError(f"split must be 'all', 'seen' or 'unseen', got {split!r}")
    if objects is None:
        if path is not None:
            objects = [line.strip() for line in read_text(path).splitlines() if line.strip()]
        else:
            from rewardbench.coco import COCO_CLASSES

            objects = COCO_CLASSES
    rows = [{"prompt": f"{_article(a)} {a} {rel} {_article(b)} {b}", "category": rel, "objects": [a, b],
             "relation": rel, "split": "unseen" if is_unseen(a, b, unseen_percent) else "seen"}
            for a in objects for b in objects if a != b for rel in relations]
    if split != "all":
        rows = [r for r in rows if r["split"] == split]
    return _sample(rows, n, seed)


def is_unseen_object(name: str, unseen_object_percent: int = 20) -> bool:
    """Whether an object is held out entirely (see the module docstring).

        >>> from rewardbench.coco import COCO_CLASSES
        >>> sum(is_unseen_object(o) for o in COCO_CLASSES)
        16
    """
    return _bucket(name) < unseen_object_percent


def object_pairs_by_object(split: str = "train", path: str | os.PathLike | None = None, n: int | None = None,
                           seed: int = 0, unseen_object_percent: int = 20, **options) -> list[dict]:
    """The object-level split: ``"train"`` = pairs of two seen objects in the pair-level ``"seen"`` split,
    ``"unseen-objects"`` = pairs naming at least one unseen object. Rows gain ``unseen_objects`` (0-2);
    ``options`` go to `object_pairs` (objects, relations, unseen_percent)."""
    if split not in ("train", "unseen-objects"):
        raise ValueError(f"split must be 'train' or 'unseen-objects', got {split!r}")
    rows = object_pairs(path, **options)
    hidden = {o for o in {o for r in rows for o in r["objects"]} if is_unseen_object(o, unseen_object_percent)}
    for r in rows:
        r["unseen_objects"] = sum(o in hidden for o in r["objects"])
    if split == "train":
        rows = [r for r in rows if r["unseen_objects"] == 0 and r["split"] == "seen"]
    else:
        rows = [r for r in rows if r["unseen_objects"] > 0]
    return _sample(rows, n, seed)


PROMPT_SETS = {"object-pairs": object_pairs, "object-pairs-seen": functools.partial(object_pairs, split="seen"),
          "object-pairs-unseen": functools.partial(object_pairs, split="unseen"),
          "object-pairs-train": functools.partial(object_pairs_by_object, split="train"),
          "object-pairs-unseen-objects": functools.partial(object_pairs_by_object, split="unseen-objects")}
