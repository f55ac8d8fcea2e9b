"""Evaluation while training: held-out prompts judged by run-benchmark every ``run.eval_every`` iterations.

Each evaluation saves the weights being trained (as the trainer's ``final/`` folder, LoRA or UNet), then runs
`rewardbench.benchmarks.run.run_benchmark` on them: the suite's held-out prompts (the first ``eval.prompts``
of each source), images seeded per (prompt, index) so every evaluation and the base model start from the
same noise, scored by the training rewards and other judges (``eval.judges``) with run-benchmark's Scorer and
statistics (means with bootstrap CIs over prompts, win rates against the base model). Its report is in
``OUT/eval/step_NNNNNN/report.md``; the trainer logs each judge's held-out mean and win rate in
``metrics.csv`` (task ``heldout/<judge>``) and TensorBoard, and `plot_training_vs_heldout` draws the training
reward beside the held-out judges: the reward-hacking curve (a reward that rises while other judges fall).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from rewardbench.benchmarks.stats import ALL

from .checkpoints import rng_state, set_rng_state
from .config import Config
from .metrics_log import HELDOUT


def eval_judges(config: Config, task_rewards: Sequence[Any]) -> list[str]:
    """The judges of an evaluation: the tasks' rewards that are registry names (when ``eval.training_rewards``;
    a Python callable cannot judge) and ``eval.judges``, canonical names, each once."""
    from rewardbench.registry import REGISTRY

    names = [r for r in task_rewards if isinstance(r, str) and ":" not in r] if config.eval.training_rewards else []
    judges = list(dict.fromkeys(REGISTRY.canonical(j) for j in [*names, *config.eval.judges]))
    if not judges:
        raise ValueError("run.eval_every needs judges: eval.judges, or a task whose reward is a registered name")
    _check_group_judges(config, judges)
    return judges


# images per prompt of an evaluation with a group judge when eval.images_per_prompt is not set: diversity and parity
# need several images of a prompt (a group judge's min_group_size is only the least it can measure)
GROUP_EVAL_IMAGES = 4


def eval_images_per_prompt(config: Config, judges: Sequence[str]) -> int:
    """Images per prompt of the held-out evaluation: ``eval.images_per_prompt``, or else the suite's, raised to
    `GROUP_EVAL_IMAGES` (at least each group judge's ``min_group_size``) when a judge is a group reward."""
    from rewardbench.benchmarks.suite import load_benchmark_suite
    from rewardbench.registry import get_spec

    if config.eval.images_per_prompt:
        return config.eval.images_per_prompt
    ipp = load_benchmark_suite(config.eval.suite).images_per_prompt
    group = [get_spec(j) for j in judges if get_spec(j).granularity == "group"]
    return max([ipp, *([GROUP_EVAL_IMAGES] if group else []), *(s.min_group_size for s in group)])


def _check_group_judges(config: Config, judges: Sequence[str]) -> None:
    """A group judge (diversity, parity) scores the images of one prompt together: refused before training when
    the evaluation makes fewer images per prompt than it measures (Vendi of one image is 1.0 by definition)."""
    from rewardbench.errors import UsageError
    from rewardbench.registry import get_spec

    ipp = eval_images_per_prompt(config, judges)
    small = [j for j in judges if get_spec(j).min_group_size > ipp]
    if small:
        need = max(get_spec(j).min_group_size for j in small)
        raise UsageError(f"eval: {', '.join(small)} score the images of a prompt together and measure groups of at "
                         f"least {need}, but the evaluation makes {ipp} per prompt: set eval.images_per_prompt={need} "
                         "(or more), or leave them out of eval.judges")


@contextlib.contextmanager
def rng_preserved():
    """Evaluation seeds the global RNGs (run-benchmark seeds its judges): give training its streams back."""
    state = rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


def _base_source(config: Config) -> str:
    from rewardbench.benchmarks.pipelines import RANDOM_KINDS

    m = config.model
    if m.pretrained in RANDOM_KINDS:
        return f"{m.pretrained}:{m.tiny_seed}"
    return m.pretrained


def _text_tokens(config: Config) -> int | None:
    """The T5 tokens the flow algorithms sample and train with (the evaluation's images use the same), else None."""
    from .algorithms import algorithm_entry

    if algorithm_entry(config.train.algorithm).sampler != "flow":
        return None
    from .flow_sampling import MAX_SEQUENCE_LENGTH

    return MAX_SEQUENCE_LENGTH


def _benchmark_rows(run):
    from rewardbench.benchmarks.run import run_benchmark

    return run_benchmark(run).rows


def _single_process() -> None:
    """In a child of a multi-process run: the Scorer must not join the trainer's process group."""
    for key in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        os.environ.pop(key, None)
    os.environ["WORLD_SIZE"] = "1"


def evaluate(config: Config, unet: torch.nn.Module, step: int, judges: list[str], device: torch.device,
             world: int, save_weights) -> list[dict[str, Any]]:
    """Judge the model at ``step`` on the held-out prompts; returns one metrics row per judge. With several
    training processes it runs in a process of its own (on the main process's device)."""
    from rewardbench.benchmarks.generators import GenerationSettings
    from rewardbench.benchmarks.run import BenchmarkRun

    m, s, e = config.model, config.sample, config.eval
    root = Path(config.run.output_dir) / "eval"
    weights = root / "weights" / f"step_{step:06d}"
    save_weights(unet, weights)
    # the run's config names the base pipeline the weights go on (run-benchmark's trainer-output source)
    (weights.parent / "config.json").write_text(json.dumps({"model": dataclasses.asdict(m)}, indent=2))
    name = f"step{step}"
    dtype = {"no": None, "bf16": "bf16", "fp16": "fp16"}[m.mixed_precision]
    run = BenchmarkRun(
        out=str(root / f"step_{step:06d}"), suite=e.suite, models=(f"{name}={weights}",),
        baseline=f"base={_base_source(config)}" if e.baseline else None, paths=dict(config.run.prompt_paths),
        limit=e.prompts, images_per_prompt=eval_images_per_prompt(config, judges), judges=tuple(judges),
        random_weights=e.random_weights, seed=e.seed, n_boot=e.n_boot, plots=False, progress=False,
        generation=GenerationSettings(steps=e.num_steps or s.num_steps, guidance_scale=s.guidance_scale,
                                      resolution=m.resolution, negative_prompt=s.negative_prompt, dtype=dtype,
                                      device=str(device), batch_size=s.micro_batch_size,
                                      max_sequence_length=_text_tokens(config)),
        score_device=str(device))
    _reuse_base_images(root, Path(run.out), run)
    try:
        if world > 1:  # a non-daemonic child: the Scorer starts DataLoader workers of its own
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                     initializer=_single_process) as pool:
                rows = pool.submit(_benchmark_rows, run).result()
        else:
            rows = _benchmark_rows(run)
    finally:
        shutil.rmtree(weights, ignore_errors=True)  # the images and the report stay; full UNets are large
    rows = rows[rows["category"] == ALL]
    out = []
    for judge in judges:
        mine = rows[(rows["judge"] == judge) & (rows["model"] == name)]
        mean = mine[mine["metric"] == "mean"]
        win = mine[mine["metric"] == "win_rate"]
        base = rows[(rows["judge"] == judge) & (rows["model"] == "base") & (rows["metric"] == "mean")]
        out.append({"iteration": step, "task": HELDOUT + judge,  # the row of the step-th iteration, as eval/step_N
                    "reward_mean": _first(mean, "value"), "heldout_ci_low": _first(mean, "ci_low"),
                    "heldout_ci_high": _first(mean, "ci_high"), "heldout_base": _first(base, "value"),
                    "heldout_win_rate": _first(win, "value")})
    return out


def _reuse_base_images(root: Path, out: Path, run) -> None:
    """Give ``out`` the base model's images of the latest earlier evaluation (PNGs hard-linked where the file
    system allows, the manifest copied) when run-benchmark's own resume check finds the same prompts, seeds and
    base generator there: the base model does not train, so its images are generated once, not at every
    evaluation. Any difference, and the base images are generated anew."""
    from rewardbench.benchmarks.generators import slug
    from rewardbench.benchmarks.run import ConfigChangedError, _config, check_config, make_plan

    earlier = sorted(p for p in root.glob("step_*") if p.name < out.name and (p / "config.json").is_file())
    if run.baseline is None or not earlier:
        return
    src, dst = earlier[-1] / "images" / slug("base"), out / "images" / slug("base")
    if not src.is_dir() or dst.exists():
        return
    try:
        check_config(earlier[-1], _config(make_plan(run), run))
    except ConfigChangedError:
        return

    def link_png(a, b):
        if not str(a).endswith(".png"):
            return shutil.copy2(a, b)  # the manifest is appended to: each evaluation has its own
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=link_png)


def _first(df, column: str) -> float:
    return float(df[column].iloc[0]) if len(df) else math.nan


def plot_training_vs_heldout(metrics_csv: Path, path: Path) -> Path | None:
    """The training reward of each task beside each held-out judge, by iteration (one panel each; a judge's
    dashed line is the base model, its band the 95% CI over prompts)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.read_csv(metrics_csv)
    is_held = df["task"].astype(str).str.startswith(HELDOUT)
    held, train = df[is_held], df[~is_held].dropna(subset=["reward_mean"])
    if held.empty or train.empty:
        return None
    judges = list(dict.fromkeys(held["task"]))
    fig, axes = plt.subplots(1, 1 + len(judges), figsize=(3.6 * (1 + len(judges)), 3.4), squeeze=False)
    ax = axes[0][0]
    for task, g in train.groupby("task", sort=False):
        ax.plot(g["iteration"], g["reward_mean"], label=str(task))
    ax.set_title("training reward (training prompts)", fontsize=9)
    ax.set_xlabel("iteration")
    ax.legend(fontsize=7)
    for ax, judge in zip(axes[0][1:], judges):
        g = held[held["task"] == judge]
        ax.plot(g["iteration"], g["reward_mean"], marker="o", color="tab:red")
        ax.fill_between(g["iteration"], g["heldout_ci_low"], g["heldout_ci_high"], color="tab:red", alpha=0.2)
        if g["heldout_base"].notna().any():
            ax.axhline(float(g["heldout_base"].dropna().iloc[0]), color="black", ls="--", lw=0.8, label="base model")
            ax.legend(fontsize=7)
        ax.set_title(f"held out: {judge[len(HELDOUT):]}", fontsize=9)
        ax.set_xlabel("iteration")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
