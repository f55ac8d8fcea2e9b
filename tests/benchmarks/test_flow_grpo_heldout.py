"""Flow-GRPO's held-out prompts for its SD3.5-M and FLUX recipes: the ``flow-grpo-ocr`` prompt set and the
``flow-grpo-ocr``, ``flow-grpo-pickscore`` and ``geneval`` suites read small local files written here
(Flow-GRPO's real files are downloaded by a user), and a recipe's ``run.prompt_paths`` names only prompt sources
of its evaluation suite (run-benchmark refuses any other, which would stop training at its first evaluation)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rewardbench.benchmarks.prompt_sets import PromptSourceError, load_prompt_set
from rewardbench.benchmarks.suite import load_benchmark_suite, resolve_prompts
from rewardbench.trainers.config import load_config
from rewardbench.trainers.prompts import check_eval_overlap

RECIPES = sorted((Path(__file__).resolve().parents[2] / "trainers" / "recipes").glob("[a-z]*.yaml"))

OCR_TEST = ['A neon sign reading "Open Late" above a diner door.', "",
            'A chalkboard menu that says "Soup of the Day" outside a cafe.']


@pytest.fixture
def ocr_test(tmp_path):
    path = tmp_path / "test.txt"
    path.write_text("\n".join(OCR_TEST) + "\n")
    return path


@pytest.fixture
def geneval_test(tmp_path):
    """Flow-GRPO's test_metadata.jsonl in small: GenEval rows, each prompt more than once, in shuffled order."""
    two = {"tag": "counting", "include": [{"class": "clock", "count": 2}], "exclude": [{"class": "clock", "count": 3}],
           "prompt": "a photo of two clocks"}
    red = {"tag": "colors", "include": [{"class": "car", "count": 1, "color": "red"}], "prompt": "a photo of a red car"}
    path = tmp_path / "test_metadata.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (two, red, two, red, two)))
    return path


def test_the_ocr_prompt_set_reads_a_local_test_txt(ocr_test, tmp_path):
    rows = load_prompt_set("flow-grpo-ocr", path=ocr_test)
    assert [r["prompt"] for r in rows] == [OCR_TEST[0], OCR_TEST[2]] and [r["index"] for r in rows] == [0, 1]
    with pytest.raises(PromptSourceError, match="does not exist"):
        load_prompt_set("flow-grpo-ocr", path=tmp_path / "missing.txt")


def test_the_ocr_suite_takes_its_prompts_from_the_file_given(ocr_test):
    suite = load_benchmark_suite("flow-grpo-ocr")
    assert suite.judges == ("ocr", "pickscore", "aesthetic") and suite.images_per_prompt == 1
    rows = resolve_prompts(suite, {"flow-grpo-ocr": str(ocr_test)})
    assert [r["prompt"] for r in rows] == [OCR_TEST[0], OCR_TEST[2]] and rows[0]["source"] == "flow-grpo-ocr"
    assert [r["prompt"] for r in resolve_prompts(suite, {"flow-grpo-ocr": str(ocr_test)}, limit=1)] == [OCR_TEST[0]]


def test_the_geneval_suite_reads_flow_grpos_test_metadata_keeping_each_prompt_once(geneval_test):
    suite = load_benchmark_suite("geneval")
    assert suite.judges == ("geneval",) and suite.images_per_prompt == 4  # GenEval's four images per prompt
    rows = resolve_prompts(suite, {"geneval": str(geneval_test)}, limit=5)
    assert [(r["prompt"], r["category"]) for r in rows] == [("a photo of two clocks", "counting"),
                                                             ("a photo of a red car", "colors")]


def test_training_prompts_that_are_ocr_test_prompts_are_left_out(ocr_test):
    from rewardbench.benchmarks.prompt_sets.splits import evaluation_sets

    train = ['a sign that says "Welcome"', OCR_TEST[2].upper()]
    others = [s for s in evaluation_sets() if s != "flow-grpo-ocr"]  # offline: not tried here
    kept, dropped, _ = check_eval_overlap("ocr", train, {"flow-grpo-ocr": str(ocr_test)}, drop=True, skip=others)
    assert kept == train[:1] and dropped == {"flow-grpo-ocr": 1}


@pytest.mark.parametrize("recipe", [r for r in RECIPES if load_config(r).run.eval_every], ids=lambda p: p.stem)
def test_a_recipes_prompt_paths_are_sources_of_its_eval_suite(recipe):
    cfg = load_config(recipe)
    sources = {s.prompt_set for s in load_benchmark_suite(cfg.eval.suite).prompts}
    assert set(cfg.run.prompt_paths) <= sources, (recipe.name, dict(cfg.run.prompt_paths), sources)


@pytest.mark.parametrize("stem, suite, path", [("flow_grpo_ocr_sd35m", "flow-grpo-ocr", "ocr_test"),
                                                ("flow_grpo_geneval_sd35m", "geneval", "geneval_test"),
                                                ("flow_grpo_pickscore_sd35m", "flow-grpo-pickscore", "ocr_test"),
                                                ("flow_grpo_pickscore_flux", "flow-grpo-pickscore", "ocr_test")])
def test_flow_grpo_recipes_judge_their_held_out_prompts_while_training(stem, suite, path, request):
    """The recipe's evaluation, as trainers/evaluate.py resolves it, on a stand-in for the file it names."""
    from rewardbench.trainers.evaluate import eval_images_per_prompt, eval_judges

    cfg = load_config(next(r for r in RECIPES if r.stem == stem))
    task = cfg.tasks[0]
    assert cfg.run.eval_every and cfg.eval.suite == suite and task.drop_eval_overlap
    # each suite's one prompt set has the suite's name; the recipe points it at Flow-GRPO's file
    assert "flow_grpo/dataset" in task.prompts and "flow_grpo/dataset" in cfg.run.prompt_paths[suite]
    judges = eval_judges(cfg, [t.reward for t in cfg.tasks])
    assert judges[0] == task.reward == {"flow-grpo-ocr": "ocr", "geneval": "geneval",
                                        "flow-grpo-pickscore": "pickscore"}[suite]
    assert eval_images_per_prompt(cfg, judges) == {"flow-grpo-ocr": 1, "geneval": 4, "flow-grpo-pickscore": 1}[suite]
    # Flow-GRPO evaluates with more sampling steps than it trains with (eval_num_steps)
    assert cfg.eval.num_steps == (28 if "flux" in stem else 40) > cfg.sample.num_steps
    local = {name: str(request.getfixturevalue(path)) for name in cfg.run.prompt_paths}
    rows = resolve_prompts(load_benchmark_suite(cfg.eval.suite), local, limit=cfg.eval.prompts)
    assert len(rows) == 2
