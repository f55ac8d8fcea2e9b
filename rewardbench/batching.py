"""Batch planning and image decoding for the scoring harness: which rows go together (planned once, in the
scoring process), and turning a planned batch into uint8/float tensors (in DataLoader worker processes,
which receive each batch's rows and never re-read the source).

Example:
    >>> import numpy as np
    >>> from rewardbench.data import ListSource
    >>> src = ListSource([{"image": np.zeros((8, 8, 3), np.uint8)}, {"image": np.zeros((4, 4, 3), np.uint8)}] * 3)
    >>> [len(b["index"]) for b in make_loader(BatchPlan(src, batch_size=4), workers=0, pin=False)]
    [4, 2]
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .data import DEFAULT_CHUNK_ROWS, Source
from .groups import GroupBy, group_key
from .images import ImageError, load_image, size_groups, to_pixels


@dataclass(frozen=True)
class BatchPlan:
    """What to batch and how: every process plans the same batches from it (and keeps its share).

    ``done`` marks rows finished by an earlier run (skipped); ``group_by`` names the columns whose
    values form a group (each row carries its key as ``gkey``); with ``group_counts`` (rows per group
    key, for group rewards) the rows of a group wait until the group is complete and go into one batch
    together (a group larger than ``batch_size`` is one batch of its own).
    """

    source: Source
    batch_size: int
    done: np.ndarray | None = None
    group_by: GroupBy | None = None
    group_counts: Mapping[Any, int] | None = None
    chunk_rows: int = DEFAULT_CHUNK_ROWS


def plan_batches(plan: BatchPlan) -> Iterator[list[dict]]:
    """Batches (lists of rows) of the not-yet-done rows of ``plan``. Memory: the rows of incomplete
    groups plus one batch."""
    source, batch_size, done, group_by = plan.source, plan.batch_size, plan.done, plan.group_by
    group_counts, chunk_rows = plan.group_counts, plan.chunk_rows
    cur: list[dict] = []
    pending: dict[Any, list[dict]] = {}

    def add(unit: list[dict]):
        nonlocal cur
        if cur and len(cur) + len(unit) > batch_size:
            yield cur
            cur = []
        cur.extend(unit)
        if len(cur) >= batch_size:
            yield cur
            cur = []

    for chunk in source.iter_chunks(chunk_rows):
        for row in chunk:
            i = row["index"]
            if done is not None and i < len(done) and done[i]:
                continue
            key = row["gkey"] = group_key(row, group_by)
            if key is None or group_counts is None:
                yield from add([row])
                continue
            members = pending.setdefault(key, [])
            members.append(row)
            if len(members) >= group_counts.get(key, 0):
                del pending[key]
                yield from add(members)
    for members in pending.values():  # only if counts were off; never drop rows
        yield from add(members)
    if cur:
        yield cur


def decode_row(row: dict) -> tuple[Any, str | None]:
    """One row's image → uint8 ``[H,W,3]`` numpy array (files: no copy or transpose here; the
    batch is stacked once and permuted on the device) or float ``[3,H,W]`` tensor (in-memory
    items), or an error message."""
    item = row["image"]
    try:
        if isinstance(item, (str, os.PathLike)):
            if not str(item):
                return None, f"row {row['index']}: no image path"
            img = load_image(item)
            if img.width == 0 or img.height == 0:
                return None, f"{item}: zero-size image ({img.width}x{img.height})"
            return np.asarray(img, dtype=np.uint8), None
        return to_pixels(item, where=f"row {row['index']}").contiguous(), None
    except ImageError as e:
        return None, str(e)
    except Exception as e:  # a decoder bug must not stop the run
        return None, f"{item if isinstance(item, (str, os.PathLike)) else 'row ' + str(row['index'])}: " \
                     f"cannot read image ({type(e).__name__}: {e})"


def describe_image(row: dict) -> str:
    """How the results table names a row's image: its path as the input wrote it, or the type and
    shape of an in-memory item."""
    item = row["image"]
    if isinstance(item, (str, os.PathLike)):
        label = row.get("label", item)
        return str(item if label is None else label)
    shape = getattr(item, "shape", None) or getattr(item, "size", None)
    return f"<{type(item).__name__} {tuple(shape) if shape is not None else ''} #{row['index']}>"


def make_batch(rows: list[dict]) -> dict:
    """Decode a planned batch: same-size images are stacked into one tensor (one copy to the
    device per size); failures carry their message."""
    images, errors = [], []
    for r in rows:
        t, err = decode_row(r)
        images.append(t)
        errors.append(err)
    decoded = [i for i, t in enumerate(images) if t is not None]
    buckets = []
    for same_size in size_groups([images[i] for i in decoded]):
        kinds: dict[tuple, list[int]] = {}  # files (uint8 [H,W,3]) apart from in-memory items (float [3,H,W])
        for j in same_size:
            t = images[decoded[j]]
            kinds.setdefault((type(t), str(t.dtype)), []).append(decoded[j])
        for pos in kinds.values():
            if isinstance(images[pos[0]], np.ndarray):  # uint8 [n,H,W,3]: one copy, 4x smaller than float
                buckets.append((pos, torch.from_numpy(np.stack([images[i] for i in pos]))))
            else:  # float [n,3,H,W]
                buckets.append((pos, torch.stack([images[i] for i in pos])))
    return {
        "index": [r["index"] for r in rows],
        "image": [describe_image(r) for r in rows],
        "prompt": [r["prompt"] for r in rows],
        "group": [r["group"] for r in rows],
        "gkey": [r.get("gkey") for r in rows],
        "extra": [r.get("extra", {}) for r in rows],
        "buckets": buckets,
        "errors": errors,
    }


class RankBatches:
    """This process's share of the planned batches, as their lists of rows: batch k belongs to rank
    ``k % world``. Iterated lazily in the scoring process (the DataLoader's sampler), so the plan is made
    once and streams: memory holds the rows of incomplete groups and the batches in flight."""

    def __init__(self, plan: BatchPlan, rank: int = 0, world: int = 1):
        self.plan = plan
        self.rank, self.world = rank, world

    def __iter__(self) -> Iterator[list[dict]]:
        for k, rows in enumerate(plan_batches(self.plan)):
            if k % self.world == self.rank:
                yield rows


class _Decode(torch.utils.data.Dataset):
    """A worker's job: the DataLoader hands it a planned batch's rows (its "index") to decode."""

    def __getitem__(self, rows: list[dict]) -> dict:
        return make_batch(rows)


def make_loader(plan: BatchPlan, workers: int, pin: bool, rank: int = 0, world: int = 1
                ) -> torch.utils.data.DataLoader:
    """The DataLoader over this rank's planned batches (`RankBatches`), decoded by ``workers`` processes
    (0: in this process); the DataLoader sends the batches to its workers in turn and yields them in plan
    order."""
    return torch.utils.data.DataLoader(_Decode(), sampler=RankBatches(plan, rank, world), batch_size=None,
                                       num_workers=workers, pin_memory=pin, prefetch_factor=4 if workers else None,
                                       persistent_workers=False)
