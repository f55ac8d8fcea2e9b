"""The tiny offline pipeline, sampling with log-probabilities, and where gradients flow."""

from __future__ import annotations

import pytest
import torch

from rewardbench.text import clip_tokenizer
from rewardbench.trainers.config import ModelConfig
from rewardbench.trainers.ddpo_math import clipped_policy_loss, ddim_step_with_logprob, normalize_advantages
from rewardbench.trainers.pipeline import (
    encode_prompts,
    load_pipeline,
    prepare_for_training,
    sample_with_logprob,
    unet_eps,
)


def test_tokenizer_is_the_real_clip_bpe():
    tok = clip_tokenizer()
    # ids of openai/clip-vit-large-patch14's tokenizer: <|startoftext|> a photo of a cat <|endoftext|>
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tok.model_max_length == 77
    assert len(tok("word " * 100, truncation=True, max_length=77).input_ids) == 77


def test_sampling_keeps_every_step_and_logprobs_recompute():
    pipe = load_pipeline("tiny")
    cond = encode_prompts(pipe, ["a cat", "a dog"])
    unc = encode_prompts(pipe, ["", ""])
    gen = torch.Generator().manual_seed(0)
    out = sample_with_logprob(pipe, cond, unc, num_steps=3, guidance_scale=7.0, resolution=32, generator=gen)
    assert out.latents.shape == (2, 4, 4, 16, 16)  # x_T .. x_0
    assert out.log_probs.shape == (2, 3) and torch.isfinite(out.log_probs).all()
    assert out.images.shape == (2, 3, 32, 32) and 0 <= out.images.min() and out.images.max() <= 1
    # the training pass evaluates the same step at a per-sample timestep and gets the same log-prob
    sched = pipe.scheduler
    for k in range(3):
        t = out.timesteps[k].repeat(2)
        eps = unet_eps(pipe.unet, out.latents[:, k], t, cond, unc, 7.0)
        _, lp = ddim_step_with_logprob(eps, t, out.latents[:, k], sched.alphas_cumprod, 1000 // 3,
                                       final_alpha_cumprod=sched.final_alpha_cumprod,
                                       prev_sample=out.latents[:, k + 1])
        torch.testing.assert_close(lp, out.log_probs[:, k], rtol=1e-5, atol=1e-5)
    # same seed, same samples
    again = sample_with_logprob(pipe, cond, unc, num_steps=3, resolution=32, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(again.latents, out.latents)


def test_offline_failure_is_clear(tmp_path):
    with pytest.raises(OSError, match="model.pretrained=tiny"):
        load_pipeline(str(tmp_path / "no_such_pipeline"))


@pytest.mark.parametrize("lora", [True, False])
def test_gradients_flow_only_to_trainable_weights(lora):
    torch.manual_seed(0)
    pipe = load_pipeline("tiny")
    params = prepare_for_training(pipe, ModelConfig(lora=lora, lora_rank=2), "cpu")
    trainable = {id(p) for p in params}
    if lora:
        assert params and all("lora" in n for n, p in pipe.unet.named_parameters() if id(p) in trainable)
    else:
        assert len(params) == len(list(pipe.unet.parameters()))
    cond = encode_prompts(pipe, ["a cat", "a dog"])
    unc = encode_prompts(pipe, ["", ""])
    out = sample_with_logprob(pipe, cond, unc, num_steps=2, resolution=32, generator=torch.Generator().manual_seed(1))
    t = out.timesteps[0].repeat(2)
    eps = unet_eps(pipe.unet, out.latents[:, 0], t, cond, unc, 7.0)
    _, lp = ddim_step_with_logprob(eps, t, out.latents[:, 0], pipe.scheduler.alphas_cumprod, 500,
                                   prev_sample=out.latents[:, 1])
    loss, _ = clipped_policy_loss(lp, out.log_probs[:, 0], normalize_advantages(torch.tensor([0.0, 1.0])))
    loss.backward()
    grads = [p.grad for p in params]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    for n, p in pipe.unet.named_parameters():
        if id(p) not in trainable:
            assert p.grad is None, f"frozen UNet weight {n} got a gradient"
    for module in (pipe.vae, pipe.text_encoder):
        assert all(p.grad is None and not p.requires_grad for p in module.parameters())
