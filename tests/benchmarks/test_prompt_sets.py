"""Prompt sets (benchmarks/prompt_sets) and the ``rewardbench prompts`` CLI (and ``rewardbench suites``, its old
name)."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from rewardbench.benchmarks.prompt_sets import (
    PromptSourceError,
    UnknownPromptSetError,
    list_prompt_sets,
    load_prompt_set,
)
from rewardbench.benchmarks.prompt_sets.compbench import CATEGORIES
from rewardbench.benchmarks.prompt_sets.object_pairs import RELATIONS, object_pairs
from rewardbench.cli.prompts import prompts as prompts_cli


def test_every_module_contributes_its_prompt_sets():
    names = list_prompt_sets()
    assert {"geneval", "object-pairs"} <= set(names)
    assert {f"t2i-compbench-{c.replace('_', '-')}" for c in CATEGORIES} <= set(names)


def test_unknown_prompt_set_suggests_close_names():
    with pytest.raises(UnknownPromptSetError, match="Did you mean 'geneval'"):
        load_prompt_set("genevall")


@pytest.mark.parametrize("category", CATEGORIES)
def test_compbench_from_the_official_files(shared_data, category):
    path = shared_data / "prompts" / "t2i-compbench" / f"{category}_val.txt"
    rows = load_prompt_set(f"t2i-compbench-{category.replace('_', '-')}", path=path)
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    assert [r["prompt"] for r in rows] == lines
    assert {r["category"] for r in rows} == {category} and rows[-1]["index"] == len(lines) - 1


def test_geneval_from_the_official_file(shared_data):
    path = shared_data / "prompts" / "geneval" / "evaluation_metadata.jsonl"
    rows = load_prompt_set("geneval", path=path)
    assert len(rows) == 553 and all("include" in r and r["tag"] == r["category"] for r in rows)
    counting = load_prompt_set("geneval-counting", path=path)
    assert len(counting) == sum(r["tag"] == "counting" for r in rows) and all("exclude" in r for r in counting)
    assert load_prompt_set("geneval", path=path, limit=3) == rows[:3]


def test_an_unreachable_url_fails_fast_and_says_what_to_do(tmp_path):
    t = time.monotonic()
    with pytest.raises(PromptSourceError, match="--path"):
        load_prompt_set("t2i-compbench-color", path="https://nonexistent.invalid/color_val.txt")
    assert time.monotonic() - t < 30
    with pytest.raises(PromptSourceError, match="does not exist"):
        load_prompt_set("geneval", path=tmp_path / "missing.jsonl")


def test_object_pairs_are_generated_from_objects_and_the_five_relations():
    rows = load_prompt_set("object-pairs")
    assert len(rows) == 80 * 79 * 5
    assert {r["relation"] for r in rows} == set(RELATIONS) == {"and", "next to", "near", "on side of", "beside"}
    assert "an apple beside a banana" in {r["prompt"] for r in rows}
    assert all(r["objects"][0] != r["objects"][1] for r in rows)
    sample = object_pairs(n=10, seed=3)
    assert len(sample) == 10 and sample == object_pairs(n=10, seed=3) and sample != object_pairs(n=10, seed=4)


def test_object_pairs_parse_back_into_their_objects_and_relation():
    from rewardbench.rewards._prompts import parse_prompt

    for r in object_pairs(n=300, seed=0):
        p = parse_prompt(r["prompt"])
        assert [o.coco for o in p.objects] == r["objects"], r["prompt"]
        if r["relation"] != "and":
            assert [x.relation for x in p.relations] == [r["relation"]], r["prompt"]


def test_object_pairs_from_an_object_list_file(shared_data):
    rows = load_prompt_set("object-pairs", path=shared_data / "prompts" / "geneval" / "object_names.txt",
                           relations=["near"])
    assert len(rows) == 80 * 79 and rows[0]["prompt"] == "a person near a bicycle"


# -- CLI ---------------------------------------------------------------------------------------

def test_cli_list_json():
    res = CliRunner().invoke(prompts_cli, ["list", "--json"])
    assert res.exit_code == 0, res.output
    assert {"geneval", "object-pairs"} <= {r["name"] for r in json.loads(res.output)}


def test_cli_show_and_export(tmp_path, shared_data):
    path = shared_data / "prompts" / "t2i-compbench" / "spatial_val.txt"
    res = CliRunner().invoke(prompts_cli, ["show", "t2i-compbench-spatial", "--path", str(path), "--limit", "2",
                                          "--json"])
    assert res.exit_code == 0, res.output
    assert [r["prompt"] for r in json.loads(res.output)] == path.read_text().splitlines()[:2]
    out = tmp_path / "pairs.jsonl"
    res = CliRunner().invoke(prompts_cli, ["export", "object-pairs", "--out", str(out), "--limit", "7"])
    assert res.exit_code == 0, res.output
    assert [json.loads(line)["prompt"] for line in out.read_text().splitlines()] == \
        [r["prompt"] for r in object_pairs()[:7]]
    txt = tmp_path / "p.txt"
    assert CliRunner().invoke(prompts_cli, ["export", "object-pairs", "--out", str(txt), "-n", "2"]).exit_code == 0
    assert txt.read_text().splitlines() == ["a person and a bicycle", "a person next to a bicycle"]


def test_cli_errors_have_meaningful_exit_codes(tmp_path):
    runner = CliRunner()
    assert runner.invoke(prompts_cli, ["show", "genevall"]).exit_code == 2
    res = runner.invoke(prompts_cli, ["show", "geneval", "--path", str(tmp_path / "nope.jsonl")])
    assert res.exit_code == 1 and "does not exist" in res.output
    assert runner.invoke(prompts_cli, ["export", "object-pairs", "--out", str(tmp_path / "x.parquet")]).exit_code == 2


@pytest.mark.parametrize("cmd", [[], ["list"], ["show"], ["export"]])
def test_every_command_help_has_an_example(cmd):
    res = CliRunner().invoke(prompts_cli, [*cmd, "--help"])
    assert res.exit_code == 0 and "Example" in res.output and "rewardbench prompts" in res.output


def test_the_old_command_name_is_a_hidden_alias_that_says_the_new_one():
    from rewardbench.cli import main

    note = "note: `rewardbench suites` is now `rewardbench prompts`"
    old, new = (CliRunner().invoke(main, [name, "show", "object-pairs", "--limit", "3"])
                for name in ("suites", "prompts"))
    assert old.exit_code == new.exit_code == 0, old.output
    assert old.stdout == new.stdout and old.stderr.strip() == note and note not in new.stderr
    assert old.stdout.splitlines()[0].startswith("a person and a bicycle")
    assert CliRunner().invoke(main, ["suites", "show", "genevall"]).exit_code == 2
    listing = CliRunner().invoke(main, ["--help"]).stdout
    assert "  prompts " in listing and "  suites " not in listing
