"""Configs: YAML recipes, key=value overrides, validation, and the `rewardbench train` command."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from rewardbench.trainers.config import Config, load_config

RECIPES = sorted((Path(__file__).resolve().parents[2] / "trainers" / "recipes").glob("[a-z]*.yaml"))


def test_defaults_are_the_papers():
    from rewardbench.trainers.ddpo_math import STD_EPS

    c = Config()
    assert (c.sample.num_steps, c.sample.eta, c.sample.guidance_scale, c.sample.batch_size) == (50, 1.0, 7.0, 16)
    assert (c.train.lr, c.train.adam_betas, c.train.weight_decay, c.train.adam_eps) == (2e-6, (0.9, 0.999), 1e-2, 1e-8)
    assert (c.train.clip_range, c.train.adv_clip_max, c.train.timesteps_per_iter) == (1e-4, 10.0, 5)
    assert (c.train.step_mode, c.train.task_order, c.sample.group_by, STD_EPS) == ("paper", "algorithm1", "minibatch",
                                                                                    1e-7)
    # the two defaults that are not the paper's say so in the module docstring; the paper recipes set them
    import rewardbench.trainers.config as config_module

    assert "NOT the paper's" in config_module.__doc__
    assert (c.model.lora, c.model.mixed_precision) == (True, "no")
    paper = load_config(RECIPES[0].parent / "_paper_base.yaml")
    assert (paper.model.lora, paper.model.mixed_precision, paper.train.step_mode) == (False, "bf16", "paper")


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_loads(recipe):
    cfg = load_config(recipe)
    assert cfg.tasks and all(t.reward for t in cfg.tasks)


def test_paper_recipes_cover_the_experiments():
    rewards = {t.reward for r in RECIPES for t in load_config(r).tasks}
    assert {"imagereward", "skin-tone-parity", "detection-score"} <= rewards
    joint = load_config(next(r for r in RECIPES if r.stem == "joint"))
    assert len(joint.tasks) == 3 and joint.model.pretrained == "stabilityai/stable-diffusion-2-base"


def test_overrides_types_and_indexing():
    cfg = load_config(RECIPES[0], ["train.lr=1e-5", "tasks.0.weight=2", "run.resume=latest",
                                   "sample.num_steps=7", "model.lora_targets=[to_q, to_v]", "model.mixed_precision=no"])
    assert cfg.train.lr == 1e-5 and cfg.tasks[0].weight == 2.0 and cfg.run.resume == "latest"
    assert cfg.sample.num_steps == 7 and cfg.model.lora_targets == ("to_q", "to_v")
    assert cfg.model.mixed_precision == "no"  # YAML 1.1 reads a bare no as False


@pytest.mark.parametrize("bad, msg", [(["train.lrr=1"], "did you mean 'lr'"), (["nope.x=1"], "unknown config section"),
                                      (["sample.batch_size=5", "sample.images_per_prompt=2"], "multiple"),
                                      (["tasks.0.batch_size=6", "tasks.0.images_per_prompt=4"], "tasks.0.*multiple"),
                                      (["train.step_mode=ppo"], "step_mode"), (["sample.group_by=image"], "group_by"),
                                      (["train.task_order=random"], "task_order"),
                                      (["tasks.0.name=pretrain"], "not 'pretrain'"),
                                      (["sample.eta=0"], "eta"), (["train.lr"], "KEY=VALUE")])
def test_bad_configs_say_why(bad, msg):
    with pytest.raises(ValueError, match=msg):
        load_config(None, bad)


def test_cli_help_and_print_config():
    from rewardbench.cli.train import train

    r = CliRunner().invoke(train, ["--help"])
    assert r.exit_code == 0 and "rewardbench train --config trainers/recipes/tiny_smoke.yaml" in r.output
    r = CliRunner().invoke(train, ["--config", str(RECIPES[0]), "--print-config", "train.lr=3e-4"])
    assert r.exit_code == 0 and '"lr": 0.0003' in r.output
    r = CliRunner().invoke(train, ["--config", str(RECIPES[0]), "train.nope=1"])
    assert r.exit_code == 2 and "unknown key" in r.output


def test_prompt_sources(tmp_path):
    import pandas as pd

    from rewardbench.trainers.prompts import load_prompts

    (tmp_path / "p.txt").write_text("a cat\n\na dog\n")
    assert load_prompts(str(tmp_path / "p.txt")) == ["a cat", "a dog"]
    pd.DataFrame({"prompt": ["x", "y", "x", None]}).to_parquet(tmp_path / "p.parquet")
    assert load_prompts(str(tmp_path / "p.parquet")) == ["x", "y"]  # de-duplicated, nulls dropped
    assert load_prompts(["a", "b"]) == ["a", "b"]
    assert load_prompts("set:occupations")[:1] == load_prompts({"set": "occupations"})[:1] == \
        ["a portrait of an accountant"]
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("baker\n")
    assert load_prompts({"set": "occupations", "path": str(jobs)}) == ["a portrait of a baker"]
    assert load_prompts("set:occupations", prompt_paths={"occupations": str(jobs)}) == ["a portrait of a baker"]
    with pytest.raises(ValueError, match="needs a 'set' key"):
        load_prompts({"path": str(jobs)})
    with pytest.raises(FileNotFoundError):
        load_prompts(str(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="empty"):
        load_prompts([])


def test_the_old_spelling_of_a_prompt_set_still_works_with_a_warning(tmp_path):
    """Before "suite" came to mean only a run-benchmark suite, a task named its prompt set ``suite:NAME`` or
    ``{suite: NAME}`` and ``run.suite_paths`` gave local copies: read as ``set:`` and ``run.prompt_paths``."""
    from rewardbench.trainers.prompts import load_prompts

    jobs = tmp_path / "jobs.txt"
    jobs.write_text("baker\n")
    with pytest.warns(DeprecationWarning, match="'suite:occupations' is now 'set:occupations'"):
        assert load_prompts("suite:occupations") == load_prompts("set:occupations")
    with pytest.warns(DeprecationWarning, match="is now 'set:occupations'"):
        assert load_prompts({"suite": "occupations", "path": str(jobs)}) == ["a portrait of a baker"]
    recipe = tmp_path / "old.yaml"
    recipe.write_text(f"tasks:\n  - {{name: jobs, prompts: 'suite:occupations'}}\n"
                      f"run: {{suite_paths: {{occupations: {jobs}, geneval: meta.jsonl}}}}\n")
    with pytest.warns(DeprecationWarning, match="run.suite_paths is now run.prompt_paths"):
        cfg = load_config(recipe, ["run.prompt_paths.geneval=mine.jsonl"])
    assert cfg.run.prompt_paths == {"occupations": str(jobs), "geneval": "mine.jsonl"}  # the new key wins
    assert "suite_paths" not in cfg.to_dict()["run"]


def test_a_checkpoint_fingerprinted_with_the_old_spelling_resumes(tmp_path):
    """A checkpoint written before the rename kept ``tasks.N.prompts: suite:NAME`` (or ``tasks.N.prompts.suite``) in
    its fingerprint; the same run under the renamed recipe (``set:NAME``) resumes from it. The resolved prompts
    (``prompts_sha256``, ``n_prompts``) still pin what is trained on: another prompt set is refused."""
    import json
    from types import SimpleNamespace

    from rewardbench.trainers.checkpoints import ResumeRefusedError, check_resume, run_fingerprint

    recipe = ["tasks=[{name: a, prompts: 'set:occupations'}, {name: b, prompts: {set: object-pairs-train, n: 8}}]"]
    tasks = [SimpleNamespace(description="jpeg-compressibility", prompts=["a portrait of a baker"]),
             SimpleNamespace(description="jpeg-compressibility", prompts=["a person and a bicycle"] * 8)]
    new = run_fingerprint(load_config(None, recipe), tasks)
    assert new["tasks.0.prompts.set"] == "occupations" and new["tasks.1.prompts.set"] == "object-pairs-train"
    # what the earlier code stored: the recipe's raw spelling, flattened
    old = {k: v for k, v in new.items() if k not in ("tasks.0.prompts.set", "tasks.1.prompts.set")}
    old |= {"tasks.0.prompts": "suite:occupations", "tasks.1.prompts.suite": "object-pairs-train"}
    ckpt = tmp_path / "step_000002"
    ckpt.mkdir()
    (ckpt / "state.json").write_text(json.dumps({"step": 2, "fingerprint": old}))
    assert check_resume(ckpt, new) == []
    (ckpt / "state.json").write_text(json.dumps({"step": 2, "fingerprint": old | {"tasks.0.prompts": "suite:x"}}))
    with pytest.raises(ResumeRefusedError, match="tasks.0.prompts.set: 'x' -> 'occupations'"):
        check_resume(ckpt, new)


def test_recipes_name_registered_rewards_and_existing_prompt_sets():
    import rewardbench

    for recipe in RECIPES:
        for task in load_config(recipe).tasks:
            rewardbench.get_spec(task.reward)  # raises UnknownRewardError with "did you mean"
            if isinstance(task.prompts, str) and task.prompts.startswith("set:"):
                from rewardbench.benchmarks.prompt_sets import list_prompt_sets

                assert task.prompts[len("set:"):] in list_prompt_sets(), (recipe.name, task.prompts)
