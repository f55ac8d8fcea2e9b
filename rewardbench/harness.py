"""The scoring harness: `Scorer` runs rewards over a folder, a manifest or a list of images.

Its parts: `batching` (planning and decoding, in worker processes), `engine` (one batch through every
reward), `shards` (resumable results), `results` (tables), `distributed` (data-parallel helpers).

What it does for speed and robustness:
  * images are decoded and validated in DataLoader worker processes while the device computes
    (uint8 tensors travel between processes; pinned memory and non-blocking copies on a GPU);
  * rewards run under ``torch.inference_mode()`` (the harness is for inference; for gradients, call the
    reward itself) and autocast to ``dtype``;
  * rewards that subclass `rewardbench.BackboneReward` with the same ``spec.backbone`` and the same
    backbone weights share ONE backbone module, and its image features are computed once per image;
    rewards that keep a `rewardbench.TextFeatureCache` encode each unique prompt once;
  * the input streams in chunks; finished rows go to parquet shards beside ``out`` so a killed run
    resumes where it stopped (one row per input, none lost, none twice); a run fingerprint (rewards,
    their build config and weights, the input's content, the grouping) refuses to mix results of
    another run; failed rows are retried by a re-run; a finished run leaves one results file;
    ``OUT.lock`` keeps a second run off the same ``out`` (see `rewardbench.outputs`);
  * the input's own columns pass through to the table; group rewards group rows by any column(s)
    (``group_by="prompt,model"``) and get a per-group table (`ScoreResult.groups`);
  * a run that cannot work as asked is refused before any image is scored (`rewardbench.preflight`);
  * a bad image, an empty prompt or a reward that raises becomes a per-row ``error``, not a crash;
  * each reward's weights (`rewardbench.provenance.Provenance` values) are recorded once per run:
    `ScoreResult.provenance`, the summary, and a parquet table's metadata (`rewardbench.results.table_provenance`);
  * under ``torchrun``/``accelerate launch`` batches are spread over the processes (NCCL on GPUs,
    gloo on CPUs) and rank 0 writes the same table as a single process would.

Example:
    >>> import numpy as np, rewardbench
    >>> items = [{"image": np.full((32, 32, 3), v, np.uint8), "prompt": "grey"} for v in (0, 128)]
    >>> res = rewardbench.Scorer("jpeg-compressibility", progress=False).run(items)
    >>> res.n_rows, res.n_failed, list(res.table.columns)
    (2, 0, ['image', 'prompt', 'jpeg-compressibility', 'jpeg-compressibility.jpeg_kb', 'error'])
    >>> res.provenance["jpeg-compressibility"]
    [Provenance(kind='none', location='', digest=None, part='', note='')]
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import distributed
from .batching import DEFAULT_BATCH_PIXELS, BatchPlan, make_loader
from .data import DEFAULT_CHUNK_ROWS, ListSource, Source
from .engine import GROUP_HINT, BatchEngine, RewardSlot, flag_dtype, text_caches
from .groups import GroupBy, group_key, group_table, parse_group_by, score_stats
from .model import BackboneReward, RewardModel, param_fingerprint
from .outputs import (
    OutputExistsError,
    OutputLockedError,
    OutputState,
    RunLock,
    finish_output,
    prepare_output,
)
from .preflight import RunPlan, UsageError, check_device, check_reward_options, plan_run
from .results import RESULT_EXTENSIONS, ScoreResult, read_table, write_table
from .shards import ROW, ResumeMismatchError, ShardWriter, done_bitmap, list_shards, shard_row_key

__all__ = ["Scorer", "ScoreResult", "ResumeMismatchError", "OutputExistsError", "OutputLockedError", "UsageError",
           "RunPlan", "plan_run", "RESULT_EXTENSIONS", "GROUP_HINT", "write_table", "read_table"]
FINGERPRINT_VERSION = 3  # 3: each reward's weights are provenance values


class Scorer:
    """Score images with one or more rewards, batched, pipelined, resumable and data-parallel.

    Args:
        rewards: ``"a,b"``, a list of names, or ``{name: RewardModel}`` (already built models).
        batch_size: images per forward call (a group larger than this is still one call).
        max_batch_pixels: at most this many pixels (width x height, summed) in one batch; a larger image or
            group is a batch of its own (default `rewardbench.batching.DEFAULT_BATCH_PIXELS`, the per-image
            cap: a batch takes no more memory than the largest image that can be decoded; None: no bound).
        device: where rewards run (default: this process's GPU if any, else CPU).
        dtype: the rewards' precision (default: their own). Half dtypes also enable autocast.
        num_workers: DataLoader processes decoding images (0: decode in this process).
        pretrained: False builds rewards with random weights (for tests; the table says so).
        weights: ``{reward: path | hub id | URL}`` overriding a reward's weight source.
        reward_config: ``{reward: {kwarg: value}}`` passed to `rewardbench.load_reward`.
        progress: show a progress bar (rank 0 only).
        share_backbones: share backbone modules and image features between rewards that declare
            the same ``spec.backbone`` (False: each reward runs alone; for benchmarks and tests).

    An unknown device, a ``reward_config`` key a reward does not take, or weights/config for a reward
    not in the run raise `rewardbench.preflight.UsageError` before any model is built.

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
                 share_backbones: bool = True, flush_rows: int = 1024,
                 flush_seconds: float = 30.0, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                 max_batch_pixels: int | None = DEFAULT_BATCH_PIXELS):
        from .loading import parse_dtype
        from .registry import REGISTRY

        if batch_size < 1:
            raise UsageError(f"batch_size must be >= 1, got {batch_size}")
        if max_batch_pixels is not None and max_batch_pixels < 1:
            raise UsageError(f"max_batch_pixels must be >= 1 (or None: no bound), got {max_batch_pixels}")
        self.max_batch_pixels = None if max_batch_pixels is None else int(max_batch_pixels)
        check_device(device)
        self.batch_size = int(batch_size)
        self.num_workers = max(0, int(num_workers))
        self.progress = progress
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
                self.slots.append(RewardSlot(str(name), model, tuple(model.provenance())))
        else:
            names = [n.strip() for n in rewards.split(",")] if isinstance(rewards, str) else list(rewards)
            # UnknownRewardError with "did you mean"; UsageError for options a reward does not take
            canon = check_reward_options([n for n in names if n], weights, reward_config)
            by_canon = {REGISTRY.canonical(k): v for k, v in weights.items()}
            cfg_canon = {REGISTRY.canonical(k): dict(v) for k, v in reward_config.items()}
            from .loading import load_reward

            for n in canon:
                model = load_reward(n, device=self.device, dtype=self.dtype, weights=by_canon.get(n),
                                    pretrained=pretrained, **cfg_canon.get(n, {}))
                build = {"config": cfg_canon.get(n, {}), "pretrained": bool(pretrained),
                         "weights_given": None if by_canon.get(n) is None else str(by_canon[n])}
                self.slots.append(RewardSlot(n, model, tuple(model.provenance()), build=build))
        from .weights import weights_stamp

        for s in self.slots:
            served = getattr(s.model, "served_fingerprint", None)  # a remote reward: the served model's weights
            s.fingerprint = tuple(served()) if callable(served) else param_fingerprint(s.model)
            s.build = {"class": f"{type(s.model).__module__}.{type(s.model).__qualname__}", **s.build,
                       "dtype": str(s.model.dtype), "files": weights_stamp(s.provenance)}
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
            if isinstance(m, BackboneReward) and m.spec.backbone:  # image or group rewards (fairness + nsfw share)
                key = (m.spec.backbone, m.backbone_fingerprint(), str(m.device), m.dtype)
                if key in keys:
                    keys[key].append(s)
                    leader = keys[key][0].model
                    if m.backbone is not leader.backbone:
                        m.share_backbone(leader)  # identical weights: keep one copy
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

    def fingerprint(self, source: Source, group_by: GroupBy | str | None, content_hash: bool = False) -> dict[str, Any]:
        """What must match for shards (or a finished table) of an earlier run to be resumed: each reward's
        build (class, config, dtype, random or pretrained, weights given, sources with their file size and
        mtime), its parameters' checksum, the input's content (`rewardbench.data.Source.identity`: every image
        file's size and mtime, or with ``content_hash`` its bytes' SHA-256) and the grouping."""
        gb = parse_group_by(group_by)
        fp = {
            "version": FINGERPRINT_VERSION,
            "rewards": [{"name": s.name, "reward": s.spec.name, "weights": [p.as_dict() for p in s.provenance],
                         "build": s.build,
                         "params": list(s.fingerprint)} for s in self.slots],
            "group_by": list(gb) if gb else None,
            "input": source.identity(content_hash=True) if content_hash else source.identity(),
        }
        return json.loads(json.dumps(fp, default=repr))  # config values of any type, compared as JSON

    # -- run ------------------------------------------------------------------------------
    def run(self, source: Any, out: str | os.PathLike | None = None,
            prompts: str | os.PathLike | Sequence[str] | None = None, group_by: str | Sequence[str] | None = None,
            resume: bool = True, *, overwrite: bool = False, retry_failed: bool = True,
            group_table: str | os.PathLike | None = None, content_hash: bool = False,
            allow_small_groups: bool | None = None) -> ScoreResult:
        """Score every image of ``source`` (a folder, a manifest, or a list of dicts with
        ``image``/``prompt``/``group`` and any other keys); write ``out`` (.parquet/.csv/.jsonl) when given.

        ``group_by`` names the column(s) whose values form a group for group-granularity rewards:
        ``"prompt"``, ``"prompt,model"``, any input column (default: the input's ``group`` column if
        it has one). The input's other columns pass through to the table. With ``resume`` (default)
        an interrupted run with the same ``out`` continues, and rows that failed are scored again
        (``retry_failed=False`` keeps them); ``resume=False`` starts over, but never replaces a finished
        table unless ``overwrite``. ``group_table`` writes the per-group table (`ScoreResult.groups`).
        Whether an earlier run is the same is decided by `fingerprint`: an image file rewritten since (its size or
        modification time changed) makes it another run; ``content_hash`` compares the files' bytes instead
        (every file read once more; for inputs whose files may change without their times).

        A group reward measures groups of at least ``spec.min_group_size`` images: when every group is smaller the
        run is refused (`UsageError`) unless ``allow_small_groups``; smaller groups are scored and marked
        (``<reward>.group_too_small``, a note) and left out of the summary's statistics, or, with
        ``allow_small_groups``, counted in them.

        A run that cannot work as asked raises `UsageError` before any image is scored; that includes
        an ``out`` or ``group_table`` that cannot be written (a missing folder is created). The checks are
        `rewardbench.preflight.plan_run`'s: ``source`` may also be a `RunPlan` it made for this Scorer's
        rewards (then ``out``, ``prompts``, ``group_by`` and ``group_table`` come from the plan, and the
        plan's maker shows its notes); otherwise the notes are issued as warnings.
        """
        t0 = time.perf_counter()
        if isinstance(source, RunPlan):
            plan = source
            if any(v is not None for v in (out, prompts, group_by, group_table, allow_small_groups)):
                raise UsageError("run(plan): out, prompts, group_by, group_table and allow_small_groups come from "
                                 "the plan")
            if plan.names != tuple(self.reward_names):
                raise UsageError(f"the plan is for the rewards {', '.join(plan.names)}; this Scorer runs "
                                 f"{', '.join(self.reward_names)}")
        else:
            plan = plan_run({s.name: s.spec for s in self.slots}, source, prompts=prompts, group_by=group_by, out=out,
                            group_table=group_table, allow_small_groups=bool(allow_small_groups))
            if self.rank == 0:
                for note in plan.notes:
                    warnings.warn(note, UserWarning, stacklevel=2)
        lock = RunLock(plan.out) if plan.out is not None and self.rank == 0 else None
        error = None
        if lock is not None:
            try:
                lock.acquire()
            except OutputLockedError as e:
                error = str(e)
        error = distributed.broadcast(error, self.world)
        if error:
            raise OutputLockedError(error)
        try:
            return self._run(plan.source, plan.group_by, plan.out, plan.group_table, resume, overwrite, retry_failed,
                             t0, list(plan.notes), content_hash, plan.allow_small_groups)
        finally:
            if lock is not None:
                lock.release()

    def _todo(self, src: Source, done: np.ndarray | None,
              gb: GroupBy | None) -> tuple[np.ndarray | None, Counter | None]:
        """Rows left to score and, for group rewards, rows per group: a group with any row left is scored
        again whole (a group reward is a value of the whole group)."""
        if gb is None:
            return done, None
        if done is not None and done.any():
            redo = {k for chunk in src.iter_chunks(self.chunk_rows) for r in chunk
                    if not done[r["index"]] and (k := group_key(r, gb)) is not None}
            if redo:
                for chunk in src.iter_chunks(self.chunk_rows):
                    for r in chunk:
                        if done[r["index"]] and group_key(r, gb) in redo:
                            done[r["index"]] = False
        counts: Counter = Counter()
        for chunk in src.iter_chunks(self.chunk_rows):
            for r in chunk:
                if done is None or not done[r["index"]]:
                    k = group_key(r, gb)
                    if k is not None:
                        counts[k] += 1
        return done, counts

    def _run(self, src: Source, gb: GroupBy | None, out_path: Path | None, gt_path: Path | None, resume: bool,
             overwrite: bool, retry_failed: bool, t0: float, notes: list[str],
             content_hash: bool = False, count_small: bool = False) -> ScoreResult:
        n_total = len(src)
        fp = self.fingerprint(src, gb, content_hash)
        state: OutputState | None = None
        if out_path is not None:
            state = prepare_output(out_path, fp, resume=resume, overwrite=overwrite, retry_failed=retry_failed,
                                   rank=self.rank, world=self.world)
        engine = BatchEngine(self.slots, self.clusters, self.device, self.dtype, gb)
        text0 = self._text_stats()
        n_done = processed = ok_now = 0
        table = None
        if state is not None and state.complete:  # this run's finished table: nothing to do
            n_done = n_total
        else:
            parts = state.parts if state is not None else None
            done = done_bitmap(parts, n_total, retry_failed) if parts is not None else None
            done, group_counts = self._todo(src, done, gb)
            n_done = int(done.sum()) if done is not None else 0
            writer = ShardWriter(parts, self.rank, self.flush_rows, self.flush_seconds,
                                 state.attempt if state is not None else 1)
            processed, ok_now = self._score_all(src, engine, writer, done, gb, group_counts, n_total, n_done)
            if parts is not None:
                failure = None
                if self.rank == 0:
                    try:
                        table = self._assemble(parts, n_total, src)
                        write_table(table, out_path, metadata=fp)
                    except Exception as e:
                        failure = e
                self._raise_if_any_rank_failed(failure, "writing the table")
            else:
                table = self._assemble_memory(writer.memory, n_total, src)
        if table is None:
            table = read_table(out_path)
        return self._result(table, gb, out_path, gt_path, state, retry_failed, t0, text0, engine,
                            n_done, processed, ok_now, notes, count_small)

    def _score_all(self, src, engine, writer, done, gb, group_counts, n_total, n_done) -> tuple[int, int]:
        """Every planned batch through the engine into ``writer``: (rows processed, rows without error)."""
        workers = 0 if (isinstance(src, ListSource) and src.in_memory) else self.num_workers
        plan = BatchPlan(src, self.batch_size, done, gb, group_counts, self.chunk_rows, self.max_batch_pixels)
        loader = make_loader(plan, workers, pin=self.device.type == "cuda", rank=self.rank, world=self.world)
        bar = None
        if self.progress and self.rank == 0:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_total, initial=n_done, unit="img", desc="scoring", dynamic_ncols=True,
                       smoothing=0.1, file=sys.stderr)
        processed = ok = 0
        failure = None
        try:
            with torch.inference_mode():
                for batch in loader:
                    rows = self._score_batch(engine, batch)
                    writer.add(rows)
                    processed += len(rows)
                    ok += sum(r["error"] is None for r in rows)
                    if bar is not None:
                        bar.update(len(rows) * self.world)
        except Exception as e:
            failure = e
        finally:
            writer.flush()
            if bar is not None:
                bar.close()
        self._raise_if_any_rank_failed(failure, "scoring")
        return sum(distributed.gather(processed, self.world)), sum(distributed.gather(ok, self.world))

    def _result(self, table, gb, out_path, gt_path, state, retry_failed, t0, text0, engine, n_done, processed,
                ok_now, notes, count_small=False) -> ScoreResult:
        group_names = [s.name for s in self.slots if s.spec.granularity == "group"]
        groups = group_table(table, gb, group_names, {s.name: s.spec for s in self.slots}) \
            if gb and group_names else None
        failed = int(table["error"].notna().sum())
        keep_parts = state is not None and failed > 0 and retry_failed and not state.complete
        if self.rank == 0:
            if gt_path is not None:
                write_table(groups, gt_path)
            if state is not None:
                finish_output(out_path, state.parts, keep_parts)
        seconds = time.perf_counter() - t0
        reward_seconds = {s.name: round(sum(distributed.gather(s.seconds, self.world)) / self.world, 4)
                          for s in self.slots}
        summary = {
            "rows": int(len(table)),
            "scored": int(len(table)) - failed,  # rows without an error
            "failed": failed,
            "processed_now": processed,
            "scored_now": ok_now,
            "resumed": n_done,
            "groups": None if groups is None else int(len(groups)),
            "group_by": list(gb) if gb else None,
            "scores": score_stats(table, groups, self.reward_names, {s.name: s.spec.granularity for s in self.slots},
                                  count_small=count_small),  # groups too small: left out, unless allowed
            "seconds": round(seconds, 3),
            "images_per_s": round(processed / seconds, 2) if seconds > 0 else None,
            "reward_seconds": reward_seconds,
            "backbone_seconds": {k: round(v, 4) for k, v in engine.backbone_seconds.items()},
            "text_encoder_calls": self._text_stats()[0] - text0[0],
            "text_prompts_encoded": self._text_stats()[1] - text0[1],
            "processes": self.world,
            "rewards": {s.name: s.weights_used for s in self.slots},  # the weights each reward ran with, as text
            "provenance": {s.name: [p.as_dict() for p in s.provenance] for s in self.slots},  # ... as values
            "warnings": list(notes),
            "out": str(out_path) if out_path is not None else None,
            "group_table": str(gt_path) if gt_path is not None else None,
            "parts_kept": str(state.parts) if keep_parts else None,  # failed rows to retry by re-running
        }
        return ScoreResult(summary, self.reward_names, out_path, table, groups=groups, group_by=gb)

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

    def _text_stats(self) -> tuple[int, int]:
        """(encoder calls, prompts encoded) over every text cache of the rewards."""
        caches = {id(c): c for s in self.slots for c in text_caches(s.model)}  # shared backbones: count once
        return sum(c.calls for c in caches.values()), sum(c.encoded for c in caches.values())

    # -- assembling ---------------------------------------------------------------------------
    def _columns(self, has_group: bool, extras: Sequence[str] = ()) -> list[str]:
        return ["image", "prompt", *(["group"] if has_group else []), *extras, *self.reward_names, "error"]

    def _assemble(self, parts: Path, n_total: int, src: Source):
        import pandas as pd

        files = list_shards(parts)
        frames = [part.rename(columns={shard_row_key(part.columns): ROW}) for part in map(pd.read_parquet, files)]
        df = pd.concat(frames, ignore_index=True) if files else pd.DataFrame(columns=[ROW, *self._columns(False)])
        df = df.drop_duplicates(ROW, keep="last").sort_values(ROW)  # later attempts win
        missing = n_total - len(df)
        if missing:
            raise RuntimeError(f"{parts}: {missing} of {n_total} rows have no result; re-run to complete them")
        return self._finish(df, src)

    def _assemble_memory(self, rows: list[dict], n_total: int, src: Source):
        import pandas as pd

        gathered = distributed.gather(rows, self.world)
        df = pd.DataFrame([r for part in gathered for r in part])
        if df.empty:
            df = pd.DataFrame(columns=[ROW, *self._columns(False)])
        df = df.drop_duplicates(ROW, keep="last").sort_values(ROW)
        return self._finish(df, src)

    def _finish(self, df, src: Source):
        has_group = "group" in df.columns and df["group"].notna().any()
        df = df.reset_index(drop=True)
        cols = self._columns(has_group, src.extra_columns)
        for c in cols:
            if c not in df.columns:
                df[c] = None
        df["error"] = df["error"].astype(object).where(df["error"].notna(), None)
        for name in self.reward_names:  # rewards return float32; keep it (and short CSV numbers)
            df[name] = df[name].astype("float32")
        # per-row details of each reward ("<reward>.<key>") go after the scores
        details = [c for name in self.reward_names for c in sorted(df.columns) if c.startswith(f"{name}.")]
        flags = {c: flag_dtype(df[c]) for c in details if df[c].dtype == object}  # flags stay flags
        df = df.astype({c: t for c, t in flags.items() if t is not None})
        at = cols.index("error")
        return df[cols[:at] + details + cols[at:]]
