"""rewards/_blazeface.py: MediaPipe BlazeFace and FaceMesh run with ai-edge-litert on real photos."""

from __future__ import annotations

import numpy as np
import pytest

from rewardbench.rewards._blazeface import BLAZEFACE_MODELS, _anchors, blazeface_detect, facemesh_face_score


def test_anchor_counts_match_the_models_outputs():
    # MediaPipe: 896 anchors for the 128 px models (16x16x2 + 8x8x6), 2304 for full range (48x48x1)
    assert len(_anchors("short")) == 896 and len(_anchors("full")) == 2304 and len(_anchors("back")) == 896
    a = _anchors("full")
    assert a.min() > 0 and a.max() < 1


@pytest.mark.parametrize("model", sorted(BLAZEFACE_MODELS))
def test_one_face_in_the_astronaut_with_keypoints_inside_it(model, photos):
    (d,) = blazeface_detect(photos["astronaut"], model)
    x0, y0, x1, y1 = d.box
    assert 150 < x0 < x1 < 300 and 50 < y0 < y1 < 200 and d.score > 0.8  # her face is at ~(175-280, 75-175)
    eyes, nose, mouth = d.keypoints[:2], d.keypoints[2], d.keypoints[3]
    assert all(x0 <= x <= x1 and y0 <= y <= y1 for x, y in d.keypoints[:4])
    assert eyes[0][0] < eyes[1][0] and max(eyes[:, 1]) < nose[1] < mouth[1]  # left eye first, then nose, mouth


def test_letterbox_maps_boxes_back_to_the_image(photos):
    """The same face, padded into a wider canvas, is found at the same place plus the offset."""
    im = photos["grace_hopper"]
    (d,) = blazeface_detect(im)
    canvas = np.zeros((im.shape[0], im.shape[1] + 300, 3), np.uint8)
    canvas[:, 300:] = im
    (e,) = blazeface_detect(canvas)
    np.testing.assert_allclose(np.array(e.box) - [300, 0, 300, 0], d.box, atol=12)


def test_facemesh_confirms_faces_and_rejects_objects_and_tilted_faces_are_levelled(photos):
    import cv2

    im = photos["astronaut"]
    (d,) = blazeface_detect(im)
    eyes = (tuple(d.keypoints[0]), tuple(d.keypoints[1]))
    assert facemesh_face_score(im, d.box, eyes) > 0.99 and facemesh_face_score(im, d.box) > 0.99
    assert facemesh_face_score(photos["coffee"], (200, 100, 400, 300)) < 0.1  # a cup is no face
    # the astronaut turned by 60 degrees: with the eyes given the crop is levelled and still confirmed
    rot = cv2.getRotationMatrix2D((256, 256), 60, 1.0)
    tilted = cv2.warpAffine(im, rot, (512, 512))
    found = blazeface_detect(tilted, min_score=0.3)
    assert found, "BlazeFace finds the tilted face"
    t = max(found, key=lambda f: f.score)
    assert facemesh_face_score(tilted, t.box, (tuple(t.keypoints[0]), tuple(t.keypoints[1]))) > 0.9


def test_no_faces_in_photos_without_people(photos):
    for name in ("coffee", "chelsea", "rocket"):
        assert blazeface_detect(photos[name], "full") == []
