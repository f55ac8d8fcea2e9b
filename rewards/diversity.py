"""Diversity of the images of a group (e.g. the 16 images of one prompt): Vendi score and mean
pairwise cosine distance, over embeddings from any registered image encoder.

* ``vendi``: Friedman & Dieng, "The Vendi Score: A Diversity Evaluation Metric for Machine
  Learning", arXiv 2210.02410, eq. 1: ``VS = exp(-sum_i λ_i log λ_i)`` with λ the eigenvalues of
  ``K / n`` and ``K`` the cosine-similarity matrix of the n embeddings (``k(x, x) = 1``); order
  ``q`` gives ``exp(log(sum λ^q) / (1 - q))``. It reads as "the effective number of distinct
  images": 1 when all are identical, n when they are mutually orthogonal.
* ``pairwise-cosine-distance``: the mean of ``1 - cos(e_i, e_j)`` over the pairs of a group.

Embeddings: ``encoder="pixels"`` (default, weight-free, runs offline) follows the official
``vendi_score.image_utils.pixel_vendi_score``: images downsampled to 32x32 and flattened.
``pixel_resize="pil"`` (``vendi``'s default) resizes as the official code does: the pixels rounded to
uint8, PIL's ``img.resize((32, 32))`` (bicubic, Pillow's default filter), no gradients.
``pixel_resize="torch"`` (``pairwise-cosine-distance``'s default, which is differentiable) resizes the
float pixels in torch, bicubic with antialiasing, clamped to [0, 1]: close to PIL, not equal (see
``scripts/parity``).
``encoder=NAME`` uses the ``embed_images`` of any registered `rewardbench.BackboneReward`
(e.g. ``clipscore`` for CLIP ViT-L/14 features); its weights load with the reward.

Example:
    >>> import torch, rewardbench
    >>> r = rewardbench.load_reward("vendi")
    >>> x = torch.rand(4, 3, 64, 64)
    >>> round(float(r(torch.cat([x[:1]] * 4)).scores[0]), 3)   # four identical images
    1.0
"""

from __future__ import annotations

import abc
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rewardbench import BackboneReward, Option, RewardModel, RewardOutput, RewardSpec, register_reward

from ._group import iter_groups

_VENDI = "Friedman & Dieng, The Vendi Score: A Diversity Evaluation Metric for Machine Learning, arXiv 2210.02410"
PIXEL_SIZE = 32  # vendi_score/image_utils.py get_pixel_vectors(images, resize=32)
PIXEL_RESIZES = ("pil", "torch")


def vendi_score(embeddings: torch.Tensor, q: float = 1.0) -> torch.Tensor:
    """Vendi score of ``embeddings [n, d]`` with the cosine-similarity kernel.

    Uses the n x n kernel when n <= d and the d x d dual ``X^T X / n`` otherwise (same nonzero
    eigenvalues), as ``vendi_score.vendi.score_X`` / ``score_dual`` do.

    Example:
        >>> round(float(vendi_score(torch.eye(3))), 4)     # orthogonal -> n
        3.0
        >>> round(float(vendi_score(torch.ones(5, 2))), 4)  # identical -> 1
        1.0
    """
    if embeddings.ndim != 2 or embeddings.shape[0] == 0:
        raise ValueError(f"embeddings must be [n, d] with n >= 1, got {tuple(embeddings.shape)}")
    x = F.normalize(embeddings.double(), dim=-1)
    n, d = x.shape
    k = (x @ x.T if n <= d else x.T @ x) / n
    lam = torch.linalg.eigvalsh(k).clamp(min=0)
    lam = lam / lam.sum()  # exactly a distribution despite rounding (trace(K / n) = 1)
    if q == 1:
        nz = lam[lam > 0]
        return torch.exp(-(nz * nz.log()).sum())
    if math.isinf(q):
        return 1.0 / lam.max()
    return torch.exp(torch.log((lam[lam > 0] ** q).sum()) / (1 - q))


def mean_pairwise_cosine_distance(embeddings: torch.Tensor) -> torch.Tensor:
    """Mean of ``1 - cos(e_i, e_j)`` over the n(n-1)/2 pairs (0 for fewer than 2 embeddings).

    Example:
        >>> float(mean_pairwise_cosine_distance(torch.tensor([[1.0, 0.0], [0.0, 1.0]])))
        1.0
    """
    n = embeddings.shape[0]
    if n < 2:
        return embeddings.new_zeros(())
    x = F.normalize(embeddings.float(), dim=-1)
    sim = x @ x.T
    iu = torch.triu_indices(n, n, offset=1, device=x.device)
    return (1 - sim[iu[0], iu[1]]).mean()


def pixel_embeddings(pixels: torch.Tensor, size: int = PIXEL_SIZE, resize: str = "torch") -> torch.Tensor:
    """``[B, 3, H, W]`` in [0, 1] → ``[B, 3 * size * size]``: the weight-free features of pixel Vendi.

    ``resize="pil"``: as vendi_score/image_utils.py ``get_pixel_vectors`` does, ``img.resize((size, size))``
    of the uint8 image (Pillow's default filter for RGB, bicubic) and the uint8 values as features
    (here / 255: the cosine kernel is scale-free; channel-first order: the kernel is order-free).
    ``resize="torch"``: bicubic, anti-aliased, clamped to [0, 1], in torch (differentiable).
    """
    if resize == "pil":
        from PIL import Image

        from rewardbench.images import pixels_to_uint8

        arrs = [np.asarray(Image.fromarray(a).resize((size, size)), dtype=np.uint8) for a in pixels_to_uint8(pixels)]
        small = torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).to(pixels.device, torch.float32) / 255.0
    elif resize == "torch":
        small = F.interpolate(pixels.float(), size=(size, size), mode="bicubic", antialias=True,
                              align_corners=False).clamp(0, 1)
    else:
        raise ValueError(f"pixel_resize must be one of {PIXEL_RESIZES}, got {resize!r}")
    return small.flatten(1)


class _DiversityReward(RewardModel):
    """Shared machinery: embeddings (pixels or a registered encoder), then one value per group.

    ``encoder``: ``"pixels"`` or the name of a registered `rewardbench.BackboneReward` (its
    architecture is built here and its weights load in `load_pretrained`, i.e. with
    ``load_reward(..., pretrained=True)``); ``encoder_config``: kwargs for that encoder's builder
    (e.g. ``{"tiny": True}``); ``pixel_size``: side of the downsampled images of the pixel kernel;
    ``pixel_resize``: ``"pil"`` (the official path) or ``"torch"`` (differentiable), see `pixel_embeddings`.
    """

    default_pixel_resize = "pil"
    # a batch of mixed sizes comes as a list: each image is embedded at its own size (as the official
    # pixel_vendi_score resizes each image), not stretched to a common shape first
    accepts_ragged = True

    def __init__(self, encoder: str = "pixels", encoder_config: dict[str, Any] | None = None,
                 pixel_size: int = PIXEL_SIZE, pixel_resize: str | None = None) -> None:
        super().__init__()
        self.encoder_name = encoder
        self.pixel_size = int(pixel_size)
        self.pixel_resize = pixel_resize or self.default_pixel_resize
        if self.pixel_resize not in PIXEL_RESIZES:
            raise ValueError(f"pixel_resize must be one of {PIXEL_RESIZES}, got {self.pixel_resize!r}")
        self.encoder: BackboneReward | None = None
        if encoder != "pixels":
            from rewardbench.registry import REGISTRY

            model = REGISTRY.build(encoder, **(encoder_config or {}))
            if not isinstance(model, BackboneReward):
                raise ValueError(f"encoder {encoder!r} is not an image encoder (a BackboneReward with embed_images); "
                                 "use 'pixels' or an encoder reward such as 'clipscore'")
            self.encoder = model.eval().requires_grad_(False)

    def provenance(self):
        if self.encoder is None:
            return super().provenance()
        return [p.of(f"encoder {self.encoder_name}") for p in self.encoder.provenance()]

    def load_pretrained(self, weights=None):
        if self.encoder is None:
            if weights is not None:
                raise ValueError(f"reward {self.spec.name!r} with encoder='pixels' has no weights to override")
        else:
            self.encoder.load_pretrained(weights)
        return self.provenance()

    def embed(self, pixels: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        if isinstance(pixels, list):  # [3, H, W] images of different sizes
            return torch.cat([self.embed(p[None]) for p in pixels])
        if self.encoder is None:
            return pixel_embeddings(pixels, self.pixel_size, self.pixel_resize)
        return self.encoder.embed_images(pixels)

    @abc.abstractmethod
    def _group_value(self, emb: torch.Tensor) -> torch.Tensor:
        """The group's diversity from its embeddings ``(n, D)``."""

    def score(self, pixels, prompts, groups) -> RewardOutput:
        emb = self.embed(pixels)  # (B, D)
        n, device = emb.shape[0], emb.device
        group_details: dict[int, dict[str, Any]] = {}
        values = []
        for gid, idx in iter_groups(groups):
            idx_d = idx.to(device)
            v = self._group_value(emb[idx_d])
            note = "a single image (its diversity is fixed by definition)" if len(idx) == 1 else ""
            group_details[gid] = {"size": len(idx), "note": note}
            values.append((idx_d, v))
        # assemble without in-place writes so gradients reach every group's pixels
        scores = torch.zeros(n, dtype=torch.float32, device=device)
        for idx_d, v in values:
            scores = scores.index_add(0, idx_d, v.float().expand(len(idx_d)))
        return RewardOutput(scores, group_details=group_details)


# the diversity rewards' options (`_DiversityReward`); Vendi adds its order q
_OPTIONS = {
    "encoder": Option(str, "pixels", "'pixels' (the official pixel kernel) or a registered image encoder reward "
                      "(clipscore, aesthetic, ...) whose embeddings are compared"),
    "encoder_config": Option(dict, None, "the encoder reward's own options", optional=True),
    "pixel_size": Option(int, PIXEL_SIZE, "side of the downsampled images of the pixel kernel", low=1),
    "pixel_resize": Option(str, None, "how the pixel kernel downsamples (None: the reward's default)",
                           choices=PIXEL_RESIZES, optional=True),
}


@register_reward()
class Vendi(_DiversityReward):
    """Vendi score of each group (1 = all images alike, n = all different). ``q`` is the order."""

    spec = RewardSpec(
        name="vendi", aliases=("vendi-score", "vendi_score"), category="diversity", granularity="group",
        min_group_size=2,  # one image is 1.0 by definition
        # 1 (all alike) to n, the group's size (n mutually orthogonal images): no bound but the group
        higher_is_better=True, range=(1.0, None), license="MIT (Vendi Score)", paper=_VENDI,
        description="Vendi score (effective number of distinct images) per group; pixel kernel by default, "
                    "or any registered image encoder",
        options={"q": Option(float, 1.0, "the order of the Vendi score (1: Shannon)", low=0.0), **_OPTIONS},
    )

    def __init__(self, q: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.q = float(q)

    def _group_value(self, emb):
        return vendi_score(emb, self.q)


@register_reward()
class PairwiseCosineDistance(_DiversityReward):
    """Mean pairwise cosine distance of each group's embeddings (0 = identical)."""

    spec = RewardSpec(
        name="pairwise-cosine-distance", aliases=("mean-pairwise-cosine-distance", "cosine-diversity"),
        category="diversity", granularity="group", min_group_size=2,  # no pair in one image
        # pixel features are never negative, so no two are more than 90 degrees apart: a distance in [0, 1]. An
        # encoder's features can point apart (up to 2 for two opposite images): the range is the default's
        higher_is_better=True, range=(0.0, 1.0), differentiable=True,
        license="MIT", paper="mean pairwise dissimilarity, the baseline discussed in " + _VENDI,
        description="mean pairwise cosine distance of embeddings per group; pixel features by default",
        options=_OPTIONS,
    )
    default_pixel_resize = "torch"  # differentiable: the pixels' gradients pass through a torch resize

    def _group_value(self, emb):
        return mean_pairwise_cosine_distance(emb)
