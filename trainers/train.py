"""The paper's RL fine-tuning loop (arXiv 2401.12244, Algorithm 1), top to bottom, on diffusers + accelerate.

Each iteration (``train.task_order="algorithm1"``, the paper's order):
  SAMPLING   every task (prompt source + reward + weight) samples its batch from the same model, through the
             run's algorithm (``train.algorithm``; DDPO: DDIM, eta = 1, with CFG, keeping every step's latents and
             log-probabilities);
  REWARDS    scored (in a thread while the next micro-batch is sampled, for image-level rewards; group rewards
             over each process's minibatch or each prompt's images);
  ADVANTAGES gathered from every process, normalised (batch z-score, std + 1e-7; or DDPO's per-prompt
             statistics) and clamped once to ±10;
  TRAINING   task by task, the algorithm's update (DDPO: K random timesteps, PPO-clipped ratio with CFG in the
             training pass, one optimizer step per timestep or one per task);
  L_PRE      one step on the pretraining loss (eps-prediction MSE on image-caption pairs, weight beta);
  CHECKPOINT every ``run.checkpoint_every`` iterations (exact resume; a changed run is refused; an output folder
             that holds a run is refused unless ``run.resume`` or ``run.overwrite`` says what to do with it);
  EVALUATION every ``run.eval_every`` iterations: held-out prompts judged through run-benchmark
             (trainers/evaluate.py), logged beside the training reward.
``task_order="interleaved"`` samples and updates each task in turn, adding L_pre to each task's update.
The steps live in trainers/steps.py (shared by every algorithm) and trainers/algorithms/ (one module each).
Step N is the state after N completed iterations: the N-th iteration's metrics rows (``iteration`` = N, counted
from 1), its sample grids, ``checkpoints/step_N`` and ``eval/step_N`` all carry N.

Run it with ``rewardbench train --config trainers/recipes/tiny_smoke.yaml`` or, on many GPUs,
``accelerate launch -m rewardbench.cli train --config RECIPE``. From Python::

    >>> from rewardbench.trainers.config import load_config
    >>> from rewardbench.trainers.train import train
    >>> cfg = load_config("trainers/recipes/tiny_smoke.yaml", ["run.iterations=1", "run.output_dir=/tmp/rb_doc"])
    >>> result = train(cfg)                                   # doctest: +SKIP
    >>> result["history"][-1]["reward_mean"]                  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import steps
from .algorithms import Algorithm, Optimization, build_algorithm
from .captions import CaptionData
from .checkpoints import (
    check_output_dir,
    check_resume,
    clear_run,
    find_checkpoint,
    load_checkpoint,
    run_fingerprint,
    save_checkpoint,
)
from .config import Config
from .metrics_log import Logger
from .tasks import Task, build_tasks


def train(config: Config, rewards: Mapping[str, Callable | Any] | None = None) -> dict[str, Any]:
    """Run the trainer. ``rewards`` maps task names to reward objects (a `RewardModel` or a
    ddpo-style callable) that replace the task's ``reward`` name. Returns ``{"history": [rows],
    "output_dir": str, "final_weights": str | None, "step": int, "unet": the trained UNet, "eval_dir":
    str | None (the held-out evaluations' reports), "eval_plot": str | None}``."""
    from tqdm.auto import tqdm

    cfg, tr, run = config, config.train, config.run
    r = start(cfg, rewards)  # the model, optimizer, tasks, resume, log (below)
    acc, algo, opt, gen = r.accelerator, r.algo, r.opt, r.gen
    interleaved = tr.task_order == "interleaved"
    # Algorithm 1: every task samples from the same model (p_theta_old) before any task updates it;
    # interleaved, each task samples just before its own update, and L_pre joins each task's update
    rounds = [[task] for task in r.tasks] if interleaved else [r.tasks]
    pretrain = None if not interleaved or r.captions is None else \
        functools.partial(steps.pretrain_loss, algo, r.captions, opt.model, cfg.pretrain.batch_size, gen)
    bar = tqdm(range(r.first, run.iterations), initial=r.first, total=run.iterations, desc="train",
               disable=not (run.progress and acc.is_local_main_process))
    for it in bar:  # it: the 0-based index (seeds the update); step: iterations completed once this one is done
        step = it + 1
        for tasks in rounds:
            #### SAMPLING #### (an image-level reward starts on each micro-batch as soon as it is sampled)
            rollouts = [steps.sample(algo, task, gen, r.rewarder, cfg.sample.group_by) for task in tasks]
            #### REWARDS #### (a group reward, or a callable, sees the whole batch)
            scored = [steps.reward(ro, r.rewarder) for ro in rollouts]  # (B,) each, on the device
            #### ADVANTAGES #### (over the batch gathered from every process, clamped once)
            advs = [steps.advantages(ro, sc, acc, tr) for ro, sc in zip(rollouts, scored)]
            #### TRAINING #### (task by task)
            for ro, sc, adv in zip(rollouts, scored, advs):
                st = steps.update(algo, ro, adv, opt, iteration=it, run_seed=run.seed, generator=gen,
                                  pretrain=pretrain)
                row = steps.task_row(step, ro, sc, adv, st, opt, cfg.pretrain.beta)
                r.log(row, ro.images, ro.prompts, sc.scores)
                bar.set_postfix({f"r[{ro.task.name}]": f"{row['reward_mean']:.3g}"})

        #### L_PRE #### (Algorithm 1: one pretraining-loss step per iteration)
        if not interleaved and r.captions is not None:
            r.log(steps.pretrain_step(algo, r.captions, opt, cfg.pretrain, gen, step))

        #### CHECKPOINT ####
        if (run.checkpoint_every and step % run.checkpoint_every == 0) or step == run.iterations:
            r.checkpoint(step)

        #### EVALUATION #### (held-out prompts, on the main process)
        if run.eval_every and (step % run.eval_every == 0 or step == run.iterations):
            r.evaluate(step)
    return r.finish()


@dataclass
class Run:
    """Everything a run builds once (`start`), and its bookkeeping: log, checkpoint, evaluation, the end."""

    config: Config
    accelerator: Any
    algo: Algorithm
    opt: Optimization
    tasks: list[Task]
    captions: CaptionData | None  # the pretraining loss's data (pretrain.beta > 0)
    gen: torch.Generator  # this process's stream: prompts, sampling noise, timesteps, L_pre batches
    first: int  # the first iteration (after a resume)
    fingerprint: dict[str, Any]
    logger: Logger | None  # the main process's
    rewarder: steps.Rewarder
    judges: list[str]  # held-out judges (run.eval_every)
    history: list[dict] = field(default_factory=list)

    @property
    def out(self) -> Path:
        return Path(self.config.run.output_dir)

    def log(self, row: dict, images=None, prompts=None, scores=None) -> None:
        self.history.append(row)
        every, step = self.config.run.sample_every, row["iteration"]
        if self.logger is not None:
            self.logger.log(row)
            # the first iteration (the starting model's samples), every `every`-th, and the last
            if images is not None and every and (step == 1 or step % every == 0 or step == self.config.run.iterations):
                self.logger.save_grid(images, prompts, scores, f"it{step:05d}_{row['task']}")

    def checkpoint(self, step: int) -> None:
        opt = self.opt
        save_checkpoint(self.out / "checkpoints", model=opt.model, optimizer=opt.optimizer,
                        lr_scheduler=opt.lr_scheduler, step=step, gen=self.gen, accelerator=self.accelerator,
                        extra={"trackers": {t.name: t.tracker.state_dict() for t in self.tasks},
                               "fingerprint": self.fingerprint}, keep=self.config.run.keep_checkpoints,
                        tensors=self.algo.extra_state())

    def evaluate(self, step: int) -> None:
        """The main process judges; the others wait. The training RNG streams are left untouched."""
        from . import evaluate as _evaluate

        acc = self.accelerator
        acc.wait_for_everyone()
        if acc.is_main_process:
            with _evaluate.rng_preserved():
                rows = _evaluate.evaluate(self.config, self.algo.model, step, self.judges, acc.device,
                                          acc.num_processes, save_weights=self.algo.save_weights)
            for row in rows:
                self.log(row)
            _evaluate.plot_training_vs_heldout(self.out / "metrics.csv", self.out / "training_vs_heldout.png")
        acc.wait_for_everyone()

    def finish(self) -> dict[str, Any]:
        run, acc, out = self.config.run, self.accelerator, self.out
        self.rewarder.close()
        final = None
        acc.wait_for_everyone()
        if acc.is_main_process:
            final = str(self.algo.save_weights(self.algo.model, out / "final"))
            self.logger.plot()
            self.logger.close()
        acc.wait_for_everyone()
        plot = out / "training_vs_heldout.png"
        return {"history": self.history, "output_dir": str(out), "final_weights": final,
                "step": max(self.first, run.iterations), "unet": self.algo.model,
                "eval_dir": str(out / "eval") if run.eval_every else None,
                "eval_plot": str(plot) if run.eval_every and plot.is_file() else None}


def start(cfg: Config, rewards: Mapping[str, Any] | None = None) -> Run:
    """Build a run: the algorithm's model, the optimizer, the tasks, the pretraining data, the RNG streams, a
    resume from a checkpoint (refusing one a different run wrote), the log and the held-out judges."""
    from accelerate import Accelerator

    m, tr, run = cfg.model, cfg.train, cfg.run
    preflight(cfg, rewards)  # UsageError: a device, resolution or reward option that cannot work
    check_output_dir(run)  # RunExistsError, before anything is built
    accelerator = Accelerator(mixed_precision=m.mixed_precision, cpu=run.device == "cpu")
    if run.overwrite and accelerator.is_main_process:
        gone = clear_run(run.output_dir)
        if gone:
            accelerator.print(f"run.overwrite: deleted the earlier run's {', '.join(gone)} in {run.output_dir}")
    accelerator.wait_for_everyone()
    device, rank = accelerator.device, accelerator.process_index
    torch.manual_seed(run.seed)  # same seed on every process for the model (LoRA init)
    algo = build_algorithm(cfg, accelerator)
    optimizer = torch.optim.AdamW(algo.params, lr=tr.lr, betas=tuple(tr.adam_betas), weight_decay=tr.weight_decay,
                                  eps=tr.adam_eps)
    lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / tr.warmup_steps) if tr.warmup_steps > 0 else 1.0)
    model, optimizer = accelerator.prepare(algo.model, optimizer)
    opt = Optimization(accelerator, model, optimizer, lr_scheduler, algo.params, tr.max_grad_norm)
    tasks = build_tasks(cfg, rewards, device, accelerator)
    p = cfg.pretrain
    captions = CaptionData(p.dataset, p.split, p.image_column, p.caption_column, m.resolution) if p.beta > 0 else None
    gen = torch.Generator().manual_seed(run.seed * 1_000_003 + rank)  # sampling noise, prompts, timesteps
    torch.manual_seed(run.seed * 1_000_003 + rank)
    fingerprint = run_fingerprint(cfg, tasks)
    first = _resume(cfg, fingerprint, opt, gen, tasks, algo) if run.resume else 0
    out = Path(run.output_dir)
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    logger = Logger(out, run.tensorboard, resume_step=first) if accelerator.is_main_process else None
    judges = []
    if run.eval_every:  # held-out judges: the tasks' registered rewards (not Python callables) and eval.judges
        from .evaluate import eval_judges

        judges = eval_judges(cfg, [t.config.reward for t in tasks if t.name not in (rewards or {})])
    return Run(cfg, accelerator, algo, opt, tasks, captions, gen, first, fingerprint, logger,
               steps.Rewarder(device, run.async_rewards), judges)


def preflight(cfg: Config, rewards: Mapping[str, Any] | None = None) -> None:
    """Refuse, before anything is built, what the config's types and ranges (`Config`) cannot tell: a device this
    machine lacks (``run.device``, the Scorer's check), a resolution the pipeline cannot make (``model.resolution``,
    where its VAE is known without loading it: the built-in pipelines, a local folder, the hub cache; the others
    are checked right after loading), and a registered reward's option value its spec refuses
    (``tasks[i].reward_kwargs``). Raises `rewardbench.errors.UsageError` (the command line's exit 2)."""
    from rewardbench.benchmarks.pipelines import resolution_problem, vae_scale_before_loading
    from rewardbench.errors import UsageError
    from rewardbench.preflight import check_device, check_option_values
    from rewardbench.registry import REGISTRY

    try:
        check_device(cfg.run.device)
    except UsageError as e:
        why = str(e).split(": ", 1)[-1].replace("--device ", "run.device=")
        raise UsageError(f"run.device={cfg.run.device}: {why}") from None
    m = cfg.model
    scale = vae_scale_before_loading(m.pretrained, m.revision)
    if scale is not None and (problem := resolution_problem(m.resolution, scale)):
        raise UsageError(f"model.resolution={m.resolution}: {problem}")
    for i, t in enumerate(cfg.tasks):
        if t.name in (rewards or {}) or not isinstance(t.reward, str) or ":" in t.reward:
            continue  # a reward given in Python or a "module:callable": its own to check
        check_option_values(t.reward, REGISTRY.spec(t.reward), t.reward_kwargs, flag=f"tasks[{i}].reward_kwargs: ")


def _resume(cfg: Config, fingerprint: dict, opt: Optimization, gen: torch.Generator, tasks: list[Task],
            algo: Algorithm) -> int:
    """Load ``run.resume``'s checkpoint, if there is one yet; the iteration it stopped at (0 otherwise)."""
    run = cfg.run
    acc = opt.accelerator
    warn = (lambda msg: print(msg, file=sys.stderr, flush=True)) if acc.is_local_main_process else None
    found = find_checkpoint(run.resume, Path(run.output_dir), acc.process_index, warn)  # CheckpointError
    if found is None:
        return 0
    found, data = found
    changes = check_resume(found, fingerprint, force=run.resume_force)  # ResumeRefusedError
    state = load_checkpoint(found, model=opt.model, optimizer=opt.optimizer, lr_scheduler=opt.lr_scheduler, gen=gen,
                            accelerator=acc, data=data)
    algo.load_extra_state(data["algorithm"])
    for t in tasks:  # a task the checkpoint does not know (resume_force) starts with empty statistics
        if t.name in state.get("trackers", {}):
            t.tracker.load_state_dict(state["trackers"][t.name])
    forced = f" (run.resume_force, changed: {'; '.join(changes)})" if changes else ""
    opt.accelerator.print(f"resumed from {found} at iteration {state['step']}{forced}")
    return state["step"]
