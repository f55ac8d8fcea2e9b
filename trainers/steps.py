"""The loop's shared steps, the same for every algorithm, each a function of what it is given: sample a task
(through the algorithm; image-level rewards start as each micro-batch is done), reward it, compute advantages
over the batch gathered from every process (clamped once), update it, the pretraining-loss step, and the metrics
row of a task's iteration.

    >>> import torch, types
    >>> from rewardbench.trainers.config import load_config
    >>> from rewardbench.trainers.tasks import build_tasks
    >>> cfg = load_config(None, ["tasks.0.prompts=[a cat]", "tasks.0.allow_eval_overlap=true", "train.adv_clip_max=1"])
    >>> task = build_tasks(cfg, {}, torch.device("cpu"))[0]
    >>> rollout = Rollout(task, ["a cat"] * 4, torch.zeros(4), samples=None, pending=[], sample_s=0.0)
    >>> scores = Rewards(torch.tensor([0.0, 0.0, 0.0, 1.0]), reward_s=0.0, wait_s=0.0)
    >>> one_process = types.SimpleNamespace(num_processes=1, process_index=0, gather=lambda t: t)  # an accelerator
    >>> adv = advantages(rollout, scores, one_process, cfg.train).advantages  # z-scores -0.58 and 1.73, clamped
    >>> [round(a, 4) for a in adv.tolist()]
    [-0.5774, -0.5774, -0.5774, 1.0]
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch

from .algorithms import Algorithm, Optimization, UpdateStats
from .captions import CaptionData
from .config import PretrainConfig, TrainConfig
from .ddpo_math import clamp_advantages, normalize_advantages
from .flow_math import group_advantages
from .reward_fns import RewardFn
from .tasks import Task


@dataclass
class Rollout:
    """One task's samples on this process in one iteration."""

    task: Task
    prompts: list[str]  # (B,)
    groups: torch.Tensor  # (B,) the group of each image (for group rewards)
    samples: Any  # the algorithm's, with .images (B, 3, H, W); DDPO: latents (B, steps + 1, 4, h, w), log-probs
    pending: list[Future]  # image-level rewards started while sampling: (scores (b,), seconds) each
    sample_s: float

    @property
    def images(self) -> torch.Tensor:
        return self.samples.images  # (B, 3, H, W)


@dataclass
class Rewards:
    """One task's rewards on this process."""

    scores: torch.Tensor  # (B,) on the training device
    reward_s: float  # spent computing them (in the reward thread, for image-level rewards)
    wait_s: float  # the loop waited for them


@dataclass
class Advantages:
    """One task's advantages, from the rewards of every process."""

    rewards: torch.Tensor  # (B * world,) every process's rewards, gathered
    advantages: torch.Tensor  # (B,) this process's share, clamped to ±train.adv_clip_max
    seconds: float


class Rewarder:
    """Calls rewards, timed; in a thread (``run.async_rewards``) so a micro-batch is scored while the next one is
    sampled."""

    def __init__(self, device: torch.device, threaded: bool):
        self.device = device
        self.executor = ThreadPoolExecutor(max_workers=1) if threaded else None

    def call(self, fn: RewardFn, images: torch.Tensor, prompts: list[str], groups: torch.Tensor
             ) -> tuple[torch.Tensor, float]:
        """``fn``'s scores ``(b,)`` (on the device, where they stay until gathered) and the seconds it took."""
        t0 = time.perf_counter()
        scores = fn(images, prompts, groups.to(self.device))
        return scores, time.perf_counter() - t0

    def start(self, fn: RewardFn, images: torch.Tensor, prompts: list[str], groups: torch.Tensor) -> Future:
        if self.executor is not None:
            return self.executor.submit(self.call, fn, images, prompts, groups)
        done: Future = Future()
        done.set_result(self.call(fn, images, prompts, groups))
        return done

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown()


def sample(algo: Algorithm, task: Task, generator: torch.Generator, rewarder: Rewarder, group_by: str) -> Rollout:
    """SAMPLING: ``task``'s prompts for this iteration, sampled with the current model; an image-level reward
    starts on each micro-batch as soon as it is done."""
    t0 = time.perf_counter()
    prompts, groups = task.draw(generator, group_by)
    parts, pending, lo = [], [], 0
    for part in algo.sample(prompts, generator):
        b = part.images.shape[0]
        if not task.whole_batch:
            pending.append(rewarder.start(task.reward, part.images, prompts[lo:lo + b], groups[lo:lo + b]))
        parts.append(part)
        lo += b
    samples = algo.join(parts)
    _sync(samples.images.device)
    return Rollout(task, prompts, groups, samples, pending, time.perf_counter() - t0)


def reward(rollout: Rollout, rewarder: Rewarder) -> Rewards:
    """REWARDS of one task on this process: the image-level scores started while sampling, or the whole batch
    scored now (a group reward sees every member of each group at once; so does a callable)."""
    t0 = time.perf_counter()
    if rollout.task.whole_batch:
        done = [rewarder.call(rollout.task.reward, rollout.images, rollout.prompts, rollout.groups)]
    else:
        done = [f.result() for f in rollout.pending]
    scores = torch.cat([s for s, _ in done])  # (B,)
    return Rewards(scores, sum(s for _, s in done), time.perf_counter() - t0)


def advantages(rollout: Rollout, rewards: Rewards, accelerator: Any, train: TrainConfig) -> Advantages:
    """ADVANTAGES of one task: its rewards gathered from every process, normalised over the whole batch (the
    paper), by each prompt's running statistics (``train.per_prompt_stats``: the task's tracker) or against each
    prompt's group in this batch (``train.group_advantages``, GRPO's), clamped once to ±``train.adv_clip_max``;
    this process's share of them."""
    t0 = time.perf_counter()
    world, rank = accelerator.num_processes, accelerator.process_index
    gathered = accelerator.gather(rewards.scores).float()  # (B * world,)
    if train.per_prompt_stats or train.group_advantages:
        from accelerate.utils import gather_object

        prompts = gather_object(rollout.prompts) if world > 1 else rollout.prompts
        adv = group_advantages(gathered, prompts, train.global_std) if train.group_advantages \
            else rollout.task.tracker.update(prompts, gathered)
    else:
        adv = normalize_advantages(gathered)
    mine = clamp_advantages(adv, train.adv_clip_max).reshape(world, -1)[rank]  # (B,)
    return Advantages(gathered, mine, time.perf_counter() - t0)


def update(algo: Algorithm, rollout: Rollout, adv: Advantages, opt: Optimization, *, iteration: int,
           run_seed: int, generator: torch.Generator, pretrain: Callable[[], torch.Tensor] | None) -> UpdateStats:
    """TRAINING on one task, timed (``update_s``)."""
    t0 = time.perf_counter()
    seed = (run_seed * 1_000_003 + iteration) * 1_009 + rollout.task.index  # the same on every process
    stats = algo.update(rollout.samples, adv.advantages, opt, weight=rollout.task.weight, seed=seed,
                        generator=generator, pretrain=pretrain)
    _sync(adv.advantages.device)
    stats.update_s = time.perf_counter() - t0
    return stats


def pretrain_loss(algo: Algorithm, captions: CaptionData, model: torch.nn.Module, batch_size: int,
                  generator: torch.Generator) -> torch.Tensor:
    """L_pre on a fresh batch of image-caption pairs (unweighted)."""
    pixels, caps = captions.batch(batch_size, generator)  # (n, 3, R, R) in [-1, 1]
    return algo.pretrain_loss(model, pixels, caps, generator)


def pretrain_step(algo: Algorithm, captions: CaptionData, opt: Optimization, pretrain: PretrainConfig,
                  generator: torch.Generator, iteration: int) -> dict[str, Any]:
    """L_PRE, Algorithm 1's order: one optimizer step on beta * L_pre; returns its metrics row."""
    t0 = time.perf_counter()
    algo.model.train()
    mse = pretrain_loss(algo, captions, opt.model, pretrain.batch_size, generator)
    opt.accelerator.backward(mse * pretrain.beta)
    grad_norm = opt.step()
    mse = opt.accelerator.reduce(mse.detach().reshape(1), reduction="mean").item()
    return {"iteration": iteration, "task": "pretrain", "pretrain_loss": mse, "loss": pretrain.beta * mse,
            "grad_norm": grad_norm, "lr": opt.lr(), "update_s": time.perf_counter() - t0}


def task_row(iteration: int, rollout: Rollout, rewards: Rewards, adv: Advantages, stats: UpdateStats,
             opt: Optimization, beta: float) -> dict[str, Any]:
    """The metrics row of one task's iteration: rewards over every process, losses averaged over processes."""
    acc = opt.accelerator
    policy_loss, clipfrac, approx_kl, pretrain_loss = acc.reduce(
        torch.tensor(stats.losses(), device=acc.device), reduction="mean").tolist()
    extra = dict(zip(stats.extra, acc.reduce(torch.tensor(list(stats.extra.values()), device=acc.device),
                                             reduction="mean").tolist())) if stats.extra else {}
    return {"iteration": iteration, "task": rollout.task.name, "reward_mean": float(adv.rewards.mean()),
            "reward_std": float(adv.rewards.std(unbiased=False)), "policy_loss": policy_loss, "clipfrac": clipfrac,
            "approx_kl": approx_kl, "pretrain_loss": pretrain_loss,
            "loss": policy_loss * rollout.task.weight + beta * pretrain_loss, "grad_norm": stats.grad_norm,
            "lr": opt.lr(), "sample_s": rollout.sample_s, "reward_s": rewards.reward_s,
            "reward_wait_s": rewards.wait_s + adv.seconds, "update_s": stats.update_s, **extra}


def _sync(device: torch.device) -> None:
    """Wait for queued GPU work, so the phase timings (sample_s, update_s) are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
