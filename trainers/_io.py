"""Trainer plumbing kept out of the loop: prompt sources, reward resolution, the pretraining-data
loader, checkpoints (exact resume) and logging (CSV, TensorBoard, plots, sample grids)."""

from __future__ import annotations

import csv
import importlib
import json
import os
import random
import shutil
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

RewardFn = Callable[[torch.Tensor, list, torch.Tensor], torch.Tensor]  # (images, prompts, groups) -> [B] float


# --- prompts ------------------------------------------------------------------------------------
def load_prompts(source: Any, suite_paths: Mapping[str, str] | None = None) -> list[str]:
    """A task's prompts: a list, a text file (one a line; .jsonl/.csv/.tsv with a ``prompt`` column),
    a parquet file or ``hf://datasets/...parquet`` URL with a ``prompt`` column (duplicates dropped),
    ``"suite:NAME"`` or ``{"suite": NAME, "path": ..., <loader options>}`` (`rewardbench.suites.load_suite`;
    ``suite_paths`` gives a suite its local file when the mapping names none)."""
    if isinstance(source, str) and source.startswith("suite:"):
        source = {"suite": source[len("suite:"):]}
    if isinstance(source, Mapping):
        from rewardbench.suites import load_suite  # lazy: only recipes that name a suite need it

        options = dict(source)
        name = options.pop("suite", None)
        if not name:
            raise ValueError(f"prompts: a mapping needs a 'suite' key, got {dict(source)}")
        if options.get("path") is None and (suite_paths or {}).get(name):
            options["path"] = suite_paths[name]
        prompts = _prompts_of(load_suite(name, **options))
    elif isinstance(source, (list, tuple)):
        prompts = [str(p) for p in source]
    elif isinstance(source, str) and (source.startswith("hf://") or source.endswith(".parquet")):
        prompts = _parquet_prompts(source)
    elif isinstance(source, (str, os.PathLike)):
        p = Path(source).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"prompt file {p} not found (or use a list, or 'suite:NAME')")
        if p.suffix == ".jsonl":
            prompts = [json.loads(line)["prompt"] for line in p.read_text().splitlines() if line.strip()]
        elif p.suffix in (".csv", ".tsv"):
            import pandas as pd

            df = pd.read_csv(p, sep="\t" if p.suffix == ".tsv" else ",")
            col = next((c for c in df.columns if c.lower() == "prompt"), None)
            if col is None:
                raise ValueError(f"{p}: no 'prompt' column (columns: {list(df.columns)})")
            prompts = df[col].astype(str).tolist()
        else:
            prompts = [line.strip() for line in p.read_text().splitlines() if line.strip()]
    else:
        raise TypeError(f"prompts: expected a list, a file path, 'suite:NAME' or {{suite: NAME, ...}}, got "
                        f"{type(source).__name__}")
    if not prompts:
        raise ValueError(f"prompt source {source!r} is empty")
    return prompts


def _parquet_prompts(source: str) -> list[str]:
    import pandas as pd

    try:
        df = pd.read_parquet(source, columns=["prompt"])
    except (OSError, ValueError, ImportError) as e:
        where = "the Hugging Face hub (unreachable offline?)" if source.startswith("hf://") else "disk"
        raise OSError(f"cannot read prompts from {source} on {where}: {e}. Download the file and point the task's "
                      "prompts at the local copy.") from None
    return list(dict.fromkeys(p.strip() for p in df["prompt"].dropna().astype(str) if p.strip()))


def check_eval_overlap(task: str, prompts: Sequence[str], suite_paths: Mapping[str, str] | None = None,
                       drop: bool = False, skip: Collection[str] = ()) -> tuple[list[str], dict[str, int], list[str]]:
    """A task's training prompts checked against every held-out evaluation suite (`rewardbench.suites.splits`)
    but those in ``skip`` (found out of reach for an earlier task: not tried again): ValueError when they share
    prompts, or with ``drop`` those prompts removed. Returns ``(prompts kept, {suite: prompts dropped}, suites
    that could not be loaded to check)``."""
    from rewardbench.suites.splits import eval_overlap, evaluation_suites, normalize

    suites = [s for s in evaluation_suites() if s not in skip] if skip else None
    overlap, unchecked = eval_overlap(prompts, suites=suites, paths=suite_paths,
                                      examples=len(prompts) if drop else 5)
    if overlap and not drop:
        found = "; ".join(f"{suite}: {', '.join(repr(p) for p in shared)}" for suite, shared in overlap.items())
        raise ValueError(f"task {task!r} would train on held-out evaluation prompts ({found}). Train on a training "
                         "split (suite:diffusiondb-train, suite:person-descriptions, suite:object-pairs-train), set "
                         "drop_eval_overlap: true on the task to leave those prompts out, or allow_eval_overlap: true "
                         "to train on them anyway.")
    if not overlap and prompts:  # nothing to drop: the prompts as they are, without normalising each again
        return list(prompts), {}, sorted(unchecked)
    held = {normalize(p) for shared in overlap.values() for p in shared}
    kept = [p for p in prompts if normalize(p) not in held]
    if not kept:
        raise ValueError(f"task {task!r}: every training prompt is a held-out evaluation prompt")
    return kept, {suite: len(shared) for suite, shared in overlap.items()}, sorted(unchecked)


def _prompts_of(suite: Any) -> list[str]:
    items = getattr(suite, "prompts", suite)
    if hasattr(items, "columns"):  # a DataFrame
        return items["prompt"].astype(str).tolist()
    out = []
    for x in items:
        out.append(x if isinstance(x, str) else (x["prompt"] if isinstance(x, dict) else x.prompt))
    return out


# --- rewards ------------------------------------------------------------------------------------
def resolve_reward(reward: Any, device: torch.device, kwargs: dict | None = None) -> tuple[RewardFn, bool, str]:
    """A task's reward -> ``(fn(images, prompts, groups) -> scores [B], whole_batch, description)``.

    ``reward`` is a registry name (through ``rewardbench.load_reward`` only), ``"module:callable"``,
    a `RewardModel`, or any ddpo-style callable ``fn(images, prompts, metadata) -> (rewards, info)``.
    ``whole_batch`` is True when the reward must see whole groups at once (group rewards, callables).
    """
    import rewardbench

    if isinstance(reward, str) and ":" in reward:
        mod, _, attr = reward.partition(":")
        reward = getattr(importlib.import_module(mod), attr)
    if isinstance(reward, str):
        model = rewardbench.load_reward(reward, device=device, **(kwargs or {}))
        desc = f"{model.spec.name} ({model.weights_used})"
        return _model_fn(model), model.spec.granularity == "group", desc
    if isinstance(reward, rewardbench.RewardModel):
        return _model_fn(reward), reward.spec.granularity == "group", reward.spec.name
    if callable(reward):
        return _ddpo_fn(reward), True, getattr(reward, "__name__", type(reward).__name__)
    raise TypeError(f"reward: expected a registry name, a RewardModel or a callable, got {type(reward).__name__}")


def _model_fn(model) -> RewardFn:
    def fn(images, prompts, groups):
        with torch.inference_mode():
            return model(images, list(prompts), groups).scores.float()
    return fn


def _ddpo_fn(f) -> RewardFn:
    def fn(images, prompts, groups):
        meta = [{"group": int(g)} for g in groups.tolist()]
        out = f(images, list(prompts), meta)
        scores = out[0] if isinstance(out, tuple) else out
        scores = torch.as_tensor(np.asarray(scores.detach().cpu() if torch.is_tensor(scores) else scores),
                                 dtype=torch.float32)
        if scores.shape != (len(prompts),):
            raise ValueError(f"reward callable returned shape {tuple(scores.shape)} for {len(prompts)} images")
        return scores
    return fn


# --- pretraining-loss data ----------------------------------------------------------------------
class CaptionData:
    """Endless random image-caption pairs from a ``datasets`` id or a local folder (images with
    same-name ``.txt`` captions, or a ``metadata.jsonl`` with ``file_name`` and the caption column)."""

    def __init__(self, source: str, split: str = "train", image_column: str = "image", caption_column: str = "text",
                 resolution: int = 512):
        self.resolution = resolution
        p = Path(source).expanduser()
        if p.is_dir():
            meta = p / "metadata.jsonl"
            if meta.is_file():
                rows = [json.loads(line) for line in meta.read_text().splitlines() if line.strip()]
                self.items = [(p / r["file_name"], r[caption_column]) for r in rows]
            else:
                from rewardbench.images import IMAGE_EXTENSIONS

                self.items = [(f, f.with_suffix(".txt").read_text().strip()) for f in sorted(p.iterdir())
                              if f.suffix.lower() in IMAGE_EXTENSIONS and f.with_suffix(".txt").is_file()]
            if not self.items:
                raise ValueError(f"{p}: no image-caption pairs (images with same-name .txt files, or metadata.jsonl)")
            self.ds = None
        else:
            import datasets

            self.ds = datasets.load_dataset(source, split=split)
            self.image_column, self.caption_column = image_column, caption_column
            self.items = None

    def __len__(self) -> int:
        return len(self.items) if self.items is not None else len(self.ds)

    def batch(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, list[str]]:
        """``n`` pairs: images ``(n, 3, R, R)`` in [-1, 1] (resized, centre-cropped) and captions."""
        from rewardbench.images import load_image

        idx = torch.randint(len(self), (n,), generator=generator).tolist()
        imgs, caps = [], []
        for i in idx:
            if self.items is not None:
                path, cap = self.items[i]
                img = load_image(path)
            else:
                row = self.ds[i]
                img, cap = row[self.image_column].convert("RGB"), str(row[self.caption_column])
            imgs.append(self._prep(img))
            caps.append(cap)
        return torch.stack(imgs), caps

    def _prep(self, img) -> torch.Tensor:
        from PIL import Image

        r = self.resolution
        w, h = img.size
        s = r / min(w, h)
        img = img.resize((max(r, round(w * s)), max(r, round(h * s))), Image.BICUBIC)
        w, h = img.size
        left, top = (w - r) // 2, (h - r) // 2
        img = img.crop((left, top, left + r, top + r))
        t = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
        return t * 2 - 1


# --- checkpoints --------------------------------------------------------------------------------
def trainable_state(unet: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in unet.named_parameters() if p.requires_grad}


def save_checkpoint(ckpt_dir: Path, *, unet, optimizer, lr_scheduler, step: int, extra: dict, gen: torch.Generator,
                    accelerator, keep: int = 2) -> Path:
    """Write ``checkpoints/step_{step:06d}`` atomically (a temp dir renamed at the end).

    Holds the trainable weights (LoRA or full UNet) as safetensors, optimizer and LR-scheduler
    state, trainer state (step, stat trackers), and each process's RNG states (``rng_{rank}.pt``)."""
    from safetensors.torch import save_file

    final = ckpt_dir / f"step_{step:06d}"
    tmp = ckpt_dir / f".tmp_step_{step:06d}"
    rank = accelerator.process_index
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    state = rng_state()
    rng = {"gen": gen.get_state(), "torch": state["torch"], "cuda": state["cuda"],
           "python": json.dumps(state["python"]), "numpy": json.dumps(_np_state(state["numpy"]))}
    torch.save(rng, tmp / f"rng_{rank}.pt")
    if accelerator.is_main_process:
        save_file(trainable_state(accelerator.unwrap_model(unet)), str(tmp / "trainable.safetensors"))
        torch.save({"optimizer": optimizer.state_dict(), "lr_scheduler": lr_scheduler.state_dict()},
                   tmp / "optim.pt")
        (tmp / "state.json").write_text(json.dumps({"step": step, **extra}))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        done = sorted(p for p in ckpt_dir.glob("step_*") if p.is_dir())
        for old in done[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def rng_state() -> dict[str, Any]:
    """The global RNGs' states as they are in memory: torch, CUDA (``[]`` without it), Python, NumPy."""
    return {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python": random.getstate(), "numpy": np.random.get_state()}


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Give the global RNGs the states of `rng_state`."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])


def _np_state(s) -> list:
    """NumPy's RNG state as JSON-able values."""
    return [s[0], s[1].tolist(), int(s[2]), int(s[3]), float(s[4])]


def find_checkpoint(resume: str, output_dir: Path) -> Path | None:
    if resume == "latest":
        done = sorted(p for p in (output_dir / "checkpoints").glob("step_*") if (p / "state.json").is_file())
        return done[-1] if done else None
    p = Path(resume).expanduser()
    if not (p / "state.json").is_file():
        raise FileNotFoundError(f"run.resume={resume!r}: no complete checkpoint there (state.json missing)")
    return p


def load_checkpoint(path: Path, *, unet, optimizer, lr_scheduler, gen: torch.Generator, accelerator) -> dict:
    from safetensors.torch import load_file

    weights = load_file(str(path / "trainable.safetensors"))
    model = accelerator.unwrap_model(unet)
    params = dict(model.named_parameters())
    missing = [k for k in weights if k not in params]
    if missing:
        raise RuntimeError(f"checkpoint {path} does not fit this model: unknown parameters {missing[:5]}...")
    with torch.no_grad():
        for k, v in weights.items():
            params[k].copy_(v.to(params[k].device, params[k].dtype))
    opt = torch.load(path / "optim.pt", map_location="cpu", weights_only=True)
    optimizer.load_state_dict(opt["optimizer"])
    lr_scheduler.load_state_dict(opt["lr_scheduler"])
    rng_file = path / f"rng_{accelerator.process_index}.pt"
    if not rng_file.is_file():
        raise RuntimeError(f"{rng_file} missing: resume with the same number of processes that wrote {path}")
    rng = torch.load(rng_file, map_location="cpu", weights_only=True)
    gen.set_state(rng["gen"])
    py, s = json.loads(rng["python"]), json.loads(rng["numpy"])
    set_rng_state({"torch": rng["torch"], "cuda": rng["cuda"], "python": (py[0], tuple(py[1]), py[2]),
                   "numpy": (s[0], np.array(s[1], dtype=np.uint32), s[2], s[3], s[4])})
    return json.loads((path / "state.json").read_text())


# --- resume fingerprint ---------------------------------------------------------------------------
# run.* keys that do not change what is trained (where it goes, how often it saves, how it is logged)
_NOT_FINGERPRINTED = {"output_dir", "iterations", "checkpoint_every", "keep_checkpoints", "sample_every", "resume",
                      "resume_force", "tensorboard", "async_rewards", "device", "suite_paths", "eval_every"}


def run_fingerprint(config, tasks: Sequence[dict]) -> dict[str, Any]:
    """Everything that changes training, flat (``"train.lr": 2e-06``): the config less memory-only and
    bookkeeping settings (micro-batch sizes, gradient checkpointing, output, logging), plus each task's
    resolved reward (name and weights) and a hash of its resolved prompt list."""
    import hashlib

    d = config.to_dict()
    for section in ("sample", "train"):
        d[section].pop("micro_batch_size", None)
    d["model"].pop("gradient_checkpointing", None)
    d["run"] = {k: v for k, v in d["run"].items() if k not in _NOT_FINGERPRINTED}
    d.pop("eval", None)
    for t, resolved in zip(d["tasks"], tasks):
        t["reward_resolved"] = resolved["desc"]
        t["prompts_sha256"] = hashlib.sha256("\n".join(resolved["prompts"]).encode()).hexdigest()[:16]
        t["n_prompts"] = len(resolved["prompts"])
    return _flat(d)


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, Mapping):
        if not d:
            return {prefix[:-1]: {}}
        return {k2: v2 for k, v in d.items() for k2, v2 in _flat(v, f"{prefix}{k}.").items()}
    if isinstance(d, list) and d and all(isinstance(x, Mapping) for x in d):
        return {k2: v2 for i, v in enumerate(d) for k2, v2 in _flat(v, f"{prefix}{i}.").items()}
    return {prefix[:-1]: d}


def fingerprint_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``key: old -> new`` for every fingerprint entry that differs (added and removed ones too)."""
    missing = object()
    return [f"{k}: {old.get(k, '(absent)')!r} -> {new.get(k, '(absent)')!r}" for k in sorted(old.keys() | new.keys())
            if old.get(k, missing) != new.get(k, missing)]


def check_resume(path: Path, fingerprint: Mapping[str, Any], force: bool = False) -> list[str]:
    """Refuse (ValueError) to resume from a checkpoint written by a different run, saying what changed;
    ``force`` turns the refusal into the returned list of changes."""
    state = json.loads((path / "state.json").read_text())
    old = state.get("fingerprint")
    changes = ["the checkpoint has no fingerprint (written before fingerprints were kept)"] if old is None \
        else fingerprint_changes(old, fingerprint)
    if changes and not force:
        raise ValueError(f"run.resume: {path} was written by a different run; changed: " + "; ".join(changes)
                         + ". Resume anyway with run.resume_force=true, or start a new run.output_dir.")
    return changes


# --- logging ------------------------------------------------------------------------------------
HELDOUT = "heldout/"  # task prefix of the held-out judges' rows (evaluation while training): heldout/<judge>
LOG_FIELDS = ["iteration", "task", "reward_mean", "reward_std", "loss", "policy_loss", "pretrain_loss", "clipfrac",
              "approx_kl", "grad_norm", "lr", "sample_s", "reward_s", "reward_wait_s", "update_s",
              # rows of the HELDOUT tasks: reward_mean is the judge's mean
              "heldout_ci_low", "heldout_ci_high", "heldout_base", "heldout_win_rate"]


class Logger:
    """metrics.csv (one row per iteration and task, the L_pre step and each held-out judge), TensorBoard
    scalars, sample grids, reward curve."""

    def __init__(self, out: Path, tensorboard: bool, resume_step: int = 0):
        self.out = out
        self.csv = out / "metrics.csv"
        rows = []
        if self.csv.is_file():  # keep what the resumed run had logged up to its checkpoint
            with self.csv.open() as f:
                rows = [r for r in csv.DictReader(f) if int(r["iteration"]) < resume_step]
        with self.csv.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=LOG_FIELDS)
            w.writeheader()
            w.writerows(rows)
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tensorboard"), purge_step=resume_step)
            except ImportError:
                self.tb = None

    def log(self, row: dict) -> None:
        with self.csv.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=LOG_FIELDS).writerow({k: row.get(k, "") for k in LOG_FIELDS})
        if self.tb is not None:
            for k, v in row.items():
                if k not in ("iteration", "task") and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"{row['task']}/{k}", v, row["iteration"])

    def save_grid(self, images: torch.Tensor, prompts: Sequence[str], rewards: torch.Tensor, name: str) -> Path:
        from PIL import Image

        from rewardbench.images import pixels_to_uint8

        arrs = pixels_to_uint8(images[:16].float().cpu())
        n = len(arrs)
        cols = min(4, n)
        rows = (n + cols - 1) // cols
        h, w = arrs[0].shape[:2]
        grid = np.zeros((rows * h, cols * w, 3), np.uint8)
        for i, a in enumerate(arrs):
            grid[(i // cols) * h:(i // cols + 1) * h, (i % cols) * w:(i % cols + 1) * w] = a
        d = self.out / "samples"
        d.mkdir(exist_ok=True)
        path = d / f"{name}.png"
        Image.fromarray(grid).save(path)
        (d / f"{name}.json").write_text(json.dumps([{"prompt": p, "reward": float(r)}
                                                    for p, r in zip(prompts[:n], rewards[:n].tolist())]))
        return path

    def plot(self) -> Path | None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import pandas as pd

        df = pd.read_csv(self.csv).dropna(subset=["reward_mean"])  # the pretraining-loss step has no reward
        df = df[~df["task"].astype(str).str.startswith(HELDOUT)]  # held-out judges: training_vs_heldout.png
        if df.empty:
            return None
        fig, ax = plt.subplots(figsize=(6, 4))
        for task, g in df.groupby("task"):
            ax.plot(g["iteration"], g["reward_mean"], label=str(task))
            ax.fill_between(g["iteration"], g["reward_mean"] - g["reward_std"], g["reward_mean"] + g["reward_std"],
                            alpha=0.2)
        ax.set_xlabel("iteration")
        ax.set_ylabel("reward (mean ± std)")
        ax.legend()
        fig.tight_layout()
        path = self.out / "reward_curve.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
