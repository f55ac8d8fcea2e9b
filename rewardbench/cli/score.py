"""``rewardbench score``: score a folder or manifest of images with one or more rewards (`rewardbench.Scorer`;
the checks that refuse a run before any model loads are `rewardbench.preflight.plan_run`, as in Python)."""

from __future__ import annotations

import json
import math
import sys

import click

from .common import command, json_option, no_progress_option, parse_config, parse_weights, usage_exit, usage_phase

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
  # several generators in one manifest (a `model` column, kept in the results like every other
  # column): one group per prompt and model, and a per-group table
  rewardbench score --model skin-tone-parity,vendi --images m.jsonl --group-by prompt,model \\
      --out s.parquet --group-table groups.parquet
\b
  # a constructor option for one reward: the small YOLO detector
  rewardbench score --model detection-score --config detection-score:model=yolov8n --images samples/ --prompts p.txt
\b
  # weights from a local file (offline), on a GPU in bf16
  rewardbench score --model pickscore --weights pickscore=/models/PickScore_v1 \\
      --images samples/ --prompts prompts.txt --device cuda --dtype bf16 --out s.csv
\b
Re-running the same command after an interruption resumes from the shards in OUT.parts/ and scores
failed rows again (--no-retry-failed keeps them); a finished run leaves one results file, which is
replaced only with --overwrite. An input changed since (a manifest row, an image file's size or
modification time; --content-hash: its bytes) is another run: refused, never mixed or kept.
Unexpected errors print one line (--debug for the traceback).
A Ray cluster: --engine ray [--address auto] [--replicas 4 --gpus-per-replica 1] (decoding in Ray Data
tasks, each reward on a pool of actors sized to fit the cluster; resumable the same way); --service NAME uses a running
`rewardbench serve --name NAME` instead of serving the rewards for the run.
Multi-GPU / multi-process: torchrun --nproc_per_node 4 -m rewardbench.cli score ...
  or accelerate launch --multi_gpu --num_processes 4 -m rewardbench.cli score ... (gloo on CPUs)
Exit codes: 0 all rows scored, 1 some rows failed (listed), 2 usage error.
"""


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def summary_text(result) -> str:
    """Plain-text summary: one line per reward (mean, std, min, max over what it scores: rows for image
    rewards, groups for group rewards, each group once), then the run's counts."""
    from rewardbench.tables import render_table

    s = result.summary
    rows = []
    for name in result.reward_names:
        st = s["scores"][name]
        rows.append({"reward": name, "over": st["over"], "mean": _fmt(st["mean"]), "std": _fmt(st["std"]),
                     "min": _fmt(st["min"]), "max": _fmt(st["max"]), "scored": f"{st['n']}/{st['of']}",
                     "seconds": _fmt(s["reward_seconds"].get(name)), "weights": s["rewards"][name]})
    lines = [render_table(rows, ["reward", "over", "mean", "std", "min", "max", "scored", "seconds", "weights"]), ""]
    counts = f"{s['rows']} rows: {s['scored']} scored, {s['failed']} failed"
    if s.get("groups") is not None:
        counts += f"; {s['groups']} groups by {','.join(s['group_by'])}"
    counts += (f"; {s['processed_now']} processed in {s['seconds']:.1f} s ({s['images_per_s'] or 0:.1f} images/s)"
               + (f", {s['resumed']} resumed from an earlier run" if s["resumed"] else "")
               + (f", text encoder calls: {s['text_encoder_calls']}" if s["text_encoder_calls"] else ""))
    lines.append(counts)
    for name in result.reward_names:
        st = s["scores"][name]
        if st.get("too_small"):
            lines.append(f"{name}: {st['too_small']} of {st['of']} groups have fewer images than it measures "
                         f"(marked in {name}.group_too_small); "
                         + ("counted above, as asked (--allow-small-groups)" if st.get("too_small_counted")
                            else "left out of the statistics above"))
    if s.get("out"):
        lines.append(f"results: {s['out']}")
    if s.get("group_table"):
        lines.append(f"groups: {s['group_table']}")
    if s.get("parts_kept"):
        lines.append(f"failed rows are kept in {s['parts_kept']}: re-running the same command retries them "
                     "(--no-retry-failed accepts them and leaves one results file)")
    return "\n".join(lines)


@command("score", _EPILOG)
@click.option("--model", "-m", "models", required=True, metavar="NAME[,NAME...]",
              help="Reward(s) to run, comma-separated (see `rewardbench list`).")
@click.option("--images", "-i", required=True, metavar="DIR|MANIFEST",
              help="A folder of images, or a .jsonl/.csv/.parquet manifest with `image` and `prompt` columns "
                   "(optional `group`; every other column is kept in the results).")
@click.option("--prompts", "-p", default=None, metavar="FILE",
              help="For a folder: one prompt per line, in sorted file-name order (or a single line for all).")
@click.option("--out", "-o", default=None, metavar="FILE",
              help="Write results here: .parquet, .csv or .jsonl (one row per image). Enables resume.")
@click.option("--group-table", default=None, metavar="FILE",
              help="Also write one row per group (key columns, size, each group reward's value and group details).")
@click.option("--batch-size", "-b", default=16, show_default=True, type=click.IntRange(min=1),
              help="Images per forward pass.")
@click.option("--max-batch-pixels", default=None, type=click.IntRange(min=1), metavar="N",
              help="At most N pixels (width x height, summed) in one batch; a larger image or group is a batch "
                   "of its own. Default: the per-image cap ($REWARDBENCH_MAX_PIXELS, 8192x8192), so a batch "
                   "needs no more memory than the largest image that is decoded at all.")
@click.option("--device", default=None, help="cpu, cuda, cuda:1, mps ... (default: a GPU if there is one).")
@click.option("--dtype", default=None, type=click.Choice(["float32", "fp32", "bf16", "bfloat16", "fp16", "float16"]),
              help="Model precision (half types also turn on autocast).")
@click.option("--weights", "-w", "weights", multiple=True, metavar="NAME=PATH",
              help="Weights for one reward: a local file/folder, hub id or URL. Repeatable.")
@click.option("--config", "-c", "configs", multiple=True, metavar="NAME:KEY=VALUE",
              help="A constructor option for one reward (value read as YAML), e.g. "
                   "detection-score:model=yolov8n or aesthetic:clip_weights=/models/vit-l-14.safetensors. Repeatable.")
@click.option("--random-weights", is_flag=True, help="Skip loading weights (random init; for smoke tests only).")
@click.option("--group-by", default=None, metavar="COLUMN[,COLUMN...]",
              help="Columns whose values form a group for group-level rewards (fairness, diversity): prompt, "
                   "or e.g. prompt,model when the manifest holds several generators.")
@click.option("--allow-small-groups", is_flag=True,
              help="Score groups smaller than a group reward measures (e.g. one image: Vendi 1.0, the worst parity) "
                   "even when every group is: marked, and counted in the summary. Without it, a run whose every "
                   "group is too small is refused, and smaller groups are marked and left out of the summary.")
@click.option("--num-workers", default=2, show_default=True, type=click.IntRange(min=0),
              help="Processes decoding images in parallel with the model (--engine ray: decoding tasks at once at "
                   "most; default there: as many as the cluster's CPUs allow).")
@click.option("--no-resume", is_flag=True, help="Ignore partial results left in OUT.parts/ and start over.")
@click.option("--no-retry-failed", is_flag=True, help="On resume, keep rows that failed before instead of "
              "scoring them again.")
@click.option("--overwrite", is_flag=True, help="Replace an existing results table of another (or a finished) run.")
@click.option("--content-hash", is_flag=True, help="Tell a resumed run from another by the image files' bytes "
              "(SHA-256, every file read) instead of their sizes and modification times.")
@click.option("--engine", default="local", show_default=True, type=click.Choice(["local", "ray"]),
              help="ray: decode in Ray Data tasks across a cluster, each reward on a pool of Ray actors "
                   "(pip install 'rewardbench[ray]'); the same table as local.")
@click.option("--address", default=None, metavar="ADDRESS", help="--engine ray: the cluster (auto, ray://HOST:PORT; "
              "default: $RAY_ADDRESS or a running one, else a local Ray).")
@click.option("--replicas", default=1, show_default=True, type=click.IntRange(min=1),
              help="--engine ray: actors per reward.")
@click.option("--gpus-per-replica", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="--engine ray: GPUs of each reward actor (1: one GPU each; 0.5: two share one).")
@click.option("--cpus-per-replica", default=None, type=click.FloatRange(min=0),
              help="--engine ray: CPUs of each reward actor (default: the cluster's free CPUs less a decoding task's, "
                   "shared among the actors, at most 1 each). A plan the cluster cannot hold exits 2.")
@click.option("--no-resource-check", is_flag=True, help="--engine ray: do not refuse reward actors the cluster "
              "cannot hold now (a cluster an autoscaler will grow).")
@click.option("--service", default=None, metavar="NAME", help="--engine ray: use this running reward service "
              "(`rewardbench serve --name NAME`) instead of starting one for the run.")
@json_option
@no_progress_option
def score(models, images, prompts, out, group_table, batch_size, max_batch_pixels, device, dtype, weights, configs,
          random_weights, group_by, allow_small_groups, num_workers, no_resume, no_retry_failed, overwrite,
          content_hash, engine, address, replicas, gpus_per_replica, cpus_per_replica, no_resource_check, service,
          as_json, no_progress):
    """Score images with one or more rewards; write one row per image (path as given, prompt, the
    input's other columns, a column per reward and its details, error) and print a summary (group
    rewards: over groups, each group once; the weights each reward ran with)."""
    from rewardbench.harness import Scorer
    from rewardbench.preflight import plan_run

    wmap, cfg = parse_weights(weights), parse_config(configs)
    ray_only = [f for f, v in (("--address", address), ("--service", service), ("--replicas", replicas != 1),
                               ("--gpus-per-replica", gpus_per_replica != 0),
                               ("--cpus-per-replica", cpus_per_replica is not None),
                               ("--no-resource-check", no_resource_check)) if v]
    if engine != "ray" and ray_only:
        usage_exit(f"{', '.join(ray_only)}: only with --engine ray")
    workers_given = click.get_current_context().get_parameter_source("num_workers").name != "DEFAULT"
    if engine == "ray" and workers_given and num_workers < 1:
        usage_exit("--num-workers 0 with --engine ray: decoding runs in Ray tasks; give at least 1 (or leave it out)")
    serving = [f for f, v in (("--replicas", replicas != 1), ("--gpus-per-replica", gpus_per_replica != 0),
                              ("--cpus-per-replica", cpus_per_replica is not None)) if v]
    if service is not None and serving:  # the running service's replicas are as it was started
        usage_exit(f"{', '.join(serving)}: not with --service (the running service has its own replicas; set them "
                   "with `rewardbench serve`)")
    with usage_phase(ValueError, TypeError, OSError):  # all that can be refused before a model loads
        plan = plan_run(models, images, prompts=prompts, group_by=group_by, out=out, group_table=group_table,
                        device=device, weights=wmap, config=cfg, allow_small_groups=allow_small_groups)
    for note in plan.notes:
        click.echo(f"warning: {note}", err=True)
    with usage_phase(ValueError, TypeError):
        bound = {} if max_batch_pixels is None else {"max_batch_pixels": max_batch_pixels}
        if engine == "ray":
            from rewardbench.ray_scoring import RayScorer

            scorer = RayScorer(list(plan.names), batch_size=batch_size, replicas=replicas, num_gpus=gpus_per_replica,
                               num_cpus=cpus_per_replica, decode_tasks=num_workers if workers_given else None,
                               check_resources=not no_resource_check,
                               device=device, dtype=dtype, pretrained=not random_weights, weights=wmap,
                               reward_config=cfg, address=address, service=service, progress=not no_progress,
                               **bound)
        else:
            scorer = Scorer(list(plan.names), batch_size=batch_size, device=device, dtype=dtype,
                            num_workers=num_workers, pretrained=not random_weights, weights=wmap, reward_config=cfg,
                            progress=not no_progress, **bound)
    try:
        with usage_phase(ValueError):
            result = scorer.run(plan, resume=not no_resume, overwrite=overwrite, retry_failed=not no_retry_failed,
                                content_hash=content_hash)
    finally:
        scorer.close()
    if scorer.rank != 0:
        sys.exit(0 if result.n_failed == 0 else 1)
    _report(result, out, as_json)
    sys.exit(0 if result.n_failed == 0 else 1)


def _report(result, out, as_json: bool) -> None:
    failed = result.failures()
    if as_json:
        payload = {"summary": result.summary,
                   "failed": [{"image": r.image, "error": r.error} for r in failed.itertuples()]}
        if out is None:
            payload["rows"] = json.loads(result.table.to_json(orient="records"))
            if result.groups is not None:
                payload["groups"] = json.loads(result.groups.to_json(orient="records"))
        click.echo(json.dumps(payload, indent=2, default=str))
        return
    if out is None:
        image_rewards = [n for n in result.reward_names if result.summary["scores"][n]["over"] == "rows"]
        shown = [c for c in ("image", "prompt", "group", *image_rewards, "error") if c in result.table]
        click.echo(result.table[shown].to_string(index=False, max_colwidth=60))
        click.echo("")
    if result.groups is not None and len(result.groups) and out is None:
        cols = [*result.group_by, "size",
                *[c for c in result.groups.columns if c in result.reward_names or c == "note" or c.endswith(".note")]]
        click.echo(result.groups[cols].to_string(index=False, max_colwidth=70))
        click.echo("")
    click.echo(summary_text(result))
    if len(failed):
        click.echo(f"\n{len(failed)} failed rows:", err=True)
        for r in failed.head(50).itertuples():
            msg = r.error if str(r.error).startswith(str(r.image)) else f"{r.image}: {r.error}"
            click.echo(f"  {msg}", err=True)
        if len(failed) > 50:
            click.echo(f"  ... and {len(failed) - 50} more (see the error column of the results)", err=True)
