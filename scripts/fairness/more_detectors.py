"""Two more offline face detectors beside BlazeFace + FaceMesh, on the same labelled images: can either raise recall?

BlazeFace confirmed by FaceMesh (the default before ``agreement``; ``measure_fairness.py``) misses 5-6 of the
27 images with a clear human face: profiles in oil paintings, marble statues, an expressionist close-up. Two
other detectors with weights on PyPI are measured here alone and as a second chance beside it (a face of
theirs counts where BlazeFace + FaceMesh found none overlapping it, IoU > 0.3). Neither beat CenterFace,
which the default now uses (``measure_fairness.py``, results/detectors.md):

* dlib's CNN face detector (MMOD, ``mmod_human_face_detector.dat`` from PyPI ``face_recognition_models``;
  dlib-models, CC0), image upsampled once as dlib's own example does for faces under 80 px;
* MTCNN (Zhang et al. 2016) with the weights bundled in PyPI ``facenet-pytorch`` 2.6 (state dicts, read by
  its own code through ``torch.load``, whose default on torch >= 2.6 is ``weights_only=True``).

Neither is a dependency of rewardbench (dlib's model is 100 MB, the CNN takes seconds per image on a CPU, and
facenet-pytorch pins an old torch): install them to rerun this measurement::

    pip install face_recognition_models && pip install --no-deps facenet-pytorch==2.6.0
    python scripts/fairness/more_detectors.py        # -> results/more_detectors.{csv,md}

Each detector's face is also scored by FaceMesh (``facemesh_face_score``), and rules with and without that
confirmation are listed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure_fairness import (  # noqa: E402  (a sibling script, not a package)
    CALIBRATION,
    GOALS,
    RESULTS,
    _iou,
    _md_table,
    _write,
    face_metrics,
    load_calibration,
)

from rewardbench.rewards.parts import build_face_detector, facemesh_face_score  # noqa: E402


def _dlib_cnn():
    import importlib.util

    import dlib

    spec = importlib.util.find_spec("face_recognition_models")  # not imported: its __init__ needs pkg_resources
    if spec is None:
        raise RuntimeError("pip install face_recognition_models (dlib's CNN face detector model)")
    path = Path(spec.submodule_search_locations[0]) / "models" / "mmod_human_face_detector.dat"
    net = dlib.cnn_face_detection_model_v1(str(path))

    def detect(im: np.ndarray) -> list[tuple[float, tuple[float, float, float, float]]]:
        return [(float(d.confidence), (float(d.rect.left()), float(d.rect.top()), float(d.rect.right()),
                                        float(d.rect.bottom()))) for d in net(im, 1)]
    return detect


def _mtcnn():
    if tuple(int(x) for x in torch.__version__.split(".")[:2]) < (2, 6):
        raise RuntimeError("facenet-pytorch loads its weights with torch.load's default: needs torch >= 2.6, "
                           "where that default is weights_only=True")
    from facenet_pytorch import MTCNN

    net = MTCNN(keep_all=True, device="cpu")

    def detect(im: np.ndarray) -> list[tuple[float, tuple[float, float, float, float]]]:
        boxes, probs = net.detect(im)
        return [] if boxes is None else [(float(p), tuple(float(v) for v in b)) for b, p in zip(boxes, probs)]
    return detect


# (name, detector, threshold, FaceMesh confirmation): each rule, alone and as a second chance
RULES = [("dlib CNN (MMOD) >= 0", "dlib_cnn", 0.0, None), ("dlib CNN >= 0.5", "dlib_cnn", 0.5, None),
         ("dlib CNN >= 0.5, FaceMesh > 0.3", "dlib_cnn", 0.5, 0.3), ("MTCNN >= 0.9", "mtcnn", 0.9, None),
         ("MTCNN >= 0.9, FaceMesh > 0.3", "mtcnn", 0.9, 0.3), ("MTCNN >= 0.95", "mtcnn", 0.95, None)]


def measure(items) -> tuple[list[dict], dict[str, float]]:
    default = build_face_detector("blazeface")
    detectors = {"dlib_cnn": _dlib_cnn(), "mtcnn": _mtcnn()}
    seconds = dict.fromkeys(detectors, 0.0)
    base, found = [], {k: [] for k in detectors}
    for it in items:
        base.append([f.box for f in default.detect([it.image])[0]])
        for name, det in detectors.items():
            t = time.perf_counter()
            faces = det(it.image)
            seconds[name] += time.perf_counter() - t
            found[name].append([(s, box, facemesh_face_score(it.image, box)) for s, box in faces])
    rows = [{"detector": "BlazeFace + FaceMesh (the default before agreement)",
             **face_metrics(items, [len(b) for b in base])}]
    for label, name, threshold, mesh in RULES:
        kept = [[box for s, box, m in faces if s >= threshold and (mesh is None or m > mesh)] for faces in found[name]]
        rows.append({"detector": label, **face_metrics(items, [len(k) for k in kept])})
        extra = [len(b) + sum(not any(_iou(box, x) > 0.3 for x in b) for box in k) for b, k in zip(base, kept)]
        rows.append({"detector": f"BlazeFace + FaceMesh, else {label}", **face_metrics(items, extra)})
    return rows, {k: v / len(items) for k, v in seconds.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=CALIBRATION)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    items = [it for it in load_calibration(args.data) if it.negative or it.human_faces >= 1]
    rows, seconds = measure(items)
    cols = ["detector", "fp_images", "fp_rate", "recall_images", "recall", "count_ok", "count_within_1"]
    md = ["# Two more offline face detectors, alone and as a second chance beside BlazeFace + FaceMesh", "",
          f"Same images as detectors.md: {rows[0]['negatives']} with only animals or objects, {rows[0]['positives']}"
          f" with a clear human face, {rows[0]['count_images']} with 1-5 clear faces. Goals: false positives <= "
          f"{GOALS['fp_rate']:.0%}, recall >= {GOALS['recall']:.0%}, counts >= {GOALS['count_within_1']:.0%}. "
          "BlazeFace + FaceMesh's faces are of 16 px or more; the other detectors' faces count at any size.", "",
          _md_table(rows, cols), "",
          "Seconds per image (2 shared CPU cores): " + ", ".join(f"{k} {v:.2f}" for k, v in seconds.items()), ""]
    _write("more_detectors", rows, "\n".join(md), args.out)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
