"""run-benchmark's multi-replica generation (`rewardbench.benchmarks.replicas`) on a local Ray cluster of CPU
processes: two replicas give the images (PNG bytes) and the manifest of a one-replica run, and a run resumes."""

from __future__ import annotations

import json

import pytest

from rewardbench.benchmarks.generators import DiffusersGenerator, GenerationSettings, generate_images, seed_for

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'rewardbench[ray]'")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="rewardbench")
    yield
    ray.shutdown()


def test_two_replicas_make_the_images_of_one(cluster, tmp_path):
    import torch

    from rewardbench.benchmarks.replicas import ReplicatedGenerator

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each replica (Ray gives an actor one CPU thread): the same CPU kernels
    settings = GenerationSettings(steps=2, resolution=32, batch_size=2, device="cpu")
    prompts = ["a cat", "a red apple", "a mountain lake"]
    items = [{"prompt_id": k, "prompt": p, "index": i, "seed": seed_for(p, i)} for k, p in enumerate(prompts)
             for i in range(2)]
    one, n_one = generate_images(DiffusersGenerator("tiny", "tiny:1", settings), items, tmp_path / "one",
                                 progress=False)
    replicated = ReplicatedGenerator(DiffusersGenerator("tiny", "tiny:1", settings), 2)
    try:
        two, n_two = generate_images(replicated, items, tmp_path / "two", progress=False)
        # a run killed after 4 images resumes with the other 2, none made twice
        four = [json.loads(x) for x in (tmp_path / "two" / "manifest.jsonl").read_text().splitlines()[:4]]
        (tmp_path / "again").mkdir()
        (tmp_path / "again" / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in four))
        for r in four:
            (tmp_path / "again" / r["file"]).write_bytes((tmp_path / "two" / r["file"]).read_bytes())
        again, n_again = generate_images(replicated, items, tmp_path / "again", progress=False)
    finally:
        replicated.close()
        torch.set_num_threads(threads)
    assert (n_one, n_two, n_again) == (6, 6, 2)
    assert two == one == again  # the manifest rows: files, prompts, indices, seeds
    for row in one:
        assert (tmp_path / "two" / row["file"]).read_bytes() == (tmp_path / "one" / row["file"]).read_bytes()
    lines = [json.loads(x) for x in (tmp_path / "again" / "manifest.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and len({(r["prompt_id"], r["index"]) for r in lines}) == 6  # none twice


def test_more_replicas_than_the_clusters_gpus_is_refused_not_run_on_cpus(monkeypatch):
    """One GPU per replica: 4 replicas on a 2-GPU cluster fail saying so instead of 4 CPU replicas (no Ray is
    started: its calls are stand-ins); a cluster without GPUs runs CPU replicas."""
    from rewardbench.benchmarks.replicas import ReplicatedGenerator

    made = []

    class _Made(Exception):
        pass

    def remote(cls):
        made.append(cls)
        raise _Made

    settings = GenerationSettings(steps=1, resolution=32, batch_size=1, device="cpu")
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(ray, "remote", remote)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 16.0, "GPU": 2.0})
    with pytest.raises(ValueError, match="one GPU per replica, and the Ray cluster has 2"):
        ReplicatedGenerator(DiffusersGenerator("tiny", "tiny:1", settings), 4)._start()
    assert made == []
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 16.0})
    with pytest.raises(_Made):
        ReplicatedGenerator(DiffusersGenerator("tiny", "tiny:1", settings), 4)._start()
