"""`RemoteReward`: a reward served by a reward service (`rewardbench.service`), used through the local interface.

A remote reward IS a `rewardbench.RewardModel`: the same ``forward(images, prompts, groups)``, the served model's
spec, provenance and parameter fingerprint, so the trainer, the `rewardbench.Scorer` and run-benchmark take it as
they take a local one. A recipe switches with one line, ``reward_kwargs: {remote: ray}``, and in Python::

    reward = rewardbench.load_reward("hpsv3", remote="ray://head-node:10001")

What does not cross the wire: gradients. A remote reward is never differentiable (``spec.differentiable`` is False
whatever the served model declares); gradient methods (ReFL, DRaFT, AlignProp) load their reward locally.

Addresses: ``"ray"`` (the Ray cluster this process is connected to, or ``ray.init(address="auto")``),
``"ray://HOST:PORT"`` (Ray client), ``"http://HOST:PORT"`` (the service's HTTP endpoint, no Ray needed here:
images travel as PNG, so float pixels are rounded to 8 bits first; `rewardbench.http_service`).

Exactness: over Ray the pixels travel as they were given (float32 or uint8 arrays; floats made from decoded bytes
as those bytes, `rewardbench.wire.pack_pixels`), and the served model runs the same ``forward``: scores equal the
local model's bit for bit (tests/test_remote.py).

Ray is an optional extra (`rewardbench.wire.require_ray` says how to install it when it is missing).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .errors import UsageError
from .model import RewardModel
from .spec import RewardOutput
from .wire import (
    DEFAULT_TIMEOUT_S,
    NAMESPACE,
    SERVICE_NAME,
    RayNotInstalledError,
    RemoteRewardError,
    RemoteTimeoutError,
    ServedInfo,
    connect_ray,
    pack_pixels,
    parse_address,
    reply_to_output,
)

__all__ = ["RemoteReward", "remote_reward", "RayTransport", "open_transport", "RemoteRewardError",
           "RemoteTimeoutError", "RayNotInstalledError", "ServedInfo", "DEFAULT_TIMEOUT_S"]

# -- transports -----------------------------------------------------------------------------------------------------
class RayTransport:
    """Calls a service's replicas over Ray: round-robin over the replicas of a reward, one timeout per call.

    After a redeploy (the service stopped and started again under its name, e.g. a new ``rewardbench serve``), a
    call that finds its replicas gone looks the service up again and is sent once more to the new replicas, when
    they serve the same model (spec, parameter fingerprint, weights, build, rewardbench version); a service now
    serving another model is a `RemoteRewardError` saying so, never scores from other weights than the ones this
    client reported."""

    def __init__(self, address: str = "auto", service: str = SERVICE_NAME):
        self.ray = connect_ray(address)
        self.service = service
        try:
            self.directory = self.ray.get_actor(service, namespace=NAMESPACE)
        except ValueError:
            raise UsageError(f"no reward service {service!r} on this Ray cluster: start one with "
                             "`rewardbench serve --rewards NAME` (or rewardbench.service.RewardService)") from None
        self._replicas: dict[str, Any] = {}
        self._infos: dict[str, ServedInfo] = {}

    def _lookup(self, directory: Any, name: str) -> tuple[ServedInfo, list[Any]] | None:
        """What ``directory`` (the service's directory actor) says serves ``name``, and its replicas' handles."""
        found = self.ray.get(directory.lookup.remote(name))
        if found is None:
            return None
        info, actor_names = found
        return info, [self.ray.get_actor(a, namespace=NAMESPACE) for a in actor_names]

    def info(self, name: str) -> ServedInfo:
        found = self._lookup(self.directory, name)
        if found is None:
            served = self.ray.get(self.directory.names.remote())
            raise UsageError(f"reward {name!r} is not served by {self.service!r} (it serves: {', '.join(served)})")
        info, handles = found
        self._replicas[info.name] = itertools.cycle(handles)
        self._infos[info.name] = info
        return info

    def score(self, name: str, pixels: Any, prompts: list[str], groups: np.ndarray | None,
              timeout_s: float | None) -> dict[str, Any]:
        for attempt in (0, 1):
            replica = next(self._replicas[name])
            ref = replica.score.remote(pixels, prompts, groups, name)
            try:
                reply = self.ray.get(ref, timeout=timeout_s)
            except self.ray.exceptions.GetTimeoutError:
                self.ray.cancel(ref)
                raise RemoteTimeoutError(f"{name}: no answer from the reward service in {timeout_s:g} s") from None
            except self.ray.exceptions.RayError as e:
                if attempt == 0 and isinstance(e, self.ray.exceptions.RayActorError) and self._reconnect(name):
                    continue  # the service was redeployed with the same model: the new replicas score it
                raise RemoteRewardError(f"{name}: the reward service failed: {type(e).__name__}: "
                                        f"{str(e).splitlines()[0] if str(e) else ''}") from None
            if "error" in reply:
                raise RemoteRewardError(reply["error"])
            return reply
        raise AssertionError("unreachable")

    def _reconnect(self, name: str) -> bool:
        """After a replica was found gone for good: the service's replicas as its directory lists them now, if it
        runs and serves the same model (False when it does not run; `RemoteRewardError` when it serves another)."""
        try:
            directory = self.ray.get_actor(self.service, namespace=NAMESPACE)
            found = self._lookup(directory, name)
        except (ValueError, self.ray.exceptions.RayError):
            return False  # no service under that name now (or it is going away): the caller's error stands
        if found is None:
            return False
        info, handles = found
        old = self._infos[name]
        if _served_model(info) != _served_model(old):
            raise RemoteRewardError(f"{name}: the reward service {self.service!r} was redeployed with another model "
                                    f"(built {info.build}, was {old.build}): load the reward again to use it")
        self.directory, self._replicas[name] = directory, itertools.cycle(handles)
        return True


def _served_model(info: ServedInfo) -> tuple:
    """What makes a served reward the model a client took it for: everything a service tells of it but how many
    replicas serve it (the build includes the rewardbench version, so changed code is another model too)."""
    return (info.name, info.spec, tuple(info.fingerprint), tuple(info.provenance), info.takes_uint8, info.build)


def open_transport(address: str, service: str = SERVICE_NAME):
    kind, where = parse_address(address)
    if kind == "http":
        from .http_client import HttpTransport

        return HttpTransport(where)
    return RayTransport(where, service)


# -- the client -----------------------------------------------------------------------------------------------------
class RemoteReward(RewardModel):
    """A served reward through the local interface (see the module docstring). Build it with
    ``rewardbench.load_reward(name, remote=ADDRESS)`` or ``RemoteReward(name, ADDRESS)``.

    ``timeout_s`` bounds each call (`RemoteTimeoutError`); a failed call raises `RemoteRewardError`, which the
    `rewardbench.Scorer` turns into per-row errors as it does for a local reward that raises.
    """

    accepts_ragged = True  # a batch of mixed sizes goes in one request; the served forward splits it

    def __init__(self, name: str, address: str = "ray", timeout_s: float | None = DEFAULT_TIMEOUT_S,
                 service: str = SERVICE_NAME, transport: Any = None):
        transport = transport if transport is not None else open_transport(address, service)
        info = transport.info(name)
        super().__init__(spec=info.spec.replace(differentiable=False))  # gradients do not cross the wire
        self._transport = transport
        self.address, self.timeout_s, self.service = address, timeout_s, service
        self.served = info
        # the Scorer's engine hands it the decoded bytes (a quarter of the floats' size on the wire); the served
        # model turns them into the floats the engine would have made (`rewardbench.images.pixels_from_uint8`)
        self.takes_uint8 = True
        self.last_call: dict[str, float | None] = {}
        self.record_weights(*info.provenance)

    def served_fingerprint(self) -> tuple:
        """The served model's parameter fingerprint (the `rewardbench.Scorer` run fingerprint uses it)."""
        return tuple(self.served.fingerprint)

    def forward(self, images: Any, prompts: Sequence[str] | str | None = None,
                groups: torch.Tensor | Sequence[int] | None = None) -> RewardOutput:
        """As `rewardbench.RewardModel.forward`, computed by the service; never differentiable."""
        pixels = pack_pixels(images)
        n = len(pixels)
        prompt_list, group_t = self.check_inputs(prompts, groups, n)
        g = None if group_t is None else group_t.detach().cpu().numpy()
        t = time.perf_counter()
        reply = self._transport.score(self.spec.name, pixels, prompt_list, g, self.timeout_s)
        # what the last call cost: in all, and in the served forward pass (None over HTTP); the rest is the wire
        self.last_call = {"seconds": time.perf_counter() - t, "served_seconds": reply.get("served_s")}
        return self.check_output(reply_to_output(reply, self.device), n, group_t)

    def score(self, pixels: torch.Tensor, prompts: list[str], groups: torch.Tensor | None) -> RewardOutput:
        return self.forward(pixels, prompts, groups)

    def extra_repr(self) -> str:
        return f"spec={self.spec.name!r}, remote={self.address!r}, weights={self.weights_used!r}"


def remote_reward(name: str, address: str, timeout_s: float | None = DEFAULT_TIMEOUT_S,
                  service: str = SERVICE_NAME, expect: dict[str, Any] | None = None,
                  device: str | torch.device | None = None) -> RemoteReward:
    """`RemoteReward` for `rewardbench.load_reward` (``remote=``): ``expect`` holds what the caller asked of the
    model (``pretrained``, ``weights``, ``dtype``, builder options); a served model built otherwise is refused
    (`UsageError`), so that a recipe never scores with other weights than it names."""
    model = RemoteReward(name, address, timeout_s=timeout_s, service=service)
    build = model.served.build
    for key, want in (expect or {}).items():
        have = build.get(key) if key in ("pretrained", "weights", "dtype") else build.get("config", {}).get(key)
        if key == "pretrained" and not model.spec.weights:
            continue  # no weights: pretrained changes nothing
        if have != want:
            raise UsageError(f"reward {model.spec.name!r} at {address}: asked {key}={want!r}, but the service "
                             f"built it with {key}={have!r}")
    return model.to(device) if device is not None else model
