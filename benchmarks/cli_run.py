"""``rewardbench run-benchmark``: generate, score and compare generators (see `rewardbench.benchmarks.run`).

Exit codes: 0 the report was written and every image scored; 1 the report was written but some images
failed to score (left out, counted), or a prompt source could not be read; 2 usage error (unknown suite or
judge, bad option, missing judge weights, a changed configuration on the same --out).
"""

from __future__ import annotations

import json
import re
import shlex
import sys

import click

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
Exit codes: 0 done, 1 some images not scored or a prompt source unreadable, 2 usage error.
"""


def _fail(msg: str) -> None:
    click.echo(f"error: {msg}", err=True)
    sys.exit(2)


def _local_copies(items: tuple[str, ...]) -> dict[str, str]:
    """``--path SOURCE=FILE`` options as ``{SOURCE: FILE}``."""
    bad = [it for it in items if not re.fullmatch(r"[^=\s]+=.+", it.strip())]
    if bad:
        _fail(f"--path {bad[0]!r}: expected SOURCE=FILE (e.g. --path partiprompts=PartiPrompts.tsv)")
    return dict(it.strip().split("=", 1) for it in items)


def _list_suites(as_json: bool) -> None:
    from rewardbench.tables import render_table

    from .suite import list_benchmark_suites, load_benchmark_suite

    rows = []
    for name, desc in list_benchmark_suites().items():
        s = load_benchmark_suite(name)
        sources = [p.suite for p in s.prompts]
        rows.append({"name": name, "prompts": ", ".join(sources), "judges": ", ".join(s.judges),
                     "images/prompt": s.images_per_prompt, "description": desc,
                     "prompt sources": ", ".join(sources[:3]) + (f" (+{len(sources) - 3} more)" if len(sources) > 3
                                                                 else "")})
    if as_json:
        click.echo(json.dumps([{k: v for k, v in r.items() if k != "prompt sources"} for r in rows], indent=2))
        return
    click.echo(render_table(rows, ["name", "images/prompt", "prompt sources", "judges"]))
    click.echo("\nA suite may also be a YAML file of the same form (see rewardbench.benchmarks.suite).")


@click.command("run-benchmark", epilog=_EPILOG, context_settings={"max_content_width": 110,
                                                                   "help_option_names": ["-h", "--help"]})
@click.option("--suite", "-s", default=None, metavar="NAME|YAML",
              help="A benchmark suite (--list-suites) or a YAML spec.")
@click.option("--list-suites", is_flag=True, help="List the built-in benchmark suites and exit.")
@click.option("--model", "-m", "models", multiple=True, metavar="[NAME=]SOURCE", help="A generator. Repeatable.")
@click.option("--baseline", "-b", default=None, metavar="NAME|[NAME=]SOURCE",
              help="What the models are compared with: a model's name, or a generator.")
@click.option("--images", "-i", default=None, metavar="MANIFEST|DIR",
              help="Pre-generated images: a .jsonl/.csv/.parquet with image, prompt and optional model, index (or "
                   "seed), category columns; or a folder of one model's images (with --prompts).")
@click.option("--prompts", "image_prompts", default=None, metavar="FILE", help="Prompts of an --images folder.")
@click.option("--out", "-o", default=None, metavar="DIR", help="The run's folder (images, scores, reports).")
@click.option("--path", "paths", multiple=True, metavar="SOURCE=FILE",
              help="A local copy of a prompt source's official file, e.g. partiprompts=PartiPrompts.tsv. Repeatable.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most N prompts from each prompt source.")
@click.option("--images-per-prompt", "-n", type=click.IntRange(min=1), default=None, help="Default: the suite's.")
@click.option("--judges", "-j", default=None, metavar="NAME[,NAME...]", help="Judges (rewards) instead of the suite's.")
@click.option("--weights", "-w", multiple=True, metavar="NAME=PATH", help="Weights for one judge. Repeatable.")
@click.option("--config", "-c", "configs", multiple=True, metavar="NAME:KEY=VALUE",
              help="A constructor option for one judge, e.g. imagereward:tiny=True. Repeatable.")
@click.option("--random-weights", is_flag=True, help="Judges with random weights (tests only; labelled everywhere).")
@click.option("--steps", type=click.IntRange(min=1), default=50, show_default=True, help="DDIM steps.")
@click.option("--guidance-scale", type=float, default=7.5, show_default=True, help="Classifier-free guidance.")
@click.option("--resolution", type=click.IntRange(min=8), default=512, show_default=True, help="Image side (px).")
@click.option("--negative-prompt", default="", help="Negative prompt for every image.")
@click.option("--dtype", default=None, type=click.Choice(["fp32", "fp16", "bf16"]), help="Generator precision.")
@click.option("--device", default=None, help="Device for generation and judges (default: a GPU if any).")
@click.option("--gen-batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Images per pipeline call.")
@click.option("--seed", type=int, default=0, show_default=True, help="Base of the per-(prompt, index) noise seeds.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True, help="Images per judge call.")
@click.option("--num-workers", type=click.IntRange(min=0), default=2, show_default=True, help="Image decode workers.")
@click.option("--tie-tol", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="|model - baseline| <= this is a tie (half a win).")
@click.option("--n-boot", type=click.IntRange(min=100), default=2000, show_default=True, help="Bootstrap resamples.")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
@click.option("--to-leaderboard", "board", default=None, metavar="BOARD",
              help="Append the results to this leaderboard (real weights only: random judges or generators are "
                   "refused before generating).")
@click.option("--dry-run", is_flag=True, help="Print what would be generated and scored, and exit.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def run_benchmark(suite, list_suites, models, baseline, images, image_prompts, out, paths, limit, images_per_prompt,
                  judges, weights, configs, random_weights, steps, guidance_scale, resolution, negative_prompt, dtype,
                  device, gen_batch_size, seed, batch_size, num_workers, tie_tol, n_boot, no_plots, board, dry_run,
                  as_json, no_progress):
    """Generate images with one or more models (or read pre-generated ones), score them with a suite's judges,
    and compare each model with a baseline: win rates with confidence intervals and sign tests, means,
    per-category breakdowns, a Bradley-Terry ranking, group rewards, the cross-reward table, plots and a report."""
    from rewardbench.cli_score import _parse_config, _parse_weights
    from rewardbench.data import SourceError
    from rewardbench.registry import UnknownRewardError
    from rewardbench.suites import SuiteSourceError, UnknownSuiteError
    from rewardbench.weights import WeightsNotFoundError

    from .generators import GenerationSettings
    from .run import BenchmarkRun, ConfigChangedError, make_plan
    from .run import run_benchmark as run

    if list_suites:
        _list_suites(as_json)
        return
    if out is None and not dry_run:
        _fail("--out DIR is required (the run's folder)")
    settings = GenerationSettings(steps=steps, guidance_scale=guidance_scale, resolution=resolution,
                                  negative_prompt=negative_prompt, dtype=dtype, device=device,
                                  batch_size=gen_batch_size)
    cfg = BenchmarkRun(out=out or "", suite=suite, models=tuple(models), baseline=baseline, images=images,
                       image_prompts=image_prompts, paths=_local_copies(paths),
                       limit=limit, images_per_prompt=images_per_prompt,
                       judges=tuple(j.strip() for j in judges.split(",") if j.strip()) if judges else None,
                       weights=_parse_weights(weights),
                       judge_config=_parse_config(configs), random_weights=random_weights, generation=settings,
                       seed=seed, score_batch_size=batch_size, score_device=device, num_workers=num_workers,
                       tie_tol=tie_tol, n_boot=n_boot, plots=not no_plots, progress=not no_progress,
                       to_leaderboard=board, command=shlex.join(["rewardbench", *sys.argv[1:]])
                       if "run-benchmark" in sys.argv[1:2] else None)
    try:
        if dry_run:
            plan = make_plan(cfg)
            click.echo(json.dumps({"plan": plan.describe().splitlines(), "images": plan.counts(),
                                   "judges": plan.judges}, indent=2) if as_json else plan.describe())
            return
        result = run(cfg)
    except (SuiteSourceError, OSError, RuntimeError) as e:
        if isinstance(e, WeightsNotFoundError):
            _fail(str(e))
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    except (UnknownSuiteError, UnknownRewardError, ConfigChangedError, SourceError, ValueError) as e:
        _fail(str(e))
    _print_result(result, as_json)
    sys.exit(1 if result.summary["failed"] else 0)


def _print_result(result, as_json: bool) -> None:
    from rewardbench.tables import render_table

    from .report import cross_reward

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
