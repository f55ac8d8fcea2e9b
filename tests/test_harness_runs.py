"""Scoring runs that keep their meaning and never mix or lose results: pass-through columns, grouping by
any columns, per-group tables and summaries, up-front refusals, the run fingerprint, retries of failed
rows, finished runs and overwrite (all offline on CPU, on real photos and toy rewards)."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from rewardbench import RewardOutput
from rewardbench.harness import OutputExistsError, OutputLockedError, ResumeMismatchError, Scorer, UsageError
from rewardbench.outputs import RunLock
from rewardbench.preflight import plan_run

from .test_harness import Brightness, GroupSpread, ToyAlign, ToyNorm


def _scorer(rewards, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("num_workers", 0)
    return Scorer(rewards, **kw)


class Flaky(Brightness):
    """Fails on images darker than ``threshold`` while ``broken`` is set: a transient failure."""

    spec = Brightness.spec.replace(name="flaky")
    broken = True

    def score(self, pixels, prompts, groups):
        m = pixels.mean(dim=(1, 2, 3))
        if Flaky.broken and bool((m < 0.1).any()):
            raise RuntimeError("transient")
        self.calls.append(pixels.shape[0])
        return RewardOutput(m)


class NotedSpread(GroupSpread):
    """A group reward with group details: each group's size, and a note on single-image groups (keyed by the
    group's id within the call, as the zoo's rewards do)."""

    spec = GroupSpread.spec.replace(name="noted")

    def score(self, pixels, prompts, groups):
        out = super().score(pixels, prompts, groups)
        sizes = {int(g): int((groups == g).sum()) for g in groups.unique()}
        out.group_details = {g: {"size": n, "note": "a single image" if n == 1 else ""} for g, n in sizes.items()}
        return out


def _multi_model_manifest(tmp_path, photos, fmt="jsonl"):
    """3 prompts x 2 models, 2 seeds each, real photos; one (prompt, model) pair has a single image."""
    d = tmp_path / "imgs"
    d.mkdir(exist_ok=True)
    rows = []
    names = sorted(photos)
    for p, prompt in enumerate(["a nurse", "a doctor", "a cat"]):
        for m, model in enumerate(["sd1.5", "sd2.1"]):
            for seed in range(1 if (p, m) == (2, 1) else 2):
                name = f"{p}_{m}_{seed}.jpg"
                Image.fromarray(photos[names[(p + m + seed) % len(names)]][::8, ::8]).save(d / name)
                rows.append({"image": f"imgs/{name}", "prompt": prompt, "model": model, "seed": seed,
                             "prompt_id": p})
    path = tmp_path / f"m.{fmt}"
    df = pd.DataFrame(rows)
    if fmt == "jsonl":
        df.to_json(path, orient="records", lines=True)
    else:
        df.to_csv(path, index=False)
    return path, df


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_manifest_columns_pass_through_and_groups_by_prompt_and_model(tmp_path, photos, fmt):
    m, df = _multi_model_manifest(tmp_path, photos, fmt)
    noted = NotedSpread()
    res = _scorer({"brightness": Brightness(), "noted": noted}, batch_size=4).run(
        m, out=tmp_path / "s.parquet", group_by="prompt,model", group_table=tmp_path / "g.csv")
    t = pd.read_parquet(tmp_path / "s.parquet")
    assert list(t.columns[:6]) == ["image", "prompt", "model", "seed", "prompt_id", "brightness"]
    assert list(t["image"]) == list(df["image"])  # as the manifest wrote them
    assert list(t["model"]) == list(df["model"]) and list(t["seed"]) == list(df["seed"])
    # one group per (prompt, model): never the images of two generators together
    sizes = t.groupby(["prompt", "model"])["noted.group_size"].agg(["min", "max"])
    expected = df.groupby(["prompt", "model"]).size().astype(float).to_dict()
    assert sizes["min"].to_dict() == expected == sizes["max"].to_dict()  # every member carries its group's details
    # the group details reach the rows of their own group, whatever the group's id within a call
    single = t[(t["prompt"] == "a cat") & (t["model"] == "sd2.1")]
    assert single["noted.group_note"].tolist() == ["a single image"]
    assert set(t.loc[t.index != single.index[0], "noted.group_note"]) == {""}
    # the per-group table: key, size, value, group-wide details; the summary counts each group once
    g = pd.read_csv(tmp_path / "g.csv", keep_default_na=False)
    assert len(g) == 6 == res.summary["groups"] and g["size"].sum() == len(t)
    # one row per group, named by its key values, with its group details and its note
    assert g.set_index(["prompt", "model"])["note"].to_dict() == {
        k: "a single image" if n == 1 else "" for k, n in df.groupby(["prompt", "model"]).size().items()}
    assert (g["noted.group_size"] == g["size"]).all() and "noted.group_note" not in g.columns
    assert g.set_index(["prompt", "model"])["noted"].to_dict() == pytest.approx(
        t.groupby(["prompt", "model"])["noted"].first().to_dict())
    assert res.summary["scores"]["noted"]["mean"] == pytest.approx(g["noted"].mean())
    assert res.summary["scores"]["noted"]["over"] == "groups"
    assert res.summary["scores"]["brightness"]["mean"] == pytest.approx(t["brightness"].mean())
    assert res.summary["group_by"] == ["prompt", "model"] and res.summary["warnings"] == []


def test_grouping_a_multi_model_manifest_by_prompt_alone_warns(tmp_path, photos):
    m, _ = _multi_model_manifest(tmp_path, photos)
    with pytest.warns(UserWarning, match="'model' column but groups are formed by prompt alone.*prompt,model"):
        res = _scorer({"noted": NotedSpread()}).run(m, group_by="prompt")
    assert res.summary["groups"] == 3 and len(res.summary["warnings"]) == 1


def test_a_ready_plan_is_scored_as_planned_and_its_notes_are_left_to_its_maker(tmp_path, photos, recwarn):
    m, _ = _multi_model_manifest(tmp_path, photos)
    scorer = _scorer({"noted": NotedSpread()})
    plan = plan_run({"noted": NotedSpread.spec}, m, group_by="prompt", out=tmp_path / "s.csv")
    assert len(plan.notes) == 1 and "'model' column" in plan.notes[0]
    res = scorer.run(plan)
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]  # shown by the plan's maker, not here
    assert res.summary["groups"] == 3 and res.summary["warnings"] == list(plan.notes)
    assert (tmp_path / "s.csv").is_file()
    with pytest.raises(UsageError, match="come from the plan"):
        scorer.run(plan, out=tmp_path / "other.csv")
    with pytest.raises(UsageError, match="the plan is for the rewards noted; this Scorer runs b"):
        _scorer({"b": Brightness()}).run(plan)


def test_weights_are_recorded_once_per_run_as_values(tmp_path):
    from rewardbench import Provenance, WeightSource
    from rewardbench.results import table_provenance

    class Loaded(Brightness):
        spec = Brightness.spec.replace(name="loaded", weights=(WeightSource("hub", "org/loaded"),))

    loaded, fresh = Loaded(), Loaded()
    loaded.record_weights(Provenance("hub", "org/loaded"), Provenance("random", "not loaded").of("head"))
    items = [{"image": np.full((8, 8, 3), v, np.uint8)} for v in (0, 99)]
    res = _scorer({"b": Brightness(), "loaded": loaded, "fresh": fresh}).run(items, out=tmp_path / "s.parquet")
    assert "weights" not in res.table.columns  # not repeated on every row
    expected = {"b": [Provenance("none")], "fresh": [Provenance("random", "not loaded")],
                "loaded": [Provenance("hub", "org/loaded"), Provenance("random", "not loaded", part="head")]}
    assert res.provenance == expected == table_provenance(tmp_path / "s.parquet")
    assert res.summary["rewards"]["loaded"] == "hub:org/loaded; head: random init (not loaded)"


def test_a_missing_output_folder_is_created_and_an_unwritable_one_refused(tmp_path):
    b = Brightness()
    items = [{"image": np.zeros((8, 8, 3), np.uint8), "prompt": "p"}]
    res = _scorer({"b": b, "noted": NotedSpread()}).run(items, group_by="prompt", out=tmp_path / "new" / "s.csv",
                                                        group_table=tmp_path / "other" / "g.csv")
    assert res.n_rows == 1 and (tmp_path / "new" / "s.csv").is_file() and (tmp_path / "other" / "g.csv").is_file()
    (tmp_path / "file").write_text("x")
    calls = len(b.calls)
    for kw in ({"out": tmp_path / "file" / "s.parquet"},
               {"out": tmp_path / "s2.csv", "group_table": tmp_path / "file" / "g.csv"}):
        what = "--group-table" if "group_table" in kw else "--out"
        with pytest.raises(UsageError, match=f"^{what} .*: .*file is a file, not a folder$"):
            _scorer({"b": b, "noted": NotedSpread()}).run(items, group_by="prompt", **kw)
    assert len(b.calls) == calls  # refused before any image was scored


def test_an_input_column_clashing_with_a_result_column_is_refused(tmp_path):
    items = [{"image": np.zeros((8, 8, 3), np.uint8), "brightness": 3}]
    with pytest.raises(UsageError, match="input column 'brightness' .*clashes with the reward column 'brightness'"):
        _scorer({"brightness": Brightness()}).run(items)
    items = [{"image": np.zeros((8, 8, 3), np.uint8), "brightness.red": 3, "error": 1}]
    with pytest.raises(UsageError, match="'brightness.red'"):
        _scorer({"brightness": Brightness()}).run(items)
    with pytest.raises(UsageError, match="results column 'error'"):
        _scorer({"b": Brightness()}).run([{"image": np.zeros((8, 8, 3), np.uint8), "error": 1}])


def test_up_front_refusals_score_nothing(tmp_path, photo_dir):
    align = ToyAlign()
    with pytest.raises(UsageError, match="toy_align needs a prompt per image.*give --prompts FILE"):
        _scorer({"toy_align": align}).run(photo_dir, out=tmp_path / "s.parquet")
    with pytest.raises(UsageError, match="--group-by model: .* has no 'model' column"):
        _scorer({"noted": NotedSpread()}).run(photo_dir, group_by="model")
    with pytest.raises(UsageError, match="--group-table .*no group reward"):
        _scorer({"b": Brightness()}).run(photo_dir, out=tmp_path / "s.parquet", group_table=tmp_path / "g.parquet")
    assert align.backbone.image_calls == 0 and not (tmp_path / "s.parquet.parts").exists()
    with pytest.raises(UsageError, match="cuda:7"):
        _scorer({"b": Brightness()}, device="cuda:7")
    with pytest.raises(UsageError, match="takes no option 'qualty'. Did you mean 'quality'"):
        _scorer(["jpeg-compressibility"], reward_config={"jpeg-compressibility": {"qualty": 50}})
    with pytest.raises(UsageError, match="--weights vendi: 'vendi' is not among the rewards"):
        _scorer(["jpeg-compressibility"], weights={"vendi": "x"})


def _items(values, prompt="p"):
    return [{"image": np.full((8, 8, 3), v, np.uint8), "prompt": prompt} for v in values]


def test_the_fingerprint_covers_list_content_and_reward_config(tmp_path):
    out = tmp_path / "s.parquet"
    first = _scorer(["jpeg-compressibility"]).run(_items([10, 20, 30]), out=out)
    # the same length, other pixels: refused, not answered with the first run's scores
    with pytest.raises(OutputExistsError, match="input was"):
        _scorer(["jpeg-compressibility"]).run(_items([10, 20, 31]), out=out)
    with pytest.raises(OutputExistsError, match="input was"):
        _scorer(["jpeg-compressibility"]).run(_items([10, 20, 30], prompt="q"), out=out)
    # the same reward with another build config
    with pytest.raises(OutputExistsError, match="jpeg-compressibility: config was {}, now {'quality': 50}"):
        _scorer(["jpeg-compressibility"], reward_config={"jpeg-compressibility": {"quality": 50}}).run(
            _items([10, 20, 30]), out=out)
    _scorer({"t": ToyNorm()}).run(_items([10, 20, 30]), out=tmp_path / "t.parquet")
    with pytest.raises(OutputExistsError, match="t: dtype was 'torch.float32', now 'torch.float64'"):
        _scorer({"t": ToyNorm().double()}).run(_items([10, 20, 30]), out=tmp_path / "t.parquet")
    # the identical run finds its finished table: nothing to do
    again = _scorer(["jpeg-compressibility"]).run(_items([10, 20, 30]), out=out)
    assert again.summary["resumed"] == 3 and again.summary["processed_now"] == 0
    pd.testing.assert_frame_equal(again.table, first.table)


def _bmp_manifest(folder, values):
    """BMP files (uncompressed: the same size whatever the pixels) and a manifest naming them."""
    for i, v in enumerate(values):
        Image.fromarray(np.full((8, 8, 3), v, np.uint8)).save(folder / f"{i}.bmp")
    m = folder / "m.jsonl"
    m.write_text("".join(json.dumps({"image": f"{i}.bmp", "prompt": "p"}) + "\n" for i in range(len(values))))
    return m


def _rewrite_keeping_size_and_mtime(path, value):
    st = path.stat()
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)
    assert path.stat().st_size == st.st_size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_an_image_edited_after_a_manifest_run_is_noticed(tmp_path):
    """A manifest's fingerprint covers the image files it names (size and mtime), not only its own bytes: an edited
    image never keeps its old score, on a finished table or on resume; content_hash also notices an edit that keeps
    the size and the mtime."""
    m = _bmp_manifest(tmp_path, [40, 80, 120])
    out = tmp_path / "s.parquet"
    _scorer({"b": Brightness()}).run(m, out=out)
    st = (tmp_path / "1.bmp").stat()
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(tmp_path / "1.bmp")
    os.utime(tmp_path / "1.bmp", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # a later edit, same size
    with pytest.raises(OutputExistsError, match="complete results table of a different run .input was"):
        _scorer({"b": Brightness()}).run(m, out=out)
    redone = _scorer({"b": Brightness()}).run(m, out=out, overwrite=True)
    assert redone.table["b"].tolist() == pytest.approx([40 / 255, 200 / 255, 120 / 255], abs=1e-6)
    # resume: shards of a run whose rows failed, then an image edited before the re-run
    Flaky.broken = True
    try:
        part = tmp_path / "p.parquet"
        first = _scorer({"flaky": Flaky()}).run(_bmp_manifest(tmp_path, [10, 150, 20]), out=part)
        assert first.n_failed > 0 and (tmp_path / "p.parquet.parts").is_dir()
        Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(tmp_path / "1.bmp")
        os.utime(tmp_path / "1.bmp", ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
        with pytest.raises(ResumeMismatchError, match="different run .input was"):
            _scorer({"flaky": Flaky()}).run(tmp_path / "m.jsonl", out=part)
    finally:
        Flaky.broken = True
    # an edit that keeps the size and the mtime: only the content hash notices it
    m = _bmp_manifest(tmp_path, [40, 80, 120])
    by_stat, by_hash = tmp_path / "stat.parquet", tmp_path / "hash.parquet"
    _scorer({"b": Brightness()}).run(m, out=by_stat)
    _scorer({"b": Brightness()}).run(m, out=by_hash, content_hash=True)
    _rewrite_keeping_size_and_mtime(tmp_path / "2.bmp", 250)
    stale = _scorer({"b": Brightness()}).run(m, out=by_stat)
    assert stale.summary["processed_now"] == 0  # what size and mtime cannot see (why the option exists)
    with pytest.raises(OutputExistsError, match="input was .*'images': 'sha256:"):
        _scorer({"b": Brightness()}).run(m, out=by_hash, content_hash=True)
    fresh = _scorer({"b": Brightness()}).run(m, out=by_hash, content_hash=True, overwrite=True)
    assert fresh.table["b"].tolist()[2] == pytest.approx(250 / 255, abs=1e-6)


def test_failed_rows_are_retried_by_a_rerun(tmp_path):
    out = tmp_path / "s.csv"
    items = _items([200, 0, 150, 5])
    Flaky.broken = True
    try:
        res = _scorer({"flaky": Flaky(), "b": Brightness()}, batch_size=2).run(items, out=out)
        assert res.n_failed == 2 and res.summary["scored"] == 2 and res.summary["parts_kept"]
        assert (tmp_path / "s.csv.parts").is_dir() and out.is_file()  # kept so that a re-run can retry
        # --no-retry-failed keeps them (and a finished run then leaves one file)
        kept = _scorer({"flaky": Flaky(), "b": Brightness()}, batch_size=2).run(items, out=out, retry_failed=False)
        assert kept.n_failed == 2 and kept.summary["processed_now"] == 0
        assert not (tmp_path / "s.csv.parts").exists()
        with pytest.raises(OutputExistsError):  # CSV carries no fingerprint: a finished CSV is never replaced
            _scorer({"flaky": Flaky(), "b": Brightness()}).run(items, out=out)
        # parquet: the finished table knows its run, so its failed rows are retried on top of it
        pq_out = tmp_path / "s.parquet"
        _scorer({"flaky": Flaky(), "b": Brightness()}, batch_size=2).run(items, out=pq_out, retry_failed=False)
        assert not (tmp_path / "s.parquet.parts").exists()
        Flaky.broken = False  # the transient cause went away
        flaky = Flaky()
        fixed = _scorer({"flaky": flaky, "b": Brightness()}, batch_size=2).run(items, out=pq_out)
        assert fixed.n_failed == 0 and fixed.summary["processed_now"] == 2 and fixed.summary["resumed"] == 2
        assert sum(flaky.calls) == 2  # only the failed rows were scored again
        t = pd.read_parquet(pq_out)
        assert t["flaky"].tolist() == pytest.approx([200 / 255, 0, 150 / 255, 5 / 255], abs=1e-6)
        assert t["error"].isna().all() and not (tmp_path / "s.parquet.parts").exists()
    finally:
        Flaky.broken = True


def test_a_failed_member_reruns_its_whole_group(tmp_path):
    items = [{"image": np.full((8, 8, 3), v, np.uint8), "prompt": p} for v, p in
             ((100, "a"), (0, "a"), (50, "a"), (200, "b"), (220, "b"))]
    out = tmp_path / "s.parquet"
    Flaky.broken = True
    try:
        res = _scorer({"flaky": Flaky(), "spread": GroupSpread()}, batch_size=8).run(items, out=out, group_by="prompt")
        assert res.n_failed == 1
        Flaky.broken = False
        spread = GroupSpread()
        res = _scorer({"flaky": Flaky(), "spread": spread}, batch_size=8).run(items, out=out, group_by="prompt")
        assert spread.calls == [[0, 0, 0]]  # group "a" whole again (a group value needs all its members)
        assert res.n_failed == 0 and res.summary["processed_now"] == 3
        assert res.table["spread"][:3].tolist() == pytest.approx([100 / 255] * 3, abs=1e-6)
    finally:
        Flaky.broken = True


def test_finished_runs_overwrite_and_the_lock(tmp_path):
    out = tmp_path / "s.parquet"
    _scorer({"b": Brightness()}).run(_items([1, 2]), out=out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.parquet"]  # one results file, no parts, no lock
    with pytest.raises(OutputExistsError, match="complete results table of a different run .rewards were"):
        _scorer({"b": Brightness(), "f": Flaky()}).run(_items([1, 2]), out=out)
    with pytest.raises(OutputExistsError, match="--no-resume never replaces a finished table.*--overwrite"):
        _scorer({"b": Brightness()}).run(_items([1, 2]), out=out, resume=False)
    res = _scorer({"b": Brightness(), "c": Brightness()}).run(_items([1, 2]), out=out, overwrite=True)
    assert list(pd.read_parquet(out).columns[2:4]) == ["b", "c"] and res.summary["resumed"] == 0
    with RunLock(out):  # another run holds the lock
        with pytest.raises(OutputLockedError, match="another run .* is writing"):
            _scorer({"b": Brightness()}).run(_items([1, 2]), out=out, overwrite=True)
    assert isinstance(OutputExistsError("x"), ResumeMismatchError)


def test_summary_counts_truthfully_when_every_row_fails(tmp_path):
    items = [{"image": f"/nonexistent/{i}.png"} for i in range(8)]
    res = _scorer({"b": Brightness()}).run(items)
    s = res.summary
    assert (s["rows"], s["failed"], s["scored"], s["processed_now"], s["scored_now"]) == (8, 8, 0, 8, 0)
    assert s["scores"]["b"]["n"] == 0 and s["scores"]["b"]["mean"] is None
    json.dumps(s)  # the JSON summary carries the same counts
