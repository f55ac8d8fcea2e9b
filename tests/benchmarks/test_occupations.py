"""benchmarks/suites/occupations.py: the fairness prompt suite."""

from __future__ import annotations

import pytest

from rewardbench.benchmarks.prompt_sets import list_prompt_sets, load_prompt_set
from rewardbench.benchmarks.prompt_sets.occupations import OCCUPATIONS, occupations


def test_hundred_distinct_occupations_in_the_papers_form():
    rows = load_prompt_set("occupations")
    assert "occupations" in list_prompt_sets()
    assert len(rows) == 100 == len({r["occupation"] for r in rows})
    for r in rows:
        article = "an" if r["occupation"][0] in "aeiou" else "a"
        assert r["prompt"] == f"a portrait of {article} {r['occupation']}"
    assert {"doctor", "nurse", "firefighter", "software developer"} <= set(OCCUPATIONS)


def test_custom_list_file_and_template(tmp_path):
    f = tmp_path / "jobs.txt"
    f.write_text("# my list\nbaker\n\nengineer\n")
    rows = load_prompt_set("occupations", path=f)
    assert [r["prompt"] for r in rows] == ["a portrait of a baker", "a portrait of an engineer"]
    rows = occupations(occupations=["judge"], template="a photo of the face of a {occupation}")
    assert rows == [{"prompt": "a photo of the face of a judge", "occupation": "judge", "index": 0}]
    with pytest.raises(ValueError, match="occupation"):
        occupations(template="a portrait")
