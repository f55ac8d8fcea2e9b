"""Compositional rewards (rewards/composition.py): the benchmark rules on hand-made boxes, the
detector wrapper, and the rewards end to end with an injected detector."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rewardbench
from rewardbench.rewards._detect import Detections, YoloDetector
from rewardbench.rewards._prompts import parse_prompt
from rewardbench.rewards.composition import (
    CompBenchVQA,
    compbench_numeracy,
    compbench_position_score,
    compbench_spatial,
    dedup_boxes,
    detection_score,
    geneval_evaluate,
    geneval_relative_position,
    object_presence,
)

D = Detections.from_list


class FakeDetector(nn.Module):
    """Returns the given detections, one per image, whatever the pixels."""

    def __init__(self, dets: list[Detections]):
        super().__init__()
        self.dets = dets

    def forward(self, pixels):
        return self.dets[: pixels.shape[0]]


# -- T2I-CompBench spatial rule -----------------------------------------------------------------

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


# -- counting ---------------------------------------------------------------------------------

def test_dedup_merges_near_identical_and_contained_boxes():
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10.5], [1, 1, 9, 9], [20, 0, 30, 10]], dtype=torch.float32)
    assert dedup_boxes(boxes) == 2
    assert dedup_boxes(torch.zeros(0, 4)) == 0


def test_compbench_numeracy():
    p = parse_prompt("two dogs and one cat")
    dogs2 = [("dog", 0.9, (0, 0, 10, 10)), ("dog", 0.9, (20, 0, 30, 10))]
    assert compbench_numeracy(p, D(dogs2 + [("cat", 0.9, (40, 0, 50, 10))])) == 1.0
    assert compbench_numeracy(p, D(dogs2[:1] + [("cat", 0.9, (40, 0, 50, 10))])) == 0.75  # dogs: found, wrong count
    assert compbench_numeracy(p, D(dogs2)) == 0.5
    assert compbench_numeracy(p, D([])) == 0.0
    # a duplicate box of the same dog does not make two dogs
    assert compbench_numeracy(parse_prompt("two dogs"), D([dogs2[0], ("dog", 0.8, (0, 0, 10, 10.2))])) == 0.5


def test_geneval_counting_is_exact_with_the_counting_threshold():
    spec = parse_prompt("a photo of two clocks").geneval_spec()
    two = [("clock", 0.95, (0, 0, 10, 10)), ("clock", 0.93, (20, 0, 30, 10))]
    assert geneval_evaluate(spec, D(two), counting=True)[0]
    three = two + [("clock", 0.92, (40, 0, 50, 10))]
    ok, reasons = geneval_evaluate(spec, D(three), counting=True)
    assert not ok and "clock<3" in reasons[0]
    weak = two[:1] + [("clock", 0.5, (20, 0, 30, 10))]  # 0.5 is below GenEval's 0.9
    assert not geneval_evaluate(spec, D(weak), counting=True)[0]
    assert not geneval_evaluate(spec, D([]), counting=True)[0]


# -- GenEval position -------------------------------------------------------------------------

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


def test_geneval_position_requires_every_instance_in_relation():
    spec = parse_prompt("a photo of a dog right of a teddy bear").geneval_spec()
    bear, dog_right, dog_left = ("teddy bear", 0.9, (0, 0, 10, 10)), ("dog", 0.9, (50, 0, 60, 10)), ("dog", 0.8, (-50, 0, -40, 10))
    assert geneval_evaluate(spec, D([bear, dog_right]))[0]
    assert not geneval_evaluate(spec, D([bear, dog_left]))[0]
    assert not geneval_evaluate(spec, D([dog_right]))[0]  # no target
    # two bears: the dog must be right of both (GenEval checks all matched target objects)
    spec2 = parse_prompt("a photo of a dog right of two teddy bears").geneval_spec()
    bears = [bear, ("teddy bear", 0.9, (100, 0, 110, 10))]
    assert not geneval_evaluate(spec2, D(bears + [dog_right]), check_counts=True)[0]


def test_geneval_colour_uses_the_classifier_on_each_instance():
    spec = parse_prompt("a photo of a red car").geneval_spec()
    dets = D([("car", 0.9, (0, 0, 10, 10))])
    assert geneval_evaluate(spec, dets, color_of=lambda cls, boxes: ["red"] * len(boxes))[0]
    ok, reasons = geneval_evaluate(spec, dets, color_of=lambda cls, boxes: ["blue"] * len(boxes))
    assert not ok and "red car" in reasons[0]


# -- detection score and presence ---------------------------------------------------------------

def test_detection_score_is_the_mean_best_confidence():
    p = parse_prompt("a cat and a dog")
    dets = D([("cat", 0.9, (0, 0, 1, 1)), ("cat", 0.4, (0, 0, 2, 2)), ("dog", 0.5, (0, 0, 1, 1))])
    assert detection_score(p, dets) == pytest.approx((0.9 + 0.5) / 2)
    assert detection_score(p, D([])) == 0.0
    # an object unknown to the detector counts as not detected
    assert detection_score(parse_prompt("a cat and a frog"), dets) == pytest.approx(0.9 / 2)
    assert object_presence(p, dets) == 1.0 and object_presence(p, D([("dog", 0.2, (0, 0, 1, 1))])) == 0.0


# -- rewards end to end with an injected detector ----------------------------------------------

def _reward(name, dets, **kw):
    cls = rewardbench.registry.REGISTRY.entry(name).load_target()
    return cls(detector=FakeDetector(dets), **kw).eval()


def test_unknown_objects_get_a_note_not_a_crash():
    r = _reward("detection-score", [D([("cat", 0.8, (0, 0, 5, 5))]), D([])])
    out = r(torch.rand(2, 3, 32, 32), ["a cat next to a lamp", "a lamp"])
    assert out.scores.tolist() == pytest.approx([0.4, 0.0])
    assert "lamp" in out.details["note"][0] and "lamp" in out.details["note"][1]


def test_geneval_counting_reward_end_to_end():
    two = D([("clock", 0.95, (0, 0, 10, 10)), ("clock", 0.93, (20, 0, 30, 10))])
    r = _reward("geneval-counting", [two, two, two])
    out = r(torch.rand(3, 3, 32, 32), ["a photo of two clocks", "a photo of three clocks", "a photo of two frogs"])
    assert out.scores.tolist() == [1.0, 0.0, 0.0]
    assert "frog" in out.details["note"][2] and "clock>=3" in out.details["reason"][1]


def test_geneval_color_reward_runs_the_clip_classifier_on_crops():
    dets = D([("car", 0.9, (2, 2, 20, 20))], image_size=(32, 32))
    r = _reward("geneval-color", [dets], tiny=True)
    out = r(torch.rand(1, 3, 32, 32), ["a photo of a red car"])
    assert out.scores.item() in (0.0, 1.0)
    assert out.scores.item() == 1.0 or "expected red car" in out.details["reason"][0]


def test_vqa_questions_are_the_noun_phrases():
    assert CompBenchVQA.questions("a green bench and a blue bowl") == ["a green bench?", "a blue bowl?"]


# -- the detector ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_detector():
    torch.manual_seed(0)
    return YoloDetector("yolov8n", imgsz=64, conf=1e-5)  # a floor low enough that random weights give boxes


def test_detector_batch_equals_one_by_one(tiny_detector):
    x = torch.rand(3, 3, 80, 96)
    batch = tiny_detector(x)
    assert sum(len(d.scores) for d in batch) > 0
    for i in range(3):
        alone = tiny_detector(x[i:i + 1])[0]
        torch.testing.assert_close(alone.scores, batch[i].scores, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(alone.boxes, batch[i].boxes, atol=1e-3, rtol=1e-4)
        assert torch.equal(alone.labels, batch[i].labels)


def test_detector_boxes_are_in_image_coordinates(tiny_detector):
    d = tiny_detector(torch.rand(1, 3, 40, 120))[0]
    assert d.image_size == (40, 120)
    assert (d.boxes[:, [0, 2]] <= 120).all() and (d.boxes[:, [1, 3]] <= 40).all() and (d.boxes >= 0).all()


def test_detector_loads_a_safetensors_state_dict(tiny_detector, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "yolo.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_detector.net.state_dict().items()}, str(path))
    torch.manual_seed(1)
    other = YoloDetector("yolov8n", imgsz=64, conf=1e-5)
    x = torch.rand(1, 3, 64, 64)
    other.load(path)
    torch.testing.assert_close(other(x)[0].scores, tiny_detector(x)[0].scores)


def test_offline_weights_fail_fast_and_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("REWARDBENCH_CACHE", str(tmp_path))
    monkeypatch.delenv("REWARDBENCH_WEIGHTS", raising=False)
    r = rewardbench.load_reward("detection-score", pretrained=False, model="yolov8n", imgsz=64)
    try:
        r.load_pretrained()
    except rewardbench.WeightsNotFoundError as e:
        assert "yolov8n.pt" in str(e) and "--weights" in str(e)  # the built architecture's checkpoint
    else:  # pragma: no cover - only with internet access
        assert "yolov8" in r.weights_used
    with pytest.raises(rewardbench.WeightsNotFoundError, match="missing.pt"):
        r.load_pretrained(tmp_path / "missing.pt")


class _NotAllowed(nn.Module):
    pass


def test_detector_loads_an_ultralytics_checkpoint_weights_only(tiny_detector, tmp_path):
    import copy

    from rewardbench import CheckpointMismatchError

    net = copy.deepcopy(tiny_detector.net)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.01)
    net.names = dict(enumerate(tiny_detector.names))
    torch.save({"model": net.half(), "train_args": {}}, tmp_path / "yolo.pt")  # the official checkpoint layout
    det = YoloDetector("yolov8n", imgsz=64)
    det.load(tmp_path / "yolo.pt")
    for a, b in zip(det.net.state_dict().values(), net.state_dict().values()):
        torch.testing.assert_close(a.float(), b.float())
    # anything outside ultralytics' allow-list of model classes is refused, never unpickled
    torch.save({"model": _NotAllowed()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointMismatchError, match="weights-only"):
        det.load(tmp_path / "evil.pt")


def test_packed_detections_round_trip():
    from rewardbench.rewards._detect import pack_detections, unpack_detections

    dets = [D([("cat", 0.9, (1, 2, 3, 4)), ("dog", 0.5, (5, 6, 7, 8))], image_size=(40, 60)), D([], image_size=(8, 9))]
    back = unpack_detections(pack_detections(dets, max_det=5))
    assert [d.as_lists() for d in back] == [d.as_lists() for d in dets]
    assert [d.image_size for d in back] == [(40, 60), (8, 9)]


class CountingDetector(FakeDetector):
    calls = 0

    def forward(self, pixels):
        CountingDetector.calls += 1
        return [self.dets[0]] * pixels.shape[0]


def test_the_harness_detects_once_for_all_detection_rewards():
    from rewardbench.harness import Scorer

    dets = [D([("cat", 0.9, (0, 0, 10, 10)), ("dog", 0.8, (20, 0, 30, 10))], image_size=(32, 32))]
    rows = [{"image": torch.rand(3, 32, 32), "prompt": p}
            for p in ("a cat on the left of a dog", "a cat and a dog", "two cats", "a frog")]
    results = {}
    for share in (True, False):
        CountingDetector.calls = 0
        models = {n: _reward(n, dets) for n in ("detection-score", "compbench-spatial", "geneval-counting")}
        for m in models.values():
            m.backbone = CountingDetector(dets)
        res = Scorer(models, batch_size=4, num_workers=0, progress=False, share_backbones=share).run(rows)
        results[share] = res.table[list(models)].to_numpy()
        assert CountingDetector.calls == (1 if share else 3)
    assert (results[True] == results[False]).all()
    assert results[True][:, 0].tolist() == pytest.approx([0.85, 0.85, 0.9, 0.0])
