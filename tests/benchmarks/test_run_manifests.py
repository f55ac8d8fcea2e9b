"""run-benchmark on pre-generated images of several models: real photos saved by three "models" (JPEG qualities,
an ordering the JPEG judges must recover), and real Stable Diffusion 1.4 / 1.5 / 2.1 images on DrawBench
prompts (../shared/data/faces-calibration, read in place)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from rewardbench.benchmarks.run import BenchmarkRun, run_benchmark

PHOTOS = {"astronaut": "people", "grace_hopper": "people", "coffee": "objects", "rocket": "objects",
          "chelsea": "animals"}
QUALITY = {"q95": 95, "q50": 50, "q15": 15}


@pytest.fixture(scope="module")
def photo_manifest(tmp_path_factory, photos):
    d = tmp_path_factory.mktemp("three_models")
    rows = []
    for name, cat in PHOTOS.items():
        img = Image.fromarray(photos[name]).resize((128, 128), Image.BICUBIC)
        for index, view in enumerate((img, img.transpose(Image.FLIP_LEFT_RIGHT))):
            for model, q in QUALITY.items():
                f = f"{model}/{name}_{index}.jpg"
                (d / model).mkdir(exist_ok=True)
                view.save(d / f, quality=q)
                rows.append({"image": f, "prompt": f"a photo: {name}", "model": model, "index": index,
                             "category": cat})
    (d / "generated.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d / "generated.jsonl"


@pytest.fixture(scope="module")
def three(photo_manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench3") / "out"
    run = BenchmarkRun(out=str(out), images=str(photo_manifest), baseline="q95",
                       judges=("jpeg-compressibility", "jpeg-incompressibility"), num_workers=0, n_boot=500,
                       progress=False)
    return run_benchmark(run)


def test_three_models_win_rates_follow_the_jpeg_quality(three):
    rows = three.rows
    wr = rows[(rows["metric"] == "win_rate") & (rows["category"] == "all")].set_index(["model", "judge"])
    assert wr.loc[("q15", "jpeg-compressibility"), "value"] == 1.0  # re-encoding a q15 image is smaller: all 10
    assert wr.loc[("q15", "jpeg-compressibility"), "wins"] == 10 and wr.loc[("q15", "jpeg-compressibility"),
                                                                           "n_prompts"] == 5
    assert wr.loc[("q15", "jpeg-incompressibility"), "value"] == 0.0
    assert wr.loc[("q15", "jpeg-compressibility"), "p_value"] == pytest.approx(2 / 2**10)  # exact sign test
    bt = rows[(rows["metric"] == "bt_log_strength") & (rows["category"] == "all")]
    ranked = {j: g.sort_values("value", ascending=False)["model"].tolist() for j, g in bt.groupby("judge")}
    assert ranked == {"jpeg-compressibility": ["q15", "q50", "q95"], "jpeg-incompressibility": ["q95", "q50", "q15"]}
    assert set(rows["category"]) == {"all", "people", "objects", "animals"}


def test_scores_are_the_judges_own_on_each_file(three, photo_manifest):
    import rewardbench

    reward = rewardbench.load_reward("jpeg-compressibility")
    scores = three.scores
    row = scores[(scores["judge"] == "jpeg-compressibility") & (scores["model"] == "q50")].iloc[0]
    name = row["prompt"].split(": ")[1]
    path = photo_manifest.parent / "q50" / f"{name}_{row['index']}.jpg"
    assert row["score"] == pytest.approx(float(reward([str(path)]).scores[0]), rel=1e-6)


def test_reports_of_a_manifest_run(three):
    out = three.out
    report = (out / "report.md").read_text()
    assert "## Ranking (Bradley–Terry" in report and "## Per category" in report
    assert "pre-generated images paired by prompt and index" in report and "random weights" not in report
    assert "| jpeg-compressibility | 1 | q15 |" in report and "| jpeg-incompressibility | 1 | q95 |" in report
    cross = pd.read_csv(out / "cross_reward.csv").set_index("model")
    assert list(cross.index) == ["q15", "q50", "q95"] and np.isnan(cross.loc["q95", "jpeg-compressibility win_rate"])
    assert cross.loc["q15", "jpeg-compressibility"] > cross.loc["q50", "jpeg-compressibility"] > \
        cross.loc["q95", "jpeg-compressibility"]
    meta = json.loads((out / "results.json").read_text())
    assert meta["baseline"] == "q95" and set(meta["models"]) == set(QUALITY)
    # the prompts judged are the manifest's (in its order, with their categories); no generation seed rule
    from rewardbench.benchmarks.suite import prompts_hash

    assert meta["prompts"]["n"] == len(PHOTOS) and meta["prompts"]["sha256"] == prompts_hash(
        [{"prompt": f"a photo: {name}", "category": cat} for name, cat in PHOTOS.items()])
    assert meta["seeds"] is None and meta["images_per_prompt"] is None
    assert {p.name for p in (out / "plots").iterdir()} == {"win_rates.png", "scores.png", "categories.png"}


def test_group_rewards_count_the_faces_found(photo_manifest, tmp_path):
    res = run_benchmark(BenchmarkRun(out=str(tmp_path / "out"), images=str(photo_manifest), baseline="q95",
                                     judges=("skin-tone-parity",), num_workers=0, n_boot=200, progress=False,
                                     plots=False))
    groups = pd.read_csv(res.out / "group_rewards.csv")
    assert len(groups) == 3 * 5 and set(groups["images"]) == {2}  # one group per (model, prompt): its 2 images
    g = groups.set_index(["model", "prompt"])
    faces = g["faces_found"]
    assert faces[("q95", "a photo: astronaut")] >= 2 and faces[("q95", "a photo: coffee")] == 0  # real faces
    assert "no face" in g.loc[("q95", "a photo: coffee"), "note"] and g.loc[("q95", "a photo: coffee"), "empty"]
    assert 1 <= g.loc[("q95", "a photo: astronaut"), "faces_measured"] <= faces[("q95", "a photo: astronaut")]
    assert not g["too_small"].any()
    mean = res.rows[(res.rows["metric"] == "mean") & (res.rows["category"] == "all")].set_index("model")
    assert (mean["count"] == groups.groupby("model")["faces_found"].sum()).all() and (mean["n_images"] == 10).all()
    assert (mean["faces_measured"] == groups.groupby("model")["faces_measured"].sum()).all()
    assert (mean["n_groups"] == 5).all() and (mean["n_groups_empty"] == groups.groupby("model")["empty"].sum()).all()
    assert "faces found" in (res.out / "report.md").read_text()


def test_a_folder_of_one_model_given_by_a_relative_path(photo_dir, monkeypatch):
    from click.testing import CliRunner

    from rewardbench.cli.run_benchmark import run_benchmark as cli

    monkeypatch.chdir(photo_dir.parent)
    res = CliRunner().invoke(cli, ["--images", photo_dir.name, "--prompts", f"{photo_dir.name}/prompts.txt",
                                   "--judges", "jpeg-compressibility", "--out", "out", "--num-workers", "0",
                                   "--no-progress", "--no-plots"])
    assert res.exit_code == 0, res.output
    rows = pd.read_csv(photo_dir.parent / "out" / "results.csv")
    assert rows[["model", "metric", "n_images"]].values.tolist() == [["photos", "mean", 5]]  # one model: means only
    (photo_dir.parent / "broken").mkdir()
    (photo_dir.parent / "broken" / "a.png").write_bytes(b"not a png")
    res = CliRunner().invoke(cli, ["--images", "broken", "--prompts", "x", "--judges", "jpeg-compressibility",
                                   "--out", "out2", "--num-workers", "0", "--no-progress"])
    assert res.exit_code == 1 and "no image could be scored" in res.output


def test_results_go_to_a_leaderboard(photo_manifest, tmp_path, monkeypatch):
    from rewardbench.leaderboards.board import read_board

    monkeypatch.setenv("REWARDBENCH_BOARDS", str(tmp_path / "boards"))
    res = run_benchmark(BenchmarkRun(out=str(tmp_path / "out"), images=str(photo_manifest), baseline="q95",
                                     judges=("jpeg-compressibility",), num_workers=0, n_boot=200, progress=False,
                                     plots=False, to_leaderboard="generators"))
    board = read_board("generators", root=tmp_path / "boards")
    assert res.summary["leaderboard"] == str(tmp_path / "boards" / "generators.csv")
    assert set(board["subject"]) == set(QUALITY) and set(board["metric"]) == {"mean", "win_rate", "bt_log_strength"}
    assert set(board["weights"]) == {"none (no weights needed)"} and set(board["suite"]) == {"pre-generated"}
    win = board[(board["metric"] == "win_rate") & (board["subject"] == "q15") & (board["category"] == "all")]
    assert win["value"].item() == 1.0 and "q95" in win["protocol"].item()


def test_real_sd_images_of_three_generators_on_drawbench(shared_data, tmp_path):
    labels = pd.read_csv(shared_data / "faces-calibration" / "labels.csv")
    keep = labels[labels["category"].isin(["Colors", "Counting", "Text"])].copy()
    keep["image"] = [str(shared_data / "faces-calibration" / p) for p in keep["image"]]
    keep[["image", "prompt", "model", "category"]].to_csv(tmp_path / "generated.csv", index=False)
    n_prompts = keep["prompt"].nunique()
    res = run_benchmark(BenchmarkRun(out=str(tmp_path / "out"), suite="drawbench",
                                     images=str(tmp_path / "generated.csv"), baseline="CompVis-stable-diffusion-v1-4",
                                     judges=("jpeg-compressibility",),
                                     num_workers=0, n_boot=300, progress=False, plots=False))
    rows = res.rows
    wr = rows[(rows["metric"] == "win_rate") & (rows["category"] == "all")].set_index("model")
    assert set(wr.index) == {"runwayml-stable-diffusion-v1-5", "stabilityai-stable-diffusion-2-1"}
    assert (wr["n_pairs"] == n_prompts).all() and (wr["n_prompts"] == n_prompts).all()
    s = res.scores.pivot(index="prompt", columns="model", values="score")
    d = s["stabilityai-stable-diffusion-2-1"] - s["CompVis-stable-diffusion-v1-4"]
    r = wr.loc["stabilityai-stable-diffusion-2-1"]
    assert (r["wins"], r["losses"]) == ((d > 0).sum(), (d < 0).sum())
    assert set(rows["category"]) == {"all", "Colors", "Counting", "Text"}
    assert (rows["metric"] == "bt_log_strength").sum() == 3 * 4  # three models, in "all" and each category
    report = (res.out / "report.md").read_text()
    assert "judges chosen for this run: jpeg-compressibility (the suite's: imagereward" in report
    assert "Human-preference" not in report  # the suite's description names judges this run did not use
