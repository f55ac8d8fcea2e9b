"""The loop's shared steps (trainers/steps.py) on their own: advantages over the gathered batch are clamped once,
in both the batch-statistics and the per-prompt path, and each process gets its own share; rewards are timed and
stay on the device."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from rewardbench.trainers import steps
from rewardbench.trainers.config import load_config
from rewardbench.trainers.tasks import build_tasks


def _rollout(prompts, *overrides):
    cfg = load_config(None, ["tasks.0.prompts=[a, b]", "tasks.0.allow_eval_overlap=true", *overrides])
    task = build_tasks(cfg, {}, torch.device("cpu"))[0]
    return cfg, steps.Rollout(task, list(prompts), torch.zeros(len(prompts)), samples=None, pending=[], sample_s=0.0)


def _processes(world, rank, others):
    """A stand-in for the accelerator of process ``rank`` of ``world``: gather puts ``others`` around its scores."""
    def gather(t):
        parts = list(others)
        parts.insert(rank, t)
        return torch.cat(parts)
    return SimpleNamespace(num_processes=world, process_index=rank, gather=gather)


def _scores(*values):
    return steps.Rewards(torch.tensor(values), reward_s=0.0, wait_s=0.0)


@pytest.mark.parametrize("per_prompt", [False, True])
def test_advantages_are_clamped_once_where_they_are_computed(monkeypatch, per_prompt):
    """A batch whose z-scores pass the clip gives clipped advantages, clamped by one call (the loss does not
    clamp again: test_ddpo_math.test_loss_takes_advantages_as_given); the per-prompt path is clamped as well."""
    calls = []
    clamp = steps.clamp_advantages
    monkeypatch.setattr(steps, "clamp_advantages", lambda a, clip: calls.append(clip) or clamp(a, clip))
    over = ["train.adv_clip_max=1.5", f"train.per_prompt_stats={str(per_prompt).lower()}", "train.stat_min_count=2"]
    cfg, ro = _rollout(["a"] * 6 + ["b"] * 2, *over)
    # prompt a: five 0s and a 10 (z = 2.24 over a's own statistics, 2.65 over the batch's); b: 1 and 3
    adv = steps.advantages(ro, _scores(0.0, 0.0, 0.0, 0.0, 0.0, 10.0, 1.0, 3.0), _processes(1, 0, []), cfg.train)
    assert calls == [1.5]
    assert adv.advantages.max() == 1.5 and adv.advantages.min() > -1.5
    if per_prompt:  # each prompt's own statistics (the tracker has min_count = 2 of each)
        assert adv.advantages[-2:].tolist() == pytest.approx([-1.0, 1.0], abs=1e-5)
    assert adv.rewards.tolist() == [0.0, 0.0, 0.0, 0.0, 0.0, 10.0, 1.0, 3.0]


def test_advantages_come_from_every_process_and_each_gets_its_share():
    cfg, ro = _rollout(["a", "b"])
    other = torch.tensor([10.0, 30.0])
    first = steps.advantages(ro, _scores(0.0, 20.0), _processes(2, 0, [other]), cfg.train)
    second = steps.advantages(ro, _scores(10.0, 30.0), _processes(2, 1, [torch.tensor([0.0, 20.0])]), cfg.train)
    assert first.rewards.tolist() == second.rewards.tolist() == [0.0, 20.0, 10.0, 30.0]
    z = (first.rewards - 15) / (first.rewards.std(unbiased=False) + 1e-7)
    torch.testing.assert_close(torch.cat([first.advantages, second.advantages]), z)


@pytest.mark.parametrize("threaded", [False, True])
def test_rewards_are_timed_and_stay_on_the_device(threaded):
    """Image-level rewards started during sampling come back in order; a whole-batch reward is called once."""
    calls = []

    def fn(images, prompts, groups):
        calls.append((list(prompts), groups.tolist()))
        return images.mean(dim=(1, 2, 3))

    rewarder = steps.Rewarder(torch.device("cpu"), threaded)
    images = torch.rand(4, 3, 8, 8)
    _, ro = _rollout(["a", "a", "b", "b"])
    ro.task.reward = fn
    ro.groups = torch.tensor([0, 0, 1, 1])
    ro.pending = [rewarder.start(fn, images[:2], ro.prompts[:2], ro.groups[:2]),
                  rewarder.start(fn, images[2:], ro.prompts[2:], ro.groups[2:])]
    got = steps.reward(ro, rewarder)
    torch.testing.assert_close(got.scores, images.mean(dim=(1, 2, 3)))
    assert calls == [(["a", "a"], [0, 0]), (["b", "b"], [1, 1])] and got.reward_s >= 0
    ro.task.whole_batch, ro.samples = True, SimpleNamespace(images=images)
    calls.clear()
    assert steps.reward(ro, rewarder).scores.shape == (4,) and calls == [(ro.prompts, [0, 0, 1, 1])]
    rewarder.close()
