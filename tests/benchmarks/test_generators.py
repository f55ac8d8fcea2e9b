"""benchmarks/generators.py: pinned seeds, resumable generation, pre-generated manifests and folders."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from rewardbench.benchmarks.generators import (
    DiffusersGenerator,
    GenerationSettings,
    generate_images,
    read_pregenerated,
    seed_for,
)
from rewardbench.data import SourceError

SETTINGS = GenerationSettings(steps=2, resolution=32, batch_size=3)


@pytest.fixture(scope="module")
def tiny():
    return DiffusersGenerator("base", "tiny", SETTINGS)


def test_seed_depends_on_prompt_index_and_base_only():
    seeds = {seed_for(p, i, b) for p in ("a", "b") for i in range(3) for b in (0, 1)}
    assert len(seeds) == 12 and all(0 <= s < 2**63 for s in seeds)
    assert seed_for("a cat", 2, 5) == seed_for("a cat", 2, 5)


def test_an_image_does_not_depend_on_its_batch(tiny):
    prompts, seeds = ["a cat", "a dog", "a fox"], [seed_for(p, 0) for p in ("a cat", "a dog", "a fox")]
    batch = tiny.generate(prompts, seeds)
    alone = torch.cat([tiny.generate([p], [s]) for p, s in zip(prompts, seeds)])
    assert batch.shape == (3, 3, 32, 32)
    torch.testing.assert_close(batch, alone, atol=2e-3, rtol=0)  # one uint8 step is 4e-3
    other = tiny.generate(["a cat"], [seed_for("a cat", 1)])
    assert (other - alone[:1]).abs().mean() > 1e-3  # another seed, other noise


def test_generation_resumes_and_redoes_nothing(tiny, tmp_path):
    items = [{"prompt_id": p, "prompt": f"prompt {p}", "index": i, "seed": seed_for(f"prompt {p}", i)}
             for p in range(3) for i in range(2)]
    rows, new = generate_images(tiny, items[:4], tmp_path, progress=False)
    assert new == 4 and [r["file"] for r in rows] == ["00000_00.png", "00000_01.png", "00001_00.png", "00001_01.png"]
    first = (tmp_path / "00000_00.png").read_bytes()
    with open(tmp_path / "manifest.jsonl", "a") as f:  # a line cut by a kill, and an image without its line
        f.write('{"file": "00002_00.png", "prompt_')
    (tmp_path / "00002_01.png").write_bytes(b"garbage")
    rows, new = generate_images(tiny, items, tmp_path, progress=False)
    assert new == 2 and len(rows) == 6 and (tmp_path / "00000_00.png").read_bytes() == first
    saved = np.asarray(Image.open(tmp_path / "00002_01.png"))
    want = (tiny.generate(["prompt 2"], [items[5]["seed"]])[0].permute(1, 2, 0) * 255).round().to(torch.uint8)
    assert np.abs(saved.astype(int) - want.numpy().astype(int)).max() <= 1
    assert generate_images(tiny, items, tmp_path, progress=False)[1] == 0


def test_manifest_with_models_seed_pairing_and_categories(tmp_path):
    rows = [{"image": f"img/{m}_{s}.png", "prompt": "a cat", "model": m, "seed": s, "category": "animals"}
            for m in ("sd14", "sd15") for s in (11, 42)]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    df = read_pregenerated(tmp_path / "m.jsonl")
    assert list(df["index"]) == [11, 42, 11, 42] and set(df["model"]) == {"sd14", "sd15"}
    assert df["image"][0] == str(tmp_path / "img" / "sd14_11.png") and "category" in df
    pd.DataFrame(rows).drop(columns=["seed", "model"]).assign(index=0).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(SourceError, match="share a"):  # no model column: one model, four images of index 0
        read_pregenerated(tmp_path / "m.csv")
    pd.DataFrame(rows).drop(columns=["seed"]).to_parquet(tmp_path / "m.parquet")
    df = read_pregenerated(tmp_path / "m.parquet")
    assert list(df["index"]) == [0, 1, 0, 1]  # without index or seed: the order of a prompt's images
    with pytest.raises(SourceError, match="'image' column"):
        pd.DataFrame({"path": ["a.png"], "prompt": ["x"]}).to_csv(tmp_path / "bad.csv", index=False)
        read_pregenerated(tmp_path / "bad.csv")


def test_folder_is_one_model_named_after_it(photo_dir):
    df = read_pregenerated(photo_dir, photo_dir / "prompts.txt")
    assert set(df["model"]) == {"photos"} and len(df) == 5 and list(df["index"]) == [0] * 5
    assert read_pregenerated(photo_dir, "a photo", model="cam")["model"].unique().tolist() == ["cam"]
