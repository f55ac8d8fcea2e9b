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


SKIN_BUCKETS = {"dark", "medium-dark", "medium-light", "light"}  # the paper's 4 buckets


def _ita_bucket(ita: float) -> str:
    """The documented ITA -> bucket mapping, from the categories' published bounds (Chardon et al. 1991): very light
    (> 55) and light (41-55) are light, intermediate (28-41) medium-light, tan (10-28) medium-dark, brown and dark
    (<= 10) dark."""
    return "light" if ita > 41 else "medium-light" if ita > 28 else "medium-dark" if ita > 10 else "dark"


def test_flags_stay_flags_shares_are_labelled_and_buckets_share_one_vocabulary(tmp_path):
    """Issue 24: booleans are booleans in the results (nullable where a row failed), a group's shares name their
    buckets, and a face's ITA and Monk readings are given in the paper's 4 buckets, as its label is."""
    from PIL import Image

    from rewardbench.samples import sample_photo

    rows = []
    for name, prompt in (("astronaut", "a person"), ("grace_hopper", "a person"), ("camera", "a person"),
                         ("coffee", "a thing"), ("chelsea", "a thing"), ("rocket", "a rocket")):
        Image.fromarray(sample_photo(name)).save(tmp_path / f"{name}.png")
        rows.append({"image": f"{name}.png", "prompt": prompt})
    (tmp_path / "broken.png").write_bytes(b"not a png")
    rows.append({"image": "broken.png", "prompt": "a thing"})
    m = tmp_path / "m.jsonl"
    m.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out, gt = tmp_path / "s.parquet", tmp_path / "g.parquet"
    res = CliRunner().invoke(score, ["--model", "skin-tone-parity,gender-parity,vendi", "--images", str(m),
                                     "--group-by", "prompt", "--out", str(out), "--group-table", str(gt),
                                     "--no-progress", "--num-workers", "0"])
    assert res.exit_code == 1, res.output  # the broken image is a failed row
    t, g = pd.read_parquet(out), pd.read_parquet(gt).set_index("prompt")
    broken = t["image"] == "broken.png"
    for col in ("skin-tone-parity.no_face", "skin-tone-parity.group_empty", "skin-tone-parity.group_too_small",
                "gender-parity.no_face", "vendi.group_too_small"):
        assert str(t[col].dtype) == "boolean", (col, t[col].dtype)  # not float64, not object
        assert t.loc[broken, col].isna().all() and t.loc[~broken, col].notna().all(), col
    # no measured face: the grey camera man is found but has no tone to read; coffee, a cat, a rocket have no face
    assert t.loc[~broken, "skin-tone-parity.no_face"].tolist() == [False, False, True, True, True, True]
    assert str(g["skin-tone-parity.group_too_small"].dtype) in ("bool", "boolean")
    assert g["skin-tone-parity.group_too_small"].tolist() == [False, False, True]  # a rocket: one image
    assert g.loc["a thing", "skin-tone-parity.group_empty"] and not g.loc["a person", "skin-tone-parity.group_empty"]

    # shares by bucket (a JSON object), summing to 1; none where nobody was measured
    skin = json.loads(g.loc["a person", "skin-tone-parity.group_shares"])
    gender = json.loads(g.loc["a person", "gender-parity.group_shares"])
    assert set(skin) == SKIN_BUCKETS and set(gender) == {"female", "male"}
    assert sum(skin.values()) == pytest.approx(1) and sum(gender.values()) == pytest.approx(1)
    assert pd.isna(g.loc["a thing", "skin-tone-parity.group_shares"])

    # one vocabulary: label, ita_bucket and monk_bucket are all buckets; ita_bucket follows the ITA angle
    measured = t[t["skin-tone-parity.label"].notna()]
    assert len(measured) == 2  # astronaut and Grace Hopper (camera is grey: found, unclear)
    for col in ("label", "ita_bucket", "monk_bucket"):
        assert set(measured[f"skin-tone-parity.{col}"]) <= SKIN_BUCKETS, col
    ita = measured["skin-tone-parity.ita"]
    assert measured["skin-tone-parity.ita_bucket"].tolist() == [_ita_bucket(a) for a in ita]
    # the default scale is ITA: the label is the ITA bucket
    assert (measured["skin-tone-parity.label"] == measured["skin-tone-parity.ita_bucket"]).all()
    assert "skin-tone-parity.ita_category" not in t.columns
