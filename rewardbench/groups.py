"""Groups for group-level rewards (fairness, diversity): which rows form a group under ``group_by``
(any input column or several, e.g. ``("prompt", "model")``), how a group is named in notes, the
per-group results table, and the summary statistics (a group reward counts each group once).

Example:
    >>> import pandas as pd
    >>> rows = pd.DataFrame({"prompt": ["a", "a", "b"], "model": ["x", "x", "x"], "vendi": [1.5, 1.5, 1.0],
    ...                      "vendi.note": ["", "", "group prompt='b', model='x': a single image"],
    ...                      "error": [None, None, None]})
    >>> g = group_table(rows, ("prompt", "model"), ["vendi"])
    >>> g[["prompt", "model", "size", "vendi"]].values.tolist()
    [['a', 'x', 2, 1.5], ['b', 'x', 1, 1.0]]
    >>> score_stats(rows, g, ["vendi"], {"vendi": "group"})["vendi"]["mean"]
    1.25
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

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


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v) or (isinstance(v, str) and not v.strip())


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
        if _missing(v):
            return None
        values.append(v)
    return tuple(values)


def group_label(key: tuple, group_by: GroupBy) -> str:
    """How notes name a group: by its key values.

    Example:
        >>> group_label(("a nurse", "sd2.1"), ("prompt", "model"))
        "prompt='a nurse', model='sd2.1'"
    """
    return ", ".join(f"{c}={v!r}" for c, v in zip(group_by, key))


_GROUP_REF = re.compile(r"\bgroup (\d+)\b")


def relabel_notes(values: list, local_ids: Sequence[int], labels: Mapping[int, str]) -> list:
    """Group rewards know a group only by its id within one call (``group 3: no face ...``); replace
    that id with the group's key values (``group prompt='a nurse', model='sd2.1': no face ...``).

    Example:
        >>> relabel_notes(["group 0: a single image", ""], [0, 0], {0: "prompt='a cat'"})
        ["group prompt='a cat': a single image", '']
    """
    out = []
    for v, gid in zip(values, local_ids):
        if isinstance(v, str) and gid in labels:
            v = _GROUP_REF.sub(lambda m, g=gid: f"group {labels[g]}" if int(m.group(1)) == g else m.group(0), v)
        out.append(v)
    return out


def group_table(table, group_by: GroupBy, group_rewards: Sequence[str]):
    """One row per group: the key columns, ``size`` (rows in the group), ``failed`` (its rows with an
    error), and per group reward its value, the number of member images it scored (``<reward>.images``)
    and every detail column that holds one value for the whole group (``<reward>.<key>``: faces found,
    bucket shares, notes). Details that vary between members (per-image face counts) stay in the row table.
    Rows without a group (a missing key value) are left out.
    """
    import pandas as pd

    cols = list(group_by)
    keyed = table.dropna(subset=cols)
    keyed = keyed[~keyed[cols].map(_missing).any(axis=1)] if len(keyed) else keyed
    if not len(keyed):
        return pd.DataFrame(columns=[*cols, "size", "failed", *group_rewards])
    grouped = keyed.groupby(cols, sort=False, dropna=False)
    out = grouped.size().rename("size").to_frame()
    out["failed"] = grouped["error"].apply(lambda e: int(e.notna().sum()))
    for name in group_rewards:
        out[name] = grouped[name].first()  # every member carries its group's value
        out[f"{name}.images"] = grouped[name].count()
        scored = keyed[keyed[name].notna()]  # a failed member has no details to compare
        by = scored.groupby(cols, sort=False, dropna=False)
        for det in [c for c in table.columns if c.startswith(f"{name}.")]:
            numeric = pd.api.types.is_numeric_dtype(scored[det])
            # text (notes, JSON shares): empty cells do not count, a note may sit on some members only
            same = (lambda s: s.nunique() <= 1) if numeric else (lambda s: s[s.fillna("") != ""].nunique() <= 1)
            if not len(scored) or not bool(by[det].apply(same).all()):
                continue  # varies within a group: a per-image detail
            out[det] = by[det].first() if numeric else by[det].apply(
                lambda s: next((v for v in s if v not in (None, "")), s.iloc[0]))
    return out.reset_index()


def score_stats(table, groups, reward_names: Sequence[str], granularity: Mapping[str, str]) -> dict[str, dict]:
    """Per reward: mean, std (population), min, max over what it scores (rows for image rewards, groups
    for group rewards: each group once), ``n`` scored and ``of`` (rows or groups in all).
    """
    out = {}
    for name in reward_names:
        per_group = granularity.get(name) == "group" and groups is not None and name in getattr(groups, "columns", ())
        col = (groups if per_group else table)[name].astype(float)
        ok = col.dropna()
        stats: dict[str, Any] = {"over": "groups" if per_group else "rows", "n": int(len(ok)), "of": int(len(col))}
        if len(ok):
            stats.update(mean=float(ok.mean()), std=float(ok.std(ddof=0)), min=float(ok.min()), max=float(ok.max()))
        else:
            stats.update(mean=None, std=None, min=None, max=None)
        out[name] = stats
    return out
