"""rewards/_skin_tone.py: CIELAB, the Monk swatches, ITA, the skin-pixel test and the keypoint patches by hand;
shading and grey faces; real faces."""

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
    colourfulness,
    face_skin_tone,
    is_monochrome,
    ita_category,
    ita_degrees,
    keypoint_skin_pixels,
    skin_tone,
    srgb_to_lab,
    tone_from_lab,
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


def _face_image(skin_hex: str, background=(0.1, 0.3, 0.9)):
    """A 200x200 image: blue background, a skin-coloured face disc with dark eyes and red lips; the eyes'
    keypoints at (80, 90) and (120, 90)."""
    from rewardbench.rewards._faces import Face

    img = torch.tensor(background).view(3, 1, 1).expand(3, 200, 200).clone()
    yy, xx = torch.meshgrid(torch.arange(200), torch.arange(200), indexing="ij")
    img[:, ((yy - 105) ** 2 + (xx - 100) ** 2) < 55 ** 2] = torch.tensor(_hex_to_rgb01(skin_hex)).view(3, 1)
    for ex in (80, 120):
        img[:, ((yy - 90) ** 2 + (xx - ex) ** 2) < 6 ** 2] = 0.05  # eyes
    img[:, (abs(yy - 140) < 4) & (abs(xx - 100) < 15)] = torch.tensor([0.8, 0.1, 0.15]).view(3, 1)  # lips
    kp = ((80.0, 90.0), (120.0, 90.0), (100.0, 112.0), (100.0, 140.0), (50.0, 100.0), (150.0, 100.0))
    return img, Face((45.0, 50.0, 155.0, 160.0), 0.9, keypoints=kp)


@pytest.mark.parametrize("shade", [1, 4, 6, 8, 10])
def test_keypoint_patches_read_the_skin_not_eyes_lips_or_background(shade):
    img, face = _face_image(MONK_HEX[shade - 1])
    rgb = keypoint_skin_pixels(img, face.keypoints)
    target = torch.tensor(_hex_to_rgb01(MONK_HEX[shade - 1]))
    assert rgb.shape[0] >= 300 and (rgb - target).abs().max() < 1e-6  # every sample on the skin
    t = face_skin_tone(img, face, "monk")
    assert t.monk == shade and not t.unclear and not t.fallback


def test_a_tilted_face_is_sampled_in_its_own_frame():
    img, face = _face_image(MONK_HEX[5])
    turned = torch.rot90(img, 1, dims=(1, 2))  # 90 degrees counter-clockwise: (x, y) -> (y, 199 - x)
    from rewardbench.rewards._faces import Face

    kp = tuple((y, 199 - x) for x, y in face.keypoints)
    rgb = keypoint_skin_pixels(turned, kp)
    assert (rgb - torch.tensor(_hex_to_rgb01(MONK_HEX[5]))).abs().max() < 1e-6
    assert face_skin_tone(turned, Face((50.0, 44.0, 160.0, 154.0), keypoints=kp), "ita").monk == 6


def test_shading_does_not_darken_the_reading():
    """Half the face in shadow (60% light): the lit skin is read, so the bucket stays the lit face's."""
    img, face = _face_image(MONK_HEX[2])
    shaded = img.clone()
    shaded[:, :, 100:] *= 0.6
    lit = face_skin_tone(img, face, "ita")
    half = face_skin_tone(shaded, face, "ita")
    assert half.bucket == lit.bucket == SKIN_BUCKETS.index("light")
    assert abs(half.lab[0] - lit.lab[0]) < 1.0


def test_black_and_white_images_are_unclear_but_pale_and_dark_swatches_are_not():
    """The palest and darkest Monk shades are nearly grey (C* 4-8): a face-level grey test would drop them, so
    black-and-white is judged on the whole image."""
    for shade in (1, 2, 9, 10):
        img, face = _face_image(MONK_HEX[shade - 1])
        assert not is_monochrome(img) and not face_skin_tone(img, face, "ita").unclear
        grey = img.mean(0, keepdim=True).expand(3, -1, -1)  # the same picture in black and white
        assert is_monochrome(grey) and face_skin_tone(grey, face, "ita").unclear
    assert colourfulness(torch.full((3, 8, 8), 0.3)) == 0.0


def test_tone_from_lab_matches_tone_of_pixels():
    warm = torch.tensor(_hex_to_rgb01(MONK_HEX[4])).view(3, 1, 1).expand(3, 40, 40)
    t = skin_tone(warm, "ita")
    assert not t.unclear and tone_from_lab(t.lab, t.skin_pixels, t.fallback, "ita") == t
    assert tone_from_lab(t.lab, t.skin_pixels, t.fallback, "monk").monk == t.monk == 5
    assert tone_from_lab(t.lab, t.skin_pixels, t.fallback, "ita", monochrome=True).unclear
