"""scripts/ocr/render_text_set.py on a few images: the manifest quotes each image's text, the ocr reward reads large
clear text, and the tables are written. The full measurement is the script's own run (scripts/ocr/results/)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

OCR = Path(__file__).resolve().parents[2] / "scripts" / "ocr"
sys.path.insert(0, str(OCR))

import render_text_set as rts  # noqa: E402


def test_render_score_and_write_a_small_set(tmp_path):
    rows = rts.render_set(tmp_path / "set", texts=("STOP", "Hello World"), sizes=("large",),
                          backgrounds=("plain", "gradient"))
    assert len(rows) == 4 and all((tmp_path / "set" / r["image"]).is_file() for r in rows)
    with open(tmp_path / "set" / "manifest.csv", newline="") as f:
        manifest = list(csv.DictReader(f))
    assert [m["prompt"].split('"')[1] for m in manifest] == ["STOP", "STOP", "Hello World", "Hello World"]
    scored, speed = rts.score_set(tmp_path / "set", rows, "paddleocr", batch_size=2)
    assert [r["reward"] for r in scored] == [1.0] * 4, [r["recognized"] for r in scored]
    assert all(r["wrong_reward"] < 1.0 for r in scored) and speed["images"] == 4
    summary = rts.summarise(scored, [speed])
    assert summary[0]["factor"] == "all" and summary[0]["exact_match"] == 1.0
    rts.write_results(scored, summary, [speed], tmp_path / "results", "python ...")
    assert {p.name for p in (tmp_path / "results").iterdir()} == {"rendered_text.csv", "rendered_text.md",
                                                                  "rendered_text_images.csv"}
    assert "| all | all | 4 | 100.0% |" in (tmp_path / "results" / "rendered_text.md").read_text()
