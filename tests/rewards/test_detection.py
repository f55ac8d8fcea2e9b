"""The detection reward and object presence (rewards/detection.py), and what every detector-based
reward shares: unknown objects, offline weights, detections computed once by the harness."""

from __future__ import annotations

import pytest
import torch

import rewardbench
from rewardbench.rewards._prompts import parse_prompt
from rewardbench.rewards.detection import detection_score, object_presence

from ._fake_detector import D, FakeDetector, reward_with


def test_detection_score_is_the_mean_best_confidence():
    p = parse_prompt("a cat and a dog")
    dets = D([("cat", 0.9, (0, 0, 1, 1)), ("cat", 0.4, (0, 0, 2, 2)), ("dog", 0.5, (0, 0, 1, 1))])
    assert detection_score(p, dets) == pytest.approx((0.9 + 0.5) / 2)
    assert detection_score(p, D([])) == 0.0
    # an object unknown to the detector counts as not detected
    assert detection_score(parse_prompt("a cat and a frog"), dets) == pytest.approx(0.9 / 2)
    assert object_presence(p, dets) == 1.0 and object_presence(p, D([("dog", 0.2, (0, 0, 1, 1))])) == 0.0


def test_unknown_objects_get_a_note_not_a_crash():
    r = reward_with("detection-score", [D([("cat", 0.8, (0, 0, 5, 5))]), D([])])
    out = r(torch.rand(2, 3, 32, 32), ["a cat next to a lamp", "a lamp"])
    assert out.scores.tolist() == pytest.approx([0.4, 0.0])
    assert "lamp" in out.details["note"][0] and "lamp" in out.details["note"][1]


def test_offline_weights_fail_clearly(tmp_path, unreachable):
    r = rewardbench.load_reward("detection-score", pretrained=False, model="yolov8n", imgsz=64)
    with pytest.raises(rewardbench.WeightsNotFoundError) as e:
        r.load_pretrained()
    assert "yolov8n.pt" in str(e.value) and "--weights" in str(e.value)  # the built architecture's checkpoint
    assert "github.com is unreachable" in str(e.value) and unreachable == []
    with pytest.raises(rewardbench.WeightsNotFoundError, match="missing.pt"):
        r.load_pretrained(tmp_path / "missing.pt")


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
        models = {n: reward_with(n, dets) for n in ("detection-score", "compbench-spatial", "geneval-counting")}
        for m in models.values():
            m.backbone = CountingDetector(dets)
        res = Scorer(models, batch_size=4, num_workers=0, progress=False, share_backbones=share).run(rows)
        results[share] = res.table[list(models)].to_numpy()
        assert CountingDetector.calls == (1 if share else 3)
    assert (results[True] == results[False]).all()
    assert results[True][:, 0].tolist() == pytest.approx([0.85, 0.85, 0.9, 0.0])


# -- model=PATH: a local checkpoint stays a local path (issue 24) --------------------------------------------------

def test_a_detector_path_resolves_to_that_file_and_a_name_to_the_official_release(tmp_path, monkeypatch):
    from pathlib import Path

    from rewardbench.rewards._detect import yolo_architecture, yolo_weight_sources
    from rewardbench.weights import resolve_weights

    ckpt = tmp_path / "yolov8s.pt"
    ckpt.write_bytes(b"stands for a checkpoint")
    monkeypatch.setenv("REWARDBENCH_WEIGHTS", str(tmp_path / "elsewhere"))
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "yolov8s.pt").write_bytes(b"a same-named file elsewhere: never taken for it")
    for given in (str(ckpt), "./yolov8s.pt", "yolov8s.pt"):  # absolute, and relative as typed in the folder
        monkeypatch.chdir(tmp_path)
        (src,) = yolo_weight_sources(given)
        assert (src.kind, Path(src.location)) == ("file", ckpt), given
        assert resolve_weights([src], reward="detection-score").path == ckpt
        assert yolo_architecture(given) == "yolov8s"
    (official,) = yolo_weight_sources("yolov8s")
    assert (official.kind, official.location) == (
        "url", "https://github.com/ultralytics/assets/releases/download/v8.3.0/yolov8s.pt")
    assert yolo_architecture("yolov8s") == "yolov8s"


@pytest.fixture
def no_download(monkeypatch):
    from rewardbench import weights

    def fetch(*a, **k):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(weights, "_try_url", fetch)
    monkeypatch.setattr(weights, "_try_hub", fetch)


def test_a_missing_local_detector_is_named_and_nothing_is_downloaded_or_built(tmp_path, monkeypatch, no_download):
    from rewardbench.registry import REGISTRY

    def built(*a, **k):
        raise AssertionError("the reward was built before its missing checkpoint was noticed")

    monkeypatch.setattr(REGISTRY, "build", built)
    gone = tmp_path / "models" / "yolov8s.pt"
    with pytest.raises(rewardbench.WeightsNotFoundError, match=f"file {gone}: does not exist"):
        rewardbench.load_reward("detection-score", model=str(gone))


def test_a_local_detector_file_is_what_loads(tmp_path, no_download):
    """A file that is not an ultralytics checkpoint: the load reads that very file (and says so), no download."""
    fake = tmp_path / "yolov8n.pt"
    fake.write_bytes(b"not a checkpoint")
    with pytest.raises(rewardbench.CheckpointMismatchError, match=str(fake)):
        rewardbench.load_reward("detection-score", model=str(fake), imgsz=64)
    r = rewardbench.load_reward("detection-score", model=str(fake), imgsz=64, pretrained=False)
    assert r.detector.model_name == "yolov8n"  # the architecture named by the file


def test_a_checkpoint_named_after_no_architecture_is_refused_clearly(tmp_path):
    with pytest.raises(ValueError, match="not an ultralytics detector architecture.*named after its architecture"):
        rewardbench.load_reward("detection-score", model=str(tmp_path / "best.pt"), pretrained=False)
