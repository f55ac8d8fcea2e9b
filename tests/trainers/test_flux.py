"""FLUX.1 in the flow trainers, on the tiny random FLUX (CPU): the deterministic sampler is FluxPipeline's own (the
packed latents, the shifted schedule, the timestep as sigma, the guidance embedding), the training pass recomputes
the sampling log-probabilities exactly (ratio 1 before any update), and Flow-GRPO (LoRA; also on a bf16 transformer
with gradient checkpointing) and DiffusionNFT (every weight) train and export weights that run-benchmark's generator
loads on the FLUX base, conditioned on the text tokens the trainer used."""

from __future__ import annotations

import pytest
import torch

from rewardbench.trainers.config import load_config
from rewardbench.trainers.train import train

QUIET = ["run.tensorboard=false", "run.progress=false", "run.sample_every=0", "model.pretrained=tiny-flux"]
# (the SD3 recipes with model.pretrained=tiny-flux; trainers/recipes/flow_grpo_flux_tiny.yaml is run below)


def _cfg(recipe, out, *extra):
    return load_config(f"trainers/recipes/{recipe}.yaml", [*QUIET, f"run.output_dir={out}", *extra])


def _ode_and_pipeline(pipe, pipeline_guidance: float = 3.5):
    """Our deterministic sampler's image of "a cat" (guidance 3.5) and FluxPipeline's from the same initial noise."""
    from rewardbench.trainers.flow_sampling import encode_prompts, pack_latents, sample_flow

    ours = sample_flow(pipe, pipe.transformer, encode_prompts(pipe, ["a cat"]), None, num_steps=4, resolution=32,
                       guidance_scale=3.5, noise_level=0.0, window=(0, 0), generator=torch.Generator().manual_seed(0))
    noise = torch.randn((1, 4, 16, 16), generator=torch.Generator().manual_seed(0))  # what sample_flow drew
    ref = pipe("a cat", num_inference_steps=4, height=32, width=32, guidance_scale=pipeline_guidance,
               latents=pack_latents(noise), max_sequence_length=128, output_type="pt").images
    return ours.images, ref


def test_the_ode_sampler_is_the_flux_pipelines_own():
    from rewardbench.benchmarks.pipelines import load_flow_pipeline

    pipe = load_flow_pipeline("tiny-flux")
    ours, ref = _ode_and_pipeline(pipe)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    _, other = _ode_and_pipeline(pipe, pipeline_guidance=1.0)
    assert (other - ref).abs().max() > 1e-4  # the guidance embedding is in the comparison


def test_the_training_pass_recomputes_the_sampling_log_probabilities(tmp_path):
    from accelerate import Accelerator

    from rewardbench.trainers.algorithms import build_algorithm

    cfg = _cfg("flow_grpo_tiny", tmp_path, "sample.guidance_scale=3.5")
    algo = build_algorithm(cfg, Accelerator(cpu=True))
    samples = algo.join(list(algo.sample(["a cat", "a cat", "a dog", "a dog"], torch.Generator().manual_seed(0))))
    assert samples.log_probs.shape == (4, samples.steps.shape[1]) and samples.steps.shape[1] >= 3
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5])
    idx = torch.arange(4)
    for j in range(samples.steps.shape[1]):
        with torch.no_grad():
            _, info = algo._loss(samples, adv, idx, j, algo.model)
        assert float(info["approx_kl"]) < 1e-8 and float(info["clipfrac"]) == 0.0, (j, info)


@pytest.mark.parametrize("recipe,extra,weights", [
    ("flow_grpo_flux_tiny", [], "pytorch_lora_weights.safetensors"),
    ("diffusion_nft_tiny", ["model.lora=false", "sample.guidance_scale=3.5"], "transformer"),
])
def test_flux_trains_and_its_weights_generate_on_the_flux_base(tmp_path, recipe, extra, weights):
    from rewardbench.benchmarks.pipelines import parse_source

    res = train(_cfg(recipe, tmp_path / "run", "run.iterations=2", *extra))
    assert len(res["history"]) == 2 and all(torch.isfinite(torch.tensor(h["loss"])) for h in res["history"])
    final = tmp_path / "run/final"
    assert (final / weights).exists()
    src = parse_source(str(final))
    assert src.pretrained == "tiny-flux"
    make = lambda pipe: pipe("a red apple", num_inference_steps=3, height=32, width=32, guidance_scale=3.5,  # noqa: E731
                             output_type="np", generator=torch.Generator().manual_seed(0)).images
    trained, base = make(src.load()), make(parse_source("tiny-flux").load())
    assert type(src.load()).__name__ == "FluxPipeline" and trained.shape == base.shape == (1, 32, 32, 3)
    assert not (trained == base).all()  # the trained weights are on


def test_diffusion_nft_guidance_is_refused_for_sd3_but_not_for_flux(tmp_path):
    _cfg("diffusion_nft_tiny", tmp_path, "sample.guidance_scale=3.5")  # FLUX: an embedding, still CFG-free
    with pytest.raises(ValueError, match="CFG-free"):
        load_config("trainers/recipes/diffusion_nft_tiny.yaml", ["sample.guidance_scale=3.5"])


def test_a_flux_scheduler_without_dynamic_shifting_gives_the_pipelines_schedule():
    """FLUX.1-schnell's kind of scheduler (no shift by image size): FluxPipeline's linspace sigmas all the same."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from rewardbench.benchmarks.pipelines import load_flow_pipeline
    from rewardbench.trainers.flow_sampling import schedule

    pipe = load_flow_pipeline("tiny-flux")
    pipe.scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    _, sigmas = schedule(pipe, 4, torch.device("cpu"), 32)
    assert sigmas.tolist() == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])
    ours, ref = _ode_and_pipeline(pipe)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_run_benchmark_conditions_flux_on_the_text_tokens_asked_for():
    from rewardbench.benchmarks.generators import DiffusersGenerator, GenerationSettings
    from rewardbench.benchmarks.pipelines import load_flow_pipeline

    def images(tokens):
        settings = GenerationSettings(steps=3, guidance_scale=3.5, resolution=32, max_sequence_length=tokens,
                                      device="cpu")
        return DiffusersGenerator("f", "tiny-flux", settings).generate(["a red apple"], [7])

    pipe = load_flow_pipeline("tiny-flux")
    ref = pipe("a red apple", num_inference_steps=3, height=32, width=32, guidance_scale=3.5, max_sequence_length=128,
               generator=[torch.Generator().manual_seed(7)], output_type="pt").images
    torch.testing.assert_close(images(128), ref, atol=1e-6, rtol=0)
    assert (images(None) - ref).abs().max() > 1e-4  # the pipeline's default (512 tokens) conditions otherwise
    assert "max_sequence_length" not in GenerationSettings().identity()  # earlier runs keep their identity


def test_flux_lora_trains_on_a_bf16_transformer_with_gradient_checkpointing(tmp_path):
    """In a process of its own (accelerate keeps one mixed-precision setting per process)."""
    import subprocess
    import sys

    from safetensors.torch import load_file

    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "rewardbench.cli", "train", "--config",
                        "trainers/recipes/flow_grpo_flux_tiny.yaml", "model.mixed_precision=bf16",
                        "model.gradient_checkpointing=true", "run.iterations=2", "run.tensorboard=false",
                        "run.sample_every=0", "run.checkpoint_every=0", f"run.output_dir={out}", "--no-progress"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    lora = load_file(str(out / "final/pytorch_lora_weights.safetensors"))
    assert lora and all(t.dtype == torch.float32 for t in lora.values())  # adapters in fp32 on the bf16 base
    assert any(t.abs().sum() > 0 for k, t in lora.items() if "lora_B" in k or "lora.up" in k)  # B moved from 0
