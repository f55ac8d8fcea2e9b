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
    >>> sorted(ALGORITHMS)
    ['ddpo', 'diffusion_nft', 'flow_grpo', 'flow_grpo_fast']
    >>> algorithm_entry("dppo")
    Traceback (most recent call last):
    ...
    ValueError: unknown train.algorithm 'dppo' (did you mean 'ddpo'?); known: ddpo, diffusion_nft, flow_grpo, ...
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
    # "ddim": a UNet pipeline, DDPO's config fields checked (sample.eta, train.timesteps_per_iter); "flow": a
    # flow-matching pipeline, the ``flow`` section's fields checked
    sampler: str = "ddim"


ALGORITHMS: dict[str, AlgorithmEntry] = {}


def register_algorithm(name: str, target: str, summary: str = "",
                       defaults: Mapping[str, Any] | None = None, sampler: str = "ddim") -> AlgorithmEntry:
    """Make ``train.algorithm: NAME`` run the class at ``target`` (``"package.module:Class"``)."""
    entry = AlgorithmEntry(name, target, summary, dict(defaults or {}), sampler)
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
    # an algorithm's own diagnostics (Flow-GRPO: kl_loss), averaged over processes into the metrics row and TensorBoard
    extra: dict[str, float] = field(default_factory=dict)

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

    def extra_state(self) -> dict[str, torch.Tensor]:
        """Tensors besides the trainable weights that an exact resume needs (an EMA, an old model); checkpoints keep
        them (``algorithm.safetensors``)."""

    def load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        """Take back what `extra_state` gave (``{}`` from a checkpoint without any)."""


register_algorithm(
    "ddpo", "rewardbench.trainers.algorithms.ddpo:DDPO",
    summary="the paper's DDPO: DDIM (eta = 1) with per-step log-probabilities on UNet pipelines, CFG in sampling "
            "and in the training pass, PPO-clipped ratio, K random timesteps")

# Flow-GRPO's SD3.5-M configurations (yifan123/flow_grpo config/grpo.py@54809b5 general_ocr_sd3 / geneval_sd3, on
# config/base.py@ac4c86e; LoRA as scripts/train_sd3.py@ac4c86e); the flow section's defaults are the rest
_FLOW_GRPO = {
    "model.pretrained": "stabilityai/stable-diffusion-3.5-medium", "model.resolution": 512, "model.lora_rank": 32,
    "model.lora_alpha": 64.0, "model.lora_targets": ["attn.add_k_proj", "attn.add_q_proj", "attn.add_v_proj",
                                                     "attn.to_add_out", "attn.to_k", "attn.to_out.0", "attn.to_q",
                                                     "attn.to_v"],
    "sample.num_steps": 10, "sample.guidance_scale": 4.5, "sample.batch_size": 24, "sample.images_per_prompt": 24,
    "train.lr": 3e-4, "train.weight_decay": 1e-4, "train.clip_range": 1e-4, "train.adv_clip_max": 5.0,
    "train.group_advantages": True, "train.global_std": True,
}
register_algorithm(
    "flow_grpo", "rewardbench.trainers.algorithms.flow_grpo:FlowGRPO", sampler="flow", defaults=_FLOW_GRPO,
    summary="Flow-GRPO on SD3/3.5: SDE steps with log-probabilities on the flow-matching scheduler, per-prompt "
            "group advantages, PPO clip, KL to the reference, EMA")
# Flow-GRPO-Fast: config/grpo.py@54809b5 geneval_sd3_fast_nocfg (a 3-step window in the first half, "cps" steps at
# noise level 0.8, no CFG in sampling or training, clip 1e-5, no KL)
register_algorithm(
    "flow_grpo_fast", "rewardbench.trainers.algorithms.flow_grpo:FlowGRPO", sampler="flow",
    defaults={**_FLOW_GRPO, "sample.guidance_scale": 1.0, "train.clip_range": 1e-5, "flow.train_cfg": False,
              "flow.kl_beta": 0.0, "flow.noise_level": 0.8, "flow.window_size": 3, "flow.sde_type": "cps"},
    summary="Flow-GRPO-Fast: stochastic steps only in a short window (random start in the first half), "
            "deterministic elsewhere, trained on the window")
# DiffusionNFT: NVlabs/DiffusionNFT config/nft.py@24af555 _get_config("sd3", ...) on its config/base.py (CFG-free
# deterministic sampling, beta 1, decay type 1, velocity regulariser 1e-4, EMA 0.9 every step, one optimizer step)
register_algorithm(
    "diffusion_nft", "rewardbench.trainers.algorithms.diffusion_nft:DiffusionNFT", sampler="flow",
    defaults={**_FLOW_GRPO, "sample.guidance_scale": 1.0, "flow.ema_every": 1, "flow.optimizer_steps": 1},
    summary="DiffusionNFT: CFG-free deterministic sampling, the forward-process loss with positive and negative "
            "implicit policies, the old model as an EMA")
