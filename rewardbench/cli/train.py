"""``rewardbench train``: fine-tune a diffusion model against rewards with the paper's RL algorithm
(`rewardbench.trainers`). ``accelerate launch`` starts it on many GPUs or machines as a module::

    # RECIPE: e.g. trainers/recipes/imagereward_diffusiondb.yaml
    accelerate launch --num_processes 8 -m rewardbench.cli train --config RECIPE
"""

from __future__ import annotations

import json

import click

from .common import check_out, command, fail_exit, no_progress_option, usage_phase

_EPILOG = """\b
Examples:
  # offline smoke run on CPU (tiny random pipeline, JPEG compressibility; ~1 min)
  rewardbench train --config trainers/recipes/tiny_smoke.yaml
  # ... judged every 5 iterations on held-out prompts by the training reward and other judges
  rewardbench train --config trainers/recipes/tiny_smoke.yaml run.eval_every=5
  # override any field with section.key=value (values parsed as YAML)
  rewardbench train --config trainers/recipes/tiny_smoke.yaml train.lr=1e-4 run.iterations=20
  # Flow-GRPO (or flow_grpo_fast, diffusion_nft) on a tiny random Stable Diffusion 3, offline on CPU
  rewardbench train --config trainers/recipes/flow_grpo_tiny.yaml
  # a paper experiment on 8 GPUs, resuming after a kill
  accelerate launch --num_processes 8 -m rewardbench.cli train \\
      --config trainers/recipes/imagereward_diffusiondb.yaml run.resume=latest
  # print the resolved config and exit
  rewardbench train --config trainers/recipes/joint.yaml --print-config

\b
Sections: model (pretrained, resolution, lora, mixed_precision, gradient_checkpointing),
sample (num_steps, eta, guidance_scale, batch_size, images_per_prompt), train (lr, clip_range,
timesteps_per_iter, step_mode, task_order, ...), pretrain (beta, dataset), tasks (list of name, reward,
prompts, weight, batch_size, images_per_prompt; index with tasks.0.weight=2), run (output_dir, iterations,
resume, resume_force, overwrite, seed, eval_every, progress), eval (suite, prompts, images_per_prompt, judges),
flow (the flow algorithms' noise_level, window_size, kl_beta, ema, nft_beta, ...; train.algorithm: ddpo,
flow_grpo, flow_grpo_fast, diffusion_nft).
Outputs in run.output_dir: metrics.csv, tensorboard/, samples/, checkpoints/, reward_curve.png, final/;
with run.eval_every=N, eval/ (a run-benchmark report per evaluation) and training_vs_heldout.png. Step N is
the state after N iterations: checkpoints/step_N, eval/step_N and metrics.csv's iteration N (counted from 1).
An output_dir that holds a run is refused: run.resume=latest continues it (skipping, with a warning, checkpoints
that cannot be read), run.overwrite=true deletes it and starts over.
Exit codes: 0 done, 1 training failed or a checkpoint cannot be read (checkpoints already written are kept:
run.resume=latest goes on), 2 usage or configuration error (a bad key or value, a run.output_dir that cannot be
written or that holds a run, a checkpoint of another run).
"""


@command("train", _EPILOG, max_content_width=100)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="YAML recipe (see trainers/recipes/); defaults apply when omitted.")
@click.option("--print-config", is_flag=True, help="Print the resolved config as JSON and exit.")
@no_progress_option
@click.argument("overrides", nargs=-1)
def train(config_path, print_config, no_progress, overrides):
    """Fine-tune a Stable Diffusion model against registered rewards (DDPO: DDIM eta=1 sampling, PPO-clipped
    policy gradient, K random timesteps, multi-task; SD3 with Flow-GRPO or DiffusionNFT: train.algorithm).
    OVERRIDES are section.key=value pairs."""
    from rewardbench.trainers.config import load_config

    with usage_phase(ValueError, FileNotFoundError, TypeError, IndexError):
        cfg = load_config(config_path, [*overrides, *(["run.progress=false"] if no_progress else [])])
    if print_config:
        click.echo(json.dumps(cfg.to_dict(), indent=2))
        return
    check_out(cfg.run.output_dir, "run.output_dir", folder=True)
    from rewardbench.trainers.metrics_log import HELDOUT
    from rewardbench.trainers.train import train as run_training

    try:
        with usage_phase():  # a checkpoint of another run, missing weights: exit 2
            result = run_training(cfg)
    except (OSError, ValueError) as e:
        fail_exit(str(e))
    from accelerate import PartialState

    if not PartialState().is_main_process:
        return
    last, held = {}, {}
    for row in result["history"]:
        if row["task"].startswith(HELDOUT):
            held[row["task"][len(HELDOUT):]] = row
        elif "reward_mean" in row:  # not the pretraining-loss step's row
            last[row["task"]] = row["reward_mean"]
    click.echo(f"done: {result['step']} iterations in {result['output_dir']}; last reward means: "
               + ", ".join(f"{k}={v:.4g}" for k, v in last.items()))
    from rewardbench.benchmarks.pipelines import RANDOM_KINDS

    if cfg.model.pretrained in RANDOM_KINDS:  # say so: nothing learnt here transfers to a real model
        click.echo(f"weights: {cfg.model.pretrained} (seed {cfg.model.tiny_seed}), random, built offline; "
                   f"trained with {cfg.train.algorithm}")
    if result.get("eval_dir"):
        click.echo(f"held-out evaluation: reports in {result['eval_dir']}/step_*/report.md; training reward beside "
                   f"the held-out judges: {result['eval_plot']}")
        if held:
            click.echo("last held-out means (win rate against the base model): " + ", ".join(
                f"{k}={r['reward_mean']:.4g} ({r['heldout_win_rate']:.2f})" for k, r in held.items()))
