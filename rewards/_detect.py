"""A batched COCO object detector for the compositional rewards: ultralytics YOLO, in torch.

The architecture is built from an ultralytics model yaml (``yolov8n.yaml`` ...) with random weights
— no download, no network: ultralytics' ``DetectionModel`` reads the yaml bundled in the package.
`YoloDetector.load` then loads the official COCO checkpoint: a local path, ``$REWARDBENCH_WEIGHTS``,
or the official release URL (downloaded and cached by rewardbench.weights, which fails fast
offline), read by ultralytics' own checkpoint loader in its weights-only mode (``torch_safe_load(...,
safe_only=True)``: torch.load(weights_only=True) against ultralytics' allow-list of model classes),
or a ``.safetensors`` state dict of the same architecture. Where ultralytics' safe loader is not
available (torch < 2.6, older ultralytics), ``.pt`` checkpoints are refused rather than unpickled
(ultralytics itself would quietly fall back to an unrestricted ``torch.load``).

Rewards of one scoring batch that run their own detector on the same pixels (GenEval's colour checks
beside detection-score) share its detections (`rewardbench.cache.SameBatchMemo`): YOLO runs once per image.

Preprocessing follows ultralytics' predictor (``LetterBox``: resize the longer side to ``imgsz``
keeping the aspect ratio, pad with grey 114/255 to a square; pixels in [0, 1], RGB) and its NMS
(``ultralytics.utils.nms.non_max_suppression``; class-aware). Each image is processed independently,
so a batch gives the same detections as images one by one. Detection is not differentiable.

    >>> import torch
    >>> det = YoloDetector(imgsz=64)                     # random weights: detections are meaningless
    >>> dets = det(torch.rand(2, 3, 96, 128))
    >>> len(dets), dets[0].image_size
    (2, (96, 128))
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from rewardbench.cache import SameBatchMemo
from rewardbench.coco import COCO_CLASSES
from rewardbench.spec import WeightSource

# Official COCO-trained YOLOv8 checkpoints (ultralytics/assets GitHub releases, tag v8.3.0; the
# release publishes no checksums).
YOLO_URL = "https://github.com/ultralytics/assets/releases/download/v8.3.0/{name}.pt"
LETTERBOX_FILL = 114 / 255  # ultralytics/data/augment.py LetterBox: padding colour (114, 114, 114)
_RECENT = SameBatchMemo(size=4)  # detections of the last batches, shared between detector copies


def _quiet_ultralytics() -> None:
    """Before the first ultralytics import: never pip-install missing packages at run time (its
    default ``YOLO_AUTOINSTALL`` does, e.g. pi-heif when PIL meets an unknown file), no settings
    sync or update checks."""
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    os.environ.setdefault("YOLO_OFFLINE", "true")


def yolo_weight_sources(model: str) -> tuple[WeightSource, ...]:
    """Where the checkpoint of a detection reward's ``model`` comes from: a local file when ``model`` is a path
    (`rewardbench.weights.local_path`: that file, never a download), else ultralytics' official release of that name.

    Example:
        >>> [(s.kind, s.location) for s in yolo_weight_sources("/models/yolov8x.pt")]
        [('file', '/models/yolov8x.pt')]
        >>> yolo_weight_sources("yolov8n")[0].location
        'https://github.com/ultralytics/assets/releases/download/v8.3.0/yolov8n.pt'
    """
    from rewardbench.weights import local_path

    path = local_path(model)
    if path is not None:
        return (WeightSource("file", str(path), filename=path.name, note="local detector checkpoint (model=PATH)"),)
    return (WeightSource("url", YOLO_URL.format(name=model), filename=f"{model}.pt",
                         note="ultralytics official COCO checkpoint (AGPL-3.0); no checksum published"),)


def yolo_architecture(model: str) -> str:
    """The ultralytics architecture a detection reward's ``model`` names: the name itself, or a checkpoint file's
    name without its suffix (``/models/yolov8x.pt`` -> ``yolov8x``; a checkpoint is named after its architecture, as
    ultralytics names its releases).

    Example:
        >>> yolo_architecture("yolov8n"), yolo_architecture("/models/yolo11s.safetensors")
        ('yolov8n', 'yolo11s')
    """
    from rewardbench.weights import local_path

    path = local_path(model)
    return model if path is None else path.stem


def safe_checkpoint_loader():
    """ultralytics' weights-only checkpoint loader (``torch_safe_load`` with ``safe_only=True``), or a
    `CheckpointMismatchError` when this torch/ultralytics cannot load that way: ultralytics would then
    quietly run an unrestricted ``torch.load`` (arbitrary pickles), which rewardbench never does."""
    import inspect

    from rewardbench.weights import CheckpointMismatchError

    _quiet_ultralytics()
    import ultralytics
    from ultralytics.nn import tasks

    safe = getattr(tasks, "_SafeLoad", None)
    loader = getattr(tasks, "torch_safe_load", None)
    if safe is None or not getattr(safe, "SUPPORTED", False) or loader is None \
            or "safe_only" not in inspect.signature(loader).parameters:
        raise CheckpointMismatchError(
            f"loading an ultralytics .pt checkpoint safely needs torch >= 2.6 and an ultralytics with "
            f"torch_safe_load(safe_only=True) (here: torch {torch.__version__}, ultralytics "
            f"{ultralytics.__version__}); rewardbench never falls back to unrestricted unpickling. Upgrade both, "
            "or pass a .safetensors state dict of the same architecture")
    return loader


@dataclass
class Detections:
    """Detections of one image: ``boxes`` [N,4] xyxy in the image's pixel coordinates, ``scores``
    [N], ``labels`` [N] (indices into ``names``), sorted by descending score."""

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    names: tuple[str, ...]
    image_size: tuple[int, int]  # (H, W)

    @classmethod
    def from_list(cls, items: list[tuple[str, float, tuple[float, float, float, float]]],
                  image_size: tuple[int, int] = (512, 512), names: tuple[str, ...] = COCO_CLASSES) -> Detections:
        """Hand-made detections: ``[(class_name, score, (x1, y1, x2, y2)), ...]`` (for tests and examples)."""
        order = sorted(range(len(items)), key=lambda i: -items[i][1])
        return cls(torch.tensor([items[i][2] for i in order], dtype=torch.float32).reshape(-1, 4),
                   torch.tensor([items[i][1] for i in order], dtype=torch.float32),
                   torch.tensor([names.index(items[i][0]) for i in order], dtype=torch.long), names, image_size)

    def of(self, name: str, min_score: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Boxes and scores of class ``name`` with score > ``min_score``, best first."""
        if name not in self.names:
            return torch.zeros(0, 4), torch.zeros(0)
        keep = (self.labels == self.names.index(name)) & (self.scores > min_score)
        return self.boxes[keep], self.scores[keep]

    def best(self, name: str) -> float:
        """Highest score of class ``name`` (0 when not detected)."""
        s = self.of(name)[1]
        return float(s[0]) if len(s) else 0.0

    def as_lists(self) -> list[list]:
        """JSON-friendly: ``[[class, score, [x1, y1, x2, y2]], ...]``."""
        return [[self.names[int(c)], round(float(s), 4), [round(float(v), 1) for v in b]]
                for b, s, c in zip(self.boxes, self.scores, self.labels)]


_TEMPLATES: dict[str, nn.Module] = {}


def _random_net(model: str) -> nn.Module:
    """A fresh copy of the architecture with seeded random weights. ultralytics runs a probe forward
    pass to find the strides when it builds from yaml (seconds on a busy CPU): build once per
    process, copy afterwards."""
    if model not in _TEMPLATES:
        _quiet_ultralytics()
        from ultralytics.nn.tasks import DetectionModel  # heavy: imported on build only

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # the same random weights in every process
            try:
                net = DetectionModel(f"{model}.yaml", nc=len(COCO_CLASSES), verbose=False).eval()
            except FileNotFoundError:
                raise ValueError(f"model={model!r}: not an ultralytics detector architecture (yolov8n ... yolov8x, "
                                 "yolo11n ...); a local checkpoint is named after its architecture, e.g. "
                                 "/models/yolov8x.pt") from None
            _TEMPLATES[model] = net
    return copy.deepcopy(_TEMPLATES[model])


class YoloDetector(nn.Module):
    """ultralytics YOLO on float pixels ``[B,3,H,W]`` in [0, 1] → one `Detections` per image.

    ``model``: an ultralytics detection yaml name (``yolov8n`` ... ``yolov8x``, ``yolo11n`` ...);
    ``imgsz``: the letterbox size (640 as in ultralytics; the tiny test config uses 64);
    ``conf``/``iou``/``max_det``: NMS settings. ``conf`` is a floor: the rewards apply their own
    thresholds on top (GenEval 0.3/0.9, ...).
    """

    def __init__(self, model: str = "yolov8n", imgsz: int = 640, conf: float = 0.01, iou: float = 0.7,
                 max_det: int = 300):
        super().__init__()
        self.model_name = model
        self.imgsz = int(imgsz)
        self.conf, self.iou, self.max_det = conf, iou, max_det
        self.net = _random_net(model)
        self.names: tuple[str, ...] = COCO_CLASSES
        self.stride = int(self.net.stride.max())
        self.weights_id = "random:seed0"  # every copy of the template has the same random weights

    # -- weights ----------------------------------------------------------------------------
    def load(self, path: str | os.PathLike) -> None:
        """Load a checkpoint file: an ultralytics ``.pt`` (weights-only) or a ``.safetensors`` state dict."""
        from rewardbench.weights import CheckpointMismatchError, load_into, load_state_dict

        path = Path(path)
        stat = path.stat() if path.exists() else None
        self.weights_id = f"{path.resolve()}:{stat.st_size if stat else ''}:{stat.st_mtime_ns if stat else ''}"
        if path.suffix == ".safetensors" or path.is_dir():
            load_into(self.net, load_state_dict(path), source=str(path))
            return
        torch_safe_load = safe_checkpoint_loader()
        try:
            ckpt, _ = torch_safe_load(str(path.resolve()), safe_only=True)
        except Exception as e:
            raise CheckpointMismatchError(f"{path}: not a loadable ultralytics checkpoint in weights-only mode "
                                          f"({type(e).__name__}: {e})") from None
        model = ckpt.get("ema") or ckpt.get("model")
        if not isinstance(model, nn.Module):
            raise CheckpointMismatchError(f"{path}: holds no ultralytics model")
        names = getattr(model, "names", None)
        if isinstance(names, dict):
            names = tuple(names[i] for i in sorted(names))
        if names and tuple(names) != COCO_CLASSES:
            raise CheckpointMismatchError(f"{path}: detector classes are not the 80 COCO classes "
                                          f"({len(names)} classes)")
        load_into(self.net, {k: v.float() for k, v in model.float().state_dict().items()}, source=str(path))

    # -- inference --------------------------------------------------------------------------
    def letterbox(self, pixels: torch.Tensor) -> tuple[torch.Tensor, float, tuple[float, float]]:
        """Resize the longer side to ``imgsz`` and pad to a square (ultralytics LetterBox, centred)."""
        h, w = pixels.shape[-2:]
        r = self.imgsz / max(h, w)
        nh, nw = max(1, round(h * r)), max(1, round(w * r))
        x = F.interpolate(pixels, size=(nh, nw), mode="bilinear", align_corners=False, antialias=False) \
            if (nh, nw) != (h, w) else pixels
        top, left = (self.imgsz - nh) // 2, (self.imgsz - nw) // 2
        x = F.pad(x, (left, self.imgsz - nw - left, top, self.imgsz - nh - top), value=LETTERBOX_FILL)
        return x, r, (left, top)

    def forward(self, pixels: torch.Tensor) -> list[Detections]:
        # another copy of this detector (same settings and weights) may have just seen these very pixels
        key = (self.model_name, self.imgsz, self.conf, self.iou, self.max_det, self.weights_id,
               sum(p._version for p in self.net.parameters() if not p.is_inference()), str(self.net_device))
        return list(_RECENT.get(pixels, key, lambda: self._detect(pixels)))

    @property
    def net_device(self) -> torch.device:
        return next(self.net.parameters()).device

    @torch.no_grad()
    def _detect(self, pixels: torch.Tensor) -> list[Detections]:
        from ultralytics.utils.nms import non_max_suppression

        h, w = pixels.shape[-2:]
        x, r, (left, top) = self.letterbox(pixels.float())
        pred = self.net(x.to(next(self.net.parameters()).dtype))
        pred = pred[0] if isinstance(pred, (list, tuple)) else pred
        # max_time_img large: NMS must never stop early on a slow machine (results would then
        # depend on timing)
        out = non_max_suppression(pred.float(), conf_thres=self.conf, iou_thres=self.iou, max_det=self.max_det,
                                  max_time_img=1e6)
        dets = []
        for d in out:
            d = d.detach().float().cpu()
            boxes = d[:, :4].clone()
            boxes[:, [0, 2]] = ((boxes[:, [0, 2]] - left) / r).clamp(0, w)
            boxes[:, [1, 3]] = ((boxes[:, [1, 3]] - top) / r).clamp(0, h)
            order = torch.argsort(d[:, 4], descending=True, stable=True)
            dets.append(Detections(boxes[order], d[order, 4], d[order, 5].long(), self.names, (int(h), int(w))))
        return dets


def pack_detections(dets: list[Detections], max_det: int) -> torch.Tensor:
    """Detections of a batch as one float tensor ``[B, 1 + max_det, 6]`` (row 0: image height,
    width and the number of boxes; then ``x1, y1, x2, y2, score, label`` rows, zero-padded), so
    that the scoring harness can compute them once and hand them to every detection reward."""
    out = torch.zeros(len(dets), 1 + max_det, 6)
    for i, d in enumerate(dets):
        n = min(len(d.scores), max_det)
        out[i, 0, :3] = torch.tensor([d.image_size[0], d.image_size[1], n], dtype=torch.float32)
        out[i, 1:1 + n, :4] = d.boxes[:n]
        out[i, 1:1 + n, 4] = d.scores[:n]
        out[i, 1:1 + n, 5] = d.labels[:n].float()
    return out


def unpack_detections(packed: torch.Tensor, names: tuple[str, ...] = COCO_CLASSES) -> list[Detections]:
    """Inverse of `pack_detections`."""
    dets = []
    for row in packed.detach().float().cpu():
        h, w, n = (int(v) for v in row[0, :3].tolist())
        body = row[1:1 + n]
        dets.append(Detections(body[:, :4].clone(), body[:, 4].clone(), body[:, 5].long(), names, (h, w)))
    return dets
