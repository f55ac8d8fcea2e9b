"""The preference prompt sources (benchmarks/prompt_sets: partiprompts, drawbench, diffusiondb, hpdv2) and the
seen/unseen split of the paper's object pairs."""

from __future__ import annotations

import csv
import json
import urllib.error
import urllib.request

import pandas as pd
import pytest

from rewardbench.benchmarks.prompt_sets import PromptSourceError, list_prompt_sets, load_prompt_set
from rewardbench.benchmarks.prompt_sets.diffusiondb import split_prompts
from rewardbench.benchmarks.prompt_sets.object_pairs import is_unseen


def test_the_new_sources_are_listed():
    assert {"partiprompts", "drawbench", "diffusiondb-heldout", "diffusiondb-train", "hpdv2", "object-pairs-seen",
            "object-pairs-unseen"} <= set(list_prompt_sets())


def test_partiprompts_from_the_official_file(shared_data):
    path = shared_data / "prompts" / "partiprompts" / "PartiPrompts.tsv"
    rows = load_prompt_set("partiprompts", path=path)
    with open(path, newline="") as f:
        official = list(csv.DictReader(f, delimiter="\t"))
    assert len(rows) == len(official) == 1632
    assert [r["prompt"] for r in rows] == [o["Prompt"].strip() for o in official]
    assert len({r["category"] for r in rows}) == 12 and "Fine-grained Detail" in {r["challenge"] for r in rows}
    people = load_prompt_set("partiprompts", path=path, category="People")
    assert people and {r["category"] for r in people} == {"People"} and people[-1]["index"] == len(people) - 1
    basic = load_prompt_set("partiprompts", path=path, challenge="Basic")
    assert len(basic) == sum(o["Challenge"] == "Basic" for o in official)


def test_drawbench_from_a_local_copy(shared_data, tmp_path):
    """DrawBench's real prompts and categories (the 100 of faces-calibration), in the sheet's CSV columns."""
    labels = pd.read_csv(shared_data / "faces-calibration" / "labels.csv")
    real = labels.drop_duplicates("prompt")[["prompt", "category"]]
    real.rename(columns={"prompt": "Prompts", "category": "Category"}).to_csv(tmp_path / "db.csv", index=False)
    rows = load_prompt_set("drawbench", path=tmp_path / "db.csv")
    assert [r["prompt"] for r in rows] == real["prompt"].str.strip().tolist() and len(rows) == 100
    assert len({r["category"] for r in rows}) == 11
    colours = load_prompt_set("drawbench", path=tmp_path / "db.csv", category="Colors")
    assert colours and all(r["category"] == "Colors" for r in colours)
    real.to_csv(tmp_path / "db.tsv", sep="\t", index=False)  # lower-case 'prompt' column, tab-separated
    assert [r["prompt"] for r in load_prompt_set("drawbench", path=tmp_path / "db.tsv")] == [r["prompt"] for r in rows]


def test_hpdv2_styles_from_a_folder_or_one_file(tmp_path):
    for style in ("anime", "concept-art", "paintings", "photo"):
        (tmp_path / f"{style}.json").write_text(json.dumps([f"{style} prompt {i}" for i in range(3)]))
    rows = load_prompt_set("hpdv2", path=tmp_path)
    assert len(rows) == 12 and [r["category"] for r in rows[::3]] == ["anime", "concept-art", "paintings", "photo"]
    assert [r["prompt"] for r in load_prompt_set("hpdv2", path=tmp_path / "photo.json")] == [f"photo prompt {i}"
                                                                                         for i in range(3)]
    assert len(load_prompt_set("hpdv2", path=tmp_path, style="anime")) == 3
    (tmp_path / "bad.json").write_text('{"not": "a list"}')
    with pytest.raises(ValueError, match="list of prompt strings"):
        load_prompt_set("hpdv2", path=tmp_path / "bad.json")


def test_diffusiondb_held_out_split_is_the_seeded_shuffle(shared_data, tmp_path):
    prompts = pd.read_csv(shared_data / "prompts/partiprompts/PartiPrompts.tsv", sep="\t")["Prompt"].tolist()
    metadata = pd.DataFrame({"prompt": prompts + prompts[:50] + ["  ", None], "seed": range(len(prompts) + 52)})
    metadata.to_parquet(tmp_path / "metadata.parquet")
    held = load_prompt_set("diffusiondb-heldout", path=tmp_path / "metadata.parquet", n_heldout=200)
    train = load_prompt_set("diffusiondb-train", path=tmp_path / "metadata.parquet", n_heldout=200)
    unique = list(dict.fromkeys(p.strip() for p in prompts))
    assert len(held) == 200 and len(train) == len(unique) - 200
    assert not {r["prompt"] for r in held} & {r["prompt"] for r in train}
    assert {r["prompt"] for r in held} | {r["prompt"] for r in train} == set(unique)
    import random

    shuffled = list(unique)
    random.Random(1928).shuffle(shuffled)  # the procedure, independently
    assert [r["prompt"] for r in held] == shuffled[-200:]
    assert split_prompts(unique, 200)[1] != split_prompts(unique, 200, seed=0)[1]
    (tmp_path / "p.txt").write_text("\n".join(unique))
    assert load_prompt_set("diffusiondb-heldout", path=tmp_path / "p.txt", n_heldout=200) == held
    with pytest.raises(ValueError, match="cannot hold out"):
        split_prompts(["a", "b"], 3)


@pytest.mark.parametrize("name", ["partiprompts", "drawbench", "hpdv2", "diffusiondb-heldout"])
def test_offline_the_official_source_fails_with_the_local_copy_fix(name, monkeypatch, tmp_path):
    tried = []

    def unreachable(url, timeout=None):
        tried.append(url)
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    monkeypatch.setenv("REWARDBENCH_CACHE", str(tmp_path))  # no cached copy of a downloaded file
    with pytest.raises(PromptSourceError, match=r"--path FILE"):
        load_prompt_set(name)
    assert tried and tried[0].startswith("https://")


def test_object_pairs_split_holds_out_whole_combinations():
    seen, unseen = load_prompt_set("object-pairs-seen"), load_prompt_set("object-pairs-unseen")
    assert len(seen) + len(unseen) == 80 * 79 * 5 and 0.15 < len(unseen) / (len(seen) + len(unseen)) < 0.25
    pairs = {frozenset(r["objects"]) for r in unseen}
    assert not pairs & {frozenset(r["objects"]) for r in seen}  # both orders, every relation, on one side
    assert all(is_unseen(*r["objects"]) for r in unseen) and {r["split"] for r in seen} == {"seen"}
    few = ["cat", "dog", "apple", "kite", "bus", "car"]  # the split depends on the two names only
    assert [r["prompt"] for r in load_prompt_set("object-pairs-unseen", objects=few)] == \
        [r["prompt"] for r in load_prompt_set("object-pairs", objects=few) if is_unseen(*r["objects"])]
