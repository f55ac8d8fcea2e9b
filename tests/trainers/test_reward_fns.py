"""A task's reward as the loop calls it (trainers/reward_fns.py): a callable that wraps a RewardModel gets the
group tensor through its model, with no metadata dicts on the way; any other callable gets metadata dicts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rewardbench
from rewardbench.trainers.reward_fns import resolve_reward

CPU = torch.device("cpu")


def test_a_callable_wrapping_a_reward_model_gets_the_group_tensor(monkeypatch):
    model = rewardbench.load_reward("vendi", pretrained=False)  # a group reward
    images, prompts, groups = torch.rand(4, 3, 16, 16), ["a", "a", "b", "b"], torch.tensor([0, 0, 1, 1])
    fn = model.as_ddpo_fn()
    expected, _ = fn(images, prompts, [{"group": int(g)} for g in groups])  # through the adapter's metadata
    seen = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda i, p, g=None: seen.append(g) or forward(i, p, g))
    monkeypatch.setattr(type(fn), "__call__", lambda *a, **k: pytest.fail("the adapter was called"))
    call, whole_batch, name = resolve_reward(fn, CPU)
    scores = call(images, prompts, groups)
    assert len(seen) == 1 and torch.equal(seen[0], groups)
    assert scores.dtype == torch.float32 and scores.tolist() == expected.tolist()
    assert whole_batch and name == type(fn).__name__  # as before: the fingerprint of a run stays the same


def test_a_chunking_adapter_keeps_its_chunks():
    model = rewardbench.load_reward("jpeg-compressibility")
    calls = []
    forward = model.forward
    model.forward = lambda i, p, g=None: calls.append(len(p)) or forward(i, p, g)
    call, _, _ = resolve_reward(model.as_ddpo_fn(batch_size=2), CPU)
    assert call(torch.rand(5, 3, 16, 16), list("abcde"), torch.zeros(5, dtype=torch.long)).shape == (5,)
    assert calls == [2, 2, 1]


def test_a_plain_callable_gets_metadata_dicts():
    got = []

    def reward(images, prompts, metadata):
        got.append(metadata)
        return np.arange(len(prompts), dtype=np.float64), {}

    call, whole_batch, name = resolve_reward(reward, CPU)
    scores = call(torch.rand(2, 3, 8, 8), ["a", "b"], torch.tensor([3, 3]))
    assert got == [[{"group": 3}, {"group": 3}]] and scores.tolist() == [0.0, 1.0]
    assert scores.dtype == torch.float32 and whole_batch and name == "reward"
    with pytest.raises(ValueError, match="shape"):
        resolve_reward(lambda i, p, m: np.zeros(3), CPU)[0](torch.rand(2, 3, 8, 8), ["a", "b"], torch.zeros(2))
