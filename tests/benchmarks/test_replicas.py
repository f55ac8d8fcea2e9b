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
