"""``rewardbench run-benchmark`` end to end, offline: the tiny pipeline with a trainer's LoRA against its base,
real offline judges beside a random-weight prompted judge; resuming, extending, refusing a changed
configuration, dry runs, missing judge weights, and a kill -9 in the middle of generation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from rewardbench.cli.run_benchmark import run_benchmark as cli

SUITE = """\
name: smoke
description: offline smoke suite
prompts:
  - {set: occupations, limit: 3}
  - {set: object-pairs, sample: 2, category: pairs, judges: [jpeg-compressibility]}
images_per_prompt: 2
judges: [jpeg-compressibility, vendi, clipscore-b32]
"""
FAST = ["--steps", "3", "--resolution", "32", "--num-workers", "0", "--n-boot", "300", "--no-progress"]


def _invoke(*args):
    res = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return res.exit_code, res.output


@pytest.fixture(scope="module")
def bench(tmp_path_factory, trained_lora):
    d = tmp_path_factory.mktemp("bench")
    (d / "smoke.yaml").write_text(SUITE)
    args = ["--suite", d / "smoke.yaml", "--model", f"ft={trained_lora}", "--baseline", "base=tiny", "--out",
            d / "out", "--random-weights", "--config", "clipscore-b32:tiny=True", *FAST]
    code, out = _invoke(*args, "--json")
    assert code == 0, out
    return d / "out", args, json.loads(out[out.index("{"):])


def test_the_full_report_is_written(bench):
    out, _, res = bench
    assert res["summary"]["images"] == 2 * 5 * 2 and res["summary"]["generated_now"] == 20
    for f in ("report.md", "results.csv", "results.parquet", "scores.csv", "scores.parquet", "cross_reward.csv",
              "results.json", "group_rewards.csv", "manifest.jsonl", "config.json", "plots/win_rates.png",
              "plots/scores.png", "plots/categories.png"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    rows = pd.read_csv(out / "results.csv")
    assert set(rows["metric"]) == {"mean", "win_rate"} and set(rows["model"]) == {"ft", "base"}
    wr = rows[(rows["metric"] == "win_rate") & (rows["category"] == "all")].set_index("judge")
    # the object pairs are judged by jpeg-compressibility only (their source says so); a group reward gives one
    # value per prompt
    assert wr.loc["jpeg-compressibility", "n_pairs"] == 10 and wr.loc["jpeg-compressibility", "n_prompts"] == 5
    assert wr.loc["clipscore-b32", "n_pairs"] == 6 and wr.loc["vendi", "n_pairs"] == 3
    # categories: each source's own, or the one its spec names
    assert set(rows.loc[rows["judge"] == "jpeg-compressibility", "category"]) == {"all", "occupations", "pairs"}
    cross = pd.read_csv(out / "cross_reward.csv")
    assert set(cross["model"]) == {"ft", "base"} and "jpeg-compressibility win_rate" in cross


def test_win_rate_matches_a_count_by_hand(bench):
    out, _, _ = bench
    s = pd.read_csv(out / "scores.csv")
    j = s[s["judge"] == "jpeg-compressibility"]
    wide = j.pivot_table(index=["prompt", "index"], columns="model", values="score")
    d = (wide["ft"] - wide["base"]).to_numpy()
    assert (d != 0).any()  # the LoRA changed the images
    want = ((d > 0).sum() + 0.5 * (d == 0).sum()) / len(d)
    rows = pd.read_csv(out / "results.csv")
    got = rows[(rows["metric"] == "win_rate") & (rows["judge"] == "jpeg-compressibility") & (rows["category"] == "all")]
    assert got["value"].item() == pytest.approx(want)
    assert got["wins"].item() == (d > 0).sum() and got["losses"].item() == (d < 0).sum()
    man = pd.read_json(out / "manifest.jsonl", lines=True)  # model and baseline start from the same noise
    assert man.groupby(["prompt", "index"])["seed"].nunique().max() == 1 and man["seed"].nunique() == 10


def test_scores_keep_each_images_file_seed_and_prompt_id(bench):
    out, _, _ = bench
    s = pd.read_csv(out / "scores.csv")
    prompts = [json.loads(line) for line in (out / "prompts.jsonl").read_text().splitlines()]
    img = s[s["judge"] == "jpeg-compressibility"]
    assert img["image"].map(lambda f: (out / f).is_file()).all() and img["seed"].notna().all()
    assert (img["prompt_id"].map(lambda i: prompts[i]["prompt"]) == img["prompt"]).all()  # the suite's prompt ids
    from rewardbench.benchmarks.generators import seed_for

    assert (img.apply(lambda r: seed_for(r["prompt"], r["index"]), axis=1) == img["seed"]).all()
    meta = json.loads((out / "results.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert meta["prompts"]["sha256"] == config["prompts_sha256"]  # generated: the prompts judged are the suite's
    assert meta["seeds"]["models"] == ["ft", "base"]


def test_random_weight_judges_are_labelled_everywhere(bench):
    out, _, _ = bench
    report = (out / "report.md").read_text()
    assert "Judges with random weights: clipscore-b32" in report and "clipscore-b32 (random weights)" in report
    assert "jpeg-compressibility (random weights)" not in report  # needs no weights: real
    assert "Generators with random weights: ft, base" in report  # a LoRA on the tiny random pipeline
    rows = pd.read_csv(out / "results.csv")
    assert rows.groupby("judge")["judge_random_weights"].all().to_dict() == \
        {"clipscore-b32": True, "jpeg-compressibility": False, "vendi": False}
    meta = json.loads((out / "results.json").read_text())
    assert meta["judges"]["clipscore-b32"]["random_weights"] and not meta["judges"]["vendi"]["random_weights"]
    assert meta["prompts"]["n"] == 5 and meta["images_per_prompt"] == 2 and meta["versions"]["rewardbench"]
    assert meta["models"]["ft"]["source"].endswith("+ LoRA " + meta["models"]["ft"]["spec"])


def test_plot_titles_name_random_weight_judges(bench, monkeypatch):
    from rewardbench.benchmarks import plots, run

    out, args, _ = bench
    figures = []

    def keep(fig, path):
        figures.append((fig._suptitle.get_text() if fig._suptitle else "", [a.get_title() for a in fig.axes]))
        return path

    monkeypatch.setattr(plots, "_save", keep)
    plan = run.make_plan(run.BenchmarkRun(out=str(out), suite=str(args[1]), models=(args[3],), baseline="base=tiny"))
    judges = json.loads((out / "results.json").read_text())["judges"]
    plots.write_plots(out / "p", pd.read_csv(out / "results.csv"), pd.read_csv(out / "scores.csv"), plan, judges)
    assert len(figures) == 3
    for suptitle, axes in figures:  # every figure's title says which judges and generators have random weights
        assert "judges with random weights: clipscore-b32" in suptitle + axes[0]
        assert "generators with random weights: ft, base" in suptitle + axes[0]
    assert "clipscore-b32 (random weights)" in figures[1][1] and "vendi" in figures[1][1]  # per-judge panels


def test_rerun_resumes_and_new_judges_reuse_the_images(bench):
    out, args, _ = bench
    code, text = _invoke(*args, "--json")
    res = json.loads(text[text.index("{"):])["summary"]
    assert code == 0 and res["generated_now"] == 0 and res["scored_now"] == 0
    mtime = (out / "images").stat().st_mtime_ns
    at = args.index("--config")
    other = args[:at] + args[at + 2:]  # clipscore-b32's option would name a judge not in the run
    code, text = _invoke(*other, "--judges", "jpeg-compressibility,jpeg-incompressibility", "--json")
    res = json.loads(text[text.index("{"):])["summary"]
    assert code == 0 and res["generated_now"] == 0 and res["scored_now"] == 20
    assert len(list((out / "scores").glob("*.parquet"))) == 2 and (out / "images").stat().st_mtime_ns == mtime
    assert set(pd.read_csv(out / "results.csv")["judge"]) == {"jpeg-compressibility", "jpeg-incompressibility"}


def test_a_changed_configuration_is_refused(bench):
    out, args, _ = bench
    changed = [a if a != "3" else "4" for a in args]  # --steps 3 -> 4
    code, text = _invoke(*changed)
    assert code == 2 and "another configuration" in text and "steps: 3 -> 4" in text
    code, text = _invoke(*args, "--images-per-prompt", "3")
    assert code == 2 and "images_per_prompt: 2 -> 3" in text


def test_dry_run_says_what_would_happen_and_does_nothing(tmp_path):
    code, text = _invoke("--suite", "fairness", "--model", "ft=tiny:1", "--baseline", "tiny", "--limit", "4",
                         "--out", tmp_path / "o", "--dry-run")
    assert code == 0, text
    assert "generate 64 images (16 per prompt) with ft" in text and "128 images x 3 judges" in text
    assert "skin-tone-parity" in text and not (tmp_path / "o").exists()


def test_missing_judge_weights_fail_before_any_generation(tmp_path):
    code, text = _invoke("--suite", "fairness", "--model", "ft=tiny:1", "--baseline", "tiny", "--limit", "1",
                         "--judges", "imagereward,jpeg-compressibility", "--out", tmp_path / "o", *FAST)
    assert code == 2 and "weights for reward 'imagereward' not found" in text and "--random-weights" in text
    assert not (tmp_path / "o" / "images").exists()


def test_a_leaderboard_refuses_random_weights_before_generating(tmp_path):
    code, text = _invoke("--suite", "fairness", "--model", "ft=tiny:1", "--baseline", "tiny", "--limit", "1",
                         "--judges", "jpeg-compressibility", "--to-leaderboard", "generators", "--out", tmp_path / "o",
                         *FAST)
    assert code == 2 and "real weights only" in text and "generators ft, tiny" in text
    assert not (tmp_path / "o" / "images").exists()


def test_usage_errors(tmp_path):
    code, text = _invoke("--suite", "fairnes", "--model", "tiny", "--out", tmp_path)
    assert code == 2 and "Did you mean 'fairness'" in text
    code, text = _invoke("--suite", "fairness", "--model", "a=tiny", "--model", "b=tiny:1", "--out", tmp_path)
    assert code == 2 and "--baseline is required" in text
    code, text = _invoke("--suite", "fairness", "--model", "tiny", "--judges", "imagerewad", "--out", tmp_path)
    assert code == 2 and "imagereward" in text
    code, text = _invoke("--list-suites")
    assert code == 0 and all(s in text for s in ("preference", "composition", "fairness", "diversity", "drawbench"))


def test_kill_9_during_generation_then_resume(tmp_path):
    out = tmp_path / "out"
    args = ["--suite", "fairness", "--model", "ft=tiny:1", "--baseline", "tiny", "--limit", "3", "--images-per-prompt",
            "3", "--judges", "jpeg-compressibility", "--gen-batch-size", "1", "--out", str(out), "--steps", "3",
            "--resolution", "32", "--num-workers", "0", "--n-boot", "200", "--no-progress", "--no-plots"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "rewardbench.cli", "run-benchmark", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = None
    while proc.poll() is None:
        manifests = sorted(out.glob("images/*/manifest.jsonl"))
        if manifests and len(manifests[0].read_text().splitlines()) >= 2:
            first = manifests[0]
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    assert first is not None and proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    done_before = sum(len(m.read_text().splitlines()) for m in out.glob("images/*/manifest.jsonl"))
    assert done_before < 18
    code, text = _invoke(*args, "--json")
    res = json.loads(text[text.index("{"):])["summary"]
    assert code == 0 and res["images"] == 18 and res["generated_now"] >= 18 - done_before
    assert res["generated_now"] <= 18 - done_before + 1  # at most the image whose line the kill cut
    for m in out.glob("images/*/manifest.jsonl"):
        rows = [json.loads(line) for line in m.read_text().splitlines() if line.startswith("{") and line.endswith("}")]
        keys = [(r["prompt_id"], r["index"]) for r in rows]
        assert sorted(set(keys)) == sorted({(p, i) for p in range(3) for i in range(3)})
    scores = pd.read_csv(out / "scores.csv")
    assert len(scores) == 18 and scores["score"].notna().all()
    # an image made before the kill and one made after both equal an uninterrupted generation
    from rewardbench.benchmarks.generators import DiffusersGenerator, GenerationSettings

    gen = DiffusersGenerator("ft", "tiny:1", GenerationSettings(steps=3, resolution=32))
    rows = [json.loads(line) for line in first.read_text().splitlines() if line.endswith("}")]
    for r in (rows[0], rows[-1]):
        want = (gen.generate([r["prompt"]], [r["seed"]])[0].permute(1, 2, 0).numpy() * 255).round()
        got = np.asarray(Image.open(Path(first.parent, r["file"])), dtype=float)
        assert np.abs(got - want).max() <= 1


def test_generate_replicas_without_a_generator_is_refused_before_anything_loads(tmp_path):
    (tmp_path / "m.jsonl").write_text(json.dumps({"image": "a.png", "prompt": "a cat", "model": "x"}) + "\n")
    res = CliRunner().invoke(cli, ["--images", str(tmp_path / "m.jsonl"), "--judges", "jpeg-compressibility",
                                   "--generate-replicas", "2", "--out", str(tmp_path / "out"), "--no-progress"])
    assert res.exit_code == 2 and "--generate-replicas 2: nothing is generated" in res.output, res.output
    assert not (tmp_path / "out" / "scores.csv").exists()
