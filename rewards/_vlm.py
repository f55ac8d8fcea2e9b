"""One core for the vision-language judges on transformers' Qwen2-VL, Qwen2.5-VL and Qwen3-VL.

A judge (HPSv3, VQAScore's Qwen backends, UnifiedReward) is a `QwenVL` plus what it reads: a hidden state at a
token, the probability of an answer token, or generated text. The core owns what they share:

1. **the chat template** (`chat_text`): one user turn holding the image, then the judge's text, then the
   generation prompt, as each model's ``chat_template`` renders it (Qwen2-VL-7B-Instruct and
   Qwen2.5-VL-7B-Instruct ``chat_template.json``: a default system turn "You are a helpful assistant."; Qwen3-VL's
   template has none). The image becomes ``<|vision_start|>`` + one ``<|image_pad|>`` per merged patch +
   ``<|vision_end|>``, as the processors expand it (transformers ``Qwen2VLProcessor.__call__``);
2. **the image processing** (`QwenVL.preprocess`): the judge's pixel budget (`PixelBudget`: qwen-vl-utils
   ``smart_resize``, sides multiples of patch x merge, pixel count within [min_pixels, max_pixels]), a bicubic
   anti-aliased resize in torch (differentiable; the official pipelines resize a PIL image with bicubic, see
   each judge), the model's mean/std, then the patch layout of ``Qwen2VLImageProcessor`` (the frame repeated
   ``temporal_patch_size`` times, patches grouped by 2x2 merge window);
3. **one batched forward** (`QwenVL.forward_hidden`): every sequence left-padded to the longest, the padding
   masked out, position ids counted from each sequence's first real token, so item i in a batch sees exactly
   what it sees alone. Positions are the model's 3-D multimodal rotary positions (`mrope_positions`, which
   equals transformers' ``get_rope_index`` for one image) or, for HPSv3, plain sequential ones (its official
   model calls the decoder without them; see rewards/hpsv3.py). A judge that reads a probability reads it from
   this one forward (`QwenVL.next_token_logits`): no ``generate`` where one forward gives the same numbers;
4. **batched greedy generation** (`QwenVL.generate`) for judges that parse text: the same left-padded prefill,
   then one token per step for the whole batch with a KV cache, positions continuing after each sequence's
   largest position (what transformers' ``rope_deltas`` does), finished sequences padded;
5. **the text part once**: each judge's text is tokenised once per unique prompt (`QwenVL.text_ids`, an LRU
   cache). The decoder cannot reuse more: every official template puts the image before the judge's text, and a
   causal decoder's text states depend on the image before them.

Tiny configurations (`build_qwen_vl(..., tiny=True)`) are the same classes with two narrow layers per tower and
a byte-level BPE tokenizer built here (`tiny_tokenizer`: the Qwen2 pre-tokenizer and the models' special tokens
on a 256-byte alphabet plus a few merges), seeded from the judge's id: offline, deterministic, fast on a CPU.

Dtypes: ``load_reward(..., dtype="bfloat16")`` casts the model; pixels follow the vision tower's dtype and the
judges read their numbers in float32 (logits ``.float()`` before the softmax, as ``generate`` does).
Placement: ``device_map="auto"`` (a judge option) loads a 7B+ model across every visible GPU (transformers'
``from_pretrained(device_map=...)``, accelerate's placement, decoder layers kept whole); the judge then stays where
it was placed (`QwenVL` ignores later device moves, dtype casts still apply). See `load_qwen_vl`.

This module is longer than 500 lines because the five parts above are one contract: the padded forward, the
positions and the generation loop must agree token for token with what the template and the image layout produce,
and a judge's parity with its official code is tested through all of them at once.
"""

from __future__ import annotations

import hashlib
import inspect
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rewardbench.spec import Option
from rewardbench.transforms import CLIP_MEAN, CLIP_STD, normalize, resize

__all__ = ["Family", "FAMILIES", "PixelBudget", "smart_resize", "chat_text", "patchify", "mrope_positions",
           "sequential_positions", "pil_resize", "torchvision_resize", "tiny_tokenizer", "load_tokenizer",
           "build_qwen_vl", "load_qwen_vl", "QwenVL", "answer_probability", "next_token_probs", "EOS_TOKENS",
           "VLM_OPTIONS"]

# The special tokens of the Qwen2-VL / Qwen2.5-VL / Qwen3-VL tokenizers, in their id order (tokenizer.json
# "added_tokens" of Qwen/Qwen2-VL-7B-Instruct: <|endoftext|> 151643 ... <|video_pad|> 151656).
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                  "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
                  "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")
# generation_config.json of the Qwen2-VL / Qwen2.5-VL / Qwen3-VL instruct models: eos_token_id [151645, 151643]
EOS_TOKENS = ("<|im_end|>", "<|endoftext|>")
PAD_TOKEN = "<|endoftext|>"  # tokenizer_config.json pad_token of the same models
IMAGE_PAD = "<|image_pad|>"
# transformers models/qwen2/tokenization_qwen2.py PRETOKENIZE_REGEX (= the "Split" pre-tokenizer of the models'
# tokenizer.json)
PRETOKENIZE_REGEX = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
                     r"""\s*[\r\n]+|\s+(?!\S)|\s+""")

# the options every Qwen-VL judge takes
VLM_OPTIONS = {"tiny": Option(bool, False, "a tiny random architecture (tests)"),
               "device_map": Option(str, None, "spread a large model over the visible GPUs when its weights load "
                                               "(transformers/accelerate device_map)", optional=True,
                                    choices=("auto", "balanced", "balanced_low_0", "sequential"))}

_TINY = dict(hidden=32, layers=2, heads=2, intermediate=64)


@dataclass(frozen=True)
class Family:
    """A transformers Qwen-VL architecture: its classes, its image processor's constants, its chat template's
    default system turn and a tiny configuration (flat ``config.json`` keys, token ids filled in by the builder)."""

    key: str
    model_class: str
    patch_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    default_system: str | None
    tiny: dict[str, Any] = field(default_factory=dict)
    merge_size: int = 2  # preprocessor_config.json merge_size / vision_config spatial_merge_size
    temporal_patch_size: int = 2

    @property
    def factor(self) -> int:
        """The side of one merged patch in pixels: sides are resized to multiples of it."""
        return self.patch_size * self.merge_size

    def config_class(self):
        import transformers

        return getattr(transformers, self.model_class.replace("ForConditionalGeneration", "Config"))

    def model_cls(self):
        import transformers

        return getattr(transformers, self.model_class)


_TEXT_TINY = dict(hidden_size=_TINY["hidden"], num_hidden_layers=_TINY["layers"],
                  num_attention_heads=_TINY["heads"], num_key_value_heads=1, intermediate_size=_TINY["intermediate"],
                  max_position_embeddings=4096, rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=False,
                  hidden_act="silu")
# head_dim 16 -> 8 rotary frequencies split over (temporal, height, width) as the 7B configs split 64 as (16, 24, 24)
_MROPE = {"type": "mrope", "mrope_section": [2, 3, 3]}

FAMILIES: dict[str, Family] = {
    # Qwen/Qwen2-VL-7B-Instruct: preprocessor_config.json patch_size 14, merge_size 2, temporal_patch_size 2,
    # OpenAI CLIP mean/std; chat_template.json's default system turn
    "qwen2_vl": Family(
        "qwen2_vl", "Qwen2VLForConditionalGeneration", 14, CLIP_MEAN, CLIP_STD, "You are a helpful assistant.",
        tiny=dict(_TEXT_TINY, rope_scaling=_MROPE,
                  vision_config=dict(depth=_TINY["layers"], embed_dim=_TINY["hidden"], num_heads=_TINY["heads"],
                                     mlp_ratio=2, hidden_size=_TINY["hidden"], patch_size=14, spatial_merge_size=2,
                                     temporal_patch_size=2))),
    # Qwen/Qwen2.5-VL-7B-Instruct: the same processor constants and chat template as Qwen2-VL
    "qwen2_5_vl": Family(
        "qwen2_5_vl", "Qwen2_5_VLForConditionalGeneration", 14, CLIP_MEAN, CLIP_STD, "You are a helpful assistant.",
        tiny=dict(_TEXT_TINY, rope_scaling=_MROPE,
                  vision_config=dict(depth=_TINY["layers"], hidden_size=_TINY["hidden"], num_heads=_TINY["heads"],
                                     intermediate_size=_TINY["intermediate"], out_hidden_size=_TINY["hidden"],
                                     patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                                     fullatt_block_indexes=[1], tokens_per_second=2, hidden_act="silu"))),
    # Qwen/Qwen3-VL-8B-Instruct: preprocessor_config.json patch_size 16, merge_size 2, mean = std = 0.5; its chat
    # template has no default system turn
    "qwen3_vl": Family(
        "qwen3_vl", "Qwen3VLForConditionalGeneration", 16, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), None,
        tiny=dict(text_config=dict(_TEXT_TINY, head_dim=16, rope_scaling=dict(
                      rope_type="default", mrope_section=[2, 3, 3], mrope_interleaved=True)),
                  vision_config=dict(depth=_TINY["layers"], hidden_size=_TINY["hidden"], num_heads=_TINY["heads"],
                                     intermediate_size=_TINY["intermediate"], out_hidden_size=_TINY["hidden"],
                                     patch_size=16, spatial_merge_size=2, temporal_patch_size=2,
                                     num_position_embeddings=64, deepstack_visual_indexes=[0]),
                  tie_word_embeddings=False)),
}


# ---------------------------------------------------------------------------------------------
# the pixel budget and the patch layout


@dataclass(frozen=True)
class PixelBudget:
    """How many pixels an image is resized to: ``smart_resize``'s ``min_pixels`` / ``max_pixels``."""

    min_pixels: int
    max_pixels: int

    def __post_init__(self) -> None:
        if not 0 < self.min_pixels <= self.max_pixels:
            raise ValueError(f"PixelBudget needs 0 < min_pixels <= max_pixels, "
                             f"got {self.min_pixels}, {self.max_pixels}")


MAX_RATIO = 200  # qwen-vl-utils vision_process.py MAX_RATIO


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """The resized (height, width): both multiples of ``factor``, the pixel count within [min_pixels, max_pixels],
    the aspect ratio kept as closely as possible (qwen-vl-utils 0.0.14 ``vision_process.smart_resize``, the same
    formula as transformers' ``qwen2_vl.image_processing_qwen2_vl.smart_resize`` and HPSv3's
    ``hpsv3/dataset/utils.py``).

    Example:
        >>> smart_resize(512, 512, 28, 256 * 28 * 28, 256 * 28 * 28)  # HPSv3's fixed budget
        (448, 448)
        >>> smart_resize(1024, 768, 32, 4 * 32 * 32, 16384 * 32 * 32)  # qwen-vl-utils' default, Qwen3-VL
        (1024, 768)
    """
    if max(height, width) / min(height, width) > MAX_RATIO:
        raise ValueError(f"absolute aspect ratio must be smaller than {MAX_RATIO}, "
                         f"got {max(height, width) / min(height, width)}")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def patchify(x: torch.Tensor, patch_size: int, merge_size: int = 2,
             temporal_patch_size: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised images ``[B,C,H,W]`` (sides multiples of patch x merge) → ``pixel_values``
    ``[B*gh*gw, C*T*p*p]`` and ``image_grid_thw`` ``[B,3]``, the layout of transformers' ``Qwen2VLImageProcessor``
    for one image: the frame repeated to ``temporal_patch_size`` frames, patches ordered by 2x2 merge window
    (``reshape(t, T, C, gh/m, m, p, gw/m, m, p).transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)``)."""
    b, c, h, w = x.shape
    p, m, t = patch_size, merge_size, temporal_patch_size
    gh, gw = h // p, w // p
    if gh * p != h or gw * p != w or gh % m or gw % m:
        raise ValueError(f"image sides {h}x{w} are not multiples of patch x merge = {p * m}")
    frames = x[:, None].expand(b, t, c, h, w)  # (B, T, C, H, W): one image is T identical frames
    patches = frames.reshape(b, t, c, gh // m, m, p, gw // m, m, p)
    patches = patches.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)  # (B, gh/m, gw/m, m, m, C, T, p, p)
    pixel_values = patches.reshape(b * gh * gw, c * t * p * p)
    grid = torch.tensor([[1, gh, gw]] * b, dtype=torch.long, device=x.device)
    return pixel_values, grid


def pil_resize(pixels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[B,3,H,W]`` in [0, 1] → ``[B,3,h,w]``: rounded to uint8 and resized by PIL's bicubic filter (``Image.resize``'s
    default for RGB), as qwen-vl-utils' ``fetch_image`` and HPSv3's ``fetch_image`` resize; float in [0, 1] again."""
    import numpy as np
    from PIL import Image

    h, w = size
    arr = (pixels.detach().float() * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = np.stack([np.asarray(Image.fromarray(a).resize((w, h), Image.BICUBIC)) for a in arr])
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().div(255).to(pixels.device)


def torchvision_resize(pixels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[B,3,H,W]`` in [0, 1] → ``[B,3,h,w]``: rounded to uint8 and resized by torchvision's bicubic with
    anti-aliasing on the uint8 tensor, as transformers' fast Qwen2-VL image processor does
    (``TorchvisionBackend.resize``; Qwen3-VL's ``preprocessor_config.json`` names ``Qwen2VLImageProcessorFast``); float
    in [0, 1] again."""
    from torchvision.transforms.v2 import functional as tvF

    x = (pixels.detach().float() * 255).round().clamp(0, 255).to(torch.uint8)
    out = tvF.resize(x, list(size), interpolation=tvF.InterpolationMode.BICUBIC, antialias=True)
    return out.float().div(255)


# ---------------------------------------------------------------------------------------------
# the chat template


def chat_text(family: Family | str, text: str, *, system: str | None = None) -> str:
    """The prompt the model's chat template renders for one user turn ``[image, text]`` with
    ``add_generation_prompt=True`` (the image placeholder not yet expanded).

    The Qwen2-VL / Qwen2.5-VL template (``chat_template.json`` of Qwen/Qwen2-VL-7B-Instruct and
    Qwen/Qwen2.5-VL-7B-Instruct) opens with a system turn "You are a helpful assistant." when the first message is
    not a system message; an image item renders as ``<|vision_start|><|image_pad|><|vision_end|>``, a text item as
    its text; the turn ends with ``<|im_end|>\\n`` and the generation prompt is ``<|im_start|>assistant\\n``.
    Qwen3-VL-*-Instruct's template renders the same turn with no default system turn.

    Example:
        >>> print(chat_text("qwen2_vl", "Describe it."))
        <|im_start|>system
        You are a helpful assistant.<|im_end|>
        <|im_start|>user
        <|vision_start|><|image_pad|><|vision_end|>Describe it.<|im_end|>
        <|im_start|>assistant
        <BLANKLINE>
        >>> chat_text("qwen3_vl", "Hi.")
        '<|im_start|>user\\n<|vision_start|><|image_pad|><|vision_end|>Hi.<|im_end|>\\n<|im_start|>assistant\\n'
    """
    fam = FAMILIES[family] if isinstance(family, str) else family
    sys_text = system if system is not None else fam.default_system
    head = f"<|im_start|>system\n{sys_text}<|im_end|>\n" if sys_text is not None else ""
    return f"{head}<|im_start|>user\n<|vision_start|>{IMAGE_PAD}<|vision_end|>{text}<|im_end|>\n<|im_start|>assistant\n"


# ---------------------------------------------------------------------------------------------
# positions


def mrope_positions(ids: torch.Tensor, mask: torch.Tensor, image_token_id: int, grid: torch.Tensor,
                    merge_size: int = 2) -> torch.Tensor:
    """The 3-D multimodal rotary position ids ``[3,B,L]`` of left-padded sequences holding one image each: text
    counts up from 0 at the first real token; the image's tokens sit at (t, h, w) = (s, s + row, s + col) on the
    merged grid, s the image's first index; text after it resumes at s + max(rows, cols). Padding gets 0.
    transformers' ``Qwen2VLModel.get_rope_index`` (and Qwen2.5-VL's, Qwen3-VL's) computes the same for one image
    (a test compares them)."""
    b, n = ids.shape
    pos = torch.zeros(3, b, n, dtype=torch.long, device=ids.device)
    for i in range(b):
        real = mask[i].bool()
        seq = ids[i][real]
        img = (seq == image_token_id).nonzero().flatten()
        if len(img) == 0:
            p = torch.arange(len(seq), device=ids.device).expand(3, -1)
        else:
            s, e = int(img[0]), int(img[-1]) + 1
            gh, gw = int(grid[i, 1]) // merge_size, int(grid[i, 2]) // merge_size
            if e - s != gh * gw:
                raise ValueError(f"sequence {i}: {e - s} image tokens for a {gh}x{gw} merged grid")
            rows = torch.arange(gh, device=ids.device).repeat_interleave(gw)
            cols = torch.arange(gw, device=ids.device).repeat(gh)
            vis = torch.stack([torch.zeros_like(rows), rows, cols]) + s
            after = torch.arange(len(seq) - e, device=ids.device).expand(3, -1) + s + max(gh, gw)
            p = torch.cat([torch.arange(s, device=ids.device).expand(3, -1), vis, after], dim=1)
        pos[:, i, real] = p
    return pos


def sequential_positions(mask: torch.Tensor) -> torch.Tensor:
    """Plain positions ``[3,B,L]`` (the same on the three rotary axes) counted from each left-padded sequence's first
    real token: what a decoder called without position ids computes for a right-padded batch."""
    pos = (mask.long().cumsum(-1) - 1).clamp_min(0)
    return pos[None].expand(3, -1, -1)


# ---------------------------------------------------------------------------------------------
# tokenizers


def _byte_alphabet() -> list[str]:
    """GPT-2's byte-to-unicode table (the ByteLevel pre-tokenizer's alphabet), in byte order."""
    from tokenizers import pre_tokenizers

    table = pre_tokenizers.ByteLevel.alphabet()
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping, n = {}, 0
    for byte in range(256):
        if byte in printable:
            mapping[byte] = chr(byte)
        else:
            mapping[byte] = chr(256 + n)
            n += 1
    assert set(mapping.values()) == set(table)
    return [mapping[b] for b in range(256)]


# words merged into single tokens in the tiny vocabulary, so that answers such as "Yes" are one token as in
# the real vocabulary ("Yes" is id 9454 of the Qwen2 tokenizer)
_TINY_WORDS = ("Yes", "No", "Ġthe", "Final", "ĠScore")


def tiny_tokenizer(extra_special: Sequence[str] = ()):
    """A byte-level BPE ``tokenizers.Tokenizer`` with the Qwen2 pre-tokenizer (NFC, the split regex, ByteLevel):
    256 byte tokens, a few merged words (``_TINY_WORDS``), then the Qwen-VL special tokens and ``extra_special``
    (e.g. HPSv3's ``<|Reward|>``) as added special tokens. Any text encodes; ids are small. Offline.

    Example:
        >>> tok = tiny_tokenizer()
        >>> tok.decode(tok.encode("Yes, a cat.").ids)
        'Yes, a cat.'
        >>> len(tok.encode("Yes").ids), tok.token_to_id("<|image_pad|>") > 256
        (1, True)
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE

    vocab = {ch: i for i, ch in enumerate(_byte_alphabet())}
    merges: list[tuple[str, str]] = []
    for word in _TINY_WORDS:
        cur = word[0]
        for ch in word[1:]:
            merges.append((cur, ch))
            cur += ch
            vocab.setdefault(cur, len(vocab))
    merges = list(dict.fromkeys(merges))
    tok = Tokenizer(BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in (*SPECIAL_TOKENS, *extra_special)])
    return tok


# ---------------------------------------------------------------------------------------------
# building


def _seed_for(key: str) -> int:
    return int(hashlib.sha256(key.encode()).hexdigest()[:15], 16)


def _token_ids(tok) -> dict[str, int]:
    return dict(image_token_id=tok.token_to_id("<|image_pad|>"), video_token_id=tok.token_to_id("<|video_pad|>"),
                vision_start_token_id=tok.token_to_id("<|vision_start|>"),
                vision_end_token_id=tok.token_to_id("<|vision_end|>"))


def tiny_config(family: Family, tok) -> Any:
    """The family's tiny transformers config for tokenizer ``tok`` (vocabulary size and token ids from it)."""
    cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in family.tiny.items()}
    ids = _token_ids(tok)
    specials = dict(bos_token_id=tok.token_to_id(PAD_TOKEN), eos_token_id=tok.token_to_id("<|im_end|>"),
                    pad_token_id=tok.token_to_id(PAD_TOKEN), vocab_size=tok.get_vocab_size(with_added_tokens=True))
    if "text_config" in cfg:
        cfg["text_config"].update(specials)
    else:
        cfg.update(specials)
    return family.config_class()(**cfg, **ids)


def build_qwen_vl(family: str, *, tiny: bool = True, seed_id: str = "", extra_special: Sequence[str] = (),
                  config: Any = None, tokenizer: Any = None) -> QwenVL:
    """A `QwenVL` with random weights seeded from ``seed_id`` (same arguments, same weights).

    ``tiny=True``: the family's tiny config and `tiny_tokenizer` (offline). Otherwise pass the real ``config``
    and ``tokenizer`` (a judge's ``load_pretrained`` does); random full-size weights are only built when asked for.
    """
    fam = FAMILIES[family]
    if tiny:
        tokenizer = tiny_tokenizer(extra_special)
        config = tiny_config(fam, tokenizer)
    elif config is None or tokenizer is None:
        raise ValueError("a full-size QwenVL needs its config and tokenizer (the judge's load_pretrained gives them)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_seed_for(seed_id or fam.key))
        model = fam.model_cls()._from_config(config, attn_implementation="sdpa")
    model.eval().requires_grad_(False)
    return QwenVL(fam, model, tokenizer)


def load_tokenizer(path: str, extra_special: Sequence[str] = ()):
    """A model's ``tokenizer.json`` as a ``tokenizers.Tokenizer``, with ``extra_special`` added as special tokens
    (each gets the next id, as ``add_special_tokens`` of a transformers tokenizer gives it)."""
    from tokenizers import AddedToken, Tokenizer

    tok = Tokenizer.from_file(str(path))
    missing = [t for t in extra_special if tok.token_to_id(t) is None]
    if missing:
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in missing])
    return tok


def set_vocab_size(config: Any, n: int) -> None:
    """Set the decoder's vocabulary size on a Qwen-VL config (its text config, and the top level where it has one)."""
    text = getattr(config, "text_config", None)
    if text is not None:
        text.vocab_size = n
    if hasattr(config, "vocab_size") or text is None:
        config.vocab_size = n


def load_qwen_vl(family: str, *, tokenizer: Any, config: Any = None, state_dict: dict | None = None,
                 path: Any = None, dtype: torch.dtype | str | None = None,
                 device_map: str | dict | None = None) -> QwenVL:
    """A `QwenVL` with real weights, through transformers' ``from_pretrained`` (safetensors; no remote code: the
    class is ours to pick): from a ``state_dict`` already in today's key layout (with its ``config``), or from a
    checkpoint folder ``path`` (a hub snapshot; its config.json unless ``config`` is given). ``dtype``: the
    checkpoint's own by default. ``device_map``: e.g. ``"auto"`` to spread a large model over the visible GPUs (the
    result then ignores device moves)."""
    fam = FAMILIES[family]
    kw: dict[str, Any] = dict(attn_implementation="sdpa")
    if config is not None:
        kw["config"] = config
    if device_map is not None:
        kw["device_map"] = device_map
    if state_dict is not None:
        floats = [v.dtype for v in state_dict.values() if v.is_floating_point()]
        kw["dtype"] = dtype or (floats[0] if floats else torch.float32)
        model = fam.model_cls().from_pretrained(None, state_dict=state_dict, **kw)
    else:
        model = fam.model_cls().from_pretrained(str(path), dtype=dtype or "auto", **kw)
    model.eval().requires_grad_(False)
    vl = QwenVL(fam, model, tokenizer)
    vl.dispatched = device_map is not None
    return vl


# ---------------------------------------------------------------------------------------------
# the runtime


def _cache_kwarg(module: nn.Module) -> str:
    """The name under which the installed transformers takes a KV cache (``past_key_values`` before 5.x's rename
    to ``cache``)."""
    params = inspect.signature(module.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


class QwenVL(nn.Module):
    """A transformers Qwen-VL model with its tokenizer, template, preprocessing and batched runs (module docstring).

    ``model``: a ``*ForConditionalGeneration``; ``tokenizer``: a ``tokenizers.Tokenizer`` holding the special
    tokens. ``budget`` is given per call (each judge has its own).
    """

    def __init__(self, family: Family, model: nn.Module, tokenizer: Any, text_cache_size: int = 4096):
        super().__init__()
        self.family = family
        self.model = model
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.token_to_id(PAD_TOKEN)
        self.image_token_id = tokenizer.token_to_id(IMAGE_PAD)
        self.eos_ids = tuple(tokenizer.token_to_id(t) for t in EOS_TOKENS)
        self._text_cache: OrderedDict[str, list[int]] = OrderedDict()
        self._text_cache_size = text_cache_size
        self.text_calls = 0  # tokenizer calls (each unique text once)
        self.dispatched = False  # spread over GPUs by accelerate: device moves are ignored

    # -- placement ---------------------------------------------------------------------------
    def _apply(self, fn, recurse=True):
        if not self.dispatched:
            return super()._apply(fn, recurse)
        # a dispatched model stays on its devices: apply only what keeps every tensor's device (a dtype cast)
        for dev in {p.device for p in self.model.parameters()}:
            probe = torch.zeros(1, device=dev)
            if fn(probe).device != probe.device:
                return self
        return super()._apply(fn, recurse)

    @property
    def input_device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    @property
    def vision_dtype(self) -> torch.dtype:
        return next(self.visual.parameters()).dtype

    @property
    def visual(self) -> nn.Module:
        return self.model.model.visual

    # -- inputs ------------------------------------------------------------------------------
    def preprocess(self, pixels: torch.Tensor, budget: PixelBudget, *,
                   pil: bool | str = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixels ``[B,3,H,W]`` in [0, 1] → (``pixel_values``, ``image_grid_thw``): resized to the budget's size
        (bicubic, anti-aliased, clamped to [0, 1] as a uint8 resize is), normalised, patchified. Differentiable.
        ``pil=True``: the official pipelines' resize instead (pixels rounded to uint8, PIL bicubic: qwen-vl-utils
        ``fetch_image``, HPSv3's ``process_vision_info``); ``pil="torchvision"``: transformers' fast (torchvision)
        image processor's (`torchvision_resize`); both exact for images read from files, not differentiable."""
        fam = self.family
        h, w = smart_resize(pixels.shape[-2], pixels.shape[-1], fam.factor, budget.min_pixels, budget.max_pixels)
        if pil == "torchvision":
            x = torchvision_resize(pixels, (h, w))
        else:
            x = pil_resize(pixels, (h, w)) if pil else resize(pixels.float(), (h, w))
        x = normalize(x, fam.mean, fam.std)
        pv, grid = patchify(x, fam.patch_size, fam.merge_size, fam.temporal_patch_size)
        return pv.to(device=next(self.visual.parameters()).device, dtype=self.vision_dtype), grid

    def text_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of ``texts`` (no special tokens added; special tokens in the text are recognised), each
        unique text tokenised once and remembered (LRU)."""
        out = []
        for t in texts:
            ids = self._text_cache.get(t)
            if ids is None:
                ids = self.tokenizer.encode(t, add_special_tokens=False).ids
                self.text_calls += 1
                self._text_cache[t] = ids
                while len(self._text_cache) > self._text_cache_size:
                    self._text_cache.popitem(last=False)
            else:
                self._text_cache.move_to_end(t)
            out.append(ids)
        return out

    def sequences(self, prompts: Sequence[str], grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rendered prompts (each with one ``<|image_pad|>``, `chat_text`) → left-padded ``input_ids`` and
        ``attention_mask`` ``[B,L]`` with each image placeholder expanded to its merged patch count."""
        seqs = []
        for i, prompt in enumerate(prompts):
            before, sep, after = prompt.partition(IMAGE_PAD)
            if not sep or IMAGE_PAD in after:
                raise ValueError(f"prompt {i} must hold exactly one {IMAGE_PAD}")
            n = int(grid[i].prod()) // self.family.merge_size ** 2
            head, tail = self.text_ids([before, after])
            seqs.append(head + [self.image_token_id] * n + tail)
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, width - len(s):] = torch.tensor(s)
            mask[i, width - len(s):] = 1
        dev = self.input_device
        return ids.to(dev), mask.to(dev)

    def positions(self, ids: torch.Tensor, mask: torch.Tensor, grid: torch.Tensor, kind: str) -> torch.Tensor:
        if kind == "mrope":
            return mrope_positions(ids, mask, self.image_token_id, grid, self.family.merge_size)
        if kind == "sequential":
            return sequential_positions(mask)
        raise ValueError(f"positions must be 'mrope' or 'sequential', got {kind!r}")

    # -- one forward -------------------------------------------------------------------------
    def forward_hidden(self, pixels: torch.Tensor, prompts: Sequence[str], budget: PixelBudget, *,
                       positions: str = "mrope", cache: Any = None, pil: bool | str = False) -> dict[str, torch.Tensor]:
        """One batched, left-padded forward of the decoder: ``hidden`` ``[B,L,D]`` (after the final norm),
        ``input_ids``, ``attention_mask``, ``position_ids``. ``prompts`` are rendered (`chat_text`); ``pil``: see
        `preprocess`."""
        pv, grid = self.preprocess(pixels, budget, pil=pil)
        ids, mask = self.sequences(prompts, grid)
        pos = self.positions(ids, mask, grid, positions).to(ids.device)
        kwargs = {} if cache is None else {_cache_kwarg(self.model.model): cache, "use_cache": True}
        out = self.model.model(input_ids=ids, attention_mask=mask, position_ids=pos, pixel_values=pv,
                               image_grid_thw=grid.to(ids.device), **kwargs)
        return {"hidden": out.last_hidden_state, "input_ids": ids, "attention_mask": mask, "position_ids": pos}

    def next_token_logits(self, pixels: torch.Tensor, prompts: Sequence[str], budget: PixelBudget,
                          positions: str = "mrope",
                          pil: bool | str = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The logits of the token after each prompt ``[B,V]`` (float32), from one forward; with the run's
        ``input_ids`` and ``attention_mask`` (`forward_hidden`)."""
        run = self.forward_hidden(pixels, prompts, budget, positions=positions, pil=pil)
        last = run["hidden"][:, -1]  # left padding: every sequence ends at the last column
        return self.model.lm_head(last).float(), run

    def shared_prefix_logits(self, pixels: torch.Tensor, prompts: Sequence[str], owners: Sequence[int],
                             budget: PixelBudget, pil: bool | str = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Next-token logits ``[P,V]`` (float32) of ``P`` rendered prompts about ``B`` images (``owners[p]``: the
        image of prompt p), each image read once: its prefix (the template up to ``<|vision_end|>``, the same for
        all its prompts) runs once per image with a KV cache, then every prompt's remaining text runs on a copy of
        its image's cache, right-padded. The same numbers as `next_token_logits` on each (image, prompt) pair, with
        the image's tokens through the decoder once instead of once per prompt. Returns the logits and each
        prompt's token ids ``[P,L]`` (padding replaced by a real token of the row, for a repetition penalty).
        3-D (multimodal) positions only."""
        from transformers import DynamicCache

        heads, tails = {}, []
        for p, o in zip(prompts, owners):
            before, sep, after = p.partition(IMAGE_PAD)
            end = "<|vision_end|>"
            if not sep or not after.startswith(end):
                raise ValueError(f"a prompt must hold {IMAGE_PAD}{end}")
            if heads.setdefault(int(o), before + IMAGE_PAD + end) != before + IMAGE_PAD + end:
                raise ValueError(f"the prompts of image {o} differ before the text that follows the image")
            tails.append(after[len(end):])
        if sorted(heads) != list(range(pixels.shape[0])):
            raise ValueError("every image needs at least one prompt")
        cache = DynamicCache()
        run = self.forward_hidden(pixels, [heads[i] for i in range(pixels.shape[0])], budget, cache=cache, pil=pil)
        dev = run["input_ids"].device
        own = torch.as_tensor(list(owners), device=dev)
        cache.batch_select_indices(own)  # (P, heads, prefix, d): each prompt its image's keys and values
        prefix_ids, prefix_mask = run["input_ids"][own], run["attention_mask"][own]
        start = run["position_ids"].amax(dim=(0, 2))[own] + 1  # (P,): text after the image continues from here
        ids = self.text_ids(tails)
        width = max(len(t) for t in ids)
        sids = torch.full((len(ids), width), self.pad_id, dtype=torch.long, device=dev)
        smask = torch.zeros((len(ids), width), dtype=torch.long, device=dev)
        for i, t in enumerate(ids):  # right padding: no real token attends to the padding after it
            sids[i, :len(t)] = torch.tensor(t, device=dev)
            smask[i, :len(t)] = 1
        pos = (start[:, None] + torch.arange(width, device=dev)[None]).unsqueeze(0).expand(3, -1, -1)
        mask = torch.cat([prefix_mask, smask], dim=1)
        out = self.model.model(input_ids=sids, attention_mask=mask, position_ids=pos, use_cache=True,
                               **{_cache_kwarg(self.model.model): cache})
        last = torch.tensor([len(t) - 1 for t in ids], device=dev)
        hidden = out.last_hidden_state[torch.arange(len(ids), device=dev), last]
        full = torch.cat([prefix_ids, sids], dim=1)
        full = torch.where(mask.bool(), full, sids[:, :1])  # padding points at a real token of its row
        return self.model.lm_head(hidden).float(), full

    # -- generation --------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, pixels: torch.Tensor, prompts: Sequence[str], budget: PixelBudget, *,
                 max_new_tokens: int = 512, pil: bool | str = False) -> list[str]:
        """Greedy decoding for the whole batch (argmax each step, as ``generate(do_sample=False)`` and a server at
        temperature 0), stopping a sequence at its first end token; the texts without special tokens."""
        from transformers import DynamicCache

        cache = DynamicCache()
        run = self.forward_hidden(pixels, prompts, budget, cache=cache, pil=pil)
        mask, pos = run["attention_mask"], run["position_ids"]
        b = mask.shape[0]
        next_pos = pos.amax(dim=(0, 2)) + 1  # (B,): text after the prompt continues after its largest position
        logits = self.model.lm_head(run["hidden"][:, -1]).float()
        out = torch.empty((b, 0), dtype=torch.long, device=mask.device)
        done = torch.zeros(b, dtype=torch.bool, device=mask.device)
        eos = torch.tensor(self.eos_ids, device=mask.device)
        for _ in range(max_new_tokens):
            tok = logits.argmax(-1).masked_fill(done, self.pad_id)
            out = torch.cat([out, tok[:, None]], dim=1)
            done |= torch.isin(tok, eos)
            if bool(done.all()):
                break
            mask = torch.cat([mask, torch.ones((b, 1), dtype=mask.dtype, device=mask.device)], dim=1)
            step = self.model.model(input_ids=tok[:, None], attention_mask=mask,
                                    position_ids=next_pos.view(1, b, 1).expand(3, b, 1),
                                    use_cache=True, **{_cache_kwarg(self.model.model): cache})
            next_pos = next_pos + 1
            logits = self.model.lm_head(step.last_hidden_state[:, -1]).float()
        texts = []
        for row in out.tolist():
            ends = [k for k, t in enumerate(row) if t in self.eos_ids]
            texts.append(self.tokenizer.decode(row[:ends[0]] if ends else row, skip_special_tokens=True))
        return texts


def answer_probability(logits: torch.Tensor, token_id: int, input_ids: torch.Tensor | None = None,
                       attention_mask: torch.Tensor | None = None, repetition_penalty: float = 1.0) -> torch.Tensor:
    """P(token) ``[B]`` from next-token logits ``[B,V]``: `next_token_probs` at ``token_id``."""
    return next_token_probs(logits, input_ids, attention_mask, repetition_penalty)[:, token_id]


def next_token_probs(logits: torch.Tensor, input_ids: torch.Tensor | None = None,
                     attention_mask: torch.Tensor | None = None, repetition_penalty: float = 1.0) -> torch.Tensor:
    """The next-token distribution ``[B,V]`` from logits ``[B,V]``: softmax over the whole vocabulary in float32.
    With ``repetition_penalty`` != 1 the logits of tokens already in a sequence's real (unpadded) ``input_ids`` are
    first divided (positive) or multiplied (negative) by it, as transformers' ``RepetitionPenaltyLogitsProcessor``
    does inside ``generate`` (whose ``output_scores`` are those processed logits) on an unpadded sequence."""
    logits = logits.float()
    if repetition_penalty != 1.0:
        if input_ids is None:
            raise ValueError("a repetition penalty needs the input ids")
        if attention_mask is not None:  # padding is no token of the sequence: point it at its last real token
            input_ids = torch.where(attention_mask.bool(), input_ids, input_ids[:, -1:])
        seen = torch.gather(logits, 1, input_ids)
        seen = torch.where(seen < 0, seen * repetition_penalty, seen / repetition_penalty)
        logits = logits.scatter(1, input_ids, seen)
    return F.softmax(logits, dim=-1)
