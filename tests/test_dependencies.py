"""The installed stack keeps what the offline rewards need: OpenCV's Haar cascades (opencv-python and nudenet's
opencv-python-headless share the cv2/ folder, and 5.x ships no cascades), checked on this installation."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = {Requirement(r).name: Requirement(r) for r in
                tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
OPENCV = ("opencv-python", "opencv-python-headless")


@pytest.mark.parametrize("dist", OPENCV)
def test_both_opencv_distributions_stay_below_5(dist):
    req = REQUIREMENTS.get(dist)
    assert req is not None and not req.specifier.contains("5.0.0") and req.specifier.contains("4.14.0"), req
    try:
        installed = metadata.version(dist)
    except metadata.PackageNotFoundError:
        pytest.skip(f"{dist} is not installed")
    assert req.specifier.contains(installed), f"{dist} {installed} is installed; pyproject asks {req}"


def test_the_haar_cascades_load_and_find_a_face():
    import cv2

    from rewardbench.samples import sample_photo

    folder = Path(cv2.data.haarcascades)
    assert (folder / "haarcascade_frontalface_default.xml").is_file(), f"no cascades in {folder} ({cv2.__version__})"
    cascade = cv2.CascadeClassifier(str(folder / "haarcascade_frontalface_default.xml"))
    assert not cascade.empty()
    gray = cv2.cvtColor(sample_photo("astronaut"), cv2.COLOR_RGB2GRAY)
    faces = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(60, 60))
    assert len(faces) >= 1  # the astronaut photo has one clear face
