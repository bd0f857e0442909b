"""The harness's one small exception hierarchy. The CLI turns each into one line and exit code 2."""


class HarnessError(Exception):
    """Base class: anything the user can fix (bad input, missing files, wrong arguments)."""


class ConfigError(HarnessError):
    """A flag or config value is invalid or inconsistent."""


class DataError(HarnessError):
    """A data set cannot be found or read (the message says which --data-dir layout to pass)."""


class ModelError(HarnessError):
    """A model, adapter or processor cannot be loaded."""


class RunDirError(HarnessError):
    """A run directory is missing, corrupt, or does not match the requested run (on --resume)."""


class BackendError(HarnessError):
    """A backend is unknown or its optional dependency is not installed."""
