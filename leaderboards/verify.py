"""Verify committed boards: re-run each row's stored ``command`` and compare what it measures today with the row.

A board row is a claim ("nsfw agrees with the construction 0.467 of the time") together with the command that
made it. `verify` groups a board's rows by command, runs each command that can run here into a scratch boards
folder (``$REWARDBENCH_BOARDS`` pointed at a temporary folder, its output options moved there too, so nothing
committed is touched), reads back the rows it wrote and compares ``value``, ``ci_low``, ``ci_high`` and ``n`` with
the committed row of the same key (`rewardbench.leaderboards.board.KEY`). Numbers are compared as a board stores
them (6 significant digits, both sides written the same way): equal, or within ``tolerance`` (absolute). A row
whose value changed, a committed row the command no longer makes, a row it makes that the board lacks, and a
command that fails are each a `RowCheck` with status ``"mismatch"``; `verify_ok` is False when there is any.

A row cannot run here when its command is not a ``rewardbench`` command, when its weights come from the hub, a
URL or a local file (``weights_kind`` other than ``none``, ``bundled`` and, for timings, ``random``), or when it
asks for a GPU this machine lacks (``--device cuda``); such rows get status ``"not verifiable"`` and the reason,
never a silent pass. Timing rows (`board.TIMING_METRICS`) are stored with the command that ingested their result
file (``rewardbench leaderboard --add-perf FILE``): re-running it checks the board against that file, not the
timing itself, and their check says so. Commands run from ``cwd`` (default: the current folder, where they were
typed: the repository root for the committed boards); a trailing shell comment (``# ...``) is a note, not run.

    >>> import tempfile
    >>> from rewardbench.provenance import Provenance
    >>> d = tempfile.mkdtemp()
    >>> from rewardbench.leaderboards.board import append_rows, make_row
    >>> _ = append_rows("demo", [make_row(subject="pickscore", judge="human", suite="pickapic", metric="accuracy",
    ...     value=0.7, protocol="pickapic", weights=[Provenance("hub", "yuvalkirstain/PickScore_v1")],
    ...     command="rewardbench agreement --dataset pickapic-v1 --rewards pickscore --to-leaderboard demo")], root=d)
    >>> [(c.status, c.reason) for c in verify(["demo"], root=d)]
    [('not verifiable', 'its weights come from the hub (hub:yuvalkirstain/PickScore_v1)')]
"""

from __future__ import annotations

import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .board import ENV_BOARDS, KEY, TIMING_METRICS, list_boards, read_board, read_boards

COMPARED = ("value", "ci_low", "ci_high", "n")
# weights kinds a command can load with no download (timing rows use random weights on purpose)
_OFFLINE_KINDS = {"none", "bundled"}
_KIND_WORDS = {"hub": "the hub", "url": "a URL", "file": "a local file", "unknown": "an unrecorded source"}
# options whose value is a file or folder the command writes: moved into the scratch folder
_OUTPUT_OPTIONS = {"--out", "-o", "--heatmap", "--scores-out", "--group-table"}
_BOARD_OPTIONS = {"--boards-dir", "--dir"}  # a boards folder: the scratch boards folder


@dataclass(frozen=True)
class RowCheck:
    """The verification of one committed row (or of a row its command makes that the board lacks)."""

    board: str
    key: dict[str, Any]  # the row's `KEY` fields
    status: str  # "ok" | "mismatch" | "not verifiable"
    reason: str = ""  # why not verifiable, what differs, or a note on an "ok"
    old: dict[str, Any] = field(default_factory=dict)  # the committed COMPARED fields
    new: dict[str, Any] = field(default_factory=dict)  # what the command gives today
    command: str = ""
    seconds: float = 0.0  # the command's run time (shared by every row it made)

    @property
    def what(self) -> str:
        k = self.key
        parts = [k.get("subject"), k.get("judge"), k.get("suite"), k.get("split"), k.get("category"), k.get("metric")]
        return f"{self.board}: " + " / ".join(str(p) for p in parts if p not in (None, "", "-", "all"))

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "what": self.what}


def _number(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def _same(a: Any, b: Any, tolerance: float) -> bool:
    x, y = _number(a), _number(b)
    if x is None or y is None:
        return x is None and y is None
    return abs(x - y) <= tolerance


def _fields(row: pd.Series | dict) -> dict[str, Any]:
    return {c: _number(row[c]) for c in COMPARED}


def _key(row: pd.Series | dict) -> tuple[str, ...]:
    return tuple(str(row[c]) for c in KEY)


def unverifiable_reason(rows: pd.DataFrame, command: str, gpu: bool | None = None) -> str | None:
    """Why a command's rows cannot be re-measured on this machine, or None when they can.

        >>> rows = pd.DataFrame({"weights_kind": ["bundled+none"], "weights": ["x"], "metric": ["accuracy"]})
        >>> unverifiable_reason(rows, "rewardbench agreement --dataset photo-distortions --device cuda", gpu=False)
        'it asks for a GPU (--device cuda) and this machine has none'
        >>> unverifiable_reason(rows, "python make_table.py")
        'not a rewardbench command'
    """
    if not command.strip():
        return "no stored command"
    try:
        argv = shlex.split(command, comments=True)
    except ValueError as e:
        return f"its command cannot be parsed ({e})"
    if not argv or Path(argv[0]).name != "rewardbench" or len(argv) < 2:
        return "not a rewardbench command"
    for _, r in rows.iterrows():
        kinds = set(str(r["weights_kind"]).split("+")) if isinstance(r["weights_kind"], str) else {"unknown"}
        if r["metric"] in TIMING_METRICS:
            kinds.discard("random")
        remote = sorted(kinds - _OFFLINE_KINDS)
        if remote:
            where = " and ".join(_KIND_WORDS.get(k, k) for k in remote)
            return f"its weights come from {where} ({r['weights']})"
    device = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--device"), None)
    device = device or next((a.split("=", 1)[1] for a in argv if a.startswith("--device=")), None)
    if device and device.startswith("cuda"):
        if gpu is None:
            import torch

            gpu = torch.cuda.is_available()
        if not gpu:
            return f"it asks for a GPU (--device {device}) and this machine has none"
    return None


def scratch_argv(command: str, scratch: Path) -> list[str]:
    """The command's arguments as run in ``scratch``: this Python's ``rewardbench``, output files and boards
    folders moved into ``scratch`` (a trailing ``# note`` dropped).

        >>> scratch_argv("rewardbench agreement --out rows.csv --to-leaderboard a  # note", Path("/s"))[3:]
        ['agreement', '--out', '/s/out/rows.csv', '--to-leaderboard', 'a']
    """
    argv, out, i = shlex.split(command, comments=True)[1:], [], 0
    while i < len(argv):
        name, eq, value = argv[i].partition("=")
        if name not in _OUTPUT_OPTIONS | _BOARD_OPTIONS or (not eq and i + 1 == len(argv)):
            out.append(argv[i])
            i += 1
            continue
        if not eq:
            value, i = argv[i + 1], i + 1
        moved = str(scratch / "boards") if name in _BOARD_OPTIONS else str(scratch / "out" / Path(value).name)
        out += [f"{name}={moved}"] if eq else [name, moved]
        i += 1
    return [sys.executable, "-m", "rewardbench.cli", *out]


def run_command(command: str, scratch: Path, *, cwd: str | os.PathLike | None = None,
                timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run a stored command with its boards and outputs in ``scratch`` (`scratch_argv`)."""
    (scratch / "out").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, ENV_BOARDS: str(scratch / "boards")}
    return subprocess.run(scratch_argv(command, scratch), cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def _check_command(board_rows: dict[str, pd.DataFrame], command: str, tolerance: float, cwd, timeout,
                   runner: Callable[..., subprocess.CompletedProcess]) -> list[RowCheck]:
    """Run one command and compare every committed row it made (``{board: rows}``) with what it makes now."""
    timing = all(r["metric"] in TIMING_METRICS for rows in board_rows.values() for _, r in rows.iterrows())
    with tempfile.TemporaryDirectory(prefix="rb-verify-") as tmp:
        t0 = time.perf_counter()
        try:
            done = runner(command, Path(tmp), cwd=cwd, timeout=timeout)
            failure = None if done.returncode == 0 else \
                f"the command failed (exit {done.returncode}): {_last_line(done.stderr or done.stdout)}"
        except subprocess.TimeoutExpired:
            failure = f"the command ran past {timeout:g} s"
        seconds = time.perf_counter() - t0
        fresh = read_boards(root=Path(tmp) / "boards") if failure is None else None
    checks = []
    made = {} if fresh is None else {_key(r): r for _, r in fresh.iterrows()}
    note = "checked against its result file; the timing itself is not re-measured" if timing else ""
    for board, rows in board_rows.items():
        for _, row in rows.iterrows():
            key, old = {c: row[c] for c in KEY}, _fields(row)
            base = dict(board=board, key=key, old=old, command=command, seconds=seconds)
            if failure is not None:
                checks.append(RowCheck(status="mismatch", reason=failure, **base))
                continue
            new = made.pop(_key(row), None)
            if new is None:
                checks.append(RowCheck(status="mismatch", reason="its command no longer makes this row", **base))
                continue
            new = _fields(new)
            differ = [c for c in COMPARED if not _same(old[c], new[c], tolerance)]
            reason = "; ".join(f"{c}: {old[c]} -> {new[c]}" for c in differ) if differ else note
            checks.append(RowCheck(status="mismatch" if differ else "ok", reason=reason, new=new, **base))
    for k, extra in made.items():  # rows the command makes now that no board of it holds
        checks.append(RowCheck(board=str(extra["board"]), key=dict(zip(KEY, k)), status="mismatch", new=_fields(extra),
                               reason="its command now makes this row, which the board lacks", command=command,
                               seconds=seconds))
    return checks


def verify(boards: Iterable[str] | None = None, *, root: str | os.PathLike | None = None, tolerance: float = 0.0,
           cwd: str | os.PathLike | None = None, timeout: float | None = 1800,
           progress: Callable[[str], None] | None = None,
           runner: Callable[..., subprocess.CompletedProcess] = run_command) -> list[RowCheck]:
    """Re-run the stored commands of ``boards`` (default: all) and compare their rows with the committed ones;
    one `RowCheck` per row. ``progress`` is told each command before it runs."""
    names = list(boards) if boards else list_boards(root)
    by_command: dict[str, dict[str, pd.DataFrame]] = {}
    for name in names:
        df = read_board(name, root=root)
        df["command"] = df["command"].fillna("").astype(str)
        for command, rows in df.groupby("command", sort=False):
            by_command.setdefault(command, {})[name] = rows
    checks: list[RowCheck] = []
    for command, board_rows in by_command.items():
        reason = unverifiable_reason(pd.concat(board_rows.values()), command)
        if reason is not None:
            checks += [RowCheck(board=b, key={c: r[c] for c in KEY}, status="not verifiable", reason=reason,
                                old=_fields(r), command=command)
                       for b, rows in board_rows.items() for _, r in rows.iterrows()]
            continue
        if progress is not None:
            progress(command)
        checks += _check_command(board_rows, command, tolerance, cwd, timeout, runner)
    return checks


def verify_ok(checks: Sequence[RowCheck]) -> bool:
    """No mismatch (rows that cannot be verified here do not fail a verification; they are listed)."""
    return not any(c.status == "mismatch" for c in checks)


def report(checks: Sequence[RowCheck]) -> str:
    """One line per mismatch and per unverifiable command, then the counts.

        >>> print(report([RowCheck("agreement", {"subject": "nsfw", "metric": "accuracy"}, "mismatch",
        ...                        "value: 0.466667 -> 0.5", command="rewardbench agreement ...")]))
        MISMATCH agreement: nsfw / accuracy: value: 0.466667 -> 0.5
          made by: rewardbench agreement ...
        0 rows verified, 1 mismatch, 0 not verifiable here
    """
    lines, shown = [], set()
    for c in checks:
        if c.status == "mismatch":
            lines.append(f"MISMATCH {c.what}: {c.reason}")
            if c.command not in shown:
                shown.add(c.command)
                lines.append(f"  made by: {c.command}")
    unverifiable: dict[tuple[str, str], list[RowCheck]] = {}
    for c in checks:
        if c.status == "not verifiable":
            unverifiable.setdefault((c.command, c.reason), []).append(c)
    for (command, reason), rows in unverifiable.items():
        boards = ", ".join(sorted({r.board for r in rows}))
        lines.append(f"not verifiable here: {len(rows)} row(s) of {boards} ({command or 'no command'}): {reason}")
    timed = {c.command: c.seconds for c in checks if c.status != "not verifiable"}
    for command, seconds in timed.items():
        ok = [c for c in checks if c.command == command and c.status == "ok"]
        if ok and len(ok) == sum(c.command == command for c in checks):
            note = f" ({ok[0].reason})" if ok[0].reason else ""
            lines.append(f"ok: {len(ok)} row(s) reproduced in {seconds:.0f} s by: {command}{note}")
    n = {s: sum(c.status == s for c in checks) for s in ("ok", "mismatch", "not verifiable")}
    lines.append(f"{n['ok']} rows verified, {n['mismatch']} mismatch{'es' if n['mismatch'] != 1 else ''}, "
                 f"{n['not verifiable']} not verifiable here")
    return "\n".join(lines)
