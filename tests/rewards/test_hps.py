"""rewards/hps.py: HPSv2 / HPSv2.1 on tiny random open_clip models (offline)."""

from __future__ import annotations

import time

import pytest
import torch
from PIL import Image

import rewardbench
from rewardbench.images import pixels_to_uint8
from rewardbench.transforms import CLIP_MEAN, CLIP_STD
from rewardbench.weights import WeightsNotFoundError

from ..conftest import assert_gradient_step_raises
from .test_clip import PROMPTS, _photos


@pytest.fixture(scope="module")
def hps():
    return rewardbench.load_reward("hpsv2", pretrained=False, tiny=True)


def test_hps_is_the_cosine_of_the_open_clip_forward_features(hps):
    """hpsv2/img_score.py: outputs = model(image, text); diag(image_features @ text_features.T),
    where open_clip's forward returns normalised features; no ×100."""
    x = _photos((96, 128))
    bb = hps.backbone
    with torch.no_grad():
        out = hps(x, PROMPTS)
        img, txt, scale = bb.model(bb.preprocess(x), bb.tokenizer(PROMPTS))
    expected = torch.diagonal(img @ txt.T)
    torch.testing.assert_close(out.scores, expected, atol=1e-5, rtol=1e-5)
    assert out.scores.abs().max() <= 1.0


def test_hps_preprocessing_is_resize_longest_and_pad_like_the_package(hps):
    """ResizeMaxSize(224, fill=0) on PIL, re-implemented here independently of rewards.clip."""
    x = _photos((96, 128))
    bb = hps.backbone
    got = bb.preprocess(x)
    refs = []
    for arr in pixels_to_uint8(x):
        im = Image.fromarray(arr)
        w, h = im.size
        s = 224 / max(w, h)
        nw, nh = round(w * s), round(h * s)
        padded = Image.new("RGB", (224, 224))
        padded.paste(im.resize((nw, nh), Image.BICUBIC), ((224 - nw) // 2, (224 - nh) // 2))
        t = torch.from_numpy(__import__("numpy").asarray(padded).copy()).permute(2, 0, 1).float() / 255
        refs.append((t - torch.tensor(CLIP_MEAN).view(3, 1, 1)) / torch.tensor(CLIP_STD).view(3, 1, 1))
    ref = torch.stack(refs)
    torch.testing.assert_close(bb.pil_preprocess_images(x), ref)  # the exact path is exact
    diff = ((got - ref) * torch.tensor(CLIP_STD).view(1, 3, 1, 1)).abs()
    assert diff.mean() < 0.01, diff.mean()  # torch path: within a percent of the PIL path on average
    # the padding is black (0 before normalisation) in both
    torch.testing.assert_close(got[:, :, :28], ref[:, :, :28])


def test_v2_and_v21_are_different_weights_on_the_same_architecture():
    a = rewardbench.load_reward("hpsv2", pretrained=False, tiny=True)
    b = rewardbench.load_reward("hpsv2.1", pretrained=False, tiny=True)
    assert a.spec.backbone != b.spec.backbone
    assert a.spec.weights[0].filename == "HPS_v2_compressed.pt" and b.spec.weights[0].filename == "HPS_v2.1_compressed.pt"
    assert a.backbone.backbone_id == "open_clip:ViT-H-14/hpsv2+longest_pad+tiny"
    assert a.backbone_fingerprint() != b.backbone_fingerprint()


def test_an_hps_style_checkpoint_loads(tmp_path, hps):
    """The official file is {"state_dict": CLIP state dict}; DDP "module." prefixes are stripped."""
    src = rewardbench.load_reward("hpsv2.1", pretrained=False, tiny=True)
    sd = {"module." + k: v for k, v in src.backbone.model.state_dict().items()}
    torch.save({"state_dict": sd, "epoch": 3}, tmp_path / "HPS_tiny.pt")
    dst = rewardbench.load_reward("hpsv2", pretrained=False, tiny=True)
    dst.load_pretrained(tmp_path / "HPS_tiny.pt")
    assert "HPS_tiny.pt" in dst.weights_used
    x = _photos()
    with torch.no_grad():
        torch.testing.assert_close(dst(x, PROMPTS).scores, src(x, PROMPTS).scores)


def test_missing_hps_weights_fail_fast_offline(monkeypatch, hps):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("REWARDBENCH_WEIGHTS", raising=False)
    t = time.perf_counter()
    with pytest.raises(WeightsNotFoundError, match="xswu/HPSv2 file HPS_v2_compressed.pt"):
        hps.load_pretrained()
    assert time.perf_counter() - t < 15


def test_a_gradient_step_on_the_pixels_raises_hps(hps):
    assert_gradient_step_raises(hps, _photos(), PROMPTS)
