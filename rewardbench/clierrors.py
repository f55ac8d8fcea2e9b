"""How the command line reports errors: a usage error is one line and exit 2; any other uncaught
exception is one line with its cause and how to see the traceback (``--debug`` or
``REWARDBENCH_DEBUG=1``), exit 1. Never a bare Python traceback unless asked for.

Example:
    >>> import click
    >>> @click.command()
    ... @friendly_errors
    ... def boom():
    ...     raise OSError("disk full")
    >>> from click.testing import CliRunner
    >>> r = CliRunner().invoke(boom, [])
    >>> r.exit_code, r.output.splitlines()[0]
    (1, 'error: OSError: disk full (run with --debug or REWARDBENCH_DEBUG=1 for the traceback)')
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

import click

DEBUG_ENV = "REWARDBENCH_DEBUG"


def debug_enabled() -> bool:
    """``REWARDBENCH_DEBUG`` is set to something true (``--debug`` sets it)."""
    return os.environ.get(DEBUG_ENV, "").lower() not in ("", "0", "false", "no")


def set_debug(ctx: click.Context | None, param: Any, value: bool) -> bool:
    """Click callback of ``--debug``."""
    if value:
        os.environ[DEBUG_ENV] = "1"
    return value


debug_option = click.option("--debug", is_flag=True, expose_value=False, is_eager=True, callback=set_debug,
                            help=f"Show the full traceback of an unexpected error (or set {DEBUG_ENV}=1).")


def usage_exit(msg: str) -> None:
    """One line on stderr, exit 2."""
    click.echo(f"error: {msg}", err=True)
    sys.exit(2)


def report_uncaught(e: BaseException) -> None:
    """One line on stderr naming the cause (the traceback too in debug mode), exit 1."""
    if debug_enabled():
        traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
    msg = " ".join(str(e).split()) or "(no message)"
    click.echo(f"error: {type(e).__name__}: {msg}"
               + ("" if debug_enabled() else f" (run with --debug or {DEBUG_ENV}=1 for the traceback)"), err=True)
    sys.exit(1)


def friendly_errors(fn: Callable) -> Callable:
    """Wrap a click command's callback: exits and click's own errors pass; anything else is reported
    by `report_uncaught`."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted; with --out, re-running the same command resumes", err=True)
            sys.exit(130)
        except Exception as e:
            report_uncaught(e)
    return wrapper
