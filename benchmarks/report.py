"""run-benchmark's outputs: the tidy tables, the cross-reward table, ``results.json`` and ``report.md``.

Written into the run's folder:

    scores.parquet / .csv        one row per (model, prompt, index, judge): the per-image scores the statistics use,
                                 with the image's path and the manifest's own columns (seed, prompt_id, ...);
                                 group rewards: one row per (model, prompt), index 0, no image (groups too small
                                 for the judge left out unless --allow-small-groups)
    group_rewards.csv            group rewards per (model, prompt): images, faces found and measured, empty, too
                                 small, and the judge's note (`rewardbench.benchmarks.group_report`)
    results.parquet / .csv       one row per (model, judge, category, metric): value, CI, n, wins/losses/ties,
                                 p-value, the weights each judge used (`stats.ROW_COLUMNS` and more)
    cross_reward.csv             models x judges: mean score and win rate over the baseline
    results.json                 suite, prompts hash, seeds, versions, generators, judges' weights, and the rows
    report.md                    what a person reads first
    plots/*.png                  see `rewardbench.benchmarks.plots`

Every table and plot names the judges whose weights are random ("(random weights)") and the generators
with random weights: their numbers test the machinery, they say nothing about image quality.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pandas as pd

from rewardbench.leaderboards.render import md_text

from . import stats
from .group_report import fill_mean_rows, group_scores, group_section, small_groups_warning

RANDOM = " (random weights)"
SMALL_GROUPS = " (small groups)"
CORE = ["model", "prompt", "index", "category"]  # a tidy score row's keys; then judge, score, image, the manifest's own
INTERNAL = ("image", "judges", "group")  # manifest columns run-benchmark writes for itself (image goes after score)


def judge_label(judge: str, judges: dict[str, dict]) -> str:
    """The judge's name, marked when its weights are random and when some of its groups were too small to measure."""
    info = judges.get(judge, {})
    return judge + (RANDOM if info.get("random_weights") else "") + (SMALL_GROUPS if info.get("small_groups") else "")


def tidy_scores(manifest: pd.DataFrame, table: pd.DataFrame, plan,
                count_small: bool = False) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The Scorer's table (one row per manifest row, same order) as tidy scores for `rewardbench.benchmarks.stats`
    (with each image's path and the manifest's own columns), and the group rewards per (model, prompt)
    (`rewardbench.benchmarks.group_report.group_scores`: a group judge's groups too small to measure are left out
    of the scores unless ``count_small``). A judge scores only the prompts of its sources."""
    from rewardbench.data import cell_value

    manifest = manifest.reset_index(drop=True)
    extras = [c for c in manifest.columns if c not in (*CORE, *INTERNAL)]
    base = manifest[[*CORE, "image"]].join(manifest[extras].map(cell_value))
    applies = manifest["judges"]
    order = [*CORE, "judge", "score", "image", *extras]
    parts, groups = [], []
    for judge in plan.judges:
        mask = ((applies == "") | applies.str.split(",").apply(lambda js, j=judge: j in js)).to_numpy()
        sub = base[mask].assign(judge=judge, score=table.loc[mask, judge].astype(float).to_numpy())
        if judge in plan.group_judges:
            g, sub = group_scores(sub, table.loc[mask].reset_index(drop=True), judge, extras, count_small)
            groups.append(g)
        parts.append(sub[order])
    scores = pd.concat(parts, ignore_index=True)
    if scores["category"].isna().all():
        scores = scores.drop(columns="category")
    else:
        scores["category"] = scores["category"].fillna("uncategorised").astype(str)
    return scores, (pd.concat(groups, ignore_index=True) if groups else None)


def compute_rows(scores: pd.DataFrame, groups: pd.DataFrame | None, plan, run, judges: dict[str, dict]) -> pd.DataFrame:
    """The statistics as tidy rows (`rewardbench.benchmarks.stats.result_rows`), with each judge's weights, and on
    group rewards' mean rows what their groups measured (`rewardbench.benchmarks.group_report.fill_mean_rows`:
    groups, measured, empty, too small, faces found as ``count``, faces measured)."""
    from rewardbench.registry import get_spec

    present = [j for j in plan.judges if j in set(scores["judge"])]
    hib = {j: get_spec(j).higher_is_better for j in present}
    # a mean with no spread across prompts is bounded by the judge's declared range (stats.mean_scores)
    bounds = {j: get_spec(j).range for j in present if None not in get_spec(j).range}
    # judge by judge: a judge that scores only some prompt sources has only their categories
    rows = pd.concat([stats.result_rows(scores[scores["judge"] == j], plan.baseline, judges=[j], higher_is_better=hib,
                                        tie_tol=run.tie_tol, by_category="category" in scores.columns, bounds=bounds,
                                        n_boot=run.n_boot, seed=0) for j in present], ignore_index=True)
    if groups is not None:  # a group reward's mean row: the images behind it, and what its groups measured
        fill_mean_rows(rows, groups, stats.ALL, run.allow_small_groups)
    rows["suite"] = plan.suite.name if plan.suite else None
    rows["judge_weights"] = rows["judge"].map(lambda j: judges.get(j, {}).get("weights"))
    rows["judge_random_weights"] = rows["judge"].map(lambda j: bool(judges.get(j, {}).get("random_weights")))
    # groups smaller than the judge measures, over the run (0: none); per model on the mean rows (n_groups_too_small)
    rows["judge_small_groups"] = rows["judge"].map(lambda j: (judges.get(j, {}).get("small_groups") or {}).get(
        "groups", 0))
    return rows


def cross_reward(rows: pd.DataFrame) -> pd.DataFrame:
    """Models x judges, suite-wide: ``<judge>`` = mean score, ``<judge> win_rate`` = win rate over the baseline."""
    allc = rows[rows["category"] == stats.ALL]
    mean = allc[allc["metric"] == "mean"].pivot(index="model", columns="judge", values="value")
    win = allc[allc["metric"] == "win_rate"].pivot(index="model", columns="judge", values="value")
    out = mean.copy()
    for j in win.columns:
        out[f"{j} win_rate"] = win[j]
    return out.reset_index()


def _f(v, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return "0" if abs(v) < 1e-9 else f"{v:.{digits}g}"  # e.g. a log-strength that is 0 up to rounding
    return str(v)


def _pct(v) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"


def _ci(r, pct: bool = False) -> str:
    fmt = _pct if pct else _f
    return f"[{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]"


def _note(r) -> str | None:
    note = r.get("note")
    return note if isinstance(note, str) and note else None


def _estimate(r, pct: bool = False) -> str:
    """A value with its interval, and the row's note (no spread across prompts) where it has one."""
    fmt = _pct if pct else _f
    out = fmt(r["value"])
    if not (_missing(r["ci_low"]) and _note(r)):
        out += f" {_ci(r, pct)}"
    return out + (f" ({_note(r)})" if _note(r) else "")


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _table(header: list[str], body: list[list[str]]) -> list[str]:
    """A markdown table; every cell is text (`md_text`): a model or judge name never renders as markup."""
    out = ["| " + " | ".join(map(md_text, header)) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return out + ["| " + " | ".join(md_text(c) for c in row) + " |" for row in body]


def _warnings(plan, judges: dict[str, dict]) -> list[str]:
    lines = []
    rnd = [md_text(j) for j in plan.judges if judges.get(j, {}).get("random_weights")]
    if rnd:
        lines.append(f"> **Judges with random weights: {', '.join(rnd)}.** Their scores are not meaningful: this "
                     "run tests the machinery, it does not measure image quality.")
    rgen = [md_text(g.name) for g in plan.generators if g.random_weights]
    if rgen:
        lines.append(f"> **Generators with random weights: {', '.join(rgen)}** (offline smoke pipelines): their "
                     "images are noise, not pictures.")
    lines += small_groups_warning(plan, judges)
    return lines + ([""] if lines else [])


def markdown(rows: pd.DataFrame, plan, run, judges: dict[str, dict], groups: pd.DataFrame | None,
             scoring: dict[str, Any], extra: list[str] = ()) -> str:
    """The report a person reads first; ``extra``: more sections' lines, before the judges."""
    from rewardbench.registry import get_spec

    allc = rows[rows["category"] == stats.ALL]
    title = md_text(plan.suite.name) if plan.suite else "pre-generated images"
    others = [md_text(m) for m in plan.models if m != plan.baseline]
    lines = [f"# Benchmark: {title} — {', '.join(others) or md_text(plan.baseline)} vs {md_text(plan.baseline)}", ""]
    lines += _warnings(plan, judges)
    lines += _prompt_lines(plan, run)
    n_prompts = len(plan.prompts) if plan.generators and plan.prompts else \
        rows.loc[(rows["metric"] == "mean") & (rows["category"] == stats.ALL), "n_prompts"].max()
    seeds = (f"{plan.images_per_prompt} image(s) per prompt per generated model, noise seeds pinned per (prompt, "
             f"image index) (base seed {run.seed}), so every model starts from the same noise" if plan.generators
             else "")
    pre = ("pre-generated images paired by prompt and index (the manifest's index or seed column, else their order)"
           if plan.pregenerated is not None else "")
    lines += [f"{int(n_prompts)} prompts; " + "; ".join(x for x in (seeds, pre) if x) + ". "
              "Win rate = (wins + ties/2) / pairs, a model's image paired with the baseline's of the same prompt and "
              "index; "
              f"ties are |difference| <= {run.tie_tol:g}; p = exact two-sided sign test on wins vs losses (ties "
              "dropped).", "",
              f"95% intervals, over prompts (images of one prompt are not independent; {run.n_boot} bootstrap "
              f"resamples), never more certain than the number of prompts allows. Win rates: {stats.WIN_RATE_METHOD}. "
              f"Means: {stats.MEAN_METHOD}.", ""]
    wr = allc[allc["metric"] == "win_rate"]
    if len(wr):
        lines += [f"## Win rate over {md_text(plan.baseline)}", ""]
        lines += _table(["model", "judge", "win rate [95% CI]", "wins / losses / ties", "p (sign test)", "pairs",
                         "prompts"],
                        [[r["model"], judge_label(r["judge"], judges), _estimate(r, pct=True),
                          f"{int(r['wins'])} / {int(r['losses'])} / {int(r['ties'])}", _f(r["p_value"], 3),
                          int(r["n_pairs"]), int(r["n_prompts"])] for _, r in wr.iterrows()]) + [""]
    cross = cross_reward(rows)
    present = [j for j in plan.judges if j in cross.columns]
    arrows = {j: "↑" if get_spec(j).higher_is_better else "↓" for j in present}
    lines += ["## Cross-reward table (mean score; win rate over the baseline)", "",
              "Rows are models, columns judges (↑ higher is better, ↓ lower): a model tuned for one judge that "
              "loses on the others shows reward hacking and the alignment tax.", ""]
    body = []
    for _, r in cross.iterrows():
        cells = []
        for j in present:
            w = r.get(f"{j} win_rate")
            cells.append(_f(r[j]) + (f" ({_pct(w)})" if r["model"] != plan.baseline and w is not None
                                     and not (isinstance(w, float) and math.isnan(w)) else ""))
        body.append([r["model"] + (" (baseline)" if r["model"] == plan.baseline else "")] + cells)
    lines += _table(["model"] + [f"{judge_label(j, judges)} {arrows[j]}" for j in present], body) + [""]
    mean = allc[allc["metric"] == "mean"]
    lines += ["## Mean scores", ""]
    lines += _table(["judge", "model", "mean [95% CI]", "images", "prompts", "not scored"],
                    [[judge_label(r["judge"], judges), r["model"], _estimate(r),
                      _f(r["n_images"]), int(r["n_prompts"]), int(r["dropped_nan"])]
                     for _, r in mean.iterrows()]) + [""]
    lines += group_section(groups, plan, lambda j: judge_label(j, judges))
    bt = allc[allc["metric"] == "bt_log_strength"]
    if len(bt):
        lines += ["## Ranking (Bradley–Terry on every pairwise outcome)", "",
                  f"Maximum likelihood with a prior of {stats.BT_PRIOR:g} virtual tie per compared pair (half a win "
                  "each way, added to the summed outcomes), which keeps the strengths finite; 95% intervals by "
                  "bootstrap over prompts. Where the outcomes separate the models (a model won or lost every "
                  "comparison, or groups never beat a higher group), the data do not identify the strengths: the "
                  "prior alone sets the gap, so the table says so instead of printing a point; the rank is the "
                  "observed order.", ""]
        bt = bt.sort_values(["judge", "value"], ascending=[True, False])
        rank = bt.groupby("judge")["value"].rank(ascending=False, method="min").astype(int)  # 1 = strongest
        lines += _table(["judge", "rank", "model", "log-strength [95% CI]", "comparisons"],
                        [[judge_label(r["judge"], judges), rank[i], r["model"],
                          _note(r) or f"{_f(r['value'])} {_ci(r)}", int(r["n_pairs"])] for i, r in bt.iterrows()])
        lines += [""]
    lines += _category_section(rows, plan, judges)
    lines += list(extra)
    lines += ["## Judges", ""]
    lines += _table(["judge", "category", "higher is better", "granularity", "weights"],
                    [[judge_label(j, judges), get_spec(j).category, "yes" if get_spec(j).higher_is_better else "no",
                      get_spec(j).granularity, judges.get(j, {}).get("weights", "–")] for j in plan.judges]) + [""]
    gens = [[g.name, g.source.describe(), f"{g.settings.steps} steps, CFG {g.settings.guidance_scale:g}, "
             f"{g.settings.resolution}px, {g.settings.dtype or 'float32'}"] for g in plan.generators]
    if plan.pregenerated is not None:
        gens += [[m, "pre-generated images", f"{n} images"] for m, n in
                 plan.pregenerated.groupby("model", sort=False).size().items()]
    lines += ["## Models", ""] + _table(["model", "source", "settings"], gens) + [""]
    lines += [f"Scoring: {scoring.get('rows')} images, {scoring.get('failed')} failed (their scores are left out and "
              "counted as 'not scored').", "",
              "Files: `results.csv`/`.parquet` (every number here, tidy), `scores.csv` (per image), "
              "`cross_reward.csv`, `results.json` (provenance), `plots/`.", ""]
    return "\n".join(lines)


def _prompt_lines(plan, run) -> list[str]:
    """What the prompts are: the suite's (its description), or, for images made beforehand, the manifest's when they
    are not the suite's or could not be checked to be (`rewardbench.benchmarks.checks.check_suite_prompts`)."""
    suite, check = plan.suite, plan.prompt_check or {}
    if suite is None:
        return []
    overridden = bool(run.judges and tuple(plan.judges) != tuple(suite.judges))
    name = md_text(suite.name)  # names and prompts as text; the suite's description is its author's markdown
    judges = (f"judges chosen for this run: {', '.join(map(md_text, plan.judges))} (the suite's: "
              f"{', '.join(map(md_text, suite.judges))})")
    if check and check.get("suite_prompts") is None:
        what = (f"The manifest's {check['prompts']} prompts, given with the {name} suite, whose prompts could "
                "not be read: whether they are its prompts was not checked")
    elif check.get("outside"):
        what = (f"The manifest's {check['prompts']} prompts, {check['outside']} of them not prompts of the "
                f"{name} suite (e.g. {md_text(repr(check['examples'][0]))}): the suite names the judges and their "
                "options here, not the prompts")
    else:
        part = f" ({check['prompts']} of its {check['suite_prompts']} prompts)" if check else ""
        if not overridden:
            return [suite.description + part + ".", ""] if suite.description else []
        what = f"Prompts of the {name} suite{part}"
    return [what + (f"; {judges}" if overridden else "") + ".", ""]


def _category_section(rows: pd.DataFrame, plan, judges: dict[str, dict]) -> list[str]:
    cat = rows[rows["category"] != stats.ALL]
    if cat.empty:
        return []
    metric = "win_rate" if (cat["metric"] == "win_rate").any() else "mean"
    sub = cat[cat["metric"] == metric]
    over = "win rate over " + md_text(plan.baseline) if metric == "win_rate" else "mean score"
    lines = [f"## Per category ({over})", ""]
    for model, m in sub.groupby("model", sort=False):
        js = [j for j in plan.judges if j in set(m["judge"])]
        body = []
        for c, g in m.groupby("category", sort=True):
            vals = {r["judge"]: _estimate(r, pct=metric == "win_rate") for _, r in g.iterrows()}
            body.append([c, int(g["n_prompts"].max())] + [vals.get(j, "–") for j in js])
        header = ["category", "prompts"] + [judge_label(j, judges) for j in js]
        lines += [f"**{md_text(model)}**", ""] + _table(header, body)
        lines += [""]
    return lines


def results_json(rows: pd.DataFrame, plan, run, judges: dict[str, dict], scoring: dict[str, Any],
                 prompts: list[dict] | None = None) -> dict[str, Any]:
    """Provenance and results, for a leaderboard to ingest. ``prompts``: the prompts judged (`prompts_hash` of them;
    default the plan's); the seed rule only where images were generated."""
    import platform

    import torch

    import rewardbench
    from rewardbench.registry import get_spec

    from .suite import prompts_hash

    judged = prompts if prompts is not None else plan.prompts
    versions = {"rewardbench": rewardbench.__version__, "torch": torch.__version__, "python": platform.python_version()}
    try:
        import diffusers

        versions["diffusers"] = diffusers.__version__
    except ImportError:  # pragma: no cover - a dependency
        pass
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "suite": plan.suite.as_dict() if plan.suite else None,
        "prompts": {"n": len(judged), "sha256": prompts_hash(judged),
                    "hashed": "the prompts judged, in order, with their categories (suite.prompts_hash)",
                    **({"suite_check": plan.prompt_check} if plan.prompt_check else {})} if judged else None,
        "images_per_prompt": plan.images_per_prompt if plan.generators else None,
        "seeds": {"base_seed": run.seed, "models": [g.name for g in plan.generators],
                  "rule": "seed_for(prompt, index, base_seed): first 63 bits of "
                  "sha256(f'{base_seed}\\x1f{prompt}\\x1f{index}'); noise drawn on the CPU"}
                 if plan.generators else None,  # images made beforehand: their seeds are their makers'
        "allow_small_groups": run.allow_small_groups,
        "baseline": plan.baseline,
        "models": {g.name: g.describe() for g in plan.generators}
                  | ({m: {"kind": "pre-generated", "images": run.images} for m in plan.pregenerated["model"].unique()}
                     if plan.pregenerated is not None else {}),
        "judges": {j: {**judges.get(j, {}), "options": plan.judge_config.get(j, {}),
                       "higher_is_better": get_spec(j).higher_is_better,
                       "granularity": get_spec(j).granularity, "category": get_spec(j).category}
                   for j in plan.judges},
        "statistics": {"tie_tol": run.tie_tol, "n_boot": run.n_boot, "level": 0.95, "bootstrap": "prompts",
                       "intervals": {"win_rate": stats.WIN_RATE_METHOD, "mean": stats.MEAN_METHOD,
                                     "mean_bounds": "each judge's declared range, where finite"},
                       "bradley_terry": {"prior_ties_per_pair": stats.BT_PRIOR,
                                         "prior": f"{stats.BT_PRIOR:g} virtual tie per compared pair (half a win each "
                                                  "way), added to the summed outcomes",
                                         "separation": "strengths not identified when the 'i beat j' graph is not "
                                                       "strongly connected: NaN interval and a note"},
                       "sign_test": "scipy.stats.binomtest, two-sided, ties dropped"},
        "versions": versions,
        "scoring": {k: scoring.get(k) for k in ("rows", "failed", "scored_now", "resumed", "seconds")},
        "rows": json.loads(rows.to_json(orient="records")),
    }


def write_reports(out: Path, plan, run, scores: pd.DataFrame, groups: pd.DataFrame | None, judges: dict[str, dict],
                  scoring: dict[str, Any], prompts: list[dict] | None = None,
                  atoms: pd.DataFrame | None = None) -> pd.DataFrame:
    """Statistics and every output file but the plots; returns the tidy rows. ``prompts``: the prompts judged
    (`rewardbench.benchmarks.run.judged_prompts`), hashed in results.json; ``atoms``: per-atom breakdown rows
    (`rewardbench.benchmarks.atoms.atom_rows`), written to ``atoms.csv`` and reported."""
    rows = compute_rows(scores, groups, plan, run, judges)
    for name, df in (("scores", scores), ("results", rows)):
        df.to_parquet(out / f"{name}.parquet", index=False)
        df.to_csv(out / f"{name}.csv", index=False)
    if groups is not None:
        groups.to_csv(out / "group_rewards.csv", index=False)
    cross_reward(rows).to_csv(out / "cross_reward.csv", index=False)
    (out / "results.json").write_text(json.dumps(results_json(rows, plan, run, judges, scoring, prompts), indent=2,
                                                 ensure_ascii=False, default=str))
    extra = []
    if atoms is not None and len(atoms):
        from .atoms import atom_section

        atoms.to_csv(out / "atoms.csv", index=False)
        extra = atom_section(atoms, lambda j: judge_label(j, judges))
    (out / "report.md").write_text(markdown(rows, plan, run, judges, groups, scoring, extra), encoding="utf-8")
    return rows
