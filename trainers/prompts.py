"""A task's training prompts: where they come from (a list, a file, a parquet file, a suite) and the check
that they are not a held-out evaluation suite's prompts.

    >>> load_prompts(["a cat asleep on a windowsill", "a red apple"])
    ['a cat asleep on a windowsill', 'a red apple']
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any


def load_prompts(source: Any, suite_paths: Mapping[str, str] | None = None) -> list[str]:
    """A task's prompts: a list, a text file (one a line; .jsonl/.csv/.tsv with a ``prompt`` column),
    a parquet file or ``hf://datasets/...parquet`` URL with a ``prompt`` column (duplicates dropped),
    ``"suite:NAME"`` or ``{"suite": NAME, "path": ..., <loader options>}`` (`rewardbench.suites.load_suite`;
    ``suite_paths`` gives a suite its local file when the mapping names none)."""
    if isinstance(source, str) and source.startswith("suite:"):
        source = {"suite": source[len("suite:"):]}
    if isinstance(source, Mapping):
        from rewardbench.suites import load_suite  # lazy: only recipes that name a suite need it

        options = dict(source)
        name = options.pop("suite", None)
        if not name:
            raise ValueError(f"prompts: a mapping needs a 'suite' key, got {dict(source)}")
        if options.get("path") is None and (suite_paths or {}).get(name):
            options["path"] = suite_paths[name]
        prompts = _prompts_of(load_suite(name, **options))
    elif isinstance(source, (list, tuple)):
        prompts = [str(p) for p in source]
    elif isinstance(source, str) and (source.startswith("hf://") or source.endswith(".parquet")):
        prompts = _parquet_prompts(source)
    elif isinstance(source, (str, os.PathLike)):
        p = Path(source).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"prompt file {p} not found (or use a list, or 'suite:NAME')")
        if p.suffix == ".jsonl":
            prompts = [json.loads(line)["prompt"] for line in p.read_text().splitlines() if line.strip()]
        elif p.suffix in (".csv", ".tsv"):
            import pandas as pd

            df = pd.read_csv(p, sep="\t" if p.suffix == ".tsv" else ",")
            col = next((c for c in df.columns if c.lower() == "prompt"), None)
            if col is None:
                raise ValueError(f"{p}: no 'prompt' column (columns: {list(df.columns)})")
            prompts = df[col].astype(str).tolist()
        else:
            prompts = [line.strip() for line in p.read_text().splitlines() if line.strip()]
    else:
        raise TypeError(f"prompts: expected a list, a file path, 'suite:NAME' or {{suite: NAME, ...}}, got "
                        f"{type(source).__name__}")
    if not prompts:
        raise ValueError(f"prompt source {source!r} is empty")
    return prompts


def _parquet_prompts(source: str) -> list[str]:
    import pandas as pd

    try:
        df = pd.read_parquet(source, columns=["prompt"])
    except (OSError, ValueError, ImportError) as e:
        where = "the Hugging Face hub (unreachable offline?)" if source.startswith("hf://") else "disk"
        raise OSError(f"cannot read prompts from {source} on {where}: {e}. Download the file and point the task's "
                      "prompts at the local copy.") from None
    return list(dict.fromkeys(p.strip() for p in df["prompt"].dropna().astype(str) if p.strip()))


def check_eval_overlap(task: str, prompts: Sequence[str], suite_paths: Mapping[str, str] | None = None,
                       drop: bool = False, skip: Collection[str] = ()) -> tuple[list[str], dict[str, int], list[str]]:
    """A task's training prompts checked against every held-out evaluation suite (`rewardbench.suites.splits`)
    but those in ``skip`` (found out of reach for an earlier task: not tried again): ValueError when they share
    prompts, or with ``drop`` those prompts removed. Returns ``(prompts kept, {suite: prompts dropped}, suites
    that could not be loaded to check)``."""
    from rewardbench.suites.splits import eval_overlap, evaluation_suites, normalize

    suites = [s for s in evaluation_suites() if s not in skip] if skip else None
    overlap, unchecked = eval_overlap(prompts, suites=suites, paths=suite_paths,
                                      examples=len(prompts) if drop else 5)
    if overlap and not drop:
        found = "; ".join(f"{suite}: {', '.join(repr(p) for p in shared)}" for suite, shared in overlap.items())
        raise ValueError(f"task {task!r} would train on held-out evaluation prompts ({found}). Train on a training "
                         "split (suite:diffusiondb-train, suite:person-descriptions, suite:object-pairs-train), set "
                         "drop_eval_overlap: true on the task to leave those prompts out, or allow_eval_overlap: true "
                         "to train on them anyway.")
    if not overlap and prompts:  # nothing to drop: the prompts as they are, without normalising each again
        return list(prompts), {}, sorted(unchecked)
    held = {normalize(p) for shared in overlap.values() for p in shared}
    kept = [p for p in prompts if normalize(p) not in held]
    if not kept:
        raise ValueError(f"task {task!r}: every training prompt is a held-out evaluation prompt")
    return kept, {suite: len(shared) for suite, shared in overlap.items()}, sorted(unchecked)


def _prompts_of(suite: Any) -> list[str]:
    items = getattr(suite, "prompts", suite)
    if hasattr(items, "columns"):  # a DataFrame
        return items["prompt"].astype(str).tolist()
    out = []
    for x in items:
        out.append(x if isinstance(x, str) else (x["prompt"] if isinstance(x, dict) else x.prompt))
    return out
