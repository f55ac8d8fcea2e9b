"""What every subcommand shares: exit codes, how errors are reported, the options that mean the same thing
everywhere, and the parsers of repeated ``NAME=VALUE`` options.

Exit codes, in every subcommand:

* ``0`` (`EXIT_OK`): done;
* ``1`` (`EXIT_FAILED`): some of the work failed (rows that could not be scored, a source that could not be
  read); what was done is kept and the message says what failed;
* ``2`` (`EXIT_USAGE`): a usage or configuration error, refused before any work with one line on stderr
  (an unknown option value, a missing ``--out`` folder, missing weights, a changed run on the same output).

An exception no command handled is one line naming its cause, exit 1 (``--debug`` or ``REWARDBENCH_DEBUG=1``
show the traceback). Never a bare Python traceback unless asked for.

Example:
    >>> import click
    >>> from click.testing import CliRunner
    >>> @command("boom", epilog="Example: boom")
    ... def boom():
    ...     raise OSError("disk full")
    >>> r = CliRunner().invoke(boom, [])
    >>> r.exit_code, r.output.splitlines()[0]
    (1, 'error: OSError: disk full (run with --debug or REWARDBENCH_DEBUG=1 for the traceback)')
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import click

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEBUG_ENV = "REWARDBENCH_DEBUG"
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}

# Exceptions that mean "the run cannot work as asked" wherever they are raised: exit 2 with their message.
# Named as strings: an exception can only be an instance of a class whose module is already imported, so the
# check imports nothing (and `--help` stays free of torch).
USAGE_ERRORS = (
    "rewardbench.errors:UsageError",
    "rewardbench.registry:UnknownRewardError",
    "rewardbench.weights:WeightsNotFoundError",
    "rewardbench.data:SourceError",
    "rewardbench.shards:ResumeMismatchError",
    "rewardbench.outputs:OutputLockedError",
    "rewardbench.outputs:OutputExistsError",
    "rewardbench.benchmarks.prompt_sets:UnknownPromptSetError",
    "rewardbench.benchmarks.run:ConfigChangedError",
    "rewardbench.leaderboards.board:RandomWeightsError",
    "rewardbench.trainers.checkpoints:ResumeRefusedError",
    "rewardbench.trainers.checkpoints:RunExistsError",
)


def debug_enabled() -> bool:
    """``REWARDBENCH_DEBUG`` is set to something true (``--debug`` sets it)."""
    return os.environ.get(DEBUG_ENV, "").lower() not in ("", "0", "false", "no")


def _set_debug(ctx: click.Context | None, param: Any, value: bool) -> bool:
    if value:
        os.environ[DEBUG_ENV] = "1"
    return value


debug_option = click.option("--debug", is_flag=True, expose_value=False, is_eager=True, callback=_set_debug,
                            help=f"Show the full traceback of an unexpected error (or set {DEBUG_ENV}=1).")
# the options that mean the same thing in every subcommand that has them
no_progress_option = click.option("--no-progress", is_flag=True, help="No progress bars.")
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output (JSON).")


def usage_exit(msg: str) -> NoReturn:
    """One line on stderr, exit 2."""
    click.echo(f"error: {' '.join(str(msg).split())}", err=True)
    sys.exit(EXIT_USAGE)


def fail_exit(msg: str) -> NoReturn:
    """One line on stderr, exit 1: some of the work failed."""
    click.echo(f"error: {' '.join(str(msg).split())}", err=True)
    sys.exit(EXIT_FAILED)


def is_usage_error(e: BaseException) -> bool:
    """Is ``e`` one of `USAGE_ERRORS` (or click's own usage error)?"""
    if isinstance(e, click.UsageError):
        return True
    for target in USAGE_ERRORS:
        module, _, name = target.partition(":")
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and isinstance(e, cls):
            return True
    return False


@contextlib.contextmanager
def usage_phase(*also: type[BaseException]) -> Iterator[None]:
    """Errors raised inside are usage errors (exit 2): `USAGE_ERRORS`, plus ``also`` (e.g. ValueError while
    options are checked and the run is planned, before any work)."""
    try:
        yield
    except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
        raise
    except Exception as e:
        if is_usage_error(e) or (also and isinstance(e, also)):
            usage_exit(str(e))
        raise


def report_uncaught(e: BaseException) -> NoReturn:
    """One line on stderr naming the cause (the traceback too in debug mode): exit 2 for a usage error,
    else 1."""
    if isinstance(e, BrokenPipeError):  # the reader went away (`rewardbench list | head`): nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_OK)
    if debug_enabled():
        traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
    if is_usage_error(e):
        usage_exit(str(e))
    msg = " ".join(str(e).split()) or "(no message)"
    click.echo(f"error: {type(e).__name__}: {msg}"
               + ("" if debug_enabled() else f" (run with --debug or {DEBUG_ENV}=1 for the traceback)"), err=True)
    sys.exit(EXIT_FAILED)


def friendly_errors(fn: Callable) -> Callable:
    """Wrap a command's callback: exits and click's own errors pass; anything else is `report_uncaught`."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted; re-running the same command resumes where an output was given", err=True)
            sys.exit(130)
        except Exception as e:
            report_uncaught(e)
    return wrapper


def command(name: str, epilog: str, **settings: Any) -> Callable[[Callable], click.Command]:
    """``@click.command`` with what every subcommand has: ``-h``/``--help``, the same width, ``--debug`` and
    `friendly_errors`. Put it above the command's options, like ``@click.command``."""
    def deco(fn: Callable) -> click.Command:
        cmd = click.command(name, epilog=epilog, context_settings={**CONTEXT, **settings})(friendly_errors(fn))
        return debug_option(cmd)
    return deco


def check_out(path: str | None, what: str = "--out", *, folder: bool = False) -> None:
    """The one rule for every output path, as in the Python API (`rewardbench.outputs.check_writable`): missing
    folders are created; what cannot be written (a path under a file, no permission, a read-only file, a folder
    where a file is wanted) exits 2 with one line before any work. ``folder=True`` for an output folder."""
    if path is None:
        return
    from rewardbench.outputs import check_writable

    with usage_phase():
        check_writable(path, what, folder=folder)


def parse_pairs(items: tuple[str, ...], flag: str, example: str, form: str = "NAME=VALUE") -> dict[str, str]:
    """``NAME=VALUE`` options as ``{NAME: VALUE}``; exit 2 on a malformed one.

    >>> parse_pairs(("pickscore=/models/ps",), "--weights", "pickscore=/models/PickScore_v1")
    {'pickscore': '/models/ps'}
    """
    out = {}
    for it in items:
        name, sep, value = it.partition("=")
        if not sep or not name.strip() or not value.strip():
            usage_exit(f"{flag} {it!r}: expected {form} (e.g. {flag} {example})")
        out[name.strip()] = value.strip()
    return out


def parse_weights(items: tuple[str, ...]) -> dict[str, str]:
    """``--weights NAME=PATH`` options."""
    return parse_pairs(items, "--weights", "pickscore=/models/PickScore_v1", "NAME=PATH")


def parse_config(items: tuple[str, ...]) -> dict[str, dict]:
    """``--config NAME:KEY=VALUE`` options as ``{NAME: {KEY: VALUE}}``; values are read as YAML (numbers, bools,
    lists).

    >>> parse_config(("detection-score:model=yolov8n", "detection-score:threshold=0.3"))
    {'detection-score': {'model': 'yolov8n', 'threshold': 0.3}}
    """
    import yaml

    out: dict[str, dict] = {}
    for it in items:
        head, sep, value = it.partition("=")
        name, colon, key = head.partition(":")
        if not sep or not colon or not name.strip() or not key.strip():
            usage_exit(f"--config {it!r}: expected NAME:KEY=VALUE (e.g. --config detection-score:model=yolov8n)")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            parsed = value
        out.setdefault(name.strip(), {})[key.strip()] = value if parsed is None and value else parsed
    return out


def command_line(name: str) -> str | None:
    """The command line as typed (``rewardbench NAME ...``), recorded with results; None when subcommand ``name``
    was not started from the command line (e.g. called from Python)."""
    import shlex

    return shlex.join(["rewardbench", *sys.argv[1:]]) if sys.argv[1:2] == [name] else None
