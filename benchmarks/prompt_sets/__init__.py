"""Prompt sets: named lists of prompts (dicts with at least ``"prompt"``), the prompt sources of run-benchmark's
benchmark suites and of the trainer's tasks (``rewardbench prompts list``).

Convention: every module here (not starting with ``_``) defines
``PROMPT_SETS: dict[str, Callable[..., list[dict]]]`` mapping a prompt set's name to a loader; a loader takes
an optional ``path`` (a local file or URL of the official file) plus keyword options and returns a
list of dicts, each with ``"prompt"`` and whatever else the set knows ("category", "tag",
"include", ...). Official files load from a local path, from their official URL, or through
`datasets` where a hub copy exists; built-in sets are generated from facts (object lists,
templates).

    >>> from rewardbench.benchmarks.prompt_sets import list_prompt_sets, load_prompt_set
    >>> "object-pairs" in list_prompt_sets()
    True
    >>> load_prompt_set("object-pairs", limit=2)[0]["prompt"]
    'a person and a bicycle'
"""

from __future__ import annotations

import contextlib
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

Loader = Callable[..., list[dict]]


class UnknownPromptSetError(LookupError):
    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class PromptSourceError(OSError):
    """An official prompt file could not be read from a path or URL (the message says what was tried)."""


ENTRY_POINT_GROUP = "rewardbench.prompt_sets"  # third-party prompt sets: name = "module:loader"


def _registry() -> dict[str, Loader]:
    """Every prompt set: the ``PROMPT_SETS`` tables of this package's modules (found as the zoo's rewards are,
    by `rewardbench.registry.discover_modules`) and the ``rewardbench.prompt_sets`` entry points."""
    from importlib import metadata

    from rewardbench.registry import discover_modules

    found: dict[str, Loader] = {}
    for mod in discover_modules(__name__):
        for name, loader in getattr(mod, "PROMPT_SETS", {}).items():
            if name in found:
                raise ValueError(f"prompt set {name!r} is defined twice (second time in {mod.__name__})")
            found[name] = loader
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.load())
    return found


def list_prompt_sets() -> list[str]:
    """Names of every prompt set, sorted."""
    return sorted(_registry())


def load_prompt_set(name: str, path: str | os.PathLike | None = None, limit: int | None = None,
                    **kw: Any) -> list[dict]:
    """Load prompt set ``name`` (from ``path`` — a local file or URL — when given); ``limit`` keeps the
    first N rows. Unknown names raise `UnknownPromptSetError` with close matches."""
    reg = _registry()
    if name not in reg:
        from rewardbench.registry import did_you_mean

        hint = did_you_mean(name, reg)
        raise UnknownPromptSetError(f"unknown prompt set {name!r}.{hint} Known: {', '.join(sorted(reg))}")
    rows = reg[name](path=path, **kw) if path is not None else reg[name](**kw)
    for i, r in enumerate(rows):
        if not isinstance(r, dict) or not isinstance(r.get("prompt"), str) or not r["prompt"].strip():
            raise ValueError(f"prompt set {name!r}: row {i} has no prompt: {r!r}")
    return rows[:limit] if limit is not None else rows


def read_text(source: str | os.PathLike, timeout: float = 10.0) -> str:
    """Text of a local file or an http(s) URL. Offline, a URL fails within ``timeout`` seconds with
    a `PromptSourceError` saying how to use a local copy."""
    s = str(source)
    if s.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(s, timeout=timeout) as resp:  # noqa: S310 - official https URLs
                return resp.read().decode("utf-8")
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            raise PromptSourceError(
                f"cannot download {s} ({type(e).__name__}: {e}). Offline? Pass path=/local/copy "
                f"(CLI: --path FILE) pointing at a downloaded copy of the file.") from None
    p = Path(s).expanduser()
    if not p.is_file():
        raise PromptSourceError(f"prompt file {p} does not exist")
    return p.read_text(encoding="utf-8")


def download(url: str, timeout: float = 10.0) -> Path:
    """A binary official file (e.g. a parquet table) downloaded once into the rewardbench cache. Offline, it
    fails within ``timeout`` seconds with a `PromptSourceError` saying how to use a local copy."""
    import hashlib

    from rewardbench.weights import cache_dir

    # the cache folder keeps its name from before prompt sets were called so: files already downloaded stay found
    dest = cache_dir() / "suites" / f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{url.rsplit('/', 1)[-1]}"
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as f:  # noqa: S310
            while chunk := resp.read(1 << 20):
                f.write(chunk)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        tmp.unlink(missing_ok=True)
        raise PromptSourceError(f"cannot download {url} ({type(e).__name__}: {e}). Offline? Pass path=/local/copy "
                               "(CLI: --path FILE) pointing at a downloaded copy of the file.") from None
    os.replace(tmp, dest)
    return dest


def hub_rows(dataset: str, split: str, prompt_set: str) -> list[dict]:
    """The rows of a Hugging Face ``datasets`` dataset (``source="hub"``). Offline, a `PromptSourceError`
    saying how to use a local copy of the official file instead."""
    from rewardbench.weights import _hub_offline

    try:
        import datasets

        # hub unreachable: look in the local datasets cache only, instead of minutes of retries
        with contextlib.ExitStack() as stack:
            if _hub_offline():
                stack.enter_context(_patched(datasets.config, "HF_HUB_OFFLINE", True))
            return list(datasets.load_dataset(dataset, split=split))
    except Exception as e:  # datasets raises many kinds (ConnectionError, FileNotFoundError, HfHubHTTPError...)
        raise PromptSourceError(f"cannot load the dataset {dataset!r} through `datasets` ({type(e).__name__}: {e}). "
                               f"Offline? Pass path=/local/copy (CLI: --path FILE) pointing at a downloaded copy of "
                               f"the {prompt_set} file.") from None


@contextlib.contextmanager
def _patched(obj, name: str, value):
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)
