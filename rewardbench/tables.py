"""Plain-text tables for the command line (no colour codes, safe to pipe).

    >>> print(render_table([{"name": "vendi", "range": (1, None), "offline": True}], ["name", "range", "offline"]))
    name   range  offline
    -----  -----  -------
    vendi  [1, ]  yes
"""

from __future__ import annotations


def _fmt(v) -> str:
    """One cell: yes/no for booleans, [low, high] for ranges, - for nothing."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (list, tuple)):
        if len(v) == 2 and all(x is None or isinstance(x, (int, float)) for x in v):
            return f"[{'' if v[0] is None else f'{v[0]:g}'}, {'' if v[1] is None else f'{v[1]:g}'}]"
        return ", ".join(str(x) for x in v) or "-"
    return "-" if v in (None, "") else str(v)


def render_table(rows: list[dict], columns: list[str]) -> str:
    """Plain-text table (no colour codes, safe to pipe)."""
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    out = [line.rstrip(), "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(out)
