"""T2I-CompBench's rewards (rewards/compbench.py): the spatial and numeracy rules on hand-made boxes
(the spatial rule's official and corrected modes), and the BLIP-VQA questions."""

from __future__ import annotations

import pytest
import torch

from rewardbench.rewards._prompts import parse_prompt
from rewardbench.rewards.compbench import CompBenchVQA, compbench_numeracy, compbench_spatial, official_relation

from ._fake_detector import D, FakeDetector, reward_with

# -- 2D spatial -------------------------------------------------------------------------------

def test_compbench_spatial_score_combines_confidence_and_position():
    p = parse_prompt("a dog on the left of a car")
    both = D([("dog", 0.8, (0, 0, 10, 10)), ("car", 0.6, (50, 0, 60, 10))])
    assert compbench_spatial(p, both) == pytest.approx(0.25 * 0.8 + 0.25 * 0.6 + 0.5)
    wrong_side = D([("dog", 0.8, (50, 0, 60, 10)), ("car", 0.6, (0, 0, 10, 10))])
    assert compbench_spatial(p, wrong_side) == 0.0  # 0.35 < 0.5 -> 0
    assert compbench_spatial(p, D([("dog", 0.99, (0, 0, 10, 10))])) == 0.0  # one object: 0.2475 < 0.5
    assert compbench_spatial(p, D([])) == 0.0


def test_compbench_spatial_uses_the_best_instance():
    p = parse_prompt("a dog on the left of a car")
    dets = D([("dog", 0.9, (0, 0, 10, 10)), ("dog", 0.5, (80, 0, 90, 10)), ("car", 0.7, (50, 0, 60, 10))])
    assert compbench_spatial(p, dets) == pytest.approx(0.25 * 0.9 + 0.25 * 0.7 + 0.5)


def test_compbench_spatial_same_class_uses_two_instances():
    # (a), corrected mode: the second object of a class is the class's second box
    p = parse_prompt("a dog next to a dog")
    one = D([("dog", 0.9, (0, 0, 10, 10))])
    two = D([("dog", 0.9, (0, 0, 10, 10)), ("dog", 0.8, (20, 0, 30, 10))])
    assert compbench_spatial(p, one, mode="corrected") == 0.0
    assert compbench_spatial(p, two, mode="corrected") == pytest.approx(0.25 * 0.9 + 0.25 * 0.8 + 0.5)


def test_official_same_class_takes_the_best_box_twice():
    # (a), official mode (2D_spatial_eval.py `obj.index(obj1)`, `obj.index(obj2)`): the same box for both dogs
    one = D([("dog", 0.9, (0, 0, 10, 10))])
    two = D([("dog", 0.9, (0, 0, 10, 10)), ("dog", 0.8, (20, 0, 30, 10))])
    # a direction between a box and itself fails: 0.25 * 0.9 * 2 < 0.5 -> 0, though the second dog is in place
    left = parse_prompt("a dog on the left of a dog")
    assert compbench_spatial(left, two, mode="official") == 0.0
    assert compbench_spatial(left, two, mode="corrected") == pytest.approx(0.25 * 0.9 + 0.25 * 0.8 + 0.5)
    # proximity to itself holds (distance 0): a single dog passes "a dog next to a dog"
    near = parse_prompt("a dog next to a dog")
    assert compbench_spatial(near, one, mode="official") == pytest.approx(0.25 * 0.9 * 2 + 0.5)
    assert compbench_spatial(near, two, mode="official") == pytest.approx(0.25 * 0.9 * 2 + 0.5)
    assert compbench_spatial(near, one) == compbench_spatial(near, one, mode="official")  # the default


def test_official_distance_threshold_is_150_pixels_at_any_size():
    # (b): centres 300 px apart on both axes
    p = parse_prompt("a dog near a car")
    boxes = [("dog", 0.8, (0, 0, 10, 10)), ("car", 0.6, (300, 300, 310, 310))]
    confidences = 0.25 * 0.8 + 0.25 * 0.6
    big = D(boxes, image_size=(1024, 1024))
    assert compbench_spatial(p, big, mode="official") == pytest.approx(confidences + (150 / 300) / 2)
    assert compbench_spatial(p, big, mode="corrected") == pytest.approx(confidences + 1 / 2)  # 300 px at 1024
    small = D(boxes, image_size=(512, 512))
    for mode in ("official", "corrected"):
        assert compbench_spatial(p, small, mode=mode) == pytest.approx(confidences + (150 / 300) / 2)


def test_official_on_top_of_scores_no_position():
    # (c): "on top of" is in the official vocabulary but determine_position() has no branch for it
    dets = D([("cat", 0.9, (0, 0, 10, 10)), ("car", 0.9, (0, 50, 10, 60))])  # the cat above the car
    on_top = parse_prompt("a cat on top of a car")
    assert official_relation(on_top.text) == "on top of"
    assert compbench_spatial(on_top, dets, mode="official") == 0.0  # 0.45 < 0.5
    assert compbench_spatial(on_top, dets, mode="corrected") == pytest.approx(0.25 * 0.9 * 2 + 0.5)
    on_the_top = parse_prompt("a cat on the top of a car")
    for mode in ("official", "corrected"):
        assert compbench_spatial(on_the_top, dets, mode=mode) == pytest.approx(0.25 * 0.9 * 2 + 0.5)
    # phrasings outside the official vocabulary score no position either; corrected reads the parser's relation
    beside = parse_prompt("a cat beside a car")
    assert official_relation(beside.text) is None
    assert compbench_spatial(beside, dets, mode="official") == 0.0
    assert compbench_spatial(beside, dets, mode="corrected") == pytest.approx(0.25 * 0.9 * 2 + 0.5)
    # the official lookup is a substring search in its vocabulary's order: "near" before "on the left of"
    assert official_relation("a cat on the left of a nearby car") == "near"


def test_spatial_reward_mode_option():
    dets = D([("cat", 0.9, (0, 0, 10, 10)), ("car", 0.9, (0, 50, 10, 60))])
    prompts = ["a cat on top of a car", "a cat on the top of a car"]
    official = reward_with("compbench-spatial", [dets, dets])
    corrected = reward_with("compbench-spatial", [dets, dets], mode="corrected")
    assert official.mode == "official"
    x = torch.rand(2, 3, 32, 32)
    out = official(x, prompts)
    assert out.scores.tolist() == pytest.approx([0.0, 0.95])
    assert "'on top of' is not scored" in out.details["note"][0] and out.details["note"][1] == ""
    out = corrected(x, prompts)
    assert out.scores.tolist() == pytest.approx([0.95, 0.95]) and out.details["note"] == ["", ""]
    with pytest.raises(ValueError, match="official, corrected"):
        reward_with("compbench-spatial", [dets], mode="published")
    with pytest.raises(ValueError, match="official, corrected"):
        compbench_spatial(parse_prompt(prompts[0]), dets, mode="ours")


def test_complex_passes_the_spatial_mode_on():
    from rewardbench.rewards.compbench import CompBenchComplex

    dets = D([("cat", 0.9, (0, 0, 10, 10)), ("car", 0.9, (0, 50, 10, 60))])
    assert CompBenchComplex(tiny=True, detector=FakeDetector([dets])).spatial.mode == "official"
    r = CompBenchComplex(tiny=True, detector=FakeDetector([dets]), spatial_mode="corrected").eval()
    assert r.spatial.mode == "corrected"
    assert r(torch.rand(1, 3, 32, 32), ["a cat on top of a car"]).details["spatial"].tolist() == pytest.approx([0.95])


# -- numeracy ---------------------------------------------------------------------------------

def test_compbench_numeracy():
    p = parse_prompt("two dogs and one cat")
    dogs2 = [("dog", 0.9, (0, 0, 10, 10)), ("dog", 0.9, (20, 0, 30, 10))]
    assert compbench_numeracy(p, D(dogs2 + [("cat", 0.9, (40, 0, 50, 10))])) == 1.0
    assert compbench_numeracy(p, D(dogs2[:1] + [("cat", 0.9, (40, 0, 50, 10))])) == 0.75  # dogs: found, wrong count
    assert compbench_numeracy(p, D(dogs2)) == 0.5
    assert compbench_numeracy(p, D([])) == 0.0
    # a duplicate box of the same dog does not make two dogs
    assert compbench_numeracy(parse_prompt("two dogs"), D([dogs2[0], ("dog", 0.8, (0, 0, 10, 10.2))])) == 0.5


# -- BLIP-VQA ---------------------------------------------------------------------------------

def test_vqa_questions_are_the_noun_phrases():
    assert CompBenchVQA.questions("a green bench and a blue bowl") == ["a green bench?", "a blue bowl?"]
