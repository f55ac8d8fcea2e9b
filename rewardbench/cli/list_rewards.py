"""``rewardbench list``: the registered rewards with their spec. Reads the zoo's catalogue
(`rewardbench.catalog`), so it answers without importing torch or any reward module; with reward plugins
installed it asks the registry itself."""

from __future__ import annotations

import json

import click

from .common import command, json_option, usage_exit

_EPILOG = """\b
Examples:
  rewardbench list                          # the whole zoo
  rewardbench list --category preference    # preference models only
  rewardbench list --offline                # what runs with no download
  rewardbench list --json | python -c "import json,sys; print(len(json.load(sys.stdin)))"
"""


def _rows() -> tuple[list[dict], list[str], dict[str, str]]:
    """(rows, categories, broken modules): from the catalogue, or from the registry when plugins are installed."""
    from rewardbench.catalog import catalog_categories, catalog_rows

    rows = catalog_rows()
    if rows is not None:
        return rows, catalog_categories() or [], {}
    from rewardbench.registry import REGISTRY
    from rewardbench.spec import CATEGORIES

    return [s.as_row() for s in REGISTRY.specs()], list(CATEGORIES), REGISTRY.broken


@command("list", _EPILOG)
@click.option("--category", "-c", default=None, help="Only this category (preference, aesthetic, composition, "
              "fairness, diversity, safety, baseline).")
@click.option("--offline", is_flag=True, help="Only rewards that need no download.")
@json_option
def list_rewards(category, offline, as_json):
    """List the registered rewards with their spec (category, direction, range, granularity, weights)."""
    from rewardbench.tables import render_table

    rows, categories, broken = _rows()
    if category is not None and category not in categories:
        usage_exit(f"unknown category {category!r}; choose from {', '.join(categories)}")
    rows = [r for r in rows if (category is None or r["category"] == category) and (not offline or r["offline"])]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = [{**r, "higher": r["higher_is_better"], "diff": r["differentiable"], "prompt": r["needs_prompt"],
              "weights": "offline" if r["offline"] else "download"} for r in rows]
    click.echo(render_table(table, ["name", "category", "higher", "range", "granularity", "diff", "prompt",
                                    "backbone", "weights", "aliases"]))
    click.echo(f"\n{len(rows)} rewards" + (f" in category {category}" if category else ""))
    if broken:
        click.echo("warning: some reward modules failed to load: " + "; ".join(f"{k}: {v}" for k, v in broken.items()),
                   err=True)
