"""Human Preference Score v2 and v2.1 (Wu et al. 2023, arXiv 2306.09341).

An open_clip ViT-H/14 (initialised from ``laion2B-s32B-b79K``) fine-tuned on HPDv2. As the official
``hpsv2`` package scores (hpsv2/img_score.py): image and text features from the CLIP forward, both
L2-normalised (open_clip's ``CLIP.forward`` normalises), and

    HPS = diag(image_features @ text_features.T) = cos(image, prompt)

with no logit scale (not ×100): HPS values sit around 0.2–0.35. The official package runs under
``torch.cuda.amp.autocast`` (fp16); we compute in the model's dtype (float32 by default).

Preprocessing, also as the package does (hpsv2/src/open_clip/factory.py ``preprocess_val =
image_transform(..., resize_longest_max=True)``): the *longer* side resized to 224, the image padded
with black to 224×224 (``ResizeMaxSize``, ``fill=0``), OpenAI CLIP mean/std — not CLIP's usual
shorter-side resize + centre crop. The official transform converts to a tensor *before* resizing
(transform.py ``image_transform``: ``ToTensor()`` then ``ResizeMaxSize``), so its resize is
torchvision's float-tensor bicubic (anti-aliased on torchvision >= 0.17, no clamp), which is what the
torch path computes; for files the two paths are the same computation (``pil_preprocess=True`` only
rounds the pixels to uint8 first, as decoding a file does). On torchvision < 0.17 the official tensor
resize was not anti-aliased, so scores published then may differ slightly on downscaled images.
Tokeniser: open_clip's CLIP BPE, 77 tokens.

Weights: hub ``xswu/HPSv2`` files ``HPS_v2_compressed.pt`` / ``HPS_v2.1_compressed.pt``
(hpsv2/utils.py ``hps_version_map``), a ``{"state_dict": ...}`` pickle of the whole CLIP, loaded
with ``torch.load(weights_only=True, map_location="cpu")``. No sha256 is published.

Example:
    >>> import torch, rewardbench
    >>> r = rewardbench.load_reward("hpsv2", pretrained=False, tiny=True)
    >>> r(torch.rand(2, 3, 96, 128), ["a cat", "a dog"]).scores.shape
    torch.Size([2])
"""

from __future__ import annotations

import os

import torch.nn.functional as F

from rewardbench import RewardOutput, RewardSpec, WeightSource, register_reward

from ._clip_backbone import ClipReward, build_clip, load_clip_weights

__all__ = ["HPSv2", "HPSv21"]

_PAPER = ("Wu et al., Human Preference Score v2: A Solid Benchmark for Evaluating Human Preferences of "
          "Text-to-Image Synthesis, arXiv 2306.09341")
# hpsv2 img_score.py create_model_and_transforms('ViT-H-14', 'laion2B-s32B-b79K')
BASE_ARCH, BASE_TAG = "ViT-H-14", "laion2b_s32b_b79k"


@register_reward()
class HPSv2(ClipReward):
    """HPSv2: cosine of the normalised HPS-CLIP image and prompt features (see module docstring)."""

    spec = RewardSpec(
        name="hpsv2", aliases=("hps", "hps-v2", "hpsv2.0"), category="preference", higher_is_better=True,
        range=(0.15, 0.35), differentiable=True, needs_prompt=True,
        backbone="open_clip:ViT-H-14/hpsv2+longest_pad",
        weights=(WeightSource("hub", "xswu/HPSv2", filename="HPS_v2_compressed.pt", note="no sha256 published"),),
        license="Apache-2.0", paper=_PAPER,
        description="HPSv2 (hpsv2 package formula: cosine of normalised features, ~0.2-0.35), open_clip ViT-H/14",
        tiny_config={"tiny": True},
    )
    weights_tag = "hpsv2"

    def __init__(self, *, tiny: bool = False, pil_preprocess: bool = False):
        super().__init__()
        self.backbone = build_clip(BASE_ARCH, BASE_TAG, tiny=tiny, pil_preprocess=pil_preprocess,
                                   resize_mode="longest_pad", tag=self.weights_tag)

    def score_embeddings(self, image_embeds, prompts, groups) -> RewardOutput:
        img = F.normalize(image_embeds.float(), dim=-1)
        txt = self.backbone.encode_text(prompts)
        return RewardOutput((img * txt).sum(-1),  # diag(img @ txt.T), hpsv2/img_score.py
                            {"prompt_note": self.prompt_notes(prompts)})

    def load_pretrained(self, weights: str | os.PathLike | None = None):
        self.record_weights(load_clip_weights(self.backbone, weights, reward=self.spec.name, sources=self.spec.weights))
        return self.provenance()


@register_reward()
class HPSv21(HPSv2):
    """HPSv2.1: the same model and formula, retrained on more data (hpsv2 ``hps_version="v2.1"``)."""

    spec = HPSv2.spec.replace(
        name="hpsv2.1", aliases=("hps-v2.1", "hpsv21"), backbone="open_clip:ViT-H-14/hpsv2.1+longest_pad",
        weights=(WeightSource("hub", "xswu/HPSv2", filename="HPS_v2.1_compressed.pt", note="no sha256 published"),),
        description="HPSv2.1 (hpsv2 package formula: cosine of normalised features), open_clip ViT-H/14",
    )
    weights_tag = "hpsv2.1"
