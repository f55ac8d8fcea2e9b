"""The pure maths of trainers/ddpo_math.py against independent computations and hand calculations."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import DDIMScheduler

from rewardbench.trainers.ddpo_math import (
    PerPromptStatTracker,
    clamp_advantages,
    clipped_policy_loss,
    ddim_step_with_logprob,
    normalize_advantages,
)
from rewardbench.trainers.pipeline import SD_SCHEDULER


@pytest.fixture
def sched():
    s = DDIMScheduler(**SD_SCHEDULER)
    s.set_timesteps(10)
    return s


def test_step_matches_diffusers_ddim_step(sched):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 8, 8, generator=g)
    eps = torch.randn(3, 4, 8, 8, generator=g)
    noise = torch.randn(3, 4, 8, 8, generator=g)
    for t in sched.timesteps:  # includes the last step, where prev_t < 0 uses final_alpha_cumprod
        ref = sched.step(eps, t, x, eta=1.0, variance_noise=noise).prev_sample
        ours, _ = ddim_step_with_logprob(eps, t.repeat(3), x, sched.alphas_cumprod, 100, eta=1.0,
                                         final_alpha_cumprod=sched.final_alpha_cumprod, noise=noise)
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_logprob_matches_torch_normal(sched, reduction):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 6, 6, generator=g)
    eps = torch.randn(2, 4, 6, 6, generator=g)
    prev = torch.randn(2, 4, 6, 6, generator=g)
    t = torch.tensor([int(sched.timesteps[2]), int(sched.timesteps[7])])  # a different timestep per sample
    _, logp = ddim_step_with_logprob(eps, t, x, sched.alphas_cumprod, 100, eta=0.7, prev_sample=prev,
                                     reduction=reduction)
    # independent computation: the mean from diffusers' own step with zero noise, sigma from DDIM eq. 16
    for i in range(2):
        ti = int(t[i])
        mean = sched.step(eps[i:i + 1], ti, x[i:i + 1], eta=0.7, variance_noise=torch.zeros(1, 4, 6, 6)).prev_sample
        a_t = sched.alphas_cumprod[ti]
        a_prev = sched.alphas_cumprod[ti - 100] if ti - 100 >= 0 else sched.final_alpha_cumprod
        sigma = 0.7 * math.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
        lp = torch.distributions.Normal(mean, sigma).log_prob(prev[i:i + 1])
        expected = lp.mean() if reduction == "mean" else lp.sum()
        torch.testing.assert_close(logp[i], expected, rtol=1e-4, atol=1e-4)


def test_sampled_step_has_the_highest_density_at_the_mean(sched):
    x = torch.randn(1, 4, 8, 8)
    eps = torch.randn(1, 4, 8, 8)
    t = sched.timesteps[3].reshape(1)
    mean, lp_mean = ddim_step_with_logprob(eps, t, x, sched.alphas_cumprod, 100, noise=torch.zeros_like(x))
    _, lp_off = ddim_step_with_logprob(eps, t, x, sched.alphas_cumprod, 100, prev_sample=mean + 0.1)
    assert lp_mean > lp_off


def test_last_step_with_set_alpha_to_one_has_ddpo_pytorchs_finite_logprob():
    """set_alpha_to_one=True: diffusers' last step is deterministic (final alpha 1, no density);
    ddpo-pytorch clamps prev_timestep to 0 and so uses alphas_cumprod[0]. Independent computation:
    diffusers' own step on the set_alpha_to_one=False schedule (final alpha = alphas_cumprod[0]) gives
    the mean, DDIM eq. 16 the sigma, torch.distributions the density."""
    one = DDIMScheduler(**{**SD_SCHEDULER, "set_alpha_to_one": True})
    zero = DDIMScheduler(**SD_SCHEDULER)
    for s in (one, zero):
        s.set_timesteps(10)
    assert float(one.final_alpha_cumprod) == 1.0
    t = one.timesteps[-1]  # 1 (steps_offset=1): prev_t = 1 - 100 < 0
    g = torch.Generator().manual_seed(3)
    x, eps, noise = (torch.randn(2, 4, 6, 6, generator=g) for _ in range(3))
    mean = zero.step(eps, t, x, eta=1.0, variance_noise=torch.zeros_like(x)).prev_sample
    ac = one.alphas_cumprod
    a_t, a_prev = float(ac[int(t)]), float(ac[0])
    sigma = math.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
    prev = mean + sigma * noise
    sample, logp = ddim_step_with_logprob(eps, t.repeat(2), x, ac, 100, final_alpha_cumprod=one.final_alpha_cumprod,
                                          noise=noise)
    torch.testing.assert_close(sample, prev, rtol=1e-5, atol=1e-5)
    assert torch.isfinite(logp).all()
    expected = torch.distributions.Normal(mean, sigma).log_prob(prev).mean(dim=(1, 2, 3))
    torch.testing.assert_close(logp, expected, rtol=1e-4, atol=1e-4)


def test_eta_zero_is_rejected(sched):
    with pytest.raises(ValueError, match="eta"):
        ddim_step_with_logprob(torch.zeros(1, 4, 2, 2), torch.tensor([1]), torch.zeros(1, 4, 2, 2),
                               sched.alphas_cumprod, 100, eta=0.0)


def test_advantages_by_hand():
    r = torch.tensor([1.0, 2.0, 3.0, 6.0])
    # mean 3, population std sqrt((4 + 1 + 0 + 9) / 4) = sqrt(3.5)
    s = math.sqrt(3.5)
    torch.testing.assert_close(normalize_advantages(r), torch.tensor([-2 / s, -1 / s, 0.0, 3 / s]))
    # an outlier is not clamped here (the trainer clamps once, where it computes the gathered batch's advantages)
    r = torch.tensor([0.0] * 99 + [1000.0])
    assert normalize_advantages(r).max() == pytest.approx(99 ** 0.5)
    assert clamp_advantages(normalize_advantages(r), clip=5.0).max() == 5.0
    # the paper's epsilon (released code: std + 1e-7): population std 1e-7 -> (±1e-7) / (1e-7 + 1e-7) = ±0.5
    torch.testing.assert_close(normalize_advantages(torch.tensor([0.0, 2e-7], dtype=torch.float64)),
                               torch.tensor([-0.5, 0.5]))
    assert normalize_advantages(torch.full((4,), 3.0)).tolist() == [0.0] * 4  # a constant reward: no signal


def test_per_prompt_tracker_uses_its_buffer_once_full():
    t = PerPromptStatTracker(buffer_size=4, min_count=2)
    # "a" has 2 rewards (min_count) -> its own stats: mean 2, std 1 -> [-1, 1]
    # "b" has 1 reward < min_count -> batch stats: mean of (1, 3, 5) = 3, std sqrt(8/3)
    adv = t.update(["a", "a", "b"], torch.tensor([1.0, 3.0, 5.0]))
    torch.testing.assert_close(adv, torch.tensor([-1.0, 1.0, 2 / math.sqrt(8 / 3)]), rtol=1e-5, atol=1e-5)
    # second update of "a": buffer holds [1, 3, 5, 7] (the last 4) -> mean 4, std sqrt(5)
    adv = t.update(["a", "a"], torch.tensor([5.0, 7.0]))
    torch.testing.assert_close(adv, torch.tensor([1 / math.sqrt(5), 3 / math.sqrt(5)]), rtol=1e-5, atol=1e-5)
    state = t.state_dict()
    t2 = PerPromptStatTracker(buffer_size=4, min_count=2)
    t2.load_state_dict(state)
    assert t2.update(["a"], torch.tensor([0.0])).tolist() == t.update(["a"], torch.tensor([0.0])).tolist()


def test_clipped_loss_by_hand():
    old = torch.zeros(3)
    logp = torch.log(torch.tensor([1.5, 0.5, 1.05])).requires_grad_(True)
    adv = torch.tensor([1.0, 1.0, -2.0])
    loss, info = clipped_policy_loss(logp, old, adv, clip_range=0.2)
    # ratios 1.5, 0.5, 1.05; clipped 1.2, 0.8, 1.05
    # per-sample max(-A r, -A clip(r)): max(-1.5, -1.2) = -1.2; max(-0.5, -0.8) = -0.5; max(2.1, 2.1) = 2.1
    assert float(loss.detach()) == pytest.approx((-1.2 - 0.5 + 2.1) / 3, abs=1e-6)
    assert float(info["clipfrac"]) == pytest.approx(2 / 3)
    lr = torch.log(torch.tensor([1.5, 0.5, 1.05]))
    assert float(info["approx_kl"]) == pytest.approx(0.5 * float((lr ** 2).mean()), rel=1e-5)
    loss.backward()
    # gradient d/dlogp = -A * r / 3 where the unclipped term is active, 0 where the clip is
    torch.testing.assert_close(logp.grad, torch.tensor([0.0, -0.5 / 3, 2 * 1.05 / 3]), rtol=1e-5, atol=1e-6)


def test_loss_takes_advantages_as_given():
    """Advantages are clamped once, before the loss (trainers/steps.py): the loss does not clamp them again."""
    loss, _ = clipped_policy_loss(torch.zeros(1), torch.zeros(1), torch.tensor([100.0]))
    assert float(loss) == pytest.approx(-100.0)
