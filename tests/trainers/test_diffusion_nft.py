"""DiffusionNFT in the shared loop on the tiny random SD3 (CPU): its tiny recipe runs, it samples with the old model
by the deterministic CFG-free flow ODE (the SD3 pipeline's own Euler sampler), the old model trails the trained one,
a run resumes exactly (old model and EMA included) and refuses a changed one."""

from __future__ import annotations

import csv

import pytest
import torch
from safetensors.torch import load_file

from rewardbench.trainers.checkpoints import ResumeRefusedError
from rewardbench.trainers.config import load_config
from rewardbench.trainers.train import train

RECIPE = "trainers/recipes/diffusion_nft_tiny.yaml"
QUIET = ["run.tensorboard=false", "run.progress=false", "run.sample_every=0"]


def _cfg(out, *extra):
    return load_config(RECIPE, [*QUIET, f"run.output_dir={out}", *extra])


class Brightness:
    """Mean pixel value of each image; "kills" the run on its n-th call when asked."""

    def __init__(self, die_at=None):
        self.calls, self.die_at = 0, die_at

    def __call__(self, images, prompts, metadata):
        self.calls += 1
        if self.die_at is not None and self.calls == self.die_at:
            raise KeyboardInterrupt("simulated kill")
        return images.mean(dim=(1, 2, 3)), {}


def test_sampling_is_the_pipelines_cfg_free_ode_with_the_old_model(tmp_path):
    from accelerate import Accelerator

    from rewardbench.trainers.algorithms import build_algorithm

    cfg = _cfg(tmp_path)
    f = cfg.flow
    assert (cfg.sample.guidance_scale, f.ema_every, f.nft_beta, f.nft_kl_beta) == (1.0, 1, 1.0, 1e-4)
    algo = build_algorithm(cfg, Accelerator(cpu=True))
    with torch.no_grad():  # the old model differs from the trained weights: sampling must use the old one
        for p in algo.params:
            p.add_(0.05 * torch.randn_like(p))
    part = next(algo.sample(["a cat"], torch.Generator().manual_seed(0)))
    noise = torch.randn((1, 4, 16, 16), generator=torch.Generator().manual_seed(0))
    with algo.swapped(algo.old):
        ref = algo.pipe("a cat", num_inference_steps=4, height=32, width=32, guidance_scale=1.0, latents=noise,
                        max_sequence_length=128, output_type="pt").images
    torch.testing.assert_close(part.images, ref, atol=1e-5, rtol=0)
    again = next(algo.sample(["a cat"], torch.Generator().manual_seed(0)))
    assert torch.equal(again.x0, part.x0)  # deterministic given the initial noise
    with pytest.raises(ValueError, match="CFG-free"):
        _cfg(tmp_path, "sample.guidance_scale=4.5")


def _rows(path):
    with open(path) as f:
        return [{k: r[k] for k in ("iteration", "reward_mean", "loss", "grad_norm")} for r in csv.DictReader(f)]


def test_the_recipe_runs_resumes_exactly_and_refuses_a_changed_run(tmp_path):
    common = ["run.iterations=3", "run.checkpoint_every=2", "tasks.0.name=bright"]
    full = train(_cfg(tmp_path / "full", *common), rewards={"bright": Brightness()})
    rows = full["history"]
    assert [round(h["old_decay"], 6) for h in rows] == [0.001, 0.002, 0.003]  # type 1, one optimizer step a time
    assert all(h["nft_positive"] > 0 and h["nft_negative"] > 0 for h in rows) and rows[-1]["kl_loss"] > 0
    assert (tmp_path / "full/final/pytorch_lora_weights.safetensors").is_file()
    with pytest.raises(KeyboardInterrupt):  # dies inside iteration 3, after the step-2 checkpoint
        train(_cfg(tmp_path / "killed", *common), rewards={"bright": Brightness(die_at=3)})
    with pytest.raises(ResumeRefusedError, match=r"changed: flow\.nft_beta: 1\.0 -> 0\.1\. "):
        train(_cfg(tmp_path / "killed", *common, "run.resume=latest", "flow.nft_beta=0.1"),
              rewards={"bright": Brightness()})
    resumed = train(_cfg(tmp_path / "killed", *common, "run.resume=latest"), rewards={"bright": Brightness()})
    assert [h["iteration"] for h in resumed["history"]] == [3]
    for name in ("trainable.safetensors", "algorithm.safetensors"):  # the weights, their EMA and the old model
        a = load_file(str(tmp_path / "full/checkpoints/step_000003" / name))
        b = load_file(str(tmp_path / "killed/checkpoints/step_000003" / name))
        assert a.keys() == b.keys() and a
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert {k.split(".")[0] for k in a} == {"ema", "old"}
    assert _rows(tmp_path / "full/metrics.csv") == _rows(tmp_path / "killed/metrics.csv")
    assert full["history"][-1]["reward_mean"] == resumed["history"][-1]["reward_mean"]
