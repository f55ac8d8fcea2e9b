"""`load_reward`: build a reward by name, load its weights, place it on a device.

Example:
    >>> import torch, rewardbench
    >>> r = rewardbench.load_reward("jpeg-compressibility")
    >>> out = r(torch.rand(2, 3, 64, 64))
    >>> out.scores.shape, r.weights_used
    (torch.Size([2]), 'none (no weights needed)')
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .model import RewardModel
from .provenance import Provenance
from .registry import REGISTRY


def load_reward(name: str | Sequence[str] | Mapping[str, float], device: str | torch.device | None = None,
                dtype: torch.dtype | str | None = None, weights: str | os.PathLike | None = None,
                pretrained: bool = True, normalize: str | None = None, remote: str | None = None,
                remote_timeout_s: float | None = None, **cfg: Any) -> RewardModel:
    """Build reward ``name`` (a name or alias; a comma-separated list, list or ``{name: weight}``
    mapping gives a `CompositeReward`), load its weights, move it to ``device``/``dtype``.

    ``pretrained=False`` keeps random weights (``reward.weights_used`` says so). ``weights``
    overrides the weight source with a local path, hub id or URL. ``**cfg`` goes to the builder
    (e.g. the spec's ``tiny_config``); a value an option declared in the spec cannot take
    (``spec.options``) raises `rewardbench.preflight.UsageError` before anything is built. Parameters
    are frozen (``requires_grad=False``); gradients still flow to the input pixels of differentiable
    rewards.

    Example:
        >>> import torch, rewardbench
        >>> r = rewardbench.load_reward("clipscore-b32", pretrained=False, tiny=True)  # offline: random weights
        >>> r.weights_used
        'random init (pretrained=False): scores are not meaningful'
        >>> r(torch.rand(2, 3, 64, 64), ["a cat", "a dog"]).scores.shape
        torch.Size([2])
    """
    if remote is not None:
        if not isinstance(name, str) or "," in name:
            raise ValueError("remote= applies to one reward; load the members of a composite separately")
        from .remote import DEFAULT_TIMEOUT_S, remote_reward

        # pretrained either way: a service serving random weights never stands in for the published ones
        expect = {**cfg, **({} if weights is None else {"weights": str(weights)}),
                  **({} if dtype is None else {"dtype": str(parse_dtype(dtype))}), "pretrained": bool(pretrained)}
        return remote_reward(name, remote, timeout_s=remote_timeout_s or DEFAULT_TIMEOUT_S, expect=expect,
                             device=device)
    if isinstance(name, str) and "," in name:
        name = [n.strip() for n in name.split(",") if n.strip()]
    if not isinstance(name, str):
        from .composite import CompositeReward

        items = dict(name) if isinstance(name, Mapping) else {n: 1.0 for n in name}
        if weights is not None:
            raise ValueError("weights= applies to one reward; load the members separately to override their weights")
        members = {n: load_reward(n, device=device, dtype=dtype, pretrained=pretrained, **cfg) for n in items}
        return CompositeReward(members, items, normalize=normalize).to(device=device or "cpu")
    if normalize is not None:
        raise ValueError("normalize= applies to composite rewards (several names)")
    dt = parse_dtype(dtype)
    from .preflight import check_option_values

    check_option_values(name, REGISTRY.spec(name), cfg, flag="")  # UsageError before anything is built
    if pretrained and weights is None:
        _check_weights_first(name, cfg)
    model = REGISTRY.build(name, **cfg)
    if pretrained:
        model.load_pretrained(weights)
    elif model.spec.weights:
        model.record_weights(Provenance("random", "pretrained=False", note="scores are not meaningful"))
    model = model.to(device=torch.device(device) if device is not None else None)
    if dt is not None:
        model = model.to(dtype=dt)
    model.eval().requires_grad_(False)
    return model


def _check_weights_first(name: str, cfg: dict[str, Any]) -> None:
    """Fail before building a large architecture when its weights cannot be found (offline)."""
    from .weights import resolve_weights

    entry = REGISTRY.entry(name)
    spec = entry.resolve_spec()
    hook = getattr(entry.load_target(), "weight_sources", None)
    if spec.offline or hook is None:
        return
    sources = hook(spec, dict(cfg))
    if sources:
        resolve_weights(tuple(sources), reward=spec.name)


def parse_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    table = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
             "half": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    try:
        return table[str(dtype).lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; choose from {', '.join(table)}") from None
