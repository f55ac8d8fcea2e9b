"""The CLIP backbone shared by the CLIP-family rewards: `ClipBackbone`, `build_clip`, its weights, `ClipReward`.

The backbone layer (public API, imported by other reward families)
------------------------------------------------------------------
``build_clip(arch, pretrained, *, library, tiny, pil_preprocess) -> ClipBackbone``
    The architecture with random weights (no download). Random weights are seeded from the
    backbone id, so two backbones built with the same arguments are identical (the harness can
    share their image features). ``tiny=True`` gives a 2-layer, width-32 model of the same family.
``load_clip_weights(backbone, weights=None) -> Provenance``
    Real weights: the open_clip pretrained tag's hub/URL sources, or ``weights`` = a local file or
    folder, a hub id or a URL. Offline and not cached, it fails at once with `WeightsNotFoundError`
    naming what was looked for. Returns where they came from (also ``backbone.provenance``).
``ClipBackbone``
    ``backbone_id`` (e.g. ``"open_clip:ViT-L-14/openai"``: library, architecture, weights tag,
    preprocessing), ``encode_image(pixels)`` (``[B,3,H,W]`` in [0, 1] → L2-normalised ``[B,D]``,
    preprocessing in torch, differentiable), ``encode_text(prompts)`` (L2-normalised ``[N,D]``,
    one encoder call per unique prompt through `rewardbench.TextFeatureCache`; ``text_calls``
    counts encoder calls), ``logit_scale`` (float, ``exp`` of the learnt log-scale), ``preprocess``
    / ``encode_preprocessed`` (the two halves of ``encode_image``), ``pil_preprocess_images``
    (the official PIL path for file inputs).

``ClipReward``
    Base class (a `rewardbench.BackboneReward`) of the rewards that are a head on a
    ``ClipBackbone``: ``embed_images`` is the shareable part; ``text_calls`` counts text-encoder calls.
``resize_longest_pad`` / ``pil_resize_longest_pad``
    HPSv2's eval transform (longer side → size, pad with black), in torch and in PIL.

Two libraries are supported: ``library="open_clip"`` (``arch`` an open_clip model name such as
``"ViT-L-14"``, ``pretrained`` an open_clip tag such as ``"openai"``) and
``library="transformers"`` (``arch`` a hub id whose architecture is known offline, see
``HF_CLIP_ARCHS``; ``pretrained`` is ignored). Tokenisation is offline for both: open_clip's
SimpleTokenizer, or an HF ``CLIPTokenizer`` built from open_clip's bundled BPE vocabulary.

Preprocessing (both libraries, as their official image processors do): resize the shorter side to
the model's input size with bicubic interpolation, centre crop, normalise with the OpenAI CLIP
mean/std (open_clip ``pretrained.py`` ``_pcfg`` defaults; HF ``preprocessor_config.json`` of
openai/clip-vit-* and laion/CLIP-ViT-H-14: ``shortest_edge 224, resample 3 (bicubic), crop 224``).
The crop starts at ``round(excess / 2)`` for open_clip (torchvision ``CenterCrop``) and at
``excess // 2`` for transformers (``CLIPImageProcessor``), as each library's own pipeline does.
The torch path anti-aliases like PIL; ``pil_preprocess=True`` instead rounds the pixels to uint8
and resizes with PIL exactly as the official pipelines do for files (not differentiable).

Example:
    >>> import torch
    >>> clip = build_clip("ViT-L-14", "openai", tiny=True)
    >>> clip.backbone_id
    'open_clip:ViT-L-14/openai+tiny'
    >>> img = clip.encode_image(torch.rand(2, 3, 96, 128))
    >>> txt = clip.encode_text(["a cat", "a dog", "a cat"])
    >>> img.shape, txt.shape, clip.text_calls
    (torch.Size([2, 32]), torch.Size([3, 32]), 1)
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rewardbench import TextFeatureCache, WeightSource
from rewardbench.model import BackboneReward
from rewardbench.text import clip_tokenizer, truncation_notes
from rewardbench.transforms import CLIP_MEAN, CLIP_STD, clip_preprocess, normalize
from rewardbench.weights import NOT_LOADED, Provenance, load_into, load_state_dict, resolve_weights, url_digest

__all__ = ["ClipBackbone", "build_clip", "load_clip_weights", "clip_weight_sources", "HF_CLIP_ARCHS", "ClipReward",
           "resize_longest_pad", "pil_resize_longest_pad", "OPENAI_SHA256"]

# OpenAI's published CLIP checkpoint URLs embed the file's sha256 in the path (openai/CLIP
# clip/clip.py `_MODELS`; the loader checks it). Copied into open_clip pretrained.py.
OPENAI_SHA256 = {
    "ViT-B-32": "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
    "ViT-B-16": "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f",
    "ViT-L-14": "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836",
}

# The openai/clip-vit-* config.json files keep the pre-2023 special ids (text_config bos 0, eos 2, pad 1).
# eos_token_id == 2 makes transformers' CLIPTextTransformer pool at argmax(input_ids) (the legacy rule,
# modeling_clip.py "if self.eos_token_id == 2"), which differs from pooling at the first 49407 only for
# a sequence without an end-of-text token: torchmetrics' sliced long prompts (`ClipBackbone.tokenize`).
_OPENAI_HF_TEXT_IDS = dict(bos_token_id=0, eos_token_id=2, pad_token_id=1)

# transformers CLIP architectures known offline (the values of each hub repo's config.json), so the
# architecture can be built with random weights without the hub. "act": hidden_act of both towers.
HF_CLIP_ARCHS: dict[str, dict[str, Any]] = {
    # huggingface.co/openai/clip-vit-large-patch14/blob/main/config.json
    "openai/clip-vit-large-patch14": dict(
        vision=dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                    patch_size=14, image_size=224),
        text=dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                  **_OPENAI_HF_TEXT_IDS),
        projection_dim=768, act="quick_gelu"),
    # huggingface.co/openai/clip-vit-base-patch32/blob/main/config.json
    "openai/clip-vit-base-patch32": dict(
        vision=dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                    patch_size=32, image_size=224),
        text=dict(hidden_size=512, num_hidden_layers=12, num_attention_heads=8, intermediate_size=2048,
                  **_OPENAI_HF_TEXT_IDS),
        projection_dim=512, act="quick_gelu"),
    # huggingface.co/laion/CLIP-ViT-H-14-laion2B-s32B-b79K/blob/main/config.json; PickScore_v1 is a
    # fine-tune of it with the same config.json
    "laion/CLIP-ViT-H-14-laion2B-s32B-b79K": dict(
        vision=dict(hidden_size=1280, num_hidden_layers=32, num_attention_heads=16, intermediate_size=5120,
                    patch_size=14, image_size=224),
        text=dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
        projection_dim=1024, act="gelu"),
}
HF_CLIP_ARCHS["yuvalkirstain/PickScore_v1"] = HF_CLIP_ARCHS["laion/CLIP-ViT-H-14-laion2B-s32B-b79K"]

_TINY_WIDTH = 32
_TINY_LAYERS = 2


def _seed_for(backbone_id: str) -> int:
    return int(hashlib.sha256(backbone_id.encode()).hexdigest()[:15], 16)


# ---------------------------------------------------------------------------------------------
# HPSv2's eval transform: resize the longer side, pad to a square


def resize_longest_pad(x: torch.Tensor, size: int) -> torch.Tensor:
    """``[B,3,H,W]`` in [0, 1] → ``[B,3,size,size]``: HPSv2's ``ResizeMaxSize`` on the float tensor
    (hpsv2/src/open_clip/transform.py: ``image_transform(..., resize_longest_max=True)`` runs ToTensor
    *before* ``ResizeMaxSize``, so the resize is torchvision's tensor resize: bicubic, anti-aliased
    (torchvision >= 0.17 default), no clamp of the overshoot). New size ``round(dim * scale)``, padding
    ``[pad_w // 2, pad_h // 2, pad_w - pad_w // 2, pad_h - pad_h // 2]`` with ``fill=0`` (black)."""
    from rewardbench.transforms import resize

    h, w = x.shape[-2:]
    scale = size / float(max(h, w))
    if scale != 1.0:
        nh, nw = round(h * scale), round(w * scale)
        x = resize(x, (nh, nw), clamp=False)  # a float tensor resize: torchvision clamps only uint8 output
        ph, pw = size - nh, size - nw
        x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2], value=0.0)
    return x


def pil_resize_longest_pad(img: Any, size: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """HPSv2's eval transform on a PIL image, in the official order: convert to RGB, ToTensor, then
    ``ResizeMaxSize`` on the tensor (see `resize_longest_pad`), Normalize. Returns ``[3,size,size]``."""
    from rewardbench.transforms import to_tensor

    return normalize(resize_longest_pad(to_tensor(img)[None], size), mean, std)[0]


# ---------------------------------------------------------------------------------------------
# the backbone


class ClipBackbone(nn.Module):
    """A CLIP image/text encoder pair with its preprocessing and a text-feature cache.

    Build it with `build_clip`, load real weights with `load_clip_weights`. See the module
    docstring for the API and an example.
    """

    def __init__(self, model: nn.Module, *, backbone_id: str, library: str, image_size: int,
                 mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD,
                 tokenizer: Any = None, context_length: int = 77, pil_preprocess: bool = False,
                 arch: str = "", pretrained: str | None = None, tiny: bool = False,
                 resize_mode: str = "shortest", long_prompts: str = "truncate"):
        super().__init__()
        self.model = model
        self.backbone_id = backbone_id
        self.library = library
        self.arch, self.pretrained, self.tiny = arch, pretrained, tiny
        self.image_size = int(image_size)
        self.mean, self.std = tuple(mean), tuple(std)
        self.tokenizer = tokenizer
        self.context_length = context_length
        self.pil_preprocess = pil_preprocess
        if resize_mode not in ("shortest", "longest_pad"):
            raise ValueError(f"resize_mode must be 'shortest' or 'longest_pad', got {resize_mode!r}")
        self.resize_mode = resize_mode
        # where the centre crop starts: torchvision's CenterCrop rounds half the excess (OpenAI CLIP and
        # open_clip transforms), Hugging Face's CLIPImageProcessor floors it (image_transforms.center_crop)
        self.crop_offset = "floor" if library == "transformers" else "round"
        if long_prompts not in ("truncate", "torchmetrics"):
            raise ValueError(f"long_prompts must be 'truncate' or 'torchmetrics', got {long_prompts!r}")
        if long_prompts == "torchmetrics" and library != "transformers":
            raise ValueError("long_prompts='torchmetrics' reproduces torchmetrics' transformers tokenisation; "
                             "it needs library='transformers'")
        self.long_prompts = long_prompts
        self.text_cache = TextFeatureCache(self._encode_text_uncached)
        self.provenance: Provenance = NOT_LOADED  # where the weights came from (load_clip_weights)

    # -- image tower -----------------------------------------------------------------------
    def preprocess(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[B,3,H,W]`` in [0, 1] → normalised ``[B,3,S,S]`` model input (torch or exact PIL path)."""
        if self.pil_preprocess:
            return self.pil_preprocess_images(pixels).to(device=pixels.device, dtype=pixels.dtype)
        if self.resize_mode == "longest_pad":
            return normalize(resize_longest_pad(pixels, self.image_size), self.mean, self.std)
        return clip_preprocess(pixels, self.image_size, self.mean, self.std, crop_offset=self.crop_offset)

    def pil_preprocess_images(self, images: torch.Tensor | Sequence[Any]) -> torch.Tensor:
        """The official pipelines' path for files: uint8 → PIL bicubic resize of the shorter side →
        centre crop → normalise (``resize_mode="longest_pad"``: HPSv2's ToTensor → tensor resize → pad).
        ``images``: a float ``[B,3,H,W]`` tensor in [0, 1] (rounded to uint8 first, lossless for pixels
        decoded from files) or a list of PIL images. CPU, float32, no gradients."""
        from PIL import Image

        from rewardbench.images import pixels_to_uint8
        from rewardbench.transforms import pil_clip_preprocess

        if isinstance(images, torch.Tensor):
            images = [Image.fromarray(a) for a in pixels_to_uint8(images)]
        if self.resize_mode == "longest_pad":
            return torch.stack([pil_resize_longest_pad(im, self.image_size, self.mean, self.std) for im in images])
        return torch.stack([pil_clip_preprocess(im, self.image_size, self.mean, self.std, self.crop_offset)
                            for im in images])

    def encode_preprocessed(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised model input ``[B,3,S,S]`` → L2-normalised image features ``[B,D]``."""
        x = x.to(self._param_dtype())
        if self.library == "open_clip":
            feats = self.model.encode_image(x)
        else:
            feats = self.model.visual_projection(self.model.vision_model(pixel_values=x).pooler_output)
        return F.normalize(feats.float(), dim=-1)

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels ``[B,3,H,W]`` in [0, 1] → L2-normalised features ``[B,D]`` (float32, differentiable
        unless ``pil_preprocess``)."""
        return self.encode_preprocessed(self.preprocess(pixels))

    # -- text tower ------------------------------------------------------------------------
    def tokenize(self, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Token ids (and attention mask for transformers), at most the context length.

        ``long_prompts="truncate"`` (default) truncates and keeps the end-of-text token, as OpenAI CLIP's
        ``tokenize(truncate=True)``, open_clip and the PickScore snippet (``truncation=True``) do.
        ``"torchmetrics"`` tokenises without truncation and then keeps the first 77 ids and mask values,
        as torchmetrics does (functional/multimodal/clip_score.py ``_get_features``: ``processed["input_ids"]
        [..., :max_position_embeddings]``): a prompt over 77 tokens then loses its end-of-text token.
        """
        if self.library == "open_clip":
            return {"text": self.tokenizer(list(prompts), context_length=self.context_length)}
        if self.long_prompts == "torchmetrics":
            enc = self.tokenizer(list(prompts), padding=True, return_tensors="pt", verbose=False)
            return {"input_ids": enc["input_ids"][..., :self.context_length],
                    "attention_mask": enc["attention_mask"][..., :self.context_length]}
        enc = self.tokenizer(list(prompts), padding=True, truncation=True, max_length=self.context_length,
                             return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def _encode_text_uncached(self, prompts: list[str]) -> torch.Tensor:
        dev = self._device()
        tokens = {k: v.to(dev) for k, v in self.tokenize(prompts).items()}
        with torch.no_grad():  # text features never need gradients (rewards differentiate w.r.t. pixels)
            if self.library == "open_clip":
                feats = self.model.encode_text(tokens["text"])
            else:
                out = self.model.text_model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
                feats = self.model.text_projection(out.pooler_output)
        return F.normalize(feats.float(), dim=-1)

    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor:
        """Prompts → L2-normalised features ``[N,D]`` (float32); each unique prompt is encoded once
        (and remembered across calls until the weights change)."""
        return self.text_cache(list(prompts)).to(self._device())

    @property
    def text_calls(self) -> int:
        """How many times the text encoder ran (one call encodes every new prompt of a batch)."""
        return self.text_cache.calls

    # -- misc ------------------------------------------------------------------------------
    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.detach().float().exp())

    @property
    def embed_dim(self) -> int:
        if self.library == "open_clip":
            return int(self.model.text_projection.shape[1]) if isinstance(self.model.text_projection, torch.Tensor) \
                else int(self.model.text_projection.out_features)
        return int(self.model.config.projection_dim)

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _param_dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def _apply(self, fn, recurse=True):  # moving or casting the weights invalidates cached text features
        self.text_cache.clear()
        return super()._apply(fn, recurse)

    def extra_repr(self) -> str:
        return f"backbone_id={self.backbone_id!r}, weights={str(self.provenance)!r}"


def _open_clip_model(arch: str, pretrained: str | None, tiny: bool) -> tuple[nn.Module, dict[str, Any]]:
    import open_clip
    from open_clip.model import CLIP

    cfg = open_clip.get_model_config(arch)
    if cfg is None:
        raise ValueError(f"unknown open_clip architecture {arch!r}; see open_clip.list_models()")
    tag_cfg = open_clip.get_pretrained_cfg(arch, pretrained) if pretrained else {}
    if pretrained and not tag_cfg:
        raise ValueError(f"open_clip has no pretrained tag {pretrained!r} for {arch!r}; "
                         f"choose from {open_clip.list_pretrained_tags_by_model(arch)}")
    # OpenAI-trained weights use QuickGELU (open_clip pretrained.py `quick_gelu=True` on those tags)
    quick_gelu = bool(tag_cfg.get("quick_gelu", cfg.get("quick_gelu", False)))
    image_size = cfg["vision_cfg"].get("image_size", 224)
    if tiny:
        model = CLIP(embed_dim=_TINY_WIDTH, quick_gelu=quick_gelu,
                     vision_cfg=dict(image_size=image_size, layers=_TINY_LAYERS, width=_TINY_WIDTH,
                                     head_width=16, patch_size=32),
                     text_cfg=dict(context_length=77, vocab_size=49408, width=_TINY_WIDTH, heads=2,
                                   layers=_TINY_LAYERS))
    else:
        import logging

        quiet = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # open_clip warns "initialized randomly": we know
        try:
            model = open_clip.create_model(arch, pretrained=None, force_quick_gelu=quick_gelu)
        finally:
            logging.getLogger().setLevel(quiet)
    pre = dict(image_size=image_size if isinstance(image_size, int) else image_size[0],
               mean=tuple(tag_cfg.get("mean", CLIP_MEAN)), std=tuple(tag_cfg.get("std", CLIP_STD)))
    return model, pre


def _hf_model(arch: str, tiny: bool) -> tuple[nn.Module, dict[str, Any]]:
    from transformers import CLIPConfig, CLIPModel

    if arch not in HF_CLIP_ARCHS:
        raise ValueError(f"transformers CLIP architecture {arch!r} is not known offline; choose from "
                         f"{sorted(HF_CLIP_ARCHS)} (or add its config.json values to HF_CLIP_ARCHS)")
    a = HF_CLIP_ARCHS[arch]
    vision, text, proj = dict(a["vision"]), dict(a["text"]), a["projection_dim"]
    if tiny:
        small = dict(hidden_size=_TINY_WIDTH, num_hidden_layers=_TINY_LAYERS, num_attention_heads=2,
                     intermediate_size=2 * _TINY_WIDTH)
        vision.update(small, patch_size=32)
        text.update(small)
        proj = _TINY_WIDTH
    ids = dict(bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
    ids.update({k: text.pop(k) for k in list(ids) if k in text})
    cfg = CLIPConfig(text_config=dict(text, hidden_act=a["act"], vocab_size=49408, max_position_embeddings=77, **ids),
                     vision_config=dict(vision, hidden_act=a["act"]), projection_dim=proj)
    model = CLIPModel(cfg)
    return model, dict(image_size=vision["image_size"], mean=CLIP_MEAN, std=CLIP_STD)


def build_clip(arch: str = "ViT-L-14", pretrained: str | None = "openai", *, library: str = "open_clip",
               tiny: bool = False, pil_preprocess: bool = False, resize_mode: str = "shortest",
               tag: str | None = None, long_prompts: str = "truncate") -> ClipBackbone:
    """A `ClipBackbone` with random weights, seeded from its id (same arguments → same weights).

    ``library="open_clip"``: ``arch`` an open_clip model name, ``pretrained`` an open_clip tag (it
    picks QuickGELU, preprocessing constants and, in `load_clip_weights`, the weights).
    ``library="transformers"``: ``arch`` a hub id from ``HF_CLIP_ARCHS``.
    ``resize_mode``: ``"shortest"`` (resize the shorter side + centre crop, CLIP's default) or
    ``"longest_pad"`` (resize the longer side + pad with black, HPSv2's eval transform).
    ``tag``: names fine-tuned weights in the id instead of ``pretrained`` (e.g. ``"hpsv2"``, whose
    architecture and preprocessing constants come from the ``pretrained`` tag it was trained from).
    ``long_prompts``: ``"truncate"`` or ``"torchmetrics"`` (transformers only; see `ClipBackbone.tokenize`).

    Example:
        >>> build_clip("ViT-B-32", "openai", tiny=True).backbone_id
        'open_clip:ViT-B-32/openai+tiny'
    """
    if library == "open_clip":
        wtag = tag or pretrained
        backbone_id = f"open_clip:{arch}/{wtag}" if wtag else f"open_clip:{arch}"
    elif library == "transformers":
        backbone_id = f"transformers:{arch}"
    else:
        raise ValueError(f"library must be 'open_clip' or 'transformers', got {library!r}")
    if resize_mode != "shortest":
        backbone_id += f"+{resize_mode}"
    if tiny:
        backbone_id += "+tiny"
    if pil_preprocess:
        backbone_id += "+pil"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_seed_for(backbone_id.removesuffix("+pil")))  # same weights with either preprocessing
        if library == "open_clip":
            import open_clip

            model, pre = _open_clip_model(arch, pretrained, tiny)
            tokenizer = open_clip.tokenizer.SimpleTokenizer()
        else:
            model, pre = _hf_model(arch, tiny)
            tokenizer = clip_tokenizer()
    model.eval()
    model.requires_grad_(False)  # a frozen scorer; gradients still reach the input pixels
    return ClipBackbone(model, backbone_id=backbone_id, library=library, tokenizer=tokenizer,
                        pil_preprocess=pil_preprocess, arch=arch, pretrained=pretrained, tiny=tiny,
                        resize_mode=resize_mode, long_prompts=long_prompts, **pre)


# ---------------------------------------------------------------------------------------------
# weights


def clip_weight_sources(arch: str, pretrained: str | None = "openai",
                        library: str = "open_clip") -> tuple[WeightSource, ...]:
    """Where the real weights of a backbone come from (hub first: safetensors; then the URL)."""
    if library == "transformers":
        return (WeightSource("hub", arch, filename="model.safetensors", note="transformers CLIPModel weights"),)
    import open_clip
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME

    cfg = open_clip.get_pretrained_cfg(arch, pretrained) if pretrained else {}
    out = []
    if cfg.get("hf_hub"):
        repo = cfg["hf_hub"].rstrip("/")
        out.append(WeightSource("hub", repo, filename=HF_SAFE_WEIGHTS_NAME, note="open_clip weights"))
    if cfg.get("url"):
        # the digest the URL itself publishes (OpenAI's full sha256, or open_clip's file-name prefix)
        out.append(WeightSource("url", cfg["url"], sha256=url_digest(cfg["url"]), note="open_clip weights"))
    return tuple(out)


def _clean_keys(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip DataParallel/DDP prefixes (HPS and other fine-tunes were saved from wrapped models)."""
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    # transformers < 4.31 saved position_ids buffers that are no longer part of the state dict
    return {k: v for k, v in sd.items() if not k.endswith("embeddings.position_ids")}


def load_clip_weights(backbone: ClipBackbone, weights: str | os.PathLike | None = None, *,
                      reward: str | None = None, strict: bool = True,
                      sources: Sequence[WeightSource] | None = None) -> Provenance:
    """Load real weights into ``backbone``; return (and record in ``backbone.provenance``) where they
    came from. ``weights``: a local file/folder, hub id or URL overriding the default sources
    (``sources``, by default `clip_weight_sources` of the backbone's architecture and tag).

    Offline and not cached: `WeightsNotFoundError` at once, listing what was tried. A checkpoint
    whose keys do not match raises `CheckpointMismatchError` listing missing/unexpected keys.

    Example:
        >>> clip = build_clip("ViT-B-32", "openai", tiny=True)
        >>> try:
        ...     load_clip_weights(clip, "/nonexistent/clip.safetensors")
        ... except FileNotFoundError:
        ...     print("not found")
        not found
    """
    if sources is None:
        if backbone.tiny and weights is None:
            raise ValueError("a tiny backbone has no published weights; pass weights=PATH of a tiny checkpoint")
        sources = clip_weight_sources(backbone.arch, backbone.pretrained, backbone.library)
    found = resolve_weights(sources, reward=reward or f"clip:{backbone.arch}", override=weights)
    sd = _clean_keys(load_state_dict(found.path, map_location="cpu"))
    if backbone.library == "open_clip":
        # open_clip checkpoints may carry extras the CLIP module lacks (e.g. an unused logit_bias)
        has_bias = "logit_bias" in backbone.model.state_dict()
        sd = {k: v for k, v in sd.items() if k != "logit_bias" or has_bias}
    load_into(backbone.model, sd, strict=strict, source=str(found.path))
    backbone.text_cache.clear()
    backbone.provenance = found.provenance
    return found.provenance


class ClipReward(BackboneReward):
    """Base of the rewards that are a head on a `ClipBackbone` (``self.backbone``): the shareable
    part is ``embed_images`` (preprocessing + image tower → L2-normalised features)."""

    backbone: ClipBackbone

    def embed_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.backbone.encode_image(pixels)

    def prompt_notes(self, texts: list[str]) -> list[str]:
        """A note per text the text tower sees cut to its context ("" when it fits): ``details["prompt_note"]``."""
        return truncation_notes(self.backbone.tokenizer, texts, self.backbone.context_length)

    @property
    def text_calls(self) -> int:
        """Text-encoder calls so far (one per batch with new prompts; 0 for prompt-free rewards)."""
        return self.backbone.text_calls
