"""What the vllm backend needs from vLLM, and every difference between the releases it runs on, in one place.

Two releases are supported: the one the lock pins (0.31) and 0.25.1 (the release built for torch 2.11).
Their offline engine API is the same where the backend touches it:

    api = load_api()                    # vllm.LLM, SamplingParams, LoRARequest, RequestOutputKind, version
    llm = api.LLM(**engine_kwargs)      # the offline engine; llm.llm_engine is its LLMEngine
    engine_input = render_prompt(llm, {"prompt": text, "multi_modal_data": {"image": [img]}})
    llm.llm_engine.add_request("7", engine_input, sampling, lora_request=lora)
    for output in llm.llm_engine.step(): ...    # RequestOutputs; output.finished once a request is done
    llm.llm_engine.abort_request(["7"])         # external ids, as given to add_request

That is how `LLM.generate` runs internally (`_run_engine`: add every request, then step until none is
unfinished); the backend drives it itself to stream results and cap the requests in flight. What differs:
- what a refused request raises (`VllmApi.request_errors`): 0.25 a ValueError, 0.31 VLLMClientError;
- the multi-modal processor's input (`engine_prompt_token_ids`, for the prompt-parity check): 0.25 takes
  the prompt text or ids, 0.31 only ids;
- nothing else the backend uses (both render prompts with `LLM._preprocess_cmpl_one`, `render_prompt`).
A release outside the supported range is refused with one clear line.

Engine memory: vLLM's workers log the weights and KV-cache sizes they allocate ("Model loading took X
GiB memory", "Available KV cache memory: Y GiB") in their own processes; `capture_engine_log` sends
those lines to a file as well (VLLM_LOGGING_CONFIG_PATH for spawned processes, a handler for forked ones)
and `engine_memory_from_log` reads them back.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import BackendError

SUPPORTED = ((0, 25), (0, 31))  # (major, minor) of the oldest and newest releases this module knows
WEIGHTS_LINE = re.compile(r"Model loading took ([0-9.]+) GiB")
KV_CACHE_LINE = re.compile(r"Available KV cache memory: ([0-9.]+) GiB")


@dataclass(frozen=True)
class VllmApi:
    """The vLLM names the backend uses (a test passes a fake with the same interface)."""

    LLM: Any
    SamplingParams: Any
    LoRARequest: Any
    final_only: Any  # RequestOutputKind.FINAL_ONLY: one output per request, when it finishes
    version: str
    # What vLLM raises for a request it refuses (too long, bad parameters): 0.25 a ValueError, 0.31 its
    # own VLLMClientError (no longer a ValueError).
    request_errors: tuple[type[BaseException], ...] = (ValueError,)


def version_tuple(version: str) -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", version)
    if not match:
        raise BackendError(f"cannot read the vLLM version {version!r}")
    return int(match[1]), int(match[2])


def check_version(version: str) -> None:
    low, high = SUPPORTED
    if not low <= version_tuple(version) <= high:
        raise BackendError(f"vLLM {version} is not supported by the vllm backend (supported: "
                           f"{low[0]}.{low[1]} to {high[0]}.{high[1]}); install the locked release with "
                           f"`uv sync --extra vllm`")


def load_api() -> VllmApi:
    """Import vLLM (slow: seconds) and check its release."""
    try:
        import vllm
        from vllm.lora.request import LoRARequest
        from vllm.sampling_params import RequestOutputKind
    except ImportError as exc:
        raise BackendError(f"the vllm backend needs vLLM ({exc}); install it with `uv sync --extra vllm`") from exc
    check_version(vllm.__version__)
    from vllm import exceptions

    client_error = getattr(exceptions, "VLLMClientError", None)
    return VllmApi(LLM=vllm.LLM, SamplingParams=vllm.SamplingParams, LoRARequest=LoRARequest,
                   final_only=RequestOutputKind.FINAL_ONLY, version=vllm.__version__,
                   request_errors=(ValueError, client_error) if client_error else (ValueError,))


def render_prompt(llm: Any, prompt: dict[str, Any]) -> Any:
    """The engine input `LLM.generate` makes of a prompt (tokenized, images processed), for
    `LLMEngine.add_request`. Both releases have `LLM._preprocess_cmpl_one`; their engines still take the
    raw prompt too (deprecated), the fallback for an LLM without it."""
    preprocess = getattr(llm, "_preprocess_cmpl_one", None)
    return preprocess(prompt) if preprocess is not None else prompt


def installed_version() -> str | None:
    """vLLM's version without importing it (for manifests and skips), None when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vllm")
    except PackageNotFoundError:
        return None


class _EngineLogHandler(logging.FileHandler):
    """The file handler; own_config: the logging-config file it pointed vLLM's processes at, if any."""

    own_config: str | None = None


def capture_engine_log(path: Path) -> logging.Handler:
    """Copy vLLM's INFO log lines, the engine and worker processes' included, to `path`. Returns the
    handler added in this process (remove it with release_engine_log, once the engine has started)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = _EngineLogHandler(path)
    handler.setLevel(logging.INFO)
    vllm_logger = logging.getLogger("vllm")
    vllm_logger.addHandler(handler)  # a forked process inherits it
    # A spawned process configures vLLM's logging from this file when it imports vLLM: the usual console
    # line plus the file. A user's own logging configuration is left alone (the sizes are then unknown).
    # The variable is set only while the engine starts (release_engine_log restores it): left set, a
    # second engine of this process, or a harness command started from it, would log to the first's file.
    if not os.environ.get("VLLM_LOGGING_CONFIG_PATH") and os.environ.get("VLLM_CONFIGURE_LOGGING", "1") != "0":
        config = {
            "version": 1, "disable_existing_loggers": False,
            "formatters": {"plain": {"format": "%(levelname)s %(asctime)s [%(filename)s:%(lineno)d] %(message)s",
                                     "datefmt": "%m-%d %H:%M:%S"}},
            "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain",
                                     "stream": "ext://sys.stdout"},
                         "file": {"class": "logging.FileHandler", "formatter": "plain", "filename": str(path)}},
            "loggers": {"vllm": {"handlers": ["console", "file"], "level": "INFO", "propagate": False}},
        }
        config_path = path.with_suffix(".logging.json")
        config_path.write_text(json.dumps(config))
        os.environ["VLLM_LOGGING_CONFIG_PATH"] = handler.own_config = str(config_path)
    return handler


def release_engine_log(handler: logging.Handler) -> None:
    logging.getLogger("vllm").removeHandler(handler)
    handler.close()
    own = getattr(handler, "own_config", None)
    if own is not None and os.environ.get("VLLM_LOGGING_CONFIG_PATH") == own:
        del os.environ["VLLM_LOGGING_CONFIG_PATH"]


def engine_memory_from_log(text: str) -> dict[str, float | None]:
    """Weights and KV-cache GiB summed over the engine's GPU workers, as vLLM logged them (None: not seen)."""
    weights = [float(v) for v in WEIGHTS_LINE.findall(text)]
    kv_cache = [float(v) for v in KV_CACHE_LINE.findall(text)]
    return {"vllm_weights_gib": round(sum(weights), 3) if weights else None,
            "vllm_kv_cache_gib": round(sum(kv_cache), 3) if kv_cache else None}


def kv_cache_usage(llm: Any) -> float | None:
    """The KV cache's current usage (0-1) from the engine's metrics (None: not reported)."""
    try:
        metrics = llm.get_metrics()
    except Exception:  # noqa: BLE001 -- metrics are optional: a failure must not stop generation
        return None
    values = [getattr(m, "value", None) for m in metrics if getattr(m, "name", "") == "vllm:kv_cache_usage_perc"]
    values = [float(v) for v in values if v is not None]
    return max(values) if values else None


def engine_prompt_token_ids(model_dir: str, prompt_token_ids: list[int], images: list[Any]) -> list[int]:
    """The prompt token ids vLLM's multi-modal processor makes of a prompt and its images (the image
    placeholders expanded), without an engine: runs on a CPU. For the prompt-parity check."""
    from vllm.config import ModelConfig
    from vllm.multimodal import MULTIMODAL_REGISTRY
    from vllm.multimodal.processing.context import TimingContext
    from vllm.multimodal.processing.inputs import ProcessorInputs

    processor = MULTIMODAL_REGISTRY.create_processor(ModelConfig(model=model_dir, dtype="float32"))
    data = processor.info.parse_mm_data({"image": list(images)})
    # Both releases take token ids (0.25 also took text).
    result = processor.apply(ProcessorInputs(list(prompt_token_ids), data), TimingContext())
    return list(result["prompt_token_ids"])
