"""run-benchmark's group judges say what they measured (issue 24): groups smaller than a judge measures are refused
at plan time or, with ``--allow-small-groups``, scored and marked in every table; each model and group judge reports
its groups (measured, empty, too small) and the faces found beside the faces measured, checked on the labelled real
Stable Diffusion images; a manifest whose prompts are not the ``--suite``'s is said to be so; ``scores.csv`` keeps
each image's path and the manifest's own columns."""

from __future__ import annotations

import json

import pandas as pd
from click.testing import CliRunner
from PIL import Image

from rewardbench.benchmarks.suite import prompts_hash
from rewardbench.cli.run_benchmark import run_benchmark as cli

FAST = ["--num-workers", "0", "--n-boot", "200", "--no-progress", "--no-plots"]
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "grace_hopper")


def _invoke(*args):
    res = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return res.exit_code, res.output


def _manifest(tmp_path, photos, per_prompt: dict[str, int], models=("a", "b"), extra=None, name="m.jsonl"):
    """Real photos as two "models" (b's mirrored): ``per_prompt`` images of each prompt per model."""
    rows = []
    for model in models:
        (tmp_path / model).mkdir(exist_ok=True)
        for p, (prompt, n) in enumerate(per_prompt.items()):
            for i in range(n):
                img = Image.fromarray(photos[PHOTOS[(p + i) % len(PHOTOS)]]).resize((96, 96))
                img = img.transpose(Image.FLIP_LEFT_RIGHT) if model == "b" else img
                f = f"{model}/{p}_{i}.png"
                img.save(tmp_path / f)
                row = {"image": f, "prompt": prompt, "model": model, "index": i}
                rows.append({**row, **(extra(p, i) if extra else {})})
    m = tmp_path / name
    m.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return m


def test_one_image_per_prompt_with_a_group_judge_is_refused_before_generating(tmp_path):
    for extra in ([], ["--dry-run"]):
        code, text = _invoke("--suite", "fairness", "--model", "ft=tiny:1", "--baseline", "tiny", "--limit", 2,
                             "--images-per-prompt", 1, "--judges", "jpeg-compressibility,vendi", "--out",
                             tmp_path / "o", *FAST, *extra)
        assert code == 2 and len(text.strip().splitlines()) == 1, text
        assert "vendi" in text and "--images-per-prompt 2 or more" in text and "--allow-small-groups" in text
    assert not (tmp_path / "o" / "images").exists()


def test_images_made_beforehand_one_per_model_and_prompt(tmp_path, photos):
    m = _manifest(tmp_path, photos, {f"prompt {p}": 1 for p in range(4)})
    code, text = _invoke("--images", m, "--baseline", "a", "--judges", "vendi", "--out", tmp_path / "o", *FAST)
    assert code == 2 and "several images per (model, prompt)" in text and len(text.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "scores").exists()  # refused before any judge scored
    # accepted explicitly: scored (Vendi of one image is 1 by definition), counted, and marked everywhere
    code, text = _invoke("--images", m, "--baseline", "a", "--judges", "vendi", "--out", tmp_path / "o", *FAST,
                         "--allow-small-groups")
    assert code == 0, text
    assert "warning: 8 of the 8 (model, prompt) groups vendi scores have fewer than the 2 images" in text
    out = tmp_path / "o"
    groups = pd.read_csv(out / "group_rewards.csv")
    assert len(groups) == 8 and groups["too_small"].all() and (groups["score"] == 1.0).all()
    rows = pd.read_csv(out / "results.csv")
    assert (rows["judge_small_groups"] == 8).all()
    mean = rows[(rows["metric"] == "mean") & (rows["category"] == "all")].set_index("model")
    assert (mean["n_prompts"] == 4).all() and (mean["n_groups_too_small"] == 4).all() and (mean["value"] == 1).all()
    report = (out / "report.md").read_text()
    assert "Groups too small to measure (vendi: 8 of 8 groups with fewer than 2 images, counted" in report
    for table_row in ("| b | vendi (small groups) |", "| vendi (small groups) | a |", "vendi (small groups) ↑"):
        assert table_row in report  # win rates, means, cross-reward table
    meta = json.loads((out / "results.json").read_text())
    assert meta["judges"]["vendi"]["small_groups"] == {"groups": 8, "of": 8, "min": 2, "counted": True}


def test_smaller_groups_among_others_are_left_out_of_the_statistics(tmp_path, photos):
    m = _manifest(tmp_path, photos, {"p0": 2, "p1": 3, "p2": 1})
    code, text = _invoke("--images", m, "--baseline", "a", "--judges", "vendi,jpeg-compressibility", "--out",
                         tmp_path / "o", *FAST)
    assert code == 0, text
    assert "warning: 2 of the 6 (model, prompt) groups vendi scores have fewer than the 2 images it measures" in text
    out = tmp_path / "o"
    groups = pd.read_csv(out / "group_rewards.csv").set_index(["model", "prompt"])
    assert groups["too_small"].to_dict() == {(mo, p): p == "p2" for mo in "ab" for p in ("p0", "p1", "p2")}
    rows = pd.read_csv(out / "results.csv")
    allc = rows[rows["category"] == "all"].set_index(["judge", "metric", "model"])
    assert allc.loc[("vendi", "win_rate", "b"), "n_prompts"] == 2  # p2 left out
    assert allc.loc[("jpeg-compressibility", "win_rate", "b"), "n_prompts"] == 3  # an image judge keeps it
    mean = rows[(rows["category"] == "all") & (rows["judge"] == "vendi") & (rows["metric"] == "mean")]
    assert (mean["n_groups"] == 3).all() and (mean["n_groups_too_small"] == 1).all() and (mean["n_images"] == 5).all()
    scores = pd.read_csv(out / "scores.csv")
    assert set(scores.loc[scores["judge"] == "vendi", "prompt"]) == {"p0", "p1"}
    report = (out / "report.md").read_text()
    assert "vendi: 2 of 6 groups with fewer than 2 images, left out of its numbers" in report
    assert "| vendi (small groups) | a | 3 | 3 | – | 1 | 6 | – | – |" in report  # groups, measured, empty, too small


def test_prompts_that_are_not_the_suites_are_said_to_be_so(tmp_path, photos):
    foreign = _manifest(tmp_path, photos, {"a photo of a cat": 2, "a rocket": 2}, name="foreign.jsonl")
    code, text = _invoke("--suite", "fairness", "--images", foreign, "--baseline", "a", "--judges",
                         "jpeg-compressibility", "--out", tmp_path / "f", *FAST)
    assert code == 0 and "warning: 2 of the 2 prompts of" in text and "are not prompts of the fairness suite" in text
    report = (tmp_path / "f" / "report.md").read_text()
    assert "The manifest's 2 prompts, 2 of them not prompts of the fairness suite" in report
    assert "occupation prompt" not in report  # the suite's description is not theirs
    meta = json.loads((tmp_path / "f" / "results.json").read_text())
    assert meta["prompts"]["sha256"] == prompts_hash([{"prompt": "a photo of a cat", "category": None},
                                                      {"prompt": "a rocket", "category": None}])
    assert meta["seeds"] is None and meta["prompts"]["suite_check"]["outside"] == 2
    # the suite's own prompts: no warning, its description, and how many of its prompts
    own = _manifest(tmp_path, photos, {"a portrait of an actor": 2, "a portrait of a baker": 2}, name="own.jsonl")
    code, text = _invoke("--suite", "fairness", "--images", own, "--baseline", "a", "--judges",
                         "jpeg-compressibility", "--out", tmp_path / "o", *FAST)
    assert code == 0 and "warning" not in text, text
    report = (tmp_path / "o" / "report.md").read_text()
    assert "Prompts of the fairness suite (2 of its 100 prompts); judges chosen for this run" in report


def test_scores_keep_the_image_and_the_manifests_own_columns(tmp_path, photos):
    m = _manifest(tmp_path, photos, {"p0": 2, "p1": 2},
                  extra=lambda p, i: {"prompt_id": 40 + p, "seed": 1000 * p + i, "origin": f"batch{p}"})
    code, text = _invoke("--images", m, "--baseline", "a", "--judges", "jpeg-compressibility,vendi", "--out",
                         tmp_path / "o", *FAST)
    assert code == 0, text
    scores = pd.read_csv(tmp_path / "o" / "scores.csv")
    img = scores[scores["judge"] == "jpeg-compressibility"].set_index(["model", "prompt", "index"])
    assert img.loc[("b", "p1", 1), "image"] == str(tmp_path / "b" / "1_1.png")
    assert img.loc[("b", "p1", 1), ["prompt_id", "seed", "origin"]].tolist() == [41, 1001, "batch1"]
    grp = scores[scores["judge"] == "vendi"].set_index(["model", "prompt"])
    assert grp["image"].isna().all() and grp.loc[("a", "p1"), "prompt_id"] == 41  # what a group's images agree on
    assert grp["seed"].isna().all()  # its images' seeds differ
    bad = _manifest(tmp_path, photos, {"p0": 2}, extra=lambda p, i: {"score": 1}, name="bad.jsonl")
    code, text = _invoke("--images", bad, "--baseline", "a", "--judges", "vendi", "--out", tmp_path / "x", *FAST)
    assert code == 2 and "column 'score' clashes" in text


def test_groups_measured_on_real_stable_diffusion_images(shared_data, tmp_path):
    """The 3 generators' labelled images in two groups per model: its images whose largest face has a definite
    skin-tone label, and three DrawBench colour prompts whose images show nobody (no face, person or animal in any
    model's image). The counts are checked against what the labels make certain."""
    root = shared_data / "faces-calibration"
    labels = pd.read_csv(root / "labels.csv", keep_default_na=False)
    toned = labels[labels["skin_tone"].isin(["light", "medium-light", "medium-dark", "dark"])].assign(prompt="people")
    empty = (labels["human_faces"] == 0) & (labels["small_or_unclear_faces"] == 0) & \
        (labels["people_without_face"] == 0) & (labels["animal_faces"] == 0)
    nobody_ids = sorted(labels[empty].groupby("prompt_id").size().loc[lambda s: s == 3].index)[:3]
    nobody = labels[labels["prompt_id"].isin(nobody_ids)].assign(prompt="nobody")
    chosen = pd.concat([toned, nobody], ignore_index=True)
    chosen["index"] = chosen.groupby(["model", "prompt"]).cumcount()
    chosen["image"] = [str(root / p) for p in chosen["image"]]
    chosen[["image", "prompt", "model", "index", "prompt_id"]].to_csv(tmp_path / "m.csv", index=False)
    out = tmp_path / "out"
    code, text = _invoke("--images", tmp_path / "m.csv", "--baseline", "CompVis-stable-diffusion-v1-4", "--judges",
                         "skin-tone-parity", "--out", out, *FAST)
    assert code == 0, text
    groups = pd.read_csv(out / "group_rewards.csv").set_index(["model", "prompt"])
    labelled = chosen.groupby(["model", "prompt"])
    faces = labelled["human_faces"].sum() + labelled["small_or_unclear_faces"].sum()
    assert len(groups) == 6 and not groups["too_small"].any()
    assert groups["images"].to_dict() == labelled.size().to_dict()
    for model in chosen["model"].unique():
        assert groups.loc[(model, "nobody"), "empty"] and groups.loc[(model, "nobody"), "faces_found"] == 0
        people = groups.loc[(model, "people")]
        # every image here shows a labelled face; none is found twice; a face measured is a face found
        assert 1 <= people["faces_found"] <= faces[(model, "people")]
        assert people["faces_measured"] <= people["faces_found"]
    rows = pd.read_csv(out / "results.csv")
    mean = rows[(rows["metric"] == "mean") & (rows["category"] == "all")].set_index("model")
    per_model = groups.groupby("model")
    assert (mean["n_groups"] == 2).all() and (mean["n_groups_too_small"] == 0).all()
    assert (mean["n_groups_empty"] >= 1).all()  # at least the nobody group
    assert (mean["n_groups_measured"] + mean["n_groups_empty"] == 2).all()  # every group scored
    assert (mean["count"] == per_model["faces_found"].sum()).all()
    assert (mean["faces_measured"] == per_model["faces_measured"].sum()).all()
    report = (out / "report.md").read_text()
    for model, r in mean.iterrows():
        assert (f"| skin-tone-parity | {model} | 2 | {int(r['n_groups_measured'])} | {int(r['n_groups_empty'])} | 0 | "
                f"{int(per_model['images'].sum()[model])} | {int(r['count'])} | {int(r['faces_measured'])} |") in report
