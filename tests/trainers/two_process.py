"""Two training processes on the CPU (gloo), for the tests that check every replica ends with the same weights: each
process trains the same config and saves its own replica of the trainable weights (not the checkpoint, which rank 0
alone writes) with its history."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _replica(rank: int, world: int, port: int, recipe: str | None, overrides: list[str], result_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    from accelerate import PartialState

    from rewardbench.trainers.config import load_config
    from rewardbench.trainers.train import train

    res = train(load_config(recipe, overrides))
    state = {n: p.detach().cpu().clone() for n, p in res["unet"].named_parameters() if p.requires_grad}
    torch.save({"history": res["history"], "params": state, "world": PartialState().num_processes},
               os.path.join(result_dir, f"rank{rank}.pt"))


def two_process_run(result_dir: Path, recipe: str | None, overrides: list[str]) -> tuple[dict, dict]:
    """Train ``recipe`` with ``overrides`` in two gloo processes; each one's ``{"history", "params", "world"}``."""
    import torch.multiprocessing as mp

    result_dir.mkdir(parents=True, exist_ok=True)
    mp.start_processes(_replica, args=(2, _free_port(), recipe, list(overrides), str(result_dir)), nprocs=2,
                       join=True, start_method="spawn")
    r0, r1 = (torch.load(result_dir / f"rank{i}.pt", weights_only=True) for i in (0, 1))
    return r0, r1
