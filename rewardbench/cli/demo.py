"""``rewardbench demo``: the offline main job (`rewardbench.demo`): real photos bundled with scikit-image and
matplotlib, scored with every reward that needs no download."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import click

from .common import check_out, command, json_option, no_progress_option, usage_phase

_EPILOG = """\b
Example:
  rewardbench demo --out demo_out
  # then: python -c "import pandas as pd; print(pd.read_parquet('demo_out/scores.parquet'))"
Exit codes: 0 every image scored, 1 some rows failed (listed in the table's error column), 2 usage error.
"""


@command("demo", _EPILOG)
@click.option("--out", "out_dir", default="demo_out", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the images, the manifest and the scores.")
@click.option("--model", default=None, help="Comma-separated rewards (default: every offline reward).")
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1))
@json_option
@no_progress_option
def demo(out_dir, model, batch_size, as_json, no_progress):
    """Score real photos (bundled with scikit-image and matplotlib) with every reward that runs offline.

    Nothing is downloaded: the rewards used are those whose spec says `offline` (no weights, or
    weights bundled in an installed package), but OCR (its prompts must quote the text to read).
    The results table is printed and written to OUT/scores.parquet and OUT/scores.csv.
    """
    from rewardbench.demo import DEMO_PHOTOS, LEFT_OUT, WIDTH, demo_tables, offline_rewards, run_demo, weights_lines
    from rewardbench.preflight import check_reward_options

    check_out(out_dir, folder=True)
    with usage_phase():
        names = check_reward_options([n.strip() for n in model.split(",") if n.strip()]) if model \
            else offline_rewards()
    click.echo(textwrap.fill(f"scoring {len(DEMO_PHOTOS)} real photos with {len(names)} offline rewards: "
                             + ", ".join(names), WIDTH, subsequent_indent="  ", break_on_hyphens=False))
    if not model:
        for name, why in LEFT_OUT.items():
            click.echo(textwrap.fill(f"left out: {name} ({why})", WIDTH, subsequent_indent="  "))
    result = run_demo(out_dir, names, batch_size=batch_size, progress=not no_progress)
    click.echo(demo_tables(result))
    click.echo("\nweights used:")
    click.echo("\n".join(weights_lines(result.provenance)))
    s, out = result.summary, Path(out_dir)
    click.echo(f"\n{s['rows']} rows: {s['scored']} scored, {s['failed']} failed; written:")
    files = [("scores.parquet", "one row per image"), ("scores.csv", "the same, as CSV")]
    files += [("groups.csv", "one row per group")] if result.groups is not None else []
    pad = max(len(str(out / name)) for name, _ in files)
    for name, what in files:
        click.echo(f"  {str(out / name).ljust(pad)}  ({what})")
    if as_json:
        click.echo(json.dumps(result.summary, default=str, indent=2))
    raise SystemExit(1 if result.n_failed else 0)
