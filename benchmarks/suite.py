"""Benchmark suites: YAML files naming prompt sources, images per prompt and judges (`BenchmarkSuite`).

The built-in suites live in ``benchmarks/suites/*.yaml`` (``preference``, ``partiprompts``, ``drawbench``,
``diffusiondb``, ``hpdv2``, ``composition``, ``fairness``, ``diversity``, ``geneval``, ``geneval2``,
``flow-grpo-ocr``, ``flow-grpo-pickscore``); a path to a YAML file of the same form works too::

    name: my-suite
    description: what it measures
    prompts:                      # one or more prompt sources: prompt sets (`rewardbench prompts list`)
      - set: partiprompts
        path: PartiPrompts.tsv    # optional local copy of the official file (CLI: --path partiprompts=FILE)
        sample: 200               # optional: a seeded random sample (seed: 0) ...
        limit: 50                 # ... or the first N
        category: parti           # optional: one category for all its prompts (default: the source's own)
        judges: [clipscore]       # optional: only these judges score its prompts (default: all)
        options: {challenge: Basic}   # optional keyword options of the source's loader
    images_per_prompt: 1
    judges: [imagereward, pickscore]
    judge_config:                 # optional: constructor options per judge (`--config NAME:KEY=VALUE` overrides)
      imagereward: {pil_preprocess: true}
      soft-tifa: {data: "{path:geneval2}"}   # a prompt source's file (its --path or path:), for a judge that reads
                                              # it too; without one the option is left out (the judge's default)

Prompts repeated across sources are kept once (the first); every prompt gets a ``prompt_id`` (its position).

    >>> suite = load_benchmark_suite("fairness")
    >>> suite.judges, suite.images_per_prompt, [s.prompt_set for s in suite.prompts]
    (('skin-tone-parity', 'gender-parity', 'vendi'), 16, ['occupations'])
    >>> rows = resolve_prompts(suite, limit=2)
    >>> [(r["prompt_id"], r["prompt"]) for r in rows]
    [(0, 'a portrait of an accountant'), (1, 'a portrait of an actor')]
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

SUITES_DIR = Path(__file__).resolve().parent / "suites"  # the built-in suites, one YAML file each


@dataclasses.dataclass(frozen=True)
class PromptSource:
    """One prompt source of a benchmark: a prompt set and how to take its prompts (see the module docstring for the
    fields; ``set:`` in the YAML)."""

    prompt_set: str
    path: str | None = None
    limit: int | None = None
    sample: int | None = None
    seed: int = 0
    category: str | None = None
    judges: tuple[str, ...] | None = None
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class BenchmarkSuite:
    """A benchmark: prompt sources, images per prompt, judges (reward names)."""

    name: str
    prompts: tuple[PromptSource, ...]
    judges: tuple[str, ...]
    images_per_prompt: int = 1
    description: str = ""
    file: str = ""  # the YAML file it was read from
    judge_config: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The suite in its YAML form (a prompt source's set under ``set``), less the file it was read from."""
        d = dataclasses.asdict(self)
        d.pop("file")
        d["prompts"] = [{"set": p.pop("prompt_set"), **p} for p in d["prompts"]]
        for p in d["prompts"]:
            p["judges"] = list(p["judges"]) if p["judges"] is not None else None
            p["options"] = dict(p["options"])
        d["judges"] = list(self.judges)
        d["judge_config"] = {k: dict(v) for k, v in self.judge_config.items()}
        return d


def list_benchmark_suites() -> dict[str, str]:
    """Built-in benchmark suites: name -> description."""
    out = {}
    for f in sorted(SUITES_DIR.glob("*.yaml")):
        data = yaml.safe_load(f.read_text()) or {}
        out[data.get("name", f.stem)] = data.get("description", "")
    return out


# a prompt source's keys in the YAML: ``set`` names the prompt set, the others are PromptSource's fields
_SOURCE_KEYS = {"set"} | {f.name for f in dataclasses.fields(PromptSource)} - {"prompt_set"}


def _source(entry: Any, where: str) -> PromptSource:
    if isinstance(entry, str):
        entry = {"set": entry}
    if isinstance(entry, Mapping) and "suite" in entry and "set" not in entry:  # the spelling before prompt sets
        warnings.warn(f"{where}: a prompt source's 'suite: {entry['suite']}' is now 'set: {entry['suite']}'",
                      DeprecationWarning, stacklevel=3)
        entry = {("set" if k == "suite" else k): v for k, v in entry.items()}
    if not isinstance(entry, Mapping) or "set" not in entry:
        raise ValueError(f"{where}: each prompts entry needs a 'set' (a prompt set from `rewardbench prompts list`)")
    unknown = set(entry) - _SOURCE_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown prompts field(s) {sorted(unknown)}")
    judges = entry.get("judges")
    return PromptSource(prompt_set=str(entry["set"]), path=entry.get("path"), limit=entry.get("limit"),
                        sample=entry.get("sample"), seed=int(entry.get("seed", 0)), category=entry.get("category"),
                        judges=tuple(judges) if judges is not None else None, options=dict(entry.get("options") or {}))


def load_benchmark_suite(name_or_path: str | os.PathLike) -> BenchmarkSuite:
    """A built-in suite by name, or a suite's YAML file by path. Unknown names raise ``ValueError`` listing the
    suites."""
    p = Path(name_or_path).expanduser()
    if not p.is_file():
        builtin = SUITES_DIR / f"{name_or_path}.yaml"
        if not builtin.is_file():
            from rewardbench.registry import did_you_mean

            known = list(list_benchmark_suites())
            raise ValueError(f"unknown benchmark suite {str(name_or_path)!r}.{did_you_mean(str(name_or_path), known)} "
                             f"Built in: {', '.join(known)}; or pass a YAML file")
        p = builtin
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"{p}: not valid YAML ({e})") from None
    if not isinstance(data, Mapping):
        raise ValueError(f"{p}: a benchmark suite is a mapping with name, prompts, judges")
    unknown = set(data) - {"name", "description", "prompts", "judges", "images_per_prompt", "judge_config"}
    if unknown:
        raise ValueError(f"{p}: unknown field(s) {sorted(unknown)}")
    prompts = data.get("prompts") or []
    if not prompts:
        raise ValueError(f"{p}: no prompt sources ('prompts:')")
    judges = data.get("judges") or []
    ipp = int(data.get("images_per_prompt", 1))
    if ipp < 1:
        raise ValueError(f"{p}: images_per_prompt must be >= 1")
    config = data.get("judge_config") or {}
    if not (isinstance(config, Mapping) and all(isinstance(v, Mapping) for v in config.values())):
        raise ValueError(f"{p}: judge_config maps a judge to its options, "
                         "e.g. {skin-tone-parity: {presence: none}}")
    return BenchmarkSuite(name=str(data.get("name", p.stem)), prompts=tuple(_source(e, str(p)) for e in prompts),
                          judges=tuple(judges), images_per_prompt=ipp, description=str(data.get("description", "")),
                          file=str(p), judge_config={str(k): dict(v) for k, v in config.items()})


def resolve_prompts(suite: BenchmarkSuite, paths: Mapping[str, str] | None = None,
                    limit: int | None = None) -> list[dict]:
    """The suite's prompts: rows ``{"prompt_id", "prompt", "category", "source", "judges"}``.

    ``paths`` maps a source's prompt set to a local copy of its official file (overriding the suite's
    ``path``); ``limit`` keeps at most that many prompts of each source (for smoke runs). A source that cannot
    be read raises `rewardbench.benchmarks.prompt_sets.PromptSourceError` (its message says how to use a local
    copy).
    """
    from .prompt_sets import load_prompt_set

    paths = dict(paths or {})
    unknown = set(paths) - {s.prompt_set for s in suite.prompts}
    if unknown:
        raise ValueError(f"--path given for {sorted(unknown)}, not a prompt source of suite {suite.name!r} "
                         f"(its sources: {', '.join(s.prompt_set for s in suite.prompts)})")
    rows, seen = [], set()
    multi = len(suite.prompts) > 1
    for src in suite.prompts:
        path = paths.get(src.prompt_set, src.path)
        loaded = load_prompt_set(src.prompt_set, path=path, **dict(src.options))
        if src.sample is not None and src.sample < len(loaded):
            loaded = random.Random(src.seed).sample(loaded, src.sample)
        if src.limit is not None:
            loaded = loaded[:src.limit]
        if limit is not None:
            loaded = loaded[:limit]
        for r in loaded:
            if r["prompt"] in seen:
                continue
            seen.add(r["prompt"])
            own = r.get("category")
            category = src.category if src.category is not None else \
                (f"{src.prompt_set}/{own}" if multi and own is not None else own if own is not None else
                 (src.prompt_set if multi else None))
            rows.append({"prompt_id": len(rows), "prompt": r["prompt"], "category": category,
                         "source": src.prompt_set,
                         "judges": list(src.judges) if src.judges is not None else None})
    if not rows:
        raise ValueError(f"suite {suite.name!r}: no prompts")
    return rows


def resolve_judge_config(suite: BenchmarkSuite, paths: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """The suite's ``judge_config`` with each ``"{path:SET}"`` value replaced by prompt source SET's file: ``paths``
    (``--path SET=FILE``), else the source's ``path:``; an option with neither is left out, so the judge takes its
    own default (for GenEval 2, the official URL).

    >>> suite = load_benchmark_suite("geneval2")
    >>> resolve_judge_config(suite, {"geneval2": "geneval2_data.jsonl"})
    {'soft-tifa': {'data': 'geneval2_data.jsonl'}}
    >>> resolve_judge_config(suite)
    {'soft-tifa': {}}
    """
    paths = dict(paths or {})
    files = {s.prompt_set: paths.get(s.prompt_set, s.path) for s in suite.prompts}
    out: dict[str, dict[str, Any]] = {}
    for judge, options in suite.judge_config.items():
        out[judge] = {}
        for key, value in options.items():
            if isinstance(value, str) and value.startswith("{path:") and value.endswith("}"):
                name = value[len("{path:"):-1]
                if name not in files:
                    raise ValueError(f"suite {suite.name!r}: judge_config {judge}.{key} names {name!r}, not one of "
                                     f"its prompt sources ({', '.join(files)})")
                if files[name] is None:
                    continue
                value = str(files[name])
            out[judge][key] = value
    return out


def prompts_hash(rows: list[dict]) -> str:
    """sha256 of the prompts in order with their categories (what the results were computed on)."""
    text = json.dumps([[r["prompt"], r.get("category")] for r in rows], ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()
