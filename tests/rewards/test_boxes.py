"""Rules on boxes (rewards/_boxes.py): T2I-CompBench's position score and duplicate merge, GenEval's
relative position, on hand-made boxes."""

from __future__ import annotations

import pytest
import torch

from rewardbench.rewards._boxes import compbench_position_score, dedup_boxes, geneval_relative_position

# -- T2I-CompBench position score ---------------------------------------------------------------

@pytest.mark.parametrize("rel,subject,expected", [
    ("left of", (0, 0, 10, 10), 1.0), ("right of", (0, 0, 10, 10), 0.0),
    ("right of", (40, 0, 50, 10), 1.0), ("left of", (40, 0, 50, 10), 0.0),
    ("above", (20, -30, 30, -20), 1.0), ("below", (20, -30, 30, -20), 0.0),
    ("below", (20, 30, 30, 40), 1.0), ("above", (20, 30, 30, 40), 0.0),
])
def test_compbench_directions(rel, subject, expected):
    ref = (20, 0, 30, 10)
    assert compbench_position_score(rel, subject, ref) == expected


def test_compbench_touching_boxes_count_as_not_overlapping():
    assert compbench_position_score("left of", (0, 0, 10, 10), (10, 0, 20, 10)) == 1.0


def test_compbench_overlap_is_penalised_by_iou():
    a, b = (0, 0, 10, 10), (5, 0, 15, 10)  # IoU = 50 / 150
    assert compbench_position_score("left of", a, b) == pytest.approx(0.1 / (50 / 150))


def test_compbench_diagonal_needs_the_relation_axis_to_dominate():
    # offset (10, 20): mainly vertical, so "left of" fails although the subject is to the left
    assert compbench_position_score("left of", (0, 0, 10, 10), (10, 20, 20, 30)) == 0.0
    assert compbench_position_score("above", (0, 0, 10, 10), (10, 20, 20, 30)) == 1.0


def test_compbench_equal_centres():
    a, b = (0, 0, 10, 10), (2, 2, 8, 8)
    for rel in ("left of", "right of", "above", "below"):
        assert compbench_position_score(rel, a, b) == 0.0
    assert compbench_position_score("next to", a, b) == 1.0


def test_compbench_proximity_decays_with_distance_and_scales_with_image_size():
    a, b = (0, 0, 10, 10), (300, 300, 310, 310)
    assert compbench_position_score("near", a, b) == pytest.approx(150 / 300)
    assert compbench_position_score("near", a, b, image_size=(1024, 1024)) == 1.0  # threshold 300 px at 1024
    assert compbench_position_score(None, a, b) == 0.0
    # the official rule's threshold: 150 px at any size
    assert compbench_position_score("near", a, b, image_size=(1024, 1024), reference_size=None) == pytest.approx(0.5)


def test_compbench_official_phrases_are_scored_except_on_top_of():
    above, below = (0, 0, 10, 10), (0, 50, 10, 60)
    assert compbench_position_score("on the top of", above, below) == 1.0
    assert compbench_position_score("above", above, below) == 1.0
    assert compbench_position_score("on top of", above, below) == 0.0  # no branch in determine_position()
    assert compbench_position_score("on the bottom of", below, above) == 1.0


# -- T2I-CompBench duplicate merge -------------------------------------------------------------

def test_dedup_merges_near_identical_and_contained_boxes():
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10.5], [1, 1, 9, 9], [20, 0, 30, 10]], dtype=torch.float32)
    assert dedup_boxes(boxes) == 2
    assert dedup_boxes(torch.zeros(0, 4)) == 0


# -- GenEval relative position ----------------------------------------------------------------

def test_geneval_relative_position():
    ref = (100, 100, 110, 110)
    assert geneval_relative_position((0, 100, 10, 110), ref) == {"left of"}
    assert geneval_relative_position((200, 100, 210, 110), ref) == {"right of"}
    assert geneval_relative_position((100, 0, 110, 10), ref) == {"above"}
    assert geneval_relative_position((100, 200, 110, 210), ref) == {"below"}
    assert geneval_relative_position((0, 0, 10, 10), ref) == {"left of", "above"}  # diagonal: both
    assert geneval_relative_position(ref, ref) == set()  # equal centres
    assert geneval_relative_position((98, 100, 108, 110), ref) == set()  # within 0.1 * (w_a + w_b)
    assert geneval_relative_position((89, 100, 99, 110), ref) == {"left of"}  # touching boxes
