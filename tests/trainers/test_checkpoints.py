"""Checkpoint files that cannot be read are named, and ``run.resume=latest`` takes the last intact checkpoint; an
output folder that holds a run is refused unless the run says to continue it or start over (no model is built
here: the files are written as the trainer writes them)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from rewardbench.trainers.checkpoints import (
    CheckpointError,
    RunExistsError,
    check_output_dir,
    clear_run,
    existing_run,
    find_checkpoint,
    read_checkpoint,
)
from rewardbench.trainers.config import load_config


def _write(folder: Path, step: int, ranks: int = 1) -> Path:
    """A checkpoint with the trainer's files: state.json, trainable.safetensors, optim.pt, rng_{rank}.pt."""
    p = folder / f"step_{step:06d}"
    p.mkdir(parents=True)
    (p / "state.json").write_text(json.dumps({"step": step, "trackers": {}, "fingerprint": {}}))
    save_file({"w": torch.full((64,), float(step))}, str(p / "trainable.safetensors"))
    torch.save({"optimizer": {"state": {}, "param_groups": []}, "lr_scheduler": {}}, p / "optim.pt")
    for rank in range(ranks):
        torch.save({"gen": torch.Generator().get_state(), "torch": torch.get_rng_state(), "cuda": [],
                    "python": "[]", "numpy": "[]"}, p / f"rng_{rank}.pt")
    return p


def _truncate(f: Path) -> None:
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("name", ["state.json", "trainable.safetensors", "optim.pt", "rng_0.pt", "rng_1.pt"])
def test_a_truncated_file_is_named(tmp_path, name):
    p = _write(tmp_path, 4, ranks=2)
    assert read_checkpoint(p)["state"]["step"] == 4
    _truncate(p / name)
    # every process's RNG file is read, so that all processes judge a checkpoint alike
    where = re.escape(str(p / name))
    with pytest.raises(CheckpointError, match=rf"^{where}: cannot be read, truncated or corrupt \(\w+"):
        read_checkpoint(p, rank=0)
    (p / name).unlink()
    if not name.startswith("rng_"):  # a missing RNG file of this process says to resume with as many processes
        with pytest.raises(CheckpointError, match=rf"^{where}: missing"):
            read_checkpoint(p, rank=0)


def test_latest_skips_checkpoints_that_cannot_be_read_and_says_why(tmp_path):
    ckpts = tmp_path / "checkpoints"
    for step in (2, 4, 6):
        _write(ckpts, step)
    _truncate(ckpts / "step_000006" / "optim.pt")
    (ckpts / "step_000004" / "state.json").write_text('{"step": 4, "trac')
    told = []
    path, data = find_checkpoint("latest", tmp_path, warn=told.append)
    assert path == ckpts / "step_000002" and data["state"]["step"] == 2
    assert data["weights"]["w"][0].item() == 2.0
    assert [t.split(":")[0] for t in told] == ["skipping checkpoint step_000006", "skipping checkpoint step_000004"]
    assert "optim.pt: cannot be read" in told[0] and "state.json: cannot be read" in told[1]
    # an explicit folder: refused, naming its bad file and offering the last intact checkpoint
    with pytest.raises(CheckpointError, match=r"optim\.pt: cannot be read.*the last intact checkpoint is "
                                              rf"{ckpts / 'step_000002'} \(run\.resume=.*run\.resume=latest takes it"):
        find_checkpoint(str(ckpts / "step_000006"), tmp_path)
    # none intact: an error, not a silent start from scratch
    _truncate(ckpts / "step_000002" / "trainable.safetensors")
    with pytest.raises(CheckpointError, match="no checkpoint in .* can be read.*run.overwrite=true"):
        find_checkpoint("latest", tmp_path)
    with pytest.raises(CheckpointError, match="no other checkpoint in .* can be read"):
        find_checkpoint(str(ckpts / "step_000006"), tmp_path)
    assert find_checkpoint("latest", tmp_path / "fresh") is None  # no checkpoint yet: start at 0


def test_a_folder_that_holds_a_run_is_refused_unless_resumed_or_overwritten(tmp_path):
    out = tmp_path / "run"
    _write(out / "checkpoints", 2)
    _write(out / "checkpoints", 4)
    (out / "metrics.csv").write_text("iteration,task\n")
    (out / "notes.txt").write_text("mine")
    (out / "eval" / "step_000004").mkdir(parents=True)
    assert existing_run(out) == ["checkpoints/step_000004 and 1 older", "metrics.csv"]

    def cfg(*extra):
        return load_config(None, [f"run.output_dir={out}", *extra]).run

    with pytest.raises(RunExistsError, match=r"already holds a run \(checkpoints/step_000004 and 1 older, "
                                             r"metrics\.csv\): continue it with run\.resume=latest.*run\.overwrite"):
        check_output_dir(cfg())
    check_output_dir(cfg("run.resume=latest"))
    check_output_dir(cfg("run.overwrite=true"))
    with pytest.raises(ValueError, match="run.resume and run.overwrite: choose one"):
        cfg("run.resume=latest", "run.overwrite=true")
    assert clear_run(out) == ["checkpoints", "metrics.csv", "eval"]
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # only what a run writes is deleted
    check_output_dir(cfg())  # an empty folder, or one with other files, is not a run
    check_output_dir(load_config(None, [f"run.output_dir={tmp_path / 'new'}"]).run)
