"""Issue 13's done-when check, end to end on real Stable Diffusion images of three generators (the labelled
set in ../shared/data/faces-calibration, read in place): `rewardbench score` with image and group rewards,
grouped by prompt and model, gives one row per image with the manifest's columns, a per-group table, and a
summary a reader can recompute from those two tables."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from rewardbench.cli.score import score

MODELS = "jpeg-compressibility,nsfw,skin-tone-parity,vendi"


@pytest.fixture
def multi_model_manifest(shared_data, tmp_path):
    labels = shared_data / "faces-calibration" / "labels.csv"
    if not labels.is_file():
        pytest.skip(f"{labels} not found (the labelled SD images live beside the checkout only)")
    df = pd.read_csv(labels)
    # 8 prompts x 3 generators, among them prompts with people (the images stay where they are)
    with_faces = df.loc[df["human_faces"] > 0, "prompt"].unique()[:4].tolist()
    others = [p for p in df["prompt"].unique() if p not in with_faces][:4]
    df = df[df["prompt"].isin(with_faces + others)]
    rows = [{"image": str(labels.parent / r.image), "prompt": r.prompt, "model": r.model, "category": r.category,
             "prompt_id": int(r.prompt_id)} for r in df.itertuples()]
    m = tmp_path / "m.jsonl"
    m.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return m, pd.DataFrame(rows)


def test_multi_model_manifest_end_to_end(multi_model_manifest, tmp_path):
    m, manifest = multi_model_manifest
    out, gt = tmp_path / "s.parquet", tmp_path / "g.parquet"
    args = ["--model", MODELS, "--images", str(m), "--group-by", "prompt,model", "--out", str(out), "--group-table",
            str(gt), "--json", "--no-progress", "--num-workers", "0"]
    # one image per (prompt, model): every group is smaller than a parity or Vendi measures, refused unless asked
    refused = CliRunner().invoke(score, args)
    assert refused.exit_code == 2 and "--allow-small-groups" in refused.output
    res = CliRunner().invoke(score, [*args, "--allow-small-groups"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output[res.output.index("{"):])["summary"]
    t, g = pd.read_parquet(out), pd.read_parquet(gt)

    # one row per image, in manifest order, with the manifest's columns as they were
    assert len(t) == len(manifest) == 24
    for col in ("image", "prompt", "model", "category", "prompt_id"):
        assert t[col].tolist() == manifest[col].tolist(), col
    # a per-group table: one row per (prompt, model), sizes adding up to the rows
    assert len(g) == manifest.groupby(["prompt", "model"]).ngroups == summary["groups"] == 24
    assert g["size"].sum() == len(t) and set(g.columns) >= {"prompt", "model", "size", "skin-tone-parity", "vendi"}
    assert "skin-tone-parity.group_people" in g.columns  # faces found per group
    # each group's details on its rows, and once in its row of the group table with one note for the group
    assert (t.groupby(["prompt", "model"])["skin-tone-parity.group_people"].nunique() == 1).all()
    assert g["note"].str.contains("without a measured face|no face", regex=True).any()
    assert g["skin-tone-parity.group_too_small"].all() and g["vendi.group_too_small"].all()
    assert (t["vendi"] == 1).all()  # Vendi of one image, by definition: why such groups are marked

    # the summary, recomputed by a reader from the two tables
    assert summary["rows"] == len(t) and summary["failed"] == int(t["error"].notna().sum())
    assert summary["scored"] == int(t["error"].isna().sum())
    for name in MODELS.split(","):
        stats = summary["scores"][name]
        per_group = stats["over"] == "groups"
        values = (g if per_group else t)[name].dropna().astype(float)
        assert per_group == (name in ("skin-tone-parity", "vendi"))
        assert stats["n"] == len(values) and stats["of"] == len(g if per_group else t)
        assert stats.get("too_small", 0) == (len(g) if per_group else 0)  # counted, as asked
        assert stats["mean"] == pytest.approx(values.mean(), rel=1e-6, abs=1e-9)
        assert stats["std"] == pytest.approx(values.std(ddof=0), rel=1e-6, abs=1e-9)
        assert (stats["min"], stats["max"]) == pytest.approx((values.min(), values.max()))
    # a finished run: one results file, no parts, no lock
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.parquet", "m.jsonl", "s.parquet"]


def test_parities_of_a_multi_model_set_come_from_people_only(shared_data, tmp_path):
    """Issue 16's done-when check: `rewardbench score --model skin-tone-parity,gender-parity --group-by
    prompt,model` on real images of three generators. Groups of animal pictures (dogs, a sloth, a panda: where
    NudeNet's face classes used to fire) measure nobody and say so; groups with labelled people are measured
    from faces, never more than the people labelled in them (clear faces, small or unclear faces, and people
    the labeller saw without a face: a painted head in profile, say)."""
    labels = shared_data / "faces-calibration" / "labels.csv"
    if not labels.is_file():
        pytest.skip(f"{labels} not found (the labelled SD images live beside the checkout only)")
    df = pd.read_csv(labels)
    per = df.groupby("prompt")[["animal_faces", "human_faces", "small_or_unclear_faces", "people_without_face"]].sum()
    animals = per[(per.animal_faces > 0) & (per.drop(columns="animal_faces").sum(axis=1) == 0)].index[:6].tolist()
    people = per[per.human_faces > 0].index[:6].tolist()
    df = df[df["prompt"].isin(animals + people)]
    m = tmp_path / "m.jsonl"
    m.write_text("".join(json.dumps({"image": str(labels.parent / r.image), "prompt": r.prompt, "model": r.model})
                         + "\n" for r in df.itertuples()))
    gt = tmp_path / "g.csv"
    res = CliRunner().invoke(score, ["--model", "skin-tone-parity,gender-parity", "--images", str(m), "--group-by",
                                     "prompt,model", "--out", str(tmp_path / "s.csv"), "--group-table", str(gt),
                                     "--no-progress", "--num-workers", "0", "--allow-small-groups"])  # 1 per group
    assert res.exit_code == 0, res.output
    g = pd.read_csv(gt).merge(df.groupby(["prompt", "model"], as_index=False)[
        ["human_faces", "small_or_unclear_faces", "people_without_face"]].sum(), on=["prompt", "model"])
    assert len(g) == len(df) and set(g["model"]) == set(df["model"]) and len(set(g["model"])) == 3
    for judge in ("skin-tone-parity", "gender-parity"):
        found = g[f"{judge}.group_faces_found"]
        animal = g["prompt"].isin(animals)
        assert (found[animal] == 0).all(), g.loc[animal & (found > 0), ["prompt", "model"]]
        assert g.loc[animal, "note"].str.contains("no face").all()
        assert (found <= g["human_faces"] + g["small_or_unclear_faces"] + g["people_without_face"]).all()
        assert found[~animal].sum() > 0  # the people are measured
