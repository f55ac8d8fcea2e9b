"""A task's reward as the loop calls it: ``fn(images, prompts, groups) -> scores (B,)`` on the training device.

A task names a registered reward (loaded through ``rewardbench.load_reward`` only), a ``"module:callable"``,
or is given a `RewardModel` or a ddpo-style callable ``fn(images, prompts, metadata) -> (rewards, info)``.
A callable that wraps a `RewardModel` (``reward.as_ddpo_fn()``, whose ``model`` attribute holds it) is called
through that model with the group tensor as it is; any other callable gets metadata dicts ``{"group": g}``.

    >>> import torch
    >>> fn, whole_batch, name = resolve_reward("jpeg-compressibility", torch.device("cpu"))
    >>> fn(torch.rand(2, 3, 32, 32), ["a", "b"], torch.tensor([0, 0])).shape, whole_batch
    (torch.Size([2]), False)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

RewardFn = Callable[[torch.Tensor, list, torch.Tensor], torch.Tensor]  # (images, prompts, groups) -> (B,) float32


def resolve_reward(reward: Any, device: torch.device, kwargs: dict | None = None) -> tuple[RewardFn, bool, str]:
    """A task's reward -> ``(fn(images, prompts, groups) -> scores (B,) on device, whole_batch, description)``.

    ``reward`` is a registry name (through ``rewardbench.load_reward`` only), ``"module:callable"``,
    a `RewardModel`, or any ddpo-style callable ``fn(images, prompts, metadata) -> (rewards, info)``.
    ``whole_batch`` is True when the reward must see whole groups at once (group rewards, callables).
    """
    import rewardbench

    if isinstance(reward, str) and ":" in reward:
        mod, _, attr = reward.partition(":")
        reward = getattr(importlib.import_module(mod), attr)
    if isinstance(reward, str):
        model = rewardbench.load_reward(reward, device=device, **(kwargs or {}))
        desc = f"{model.spec.name} ({model.weights_used})"
        return _model_fn(model, device), model.spec.granularity == "group", desc
    if isinstance(reward, rewardbench.RewardModel):
        return _model_fn(reward, device), reward.spec.granularity == "group", reward.spec.name
    if callable(reward):
        name = getattr(reward, "__name__", type(reward).__name__)
        wrapped = getattr(reward, "model", None)
        # an adapter that scores in chunks (as_ddpo_fn(batch_size=...)) packs whole groups itself: it keeps them
        if isinstance(wrapped, rewardbench.RewardModel) and getattr(reward, "batch_size", None) is None:
            return _model_fn(wrapped, device), True, name
        return _ddpo_fn(reward, device), True, name
    raise TypeError(f"reward: expected a registry name, a RewardModel or a callable, got {type(reward).__name__}")


def _model_fn(model, device: torch.device) -> RewardFn:
    def fn(images, prompts, groups):
        with torch.inference_mode():
            return model(images, list(prompts), groups).scores.float().to(device)
    return fn


def _ddpo_fn(f, device: torch.device) -> RewardFn:
    def fn(images, prompts, groups):
        meta = [{"group": int(g)} for g in groups.tolist()]
        out = f(images, list(prompts), meta)
        scores = out[0] if isinstance(out, tuple) else out
        scores = torch.as_tensor(np.asarray(scores.detach().cpu() if torch.is_tensor(scores) else scores),
                                 dtype=torch.float32)
        if scores.shape != (len(prompts),):
            raise ValueError(f"reward callable returned shape {tuple(scores.shape)} for {len(prompts)} images")
        return scores.to(device)
    return fn
