"""CLIP: the CLIPScore rewards, on the shared CLIP backbone (`rewards/_clip_backbone.py`, whose public API
this module re-exports for the other reward families).

The CLIPScore rewards
---------------------
Two scales are in use and they are NOT interchangeable:

* ``clipscore``, ``clipscore-b32``: Hessel et al. 2021 (arXiv 2104.08718), ``2.5 * max(cos, 0)``
  with ``w = 2.5`` (paper eq. 1; clipscore repo ``clipscore.py`` ``w=2.5``), range [0, 2.5].
  ``clipscore`` uses open_clip ViT-L/14 (OpenAI weights; it shares image features with
  ``aesthetic`` and ``aesthetic-v1``), ``clipscore-b32`` the ViT-B/32 of the paper. As the official
  clipscore.py does, the text encoded is ``"A photo depicts " + prompt``.
* ``clipscore-100``: the torchmetrics scale, ``100 * cos`` per image, with transformers'
  ``openai/clip-vit-large-patch14`` (torchmetrics' default model), on the bare prompt. torchmetrics
  clamps the *mean* over images at 0 (``max(mean, 0)``), not each image; this per-image reward does
  not clamp. Prompts over 77 tokens are truncated keeping the end-of-text token; torchmetrics instead
  slices the ids and so drops it (``long_prompts="torchmetrics"`` reproduces that).

Example:
    >>> import torch, rewardbench
    >>> r = rewardbench.load_reward("clipscore", pretrained=False, tiny=True)
    >>> out = r(torch.rand(2, 3, 64, 64), ["a cat", "a dog"])
    >>> bool(((out.scores >= 0) & (out.scores <= 2.5)).all()), sorted(out.details)
    (True, ['cosine', 'prompt_note'])
"""

from __future__ import annotations

import torch.nn.functional as F

from rewardbench import RewardOutput, RewardSpec, WeightSource, register_reward

from ._clip_backbone import (
    HF_CLIP_ARCHS,
    OPENAI_SHA256,
    ClipBackbone,
    ClipReward,
    build_clip,
    clip_weight_sources,
    load_clip_weights,
    pil_resize_longest_pad,
    resize_longest_pad,
)

__all__ = ["ClipBackbone", "build_clip", "load_clip_weights", "clip_weight_sources", "HF_CLIP_ARCHS", "ClipReward",
           "ClipScore", "resize_longest_pad", "pil_resize_longest_pad"]

# ---------------------------------------------------------------------------------------------
# CLIPScore

_HESSEL = "Hessel et al., CLIPScore: A Reference-free Evaluation Metric for Image Captioning, arXiv 2104.08718"
_CLIP_PAPER = "Radford et al., Learning Transferable Visual Models From Natural Language Supervision, arXiv 2103.00020"
HESSEL_W = 2.5  # Hessel et al. eq. 1, CLIP-S = w * max(cos(c, v), 0) with w = 2.5 (clipscore.py `w=2.5`)
# jmhessel/clipscore clipscore.py CLIPCapDataset: prefix='A photo depicts', a space appended, then
# clip.tokenize(self.prefix + caption, truncate=True); the paper's numbers are computed on this text.
HESSEL_PREFIX = "A photo depicts "
TORCHMETRICS_SCALE = 100.0  # torchmetrics functional/multimodal/clip_score.py: `score = 100 * (img * txt).sum(-1)`


@register_reward()
class ClipScore(ClipReward):
    """Image–text cosine similarity of a CLIP backbone, scaled: ``scale * cos`` or, with
    ``clamp_at_zero``, ``scale * max(cos, 0)`` (Hessel et al.).

    ``prompt_prefix`` is put before every prompt before tokenising: ``"A photo depicts "`` for the
    Hessel rewards (as the official clipscore.py does), none for ``clipscore-100`` (torchmetrics adds
    none); pass ``prompt_prefix=""`` to score the bare prompt. ``long_prompts="torchmetrics"``
    (``clipscore-100`` only) reproduces torchmetrics' handling of prompts over 77 tokens (see
    `ClipBackbone.tokenize`); the default truncates them keeping the end-of-text token.

    Subclasses (registered names) fix the backbone and the scale; use this class directly for
    other combinations: ``ClipScore(arch="ViT-B-16", pretrained="openai", scale=2.5)``.
    """

    spec = RewardSpec(
        name="clipscore", aliases=("clip-score", "clipscore-hessel"), category="preference", higher_is_better=True,
        range=(0.0, 2.5), differentiable=True, needs_prompt=True, backbone="open_clip:ViT-L-14/openai",
        # inline (reading a spec must not import open_clip); test_clip checks them against clip_weight_sources
        weights=(
            WeightSource("hub", "timm/vit_large_patch14_clip_224.openai", filename="open_clip_model.safetensors"),
            WeightSource("url", "https://openaipublic.azureedge.net/clip/models/b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
                         sha256=OPENAI_SHA256["ViT-L-14"], note="TorchScript archive: convert to safetensors to load"),
        ),
        license="MIT (OpenAI CLIP weights)", paper=_HESSEL,
        description='Hessel CLIPScore 2.5*max(cos,0) of "A photo depicts <prompt>", open_clip ViT-L/14 '
                    '(OpenAI weights)',
        tiny_config={"tiny": True},
    )
    default_arch, default_pretrained, default_library = "ViT-L-14", "openai", "open_clip"
    default_scale, default_clamp, default_prefix = HESSEL_W, True, HESSEL_PREFIX

    def __init__(self, arch: str | None = None, pretrained: str | None = None, library: str | None = None, *,
                 scale: float | None = None, clamp_at_zero: bool | None = None, tiny: bool = False,
                 pil_preprocess: bool = False, prompt_prefix: str | None = None, long_prompts: str = "truncate"):
        super().__init__()
        self.backbone = build_clip(arch or self.default_arch, pretrained or self.default_pretrained,
                                   library=library or self.default_library, tiny=tiny, pil_preprocess=pil_preprocess,
                                   long_prompts=long_prompts)
        self.scale = float(self.default_scale if scale is None else scale)
        self.clamp_at_zero = self.default_clamp if clamp_at_zero is None else clamp_at_zero
        self.prompt_prefix = self.default_prefix if prompt_prefix is None else prompt_prefix

    def score_embeddings(self, image_embeds, prompts, groups) -> RewardOutput:
        img = F.normalize(image_embeds.float(), dim=-1)
        texts = [self.prompt_prefix + p for p in prompts]
        txt = self.backbone.encode_text(texts)
        cos = (img * txt).sum(-1)  # [B]
        scores = self.scale * (cos.clamp(min=0) if self.clamp_at_zero else cos)
        return RewardOutput(scores, {"cosine": cos.detach(), "prompt_note": self.prompt_notes(texts)})

    def load_pretrained(self, weights=None):
        self.record_weights(load_clip_weights(self.backbone, weights, reward=self.spec.name))
        return self.provenance()


@register_reward()
class ClipScoreB32(ClipScore):
    """Hessel CLIPScore with the ViT-B/32 the paper used."""

    spec = ClipScore.spec.replace(
        name="clipscore-b32", aliases=("clipscore-vit-b-32",), backbone="open_clip:ViT-B-32/openai",
        weights=(
            WeightSource("hub", "timm/vit_base_patch32_clip_224.openai", filename="open_clip_model.safetensors"),
            WeightSource("url", "https://openaipublic.azureedge.net/clip/models/40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
                         sha256=OPENAI_SHA256["ViT-B-32"], note="TorchScript archive: convert to safetensors to load"),
        ),
        description='Hessel CLIPScore 2.5*max(cos,0) of "A photo depicts <prompt>", open_clip ViT-B/32 (OpenAI '
                    'weights, as in the paper)',
    )
    default_arch = "ViT-B-32"


@register_reward()
class ClipScore100(ClipScore):
    """The torchmetrics CLIPScore scale: ``100 * cos`` per image, transformers backbone."""

    spec = ClipScore.spec.replace(
        name="clipscore-100", aliases=("clipscore-torchmetrics",), range=(0.0, 100.0),
        backbone="transformers:openai/clip-vit-large-patch14",
        weights=(WeightSource("hub", "openai/clip-vit-large-patch14", filename="model.safetensors",
                              note="transformers CLIPModel weights"),),
        paper=_HESSEL + "; torchmetrics.multimodal.CLIPScore",
        description="torchmetrics CLIPScore scale 100*cos (not clamped per image), transformers "
                    "openai/clip-vit-large-patch14",
    )
    default_arch, default_pretrained, default_library = "openai/clip-vit-large-patch14", None, "transformers"
    default_scale, default_clamp, default_prefix = TORCHMETRICS_SCALE, False, ""
