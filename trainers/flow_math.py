"""The pure maths of the flow-matching RL algorithms (Flow-GRPO, its Fast window, DiffusionNFT): no model, no I/O,
unit-tested on its own (tests/trainers/test_flow_math.py) and compared with Flow-GRPO's code on identical inputs
(scripts/parity/flow_grpo.py).

Sources, each cited where its formula or constant is used:
  Flow-GRPO (Liu et al., arXiv 2505.05470), code yifan123/flow_grpo: the SDE step at commit ac4c86e
  (``flow_grpo/diffusers_patch/sd3_sde_with_logprob.py``) and at 54809b5 (the same "sde" step, and the "cps"
  step), ``scripts/train_sd3.py`` (KL, clipping) and ``flow_grpo/stat_tracking.py`` / ``flow_grpo/ema.py`` at
  ac4c86e, ``scripts/train_sd3_fast.py`` at 74db691 and the window as its SD3 pipeline draws it.
  DiffusionNFT (Zheng et al., arXiv 2509.16117), code NVlabs/DiffusionNFT at 24af555, ``scripts/train_nft_sd3.py``.

The flow-matching convention is diffusers' ``FlowMatchEulerDiscreteScheduler``'s: x_sigma = (1 - sigma) x_0 +
sigma x_1 (noise), the model predicts the velocity v = x_1 - x_0, sampling runs sigma from 1 to 0 and the
deterministic step is Euler's, x_next = x + (sigma_next - sigma) v.

Example (one stochastic step with its log-probability; a = 0 is the scheduler's Euler step)::

    >>> import torch
    >>> from rewardbench.trainers.flow_math import sde_step_with_logprob
    >>> x, v = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    >>> sigma, sigma_next = torch.tensor([0.9, 0.9]), torch.tensor([0.8, 0.8])
    >>> step = sde_step_with_logprob(v, x, sigma, sigma_next, noise_level=0.7, sigma_max=0.96)
    >>> step.prev_sample.shape, step.log_prob.shape
    (torch.Size([2, 4, 8, 8]), torch.Size([2]))
    >>> euler = sde_step_with_logprob(v, x, sigma, sigma_next, noise_level=0.0, sigma_max=0.96)
    >>> torch.equal(euler.prev_sample, x + (sigma_next - sigma).view(-1, 1, 1, 1) * v), euler.log_prob is None
    (True, True)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

Reduction = Literal["mean", "sum"]
SdeType = Literal["sde", "cps"]

# Added to a group's standard deviation before dividing (flow_grpo/stat_tracking.py@ac4c86e, PerPromptStatTracker:
# ``np.std(...) + 1e-4``, the same for the global std)
GROUP_STD_EPS = 1e-4
# Flow-GRPO's advantage clip (config/base.py@54809b5 train.adv_clip_max = 5; DiffusionNFT config/base.py@24af555: 5)
ADV_CLIP_MAX = 5.0


@dataclass
class FlowStep:
    """One step sigma -> sigma_next: the next latent, its log-probability under the step's Gaussian (None for a
    deterministic step), the Gaussian's mean and Flow-GRPO's ``std_dev_t`` (what its KL divides by)."""

    prev_sample: torch.Tensor  # (B, C, h, w) float32
    log_prob: torch.Tensor | None  # (B,) float32
    mean: torch.Tensor  # (B, C, h, w)
    std_dev_t: torch.Tensor  # (B, 1, 1, 1): "sde": a * sqrt(sigma / (1 - sigma)); "cps": sigma_next * sin(a pi / 2)


def _per_sample(value: torch.Tensor | float, ref: torch.Tensor) -> torch.Tensor:
    """A scalar or ``(B,)`` value as ``(B, 1, ..., 1)`` float32 on ``ref``'s device."""
    t = torch.as_tensor(value, dtype=torch.float32, device=ref.device).reshape(-1)
    return t.expand(ref.shape[0]).reshape(-1, *([1] * (ref.ndim - 1)))


def sde_step_with_logprob(
    model_output: torch.Tensor,
    sample: torch.Tensor,
    sigma: torch.Tensor | float,
    sigma_next: torch.Tensor | float,
    *,
    noise_level: float,
    sigma_max: float,
    sde_type: SdeType = "sde",
    prev_sample: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    reduction: Reduction = "mean",
) -> FlowStep:
    """Flow-GRPO's stochastic step x_sigma -> x_sigma_next with the log-probability of the next latent.

    - ``sde_type="sde"`` (Flow-GRPO's SDE, arXiv 2505.05470 Eq. 9; sd3_sde_with_logprob.py@ac4c86e): with
      dt = sigma_next - sigma < 0 and std_dev_t = a sqrt(sigma / (1 - sigma)) (``sigma_max`` in place of sigma in
      the denominator where sigma = 1, so the first step of a schedule starting at 1 stays finite; Flow-GRPO passes
      the schedule's second sigma, ``scheduler.sigmas[1]``),
      mean = x (1 + std_dev_t^2 dt / (2 sigma)) + v (1 + std_dev_t^2 (1 - sigma) / (2 sigma)) dt and
      x_next ~ N(mean, (std_dev_t sqrt(-dt))^2 I); ``log_prob`` is that Gaussian's log-density, per element,
      then averaged over the latent's dimensions (``reduction="mean"``, as Flow-GRPO does, so the ratio's scale
      does not depend on the resolution) or summed (``"sum"``: the exact log-density of the whole latent).
    - ``sde_type="cps"`` (Flow-GRPO's coefficients-preserving step, sd3_sde_with_logprob.py@54809b5): std =
      sigma_next sin(a pi / 2), x_0 = x - sigma v, x_1 = x + (1 - sigma) v, mean = (1 - sigma_next) x_0 +
      sqrt(sigma_next^2 - std^2) x_1, x_next = mean + std noise; ``log_prob`` is Flow-GRPO's -(x_next - mean)^2
      ("all constants removed"): the Gaussian's log-density times 2 std^2 less its constant, a monotone stand-in
      whose ratios are not those of the density (tests/trainers/test_flow_math.py relates the two).
    - ``noise_level`` a = 0: the deterministic step, x_next = mean = x + dt v (the scheduler's Euler step, for
      either type); ``log_prob`` is None.

    ``prev_sample`` is given in the training pass (the stored x_next); otherwise x_next is drawn, with ``noise``
    given or drawn from ``generator`` on the CPU (the same numbers on every device). ``sigma`` / ``sigma_next``:
    scalars or ``(B,)``. Everything is computed in float32 (Flow-GRPO: "bf16 can overflow here").
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    if sde_type not in ("sde", "cps"):
        raise ValueError(f"sde_type must be 'sde' or 'cps', got {sde_type!r}")
    if noise_level < 0:
        raise ValueError(f"noise_level must be >= 0, got {noise_level}")
    # 1. float32 throughout, sigmas per sample
    v, x = model_output.float(), sample.float()
    s, s_next = _per_sample(sigma, x), _per_sample(sigma_next, x)
    dt = s_next - s
    # 2. the step's mean and std (sd3_sde_with_logprob.py, in its order of operations: parity is bit for bit)
    if sde_type == "sde":
        std_dev_t = torch.sqrt(s / (1 - torch.where(s == 1, sigma_max, s))) * noise_level
        mean = x * (1 + std_dev_t ** 2 / (2 * s) * dt) + v * (1 + std_dev_t ** 2 * (1 - s) / (2 * s)) * dt
        step_std = std_dev_t * torch.sqrt(-1 * dt)
    else:
        std_dev_t = s_next * math.sin(noise_level * math.pi / 2)
        x0, x1 = x - s * v, x + v * (1 - s)
        mean = x0 * (1 - s_next) + x1 * torch.sqrt(s_next ** 2 - std_dev_t ** 2)
        step_std = std_dev_t
    if noise_level == 0:  # the deterministic (Euler) step: no density
        return FlowStep(mean if prev_sample is None else prev_sample.float(), None, mean, std_dev_t)
    # 3. the next latent: given (training pass) or drawn
    if prev_sample is None:
        if noise is None:
            noise = torch.randn(x.shape, generator=generator, dtype=torch.float32)
        prev_sample = mean + step_std * noise.to(x.device, torch.float32)
    target = prev_sample.detach().float()
    # 4. per-element log-probability, reduced over the latent's dimensions
    if sde_type == "sde":
        logp = (-((target - mean) ** 2) / (2 * (step_std ** 2)) - torch.log(step_std)
                - torch.log(torch.sqrt(2 * torch.as_tensor(math.pi))))
    else:
        logp = -((target - mean) ** 2)
    dims = tuple(range(1, logp.ndim))
    logp = logp.mean(dim=dims) if reduction == "mean" else logp.sum(dim=dims)
    return FlowStep(prev_sample.float(), logp, mean, std_dev_t)


def kl_to_reference(mean: torch.Tensor, mean_ref: torch.Tensor, std_dev_t: torch.Tensor) -> torch.Tensor:
    """Flow-GRPO's KL penalty of one step, per sample ``(B,)``: the squared distance of the policy's step mean
    to the reference model's, averaged over the latent's dimensions, over 2 std_dev_t^2
    (scripts/train_sd3.py@ac4c86e: ``((prev_sample_mean - prev_sample_mean_ref) ** 2).mean(dim=(1, 2, 3),
    keepdim=True) / (2 * std_dev_t ** 2)``). For the "sde" step this divides by std_dev_t^2, not by the step's
    variance std_dev_t^2 |dt|, as Flow-GRPO does: a scale of the KL that beta absorbs."""
    dims = tuple(range(1, mean.ndim))
    kl = ((mean.float() - mean_ref.float()) ** 2).mean(dim=dims, keepdim=True) / (2 * std_dev_t ** 2)
    return kl.reshape(-1)


# -------------------------------------------------------------------------------------------
# Schedules: the trained steps, the Fast window
# -------------------------------------------------------------------------------------------
def trained_steps(num_steps: int, timestep_fraction: float) -> int:
    """How many of a trajectory's first steps Flow-GRPO trains on: int(num_steps * timestep_fraction), at least 1
    (scripts/train_sd3.py@ac4c86e ``num_train_timesteps``; with 10 steps and 0.99, the first 9: the last step,
    whose Gaussian is the sharpest, is left out).

    >>> trained_steps(10, 0.99), trained_steps(10, 1.0)
    (9, 10)
    """
    return max(1, int(num_steps * timestep_fraction))


def sde_window(num_steps: int, size: int, window_range: Sequence[int] | None, generator: torch.Generator
               ) -> tuple[int, int]:
    """Flow-GRPO-Fast's stochastic window ``(start, end)``: ``size`` consecutive steps whose start is drawn
    uniformly from ``[lo, hi - size]`` (both ends included; its SD3 pipeline: ``random.randint(sde_window_range[0],
    sde_window_range[1] - sde_window_size)``), the steps outside deterministic. ``window_range`` None: the first
    half of the steps, ``(0, num_steps // 2)`` (config/grpo.py@54809b5, the fast configs). ``size`` 0: no window,
    every step is stochastic, ``(0, num_steps)``, as the pipeline of scripts/train_sd3.py@ac4c86e samples.

    >>> g = torch.Generator().manual_seed(0)
    >>> sorted({sde_window(10, 3, None, g)[0] for _ in range(200)})
    [0, 1, 2]
    """
    if size <= 0:
        return 0, num_steps
    lo, hi = (0, num_steps // 2) if window_range is None else (int(window_range[0]), int(window_range[1]))
    if not 0 <= lo <= hi - size or hi > num_steps:
        raise ValueError(f"a window of {size} steps does not fit in the range [{lo}, {hi}] of {num_steps} steps")
    start = lo + int(torch.randint(hi - size - lo + 1, (1,), generator=generator))
    return start, start + size


# -------------------------------------------------------------------------------------------
# Advantages
# -------------------------------------------------------------------------------------------
def group_advantages(rewards: torch.Tensor, groups: Sequence, global_std: bool = False,
                     eps: float = GROUP_STD_EPS) -> torch.Tensor:
    """GRPO's group-relative advantages (flow_grpo/stat_tracking.py@ac4c86e, PerPromptStatTracker.update, its
    buffer cleared every epoch): each reward less the mean of its group (the images of one prompt), over the
    group's population std + ``eps``, or over the std of all ``rewards`` + ``eps`` (``global_std``, Flow-GRPO's
    SD3.5-M configs). In float64, as the tracker's NumPy; returned float32. Not clamped.

    >>> tuple(round(a, 6) for a in group_advantages(torch.tensor([1.0, 3.0, 5.0, 5.0]), ["a", "a", "b", "b"]).tolist())
    (-0.9999, 0.9999, 0.0, 0.0)
    """
    r = rewards.detach().double().cpu()
    if len(groups) != r.shape[0]:
        raise ValueError(f"{len(groups)} group labels but {r.shape[0]} rewards")
    adv = torch.empty_like(r)
    everyone = r.std(unbiased=False) + eps
    for g in dict.fromkeys(groups):
        idx = torch.tensor([i for i, h in enumerate(groups) if h == g])
        mine = r[idx]
        std = everyone if global_std else mine.std(unbiased=False) + eps
        adv[idx] = (mine - mine.mean()) / std
    return adv.float().to(rewards.device)


def nft_reward(advantages: torch.Tensor, adv_clip_max: float = ADV_CLIP_MAX) -> torch.Tensor:
    """DiffusionNFT's optimality probability r in [0, 1] from (clipped) advantages
    (train_nft_sd3.py@24af555: ``clamp((clamp(A, -max, max) / max) / 2 + 0.5, 0, 1)``).

    >>> nft_reward(torch.tensor([-9.0, 0.0, 2.5])).tolist()
    [0.0, 0.5, 0.75]
    """
    a = advantages.float().clamp(-adv_clip_max, adv_clip_max)
    return ((a / adv_clip_max) / 2.0 + 0.5).clamp(0, 1)


# -------------------------------------------------------------------------------------------
# DiffusionNFT's loss
# -------------------------------------------------------------------------------------------
def nft_loss(v: torch.Tensor, v_old: torch.Tensor, x_t: torch.Tensor, x0: torch.Tensor, t: torch.Tensor,
             r: torch.Tensor, beta: float, adv_clip_max: float = ADV_CLIP_MAX
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """DiffusionNFT's policy loss per sample ``(B,)`` (arXiv 2509.16117 Eq. 8-10; train_nft_sd3.py@24af555):

        v+ = beta v + (1 - beta) v_old          (the implicit positive policy)
        v- = (1 + beta) v_old - beta v          (the implicit negative policy)
        x0+ = x_t - t v+,  x0- = x_t - t v-     (their clean-sample predictions)
        L  = adv_clip_max * (r ||x0+ - x0||^2 / w+ + (1 - r) ||x0- - x0||^2 / w-) / beta

    with ||.||^2 averaged over the latent's dimensions and the adaptive weights w = mean |x0_pred - x0| (no
    gradient, in float64, at least 1e-5). ``v_old`` is taken as fixed (detached); ``r`` = `nft_reward`;
    ``t`` = sigma ``(B,)``. Returns the loss and the positive and negative terms (detached) for the log.
    """
    dims = tuple(range(1, x0.ndim))
    te = _per_sample(t, x0)
    v_old = v_old.detach()
    pos_v = beta * v + (1 - beta) * v_old
    neg_v = (1.0 + beta) * v_old - beta * v
    pos_x0, neg_x0 = x_t - te * pos_v, x_t - te * neg_v

    def weighted(pred: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():  # the adaptive weight, in float64 as DiffusionNFT computes it
            w = (pred.double() - x0.double()).abs().mean(dim=dims, keepdim=True).clip(min=0.00001)
        return ((pred - x0) ** 2 / w).mean(dim=dims)

    positive, negative = weighted(pos_x0), weighted(neg_x0)
    loss = (r * positive / beta + (1.0 - r) * negative / beta) * adv_clip_max
    return loss.float(), {"positive": positive.detach().float(), "negative": negative.detach().float()}


def nft_old_decay(step: int, decay_type: int) -> float:
    """How much of the old (sampling) model DiffusionNFT keeps when it moves towards the trained one after an
    iteration, old <- decay old + (1 - decay) current, at optimizer step ``step`` (train_nft_sd3.py@24af555
    ``return_decay``): type 0 keeps none (the old model is the current one), type 1 rises 0.001 a step up to 0.5,
    type 2 is 0 for 75 steps then rises 0.0075 a step up to 0.999.

    >>> nft_old_decay(100, 0), nft_old_decay(100, 1), nft_old_decay(1000, 1), nft_old_decay(50, 2)
    (0.0, 0.1, 0.5, 0.0)
    """
    flat, rate, cap = {0: (0, 0.0, 0.0), 1: (0, 0.001, 0.5), 2: (75, 0.0075, 0.999)}[decay_type]
    return 0.0 if step < flat else min((step - flat) * rate, cap)


# -------------------------------------------------------------------------------------------
# EMA of the trained weights
# -------------------------------------------------------------------------------------------
class EMA:
    """An exponential moving average of parameters (flow_grpo/ema.py@ac4c86e, EMAModuleWrapper): at optimizer step
    n, when (n + 1) is a multiple of ``every``, ema <- ema + (1 - d) (param - ema) with d = min((1 + n) / (10 + n),
    ``decay``) (a short warm-up, then ``decay``). Flow-GRPO: decay 0.9 every 8 steps ("affects the previous
    20 x 8 = 160 steps on average"); DiffusionNFT: 0.9 every step. The state round-trips for exact resume.

    >>> p = torch.nn.Parameter(torch.zeros(2))
    >>> ema = EMA([p], decay=0.9, every=1)
    >>> _ = p.data.fill_(1.0); ema.step([p], 0)
    >>> [round(x, 6) for x in ema.shadow[0].tolist()]  # d = min(1 / 10, 0.9) = 0.1: 0 + 0.9 (1 - 0)
    [0.9, 0.9]
    """

    def __init__(self, params: Iterable[torch.Tensor], decay: float = 0.9, every: int = 8):
        self.decay, self.every = decay, every
        self.shadow = [p.detach().clone().float() for p in params]

    def current_decay(self, step: int) -> float:
        return min((1 + step) / (10 + step), self.decay)

    @torch.no_grad()
    def step(self, params: Iterable[torch.Tensor], step: int) -> None:
        if (step + 1) % self.every:
            return
        keep = 1 - self.current_decay(step)
        for e, p in zip(self.shadow, params, strict=True):
            e.add_(keep * (p.detach().float().to(e.device) - e))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"ema.{i}": e for i, e in enumerate(self.shadow)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for i, e in enumerate(self.shadow):
            e.copy_(state[f"ema.{i}"])
