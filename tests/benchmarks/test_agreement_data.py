"""Preference-data loaders: the documented schema, the official local layouts, the hub layouts, and failing fast
(and helpfully) when the hub cannot be reached."""

from __future__ import annotations

import io
import json
import time

import pandas as pd
import pytest
from PIL import Image

from rewardbench.benchmarks.agreement_data import (
    DATASETS,
    DatasetUnavailableError,
    load_preference_file,
    load_preference_set,
)


def _png(path=None, value=0) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (value, value, value)).save(buf, format="PNG")
    if path is not None:
        path.write_bytes(buf.getvalue())
    return buf.getvalue()


def test_schema_variants(tmp_path):
    _png(tmp_path / "a.png")
    _png(tmp_path / "b.png", 200)
    rows = [{"prompt": "p", "images": ["a.png", "b.png"], "choice": 0},
            {"prompt": "p", "images": ["a.png", "b.png"], "tie": True},
            {"prompt": "q", "images": ["a.png", "b.png", "a.png"], "ranking": [2, 1, 2]},
            {"prompt": "r", "images": ["a.png", "b.png"], "ratings": [4.5, 2.0], "category": "c1"}]
    (tmp_path / "s.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    s = load_preference_file(tmp_path / "s.jsonl")
    assert [it.human.tolist() for it in s.items] == [[1.0, 0.0], [0.5, 0.5], [-2.0, -1.0, -2.0], [4.5, 2.0]]
    assert s.items[0].images[0] == str(tmp_path / "a.png") and s.items[3].category == "c1"
    assert s.kind == "mixed" and s.protocol == "drop-ties"
    # CSV with image_0/image_1 columns, parquet with raw bytes
    pd.DataFrame([{"prompt": "p", "image_0": "a.png", "image_1": "b.png", "choice": 1}]).to_csv(tmp_path / "c.csv")
    assert load_preference_file(tmp_path / "c.csv").items[0].human.tolist() == [0.0, 1.0]
    pq = tmp_path / "bytes" / "x.parquet"
    pq.parent.mkdir()
    pd.DataFrame([{"prompt": "p", "images": [_png(), _png(value=9)], "choice": 1}]).to_parquet(pq)
    img = load_preference_file(pq.parent).items[0].images[1]  # a folder with one schema file works too
    assert isinstance(img, Image.Image) and img.getpixel((0, 0)) == (9, 9, 9)


@pytest.mark.parametrize("row, match", [
    ({"prompt": "p", "images": ["a.png"], "choice": 0}, "two or more images"),
    ({"prompt": "p", "images": ["a.png", "b.png"]}, "no human judgement"),
    ({"prompt": "p", "images": ["a.png", "b.png"], "choice": 2}, "not an index"),
    ({"prompt": "p", "images": ["a.png", "b.png"], "ranking": [1, 2, 3]}, "3 ranks/ratings for 2 images"),
])
def test_schema_errors_name_the_row(tmp_path, row, match):
    (tmp_path / "bad.jsonl").write_text(json.dumps({"prompt": "ok", "images": ["a", "b"], "choice": 0}) + "\n"
                                        + json.dumps(row) + "\n")
    with pytest.raises(ValueError, match=f"row 1: .*{match}"):
        load_preference_file(tmp_path / "bad.jsonl")


def test_official_local_layouts(tmp_path):
    hpd = tmp_path / "hpd" / "test.json"
    hpd.parent.mkdir()
    hpd.write_text(json.dumps([{"prompt": "a", "image_path": ["x.jpg", "y.jpg"], "rank": [2, 1],
                                "raw_annotation": []}]))
    s = load_preference_set("hpdv2", path=hpd)
    assert s.protocol == "hpdv2" and s.kind == "ranking" and s.items[0].human.tolist() == [-2.0, -1.0]
    assert s.items[0].images[0] == str(hpd.parent / "x.jpg") and s.source.startswith("local copy")
    ir = tmp_path / "ir" / "test.json"
    ir.parent.mkdir()
    ir.write_text(json.dumps([{"id": "1-2", "prompt": "b", "generations": ["g0.webp", "g1.webp", "g2.webp"],
                               "ranking": [1, 3, 2]}]))
    s = load_preference_set("imagerewarddb", path=ir)
    assert s.protocol == "imagereward" and s.items[0].id == "1-2" and s.items[0].human.tolist() == [-1, -3, -2]
    v3 = tmp_path / "v3" / "test.json"
    v3.parent.mkdir()
    v3.write_text(json.dumps([{"prompt": "c", "path1": "win.jpg", "path2": "lose.jpg"}]))
    assert load_preference_set("hpdv3", path=v3).items[0].human.tolist() == [1.0, 0.0]


def test_hub_layouts_from_local_parquet(tmp_path):
    pick = tmp_path / "pick.parquet"
    pd.DataFrame([{"caption": "c", "jpg_0": _png(), "jpg_1": _png(value=5), "label_0": 0.5, "label_1": 0.5,
                   "has_label": True, "ranking_id": 7},
                  {"caption": "d", "jpg_0": _png(), "jpg_1": _png(), "label_0": 0.0, "label_1": 1.0,
                   "has_label": True, "ranking_id": 8}]).to_parquet(pick)
    s = load_preference_set("pickapic-v2", path=pick)
    assert s.protocol == "pickapic" and [it.human.tolist() for it in s.items] == [[0.5, 0.5], [0.0, 1.0]]
    mm = tmp_path / "mm.parquet"
    pd.DataFrame([{"pair_id": "x", "prompt_text": "t", "response_a_images": [_png()],
                   "response_b_images": [_png(value=3)], "chosen": "B", "prompt_source": "oneig"}]).to_parquet(mm)
    s = load_preference_set("mmrb2-t2i", path=mm)
    assert s.protocol == "mmrb2" and s.items[0].human.tolist() == [0.0, 1.0] and s.items[0].category == "oneig"
    genai = tmp_path / "genai.parquet"
    from rewardbench.benchmarks.agreement_data import GENAI_MODELS

    row = {"id": "0", "prompt": "g"}
    for k, m in enumerate(GENAI_MODELS):
        row[m] = _png(value=k)
        row[f"{m}_HumanRating"] = json.dumps([k % 5 + 1, 3, 4])
    pd.DataFrame([row]).to_parquet(genai)
    s = load_preference_set("genai-bench", path=genai)
    assert s.kind == "ratings" and len(s.items[0].images) == 6
    assert s.items[0].human[0] == pytest.approx((1 + 3 + 4) / 3)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_offline_hub_fails_fast_with_a_fix(name, monkeypatch, tmp_path):
    """HF_HUB_OFFLINE=1 and an empty cache: the hub is unreachable by construction, whatever this machine has."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf" / "datasets"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    t0 = time.perf_counter()
    with pytest.raises(DatasetUnavailableError) as e:
        load_preference_set(name, limit=2)
    assert time.perf_counter() - t0 < 30
    msg = str(e.value)
    assert "Looked for" in msg and DATASETS[name].hub_id in msg and "--data PATH" in msg and "local copy" in msg


def test_unreachable_endpoint_fails_within_seconds(monkeypatch):
    """No HF_HUB_OFFLINE: a hub endpoint that refuses connections is detected by the probe, not by retries."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    t0 = time.perf_counter()
    with pytest.raises(DatasetUnavailableError, match="unreachable"):
        load_preference_set("pickapic-v2")
    assert time.perf_counter() - t0 < 10


def test_unknown_dataset_and_split():
    with pytest.raises(ValueError, match="(?i)did you mean.*pickapic-v2"):
        load_preference_set("pickapic_v2")
    with pytest.raises(ValueError, match="has splits"):
        load_preference_set("hpdv2", "validation")
