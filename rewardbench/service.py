"""The reward service: registered rewards served as Ray actors, used through `rewardbench.remote.RemoteReward`.

Each served reward (or set of rewards sharing a backbone, ``ServedReward(name, also=(...))``: its replicas hold
the backbone once) runs as ``replicas`` Ray actors (`RewardReplica`), each with its own resources (``num_cpus``,
``num_gpus``) and optionally its own ``runtime_env`` (another set of packages, environment variables). A
directory actor (named after the service) tells clients which replicas serve which reward.

What a replica does with requests:
  * batching: requests from any number of callers wait in one queue; while the model computes one batch the
    next requests gather, and the next batch takes them all (up to ``max_batch_size`` images, after waiting
    at most ``batch_wait_s`` for more), so many small callers share a forward pass;
  * per-caller errors: when a merged batch raises, each request is scored alone, so one caller's bad input
    fails that caller only (the `rewardbench.Scorer` then retries its rows one by one, as with a local reward);
  * restarts: a replica that dies (killed, out of memory, a lost node) is restarted by Ray (``max_restarts``)
    and the requests it held are sent again (``max_task_retries``): scores are deterministic, so nothing is
    lost and nothing counted twice;
  * one reward's failure never touches another's: each reward has its own actors.

Example (needs Ray; ``pip install 'rewardbench[ray]'``)::

    import ray, rewardbench
    from rewardbench.service import RewardService, ServedReward

    ray.init()
    with RewardService([ServedReward("jpeg-compressibility", replicas=2)]) as service:
        reward = rewardbench.load_reward("jpeg-compressibility", remote="ray")
        reward(images, prompts).scores   # computed by the service's replicas

The batching rule itself needs no Ray:

    >>> import numpy as np
    >>> a, b = np.zeros((2, 3, 4, 4), np.float32), np.ones((1, 3, 4, 4), np.float32)
    >>> reqs = [(a, ["a", "b"], None), (b, ["c"], None)]
    >>> [len(group) for group in mergeable(reqs, group_reward=False)]
    [2]
    >>> pixels, prompts, groups = merge(reqs, group_reward=False)
    >>> pixels.shape, prompts, groups
    ((3, 3, 4, 4), ['a', 'b', 'c'], None)
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import __version__
from .errors import UsageError
from .wire import NAMESPACE, SERVICE_NAME, ServedInfo, connect_ray, output_to_reply

Request = tuple[Any, list[str], Any]  # (pixels: array [B,3,H,W] or list of [3,H,W], prompts, groups or None)


@dataclass(frozen=True)
class ServedReward:
    """One reward of a service and what it runs with.

    name: a registered reward (name or alias). replicas: actors serving it. num_cpus / num_gpus: each replica's
    Ray resources (``num_gpus=1`` puts each replica on a GPU of its own). runtime_env: a Ray runtime environment for
    its replicas (e.g. ``{"pip": [...]}``, ``{"env_vars": {...}}``). device, dtype, pretrained, weights, config:
    as `rewardbench.load_reward` takes them (device None: the replica's GPU if it has one). max_batch_size: images
    per forward pass at most; batch_wait_s: how long a replica waits for more requests before scoring a batch
    (0: no added latency; batches still form while the model computes). max_restarts: restarts of a dead replica.
    """

    name: str
    replicas: int = 1
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    runtime_env: dict | None = None
    device: str | None = None
    dtype: str | None = None
    pretrained: bool = True
    weights: str | None = None
    config: dict = field(default_factory=dict)
    max_batch_size: int = 64
    batch_wait_s: float = 0.0
    max_restarts: int = 3
    seed: int | None = None  # torch.manual_seed before building: random weights equal to a local build's
    also: tuple[str, ...] = ()  # rewards sharing this one's backbone, served by the same replicas (one copy of it)

    def load_kwargs(self) -> dict[str, Any]:
        return {"device": self.device, "dtype": self.dtype, "pretrained": self.pretrained, "weights": self.weights,
                **self.config}


# -- batching: which requests share a forward pass, and how they are put together and taken apart -----------------
def _shape_key(pixels: Any) -> tuple | None:
    return None if isinstance(pixels, list) else (str(pixels.dtype), tuple(pixels.shape[1:]))


def mergeable(requests: Sequence[Request], group_reward: bool) -> list[list[int]]:
    """Positions of the requests that can share one forward pass: the same pixel dtype and size (a request of
    mixed sizes, a list, goes alone)."""
    by: dict[Any, list[int]] = {}
    out: list[list[int]] = []
    for i, (pixels, _, _) in enumerate(requests):
        key = _shape_key(pixels)
        if key is None:
            out.append([i])
        elif key in by:
            by[key].append(i)
        else:
            by[key] = [i]
            out.append(by[key])
    return out


def _groups_of(request: Request, group_reward: bool) -> np.ndarray | None:
    pixels, _, groups = request
    if groups is None and group_reward:  # the whole request is one group, as a local call without groups
        return np.zeros(len(pixels), dtype=np.int64)
    return None if groups is None else np.asarray(groups, dtype=np.int64)


def merge(requests: Sequence[Request], group_reward: bool) -> Request:
    """One request of several (their images in order): group ids shifted so that no two requests share a group."""
    pixels = np.concatenate([r[0] for r in requests]) if len(requests) > 1 else requests[0][0]
    prompts = [p for r in requests for p in r[1]]
    if not group_reward:
        return pixels, prompts, None
    parts, offset = [], 0
    for r in requests:
        g = _groups_of(r, True)
        parts.append(g + offset)
        offset += int(g.max()) + 1 if len(g) else 0
    return pixels, prompts, np.concatenate(parts)


def split(reply: dict[str, Any], requests: Sequence[Request], group_reward: bool) -> list[dict[str, Any]]:
    """The reply of a merged call, one per request (details that are not one value per image are dropped)."""
    total = sum(len(r[1]) for r in requests)
    out, start, offset = [], 0, 0
    for r in requests:
        n = len(r[1])
        details = {k: v[start:start + n] for k, v in reply["details"].items() if len(v) == total}
        gd = {}
        if group_reward:
            g = _groups_of(r, True)
            top = int(g.max()) + 1 if len(g) else 0
            gd = {k - offset: v for k, v in reply["group_details"].items() if offset <= k < offset + top}
            offset += top
        out.append({"scores": reply["scores"][start:start + n], "details": details, "group_details": gd})
        start += n
    return out


def check_fits(rewards: Sequence[ServedReward], cluster: dict[str, float], reserve_cpus: float = 0.0) -> None:
    """Raise `rewardbench.errors.UsageError` (a `ValueError`; exit 2 on the command line) when the replicas of
    ``rewards`` (and ``reserve_cpus`` for other work) ask for more CPUs or GPUs than the cluster has in all
    (``cluster``: `ray.cluster_resources()`): Ray would keep the replicas it cannot place waiting forever.

    >>> check_fits([ServedReward("nsfw"), ServedReward("ocr", num_cpus=0.5)], {"CPU": 2.0})
    >>> check_fits([ServedReward("nsfw", replicas=2), ServedReward("ocr")], {"CPU": 2.0})
    Traceback (most recent call last):
    ...
    rewardbench.errors.UsageError: the service asks for 3 CPUs (nsfw 2 x 1, ocr 1 x 1) but the cluster has 2: ...
    """
    for key, attr, flags in (("CPU", "num_cpus", ("--num-cpus", "--cpus-per-replica")),
                             ("GPU", "num_gpus", ("--num-gpus", "--gpus-per-replica"))):
        asked = sum(r.replicas * getattr(r, attr) for r in rewards)
        reserve = reserve_cpus if key == "CPU" else 0.0
        have = float(cluster.get(key, 0.0))
        if asked + reserve <= have + 1e-9:
            continue
        each = ", ".join(f"{r.name} {r.replicas} x {getattr(r, attr):g}" for r in rewards if getattr(r, attr))
        extra = f" and {reserve:g} for decoding" if reserve else ""
        what = "CPUs" if key == "CPU" else "GPUs"
        raise UsageError(f"the service asks for {asked:g} {what} ({each}){extra} but the cluster has {have:g}: ask "
                         f"for fewer replicas or a fraction of a {key} each ({attr}=0.5; on the command line "
                         f"{flags[0]} 0.5 for serve, {flags[1]} 0.5 for score --engine ray), or skip this check "
                         "for a cluster an autoscaler will grow (--no-resource-check)")


# -- the actors -----------------------------------------------------------------------------------------------------
class RewardReplica:
    """One replica of a served reward, or of a set sharing a backbone (run as a Ray actor by `RewardService`): the
    models, loaded once by `rewardbench.load_reward` (a set's backbone once in memory), and a queue that batches the
    requests of every caller, reward by reward."""

    def __init__(self, served: ServedReward):
        import torch

        from .loading import load_reward
        from .model import BackboneReward, param_fingerprint

        torch.set_num_threads(max(1, int(served.num_cpus or 1)))
        kwargs = served.load_kwargs()
        if kwargs["device"] is None:
            kwargs["device"] = "cuda" if torch.cuda.is_available() else "cpu"
        self.served = served
        if served.seed is not None:
            torch.manual_seed(served.seed)
        self.models: dict[str, Any] = {}
        self.load_error: Exception | None = None
        try:
            for n in (served.name, *served.also):
                m = load_reward(n, **kwargs)
                self.models[m.spec.name] = m
        except Exception as e:  # kept for `info`: the service raises it as it is (missing weights, a bad option)
            self.load_error = e
            return
        leader = next(iter(self.models.values()))
        for m in list(self.models.values())[1:]:  # identical backbone weights: one copy (as the Scorer does)
            if isinstance(m, BackboneReward) and isinstance(leader, BackboneReward) and m.spec.backbone \
                    and m.backbone_fingerprint() == leader.backbone_fingerprint() and m.backbone is not leader.backbone:
                m.share_backbone(leader)
        self.leader = leader.spec.name
        self._infos = {
            name: ServedInfo(
                name=name, spec=m.spec, provenance=tuple(m.provenance()), fingerprint=tuple(param_fingerprint(m)),
                takes_uint8=bool(getattr(m, "takes_uint8", 0)),
                build={"device": str(m.device), "dtype": str(m.dtype), "pretrained": served.pretrained,
                       "weights": served.weights, "config": dict(served.config), "version": __version__},
                replicas=served.replicas)
            for name, m in self.models.items()}
        self._queue: asyncio.Queue | None = None
        # requests per forward pass, for tests and the load test (the latest ones: a long-lived service keeps no more)
        self.batches: deque[int] = deque(maxlen=10_000)

    def info(self) -> ServedInfo | Exception:
        """What this replica serves (its first reward), or why it could not load it."""
        return self.load_error if self.load_error is not None else self._infos[self.leader]

    def infos(self) -> dict[str, ServedInfo]:
        return dict(self._infos)

    def pid(self) -> int:
        return os.getpid()

    def batch_sizes(self) -> list[int]:
        return list(self.batches)

    def shares_backbone(self) -> bool:
        """Whether the set's rewards run on one backbone module (for tests)."""
        mods = [getattr(m, "backbone", None) for m in self.models.values()]
        return len(mods) > 1 and all(b is not None and b is mods[0] for b in mods)

    async def score(self, pixels: Any, prompts: list[str], groups: Any, reward: str | None = None) -> dict[str, Any]:
        """Score one request for ``reward`` (default: the replica's first); it may share a forward pass with other
        callers' requests for the same reward."""
        loop = asyncio.get_running_loop()
        if self._queue is None:
            self._queue = asyncio.Queue()
            loop.create_task(self._serve())
        reward = self.leader if reward is None else reward
        if reward not in self.models:
            return {"error": f"{reward}: not served by this replica (it serves {', '.join(self.models)})"}
        fut = loop.create_future()
        await self._queue.put(((reward, (pixels, prompts, groups)), fut))
        return await fut

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        carry = None  # a request that did not fit the last pass: it opens the next one
        while True:
            pending = [carry if carry is not None else await self._queue.get()]
            carry = None
            images = len(pending[0][0][1][1])
            deadline = loop.time() + self.served.batch_wait_s
            while images < self.served.max_batch_size:
                if not self._queue.empty():
                    nxt = self._queue.get_nowait()
                    if images + len(nxt[0][1][1]) > self.served.max_batch_size:
                        carry = nxt  # max_batch_size images per pass at most (a larger request goes alone)
                        break
                    pending.append(nxt)
                elif loop.time() < deadline:
                    await asyncio.sleep(min(0.002, deadline - loop.time()))
                    continue
                else:
                    break
                images += len(pending[-1][0][1][1])
            try:
                replies = await loop.run_in_executor(None, self._score_many, [p[0] for p in pending])
            except Exception as e:  # never leave a caller waiting: the loop serves the next requests
                replies = [{"error": f"{self.leader}: {type(e).__name__}: {e}"}] * len(pending)
            for (_, fut), reply in zip(pending, replies):
                if not fut.done():  # a caller that timed out has cancelled its future
                    fut.set_result(reply)

    def _score_many(self, requests: list[tuple[str, Request]]) -> list[dict[str, Any]]:
        replies: list[dict[str, Any] | None] = [None] * len(requests)
        by_reward: dict[str, list[int]] = {}
        for i, (reward, _) in enumerate(requests):
            by_reward.setdefault(reward, []).append(i)
        for reward, positions in by_reward.items():
            model = self.models[reward]
            group_reward = model.spec.granularity == "group"
            reqs = [requests[i][1] for i in positions]
            for idx in mergeable(reqs, group_reward):
                part = [reqs[i] for i in idx]
                try:
                    self.batches.append(len(part))
                    t = time.perf_counter()
                    merged = self._call(model, merge(part, group_reward), group_reward)
                    seconds = time.perf_counter() - t
                    for i, r in zip(idx, split(merged, part, group_reward)):
                        replies[positions[i]] = {**r, "served_s": seconds}  # the forward pass it was part of
                except Exception as merged_error:
                    for i in idx:
                        try:
                            if len(idx) == 1:
                                raise merged_error
                            replies[positions[i]] = self._call(model, reqs[i], group_reward)
                        except Exception as e:
                            replies[positions[i]] = {"error": f"{reward}: {type(e).__name__}: {e}"}
        return replies  # type: ignore[return-value]

    @staticmethod
    def _call(model: Any, request: Request, group_reward: bool) -> dict[str, Any]:
        import torch

        pixels, prompts, _ = request
        # copies: arrays from Ray's object store are read-only
        images = [torch.as_tensor(np.array(p)) for p in pixels] if isinstance(pixels, list) \
            else torch.as_tensor(np.array(pixels))
        g = _groups_of(request, group_reward)
        with torch.inference_mode():
            out = model(images, prompts, None if g is None else torch.from_numpy(g))
        return output_to_reply(out)


class Directory:
    """The service's directory (a Ray actor named after the service): which replicas serve which reward."""

    def __init__(self, entries: dict[str, tuple[ServedInfo, list[str]]]):
        self.entries = entries
        self.aliases = {a: n for n, (info, _) in entries.items() for a in (n, *info.spec.aliases)}

    def lookup(self, name: str) -> tuple[ServedInfo, list[str]] | None:
        key = self.aliases.get(name) or self.aliases.get(name.lower().replace("_", "-"))
        return self.entries.get(key) if key else None

    def names(self) -> list[str]:
        return sorted(self.entries)


class RewardService:
    """Start (and stop) a reward service on the connected Ray cluster: each `ServedReward`'s replicas, then the
    directory actor ``name`` that clients look up. ``detached``: the actors outlive this process (stop them with
    `shutdown` from any driver, or ``ray stop``). A context manager: leaving it shuts the service down.

    `start` first compares what the replicas ask for with the cluster's CPUs and GPUs: a service that could never
    be placed whole (three replicas of one CPU each on two CPUs) is refused at once with a `UsageError` that says
    what it asked for, before any actor starts (``check_resources=False`` skips this, for a cluster that an
    autoscaler will grow; ``reserve_cpus``: CPUs to leave free for other work, e.g. the decoding tasks of a
    `rewardbench.ray_scoring.RayScorer`). It then waits until every replica has loaded its model, so a reward that
    cannot load (unknown name, missing weights) fails here, at once, with its own message; a replica the cluster
    cannot place now (resources held by other work) fails after ``start_timeout_s`` saying what it asked for.
    """

    def __init__(self, rewards: Iterable[ServedReward | str], name: str = SERVICE_NAME, address: str = "auto",
                 detached: bool = False, start_timeout_s: float = 600.0, check_resources: bool = True,
                 reserve_cpus: float = 0.0):
        self.rewards = [r if isinstance(r, ServedReward) else ServedReward(r) for r in rewards]
        self.name, self.address, self.detached = name, address, detached
        self.start_timeout_s = start_timeout_s  # a replica the cluster cannot place (resources) fails, not hangs
        self.check_resources, self.reserve_cpus = check_resources, float(reserve_cpus)
        self.replicas: dict[str, list[Any]] = {}
        self.infos: dict[str, ServedInfo] = {}
        self.directory = None

    def start(self) -> RewardService:
        ray = connect_ray(self.address)
        try:  # whatever fails (a name taken on the cluster, a model that cannot load): no actor is left behind
            self._start(ray)
        except BaseException:
            self.shutdown()
            raise
        return self

    def _start(self, ray: Any) -> None:
        from .registry import REGISTRY

        if self.check_resources:
            check_fits(self.rewards, ray.cluster_resources(), self.reserve_cpus)
        lifetime = {"lifetime": "detached"} if self.detached else {}
        names: dict[str, list[str]] = {}
        members: dict[str, list[str]] = {}
        for r in self.rewards:
            canon = REGISTRY.canonical(r.name)
            members[canon] = [canon, *(REGISTRY.canonical(a) for a in r.also)]
            actor_cls = ray.remote(RewardReplica)
            opts = {"num_cpus": r.num_cpus, "num_gpus": r.num_gpus, "max_restarts": r.max_restarts,
                    "max_task_retries": -1 if r.max_restarts else 0, "max_concurrency": 1000,
                    "namespace": NAMESPACE, **lifetime}
            if r.runtime_env:
                opts["runtime_env"] = r.runtime_env
            names[canon] = [f"{self.name}/{canon}/{i}" for i in range(r.replicas)]
            self.replicas[canon] = []
            for a in names[canon]:  # one by one: those made before a failure are stopped by `start`
                self.replicas[canon].append(actor_cls.options(name=a, **opts).remote(r))
        for r, (canon, handles) in zip(self.rewards, self.replicas.items()):
            refs = [h.info.remote() for h in handles]
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=self.start_timeout_s)
            if len(ready) < len(refs):
                raise TimeoutError(f"{canon}: {len(refs) - len(ready)} of {len(refs)} replicas did not start in "
                                   f"{self.start_timeout_s:g} s: does the cluster have num_cpus={r.num_cpus:g}, "
                                   f"num_gpus={r.num_gpus:g} free for each ({ray.available_resources()})?")
            failed = [x for x in ray.get(refs) if isinstance(x, Exception)]
            if failed:  # as the model raised it: a missing weight is the same error as in a local load
                raise failed[0]
            self.infos.update(ray.get(handles[0].infos.remote()))
        entries = {m: (self.infos[m], names[c]) for c in self.replicas for m in members[c]}
        self.directory = ray.remote(Directory).options(name=self.name, namespace=NAMESPACE, num_cpus=0,
                                                       **lifetime).remote(entries)
        ray.get(self.directory.names.remote())

    def describe(self) -> list[dict[str, Any]]:
        """One row per served reward: name, replicas, resources, provenance (for people and ``--json``)."""
        from .registry import REGISTRY

        rows = []
        for r in self.rewards:
            leader = REGISTRY.canonical(r.name)
            for name in (r.name, *r.also):
                info = self.infos[REGISTRY.canonical(name)]
                rows.append({"reward": info.name, "replicas": r.replicas, "num_cpus": r.num_cpus,
                             "num_gpus": r.num_gpus, "device": info.build["device"],
                             "with": leader if info.name != leader else "",
                             "weights": "; ".join(str(p) for p in info.provenance)})
        return rows

    def shutdown(self) -> None:
        ray = connect_ray(self.address)
        for handles in self.replicas.values():
            for h in handles:
                ray.kill(h, no_restart=True)
        if self.directory is not None:
            ray.kill(self.directory, no_restart=True)
        self.replicas, self.directory = {}, None

    def __enter__(self) -> RewardService:
        return self.start() if self.directory is None else self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

