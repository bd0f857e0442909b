"""vlm-math-harness: evaluate vision-language math reasoning checkpoints.

The public API; everything else is internal. Heavy libraries (torch, transformers) load only when a
backend or the tiny model is used.
"""

from harness.backends import Completion, GenerationParams, Request, load_backend
from harness.config import EvalConfig
from harness.errors import BackendError, ConfigError, DataError, HarnessError, ModelError, RunDirError
from harness.formats import PROMPT_FORMATS, format_failures, rewards
from harness.runstore import RunDir
from harness.scoring import judge


def __getattr__(name: str):
    # The runner imports the suites, whose scorers import harness helpers: loading it lazily lets
    # `import suites` come first.
    if name in ("rescore", "run_eval"):
        from harness import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")


__all__ = [
    "PROMPT_FORMATS",
    "BackendError",
    "Completion",
    "ConfigError",
    "DataError",
    "EvalConfig",
    "GenerationParams",
    "HarnessError",
    "ModelError",
    "Request",
    "RunDir",
    "RunDirError",
    "format_failures",
    "judge",
    "load_backend",
    "rescore",
    "rewards",
    "run_eval",
]
