"""T2I-CompBench's rewards (rewards/compbench.py): the spatial and numeracy rules on hand-made boxes,
and the BLIP-VQA questions."""

from __future__ import annotations

import pytest

from rewardbench.rewards._prompts import parse_prompt
from rewardbench.rewards.compbench import CompBenchVQA, compbench_numeracy, compbench_spatial

from ._fake_detector import D

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
    p = parse_prompt("a dog next to a dog")
    one = D([("dog", 0.9, (0, 0, 10, 10))])
    two = D([("dog", 0.9, (0, 0, 10, 10)), ("dog", 0.8, (20, 0, 30, 10))])
    assert compbench_spatial(p, one) == 0.0
    assert compbench_spatial(p, two) == pytest.approx(0.25 * 0.9 + 0.25 * 0.8 + 0.5)


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
