"""rewards/_runtime.py: the execution provider follows the device (CUDA only where onnxruntime has it), CPU sessions
run one thread each and side by side, and the GPU layout of the people pipeline (batched sessions, whole-batch jobs)
gives the same answers, checked here on the CPU provider (no GPU on the build machines)."""

from __future__ import annotations

import threading

import pytest

from rewardbench.rewards import _centerface, _people, _runtime
from rewardbench.rewards._runtime import onnx_device, onnx_providers, parallel_map, provider_key, run_jobs


def test_the_provider_follows_the_device(monkeypatch):
    import onnxruntime as ort

    assert onnx_providers("cpu") == ["CPUExecutionProvider"] and provider_key("cpu") == "cpu"
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])  # a CPU-only install
    assert provider_key("cuda:0") == "cpu" and onnx_providers("cuda") == ["CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert provider_key("cuda:1") == "cuda:1" and provider_key("cpu") == "cpu"
    assert onnx_providers("cuda:1") == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    with onnx_device("cuda:0"):
        assert _runtime.uses_cuda() and provider_key() == "cuda:0"
        assert run_jobs([lambda: provider_key(), lambda: provider_key()]) == ["cuda:0", "cuda:0"]  # in the pool too
    assert not _runtime.uses_cuda()  # outside: the CPU


def test_cpu_sessions_run_one_thread_each_and_are_built_once():
    s = _centerface._session("cpu")
    assert s is _centerface._session("cpu") and s.get_providers() == ["CPUExecutionProvider"]
    opts = _runtime.session_options("cpu")
    assert opts.intra_op_num_threads == 1 and opts.inter_op_num_threads == 1
    assert _runtime.session_options("cuda:0").intra_op_num_threads == 0  # onnxruntime's default there


def test_parallel_map_keeps_order_raises_and_does_not_nest():
    assert parallel_map(lambda x: x * x, range(20), threads=2) == [x * x for x in range(20)]
    with pytest.raises(ZeroDivisionError):
        parallel_map(lambda x: 1 / x, [1, 0, 2], threads=2)
    names = parallel_map(lambda _: parallel_map(lambda _: threading.current_thread().name, range(3), threads=2),
                         range(2), threads=2)
    assert all(len(set(inner)) == 1 for inner in names)  # a job's own items run in its thread


def test_the_gpu_layout_gives_the_cpu_answers(photos, monkeypatch):
    """CenterFace batched per size (as on onnxruntime's CUDA provider) and the pipeline's whole-batch jobs, run on
    the CPU provider: the same detections and the same People as the CPU layout."""
    images = [photos["astronaut"], photos["grace_hopper"], photos["coffee"], photos["astronaut"][:300, :400].copy()]
    per_image = _centerface.centerface_detect_many(images, 0.2)
    pipe = _people.PeoplePipeline().require(set(_people.NEEDS))
    cpu_people = pipe.run(images)
    monkeypatch.setattr(_centerface, "uses_cuda", lambda: True)  # the GPU layout, on the CPU provider
    monkeypatch.setattr(_people, "uses_cuda", lambda: True)
    batched = _centerface.centerface_detect_many(images, 0.2)
    assert [[(d.box, d.score) for d in img] for img in batched] == [[(d.box, d.score) for d in img]
                                                                    for img in per_image]
    assert [len(d) for d in batched] == [1, 1, 0, 1]
    gpu_people = pipe.run(images)
    assert _people.pack(gpu_people).numpy().tobytes() == _people.pack(cpu_people).numpy().tobytes()


def test_a_cuda_device_without_onnxruntime_gpu_runs_on_the_cpu_provider(photos):
    """A CPU-only install asked for CUDA: the sessions stay on the CPU provider and answer as on the CPU."""
    with onnx_device("cuda"):
        if provider_key() != "cpu":
            pytest.skip("onnxruntime-gpu is installed here")
        found = _centerface.centerface_detect_many([photos["astronaut"]], 0.5)
    assert [(d.box, d.score) for d in found[0]] == \
        [(d.box, d.score) for d in _centerface.centerface_detect(photos["astronaut"], 0.5)]
