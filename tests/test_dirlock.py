"""The directory lock: one writer at a time, the holder named, stale locks of dead processes taken over."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from core.errors import LockError, StorageError
from harness import dirlock
from harness.dirlock import LOCK_FILE, DirLock

HOLD = """
import sys, time
from harness.dirlock import DirLock
with DirLock(sys.argv[1], "run directory"):
    print("held", flush=True)
    time.sleep(60)
"""


def _holder(folder):
    """A real process holding the lock on folder (it prints 'held' once it has it)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_second_writer_is_refused_with_the_holders_pid_and_host(tmp_path):
    proc = _holder(tmp_path)
    try:
        with pytest.raises(LockError) as err:
            DirLock(tmp_path, "run directory").acquire()
        message = str(err.value)
        assert "\n" not in message
        host = socket.gethostname()
        assert f"run directory {tmp_path} is in use by pid {proc.pid} on host {host}" in message
        assert "wait for it to finish or stop it" in message
    finally:
        proc.kill()
        proc.wait()


def test_lock_of_a_killed_process_is_taken_over_and_removed_on_release(tmp_path):
    proc = _holder(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == proc.pid  # left behind
    with DirLock(tmp_path) as lock:
        assert lock.stale_holder["pid"] == proc.pid
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert not (tmp_path / LOCK_FILE).exists()
    with DirLock(tmp_path) as again:  # released cleanly: nothing stale
        assert again.stale_holder is None


def test_two_holders_in_one_process_conflict(tmp_path):
    with DirLock(tmp_path, "checkpoint directory"), pytest.raises(LockError, match=f"pid {os.getpid()}"):
        DirLock(tmp_path, "checkpoint directory").acquire()


def test_a_file_where_the_folder_should_be_is_one_line(tmp_path):
    target = tmp_path / "run"
    target.write_text("not a folder")
    with pytest.raises(StorageError) as err:
        DirLock(target, "run directory").acquire()
    assert str(err.value) == (f"cannot lock the run directory {target}: a file stands where a folder is "
                              "expected (Not a directory)")
    assert target.read_text() == "not a folder"


@pytest.fixture
def no_flock(monkeypatch):
    def refuse(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", refuse)


def _write_lock(folder, pid, host):
    holder = {"pid": pid, "host": host, "started": "2026-01-01T00:00:00+00:00"}
    (folder / LOCK_FILE).write_text(json.dumps(holder))


def test_without_flock_the_file_is_the_lock(tmp_path, no_flock):
    with DirLock(tmp_path) as lock:
        assert lock.stale_holder is None
        with pytest.raises(LockError, match=f"pid {os.getpid()}"):
            DirLock(tmp_path).acquire()
    assert not (tmp_path / LOCK_FILE).exists()


def test_without_flock_a_dead_pid_on_this_host_is_stale(tmp_path, no_flock):
    dead = _dead_pid()
    _write_lock(tmp_path, dead, socket.gethostname())
    with DirLock(tmp_path) as lock:
        assert lock.stale_holder["pid"] == dead


@pytest.mark.parametrize("host_is_ours", [True, False])
def test_without_flock_a_live_or_remote_holder_is_refused(tmp_path, no_flock, host_is_ours):
    pid, host = (os.getppid(), socket.gethostname()) if host_is_ours else (_dead_pid(), "other-host")
    _write_lock(tmp_path, pid, host)
    with pytest.raises(LockError, match=f"pid {pid} on host {host} since 2026-01-01"):
        DirLock(tmp_path).acquire()
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == pid  # left as it was


def test_pid_alive():
    assert dirlock.pid_alive(os.getpid())
    assert not dirlock.pid_alive(_dead_pid())


def test_concurrent_acquirers_exactly_one_wins(tmp_path):
    # Four processes wait for one "go" file, then all try at once; the winner holds until "done".
    script = """
import pathlib, sys, time
from harness.dirlock import DirLock
from core.errors import LockError
folder, flags = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
print("ready", flush=True)
while not (flags / "go").exists():
    time.sleep(0.001)
try:
    with DirLock(folder):
        print("won", flush=True)
        while not (flags / "done").exists():
            time.sleep(0.01)
except LockError:
    print("lost", flush=True)
"""
    flags = tmp_path / "flags"
    flags.mkdir()
    folder = tmp_path / "run"
    folder.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", script, str(folder), str(flags)], stdout=subprocess.PIPE,
                              text=True) for _ in range(4)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    (flags / "go").touch()
    outcomes = [p.stdout.readline().strip() for p in procs]
    (flags / "done").touch()
    for p in procs:
        p.wait(timeout=30)
    assert sorted(outcomes) == ["lost", "lost", "lost", "won"]
    assert not (folder / LOCK_FILE).exists()


def test_lock_holder_only_looks(tmp_path):
    assert dirlock.lock_holder(tmp_path) is None  # no lock file
    proc = _holder(tmp_path)
    try:
        assert dirlock.lock_holder(tmp_path)["pid"] == proc.pid
        with pytest.raises(LockError):  # looking took nothing
            DirLock(tmp_path).acquire()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert (tmp_path / LOCK_FILE).exists() and dirlock.lock_holder(tmp_path) is None  # left by a dead process
