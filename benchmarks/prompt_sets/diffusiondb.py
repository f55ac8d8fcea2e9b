"""DiffusionDB prompts (Wang et al., arXiv 2210.14896) with the held-out split of the paper we follow
(Zhang et al., arXiv 2401.12244): the prompts shuffled with seed 1928, the last 2,000 held out for
evaluation, the rest for training (the ImageReward recipe trains on them).

The procedure, exactly (the paper publishes no code, so this is our reading of it): the ``prompt`` column
in file order; whitespace stripped; empty prompts and repeats dropped (first occurrence kept);
``random.Random(1928).shuffle``; held out = the last ``n_heldout`` (2,000), train = the rest, less the prompts
equal to a held-out one up to case and spacing (the form `rewardbench.benchmarks.prompt_sets.splits` compares
prompts in; the file has such near-repeats, and training on one would train on its held-out twin).

Sources, in order: ``path`` (a local copy of DiffusionDB's ``metadata.parquet`` or ``metadata-large.parquet``,
or any parquet/CSV/JSONL with a ``prompt`` column, or a .txt with one prompt a line, or a URL of one), else
the official ``metadata.parquet`` (about 2M rows) from the Hugging Face dataset ``poloclub/diffusiondb``,
downloaded once into the rewardbench cache.
"""

from __future__ import annotations

import functools
import os
import random
from pathlib import Path

from . import download, read_text

OFFICIAL_URL = "https://huggingface.co/datasets/poloclub/diffusiondb/resolve/main/metadata.parquet"
SEED = 1928
N_HELDOUT = 2000


def split_prompts(prompts: list[str], n_heldout: int = N_HELDOUT, seed: int = SEED) -> tuple[list[str], list[str]]:
    """(train, held out): unique non-empty prompts in order, shuffled with ``random.Random(seed)``, the
    last ``n_heldout`` held out.

        >>> train, held = split_prompts(["a", "b", "c", "b", " d ", ""], n_heldout=2)
        >>> sorted(train + held), len(held)
        (['a', 'b', 'c', 'd'], 2)
    """
    unique = list(dict.fromkeys(p.strip() for p in prompts if isinstance(p, str) and p.strip()))
    random.Random(seed).shuffle(unique)
    if n_heldout > len(unique):
        raise ValueError(f"cannot hold out {n_heldout} of {len(unique)} unique prompts")
    return unique[:len(unique) - n_heldout], unique[len(unique) - n_heldout:]


def _read_prompts(path: str | os.PathLike) -> list[str]:
    s = str(path)
    if s.startswith(("http://", "https://")):
        path = download(s) if s.endswith((".parquet", ".pq")) else None
        if path is None:
            return read_text(s).splitlines()
    p = Path(path).expanduser()
    if not p.is_file():
        from . import PromptSourceError

        raise PromptSourceError(f"prompt file {p} does not exist")
    import pandas as pd

    ext = p.suffix.lower()
    if ext in (".parquet", ".pq"):
        df = pd.read_parquet(p, columns=["prompt"])
    elif ext in (".csv", ".tsv"):
        df = pd.read_csv(p, sep="\t" if ext == ".tsv" else ",", usecols=["prompt"], dtype=str, keep_default_na=False)
    elif ext in (".jsonl", ".ndjson"):
        df = pd.read_json(p, lines=True, dtype=False)
    else:
        return p.read_text(encoding="utf-8").splitlines()
    if "prompt" not in df.columns:
        raise ValueError(f"{p}: no 'prompt' column")
    return df["prompt"].tolist()


def load_diffusiondb(path: str | os.PathLike | None = None, split: str = "heldout", n_heldout: int = N_HELDOUT,
                     seed: int = SEED) -> list[dict]:
    """Rows ``{"prompt", "split", "index"}`` of the held-out (default) or train split."""
    if split not in ("heldout", "train"):
        raise ValueError(f"split must be 'heldout' or 'train', got {split!r}")
    source = str(path if path is not None else download(OFFICIAL_URL))
    train, held = _split_of(source, _stamp(source), n_heldout, seed)
    return [{"prompt": p, "split": split, "index": i} for i, p in enumerate(held if split == "heldout" else train)]


def _stamp(source: str) -> tuple[int, ...]:
    """A local file's modification time and size (a rewritten file is read again); () for a URL."""
    p = Path(source).expanduser()
    return (p.stat().st_mtime_ns, p.stat().st_size) if p.is_file() else ()


@functools.lru_cache(maxsize=4)
def _split_of(source: str, stamp: tuple[int, ...], n_heldout: int, seed: int) -> tuple[tuple[str, ...], ...]:
    """`split_prompts` of a source's prompts, kept: a training run reads both splits (its prompts, then the
    check that none is held out), and the official file has about 2M rows."""
    from .splits import normalize

    train, held = split_prompts(_read_prompts(source), n_heldout, seed)
    twins = {normalize(p) for p in held}
    return tuple(p for p in train if normalize(p) not in twins), tuple(held)


PROMPT_SETS = {"diffusiondb-heldout": load_diffusiondb,
          "diffusiondb-train": functools.partial(load_diffusiondb, split="train")}
