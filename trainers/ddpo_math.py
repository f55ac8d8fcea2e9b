"""The pure maths of the paper's RL algorithm: no model, no I/O, unit-tested on its own.

Sources: "Large-scale Reinforcement Learning for Diffusion Models" (Zhang, Tzeng, Du, Kislyuk;
arXiv 2401.12244) and DDPO (Black et al., arXiv 2305.13301) with its official code ddpo-pytorch
(``ddpo_pytorch/diffusers_patch/ddim_with_logprob.py``, ``ddpo_pytorch/stat_tracking.py``,
``scripts/train.py``). Equations (12) and (16) are those of DDIM (Song et al., arXiv 2010.02502).

Example (one DDIM step with its log-probability, then the clipped loss)::

    >>> import torch
    >>> from rewardbench.trainers.ddpo_math import ddim_step_with_logprob, clipped_policy_loss
    >>> ac = torch.linspace(0.999, 0.01, 1000)          # alphas_cumprod
    >>> x = torch.randn(2, 4, 8, 8); eps = torch.randn(2, 4, 8, 8)
    >>> prev, logp = ddim_step_with_logprob(eps, torch.tensor([981, 981]), x, ac, step_ratio=20, eta=1.0)
    >>> prev.shape, logp.shape
    (torch.Size([2, 4, 8, 8]), torch.Size([2]))
    >>> loss, info = clipped_policy_loss(logp, logp.detach(), torch.tensor([1.0, -1.0]), clip_range=1e-4)
    >>> float(info["clipfrac"])
    0.0
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Literal

import torch

Reduction = Literal["mean", "sum"]

# Advantages are clamped to this magnitude (the paper, arXiv 2401.12244: ±10; ddpo-pytorch config uses 5).
ADV_CLIP_MAX = 10.0
# PPO clip range of the importance ratio: the paper and ddpo-pytorch config/base.py (train.clip_range = 1e-4).
CLIP_RANGE = 1e-4
# Added to the standard deviation before dividing: the paper's Eq. (10) epsilon, whose value is the released
# code's (pinterest/atg-research joint-rl-diffusion/train.py: torch.std(all_rewards) + 1e-7, "a small offset 1e-7
# to avoid denominator being 0"). That code's torch.std is the unbiased estimate; ours is the population std
# (ddpo-pytorch's np.std): for the paper's 2,048 rewards per task the two differ by 0.02%. (ddpo-pytorch adds
# 1e-6 in stat_tracking and 1e-8 to the global std.)
STD_EPS = 1e-7


# -------------------------------------------------------------------------------------------
# DDIM step with log-probability
# -------------------------------------------------------------------------------------------
def _gather(table: torch.Tensor, idx: torch.Tensor, ndim: int) -> torch.Tensor:
    """table[idx] broadcast to ``ndim`` dims: (batch,) -> (batch, 1, 1, 1)."""
    out = table.to(idx.device)[idx.long()]
    return out.reshape(-1, *([1] * (ndim - 1)))


def ddim_step_with_logprob(
    model_output: torch.Tensor,
    timestep: torch.Tensor,
    sample: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    step_ratio: int,
    eta: float = 1.0,
    final_alpha_cumprod: float | torch.Tensor | None = None,
    prediction_type: str = "epsilon",
    clip_sample_range: float | None = None,
    prev_sample: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    reduction: Reduction = "mean",
) -> tuple[torch.Tensor, torch.Tensor]:
    """One DDIM step x_t -> x_{t-1} and the Gaussian log-density of x_{t-1}.

    Follows diffusers' ``DDIMScheduler.step`` (DDIM eq. 12 and 16), but with a per-sample
    ``timestep`` tensor ``[B]`` so the training pass can evaluate random timesteps in one batch.

    - ``step_ratio``: ``num_train_timesteps // num_inference_steps`` (prev_t = t - step_ratio; a
      negative prev_t uses ``final_alpha_cumprod``, as diffusers does; default ``alphas_cumprod[0]``,
      SD's ``set_alpha_to_one=False``). A final alpha of 1 (``set_alpha_to_one=True``) would make the
      last step deterministic, with no density; there, as ddpo-pytorch does, ``alphas_cumprod[0]`` is
      used instead, so every step, the last included, has a finite log-probability.
    - ``prev_sample``: given in the training pass (the stored x_{t-1}); otherwise it is drawn as
      mean + sigma_t * noise, with ``noise`` given or drawn from ``generator`` (on ``sample``'s device).
    - log-prob: N(x_{t-1}; mean, sigma_t^2 I) with sigma_t = eta * sqrt(variance); ``reduction``
      "mean" (default) averages the per-element log-density over the latent dimensions, as
      ddpo-pytorch does, so the importance ratio exp(logp - logp_old) has a scale independent of
      the latent resolution and the tiny clip range (1e-4) means the same at 32 px and 1024 px;
      "sum" gives the exact log-density of the whole latent (ratios then scale with C*H*W).

    Returns ``(prev_sample [B,C,H,W] in sample's dtype, log_prob [B] float32)``.
    """
    if eta <= 0:
        raise ValueError(f"eta must be > 0 for a stochastic policy with a log-probability (got {eta})")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    nd = sample.ndim
    timestep = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(sample.shape[0])
    # work in float32: the log-density of a tiny-variance Gaussian is ill-conditioned in bf16
    x = sample.float()
    out = model_output.float()
    ac = alphas_cumprod.float()
    final = ac[0] if final_alpha_cumprod is None else torch.as_tensor(final_alpha_cumprod, dtype=torch.float32)
    # ddpo-pytorch (ddpo_pytorch/diffusers_patch/ddim_with_logprob.py, ddim_step_with_logprob, step 1)
    # clamps prev_timestep to [0, num_train_timesteps - 1], so its last step always uses alphas_cumprod[0]
    # and stays stochastic even with set_alpha_to_one=True. We keep diffusers' final alpha otherwise (the
    # same value for SD's set_alpha_to_one=False) and fall back to alphas_cumprod[0] where it is 1.
    if float(final) >= 1.0:
        final = ac[0]

    # 1. previous timestep
    prev_t = timestep - step_ratio
    # 2. alphas (alpha_prod_t_prev falls back to the final alpha when prev_t < 0)
    a_t = _gather(ac, timestep, nd)
    a_prev = torch.where(prev_t >= 0, ac.to(x.device)[prev_t.clamp(min=0).long()], final.to(x.device))
    a_prev = a_prev.reshape(-1, *([1] * (nd - 1)))
    b_t = 1 - a_t
    # 3. predicted x_0 and epsilon (DDIM eq. 12)
    if prediction_type == "epsilon":
        x0 = (x - b_t.sqrt() * out) / a_t.sqrt()
        eps = out
    elif prediction_type == "v_prediction":
        x0 = a_t.sqrt() * x - b_t.sqrt() * out
        eps = a_t.sqrt() * out + b_t.sqrt() * x
    elif prediction_type == "sample":
        x0 = out
        eps = (x - a_t.sqrt() * x0) / b_t.sqrt()
    else:
        raise ValueError(f"unsupported prediction_type {prediction_type!r}")
    # 4. optional clipping of x_0 (SD's schedulers have clip_sample=False)
    if clip_sample_range is not None:
        x0 = x0.clamp(-clip_sample_range, clip_sample_range)
    # 5. sigma_t = eta * sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))  (DDIM eq. 16)
    variance = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)
    std = eta * variance.clamp(min=0).sqrt()
    if bool((std <= 0).any()):
        raise ValueError("sigma_t is 0 at some timestep (alpha_prev == alpha_t, e.g. t = 0 with prev_t < 0): the "
                         "step has no density; sample timesteps >= 1 (diffusers' steps_offset=1, as SD uses)")
    # 6.-7. mean of x_{t-1}: sqrt(a_prev) x0 + sqrt(1 - a_prev - sigma^2) eps
    mean = a_prev.sqrt() * x0 + (1 - a_prev - std ** 2).clamp(min=0).sqrt() * eps
    if prev_sample is None:
        if noise is None:
            dev = x.device if generator is None else generator.device
            noise = torch.randn(x.shape, generator=generator, device=dev, dtype=torch.float32).to(x.device)
        prev_sample = mean + std * noise.float()
    # log N(x_prev; mean, std^2), per element
    target = prev_sample.detach().float()
    logp = -((target - mean) ** 2) / (2 * std ** 2) - std.log() - 0.5 * math.log(2 * math.pi)
    dims = tuple(range(1, nd))
    logp = logp.mean(dim=dims) if reduction == "mean" else logp.sum(dim=dims)
    return prev_sample.to(sample.dtype), logp


# -------------------------------------------------------------------------------------------
# Advantages
# -------------------------------------------------------------------------------------------
def normalize_advantages(rewards: torch.Tensor, eps: float = STD_EPS) -> torch.Tensor:
    """(r - mean) / (std + eps) over ALL rewards given (pass the batch gathered from every
    process). ``std`` is the population std (ddpo-pytorch: np.std). Not clamped: the trainer clamps
    advantages once, where it computes them for the gathered batch (`clamp_advantages`).

    >>> normalize_advantages(torch.tensor([1.0, 3.0])).tolist()  # (r - 2) / (1 + 1e-7)
    [-0.9999998807907104, 0.9999998807907104]
    """
    r = rewards.float()
    return (r - r.mean()) / (r.std(unbiased=False) + eps)


def clamp_advantages(advantages: torch.Tensor, clip: float = ADV_CLIP_MAX) -> torch.Tensor:
    """Advantages clamped to ``[-clip, clip]`` (the paper: ±10), once, before any loss sees them.

    >>> clamp_advantages(torch.tensor([-30.0, 0.5, 12.0])).tolist()
    [-10.0, 0.5, 10.0]
    """
    return advantages.clamp(-clip, clip)


class PerPromptStatTracker:
    """DDPO's per-prompt running statistics (ddpo-pytorch ``stat_tracking.py``).

    Each prompt keeps the last ``buffer_size`` rewards; once it has ``min_count`` of them, its
    advantages use that buffer's mean and std, otherwise those of the whole batch.
    The state round-trips through `state_dict` / `load_state_dict` (for exact resume).

    >>> t = PerPromptStatTracker(buffer_size=4, min_count=2)
    >>> t.update(["a", "a", "b", "b"], torch.tensor([1.0, 3.0, 10.0, 30.0])).round(decimals=4).tolist()
    [-1.0, 1.0, -1.0, 1.0]
    """

    def __init__(self, buffer_size: int = 16, min_count: int = 16, eps: float = 1e-6):
        self.buffer_size = buffer_size
        self.min_count = min_count
        self.eps = eps
        self.buffers: dict[str, deque] = {}

    def update(self, prompts: Sequence[str], rewards: torch.Tensor) -> torch.Tensor:
        r = rewards.detach().double().cpu()
        if len(prompts) != r.shape[0]:
            raise ValueError(f"{len(prompts)} prompts but {r.shape[0]} rewards")
        adv = torch.empty_like(r)
        for p in dict.fromkeys(prompts):  # unique, first-seen order
            idx = torch.tensor([i for i, q in enumerate(prompts) if q == p])
            buf = self.buffers.setdefault(p, deque(maxlen=self.buffer_size))
            buf.extend(r[idx].tolist())
            if len(buf) < self.min_count:
                mean, std = r.mean(), r.std(unbiased=False)
            else:
                b = torch.tensor(list(buf), dtype=torch.float64)
                mean, std = b.mean(), b.std(unbiased=False)
            adv[idx] = (r[idx] - mean) / (std + self.eps)
        return adv.float().to(rewards.device)

    def state_dict(self) -> dict:
        return {"buffers": {k: list(v) for k, v in self.buffers.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.buffers = {k: deque(v, maxlen=self.buffer_size) for k, v in state["buffers"].items()}


# -------------------------------------------------------------------------------------------
# Loss
# -------------------------------------------------------------------------------------------
def clipped_policy_loss(log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantages: torch.Tensor,
                        clip_range: float = CLIP_RANGE) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate, as a loss to minimise (ddpo-pytorch scripts/train.py)::

        ratio = exp(logp - logp_old)
        loss  = mean(max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps)))

    ``advantages`` are taken as given: clamp them once beforehand (`clamp_advantages`; ddpo-pytorch clamps
    here, the result is the same). Returns the loss and diagnostics: ``approx_kl`` = 0.5 * mean((logp -
    logp_old)^2) and ``clipfrac`` = fraction with |ratio - 1| > eps.
    """
    adv = advantages.float()
    diff = log_prob.float() - old_log_prob.float()
    ratio = diff.exp()
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1.0 - clip_range, 1.0 + clip_range)
    loss = torch.maximum(unclipped, clipped).mean()
    info = {
        "approx_kl": 0.5 * (diff.detach() ** 2).mean(),
        "clipfrac": ((ratio.detach() - 1.0).abs() > clip_range).float().mean(),
        "ratio": ratio.detach().mean(),
    }
    return loss, info


def guided(noise_pred: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """Classifier-free guidance on a batch laid out [uncond; cond]: u + w (c - u)."""
    uncond, cond = noise_pred.chunk(2)
    return uncond + guidance_scale * (cond - uncond)
