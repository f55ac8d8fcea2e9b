"""``rewardbench leaderboard``: render the boards as markdown, CSV, JSON or one static HTML page.

Exit codes: 0 success, 1 a board or file could not be read or written (or a random-weight row was
refused), 2 usage error.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import click

_EPILOG = """\b
Examples:
  rewardbench leaderboard --list
  rewardbench leaderboard --board agreement                       # markdown to stdout
  rewardbench leaderboard --format html --out leaderboard.html    # every board, one static page
  rewardbench leaderboard --board perf --format csv --out perf.csv
  rewardbench leaderboard --add-perf scripts/perf/results/cpu_b32.json --to-leaderboard perf
\b
Boards are CSV files in leaderboards/boards/ (or --dir / $REWARDBENCH_BOARDS), appended by
`rewardbench agreement --to-leaderboard BOARD`; rows from random weights are refused.
"""


@click.command("leaderboard", epilog=_EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
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
def leaderboard(boards, fmt, out, root, list_only, add_perf, target, no_published):
    """Show the leaderboards: agreement with people, reward vs reward, generators, performance."""
    from .board import RandomWeightsError, list_boards, read_board, read_boards

    if add_perf:
        from .perf import ingest_perf

        try:
            path = ingest_perf(add_perf, target, root=root)
        except (RandomWeightsError, ValueError, OSError) as e:
            raise click.ClickException(str(e)) from None
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
        raise click.UsageError(f"unknown board(s) {unknown}; known: {', '.join(names) or 'none'}")
    if not names:
        raise click.ClickException(f"no boards found in {root or 'the default boards folder'}")
    df = read_boards(boards or names, root=root)
    beside = reference = None
    if not no_published and fmt in ("md", "html"):
        from .published import published, side_by_side

        beside, reference = side_by_side(df), published()
    if fmt == "md":
        from .render import markdown

        text = markdown(df, beside, reference)
    elif fmt == "csv":
        text = df.to_csv(index=False, float_format="%.6g")
    elif fmt == "json":
        from .render import to_json

        text = to_json(df)
    else:
        from .html import render_html

        text = render_html(df, beside, reference=reference,
                           generated=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text, encoding="utf-8")
        click.echo(f"wrote {out} ({len(df)} rows from {df['board'].nunique()} board(s))", err=True)
    else:
        click.echo(text)
