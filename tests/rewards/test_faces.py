"""rewards/_faces.py: the bundled face detectors on real photos, their boxes, sizes and order; BlazeFace's
confirmation rule."""

from __future__ import annotations

import numpy as np
import pytest

from rewardbench.rewards._faces import DEFAULT_FACE_DETECTOR, FACE_DETECTORS, BlazeFaceDetector, build_face_detector

PEOPLE = ("astronaut", "grace_hopper")
NO_PEOPLE = ("coffee", "rocket")


@pytest.mark.parametrize("backend", sorted(FACE_DETECTORS))
def test_faces_found_in_portraits_and_not_in_photos_without_people(backend, photos):
    det = build_face_detector(backend)
    found = det.detect([photos[n] for n in (*PEOPLE, *NO_PEOPLE)])  # real resolution
    counts = [len(f) for f in found]
    assert counts[:2] == [1, 1], f"{backend}: faces per portrait {counts[:2]}"
    assert counts[2:] == [0, 0], f"{backend}: faces found in photos without people: {found[2:]}"
    for name, faces in zip(PEOPLE, found):
        (face,) = faces
        h, w = photos[name].shape[:2]
        x0, y0, x1, y1 = face.box
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert face.width >= 60 and face.height >= 60  # the faces are ~90-220 px wide


def test_face_boxes_of_different_backends_agree(photos):
    """Four independent detectors put the astronaut's face in the same place (IoU > 0.5)."""
    boxes = {b: build_face_detector(b).detect([photos["astronaut"]])[0][0].box for b in FACE_DETECTORS}

    def iou(a, b):
        ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = ix * iy
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    names = sorted(boxes)
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            assert iou(boxes[names[i]], boxes[names[j]]) > 0.5, (names[i], names[j], boxes)


def test_min_size_and_largest_first(photos):
    big = build_face_detector("nudenet", min_size=16).detect([photos["astronaut"]])[0]
    assert len(big) == 1
    none = build_face_detector("nudenet", min_size=int(big[0].width) + 5).detect([photos["astronaut"]])[0]
    assert none == []
    # two portraits side by side at different scales: the larger face comes first
    gh = photos["grace_hopper"]
    small = gh[::2, ::2]
    canvas = np.zeros((gh.shape[0], gh.shape[1] + small.shape[1], 3), np.uint8)
    canvas[:, :gh.shape[1]] = gh
    canvas[:small.shape[0], gh.shape[1]:] = small
    faces = build_face_detector("dlib").detect([canvas])[0]
    assert len(faces) == 2
    assert faces[0].area > faces[1].area and faces[0].box[0] < gh.shape[1] <= faces[1].box[0]
    assert len(build_face_detector("dlib", max_faces=1).detect([canvas])[0]) == 1


def test_detector_rejects_bad_input():
    with pytest.raises(ValueError, match=r"images\[0\]"):
        build_face_detector("haar").detect([np.zeros((8, 8), np.float32)])
    with pytest.raises(ValueError, match="unknown face detector"):
        build_face_detector("retinaface")
    with pytest.raises(ValueError, match="min_score <= sure_score"):
        build_face_detector("blazeface", min_score=0.7, sure_score=0.6)
    with pytest.raises(ValueError, match="BlazeFace model"):
        build_face_detector("blazeface", model="huge")


def test_blazeface_keeps_sure_faces_and_asks_facemesh_about_the_rest(photos, monkeypatch):
    """The default rule: score >= sure_score is kept; min_score..sure_score is kept only if FaceMesh confirms."""
    from rewardbench.rewards import _faces

    assert DEFAULT_FACE_DETECTOR == "blazeface" and isinstance(build_face_detector(), BlazeFaceDetector)
    asked = []

    def mesh(image, box, eyes=None):
        asked.append(box)
        return verdict

    monkeypatch.setattr(_faces, "facemesh_face_score", mesh)
    im = photos["astronaut"]  # one face, BlazeFace score ~0.94
    for verdict, sure, expected_faces, expected_asks in [(0.0, 0.5, 1, 0), (0.0, 0.99, 0, 1), (0.95, 0.99, 1, 1)]:
        asked.clear()
        faces = build_face_detector("blazeface", sure_score=sure).detect([im])[0]
        assert (len(faces), len(asked)) == (expected_faces, expected_asks), (verdict, sure)
    (face,) = build_face_detector().detect([im])[0]
    assert len(face.keypoints) == 6 and face.keypoints[0][0] < face.keypoints[1][0]
