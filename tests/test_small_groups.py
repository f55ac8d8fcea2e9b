"""Group rewards that say what they measured (issue 24): a group reward declares the fewest images it can measure
(`RewardSpec.min_group_size`); a run whose every group is smaller is refused before any model loads, smaller groups
among others are scored, marked (``<reward>.group_too_small``, a note, the group table) and left out of the summary,
and ``allow_small_groups`` / ``--allow-small-groups`` scores and counts them. An input's own ``index`` column passes
through ``score`` (the shards keep the row position under another name; older shards still resume)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import rewardbench
from rewardbench.harness import Scorer, UsageError
from rewardbench.registry import REGISTRY

from .test_harness import GroupSpread


class SpreadOf3(GroupSpread):
    """The toy spread reward, declaring that it measures groups of 3 or more images."""

    spec = GroupSpread.spec.replace(name="spread3", min_group_size=3)


def _grey(v):
    return np.full((8, 8, 3), v, np.uint8)


def _scorer(rewards, **kw):
    return Scorer(rewards, progress=False, num_workers=0, **kw)


# a group of three (spread 200 - 20) and a group of two (spread 90 - 60), in grey levels
ITEMS = [{"image": _grey(v), "prompt": p} for v, p in ((20, "a"), (200, "a"), (100, "a"), (60, "b"), (90, "b"))]


def test_every_group_too_small_is_refused_before_any_image_is_scored():
    reward = SpreadOf3()
    with pytest.raises(UsageError, match=r"spread3 measures groups of at least 3 images, and every group by prompt "
                                         r"in .* has fewer \(the largest: 2 images\).*--allow-small-groups"):
        _scorer({"spread3": reward}).run(ITEMS[3:], group_by="prompt")
    assert reward.calls == []


def test_smaller_groups_are_marked_and_left_out_of_the_summary(recwarn):
    res = _scorer({"spread3": SpreadOf3()}).run(ITEMS, group_by="prompt")
    notes = [str(w.message) for w in recwarn.list]
    assert any("1 of 2 groups by prompt have fewer than the 3 images spread3 measures" in n for n in notes)
    assert res.table["spread3.group_too_small"].tolist() == [False, False, False, True, True]
    g = res.groups.set_index("prompt")
    assert g["spread3.group_too_small"].tolist() == [False, True]
    assert g.loc["b", "note"] == "too small (2 images; at least 3 needed)" and g.loc["a", "note"] == ""
    assert g.loc["b", "spread3"] == pytest.approx(30 / 255, abs=1e-6)  # scored all the same
    st = res.summary["scores"]["spread3"]
    assert (st["n"], st["of"], st["too_small"], st["too_small_counted"]) == (1, 2, 1, False)
    assert st["mean"] == pytest.approx(180 / 255, abs=1e-6)  # group "a" alone


def test_allow_small_groups_scores_and_counts_them():
    res = _scorer({"spread3": SpreadOf3()}).run(ITEMS, group_by="prompt", allow_small_groups=True)
    st = res.summary["scores"]["spread3"]
    assert (st["n"], st["too_small"], st["too_small_counted"]) == (2, 1, True)
    assert st["mean"] == pytest.approx((180 + 30) / 2 / 255, abs=1e-6)
    alone = _scorer({"spread3": SpreadOf3()}).run(ITEMS[3:], group_by="prompt", allow_small_groups=True)
    assert alone.table["spread3.group_too_small"].all() and alone.summary["scores"]["spread3"]["n"] == 1


def test_a_group_too_small_after_a_member_fails_is_marked(tmp_path):
    """The mark counts the images the value was computed on: a group of 3 with an unreadable member is 2."""
    (tmp_path / "broken.png").write_bytes(b"not a png")
    items = [*ITEMS[:2], {"image": str(tmp_path / "broken.png"), "prompt": "a"}, *ITEMS]  # sets of 3, 3 and 2
    res = _scorer({"spread3": SpreadOf3()}).run([{**r, "set": i // 3} for i, r in enumerate(items)], group_by="set")
    g = res.groups.set_index("set")
    assert g.loc[0, "size"] == 3 and g.loc[0, "failed"] == 1 and bool(g.loc[0, "spread3.group_too_small"])
    assert not g.loc[1, "spread3.group_too_small"] and bool(g.loc[2, "spread3.group_too_small"])
    assert g.loc[0, "note"] == "too small (2 images; at least 3 needed)"  # the images its value rests on
    # the flag stays a flag, missing (not False, not NaN in a float column) on the row that failed
    flags = res.table["spread3.group_too_small"]
    assert str(flags.dtype) == "boolean" and flags.isna().tolist() == [False, False, True] + [False] * 5


def test_the_zoos_group_rewards_declare_what_they_measure():
    group = [n for n in REGISTRY.names() if rewardbench.get_spec(n).granularity == "group"]
    assert {"skin-tone-parity", "gender-parity", "vendi", "pairwise-cosine-distance"} <= set(group)
    assert all(rewardbench.get_spec(n).min_group_size >= 2 for n in group)
    assert all(rewardbench.get_spec(n).min_group_size == 1 for n in REGISTRY.names() if n not in group)
    with pytest.raises(ValueError, match="group rewards only"):
        rewardbench.RewardSpec(name="x", category="baseline", min_group_size=2)


def _cli(*args):
    from rewardbench.cli.score import score

    return CliRunner().invoke(score, [str(a) for a in args], catch_exceptions=False)


def test_score_refuses_groups_of_one_in_one_line_before_any_model_loads(photo_dir, tmp_path, monkeypatch):
    import rewardbench.harness as harness

    rows = [{"image": str(p), "prompt": f"prompt {i}"} for i, p in enumerate(sorted(photo_dir.glob("*")))
            if p.suffix in (".jpg", ".png")]
    m = tmp_path / "m.jsonl"
    m.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def never(*a, **k):
        raise AssertionError("a model was built")

    with monkeypatch.context() as mp:
        mp.setattr(harness, "Scorer", never)
        res = _cli("--model", "vendi,skin-tone-parity", "--images", m, "--group-by", "prompt")
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1, res.output
    assert "every group by prompt" in res.output and "--group-by prompt with several images per prompt" in res.output
    res = _cli("--model", "vendi", "--images", m, "--group-by", "prompt", "--allow-small-groups", "--json",
               "--no-progress", "--num-workers", 0)
    assert res.exit_code == 0, res.output
    st = json.loads(res.output[res.output.index("{"):])["summary"]["scores"]["vendi"]
    assert st["too_small"] == st["of"] == st["n"] == len(rows) and st["mean"] == pytest.approx(1.0)


def test_a_manifests_own_index_passes_through_score_and_resumes(photo_dir, tmp_path):
    files = sorted(p.name for p in photo_dir.glob("*") if p.suffix in (".jpg", ".png"))
    rows = [{"image": str(photo_dir / f), "prompt": "x", "index": 10 * i + 7} for i, f in enumerate(files)]
    m = tmp_path / "m.csv"
    pd.DataFrame(rows).to_csv(m, index=False)
    out = tmp_path / "s.parquet"
    res = _cli("--model", "jpeg-compressibility", "--images", m, "--out", out, "--no-progress", "--num-workers", 0)
    assert res.exit_code == 0, res.output
    t = pd.read_parquet(out)
    assert t["index"].tolist() == [r["index"] for r in rows] and "_row" not in t.columns
    # shards written before the row position had its own name keep it in `index`: they still resume
    from rewardbench.data import open_source
    from rewardbench.shards import ROW

    items = [{"image": r["image"]} for r in rows]
    parts = tmp_path / "older.parquet.parts"
    parts.mkdir()
    pd.DataFrame([{"index": 0, "image": rows[0]["image"], "prompt": None, "jpeg-compressibility": -1.5,
                   "error": None}]).to_parquet(parts / "part-a00001-r0-000000-old.parquet", index=False)
    scorer = _scorer(["jpeg-compressibility"])
    (parts / "run.json").write_text(json.dumps({"fingerprint": scorer.fingerprint(open_source(items), None),
                                                "attempt": 1}))
    resumed = scorer.run(items, out=tmp_path / "older.parquet")
    assert resumed.summary["resumed"] == 1 and resumed.summary["processed_now"] == len(rows) - 1
    table = pq.read_table(tmp_path / "older.parquet")
    assert table.column("jpeg-compressibility").to_pylist()[0] == -1.5 and ROW not in table.column_names
