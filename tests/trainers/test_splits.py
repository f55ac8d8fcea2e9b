"""Held-out splits as data: the person-description training source, the held-out prompt sets, the trainer's
refusal to train on evaluation prompts, and recipes that train on training splits only."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from rewardbench.benchmarks.prompt_sets import list_prompt_sets, load_prompt_set
from rewardbench.benchmarks.prompt_sets.occupations import OCCUPATIONS
from rewardbench.benchmarks.prompt_sets.people import ETHNICITY_PATTERN, person_descriptions
from rewardbench.benchmarks.prompt_sets.splits import NOT_HELD_OUT, eval_overlap, evaluation_sets, normalize
from rewardbench.trainers.config import load_config
from rewardbench.trainers.prompts import check_eval_overlap, load_prompts

RECIPES = sorted((Path(__file__).resolve().parents[2] / "trainers" / "recipes").glob("[a-z]*.yaml"))


def test_person_descriptions_name_no_occupation_and_no_ethnicity():
    prompts = [r["prompt"] for r in person_descriptions()]
    assert len(prompts) == len(set(prompts)) == 11_760
    words = re.compile(r"\b(" + "|".join(re.escape(o) for o in OCCUPATIONS) + r")\b")
    assert not [p for p in prompts if words.search(p)]
    assert not [p for p in prompts if ETHNICITY_PATTERN.search(p) or p.startswith("a portrait of")]
    assert not {normalize(p) for p in prompts} & {normalize(r["prompt"]) for r in load_prompt_set("occupations")}


def test_person_captions_from_a_file_are_filtered_like_the_papers(tmp_path):
    f = tmp_path / "captions.txt"
    f.write_text("a woman in a black hat\nan asian man smiling\na dark-skinned girl reading\n"
                 "a black woman on a bench\na man riding a bicycle\na man riding a bicycle\n")
    rows = load_prompt_set("person-descriptions", path=f)
    assert [r["prompt"] for r in rows] == ["a woman in a black hat", "a man riding a bicycle"]
    f.write_text("an indian woman\n")
    with pytest.raises(ValueError, match="no captions left"):
        person_descriptions(path=f)


def test_object_pairs_train_on_seen_objects_and_seen_pairs_only():
    from rewardbench.benchmarks.prompt_sets.object_pairs import is_unseen, is_unseen_object
    from rewardbench.coco import COCO_CLASSES

    train = load_prompt_set("object-pairs-train")
    unseen_objects = {o for o in COCO_CLASSES if is_unseen_object(o)}
    assert len(unseen_objects) == 16 and "person" in unseen_objects  # the paper withholds objects, not pairs only
    assert all(not set(r["objects"]) & unseen_objects and not is_unseen(*r["objects"]) for r in train)
    held = load_prompt_set("object-pairs-unseen-objects")
    assert all(set(r["objects"]) & unseen_objects for r in held) and len(held) == (80 * 79 - 64 * 63) * 5
    prompts = {r["prompt"] for r in train}
    assert not prompts & {r["prompt"] for r in held}
    assert not prompts & {r["prompt"] for r in load_prompt_set("object-pairs-unseen")}
    assert prompts <= {r["prompt"] for r in load_prompt_set("object-pairs-seen")}
    assert len(load_prompt_set("object-pairs-train", n=50, seed=1)) == 50


def test_held_out_sets_are_every_prompt_set_but_the_declared_training_ones():
    held = set(evaluation_sets())
    assert {"occupations", "diffusiondb-heldout", "object-pairs-unseen", "object-pairs-unseen-objects", "partiprompts",
            "geneval", "flow-grpo-ocr", "flow-grpo-pickscore"} <= held
    assert not held & set(NOT_HELD_OUT)
    assert held | (set(NOT_HELD_OUT) & set(list_prompt_sets())) == set(list_prompt_sets())


def test_overlap_is_found_case_and_space_insensitively_and_unloadable_sets_are_reported(tmp_path):
    overlap, unchecked = eval_overlap(["A  Portrait of a NURSE", "a man riding a bicycle"],
                                      sets=["occupations", "partiprompts"])
    assert overlap == {"occupations": ["A  Portrait of a NURSE"]}
    assert "partiprompts" in unchecked  # offline, without a local copy: reported, never silently passed
    parti = tmp_path / "parti.tsv"
    parti.write_text("Prompt\tCategory\tChallenge\tNote\na man riding a bicycle\tPeople\tBasic\t\n")
    overlap, unchecked = eval_overlap(["a man riding a bicycle"], sets=["partiprompts"],
                                      paths={"partiprompts": str(parti)})
    assert overlap == {"partiprompts": ["a man riding a bicycle"]} and not unchecked


@pytest.fixture
def diffusiondb(tmp_path, monkeypatch):
    """A stand-in for DiffusionDB's metadata.parquet (the official file is 2M rows and needs the hub), with
    prompts that differ only in case and spacing, as the real file has."""
    path = tmp_path / "metadata.parquet"
    prompts = [f"user prompt number {i}" for i in range(2500)] + [f"User  Prompt number {i}" for i in range(0, 2500, 5)]
    pd.DataFrame({"prompt": prompts}).to_parquet(path)
    import rewardbench.benchmarks.prompt_sets.diffusiondb as ddb

    monkeypatch.setattr(ddb, "download", lambda url, timeout=10.0: path)
    return path


def test_trainer_refuses_held_out_prompts_unless_allowed(tmp_path, diffusiondb):
    from rewardbench.trainers.train import train

    base = ["model.pretrained=tiny", "model.resolution=32", "run.device=cpu", "run.tensorboard=false",
            "run.iterations=0", f"run.output_dir={tmp_path}", "tasks.0.reward=jpeg-compressibility"]
    with pytest.raises(ValueError, match=r"held-out evaluation prompts \(diffusiondb-heldout: "):
        train(load_config(None, [*base, "tasks.0.prompts=set:diffusiondb-heldout"]))
    with pytest.raises(ValueError, match="occupations: 'a portrait of a nurse'.*allow_eval_overlap"):
        train(load_config(None, [*base, "tasks.0.prompts=[a portrait of a nurse, a red apple]"]))
    done = train(load_config(None, [*base, "tasks.0.prompts=[a portrait of a nurse]",
                                    "tasks.0.allow_eval_overlap=true"]))
    assert done["step"] == 0
    seen = []

    def record(images, prompts, metadata):
        seen.extend(prompts)
        return images.mean(dim=(1, 2, 3)), {}

    small = ["run.iterations=1", "model.resolution=8", "sample.num_steps=2", "train.timesteps_per_iter=1",
             "sample.batch_size=4", "sample.micro_batch_size=4", "train.micro_batch_size=4", "run.sample_every=0"]
    train(load_config(None, [*base, *small, "tasks.0.prompts=[a portrait of a nurse, a red apple]",
                             "tasks.0.drop_eval_overlap=true", "run.overwrite=true"]), rewards={"task": record})
    assert seen == ["a red apple"] * 4


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipes_train_on_training_splits_only(recipe, diffusiondb, shared_data):
    """Every task of every recipe loads its prompts from a training split, and none of them is a prompt
    of a held-out prompt set (the official files of PartiPrompts, GenEval and T2I-CompBench from ../shared/data;
    DrawBench, HPDv2 and GenEval 2, not in it, cannot share a prompt with these sources' templates or DiffusionDB's)."""
    p = shared_data / "prompts"
    paths = {"partiprompts": p / "partiprompts" / "PartiPrompts.tsv",
             "geneval": p / "geneval" / "evaluation_metadata.jsonl",
             **{f"t2i-compbench-{c.replace('_', '-')}": p / "t2i-compbench" / f"{c}_val.txt"
                for c in ("color", "shape", "texture", "spatial", "non_spatial", "complex", "numeracy", "3d_spatial")}}
    paths = {k: str(v) for k, v in paths.items()}
    for task in load_config(recipe).tasks:
        if isinstance(task.prompts, str) and task.prompts.startswith("set:"):
            assert task.prompts[len("set:"):] in NOT_HELD_OUT, (recipe.name, task.name)
        assert not task.allow_eval_overlap
        if isinstance(task.prompts, str) and task.prompts.endswith((".txt", ".jsonl")) \
                and not Path(task.prompts).is_file():
            # Flow-GRPO's SD3.5-M recipes train on its repository's prompt files, which a user downloads
            assert "flow_grpo" in task.prompts, (recipe.name, task.prompts)
            pytest.skip(f"{task.prompts}: Flow-GRPO's training prompts, not in this checkout (see the recipe)")
        prompts = load_prompts(task.prompts)
        if task.drop_eval_overlap:  # what the trainer trains on: the held-out prompts found are left out
            before = len(prompts)
            prompts, dropped, _ = check_eval_overlap(task.name, prompts, paths, drop=True)
            # dropped counts held-out prompts; a file may hold one several times (up to case and spacing)
            assert sum(dropped.values()) <= before - len(prompts) <= before / 1000, dropped
            assert (before == len(prompts)) == (not dropped), dropped
        overlap, unchecked = eval_overlap(prompts, paths=paths)
        assert overlap == {}, (recipe.name, task.name)
        # Flow-GRPO's OCR test prompts quote a text to render, which no other source's prompts do; its PickScore
        # test prompts are checked where its file is (the PickScore recipes point run.prompt_paths at it)
        assert set(unchecked) <= {"drawbench", "hpdv2", "geneval2", "flow-grpo-ocr", "flow-grpo-pickscore",
                                  "geneval-color-attr",
                                  "geneval-colors", "geneval-counting", "geneval-position", "geneval-single-object",
                                  "geneval-two-object"}


def test_sets_out_of_reach_for_one_task_are_not_tried_again_for_the_next():
    """The trainer passes the prompt sets an earlier task could not load as ``skip``: they are neither loaded nor
    checked again (and stay in the trainer's list of unchecked sets)."""
    with pytest.raises(ValueError, match="occupations"):
        check_eval_overlap("t", ["a portrait of a nurse"])
    kept, dropped, unchecked = check_eval_overlap("t", ["a portrait of a nurse"], skip={"occupations"})
    assert kept == ["a portrait of a nurse"] and dropped == {} and "occupations" not in unchecked
