"""benchmarks/pipelines.py: generator sources, the tiny pipeline, and a trainer's final/ output as a generator."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from rewardbench.benchmarks.pipelines import PipelineSource, load_pipeline, parse_source


def test_source_strings():
    assert parse_source("tiny") == PipelineSource("tiny")
    assert parse_source("tiny:7").tiny_seed == 7 and parse_source("tiny:7").random_weights
    assert parse_source("sd2-base-random").pretrained == "sd2-base-random"
    hub = parse_source("stabilityai/stable-diffusion-2-base")
    assert hub.pretrained == "stabilityai/stable-diffusion-2-base" and not hub.random_weights and hub.lora is None
    both = parse_source("runwayml/stable-diffusion-v1-5+loras/pixel.safetensors")
    assert (both.pretrained, both.lora) == ("runwayml/stable-diffusion-v1-5", "loras/pixel.safetensors")
    with pytest.raises(ValueError, match="integer"):
        parse_source("tiny:x")
    assert parse_source("tiny+loras/a+b").lora == "loras/a+b"  # the first '+' splits base from LoRA


def test_trainer_final_output_loads_on_the_base_its_run_names(trained_lora, tmp_path):
    src = parse_source(trained_lora)
    assert (src.pretrained, src.tiny_seed, src.lora) == ("tiny", 0, trained_lora)
    tuned, base = src.load(), load_pipeline("tiny")
    assert any("lora" in n for n, _ in tuned.unet.named_parameters())
    x = torch.randn(1, 4, 8, 8)
    t = torch.tensor([500])
    emb = torch.randn(1, 77, 32)
    with torch.no_grad():
        assert not torch.allclose(tuned.unet(x, t, emb).sample, base.unet(x, t, emb).sample)
    # weights without the run's config.json: the base must be named
    lonely = tmp_path / "final"
    lonely.mkdir()
    shutil.copy(f"{trained_lora}/pytorch_lora_weights.safetensors", lonely)
    with pytest.raises(ValueError, match=r"BASE\+"):
        parse_source(str(lonely))
    (tmp_path / "config.json").write_text(json.dumps({"model": {"pretrained": "tiny", "tiny_seed": 3}}))
    assert parse_source(str(lonely)).tiny_seed == 3
    with pytest.raises(ValueError, match="one LoRA"):
        parse_source(f"{lonely}+other.safetensors")


def test_full_finetune_output_replaces_the_unet(tmp_path):
    base = load_pipeline("tiny", seed=5)
    final = tmp_path / "run" / "final"
    base.unet.save_pretrained(final / "unet")
    (tmp_path / "run" / "config.json").write_text(json.dumps({"model": {"pretrained": "tiny", "tiny_seed": 0}}))
    src = parse_source(str(final))
    assert src.unet == str(final / "unet") and src.lora is None
    loaded = src.load()
    for (n, a), (_, b) in zip(loaded.unet.named_parameters(), base.unet.named_parameters()):
        assert torch.equal(a, b), n
    assert not torch.equal(next(load_pipeline("tiny").unet.parameters()), next(loaded.unet.parameters()))


def test_missing_pipeline_or_lora_is_a_clear_error(tmp_path):
    with pytest.raises(OSError, match="--model tiny"):
        load_pipeline(str(tmp_path / "nowhere"))
    with pytest.raises(OSError, match="no LoRA weights"):
        load_pipeline("tiny", lora=tmp_path)


def test_a_local_pipeline_folder_generates_like_the_pipeline_it_holds(tmp_path):
    from rewardbench.benchmarks.generators import DiffusersGenerator, GenerationSettings

    load_pipeline("tiny", seed=2).save_pretrained(tmp_path / "pipe")
    src = parse_source(str(tmp_path / "pipe"))
    assert src == PipelineSource(str(tmp_path / "pipe")) and not src.random_weights
    pipe = src.load()
    assert type(pipe).__name__ == "StableDiffusionPipeline" and type(pipe.scheduler).__name__ == "DDIMScheduler"
    settings = GenerationSettings(steps=2, resolution=32)
    a = DiffusersGenerator("saved", str(tmp_path / "pipe"), settings).generate(["a cat"], [7])
    b = DiffusersGenerator("built", "tiny:2", settings).generate(["a cat"], [7])
    torch.testing.assert_close(a, b)


def test_tiny_sd3_is_a_flow_matching_pipeline_that_generates_offline(tmp_path):
    from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline

    from rewardbench.benchmarks.pipelines import load_flow_pipeline, vae_scale, vae_scale_before_loading

    pipe = load_pipeline("tiny-sd3")
    assert isinstance(pipe, StableDiffusion3Pipeline) and isinstance(pipe.scheduler, FlowMatchEulerDiscreteScheduler)
    assert vae_scale(pipe) == vae_scale_before_loading("tiny-sd3") == 4
    run = lambda p: p("a red cube", num_inference_steps=2, height=32, width=32, guidance_scale=1.0,  # noqa: E731
                      output_type="np", generator=torch.Generator().manual_seed(0)).images
    img = run(pipe)
    assert img.shape == (1, 32, 32, 3) and 0.0 <= img.min() <= img.max() <= 1.0
    assert (run(load_pipeline("tiny-sd3")) == img).all()  # same weights seed, same image
    assert not (run(load_pipeline("tiny-sd3", seed=1)) == img).all()
    # the transformer of a flow trainer's final/ replaces the base's
    pipe.transformer.save_pretrained(tmp_path / "transformer")
    assert isinstance(load_pipeline("tiny-sd3", unet=tmp_path / "transformer").transformer,
                      type(pipe.transformer))
    with pytest.raises(ValueError, match="UNet pipeline"):
        load_flow_pipeline("tiny")
