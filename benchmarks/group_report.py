"""Group judges (parity, diversity) in run-benchmark's outputs: what each (model, prompt) group measured.

A group judge scores the images of one (model, prompt) together and gives the group one value. Its group details
(`rewardbench.RewardOutput.group_details`, the Scorer's ``<judge>.group_<key>`` columns) say what the value rests
on; here they become the columns of ``group_rewards.csv`` (one row per group):

    images          the group's images
    faces_found     faces the judge's detector found in them (fairness judges)
    faces_measured  faces it measured (a skin tone or a perceived gender read; the others were unclear)
    empty           nothing measured (no face): the judge's empty value, or NaN with ``empty_score=nan``
    too_small       fewer images than the judge measures (``RewardSpec.min_group_size``): left out of the
                    statistics unless ``--allow-small-groups``, and the judge marked in every table
    note            the judge's note for people

and, per model and judge (and category), the counts on the results' mean rows and in the report: groups in all,
measured, empty, too small, faces found (``count``) and faces measured.

Example:
    >>> import pandas as pd
    >>> groups = pd.DataFrame({"model": ["a", "a", "a"], "prompt": ["p", "q", "r"], "judge": "parity",
    ...                        "category": None, "score": [-0.5, -0.75, -0.75], "images": [4, 4, 1],
    ...                        "faces_found": [5, 0, 1], "faces_measured": [3, 0, 1], "empty": [False, True, False],
    ...                        "too_small": [False, False, True]})
    >>> group_counts(groups)
    {'n_groups': 3, 'n_groups_measured': 2, 'n_groups_empty': 1, 'n_groups_too_small': 1, 'count': 6, \
'faces_measured': 4}
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

# group_rewards.csv's column -> the group detail it comes from (`<judge>.group_<key>` in the Scorer's table)
GROUP_FACTS = {"faces_found": "group_faces_found", "faces_measured": "group_people", "empty": "group_empty",
               "too_small": "group_too_small"}
KEYS = ["model", "prompt", "judge"]


def _flag(values: pd.Series) -> pd.Series:
    """True where a flag is set (True or 1); missing (None, NaN, pd.NA: a judge without the flag, a failed row) is
    False."""
    return values.map(lambda v: v is True or (v is not pd.NA and v == 1)).astype(bool)


def group_scores(sub: pd.DataFrame, table: pd.DataFrame, judge: str, extras: list[str],
                 count_small: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A group judge's per-image rows ``sub`` (and the Scorer's rows ``table`` for them, in the same order) as
    (its rows of ``group_rewards.csv``, its score rows for the statistics: one per (model, prompt) at index 0, no
    image, the manifest's ``extras`` where the group's images agree; groups too small left out unless
    ``count_small``)."""
    sub = sub.reset_index(drop=True).assign(images=1)
    facts = [k for k, col in GROUP_FACTS.items() if f"{judge}.{col}" in table.columns]
    for k in facts:
        sub[k] = table[f"{judge}.{GROUP_FACTS[k]}"].to_numpy()
    sub["note"] = table[f"{judge}.group_note"].to_numpy() if f"{judge}.group_note" in table.columns else None
    grouped = sub.groupby(KEYS, sort=False, dropna=False)
    g = grouped.agg({"category": "first", "score": "first", "images": "sum", **{k: "first" for k in facts},
                     "note": "first"}).reset_index()
    for k in ("faces_found", "faces_measured"):
        if k in g:
            g[k] = pd.to_numeric(g[k]).round().astype("Int64")  # counts; missing where a group was not scored
    for k in ("empty", "too_small"):
        if k in g:
            g[k] = _flag(g[k])
    same = grouped[extras].agg(lambda s: s.iloc[0] if s.nunique(dropna=False) == 1 else None).reset_index(drop=True) \
        if extras else pd.DataFrame(index=g.index)
    scores = pd.concat([g[KEYS + ["category", "score"]], same], axis=1).assign(index=0, image=None)
    if "too_small" in g and not count_small:
        scores = scores[~g["too_small"].to_numpy()]
    return g, scores


def group_counts(groups: pd.DataFrame) -> dict[str, Any]:
    """What the groups of one model and judge (and category) measured: ``n_groups``, ``n_groups_measured`` (a
    value resting on something measured), ``n_groups_empty`` (nothing measured), ``n_groups_too_small``, ``count``
    (faces found) and ``faces_measured``; NaN where the judge reports no such fact."""
    has = {k: k in groups and groups[k].notna().any() for k in GROUP_FACTS}
    empty = _flag(groups["empty"]) if has["empty"] else pd.Series(False, index=groups.index)
    return {"n_groups": int(len(groups)),
            "n_groups_measured": int((groups["score"].notna() & ~empty).sum()),
            "n_groups_empty": int(empty.sum()) if has["empty"] else math.nan,
            "n_groups_too_small": int(_flag(groups["too_small"]).sum()) if has["too_small"] else 0,
            "count": int(groups["faces_found"].sum()) if has["faces_found"] else math.nan,
            "faces_measured": int(groups["faces_measured"].sum()) if has["faces_measured"] else math.nan}


def fill_mean_rows(rows: pd.DataFrame, groups: pd.DataFrame, all_label: str, count_small: bool) -> None:
    """On each group judge's mean rows (every category): ``n_images`` (the images of the groups in the statistics)
    and `group_counts` over all its groups of that model (and category)."""
    cat = groups["category"].fillna("uncategorised").astype(str)
    small = _flag(groups["too_small"]) if "too_small" in groups else pd.Series(False, index=groups.index)
    for (model, judge), sub in groups.groupby(["model", "judge"]):
        at = rows.index[(rows["metric"] == "mean") & (rows["model"] == model) & (rows["judge"] == judge)]
        for i in at:
            c = rows.at[i, "category"]
            pick = sub.index if c == all_label else sub.index[cat[sub.index] == c]
            counted = pick if count_small else pick[~small[pick].to_numpy()]
            rows.loc[i, "n_images"] = groups.loc[counted, "images"].sum()
            for k, v in group_counts(groups.loc[pick]).items():
                rows.loc[i, k] = v


def small_group_counts(groups: pd.DataFrame | None, plan, counted: bool) -> dict[str, dict[str, Any]]:
    """Per group judge with groups smaller than it measures: ``{"groups": smaller, "of": in all, "min": images it
    measures, "counted": in the statistics}`` (results.json's judges, and the judge's mark in every table)."""
    from rewardbench.registry import get_spec

    out = {}
    if groups is None or "too_small" not in groups:
        return out
    for judge, g in groups.groupby("judge", sort=False):
        k = int(_flag(g["too_small"]).sum())
        if k:
            out[judge] = {"groups": k, "of": int(len(g)), "min": get_spec(judge).min_group_size,
                          "counted": bool(counted)}
    return out


def small_groups_warning(plan, judges: dict[str, dict]) -> list[str]:
    """The report's warning for judges with groups smaller than they measure."""
    small = {j: judges[j]["small_groups"] for j in plan.group_judges if judges.get(j, {}).get("small_groups")}
    if not small:
        return []
    from rewardbench.leaderboards.render import md_text

    what = "; ".join(f"{md_text(j)}: {s['groups']} of {s['of']} groups with fewer than {s['min']} images, "
                     + ("counted in its numbers as asked (--allow-small-groups)" if s["counted"] else
                        "left out of its numbers") for j, s in small.items())
    return [f"> **Groups too small to measure ({what}).** A group reward of fewer images than it measures says "
            "nothing (Vendi of one image is 1, the parity of one face its worst value): these judges are marked "
            "\"(small groups)\" in every table, and `group_rewards.csv` marks the groups (`too_small`)."]


def group_section(groups: pd.DataFrame | None, plan, label) -> list[str]:
    """The report's section on group judges: per judge and model, what its groups measured."""
    from rewardbench.leaderboards.render import md_text  # names as text, never markup

    if groups is None or not plan.group_judges:
        return []
    names = ", ".join(map(md_text, plan.group_judges))
    lines = ["## Group rewards", "",
             f"Group rewards ({names}) score the images of each (model, prompt) together: one "
             "value per prompt, averaged over prompts; `group_rewards.csv` has them per prompt. A group is measured "
             "when its value rests on something the judge measured; an empty group had nothing to measure (no face "
             "measured: the judge's empty value, or left out and counted as not scored with `empty_score=nan`). "
             "Faces found are what the detector found; faces measured, those whose skin tone or perceived gender "
             "could be read.", ""]

    def cell(v) -> str:
        return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else str(int(v))

    body = []
    by = dict(list(groups.groupby(["judge", "model"], sort=False)))
    for judge, model in [(j, m) for j in plan.group_judges for m in plan.models if (j, m) in by]:
        g = by[(judge, model)]
        c = group_counts(g)
        body.append([label(judge), model, c["n_groups"], c["n_groups_measured"], cell(c["n_groups_empty"]),
                     c["n_groups_too_small"], int(g["images"].sum()), cell(c["count"]), cell(c["faces_measured"])])
    header = ["judge", "model", "groups", "measured", "empty", "too small", "images", "faces found",
              "faces measured"]
    return lines + ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"] + \
        ["| " + " | ".join(md_text(x) for x in row) + " |" for row in body] + [""]
