"""Groups for group-level rewards (fairness, diversity): which rows form a group under ``group_by``
(any input column or several, e.g. ``("prompt", "model")``), the per-group results table (the group
named by its key values, with its rewards' group details and one note), and the summary statistics (a
group reward counts each group once).

Example:
    >>> import pandas as pd
    >>> rows = pd.DataFrame({"prompt": ["a", "a", "b"], "model": ["x", "x", "x"], "vendi": [1.5, 1.5, 1.0],
    ...                      "vendi.group_size": [2, 2, 1], "vendi.group_note": [None, None, "a single image"],
    ...                      "error": [None, None, None]})
    >>> g = group_table(rows, ("prompt", "model"), ["vendi"])
    >>> g[["prompt", "model", "size", "vendi", "vendi.group_size", "note"]].values.tolist()
    [['a', 'x', 2, 1.5, 2, ''], ['b', 'x', 1, 1.0, 1, 'a single image']]
    >>> score_stats(rows, g, ["vendi"], {"vendi": "group"})["vendi"]["mean"]
    1.25

A group reward declares the fewest images it can measure (``RewardSpec.min_group_size``): the harness marks each
smaller group (`mark_small_groups`: ``<reward>.group_too_small``; the group's note says so) and the summary leaves
such groups out unless asked to count them:

    >>> rows["vendi.group_too_small"] = [False, False, True]
    >>> g = group_table(rows, ("prompt", "model"), ["vendi"])
    >>> st = score_stats(rows, g, ["vendi"], {"vendi": "group"})["vendi"]
    >>> st["mean"], st["n"], st["of"], st["too_small"]
    (1.5, 1, 2, 1)
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .data import is_blank

GroupBy = tuple[str, ...]


def parse_group_by(group_by: str | Sequence[str] | None) -> GroupBy | None:
    """``"prompt,model"`` or ``["prompt", "model"]`` -> ``("prompt", "model")``; None stays None.

    Example:
        >>> parse_group_by("prompt, model"), parse_group_by(None)
        (('prompt', 'model'), None)
    """
    if group_by is None:
        return None
    cols = [c.strip() for c in group_by.split(",")] if isinstance(group_by, str) else [str(c).strip() for c in group_by]
    cols = [c for c in cols if c]
    if not cols:
        return None
    if len(set(cols)) != len(cols):
        raise ValueError(f"group_by lists a column twice: {cols}")
    return tuple(cols)



def group_key(row: Mapping[str, Any], group_by: GroupBy | None) -> tuple | None:
    """The group of a row under ``group_by``: the tuple of its values in those columns, or None when
    not grouped or when a value is missing (an empty prompt, an empty cell).

    Example:
        >>> group_key({"prompt": "a nurse", "group": None, "extra": {"model": "sd2.1"}}, ("prompt", "model"))
        ('a nurse', 'sd2.1')
    """
    if not group_by:
        return None
    values = []
    for col in group_by:
        v = row[col] if col in ("prompt", "group") else row.get("extra", {}).get(col)
        if is_blank(v):
            return None
        values.append(v)
    return tuple(values)


def group_sizes(rows: Iterable[Mapping[str, Any]], group_by: GroupBy) -> Counter:
    """Rows per group under ``group_by`` (rows without a group left out).

    Example:
        >>> rows = [{"prompt": p, "group": None, "extra": {}} for p in ("a", "a", "b", "")]
        >>> dict(group_sizes(rows, ("prompt",)))
        {('a',): 2, ('b',): 1}
    """
    return Counter(k for r in rows if (k := group_key(r, group_by)) is not None)


def mark_small_groups(out, local_groups: Sequence[int], min_size: int):
    """``out`` (a group reward's `rewardbench.RewardOutput` for a call whose rows are in ``local_groups``) with
    ``too_small`` in every group's details: fewer than ``min_size`` members in the call, the images its value was
    computed on. The reward's own details (its note included) are not changed: the per-group table says why a
    group is too small (`group_table`), from this flag and the reward's ``min_group_size``.

    Example:
        >>> import torch
        >>> from rewardbench.spec import RewardOutput
        >>> out = RewardOutput(torch.ones(3), group_details={0: {"size": 2}, 1: {"size": 1, "note": "one image"}})
        >>> marked = mark_small_groups(out, [0, 0, 1], 2).group_details
        >>> marked[0]["too_small"], marked[1]["too_small"], marked[1]["note"]
        (False, True, 'one image')
    """
    details = {g: dict(out.group_details.get(g, {}), too_small=n < min_size) for g, n in Counter(local_groups).items()}
    return dataclasses.replace(out, group_details=details)


def group_table(table, group_by: GroupBy, group_rewards: Sequence[str], specs: Mapping[str, Any] | None = None):
    """One row per group: the key columns, ``size`` (rows in the group), ``failed`` (its rows with an
    error), per group reward its value, the number of member images it scored (``<reward>.images``) and
    its group details (``<reward>.group_<key>``: faces found, people measured, bucket shares, ...), and
    one ``note`` for the group (`group_note`). Rows without a group (a missing key value) are left out.
    ``specs`` (reward -> `rewardbench.RewardSpec`, optional) lets the note name rewards by family (their
    ``category``) and say how many images a reward measures (``min_group_size``).
    """
    import pandas as pd

    cols = list(group_by)
    keyed = table.dropna(subset=cols)
    keyed = keyed[~keyed[cols].map(is_blank).any(axis=1)] if len(keyed) else keyed
    if not len(keyed):
        return pd.DataFrame(columns=[*cols, "size", "failed", *group_rewards, "note"])
    grouped = keyed.groupby(cols, sort=False, dropna=False)
    size = grouped.size()
    # every column is computed first and the frame built once (inserting ~100 columns one by one fragments it)
    parts: dict[str, Any] = {"size": size, "failed": grouped["error"].apply(lambda e: int(e.notna().sum()))}
    notes: dict[str, Any] = {}
    for name in group_rewards:
        parts[name] = grouped[name].first()  # every member carries its group's value
        parts[f"{name}.images"] = grouped[name].count()
        by = keyed[keyed[name].notna()].groupby(cols, sort=False, dropna=False)  # a failed member has no details
        for det in [c for c in table.columns if c.startswith(f"{name}.group_")]:
            if det == f"{name}.group_note":
                notes[name] = by[det].apply(lambda s: next((v for v in s if isinstance(v, str) and v), ""))
            else:
                parts[det] = by[det].first()
    out = pd.DataFrame({k: v.reindex(size.index) for k, v in parts.items()}, index=size.index)
    out["note"] = [group_note(row, group_rewards, specs) for row in _note_facts(out, notes, group_rewards)]
    return out.reset_index()


def _note_facts(out, notes: Mapping[str, Any], group_rewards: Sequence[str]) -> list[dict[str, tuple[str, bool, int]]]:
    """Per group: reward -> (its note, marked too small, images it scored)."""
    facts = []
    for key in out.index:
        row = {}
        for name in group_rewards:
            note = notes[name].get(key, "") if name in notes else ""
            small = out.at[key, f"{name}.group_too_small"] if f"{name}.group_too_small" in out.columns else None
            row[name] = (note if isinstance(note, str) else "", _is_set(small), int(out.at[key, f"{name}.images"]))
        facts.append(row)
    return facts


def _is_set(flag) -> bool:
    """A flag cell is set: True or 1 (None, NaN and pd.NA, a row that failed, are not)."""
    try:
        return bool(flag is True or flag == 1)
    except TypeError:  # pd.NA has no truth value
        return False


def group_note(facts: Mapping[str, tuple[str, bool, int]], group_rewards: Sequence[str],
               specs: Mapping[str, Any] | None = None) -> str:
    """A group's one note from its rewards' ``facts`` (reward -> (note, too small, images scored)): each distinct
    reason once, ``"; "``-separated, prefixed by who gives it (not when the table has one group reward, or when
    every group reward gives the only reason): rewards by family (``fairness rewards``: every reward of that category
    in ``group_rewards``), by name stem (``skin-tone-*``: every ``skin-tone-...`` reward), or by name.

    Example:
        >>> from rewardbench.spec import RewardSpec
        >>> specs = {n: RewardSpec(name=n, category=c, granularity="group", min_group_size=2) for n, c in
        ...          (("gender-parity", "fairness"), ("skin-tone-kl", "fairness"), ("skin-tone-parity", "fairness"),
        ...           ("vendi", "diversity"))}
        >>> facts = {"gender-parity": ("no face found", True, 1), "skin-tone-kl": ("no face found", True, 1),
        ...          "skin-tone-parity": ("no face found", True, 1), "vendi": ("a single image", True, 1)}
        >>> group_note(facts, list(specs), specs)
        'every group reward: too small (1 image; at least 2 needed); fairness rewards: no face found; \
vendi: a single image'
        >>> group_note({**facts, "gender-parity": ("", False, 3)}, ["gender-parity", "skin-tone-kl",
        ...            "skin-tone-parity"], specs)
        'skin-tone-*: too small (1 image; at least 2 needed); skin-tone-*: no face found'
    """
    by_reason: dict[str, list[str]] = {}
    for name in group_rewards:
        note, small, images = facts.get(name, ("", False, 0))
        if small:
            least = getattr((specs or {}).get(name), "min_group_size", None)
            many = f"{images} image{'' if images == 1 else 's'}"
            by_reason.setdefault(f"too small ({many}" + (f"; at least {least} needed)" if least else ")"),
                                 []).append(name)
        if note:
            by_reason.setdefault(note, []).append(name)
    if not by_reason:
        return ""
    everyone = list(group_rewards)
    parts = []
    for reason, names in by_reason.items():
        plain = len(everyone) == 1 or (len(by_reason) == 1 and len(names) == len(everyone))
        parts.append(reason if plain else f"{_who(names, everyone, specs)}: {reason}")
    return "; ".join(parts)


def _who(names: Sequence[str], everyone: Sequence[str], specs: Mapping[str, Any] | None) -> str:
    """``names`` (some of ``everyone``) said short: ``every group reward``, whole families (``fairness rewards``,
    from the specs' categories), whole name stems (``skin-tone-*``), then single names."""
    if len(everyone) > 1 and set(names) == set(everyone):
        return "every group reward"
    left, said = [n for n in everyone if n in set(names)], []
    families: dict[str, list[str]] = {}
    for n in everyone:
        cat = getattr((specs or {}).get(n), "category", None)
        if cat:
            families.setdefault(f"{cat} rewards", []).append(n)
    stems: dict[str, list[str]] = {}
    for n in everyone:
        if "-" in n:
            stems.setdefault(n.rsplit("-", 1)[0] + "-*", []).append(n)
    for label, members in [*families.items(), *stems.items()]:
        if len(members) > 1 and set(members) <= set(left):
            said.append(label)
            left = [n for n in left if n not in members]
    return ", ".join([*said, *left])


def score_stats(table, groups, reward_names: Sequence[str], granularity: Mapping[str, str],
                count_small: bool = False) -> dict[str, dict]:
    """Per reward: mean, std (population), min, max over what it scores (rows for image rewards, groups
    for group rewards: each group once), ``n`` counted and ``of`` (rows or groups in all). A group reward's
    groups marked too small (``<reward>.group_too_small``) are counted in ``too_small`` and left out of the
    statistics, unless ``count_small``.
    """
    out = {}
    for name in reward_names:
        per_group = granularity.get(name) == "group" and groups is not None and name in getattr(groups, "columns", ())
        col = (groups if per_group else table)[name].astype(float)
        small = None
        if per_group and f"{name}.group_too_small" in groups.columns:
            small = groups[f"{name}.group_too_small"].map(_is_set).astype(bool)
        ok = (col if small is None or count_small else col[~small]).dropna()
        stats: dict[str, Any] = {"over": "groups" if per_group else "rows", "n": int(len(ok)), "of": int(len(col))}
        if small is not None:
            stats.update(too_small=int(small.sum()), too_small_counted=bool(count_small))
        if len(ok):
            stats.update(mean=float(ok.mean()), std=float(ok.std(ddof=0)), min=float(ok.min()), max=float(ok.max()))
        else:
            stats.update(mean=None, std=None, min=None, max=None)
        out[name] = stats
    return out
