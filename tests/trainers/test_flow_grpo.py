"""Flow-GRPO and Flow-GRPO-Fast in the shared loop on the tiny random SD3 (CPU): the tiny recipe runs and its LoRA
loads as a run-benchmark generator, a run resumes exactly (EMA included) and refuses a changed one, zero-advantage
samples are left out, the Fast window lies in the first half, a UNet base is refused before anything loads, and
two processes (gloo) end with equal replicas."""

from __future__ import annotations

import csv

import pytest
import torch
from safetensors.torch import load_file

from rewardbench.trainers.checkpoints import ResumeRefusedError
from rewardbench.trainers.config import load_config
from rewardbench.trainers.train import train

RECIPE = "trainers/recipes/flow_grpo_tiny.yaml"
QUIET = ["run.tensorboard=false", "run.progress=false", "run.sample_every=0"]


def _cfg(out, *extra):
    return load_config(RECIPE, [*QUIET, f"run.output_dir={out}", *extra])


class Brightness:
    """Mean pixel value of each image; "kills" the run on its n-th call (a KeyboardInterrupt) when asked."""

    def __init__(self, die_at=None, sign=1.0):
        self.calls, self.die_at, self.sign = 0, die_at, sign

    def __call__(self, images, prompts, metadata):
        self.calls += 1
        if self.die_at is not None and self.calls == self.die_at:
            raise KeyboardInterrupt("simulated kill")
        return self.sign * images.mean(dim=(1, 2, 3)), {}


def _rows(path):
    with open(path) as f:
        return [{k: r[k] for k in ("iteration", "task", "reward_mean", "loss", "grad_norm")} for r in csv.DictReader(f)]


def test_the_tiny_recipe_trains_and_its_lora_generates_in_run_benchmark(tmp_path):
    from rewardbench.benchmarks.pipelines import parse_source

    res = train(_cfg(tmp_path / "run", "run.iterations=2"))
    cfg = res["history"][0]
    assert [h["iteration"] for h in res["history"]] == [1, 2]
    assert {"kl_loss", "trained_samples", "approx_kl", "clipfrac"} <= set(cfg)
    assert res["history"][1]["kl_loss"] > 0  # the LoRA moved away from the base after the first update
    final = tmp_path / "run/final"
    assert (final / "pytorch_lora_weights.safetensors").is_file()
    assert (tmp_path / "run/checkpoints/step_000002/algorithm.safetensors").is_file()  # the EMA
    src = parse_source(str(final))
    assert (src.pretrained, src.lora) == ("tiny-sd3", str(final))
    make = lambda pipe: pipe("a red apple", num_inference_steps=3, height=32, width=32, guidance_scale=4.5,  # noqa: E731
                             output_type="np", generator=torch.Generator().manual_seed(0)).images
    trained, base = make(src.load()), make(parse_source("tiny-sd3").load())
    assert trained.shape == base.shape == (1, 32, 32, 3)
    assert not (trained == base).all()  # the LoRA is on


def test_resume_after_kill_matches_uninterrupted_run_and_a_changed_run_is_refused(tmp_path):
    common = ["run.iterations=3", "run.checkpoint_every=2", "tasks.0.name=bright"]
    full = train(_cfg(tmp_path / "full", *common), rewards={"bright": Brightness()})
    with pytest.raises(KeyboardInterrupt):  # dies inside iteration 3, after the step-2 checkpoint
        train(_cfg(tmp_path / "killed", *common), rewards={"bright": Brightness(die_at=3)})
    with pytest.raises(ResumeRefusedError, match=r"changed: flow\.noise_level: 0\.7 -> 0\.5\. "):
        train(_cfg(tmp_path / "killed", *common, "run.resume=latest", "flow.noise_level=0.5"),
              rewards={"bright": Brightness()})
    with pytest.raises(ResumeRefusedError, match=r"train\.algorithm"):
        train(_cfg(tmp_path / "killed", *common, "run.resume=latest", "train.algorithm=flow_grpo_fast",
                   "flow.window_size=2"), rewards={"bright": Brightness()})
    resumed = train(_cfg(tmp_path / "killed", *common, "run.resume=latest"), rewards={"bright": Brightness()})
    assert [h["iteration"] for h in resumed["history"]] == [3]
    for name in ("trainable.safetensors", "algorithm.safetensors"):  # the weights and their EMA
        a = load_file(str(tmp_path / "full/checkpoints/step_000003" / name))
        b = load_file(str(tmp_path / "killed/checkpoints/step_000003" / name))
        assert a.keys() == b.keys() and a
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert _rows(tmp_path / "full/metrics.csv") == _rows(tmp_path / "killed/metrics.csv")
    assert full["history"][-1]["reward_mean"] == resumed["history"][-1]["reward_mean"]
    ema = load_file(str(tmp_path / "full/checkpoints/step_000003/algorithm.safetensors"))
    weights = load_file(str(tmp_path / "full/checkpoints/step_000003/trainable.safetensors"))
    assert sorted(float(t.abs().sum()) for t in ema.values()) != \
        sorted(float(t.abs().sum()) for t in weights.values())  # the EMA lags the weights


def test_zero_advantages_are_left_out(tmp_path):
    """A constant reward gives every sample advantage 0: nothing is trained, no optimizer step is taken."""
    res = train(_cfg(tmp_path / "run", "run.iterations=1", "tasks.0.name=const"),
                rewards={"const": lambda images, prompts, meta: (torch.ones(len(prompts)), {})})
    row = res["history"][0]
    assert row["trained_samples"] == 0 and row["policy_loss"] == 0 and row["grad_norm"] != row["grad_norm"]  # nan
    from rewardbench.benchmarks.pipelines import load_pipeline

    base = dict(load_pipeline("tiny-sd3").transformer.named_parameters())
    for name, p in res["unet"].named_parameters():
        if "lora_B" in name:  # LoRA's B starts at zero and stays there
            assert not p.detach().any(), name
        elif not p.requires_grad:
            assert torch.equal(p.detach(), base[name.replace(".base_layer", "")].detach()), name


def test_the_fast_window_lies_in_the_first_half_and_the_steps_before_it_are_deterministic(tmp_path):
    from accelerate import Accelerator

    from rewardbench.trainers.algorithms import build_algorithm

    cfg = _cfg(tmp_path, "train.algorithm=flow_grpo_fast", "sample.num_steps=6", "flow.window_size=2")
    # the published fast settings under the recipe's own (its guidance 4.5; Fast's own is 1, no CFG)
    assert (cfg.flow.sde_type, cfg.flow.noise_level, cfg.flow.kl_beta, cfg.flow.train_cfg, cfg.train.clip_range) == \
        ("cps", 0.8, 0.0, False, 1e-5) and cfg.sample.guidance_scale == 4.5
    algo = build_algorithm(cfg, Accelerator(cpu=True))
    g = torch.Generator().manual_seed(0)
    starts = set()
    for _ in range(12):
        part = next(algo.sample(["a cat"], g))
        steps = part.steps[0].tolist()
        assert len(steps) == 2 and steps[1] == steps[0] + 1 and 0 <= steps[0] <= 1  # [lo, hi - size] = [0, 1]
        starts.add(steps[0])
        assert part.log_probs.shape == (1, 2)
    assert starts == {0, 1}
    # before the window the steps are the deterministic (Euler) sampler's: the same latent from the same noise
    from rewardbench.trainers.flow_sampling import encode_prompts, sample_flow

    text, neg = encode_prompts(algo.pipe, ["a cat"]), encode_prompts(algo.pipe, [""])
    run = lambda a, window: sample_flow(algo.pipe, algo.model, text, neg, num_steps=6, resolution=32,  # noqa: E731
                                        guidance_scale=4.5, noise_level=a, window=window, sde_type="cps",
                                        generator=torch.Generator().manual_seed(1))
    fast, ode = run(0.8, (2, 4)), run(0.0, (0, 6))
    assert torch.equal(fast.latents[:, 0], ode.latents[:, 2]) and fast.steps.tolist() == [2, 3]
    assert not torch.equal(fast.final, ode.final)
    with pytest.raises(ValueError, match="flow.window_size=4 does not fit"):
        _cfg(tmp_path, "train.algorithm=flow_grpo_fast", "sample.num_steps=6", "flow.window_size=4")


def test_usage_mistakes_are_refused_before_any_model_loads(tmp_path):
    from click.testing import CliRunner

    from rewardbench.cli.train import train as train_command

    with pytest.raises(ValueError, match="model.pretrained=tiny is a UNet pipeline"):
        _cfg(tmp_path, "model.pretrained=tiny")
    with pytest.raises(ValueError, match="flow.sde_type must be 'sde' or 'cps'"):
        _cfg(tmp_path, "flow.sde_type=ode")
    r = CliRunner().invoke(train_command, ["--config", RECIPE, "model.pretrained=tiny", f"run.output_dir={tmp_path}"])
    assert r.exit_code == 2 and "UNet pipeline" in r.output and len(r.output.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("extra", [
    [],
    ["model.pretrained=tiny-flux", "sample.guidance_scale=3.5"],  # FLUX: its transformer wrapped in DDP
    ["train.algorithm=diffusion_nft", "sample.guidance_scale=1.0", "flow.optimizer_steps=2"],
], ids=["flow_grpo", "flow_grpo-flux", "diffusion_nft"])
def test_two_process_gloo_run(tmp_path, extra):
    from .two_process import two_process_run

    out = tmp_path / "run"
    r0, r1 = two_process_run(tmp_path / "res", RECIPE, [
        *QUIET, f"run.output_dir={out}", "run.iterations=2", "run.checkpoint_every=0", "sample.batch_size=4",
        "sample.images_per_prompt=2", "flow.kl_beta=0.04", *extra])
    assert r0["world"] == 2 == r1["world"]
    assert [h["reward_mean"] for h in r0["history"]] == [h["reward_mean"] for h in r1["history"]]
    assert [h["kl_loss"] for h in r0["history"]] == [h["kl_loss"] for h in r1["history"]]  # averaged
    saved = load_file(str(out / "checkpoints/step_000002/trainable.safetensors"))
    assert r0["params"].keys() == r1["params"].keys() == saved.keys()
    for k in saved:
        assert torch.equal(r0["params"][k], r1["params"][k]) and torch.equal(r0["params"][k], saved[k]), k
    assert any(saved[k].any() for k in saved if "lora_B" in k)  # training moved the LoRA (B starts at zero)


@pytest.mark.parametrize("algorithm", ["flow_grpo", "diffusion_nft"])
def test_full_fine_tuning_exports_the_transformer_and_keeps_a_frozen_reference(tmp_path, algorithm):
    from rewardbench.benchmarks.pipelines import parse_source

    extra = ["sample.guidance_scale=1.0"] if algorithm == "diffusion_nft" else ["flow.kl_beta=0.04"]
    res = train(_cfg(tmp_path / "run", f"train.algorithm={algorithm}", "model.lora=false", "run.iterations=2",
                     "run.checkpoint_every=0", "flow.ema=false", *extra), rewards={"compress": Brightness()})
    assert res["history"][-1]["kl_loss"] > 0  # the trained transformer moved away from its frozen reference
    final = tmp_path / "run/final"
    assert (final / "transformer/config.json").is_file() and not (final / "pytorch_lora_weights.safetensors").exists()
    src = parse_source(str(final))
    assert src.unet == str(final / "transformer") and src.lora is None
    trained = dict(src.load().transformer.named_parameters())
    base = dict(parse_source("tiny-sd3").load().transformer.named_parameters())
    assert any(not torch.equal(trained[k], base[k]) for k in base)
    assert all(torch.equal(trained[k], p.detach()) for k, p in res["unet"].named_parameters())  # what trained
