"""Evaluation while training (trainers/evaluate.py): held-out prompts judged through run-benchmark every
``run.eval_every`` iterations, logged in metrics.csv and TensorBoard beside the training reward, plotted, and
without touching what training does."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

SMOKE = Path(__file__).resolve().parents[2] / "trainers" / "recipes" / "tiny_smoke.yaml"


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_rewardbench_train_judges_held_out_prompts_while_it_trains(tmp_path):
    from rewardbench.cli.train import train

    args = ["--config", str(SMOKE), "run.iterations=2", "run.checkpoint_every=0", "run.sample_every=0"]
    r = CliRunner().invoke(train, [*args, "run.eval_every=1", f"run.output_dir={tmp_path / 'eval'}"])
    assert r.exit_code == 0, r.output
    out = tmp_path / "eval"
    assert f"reports in {out / 'eval'}/step_*/report.md" in r.output and "training_vs_heldout.png" in r.output
    rows = _rows(out / "metrics.csv")
    held = [row for row in rows if row["task"].startswith("heldout/")]
    # every evaluation (after iterations 1 and 2) judges with the training reward and the recipe's judges; its rows
    # carry the step of its folder (eval/step_N: iteration N in metrics.csv, as the training rows count them)
    judges = ["heldout/jpeg-compressibility", "heldout/vendi", "heldout/pairwise-cosine-distance"]
    assert [(row["iteration"], row["task"]) for row in held] == [(i, j) for i in ("1", "2") for j in judges]
    assert [row["iteration"] for row in rows if not row["task"].startswith("heldout/")] == ["1", "2"]
    assert sorted(p.name for p in (out / "eval").glob("step_*")) == ["step_000001", "step_000002"]
    for row in held:
        mean, low, high = (float(row[k]) for k in ("reward_mean", "heldout_ci_low", "heldout_ci_high"))
        assert low <= mean <= high and math.isfinite(float(row["heldout_base"]))
        assert 0 <= float(row["heldout_win_rate"]) <= 1
    assert (out / "training_vs_heldout.png").stat().st_size > 0
    for step in ("step_000001", "step_000002"):
        report = (out / "eval" / step / "report.md").read_text()
        assert "vendi" in report and "step" in report
    assert not (out / "eval" / "weights" / "step_000001").exists()  # weights are dropped once judged
    # the base model's images are generated once: the second evaluation links the first one's
    first, second = (sorted((out / "eval" / step / "images").glob("base-*/*.png")) for step in ("step_000001",
                                                                                                "step_000002"))
    assert len(first) == len(second) > 0
    assert all(a.name == b.name and a.stat().st_ino == b.stat().st_ino for a, b in zip(first, second))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = EventAccumulator(str(out / "tensorboard"))
    tb.Reload()
    assert {"heldout/vendi/reward_mean", "heldout/vendi/heldout_win_rate"} <= set(tb.Tags()["scalars"])
    # the evaluation leaves training as it was: the same losses and rewards without it
    r = CliRunner().invoke(train, [*args, f"run.output_dir={tmp_path / 'plain'}"])
    assert r.exit_code == 0, r.output
    keys = ("iteration", "task", "reward_mean", "loss", "grad_norm")
    assert [{k: row[k] for k in keys} for row in rows if not row["task"].startswith("heldout/")] == \
        [{k: row[k] for k in keys} for row in _rows(tmp_path / "plain" / "metrics.csv")]


def test_evaluation_needs_a_judge(tmp_path):
    from rewardbench.trainers.config import load_config
    from rewardbench.trainers.evaluate import eval_judges

    cfg = load_config(SMOKE, ["eval.judges=[]"])
    assert eval_judges(cfg, ["jpeg-compressibility", "pkg.module:fn", lambda *a: None]) == ["jpeg-compressibility"]
    with pytest.raises(ValueError, match="eval.judges"):
        eval_judges(cfg, [lambda *a: None])


def test_group_judges_need_as_many_images_per_prompt_as_they_measure():
    """Vendi or parity of one image measures nothing: refused before training, naming the setting to change."""
    from rewardbench.errors import UsageError
    from rewardbench.trainers.config import load_config
    from rewardbench.trainers.evaluate import eval_judges

    with pytest.raises(UsageError, match="vendi, pairwise-cosine-distance .* makes 1 per prompt: set "
                                         "eval.images_per_prompt=2"):
        eval_judges(load_config(SMOKE, ["eval.images_per_prompt=1"]), [])
    # without eval.images_per_prompt the suite's count applies (the fairness suite's 16)
    assert eval_judges(load_config(SMOKE, ["eval.images_per_prompt=null"]), []) == ["vendi",
                                                                                     "pairwise-cosine-distance"]


def test_a_group_judge_gets_several_images_per_prompt_unless_told_otherwise():
    """The default held-out judges include Vendi, a group reward: by default the evaluation makes 4 images of each
    prompt (the preference suite makes 1); an explicit eval.images_per_prompt below a judge's minimum is refused
    before training; without a group judge the suite's count stands."""
    from rewardbench.errors import UsageError
    from rewardbench.trainers.config import load_config
    from rewardbench.trainers.evaluate import eval_images_per_prompt, eval_judges

    cfg = load_config(None, ["run.eval_every=1"])
    judges = eval_judges(cfg, ["jpeg-compressibility"])
    assert "vendi" in judges and eval_images_per_prompt(cfg, judges) == 4
    plain = load_config(None, ["run.eval_every=1", "eval.judges=[aesthetic]"])
    assert eval_images_per_prompt(plain, eval_judges(plain, ["jpeg-compressibility"])) == 1
    with pytest.raises(UsageError, match="eval.images_per_prompt=2"):
        eval_judges(load_config(None, ["run.eval_every=1", "eval.images_per_prompt=1"]), ["jpeg-compressibility"])


@pytest.mark.parametrize("recipe,extra,steps,tokens", [
    (SMOKE, [], 4, None), (SMOKE, ["eval.num_steps=7"], 7, None),
    (SMOKE.parent / "flow_grpo_tiny.yaml", ["eval.num_steps=7"], 7, 128)])
def test_the_evaluation_samples_as_the_run_asks(tmp_path, monkeypatch, recipe, extra, steps, tokens):
    """Flow-GRPO trains with few sampling steps and evaluates with more (eval_num_steps): eval.num_steps, when
    set, is what run-benchmark generates the held-out images with; a flow run's images are conditioned on the 128
    text tokens it trains with (FLUX's images change with the padding)."""
    import pandas as pd
    import torch

    import rewardbench.trainers.evaluate as ev
    from rewardbench.trainers.config import load_config

    cfg = load_config(recipe, [f"run.output_dir={tmp_path}", "sample.num_steps=4", *extra])
    seen = []

    def rows(run):
        seen.append((run.generation.steps, run.generation.max_sequence_length))
        return pd.DataFrame({"category": [], "judge": [], "model": [], "metric": []})
    monkeypatch.setattr(ev, "_benchmark_rows", rows)
    ev.evaluate(cfg, torch.nn.Linear(1, 1), 1, ["vendi"], torch.device("cpu"), 1,
                lambda unet, dest: Path(dest).mkdir(parents=True))
    assert seen == [(steps, tokens)]
