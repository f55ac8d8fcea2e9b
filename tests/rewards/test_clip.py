"""rewards/clip.py: the shared CLIP backbone and the CLIPScore variants (tiny random models, offline)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import rewardbench
from rewardbench.rewards.clip import (
    ClipScore,
    build_clip,
    clip_weight_sources,
    load_clip_weights,
    resize_longest_pad,
)
from rewardbench.text import clip_tokenizer
from rewardbench.transforms import CLIP_MEAN, CLIP_STD
from rewardbench.weights import CheckpointMismatchError, WeightsNotFoundError

from ..conftest import assert_gradient_step_raises, real_photo

PROMPTS = ["a photo of an astronaut", "a cup of coffee", "a photo of a cat", "a portrait of a woman in uniform"]


def _photos(size=(96, 128)) -> torch.Tensor:
    arrs = [real_photo(n) for n in ("astronaut", "coffee", "chelsea", "grace_hopper")]
    ts = [torch.from_numpy(np.array(a)).permute(2, 0, 1).float()[None] / 255 for a in arrs]
    return torch.cat([F.interpolate(t, size=size, mode="bilinear", antialias=True) for t in ts]).clamp(0, 1)


@pytest.fixture(scope="module")
def clip():
    return build_clip("ViT-L-14", "openai", tiny=True)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


# -- the backbone ------------------------------------------------------------------------------

def test_random_backbones_are_seeded_by_their_id_and_leave_the_global_rng_alone(clip):
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    again = build_clip("ViT-L-14", "openai", tiny=True)
    assert torch.equal(torch.rand(3), before), "build_clip consumed the global RNG"
    assert again.backbone_id == clip.backbone_id == "open_clip:ViT-L-14/openai+tiny"
    assert _same_weights(again, clip)
    other = build_clip("ViT-B-32", "openai", tiny=True)
    assert not _same_weights(other, clip)


def test_encode_image_is_normalised_and_matches_an_independent_preprocessing(clip):
    from torchvision.transforms.v2 import functional as TF

    x = _photos((96, 128))
    feats = clip.encode_image(x)
    assert feats.shape == (4, 32) and feats.dtype == torch.float32
    torch.testing.assert_close(feats.norm(dim=-1), torch.ones(4))
    # torchvision's tensor path: Resize(224, bicubic, antialias) → CenterCrop(224) → Normalize
    ref = TF.center_crop(TF.resize(x, 224, interpolation=TF.InterpolationMode.BICUBIC, antialias=True).clamp(0, 1), 224)
    ref = TF.normalize(ref, CLIP_MEAN, CLIP_STD)
    torch.testing.assert_close(clip.preprocess(x), ref, atol=1e-5, rtol=0)
    direct = F.normalize(clip.model.encode_image(ref), dim=-1)
    torch.testing.assert_close(feats, direct, atol=1e-5, rtol=1e-5)


def test_text_features_are_computed_once_per_unique_prompt():
    clip = build_clip("ViT-B-32", "openai", tiny=True)
    feats = clip.encode_text(["a cat", "a dog", "a cat", "a cat"])
    assert clip.text_calls == 1 and clip.text_cache.encoded == 2
    torch.testing.assert_close(feats[0], feats[2])
    torch.testing.assert_close(feats.norm(dim=-1), torch.ones(4))
    clip.encode_text(["a dog", "a cat"])
    assert clip.text_calls == 1, "cached prompts must not call the encoder again"
    clip.encode_text(["a dog", "a bird"])
    assert clip.text_calls == 2 and clip.text_cache.encoded == 3
    # the features are those of the text tower, token by token
    tokens = clip.tokenizer(["a bird"])
    torch.testing.assert_close(clip.encode_text(["a bird"]), F.normalize(clip.model.encode_text(tokens), dim=-1))


def test_hf_tokenizer_built_offline_matches_open_clip_tokenizer():
    from open_clip.tokenizer import SimpleTokenizer

    prompts = ["a photo of an astronaut riding a horse!", "Two dogs, LEFT of a red car.",
               "a   café   with \"quotes\" and numbers 1234"]
    hf = clip_tokenizer()(prompts)["input_ids"]
    oc = SimpleTokenizer()(prompts)
    for ids, row in zip(hf, oc):
        n = len(ids)
        assert ids[0] == 49406 and ids[-1] == 49407
        assert row[:n].tolist() == ids


def test_transformers_backbone_encodes_images_and_text():
    hf = build_clip("openai/clip-vit-large-patch14", library="transformers", tiny=True)
    assert hf.backbone_id == "transformers:openai/clip-vit-large-patch14+tiny"
    img, txt = hf.encode_image(_photos()), hf.encode_text(PROMPTS)
    assert img.shape == txt.shape == (4, 32)
    # the same as transformers' own CLIPModel forward (logits = scale * cos)
    tok = hf.tokenize(PROMPTS)
    out = hf.model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"],
                   pixel_values=hf.preprocess(_photos()))
    torch.testing.assert_close(out.logits_per_image, hf.logit_scale * img @ txt.T, atol=1e-4, rtol=1e-4)


def test_unknown_architectures_and_tags_fail_clearly():
    with pytest.raises(ValueError, match="no pretrained tag 'nonsense'"):
        build_clip("ViT-L-14", "nonsense", tiny=True)
    with pytest.raises(ValueError, match="not known offline"):
        build_clip("someone/clip-like", library="transformers", tiny=True)


def test_pil_path_is_close_to_the_torch_path_on_real_photos(clip):
    x = _photos((300, 451))
    pil = build_clip("ViT-L-14", "openai", tiny=True, pil_preprocess=True)
    assert pil.backbone_id.endswith("+pil") and _same_weights(pil, clip)
    a, b = clip.preprocess(x), pil.preprocess(x)
    diff = ((a - b) * torch.tensor(CLIP_STD).view(1, 3, 1, 1)).abs()  # back in [0, 1] pixel units
    assert diff.mean() < 0.01 and diff.max() < 0.25, (diff.mean(), diff.max())
    torch.testing.assert_close(clip.encode_preprocessed(a), pil.encode_preprocessed(b), atol=0.05, rtol=0)


def _hf_pil_processor():
    """The PIL image processor the PickScore snippet and torchmetrics ran when published (transformers 4's
    ``CLIPImageProcessor``; ``CLIPImageProcessorPil`` on transformers 5), with the preprocessor_config.json
    values of openai/clip-vit-large-patch14 and laion/CLIP-ViT-H-14 (identical)."""
    try:
        from transformers import CLIPImageProcessorPil as Proc
    except ImportError:  # transformers < 5: the default class is the PIL one
        from transformers import CLIPImageProcessor as Proc
    return Proc(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}, resample=3,
                do_center_crop=True, image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD))


@pytest.mark.parametrize("name", ["clipscore-100", "pickscore"])
def test_transformers_backbones_crop_where_the_hf_processor_crops(name, photos):
    """CLIPImageProcessor starts the crop at (h - 224) // 2; torchvision's CenterCrop rounds. A 427x640
    photo resizes to 224x335: offsets 55 (floor) vs 56 (round)."""
    from PIL import Image
    from torchvision.transforms.v2 import functional as TF

    im = Image.fromarray(photos["chelsea"]).resize((640, 427), Image.BICUBIC)
    exact = rewardbench.load_reward(name, pretrained=False, tiny=True, pil_preprocess=True).backbone
    ref = _hf_pil_processor()(images=[im], return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(exact.pil_preprocess_images([im]), ref, atol=1e-6, rtol=0)
    # the torch path crops at the same place: the official resize of the float tensor, cropped at 55
    x = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)[None].float() / 255
    resized = TF.resize(x, 224, interpolation=TF.InterpolationMode.BICUBIC, antialias=True).clamp(0, 1)
    assert resized.shape[-1] == 335
    ref_torch = TF.normalize(resized[..., :, 55:55 + 224], CLIP_MEAN, CLIP_STD)
    torch_path = rewardbench.load_reward(name, pretrained=False, tiny=True).backbone
    torch.testing.assert_close(torch_path.preprocess(x), ref_torch, atol=1e-6, rtol=0)


def test_resize_longest_pad_geometry():
    x = torch.rand(1, 3, 96, 128)
    y = resize_longest_pad(x, 224)
    assert y.shape == (1, 3, 224, 224)
    # 96x128 → 168x224: 28 rows of black above and below, image in between
    assert y[..., :28, :].abs().max() == 0 and y[..., -28:, :].abs().max() == 0
    assert y[..., 28:196, :].abs().sum() > 0


# -- weights ---------------------------------------------------------------------------------

def test_weights_round_trip_with_prefixes_and_a_clear_mismatch_error(tmp_path, clip):
    from safetensors.torch import save_file

    src = build_clip("ViT-B-16", "openai", tiny=True)  # same tiny shapes, other random weights
    dst = build_clip("ViT-L-14", "openai", tiny=True)
    assert not _same_weights(src, dst)
    sd = {k: v.contiguous() for k, v in src.model.state_dict().items()}
    save_file(sd, tmp_path / "tiny.safetensors")
    dst.encode_text(["a cat"])
    prov = load_clip_weights(dst, tmp_path / "tiny.safetensors")
    assert prov.kind == "file" and prov.location == str(tmp_path / "tiny.safetensors") and dst.provenance == prov
    assert _same_weights(src.model, dst.model)
    assert len(dst.text_cache._store) == 0, "new weights must invalidate cached text features"

    torch.save({"state_dict": {"module." + k: v for k, v in sd.items()}}, tmp_path / "ddp.pt")
    load_clip_weights(build_clip("ViT-L-14", "openai", tiny=True), tmp_path / "ddp.pt")

    bad = dict(sd)
    bad["visual.extra_head.weight"] = torch.zeros(2)
    del bad["ln_final.weight"]
    save_file(bad, tmp_path / "bad.safetensors")
    mismatch = r"missing keys: ln_final\.weight.*unexpected keys: visual\.extra_head\.weight"
    with pytest.raises(CheckpointMismatchError, match=mismatch):
        load_clip_weights(dst, tmp_path / "bad.safetensors")


def test_missing_weights_fail_offline_without_downloading(unreachable, clip):
    with pytest.raises(WeightsNotFoundError) as e:
        load_clip_weights(clip, sources=clip_weight_sources("ViT-L-14", "openai"), reward="clipscore")
    msg = str(e.value)
    assert "timm/vit_large_patch14_clip_224.openai" in msg and "weights=PATH" in msg
    assert "openaipublic.azureedge.net is unreachable" in msg  # the URL source was tried too, without a download
    assert unreachable == []
    with pytest.raises(ValueError, match="tiny backbone has no published weights"):
        load_clip_weights(clip)


def test_spec_weight_sources_agree_with_open_clip():
    for name, arch in (("clipscore", "ViT-L-14"), ("clipscore-b32", "ViT-B-32")):
        spec = rewardbench.get_spec(name)
        ours = [(w.kind, w.location, w.sha256) for w in spec.weights]
        theirs = [(w.kind, w.location, w.sha256) for w in clip_weight_sources(arch, "openai")]
        assert ours == theirs
        # OpenAI's URLs carry the file's sha256 in the path
        url = next(w for w in spec.weights if w.kind == "url")
        assert url.sha256 and url.sha256 in url.location


# -- CLIPScore -------------------------------------------------------------------------------

def _independent_cos(reward, pixels, prompts):
    """cos(image, text) straight from the open_clip / transformers towers, not through our helpers."""
    bb = reward.backbone
    x = bb.preprocess(pixels)
    if bb.library == "open_clip":
        img, txt = bb.model.encode_image(x), bb.model.encode_text(bb.tokenizer(prompts))
    else:
        tok = bb.tokenize(prompts)
        img = bb.model.visual_projection(bb.model.vision_model(pixel_values=x).pooler_output)
        txt = bb.model.text_projection(bb.model.text_model(**tok).pooler_output)
    return (img / img.norm(dim=-1, keepdim=True) * (txt / txt.norm(dim=-1, keepdim=True))).sum(-1)


@pytest.mark.parametrize("name,scale,clamped,prefix", [("clipscore", 2.5, True, "A photo depicts "),
                                                       ("clipscore-b32", 2.5, True, "A photo depicts "),
                                                       ("clipscore-100", 100.0, False, "")])
def test_clipscore_scales(name, scale, clamped, prefix):
    """Hessel's clipscore.py encodes "A photo depicts " + caption (CLIPCapDataset); torchmetrics the bare text."""
    reward = rewardbench.load_reward(name, pretrained=False, tiny=True)
    x = _photos()
    with torch.no_grad():
        out = reward(x, PROMPTS)
        cos = _independent_cos(reward, x, [prefix + p for p in PROMPTS])
        if prefix:  # the prefix changes the score; prompt_prefix="" gives the bare prompt's
            bare = rewardbench.load_reward(name, pretrained=False, tiny=True, prompt_prefix="")(x, PROMPTS)
            torch.testing.assert_close(bare.details["cosine"], _independent_cos(reward, x, PROMPTS), atol=1e-5,
                                       rtol=1e-5)
            assert not torch.allclose(bare.details["cosine"], cos, atol=1e-3)
    expected = scale * (cos.clamp(min=0) if clamped else cos)
    torch.testing.assert_close(out.scores, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.details["cosine"], cos, atol=1e-5, rtol=1e-5)
    # the Hessel clamp matters: a negative cosine scores exactly 0
    r = ClipScore(tiny=True)
    with torch.no_grad():
        neg = r.score_embeddings(-r.backbone.encode_text(["a cat"]), ["a cat"], None)
    assert neg.scores.item() == 0.0 and neg.details["cosine"].item() < 0


def test_clipscore_100_long_prompts_truncate_or_slice_as_torchmetrics():
    """A prompt over 77 tokens: ours truncates keeping <|endoftext|> (49407) last; torchmetrics tokenises
    without truncation and keeps the first 77 ids, so the end-of-text token is gone."""
    from rewardbench.text import clip_tokenizer

    long = "a photo of " + "a very large red and blue striped cat sitting on a wooden chair, " * 8
    full = clip_tokenizer()(long)["input_ids"]
    assert len(full) > 77
    ours = rewardbench.load_reward("clipscore-100", pretrained=False, tiny=True)
    tm = rewardbench.load_reward("clipscore-100", pretrained=False, tiny=True, long_prompts="torchmetrics")
    ids = ours.backbone.tokenize([long, "a cat"])["input_ids"]
    assert ids.shape == (2, 77) and ids[0, -1] == 49407 and ids[0, :76].tolist() == full[:76]
    tm_ids = tm.backbone.tokenize([long, "a cat"])
    assert tm_ids["input_ids"][0].tolist() == full[:77] and 49407 not in full[:77]
    assert tm_ids["attention_mask"].shape == (2, 77)
    x = _photos()[:2]
    with torch.no_grad():
        a, b = ours(x, [long, "a cat"]).scores, tm(x, [long, "a cat"]).scores
    assert not torch.allclose(a[0], b[0], atol=1e-4) and torch.allclose(a[1], b[1], atol=1e-5)
    with pytest.raises(ValueError, match="transformers"):
        rewardbench.load_reward("clipscore", pretrained=False, tiny=True, long_prompts="torchmetrics")


def test_clipscore_text_encoder_runs_once_per_unique_prompt():
    reward = rewardbench.load_reward("clipscore", pretrained=False, tiny=True)
    x = _photos().repeat(4, 1, 1, 1)  # 16 images, 2 prompts
    reward(x, ["a cat"] * 8 + ["a dog"] * 8)
    assert reward.text_calls == 1 and reward.backbone.text_cache.encoded == 2


@pytest.mark.parametrize("name", ["clipscore", "clipscore-100"])
def test_a_gradient_step_on_the_pixels_raises_clipscore(name):
    reward = rewardbench.load_reward(name, pretrained=False, tiny=True)
    assert_gradient_step_raises(reward, _photos(), ["a photo of a cat"] * 4)


def test_shared_backbone_features_serve_every_reward_of_the_same_id():
    a = rewardbench.load_reward("clipscore", pretrained=False, tiny=True)
    b = rewardbench.load_reward("aesthetic", pretrained=False, tiny=True)
    c = rewardbench.load_reward("aesthetic-v1", pretrained=False, tiny=True)
    assert a.spec.backbone == b.spec.backbone == c.spec.backbone == "open_clip:ViT-L-14/openai"
    assert a.backbone_fingerprint() == b.backbone_fingerprint() == c.backbone_fingerprint()
    x = _photos()
    with torch.no_grad():
        feats = a.embed_images(x)
        for r in (a, b, c):
            torch.testing.assert_close(r.score_embeddings(feats, PROMPTS, None).scores, r(x, PROMPTS).scores)
