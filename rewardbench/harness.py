"""The scoring harness: `Scorer` runs rewards over a folder, a manifest or a list of images.

Its parts: `batching` (planning and decoding, in worker processes), `engine` (one batch through every
reward), `shards` (resumable results), `results` (tables), `distributed` (data-parallel helpers).

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

import os
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from . import distributed
from .batching import BatchPlan, BatchStream, group_key, make_loader
from .data import DEFAULT_CHUNK_ROWS, ListSource, Source, open_source
from .engine import GROUP_HINT, BatchEngine, RewardSlot, text_caches
from .model import BackboneReward, RewardModel, param_fingerprint
from .results import RESULT_EXTENSIONS, ScoreResult, read_table, write_table
from .shards import ResumeMismatchError, ShardWriter, done_bitmap, list_shards, prepare_parts

__all__ = ["Scorer", "ScoreResult", "ResumeMismatchError", "RESULT_EXTENSIONS", "GROUP_HINT", "write_table",
           "read_table"]


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
        self.rank, self.world, self._dist_owner = distributed.setup()
        self.device = distributed.process_device(device, self.world)
        self.dtype = parse_dtype(dtype)

        weights = dict(weights or {})
        reward_config = dict(reward_config or {})
        self.slots: list[RewardSlot] = []
        if isinstance(rewards, Mapping):
            for name, model in rewards.items():
                if not isinstance(model, RewardModel):
                    raise TypeError(f"rewards[{name!r}]: expected a RewardModel, got {type(model).__name__}")
                model = model.to(self.device) if model.device != self.device else model
                self.slots.append(RewardSlot(str(name), model, model.weights_used))
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
                self.slots.append(RewardSlot(n, model, model.weights_used))
        for s in self.slots:
            s.fingerprint = param_fingerprint(s.model)
        self.clusters = self._share_backbones() if share_backbones else [[s] for s in self.slots]
        self._check_ranks_agree()

    # -- setup ----------------------------------------------------------------------------
    def _share_backbones(self) -> list[list[RewardSlot]]:
        """Slots grouped by identical backbone (same id, same weights). Members of a cluster get
        the leader's backbone module, so the weights sit in memory once."""
        clusters: list[list[RewardSlot]] = []
        keys: dict[tuple, list[RewardSlot]] = {}
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
        allr = distributed.gather(mine, self.world)
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
                         "params": list(s.fingerprint)} for s in self.slots],
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
        parts = (prepare_parts(out_path, self.fingerprint(src, group_by), resume, self.rank, self.world)
                 if out_path is not None else None)
        done = done_bitmap(parts, n_total) if parts is not None else None
        n_done = int(done.sum()) if done is not None else 0
        needs_groups = group_by is not None and any(s.spec.granularity == "group" for s in self.slots)
        group_counts = None
        if needs_groups:
            group_counts = Counter()
            for chunk in src.iter_chunks(self.chunk_rows):
                for r in chunk:
                    if done is None or not done[r["index"]]:
                        k = group_key(r, group_by)
                        if k is not None:
                            group_counts[k] += 1
        engine = BatchEngine(self.slots, self.clusters, self.device, self.dtype, group_by if needs_groups else None)
        text0 = self._text_stats()
        writer = ShardWriter(parts, self.rank, self.flush_rows, self.flush_seconds)
        workers = 0 if (isinstance(src, ListSource) and src.in_memory) else self.num_workers
        plan = BatchPlan(src, self.batch_size, done, group_by if needs_groups else None, group_counts, self.chunk_rows)
        loader = make_loader(BatchStream(plan, self.rank, self.world), workers, pin=self.device.type == "cuda")
        bar = None
        if self.progress and self.rank == 0:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_total, initial=n_done, unit="img", desc="scoring", dynamic_ncols=True,
                       smoothing=0.1, file=sys.stderr)
        scored = 0
        grad_ctx = torch.enable_grad() if self.grad else torch.inference_mode()
        failure = None
        try:
            with grad_ctx:
                for batch in loader:
                    rows = self._score_batch(engine, batch)
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
        reward_seconds = {s.name: round(sum(distributed.gather(s.seconds, self.world)) / self.world, 4)
                          for s in self.slots}
        n_scored = sum(distributed.gather(scored, self.world))
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
            "backbone_seconds": {k: round(v, 4) for k, v in engine.backbone_seconds.items()},
            "text_encoder_calls": self._text_stats()[0] - text0[0],
            "text_prompts_encoded": self._text_stats()[1] - text0[1],
            "processes": self.world,
            "rewards": {s.name: s.weights_used for s in self.slots},
            "out": str(out_path) if out_path is not None else None,
        }
        return ScoreResult(summary, self.reward_names, out_path, table)

    def _score_batch(self, engine: BatchEngine, batch: dict) -> list[dict]:
        """One planned batch through every reward (a seam for profiling and fault-injection tests)."""
        return engine.score_batch(batch)

    def _raise_if_any_rank_failed(self, failure: Exception | None, stage: str) -> None:
        """A collective that every rank reaches, the failing one included (instead of a barrier a
        failed rank would never reach): if any rank failed, every rank raises. What the ranks had
        scored is already in the shards, so re-running the same command resumes."""
        msgs = distributed.gather(None if failure is None else f"{type(failure).__name__}: {failure}", self.world)
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
        caches = {id(c): c for s in self.slots for c in text_caches(s.model)}  # shared backbones: count once
        return sum(c.calls for c in caches.values()), sum(c.encoded for c in caches.values())

    # -- assembling ---------------------------------------------------------------------------
    def _columns(self, has_group: bool) -> list[str]:
        return ["image", "prompt", *(["group"] if has_group else []), *self.reward_names, "weights", "error"]

    def _assemble(self, parts: Path, n_total: int):
        import pandas as pd

        files = list_shards(parts)
        df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame(
            columns=["index", *self._columns(False)])
        df = df.drop_duplicates("index", keep="last").sort_values("index")
        missing = n_total - len(df)
        if missing:
            raise RuntimeError(f"{parts}: {missing} of {n_total} rows have no result; re-run to complete them")
        return self._finish(df)

    def _assemble_memory(self, rows: list[dict], n_total: int):
        import pandas as pd

        gathered = distributed.gather(rows, self.world)
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
