"""run-benchmark: generate (or read) images, score them with the suite's judges, compare the models.

The stages, each resumable:

1. PLAN      the suite's prompts, the generators (``--model``/``--baseline`` sources) and any pre-generated
             images (``--images``), the judges; ``dry_run`` stops here;
2. CHECK     ``OUT/config.json`` records what makes the images (prompts, seeds, images per prompt, each
             generator's source and settings); a changed configuration on the same ``OUT`` is refused, saying
             what changed (new generators and new judges are welcome: nothing is redone);
3. JUDGES    built before any generation, so a judge whose weights are missing fails in seconds;
4. GENERATE  ``OUT/images/<model>/``: PNGs and a manifest appended image by image (a killed run resumes);
5. SCORE     one `rewardbench.Scorer` over every model's images (``OUT/manifest.jsonl``; group rewards see
             the images of one (model, prompt)), results in ``OUT/scores/<key>.parquet`` (resumable; a new
             judge set or a new model gets its own file, the images are reused);
6. REPORT    statistics (`rewardbench.benchmarks.stats`) and the reports (`report`, `plots`).

Example (offline, CPU: the tiny random pipeline with two weight seeds, a JPEG judge)::

    >>> import tempfile
    >>> run = BenchmarkRun(suite="fairness", out=tempfile.mkdtemp(), models=("ft=tiny:1",), baseline="tiny",
    ...                    limit=2, images_per_prompt=2, judges=("jpeg-compressibility",), progress=False,
    ...                    generation=GenerationSettings(steps=2, resolution=32), n_boot=200, plots=False)
    >>> result = run_benchmark(run)
    >>> result.summary["images"], sorted(result.rows["metric"].unique())
    (8, ['mean', 'win_rate'])
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .checks import check_group_sizes, check_suite_prompts
from .generators import DiffusersGenerator, GenerationSettings, generate_images, read_pregenerated, seed_for, slug
from .suite import BenchmarkSuite, load_benchmark_suite, prompts_hash, resolve_judge_config, resolve_prompts

CONFIG_VERSION = 1


class ConfigChangedError(ValueError):
    """``OUT`` holds a run made with another configuration."""


@dataclasses.dataclass(frozen=True)
class BenchmarkRun:
    """Everything a run-benchmark invocation asks for (the CLI fills it; see ``rewardbench run-benchmark --help``)."""

    out: str
    suite: str | None = None  # a built-in suite name or a YAML path; None: only --images and --judges
    models: tuple[str, ...] = ()  # generators: "[NAME=]SOURCE" (see benchmarks.pipelines.parse_source)
    baseline: str | None = None  # a model's name, or a generator "[NAME=]SOURCE"
    images: str | None = None  # pre-generated images: a manifest (any number of models) or a folder
    image_prompts: str | None = None  # prompts file for an --images folder
    paths: Mapping[str, str] = dataclasses.field(default_factory=dict)  # prompt source -> local copy
    limit: int | None = None  # at most N prompts per prompt source
    images_per_prompt: int | None = None  # default: the suite's
    judges: tuple[str, ...] | None = None  # default: the suite's
    weights: Mapping[str, str] = dataclasses.field(default_factory=dict)
    judge_config: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    random_weights: bool = False  # judges with random weights (tests only; labelled everywhere)
    # score group judges on (model, prompt) groups smaller than they measure even when every group is, and count
    # those groups in the statistics (marked everywhere); without it such a run is refused, and smaller groups
    # among others are marked and left out
    allow_small_groups: bool = False
    generation: GenerationSettings = GenerationSettings()
    seed: int = 0  # base of the per-(prompt, index) noise seeds
    score_batch_size: int = 16
    generate_replicas: int = 1  # generator replicas, one per GPU, on Ray (benchmarks/replicas.py); same images
    score_device: str | None = None
    score_dtype: str | None = None
    num_workers: int = 2
    tie_tol: float = 0.0
    n_boot: int = 2000
    plots: bool = True
    progress: bool = True
    to_leaderboard: str | None = None  # append the results to this board (real weights only)
    command: str | None = None  # the command line, recorded with board rows

    @classmethod
    def from_options(cls, *, device: str | None = None, **options: Any) -> BenchmarkRun:
        """A run from options named as its fields, those of `GenerationSettings` prefixed ``gen_``, and one
        ``device`` for generation and judges (how ``rewardbench run-benchmark`` fills it).

        >>> run = BenchmarkRun.from_options(out="bench", suite="drawbench", gen_steps=4, device="cpu")
        >>> run.generation.steps, run.generation.device, run.score_device
        (4, 'cpu', 'cpu')
        """
        gen = {f.name: options.pop(f"gen_{f.name}") for f in dataclasses.fields(GenerationSettings)
               if f"gen_{f.name}" in options}
        return cls(**options, score_device=device, generation=GenerationSettings(**{"device": device, **gen}))


@dataclasses.dataclass
class Plan:
    """What a run will do (``--dry-run`` prints it)."""

    suite: BenchmarkSuite | None
    prompts: list[dict] | None
    generators: list[DiffusersGenerator]
    pregenerated: Any  # DataFrame or None
    models: list[str]
    baseline: str
    judges: list[str]
    group_judges: list[str]
    images_per_prompt: int
    judge_config: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # the suite's, then --config
    # group judge -> {"groups": smaller than it measures, "of": groups it scores, "min": images it measures}
    small_groups: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    # pre-generated images with a suite: are their prompts the suite's (`check_suite_prompts`)
    prompt_check: dict[str, Any] | None = None
    notes: list[str] = dataclasses.field(default_factory=list)  # warnings, shown once by whoever runs the plan

    def counts(self) -> dict[str, int]:
        """Images per model (to generate, or pre-generated)."""
        out = {g.name: len(self.prompts) * self.images_per_prompt for g in self.generators}
        if self.pregenerated is not None:
            out.update(self.pregenerated.groupby("model", sort=False).size().astype(int).to_dict())
        return out

    def describe(self) -> str:
        lines = [f"suite: {self.suite.name if self.suite else '(none: pre-generated images only)'}"]
        if self.prompts is not None:
            cats = {r["category"] for r in self.prompts if r["category"] is not None}
            lines.append(f"prompts: {len(self.prompts)} from {', '.join(s.prompt_set for s in self.suite.prompts)}"
                         + (f" ({len(cats)} categories)" if cats else ""))
        counts = self.counts()
        for g in self.generators:
            lines.append(f"generate {counts[g.name]} images ({self.images_per_prompt} per prompt) with {g.name}: "
                         f"{g.source.describe()}" + ("  [random weights]" if g.random_weights else ""))
        if self.pregenerated is not None:
            for m, n in self.pregenerated.groupby("model", sort=False).size().items():
                lines.append(f"pre-generated: {n} images of {m}")
        lines.append(f"baseline: {self.baseline}")
        lines.append(f"judges: {', '.join(self.judges)}" + (f" (group rewards: {', '.join(self.group_judges)})"
                                                            if self.group_judges else ""))
        for judge, options in self.judge_config.items():
            lines.append(f"  {judge}: " + ", ".join(f"{k}={v}" for k, v in options.items()))
        total = sum(counts.values())
        lines.append(f"total: {sum(counts[g.name] for g in self.generators)} images to generate, {total} images x "
                     f"{len(self.judges)} judges to score")
        lines += [f"warning: {n}" for n in self.notes]
        return "\n".join(lines)


def _split_name(text: str) -> tuple[str | None, str]:
    name, eq, source = text.partition("=")
    if eq and name.strip() and "/" not in name and "+" not in name:
        return name.strip(), source.strip()
    return None, text.strip()


def make_plan(run: BenchmarkRun) -> Plan:
    """Resolves the suite, prompts, generators, pre-generated images and judges (loads no model)."""
    from rewardbench.registry import REGISTRY

    suite = load_benchmark_suite(run.suite) if run.suite else None
    judges_in = list(run.judges) if run.judges else list(suite.judges) if suite else []
    if not judges_in:
        raise ValueError("no judges: name a --suite or give --judges")
    judges = [REGISTRY.canonical(j) for j in judges_in]  # UnknownRewardError with "did you mean"
    if len(set(judges)) != len(judges):
        raise ValueError(f"a judge is listed twice: {judges_in}")
    ipp = run.images_per_prompt or (suite.images_per_prompt if suite else 1)
    pre = read_pregenerated(run.images, run.image_prompts) if run.images else None
    pre_models = list(dict.fromkeys(pre["model"])) if pre is not None else []
    specs = [_split_name(m) for m in run.models]
    baseline = None
    if run.baseline:
        bname, bsource = _split_name(run.baseline)
        known = pre_models + [n or s for n, s in specs]
        if (bname or bsource) in known and bname is None:
            baseline = bsource
        else:
            specs.append((bname, bsource))
            baseline = bname or bsource
    gens = [DiffusersGenerator(n or s, s, run.generation) for n, s in specs]
    names = pre_models + [g.name for g in gens]
    if len(set(names)) != len(names):
        raise ValueError(f"two models share a name: {names}; name them with NAME=SOURCE")
    if not names:
        raise ValueError("nothing to compare: give --model/--baseline generators or --images")
    if baseline is None:
        if len(names) > 1:
            raise ValueError(f"--baseline is required with several models ({', '.join(names)}): name one of them, "
                             "or a generator to compare against")
        baseline = names[0]
    if run.generate_replicas > 1 and not gens:
        raise ValueError(f"--generate-replicas {run.generate_replicas}: nothing is generated in this run (only "
                         "--images); leave it out, or name a --model/--baseline generator")
    prompts, notes, check = None, [], None
    if gens:
        if suite is None:
            raise ValueError("generating images needs a --suite (its prompts)")
        prompts = resolve_prompts(suite, run.paths, run.limit)
    if suite is not None and pre is not None:
        check = check_suite_prompts(suite, pre, run.paths, run.images)
        notes += check.pop("notes")
        if prompts is None and "category" not in pre.columns and check["suite_prompts"] is not None:
            # categories (and per-source judges) of the suite's prompts, joined by prompt text
            prompts = resolve_prompts(suite, run.paths, run.limit)
    group = [j for j in judges if REGISTRY.spec(j).granularity == "group"]
    config: dict[str, dict[str, Any]] = {}  # the suite's options for its judges, overridden key by key by --config
    # a judge --judges left out: dropped; "{path:SET}" values: that prompt source's file
    for name, options in (resolve_judge_config(suite, run.paths) if suite else {}).items():
        if (c := REGISTRY.canonical(name)) in judges:
            config.setdefault(c, {}).update(options)
    for name, options in run.judge_config.items():
        if (c := REGISTRY.canonical(name)) not in judges:
            raise ValueError(f"--config {name}: {name!r} is not among the judges of this run ({', '.join(judges)})")
        config.setdefault(c, {}).update(options)
    small = check_group_sizes(group, prompts, gens, pre, ipp, run.allow_small_groups, notes)
    from rewardbench.preflight import check_reward_options

    check_reward_options(judges, config=config)  # every --config key and value a judge takes (UsageError)
    if run.to_leaderboard:  # what the real run refuses once the judges are loaded, refused here for --dry-run too
        _refuse_random(run.to_leaderboard, [j for j in judges if run.random_weights and REGISTRY.spec(j).weights],
                       [g.name for g in gens if g.random_weights])
    return Plan(suite, prompts, gens, pre, names, baseline, judges, group, ipp, config, small, check, notes)


# -- the configuration recorded in OUT -------------------------------------------------------------

def _config(plan: Plan, run: BenchmarkRun) -> dict[str, Any]:
    cfg: dict[str, Any] = {"version": CONFIG_VERSION}
    if plan.prompts is not None:
        cfg.update(suite=plan.suite.name, prompts_sha256=prompts_hash(plan.prompts), n_prompts=len(plan.prompts),
                   images_per_prompt=plan.images_per_prompt, seed=run.seed)
    if plan.pregenerated is not None:
        from rewardbench.data import open_source

        src = Path(run.images)
        cfg["pregenerated"] = (open_source(src).identity() if src.is_file() else
                               {"folder": str(src.resolve()), "images": len(plan.pregenerated)})
    cfg["generators"] = {g.name: g.describe() for g in plan.generators}
    return cfg


def _flat(d: Mapping, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check_config(out: Path, new: dict[str, Any]) -> dict[str, Any]:
    """Compare with ``out/config.json``: a changed setting raises `ConfigChangedError` naming each change;
    generators new to ``out`` are added. Returns the merged configuration (not yet written)."""
    f = out / "config.json"
    if not f.is_file():
        return new
    old = json.loads(f.read_text())
    common = {k: v for k, v in new.items() if k != "generators"}
    oldc = {k: v for k, v in old.items() if k != "generators"}
    o, n = _flat(oldc), _flat(common)
    changes = [f"{k}: {o.get(k, '(unset)')!r} -> {n.get(k, '(unset)')!r}" for k in sorted(set(o) | set(n))
               if o.get(k) != n.get(k)]
    for name, desc in new["generators"].items():
        if name in old.get("generators", {}):
            og, ng = _flat(old["generators"][name]), _flat(desc)
            changes += [f"model {name}: {k}: {og.get(k)!r} -> {ng.get(k)!r}" for k in sorted(set(og) | set(ng))
                        if og.get(k) != ng.get(k)]
    if changes:
        raise ConfigChangedError(f"{out} holds a run with another configuration ({'; '.join(changes)}). Re-run "
                                 "with the same options to resume it, or use a new --out.")
    merged = dict(new)
    merged["generators"] = {**old.get("generators", {}), **new["generators"]}
    return merged


# -- stages --------------------------------------------------------------------------------------

def build_scorer(plan: Plan, run: BenchmarkRun):
    """The judges, loaded before any generation (missing weights fail here, in seconds). Random weights are
    seeded, so a resumed run builds the same ones."""
    import torch

    from rewardbench.harness import Scorer

    torch.manual_seed(run.seed)
    return Scorer(plan.judges, batch_size=run.score_batch_size, device=run.score_device, dtype=run.score_dtype,
                  num_workers=run.num_workers, pretrained=not run.random_weights, weights=dict(run.weights),
                  reward_config={k: dict(v) for k, v in plan.judge_config.items()}, progress=run.progress)


def _generate(plan: Plan, run: BenchmarkRun, out: Path) -> tuple[list[dict], int]:
    items = [{"prompt_id": p["prompt_id"], "prompt": p["prompt"], "index": i,
              "seed": seed_for(p["prompt"], i, run.seed)} for p in plan.prompts for i in range(plan.images_per_prompt)]
    category = {p["prompt_id"]: p["category"] for p in plan.prompts}
    rows, n_new = [], 0
    for g in plan.generators:
        folder = out / "images" / slug(g.name)
        if run.generate_replicas > 1 and isinstance(g, DiffusersGenerator):
            from .replicas import ReplicatedGenerator

            g = ReplicatedGenerator(g, run.generate_replicas)
        try:
            done, new = generate_images(g, items, folder, progress=run.progress)
        finally:
            getattr(g, "close", lambda: None)()
        n_new += new
        for r in done:
            rows.append({"image": str((folder / r["file"]).relative_to(out)), "prompt": r["prompt"], "model": g.name,
                         "index": r["index"], "seed": r["seed"], "category": category[r["prompt_id"]],
                         "prompt_id": r["prompt_id"]})
    return rows, n_new


def _manifest(plan: Plan, generated: list[dict], out: Path):
    """Every model's images in one table (written as ``OUT/manifest.jsonl``, the Scorer's input): generated images
    with their ``seed`` and the suite's ``prompt_id``, images made beforehand with their manifest's own columns.
    ``group`` is the (model, prompt) an image belongs to; ``judges`` lists the judges of the image's prompt source."""
    import pandas as pd

    df = pd.DataFrame(generated, columns=["image", "prompt", "model", "index", "seed", "category", "prompt_id"])
    if plan.pregenerated is not None:
        df = pd.concat([plan.pregenerated, df], ignore_index=True) if len(df) else plan.pregenerated.copy()
    by_prompt = {p["prompt"]: p for p in plan.prompts} if plan.prompts is not None else {}
    if "category" not in df.columns or df["category"].isna().all():
        df["category"] = [by_prompt[p]["category"] if p in by_prompt else None for p in df["prompt"]]
    df["judges"] = [",".join(by_prompt[p]["judges"]) if p in by_prompt and by_prompt[p]["judges"] else ""
                    for p in df["prompt"]]
    df["group"] = df["model"] + " :: " + df["prompt"]
    _write_if_changed(out / "manifest.jsonl", df.to_json(orient="records", lines=True, force_ascii=False))
    # the Scorer's input: only what it reads, in the same row order (its resume key is the row position)
    _write_if_changed(out / "scoring_input.jsonl",
                      df[["image", "prompt", "group"]].to_json(orient="records", lines=True, force_ascii=False))
    return df


def judged_prompts(manifest) -> list[dict]:
    """The prompts actually judged, in the manifest's order, with their categories (`suite.prompts_hash` of them is
    results.json's prompts hash; for generated images alone it is the suite's prompts hash)."""
    first = manifest.drop_duplicates("prompt")
    cats = first["category"] if "category" in first else [None] * len(first)
    return [{"prompt": p, "category": None if c is None or c != c else c} for p, c in zip(first["prompt"], cats)]


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def _scores_key(run: BenchmarkRun, plan: Plan, out: Path) -> str:
    """Names the scores file of this judge set on these images: new judges or new models get a file of their
    own (the images are reused; an older file stays for the judge set it was made with)."""
    key = json.dumps({"judges": plan.judges, "weights": dict(run.weights),
                      "config": {k: dict(v) for k, v in plan.judge_config.items()},
                      "random": run.random_weights, "seed": run.seed,
                      "input": hashlib.sha256((out / "scoring_input.jsonl").read_bytes()).hexdigest()},
                     sort_keys=True, default=str)
    return hashlib.sha256(key.encode()).hexdigest()[:12]


@dataclasses.dataclass
class BenchmarkResult:
    """What `run_benchmark` returns: the tidy results rows, the per-image scores, and where the reports are."""

    out: Path
    rows: Any  # DataFrame: one row per (model, judge, category, metric)
    scores: Any  # DataFrame: one row per (model, prompt, index, judge)
    summary: dict[str, Any]


def _check_board_worthy(plan: Plan, scorer, board: str) -> None:
    """A leaderboard takes results of real weights only: refused before any image is generated (the judges' weights
    as loaded; `make_plan` refuses what the options already say, so that ``--dry-run`` refuses it too)."""
    _refuse_random(board, [s.name for s in scorer.slots if any(p.random for p in s.provenance)],
                   [g.name for g in plan.generators if g.random_weights])


def _refuse_random(board: str, judges: list[str], gens: list[str]) -> None:
    if judges or gens:
        what = "; ".join(x for x in (f"judges {', '.join(judges)}" if judges else "",
                                     f"generators {', '.join(gens)}" if gens else "") if x)
        raise ValueError(f"--to-leaderboard {board}: leaderboards take results of real weights only, and "
                         f"this run has random weights ({what}); drop --to-leaderboard for a smoke run")


def run_benchmark(run: BenchmarkRun) -> BenchmarkResult:
    """Plan, check, load the judges, generate, score, compare and report (the module docstring has the stages)."""
    import warnings

    from rewardbench.preflight import plan_run

    from .group_report import small_group_counts
    from .report import tidy_scores, write_reports

    plan = make_plan(run)
    for note in plan.notes:
        warnings.warn(note, UserWarning, stacklevel=2)
    from rewardbench.outputs import check_writable

    out = check_writable(run.out, "out", folder=True)  # the one rule for outputs: before any judge loads
    config = check_config(out, _config(plan, run))
    scorer = build_scorer(plan, run)
    try:
        if run.to_leaderboard:
            _check_board_worthy(plan, scorer, run.to_leaderboard)
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False))
        if plan.prompts is not None:
            (out / "prompts.jsonl").write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in plan.prompts),
                                               encoding="utf-8")
        generated, n_new = _generate(plan, run, out) if plan.generators else ([], 0)
        manifest = _manifest(plan, generated, out)
        key = _scores_key(run, plan, out)
        (out / "scores").mkdir(exist_ok=True)
        (out / "scores" / f"{key}.json").write_text(json.dumps({"judges": plan.judges}, indent=2))
        # the plan above said what there is to say about small groups: the Scorer's own notes stay unshown
        scoring = plan_run({s.name: s.spec for s in scorer.slots}, out / "scoring_input.jsonl", group_by="group",
                           out=out / "scores" / f"{key}.parquet", allow_small_groups=run.allow_small_groups)
        result = scorer.run(scoring)
    finally:
        scorer.close()
    judges = {s.name: {"weights": s.weights_used, "provenance": [p.as_dict() for p in s.provenance],
                       "random_weights": any(p.random for p in s.provenance)} for s in scorer.slots}
    if result.n_failed == len(manifest):
        first = result.failures().head(3)["error"].tolist()
        raise RuntimeError(f"no image could be scored ({result.n_failed} failed), e.g. {first}; the errors are in "
                           f"{out / 'scores'}")
    scores, groups = tidy_scores(manifest, result.table, plan, count_small=run.allow_small_groups)
    for judge, info in small_group_counts(groups, plan, run.allow_small_groups).items():
        judges[judge]["small_groups"] = info  # marked in every table, and in results.json
    from .atoms import atom_rows

    rows = write_reports(out, plan, run, scores, groups, judges, result.summary, prompts=judged_prompts(manifest),
                         atoms=atom_rows(manifest, result.table, plan.judges))
    if run.plots:
        from .plots import write_plots

        write_plots(out / "plots", rows, scores, plan, judges)
    board = None
    if run.to_leaderboard:
        from rewardbench.leaderboards.board import append_rows, rows_from_stats

        suite = plan.suite.name if plan.suite else "pre-generated"
        board = str(append_rows(run.to_leaderboard, rows_from_stats(
            rows, suite=suite, weights={s.name: s.provenance for s in scorer.slots}, command=run.command)))
    summary = {"images": int(len(manifest)), "generated_now": n_new, "leaderboard": board,
               "scored_now": result.summary["scored_now"], "failed": result.n_failed, "out": str(out)}
    return BenchmarkResult(out, rows, scores, summary)
