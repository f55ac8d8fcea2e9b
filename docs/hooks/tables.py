"""A mkdocs hook: tables from committed result files, so that no number in the docs is copied by hand.

In a page, a line holding only the comment ``<!-- csv: PATH columns=a,b,c where="col=value;col2=value 2" -->``
(PATH relative to the repository root; ``columns`` and ``where`` optional) becomes a markdown table of that CSV's
rows, numbers shown with 4 significant digits. A missing file, column or matching row fails the build. Markdown
result files are included as they are with pymdownx.snippets (``--8<-- "scripts/parity/results/parity.md"``).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)<!--\s*csv:\s*(?P<path>\S+)(?P<args>.*?)-->[ \t]*$", flags=re.M)


def _cell(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        return value.replace("|", "\\|")
    if number.is_integer() and "." not in value and "e" not in value.lower():
        return value
    return f"{number:.4g}"


def csv_table(path: str, columns: list[str] | None = None, where: dict[str, str] | None = None) -> str:
    """A markdown table of the CSV at ``path`` (relative to the repository root)."""
    file = ROOT / path
    if not file.is_file():
        raise FileNotFoundError(f"docs table: no file {path}")
    with file.open(newline="") as f:
        rows = list(csv.DictReader(f))
    header = list(rows[0]) if rows else []
    columns = columns or header
    unknown = [c for c in [*columns, *(where or {})] if c not in header]
    if unknown:
        raise KeyError(f"docs table: {path} has no column {unknown} (it has {header})")
    rows = [r for r in rows if all(r[k] == v for k, v in (where or {}).items())]
    if not rows:
        raise ValueError(f"docs table: no row of {path} matches {where}")
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(_cell(r[c]) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def _render(match: re.Match) -> str:
    args = {k: v.strip('"') for k, v in re.findall(r'(\w+)=("[^"]*"|\S+)', match["args"])}
    columns = args["columns"].split(",") if "columns" in args else None
    where = dict(pair.split("=", 1) for pair in args["where"].split(";")) if "where" in args else None
    table = csv_table(match["path"], columns, where)
    return "\n".join(match["indent"] + line for line in table.splitlines())  # inside an admonition, indented


def on_page_markdown(markdown: str, **kwargs) -> str:
    return DIRECTIVE.sub(_render, markdown)
