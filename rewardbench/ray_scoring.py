"""`RayScorer`: the `rewardbench.Scorer` on a Ray cluster (``rewardbench score --engine ray``).

What runs where:
  * the rewards: a reward service of this run (`rewardbench.service`), each reward on its own pool of actors
    (``replicas`` of them, ``num_gpus`` each), whose queues batch the requests of every decoding task;
  * decoding and batching: Ray Data tasks spread over the cluster's CPUs; each takes planned batches (the
    Scorer's own plan: groups whole, at most ``batch_size`` images), decodes them and runs the Scorer's batch
    engine with the served rewards (`rewardbench.remote.RemoteReward`), so a row's scores, details and errors
    are those of a local run;
  * the driver (this process): plans, and writes what comes back to the parquet shards of ``OUT.parts/`` as a
    local run does, so a killed run resumes where it stopped (rows already in the shards are not scored again)
    and the finished table is assembled by the same code: the same table as the local Scorer on the same input.

Everything else is the `rewardbench.Scorer`'s: the checks before a run, the fingerprint that refuses to mix two
runs, the summary, the group table. The input streams in windows of ``window_batches`` planned batches.

Example (needs Ray; ``pip install 'rewardbench[ray]'``)::

    from rewardbench.ray_scoring import RayScorer

    scorer = RayScorer("hpsv3,jpeg-compressibility", replicas=4, num_gpus=1, address="auto")
    try:
        result = scorer.run("manifest.parquet", out="scores.parquet")
    finally:
        scorer.close()   # stops the run's reward service
"""

from __future__ import annotations

import itertools
import logging
import math
import pickle
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .batching import BatchPlan, make_batch, plan_batches
from .data import ListSource
from .engine import BatchEngine, RewardSlot
from .harness import Scorer
from .loading import parse_dtype
from .preflight import UsageError, check_reward_options
from .remote import RemoteReward, remote_reward
from .service import RewardService, ServedReward
from .wire import connect_ray, require_ray

_ENGINES: dict[tuple, BatchEngine] = {}  # per Ray worker process: the batch engine of a run, built once
# the local Ray a RayScorer of this process started, and how many open RayScorers use it: the last to close stops it
_LOCAL_RAY = {"started": False, "users": 0}


def _engine(service: str, names: tuple[str, ...], group_by: tuple | None) -> BatchEngine:
    key = (service, names, group_by)
    if key not in _ENGINES:
        slots = [RewardSlot(n, m, tuple(m.provenance())) for n in names
                 for m in [RemoteReward(n, "ray", service=service)]]
        _ENGINES[key] = BatchEngine(slots, [[s] for s in slots], torch.device("cpu"), None, group_by)
    return _ENGINES[key]


def score_planned(item: dict[str, Any], service: str, names: tuple[str, ...], group_by: tuple | None
                  ) -> dict[str, Any]:
    """One planned batch (pickled rows, as `rewardbench.batching.plan_batches` gives them), decoded and scored
    with the served rewards: the result rows (pickled), as the local batch engine gives them. Runs in Ray Data
    tasks. The bytes are this run's own, from its driver (rows hold any Python values of the input's columns, which
    Arrow blocks do not take as they are); nothing from outside is unpickled."""
    rows = pickle.loads(item["rows"])
    with torch.inference_mode():
        out = _engine(service, names, group_by).score_batch(make_batch(rows))
    return {"rows": pickle.dumps(out)}


class RayScorer(Scorer):
    """`rewardbench.Scorer` whose batches are decoded by Ray Data tasks and scored by a reward service of this run
    (see the module docstring).

    ``replicas``, ``num_gpus``, ``num_cpus``: each reward's actor pool (one value for every reward, or a
    ``{name: value}`` mapping); ``num_cpus=None`` (the default) shares the cluster's free CPUs less a decoding
    task's among the replicas, at most one CPU each (three rewards on two CPUs: a third of a CPU each), so that
    every replica and a decoding task can be placed at once; asked for explicitly, a plan the cluster cannot hold is
    refused (`rewardbench.errors.UsageError`) before any model loads (``check_resources=False``: not checked, for a
    cluster an autoscaler will grow). ``decode_cpus``: CPUs of each decoding task; ``decode_tasks``: at most this
    many decoding tasks at once (None: as many as the cluster's CPUs allow); ``address``: the Ray cluster
    (``"auto"``, ``"ray://HOST:PORT"``; a local one is started when none runs); ``seed``: `torch.manual_seed` in
    each reward actor before it builds its model (random weights equal to a local build after the same seed);
    ``service``: the name of a running reward service to use instead of starting one (its models must be built as
    asked). The other arguments are the Scorer's. In-memory items (arrays, PIL images) are refused: Ray reads files.
    Call `close` when done (it stops the service, and a local Ray it started when no other RayScorer uses it)."""

    def __init__(self, rewards: str | Sequence[str], batch_size: int = 16, *, replicas: int | Mapping = 1,
                 num_gpus: float | Mapping = 0.0, num_cpus: float | Mapping | None = None, decode_cpus: float = 1.0,
                 decode_tasks: int | None = None,
                 device: str | None = None, dtype: str | None = None, pretrained: bool = True,
                 weights: Mapping[str, Any] | None = None, reward_config: Mapping[str, Mapping] | None = None,
                 address: str | None = "auto", window_batches: int = 256, timeout_s: float | None = 600.0,
                 seed: int | None = None, service: str | None = None, check_resources: bool = True,
                 **scorer_options: Any):
        require_ray()
        names = [n.strip() for n in rewards.split(",")] if isinstance(rewards, str) else list(rewards)
        weights, reward_config = dict(weights or {}), dict(reward_config or {})
        canon = check_reward_options([n for n in names if n], weights, reward_config)
        from .registry import REGISTRY

        w = {REGISTRY.canonical(k): str(v) for k, v in weights.items()}
        cfg = {REGISTRY.canonical(k): dict(v) for k, v in reward_config.items()}

        def each(value: Any, name: str) -> Any:
            return value.get(name, value.get("*")) if isinstance(value, Mapping) else value

        if decode_tasks is not None and int(decode_tasks) < 1:
            raise ValueError(f"decode_tasks={decode_tasks}: at least 1 (None: as many as the CPUs allow)")
        ray = require_ray()
        self._uses_local_ray = False
        if not ray.is_initialized():
            from .wire import NAMESPACE

            _LOCAL_RAY.update(started=False, users=0)  # whatever a scorer started before is gone
            try:
                connect_ray(address or "auto")
            except ConnectionError:
                if address not in (None, "auto"):  # the cluster asked for, never a local one in its place
                    raise
                ray.init(namespace=NAMESPACE, log_to_driver=False)  # no cluster running: a local one
                _LOCAL_RAY["started"] = True  # stopped by the `close` of its last user
        if _LOCAL_RAY["started"]:
            _LOCAL_RAY["users"] += 1
            self._uses_local_ray = True
        self.service = None
        self.decode_cpus, self.window_batches, self.timeout_s = float(decode_cpus), int(window_batches), timeout_s
        self.decode_tasks = None if decode_tasks is None else int(decode_tasks)
        try:
            if service is not None:  # a running service: its models are checked against what this run asks below
                self.service_name = service
            else:
                self.service_name = f"rewardbench-score-{uuid.uuid4().hex[:8]}"
                reps = {n: int(each(replicas, n) or 1) for n in canon}
                given = {n: float(each(num_cpus, n)) for n in canon
                         if num_cpus is not None and each(num_cpus, n) is not None}
                cpus = plan_cpus(reps, given, ray.available_resources().get("CPU", 0.0), decode_cpus)
                served = [ServedReward(n, replicas=reps[n], num_cpus=cpus[n],
                                       num_gpus=float(each(num_gpus, n)), device=device, dtype=dtype,
                                       pretrained=pretrained, weights=w.get(n), config=cfg.get(n, {}), seed=seed)
                          for n in canon]
                self.service = RewardService(served, name=self.service_name, reserve_cpus=decode_cpus,
                                             check_resources=check_resources).start()
        except BaseException:
            self._stop_ray()
            raise
        try:
            models = {n: remote_reward(n, "ray", timeout_s=timeout_s, service=self.service_name,
                                       expect={**cfg.get(n, {}), "pretrained": bool(pretrained),
                                               **({"weights": w[n]} if n in w else {}),
                                               **({"dtype": str(parse_dtype(dtype))} if dtype else {})})
                      for n in canon}
            super().__init__(models, batch_size=batch_size, device="cpu", num_workers=0, share_backbones=False,
                             **scorer_options)
        except Exception:
            if self.service is not None:
                self.service.shutdown()
            self._stop_ray()
            raise
        for s in self.slots:  # how each was built: part of the run fingerprint, as for a local run
            s.build.update({"config": cfg.get(s.name, {}), "pretrained": bool(pretrained),
                            "weights_given": w.get(s.name), "engine": "ray"})

    def _score_all(self, src, engine, writer, done, gb, group_counts, n_total, n_done) -> tuple[int, int]:
        """The planned batches through Ray Data (decoding and the batch engine in tasks) into ``writer``."""
        if isinstance(src, ListSource) and src.in_memory:
            raise UsageError("--engine ray reads image files: give paths (a folder or a manifest), not in-memory "
                             "images")
        ray = require_ray()
        plan = BatchPlan(src, self.batch_size, done, gb, group_counts, self.chunk_rows, self.max_batch_pixels)
        batches = plan_batches(plan)
        bar = None
        if self.progress:
            import sys

            from tqdm.auto import tqdm

            bar = tqdm(total=n_total, initial=n_done, unit="img", desc="scoring (ray)", dynamic_ncols=True,
                       file=sys.stderr)
        names = tuple(s.name for s in self.slots)
        processed = ok = 0
        # the run's own progress bar (or none, --no-progress) in place of Ray Data's bars and per-dataset INFO lines
        ray.data.DataContext.get_current().enable_progress_bars = False
        data_log = logging.getLogger("ray.data")
        level, data_log.level = data_log.level, max(data_log.level, logging.WARNING)
        try:
            while window := list(itertools.islice(batches, self.window_batches)):
                ds = ray.data.from_items([{"rows": pickle.dumps(rows)} for rows in window])
                ds = ds.map(score_planned, fn_kwargs={"service": self.service_name, "names": names,
                                                      "group_by": tuple(gb) if gb else None},
                            num_cpus=self.decode_cpus,
                            **({"concurrency": self.decode_tasks} if self.decode_tasks else {}))
                for item in ds.iter_rows():
                    rows = pickle.loads(item["rows"])
                    writer.add(rows)
                    processed += len(rows)
                    ok += sum(r["error"] is None for r in rows)
                    if bar is not None:
                        bar.update(len(rows))
        finally:
            data_log.setLevel(level)
            writer.flush()
            if bar is not None:
                bar.close()
        for s in self.slots:
            s.calls += 1  # the calls happen in the tasks; the summary's timings are the driver's
        return processed, ok

    def close(self) -> None:
        """Stop this run's reward service, the local Ray a RayScorer started when no other open RayScorer of this
        process uses it (a cluster it connected to, or a Ray the caller started, is left running; so is one another
        caller uses beside a RayScorer that started it: start Ray yourself to keep it), and what
        `rewardbench.Scorer.close` tears down."""
        if getattr(self, "service", None) is not None:
            self.service.shutdown()
            self.service = None
        self._stop_ray()
        super().close()

    def _stop_ray(self) -> None:
        if not getattr(self, "_uses_local_ray", False):
            return
        self._uses_local_ray = False
        _LOCAL_RAY["users"] -= 1
        if _LOCAL_RAY["users"] <= 0 and _LOCAL_RAY["started"]:
            _LOCAL_RAY.update(started=False, users=0)
            require_ray().shutdown()


def plan_cpus(replicas: Mapping[str, int], given: Mapping[str, float], free_cpus: float,
              decode_cpus: float = 1.0) -> dict[str, float]:
    """Each reward's CPUs per replica: as ``given``, and for the others the free CPUs less the given ones' and a
    decoding task's, shared among their replicas (`replica_cpus`).

    >>> plan_cpus({"a": 1, "b": 1, "c": 1}, {}, free_cpus=2)
    {'a': 0.333, 'b': 0.333, 'c': 0.333}
    >>> plan_cpus({"a": 1, "b": 2, "c": 1}, {"a": 0.5}, free_cpus=4)   # (4 - 0.5 - 1) / 3 replicas
    {'a': 0.5, 'b': 0.833, 'c': 0.833}
    """
    rest = [n for n in replicas if n not in given]
    left = free_cpus - sum(replicas[n] * given[n] for n in given)
    share = replica_cpus(left, sum(replicas[n] for n in rest), decode_cpus) if rest else 0.0
    return {n: float(given[n]) if n in given else share for n in replicas}


def replica_cpus(cluster_cpus: float, n_replicas: int, decode_cpus: float = 1.0) -> float:
    """CPUs for each reward replica when none are asked for: the cluster's free CPUs less a decoding task's, shared
    among the replicas, at most 1 each (Ray places a fractional CPU; torch then runs one thread).

    >>> replica_cpus(2, 3)      # three rewards on two CPUs: every replica and a decoding task fit at once
    0.333
    >>> replica_cpus(16, 4)
    1.0
    >>> replica_cpus(1, 2)      # nothing left beside the decoding task: replicas take no CPU of their own
    0.0
    """
    spare = max(0.0, float(cluster_cpus) - float(decode_cpus))
    return min(1.0, math.floor(1000 * spare / max(1, n_replicas)) / 1000)

