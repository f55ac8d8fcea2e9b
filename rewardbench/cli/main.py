"""The ``rewardbench`` group: finds its subcommands through the entry-point group ``rewardbench.commands``
(pyproject.toml; third-party packages may add their own) and imports one only when it runs or when ``--help``
lists them. Every module of this package imports nothing heavy at import time, so ``rewardbench --help``,
``--version`` and ``list`` answer without loading torch.
"""

from __future__ import annotations

import importlib
import warnings

import click

from .common import CONTEXT, debug_option, report_uncaught

COMMAND_GROUP = "rewardbench.commands"  # entry points: name = "module:attr" of a click command


def command_targets() -> dict[str, str]:
    """Subcommand name -> "module:attr", from the ``rewardbench.commands`` entry points (pyproject.toml)."""
    from importlib import metadata

    return {ep.name: ep.value for ep in metadata.entry_points(group=COMMAND_GROUP)}


class _LazyGroup(click.Group):
    """Subcommands declared as entry points, imported only when one runs (or when help lists them). An
    exception no subcommand handled is reported by `report_uncaught` (one line; exit 2 or 1)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as e:
            report_uncaught(e)

    def list_commands(self, ctx):
        return sorted({*super().list_commands(ctx), *command_targets()})

    def get_command(self, ctx, name):
        targets = command_targets()
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


_EPILOG = """\b
Examples:
  rewardbench list --offline                      # the rewards that run with no download
  rewardbench demo --out demo_out                 # score real photos with every offline reward
  rewardbench score --model jpeg-compressibility --images photos/ --out scores.parquet
\b
Exit codes, every subcommand: 0 done, 1 some work failed (what was done is kept), 2 a usage or configuration
error (one line, before any work). --debug shows the traceback of an unexpected error.
"""


@click.group(cls=_LazyGroup, context_settings=CONTEXT, epilog=_EPILOG)
@click.version_option(package_name="rewardbench", prog_name="rewardbench")
@debug_option
def main():
    """rewardbench: one interface to the reward models used to align text-to-image diffusion models."""
    # our own deprecations (an old spelling in a recipe or a suite's YAML) are for the person at the command line;
    # Python shows a DeprecationWarning only when __main__ triggers it
    warnings.filterwarnings("default", category=DeprecationWarning, module=r"rewardbench\.")
