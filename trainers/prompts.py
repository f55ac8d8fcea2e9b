"""A task's training prompts: where they come from (a list, a file, a parquet file, a prompt set) and the check
that they are not a held-out evaluation set's prompts.

    >>> load_prompts(["a cat asleep on a windowsill", "a red apple"])
    ['a cat asleep on a windowsill', 'a red apple']
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any


def prompt_set_source(source: Any) -> dict[str, Any] | None:
    """``{"set": NAME, <loader options>}`` when ``source`` names a prompt set (``"set:NAME"`` or a mapping), else
    None. The spelling from before prompt sets had their name (``"suite:NAME"``, ``{"suite": NAME}``) is read the
    same way, with a DeprecationWarning.

    >>> prompt_set_source("set:occupations"), prompt_set_source(["a red apple"])
    ({'set': 'occupations'}, None)
    """
    if isinstance(source, str) and source.startswith(("set:", "suite:")):
        key, _, name = source.partition(":")
        source = {key: name}
    if not isinstance(source, Mapping):
        return None
    options = dict(source)
    if "suite" in options and "set" not in options:
        warnings.warn(f"prompts: 'suite:{options['suite']}' is now 'set:{options['suite']}' (a prompt set; "
                      "'suite' means a run-benchmark suite)", DeprecationWarning, stacklevel=3)
        options = {("set" if k == "suite" else k): v for k, v in options.items()}
    return options


def load_prompts(source: Any, prompt_paths: Mapping[str, str] | None = None) -> list[str]:
    """A task's prompts: a list, a text file (one a line; .jsonl/.csv/.tsv with a ``prompt`` column),
    a parquet file or ``hf://datasets/...parquet`` URL with a ``prompt`` column (duplicates dropped),
    ``"set:NAME"`` or ``{"set": NAME, "path": ..., <loader options>}`` (a prompt set:
    `rewardbench.benchmarks.prompt_sets.load_prompt_set`; ``prompt_paths`` gives a prompt set its local file when
    the mapping names none)."""
    named = prompt_set_source(source)
    if named is not None:
        # lazy: only recipes that name a prompt set need it
        from rewardbench.benchmarks.prompt_sets import load_prompt_set

        name = named.pop("set", None)
        if not name:
            raise ValueError(f"prompts: a mapping needs a 'set' key (a prompt set), got {dict(source)}")
        if named.get("path") is None and (prompt_paths or {}).get(name):
            named["path"] = prompt_paths[name]
        prompts = _prompts_of(load_prompt_set(name, **named))
    elif isinstance(source, (list, tuple)):
        prompts = [str(p) for p in source]
    elif isinstance(source, str) and (source.startswith("hf://") or source.endswith(".parquet")):
        prompts = _parquet_prompts(source)
    elif isinstance(source, (str, os.PathLike)):
        p = Path(source).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"prompt file {p} not found (or use a list, or 'set:NAME' for a prompt set)")
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
        raise TypeError(f"prompts: expected a list, a file path, 'set:NAME' or {{set: NAME, ...}}, got "
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


def check_eval_overlap(task: str, prompts: Sequence[str], prompt_paths: Mapping[str, str] | None = None,
                       drop: bool = False, skip: Collection[str] = ()) -> tuple[list[str], dict[str, int], list[str]]:
    """A task's training prompts checked against every held-out evaluation set
    (`rewardbench.benchmarks.prompt_sets.splits`) but those in ``skip`` (found out of reach for an earlier task:
    not tried again): ValueError when they share prompts, or with ``drop`` those prompts removed. Returns
    ``(prompts kept, {prompt set: prompts dropped}, prompt sets that could not be loaded to check)``."""
    from rewardbench.benchmarks.prompt_sets.splits import eval_overlap, evaluation_sets, normalize

    sets = [s for s in evaluation_sets() if s not in skip] if skip else None
    overlap, unchecked = eval_overlap(prompts, sets=sets, paths=prompt_paths,
                                      examples=len(prompts) if drop else 5)
    if overlap and not drop:
        found = "; ".join(f"{name}: {', '.join(repr(p) for p in shared)}" for name, shared in overlap.items())
        raise ValueError(f"task {task!r} would train on held-out evaluation prompts ({found}). Train on a training "
                         "split (set:diffusiondb-train, set:person-descriptions, set:object-pairs-train), set "
                         "drop_eval_overlap: true on the task to leave those prompts out, or allow_eval_overlap: true "
                         "to train on them anyway.")
    if not overlap and prompts:  # nothing to drop: the prompts as they are, without normalising each again
        return list(prompts), {}, sorted(unchecked)
    held = {normalize(p) for shared in overlap.values() for p in shared}
    kept = [p for p in prompts if normalize(p) not in held]
    if not kept:
        raise ValueError(f"task {task!r}: every training prompt is a held-out evaluation prompt")
    return kept, {name: len(shared) for name, shared in overlap.items()}, sorted(unchecked)


def _prompts_of(rows: Any) -> list[str]:
    items = getattr(rows, "prompts", rows)
    if hasattr(items, "columns"):  # a DataFrame
        return items["prompt"].astype(str).tolist()
    out = []
    for x in items:
        out.append(x if isinstance(x, str) else (x["prompt"] if isinstance(x, dict) else x.prompt))
    return out
