"""The harness's one small exception hierarchy. The CLI turns each into one line and exit code 2 (Interrupted: 128 + the signal's number)."""

from __future__ import annotations

import errno
import os

# Set for the training processes that `harness train --num-processes` launches: the folder where each
# leaves its one-line error, so that the line is printed once (trainers/distributed.py, trainers/launch.py).
LAUNCH_ERRORS_ENV = "HARNESS_LAUNCH_ERRORS"


class HarnessError(Exception):
    """Base class: anything the user can fix (bad input, missing files, wrong arguments)."""

    # True in a training process whose main process reports the same error (several processes train
    # together): the command line prints it once, from the main process
    reported_elsewhere = False


class ConfigError(HarnessError):
    """A flag or config value is invalid or inconsistent."""


class DataError(HarnessError):
    """A data set cannot be found or read (the message says which --data-dir layout to pass)."""


class ModelError(HarnessError):
    """A model, adapter or processor cannot be loaded."""


class RunDirError(HarnessError):
    """A run directory is missing, corrupt, or does not match the requested run (on --resume)."""


class SchemaVersionError(RunDirError):
    """A run, checkpoint or bench file was written with a schema version this harness does not read."""


class BackendError(HarnessError):
    """A backend is unknown or its optional dependency is not installed."""


class OutputExistsError(HarnessError):
    """A command would write into a folder that already holds a model, checkpoint or run (no --force)."""


class ItemsFailedError(HarnessError):
    """A run finished, but most items of a suite failed (images missing, undecodable): its status is error."""


class LockError(HarnessError):
    """A run or checkpoint directory is in use by another process (the message names its pid and host)."""


class Interrupted(HarnessError):
    """SIGTERM or SIGINT stopped the work after saving what was done; the CLI exits with 128 + signum."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


class StorageError(HarnessError):
    """A file cannot be written or read: disk full, permission denied, a file where a folder should be."""


# Plain words for the OSErrors a user can act on; strerror says the rest.
_WHY = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded", errno.EACCES: "permission denied",
        errno.EPERM: "permission denied", errno.EROFS: "read-only file system",
        errno.ENOTDIR: "a file stands where a folder is expected", errno.EISDIR: "it is a folder, not a file",
        errno.EEXIST: "a file of that name exists"}


def storage_error(exc: OSError, doing: str, path: str | os.PathLike | None = None) -> StorageError:
    """One line for an OSError: `cannot <doing> <path>: <why> (<strerror>)`.

        raise storage_error(exc, "write", "runs/x/run.log") from exc
        # cannot write runs/x/run.log: disk full (No space left on device)
    """
    where = path if path is not None else exc.filename
    why = _WHY.get(exc.errno or 0)
    detail = exc.strerror or str(exc)
    text = f"{why} ({detail})" if why and why.lower() != detail.lower() else detail
    return StorageError(f"cannot {doing}{f' {where}' if where is not None else ''}: {text}")
