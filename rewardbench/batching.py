"""Batch planning and image decoding for the scoring harness: which rows go together (planned once, in the
scoring process), and turning a planned batch into uint8/float tensors (in DataLoader worker processes,
which receive each batch's rows and never re-read the source).

A batch is bounded twice: at most ``batch_size`` images, and at most ``max_batch_pixels`` pixels
(`DEFAULT_BATCH_PIXELS`: as many as the largest image `rewardbench.images.load_image` decodes), so the
memory a batch takes stays within what one largest image takes, whatever the input: large images get
batches of their own. The planner reads image sizes from file headers (no decoding).

Example:
    >>> import numpy as np
    >>> from rewardbench.data import ListSource
    >>> src = ListSource([{"image": np.zeros((8, 8, 3), np.uint8)}, {"image": np.zeros((4, 4, 3), np.uint8)}] * 3)
    >>> [len(b["index"]) for b in make_loader(BatchPlan(src, batch_size=4), workers=0, pin=False)]
    [4, 2]
    >>> [len(b) for b in plan_batches(BatchPlan(src, batch_size=4, max_batch_pixels=100))]  # 64 + 16 pixels
    [2, 2, 2]
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .data import DEFAULT_CHUNK_ROWS, Source
from .groups import GroupBy, group_key
from .images import MAX_PIXELS, ImageError, _pil_open, load_image, size_groups, to_pixels

# Pixels in one batch, by default: the per-image cap (8192 x 8192 unless $REWARDBENCH_MAX_PIXELS says
# otherwise), so a batch never needs more memory than the largest image that may be decoded at all; 16
# images of 2048 x 2048 still fit in one batch.
DEFAULT_BATCH_PIXELS = MAX_PIXELS


@dataclass(frozen=True)
class BatchPlan:
    """What to batch and how: every process plans the same batches from it (and keeps its share).

    ``done`` marks rows finished by an earlier run (skipped); ``group_by`` names the columns whose
    values form a group (each row carries its key as ``gkey``); with ``group_counts`` (rows per group
    key, for group rewards) the rows of a group wait until the group is complete and go into one batch
    together (a group larger than ``batch_size`` is one batch of its own).

    ``max_batch_pixels`` bounds the pixels (width x height, summed over the images) of a batch: an image
    or a group with more is a batch of its own; None: no bound (the images' sizes are not read).
    """

    source: Source
    batch_size: int
    done: np.ndarray | None = None
    group_by: GroupBy | None = None
    group_counts: Mapping[Any, int] | None = None
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    max_batch_pixels: int | None = DEFAULT_BATCH_PIXELS


def row_pixels(row: dict) -> int:
    """Width x height of a row's image without decoding it: a file's header (PIL opens lazily), an array's
    or tensor's shape, a PIL image's size. 0 for what cannot be read (its decoding fails anyway, with the
    error in its row).

    Example:
        >>> import numpy as np, torch
        >>> [row_pixels({"image": x}) for x in (np.zeros((30, 20, 3), np.uint8), torch.zeros(3, 5, 4), "nothing.png")]
        [600, 20, 0]
    """
    item = row["image"]
    try:
        if isinstance(item, (str, os.PathLike)):
            with warnings.catch_warnings():  # a huge image is the decoder's to refuse, with its row's error
                warnings.simplefilter("ignore")
                with _pil_open(item) as img:
                    w, h = img.size
            return int(w) * int(h)
        size = getattr(item, "size", None)
        if isinstance(size, tuple) and len(size) == 2:  # PIL
            return int(size[0]) * int(size[1])
        shape = tuple(getattr(item, "shape", ()))
        if len(shape) < 2:
            return 0
        if isinstance(item, torch.Tensor):  # [3,H,W], [B,3,H,W], or an unambiguous [H,W,C]
            hw = shape[-2:] if shape[-3:-2] in ((1,), (3,), (4,)) or len(shape) == 2 else shape[-3:-1]
        else:  # numpy: [H,W], [H,W,C], [B,H,W,C]
            hw = shape[:2] if len(shape) <= 3 else shape[-3:-1]
        return int(np.prod(hw))
    except Exception:  # a missing or unreadable file: its row gets the decoder's error message
        return 0


def plan_batches(plan: BatchPlan) -> Iterator[list[dict]]:
    """Batches (lists of rows) of the not-yet-done rows of ``plan``, in input order (a group's rows
    together, where its last row comes). A batch closes when the next row or group would take it past
    ``batch_size`` images or ``max_batch_pixels`` pixels. Memory: the rows of incomplete groups plus one
    batch."""
    source, batch_size, done, group_by = plan.source, plan.batch_size, plan.done, plan.group_by
    group_counts, chunk_rows = plan.group_counts, plan.chunk_rows
    # with one image per batch the pixel bound changes nothing: no header is read
    budget = plan.max_batch_pixels if batch_size > 1 else None
    cur: list[dict] = []
    cur_px = 0
    pending: dict[Any, list[dict]] = {}

    def add(unit: list[dict]):
        nonlocal cur, cur_px
        px = sum(map(row_pixels, unit)) if budget is not None else 0
        if cur and (len(cur) + len(unit) > batch_size or (budget is not None and cur_px + px > budget)):
            yield cur
            cur, cur_px = [], 0
        cur.extend(unit)
        cur_px += px
        if len(cur) >= batch_size or (budget is not None and cur_px >= budget):
            yield cur
            cur, cur_px = [], 0

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
