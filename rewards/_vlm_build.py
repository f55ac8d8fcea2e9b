"""The tokenizers and configurations a `rewards._vlm.QwenVL` is built from: the tiny offline ones (`tiny_tokenizer`,
`tiny_config`: the tests' random models) and a real checkpoint's ``tokenizer.json`` with a judge's extra special
tokens (`load_tokenizer`, `set_vocab_size`).

The tiny tokenizer is a byte-level BPE: the Qwen2 pre-tokenizer and the models' special tokens on a 256-byte alphabet
plus a few merges, so any text encodes offline, deterministically and with small ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._vlm_inputs import PAD_TOKEN, Family

__all__ = ["SPECIAL_TOKENS", "tiny_tokenizer", "tiny_config", "load_tokenizer", "set_vocab_size"]

# The special tokens of the Qwen2-VL / Qwen2.5-VL / Qwen3-VL tokenizers, in their id order (tokenizer.json
# "added_tokens" of Qwen/Qwen2-VL-7B-Instruct: <|endoftext|> 151643 ... <|video_pad|> 151656).
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                  "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
                  "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")
# transformers models/qwen2/tokenization_qwen2.py PRETOKENIZE_REGEX (= the "Split" pre-tokenizer of the models'
# tokenizer.json)
PRETOKENIZE_REGEX = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
                     r"""\s*[\r\n]+|\s+(?!\S)|\s+""")


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


def load_tokenizer(path: str, extra_special: Sequence[str] = ()):
    """A model's ``tokenizer.json`` as a ``tokenizers.Tokenizer``, with ``extra_special`` added as special tokens
    (each gets the next id, as ``add_special_tokens`` of a transformers tokenizer gives it)."""
    from tokenizers import AddedToken, Tokenizer

    tok = Tokenizer.from_file(str(path))
    missing = [t for t in extra_special if tok.token_to_id(t) is None]
    if missing:
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in missing])
    return tok


# ---------------------------------------------------------------------------------------------
# configurations


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


def set_vocab_size(config: Any, n: int) -> None:
    """Set the decoder's vocabulary size on a Qwen-VL config (its text config, and the top level where it has one)."""
    text = getattr(config, "text_config", None)
    if text is not None:
        text.vocab_size = n
    if hasattr(config, "vocab_size") or text is None:
        config.vocab_size = n
