"""``rewardbench agreement``: how well rewards agree with human preferences, and with each other
(`rewardbench.benchmarks.agreement`)."""

from __future__ import annotations

import json
import sys

import click

from .common import (
    check_out,
    command,
    command_line,
    fail_exit,
    json_option,
    no_progress_option,
    parse_weights,
    usage_exit,
    usage_phase,
)

_EPILOG = """\b
Examples:
  rewardbench agreement --list-datasets
  rewardbench agreement --dataset photo-distortions --rewards jpeg-incompressibility,jpeg-compressibility,nsfw
  rewardbench agreement --dataset pickapic-v1 --rewards pickscore,hpsv2 --tune-ties-on validation_unique
  rewardbench agreement --dataset hpdv2 --data /data/HPDv2/test.json --rewards hpsv2 --to-leaderboard agreement
  rewardbench agreement --dataset my_prefs.jsonl --rewards imagereward --out rows.csv
  rewardbench agreement --between-rewards --images scores.parquet --rewards a,b,c --heatmap agree.png
  rewardbench agreement --between-rewards --images photo-distortions --rewards jpeg-incompressibility,nsfw
\b
A dataset is a name from --list-datasets (hub id, or --data pointing at a local copy) or a file in the
schema of rewardbench.benchmarks.agreement_data (prompt, images, choice|ranking|ratings, tie, category).
Every number is printed with its protocol, split, n and a 95% bootstrap interval over prompts.
Exit codes: 0 done, 1 the data could not be loaded (the message says where it looked), 2 usage error (an
unknown reward, missing weights, an --out that cannot be written, rows from random weights for a board).
"""


def _list_datasets(as_json: bool) -> None:
    from rewardbench.benchmarks.agreement_data import DATASETS
    from rewardbench.benchmarks.agreement_sets import BUILTIN_SETS
    from rewardbench.tables import render_table

    rows = [{"name": d.name, "hub": d.hub_id + (f" ({d.config})" if d.config else ""), "split": d.default_split,
             "protocol": d.protocol, "local copy": d.local_layout, "paper": d.paper} for d in DATASETS.values()]
    rows += [{"name": n, "hub": "built in (no download)", "split": "all", "protocol": "drop-ties",
              "local copy": "-", "paper": "-"} for n in BUILTIN_SETS]
    click.echo(json.dumps(rows, indent=2) if as_json else render_table(rows, ["name", "hub", "split", "protocol",
                                                                              "paper"]))


@command("agreement", _EPILOG)
@click.option("--dataset", "-d", default=None, help="Dataset name (see --list-datasets) or a schema file.")
@click.option("--split", default=None, help="Split (default: the dataset's test split).")
@click.option("--data", "data_path", default=None, type=click.Path(exists=True),
              help="A local copy of the dataset (schema file or the official release layout).")
@click.option("--rewards", "-r", default=None, help="Comma-separated reward names.")
@click.option("--protocol", default=None, help="Override the dataset's protocol (pickapic, drop-ties, "
              "imagereward, hpdv2, mmrb2).")
@click.option("--tie-threshold", type=float, default=None, help="pickapic: tie when |p0 - p1| <= this; "
              "drop-ties: tie when |s_i - s_j| <= this (default 0).")
@click.option("--tune-ties-on", default=None, help="pickapic: pick each reward's tie threshold on this split "
              "first (e.g. validation_unique), as PickScore's evaluation does.")
@click.option("--tune-data", default=None, type=click.Path(exists=True), help="A local copy of the --tune-ties-on "
              "split (needed when --data is a local copy).")
@click.option("--limit", type=int, default=None, help="Only the first N items (smoke runs).")
@click.option("--between-rewards", is_flag=True, help="Compare the rewards with each other on --images.")
@click.option("--images", default=None, help="--between-rewards: a scores table, manifest, folder or a built-in "
              "set (photo-distortions).")
@click.option("--group-by", default="prompt", show_default=True, help="--between-rewards: the column whose "
              "rows form pairs (images of one prompt); 'none' pairs every image with every other.")
@click.option("--suite", default=None, help="--between-rewards: a name for the image set on the board "
              "(default: the file or folder name).")
@click.option("--heatmap", type=click.Path(dir_okay=False), default=None, help="Write a clustered heat map PNG.")
@click.option("--device", default=None)
@click.option("--dtype", default=None)
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--weights", "-w", multiple=True, metavar="NAME=PATH", help="Weights for a reward (repeatable).")
@click.option("--random-weights", is_flag=True, help="Random weights (smoke tests; boards refuse the rows).")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the rows (.csv/.parquet/.jsonl).")
@click.option("--scores-out", type=click.Path(dir_okay=False), default=None, help="Write per-image scores.")
@click.option("--to-leaderboard", "board", default=None, help="Append the rows to this board.")
@click.option("--boards-dir", default=None, type=click.Path(file_okay=False), help="Boards folder.")
@click.option("--n-boot", type=int, default=2000, show_default=True, help="Bootstrap replicates.")
@json_option
@no_progress_option
@click.option("--list-datasets", is_flag=True, help="List the known datasets and exit.")
def agreement(dataset, split, data_path, rewards, protocol, tie_threshold, tune_ties_on, tune_data, limit,
              between_rewards, images, group_by, suite, heatmap, device, dtype, batch_size, weights, random_weights,
              out, scores_out, board, boards_dir, n_boot, as_json, no_progress, list_datasets):
    """Agreement of rewards with human preference data (pairwise accuracy under the dataset's protocol, rank
    correlations, per-category rows), or of rewards with each other (--between-rewards)."""
    if list_datasets:
        return _list_datasets(as_json)
    if not rewards:
        usage_exit("--rewards is required")
    if heatmap and not between_rewards:
        usage_exit("--heatmap draws reward x reward agreement: use it with --between-rewards")
    if between_rewards and not images:
        usage_exit("--between-rewards needs --images")
    if not between_rewards and not dataset:
        usage_exit("--dataset is required (or --between-rewards)")
    if board and random_weights:
        usage_exit(f"--to-leaderboard {board} with --random-weights: boards take only results from real weights")
    for what, path in (("--out", out), ("--scores-out", scores_out), ("--heatmap", heatmap)):
        check_out(path, what)
    names = [r.strip() for r in rewards.split(",") if r.strip()]
    kw = {"device": device, "dtype": dtype, "batch_size": batch_size, "pretrained": not random_weights,
          "weights": parse_weights(weights) or None, "progress": not no_progress and sys.stderr.isatty()}
    command_text = command_line("agreement")
    from rewardbench.benchmarks.agreement_data import DatasetUnavailableError

    try:
        with usage_phase(ValueError):
            if between_rewards:
                from rewardbench.benchmarks.agreement import agreement_between

                rows = agreement_between(names, images, group_by=None if group_by == "none" else group_by,
                                         suite=suite, command=command_text, n_boot=n_boot, **kw)
                scores = None
            else:
                from rewardbench.benchmarks.agreement import run_agreement

                res = run_agreement(dataset, names, split=split, path=data_path, limit=limit, protocol=protocol,
                                    tie_threshold=tie_threshold, tune_split=tune_ties_on, tune_path=tune_data,
                                    command=command_text, n_boot=n_boot, **kw)
                rows, scores = res.rows, res.scored.table
    except DatasetUnavailableError as e:
        fail_exit(str(e))
    _write_outputs(rows, scores, out, scores_out, heatmap, as_json)
    if board:
        from rewardbench.leaderboards.board import append_rows

        with usage_phase():
            path = append_rows(board, rows.to_dict("records"), root=boards_dir)
        click.echo(f"appended {len(rows)} rows to {path}", err=True)


def _write_outputs(rows, scores, out, scores_out, heatmap, as_json):
    from rewardbench.results import write_table

    if as_json:
        click.echo(json.dumps(json.loads(rows.to_json(orient="records")), indent=2))
    else:
        from rewardbench.leaderboards.render import markdown_table

        click.echo(markdown_table(rows, ["subject", "judge", "suite", "split", "category", "metric", "value", "ci",
                                         "n", "protocol"]))
    if out:
        write_table(rows, out)
    if scores_out and scores is not None:
        write_table(scores, scores_out)
    if heatmap:
        from rewardbench.leaderboards.plots import heatmap as draw
        from rewardbench.leaderboards.plots import matrix_from_rows

        draw(matrix_from_rows(rows), title=f"reward agreement ({rows['suite'].iloc[0]})", path=heatmap)
        click.echo(f"wrote {heatmap}", err=True)
