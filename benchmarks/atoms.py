"""Per-atom breakdowns for judges that score a prompt atom by atom (GenEval 2's Soft-TIFA and any judge whose details
hold ``atom_scores``, ``atom_skills`` and ``atom_count``), as GenEval 2's analysis computes them
(github.com/facebookresearch/GenEval2 @ a6e82d2, ``evaluation.py`` and ``soft_tifa_analysis.py``):

- **Soft-TIFA GM / AM**: 100 x the mean over images of each image's geometric / arithmetic mean of its atoms'
  scores (the official run has one image per prompt; with several, every prompt has the same number of images, so
  this is also the mean over prompts of their images' mean);
- **per skill** (Soft-TIFA AM, atom level): 100 x the sum of the skill's atom scores over the sum of its atoms;
- **per atom count** (Soft-TIFA GM, prompt level): 100 x the mean GM of the images whose prompt has that many atoms.

Images a judge could not score are left out (and counted). The rows are tidy: model, judge, breakdown (``all``,
``skill``, ``atom_count``), key, metric (``soft_tifa_gm``, ``soft_tifa_am``), value, n (images, or atoms for
skills).

    >>> import pandas as pd
    >>> manifest = pd.DataFrame({"model": ["m", "m"]})
    >>> table = pd.DataFrame({"j.atom_scores": ["[0.25, 1.0]", "[0.5]"], "j.atom_skills": ['["count", "object"]',
    ...                       '["object"]'], "j.atom_count": [2.0, 1.0]})
    >>> rows = atom_rows(manifest, table, ["j"])
    >>> {(r.breakdown, r.key, r.metric): (r.value, r.n) for r in rows.itertuples()}  # doctest: +NORMALIZE_WHITESPACE
    {('all', 'all', 'soft_tifa_gm'): (50.0, 2), ('all', 'all', 'soft_tifa_am'): (56.25, 2),
     ('skill', 'object', 'soft_tifa_am'): (75.0, 2), ('skill', 'count', 'soft_tifa_am'): (25.0, 1),
     ('atom_count', '1', 'soft_tifa_gm'): (50.0, 1), ('atom_count', '2', 'soft_tifa_gm'): (50.0, 1)}
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from rewardbench.geneval2 import SKILLS

COLUMNS = ["model", "judge", "breakdown", "key", "metric", "value", "n"]


def _cells(v: Any) -> list | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return json.loads(v) if isinstance(v, str) else list(v)


def atom_judges(table: pd.DataFrame, judges: list[str]) -> list[str]:
    """The judges whose details in ``table`` hold per-atom scores and skills."""
    return [j for j in judges if f"{j}.atom_scores" in table.columns and f"{j}.atom_skills" in table.columns]


def atom_rows(manifest: pd.DataFrame, table: pd.DataFrame, judges: list[str]) -> pd.DataFrame:
    """The breakdown rows (module docstring) of every judge of `atom_judges`, per model of ``manifest`` (whose rows
    align with ``table``'s)."""
    out = []
    models = manifest["model"].reset_index(drop=True)
    for j in atom_judges(table, judges):
        counts = table[f"{j}.atom_count"] if f"{j}.atom_count" in table.columns else pd.Series([None] * len(table))
        for model in dict.fromkeys(models):
            am, gm, by_skill, by_count = [], [], {}, {}
            for i in models.index[models == model]:
                scores, skills = _cells(table[f"{j}.atom_scores"].iloc[i]), _cells(table[f"{j}.atom_skills"].iloc[i])
                if not scores:
                    continue
                g = math.exp(sum(math.log(s) for s in scores) / len(scores)) if min(scores) > 0 else 0.0
                am.append(sum(scores) / len(scores))
                gm.append(g)
                for s, k in zip(scores, skills):
                    by_skill.setdefault(k, []).append(s)
                c = counts.iloc[i]
                if c is not None and not (isinstance(c, float) and math.isnan(c)):
                    by_count.setdefault(int(c), []).append(g)
            if not am:
                continue
            out += [[model, j, "all", "all", "soft_tifa_gm", 100 * sum(gm) / len(gm), len(gm)],
                    [model, j, "all", "all", "soft_tifa_am", 100 * sum(am) / len(am), len(am)]]
            order = [k for k in SKILLS if k in by_skill] + sorted(k for k in by_skill if k not in SKILLS)
            out += [[model, j, "skill", k, "soft_tifa_am", 100 * sum(by_skill[k]) / len(by_skill[k]),
                     len(by_skill[k])] for k in order]
            out += [[model, j, "atom_count", str(c), "soft_tifa_gm", 100 * sum(v) / len(v), len(v)]
                    for c, v in sorted(by_count.items())]
    return pd.DataFrame(out, columns=COLUMNS)


def atom_section(rows: pd.DataFrame, label=str) -> list[str]:
    """The report's markdown lines for `atom_rows` (none when there are none); ``label`` names a judge."""
    if rows.empty:
        return []
    from rewardbench.leaderboards.render import md_text

    lines = ["## Per atom (GenEval 2's analysis)", "",
             "Soft-TIFA: each atom's answer probability; GM = 100 x mean of each image's geometric mean (prompt "
             "level), AM = 100 x mean of the arithmetic means; per skill: 100 x the skill's atom scores summed over "
             "its atoms (AM); per atom count: GM of the prompts with that many atoms. n: images (atoms for skills).",
             ""]
    for j, sub in rows.groupby("judge", sort=False):
        skills = list(dict.fromkeys(sub.loc[sub["breakdown"] == "skill", "key"]))
        counts = list(dict.fromkeys(sub.loc[sub["breakdown"] == "atom_count", "key"]))
        head = ["model", "GM", "AM"] + skills
        body = []
        for model, m in sub.groupby("model", sort=False):
            v = {(r["breakdown"], r["key"], r["metric"]): (r["value"], int(r["n"])) for _, r in m.iterrows()}
            cell = [f"{v[('all', 'all', g)][0]:.2f}" for g in ("soft_tifa_gm", "soft_tifa_am")]
            cell += ["{:.2f} (n={})".format(*v[("skill", k, "soft_tifa_am")]) if ("skill", k, "soft_tifa_am") in v
                     else "–" for k in skills]
            body.append([md_text(str(model))] + cell)
        lines += [f"### {md_text(label(j))}: overall and per skill", ""] + _table(head, body) + [""]
        if counts:
            body = []
            for model, m in sub.groupby("model", sort=False):
                v = {r["key"]: r for _, r in m[m["breakdown"] == "atom_count"].iterrows()}
                body.append([md_text(str(model))] + [f"{v[c]['value']:.2f} (n={int(v[c]['n'])})" if c in v else "–"
                                                     for c in counts])
            lines += [f"### {md_text(label(j))}: per atom count (GM)", ""] + \
                _table(["model"] + [f"{c} atoms" for c in counts], body) + [""]
    return lines


def _table(header: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
        ["| " + " | ".join(str(c) for c in row) + " |" for row in body]
