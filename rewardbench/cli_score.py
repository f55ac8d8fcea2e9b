"""``rewardbench score``: score a folder or manifest of images with one or more rewards.

Exit codes: 0 every row scored, 1 some rows failed (they are listed), 2 usage error.
"""

from __future__ import annotations

import json
import math
import sys

import click

_EPILOG = """\b
Examples:
  # a folder of images, one prompt per line (in sorted file-name order), results as parquet
  rewardbench score --model jpeg-compressibility,jpeg-incompressibility \\
      --images samples/ --prompts prompts.txt --out scores.parquet
\b
  # a manifest (JSONL/CSV/parquet with `image` and `prompt` columns; paths relative to it),
  # a group reward (diversity of the images of each prompt) beside an image reward, JSON output
  rewardbench score --model vendi,jpeg-compressibility --images manifest.jsonl --group-by prompt --json
\b
  # a constructor option for one reward: the small YOLO detector
  rewardbench score --model detection-score --config detection-score:model=yolov8n --images samples/ --prompts p.txt
\b
  # weights from a local file (offline), on a GPU in bf16
  rewardbench score --model pickscore --weights pickscore=/models/PickScore_v1 \\
      --images samples/ --prompts prompts.txt --device cuda --dtype bf16 --out s.csv
\b
Re-running the same command after an interruption resumes from the shards in OUT.parts/.
Multi-GPU / multi-process: torchrun --nproc_per_node 4 -m rewardbench.cli score ...
  or accelerate launch --multi_gpu --num_processes 4 -m rewardbench.cli score ... (gloo on CPUs)
Exit codes: 0 all rows scored, 1 some rows failed (listed), 2 usage error.
"""


def _fail(msg: str) -> None:
    click.echo(f"error: {msg}", err=True)
    sys.exit(2)


def _parse_weights(items: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for it in items:
        name, sep, path = it.partition("=")
        if not sep or not name.strip() or not path.strip():
            _fail(f"--weights {it!r}: expected NAME=PATH (e.g. --weights pickscore=/models/PickScore_v1)")
        out[name.strip()] = path.strip()
    return out


def _parse_config(items: tuple[str, ...]) -> dict[str, dict]:
    """``NAME:KEY=VALUE`` → ``{NAME: {KEY: VALUE}}``; values are read as YAML (numbers, bools, lists)."""
    import yaml

    out: dict[str, dict] = {}
    for it in items:
        head, sep, value = it.partition("=")
        name, colon, key = head.partition(":")
        if not sep or not colon or not name.strip() or not key.strip():
            _fail(f"--config {it!r}: expected NAME:KEY=VALUE (e.g. --config detection-score:model=yolov8n)")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            parsed = value
        out.setdefault(name.strip(), {})[key.strip()] = value if parsed is None and value else parsed
    return out


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def summary_text(result) -> str:
    """Plain-text summary: one line per reward (mean, std, min, max, scored rows, seconds, weights)."""
    from .tables import render_table

    t = result.table
    rows = []
    for name in result.reward_names:
        col = t[name].astype(float)
        ok = col.dropna()
        rows.append({"reward": name, "mean": _fmt(float(ok.mean())) if len(ok) else "-",
                     "std": _fmt(float(ok.std(ddof=0))) if len(ok) else "-",
                     "min": _fmt(float(ok.min())) if len(ok) else "-", "max": _fmt(float(ok.max())) if len(ok) else "-",
                     "scored": f"{len(ok)}/{len(col)}",
                     "seconds": _fmt(result.summary["reward_seconds"].get(name)),
                     "weights": result.summary["rewards"][name]})
    s = result.summary
    lines = [render_table(rows, ["reward", "mean", "std", "min", "max", "scored", "seconds", "weights"]), ""]
    lines.append(f"{s['rows']} rows, {s['failed']} failed, {s['scored_now']} scored in {s['seconds']:.1f} s "
                 f"({s['images_per_s'] or 0:.1f} images/s)" + (f", {s['resumed']} resumed from an earlier run"
                                                                 if s["resumed"] else "")
                 + (f", text encoder calls: {s['text_encoder_calls']}" if s["text_encoder_calls"] else ""))
    if s.get("out"):
        lines.append(f"results: {s['out']}")
    return "\n".join(lines)


@click.command("score", epilog=_EPILOG, context_settings={"max_content_width": 100})
@click.option("--model", "-m", "models", required=True, metavar="NAME[,NAME...]",
              help="Reward(s) to run, comma-separated (see `rewardbench list`).")
@click.option("--images", "-i", required=True, metavar="DIR|MANIFEST",
              help="A folder of images, or a .jsonl/.csv/.parquet manifest with `image` and `prompt` columns "
                   "(optional `group`).")
@click.option("--prompts", "-p", default=None, metavar="FILE",
              help="For a folder: one prompt per line, in sorted file-name order (or a single line for all).")
@click.option("--out", "-o", default=None, metavar="FILE",
              help="Write results here: .parquet, .csv or .jsonl (one row per image). Enables resume.")
@click.option("--batch-size", "-b", default=16, show_default=True, type=click.IntRange(min=1),
              help="Images per forward pass.")
@click.option("--device", default=None, help="cpu, cuda, cuda:1, mps ... (default: a GPU if there is one).")
@click.option("--dtype", default=None, type=click.Choice(["float32", "fp32", "bf16", "bfloat16", "fp16", "float16"]),
              help="Model precision (half types also turn on autocast).")
@click.option("--weights", "-w", "weights", multiple=True, metavar="NAME=PATH",
              help="Weights for one reward: a local file/folder, hub id or URL. Repeatable.")
@click.option("--config", "-c", "configs", multiple=True, metavar="NAME:KEY=VALUE",
              help="A constructor option for one reward (value read as YAML), e.g. "
                   "detection-score:model=yolov8n or aesthetic:clip_weights=/models/vit-l-14.safetensors. Repeatable.")
@click.option("--random-weights", is_flag=True, help="Skip loading weights (random init; for smoke tests only).")
@click.option("--group-by", type=click.Choice(["prompt"]), default=None,
              help="Group rows by prompt for group-level rewards (fairness, diversity).")
@click.option("--num-workers", default=2, show_default=True, type=click.IntRange(min=0),
              help="Processes decoding images in parallel with the model.")
@click.option("--no-resume", is_flag=True, help="Ignore partial results left in OUT.parts/ and start over.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object (summary, failed rows; rows if no --out).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def score(models, images, prompts, out, batch_size, device, dtype, weights, configs, random_weights, group_by,
          num_workers, no_resume, as_json, no_progress):
    """Score images with one or more rewards; write one row per image (path, prompt, a column per
    reward, the weights used, error) and print a summary."""
    from .data import SourceError, open_source
    from .harness import RESULT_EXTENSIONS, ResumeMismatchError, Scorer
    from .registry import UnknownRewardError
    from .weights import WeightsNotFoundError

    if out is not None and not out.lower().endswith(RESULT_EXTENSIONS):
        _fail(f"--out {out}: the extension picks the format; use one of {', '.join(RESULT_EXTENSIONS)}")
    wmap = _parse_weights(weights)
    cfg = _parse_config(configs)
    try:
        source = open_source(images, prompts)  # usage problems surface before any model loads
    except SourceError as e:
        _fail(str(e))
    try:
        scorer = Scorer(models, batch_size=batch_size, device=device, dtype=dtype, num_workers=num_workers,
                        pretrained=not random_weights, weights=wmap, reward_config=cfg, progress=not no_progress)
    except UnknownRewardError as e:
        _fail(str(e))
    except WeightsNotFoundError as e:
        _fail(str(e))
    except (ValueError, TypeError) as e:
        _fail(str(e))
    try:
        result = scorer.run(source, out=out, group_by=group_by, resume=not no_resume)
    except (SourceError, ResumeMismatchError, ValueError) as e:
        _fail(str(e))
    finally:
        scorer.close()
    if scorer.rank != 0:
        sys.exit(0 if result.n_failed == 0 else 1)
    failed = result.failures()
    if as_json:
        payload = {"summary": result.summary,
                   "failed": [{"image": r.image, "error": r.error} for r in failed.itertuples()]}
        if out is None:
            payload["rows"] = json.loads(result.table.to_json(orient="records"))
        click.echo(json.dumps(payload, indent=2, default=str))
    else:
        if out is None:
            shown = [c for c in ("image", "prompt", "group", *result.reward_names, "error") if c in result.table]
            click.echo(result.table[shown].to_string(index=False, max_colwidth=60))
            click.echo("")
        click.echo(summary_text(result))
        if len(failed):
            click.echo(f"\n{len(failed)} failed rows:", err=True)
            for r in failed.head(50).itertuples():
                msg = r.error if str(r.error).startswith(str(r.image)) else f"{r.image}: {r.error}"
                click.echo(f"  {msg}", err=True)
            if len(failed) > 50:
                click.echo(f"  ... and {len(failed) - 50} more (see the error column of the results)", err=True)
    sys.exit(0 if result.n_failed == 0 else 1)


if __name__ == "__main__":  # pragma: no cover
    score()
