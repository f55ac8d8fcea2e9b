"""The flow-matching maths (trainers/flow_math.py) on its own: the SDE step's log-density is the Gaussian's (checked
with torch.distributions), a = 0 is the scheduler's own Euler step, the "cps" step's stand-in relates to its
density, the KL, the Fast window, group advantages as Flow-GRPO's tracker computes them, DiffusionNFT's loss and
schedules, the EMA."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rewardbench.trainers.flow_math import (
    EMA,
    group_advantages,
    kl_to_reference,
    nft_loss,
    nft_old_decay,
    nft_reward,
    sde_step_with_logprob,
    sde_window,
    trained_steps,
)


def _schedule(steps=10, shift=3.0):
    from diffusers import FlowMatchEulerDiscreteScheduler

    sched = FlowMatchEulerDiscreteScheduler(shift=shift)
    sched.set_timesteps(steps)
    return sched


@pytest.mark.parametrize("k", [0, 4, 9])  # the first step (sigma = 1), a middle one, the last (sigma_next = 0)
def test_the_sde_steps_log_density_is_the_gaussians(k):
    sched = _schedule()
    s, s_next, smax = sched.sigmas[k], sched.sigmas[k + 1], float(sched.sigmas[1])
    g = torch.Generator().manual_seed(k)
    x, v = torch.randn(3, 4, 6, 6, generator=g), torch.randn(3, 4, 6, 6, generator=g)
    step = sde_step_with_logprob(v, x, s.repeat(3), s_next.repeat(3), noise_level=0.7, sigma_max=smax,
                                 generator=g, reduction="sum")
    std = 0.7 * math.sqrt(float(s) / (1 - (smax if float(s) == 1 else float(s)))) * math.sqrt(float(s - s_next))
    want = torch.distributions.Normal(step.mean.double(), std).log_prob(step.prev_sample.double()).sum((1, 2, 3))
    torch.testing.assert_close(step.log_prob.double(), want, rtol=1e-5, atol=1e-3)
    mean = sde_step_with_logprob(v, x, s, s_next, noise_level=0.7, sigma_max=smax, prev_sample=step.prev_sample)
    torch.testing.assert_close(mean.log_prob * 4 * 6 * 6, step.log_prob)  # the default: the mean over dimensions
    # the step's mean is the drawn sample's: the same mean and std drew it (1e4 samples, one element)
    draws = torch.stack([sde_step_with_logprob(v[:1], x[:1], s, s_next, noise_level=0.7, sigma_max=smax,
                                               generator=g).prev_sample[0, 0, 0, 0] for _ in range(2000)])
    assert abs(float(draws.mean() - step.mean[0, 0, 0, 0])) < 4 * std / math.sqrt(2000)
    assert abs(float(draws.std()) / std - 1) < 0.1


@pytest.mark.parametrize("sde_type", ["sde", "cps"])
def test_no_noise_is_the_schedulers_euler_step(sde_type):
    sched = _schedule()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 6, 6, generator=g)
    for k, t in enumerate(sched.timesteps):
        v = torch.randn(2, 4, 6, 6, generator=g)
        ours = sde_step_with_logprob(v, x, sched.sigmas[k], sched.sigmas[k + 1], noise_level=0.0,
                                     sigma_max=float(sched.sigmas[1]), sde_type=sde_type)
        theirs = sched.step(v, t, x).prev_sample
        assert ours.log_prob is None
        if sde_type == "sde":
            assert torch.equal(ours.prev_sample, theirs)  # the same float32 operations
        else:  # x0 (1 - s') + x1 s' rearranged: equal up to rounding
            torch.testing.assert_close(ours.prev_sample, theirs, rtol=0, atol=1e-6)
        x = theirs
    # and the limit a -> 0 of the stochastic step (a tiny a, the same noise) is that step
    tiny = sde_step_with_logprob(v, x, sched.sigmas[3], sched.sigmas[4], noise_level=1e-6, sde_type=sde_type,
                                 sigma_max=float(sched.sigmas[1]), noise=torch.randn(2, 4, 6, 6, generator=g))
    euler = x + (sched.sigmas[4] - sched.sigmas[3]) * v
    torch.testing.assert_close(tiny.prev_sample, euler, rtol=0, atol=1e-5)


def test_the_cps_steps_stand_in_and_its_density():
    """Flow-GRPO's cps log-probability is -(x' - mean)^2 averaged: the Gaussian's log-density per element is that
    over 2 std^2, less log(std) and log(sqrt(2 pi)); and its std is sigma_next sin(a pi / 2)."""
    sched = _schedule()
    g = torch.Generator().manual_seed(2)
    x, v = torch.randn(2, 4, 6, 6, generator=g), torch.randn(2, 4, 6, 6, generator=g)
    s, s_next = sched.sigmas[2], sched.sigmas[3]
    step = sde_step_with_logprob(v, x, s, s_next, noise_level=0.8, sigma_max=float(sched.sigmas[1]),
                                 sde_type="cps", generator=g)
    std = float(s_next) * math.sin(0.8 * math.pi / 2)
    assert torch.allclose(step.std_dev_t, torch.tensor(std))
    density = torch.distributions.Normal(step.mean.double(), std).log_prob(step.prev_sample.double()).mean((1, 2, 3))
    torch.testing.assert_close(step.log_prob.double() / (2 * std ** 2) - math.log(std) - 0.5 * math.log(2 * math.pi),
                               density, rtol=1e-5, atol=1e-5)
    # the marginal is preserved: mean coefficients (1 - s') on x0 and sqrt(s'^2 - std^2) on x1, plus std of noise
    x0, x1 = x - s * v, x + (1 - s) * v
    torch.testing.assert_close(step.mean, x0 * (1 - s_next) + x1 * math.sqrt(float(s_next) ** 2 - std ** 2))


def test_kl_to_reference():
    mean, ref = torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2)
    std = torch.tensor([1.0, 2.0]).view(-1, 1, 1, 1)
    assert kl_to_reference(mean, ref, std).tolist() == [0.5, 0.125]
    assert kl_to_reference(mean, mean, std).tolist() == [0.0, 0.0]


def test_the_fast_window_and_the_trained_steps():
    g = torch.Generator().manual_seed(0)
    starts = [sde_window(10, 3, None, g) for _ in range(300)]
    assert {a for a, _ in starts} == {0, 1, 2} and all(b - a == 3 for a, b in starts)  # a start in the first half
    assert {sde_window(10, 2, (2, 6), g)[0] for _ in range(300)} == {2, 3, 4}
    assert sde_window(10, 0, None, g) == (0, 10)  # no window: every step
    with pytest.raises(ValueError, match="does not fit"):
        sde_window(10, 6, None, g)
    assert trained_steps(10, 0.99) == 9 and trained_steps(1, 0.5) == 1


def _tracker(prompts, rewards, global_std):
    """flow_grpo/stat_tracking.py@ac4c86e PerPromptStatTracker.update's arithmetic, restated in NumPy."""
    prompts, rewards = np.array(prompts), np.array(rewards, dtype=np.float64)
    adv = np.empty_like(rewards)
    for p in np.unique(prompts):
        mine = rewards[prompts == p]
        std = (np.std(rewards) if global_std else np.std(mine)) + 1e-4
        adv[prompts == p] = (mine - np.mean(mine)) / std
    return adv


@pytest.mark.parametrize("global_std", [False, True])
def test_group_advantages_as_flow_grpos_tracker(global_std):
    g = torch.Generator().manual_seed(3)
    rewards = torch.rand(24, generator=g)
    prompts = [f"p{i % 5}" for i in range(24)]
    ours = group_advantages(rewards, prompts, global_std=global_std)
    np.testing.assert_allclose(ours.numpy(), _tracker(prompts, rewards.double().numpy(), global_std), rtol=1e-6)
    same = group_advantages(torch.full((4,), 0.5), ["a"] * 4)
    assert same.tolist() == [0.0] * 4  # a group whose images all score alike: zero advantages (left out in training)


def test_nft_loss_reward_and_old_model_schedule():
    assert nft_reward(torch.tensor([-10.0, -5.0, 0.0, 5.0, 10.0])).tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]
    g = torch.Generator().manual_seed(4)
    x0, noise = torch.randn(3, 4, 4, 4, generator=g), torch.randn(3, 4, 4, 4, generator=g)
    t = torch.tensor([0.3, 0.6, 0.9])
    te = t.view(-1, 1, 1, 1)
    x_t = (1 - te) * x0 + te * noise
    v_true = noise - x0
    v_old = v_true + 0.1 * torch.randn(3, 4, 4, 4, generator=g)
    v = v_old.clone().requires_grad_(True)
    r = torch.tensor([1.0, 0.5, 0.0])
    loss, info = nft_loss(v, v_old, x_t, x0, t, r, beta=1.0)
    # at v = v_old both implicit policies are the old one: each term is mean |x0_pred - x0|, weighted by itself
    x0_old = x_t - te * v_old
    err = (x0_old - x0).double()
    want = (err ** 2 / err.abs().mean((1, 2, 3), keepdim=True)).mean((1, 2, 3)).float()
    torch.testing.assert_close(info["positive"], want)
    torch.testing.assert_close(info["negative"], want)
    torch.testing.assert_close(loss, 5.0 * want)
    # r = 1 pulls v towards the data's velocity (the positive policy's x0 towards x0), r = 0 pushes it away
    loss.sum().backward()
    toward = -(v.grad * (v_true - v_old)).sum((1, 2, 3))
    assert toward[0] > 0 and toward[2] < 0
    assert [nft_old_decay(s, 1) for s in (0, 10, 499, 501)] == [0.0, 0.01, 0.499, 0.5]
    assert nft_old_decay(75, 2) == 0.0 and nft_old_decay(1000, 2) == 0.999 and nft_old_decay(10, 0) == 0.0


def test_ema_warm_up_interval_and_state():
    p = torch.nn.Parameter(torch.zeros(3))
    ema = EMA([p], decay=0.9, every=8)
    p.data.fill_(1.0)
    for n in range(7):  # steps 0..6: (n + 1) % 8 != 0, no update
        ema.step([p], n)
    assert ema.shadow[0].tolist() == [0.0] * 3
    ema.step([p], 7)  # d = min(8 / 17, 0.9): ema = 1 - 8/17
    torch.testing.assert_close(ema.shadow[0], torch.full((3,), 1 - 8 / 17))
    other = EMA([torch.zeros(3)], decay=0.9, every=8)
    other.load_state_dict(ema.state_dict())
    assert torch.equal(other.shadow[0], ema.shadow[0])
