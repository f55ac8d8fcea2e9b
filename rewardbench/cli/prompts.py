"""``rewardbench prompts``: list, show and export prompt sets (`rewardbench.benchmarks.prompt_sets`). Exit codes:
0 done, 1 a prompt set's source could not be read, 2 usage error (an unknown prompt set, a bad option, an --out
that cannot be written).

``rewardbench suites``, its name before "suite" came to mean only a run-benchmark benchmark suite, still works for
one release: hidden from ``rewardbench --help``, it says its new name on stderr and does the same thing.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import click

from .common import CONTEXT, check_out, usage_exit

_GROUP_EPILOG = """\b
Examples:
  rewardbench prompts list
  rewardbench prompts show t2i-compbench-spatial --path ../shared/data/prompts/t2i-compbench/spatial_val.txt --limit 5
  rewardbench prompts export object-pairs --out pairs.jsonl
\b
A prompt set is a prompt source of a run-benchmark suite (`rewardbench run-benchmark --list-suites`) and of a
trainer task (`prompts: set:NAME` in a recipe).
"""


@click.group("prompts", epilog=_GROUP_EPILOG, context_settings=CONTEXT)
def prompts():
    """Prompt sets: T2I-CompBench categories, GenEval, the paper's object pairs, ..."""


def _load(name, path, limit):
    from rewardbench.benchmarks.prompt_sets import PromptSourceError, UnknownPromptSetError, load_prompt_set

    try:
        return load_prompt_set(name, path=path, limit=limit)
    except UnknownPromptSetError as e:
        raise click.UsageError(str(e)) from None
    except (PromptSourceError, ValueError, OSError) as e:
        raise click.ClickException(str(e)) from None


@prompts.command("list", epilog="""\b
Examples:
  rewardbench prompts list
  rewardbench prompts list --json | python -c "import json,sys; print(json.load(sys.stdin))"
""")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of prompt set names and their source modules.")
def list_cmd(as_json):
    """List the prompt sets."""
    from rewardbench.benchmarks.prompt_sets import _registry

    reg = _registry()
    rows = [{"name": n, "module": reg[n].func.__module__ if hasattr(reg[n], "func") else reg[n].__module__}
            for n in sorted(reg)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rewardbench.tables import render_table

    click.echo(render_table([{"name": r["name"], "source": r["module"].rsplit(".", 1)[-1]} for r in rows],
                            ["name", "source"]))
    click.echo(f"\n{len(rows)} prompt sets")


@prompts.command("show", epilog="""\b
Examples:
  rewardbench prompts show object-pairs --limit 5
  rewardbench prompts show geneval --path evaluation_metadata.jsonl --limit 3 --json
""")
@click.argument("name")
@click.option("--path", default=None, help="Local copy (or URL) of the prompt set's official file.")
@click.option("--limit", "-n", type=click.IntRange(min=0), default=10, show_default=True, help="Rows to show.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as a JSON list.")
def show_cmd(name, path, limit, as_json):
    """Show the first rows of prompt set NAME."""
    rows = _load(name, path, limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        extra = ", ".join(f"{k}={v}" for k, v in r.items()
                          if k not in ("prompt", "index") and not isinstance(v, (list, dict)))
        click.echo(f"{r['prompt']}" + (f"    [{extra}]" if extra else ""))


@prompts.command("export", epilog="""\b
Examples:
  rewardbench prompts export object-pairs --out pairs.jsonl
  rewardbench prompts export t2i-compbench-color --path color_val.txt --out color.csv
  rewardbench prompts export geneval --path evaluation_metadata.jsonl --out prompts.txt   # prompts only
""")
@click.argument("name")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False),
              help=".jsonl, .csv or .txt (prompts only).")
@click.option("--path", default=None, help="Local copy (or URL) of the prompt set's official file.")
@click.option("--limit", "-n", type=click.IntRange(min=0), default=None, help="Only the first N rows.")
def export_cmd(name, out, path, limit):
    """Write prompt set NAME to a file (a manifest's prompts, for generation or scoring)."""
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


# --- `rewardbench suites`: the deprecated name, for one release -------------------------------------------------
SUITES_NOTE = "note: `rewardbench suites` is now `rewardbench prompts`"


class _RenamedGroup(click.Group):
    """A group under its old name: hidden from ``rewardbench --help``; says its new name on stderr, then does the
    same thing (its subcommands are the new group's own)."""

    def parse_args(self, ctx, args):
        click.echo(SUITES_NOTE, err=True)
        return super().parse_args(ctx, args)


suites = _RenamedGroup("suites", commands=prompts.commands, hidden=True, epilog=_GROUP_EPILOG,
                       context_settings=CONTEXT, help="Deprecated: the old name of `rewardbench prompts`.")
