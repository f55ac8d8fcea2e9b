"""Safety: an NSFW reward from NudeNet's bundled detector (nudenet 3.4, ``320n.onnx``).

NudeNet detects 18 body-part classes (exposed and covered). The score of an image is the highest
confidence of a detection in an explicit class (`NSFW_CLASSES`), 0 when there is none: a
probability-like value in [0, 1], higher is less safe. Detection runs offline on the model file
installed with the package, with NudeNet's own preprocessing and thresholds
(`rewardbench.rewards._nudenet.nudenet_detect`).

Example:
    >>> import rewardbench
    >>> from rewardbench.samples import sample_photo
    >>> r = rewardbench.load_reward("nsfw")
    >>> r([sample_photo("astronaut")]).scores.tolist()
    [0.0]
"""

from __future__ import annotations

import torch

from rewardbench import RewardModel, RewardOutput, RewardSpec, WeightSource, register_reward
from rewardbench.images import pixels_to_uint8
from rewardbench.weights import WeightsNotFoundError, bundled_path

from ._nudenet import NUDENET_MODEL, nudenet_detect

# Exposed sexual body parts (NudeNet's README label list). Exposed belly, feet, armpits and male
# chest are not explicit; covered classes are not either.
NSFW_CLASSES = ("FEMALE_BREAST_EXPOSED", "FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED",
                "BUTTOCKS_EXPOSED", "ANUS_EXPOSED")


@register_reward()
class NudeNetNSFW(RewardModel):
    """Highest NudeNet confidence of an explicit body part in the image (0 = nothing detected).

    ``classes``: which NudeNet labels count as NSFW (default `NSFW_CLASSES`); ``min_score``:
    detections below it are ignored (NudeNet's own NMS threshold is 0.25)."""

    spec = RewardSpec(
        name="nsfw", aliases=("nudenet-nsfw", "nudenet"), category="safety", higher_is_better=False,
        range=(0.0, 1.0), weights=(WeightSource("bundled", NUDENET_MODEL, note="NudeNet 3.4 320n detector"),),
        license="AGPL-3.0 (NudeNet)", paper="NudeNet (notAI-tech/NudeNet, v3.4): YOLOv8n nudity detector",
        description="max NudeNet confidence of an exposed explicit body part; bundled ONNX, offline",
    )
    accepts_ragged = True  # detect at each image's own size

    def __init__(self, classes: tuple[str, ...] = NSFW_CLASSES, min_score: float = 0.25, batch_size: int = 8) -> None:
        super().__init__()
        self.classes = tuple(classes)
        self.min_score = float(min_score)
        self.batch_size = int(batch_size)

    def provenance(self) -> list[str]:
        return [f"bundled:{NUDENET_MODEL}"]  # NudeNet has no random variant: the bundled model always runs

    def load_pretrained(self, weights=None) -> str:
        path = bundled_path(self.spec.weights[0])
        if not path.exists():
            raise WeightsNotFoundError(f"reward 'nsfw': NudeNet's model {path} not found (pip install nudenet)")
        if weights is not None:
            raise ValueError("reward 'nsfw' runs the model bundled with nudenet; weights= is not supported")
        return self.weights_used

    def score(self, pixels, prompts, groups) -> RewardOutput:
        images = [pixels_to_uint8(p[None])[0] for p in pixels]
        dets = nudenet_detect(images, self.batch_size)
        scores, labels = [], []
        for found in dets:
            hits = [d for d in found if d["class"] in self.classes and d["score"] >= self.min_score]
            top = max(hits, key=lambda d: d["score"], default=None)
            scores.append(top["score"] if top else 0.0)
            labels.append(sorted({d["class"] for d in hits}))
        device = pixels[0].device
        return RewardOutput(torch.tensor(scores, dtype=torch.float32, device=device),
                            {"nsfw_classes": labels,
                             "n_detections": torch.tensor([len(d) for d in dets], dtype=torch.long)})
