"""PP-OCRv4 text detection and recognition from the ONNX models bundled in PyPI ``rapidocr-onnxruntime``.

RapidOCR (Apache-2.0) ships PaddleOCR's PP-OCRv4 models (Apache-2.0) converted to ONNX and runs PaddleOCR's
pipeline around them: DB text detection, boxes sorted top to bottom and left to right, each box cropped and read by
the CTC recogniser (6,623 characters: Chinese, Latin letters, digits, punctuation), lines below a confidence
dropped. `TextReader` runs it as Flow-GRPO's OCR reward runs PaddleOCR 2.9.1 (``PaddleOCR(use_angle_cls=False,
lang="en")``, ``ocr(img, cls=False)``): no angle classifier, lines below confidence 0.5 dropped (PaddleOCR's
``drop_score``), and the detector at PaddleOCR's default settings (`PADDLE_DET`). What differs is the models:
``lang="en"`` gives PaddleOCR's English PP-OCRv3 detector and PP-OCRv4 recogniser (95 ASCII characters), while the
wheel carries the Chinese-English PP-OCRv4 pair, which can read a character outside the English set.

Images are RGB uint8 ``[H, W, 3]``; the models read BGR, as PaddleOCR's ``cv2`` loading gives them, so each image's
channels are reversed first. (Flow-GRPO hands PaddleOCR its RGB arrays as they are: PaddleOCR takes an array for
BGR, so Flow-GRPO's OCR reads red as blue; `TextReader` gives the models what they were trained on.)

Threads follow `rewardbench.rewards._runtime`: one single-threaded engine per worker thread on a CPU (RapidOCR's
detector keeps per-call state, so threads never share an engine), images side by side in `parallel_map`; on a CUDA
device with onnxruntime-gpu, the sessions run on onnxruntime's CUDA provider, one image at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._runtime import parallel_map, provider_key, session_options, session_providers

PACKAGE = "rapidocr_onnxruntime"
DET_MODEL = f"{PACKAGE}:models/ch_PP-OCRv4_det_infer.onnx"
REC_MODEL = f"{PACKAGE}:models/ch_PP-OCRv4_rec_infer.onnx"
# PaddleOCR 2.9.1's defaults (paddleocr/tools/infer/utility.py: det_limit_side_len=960, det_limit_type="max",
# det_db_box_thresh=0.6, det_db_unclip_ratio=1.5, use_dilation=False, drop_score=0.5), the version Flow-GRPO's
# README installs; RapidOCR's own defaults differ (limit 736 "min", box 0.5, unclip 1.6, dilation on)
PADDLE_DET = {"det_limit_type": "max", "det_box_thresh": 0.6, "det_unclip_ratio": 1.5, "det_donot_use_dilation": True}
# the detector's settings by name: "paddleocr" (as Flow-GRPO ran it; a 512 px image is read at 512 px) or
# "rapidocr" (RapidOCR's own: the shorter side enlarged to 736 px; on scripts/ocr's rendered set, better on small
# text and at half the speed: scripts/ocr/results/rendered_text.md)
DET_SETTINGS = {"paddleocr": PADDLE_DET, "rapidocr": {}}
DROP_SCORE = 0.5

_LOCAL = threading.local()  # this thread's engines, by (config, provider key)


def _build(config: tuple[tuple[str, Any], ...], key: str):
    """A RapidOCR engine with ``config`` whose sessions run on ``key`` (`provider_key`)."""
    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR(**dict(config), intra_op_num_threads=1, inter_op_num_threads=1)
    if key != "cpu":  # RapidOCR's own CUDA switch always takes device 0: the sessions are rebuilt for this device
        import onnxruntime as ort

        from rewardbench.spec import WeightSource
        from rewardbench.weights import bundled_path

        for holder, model in ((engine.text_det.infer, DET_MODEL), (engine.text_rec.session, REC_MODEL)):
            path = str(bundled_path(WeightSource("bundled", model)))
            holder.session = ort.InferenceSession(path, session_options(key), providers=session_providers(key))
    return engine


def _engine(config: tuple[tuple[str, Any], ...]):
    key = provider_key()
    engines = _LOCAL.__dict__.setdefault("engines", {})
    if (config, key) not in engines:
        engines[config, key] = _build(config, key)
    return engines[config, key]


class TextReader:
    """Reads the text lines of RGB uint8 images with PP-OCRv4 (see the module docstring).

    ``text_score``: lines read with a lower confidence are dropped (PaddleOCR's ``drop_score``, 0.5).
    ``det_settings``: the detector's settings, a name of `DET_SETTINGS`.

    Example:
        >>> import numpy as np
        >>> TextReader().read(np.full((64, 64, 3), 255, dtype=np.uint8))  # a blank image: no text
        []
    """

    def __init__(self, text_score: float = DROP_SCORE, det_settings: str = "paddleocr") -> None:
        if det_settings not in DET_SETTINGS:
            raise ValueError(f"det_settings must be one of {sorted(DET_SETTINGS)}, got {det_settings!r}")
        self.text_score, self.det_settings = float(text_score), det_settings
        self.config = tuple(sorted({**DET_SETTINGS[det_settings], "text_score": self.text_score}.items()))

    def read(self, image: np.ndarray) -> list[tuple[str, float]]:
        """The (text, confidence) lines of one RGB uint8 image ``[H, W, 3]``, top to bottom, left to right."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"TextReader.read: expected an RGB uint8 array [H, W, 3], got {image.dtype} "
                             f"{image.shape}")
        bgr = np.ascontiguousarray(image[..., ::-1])
        result, _ = _engine(self.config)(bgr, use_det=True, use_cls=False, use_rec=True)
        return [(str(text), float(score)) for _box, text, score in (result or [])]

    def read_all(self, images: Sequence[np.ndarray]) -> list[list[tuple[str, float]]]:
        """`read` of each image: side by side on the CPU's threads, one at a time on a GPU."""
        return parallel_map(self.read, images, threads=None if provider_key() == "cpu" else 1)
