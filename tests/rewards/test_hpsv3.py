"""rewards/hpsv3.py: HPSv3 on a tiny random Qwen2-VL (offline).

Official reference: PyPI ``hpsv3`` 1.0.0 (github.com/MizzenAI/HPSv3): ``hpsv3/dataset/data_collator_qwen.py``
(INSTRUCTION, prompt_with_special_token), ``hpsv3/inference.py`` (the message and the processor call),
``hpsv3/model/qwen2vl_trainer.py`` (the forward: embeddings, image features scattered in, the decoder called with
``position_ids=None``, the RankNet head at ``<|Reward|>``).
"""

from __future__ import annotations

import hashlib
import time

import pytest
import torch

import rewardbench
from rewardbench.rewards import _vlm
from rewardbench.rewards.hpsv3 import HPSV3_INSTRUCTION, hpsv3_text, official_to_ours
from rewardbench.weights import CheckpointMismatchError, WeightsNotFoundError

from ..conftest import assert_gradient_step_raises
from .test_vlm import render_official

PROMPTS = ["a cat", "two dogs on the left of a red car, in the rain"]


@pytest.fixture(scope="module")
def hps():
    return rewardbench.load_reward("hpsv3", pretrained=False, tiny=True)


@pytest.fixture(scope="module")
def photos():
    from .test_clip import _photos

    return _photos((72, 96))[:2]


def test_hpsv3_prompt_is_the_official_text():
    # sha256 and length of data_collator_qwen.py's INSTRUCTION as the hpsv3 1.0.0 wheel holds it
    assert hashlib.sha256(HPSV3_INSTRUCTION.encode()).hexdigest() == (
        "0393599dad45a971903d1d62a3acf9bad3ccccdafa7f40f680523419e1f68b7a")
    assert len(HPSV3_INSTRUCTION) == 2523
    text = hpsv3_text("a {curly} cat")
    assert text.startswith("\nYou are tasked with evaluating a generated image based on Visual Quality and Text "
                           "Alignment and give a overall score")
    assert text.endswith("Textual prompt - a {curly} cat\n\n\n\nPlease provide the overall ratings of this image: "
                         "<|Reward|>\n\nEND\n")
    # the whole prompt as Qwen2-VL-7B-Instruct's chat template renders the official message
    official = render_official("qwen2_vl", HPSV3_INSTRUCTION.format(text_prompt="a {curly} cat")
                               + "\nPlease provide the overall ratings of this image: <|Reward|>\n\nEND\n")
    assert _vlm.chat_text("qwen2_vl", text) == official


def test_hpsv3_reproduces_the_official_forward_with_sequential_positions(hps, photos):
    """The official forward on one unpadded item: token embeddings with the image features scattered in, the
    decoder called without position ids, the head on the hidden state at <|Reward|>: μ is our score."""
    vl = hps.vlm
    text = _vlm.chat_text("qwen2_vl", hpsv3_text(PROMPTS[1]))
    with torch.no_grad():
        ours = hps(photos[1:], PROMPTS[1:])
        pv, grid = vl.preprocess(photos[1:], hps.budget)
        ids, mask = vl.sequences([text], grid)
        feats = vl.model.model.get_image_features(pv, grid)
        feats = getattr(feats, "pooler_output", feats)
        feats = torch.cat(list(feats)) if isinstance(feats, (list, tuple)) else feats
        emb = vl.model.model.get_input_embeddings()(ids)
        emb = emb.masked_scatter((ids == vl.image_token_id)[..., None].expand_as(emb), feats)
        hidden = vl.model.model.language_model(inputs_embeds=emb, attention_mask=mask).last_hidden_state
        at = ids == vl.tokenizer.token_to_id("<|Reward|>")
        mu_sigma = hps.head(hidden[at].float())
    torch.testing.assert_close(ours.scores, mu_sigma[:, 0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.details["sigma"], mu_sigma[:, 1], atol=1e-5, rtol=1e-5)
    # the 3-D multimodal positions would differ (the text after the image sits max(rows, cols) after its start)
    mrope = vl.positions(ids, mask, grid, "mrope")
    assert not torch.equal(mrope, vl.positions(ids, mask, grid, "sequential"))


def test_hpsv3_budget_is_the_official_448_square():
    r = rewardbench.get_spec("hpsv3")
    assert r.tiny_config == {"tiny": True}
    from rewardbench.rewards.hpsv3 import PIXELS, HPSv3

    assert PIXELS == 200704
    full = HPSv3.__new__(HPSv3)  # the budget only; building the 7B model needs its files
    full.budget = _vlm.PixelBudget(PIXELS, PIXELS)
    assert _vlm.smart_resize(1024, 1024, 28, PIXELS, PIXELS) == (448, 448)
    assert _vlm.smart_resize(768, 1024, 28, PIXELS, PIXELS) == (364, 504)


def _official_layout(reward) -> dict[str, torch.Tensor]:
    """Our tiny reward's weights saved as the official checkpoint is (transformers 4.45 layout + rm_head)."""
    sd = {}
    for k, v in reward.vlm.model.state_dict().items():
        if k.startswith("model.language_model."):
            k = "model." + k[len("model.language_model."):]
        elif k.startswith("model.visual."):
            k = k[len("model."):]
        sd[k] = v.detach().clone().contiguous()
    sd.update({f"rm_head.{k}": v.detach().clone() for k, v in reward.head.state_dict().items()})
    return sd


def test_an_official_layout_checkpoint_loads(tmp_path, photos):
    from safetensors.torch import save_file

    src = rewardbench.load_reward("hpsv3", pretrained=False, tiny=True)
    with torch.no_grad():
        for p in src.parameters():  # other weights than a fresh tiny build
            p.add_(0.01 * torch.randn_like(p))
        expected = src(photos, PROMPTS).scores
    sd = _official_layout(src)
    assert "model.layers.0.self_attn.q_proj.weight" in sd and "visual.blocks.0.attn.qkv.weight" in sd
    save_file(sd, tmp_path / "HPSv3.safetensors")
    dst = rewardbench.load_reward("hpsv3", pretrained=False, tiny=True)
    with torch.no_grad():
        assert not torch.allclose(dst(photos, PROMPTS).scores, expected)
        prov = dst.load_pretrained(tmp_path / "HPSv3.safetensors")
        torch.testing.assert_close(dst(photos, PROMPTS).scores, expected)
    assert prov[0].kind == "file"
    model_sd, head_sd = official_to_ours(sd)
    assert set(model_sd) == set(src.vlm.model.state_dict()) and set(head_sd) == set(src.head.state_dict())
    # a checkpoint whose embeddings do not have one row per token (base tokenizer + <|Reward|>) is refused
    sd["model.embed_tokens.weight"] = sd["model.embed_tokens.weight"][:-1]
    sd["lm_head.weight"] = sd["lm_head.weight"][:-1]
    save_file(sd, tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointMismatchError, match="embedding rows"):
        dst.load_pretrained(tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointMismatchError, match="unexpected key"):
        official_to_ours({"text_model.weight": torch.zeros(1)})


def test_missing_hpsv3_weights_fail_fast_offline(unreachable, hps):
    with pytest.raises(WeightsNotFoundError, match="MizzenAI/HPSv3.*the hub is unreachable"):
        hps.load_pretrained()
    t0 = time.perf_counter()
    with pytest.raises(WeightsNotFoundError, match="HPSv3.safetensors"):
        rewardbench.load_reward("hpsv3")  # the 7B model is never built
    assert time.perf_counter() - t0 < 30
    assert unreachable == []


def test_hpsv3_keeps_its_head_in_float32(photos):
    r = rewardbench.load_reward("hpsv3", pretrained=False, tiny=True, dtype="bfloat16")
    assert r.vlm.vision_dtype == torch.bfloat16 and r.head[0].weight.dtype == torch.float32
    with torch.no_grad():
        out = r(photos, PROMPTS)
    assert out.scores.dtype == torch.float32 and torch.isfinite(out.scores).all()


def test_a_prompt_holding_the_reward_token_is_refused(hps, photos):
    with pytest.raises(ValueError, match="one <\\|Reward\\|> token"):
        hps(photos[:1], ["a cat <|Reward|>"])


def test_a_gradient_step_on_the_pixels_raises_hpsv3(hps, photos):
    assert_gradient_step_raises(hps, photos, PROMPTS)


def test_pil_preprocess_is_the_same_model_on_official_pixels(hps):
    """``pil_preprocess=True`` only changes the resize: on uint8 pixels already at the budget's size both paths feed
    the model the same patches."""
    from .test_clip import _photos

    x = (_photos((56, 56))[:2] * 255).round() / 255
    r = rewardbench.load_reward("hpsv3", pretrained=False, tiny=True, pil_preprocess=True)
    with torch.no_grad():
        torch.testing.assert_close(r(x, PROMPTS).scores, hps(x, PROMPTS).scores, atol=1e-6, rtol=1e-6)
