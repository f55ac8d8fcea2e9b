"""PickScore v1 (Kirstain et al. 2023, arXiv 2305.01569): a CLIP ViT-H/14 fine-tuned on Pick-a-Pic.

Loaded with transformers (``CLIPModel``, hub ``yuvalkirstain/PickScore_v1``). The score, as the
model card and the PickScore repo compute it::

    image_embs = normalise(model.get_image_features(...)); text_embs = normalise(model.get_text_features(...))
    score = model.logit_scale.exp() * (text_embs @ image_embs.T)

i.e. ``logit_scale * cos(image, prompt)``; with the real weights the scale is ~100 and scores sit
around 18–24. Preprocessing is the processor of ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``
(``preprocessor_config.json``: shortest_edge 224, resample 3 = bicubic, centre crop 224 starting at
``excess // 2`` as ``CLIPImageProcessor`` crops, OpenAI CLIP mean/std), here in torch;
``pil_preprocess=True`` gives the PIL path for files, which is the processor as the snippet ran when
it was published (transformers 4's ``CLIPImageProcessor`` resized with PIL; transformers 5's default
processor resizes uint8 tensors with torchvision instead: ``scripts/parity`` measures both). Text: the same
CLIP BPE tokeniser (built offline from open_clip's vocabulary), ``padding=True, truncation=True,
max_length=77`` as in the model card.

Example:
    >>> import torch, rewardbench
    >>> r = rewardbench.load_reward("pickscore", pretrained=False, tiny=True)
    >>> r(torch.rand(2, 3, 96, 128), ["a cat", "a dog"]).scores.shape
    torch.Size([2])
"""

from __future__ import annotations

import os

import torch.nn.functional as F

from rewardbench import RewardOutput, RewardSpec, WeightSource, register_reward

from ._clip_backbone import ClipReward, build_clip, load_clip_weights

__all__ = ["PickScore"]

HUB_ID = "yuvalkirstain/PickScore_v1"
PROCESSOR_ID = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"  # the model card's processor_name_or_path


@register_reward()
class PickScore(ClipReward):
    """PickScore v1: ``logit_scale * cos`` of the fine-tuned CLIP's features (see module docstring)."""

    spec = RewardSpec(
        name="pickscore", aliases=("pickscore-v1", "pick-score"), category="preference", higher_is_better=True,
        range=(16.0, 25.0), differentiable=True, needs_prompt=True, backbone=f"transformers:{HUB_ID}",
        weights=(WeightSource("hub", HUB_ID, filename="model.safetensors", note="no sha256 published"),),
        license="MIT", paper="Kirstain et al., Pick-a-Pic: An Open Dataset of User Preferences for "
                             "Text-to-Image Generation, arXiv 2305.01569",
        description="PickScore v1: logit-scaled cosine (~18-24), transformers CLIP ViT-H/14 fine-tune",
        tiny_config={"tiny": True},
    )

    def __init__(self, *, tiny: bool = False, pil_preprocess: bool = False):
        super().__init__()
        self.backbone = build_clip(HUB_ID, library="transformers", tiny=tiny, pil_preprocess=pil_preprocess)

    def score_embeddings(self, image_embeds, prompts, groups) -> RewardOutput:
        img = F.normalize(image_embeds.float(), dim=-1)
        txt = self.backbone.encode_text(prompts)
        cos = (img * txt).sum(-1)
        return RewardOutput(self.backbone.logit_scale * cos,
                            {"cosine": cos.detach(), "prompt_note": self.prompt_notes(prompts)})

    def load_pretrained(self, weights: str | os.PathLike | None = None):
        self.record_weights(load_clip_weights(self.backbone, weights, reward=self.spec.name, sources=self.spec.weights))
        return self.provenance()
