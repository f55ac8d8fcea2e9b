"""Which prompt sets are held out for evaluation, and the check that training prompts stay out of them.

Every registered prompt set is an evaluation set except those declared in `NOT_HELD_OUT` (training splits, and
sets that contain training prompts); a set added later counts as held out until declared here, so a
forgotten declaration refuses too much rather than too little. Prompts are compared after lower-casing and
collapsing whitespace.

    >>> overlap, unchecked = eval_overlap(["A portrait of a nurse", "a red apple"], sets=["occupations"])
    >>> overlap, unchecked
    ({'occupations': ['A portrait of a nurse']}, {})
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping

# prompt set -> why its prompts may be trained on
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


def evaluation_sets() -> list[str]:
    """Every registered prompt set that is held out for evaluation (all but `NOT_HELD_OUT`), sorted."""
    from . import list_prompt_sets

    return [s for s in list_prompt_sets() if s not in NOT_HELD_OUT]


@functools.lru_cache(maxsize=64)
def _set_prompts(name: str, path: str | None) -> frozenset[str]:
    from . import load_prompt_set

    return frozenset(normalize(r["prompt"]) for r in load_prompt_set(name, path=path))


def eval_overlap(prompts: Iterable[str], sets: Iterable[str] | None = None,
                 paths: Mapping[str, str] | None = None, examples: int = 5
                 ) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Which held-out prompt sets share prompts with ``prompts``: ``({set: up to `examples` shared prompts},
    {set: why it could not be loaded})``. ``sets`` defaults to `evaluation_sets`; ``paths`` maps a
    set to a local copy of its official file (offline, a set without one is reported as unchecked)."""
    from . import PromptSourceError

    mine = {}
    for p in prompts:
        mine.setdefault(normalize(p), p)
    overlap: dict[str, list[str]] = {}
    unchecked: dict[str, str] = {}
    for name in evaluation_sets() if sets is None else sets:
        try:
            held = _set_prompts(name, (paths or {}).get(name))
        except (PromptSourceError, OSError, ValueError) as e:
            unchecked[name] = f"{type(e).__name__}: {e}"
            continue
        shared = [mine[k] for k in mine.keys() & held]
        if shared:
            overlap[name] = sorted(shared)[:examples]
    return overlap, unchecked
