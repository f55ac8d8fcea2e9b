"""The scoring harness: `Scorer` runs rewards over a folder, a manifest or a list of images.

What it does for speed and robustness:
  * images are decoded and validated in DataLoader worker processes while the device computes
    (uint8 tensors travel between processes; pinned memory and non-blocking copies on a GPU);
  * rewards run under ``torch.inference_mode()`` (unless ``grad=True``) and autocast to ``dtype``;
  * rewards that subclass `rewardbench.BackboneReward` with the same ``spec.backbone`` and the same
    backbone weights share ONE backbone module, and its image features are computed once per image;
    rewards that keep a `rewardbench.TextFeatureCache` encode each unique prompt once;
  * the input streams in chunks; finished rows go to parquet shards beside ``out`` so a killed run
    resumes where it stopped (one row per input, none lost, none twice); a run fingerprint stored
    with the shards refuses to mix results of a different reward set or different weights;
  * a bad image, an empty prompt or a reward that raises becomes a per-row ``error``, not a crash;
  * under ``torchrun``/``accelerate launch`` batches are spread over the processes (NCCL on GPUs,
    gloo on CPUs) and rank 0 writes the same table as a single process would.

Example:
    >>> import numpy as np, rewardbench
    >>> items = [{"image": np.full((32, 32, 3), v, np.uint8), "prompt": "grey"} for v in (0, 128)]
    >>> res = rewardbench.Scorer("jpeg-compressibility", progress=False).run(items)
    >>> res.n_rows, res.n_failed, list(res.table.columns)
    (2, 0, ['image', 'prompt', 'jpeg-compressibility', 'jpeg-compressibility.jpeg_kb', 'weights', 'error'])
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import os
import shutil
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .cache import TextFeatureCache
from .data import DEFAULT_CHUNK_ROWS, ListSource, Source, open_source
from .images import ImageError, load_image, to_pixels
from .model import BackboneReward, RewardModel
from .spec import RewardOutput

__all__ = ["Scorer", "ScoreResult", "ResumeMismatchError", "RESULT_EXTENSIONS", "write_table"]

RESULT_EXTENSIONS = (".parquet", ".csv", ".jsonl")
GROUP_HINT = "needs groups: pass --group-by prompt or a group column"
_FINGERPRINT = "run.json"


class ResumeMismatchError(RuntimeError):
    """``out`` already holds partial results of a different run (rewards, weights or input)."""


# ----------------------------------------------------------------------------------------------
# result


@dataclass
class ScoreResult:
    """What `Scorer.run` returns. ``table`` has one row per input, in input order."""

    summary: dict[str, Any]
    reward_names: list[str]
    out: Path | None = None
    _table: Any = None

    @property
    def table(self):
        """pandas DataFrame: image, prompt, [group], one float column per reward, weights, error."""
        if self._table is None and self.out is not None:
            self._table = read_table(self.out)
        return self._table

    @property
    def n_rows(self) -> int:
        return int(self.summary["rows"])

    @property
    def n_failed(self) -> int:
        return int(self.summary["failed"])

    def failures(self):
        """The failed rows (image, error)."""
        t = self.table
        return t[t["error"].notna()][["image", "error"]]


def write_table(df, path: str | os.PathLike) -> None:
    """Write a results table as parquet, CSV or JSONL, chosen by the extension."""
    path = Path(path)
    ext = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if ext == ".parquet":
        df.to_parquet(tmp, index=False)
    elif ext == ".csv":
        df.to_csv(tmp, index=False)
    elif ext == ".jsonl":
        df.to_json(tmp, orient="records", lines=True, force_ascii=False)
    else:
        raise ValueError(f"{path}: unknown results format; use one of {', '.join(RESULT_EXTENSIONS)}")
    os.replace(tmp, path)


def read_table(path: str | os.PathLike):
    import pandas as pd

    path = Path(path)
    ext = path.suffix.lower()
    if ext == ".parquet":
        return pd.read_parquet(path)
    if ext == ".csv":
        df = pd.read_csv(path)
        if "error" in df.columns:
            df["error"] = df["error"].astype(object).where(df["error"].notna(), None)
        return df
    return pd.read_json(path, orient="records", lines=True)


# ----------------------------------------------------------------------------------------------
# the reward slots


@dataclass
class _Slot:
    name: str  # column name
    model: RewardModel
    weights_used: str
    fingerprint: list = field(default_factory=list)
    seconds: float = 0.0
    calls: int = 0

    @property
    def spec(self):
        return self.model.spec


def _param_fingerprint(module: torch.nn.Module) -> list:
    """(n params, sum, sum of squares): tells random inits apart, cheap next to a scoring run."""
    n, s, sq = 0, 0.0, 0.0
    with torch.no_grad():
        for p in module.parameters():
            q = p.detach().double()
            s += float(q.sum())
            sq += float((q * q).sum())
            n += p.numel()
    return [n, round(s, 5), round(sq, 5)]


def _text_caches(model: torch.nn.Module) -> list[TextFeatureCache]:
    found = {}
    for m in model.modules():
        for v in vars(m).values():
            if isinstance(v, TextFeatureCache):
                found[id(v)] = v
    return list(found.values())


# ----------------------------------------------------------------------------------------------
# distributed


def _dist_setup() -> tuple[int, int, bool]:
    """(rank, world, initialised_here). Initialises torch.distributed when launched by torchrun or
    accelerate (WORLD_SIZE > 1) and nobody did it yet."""
    import torch.distributed as dist

    if not dist.is_available():
        return 0, 1, False
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":  # collectives of Python objects run on the current device: one GPU per process
        torch.cuda.set_device(_local_rank())
    dist.init_process_group(backend=backend)
    atexit.register(_destroy_group)  # a caller that never calls Scorer.close() must still exit cleanly
    return dist.get_rank(), dist.get_world_size(), True


def _local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def _process_device(device: str | torch.device | None, world: int) -> torch.device:
    """The device of this process: the GPU if any, else the CPU; with several processes an
    unindexed ``cuda`` means this process's own GPU (``cuda:LOCAL_RANK``), not everyone on GPU 0.

    Example:
        >>> str(_process_device("cpu", 4)), str(_process_device("cuda:1", 2))
        ('cpu', 'cuda:1')
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if world > 1 and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", _local_rank())
    return device


def _destroy_group() -> None:
    """Tear the process group down at interpreter exit if it is still up (otherwise a rank that
    exits while a peer is alive can abort in the gloo/NCCL destructors)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _gather(obj: Any, world: int) -> list:
    if world <= 1:
        return [obj]
    import torch.distributed as dist

    out: list = [None] * world
    dist.all_gather_object(out, obj)
    return out


def _broadcast(obj: Any, world: int) -> Any:
    if world <= 1:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# ----------------------------------------------------------------------------------------------
# batch planning (runs in every worker process; deterministic, so all agree)


def _group_key(row: dict, group_by: str | None) -> Any:
    if group_by == "prompt":
        return row["prompt"] if row["prompt"].strip() else None
    if group_by == "group":
        return row["group"]
    return None


def _plan(source: Source, batch_size: int, done: np.ndarray | None, group_by: str | None,
          group_counts: Mapping[Any, int] | None, chunk_rows: int) -> Iterator[list[dict]]:
    """Batches of not-yet-done rows. With ``group_counts``, the rows of a group wait until the
    group is complete and go into one batch together (a group larger than ``batch_size`` is one
    batch of its own). Memory: the rows of incomplete groups plus one batch."""
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
            key = _group_key(row, group_by) if group_counts is not None else None
            if key is None:
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


def _decode(row: dict) -> tuple[Any, str | None]:
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


def _describe_image(row: dict) -> str:
    item = row["image"]
    if isinstance(item, (str, os.PathLike)):
        return str(item)
    shape = getattr(item, "shape", None) or getattr(item, "size", None)
    return f"<{type(item).__name__} {tuple(shape) if shape is not None else ''} #{row['index']}>"


def _make_batch(rows: list[dict]) -> dict:
    """Decode a planned batch: same-size images are stacked into one tensor (one copy to the
    device per size); failures carry their message."""
    images, errors = [], []
    for r in rows:
        t, err = _decode(r)
        images.append(t)
        errors.append(err)
    by_size: dict[tuple, list[int]] = {}
    for i, t in enumerate(images):
        if t is not None:
            by_size.setdefault((type(t), str(t.dtype), *t.shape), []).append(i)
    buckets = []
    for pos in by_size.values():
        first = images[pos[0]]
        if isinstance(first, np.ndarray):  # uint8 [n,H,W,3]: one copy, 4x smaller than float
            buckets.append((pos, torch.from_numpy(np.stack([images[i] for i in pos]))))
        else:  # float [n,3,H,W]
            buckets.append((pos, torch.stack([images[i] for i in pos])))
    return {
        "index": [r["index"] for r in rows],
        "image": [_describe_image(r) for r in rows],
        "prompt": [r["prompt"] for r in rows],
        "group": [r["group"] for r in rows],
        "buckets": buckets,
        "errors": errors,
    }


class _BatchStream(torch.utils.data.IterableDataset):
    """Every worker plans the same batches and decodes its share: batch k belongs to rank
    ``k % world`` and, within the rank, to worker ``(k // world) % workers``. The DataLoader takes
    workers round-robin, so batches come out in plan order."""

    def __init__(self, source, batch_size, done, group_by, group_counts, rank, world, chunk_rows):
        self.args = (source, batch_size, done, group_by, group_counts, chunk_rows)
        self.rank, self.world = rank, world

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        for k, rows in enumerate(_plan(*self.args)):
            if k % self.world != self.rank:
                continue
            if (k // self.world) % nw != wid:
                continue
            yield _make_batch(rows)


def _loader(stream: _BatchStream, workers: int, pin: bool) -> torch.utils.data.DataLoader:
    """The DataLoader over planned batches (each item is already a batch)."""
    return torch.utils.data.DataLoader(stream, batch_size=None, num_workers=workers, pin_memory=pin,
                                       prefetch_factor=4 if workers else None, persistent_workers=False)


# ----------------------------------------------------------------------------------------------
# shards


class _ShardWriter:
    """Buffers finished rows and writes them as parquet shards (atomically: temp file + rename)."""

    def __init__(self, parts: Path | None, rank: int, flush_rows: int, flush_seconds: float):
        self.parts, self.rank = parts, rank
        self.flush_rows, self.flush_seconds = flush_rows, flush_seconds
        self.buf: list[dict] = []
        self.memory: list[dict] = []  # when there is no `out`
        self.last = time.monotonic()
        self.tag = f"{int(time.time() * 1000):x}-{uuid.uuid4().hex[:6]}"
        self.seq = 0

    def add(self, rows: list[dict]) -> None:
        if self.parts is None:
            self.memory.extend(rows)
            return
        self.buf.extend(rows)
        if len(self.buf) >= self.flush_rows or time.monotonic() - self.last > self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        if self.parts is None or not self.buf:
            return
        import pandas as pd

        name = f"part-r{self.rank}-{self.tag}-{self.seq:06d}.parquet"
        tmp = self.parts / (name + ".tmp")
        pd.DataFrame(self.buf).to_parquet(tmp, index=False)
        os.replace(tmp, self.parts / name)
        self.seq += 1
        self.buf = []
        self.last = time.monotonic()


def _shards(parts: Path) -> list[Path]:
    return sorted(parts.glob("part-*.parquet"))


def _done_bitmap(parts: Path, n: int) -> np.ndarray:
    import pyarrow.parquet as pq

    done = np.zeros(n, dtype=bool)
    for f in _shards(parts):
        idx = pq.read_table(f, columns=["index"]).column("index").to_numpy()
        done[idx[idx < n]] = True
    return done


# ----------------------------------------------------------------------------------------------
# the scorer


class Scorer:
    """Score images with one or more rewards, batched, pipelined, resumable and data-parallel.

    Args:
        rewards: ``"a,b"``, a list of names, or ``{name: RewardModel}`` (already built models).
        batch_size: images per forward call (a group larger than this is still one call).
        device, dtype: where and in which precision rewards run (default: this process's GPU if
            any, else CPU; the rewards' own dtype). Half dtypes also enable autocast.
        num_workers: DataLoader processes decoding images (0: decode in this process).
        pretrained: False builds rewards with random weights (for tests; the table says so).
        weights: ``{reward: path | hub id | URL}`` overriding a reward's weight source.
        reward_config: ``{reward: {kwarg: value}}`` passed to `rewardbench.load_reward`.
        progress: show a progress bar (rank 0 only).
        grad: run with gradients enabled (default: ``torch.inference_mode()``).
        share_backbones: share backbone modules and image features between rewards that declare
            the same ``spec.backbone`` (False: each reward runs alone; for benchmarks and tests).

    Example:
        >>> import numpy as np, rewardbench
        >>> scorer = rewardbench.Scorer(["jpeg-compressibility"], batch_size=4, progress=False)
        >>> res = scorer.run([{"image": np.zeros((16, 16, 3), np.uint8)}])
        >>> round(float(res.table["jpeg-compressibility"][0]), 3) < 0
        True
    """

    def __init__(self, rewards: str | Sequence[str] | Mapping[str, RewardModel], batch_size: int = 16,
                 device: str | torch.device | None = None, dtype: torch.dtype | str | None = None,
                 num_workers: int = 2, pretrained: bool = True, weights: Mapping[str, Any] | None = None,
                 reward_config: Mapping[str, Mapping[str, Any]] | None = None, progress: bool = True,
                 grad: bool = False, share_backbones: bool = True, flush_rows: int = 1024,
                 flush_seconds: float = 30.0, chunk_rows: int = DEFAULT_CHUNK_ROWS):
        from .loading import parse_dtype
        from .registry import REGISTRY

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.num_workers = max(0, int(num_workers))
        self.progress = progress
        self.grad = grad
        self.flush_rows, self.flush_seconds, self.chunk_rows = flush_rows, flush_seconds, chunk_rows
        self.rank, self.world, self._dist_owner = _dist_setup()
        self.device = _process_device(device, self.world)
        self.dtype = parse_dtype(dtype)

        weights = dict(weights or {})
        reward_config = dict(reward_config or {})
        self.slots: list[_Slot] = []
        if isinstance(rewards, Mapping):
            for name, model in rewards.items():
                if not isinstance(model, RewardModel):
                    raise TypeError(f"rewards[{name!r}]: expected a RewardModel, got {type(model).__name__}")
                model = model.to(self.device) if model.device != self.device else model
                self.slots.append(_Slot(str(name), model, model.weights_used))
        else:
            names = [n.strip() for n in rewards.split(",")] if isinstance(rewards, str) else list(rewards)
            names = [n for n in names if n]
            if not names:
                raise ValueError("no reward given")
            canon = [REGISTRY.canonical(n) for n in names]  # UnknownRewardError with "did you mean"
            if len(set(canon)) != len(canon):
                raise ValueError(f"a reward is listed twice: {names}")
            by_canon = {REGISTRY.canonical(k): v for k, v in weights.items()}
            cfg_canon = {REGISTRY.canonical(k): v for k, v in reward_config.items()}
            for extra in set(by_canon) - set(canon):
                raise ValueError(f"weights given for {extra!r}, which is not among the rewards {canon}")
            from .loading import load_reward

            for n in canon:
                model = load_reward(n, device=self.device, dtype=self.dtype, weights=by_canon.get(n),
                                    pretrained=pretrained, **dict(cfg_canon.get(n, {})))
                self.slots.append(_Slot(n, model, model.weights_used))
        for s in self.slots:
            s.fingerprint = _param_fingerprint(s.model)
        self.clusters = self._share_backbones() if share_backbones else [[s] for s in self.slots]
        self._check_ranks_agree()

    # -- setup ----------------------------------------------------------------------------
    def _share_backbones(self) -> list[list[_Slot]]:
        """Slots grouped by identical backbone (same id, same weights). Members of a cluster get
        the leader's backbone module, so the weights sit in memory once."""
        clusters: list[list[_Slot]] = []
        keys: dict[tuple, list[_Slot]] = {}
        for s in self.slots:
            m = s.model
            if isinstance(m, BackboneReward) and m.spec.backbone and m.spec.granularity == "image":
                key = (m.spec.backbone, m.backbone_fingerprint(), str(m.device), m.dtype)
                if key in keys:
                    keys[key].append(s)
                    leader = keys[key][0].model
                    if m.backbone is not leader.backbone:
                        m.backbone = leader.backbone  # identical weights: keep one copy
                    continue
                keys[key] = [s]
                clusters.append(keys[key])
            else:
                clusters.append([s])
        return clusters

    def _check_ranks_agree(self) -> None:
        if self.world <= 1:
            return
        mine = [(s.name, s.fingerprint) for s in self.slots]
        allr = _gather(mine, self.world)
        if any(a != allr[0] for a in allr):
            raise RuntimeError("the processes built different reward weights (random weights without a common "
                               "seed?): set torch.manual_seed before building the Scorer, or load real weights")

    @property
    def reward_names(self) -> list[str]:
        return [s.name for s in self.slots]

    def fingerprint(self, source: Source, group_by: str | None) -> dict[str, Any]:
        """What must match for shards of an earlier run to be resumed."""
        return {
            "version": 1,
            "rewards": [{"name": s.name, "reward": s.spec.name, "weights": s.weights_used,
                         "params": s.fingerprint} for s in self.slots],
            "group_by": group_by,
            "input": source.identity(),
        }

    # -- run ------------------------------------------------------------------------------
    def run(self, source: Any, out: str | os.PathLike | None = None,
            prompts: str | os.PathLike | Sequence[str] | None = None, group_by: str | None = None,
            resume: bool = True) -> ScoreResult:
        """Score every image of ``source`` (a folder, a manifest, or a list of dicts with
        ``image``/``prompt``/``group``); write ``out`` (.parquet/.csv/.jsonl) when given.

        ``group_by="prompt"`` groups rows by prompt for group-granularity rewards (a ``group``
        column works too). With ``resume`` (default) an interrupted run with the same ``out``
        continues; ``resume=False`` starts over.
        """
        t0 = time.perf_counter()
        src = open_source(source, prompts)
        if group_by not in (None, "prompt", "group"):
            raise ValueError(f"group_by must be None, 'prompt' or 'group', got {group_by!r}")
        if group_by is None and src.has_groups:
            group_by = "group"
        n_total = len(src)
        out_path = Path(out) if out is not None else None
        if out_path is not None and out_path.suffix.lower() not in RESULT_EXTENSIONS:
            raise ValueError(f"--out {out_path}: use one of {', '.join(RESULT_EXTENSIONS)}")
        parts = self._prepare_parts(out_path, src, group_by, resume)
        done = _done_bitmap(parts, n_total) if parts is not None else None
        n_done = int(done.sum()) if done is not None else 0
        needs_groups = group_by is not None and any(s.spec.granularity == "group" for s in self.slots)
        group_counts = None
        if needs_groups:
            group_counts = Counter()
            for chunk in src.iter_chunks(self.chunk_rows):
                for r in chunk:
                    if done is None or not done[r["index"]]:
                        k = _group_key(r, group_by)
                        if k is not None:
                            group_counts[k] += 1
        self._group_mode = group_by if needs_groups else None
        text0 = self._text_stats()
        writer = _ShardWriter(parts, self.rank, self.flush_rows, self.flush_seconds)
        workers = 0 if (isinstance(src, ListSource) and src.in_memory) else self.num_workers
        stream = _BatchStream(src, self.batch_size, done, group_by if needs_groups else None, group_counts,
                              self.rank, self.world, self.chunk_rows)
        loader = _loader(stream, workers, pin=self.device.type == "cuda")
        bar = None
        if self.progress and self.rank == 0:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_total, initial=n_done, unit="img", desc="scoring", dynamic_ncols=True,
                       smoothing=0.1, file=sys.stderr)
        scored = 0
        backbone_seconds: dict[str, float] = {}
        grad_ctx = torch.enable_grad() if self.grad else torch.inference_mode()
        failure = None
        try:
            with grad_ctx:
                for batch in loader:
                    rows = self._score_batch(batch, needs_groups, backbone_seconds)
                    writer.add(rows)
                    scored += len(rows)
                    if bar is not None:
                        bar.update(len(rows) * self.world)
        except Exception as e:
            failure = e
        finally:
            writer.flush()
            if bar is not None:
                bar.close()
        self._raise_if_any_rank_failed(failure, "scoring")
        table = None
        if parts is not None:
            failure = None
            if self.rank == 0:
                try:
                    table = self._assemble(parts, n_total)
                    write_table(table, out_path)
                except Exception as e:
                    failure = e
            self._raise_if_any_rank_failed(failure, "writing the table")
        else:
            table = self._assemble_memory(writer.memory, n_total)
        seconds = time.perf_counter() - t0
        reward_seconds = {s.name: round(sum(_gather(s.seconds, self.world)) / self.world, 4) for s in self.slots}
        n_scored = sum(_gather(scored, self.world))
        if table is None:
            table = read_table(out_path)
        failed = int(table["error"].notna().sum())
        summary = {
            "rows": int(len(table)),
            "failed": failed,
            "scored_now": n_scored,
            "resumed": n_done,
            "seconds": round(seconds, 3),
            "images_per_s": round(n_scored / seconds, 2) if seconds > 0 else None,
            "reward_seconds": reward_seconds,
            "backbone_seconds": {k: round(v, 4) for k, v in backbone_seconds.items()},
            "text_encoder_calls": self._text_stats()[0] - text0[0],
            "text_prompts_encoded": self._text_stats()[1] - text0[1],
            "processes": self.world,
            "rewards": {s.name: s.weights_used for s in self.slots},
            "out": str(out_path) if out_path is not None else None,
        }
        return ScoreResult(summary, self.reward_names, out_path, table)

    def _raise_if_any_rank_failed(self, failure: Exception | None, stage: str) -> None:
        """A collective that every rank reaches, the failing one included (instead of a barrier a
        failed rank would never reach): if any rank failed, every rank raises. What the ranks had
        scored is already in the shards, so re-running the same command resumes."""
        msgs = _gather(None if failure is None else f"{type(failure).__name__}: {failure}", self.world)
        if failure is not None:
            raise failure
        bad = [(r, m) for r, m in enumerate(msgs) if m]
        if bad:
            who = "; ".join(f"rank {r}: {m}" for r, m in bad)
            raise RuntimeError(f"{stage} failed on another process ({who}); the rows already scored are saved "
                               "with --out, so re-running the same command resumes")

    def close(self) -> None:
        """Tear down the process group if this Scorer created it."""
        if self._dist_owner:
            import torch.distributed as dist

            dist.destroy_process_group()
            self._dist_owner = False

    def _text_calls(self) -> int:
        return self._text_stats()[0]

    def _text_stats(self) -> tuple[int, int]:
        """(encoder calls, prompts encoded) over every text cache of the rewards."""
        caches = {id(c): c for s in self.slots for c in _text_caches(s.model)}  # shared backbones: count once
        return sum(c.calls for c in caches.values()), sum(c.encoded for c in caches.values())

    def _prepare_parts(self, out: Path | None, src: Source, group_by, resume: bool) -> Path | None:
        if out is None:
            return None
        parts = out.with_name(out.name + ".parts")
        fp = self.fingerprint(src, group_by)
        error = None
        if self.rank == 0:
            if parts.exists() and not resume:
                shutil.rmtree(parts)
            parts.mkdir(parents=True, exist_ok=True)
            fp_file = parts / _FINGERPRINT
            if fp_file.exists() and _shards(parts):
                old = json.loads(fp_file.read_text())
                if old != json.loads(json.dumps(fp)):
                    error = (f"{out}: {parts} holds partial results of a different run "
                             f"({_diff(old, fp)}); not mixing them. Pass another --out, delete {parts}, "
                             "or start over with resume=False (CLI: --no-resume).")
            if error is None:
                tmp = fp_file.with_name(fp_file.name + ".tmp")
                tmp.write_text(json.dumps(fp, indent=1))
                os.replace(tmp, fp_file)
            for stale in parts.glob("*.tmp"):  # half-written shards of a killed run
                stale.unlink(missing_ok=True)
        error = _broadcast(error, self.world)
        if error:
            raise ResumeMismatchError(error)
        return parts

    # -- assembling ---------------------------------------------------------------------------
    def _columns(self, has_group: bool) -> list[str]:
        return ["image", "prompt", *(["group"] if has_group else []), *self.reward_names, "weights", "error"]

    def _assemble(self, parts: Path, n_total: int):
        import pandas as pd

        files = _shards(parts)
        df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame(
            columns=["index", *self._columns(False)])
        df = df.drop_duplicates("index", keep="last").sort_values("index")
        missing = n_total - len(df)
        if missing:
            raise RuntimeError(f"{parts}: {missing} of {n_total} rows have no result; re-run to complete them")
        return self._finish(df)

    def _assemble_memory(self, rows: list[dict], n_total: int):
        import pandas as pd

        gathered = _gather(rows, self.world)
        df = pd.DataFrame([r for part in gathered for r in part])
        if df.empty:
            df = pd.DataFrame(columns=["index", *self._columns(False)])
        df = df.drop_duplicates("index", keep="last").sort_values("index")
        return self._finish(df)

    def _finish(self, df):
        has_group = "group" in df.columns and df["group"].notna().any()
        df = df.reset_index(drop=True)
        cols = self._columns(has_group)
        for c in cols:
            if c not in df.columns:
                df[c] = None
        df["error"] = df["error"].astype(object).where(df["error"].notna(), None)
        for name in self.reward_names:  # rewards return float32; keep it (and short CSV numbers)
            df[name] = df[name].astype("float32")
        # per-row details of each reward ("<reward>.<key>") go after the scores
        details = [c for name in self.reward_names for c in sorted(df.columns) if c.startswith(f"{name}.")]
        at = cols.index("weights")
        return df[cols[:at] + details + cols[at:]]

    # -- scoring one batch --------------------------------------------------------------------
    def _autocast(self):
        if self.dtype in (torch.float16, torch.bfloat16):
            return torch.autocast(device_type=self.device.type, dtype=self.dtype)
        return contextlib.nullcontext()

    def _score_batch(self, batch: dict, needs_groups: bool, backbone_seconds: dict) -> list[dict]:
        n = len(batch["index"])
        prompts: list[str] = batch["prompt"]
        errors: list[list[str]] = [[e] if e else [] for e in batch["errors"]]
        decoded = [e is None for e in batch["errors"]]
        # pixels on the device, per size bucket: position -> (bucket, row in bucket)
        pix: list[tuple[list[int], torch.Tensor]] = []
        where: dict[int, tuple[int, int]] = {}
        for b, (pos, t) in enumerate(batch["buckets"]):
            t = t.to(self.device, non_blocking=True)
            if t.dtype == torch.uint8:  # [n,H,W,3] from files: channels first on the device, in one pass
                n_, h, w, c = t.shape
                t = torch.empty((n_, c, h, w), dtype=torch.float32, device=t.device).copy_(
                    t.permute(0, 3, 1, 2)).div_(255.0)
            else:
                t = t.float()
            pix.append((pos, t))
            for j, p in enumerate(pos):
                where[p] = (b, j)
        # group ids for group-granularity rewards
        gkeys = [None] * n
        if needs_groups:
            gkeys = [_group_key({"prompt": p, "group": g}, self._group_mode) for p, g in zip(prompts, batch["group"])]
        scores = _Sink(n, [s.name for s in self.slots])

        def eligible(s: _Slot) -> list[int]:
            ok = []
            for i in range(n):
                if not decoded[i]:
                    continue
                if s.spec.needs_prompt and not prompts[i].strip():
                    errors[i].append(f"{s.name}: empty prompt, but this reward needs one")
                    continue
                if s.spec.granularity == "group" and gkeys[i] is None:
                    errors[i].append(f"{s.name}: {GROUP_HINT}")
                    continue
                ok.append(i)
            return ok

        with self._autocast():
            for cluster in self.clusters:
                elig = {s.name: eligible(s) for s in cluster}
                if len(cluster) > 1:
                    self._score_cluster(cluster, elig, pix, where, prompts, gkeys, scores, errors, backbone_seconds)
                else:
                    s = cluster[0]
                    self._score_units(s, elig[s.name], pix, where, prompts, gkeys, scores, errors)
        rows = []
        weights_json = json.dumps({s.name: s.weights_used for s in self.slots})
        for i in range(n):
            row = {"index": int(batch["index"][i]), "image": batch["image"][i], "prompt": prompts[i]}
            g = batch["group"][i]
            row["group"] = None if g is None else str(g)
            for s in self.slots:
                v = scores[s.name][i]
                row[s.name] = None if math.isnan(v) else float(v)
                for key, col in scores.details[s.name].items():
                    row[f"{s.name}.{key}"] = col[i]
            row["weights"] = weights_json
            row["error"] = "; ".join(errors[i]) if errors[i] else None
            rows.append(row)
        return rows

    def _pixels(self, idx: list[int], pix, where) -> torch.Tensor | list[torch.Tensor]:
        """Pixels of rows ``idx``: one tensor when they share a size, else a list (the reward's
        forward then scores per size)."""
        buckets = {where[i][0] for i in idx}
        if len(buckets) == 1:
            b = buckets.pop()
            t = pix[b][1]
            rows = [where[i][1] for i in idx]
            if rows == list(range(t.shape[0])):  # the whole bucket, in order: no copy
                return t
            return t.index_select(0, torch.tensor(rows, device=t.device))
        return [pix[where[i][0]][1][where[i][1]] for i in idx]

    @staticmethod
    def _group_tensor(keys: list, device) -> torch.Tensor:
        ids: dict[Any, int] = {}
        return torch.tensor([ids.setdefault(k, len(ids)) for k in keys], dtype=torch.long, device=device)

    def _units(self, s: _Slot, idx: list[int], gkeys: list) -> list[list[int]]:
        """Retry units: one row each, or one whole group each for group rewards."""
        if s.spec.granularity != "group":
            return [[i] for i in idx]
        by: dict[Any, list[int]] = {}
        for i in idx:
            by.setdefault(gkeys[i], []).append(i)
        return list(by.values())

    def _call(self, s: _Slot, idx: list[int], pix, where, prompts, gkeys) -> RewardOutput:
        px = self._pixels(idx, pix, where)
        groups = self._group_tensor([gkeys[i] for i in idx], self.device) if s.spec.granularity == "group" else None
        return s.model(px, [prompts[i] for i in idx], groups)

    def _score_units(self, s: _Slot, idx: list[int], pix, where, prompts, gkeys, scores, errors) -> None:
        """Score rows ``idx`` in one call; if it raises, retry unit by unit so that one bad row
        (or group) does not fail the others."""
        if not idx:
            return
        t = time.perf_counter()
        try:
            scores.record(s.name, idx, self._call(s, idx, pix, where, prompts, gkeys))
        except Exception as batch_error:
            units = self._units(s, idx, gkeys)
            for unit in units:
                try:
                    scores.record(s.name, unit, self._call(s, unit, pix, where, prompts, gkeys))
                except Exception as e:
                    err = e if len(units) > 1 else batch_error
                    for i in unit:
                        errors[i].append(f"{s.name}: {type(err).__name__}: {err}")
        finally:
            s.seconds += time.perf_counter() - t
            s.calls += 1

    def _score_cluster(self, cluster: list[_Slot], elig, pix, where, prompts, gkeys, scores, errors,
                       backbone_seconds) -> None:
        """Rewards sharing a backbone: image features once for the union of their rows, then each
        reward's head. Any failure falls back to the reward's own forward (with per-row retry)."""
        union = sorted(set().union(*[set(v) for v in elig.values()]))
        if not union:
            return
        leader = cluster[0].model
        key = str(leader.spec.backbone)
        t = time.perf_counter()
        try:
            feats: dict[int, torch.Tensor] = {}
            by_bucket: dict[int, list[int]] = {}
            for i in union:
                by_bucket.setdefault(where[i][0], []).append(i)
            for b, idx in by_bucket.items():
                emb = leader.embed_images(self._pixels(idx, pix, where))
                for j, i in enumerate(idx):
                    feats[i] = emb[j]
        except Exception:
            feats = None
        backbone_seconds[key] = backbone_seconds.get(key, 0.0) + time.perf_counter() - t
        for s in cluster:
            idx = elig[s.name]
            if not idx:
                continue
            if feats is None:
                self._score_units(s, idx, pix, where, prompts, gkeys, scores, errors)
                continue
            t = time.perf_counter()
            try:
                ps = s.model.check_prompts([prompts[i] for i in idx], len(idx))
                out = s.model._check_output(s.model.score_embeddings(torch.stack([feats[i] for i in idx]), ps, None),
                                            len(idx))
                scores.record(s.name, idx, out)
                s.seconds += time.perf_counter() - t
                s.calls += 1
            except Exception:
                s.seconds += time.perf_counter() - t
                self._score_units(s, idx, pix, where, prompts, gkeys, scores, errors)


class _Sink:
    """Scores and per-row details of one batch, filled reward by reward.

    Details that hold one value per row (a tensor ``[B]`` or a list of length B) become columns
    ``<reward>.<key>`` of the results table: numbers and strings as they are, anything else
    (lists, dicts, tensors per row) as JSON, so a fairness audit keeps face counts and notes.
    """

    def __init__(self, n: int, names: list[str]):
        self.n = n
        self.scores = {name: np.full(n, np.nan) for name in names}
        self.details: dict[str, dict[str, list]] = {name: {} for name in names}

    def __getitem__(self, name: str) -> np.ndarray:
        return self.scores[name]

    def record(self, name: str, idx: list[int], out: RewardOutput) -> None:
        self.scores[name][idx] = out.scores.detach().float().cpu().numpy()
        for key, values in out.details.items():
            if isinstance(values, torch.Tensor):
                values = values.detach().float().cpu()
                if values.ndim != 1 or values.shape[0] != len(idx):
                    continue
                values = values.tolist()
            elif not isinstance(values, (list, tuple)) or len(values) != len(idx):
                continue
            col = self.details[name].setdefault(key, [None] * self.n)
            for i, v in zip(idx, values):
                col[i] = _cell(v)


def _cell(v: Any) -> Any:
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v)
    if isinstance(v, torch.Tensor) and v.numel() == 1:
        return float(v)
    if isinstance(v, torch.Tensor):
        v = v.tolist()
    return json.dumps(v, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))


def _diff(old: dict, new: dict) -> str:
    o = {r["name"]: r for r in old.get("rewards", [])}
    n = {r["name"]: r for r in new.get("rewards", [])}
    if set(o) != set(n):
        return f"rewards were {sorted(o)}, now {sorted(n)}"
    for k in n:
        if o[k].get("weights") != n[k].get("weights"):
            return f"{k}: weights were {o[k].get('weights')!r}, now {n[k].get('weights')!r}"
        if o[k].get("params") != n[k].get("params"):
            return f"{k}: different model parameters (e.g. another random init)"
    if old.get("input") != new.get("input"):
        return f"input was {old.get('input')}, now {new.get('input')}"
    if old.get("group_by") != new.get("group_by"):
        return f"group_by was {old.get('group_by')!r}, now {new.get('group_by')!r}"
    return "different settings"
