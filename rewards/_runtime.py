"""How the offline judges' networks run: which execution provider, how many threads, and what runs side by side.

The people pipeline (`rewardbench.rewards._people`) runs ONNX models (CenterFace, NudeNet, open_nsfw) with
onnxruntime and MediaPipe's TFLite models with LiteRT. One rule for all of them:

* **Provider from the device.** The pipeline runs its jobs inside `onnx_device` (the device of the pixels it
  was given); a session is built once per process for each model and provider (`session_options`,
  `onnx_providers`): onnxruntime's CUDA provider when the device is a CUDA device and onnxruntime-gpu provides
  it, else the CPU provider. A CPU-only install never asks for CUDA. LiteRT has no GPU path in its pip wheels:
  BlazeFace and FaceMesh stay on the CPU (a few ms per image that has a face candidate; they overlap with the
  GPU work in the thread pool).
* **Threads on a CPU: one per session, several sessions at once.** Each CPU session runs single-threaded
  and `parallel_map` runs independent jobs (images, networks) in a pool of `cpu_threads` threads (torch's
  thread count, the cores it was given). A session's own threads wait on each other at every layer, and on
  the scoring harness's decode workers and other processes sharing the cores: on the 2-core build machine
  under load, CenterFace took 96 ms per image with two threads and 38 ms with one. Independent jobs do not
  wait on each other. Outputs do not depend on the thread count or the batch size (CenterFace, NudeNet and
  open_nsfw checked bit-identical with 1 and 2 threads and batches of 1 to 16 on calibration images).
* **Nothing nested.** A job that calls `parallel_map` again runs its items in its own thread, in order.

Example:
    >>> parallel_map(lambda x: x * x, range(5))
    [0, 1, 4, 9, 16]
    >>> onnx_providers("cpu")
    ['CPUExecutionProvider']
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import functools
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")

# the device the current jobs run for (the pixels' device); contextvars reach the pool's threads through
# parallel_map, which runs each job in a copy of the caller's context
_DEVICE: contextvars.ContextVar[torch.device | None] = contextvars.ContextVar("rewardbench_judges_device",
                                                                            default=None)
_IN_POOL = threading.local()


@contextlib.contextmanager
def onnx_device(device: torch.device | str | None) -> Iterator[None]:
    """Run the networks called inside on ``device`` (None: the CPU), as far as their runtime can."""
    token = _DEVICE.set(torch.device(device) if device is not None else torch.device("cpu"))
    try:
        yield
    finally:
        _DEVICE.reset(token)


def current_device() -> torch.device:
    """The device of `onnx_device` around the caller (the CPU outside one)."""
    return _DEVICE.get() or torch.device("cpu")


def uses_cuda(device: torch.device | str | None = None) -> bool:
    """Whether ONNX sessions for ``device`` (default: `current_device`) run on onnxruntime's CUDA provider."""
    return provider_key(device) != "cpu"


def provider_key(device: torch.device | str | None = None) -> str:
    """Where ONNX sessions for ``device`` (default: `current_device`) run: ``"cuda:<index>"`` for a CUDA device
    when the installed onnxruntime has the CUDA provider (onnxruntime-gpu), else ``"cpu"``. Session caches are
    keyed by it."""
    device = current_device() if device is None else torch.device(device)
    if device.type != "cuda":
        return "cpu"
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return "cpu"
    index = device.index if device.index is not None else (torch.cuda.current_device()
                                                           if torch.cuda.is_available() else 0)
    return f"cuda:{index}"


def onnx_providers(device: torch.device | str) -> list[Any]:
    """The onnxruntime providers of a session for ``device`` (`provider_key`): CUDA on that GPU, then CPU for
    what CUDA does not run; or the CPU alone."""
    return session_providers(provider_key(device))


def session_options(key: str, optimize: bool = True):
    """onnxruntime session options for a session on ``key`` (`provider_key`): warnings only, all graph
    optimisations (``optimize=False``: none), and on the CPU one thread (`parallel_map` gives the parallelism)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize else \
        ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if key == "cpu":
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    return opts


def session_providers(key: str) -> list[Any]:
    """The providers of a session on ``key`` (`provider_key`)."""
    if key == "cpu":
        return ["CPUExecutionProvider"]
    return [("CUDAExecutionProvider", {"device_id": int(key.split(":")[1])}), "CPUExecutionProvider"]


def cpu_threads() -> int:
    """How many jobs `parallel_map` runs at once: the threads torch was given (``torch.set_num_threads``;
    by default the machine's cores)."""
    return max(1, torch.get_num_threads())


@functools.cache
def _pool(threads: int, pid: int) -> concurrent.futures.ThreadPoolExecutor:
    # keyed by process id: a forked child must not reuse its parent's (threadless) pool
    return concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="rewardbench-judges",
                                                 initializer=_mark_pool_thread)


def _mark_pool_thread() -> None:
    _IN_POOL.active = True


def parallel_map(fn: Callable[[T], R], items: Iterable[T], threads: int | None = None) -> list[R]:
    """``[fn(x) for x in items]``, computed by up to ``threads`` (default `cpu_threads`) threads at once, in the
    caller's context (`onnx_device`); results in order, the first exception raised. Serial with one thread, one
    item, or inside a job of the pool already."""
    items = list(items)
    n = cpu_threads() if threads is None else max(1, int(threads))
    if n == 1 or len(items) <= 1 or getattr(_IN_POOL, "active", False):
        return [fn(x) for x in items]
    ctx = contextvars.copy_context()
    futures = [_pool(n, os.getpid()).submit(ctx.copy().run, fn, x) for x in items]
    return [f.result() for f in futures]


def run_jobs(jobs: Iterable[Callable[[], R]], threads: int | None = None) -> list[R]:
    """Each job's result, the jobs run side by side by `parallel_map`."""
    return parallel_map(lambda job: job(), jobs, threads)
