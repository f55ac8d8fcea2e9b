"""rewardbench/engine.py's pixel paths: decoded batches stay uint8 until a reward reads floats, rewards that
declare ``takes_uint8`` get the bytes, and every reward's numbers are those of its own forward on the files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rewardbench
from rewardbench import RewardModel, RewardOutput, RewardSpec, engine, images


class _Mean(RewardModel):
    """Reads floats: the mean pixel."""

    spec = RewardSpec(name="mean-pixel", category="baseline", license="MIT", paper="-")

    def score(self, pixels, prompts, groups):
        return RewardOutput(pixels.mean(dim=(1, 2, 3)))


@pytest.fixture
def jpegs(photo_dir):
    return [str(p) for p in sorted(photo_dir.glob("*.jpg"))]


def _count_conversions(monkeypatch) -> list[int]:
    made = []
    real = engine.pixels_from_uint8

    def counting(t):
        made.append(t.shape[0])
        return real(t)

    monkeypatch.setattr(engine, "pixels_from_uint8", counting)
    return made


def test_a_uint8_reader_alone_converts_nothing(jpegs, monkeypatch):
    made = _count_conversions(monkeypatch)
    assert engine.takes_uint8(rewardbench.load_reward("jpeg-compressibility"))
    res = rewardbench.Scorer(["jpeg-compressibility", "jpeg-incompressibility"], batch_size=4, num_workers=0,
                             progress=False).run([{"image": p} for p in jpegs])
    assert made == [] and res.n_failed == 0
    direct = rewardbench.load_reward("jpeg-compressibility")(jpegs).scores.numpy()  # floats, through forward
    np.testing.assert_array_equal(res.table["jpeg-compressibility"].to_numpy(), direct)
    np.testing.assert_array_equal(res.table["jpeg-incompressibility"].to_numpy(), -direct)


def test_float_readers_convert_each_batch_once(jpegs, monkeypatch):
    made = _count_conversions(monkeypatch)
    rewards = {"a": _Mean(), "b": _Mean(), "jpeg": rewardbench.load_reward("jpeg-compressibility")}
    res = rewardbench.Scorer(rewards, batch_size=8, num_workers=0, progress=False).run([{"image": p} for p in jpegs])
    assert sum(made) == len(jpegs) and res.n_failed == 0  # once per bucket, shared by both float readers
    expected = torch.stack([images.to_pixels(p).mean() for p in jpegs]).numpy()
    np.testing.assert_allclose(res.table["a"].to_numpy(), expected, rtol=1e-6)
    assert res.table["a"].tolist() == res.table["b"].tolist()


def test_uint8_and_float_views_of_a_batch_agree(photos):
    u8 = torch.from_numpy(np.stack([photos["astronaut"][:64, :64], photos["coffee"][:64, :64]]))
    db = engine.DeviceBatch(["", ""], [None, None], [([0, 1], u8)], {0: (0, 0), 1: (0, 1)},
                            engine.BatchScores(2, []), [[], []])
    as_bytes, as_floats = db.pixels([1, 0], uint8=True), db.pixels([1, 0])
    assert as_bytes.dtype == torch.uint8 and as_floats.dtype == torch.float32
    assert torch.equal(as_bytes.float() / 255, as_floats)
    assert np.array_equal(images.uint8_view(as_floats), images.uint8_view(as_bytes))
    assert db.pixels([0, 1]) is db.floats[0]  # the whole bucket in order: the converted floats themselves
