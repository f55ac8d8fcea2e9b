"""Batch planning under a pixel budget (rewardbench/batching.py): which rows go into which batch.

The memory this bounds is measured in scripts/perf/bench_memory.py; here the decision itself is tested.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from rewardbench import RewardModel, RewardOutput, RewardSpec, batching
from rewardbench.batching import BatchPlan, plan_batches, row_pixels
from rewardbench.data import ListSource, open_source
from rewardbench.harness import Scorer, UsageError


def _arrays(*hw):
    return [{"image": np.zeros((h, w, 3), np.uint8), "prompt": "p"} for h, w in hw]


def _batches(plan):
    return [[r["index"] for r in b] for b in plan_batches(plan)]


def test_a_batch_closes_before_it_would_pass_the_pixel_budget():
    # 100, 100, 400 (over the budget alone), 50, 50, 50 pixels
    src = ListSource(_arrays((10, 10), (10, 10), (20, 20), (5, 10), (5, 10), (5, 10)))
    assert _batches(BatchPlan(src, batch_size=4, max_batch_pixels=200)) == [[0, 1], [2], [3, 4, 5]]
    assert _batches(BatchPlan(src, batch_size=4, max_batch_pixels=None)) == [[0, 1, 2, 3], [4, 5]]
    assert _batches(BatchPlan(src, batch_size=2, max_batch_pixels=10**6)) == [[0, 1], [2, 3], [4, 5]]


def test_a_large_image_between_small_ones_gets_a_batch_of_its_own():
    src = ListSource(_arrays((4, 4), (4, 4), (100, 100), (4, 4)))
    assert _batches(BatchPlan(src, batch_size=16, max_batch_pixels=1000)) == [[0, 1], [2], [3]]


def test_the_default_budget_is_one_image_at_the_per_image_cap(monkeypatch):
    """The issue's case: four images at the cap, default batch size -> four batches (memory of one image);
    sixteen images of a sixteenth of the cap still make one batch."""
    from rewardbench.images import MAX_PIXELS

    src = ListSource(_arrays(*[(2, 2)] * 4))
    monkeypatch.setattr(batching, "row_pixels", lambda row: MAX_PIXELS)  # as if each were 8192 x 8192
    assert _batches(BatchPlan(src, batch_size=16)) == [[0], [1], [2], [3]]
    src16 = ListSource(_arrays(*[(2, 2)] * 16))
    monkeypatch.setattr(batching, "row_pixels", lambda row: MAX_PIXELS // 16)  # 2048 x 2048 at the default cap
    assert _batches(BatchPlan(src16, batch_size=16)) == [list(range(16))]


def test_groups_stay_whole_and_a_group_over_the_budget_is_a_batch_of_its_own():
    items = [{"image": np.zeros((10, 10, 3), np.uint8), "prompt": p}
             for p in ("a", "b", "a", "a", "c", "c")]  # a: 300 px, b: 100, c: 200
    src = ListSource(items)
    counts = {("a",): 3, ("b",): 1, ("c",): 2}
    plan = BatchPlan(src, batch_size=8, group_by=("prompt",), group_counts=counts, max_batch_pixels=250)
    # b is complete first (row 1), a when its last row (3) comes: 100 + 300 > 250, so a goes alone
    assert _batches(plan) == [[1], [0, 2, 3], [4, 5]]


def test_done_rows_are_skipped_and_the_order_is_the_inputs():
    src = ListSource(_arrays(*[(10, 10)] * 7))
    done = np.array([True, False, False, True, False, False, False])
    batches = _batches(BatchPlan(src, batch_size=8, done=done, max_batch_pixels=300))
    assert batches == [[1, 2, 4], [5, 6]]


def test_file_sizes_come_from_headers_without_decoding(tmp_path):
    Image.new("RGB", (30, 20)).save(tmp_path / "a.png")
    full = (tmp_path / "a.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(full[: len(full) // 2 + 40])  # header intact, image data cut
    (tmp_path / "junk.png").write_bytes(b"not an image")
    rows = [{"index": i, "image": str(tmp_path / n)} for i, n in enumerate(("a.png", "cut.png", "junk.png", "no.png"))]
    assert [row_pixels(r) for r in rows] == [600, 600, 0, 0]
    assert [row_pixels({"image": x}) for x in (Image.new("RGB", (7, 3)), torch.zeros(3, 5, 4),
                                               torch.zeros(6, 9, 3), np.zeros((5, 4)))] == [21, 20, 54, 20]


def test_files_are_planned_by_their_sizes(tmp_path):
    for name, size in (("a.png", (16, 16)), ("b.png", (16, 16)), ("c.png", (64, 64)), ("d.png", (16, 16))):
        Image.new("RGB", size, (90, 90, 90)).save(tmp_path / name)
    (tmp_path / "e.png").write_bytes(b"broken")  # counted as nothing: its decoding fails with the row's error
    src = open_source(tmp_path)
    assert _batches(BatchPlan(src, batch_size=4, max_batch_pixels=600)) == [[0, 1], [2], [3, 4]]


def test_one_image_per_batch_reads_no_header(monkeypatch):
    def refuse(row):
        raise AssertionError("a header was read")

    monkeypatch.setattr(batching, "row_pixels", refuse)
    assert _batches(BatchPlan(ListSource(_arrays((4, 4), (4, 4))), batch_size=1)) == [[0], [1]]


class Mean(RewardModel):
    spec = RewardSpec(name="mean", category="baseline", license="MIT", paper="-", range=(0.0, 1.0))

    def __init__(self):
        super().__init__()
        self.calls = []

    def score(self, pixels, prompts, groups):
        self.calls.append(pixels.shape[0])
        return RewardOutput(pixels.mean(dim=(1, 2, 3)))


def test_scorer_sends_the_planned_batches_and_keeps_row_order():
    items = [{"image": np.full((h, h, 3), v, np.uint8)} for h, v in ((8, 10), (8, 20), (32, 30), (8, 40))]
    bounded, free = Mean(), Mean()
    a = Scorer({"mean": bounded}, batch_size=8, num_workers=0, progress=False, max_batch_pixels=200).run(items)
    b = Scorer({"mean": free}, batch_size=8, num_workers=0, progress=False, max_batch_pixels=None).run(items)
    # bounded: [8px, 8px] (128 pixels; the 32px image would pass 200), [32px], [8px]; unbounded: one batch of
    # four, which the engine scores as one call per image size (three 8px, one 32px)
    assert bounded.calls == [2, 1, 1] and free.calls == [3, 1]
    assert list(a.table["mean"]) == list(b.table["mean"])
    assert np.allclose(a.table["mean"], [v / 255 for v in (10, 20, 30, 40)])
    with pytest.raises(UsageError, match="max_batch_pixels must be >= 1"):
        Scorer({"mean": Mean()}, max_batch_pixels=0, progress=False)


def test_cli_takes_max_batch_pixels(tmp_path):
    from rewardbench.cli.main import main

    for i in range(3):
        Image.new("RGB", (16, 16), (40 * i, 0, 0)).save(tmp_path / f"{i}.png")
    ok = CliRunner().invoke(main, ["score", "-m", "jpeg-compressibility", "-i", str(tmp_path), "--num-workers", "0",
                                   "--max-batch-pixels", "300", "--no-progress", "--json"])
    assert ok.exit_code == 0, ok.output
    bad = CliRunner().invoke(main, ["score", "-m", "jpeg-compressibility", "-i", str(tmp_path),
                                    "--max-batch-pixels", "0"])
    assert bad.exit_code == 2
