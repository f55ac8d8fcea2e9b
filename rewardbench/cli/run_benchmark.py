"""``rewardbench run-benchmark``: generate, score and compare generators (`rewardbench.benchmarks.run`). The
command's options are `rewardbench.benchmarks.run.BenchmarkRun`'s fields by name (generation settings prefixed
``gen_``): the command hands them over as one object."""

from __future__ import annotations

import json
import warnings

import click

from .common import (
    check_out,
    command,
    command_line,
    fail_exit,
    json_option,
    parse_config,
    parse_pairs,
    parse_weights,
    usage_exit,
    usage_phase,
)

_EPILOG = """\b
Examples:
  # a fine-tune (the trainer's final/ LoRA) against its base, judged by the preference models
  rewardbench run-benchmark --suite preference --model runs/ir/final \\
      --baseline stabilityai/stable-diffusion-2-base --out bench/ir_vs_sd2
\b
  # pre-generated images of several models (a manifest with image, prompt, model columns)
  rewardbench run-benchmark --suite drawbench --images generated.jsonl --baseline sd-1.5 --out bench/drawbench \
      --to-leaderboard generators        # and append the results to a leaderboard
\b
  # fairness: 16 images per occupation, statistical parity of skin tone and gender
  rewardbench run-benchmark --suite fairness --model runs/skin/final \\
      --baseline stabilityai/stable-diffusion-2-base --images-per-prompt 16 --out bench/skin
\b
  # offline smoke run: two tiny random pipelines (weight seeds 1 and 0), real offline judges
  rewardbench run-benchmark --suite fairness --model ft=tiny:1 --baseline tiny --limit 3 --images-per-prompt 2 \\
      --steps 4 --resolution 64 --judges jpeg-compressibility,skin-tone-parity --out bench/smoke
\b
  # local copies of official prompt files (offline), what would run, and the suites
  rewardbench run-benchmark --suite partiprompts --path partiprompts=PartiPrompts.tsv --model A --baseline B --dry-run
  rewardbench run-benchmark --list-suites
\b
Generators (--model, --baseline): a hub id or local diffusers folder; a trainer's final/ folder (LoRA or UNet on
the base its run names); BASE+LORA; tiny or tiny:SEED (random weights, offline). Name one with NAME=SOURCE.
Re-running the same command resumes (generation and scoring, even after kill -9); new --model generators and
new --judges reuse the images already made; any other change on the same --out is refused.
Exit codes: 0 done (the report written, every image scored); 1 the report written but some images failed to
score (left out, counted), or a prompt source could not be read; 2 usage error (an unknown suite or judge, a bad
option, missing judge weights, an --out that cannot be written, a changed configuration on the same --out, a
group judge (parity, diversity) whose every (model, prompt) group has fewer images than it measures: give more
images per prompt, or --allow-small-groups).
"""


def _judges(ctx, param, value):
    return tuple(j.strip() for j in value.split(",") if j.strip()) if value else None


def _list_suites(as_json: bool) -> None:
    from rewardbench.benchmarks.suite import list_benchmark_suites, load_benchmark_suite
    from rewardbench.tables import render_table

    rows = []
    for name, desc in list_benchmark_suites().items():
        s = load_benchmark_suite(name)
        sources = [p.prompt_set for p in s.prompts]
        rows.append({"name": name, "prompts": ", ".join(sources), "judges": ", ".join(s.judges),
                     "images/prompt": s.images_per_prompt, "description": desc,
                     "prompt sources": ", ".join(sources[:3]) + (f" (+{len(sources) - 3} more)" if len(sources) > 3
                                                                 else "")})
    if as_json:
        click.echo(json.dumps([{k: v for k, v in r.items() if k != "prompt sources"} for r in rows], indent=2))
        return
    click.echo(render_table(rows, ["name", "images/prompt", "prompt sources", "judges"]))
    click.echo("\nA suite may also be a YAML file of the same form (see rewardbench.benchmarks.suite).")


@command("run-benchmark", _EPILOG)
@click.option("--suite", "-s", default=None, metavar="NAME|YAML",
              help="A benchmark suite (--list-suites) or a suite's YAML file.")
@click.option("--list-suites", is_flag=True, help="List the built-in benchmark suites and exit.")
@click.option("--model", "-m", "models", multiple=True, metavar="[NAME=]SOURCE", help="A generator. Repeatable.")
@click.option("--baseline", "-b", default=None, metavar="NAME|[NAME=]SOURCE",
              help="What the models are compared with: a model's name, or a generator.")
@click.option("--images", "-i", default=None, metavar="MANIFEST|DIR",
              help="Pre-generated images: a .jsonl/.csv/.parquet with image, prompt and optional model, index (or "
                   "seed), category columns; or a folder of one model's images (with --prompts).")
@click.option("--prompts", "image_prompts", default=None, metavar="FILE", help="Prompts of an --images folder.")
@click.option("--out", "-o", default=None, metavar="DIR", help="The run's folder (images, scores, reports).")
@click.option("--path", "paths", multiple=True, metavar="SET=FILE",
              callback=lambda ctx, p, v: parse_pairs(v, "--path", "partiprompts=PartiPrompts.tsv", "SET=FILE"),
              help="A local copy of a prompt set's official file, e.g. partiprompts=PartiPrompts.tsv. Repeatable.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most N prompts from each prompt source.")
@click.option("--images-per-prompt", "-n", type=click.IntRange(min=1), default=None, help="Default: the suite's.")
@click.option("--judges", "-j", default=None, metavar="NAME[,NAME...]", callback=_judges,
              help="Judges (rewards) instead of the suite's.")
@click.option("--weights", "-w", multiple=True, metavar="NAME=PATH", callback=lambda ctx, p, v: parse_weights(v),
              help="Weights for one judge. Repeatable.")
@click.option("--config", "-c", "judge_config", multiple=True, metavar="NAME:KEY=VALUE",
              callback=lambda ctx, p, v: parse_config(v),
              help="A constructor option for one judge, e.g. imagereward:tiny=True. Repeatable.")
@click.option("--random-weights", is_flag=True, help="Judges with random weights (tests only; labelled everywhere).")
@click.option("--allow-small-groups", is_flag=True,
              help="Score group judges (parity, diversity) on (model, prompt) groups of fewer images than they "
                   "measure even when every group is (e.g. one image per prompt): counted in their numbers, marked "
                   "in every table. Without it such a run is refused, and smaller groups among others are marked "
                   "and left out.")
@click.option("--steps", "gen_steps", type=click.IntRange(min=1), default=50, show_default=True, help="DDIM steps.")
@click.option("--guidance-scale", "gen_guidance_scale", type=float, default=7.5, show_default=True,
              help="Classifier-free guidance.")
@click.option("--resolution", "gen_resolution", type=click.IntRange(min=8), default=512, show_default=True,
              help="Image side (px).")
@click.option("--negative-prompt", "gen_negative_prompt", default="", help="Negative prompt for every image.")
@click.option("--dtype", "gen_dtype", default=None, type=click.Choice(["fp32", "fp16", "bf16"]),
              help="Generator precision.")
@click.option("--device", default=None, help="Device for generation and judges (default: a GPU if any).")
@click.option("--gen-batch-size", "gen_batch_size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Images per pipeline call.")
@click.option("--generate-replicas", type=click.IntRange(min=1), default=1, show_default=True,
              help="Generator replicas, one per GPU, on Ray (pip install 'rewardbench[ray]'): the prompts are sharded, "
                   "the images are those of one replica.")
@click.option("--seed", type=int, default=0, show_default=True, help="Base of the per-(prompt, index) noise seeds.")
@click.option("--batch-size", "score_batch_size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Images per judge call.")
@click.option("--num-workers", type=click.IntRange(min=0), default=2, show_default=True, help="Image decode workers.")
@click.option("--tie-tol", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="|model - baseline| <= this is a tie (half a win).")
@click.option("--n-boot", type=click.IntRange(min=100), default=2000, show_default=True, help="Bootstrap resamples.")
@click.option("--plots/--no-plots", default=True, show_default=True, help="Draw the PNG plots.")
@click.option("--to-leaderboard", "to_leaderboard", default=None, metavar="BOARD",
              help="Append the results to this leaderboard (real weights only: random judges or generators are "
                   "refused before generating).")
@click.option("--dry-run", is_flag=True, help="Print what would be generated and scored, and exit.")
@json_option
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bars.")
def run_benchmark(list_suites, dry_run, as_json, **options):
    """Generate images with one or more models (or read pre-generated ones), score them with a suite's judges,
    and compare each model with a baseline: win rates with confidence intervals and sign tests, means,
    per-category breakdowns, a Bradley-Terry ranking, group rewards, the cross-reward table, plots and a report."""
    from rewardbench.benchmarks.prompt_sets import PromptSourceError

    if list_suites:
        _list_suites(as_json)
        return
    if options["out"] is None and not dry_run:
        usage_exit("--out DIR is required (the run's folder)")
    if not dry_run:
        check_out(options["out"], folder=True)
    from rewardbench.benchmarks.run import BenchmarkRun, make_plan
    from rewardbench.benchmarks.run import run_benchmark as run

    cfg = BenchmarkRun.from_options(**{**options, "out": options["out"] or ""},
                                    command=command_line("run-benchmark"))
    try:
        with usage_phase(ValueError), warnings.catch_warnings():
            warnings.showwarning = _show_warning
            if dry_run:
                plan = make_plan(cfg)
                click.echo(json.dumps({"plan": plan.describe().splitlines(), "images": plan.counts(),
                                       "judges": plan.judges}, indent=2) if as_json else plan.describe())
                return
            result = run(cfg)
    except (PromptSourceError, OSError, RuntimeError) as e:
        fail_exit(str(e))
    _print_result(result, as_json)
    raise SystemExit(1 if result.summary["failed"] else 0)


def _show_warning(message, category, *args, **kwargs) -> None:
    """A warning of the run (a plan's note: small groups, prompts that are not the suite's) as one line."""
    click.echo(f"warning: {' '.join(str(message).split())}", err=True)


def _print_result(result, as_json: bool) -> None:
    from rewardbench.benchmarks.report import cross_reward
    from rewardbench.tables import render_table

    if as_json:
        click.echo(json.dumps({"summary": result.summary, "results": json.loads(result.rows.to_json(orient="records"))},
                              indent=2, default=str))
        return
    cross = cross_reward(result.rows)
    cols = list(cross.columns)
    rows = [{c: (f"{v:.4g}" if isinstance(v, float) else v) for c, v in r.items()} for r in cross.to_dict("records")]
    click.echo(render_table(rows, cols))
    s = result.summary
    click.echo(f"\n{s['images']} images ({s['generated_now']} generated now, {s['scored_now']} scored now, "
               f"{s['failed']} failed); report: {result.out / 'report.md'}"
               + (f"; leaderboard: {s['leaderboard']}" if s.get("leaderboard") else ""))
