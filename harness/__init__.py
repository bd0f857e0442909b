"""vlm-math-harness: evaluate vision-language math reasoning checkpoints.

The public API; everything else is internal. Heavy libraries (torch, transformers) load only when a
backend or the tiny model is used.
"""

from core.errors import BackendError, ConfigError, DataError, HarnessError, ModelError, RunDirError
from core.formats import PROMPT_FORMATS, format_failures, rewards
from harness.backends import Completion, GenerationParams, Request, load_backend
from harness.config import EvalConfig
from harness.runner import rescore, run_eval
from harness.runstore import RunDir
from harness.scoring import judge

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
