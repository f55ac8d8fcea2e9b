"""The agreement benchmark: how often a reward picks the image people picked, and how often two rewards agree.

`run_agreement` scores every image of a preference set (`agreement_data`) with each reward through
`rewardbench.Scorer`, then measures agreement with the human judgement under the dataset's own protocol
(`agreement_metrics`), with 95% cluster-bootstrap intervals and per-category rows. `reward_agreement`
compares rewards with each other on any scored image set (pairs of images of one prompt). Both return
tidy leaderboard rows (`rewardbench.leaderboards.board.COLUMNS`).

    >>> from rewardbench.benchmarks.agreement_sets import photo_distortion_set
    >>> res = run_agreement(photo_distortion_set(photos=("astronaut", "coffee"), size=64),
    ...                     ["jpeg-incompressibility"], n_boot=200, progress=False)
    >>> res.rows[res.rows.category == "blur"][["subject", "metric", "value", "n"]].to_dict("records")
    [{'subject': 'jpeg-incompressibility', 'metric': 'accuracy', 'value': 1.0, 'n': 2}]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from rewardbench.leaderboards.board import make_row
from rewardbench.provenance import Provenance

from .agreement_data import PreferenceSet, load_preference_set
from .agreement_metrics import (
    PROTOCOLS,
    concordance,
    pair_credit,
    pooled_correlation,
    ratio_estimate,
    tune_tie_threshold,
    within_item_correlation,
)

CORRELATION_NOTE = {
    "kendall_tau": "Kendall tau-b between reward and human order within each item, mean over items",
    "spearman": "Spearman rho between reward and human order within each item, mean over items",
    "spearman_pooled": "Spearman rho over all images (absolute ratings); Fisher-z interval",
    "kendall_pooled": "Kendall tau-b over all images (absolute ratings); Fisher-z interval",
}
REWARD_PAIR_PROTOCOL = "same preference on image pairs of one prompt; 0.5 when either reward ties"


@dataclass
class ScoredSet:
    """Each reward's scores per item (oriented: higher = better) and what produced them."""

    scores: dict[str, list[np.ndarray]]
    weights: dict[str, list[Provenance]]
    higher_is_better: dict[str, bool]
    table: pd.DataFrame  # one row per image: item, position, prompt, one column per reward (raw scores)


@dataclass
class AgreementResult:
    rows: pd.DataFrame  # tidy leaderboard rows
    scored: ScoredSet
    tie_thresholds: dict[str, float]


def image_rewards(rewards: Sequence[str]) -> list[str]:
    """Canonical names; group-level rewards (one value per set of images) cannot order two images."""
    from rewardbench import get_spec

    out = []
    for r in rewards:
        spec = get_spec(r)
        if spec.granularity == "group":
            raise ValueError(f"reward {spec.name!r} scores groups of images (granularity 'group'), so it cannot "
                             f"prefer one image of a pair; use image-level rewards")
        out.append(spec.name)
    return out


def score_set(pset: PreferenceSet, rewards: Sequence[str], *, device=None, dtype=None, batch_size: int = 16,
              pretrained: bool = True, weights: Mapping[str, Any] | None = None,
              reward_config: Mapping[str, Mapping[str, Any]] | None = None, progress: bool = True) -> ScoredSet:
    """Score every image of ``pset`` with ``rewards`` (by registry name) in one `rewardbench.Scorer` run."""
    import rewardbench

    names = image_rewards(rewards)
    rows = [{"image": img, "prompt": it.prompt} for it in pset.items for img in it.images]
    scorer = rewardbench.Scorer(names, batch_size=batch_size, device=device, dtype=dtype, num_workers=0,
                                pretrained=pretrained, weights=weights, reward_config=reward_config,
                                progress=progress)
    try:
        table = scorer.run(rows).table
        used = {s.name: list(s.provenance) for s in scorer.slots}
        hib = {s.name: bool(s.spec.higher_is_better) for s in scorer.slots}
    finally:
        scorer.close()
    sizes = [len(it.images) for it in pset.items]
    table.insert(0, "item", np.repeat([it.id for it in pset.items], sizes))
    table.insert(1, "position", np.concatenate([np.arange(k) for k in sizes]))
    bounds = np.cumsum([0, *sizes])
    scores = {}
    for n in names:
        v = table[n].to_numpy(float) * (1.0 if hib[n] else -1.0)
        scores[n] = [v[bounds[i]:bounds[i + 1]] for i in range(len(sizes))]
    return ScoredSet(scores, used, hib, table.drop(columns=["image"]))


def _estimates(pset, humans, scores, clusters, categories, protocol, threshold, boot):
    """(metric, category, Estimate, protocol text) for one reward."""
    credit = np.array([pair_credit(h, s, protocol, threshold) for h, s in zip(humans, scores)])
    out = []
    for cat in ["all", *sorted({c for c in categories if c is not None})]:
        m = np.ones(len(humans), bool) if cat == "all" else np.array([c == cat for c in categories])
        est = ratio_estimate(credit[m, 0], credit[m, 1], clusters[m], **boot)
        out.append(("accuracy", cat, est))
        if pset.kind in ("ranking", "ratings") or any(len(h) > 2 for h in humans):
            sub_h, sub_s = [h for h, k in zip(humans, m) if k], [s for s, k in zip(scores, m) if k]
            for metric, method in (("kendall_tau", "kendall"), ("spearman", "spearman")):
                out.append((metric, cat, within_item_correlation(sub_h, sub_s, clusters[m], method, **boot)))
            if pset.kind == "ratings":
                h_all, s_all = np.concatenate(sub_h), np.concatenate(sub_s)
                for metric, method in (("spearman_pooled", "spearman"), ("kendall_pooled", "kendall")):
                    out.append((metric, cat, pooled_correlation(h_all, s_all, method)))
    return out


def evaluate(pset: PreferenceSet, scored: ScoredSet, *, protocol: str | None = None,
             tie_threshold: float | Mapping[str, float] | None = None, judge: str | None = None,
             n_boot: int = 2000, seed: int | None = 0, level: float = 0.95, command: str | None = None
             ) -> pd.DataFrame:
    """Tidy rows: accuracy under ``protocol`` (default: the dataset's), plus ``drop-ties`` accuracy when the
    protocol keeps human ties, rank correlations for rankings and ratings; each over all items and per
    category. Items where a reward failed on an image (NaN) are left out for that reward."""
    protocol = protocol or pset.protocol
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    boot = {"n_boot": n_boot, "seed": seed, "level": level}
    judge = judge or pset.extra.get("judge", "human")
    rows = []
    for reward, per_item in scored.scores.items():
        ok = [i for i, s in enumerate(per_item) if np.isfinite(s).all()]
        humans, scores = [pset.items[i].human for i in ok], [per_item[i] for i in ok]
        clusters = np.array([pset.items[i].prompt for i in ok], dtype=object)
        categories = [pset.items[i].category for i in ok]
        thr = tie_threshold.get(reward, 0.0) if isinstance(tie_threshold, Mapping) else (tie_threshold or 0.0)
        protocols = [protocol] + (["drop-ties"] if protocol in ("pickapic", "hpdv2") else [])
        for proto in protocols:
            t = thr if proto in ("pickapic",) else 0.0
            label = f"{proto} (tie threshold {t:g})" if proto in ("pickapic", "drop-ties") else proto
            for metric, cat, est in _estimates(pset, humans, scores, clusters, categories, proto, t, boot):
                if proto != protocol and metric != "accuracy":
                    continue  # correlations do not depend on the tie protocol: once is enough
                rows.append(make_row(
                    subject=reward, judge=judge, suite=pset.name, split=pset.split, category=cat, metric=metric,
                    value=est.value, ci_low=est.ci_low, ci_high=est.ci_high, n=est.n,
                    protocol=label if metric == "accuracy" else CORRELATION_NOTE[metric],
                    weights=scored.weights[reward], command=command))
    return pd.DataFrame(rows)


def run_agreement(dataset: str | PreferenceSet, rewards: Sequence[str], *, split: str | None = None,
                  path=None, limit: int | None = None, protocol: str | None = None,
                  tie_threshold: float | None = None, tune_split: str | None = None, tune_path=None,
                  calibration: PreferenceSet | None = None, command: str | None = None, n_boot: int = 2000,
                  seed: int | None = 0, **score_kw) -> AgreementResult:
    """Load ``dataset`` (a name, a schema file or a `PreferenceSet`), score it with ``rewards`` and measure
    agreement. For the ``pickapic`` protocol, each reward's tie threshold is first picked on a calibration
    set, as PickScore's evaluation does on ``validation_unique``: ``calibration``, or split ``tune_split``
    of the same dataset (from ``tune_path`` when the data is a local copy); otherwise ``tie_threshold``
    (default 0) is used as given."""
    if isinstance(dataset, PreferenceSet):
        pset = dataset
    else:
        from .agreement_sets import BUILTIN_SETS

        if dataset in BUILTIN_SETS:
            pset = BUILTIN_SETS[dataset]()
            pset.items = pset.items[:limit] if limit is not None else pset.items
        else:
            pset = load_preference_set(dataset, split, path=path, limit=limit)
    thresholds: dict[str, float] = {}
    proto = protocol or pset.protocol
    if proto == "pickapic" and calibration is None and tune_split is not None:
        if path is not None and tune_path is None:
            raise ValueError("the data is a local copy: give the calibration split's copy too (--tune-data)")
        calibration = load_preference_set(pset.name, tune_split, path=tune_path, limit=limit)
    if proto == "pickapic" and calibration is not None:
        cs = score_set(calibration, rewards, **score_kw)
        for r, per_item in cs.scores.items():
            ok = [i for i, s in enumerate(per_item) if np.isfinite(s).all()]
            thresholds[r] = tune_tie_threshold([calibration.items[i].human for i in ok], [per_item[i] for i in ok])
    scored = score_set(pset, rewards, **score_kw)
    if not thresholds:
        thresholds = {r: float(tie_threshold or 0.0) for r in scored.scores}
    rows = evaluate(pset, scored, protocol=proto, tie_threshold=thresholds, n_boot=n_boot, seed=seed,
                    command=command)
    if proto == "pickapic" and calibration is not None:
        where = tune_split or calibration.split
        rows["protocol"] = rows["protocol"].str.replace(r"^(pickapic \(tie threshold [0-9.]+)\)",
                                                        rf"\1, tuned on {where})", regex=True)
    return AgreementResult(rows, scored, thresholds)


# -- reward against reward ------------------------------------------------------------------------------


def image_rows(pset: PreferenceSet) -> list[dict]:
    """Every distinct image of a preference set once (an image shared by several pairs counts once), as
    Scorer rows with its item's prompt, for reward-vs-reward comparisons on the same images."""
    seen, rows = set(), []
    for it in pset.items:
        for img in it.images:
            key = img if isinstance(img, str) else id(img)
            if key not in seen:
                seen.add(key)
                rows.append({"image": img, "prompt": it.prompt})
    return rows


def reward_agreement(table: pd.DataFrame, rewards: Sequence[str], *, higher_is_better: Mapping[str, bool],
                     weights: Mapping[str, Sequence[Provenance]], suite: str, cluster: str | None = "prompt",
                     command: str | None = None, n_boot: int = 2000, seed: int | None = 0) -> pd.DataFrame:
    """Rows for every ordered pair of rewards (A, B): ``pair_agreement`` (how often they prefer the same
    image of a pair of images of one ``cluster``, e.g. one prompt), ``spearman`` over all images and the
    within-cluster ``kendall_tau``. The matrix is symmetric; both orders are written so a board reads
    either way. Rows with a failed score are dropped."""
    names = list(rewards)
    df = table.dropna(subset=names)
    groups = (df[cluster].astype(str).to_numpy() if cluster and cluster in df.columns
              else np.zeros(len(df), dtype=object))
    oriented = {n: df[n].to_numpy(float) * (1.0 if higher_is_better[n] else -1.0) for n in names}
    boot = {"n_boot": n_boot, "seed": seed}
    rows = []
    for a in names:
        for b in names:
            if a == b:
                continue
            c, n, g = concordance(oriented[a], oriented[b], groups)
            agree = ratio_estimate(c, n, g, **boot)
            rho = pooled_correlation(oriented[a], oriented[b], "spearman")
            per = [np.flatnonzero(groups == k) for k in np.unique(groups)]
            tau = within_item_correlation([oriented[a][i] for i in per], [oriented[b][i] for i in per],
                                          np.unique(groups), "kendall", **boot)
            w = {a: weights[a], b: weights[b]}
            for metric, est, proto in (("pair_agreement", agree, REWARD_PAIR_PROTOCOL),
                                       ("spearman", rho, "Spearman rho over all images; Fisher-z interval"),
                                       ("kendall_tau", tau, "Kendall tau-b within each prompt, mean over prompts")):
                rows.append(make_row(subject=a, judge=b, suite=suite, metric=metric, value=est.value,
                                     ci_low=est.ci_low, ci_high=est.ci_high, n=est.n, protocol=proto,
                                     weights=w, command=command))
    return pd.DataFrame(rows)


def agreement_between(rewards: Sequence[str], images: str, *, group_by: str | None = "prompt",
                      suite: str | None = None, command: str | None = None, n_boot: int = 2000,
                      **scorer_options: Any) -> pd.DataFrame:
    """`reward_agreement` rows on an image set: a built-in set (`agreement_sets.BUILTIN_SETS`), a results table
    that already holds every reward's column (``rewardbench score`` output: nothing is scored again), or a
    manifest or folder, scored here by `rewardbench.Scorer` with ``scorer_options``."""
    from pathlib import Path

    import rewardbench

    from .agreement_sets import BUILTIN_SETS

    names = image_rewards(rewards)
    source = image_rows(BUILTIN_SETS[images]()) if images in BUILTIN_SETS else images
    pre = _pre_scored(images, names) if isinstance(source, str) else None
    if pre is not None:
        table, weights = pre
    else:
        scorer = rewardbench.Scorer(names, num_workers=0, **scorer_options)
        try:
            table = scorer.run(source).table
            weights = {s.name: list(s.provenance) for s in scorer.slots}
        finally:
            scorer.close()
    hib = {n: rewardbench.get_spec(n).higher_is_better for n in names}
    return reward_agreement(table, names, higher_is_better=hib, weights=weights, suite=suite or Path(images).stem,
                            cluster=group_by, command=command, n_boot=n_boot)


def _pre_scored(path: str, names: list[str]) -> tuple[pd.DataFrame, dict[str, list[Provenance]]] | None:
    """A results table that already has a column for every reward, with the weights each was scored with (a
    parquet table records them in its metadata; CSV and JSONL tables do not: ``unknown``); or None."""
    from pathlib import Path

    from rewardbench.results import RESULT_EXTENSIONS, read_table, table_provenance

    p = Path(path)
    if not (p.is_file() and p.suffix.lower() in RESULT_EXTENSIONS):
        return None
    table = read_table(p)
    if not set(names) <= set(table.columns):
        return None
    recorded = table_provenance(p) or {}
    return table, {n: recorded.get(n, [Provenance("unknown", "pre-scored table")]) for n in names}
