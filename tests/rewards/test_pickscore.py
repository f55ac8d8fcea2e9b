"""rewards/pickscore.py: PickScore v1 on a tiny random transformers CLIP (offline)."""

from __future__ import annotations

import pytest
import torch

import rewardbench
from rewardbench.weights import WeightsNotFoundError

from ..conftest import assert_gradient_step_raises
from .test_clip import PROMPTS, _photos


@pytest.fixture(scope="module")
def pick():
    return rewardbench.load_reward("pickscore", pretrained=False, tiny=True)


def test_pickscore_is_the_logit_scaled_cosine_of_transformers_clip(pick):
    """Model card: logit_scale.exp() * (text_embs @ image_embs.T) with normalised embeddings —
    the diagonal of transformers' own CLIPModel ``logits_per_image``."""
    x = _photos((96, 128))
    bb = pick.backbone
    tok = bb.tokenizer(PROMPTS, padding=True, truncation=True, max_length=77, return_tensors="pt")
    with torch.no_grad():
        out = pick(x, PROMPTS)
        ref = bb.model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"],
                       pixel_values=bb.preprocess(x)).logits_per_image
    torch.testing.assert_close(out.scores, torch.diagonal(ref), atol=1e-4, rtol=1e-4)
    assert bb.logit_scale == pytest.approx(float(bb.model.logit_scale.exp()))
    torch.testing.assert_close(out.scores, bb.logit_scale * out.details["cosine"])


def test_pickscore_preprocessing_is_the_clip_processor(pick):
    from transformers import CLIPImageProcessor

    x = _photos((300, 451))
    # the laion/CLIP-ViT-H-14-laion2B-s32B-b79K preprocessor_config.json values
    proc = CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}, resample=3,
                              image_mean=[0.48145466, 0.4578275, 0.40821073],
                              image_std=[0.26862954, 0.26130258, 0.27577711])
    ref = proc(images=list(x), do_rescale=False, return_tensors="pt")["pixel_values"]
    got = pick.backbone.preprocess(x)
    assert got.shape == ref.shape == (4, 3, 224, 224)
    assert (got - ref).abs().mean() < 0.02, (got - ref).abs().mean()


def test_a_transformers_checkpoint_loads(tmp_path, pick):
    from safetensors.torch import save_file

    from rewardbench.rewards.clip import build_clip

    # the same architecture (ViT-H/14 config, GELU) under another id: other random weights
    src = build_clip("laion/CLIP-ViT-H-14-laion2B-s32B-b79K", library="transformers", tiny=True)
    sd = {k: v.contiguous() for k, v in src.model.state_dict().items()}
    sd["text_model.embeddings.position_ids"] = torch.arange(77)[None]  # saved by transformers < 4.31
    save_file(sd, tmp_path / "model.safetensors")
    dst = rewardbench.load_reward("pickscore", pretrained=False, tiny=True)
    x = _photos()
    with torch.no_grad():
        expected = src.logit_scale * (src.encode_image(x) * src.encode_text(PROMPTS)).sum(-1)
        assert not torch.allclose(dst(x, PROMPTS).scores, expected)
        dst.load_pretrained(tmp_path)  # a folder, as a hub snapshot is
        torch.testing.assert_close(dst(x, PROMPTS).scores, expected)


def test_missing_pickscore_weights_fail_offline_without_downloading(unreachable, pick):
    with pytest.raises(WeightsNotFoundError, match="yuvalkirstain/PickScore_v1.*the hub is unreachable"):
        pick.load_pretrained()
    assert unreachable == []


def test_a_gradient_step_on_the_pixels_raises_pickscore(pick):
    assert_gradient_step_raises(pick, _photos(), PROMPTS)
