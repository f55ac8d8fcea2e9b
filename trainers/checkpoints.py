"""Checkpoints that resume exactly and refuse a changed run: the trainable weights, optimizer and LR-scheduler
state, the trainer's state (step, statistics trackers), every process's RNG states, and the run's fingerprint
(everything that changes training), compared on resume.

A checkpoint written by a different run raises `ResumeRefusedError` (a ``ValueError``), naming what changed;
``run.resume_force`` takes it on anyway. A checkpoint file that cannot be read (truncated, corrupt) raises
`CheckpointError` naming the file and the last intact checkpoint; ``run.resume=latest`` skips such checkpoints,
saying which and why, and takes the newest intact one. An output folder that holds a run is refused
(`RunExistsError`) unless ``run.resume`` continues it or ``run.overwrite`` starts over.

Steps are counted one way everywhere: step N is the state after N completed iterations. ``checkpoints/step_N``,
``eval/step_N``, the ``iteration`` column of ``metrics.csv`` (the row of the N-th iteration, counted from 1) and
the sample grids ``samples/itN_*`` all use it.

    >>> fingerprint_changes({"train.lr": 1e-3, "tasks.0.name": "jpeg"}, {"train.lr": 2e-3, "tasks.0.name": "jpeg"})
    ['train.lr: 0.001 -> 0.002']
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .config import Config

if TYPE_CHECKING:
    from .tasks import Task


class ResumeRefusedError(ValueError):
    """``run.resume`` names a checkpoint written by a different run (its fingerprint differs); the message says
    what changed and how to go on (``run.resume_force=true``, or a new ``run.output_dir``)."""


class RunExistsError(ValueError):
    """``run.output_dir`` holds a run and neither ``run.resume`` (continue it) nor ``run.overwrite`` (start over)
    says what to do with it."""


class CheckpointError(ValueError):
    """A checkpoint file cannot be read (truncated, corrupt, missing); the message names it and the last intact
    checkpoint."""


# what a run writes in run.output_dir: run.overwrite deletes these, and nothing else there
RUN_OUTPUTS = ("checkpoints", "metrics.csv", "config.json", "tensorboard", "samples", "eval", "final",
               "reward_curve.png", "training_vs_heldout.png")


def existing_run(output_dir: str | os.PathLike) -> list[str]:
    """What in ``output_dir`` shows that a run was there: its checkpoints, ``metrics.csv``, ``config.json``.

        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> (d / "checkpoints" / "step_000004").mkdir(parents=True); _ = (d / "metrics.csv").write_text("")
        >>> existing_run(d), existing_run(d / "new")
        (['checkpoints/step_000004', 'metrics.csv'], [])
    """
    out = Path(output_dir)
    steps = sorted(p.name for p in (out / "checkpoints").glob("step_*") if p.is_dir())
    found = [f"checkpoints/{steps[-1]}" + (f" and {len(steps) - 1} older" if len(steps) > 1 else "")] if steps else []
    return found + [name for name in ("metrics.csv", "config.json") if (out / name).is_file()]


def check_output_dir(run) -> None:
    """Refuse (`RunExistsError`) to start in a ``run.output_dir`` that holds a run, unless ``run.resume`` or
    ``run.overwrite`` is set: a new run there would rotate the old checkpoints away and mix its logs."""
    if run.resume or run.overwrite:
        return
    found = existing_run(run.output_dir)
    if found:
        raise RunExistsError(f"run.output_dir {run.output_dir} already holds a run ({', '.join(found)}): continue it "
                             "with run.resume=latest, start over with run.overwrite=true (deletes its checkpoints, "
                             "metrics, samples and evaluations), or choose another run.output_dir")


def clear_run(output_dir: str | os.PathLike) -> list[str]:
    """``run.overwrite``: delete what an earlier run wrote in ``output_dir`` (`RUN_OUTPUTS`); returns their names."""
    gone = []
    for name in RUN_OUTPUTS:
        p = Path(output_dir) / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
        else:
            continue
        gone.append(name)
    return gone


ALGORITHM_FILE = "algorithm.safetensors"  # an algorithm's own tensors (Algorithm.extra_state)


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The parameters that train (LoRA adapters or the whole network), on the CPU."""
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(ckpt_dir: Path, *, model, optimizer, lr_scheduler, step: int, extra: dict, gen: torch.Generator,
                    accelerator, keep: int = 2, tensors: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``checkpoints/step_{step:06d}`` atomically (a temp dir renamed at the end).

    Holds the trainable weights (LoRA or the full network) as safetensors, optimizer and LR-scheduler
    state, trainer state (step, stat trackers), each process's RNG states (``rng_{rank}.pt``) and the algorithm's
    own ``tensors`` (an EMA, an old model: ``algorithm.safetensors``, when it has any)."""
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
        save_file(trainable_state(accelerator.unwrap_model(model)), str(tmp / "trainable.safetensors"))
        if tensors:
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / ALGORITHM_FILE))
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


def _checkpoints(folder: Path) -> list[Path]:
    """The checkpoints in ``folder``, newest first (a half-written ``.tmp_step_*`` is not one)."""
    return sorted((p for p in folder.glob("step_*") if p.is_dir()), reverse=True)


def read_checkpoint(path: Path, rank: int = 0) -> dict[str, Any]:
    """Every file of a checkpoint, read (nothing applied yet): ``{"state", "weights", "optim", "rng"}`` (``rng``:
    process ``rank``'s states). Every process's RNG file is read, so that all processes judge a checkpoint alike.
    `CheckpointError` names a file that is missing or cannot be read, and why."""
    from safetensors.torch import load_file

    def read(name: str, how):
        f = path / name
        if not f.is_file():
            raise CheckpointError(f"{f}: missing (the checkpoint is incomplete)")
        try:
            return how(f)
        except Exception as e:  # truncated or corrupt: JSON, safetensors and zip errors, EINVAL, ...
            cause = " ".join(str(e).split()) or "no message"
            raise CheckpointError(f"{f}: cannot be read, truncated or corrupt ({type(e).__name__}: "
                                  f"{cause[:200]})") from None

    def pt(f: Path):
        return torch.load(f, map_location="cpu", weights_only=True)

    data = {"state": read("state.json", lambda f: json.loads(f.read_text())),
            "weights": read("trainable.safetensors", lambda f: load_file(str(f))), "optim": read("optim.pt", pt)}
    data["algorithm"] = read(ALGORITHM_FILE, lambda f: load_file(str(f))) if (path / ALGORITHM_FILE).exists() else {}
    rngs = {int(f.stem.split("_")[1]): read(f.name, pt) for f in sorted(path.glob("rng_*.pt"))
            if f.stem.split("_")[1].isdigit()}
    if rank not in rngs:
        raise RuntimeError(f"{path / f'rng_{rank}.pt'} missing: resume with the same number of processes that "
                           f"wrote {path} ({len(rngs)} processes)")
    data["rng"] = rngs[rank]
    return data


def last_intact(folder: Path, rank: int = 0, *, skip: Path | None = None,
                warn: Callable[[str], None] | None = None) -> tuple[Path, dict] | None:
    """The newest checkpoint in ``folder`` that reads intact, read (`read_checkpoint`), or None; ``warn`` is told
    of each newer one that does not, and why."""
    for p in _checkpoints(folder):
        if skip is not None and p.resolve() == skip.resolve():
            continue
        try:
            return p, read_checkpoint(p, rank)
        except CheckpointError as e:
            if warn is not None:
                warn(f"skipping checkpoint {p.name}: {e}")
    return None


def find_checkpoint(resume: str, output_dir: Path, rank: int = 0,
                    warn: Callable[[str], None] | None = None) -> tuple[Path, dict] | None:
    """The checkpoint ``run.resume`` names, read (`read_checkpoint`): ``"latest"``, the newest intact one under
    ``output_dir/checkpoints`` (None when there is none yet; each newer one that cannot be read is skipped and
    ``warn`` told why; `CheckpointError` when none of them can be read), or a folder (`CheckpointError` naming its
    file that cannot be read, and the last intact checkpoint beside it)."""
    if resume == "latest":
        folder = output_dir / "checkpoints"
        found = last_intact(folder, rank, warn=warn)
        if found is None and _checkpoints(folder):
            raise CheckpointError(f"run.resume=latest: no checkpoint in {folder} can be read (each is named above); "
                                  "start over with run.overwrite=true")
        return found
    p = Path(resume).expanduser()
    if not p.is_dir():
        raise CheckpointError(f"run.resume={resume!r}: no such checkpoint folder")
    try:
        return p, read_checkpoint(p, rank)
    except CheckpointError as e:
        other = last_intact(p.parent, rank, skip=p)
        offer = f"the last intact checkpoint is {other[0]} (run.resume={other[0]}, or run.resume=latest takes it)" \
            if other is not None else f"no other checkpoint in {p.parent} can be read"
        raise CheckpointError(f"run.resume={resume!r}: {e}; {offer}") from None


def load_checkpoint(path: Path, *, model, optimizer, lr_scheduler, gen: torch.Generator, accelerator,
                    data: dict | None = None) -> dict:
    """Give the model, optimizer, LR scheduler and RNGs a checkpoint's state (``data``: it as `read_checkpoint`
    read it, or read now); returns its ``state.json``."""
    data = data if data is not None else read_checkpoint(path, accelerator.process_index)
    weights = data["weights"]
    params = dict(accelerator.unwrap_model(model).named_parameters())
    missing = [k for k in weights if k not in params]
    if missing:
        raise RuntimeError(f"checkpoint {path} does not fit this model: unknown parameters {missing[:5]}...")
    with torch.no_grad():
        for k, v in weights.items():
            params[k].copy_(v.to(params[k].device, params[k].dtype))
    optimizer.load_state_dict(data["optim"]["optimizer"])
    lr_scheduler.load_state_dict(data["optim"]["lr_scheduler"])
    rng = data["rng"]
    gen.set_state(rng["gen"])
    py, s = json.loads(rng["python"]), json.loads(rng["numpy"])
    set_rng_state({"torch": rng["torch"], "cuda": rng["cuda"], "python": (py[0], tuple(py[1]), py[2]),
                   "numpy": (s[0], np.array(s[1], dtype=np.uint32), s[2], s[3], s[4])})
    return data["state"]


# run.* keys that do not change what is trained (where it goes, how often it saves, how it is logged)
_NOT_FINGERPRINTED = {"output_dir", "iterations", "checkpoint_every", "keep_checkpoints", "sample_every", "resume",
                      "resume_force", "tensorboard", "async_rewards", "device", "prompt_paths", "eval_every",
                      "progress", "overwrite"}
# keys added to the config after fingerprints were first kept, with the value every earlier run had: left out of
# the fingerprint at that value, so that a checkpoint written before the key existed still resumes
_ADDED_LATER = {"train.algorithm": "ddpo", "train.group_advantages": False, "train.global_std": False,
                **{f"flow.{k}": v for k, v in Config().to_dict()["flow"].items()}}


def run_fingerprint(config, tasks: Sequence[Task]) -> dict[str, Any]:
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
        t["reward_resolved"] = resolved.description
        t["prompts_sha256"] = hashlib.sha256("\n".join(resolved.prompts).encode()).hexdigest()[:16]
        t["n_prompts"] = len(resolved.prompts)
    flat = _canonical(_flat(d))
    return {k: v for k, v in flat.items() if k not in _ADDED_LATER or v != _ADDED_LATER[k]}


def _canonical(flat: Mapping[str, Any]) -> dict[str, Any]:
    """A task's prompt set in one spelling, ``tasks.N.prompts.set: NAME``, however the recipe wrote it: ``set:NAME``
    or ``{set: NAME, ...}``, or as fingerprints kept before prompt sets had their name, ``suite:NAME`` or
    ``{suite: NAME, ...}``. So a checkpoint written then resumes under a recipe that says ``set:`` (and the
    prompts themselves are pinned by ``prompts_sha256`` and ``n_prompts`` anyway).

    >>> _canonical({"tasks.0.prompts": "suite:occupations", "tasks.1.prompts.suite": "object-pairs-train"})
    {'tasks.0.prompts.set': 'occupations', 'tasks.1.prompts.set': 'object-pairs-train'}
    """
    out = {}
    for key, value in flat.items():
        first, _, rest = key.split(".", 2) if key.count(".") >= 2 else (key, "", "")
        if first == "tasks" and rest == "prompts" and isinstance(value, str) and value.startswith(("set:", "suite:")):
            key, value = f"{key}.set", value.partition(":")[2]
        elif first == "tasks" and rest == "prompts.suite":
            key = key.removesuffix("suite") + "set"
        out[key] = value
    return out


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, Mapping):
        if not d:
            return {prefix[:-1]: {}}
        return {k2: v2 for k, v in d.items() for k2, v2 in _flat(v, f"{prefix}{k}.").items()}
    if isinstance(d, list) and d and all(isinstance(x, Mapping) for x in d):
        return {k2: v2 for i, v in enumerate(d) for k2, v2 in _flat(v, f"{prefix}{i}.").items()}
    return {prefix[:-1]: d}


def fingerprint_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``key: old -> new`` for every fingerprint entry that differs (added and removed ones too). A prompt set is
    compared by name, however either side spells it (`_canonical`); a key left out at its default (`_ADDED_LATER`)
    reads as that default."""
    old, new = {**_ADDED_LATER, **_canonical(old)}, {**_ADDED_LATER, **_canonical(new)}
    missing = object()
    return [f"{k}: {old.get(k, '(absent)')!r} -> {new.get(k, '(absent)')!r}" for k in sorted(old.keys() | new.keys())
            if old.get(k, missing) != new.get(k, missing)]


def check_resume(path: Path, fingerprint: Mapping[str, Any], force: bool = False) -> list[str]:
    """Refuse (`ResumeRefusedError`) to resume from a checkpoint written by a different run, saying what
    changed; ``force`` turns the refusal into the returned list of changes."""
    state = json.loads((path / "state.json").read_text())
    old = state.get("fingerprint")
    changes = ["the checkpoint has no fingerprint (written before fingerprints were kept)"] if old is None \
        else fingerprint_changes(old, fingerprint)
    if changes and not force:
        raise ResumeRefusedError(f"run.resume: {path} was written by a different run; changed: " + "; ".join(changes)
                                 + ". Resume anyway with run.resume_force=true, or start a new run.output_dir.")
    return changes
