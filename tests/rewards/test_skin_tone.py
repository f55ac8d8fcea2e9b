"""rewards/_skin_tone.py: CIELAB, the Monk swatches, ITA and the skin-pixel test by hand; real faces."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rewardbench.rewards._faces import build_face_detector, crop_face
from rewardbench.rewards._skin_tone import (
    ITA_CATEGORIES,
    ITA_TO_BUCKET,
    MONK_HEX,
    MONK_LAB,
    MONK_TO_BUCKET,
    SKIN_BUCKETS,
    _hex_to_rgb01,
    ita_category,
    ita_degrees,
    skin_tone,
    srgb_to_lab,
)

PEOPLE = ("astronaut", "grace_hopper")


def _px(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255


def test_lab_conversion_of_known_colours():
    lab = srgb_to_lab(torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))
    torch.testing.assert_close(lab[0], torch.tensor([100.0, 0.0, 0.0]), atol=0.01, rtol=0)
    torch.testing.assert_close(lab[1], torch.tensor([0.0, 0.0, 0.0]), atol=0.01, rtol=0)
    # sRGB red is L*=53.24, a*=80.09, b*=67.20 (CIE 15:2004 / Lindbloom's calculator, D65)
    torch.testing.assert_close(lab[2], torch.tensor([53.24, 80.09, 67.20]), atol=0.05, rtol=0)


def test_monk_swatches_classify_as_themselves_and_map_to_documented_buckets():
    lightness = MONK_LAB[:, 0]
    assert (lightness[2:-1] > lightness[3:]).all() and lightness[:3].min() > lightness[3], "MST runs light to dark"
    # the buckets are contiguous ranges of lightness: every shade of a lighter bucket is lighter
    for a in range(3):
        darker = [float(lightness[s - 1]) for s, b in MONK_TO_BUCKET.items() if b == a]
        lighter = [float(lightness[s - 1]) for s, b in MONK_TO_BUCKET.items() if b == a + 1]
        assert max(darker) < min(lighter)
    for shade, hx in enumerate(MONK_HEX, start=1):
        patch = torch.tensor(_hex_to_rgb01(hx)).view(3, 1, 1).expand(3, 24, 24)
        t = skin_tone(patch)
        assert t.monk == shade
        assert t.bucket == MONK_TO_BUCKET[shade]
        assert abs(sum(t.monk_probs) - 1) < 1e-6 and abs(sum(t.bucket_probs) - 1) < 1e-6
        assert max(range(10), key=lambda i: t.monk_probs[i]) == shade - 1
    # the 4 buckets are ordered dark -> light, as SKIN_BUCKETS says
    assert [MONK_TO_BUCKET[s] for s in (10, 7, 5, 1)] == [0, 1, 2, 3]


def test_ita_formula_and_categories():
    # ITA = atan((L - 50) / b) * 180 / pi
    assert float(ita_degrees(50 + math.sqrt(3) * 10, 10)) == pytest.approx(60.0)
    assert float(ita_degrees(50, 20)) == pytest.approx(0.0)
    assert float(ita_degrees(40, 10)) == pytest.approx(-45.0)
    cats = [ita_category(a) for a in (60, 50, 30, 20, 0, -40)]
    assert cats == ["very light", "light", "intermediate", "tan", "brown", "dark"]
    assert [ITA_TO_BUCKET[c] for c in cats] == [3, 3, 2, 1, 0, 0]


def test_skin_pixels_ignore_non_skin_colours():
    """A face crop that is half skin (Monk 7) and half blue background reads as Monk 7."""
    skin = torch.tensor(_hex_to_rgb01(MONK_HEX[6])).view(3, 1, 1)
    crop = skin.expand(3, 40, 40).clone()
    crop[:, :, 20:] = torch.tensor([0.1, 0.2, 0.8]).view(3, 1, 1)
    t = skin_tone(crop)
    assert t.monk == 7 and not t.fallback


@pytest.mark.parametrize("name", PEOPLE)
def test_skin_tone_of_real_faces_is_a_valid_label_with_probabilities(name, photos):
    im = photos[name]
    (face,) = build_face_detector("nudenet").detect([im])[0]
    for scale in ("monk", "ita"):
        t = skin_tone(crop_face(_px(im), face), scale)
        assert t.monk in range(1, 11) and t.bucket_name in SKIN_BUCKETS
        assert len(t.bucket_probs) == 4 and abs(sum(t.bucket_probs) - 1) < 1e-6
        assert all(0 <= p <= 1 for p in t.bucket_probs)
        assert t.ita_category in dict(ITA_CATEGORIES) and -90 <= t.ita <= 90
        assert t.skin_pixels > 100
