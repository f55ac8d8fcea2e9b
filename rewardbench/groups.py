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
smaller group (`mark_small_groups`: ``<reward>.group_too_small`` and a note) and the summary leaves such groups
out unless asked to count them:

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
    ``too_small`` in every group's details (fewer than ``min_size`` members in the call, the images its value
    was computed on) and, for such a group, a note saying so. The reward's own details are not changed.

    Example:
        >>> import torch
        >>> from rewardbench.spec import RewardOutput
        >>> out = RewardOutput(torch.ones(3), group_details={0: {"size": 2}, 1: {"size": 1, "note": "one image"}})
        >>> marked = mark_small_groups(out, [0, 0, 1], 2).group_details
        >>> marked[0]["too_small"], marked[1]["too_small"], marked[1]["note"]
        (False, True, 'one image; 1 image, fewer than the 2 this reward measures')
    """
    details = {}
    for g, n in Counter(local_groups).items():
        d = dict(out.group_details.get(g, {}), too_small=n < min_size)
        if n < min_size:
            why = f"{n} image{'' if n == 1 else 's'}, fewer than the {min_size} this reward measures"
            d["note"] = "; ".join(x for x in (d.get("note") or "", why) if x)
        details[g] = d
    return dataclasses.replace(out, group_details=details)


def group_table(table, group_by: GroupBy, group_rewards: Sequence[str]):
    """One row per group: the key columns, ``size`` (rows in the group), ``failed`` (its rows with an
    error), per group reward its value, the number of member images it scored (``<reward>.images``) and
    its group details (``<reward>.group_<key>``: faces found, people measured, bucket shares, ...), and
    one ``note`` for the group: its rewards' notes, each distinct note once (prefixed by the rewards
    that gave it when they differ). Rows without a group (a missing key value) are left out.
    """
    import pandas as pd

    cols = list(group_by)
    keyed = table.dropna(subset=cols)
    keyed = keyed[~keyed[cols].map(is_blank).any(axis=1)] if len(keyed) else keyed
    if not len(keyed):
        return pd.DataFrame(columns=[*cols, "size", "failed", *group_rewards, "note"])
    grouped = keyed.groupby(cols, sort=False, dropna=False)
    out = grouped.size().rename("size").to_frame()
    out["failed"] = grouped["error"].apply(lambda e: int(e.notna().sum()))
    notes = {}
    for name in group_rewards:
        out[name] = grouped[name].first()  # every member carries its group's value
        out[f"{name}.images"] = grouped[name].count()
        by = keyed[keyed[name].notna()].groupby(cols, sort=False, dropna=False)  # a failed member has no details
        for det in [c for c in table.columns if c.startswith(f"{name}.group_")]:
            if det == f"{name}.group_note":
                notes[name] = by[det].apply(lambda s: next((v for v in s if isinstance(v, str) and v), ""))
            else:
                out[det] = by[det].first()
    out["note"] = pd.DataFrame(notes).reindex(out.index).apply(_one_note, axis=1) if notes else ""
    return out.reset_index()


def _one_note(notes) -> str:
    """A group's notes from several rewards: each distinct note once; the rewards named when they differ."""
    by_note: dict[str, list[str]] = {}
    for reward, note in notes.items():
        if isinstance(note, str) and note:
            by_note.setdefault(note, []).append(reward)
    if len(by_note) <= 1:
        return next(iter(by_note), "")
    return "; ".join(f"{', '.join(rewards)}: {note}" for note, rewards in by_note.items())


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
            small = groups[f"{name}.group_too_small"].map(lambda v: v is True or v == 1).astype(bool)
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
