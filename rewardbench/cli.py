"""The ``rewardbench`` command line. Subcommands are declared as entry points (group
``rewardbench.commands`` in pyproject.toml) and imported on use; the kernel names no upper layer.

    rewardbench list [--category C] [--json]
    rewardbench score --model NAME[,NAME...] --images DIR|MANIFEST [...]
    rewardbench demo [--out DIR]
    rewardbench suites list|show|export
    rewardbench train --config FILE [key=value ...]
"""

from __future__ import annotations

import importlib
import json
import sys

import click

from .clierrors import debug_option, report_uncaught

COMMAND_GROUP = "rewardbench.commands"  # entry points: name = "module:attr" of a click command


def _command_targets() -> dict[str, str]:
    """Subcommand name -> "module:attr", from the ``rewardbench.commands`` entry points (pyproject.toml)."""
    from importlib import metadata

    return {ep.name: ep.value for ep in metadata.entry_points(group=COMMAND_GROUP)}


class _LazyGroup(click.Group):
    """Subcommands declared as entry points, imported only when one runs (or when help lists them). An
    exception no subcommand handled is one line on stderr and exit 1 (``--debug``: the traceback)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as e:
            report_uncaught(e)

    def list_commands(self, ctx):
        return sorted({*super().list_commands(ctx), *_command_targets()})

    def get_command(self, ctx, name):
        targets = _command_targets()
        if name in targets and name not in self.commands:
            target = targets[name]
            mod, _, attr = target.partition(":")
            try:
                return getattr(importlib.import_module(mod), attr)
            except (ImportError, AttributeError) as e:
                reason = f"{type(e).__name__}: {e}"  # `e` is unbound once the except block ends

                @click.command(name, help=f"(unavailable: {reason})")
                def _unavailable():
                    raise click.ClickException(
                        f"`rewardbench {name}` is unavailable: cannot import {target} ({reason})")
                return _unavailable
        return super().get_command(ctx, name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
             epilog="Example: rewardbench list --category baseline ; rewardbench demo --out demo_out")
@click.version_option(package_name="rewardbench")
@debug_option
def main():
    """rewardbench: one interface to the reward models used to align text-to-image diffusion models."""


_LIST_EPILOG = """\b
Examples:
  rewardbench list                          # the whole zoo
  rewardbench list --category preference    # preference models only
  rewardbench list --offline                # what runs with no download
  rewardbench list --json | python -c "import json,sys; print(len(json.load(sys.stdin)))"
"""


@main.command("list", epilog=_LIST_EPILOG)
@click.option("--category", "-c", default=None, help="Only this category (preference, aesthetic, composition, "
              "fairness, diversity, safety, baseline).")
@click.option("--offline", is_flag=True, help="Only rewards that need no download.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output: a JSON list of specs.")
def list_cmd(category, offline, as_json):
    """List the registered rewards with their spec (category, direction, range, granularity, weights)."""
    from .registry import REGISTRY
    from .tables import render_table

    try:
        specs = REGISTRY.specs(category)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    if offline:
        specs = [s for s in specs if s.offline]
    rows = [s.as_row() for s in specs]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        r["higher"] = r["higher_is_better"]
        r["diff"] = r["differentiable"]
        r["prompt"] = r["needs_prompt"]
        r["weights"] = "offline" if r["offline"] else "download"
    click.echo(render_table(rows, ["name", "category", "higher", "range", "granularity", "diff", "prompt",
                                   "backbone", "weights", "aliases"]))
    click.echo(f"\n{len(rows)} rewards" + (f" in category {category}" if category else ""))
    if REGISTRY.broken:
        click.echo("warning: some reward modules failed to load: " + "; ".join(
            f"{k}: {v}" for k, v in REGISTRY.broken.items()), err=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
