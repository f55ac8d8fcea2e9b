"""Benchmark suites: YAML specs naming prompt sources, images per prompt and judges (`BenchmarkSuite`).

The built-in specs live in ``benchmarks/specs/*.yaml`` (``preference``, ``partiprompts``, ``drawbench``,
``diffusiondb``, ``hpdv2``, ``composition``, ``fairness``, ``diversity``); a path to a YAML file of the same
form works too::

    name: my-suite
    description: what it measures
    prompts:                      # one or more prompt sources: `rewardbench suites list`
      - suite: partiprompts
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

Prompts repeated across sources are kept once (the first); every prompt gets a ``prompt_id`` (its position).

    >>> suite = load_benchmark_suite("fairness")
    >>> suite.judges, suite.images_per_prompt, [s.suite for s in suite.prompts]
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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

SPECS_DIR = Path(__file__).resolve().parent / "specs"


@dataclasses.dataclass(frozen=True)
class PromptSource:
    """One prompt suite of a benchmark (see the module docstring for the fields)."""

    suite: str
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
    file: str = ""  # where the spec was read from
    judge_config: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("file")
        for p in d["prompts"]:
            p["judges"] = list(p["judges"]) if p["judges"] is not None else None
            p["options"] = dict(p["options"])
        d["judges"] = list(self.judges)
        d["judge_config"] = {k: dict(v) for k, v in self.judge_config.items()}
        return d


def list_benchmark_suites() -> dict[str, str]:
    """Built-in benchmark suites: name -> description."""
    out = {}
    for f in sorted(SPECS_DIR.glob("*.yaml")):
        spec = yaml.safe_load(f.read_text()) or {}
        out[spec.get("name", f.stem)] = spec.get("description", "")
    return out


def _source(entry: Any, where: str) -> PromptSource:
    if isinstance(entry, str):
        entry = {"suite": entry}
    if not isinstance(entry, Mapping) or "suite" not in entry:
        raise ValueError(f"{where}: each prompts entry needs a 'suite' (a name from `rewardbench suites list`)")
    unknown = set(entry) - {f.name for f in dataclasses.fields(PromptSource)}
    if unknown:
        raise ValueError(f"{where}: unknown prompts field(s) {sorted(unknown)}")
    judges = entry.get("judges")
    return PromptSource(suite=str(entry["suite"]), path=entry.get("path"), limit=entry.get("limit"),
                        sample=entry.get("sample"), seed=int(entry.get("seed", 0)), category=entry.get("category"),
                        judges=tuple(judges) if judges is not None else None, options=dict(entry.get("options") or {}))


def load_benchmark_suite(name_or_path: str | os.PathLike) -> BenchmarkSuite:
    """A built-in suite by name, or a YAML spec by path. Unknown names raise ``ValueError`` listing the suites."""
    p = Path(name_or_path).expanduser()
    if not p.is_file():
        builtin = SPECS_DIR / f"{name_or_path}.yaml"
        if not builtin.is_file():
            from rewardbench.registry import did_you_mean

            known = list(list_benchmark_suites())
            raise ValueError(f"unknown benchmark suite {str(name_or_path)!r}.{did_you_mean(str(name_or_path), known)} "
                             f"Built in: {', '.join(known)}; or pass a YAML file")
        p = builtin
    try:
        spec = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"{p}: not valid YAML ({e})") from None
    if not isinstance(spec, Mapping):
        raise ValueError(f"{p}: a suite spec is a mapping with name, prompts, judges")
    unknown = set(spec) - {"name", "description", "prompts", "judges", "images_per_prompt", "judge_config"}
    if unknown:
        raise ValueError(f"{p}: unknown field(s) {sorted(unknown)}")
    prompts = spec.get("prompts") or []
    if not prompts:
        raise ValueError(f"{p}: no prompt sources ('prompts:')")
    judges = spec.get("judges") or []
    ipp = int(spec.get("images_per_prompt", 1))
    if ipp < 1:
        raise ValueError(f"{p}: images_per_prompt must be >= 1")
    config = spec.get("judge_config") or {}
    if not (isinstance(config, Mapping) and all(isinstance(v, Mapping) for v in config.values())):
        raise ValueError(f"{p}: judge_config maps a judge to its options, "
                         "e.g. {skin-tone-parity: {presence: none}}")
    return BenchmarkSuite(name=str(spec.get("name", p.stem)), prompts=tuple(_source(e, str(p)) for e in prompts),
                          judges=tuple(judges), images_per_prompt=ipp, description=str(spec.get("description", "")),
                          file=str(p), judge_config={str(k): dict(v) for k, v in config.items()})


def resolve_prompts(suite: BenchmarkSuite, paths: Mapping[str, str] | None = None,
                    limit: int | None = None) -> list[dict]:
    """The suite's prompts: rows ``{"prompt_id", "prompt", "category", "source", "judges"}``.

    ``paths`` maps a source's suite name to a local copy of its official file (overriding the spec's
    ``path``); ``limit`` keeps at most that many prompts of each source (for smoke runs). A source that cannot
    be read raises `rewardbench.suites.SuiteSourceError` (its message says how to use a local copy).
    """
    from rewardbench.suites import load_suite

    paths = dict(paths or {})
    unknown = set(paths) - {s.suite for s in suite.prompts}
    if unknown:
        raise ValueError(f"--path given for {sorted(unknown)}, not a prompt source of suite {suite.name!r} "
                         f"(its sources: {', '.join(s.suite for s in suite.prompts)})")
    rows, seen = [], set()
    multi = len(suite.prompts) > 1
    for src in suite.prompts:
        path = paths.get(src.suite, src.path)
        loaded = load_suite(src.suite, path=path, **dict(src.options))
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
                (f"{src.suite}/{own}" if multi and own is not None else own if own is not None else
                 (src.suite if multi else None))
            rows.append({"prompt_id": len(rows), "prompt": r["prompt"], "category": category, "source": src.suite,
                         "judges": list(src.judges) if src.judges is not None else None})
    if not rows:
        raise ValueError(f"suite {suite.name!r}: no prompts")
    return rows


def prompts_hash(rows: list[dict]) -> str:
    """sha256 of the prompts in order with their categories (what the results were computed on)."""
    text = json.dumps([[r["prompt"], r.get("category")] for r in rows], ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()
