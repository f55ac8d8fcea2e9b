r"""Boards as text: markdown tables (with intervals and protocol notes), CSV and JSON.

    >>> import pandas as pd
    >>> from rewardbench.leaderboards.board import make_row
    >>> rows = pd.DataFrame([make_row(subject="jpeg-incompressibility", judge="construction", suite="photos",
    ...                               metric="accuracy", value=0.75, ci_low=0.6, ci_high=0.9, n=60,
    ...                               protocol="drop-ties (tie threshold 0)", weights="none", date="2025-01-01")])
    >>> print(markdown_table(rows, ["subject", "metric", "value", "ci", "n"]))
    | subject | metric | value | ci | n |
    | --- | --- | --- | --- | --- |
    | jpeg-incompressibility | accuracy | 0.750 | [0.600, 0.900] | 60 |

Every name and text written into markdown goes through `md_text`, so that a name renders as the text it is:

    >>> print(md_text("<script>alert(1)</script> | `x` [a](b)"))
    &lt;script&gt;alert(1)&lt;/script&gt; \| \`x\` [a]\(b)
"""

from __future__ import annotations

import json
import math

import pandas as pd

from .protocols import describe

MD_COLUMNS = ["subject", "judge", "suite", "split", "category", "metric", "value", "ci", "n", "protocol", "weights",
              "date", "version"]


# what markdown would read as markup in a name (a table's cell separator, code, emphasis, HTML), escaped so that
# every renderer (GitHub's, Python-Markdown's) shows the characters: backslash escapes where both take them,
# entities for HTML; "](" would open a link's target
_MD_ESCAPES = str.maketrans({"\\": "\\\\", "`": "\\`", "*": "\\*", "_": "\\_", "|": "\\|", "<": "&lt;",
                             ">": "&gt;", "&": "&amp;", "\n": " ", "\r": " "})


def md_text(value) -> str:
    r"""``value`` as text in markdown: a model, judge, category or board name renders as itself, never as markup or
    HTML (a name ``<script>...`` stays text, a ``|`` does not split a table's cell, a newline does not end its row).

    Example:
        >>> md_text("sd_v1*ft"), md_text("a\\|b"), md_text("x\ny")
        ('sd\\_v1\\*ft', 'a\\\\\\|b', 'x y')
    """
    return str(value).translate(_MD_ESCAPES).replace("](", "]\\(")


def fmt_number(v) -> str:
    """Three decimals for fractions and correlations, fewer digits for big numbers, '-' for missing."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return "-" if v is None else str(v)
    if math.isnan(x):
        return "-"
    if x.is_integer() and abs(x) >= 10:
        return f"{int(x)}"
    return f"{x:.3f}" if abs(x) < 10 else f"{x:.1f}"


def fmt_ci(lo, hi) -> str:
    """``[lo, hi]`` or '-' when the interval is undefined (fewer than two clusters)."""
    a, b = fmt_number(lo), fmt_number(hi)
    return "-" if "-" in (a, b) else f"[{a}, {b}]"


def display_rows(df: pd.DataFrame) -> list[dict]:
    """Rows with formatted ``value``/``ci``/``n`` cells, as every text format shows them."""
    out = []
    for r in df.to_dict("records"):
        r = dict(r)
        r["ci"] = fmt_ci(r.get("ci_low"), r.get("ci_high"))
        r["value"] = fmt_number(r.get("value"))
        n = r.get("n")
        r["n"] = str(int(float(n))) if n is not None and n == n and str(n) != "" else "-"
        out.append(r)
    return out


def markdown_table(df: pd.DataFrame, columns: list[str] | None = None) -> str:
    """A GitHub markdown table of leaderboard rows (``ci`` is the formatted interval)."""
    cols = columns or [c for c in MD_COLUMNS if c in df.columns or c == "ci"]
    lines = ["| " + " | ".join(map(md_text, cols)) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    for r in display_rows(df):
        cells = [md_text(r.get(c, "")) if r.get(c) is not None else "-" for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(boards: pd.DataFrame, published: pd.DataFrame | None = None,
             reference: pd.DataFrame | None = None) -> str:
    """Every board (a ``board`` column separates them), the protocols used, our numbers beside published ones
    (``published``) and the published numbers themselves (``reference``)."""
    parts = ["# rewardbench leaderboards", ""]
    for name, df in boards.groupby("board", sort=True):
        parts += [f"## {md_text(name)}", "", markdown_table(df.drop(columns=["board"])), ""]
    used = sorted({p for p in boards["protocol"].dropna()})
    notes = [f"- {md_text(p)}: {md_text(describe(p))}" for p in used if describe(p)]
    if notes:
        parts += ["## Protocols", "", *notes, ""]
    if published is not None and len(published):
        parts += ["## Published numbers beside ours", "", markdown_table(published, list(published.columns)), ""]
    if reference is not None and len(reference):
        cols = ["reward", "subject", "dataset", "split", "value", "protocol", "source"]
        parts += ["## Published numbers", "", markdown_table(reference[cols], cols), ""]
    return "\n".join(parts)


def to_json(boards: pd.DataFrame) -> str:
    """A JSON list of rows (NaN as null)."""
    return json.dumps(json.loads(boards.to_json(orient="records")), indent=2)
