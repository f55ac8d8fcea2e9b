"""LAION aesthetic predictors: heads on L2-normalised CLIP image embeddings.

* ``aesthetic`` — the improved predictor (v2, christophschuhmann/improved-aesthetic-predictor,
  ``sac+logos+ava1-l14-linearMSE.pth``): an MLP 768→1024→128→64→16→1 with dropout and *no*
  activations (the repo's ``MLP`` has its ReLUs commented out), on OpenAI CLIP ViT-L/14 image
  embeddings L2-normalised (``simple_inference.py``: ``normalized(model.encode_image(image))``).
* ``aesthetic-v1`` (ViT-L/14), ``aesthetic-v1-b16``, ``aesthetic-v1-b32`` — the first LAION
  predictor (LAION-AI/aesthetic-predictor, ``sa_0_4_vit_{l_14,b_16,b_32}_linear.pth``): one
  ``nn.Linear(D, 1)`` on the normalised embedding of the matching OpenAI CLIP model
  (``image_features /= image_features.norm(dim=-1, keepdim=True); prediction = amodel(image_features)``).

Both were trained on ratings 1–10; scores land around 4–7 for ordinary photos. Preprocessing is
the OpenAI CLIP transform (`rewards/_clip_backbone.py`): shorter side → 224 bicubic, centre crop, CLIP mean/std.
``aesthetic``, ``aesthetic-v1`` and ``clipscore`` share the backbone id
``open_clip:ViT-L-14/openai``, so the harness computes their image features once.

Weights: ``load_pretrained(weights)`` loads the head from ``weights`` (a local file, URL or hub id)
or the published URL, and the CLIP backbone from ``clip_weights`` (constructor argument) or its
published sources. Offline, without a local CLIP ViT-L/14, the backbone cannot load: pass
``clip_weights=PATH``, or ``backbone_pretrained=False`` to run the real head on a random backbone
(``weights_used`` then says the scores are not meaningful, and ``provenance()`` has a ``random`` part).

Example:
    >>> import torch, rewardbench
    >>> r = rewardbench.load_reward("aesthetic", pretrained=False, tiny=True)
    >>> r(torch.rand(2, 3, 96, 96)).scores.shape
    torch.Size([2])
"""

from __future__ import annotations

import abc
import os

import torch
import torch.nn.functional as F
from torch import nn

from rewardbench import Option, RewardOutput, RewardSpec, WeightSource, register_reward
from rewardbench.weights import Provenance, WeightsNotFoundError, load_into, load_state_dict, resolve_weights

from ._clip_backbone import ClipReward, build_clip, load_clip_weights

__all__ = ["AestheticV2", "AestheticV1", "AestheticMLP", "load_aesthetic_head"]

_V2_REPO = "https://github.com/christophschuhmann/improved-aesthetic-predictor"
_V1_REPO = "https://github.com/LAION-AI/aesthetic-predictor"
_LAION5B = ("Schuhmann et al., LAION-5B: An open large-scale dataset for training next generation image-text "
            "models, arXiv 2210.08402")


class AestheticMLP(nn.Module):
    """The v2 head. Layer indices match the checkpoint's keys (``layers.0`` … ``layers.7``);
    dropout is inactive in eval mode. No activations: improved-aesthetic-predictor's ``MLP``
    (simple_inference.py) has ``# nn.ReLU()`` between its layers."""

    def __init__(self, input_size: int = 768):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(input_size, 1024), nn.Dropout(0.2),
            nn.Linear(1024, 128), nn.Dropout(0.2),
            nn.Linear(128, 64), nn.Dropout(0.1),
            nn.Linear(64, 16),
            nn.Linear(16, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def load_aesthetic_head(head: nn.Module, sources, *, reward: str, weights: str | os.PathLike | None = None
                        ) -> Provenance:
    """Resolve and load a head checkpoint (pickled state dict, loaded with ``weights_only=True`` and
    ``map_location="cpu"``: the v2 file was saved from a CUDA device). Key mismatches raise
    `CheckpointMismatchError` listing the missing/unexpected keys. Returns the provenance."""
    found = resolve_weights(sources, reward=reward, override=weights)
    load_into(head, load_state_dict(found.path, map_location="cpu"), source=str(found.path))
    return found.provenance


class _Aesthetic(ClipReward):
    """A head on the normalised image embedding of an OpenAI CLIP model (open_clip)."""

    arch = "ViT-L-14"

    def __init__(self, *, tiny: bool = False, pil_preprocess: bool = False,
                 clip_weights: str | os.PathLike | None = None, backbone_pretrained: bool = True):
        super().__init__()
        self.backbone = build_clip(self.arch, "openai", tiny=tiny, pil_preprocess=pil_preprocess)
        self.head = self._make_head(self.backbone.embed_dim)
        self.clip_weights = clip_weights
        self.backbone_pretrained = backbone_pretrained

    @abc.abstractmethod
    def _make_head(self, dim: int) -> nn.Module:
        """The head on ``dim``-dimensional embeddings (each registered subclass defines one)."""

    def score_embeddings(self, image_embeds, prompts, groups) -> RewardOutput:
        # both official scripts normalise the CLIP embedding before the head; a no-op for features
        # that come from `embed_images` (already normalised) but not for raw embeddings
        emb = F.normalize(image_embeds.float(), dim=-1)
        scores = self.head(emb.to(self.head_dtype)).squeeze(-1).float()
        return RewardOutput(scores)

    @property
    def head_dtype(self) -> torch.dtype:
        return next(self.head.parameters()).dtype

    def load_pretrained(self, weights: str | os.PathLike | None = None):
        head_src = load_aesthetic_head(self.head, self.spec.weights, reward=self.spec.name, weights=weights)
        if self.backbone_pretrained:
            try:
                clip_src = load_clip_weights(self.backbone, self.clip_weights, reward=f"clip-{self.arch}")
            except WeightsNotFoundError as e:
                raise WeightsNotFoundError(
                    f"{self.spec.name}: the head loaded ({head_src}) but its CLIP {self.arch} backbone (OpenAI "
                    f"weights) did not:\n{e}\n  Pass clip_weights=PATH (an open_clip ViT checkpoint, .safetensors; "
                    f"CLI: --config {self.spec.name}:clip_weights=PATH), "
                    f"or backbone_pretrained=False to run the real head on a random backbone (scores not meaningful)."
                ) from None
        else:
            clip_src = Provenance("random", "backbone_pretrained=False", note="scores are not meaningful")
        self.record_weights(head_src.of("head"), clip_src.of(f"CLIP {self.arch}"))
        return self.provenance()


_OPTIONS = {
    "clip_weights": Option(str, None, "a local open_clip checkpoint of the CLIP backbone (.safetensors)",
                           optional=True),
    "backbone_pretrained": Option(bool, True, "False: the real head on a random CLIP backbone (scores not "
                                  "meaningful)"),
    "pil_preprocess": Option(bool, False, "preprocess with PIL as the official script does (not differentiable)"),
    "tiny": Option(bool, False, "a tiny random architecture (tests)"),
}
_V2_SPEC = RewardSpec(
    name="aesthetic", aliases=("aesthetic-v2", "laion-aesthetic", "improved-aesthetic"), category="aesthetic",
    higher_is_better=True, range=(1.0, 10.0), differentiable=True, needs_prompt=False,
    backbone="open_clip:ViT-L-14/openai",
    weights=(WeightSource("url", f"{_V2_REPO}/raw/main/sac%2Blogos%2Bava1-l14-linearMSE.pth",
                          filename="sac+logos+ava1-l14-linearMSE.pth",
                          note="no sha256 published; CLIP ViT-L/14 (OpenAI) loads separately"),
             # the same file (md5 b1047fd767a00134b8fd6529bf19521a), redistributed under MIT by ddpo-pytorch
             WeightSource("url", "https://github.com/kvablack/ddpo-pytorch/raw/main/ddpo_pytorch/assets/"
                                 "sac%2Blogos%2Bava1-l14-linearMSE.pth", filename="sac+logos+ava1-l14-linearMSE.pth",
                          note="no sha256 published")),
    license="head: no LICENSE in improved-aesthetic-predictor, MIT in ddpo-pytorch's copy; CLIP: MIT",
    paper=f"improved-aesthetic-predictor ({_V2_REPO}); {_LAION5B}",
    description="LAION improved aesthetic predictor v2: MLP on normalised CLIP ViT-L/14 embeddings, ~1-10",
    tiny_config={"tiny": True}, options=_OPTIONS,
)


@register_reward()
class AestheticV2(_Aesthetic):
    """LAION improved aesthetic predictor (v2). See the module docstring."""

    spec = _V2_SPEC

    def _make_head(self, dim: int) -> nn.Module:
        return AestheticMLP(dim)


def _v1_source(tag: str) -> WeightSource:
    name = f"sa_0_4_{tag}_linear.pth"
    return WeightSource("url", f"{_V1_REPO}/raw/main/{name}", filename=name,
                        note="no sha256 published; CLIP loads separately")


_V1_SPEC = RewardSpec(
    name="aesthetic-v1", aliases=("aesthetic-v1-l14", "laion-aesthetic-v1"), category="aesthetic",
    higher_is_better=True, range=(1.0, 10.0), differentiable=True, needs_prompt=False,
    backbone="open_clip:ViT-L-14/openai", weights=(_v1_source("vit_l_14"),),
    license="MIT", paper=f"LAION aesthetic predictor ({_V1_REPO}); {_LAION5B}",
    description="LAION aesthetic predictor v1: linear head on normalised CLIP ViT-L/14 embeddings",
    tiny_config={"tiny": True}, options=_OPTIONS,
)


@register_reward()
class AestheticV1(_Aesthetic):
    """LAION aesthetic predictor v1 on CLIP ViT-L/14 (``aesthetic-v1-b16``/``-b32``: other CLIPs)."""

    spec = _V1_SPEC

    def _make_head(self, dim: int) -> nn.Module:
        return nn.Linear(dim, 1)  # the checkpoint's keys are "weight" and "bias"


@register_reward()
class AestheticV1B16(AestheticV1):
    spec = _V1_SPEC.replace(name="aesthetic-v1-b16", aliases=(), backbone="open_clip:ViT-B-16/openai",
                            weights=(_v1_source("vit_b_16"),),
                            description="LAION aesthetic predictor v1: linear head on normalised CLIP ViT-B/16 "
                                        "embeddings")
    arch = "ViT-B-16"


@register_reward()
class AestheticV1B32(AestheticV1):
    spec = _V1_SPEC.replace(name="aesthetic-v1-b32", aliases=(), backbone="open_clip:ViT-B-32/openai",
                            weights=(_v1_source("vit_b_32"),),
                            description="LAION aesthetic predictor v1: linear head on normalised CLIP ViT-B/32 "
                                        "embeddings")
    arch = "ViT-B-32"
