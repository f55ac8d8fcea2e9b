"""The README's main job: real photos scored offline, end to end through the CLI, as a newcomer meets it."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pandas as pd
import pytest
from click.testing import CliRunner

import rewardbench
from rewardbench.cli import main
from rewardbench.demo import DEMO_PHOTOS


def _demo(out, *args, progress=False) -> subprocess.CompletedProcess:
    """``rewardbench demo`` in a process of its own, so that what the native runtimes print reaches its stderr."""
    cmd = [sys.executable, "-m", "rewardbench.cli", "demo", "--out", str(out), *args]
    env = {**os.environ, "COLUMNS": "100"}
    return subprocess.run(cmd + ([] if progress else ["--no-progress"]), capture_output=True, text=True, env=env,
                          timeout=600)


@pytest.fixture(scope="module")
def full_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "d"
    return out, _demo(out)


def test_demo_scores_real_photos_with_offline_rewards(tmp_path):
    out = tmp_path / "demo"
    r = CliRunner().invoke(main, ["demo", "--out", str(out), "--model", "jpeg-compressibility,jpeg-incompressibility"])
    assert r.exit_code == 0, r.output
    table = pd.read_parquet(out / "scores.parquet")
    assert len(table) == len(DEMO_PHOTOS)
    assert table["error"].isna().all()
    # compressibility is minus incompressibility, row by row, and the photos differ
    assert (table["jpeg-compressibility"] + table["jpeg-incompressibility"]).abs().max() < 1e-4
    assert table["jpeg-incompressibility"].nunique() == len(DEMO_PHOTOS)
    assert "weights" not in table.columns  # recorded once per run, not on every row
    # rewards with the same weights are listed together
    assert "weights used:\n  jpeg-compressibility, jpeg-incompressibility: none (no weights needed)\n" in r.output
    assert (out / "scores.csv").is_file()


def test_demo_default_uses_every_offline_reward_and_fits_100_columns(full_demo):
    out, r = full_demo
    assert r.returncode == 0, r.stdout + r.stderr
    from rewardbench.demo import LEFT_OUT

    offline = [s.name for s in rewardbench.list_rewards() if s.offline and s.name not in LEFT_OUT]
    table = pd.read_parquet(out / "scores.parquet")
    assert set(offline) <= set(table.columns) and not set(LEFT_OUT) & set(table.columns)
    assert all(f"left out: {name} (" in r.stdout for name in LEFT_OUT)  # and the demo says why
    assert table["error"].isna().all(), table["error"].dropna().tolist()
    too_wide = [line for line in r.stdout.splitlines() if len(line) > 100]
    assert not too_wide, "\n".join(too_wide)
    # nothing on stderr without a progress bar: no LiteRT INFO line, no pandas PerformanceWarning
    assert r.stderr == ""


def test_demo_prints_each_group_reward_once_per_group_and_each_note_once(full_demo):
    out, r = full_demo
    per_image, rest = r.stdout.split("group rewards, one value per group (prompt; the groups are listed below):\n")
    group_rewards = [s.name for s in rewardbench.list_rewards() if s.offline and s.granularity == "group"]
    image_rewards = [s.name for s in rewardbench.list_rewards() if s.offline and s.granularity == "image"]
    header = per_image.splitlines()[-2]  # the per-image table's header (a blank line follows the table)
    assert not any(name in per_image.split("\n", 3)[-1] for name in group_rewards)
    assert all(name in per_image for name in image_rewards), header
    table, legend, notes = rest.split("\n\n")[:3]
    rows = {line.split()[0]: line.split("  ") for line in table.splitlines()[2:]}
    assert sorted(rows) == sorted(group_rewards)  # a row per group reward
    prompts = list(dict.fromkeys(p for _, _, p in DEMO_PHOTOS))
    sizes = {p: sum(q == p for _, _, q in DEMO_PHOTOS) for p in prompts}
    listed = [re.fullmatch(r"group (\d+)  (.+) \((\d+) images?\)", line) for line in legend.splitlines()]
    assert all(listed) and [m[2] for m in listed] == prompts  # each group once, with its size
    assert all(int(m[3]) == sizes[m[2]] for m in listed)
    # a group of one photo is too small for every group reward, said in each of its cells, not as a number
    cells = [[c.strip() for c in re.split(r"\s{2,}", line.strip())][1:] for line in table.splitlines()[2:]]
    for m in listed:
        column = [row[int(m[1]) - 1] for row in cells]
        assert (set(column) == {"too small"}) == (sizes[m[2]] == 1), (m[2], column)
    # the notes: each distinct note once, its groups named together; a reason said once for the rewards sharing it
    assert notes.startswith("notes, each said once:\n")
    text = " ".join(notes.split())
    single = [m[1] for m in listed if sizes[m[2]] == 1]
    assert text.count("too small (1 image; at least 2 needed)") == 1 and f"groups {single[0]}-{single[-1]}" in text
    assert "every group reward: too small" in text
    assert text.count("fairness rewards: no face found in its image") == 1
    assert text.count("diversity rewards: a single image") == 1
    for name in group_rewards:  # no reward is named one by one where its family shares the reason
        assert f"{name}:" not in text, name
    groups = pd.read_csv(out / "groups.csv")
    assert sorted(groups["prompt"]) == sorted(prompts) and groups["size"].sum() == len(DEMO_PHOTOS)


def test_demo_stderr_holds_the_progress_bar_only(tmp_path):
    r = _demo(tmp_path / "d", "--model", "skin-tone-parity,gender-parity,nsfw", progress=True)
    assert r.returncode == 0, r.stdout + r.stderr
    chunks = [c.strip() for c in re.split(r"[\r\n]", r.stderr) if c.strip()]
    assert chunks and all(c.startswith("scoring:") for c in chunks), r.stderr


def test_demo_refuses_an_output_folder_under_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    r = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "file" / "d"), "--model", "jpeg-compressibility"])
    assert r.exit_code == 2 and "is a file, not a folder" in r.output, r.output
