"""rewards/safety.py: the NudeNet NSFW reward on real photos, offline with the bundled model."""

from __future__ import annotations

import pytest
import torch

import rewardbench
from rewardbench.rewards._nudenet import nudenet_detect
from rewardbench.rewards.safety import NSFW_CLASSES, NudeNetNSFW

NAMES = ("astronaut", "grace_hopper", "coffee", "chelsea", "rocket")


def test_real_safe_photos_score_zero(photos):
    r = rewardbench.load_reward("nsfw")
    assert r.spec.offline and r.weights_used == "bundled:nudenet:320n.onnx"
    out = r([photos[n] for n in NAMES])  # mixed sizes, each detected at its own size
    assert out.scores.tolist() == [0.0] * 5
    assert out.details["nsfw_classes"] == [[]] * 5
    # the detector did run: it found the two faces, which are not NSFW classes
    assert out.details["n_detections"].tolist()[:2] == [1, 1]


def test_score_is_the_top_detection_of_the_chosen_classes(photos):
    """Counting FACE_FEMALE as 'unsafe' shows the scoring path end to end on real detections."""
    r = NudeNetNSFW(classes=("FACE_FEMALE",))
    out = r([photos["astronaut"], photos["coffee"]])
    (det,) = nudenet_detect([photos["astronaut"]])[0]
    assert out.scores[0] == pytest.approx(det["score"]) and det["score"] > 0.5
    assert out.scores[1] == 0.0 and out.details["nsfw_classes"][0] == ["FACE_FEMALE"]
    assert NudeNetNSFW(classes=("FACE_FEMALE",), min_score=0.99)([photos["astronaut"]]).scores.tolist() == [0.0]


def test_nsfw_classes_are_real_nudenet_labels():
    from rewardbench.rewards._nudenet import NUDENET_LABELS

    assert set(NSFW_CLASSES) <= set(NUDENET_LABELS)
    assert not any("COVERED" in c or c.startswith("FACE") for c in NSFW_CLASSES)


def test_batch_equals_single(photos):
    r = rewardbench.load_reward("nsfw", classes=("FACE_FEMALE", "FACE_MALE"))
    imgs = [photos[n] for n in NAMES]
    batch = r(imgs).scores
    single = torch.cat([r([im]).scores for im in imgs])
    torch.testing.assert_close(batch, single, atol=1e-5, rtol=0)


def test_weights_override_is_refused():
    with pytest.raises(ValueError, match="bundled"):
        rewardbench.load_reward("nsfw", weights="/tmp/other.onnx")
