"""rewardbench: standardized reward models for text-to-image diffusion.

    >>> import torch, rewardbench
    >>> reward = rewardbench.load_reward("jpeg-incompressibility")
    >>> reward(torch.rand(1, 3, 64, 64), ["a photo"]).scores.shape
    torch.Size([1])

Importing this package loads neither transformers, diffusers, open_clip nor ultralytics, and no
reward module: the zoo is discovered on the first registry query.
"""

from .cache import TextFeatureCache
from .images import ImageError, as_pixels, load_image, to_image_batch
from .loading import load_reward
from .model import BackboneReward, RewardModel
from .registry import DuplicateRewardError, UnknownRewardError, get_spec, list_rewards, register_lazy, register_reward
from .spec import RewardOutput, RewardSpec, WeightSource
from .weights import CheckpointMismatchError, WeightsNotFoundError

__version__ = "0.1.0"

__all__ = [
    "RewardModel", "BackboneReward", "RewardSpec", "RewardOutput", "WeightSource",
    "register_reward", "register_lazy", "load_reward", "list_rewards", "get_spec",
    "as_pixels", "to_image_batch", "load_image", "ImageError",
    "UnknownRewardError", "DuplicateRewardError", "WeightsNotFoundError", "CheckpointMismatchError",
    "TextFeatureCache", "Scorer",
]


def __getattr__(name: str):
    if name == "Scorer":  # the harness pulls in pandas/pyarrow: import on use
        from .harness import Scorer

        return Scorer
    raise AttributeError(f"module 'rewardbench' has no attribute {name!r}")
