"""Fixtures for run-benchmark tests: a real trainer LoRA output on the tiny pipeline."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def trained_lora(tmp_path_factory):
    """``final/`` of a one-iteration LoRA run of the trainer on the tiny pipeline (a large learning rate, so
    the LoRA moves the images): what `rewardbench train` writes, to be loaded as a generator."""
    from rewardbench.trainers.config import load_config
    from rewardbench.trainers.train import train

    out = tmp_path_factory.mktemp("lora_run")
    cfg = load_config(None, [
        "model.pretrained=tiny", "model.resolution=32", "model.lora=true", "model.lora_rank=2", "run.device=cpu",
        "run.tensorboard=false", "sample.num_steps=2", "train.timesteps_per_iter=1", "sample.batch_size=2",
        "sample.micro_batch_size=2", "train.micro_batch_size=2", "train.lr=0.05", "run.iterations=1",
        "run.checkpoint_every=0", "run.sample_every=0", f"run.output_dir={out}", "tasks.0.reward=jpeg-compressibility",
        "tasks.0.prompts=[a cat]"])
    final = train(cfg)["final_weights"]
    assert final is not None
    return final
