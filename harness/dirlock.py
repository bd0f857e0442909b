"""An exclusive lock on a run or checkpoint directory, so that two writers never interleave.

The lock is a file `.lock` in the directory, held with `fcntl.flock` and holding the holder's pid, host,
start time and command line. The kernel drops a flock when its process dies, so a lock left by a killed
run is stale by construction and the next writer takes it over (and is told whose it was). A second
live writer gets a LockError naming the holder:

    with DirLock(Path("runs/r1"), "run directory") as lock:
        ...  # write records; lock.stale_holder says whose stale lock was taken over, if any
    # LockError: run directory runs/r1 is in use by pid 4242 on host gpu-3 since 2026-01-01T10:00:00+00:00
    #            (harness eval --out runs/r1 --resume); wait for it to finish or stop it

On a file system without flock (some network and FUSE mounts) the file is created with O_EXCL instead,
as git creates `index.lock`: a lock whose pid is gone on this host is taken over, any other is refused.
The file is removed on release.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from core.errors import LockError, storage_error

LOCK_FILE = ".lock"
# flock errors that mean "this file system cannot lock", not "someone holds it".
_NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)
_CREATE = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC  # close-on-exec: a spawned worker must not keep the lock


def holder_info() -> dict[str, Any]:
    """What a lock file says about its holder."""
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300]}


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _describe(holder: dict[str, Any]) -> str:
    text = f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}"
    if holder.get("started"):
        text += f" since {holder['started']}"
    if holder.get("command"):
        text += f" ({holder['command']})"
    return text


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        holder = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return holder if isinstance(holder, dict) else {}


def lock_holder(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The live process holding folder's lock (its pid, host, ...), or None. Only looks: takes nothing."""
    path = Path(folder) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        holder = _parse(os.pread(fd, 4096, 0))
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return holder or {"pid": "?", "host": "?"}
        except OSError:  # no flock here: the file is the lock; a dead pid on this host is not a holder
            dead = holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int) \
                and not pid_alive(holder["pid"])
            return None if dead else holder or {"pid": "?", "host": "?"}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None  # a file left by a process that died: no holder
    finally:
        os.close(fd)


class DirLock:
    """Hold `<folder>/.lock` while in the `with` block (or between acquire() and release())."""

    def __init__(self, folder: str | os.PathLike, what: str = "directory"):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.what = what
        self.stale_holder: dict[str, Any] | None = None  # a dead holder whose lock was taken over
        self._fd: int | None = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def busy(self, holder: dict[str, Any]) -> LockError:
        return LockError(f"{self.what} {self.folder} is in use by {_describe(holder)}; "
                         "wait for it to finish or stop it")

    def acquire(self) -> None:
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this object")
        while True:
            try:
                try:
                    fd, created = os.open(self.path, _CREATE | os.O_EXCL, 0o644), True
                except FileExistsError:
                    fd, created = os.open(self.path, os.O_RDWR | os.O_CLOEXEC), False
            except FileNotFoundError:
                continue  # released between our two opens
            except OSError as exc:
                raise storage_error(exc, f"lock the {self.what}", self.folder) from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _parse(os.pread(fd, 4096, 0))
                os.close(fd)
                raise self.busy(holder) from None
            except OSError as exc:
                if exc.errno not in _NO_FLOCK:
                    os.close(fd)
                    raise storage_error(exc, f"lock the {self.what}", self.folder) from exc
                if not created:
                    os.close(fd)
                    self._acquire_exclusive_create()
                    return
                # we created the file exclusively: that is the lock on a file system without flock
            # A releasing holder unlinks the file before closing it: if what we locked is no longer the
            # file at the path, our lock protects nothing, so start again.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            previous = _parse(os.pread(fd, 4096, 0))
            if previous.get("pid") is not None:
                self.stale_holder = previous  # its process died holding the lock: taken over
            try:
                self._write(fd)
            except OSError as exc:
                self._fd = fd
                self.release()
                raise storage_error(exc, f"lock the {self.what}", self.folder) from exc
            self._fd = fd
            return

    def _write(self, fd: int) -> None:
        data = (json.dumps(holder_info()) + "\n").encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)

    def _acquire_exclusive_create(self) -> None:
        """No flock here: the file's existence is the lock; a dead holder's file is removed once."""
        for _ in range(2):
            try:
                fd = os.open(self.path, _CREATE | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = _parse(self.path.read_bytes()) if self.path.exists() else {}
                stale = holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int) \
                    and not pid_alive(holder["pid"])
                if not stale:
                    raise self.busy(holder) from None
                self.stale_holder = holder
                self.path.unlink(missing_ok=True)
                continue
            except OSError as exc:
                raise storage_error(exc, f"lock the {self.what}", self.folder) from exc
            try:
                self._write(fd)
            except OSError as exc:
                os.close(fd)
                self.path.unlink(missing_ok=True)
                raise storage_error(exc, f"lock the {self.what}", self.folder) from exc
            self._fd = fd
            return
        raise self.busy(_parse(self.path.read_bytes()) if self.path.exists() else {})

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                self.path.unlink()  # unlinked while still held, so no one can lock the old file after us
        except OSError:
            pass  # gone already, or the folder is read-only now: the kernel drops the flock on close
        os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None
