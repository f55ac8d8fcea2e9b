"""The batched YOLO detector (rewards/_detect.py): batching, coordinates, checkpoints, packing."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rewardbench.rewards._detect import YoloDetector

from ._fake_detector import D


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


def test_without_ultralytics_safe_loader_pt_checkpoints_are_refused(tiny_detector, tmp_path, monkeypatch):
    from ultralytics.nn import tasks

    from rewardbench import CheckpointMismatchError

    torch.save({"model": tiny_detector.net}, tmp_path / "yolo.pt")
    monkeypatch.setattr(tasks._SafeLoad, "SUPPORTED", False)  # e.g. torch < 2.6: ultralytics would unpickle freely

    def unrestricted(*a, **k):
        raise AssertionError("the checkpoint reached ultralytics' loader")

    monkeypatch.setattr(tasks, "torch_safe_load", unrestricted)
    det = YoloDetector("yolov8n", imgsz=64)
    with pytest.raises(CheckpointMismatchError, match="never falls back to unrestricted unpickling.*safetensors"):
        det.load(tmp_path / "yolo.pt")


def test_copies_of_a_detector_detect_the_same_pixels_once(tiny_detector, tmp_path):
    from safetensors.torch import save_file

    calls = []
    a, b = YoloDetector("yolov8n", imgsz=64, conf=1e-5), YoloDetector("yolov8n", imgsz=64, conf=1e-5)
    for det in (a, b):
        det.net.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    x = torch.rand(2, 3, 64, 64)
    first = a(x)
    again = b(x)  # another reward's copy, the same tensor: shared
    assert calls == [2] and [d.scores.tolist() for d in again] == [d.scores.tolist() for d in first]
    b(x.clone())  # other pixels (even if equal): detected
    x.add_(0)  # changed in place: detected again
    a(x)
    c = YoloDetector("yolov8n", imgsz=64, conf=0.5)  # other settings
    c.net.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    c(x)
    assert calls == [2, 2, 2, 2]
    # other weights under the same settings: detected with them
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in b.net.state_dict().items()}, str(path))
    b.load(path)
    b(x)
    assert calls == [2, 2, 2, 2, 2]


def test_the_harness_runs_yolo_once_for_detection_and_geneval_rewards():
    """detection-score shares its detector as a backbone; GenEval's colour check runs its own copy of the
    detector on the same pixels: the copies share the detections, so YOLO runs once per image."""
    import rewardbench
    from rewardbench.harness import Scorer

    calls = []
    models = {}
    for name in ("detection-score", "geneval-color", "geneval"):
        torch.manual_seed(0)
        models[name] = rewardbench.load_reward(name, pretrained=False, **rewardbench.get_spec(name).tiny_config)
        models[name].detector.net.register_forward_hook(lambda m, i, o, n=name: calls.append((n, i[0].shape[0])))
    items = [{"image": torch.rand(3, 48, 48), "prompt": p} for p in ("a red cat", "a dog", "two blue cars", "a cup")]
    shared = Scorer(models, batch_size=4, num_workers=0, progress=False).run(items).table
    assert [n for _, n in calls] == [4]  # one detector call for the batch, whichever reward made it
    calls.clear()
    for name, model in models.items():  # and each reward scores what it scores alone
        alone = model(torch.stack([it["image"] for it in items]), [it["prompt"] for it in items]).scores
        assert shared[name].tolist() == pytest.approx(alone.tolist(), abs=1e-6), name
