"""Scoring one decoded batch with every reward: pixels to the device once, shared backbone features,
group ids, per-row (or per-group) retry when a call fails, and each reward's details as table columns."""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .cache import TextFeatureCache
from .groups import GroupBy, mark_small_groups
from .images import one_batch_if_one_size, pixels_from_uint8, select_rows
from .model import RewardModel
from .provenance import Provenance, describe
from .shards import ROW
from .spec import RewardOutput

GROUP_HINT = "needs groups: pass --group-by COLUMN[,COLUMN] (e.g. prompt, or prompt,model) or a group column"


@dataclass
class RewardSlot:
    """One reward of a run: its results column, the model, and what it cost."""

    name: str  # column name
    model: RewardModel
    provenance: tuple[Provenance, ...]  # where its weights came from (stored once per run, in its metadata)
    build: dict = field(default_factory=dict)  # how it was built (config, dtype, ...): part of the run fingerprint
    fingerprint: tuple = ()
    seconds: float = 0.0
    calls: int = 0

    @property
    def spec(self):
        return self.model.spec

    @property
    def weights_used(self) -> str:
        """The provenance as text, for people."""
        return describe(self.provenance)


def text_caches(model: torch.nn.Module) -> list[TextFeatureCache]:
    """The text-feature caches a reward keeps (anywhere in its module tree), each once."""
    found = {}
    for m in model.modules():
        for v in vars(m).values():
            if isinstance(v, TextFeatureCache):
                found[id(v)] = v
    return list(found.values())


class BatchScores:
    """Scores and per-row details of one batch, filled reward by reward.

    Details that hold one value per row (a tensor ``[B]`` or a list of length B) become columns
    ``<reward>.<key>`` of the results table: booleans as booleans, other numbers as floats, strings as they
    are, anything else (lists, dicts, tensors per row) as JSON, so a fairness audit keeps face counts and
    notes. A group reward's ``group_details`` go on every member of the group as ``<reward>.group_<key>``.
    """

    def __init__(self, n: int, names: list[str]):
        self.n = n
        self.scores = {name: np.full(n, np.nan) for name in names}
        self.details: dict[str, dict[str, list]] = {name: {} for name in names}

    def __getitem__(self, name: str) -> np.ndarray:
        return self.scores[name]

    def record(self, name: str, idx: list[int], out: RewardOutput, local_groups: list[int] | None = None) -> None:
        """Reward ``name``'s output for rows ``idx``; ``local_groups``: each row's group id in the call."""
        self.scores[name][idx] = out.scores.detach().float().cpu().numpy()
        for i, g in zip(idx, local_groups or ()):
            for key, v in out.group_details.get(g, {}).items():
                self.details[name].setdefault(f"group_{key}", [None] * self.n)[i] = _cell(v)
        for key, values in out.details.items():
            if isinstance(values, torch.Tensor):
                values = values.detach().cpu()
                values = values if values.dtype == torch.bool else values.float()  # a flag stays a flag
                if values.ndim != 1 or values.shape[0] != len(idx):
                    continue
                values = values.tolist()
            elif not isinstance(values, (list, tuple)) or len(values) != len(idx):
                continue
            col = self.details[name].setdefault(key, [None] * self.n)
            for i, v in zip(idx, values):
                col[i] = _cell(v)


def _cell(v: Any) -> Any:
    """One detail as a table cell: a flag as bool, a number as float, a string as it is, anything else as JSON.

    Example:
        >>> [_cell(x) for x in (True, np.bool_(False), torch.tensor(True), 3, torch.tensor(2.5), "a", {"light": 1})]
        [True, False, True, 3.0, 2.5, 'a', '{"light": 1}']
    """
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, np.bool_) or (isinstance(v, torch.Tensor) and v.dtype == torch.bool and v.numel() == 1):
        return bool(v)
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v)
    if isinstance(v, torch.Tensor) and v.numel() == 1:
        return float(v)
    if isinstance(v, torch.Tensor):
        v = v.tolist()
    return json.dumps(v, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))


def flag_dtype(column) -> str | None:
    """The dtype a detail column of flags keeps in the results table: ``"bool"``, or ``"boolean"`` (pandas'
    nullable booleans) where some rows have no value (a failed row, another reward's batch); None for a column
    that is not all flags. Rows are assembled as Python values (a column of flags with a gap is ``object``), so
    without this a flag would come back as ``object`` or, through a float tensor, as 0.0/1.0.

    Example:
        >>> import pandas as pd
        >>> [flag_dtype(pd.Series(v, dtype=object)) for v in ([True, False], [True, None], [1.0, None], [None])]
        ['bool', 'boolean', None, None]
    """
    values = [v for v in column if v is not None and not (isinstance(v, float) and v != v)]
    if not values or not all(isinstance(v, (bool, np.bool_)) for v in values):
        return None
    return "bool" if len(values) == len(column) else "boolean"


def takes_uint8(model: torch.nn.Module) -> bool:
    """Whether a reward declares ``takes_uint8 = True``: its ``forward`` (and, for a backbone reward, its
    ``embed_images``) reads the decoded bytes, a uint8 ``[B,3,H,W]`` batch, as well as float pixels, so the
    engine hands it the bytes and converts a batch to floats only for the rewards that read floats (JPEG sizes
    and the people pipeline need no floats: a JPEG-only run converts nothing)."""
    return bool(getattr(model, "takes_uint8", False))


@dataclass
class DeviceBatch:
    """A decoded batch on the device: pixels per size bucket, and where each row sits."""

    prompts: list[str]
    group_keys: list
    buckets: list[tuple[list[int], torch.Tensor]]  # (row positions, uint8 [n,H,W,3] as decoded or float [n,3,H,W])
    where: dict[int, tuple[int, int]]  # row position -> (bucket, row in bucket)
    scores: BatchScores
    errors: list[list[str]]
    floats: dict[int, torch.Tensor] = field(default_factory=dict)  # bucket -> its float pixels, made on first use

    def _bucket(self, b: int, uint8: bool) -> torch.Tensor:
        t = self.buckets[b][1]
        if t.dtype != torch.uint8:  # in-memory items: float already
            return t
        if uint8:
            return t.permute(0, 3, 1, 2)  # [n,3,H,W] view of the bytes
        if b not in self.floats:  # channels first in one pass; the floats remember their bytes
            self.floats[b] = pixels_from_uint8(t)
        return self.floats[b]

    def pixels(self, idx: list[int], uint8: bool = False) -> torch.Tensor | list[torch.Tensor]:
        """Pixels of rows ``idx`` (float, or with ``uint8`` the decoded bytes where the rows came from files): one
        tensor when they share a size, else a list (`rewardbench.images.one_batch_if_one_size`; the reward's
        forward then scores per size)."""
        buckets = {self.where[i][0] for i in idx}
        if len(buckets) == 1:  # one decoded bucket: index it, no per-row copies
            t = self._bucket(buckets.pop(), uint8)
            rows = [self.where[i][1] for i in idx]
            if rows == list(range(t.shape[0])):  # the whole bucket, in order: no copy
                return t
            return select_rows(t, torch.tensor(rows, device=t.device))
        return one_batch_if_one_size([self._bucket(self.where[i][0], uint8)[self.where[i][1]] for i in idx])


class BatchEngine:
    """Scores planned batches with the slots of a run, cluster by cluster (a cluster = rewards sharing a
    backbone, whose image features are computed once)."""

    def __init__(self, slots: list[RewardSlot], clusters: list[list[RewardSlot]], device: torch.device,
                 dtype: torch.dtype | None, group_mode: GroupBy | None):
        self.slots, self.clusters = slots, clusters
        self.device, self.dtype, self.group_mode = device, dtype, group_mode
        self.backbone_seconds: dict[str, float] = {}

    def _autocast(self):
        if self.dtype in (torch.float16, torch.bfloat16):
            return torch.autocast(device_type=self.device.type, dtype=self.dtype)
        return contextlib.nullcontext()

    def score_batch(self, batch: dict) -> list[dict]:
        """One result row per row of ``batch`` (from `rewardbench.batching.make_batch`)."""
        n = len(batch["index"])
        prompts: list[str] = batch["prompt"]
        errors: list[list[str]] = [[e] if e else [] for e in batch["errors"]]
        decoded = [e is None for e in batch["errors"]]
        buckets: list[tuple[list[int], torch.Tensor]] = []
        where: dict[int, tuple[int, int]] = {}
        for b, (pos, t) in enumerate(batch["buckets"]):
            t = t.to(self.device, non_blocking=True)  # files: uint8 [n,H,W,3], to floats when a reward asks
            buckets.append((pos, t if t.dtype == torch.uint8 else t.float()))
            for j, p in enumerate(pos):
                where[p] = (b, j)
        # group keys, for group rewards (the DataLoader's conversion turns the key tuples into lists)
        gkeys = [None if k is None else tuple(k) for k in batch["gkey"]] if self.group_mode else [None] * n
        db = DeviceBatch(prompts, gkeys, buckets, where, BatchScores(n, [s.name for s in self.slots]), errors)

        def eligible(s: RewardSlot) -> list[int]:
            ok = []
            for i in range(n):
                if not decoded[i]:
                    continue
                if s.model.refuses_prompt(prompts[i]):
                    errors[i].append(f"{s.name}: empty prompt, but this reward needs one")
                    continue
                if s.spec.granularity == "group" and gkeys[i] is None:
                    errors[i].append(f"{s.name}: no group for this row (an empty value in --group-by "
                                     f"{','.join(self.group_mode)})" if self.group_mode else f"{s.name}: {GROUP_HINT}")
                    continue
                ok.append(i)
            return ok

        with self._autocast():
            for cluster in self.clusters:
                elig = {s.name: eligible(s) for s in cluster}
                if len(cluster) > 1:
                    self._score_cluster(cluster, elig, db)
                else:
                    self._score_units(cluster[0], elig[cluster[0].name], db)
        return self._rows(batch, db)

    def _rows(self, batch: dict, db: DeviceBatch) -> list[dict]:
        rows = []
        for i in range(len(batch["index"])):
            row = {ROW: int(batch["index"][i]), "image": batch["image"][i], "prompt": db.prompts[i]}
            g = batch["group"][i]
            row["group"] = None if g is None else str(g)
            row.update(batch["extra"][i])  # the input's own columns (clashes are refused before the run)
            for s in self.slots:
                v = db.scores[s.name][i]
                row[s.name] = None if math.isnan(v) else float(v)
                for key, col in db.scores.details[s.name].items():
                    row[f"{s.name}.{key}"] = col[i]
            row["error"] = "; ".join(db.errors[i]) if db.errors[i] else None
            rows.append(row)
        return rows

    def _call(self, s: RewardSlot, idx: list[int], db: DeviceBatch, feats: dict[int, torch.Tensor] | None = None
              ) -> None:
        """Reward ``s`` on rows ``idx`` (its forward on the pixels, or its head on shared backbone ``feats``),
        recorded in ``db``; group rewards get group ids local to the call."""
        groups, ids, local = None, {}, None
        if s.spec.granularity == "group":
            local = [ids.setdefault(db.group_keys[i], len(ids)) for i in idx]
            groups = torch.tensor(local, dtype=torch.long, device=self.device)
        prompts = [db.prompts[i] for i in idx]
        if feats is None:
            out = s.model(db.pixels(idx, uint8=takes_uint8(s.model)), prompts, groups)
        else:
            out = s.model.score_features(torch.stack([feats[i] for i in idx]), prompts, groups)
        if local is not None and s.spec.min_group_size > 1:  # a group smaller than the reward can measure: marked
            out = mark_small_groups(out, local, s.spec.min_group_size)
        db.scores.record(s.name, idx, out, local)

    @staticmethod
    def _units(s: RewardSlot, idx: list[int], gkeys: list) -> list[list[int]]:
        """Retry units: one row each, or one whole group each for group rewards."""
        if s.spec.granularity != "group":
            return [[i] for i in idx]
        by: dict[Any, list[int]] = {}
        for i in idx:
            by.setdefault(gkeys[i], []).append(i)
        return list(by.values())

    def _score_units(self, s: RewardSlot, idx: list[int], db: DeviceBatch) -> None:
        """Score rows ``idx`` in one call; if it raises, retry unit by unit so that one bad row
        (or group) does not fail the others."""
        if not idx:
            return
        t = time.perf_counter()
        try:
            self._call(s, idx, db)
        except Exception as batch_error:
            units = self._units(s, idx, db.group_keys)
            for unit in units:
                try:
                    self._call(s, unit, db)
                except Exception as e:
                    err = e if len(units) > 1 else batch_error
                    for i in unit:
                        db.errors[i].append(f"{s.name}: {type(err).__name__}: {err}")
        finally:
            s.seconds += time.perf_counter() - t
            s.calls += 1

    def _score_cluster(self, cluster: list[RewardSlot], elig: dict[str, list[int]], db: DeviceBatch) -> None:
        """Rewards sharing a backbone: image features once for the union of their rows, then each
        reward's head. Any failure falls back to the reward's own forward (with per-row retry)."""
        union = sorted(set().union(*[set(v) for v in elig.values()]))
        if not union:
            return
        leader = cluster[0].model
        key = str(leader.spec.backbone)
        t = time.perf_counter()
        try:
            feats: dict[int, torch.Tensor] | None = {}
            by_bucket: dict[int, list[int]] = {}
            for i in union:
                by_bucket.setdefault(db.where[i][0], []).append(i)
            for idx in by_bucket.values():
                emb = leader.embed_images(db.pixels(idx, uint8=takes_uint8(leader)))
                for j, i in enumerate(idx):
                    feats[i] = emb[j]
        except Exception:
            feats = None
        self.backbone_seconds[key] = self.backbone_seconds.get(key, 0.0) + time.perf_counter() - t
        for s in cluster:
            idx = elig[s.name]
            if not idx:
                continue
            if feats is None:
                self._score_units(s, idx, db)
                continue
            t = time.perf_counter()
            try:
                self._call(s, idx, db, feats)
                s.seconds += time.perf_counter() - t
                s.calls += 1
            except Exception:
                s.seconds += time.perf_counter() - t
                self._score_units(s, idx, db)
