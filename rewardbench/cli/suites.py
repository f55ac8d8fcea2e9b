"""``rewardbench suites``: list, show and export prompt suites (`rewardbench.suites`). Exit codes: 0 done,
1 a suite's source could not be read, 2 usage error (an unknown suite, a bad option, a missing --out folder).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import click

from .common import CONTEXT, check_out, usage_exit

_GROUP_EPILOG = """\b
Examples:
  rewardbench suites list
  rewardbench suites show t2i-compbench-spatial --path ../shared/data/prompts/t2i-compbench/spatial_val.txt --limit 5
  rewardbench suites export object-pairs --out pairs.jsonl
"""


@click.group("suites", epilog=_GROUP_EPILOG, context_settings=CONTEXT)
def suites():
    """Prompt suites: T2I-CompBench categories, GenEval, the paper's object pairs, ..."""


def _load(name, path, limit):
    from rewardbench.suites import SuiteSourceError, UnknownSuiteError, load_suite

    try:
        return load_suite(name, path=path, limit=limit)
    except UnknownSuiteError as e:
        raise click.UsageError(str(e)) from None
    except (SuiteSourceError, ValueError, OSError) as e:
        raise click.ClickException(str(e)) from None


@suites.command("list", epilog="""\b
Examples:
  rewardbench suites list
  rewardbench suites list --json | python -c "import json,sys; print(json.load(sys.stdin))"
""")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of suite names and their source modules.")
def list_cmd(as_json):
    """List the prompt suites."""
    from rewardbench.suites import _registry

    reg = _registry()
    rows = [{"name": n, "module": reg[n].func.__module__ if hasattr(reg[n], "func") else reg[n].__module__}
            for n in sorted(reg)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rewardbench.tables import render_table

    click.echo(render_table([{"name": r["name"], "source": r["module"].rsplit(".", 1)[-1]} for r in rows],
                            ["name", "source"]))
    click.echo(f"\n{len(rows)} suites")


@suites.command("show", epilog="""\b
Examples:
  rewardbench suites show object-pairs --limit 5
  rewardbench suites show geneval --path evaluation_metadata.jsonl --limit 3 --json
""")
@click.argument("name")
@click.option("--path", default=None, help="Local copy (or URL) of the suite's official file.")
@click.option("--limit", "-n", type=click.IntRange(min=0), default=10, show_default=True, help="Rows to show.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as a JSON list.")
def show_cmd(name, path, limit, as_json):
    """Show the first rows of suite NAME."""
    rows = _load(name, path, limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        extra = ", ".join(f"{k}={v}" for k, v in r.items()
                          if k not in ("prompt", "index") and not isinstance(v, (list, dict)))
        click.echo(f"{r['prompt']}" + (f"    [{extra}]" if extra else ""))


@suites.command("export", epilog="""\b
Examples:
  rewardbench suites export object-pairs --out pairs.jsonl
  rewardbench suites export t2i-compbench-color --path color_val.txt --out color.csv
  rewardbench suites export geneval --path evaluation_metadata.jsonl --out prompts.txt   # prompts only
""")
@click.argument("name")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False),
              help=".jsonl, .csv or .txt (prompts only).")
@click.option("--path", default=None, help="Local copy (or URL) of the suite's official file.")
@click.option("--limit", "-n", type=click.IntRange(min=0), default=None, help="Only the first N rows.")
def export_cmd(name, out, path, limit):
    """Write suite NAME to a file (a manifest's prompts, for generation or scoring)."""
    if Path(out).suffix not in (".jsonl", ".csv", ".txt"):
        usage_exit(f"--out {out}: use a .jsonl, .csv or .txt file")
    check_out(out)
    rows = _load(name, path, limit)
    out = Path(out)
    if out.suffix == ".jsonl":
        out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif out.suffix == ".csv":
        cols = list(dict.fromkeys(k for r in rows for k in r))
        with out.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            for r in rows:
                w.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in r.items()})
    else:
        out.write_text("".join(r["prompt"].replace("\n", " ") + "\n" for r in rows))
    click.echo(f"{len(rows)} prompts -> {out}")
