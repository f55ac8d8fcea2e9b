"""rewards/hps.py: HPSv2 / HPSv2.1 on tiny random open_clip models (offline)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

import rewardbench
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


def _official_hps_preprocess(img: Image.Image) -> torch.Tensor:
    """hpsv2's preprocess_val (src/open_clip/transform.py image_transform(resize_longest_max=True)),
    re-expressed with torchvision: RGB → ToTensor → ResizeMaxSize on the *tensor* (bicubic, torchvision's
    default antialias) → pad with 0 → Normalize."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    t = TF.to_tensor(img.convert("RGB"))
    h, w = t.shape[1:]
    scale = 224 / float(max(h, w))
    nh, nw = round(h * scale), round(w * scale)
    t = TF.resize(t, [nh, nw], InterpolationMode.BICUBIC)
    pw, ph = 224 - nw, 224 - nh
    return TF.pad(t, [pw // 2, ph // 2, pw - pw // 2, ph - ph // 2], fill=0)


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "grace_hopper"])
def test_hps_preprocessing_is_the_official_transform_on_both_paths(hps, photos, name):
    """Real photos as files decode them (uint8): the exact path (PIL image in) and the torch path (its
    pixels in) both equal the official tensor; the bicubic overshoot past [0, 1] is kept, not clamped."""
    from torchvision.transforms import functional as TF

    img = Image.fromarray(photos[name])
    raw = _official_hps_preprocess(img)
    if max(img.size) > 224:  # downscaled: bicubic overshoots the pixel range somewhere
        assert raw.min() < 0 or raw.max() > 1
    ref = TF.normalize(raw, CLIP_MEAN, CLIP_STD)[None]
    bb = hps.backbone
    torch.testing.assert_close(bb.pil_preprocess_images([img]), ref, atol=1e-6, rtol=0)
    pixels = torch.from_numpy(photos[name].copy()).permute(2, 0, 1)[None].float() / 255
    torch.testing.assert_close(bb.preprocess(pixels), ref, atol=1e-6, rtol=0)


def test_v2_and_v21_are_different_weights_on_the_same_architecture():
    a = rewardbench.load_reward("hpsv2", pretrained=False, tiny=True)
    b = rewardbench.load_reward("hpsv2.1", pretrained=False, tiny=True)
    assert a.spec.backbone != b.spec.backbone
    assert a.spec.weights[0].filename == "HPS_v2_compressed.pt"
    assert b.spec.weights[0].filename == "HPS_v2.1_compressed.pt"
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


def test_missing_hps_weights_fail_offline_without_downloading(unreachable, hps):
    with pytest.raises(WeightsNotFoundError, match="xswu/HPSv2 file HPS_v2_compressed.pt: not in the local hub cache"):
        hps.load_pretrained()
    assert unreachable == []


def test_a_gradient_step_on_the_pixels_raises_hps(hps):
    assert_gradient_step_raises(hps, _photos(), PROMPTS)
