"""torch.distributed helpers for data-parallel scoring: process-group setup, this process's device,
and object collectives that reduce to no-ops in a single process."""

from __future__ import annotations

import atexit
import os
from typing import Any

import torch


def setup() -> tuple[int, int, bool]:
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
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend=backend)
    atexit.register(destroy_group)  # a caller that never calls Scorer.close() must still exit cleanly
    return dist.get_rank(), dist.get_world_size(), True


def local_rank() -> int:
    """This process's GPU index on its machine (``LOCAL_RANK``, set by torchrun and accelerate)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def process_device(device: str | torch.device | None, world: int) -> torch.device:
    """The device of this process: the GPU if any, else the CPU; with several processes an
    unindexed ``cuda`` means this process's own GPU (``cuda:LOCAL_RANK``), not everyone on GPU 0.

    Example:
        >>> str(process_device("cpu", 4)), str(process_device("cuda:1", 2))
        ('cpu', 'cuda:1')
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if world > 1 and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank())
    return device


def destroy_group() -> None:
    """Tear the process group down at interpreter exit if it is still up (otherwise a rank that
    exits while a peer is alive can abort in the gloo/NCCL destructors)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def gather(obj: Any, world: int) -> list:
    """Every rank's ``obj``, on every rank (``[obj]`` in a single process)."""
    if world <= 1:
        return [obj]
    import torch.distributed as dist

    out: list = [None] * world
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj: Any, world: int) -> Any:
    """Rank 0's ``obj``, on every rank."""
    if world <= 1:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
