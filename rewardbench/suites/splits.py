"""Which prompt suites are held out for evaluation, and the check that training prompts stay out of them.

Every registered suite is an evaluation set except those declared in `NOT_HELD_OUT` (training splits, and
suites that contain training prompts); a suite added later counts as held out until declared here, so a
forgotten declaration refuses too much rather than too little. Prompts are compared after lower-casing and
collapsing whitespace.

    >>> overlap, unchecked = eval_overlap(["A portrait of a nurse", "a red apple"], suites=["occupations"])
    >>> overlap, unchecked
    ({'occupations': ['A portrait of a nurse']}, {})
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping

# suite -> why its prompts may be trained on
NOT_HELD_OUT = {
    "diffusiondb-train": "the training split of DiffusionDB (all but the 2,000 prompts held out after the "
                         "seed-1928 shuffle, and their repeats in other case or spacing)",
    "object-pairs": "every object pair, the training pairs included",
    "object-pairs-seen": "the pairs not held out by the pair-level split (the evaluation's 'seen pairs', prompts "
                         "the model may have been trained on)",
    "object-pairs-train": "the training split: pairs of two seen objects that the pair-level split keeps too",
    "person-descriptions": "templated person captions for training the fairness rewards (no occupation words)",
}


def normalize(prompt: str) -> str:
    """The form prompts are compared in: lower case, single spaces, no outer whitespace."""
    return " ".join(str(prompt).lower().split())


def evaluation_suites() -> list[str]:
    """Every registered suite that is held out for evaluation (all but `NOT_HELD_OUT`), sorted."""
    from . import list_suites

    return [s for s in list_suites() if s not in NOT_HELD_OUT]


@functools.lru_cache(maxsize=64)
def _suite_prompts(name: str, path: str | None) -> frozenset[str]:
    from . import load_suite

    return frozenset(normalize(r["prompt"]) for r in load_suite(name, path=path))


def eval_overlap(prompts: Iterable[str], suites: Iterable[str] | None = None,
                 paths: Mapping[str, str] | None = None, examples: int = 5
                 ) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Which held-out suites share prompts with ``prompts``: ``({suite: up to `examples` shared prompts},
    {suite: why it could not be loaded})``. ``suites`` defaults to `evaluation_suites`; ``paths`` maps a
    suite to a local copy of its official file (offline, a suite without one is reported as unchecked)."""
    from . import SuiteSourceError

    mine = {}
    for p in prompts:
        mine.setdefault(normalize(p), p)
    overlap: dict[str, list[str]] = {}
    unchecked: dict[str, str] = {}
    for name in evaluation_suites() if suites is None else suites:
        try:
            held = _suite_prompts(name, (paths or {}).get(name))
        except (SuiteSourceError, OSError, ValueError) as e:
            unchecked[name] = f"{type(e).__name__}: {e}"
            continue
        shared = [mine[k] for k in mine.keys() & held]
        if shared:
            overlap[name] = sorted(shared)[:examples]
    return overlap, unchecked
