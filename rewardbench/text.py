"""Offline text tokenisers (the CLIP BPE as an HF ``CLIPTokenizer``, from open_clip's bundled vocabulary) and
notes for prompts longer than a model's token limit (`truncation_notes`)."""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

__all__ = ["clip_tokenizer", "clip_bpe_path", "token_count", "truncation_notes"]

# open_clip/tokenizer.py SimpleTokenizer: `merges = merges[1:49152-256-2+1]` (line 0 is a version header)
_N_MERGES = 49152 - 256 - 2


def clip_bpe_path() -> Path:
    """Path of ``bpe_simple_vocab_16e6.txt.gz`` inside the installed open_clip_torch (found without
    importing open_clip, whose import is heavy)."""
    import importlib.util

    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("open_clip_torch is needed for the offline CLIP tokenizer (pip install open_clip_torch)")
    return Path(list(spec.submodule_search_locations)[0]) / "bpe_simple_vocab_16e6.txt.gz"


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP/GPT-2's reversible byte -> printable-character table (open_clip tokenizer.py ``bytes_to_unicode``)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


@functools.lru_cache(maxsize=1)
def clip_bpe() -> tuple[dict[str, int], tuple[tuple[str, str], ...]]:
    """CLIP's BPE vocabulary (token -> id) and merges, read from open_clip's bundled file.

    >>> vocab, merges = clip_bpe()
    >>> len(vocab), vocab["<|endoftext|>"]
    (49408, 49407)
    """
    lines = gzip.open(clip_bpe_path()).read().decode("utf-8").split("\n")[1:_N_MERGES + 1]
    merges = tuple(tuple(m.split()) for m in lines)
    # as SimpleTokenizer builds its table: 256 byte characters, their </w> forms, the merges, then the
    # two special tokens (ids 49406, 49407), named as in the hub's CLIP vocab.json (<|startoftext|>,
    # <|endoftext|>; open_clip calls the same ids <start_of_text>/<end_of_text>)
    byte_chars = list(_bytes_to_unicode().values())
    vocab = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(vocab)}, merges


def clip_tokenizer(model_max_length: int = 77):
    """An HF ``CLIPTokenizer`` built offline from open_clip's bundled BPE vocabulary: the same
    49,408-token vocabulary and merges as openai/clip-vit-* and laion/CLIP-ViT-H-14 on the hub;
    ``<|startoftext|>`` = 49406, ``<|endoftext|>`` = 49407 (also the pad token).

    Example:
        >>> clip_tokenizer()("a photo of a cat").input_ids
        [49406, 320, 1125, 539, 320, 2368, 49407]
    """
    from transformers import CLIPTokenizer

    vocab, merges = clip_bpe()
    return CLIPTokenizer(vocab=dict(vocab), merges=list(merges), model_max_length=model_max_length)


def token_count(tokenizer, text: str) -> int:
    """Tokens of ``text`` with its start and end tokens, before any truncation: for an HF tokenizer,
    open_clip's ``SimpleTokenizer`` (BPE ids + start/end) or open_clip's ``HFTokenizer`` wrapper.

    Example:
        >>> token_count(clip_tokenizer(), "a photo of a cat")
        7
    """
    if hasattr(tokenizer, "encode") and hasattr(tokenizer, "sot_token_id"):  # open_clip SimpleTokenizer
        return len(tokenizer.encode(text)) + 2
    inner = getattr(tokenizer, "tokenizer", None)  # open_clip HFTokenizer wraps an HF tokenizer
    hf = inner if inner is not None and callable(inner) else tokenizer
    return len(hf(text, truncation=False, add_special_tokens=True, verbose=False)["input_ids"])


def truncation_notes(tokenizer, prompts: list[str], limit: int, counts: dict[str, int] | None = None) -> list[str]:
    """Per prompt, a note when the model sees only the first ``limit`` of its tokens ("" when it fits):
    the per-row detail that tells a researcher a long prompt was scored cut. ``counts`` caches token
    counts per prompt across calls.

    Example:
        >>> notes = truncation_notes(clip_tokenizer(), ["a cat", "a very " * 80 + "long prompt"], 77)
        >>> notes[0], notes[1]
        ('', 'prompt cut to the model limit: 77 of its 164 tokens kept')
    """
    counts = {} if counts is None else counts
    out = []
    for p in prompts:
        n = counts.get(p)
        if n is None:
            n = counts[p] = token_count(tokenizer, p)
            if len(counts) > 65536:
                counts.clear()
        out.append("" if n <= limit else f"prompt cut to the model limit: {limit} of its {n} tokens kept")
    return out


def tiny_t5_tokenizer():
    """A tiny T5-like ``tokenizers.Tokenizer`` (offline): Unigram over printable ASCII characters and a few words,
    Metaspace pre-tokenizer, ``<pad>`` 0 / ``</s>`` 1 / ``<unk>`` 2, and ``</s>`` appended to every text as T5's
    tokenizer does (the tiny CLIP-FlanT5 of the VQAScore tests, the tiny FLUX pipeline's T5).

    >>> tok = tiny_t5_tokenizer()
    >>> tok.encode("Yes").ids[-1] == 1, len(tok.encode("Yes").ids)
    (True, 2)
    """
    from tokenizers import Tokenizer, pre_tokenizers, processors
    from tokenizers.models import Unigram

    words = ["▁Yes", "▁No", "▁yes", "▁the", "▁a", "▁USER", "▁ASSISTANT", "▁figure", "▁show"]
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -3.0)] + [(w, -1.0) for w in words]
    vocab += [(chr(c), -5.0) for c in range(33, 127)]
    tok = Tokenizer(Unigram(vocab, unk_id=2, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return tok
