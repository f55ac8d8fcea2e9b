"""What the reward service and its clients share: addresses, errors, what a served reward tells about itself
(`ServedInfo`) and how a request and a reply travel (`pack_pixels`, `output_to_reply`, `reply_to_output`).
Imports no Ray: `require_ray` imports it on use and says how to install it when it is missing.

Example:
    >>> parse_address("ray://head:10001"), parse_address("http://localhost:8000/")
    (('ray', 'ray://head:10001'), ('http', 'http://localhost:8000'))
    >>> import torch
    >>> from rewardbench.spec import RewardOutput
    >>> reply_to_output(output_to_reply(RewardOutput(torch.tensor([1.0, 2.0]), {"kb": [3, 4]}))).scores
    tensor([1., 2.])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .errors import UsageError
from .images import as_pixels, uint8_source
from .provenance import Provenance
from .spec import RewardOutput, RewardSpec

NAMESPACE = "rewardbench"  # the Ray namespace of every service's actors
SERVICE_NAME = "rewardbench-service"  # the default service (its directory actor's name)
INSTALL_HINT = "pip install 'rewardbench[ray]'"
DEFAULT_TIMEOUT_S = 120.0


class RayNotInstalledError(UsageError):
    """Ray is an optional extra; the message says how to install it."""


class RemoteRewardError(RuntimeError):
    """The service could not score a request (the served model raised, or the service is gone)."""


class RemoteTimeoutError(RemoteRewardError, TimeoutError):
    """No answer within the call's timeout."""


def require_ray():
    """The ``ray`` module, or `RayNotInstalledError` saying how to install it."""
    try:
        import ray
    except ImportError as e:
        raise RayNotInstalledError(f"this needs Ray, which is not installed ({e}): {INSTALL_HINT}") from None
    return ray


def parse_address(address: str) -> tuple[str, str]:
    """``(transport, address)`` of a service address: ``("ray", "auto" | "ray://...")`` or ``("http", url)``."""
    a = str(address).strip()
    if a in ("ray", "auto", ""):
        return "ray", "auto"
    if a.startswith("ray://"):
        return "ray", a
    if a.startswith(("http://", "https://")):
        return "http", a.rstrip("/")
    raise UsageError(f"remote={address!r}: expected 'ray' (this Ray cluster), 'ray://HOST:PORT' or 'http://HOST:PORT'")


def connect_ray(address: str = "auto"):
    """The ``ray`` module, connected: the cluster this process is in already, else ``ray.init(address)``."""
    ray = require_ray()
    if not ray.is_initialized():
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
    return ray


@dataclass
class ServedInfo:
    """What a service tells about one served reward: the values a `RemoteReward` takes as its own."""

    name: str
    spec: RewardSpec
    provenance: tuple[Provenance, ...]
    fingerprint: tuple  # the served model's `rewardbench.model.param_fingerprint`
    takes_uint8: bool = False
    build: dict = field(default_factory=dict)  # how it was built: device, dtype, pretrained, config
    replicas: int = 1


# -- the wire: what a request and a reply hold ----------------------------------------------------------------------
def pack_pixels(images: Any) -> np.ndarray | list[np.ndarray]:
    """Images as they travel: a 4-D tensor as it is (float32 or uint8, so the served ``forward`` converts exactly
    as a local one would), anything else through `rewardbench.as_pixels` (a list of ``[3,H,W]`` when sizes
    differ). Float pixels made from decoded bytes and unchanged since (`rewardbench.images.uint8_source`) travel as
    those bytes, a quarter of the size: the served model turns them into the same floats.

    Example:
        >>> from rewardbench.images import pixels_from_uint8
        >>> u8 = torch.randint(0, 256, (2, 5, 4, 3), dtype=torch.uint8)
        >>> packed = pack_pixels(pixels_from_uint8(u8))
        >>> packed.dtype, packed.shape
        (dtype('uint8'), (2, 3, 5, 4))
    """
    if not (isinstance(images, torch.Tensor) and images.ndim == 4):
        images = as_pixels(images)
    if isinstance(images, list):
        return [t.detach().cpu().float().numpy() for t in images]
    src = uint8_source(images) if images.is_floating_point() else None
    if src is not None:  # [B,H,W,3] bytes -> [B,3,H,W], as a uint8 batch is given to `forward`
        return src.detach().cpu().permute(0, 3, 1, 2).numpy()
    t = images.detach().cpu()
    return t.numpy() if t.dtype == torch.uint8 else t.float().numpy()


def output_to_reply(out: RewardOutput) -> dict[str, Any]:
    """A `RewardOutput` as plain values (numpy arrays, lists, dicts) for the trip back."""
    details = {k: v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else list(v) for k, v in out.details.items()}
    return {"scores": out.scores.detach().cpu().numpy(), "details": details, "group_details": dict(out.group_details)}


def reply_to_output(reply: dict[str, Any], device: torch.device | None = None) -> RewardOutput:
    """The inverse of `output_to_reply`, tensors on ``device``."""
    details = {k: torch.as_tensor(np.array(v), device=device) if isinstance(v, np.ndarray) else v
               for k, v in reply["details"].items()}  # copies: arrays from Ray's object store are read-only
    scores = torch.as_tensor(np.array(reply["scores"], dtype=np.float32), device=device)
    return RewardOutput(scores, details, dict(reply.get("group_details") or {}))
