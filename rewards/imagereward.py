"""ImageReward-v1.0 (Xu et al. 2023, arXiv 2304.05977): a human-preference reward on BLIP.

The official model (``THUDM/ImageReward``, PyPI ``image-reward`` 1.5, ``ImageReward/ImageReward.py``):

1. the image goes through BLIP's ViT-L/16 at 224 px (``BLIP_Pretrain(image_size=224, vit='large')``):
   197 tokens of width 1024;
2. the prompt, tokenised by BERT's uncased WordPiece (``padding='max_length', truncation=True,
   max_length=35``), goes through BLIP's "med" BERT-base, whose every layer runs self-attention,
   then cross-attention to the 197 image tokens, then the feed-forward block;
3. the hidden state of the first token ([CLS]) goes through the MLP head 768→1024→128→64→16→1
   (the official head has its ReLUs commented out: it is affine, with dropout only in training);
4. ``score = (raw - 0.16717362830052426) / 1.0333394966054072``.

Our modules are written here in plain torch (no timm/fairscale/transformers model code); the
official checkpoint's keys are renamed onto them by `official_to_ours` (see `load_pretrained`).
Preprocessing happens in torch on the device (resize shorter side to 224 bicubic with antialias,
centre crop 224, CLIP mean/std), so scores are differentiable to the pixels as ReFL needs.
The official pipeline resizes PIL images with PIL's bicubic filter; `ImageReward.score_pil`
offers that exact path for files and PIL images (see its docstring for how far the two paths are
apart on real photos).

Text: the cross-attention makes the text tower's output depend on the image, so what can be
computed once per unique prompt is the tokenisation; it is cached per prompt (`TextFeatureCache`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rewardbench import RewardModel, RewardOutput, RewardSpec, WeightSource, register_reward
from rewardbench.cache import TextFeatureCache
from rewardbench.text import truncation_notes
from rewardbench.transforms import CLIP_MEAN, CLIP_STD, clip_preprocess, pil_clip_preprocess

# --- official constants (image-reward 1.5, ImageReward/ImageReward.py, class ImageReward) -----------
SCORE_MEAN = 0.16717362830052426  # self.mean
SCORE_STD = 1.0333394966054072  # self.std
IMAGE_SIZE = 224  # BLIP_Pretrain(image_size=224, ...) and _transform(224)
MAX_TOKENS = 35  # self.blip.tokenizer(prompt, padding='max_length', truncation=True, max_length=35)
# BLIP's CLIP normalisation, ImageReward.py `_transform`: Normalize((0.48145466, ...), (0.26862954, ...))
MEAN, STD = CLIP_MEAN, CLIP_STD

# ViT-L/16 (BLIP models/blip.py `create_vit('large')`: width 1024, depth 24, heads 16, patch 16,
# mlp_ratio 4, qkv_bias True, LayerNorm eps 1e-6 in models/vit.py).
_VIT_L = dict(vision_width=1024, vision_layers=24, vision_heads=16, patch_size=16)
# BLIP's med_config.json (THUDM/ImageReward med_config.json = salesforce/BLIP configs/med_config.json):
# hidden 768, 12 layers, 12 heads, intermediate 3072, layer_norm_eps 1e-12, max_position_embeddings 512,
# vocab 30524 (bert-base-uncased's 30522 + [DEC] + [ENC]); encoder_width is set to the ViT width.
_MED = dict(text_width=768, text_layers=12, text_heads=12, text_intermediate=3072, vocab_size=30524,
            max_positions=512)
_HEAD_DIMS = (1024, 128, 64, 16)  # ImageReward.py `MLP`: Linear(768,1024) ... Linear(16,1)

_PAPER = ("Xu et al., ImageReward: Learning and Evaluating Human Preferences for Text-to-Image "
          "Generation, NeurIPS 2023, arXiv 2304.05977")
HUB_REPO = "THUDM/ImageReward"
CHECKPOINT = "ImageReward.pt"


# ================================================================================================
# architecture (random weights; `load_pretrained` fills them)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int,
            bias: torch.Tensor | None = None) -> torch.Tensor:
    """Multi-head scaled dot-product attention: (B, Lq, D), (B, Lk, D) -> (B, Lq, D).
    ``bias`` is additive, broadcastable to (B, heads, Lq, Lk)."""
    b, lq, d = q.shape
    lk = k.shape[1]
    q = q.view(b, lq, heads, d // heads).transpose(1, 2)
    k = k.view(b, lk, heads, d // heads).transpose(1, 2)
    v = v.view(b, lk, heads, d // heads).transpose(1, 2)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=None if bias is None else bias.to(q.dtype))
    return out.transpose(1, 2).reshape(b, lq, d)


class _ViTAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)  # qkv_bias=True in BLIP's create_vit
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # timm's layout: [q | k | v] along the output dim
        return self.proj(_attend(q, k, v, self.heads))


class _ViTMlp(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))  # nn.GELU() (exact erf form) in BLIP's vit.py


class _ViTBlock(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=1e-6)
        self.attn = _ViTAttention(width, heads)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        self.mlp = _ViTMlp(width, 4 * width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pre-norm residual blocks
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class BlipVisionTransformer(nn.Module):
    """BLIP's ViT (models/vit.py): patch embedding, [CLS] token, learned positions, pre-norm
    blocks, final LayerNorm. Input: normalised ``[B,3,S,S]``; output: ``[B, 1 + (S/p)^2, width]``."""

    def __init__(self, image_size: int = IMAGE_SIZE, patch_size: int = 16, width: int = 1024,
                 layers: int = 24, heads: int = 16):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size)
        n_patches = (image_size // patch_size) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, n_patches + 1, width))
        self.blocks = nn.ModuleList([_ViTBlock(width, heads) for _ in range(layers)])
        self.norm = nn.LayerNorm(width, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, patches, width)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.pos_embed[:, : x.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class _BertAttention(nn.Module):
    """BERT attention with its post-LayerNorm residual (med.py BertAttention = BertSelfAttention +
    BertSelfOutput). Keys/values come from ``context`` (the image tokens for cross-attention)."""

    def __init__(self, width: int, context_width: int, heads: int, eps: float):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.k = nn.Linear(context_width, width)
        self.v = nn.Linear(context_width, width)
        self.out = nn.Linear(width, width)
        self.norm = nn.LayerNorm(width, eps=eps)

    def forward(self, x: torch.Tensor, context: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        y = _attend(self.q(x), self.k(context), self.v(context), self.heads, bias)
        return self.norm(self.out(y) + x)


class _BertFeedForward(nn.Module):
    def __init__(self, width: int, hidden: int, eps: float):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)  # BertIntermediate.dense, hidden_act "gelu" (exact)
        self.fc2 = nn.Linear(hidden, width)  # BertOutput.dense
        self.norm = nn.LayerNorm(width, eps=eps)  # BertOutput.LayerNorm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.fc2(F.gelu(self.fc1(x))) + x)


class _MedLayer(nn.Module):
    def __init__(self, width: int, image_width: int, heads: int, intermediate: int, eps: float):
        super().__init__()
        self.self_attn = _BertAttention(width, width, heads, eps)
        self.cross_attn = _BertAttention(width, image_width, heads, eps)
        self.ffn = _BertFeedForward(width, intermediate, eps)

    def forward(self, x: torch.Tensor, image: torch.Tensor, pad_bias: torch.Tensor) -> torch.Tensor:
        x = self.self_attn(x, x, pad_bias)
        x = self.cross_attn(x, image)  # every image token is attended (encoder mask of ones)
        return self.ffn(x)


class BlipMedTextEncoder(nn.Module):
    """BLIP's "med" BERT in its multimodal mode (med.py ``BertModel(add_pooling_layer=False)``,
    ``mode='multimodal'``): word + absolute position embeddings (no token types), then layers of
    self-attention → cross-attention to the image → feed-forward, each post-LayerNorm."""

    def __init__(self, vocab_size: int = 30524, width: int = 768, layers: int = 12, heads: int = 12,
                 intermediate: int = 3072, max_positions: int = 512, image_width: int = 1024,
                 eps: float = 1e-12):
        super().__init__()
        self.token_embed = nn.Embedding(vocab_size, width, padding_idx=0)  # pad_token_id 0
        self.pos_embed = nn.Embedding(max_positions, width)
        self.embed_norm = nn.LayerNorm(width, eps=eps)
        self.layers = nn.ModuleList([_MedLayer(width, image_width, heads, intermediate, eps) for _ in range(layers)])

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.embed_norm(self.token_embed(input_ids) + self.pos_embed(pos)[None])
        # med.py get_extended_attention_mask: (1 - mask) * -10000.0 added to the logits, per key
        pad_bias = ((1.0 - attention_mask.to(x.dtype)) * -10000.0)[:, None, None, :]  # (B, 1, 1, L)
        for layer in self.layers:
            x = layer(x, image, pad_bias)
        return x


# ================================================================================================
# checkpoint keys: official (ImageReward.pt, saved from the official `ImageReward` module) <-> ours

# (official pattern, our pattern); "{i}" is a layer index. Keys not matched are left unchanged, so
# `load_into` lists them as unexpected.
_KEY_RULES: tuple[tuple[str, str], ...] = (
    ("blip.visual_encoder.cls_token", "vision.cls_token"),
    ("blip.visual_encoder.pos_embed", "vision.pos_embed"),
    ("blip.visual_encoder.patch_embed.proj.", "vision.patch_embed."),
    ("blip.visual_encoder.blocks.{i}.", "vision.blocks.{i}."),  # norm1, attn.qkv, attn.proj, norm2, mlp.fc1/fc2
    ("blip.visual_encoder.norm.", "vision.norm."),
    ("blip.text_encoder.embeddings.word_embeddings.", "text.token_embed."),
    ("blip.text_encoder.embeddings.position_embeddings.", "text.pos_embed."),
    ("blip.text_encoder.embeddings.LayerNorm.", "text.embed_norm."),
    ("blip.text_encoder.encoder.layer.{i}.attention.self.query.", "text.layers.{i}.self_attn.q."),
    ("blip.text_encoder.encoder.layer.{i}.attention.self.key.", "text.layers.{i}.self_attn.k."),
    ("blip.text_encoder.encoder.layer.{i}.attention.self.value.", "text.layers.{i}.self_attn.v."),
    ("blip.text_encoder.encoder.layer.{i}.attention.output.dense.", "text.layers.{i}.self_attn.out."),
    ("blip.text_encoder.encoder.layer.{i}.attention.output.LayerNorm.", "text.layers.{i}.self_attn.norm."),
    ("blip.text_encoder.encoder.layer.{i}.crossattention.self.query.", "text.layers.{i}.cross_attn.q."),
    ("blip.text_encoder.encoder.layer.{i}.crossattention.self.key.", "text.layers.{i}.cross_attn.k."),
    ("blip.text_encoder.encoder.layer.{i}.crossattention.self.value.", "text.layers.{i}.cross_attn.v."),
    ("blip.text_encoder.encoder.layer.{i}.crossattention.output.dense.", "text.layers.{i}.cross_attn.out."),
    ("blip.text_encoder.encoder.layer.{i}.crossattention.output.LayerNorm.", "text.layers.{i}.cross_attn.norm."),
    ("blip.text_encoder.encoder.layer.{i}.intermediate.dense.", "text.layers.{i}.ffn.fc1."),
    ("blip.text_encoder.encoder.layer.{i}.output.dense.", "text.layers.{i}.ffn.fc2."),
    ("blip.text_encoder.encoder.layer.{i}.output.LayerNorm.", "text.layers.{i}.ffn.norm."),
    ("mlp.layers.", "head."),  # nn.Sequential indices kept: Linear at 0, 2, 4, 6, 7 (dropouts between)
)
# In the official module but unused by its score(): BLIP's contrastive projections, and the
# position_ids buffer of med.py's BertEmbeddings (a persistent buffer there; recomputed here).
OFFICIAL_UNUSED_KEYS = frozenset({
    "blip.vision_proj.weight", "blip.vision_proj.bias", "blip.text_proj.weight", "blip.text_proj.bias",
    "blip.text_encoder.embeddings.position_ids",
})


def _compile(pattern: str) -> re.Pattern:
    return re.compile("^" + re.escape(pattern).replace(re.escape("{i}"), r"(?P<i>\d+)"))


_FORWARD = [(_compile(a), b) for a, b in _KEY_RULES]
_BACKWARD = [(_compile(b), a) for a, b in _KEY_RULES]


def _rename(key: str, rules) -> str | None:
    for pattern, target in rules:
        m = pattern.match(key)
        if m:
            prefix = target.replace("{i}", m.group("i")) if "i" in m.groupdict() else target
            return prefix + key[m.end():]
    return None


def official_to_ours(key: str) -> str | None:
    """Our parameter name for an official ``ImageReward.pt`` key (None: no rule matches).

    Example:
        >>> official_to_ours("blip.text_encoder.encoder.layer.3.crossattention.self.key.weight")
        'text.layers.3.cross_attn.k.weight'
    """
    return _rename(key, _FORWARD)


def ours_to_official(key: str) -> str | None:
    """The inverse of `official_to_ours`."""
    return _rename(key, _BACKWARD)


def convert_official_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an official ImageReward state dict onto our modules.

    The keys in `OFFICIAL_UNUSED_KEYS` are dropped; any other key that no rule maps is kept under
    its own name, so that `rewardbench.weights.load_into` reports it as unexpected.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key in OFFICIAL_UNUSED_KEYS:
            continue
        out[official_to_ours(key) or key] = value
    return out


from ._blip import blip_tokenizer  # noqa: E402  (re-exported)

# ================================================================================================
# the reward


@register_reward()
class ImageReward(RewardModel):
    """ImageReward-v1.0: BLIP ViT-L/16 + BERT with cross-attention + MLP head, z-scored.

    Scores are differentiable with respect to the pixels (ReFL backpropagates through them).
    ``score_pil`` reproduces the official PIL preprocessing for files and PIL images.

    Example:
        >>> import torch, rewardbench
        >>> r = rewardbench.load_reward("imagereward", pretrained=False,
        ...                             **rewardbench.get_spec("imagereward").tiny_config)
        >>> r(torch.rand(2, 3, 64, 64), ["a cat", "a dog"]).scores.shape
        torch.Size([2])
    """

    spec = RewardSpec(
        name="imagereward", aliases=("image-reward", "ImageReward", "imagereward-v1.0"),
        category="preference", higher_is_better=True, range=(-2.5, 2.5), granularity="image",
        differentiable=True, needs_prompt=True,
        backbone="blip:vit-large-16-224/imagereward-v1.0",  # fine-tuned inside ImageReward: shared by no other reward
        weights=(
            WeightSource("hub", HUB_REPO, filename=CHECKPOINT,
                         note="official checkpoint (a torch pickle, loaded with weights_only=True); "
                              "no sha256 published"),
            WeightSource("hub", HUB_REPO, filename="med_config.json",
                         note="BLIP text-encoder config; its values are built in and checked when the file is at hand"),
        ),
        license="Apache-2.0", paper=_PAPER,
        description="human preference (ImageRewardDB, 137k expert comparisons); z-scored, ~N(0,1) on its data",
        tiny_config={"vision_width": 32, "vision_layers": 2, "vision_heads": 2, "text_width": 32,
                     "text_layers": 2, "text_heads": 2, "text_intermediate": 64, "max_positions": 64,
                     "head_dims": (16, 8, 8, 4)},
    )

    def __init__(self, vision_width: int = 1024, vision_layers: int = 24, vision_heads: int = 16,
                 patch_size: int = 16, image_size: int = IMAGE_SIZE, text_width: int = 768,
                 text_layers: int = 12, text_heads: int = 12, text_intermediate: int = 3072,
                 vocab_size: int = 30524, max_positions: int = 512,
                 head_dims: Sequence[int] = _HEAD_DIMS, tokenizer: str | os.PathLike | None = None):
        super().__init__()
        if max_positions < MAX_TOKENS:
            raise ValueError(f"imagereward: max_positions={max_positions} < {MAX_TOKENS} prompt tokens")
        self.image_size = image_size
        self.vision = BlipVisionTransformer(image_size, patch_size, vision_width, vision_layers, vision_heads)
        self.text = BlipMedTextEncoder(vocab_size, text_width, text_layers, text_heads, text_intermediate,
                                       max_positions, image_width=vision_width)
        # ImageReward.py MLP: Linear, Dropout(0.2), Linear, Dropout(0.2), Linear, Dropout(0.1), Linear, Linear
        dims = (text_width, *head_dims)
        self.head = nn.Sequential(
            nn.Linear(dims[0], dims[1]), nn.Dropout(0.2), nn.Linear(dims[1], dims[2]), nn.Dropout(0.2),
            nn.Linear(dims[2], dims[3]), nn.Dropout(0.1), nn.Linear(dims[3], dims[4]), nn.Linear(dims[4], 1))
        self._tokenizer_source = tokenizer
        self._tokenizer = None
        self._tokens = TextFeatureCache(self._tokenize_unique, max_size=4096)
        self._token_counts: dict[str, int] = {}  # untruncated length per prompt, for the notes of long prompts

    # -- text ---------------------------------------------------------------------------------------
    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = blip_tokenizer(self._tokenizer_source)
        return self._tokenizer

    def _tokenize_unique(self, prompts: list[str]) -> torch.Tensor:
        """Unique prompts -> ``[N, 2, 35]`` long (input ids, attention mask), as the official code
        tokenises: padding='max_length', truncation=True, max_length=35. The ids are used as is:
        ImageReward's score() keeps [CLS] in front (it does not swap in BLIP's [ENC] token)."""
        enc = self.tokenizer(prompts, padding="max_length", truncation=True, max_length=MAX_TOKENS,
                             return_tensors="pt")
        return torch.stack([enc["input_ids"], enc["attention_mask"]], dim=1)

    def tokenize(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts -> (input_ids, attention_mask), each ``[B, 35]``; each unique prompt is tokenised once."""
        t = self._tokens(list(prompts)).to(self.device)
        return t[:, 0], t[:, 1]

    # -- scoring --------------------------------------------------------------------------------------
    def raw_from_preprocessed(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """The head's output before normalisation, from normalised ``[B,3,224,224]`` images."""
        ids, mask = self.tokenize(prompts)
        image_tokens = self.vision(images.to(self.dtype))  # (B, 1 + patches, vision_width)
        text = self.text(ids, mask, image_tokens)  # (B, 35, text_width)
        return self.head(text[:, 0]).squeeze(-1).float()  # [CLS] state -> MLP, as ImageReward.score

    def _output(self, raw: torch.Tensor, prompts: Sequence[str]) -> RewardOutput:
        notes = truncation_notes(self.tokenizer, list(prompts), MAX_TOKENS, self._token_counts)
        return RewardOutput((raw - SCORE_MEAN) / SCORE_STD, {"raw": raw, "prompt_note": notes})

    def score(self, pixels: torch.Tensor, prompts: list[str], groups: torch.Tensor | None) -> RewardOutput:
        x = clip_preprocess(pixels.float(), self.image_size, MEAN, STD, mode="bicubic")
        return self._output(self.raw_from_preprocessed(x, prompts), prompts)

    def score_pil(self, images: Sequence[Any], prompts: Sequence[str] | str) -> RewardOutput:
        """Score files or PIL images with the official PIL preprocessing (PIL bicubic resize of the
        shorter side to 224, centre crop, CLIP normalisation: ImageReward.py ``_transform``).

        On five real photos (skimage astronaut, coffee, chelsea, rocket; matplotlib grace_hopper;
        300 to 640 px) the torch path of `score` (antialiased bicubic in torch, no uint8 rounding)
        differs from this path by 0.0010-0.0012 of the pixel range on average (about 0.3/255, mostly
        PIL's rounding to uint8), 0.003 at the 99th percentile, 0.02 at most. Use this path for exact
        parity with the official scores, `score` for tensors and gradients.

        Example:
            >>> import rewardbench, matplotlib.cbook as cbook
            >>> r = rewardbench.load_reward("imagereward", pretrained=False,
            ...                             **rewardbench.get_spec("imagereward").tiny_config)
            >>> r.score_pil([cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)], "a woman").scores.shape
            torch.Size([1])
        """
        from PIL import Image

        from rewardbench.images import load_image

        items = [images] if isinstance(images, (str, os.PathLike, Image.Image)) else list(images)
        prompt_list = self.check_prompts(prompts, len(items))
        pils = []
        for i, item in enumerate(items):
            if isinstance(item, (str, os.PathLike)):
                item = load_image(item)
            if not isinstance(item, Image.Image):
                raise TypeError(f"images[{i}]: score_pil takes paths or PIL images, got {type(item).__name__}")
            pils.append(item)
        x = torch.stack([pil_clip_preprocess(im, self.image_size, MEAN, STD) for im in pils]).to(self.device)
        return self._output(self.raw_from_preprocessed(x, prompt_list), prompt_list)

    # -- weights --------------------------------------------------------------------------------------
    def load_pretrained(self, weights: str | os.PathLike | None = None):
        """Load ``THUDM/ImageReward/ImageReward.pt`` (or ``weights``: the .pt file, a folder holding
        it, or a hub id), renaming its keys onto our modules (`convert_official_state_dict`)."""
        from rewardbench.weights import WeightsNotFoundError, load_into, load_state_dict, resolve_weights

        found = resolve_weights(self.spec.weights[:1], reward=self.spec.name, override=weights)
        path = found.path / CHECKPOINT if found.path.is_dir() else found.path
        if not path.is_file():
            raise WeightsNotFoundError(f"imagereward: {found.path} holds no {CHECKPOINT} (the official checkpoint "
                                       f"of hub repo {HUB_REPO}); pass weights=PATH/TO/{CHECKPOINT}")
        state = convert_official_state_dict(load_state_dict(path, map_location="cpu"))
        load_into(self, state, source=str(path))
        self._check_med_config(path.parent / "med_config.json")
        self.record_weights(found.provenance)
        return self.provenance()

    def _check_med_config(self, path: Path) -> None:
        """When med_config.json sits beside the checkpoint, check it agrees with the built-in values."""
        if not path.is_file():
            return
        import json

        cfg = json.loads(path.read_text())
        ours = {"hidden_size": self.text.token_embed.embedding_dim, "num_hidden_layers": len(self.text.layers),
                "vocab_size": self.text.token_embed.num_embeddings,
                "max_position_embeddings": self.text.pos_embed.num_embeddings}
        bad = {k: (cfg[k], v) for k, v in ours.items() if k in cfg and cfg[k] != v}
        if bad:
            raise ValueError(f"imagereward: {path} disagrees with the built architecture (config, ours): {bad}")


__all__ = ["ImageReward", "BlipVisionTransformer", "BlipMedTextEncoder", "blip_tokenizer", "official_to_ours",
           "ours_to_official", "convert_official_state_dict", "OFFICIAL_UNUSED_KEYS", "SCORE_MEAN", "SCORE_STD",
           "MAX_TOKENS"]

