"""What a scoring run may do with its ``--out``: a lock against concurrent runs, checks that the path can be
written, and the decision between starting fresh, resuming the shards in ``OUT.parts/``, finding a
finished table, and refusing to mix or to destroy results.

The rules:
  * shards of the same run (same fingerprint) are resumed; those of another run are never mixed in;
  * a finished run leaves one results file (its shards are removed once every row is scored; while
    some rows failed they stay, so that re-running retries those rows);
  * an existing results file is replaced only by the same run completing itself, or with ``overwrite``;
    the same run finding its own finished parquet table (the run's fingerprint is in its metadata)
    has nothing to do;
  * ``OUT.lock`` keeps a second run off the same ``out`` while the first is alive.

Example:
    >>> import pathlib, tempfile
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "s.parquet"
    >>> with RunLock(out):
    ...     try:
    ...         RunLock(out).acquire()
    ...     except OutputLockedError as e:
    ...         print("locked:", "another run" in str(e))
    locked: True
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .distributed import broadcast
from .errors import UsageError
from .results import table_metadata
from .shards import FINGERPRINT_FILE, ROW, ResumeMismatchError, fingerprint_diff, list_shards


class OutputExistsError(ResumeMismatchError):
    """``out`` already holds a complete results table that this run would replace (pass overwrite)."""


class OutputLockedError(RuntimeError):
    """Another live run is writing the same ``out``."""


def parts_dir(out: Path) -> Path:
    """The shard folder of ``out``: ``OUT.parts`` beside it."""
    return out.with_name(out.name + ".parts")


def check_writable(path: str | os.PathLike, what: str = "--out", *, folder: bool = False) -> Path:
    """``path`` as an output this process can create or replace, its missing folders created, or one line of
    `UsageError`: the one rule for every command's output and for the Python API. What cannot work is refused
    before any work: a folder where a file is wanted (or the reverse), a path under a file, a folder this user
    cannot write in, a read-only file. ``folder=True`` checks an output folder (which the command creates).

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> check_writable(f"{d}/runs/s.parquet").parent.is_dir()  # the missing folder is created
        True
        >>> open(f"{d}/notes.txt", "w").close()
        >>> try:
        ...     check_writable(f"{d}/notes.txt/s.parquet")
        ... except UsageError as e:
        ...     print(str(e).split(": ", 1)[1].replace(d, "D"))
        D/notes.txt is a file, not a folder
    """
    path = Path(path).expanduser()
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir() and not folder:
        raise UsageError(f"{what} {path}: is a folder; give a file name (e.g. {path / 'scores.parquet'})")
    if folder and path.exists() and not path.is_dir():
        raise UsageError(f"{what} {path}: is a file; give a folder")
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{what} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {path}: no permission to write in {existing}")
    parent.mkdir(parents=True, exist_ok=True)
    target = path if folder and path.is_dir() else parent
    if not os.access(target, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {path}: no permission to write in {target}")
    if not folder and path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{what} {path}: the file exists and is read-only")
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """``OUT.lock``: created atomically; names the process holding it. A lock left by a process that
    died on this machine (``kill -9``) is taken over; one held by a live process refuses the run."""

    def __init__(self, out: str | os.PathLike):
        self.path = Path(out).with_name(Path(out).name + ".lock")
        self.held = False

    def acquire(self) -> RunLock:
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    other = json.loads(self.path.read_text() or "{}")
                except (OSError, ValueError):
                    other = {}
                if other.get("host") == me["host"] and isinstance(other.get("pid"), int) and not _alive(other["pid"]):
                    self.path.unlink(missing_ok=True)  # its owner died: a stale lock
                    continue
                who = f"pid {other.get('pid', '?')} on {other.get('host', '?')}, started {other.get('started', '?')}"
                raise OutputLockedError(
                    f"another run ({who}) is writing {self.path.with_suffix('')}; wait for it to finish or use another "
                    f"--out (if that run is dead, delete {self.path})") from None
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return self
        raise OutputLockedError(f"could not take the lock {self.path}")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


@dataclass
class OutputState:
    """How a run starts: ``parts`` (the shard folder), ``attempt`` (1 for a fresh run, +1 per re-run:
    later attempts' rows win), ``complete`` (``out`` is this run's finished table: nothing to resume)."""

    parts: Path
    attempt: int
    complete: bool = False


def _same(old: dict | None, fp: dict) -> bool:
    return old is not None and old == json.loads(json.dumps(fp))


def _decide(out: Path, fp: dict[str, Any], resume: bool, overwrite: bool, retry_failed: bool) -> OutputState:
    parts = parts_dir(out)
    record = parts / FINGERPRINT_FILE
    has_shards = parts.is_dir() and bool(list_shards(parts))
    old = json.loads(record.read_text()) if has_shards and record.is_file() else None
    old_fp = old.get("fingerprint") if isinstance(old, dict) and "fingerprint" in old else old
    replace = "pass --overwrite (overwrite=True) to replace it, or write to another --out"
    if overwrite:
        if parts.exists():
            shutil.rmtree(parts)
        state = OutputState(parts, 1)
    elif has_shards and resume:
        if not _same(old_fp, fp):
            diff = fingerprint_diff(old_fp or {}, fp)
            if out.exists():
                raise OutputExistsError(f"{out} holds the results of a different run ({diff}); {replace}")
            raise ResumeMismatchError(
                f"{out}: {parts} holds partial results of a different run ({diff}); not mixing them. Pass another "
                f"--out, delete {parts}, or start over with resume=False (CLI: --no-resume).")
        state = OutputState(parts, int(old.get("attempt", 1)) + 1 if isinstance(old, dict) else 2)
    elif out.exists():
        tfp = table_metadata(out)  # the fingerprint a finished parquet table carries
        if resume and _same(tfp, fp):
            if not (retry_failed and _seed_failed(out, parts)):
                return OutputState(parts, 1, complete=True)
            state = OutputState(parts, 2)  # its failed rows are scored again on top of the finished table
        else:
            why = f"of a different run ({fingerprint_diff(tfp, fp)})" if tfp is not None and resume else \
                "(a finished run)" if resume else "(--no-resume never replaces a finished table)"
            raise OutputExistsError(f"{out} already holds a complete results table {why}; {replace}")
    else:
        if parts.exists():  # --no-resume, or a folder without shards
            shutil.rmtree(parts)
        state = OutputState(parts, 1)
    parts.mkdir(parents=True, exist_ok=True)
    tmp = record.with_name(record.name + ".tmp")
    tmp.write_text(json.dumps({"fingerprint": fp, "attempt": state.attempt}, indent=1))
    os.replace(tmp, record)
    for stale in parts.glob("*.tmp"):  # half-written shards of a killed run
        stale.unlink(missing_ok=True)
    return state


def _seed_failed(out: Path, parts: Path) -> bool:
    """If the finished table ``out`` has failed rows, make it the first shard of ``parts`` (so that a
    re-run scores those rows again on top of it) and say so."""
    import pandas as pd

    table = pd.read_parquet(out)
    if not table["error"].notna().any():
        return False
    if parts.exists():
        shutil.rmtree(parts)
    parts.mkdir(parents=True)
    table.insert(0, ROW, range(len(table)))
    tmp = parts / "part-a00001-r0-000000-seed.parquet.tmp"
    table.to_parquet(tmp, index=False)
    os.replace(tmp, tmp.with_suffix(""))
    return True


def prepare_output(out: Path, fp: dict[str, Any], *, resume: bool, overwrite: bool, rank: int, world: int,
                   retry_failed: bool = True) -> OutputState:
    """Rank 0 decides what this run does with ``out`` (see the module docstring); every rank gets the
    same `OutputState`, or the same `ResumeMismatchError` / `OutputExistsError`."""
    state, error = None, None
    if rank == 0:
        try:
            state = _decide(out, fp, resume, overwrite, retry_failed)
        except ResumeMismatchError as e:
            error = (isinstance(e, OutputExistsError), str(e))
    error = broadcast(error, world)
    if error:
        raise (OutputExistsError if error[0] else ResumeMismatchError)(error[1])
    return broadcast(state, world)


def finish_output(out: Path, parts: Path, keep_parts: bool) -> None:
    """After the table is written: remove the shards (one results file is left), unless rows failed
    and a re-run should retry them."""
    if not keep_parts and parts.exists():
        shutil.rmtree(parts, ignore_errors=True)
