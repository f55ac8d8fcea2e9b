"""`rewardbench leaderboard --verify`: every committed row that can run offline is re-measured by its own stored
command and must come out the same; a changed, missing or new row fails naming it with its old and new values; rows
that cannot run here are listed with the reason."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from rewardbench.cli.leaderboard import leaderboard
from rewardbench.leaderboards.board import list_boards, make_row, read_board
from rewardbench.leaderboards.verify import report, scratch_argv, unverifiable_reason, verify, verify_ok
from rewardbench.provenance import Provenance

ROOT = Path(__file__).resolve().parents[2]
BOARDS = ROOT / "leaderboards" / "boards"


def test_the_committed_boards_reproduce():
    """Every committed board, every row: the agreement boards are re-measured offline (photo-distortions with the
    JPEG rewards and NudeNet's bundled detector, about 30 s per command on 2 CPU cores), the perf rows re-read
    from their result files. About a minute in all."""
    before = {p.name: p.read_bytes() for p in BOARDS.glob("*.csv")}
    t0 = time.perf_counter()
    checks = verify(root=BOARDS, cwd=ROOT)
    seconds = time.perf_counter() - t0
    assert verify_ok(checks), report(checks)
    # every committed row was checked, and every row of these boards can run offline: none is left out
    assert {c.board for c in checks} == set(list_boards(BOARDS))
    assert len(checks) == sum(len(read_board(b, root=BOARDS)) for b in list_boards(BOARDS))
    assert all(c.status == "ok" for c in checks), report(checks)
    assert {p.name: p.read_bytes() for p in BOARDS.glob("*.csv")} == before  # nothing committed was written
    print(f"verified {len(checks)} rows in {seconds:.0f} s")


@pytest.fixture
def perf_board(tmp_path, monkeypatch):
    """A copy of the committed perf board (its commands re-read result files: quick), run from the repository
    root as the commands were typed."""
    shutil.copy(BOARDS / "perf.csv", tmp_path / "perf.csv")
    monkeypatch.chdir(ROOT)
    return tmp_path


def _edit(path: Path, fn) -> pd.DataFrame:
    df = pd.read_csv(path, keep_default_na=False, na_values=[""])
    df = fn(df)
    df.to_csv(path, index=False, float_format="%.6g")
    return df


def test_a_changed_value_fails_naming_the_row_and_both_values(perf_board):
    ceiling = "batched forward (ceiling)"

    def change(df):
        row = (df["category"] == ceiling) & df["split"].str.startswith("CPU")
        assert row.sum() == 1
        df.loc[row, "value"] = 99.5
        return df

    _edit(perf_board / "perf.csv", change)
    true_value = read_board("perf", root=BOARDS).query("category == @ceiling and split.str.startswith('CPU')")
    out = CliRunner().invoke(leaderboard, ["--dir", str(perf_board), "--verify"])
    assert out.exit_code == 1, out.output
    mismatch = [line for line in out.output.splitlines() if line.startswith("MISMATCH")]
    assert mismatch == [f"MISMATCH perf: clipscore-b32 / scorer-performance / CPU, 2 cores / {ceiling} / img_per_s: "
                        f"value: 99.5 -> {true_value['value'].iloc[0]:g}"]
    assert "made by: rewardbench leaderboard --add-perf scripts/perf/results/cpu_b32.json" in out.output
    assert "14 rows verified, 1 mismatch" in out.output
    # the GPU file's rows still verify: only the changed row is named
    assert "ok: 5 row(s) reproduced" in out.output


def test_a_row_the_command_no_longer_makes_and_one_it_makes_now(perf_board):
    def change(df):
        df = df[df["metric"] != "rss_mb"].copy()  # the board lacks two rows its command makes
        ghost = df.iloc[[0]].copy()
        ghost["category"] = "a timing nobody makes"
        return pd.concat([df, ghost])

    _edit(perf_board / "perf.csv", change)
    checks = verify(["perf"], root=perf_board)
    bad = {(c.key["category"], c.reason) for c in checks if c.status == "mismatch"}
    assert bad == {("a timing nobody makes", "its command no longer makes this row"),
                   ("resident memory after 10k rows", "its command now makes this row, which the board lacks"),
                   ("resident memory after 100k rows", "its command now makes this row, which the board lacks")}
    assert not verify_ok(checks)


def test_a_failing_command_is_a_mismatch_with_its_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from rewardbench.leaderboards.board import append_rows

    append_rows("perf", [make_row(subject="x", judge="-", suite="s", metric="img_per_s", value=1.0, protocol="t",
                                  weights=[Provenance("random", "timing")],
                                  command="rewardbench leaderboard --add-perf gone.json")], root=tmp_path)
    checks = verify(root=tmp_path)
    assert [c.status for c in checks] == ["mismatch"]
    assert checks[0].reason.startswith("the command failed (exit 2): ") and "gone.json" in checks[0].reason


def test_rows_that_cannot_run_here_are_listed_with_the_reason_not_passed(tmp_path):
    from rewardbench.leaderboards.board import append_rows

    def row(subject, command, weights):
        return make_row(subject=subject, judge="human", suite="pickapic", metric="accuracy", value=0.7,
                        protocol="pickapic", weights=weights, command=command)

    append_rows("agreement", [
        row("pickscore", "rewardbench agreement --dataset pickapic-v1 --rewards pickscore --to-leaderboard agreement",
            [Provenance("hub", "yuvalkirstain/PickScore_v1")]),
        row("mine", "python my_eval.py", [Provenance("bundled", "nudenet")]),
        row("old", None, [Provenance("bundled", "nudenet")]),
    ], root=tmp_path)
    out = CliRunner().invoke(leaderboard, ["--dir", str(tmp_path), "--verify"])
    assert out.exit_code == 0, out.output  # nothing reproduced wrongly, but nothing passed either
    assert "0 rows verified, 0 mismatches, 3 not verifiable here" in out.output
    assert "its weights come from the hub (hub:yuvalkirstain/PickScore_v1)" in out.output
    assert "not a rewardbench command" in out.output and "no stored command" in out.output
    as_json = CliRunner().invoke(leaderboard, ["--dir", str(tmp_path), "--verify", "--json"])
    rows = json.loads(as_json.stdout)
    assert as_json.exit_code == 0 and sorted((r["key"]["subject"], r["status"]) for r in rows) == [
        ("mine", "not verifiable"), ("old", "not verifiable"), ("pickscore", "not verifiable")]
    one = pd.DataFrame({"weights_kind": ["none"], "weights": ["none"], "metric": ["accuracy"]})
    assert unverifiable_reason(one, "rewardbench agreement --device cuda:1", gpu=False) == \
        "it asks for a GPU (--device cuda:1) and this machine has none"
    assert unverifiable_reason(one, "rewardbench agreement --device=cuda", gpu=True) is None
    assert "a local file" in unverifiable_reason(one.assign(weights_kind="file+none"), "rewardbench agreement")


def test_commands_write_only_into_the_scratch_folder():
    argv = scratch_argv("rewardbench agreement --out rows.csv --heatmap=plots/a.png --boards-dir b "
                        "--to-leaderboard x  # a note", Path("/scratch"))
    assert argv[1:] == ["-m", "rewardbench.cli", "agreement", "--out", "/scratch/out/rows.csv",
                        "--heatmap=/scratch/out/a.png", "--boards-dir", "/scratch/boards", "--to-leaderboard", "x"]
