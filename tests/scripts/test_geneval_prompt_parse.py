"""scripts/training/geneval_prompt_parse.py on a few GenEval metadata rows: agreement per tag, GenEval's class
spellings taken as COCO's, and a disagreeing row named with what differs. The real measurement is the script's own
run on Flow-GRPO's test_metadata.jsonl (scripts/training/results/geneval_prompt_parse.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "training"))

import geneval_prompt_parse as gpp  # noqa: E402

ROWS = [
    {"tag": "counting", "include": [{"class": "tv remote", "count": 2}],
     "exclude": [{"class": "tv remote", "count": 3}], "prompt": "a photo of two tv remotes"},
    {"tag": "position", "include": [{"class": "bench", "count": 1},
                                    {"class": "computer mouse", "count": 1, "position": ["left of", 0]}],
     "prompt": "a photo of a computer mouse left of a bench"},
    {"tag": "color_attr", "include": [{"class": "car", "count": 1, "color": "red"},
                                      {"class": "dog", "count": 1, "color": "blue"}],
     "prompt": "a photo of a red car and a blue dog"},
    # metadata that does not say what the prompt says: the colour differs
    {"tag": "colors", "include": [{"class": "car", "count": 1, "color": "green"}], "prompt": "a photo of a red car"},
]


def test_agreement_per_tag_and_the_disagreements_written(tmp_path):
    f = tmp_path / "test_metadata.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in ROWS + ROWS[:1]))
    results = gpp.main([f"small={f}", "--out", str(tmp_path / "out")])
    res = results["small"]
    assert (res["rows"], res["agree"], res["unique_prompts"], res["unique_agree"]) == (5, 4, 4, 3)
    assert res["per_tag"]["counting"] == {"rows": 2, "agree": 2, "share": 1.0}
    assert res["per_tag"]["colors"]["agree"] == 0 and res["differing_fields"] == {"include.color": 1}
    assert res["examples"]["colors"][0]["prompt"] == "a photo of a red car"
    written = json.loads((tmp_path / "out" / "geneval_prompt_parse.json").read_text())
    assert written["results"]["small"]["agree"] == 4 and "--out" in written["command"]
    md = (tmp_path / "out" / "geneval_prompt_parse.md").read_text()
    assert "| small | **all** (4 distinct prompts, 3 agree) | 5 | 4 | 80.00% |" in md
    assert "`a photo of a red car` (include.color)" in md
