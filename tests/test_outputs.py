"""What a run may do with its --out: the lock against concurrent runs and the checks that a path can be written."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from rewardbench.outputs import OutputLockedError, RunLock, check_writable
from rewardbench.preflight import UsageError


def test_a_second_run_on_the_same_out_is_refused_while_the_first_lives(tmp_path):
    out = tmp_path / "s.parquet"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = tmp_path / "s.parquet.lock"
        lock.write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname(), "started": "then"}))
        with pytest.raises(OutputLockedError, match=f"another run .pid {sleeper.pid} on .*is writing"):
            RunLock(out).acquire()
        assert lock.exists()  # a live owner's lock is left alone
    finally:
        sleeper.kill()
        sleeper.wait()
    # the owner died (kill -9 leaves its lock behind): the lock is stale and is taken over
    with RunLock(out) as held:
        assert json.loads(held.path.read_text())["pid"] == os.getpid()
    assert not (tmp_path / "s.parquet.lock").exists()  # released on exit


def test_a_lock_from_another_machine_is_never_taken_over(tmp_path):
    (tmp_path / "s.csv.lock").write_text(json.dumps({"pid": 1, "host": "some-other-host", "started": "then"}))
    with pytest.raises(OutputLockedError, match="if that run is dead, delete"):
        RunLock(tmp_path / "s.csv").acquire()


def test_output_paths_that_cannot_be_written(tmp_path, monkeypatch):
    assert check_writable(tmp_path / "s.parquet") == tmp_path / "s.parquet"
    assert check_writable(tmp_path / "missing" / "deeper" / "s.parquet").parent.is_dir()  # missing folders: made
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="^--group-table .*is a file, not a folder"):
        check_writable(tmp_path / "file" / "g.csv", "--group-table")
    with pytest.raises(UsageError, match="is a file, not a folder"):
        check_writable(tmp_path / "file" / "s.parquet")
    with pytest.raises(UsageError, match="is a file, not a folder"):
        check_writable(tmp_path / "file" / "deeper" / "s.parquet")
    with pytest.raises(UsageError, match="is a folder"):
        check_writable(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(ro) else real_access(p, mode))
    with pytest.raises(UsageError, match="no permission to write in"):
        check_writable(ro / "s.parquet")


def test_an_output_folder_gets_its_missing_parents(tmp_path):
    assert check_writable(tmp_path / "run", folder=True) == tmp_path / "run"  # the command creates it
    assert check_writable(tmp_path, folder=True) == tmp_path  # an existing folder is fine
    assert check_writable(tmp_path / "new" / "run", folder=True).parent.is_dir()
    (tmp_path / "f").write_text("x")
    with pytest.raises(UsageError, match="is a file; give a folder"):
        check_writable(tmp_path / "f", folder=True)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere: the permission bits are not enforced")
def test_a_read_only_folder_is_refused_for_real(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(UsageError, match="no permission"):
            check_writable(ro / "s.parquet")
    finally:
        ro.chmod(0o700)
