"""``rewardbench agreement``: how well rewards agree with human preferences, and with each other.

Exit codes: 0 success, 1 the data or weights could not be loaded (the message says where it looked)
or a board refused a row, 2 usage error.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import click

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
"""


def _fail(msg: str, code: int = 1):
    click.echo(f"error: {msg}", err=True)
    sys.exit(code)


def _weights(items) -> dict[str, str]:
    out = {}
    for it in items:
        name, sep, path = it.partition("=")
        if not sep or not name or not path:
            raise click.UsageError(f"--weights {it!r}: expected NAME=PATH")
        out[name] = path
    return out


def _list_datasets(as_json: bool):
    from rewardbench.tables import render_table

    from .agreement_data import DATASETS
    from .agreement_sets import BUILTIN_SETS

    rows = [{"name": d.name, "hub": d.hub_id + (f" ({d.config})" if d.config else ""), "split": d.default_split,
             "protocol": d.protocol, "local copy": d.local_layout, "paper": d.paper} for d in DATASETS.values()]
    rows += [{"name": n, "hub": "built in (no download)", "split": "all", "protocol": "drop-ties",
              "local copy": "-", "paper": "-"} for n in BUILTIN_SETS]
    click.echo(json.dumps(rows, indent=2) if as_json else render_table(rows, ["name", "hub", "split", "protocol",
                                                                              "paper"]))


def _pre_scored(path: str, names: list[str]):
    """A results table that already has a column for every reward (``rewardbench score`` output), or None."""
    from rewardbench.results import RESULT_EXTENSIONS, read_table

    p = Path(path)
    if not (p.is_file() and p.suffix.lower() in RESULT_EXTENSIONS):
        return None
    table = read_table(p)
    if not set(names) <= set(table.columns):
        return None
    first = table["weights"].dropna().head(1).tolist() if "weights" in table.columns else []
    weights = json.loads(first[0]) if first and str(first[0]).startswith("{") else {}
    return table, {n: str(weights.get(n, "unknown (pre-scored table)")) for n in names}


def _between_rewards(names, images, group_by, suite, kw, args):
    """Reward-vs-reward rows on an image set (a pre-scored table, a manifest or a folder)."""
    import rewardbench

    from .agreement import image_rewards, image_rows, reward_agreement
    from .agreement_sets import BUILTIN_SETS

    names = image_rewards(names)
    source = image_rows(BUILTIN_SETS[images]()) if images in BUILTIN_SETS else images
    pre = _pre_scored(images, names) if isinstance(source, str) else None
    if pre is not None:
        table, weights = pre
    else:
        scorer = rewardbench.Scorer(names, num_workers=0, **kw)
        try:
            table = scorer.run(source).table
            weights = {s.name: str(s.weights_used) for s in scorer.slots}
        finally:
            scorer.close()
    hib = {n: rewardbench.get_spec(n).higher_is_better for n in names}
    return reward_agreement(table, names, higher_is_better=hib, weights=weights, suite=suite or Path(images).stem,
                            cluster=group_by, command=args["command"], n_boot=args["n_boot"])


@click.command("agreement", epilog=_EPILOG, context_settings={"help_option_names": ["-h", "--help"],
                                                              "max_content_width": 110})
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
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@click.option("--list-datasets", is_flag=True, help="List the known datasets and exit.")
def agreement(dataset, split, data_path, rewards, protocol, tie_threshold, tune_ties_on, tune_data, limit,
              between_rewards, images, group_by, suite, heatmap, device, dtype, batch_size, weights, random_weights,
              out, scores_out, board, boards_dir, n_boot, as_json, list_datasets):
    """Agreement of rewards with human preference data (pairwise accuracy under the dataset's protocol, rank
    correlations, per-category rows), or of rewards with each other (--between-rewards)."""
    if list_datasets:
        return _list_datasets(as_json)
    if not rewards:
        raise click.UsageError("--rewards is required")
    if heatmap and not between_rewards:
        raise click.UsageError("--heatmap draws reward x reward agreement: use it with --between-rewards")
    names = [r.strip() for r in rewards.split(",") if r.strip()]
    kw = {"device": device, "dtype": dtype, "batch_size": batch_size, "pretrained": not random_weights,
          "weights": _weights(weights) or None, "progress": sys.stderr.isatty()}
    args = {"command": "rewardbench agreement " + shlex.join(sys.argv[2:] if len(sys.argv) > 2 else []),
            "n_boot": n_boot}
    from rewardbench import UnknownRewardError, WeightsNotFoundError
    from rewardbench.leaderboards.board import RandomWeightsError, append_rows

    from .agreement_data import DatasetUnavailableError

    try:
        if between_rewards:
            if not images:
                raise click.UsageError("--between-rewards needs --images")
            rows = _between_rewards(names, images, None if group_by == "none" else group_by, suite, kw, args)
            scores = None
        else:
            if not dataset:
                raise click.UsageError("--dataset is required (or --between-rewards)")
            from .agreement import run_agreement

            res = run_agreement(dataset, names, split=split, path=data_path, limit=limit, protocol=protocol,
                                tie_threshold=tie_threshold, tune_split=tune_ties_on, tune_path=tune_data,
                                command=args["command"],
                                n_boot=n_boot, **kw)
            rows, scores = res.rows, res.scored.table
    except UnknownRewardError as e:
        raise click.UsageError(str(e)) from None
    except (DatasetUnavailableError, WeightsNotFoundError) as e:
        _fail(str(e))
    except ValueError as e:
        _fail(str(e), 2)
    _write_outputs(rows, scores, out, scores_out, heatmap, as_json)
    if board:
        try:
            path = append_rows(board, rows.to_dict("records"), root=boards_dir)
        except RandomWeightsError as e:
            _fail(f"{e}. Nothing was written to the board.")
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
