"""Output folders of the commands that write models and checkpoints (tiny-model, export, train).

Before any expensive work, a folder that already holds something is refused unless the caller passes
force (`--force`), and a file where the folder should be is refused; both in one line.

    with staged_output(Path("models/m"), "model directory", force=False) as staging:
        model.save_pretrained(staging)   # written aside, in a hidden sibling folder
    # models/m now holds it, readable by everyone the umask allows (0644 files, as cp would make)

A staged build is moved into place only when it is complete: a failed or killed build leaves the old
content (or nothing), never half of each. A checkpoint is written in place while training runs, so
`claimed_output_dir` locks it instead (a second trainer gets a LockError naming the first).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.errors import OutputExistsError, StorageError, storage_error
from harness.dirlock import LOCK_FILE, DirLock


def check_output_dir(out: Path, what: str, force: bool) -> None:
    """Refuse a file at `out`, or a folder holding anything, unless force (then it will be replaced)."""
    if out.exists() and not out.is_dir():
        raise StorageError(f"{out} is a file; the {what} must be a folder")
    if out.is_dir() and not force:
        try:
            names = sorted(p.name for p in out.iterdir() if p.name != LOCK_FILE)
        except OSError as exc:
            raise storage_error(exc, "read", out) from exc
        if names:
            shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            raise OutputExistsError(f"{out} already holds files ({shown}); pass --force to replace the {what}, "
                                    "or choose another folder")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_readable(folder: Path) -> None:
    """Files 0666 and folders 0777 less the umask: some writers (safetensors, mkdtemp) make them private,
    and another user of a shared model then gets errors that do not say permission."""
    mask = _umask()
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o777 & ~mask)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~mask)
    os.chmod(folder, 0o777 & ~mask)


@contextmanager
def staged_output(out: Path, what: str, force: bool = False) -> Iterator[Path]:
    """A hidden sibling folder to write into; moved to `out` (replacing it when force) at the end."""
    out = Path(out)
    check_output_dir(out, what, force)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    except OSError as exc:
        raise storage_error(exc, f"create the {what}", out) from exc
    try:
        yield staging
        make_readable(staging)
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.rename(out, old / "content")
        try:
            os.rename(staging, out)
        except OSError:
            if old is not None:
                os.rename(old / "content", out)  # put the old content back
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise storage_error(exc, f"write the {what}", out) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def claimed_output_dir(out: Path, what: str, force: bool = False) -> Iterator[Path]:
    """`out`, created if needed and locked; with force, emptied first (once the lock is ours). A folder
    this call created and left empty is removed again."""
    out = Path(out)
    check_output_dir(out, what, force)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, f"create the {what}", out) from exc
    lock = DirLock(out, what)
    try:
        lock.acquire()
        check_output_dir(out, what, force)  # again under the lock: another process may have written here
        if force:
            _empty(out, what)
        yield out
    finally:
        lock.release()
        if created:
            try:
                out.rmdir()  # only when empty: nothing was written
            except OSError:
                pass


def _empty(folder: Path, what: str) -> None:
    try:
        for entry in folder.iterdir():
            if entry.name == LOCK_FILE:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    except OSError as exc:
        raise storage_error(exc, f"replace the {what}", folder) from exc
