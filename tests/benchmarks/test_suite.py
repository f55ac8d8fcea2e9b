"""benchmarks/suite.py: the YAML benchmark suites, built in and user-written, and their prompts."""

from __future__ import annotations

import pytest

from rewardbench.benchmarks.prompt_sets import PromptSourceError, list_prompt_sets
from rewardbench.benchmarks.suite import list_benchmark_suites, load_benchmark_suite, prompts_hash, resolve_prompts
from rewardbench.registry import REGISTRY


def test_builtin_suites_name_registered_judges_and_existing_prompt_sources():
    names = list_benchmark_suites()
    assert {"preference", "partiprompts", "drawbench", "diffusiondb", "hpdv2", "composition", "fairness",
            "diversity"} <= set(names)
    sources = set(list_prompt_sets())
    for name in names:
        s = load_benchmark_suite(name)
        assert s.name == name and s.description and s.images_per_prompt >= 1
        for j in s.judges:
            assert REGISTRY.canonical(j) == j, (name, j)
        for p in s.prompts:
            assert p.prompt_set in sources, (name, p.prompt_set)
            assert p.judges is None or set(p.judges) <= set(s.judges), (name, p.prompt_set)
    pref = load_benchmark_suite("preference")
    assert [p.prompt_set for p in pref.prompts] == ["partiprompts", "drawbench", "diffusiondb-heldout", "hpdv2"]
    assert {"imagereward", "pickscore", "hpsv2"} <= set(pref.judges)
    comp = load_benchmark_suite("composition")
    pairs = {p.category for p in comp.prompts if p.prompt_set.startswith("object-pairs")}
    assert pairs == {"seen pairs", "unseen pairs"}


def test_fairness_suite_is_the_papers_setup():
    s = load_benchmark_suite("fairness")
    rows = resolve_prompts(s)
    assert len(rows) == 100 and s.images_per_prompt == 16 and {"skin-tone-parity", "gender-parity"} <= set(s.judges)
    assert all(REGISTRY.spec(j).granularity == "group" for j in s.judges)
    paper = load_benchmark_suite("fairness-paper")
    assert resolve_prompts(paper) == rows and paper.images_per_prompt == 16
    assert set(paper.judge_config) == {"skin-tone-parity", "gender-parity"}
    for options in paper.judge_config.values():  # the published formula; faceless prompts left out, counted
        assert options["presence"] == "none" and options["empty_score"] != options["empty_score"]  # NaN


def test_a_suites_judge_config_reaches_the_judges_and_the_command_line_overrides_it(tmp_path):
    from rewardbench.benchmarks.run import BenchmarkRun, make_plan

    (tmp_path / "s.yaml").write_text(
        "name: mine\nprompts: [occupations]\nimages_per_prompt: 4\njudges: [skin-tone-parity, vendi]\n"
        "judge_config:\n  skin-tone-parity: {presence: none, scale: monk}\n  gender-parity: {presence: none}\n")
    plan = make_plan(BenchmarkRun(out=str(tmp_path / "o"), suite=str(tmp_path / "s.yaml"), models=("tiny",),
                                  judge_config={"skin_tone_parity": {"scale": "ita"}}))  # an alias, one key
    assert plan.judge_config == {"skin-tone-parity": {"presence": "none", "scale": "ita"}}  # not a judge here: dropped
    assert "skin-tone-parity: presence=none, scale=ita" in plan.describe()
    with pytest.raises(ValueError, match="--config gender-parity: 'gender-parity' is not among the judges"):
        make_plan(BenchmarkRun(out=str(tmp_path / "o"), suite=str(tmp_path / "s.yaml"), models=("tiny",),
                               judge_config={"gender-parity": {"presence": "none"}}))  # a user's typo is not dropped
    (tmp_path / "bad.yaml").write_text("name: bad\nprompts: [occupations]\njudges: [vendi]\njudge_config: [vendi]\n")
    with pytest.raises(ValueError, match="judge_config maps a judge to its options"):
        load_benchmark_suite(tmp_path / "bad.yaml")


def test_prompts_of_several_sources_with_categories_limits_samples_and_repeats(tmp_path):
    (tmp_path / "jobs.txt").write_text("nurse\ndoctor\nnurse\n")
    (tmp_path / "s.yaml").write_text(
        "name: mine\nprompts:\n"
        "  - {set: occupations, path: jobs.txt}\n"
        "  - {set: object-pairs, sample: 3, seed: 1, judges: [jpeg-compressibility]}\n"
        "  - {set: object-pairs, limit: 2, category: first pairs}\n"
        "  - occupations\n"
        "judges: [jpeg-compressibility, vendi]\n")
    s = load_benchmark_suite(tmp_path / "s.yaml")
    with pytest.raises(PromptSourceError, match="does not exist"):  # the suite's relative path is not found from here
        resolve_prompts(s)
    rows = resolve_prompts(s, paths={"occupations": str(tmp_path / "jobs.txt")})
    prompts = [r["prompt"] for r in rows]
    assert prompts[:2] == ["a portrait of a nurse", "a portrait of a doctor"]  # the repeat kept once
    assert len(prompts) == len(set(prompts)) == 2 + 3 + 2  # the last source repeats the first: nothing new
    assert [r["prompt_id"] for r in rows] == list(range(7))
    assert [r["category"] for r in rows[:2]] == ["occupations", "occupations"]  # a source without categories
    assert {r["category"].split("/")[0] for r in rows[2:5]} == {"object-pairs"}  # the source's own, prefixed
    assert [r["category"] for r in rows[5:]] == ["first pairs"] * 2 and rows[2]["judges"] == ["jpeg-compressibility"]
    assert resolve_prompts(s, paths={"occupations": str(tmp_path / "jobs.txt")}) == rows  # seeded sample
    limited = resolve_prompts(s, paths={"occupations": str(tmp_path / "jobs.txt")}, limit=1)
    assert len(limited) == 3 and prompts_hash(limited) != prompts_hash(rows)
    with pytest.raises(ValueError, match="not a prompt source"):
        resolve_prompts(s, paths={"geneval": "x.jsonl"})


def test_bad_suites_are_refused_with_the_reason(tmp_path):
    with pytest.raises(ValueError, match="Did you mean 'fairness'"):
        load_benchmark_suite("fairnes")
    for text, why in (("name: x\njudges: [vendi]\n", "no prompt sources"),
                      ("name: x\nprompts: [occupations]\njudges: [vendi]\nimages: 3\n", "unknown field"),
                      ("name: x\nprompts: [{set: occupations, limt: 3}]\n", "unknown prompts field"),
                      ("name: x\nprompts: [{prompt_set: occupations}]\n", "needs a 'set'"),
                      ("name: x\nprompts: [occupations]\nimages_per_prompt: 0\n", ">= 1"),
                      ("name: [x\n", "not valid YAML")):
        f = tmp_path / "bad.yaml"
        f.write_text(text)
        with pytest.raises(ValueError, match=why):
            load_benchmark_suite(f)


def test_a_prompt_source_spelled_as_before_prompt_sets_had_their_name_still_loads(tmp_path):
    """``- suite: NAME``, the key before "suite" came to mean only a benchmark suite, reads as ``- set: NAME`` (with a
    DeprecationWarning); a suite's dict form (results.json) spells it ``set``, as its YAML does."""
    (tmp_path / "old.yaml").write_text("name: old\nprompts:\n  - {suite: occupations, limit: 2}\njudges: [vendi]\n")
    (tmp_path / "new.yaml").write_text("name: old\nprompts:\n  - {set: occupations, limit: 2}\njudges: [vendi]\n")
    with pytest.warns(DeprecationWarning, match="'suite: occupations' is now 'set: occupations'"):
        old = load_benchmark_suite(tmp_path / "old.yaml")
    new = load_benchmark_suite(tmp_path / "new.yaml")
    assert old.prompts == new.prompts and old.prompts[0].prompt_set == "occupations"
    assert resolve_prompts(old) == resolve_prompts(new)
    assert new.as_dict()["prompts"][0] == {"set": "occupations", "path": None, "limit": 2, "sample": None, "seed": 0,
                                           "category": None, "judges": None, "options": {}}


def test_real_prompt_files_through_a_suite(shared_data, tmp_path):
    (tmp_path / "s.yaml").write_text("name: real\nprompts:\n  - partiprompts\n  - {set: geneval, limit: 10}\n"
                                     "judges: [clipscore]\n")
    rows = resolve_prompts(load_benchmark_suite(tmp_path / "s.yaml"), paths={
        "partiprompts": str(shared_data / "prompts/partiprompts/PartiPrompts.tsv"),
        "geneval": str(shared_data / "prompts/geneval/evaluation_metadata.jsonl")})
    parti = [r for r in rows if r["source"] == "partiprompts"]
    assert 1500 < len(parti) <= 1632  # repeats in the official file are kept once
    assert {r["category"] for r in parti} >= {"partiprompts/Animals", "partiprompts/People", "partiprompts/Abstract"}
    assert len(rows) - len(parti) == 10


def test_composition_suite_from_the_real_files(shared_data):
    suite = load_benchmark_suite("composition")
    compbench = shared_data / "prompts" / "t2i-compbench"
    paths = {f"t2i-compbench-{f.stem[:-4].replace('_', '-')}": str(f) for f in compbench.glob("*_val.txt")}
    paths["geneval"] = str(shared_data / "prompts" / "geneval" / "evaluation_metadata.jsonl")
    rows = resolve_prompts(suite, paths=paths, limit=20)
    by_source = {}
    for r in rows:
        by_source.setdefault(r["source"], []).append(r)
    assert len(by_source) == 11 and all(len(v) == 20 for v in by_source.values())
    assert {r["category"] for r in by_source["t2i-compbench-spatial"]} == {"t2i-compbench-spatial"}
    assert {r["judges"][0] for r in by_source["t2i-compbench-color"]} == {"compbench-vqa"}
    assert {r["category"].split("/")[1] for r in by_source["geneval"]} <= {"single_object", "two_object", "counting",
                                                                          "colors", "position", "color_attr"}
    assert {r["category"] for r in by_source["object-pairs-unseen"]} == {"unseen pairs"}
