"""What a run-benchmark plan checks before any image is made or judged (`rewardbench.benchmarks.run.make_plan`):

* `check_suite_prompts`: images made beforehand, given with a ``--suite``, are of that suite's prompts (or the
  report must not call them so);
* `check_group_sizes`: a group judge scores the images of one (model, prompt) together and measures groups of at
  least its ``RewardSpec.min_group_size`` images (Vendi of one image is 1.0, the parity of one face its worst value,
  by definition): a run whose every group is smaller is refused unless asked, smaller groups among others noted.

Example:
    >>> import pandas as pd
    >>> from rewardbench.benchmarks.suite import load_benchmark_suite
    >>> pre = pd.DataFrame({"model": ["a", "a", "b"], "prompt": ["a portrait of a judge", "a cat", "a cat"]})
    >>> check = check_suite_prompts(load_benchmark_suite("fairness"), pre, {}, "m.jsonl")
    >>> check["prompts"], check["outside"], check["examples"]
    (2, 1, ['a cat'])
    >>> notes = []
    >>> try:
    ...     check_group_sizes(["vendi"], None, [], pre, 1, False, notes)
    ... except ValueError as e:
    ...     print(str(e)[:72])
    vendi score the images of each (model, prompt) together and measure grou
    >>> check_group_sizes(["vendi"], None, [], pre, 1, True, notes), len(notes)
    ({'vendi': {'groups': 3, 'of': 3, 'min': 2}}, 1)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .suite import BenchmarkSuite, resolve_prompts


def check_suite_prompts(suite: BenchmarkSuite, pre, paths: Mapping[str, str], where: str | None) -> dict[str, Any]:
    """Whether images made beforehand are of the suite's prompts: ``{"suite", "prompts"`` (the manifest's, distinct),
    ``"suite_prompts"`` (None when they cannot be read), ``"outside"`` (manifest prompts that are not the suite's),
    ``"examples"``, ``"notes"}`` (warnings for whoever runs the plan)."""
    ours = list(dict.fromkeys(pre["prompt"]))
    out: dict[str, Any] = {"suite": suite.name, "prompts": len(ours), "suite_prompts": None, "outside": None,
                           "examples": [], "notes": []}
    try:
        theirs = {r["prompt"] for r in resolve_prompts(suite, paths)}
    except OSError as e:
        out["error"] = str(e)
        out["notes"].append(f"suite {suite.name!r}: its prompts could not be read ({e}); whether the prompts of "
                            f"{where or 'the images'} are its prompts is not checked"
                            + ("" if "category" in pre.columns else ", and they get no categories from it"))
        return out
    outside = [p for p in ours if p not in theirs]
    out.update(suite_prompts=len(theirs), outside=len(outside), examples=outside[:3])
    if outside:
        out["notes"].append(f"{len(outside)} of the {len(ours)} prompts of {where or 'the images'} are not prompts of "
                            f"the {suite.name} suite (e.g. {outside[0]!r}): the report describes them as the "
                            "manifest's prompts, not the suite's")
    return out


def check_group_sizes(group_judges: list[str], prompts: list[dict] | None, gens: list, pre, images_per_prompt: int,
                      allow: bool, notes: list[str]) -> dict[str, dict[str, int]]:
    """Group judges score the images of one (model, prompt) together; a judge measures groups of at least its
    ``min_group_size`` images. Every group it scores smaller: `ValueError` (the command line's exit 2) unless
    ``allow``; some smaller: a note. Returns ``{judge: {"groups": smaller, "of": groups it scores, "min": m}}``."""
    from rewardbench.registry import get_spec

    sizes: dict[tuple[str, str], int] = {}
    for g in gens:
        sizes.update({(g.name, p["prompt"]): images_per_prompt for p in prompts})
    if pre is not None:
        sizes.update({k: int(n) for k, n in pre.groupby(["model", "prompt"], sort=False).size().items()})
    only = {p["prompt"]: p["judges"] for p in prompts or () if p["judges"] is not None}  # per-source judges
    small, refused = {}, []
    for j in group_judges:
        m = get_spec(j).min_group_size
        mine = [n for (_, prompt), n in sizes.items() if prompt not in only or j in only[prompt]]
        k = sum(n < m for n in mine)
        if not k:
            continue
        small[j] = {"groups": k, "of": len(mine), "min": m}
        if k == len(mine) and not allow:
            refused.append((j, max(mine)))
            continue
        fate = "counted in its statistics as asked (--allow-small-groups)" if allow else "left out of its statistics"
        notes.append(f"{k} of the {len(mine)} (model, prompt) groups {j} scores have fewer than the {m} images it "
                     f"measures: scored, marked in every table and {fate}")
    if refused:
        m = max(small[j]["min"] for j, _ in refused)
        largest = max(n for _, n in refused)
        how = [f"--images-per-prompt {m} or more"] if gens else []
        how += ["several images per (model, prompt) in --images (an index or seed column tells them apart)"] \
            if pre is not None else []
        raise ValueError(f"{', '.join(j for j, _ in refused)} score the images of each (model, prompt) together and "
                         f"measure groups of at least {m} images, but no group here has more than {largest}: give "
                         f"{' or '.join(how)}, leave {'it' if len(refused) == 1 else 'them'} out of --judges, or "
                         "pass --allow-small-groups to score them anyway (marked in every table)")
    return small
