"""rewardbench: standardized reward models for text-to-image diffusion.

    >>> import torch, rewardbench
    >>> reward = rewardbench.load_reward("jpeg-incompressibility")
    >>> reward(torch.rand(1, 3, 64, 64), ["a photo"]).scores.shape
    torch.Size([1])

Importing this package imports nothing heavy: not torch, transformers, diffusers, open_clip or ultralytics, and
no reward module (the zoo is discovered on the first registry query). Each public name below is imported from
its module on first use, so ``rewardbench --help`` and ``rewardbench list`` answer without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it (imported on first use)
_EXPORTS = {
    "RewardModel": "model", "BackboneReward": "model",
    "RewardSpec": "spec", "RewardOutput": "spec", "WeightSource": "spec", "Option": "spec",
    "register_reward": "registry", "register_lazy": "registry", "list_rewards": "registry", "get_spec": "registry",
    "UnknownRewardError": "registry", "DuplicateRewardError": "registry",
    "load_reward": "loading",
    "as_pixels": "images", "to_image_batch": "images", "load_image": "images", "ImageError": "images",
    "WeightsNotFoundError": "weights", "CheckpointMismatchError": "weights", "Provenance": "provenance",
    "TextFeatureCache": "cache",
    "Scorer": "harness",
}
__all__ = list(_EXPORTS)

if TYPE_CHECKING:  # for type checkers and IDEs; at run time `__getattr__` imports on use
    from .cache import TextFeatureCache  # noqa: F401
    from .harness import Scorer  # noqa: F401
    from .images import ImageError, as_pixels, load_image, to_image_batch  # noqa: F401
    from .loading import load_reward  # noqa: F401
    from .model import BackboneReward, RewardModel  # noqa: F401
    from .provenance import Provenance  # noqa: F401
    from .registry import (  # noqa: F401
        DuplicateRewardError,
        UnknownRewardError,
        get_spec,
        list_rewards,
        register_lazy,
        register_reward,
    )
    from .spec import Option, RewardOutput, RewardSpec, WeightSource  # noqa: F401
    from .weights import CheckpointMismatchError, WeightsNotFoundError  # noqa: F401


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rewardbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
