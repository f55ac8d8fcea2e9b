"""The seam between the shared loop and one RL algorithm: the `Algorithm` protocol, and the algorithms by name
(``train.algorithm`` in a recipe; ``ddpo`` by default).

The loop (trainers/train.py) keeps what every algorithm shares: tasks, rewards, advantages gathered over every
process, checkpoints and resume, the pretraining-loss data, held-out evaluation, logging. An algorithm brings its
model (the pipeline and its trainable parameters), how it samples and what it keeps for its loss (DDPO: every
step's latents and log-probabilities), its loss and update, the pretraining loss on its model, how its weights
are saved, and its config defaults. A new algorithm is a new module and one `register_algorithm` row here; the
loop does not change.

    >>> algorithm_entry("ddpo").target
    'rewardbench.trainers.algorithms.ddpo:DDPO'
    >>> algorithm_entry("dppo")
    Traceback (most recent call last):
    ...
    ValueError: unknown train.algorithm 'dppo' (did you mean 'ddpo'?); known: ddpo
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # reading a recipe (config.py checks train.algorithm here) imports no torch
    import torch


@dataclass(frozen=True)
class AlgorithmEntry:
    """One algorithm: where its class is (imported when a run starts, so reading a recipe imports no model code)
    and the config values it sets under a recipe's own (dotted keys, e.g. ``{"train.clip_range": 0.2}``)."""

    name: str
    target: str  # "package.module:Class"
    summary: str = ""
    defaults: Mapping[str, Any] = field(default_factory=dict)


ALGORITHMS: dict[str, AlgorithmEntry] = {}


def register_algorithm(name: str, target: str, summary: str = "",
                       defaults: Mapping[str, Any] | None = None) -> AlgorithmEntry:
    """Make ``train.algorithm: NAME`` run the class at ``target`` (``"package.module:Class"``)."""
    entry = AlgorithmEntry(name, target, summary, dict(defaults or {}))
    ALGORITHMS[name] = entry
    return entry


def algorithm_entry(name: str) -> AlgorithmEntry:
    """The registered algorithm ``name``; a ValueError naming the known ones (and the nearest) otherwise."""
    if name in ALGORITHMS:
        return ALGORITHMS[name]
    import difflib

    near = difflib.get_close_matches(str(name).lower(), ALGORITHMS, 1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    raise ValueError(f"unknown train.algorithm {name!r}{hint}; known: {', '.join(sorted(ALGORITHMS))}")


def build_algorithm(config, accelerator) -> Algorithm:
    """The run's algorithm (``config.train.algorithm``), its model loaded on ``accelerator``'s device."""
    module, _, attr = algorithm_entry(config.train.algorithm).target.partition(":")
    return getattr(importlib.import_module(module), attr)(config, accelerator)


@dataclass
class UpdateStats:
    """What one task's update reports, each a mean over this process's samples (and its timesteps)."""

    policy_loss: float = 0.0
    clipfrac: float = 0.0  # fraction of importance ratios outside the clip range
    approx_kl: float = 0.0  # 0.5 * mean((logp - logp_old)^2)
    pretrain_loss: float = 0.0  # L_pre, when it joined this update (task_order="interleaved")
    grad_norm: float = math.nan  # of the last optimizer step, before clipping
    update_s: float = 0.0  # seconds (the loop's to set)

    def losses(self) -> list[float]:
        """The values averaged over processes for the log, in `LOSS_FIELDS` order."""
        return [getattr(self, k) for k in LOSS_FIELDS]


LOSS_FIELDS = ("policy_loss", "clipfrac", "approx_kl", "pretrain_loss")


@dataclass
class Optimization:
    """What the loop hands an algorithm's update: the model as prepared for data parallelism (its training
    forward), the accelerator (backward, gradient sync, autocast) and one optimizer step."""

    accelerator: Any
    model: torch.nn.Module  # wrapped (DistributedDataParallel with several processes)
    optimizer: torch.optim.Optimizer
    lr_scheduler: Any
    params: list[torch.nn.Parameter]
    max_grad_norm: float

    def step(self) -> float:
        """Clip the gradients, step the optimizer and the LR schedule, zero the gradients; the norm before clipping."""
        grad_norm = self.accelerator.clip_grad_norm_(self.params, self.max_grad_norm)
        self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(grad_norm) if grad_norm is not None else math.nan

    def lr(self) -> float:
        return self.lr_scheduler.get_last_lr()[0]


class Algorithm(Protocol):
    """What an RL algorithm provides to the shared loop (`build_algorithm` calls ``Class(config, accelerator)``,
    which loads the model on ``accelerator.device`` with the global RNG already seeded by the loop)."""

    model: torch.nn.Module  # the network that trains, unwrapped: sampling, checkpoints, evaluation, export
    params: list[torch.nn.Parameter]  # its trainable parameters (the optimizer's)

    def sample(self, prompts: list[str], generator: torch.Generator) -> Iterator[Any]:
        """Sample ``prompts`` with the current model in micro-batches, yielding each as soon as it is done (its
        rewards start while the next is sampled): values with ``.images`` ``(b, 3, H, W)`` in [0, 1]."""

    def join(self, parts: list[Any]) -> Any:
        """The micro-batches of one task as what the loss needs, with ``.images`` ``(B, 3, H, W)``."""

    def update(self, samples: Any, advantages: torch.Tensor, opt: Optimization, *, weight: float, seed: int,
               generator: torch.Generator, pretrain: Callable[[], torch.Tensor] | None = None) -> UpdateStats:
        """Train on one task's samples with their advantages ``(B,)`` (already clamped), stepping ``opt``.
        ``weight`` scales the task's loss; ``seed`` is the same on every process for this task and iteration
        (for draws the processes must share), ``generator`` this process's own stream; ``pretrain`` (the
        pretraining loss, unweighted) joins the last optimizer step when given."""

    def pretrain_loss(self, model: torch.nn.Module, pixels: torch.Tensor, captions: list[str],
                      generator: torch.Generator) -> torch.Tensor:
        """L_pre on real image-caption pairs (``pixels`` ``(n, 3, R, R)`` in [-1, 1]), through ``model``."""

    def save_weights(self, model: torch.nn.Module, dest: Any) -> Any:
        """Export ``model``'s trained weights to the folder ``dest`` in a format its pipeline loads."""


register_algorithm(
    "ddpo", "rewardbench.trainers.algorithms.ddpo:DDPO",
    summary="the paper's DDPO: DDIM (eta = 1) with per-step log-probabilities on UNet pipelines, CFG in sampling "
            "and in the training pass, PPO-clipped ratio, K random timesteps")
