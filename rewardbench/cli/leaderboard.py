"""``rewardbench leaderboard``: render the boards (`rewardbench.leaderboards`) as markdown, CSV, JSON or one
static HTML page, and ingest performance results into a board."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import click

from .common import EXIT_FAILED, check_out, command, json_option, usage_exit, usage_phase

_EPILOG = """\b
Examples:
  rewardbench leaderboard --list
  rewardbench leaderboard --board agreement                       # markdown to stdout
  rewardbench leaderboard --format html --out leaderboard.html    # every board, one static page
  rewardbench leaderboard --board perf --format csv --out perf.csv
  rewardbench leaderboard --add-perf scripts/perf/results/cpu_b32.json --to-leaderboard perf
  rewardbench leaderboard --verify --board agreement              # re-run its rows' commands, compare
\b
Boards are CSV files in leaderboards/boards/ (or --dir / $REWARDBENCH_BOARDS), appended by
`rewardbench agreement --to-leaderboard BOARD`; rows from random weights are refused.
--verify re-runs each row's stored command (from the current folder, where it was typed: the repository
root for the committed boards) into a scratch folder and compares value, interval and n with the row
(equal to the 6 significant digits a board stores, or within --tolerance); rows whose weights come from
the hub, a URL or a file, or that ask for a missing GPU, are listed as not verifiable here, with the reason.
Exit codes: 0 done (--verify: every row that can run here reproduced), 1 a board or file could not be read
or written, or --verify found a row its command no longer reproduces (named with its old and new values),
2 usage error (an unknown board, a missing --dir, an --out that cannot be written, a row from random weights).
"""


@command("leaderboard", _EPILOG)
@click.option("--board", "boards", multiple=True, help="Board(s) to show (repeatable; default: all).")
@click.option("--format", "fmt", type=click.Choice(["md", "csv", "json", "html"]), default="md", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write here instead of stdout.")
@click.option("--dir", "root", type=click.Path(file_okay=False), default=None,
              help="Boards folder (default: $REWARDBENCH_BOARDS or leaderboards/boards of the package).")
@click.option("--list", "list_only", is_flag=True, help="List the boards with their row counts.")
@click.option("--add-perf", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Ingest bench_scoring.py JSON results into --to-leaderboard (repeatable).")
@click.option("--to-leaderboard", "target", default="perf", show_default=True,
              help="Board that --add-perf appends to.")
@click.option("--no-published", is_flag=True, help="Leave out the published-numbers comparison.")
@click.option("--verify", is_flag=True, help="Re-run each row's stored command and compare (see below).")
@click.option("--tolerance", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="--verify: the largest absolute difference that still counts as the same number.")
@json_option
def leaderboard(boards, fmt, out, root, list_only, add_perf, target, no_published, verify, tolerance, as_json):
    """Show the leaderboards: agreement with people, reward vs reward, generators, performance."""
    from rewardbench.leaderboards.board import boards_dir, list_boards, read_board, read_boards

    if root is not None and not Path(root).is_dir():
        usage_exit(f"--dir {root}: no such folder")
    check_out(out)
    if add_perf:
        from rewardbench.leaderboards.perf import ingest_perf

        with usage_phase(ValueError):
            path = ingest_perf(add_perf, target, root=root)
        click.echo(f"appended {len(add_perf)} result file(s) to {path}", err=True)
        if not (boards or out or list_only):
            return
    names = list_boards(root)
    if list_only:
        for n in names:
            click.echo(f"{n}\t{len(read_board(n, root=root))} rows")
        return
    unknown = [b for b in boards if b not in names]
    if unknown:
        usage_exit(f"unknown board(s) {unknown}; known: {', '.join(names) or 'none'}")
    if not names:
        usage_exit(f"no boards in {boards_dir(root)}")
    if verify:
        _verify(boards or names, root, tolerance, as_json)
        return
    df = read_boards(boards or names, root=root)
    text = _render(df, fmt, published=not no_published)
    if out:
        Path(out).write_text(text, encoding="utf-8")
        click.echo(f"wrote {out} ({len(df)} rows from {df['board'].nunique()} board(s))", err=True)
    else:
        click.echo(text)


def _render(df, fmt: str, published: bool) -> str:
    beside = reference = None
    if published and fmt in ("md", "html"):
        from rewardbench.leaderboards.published import published as published_rows
        from rewardbench.leaderboards.published import side_by_side

        beside, reference = side_by_side(df), published_rows()
    if fmt == "md":
        from rewardbench.leaderboards.render import markdown

        return markdown(df, beside, reference)
    if fmt == "csv":
        return df.to_csv(index=False, float_format="%.6g")
    if fmt == "json":
        from rewardbench.leaderboards.render import to_json

        return to_json(df)
    from rewardbench.leaderboards.html import render_html

    return render_html(df, beside, reference=reference,
                       generated=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))


def _verify(names, root, tolerance: float, as_json: bool) -> None:
    """``--verify``: the checks as a report (or JSON); exit 1 on a mismatch."""
    import json
    import sys

    from rewardbench.leaderboards.verify import report, verify, verify_ok

    checks = verify(names, root=root, tolerance=tolerance,
                    progress=lambda cmd: click.echo(f"re-running: {cmd}", err=True))
    if as_json:
        click.echo(json.dumps([c.as_dict() for c in checks], indent=1, default=str))
    else:
        click.echo(report(checks))
    if not verify_ok(checks):
        bad = sum(c.status == "mismatch" for c in checks)
        click.echo(f"error: {bad} row(s) of {', '.join(names)} are not what their command gives today; re-measure "
                   "them with the command shown (it replaces the rows) and commit the boards", err=True)
        sys.exit(EXIT_FAILED)
