"""The typed, closed configuration of an evaluation run. CLI flags and config files fill the same object."""

from __future__ import annotations

import json
import tomllib
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.formats import PROMPT_FORMATS
from harness.backends import BACKENDS, GenerationParams
from harness.config_types import check_field_types
from harness.sharding import parse_shard
from suites.base import SCORING_MODES

QUANTIZATIONS = ("none", "fp8", "bitsandbytes")
# Engine options of the vllm backend and their defaults; another backend refuses other values.
VLLM_DEFAULTS: dict[str, Any] = {"max_concurrency": None, "max_model_len": None, "tensor_parallel_size": 1,
                                 "data_parallel_size": 1, "gpu_memory_utilization": 0.9, "merge_lora": False}
# Options of talking to a server (the openai backend, the LLM judge) and their defaults.
SERVER_DEFAULTS: dict[str, Any] = {"base_url": None, "api_key_env": "OPENAI_API_KEY", "request_timeout_s": 600.0,
                                   "max_retries": 6, "retry_backoff_s": 1.0}
# Options of spreading a run over a Ray cluster (harness/ray_pool.py) and their defaults.
RAY_DEFAULTS: dict[str, Any] = {"ray_replicas": None, "ray_cpus_per_replica": 1.0, "ray_chunk_size": None,
                                "ray_max_restarts": 3}
JUDGE_DEFAULTS: dict[str, Any] = {"judge_base_url": None, "judge_api_key_env": "OPENAI_API_KEY",
                                  "judge_all": False, "judge_max_concurrency": 32, "judge_cache": None}


@dataclass
class EvalConfig:
    model: str | None = field(default=None, metadata={"help": "model dir, Hub id or LoRA adapter dir; "
                                                      "default: the tiny offline model"})
    revision: str | None = field(default=None, metadata={"help": "Hub revision (commit) of the model"})
    adapter: str | None = field(default=None, metadata={"help": "LoRA adapter dir applied on the model"})
    backend: str = field(default="transformers", metadata={"help": "generation backend"})
    dtype: str = field(default="auto", metadata={"help": "auto, bfloat16, float16 or float32"})
    load_in_4bit: bool = field(default=False, metadata={"help": "bitsandbytes 4-bit weights (CUDA only)"})
    suites: list[str] = field(default_factory=list, metadata={"help": "suites to run; default: "
                                                              "synth_charts and synth_arith"})
    split: str | None = field(default=None, metadata={"help": "split for every suite; default: each "
                                                      "suite's evaluation split"})
    variant: str | None = field(default=None, metadata={"help": "suite variant, e.g. numeric (MathVista)"})
    data_dir: dict[str, str] = field(default_factory=dict, metadata={"help": "suite -> local data dir "
                                                                     "('*' for all)"})
    image_size: tuple[int, int] | None = field(default=None, metadata={"help": "resize images to W,H RGB"})
    prompt_format: str = field(default="reasoning-solution", metadata={"help": "prompt format"})
    scoring: str = field(default="strict", metadata={"help": "strict (the harness's rules; no credit without "
                                                     "an answer) or official (the benchmark's own fallbacks, "
                                                     "e.g. MathVista's nearest choice)"})
    limit: int | None = field(default=None, metadata={"help": "first N items of each suite"})
    sample_ids: dict[str, list[str]] = field(default_factory=dict, metadata={
        "help": "suite -> the sample ids to evaluate (default: all), e.g. a training run's held-out items"})
    max_new_tokens: int = field(default=1024, metadata={"help": "generation length limit"})
    temperature: float = field(default=0.0, metadata={"help": "0 = greedy"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling"})
    top_k: int = field(default=0, metadata={"help": "top-k sampling; 0 = off"})
    n_samples: int = field(default=1, metadata={"help": "samples per prompt; accuracy is their mean"})
    batch_size: int = field(default=8, metadata={"help": "transformers: prompts per generate call (longest "
                                                 "first); vllm: not used (see max_concurrency)"})
    ignore_eos: bool = field(default=False, metadata={"help": "always generate max_new_tokens (benchmarks)"})
    quantization: str = field(default="none", metadata={"help": "none, fp8 (vllm) or bitsandbytes (4-bit; "
                                                         "= load_in_4bit)"})
    max_concurrency: int | None = field(default=None, metadata={"help": "vllm: requests in flight at most; "
                                                                "default: all at once"})
    gpu_memory_utilization: float = field(default=0.9, metadata={"help": "vllm: share of each GPU's memory "
                                                                 "the engine takes (weights, KV cache)"})
    max_model_len: int | None = field(default=None, metadata={"help": "vllm: context length of the engine; "
                                                              "default: the model's"})
    tensor_parallel_size: int = field(default=1, metadata={"help": "vllm: GPUs one model copy is split over"})
    data_parallel_size: int = field(default=1, metadata={"help": "vllm: model copies, each on its own GPUs"})
    merge_lora: bool = field(default=False, metadata={"help": "vllm: merge a LoRA adapter into its base first "
                                                       "(needed when it holds vision-tower LoRA)"})
    base_url: str | None = field(default=None, metadata={"help": "openai: the server's base URL, e.g. "
                                                          "http://127.0.0.1:8000/v1 (default: $OPENAI_BASE_URL, "
                                                          "else OpenAI's)"})
    api_key_env: str = field(default="OPENAI_API_KEY", metadata={
        "help": "openai: the environment variable holding the API key (never written to the run)"})
    request_timeout_s: float = field(default=600.0, metadata={"help": "openai and judge: seconds one attempt "
                                                              "of a request may take"})
    max_retries: int = field(default=6, metadata={"help": "openai and judge: attempts after the first on 429, "
                                                  "5xx, timeouts and dropped connections"})
    retry_backoff_s: float = field(default=1.0, metadata={"help": "openai and judge: first wait before a retry, "
                                                          "doubled each time (with jitter) unless the server "
                                                          "sends Retry-After"})
    judge: str | None = field(default=None, metadata={"help": "LLM answer judge: a model name (served at "
                                                      "judge_base_url) or a server URL (its one model)"})
    judge_base_url: str | None = field(default=None, metadata={"help": "judge: the server of a judge given "
                                                               "by name (default: base_url, $OPENAI_BASE_URL, "
                                                               "else OpenAI's)"})
    judge_api_key_env: str = field(default="OPENAI_API_KEY", metadata={
        "help": "judge: the environment variable holding the judge server's API key"})
    judge_all: bool = field(default=False, metadata={"help": "judge every answered record, not only those "
                                                     "the rules extract no answer from"})
    judge_max_concurrency: int = field(default=32, metadata={"help": "judge: requests in flight at most"})
    judge_cache: str | None = field(default=None, metadata={"help": "judge: the folder of the judge cache "
                                                            "(default: <harness cache>/judge)"})
    seed: int = field(default=0, metadata={"help": "generation and procedural-suite seed"})
    shard: str | None = field(default=None, metadata={"help": "K/N: evaluate the K-th of N balanced shares of "
                                                      "every suite's items (merge them with harness merge)"})
    out: str | None = field(default=None, metadata={"help": "run directory; default runs/<run id>"})
    ray: str | None = field(default=None, metadata={"help": "spread the requests over backend replicas on a Ray "
                                                    "cluster: 'local' starts one here, else its address (auto, "
                                                    "HOST:6379, ray://HOST:10001)"})
    ray_replicas: int | None = field(default=None, metadata={"help": "ray: backend replicas (one Ray actor each); "
                                                             "default: as many as the cluster's GPUs (or CPUs) "
                                                             "hold"})
    ray_cpus_per_replica: float = field(default=1.0, metadata={"help": "ray: CPUs each replica reserves (its "
                                                               "torch threads on CPU)"})
    ray_chunk_size: int | None = field(default=None, metadata={"help": "ray: requests sent to a replica at a "
                                                               "time; default: batch_size (transformers), 16 "
                                                               "(vllm), max_concurrency or 32 (openai)"})
    ray_max_restarts: int = field(default=3, metadata={"help": "ray: replicas started anew after worker deaths "
                                                       "before the run stops (their requests are retried on "
                                                       "the others meanwhile)"})

    def __post_init__(self) -> None:
        check_field_types(self)  # types first: the range checks below compare numbers
        self.validate()

    def validate(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown backend {self.backend!r}; choose one of: {', '.join(BACKENDS)}")
        if self.prompt_format not in PROMPT_FORMATS:
            raise ConfigError(f"unknown prompt format {self.prompt_format!r}; choose one of: "
                              f"{', '.join(PROMPT_FORMATS)}")
        if self.scoring not in SCORING_MODES:
            raise ConfigError(f"unknown scoring {self.scoring!r}; choose one of: {', '.join(SCORING_MODES)}")
        if self.dtype not in ("auto", "bfloat16", "float16", "float32"):
            raise ConfigError(f"unknown dtype {self.dtype!r}; choose auto, bfloat16, float16 or float32")
        for name, value, low in (("limit", self.limit, 1), ("max_new_tokens", self.max_new_tokens, 1),
                                 ("n_samples", self.n_samples, 1), ("batch_size", self.batch_size, 1),
                                 ("max_concurrency", self.max_concurrency, 1),
                                 ("max_model_len", self.max_model_len, 1),
                                 ("tensor_parallel_size", self.tensor_parallel_size, 1),
                                 ("data_parallel_size", self.data_parallel_size, 1)):
            if value is not None and value < low:
                raise ConfigError(f"{name} must be at least {low}, got {value}")
        if self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.n_samples > 1 and self.temperature == 0:
            raise ConfigError("n_samples > 1 needs sampling: set a temperature above 0 (e.g. 0.6)")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ConfigError(f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        if self.quantization not in QUANTIZATIONS:
            raise ConfigError(f"unknown quantization {self.quantization!r}; choose one of: {', '.join(QUANTIZATIONS)}")
        if self.load_in_4bit and self.quantization not in ("none", "bitsandbytes"):
            raise ConfigError(f"load_in_4bit is bitsandbytes quantization; it contradicts quantization "
                              f"{self.quantization!r}")
        if self.backend != "vllm":
            engine_only = {k: v for k, v in (("max_concurrency", None if self.backend == "openai"
                                              else self.max_concurrency),
                                             ("max_model_len", self.max_model_len),
                                             ("tensor_parallel_size", self.tensor_parallel_size),
                                             ("data_parallel_size", self.data_parallel_size),
                                             ("gpu_memory_utilization", self.gpu_memory_utilization),
                                             ("merge_lora", self.merge_lora))
                           if v != VLLM_DEFAULTS[k]}
            if engine_only:
                raise ConfigError(f"{', '.join(engine_only)} apply to the vllm backend only (backend is "
                                  f"{self.backend})")
            if self.quantization == "fp8":
                raise ConfigError("fp8 quantization needs the vllm backend; the transformers backend offers "
                                  "bitsandbytes (4-bit)")
        self._validate_server_options()
        self._validate_ray_options()
        if self.shard is not None:
            parse_shard(self.shard)
        if self.image_size is not None and min(self.image_size) < 1:
            raise ConfigError(f"image_size must be two positive integers W,H, got {list(self.image_size)}")

    def _validate_server_options(self) -> None:
        if self.request_timeout_s <= 0 or self.retry_backoff_s < 0:
            raise ConfigError(f"request_timeout_s must be above 0 and retry_backoff_s at least 0, got "
                              f"{self.request_timeout_s} and {self.retry_backoff_s}")
        if self.max_retries < 0 or self.judge_max_concurrency < 1:
            raise ConfigError(f"max_retries must be at least 0 and judge_max_concurrency at least 1, got "
                              f"{self.max_retries} and {self.judge_max_concurrency}")
        if self.backend == "openai":
            if not self.model:
                raise ConfigError("the openai backend needs --model: the model name the server serves "
                                  "(GET /v1/models lists them)")
            local = [k for k, v in (("revision", self.revision), ("adapter", self.adapter),
                                    ("load_in_4bit", self.load_in_4bit), ("dtype", self.dtype != "auto"),
                                    ("quantization", self.quantization != "none")) if v]
            if local:
                raise ConfigError(f"{', '.join(local)} do not apply to the openai backend: the server loads "
                                  f"the model (give them to the server)")
        else:
            used = [k for k in ("base_url", "api_key_env") if getattr(self, k) != SERVER_DEFAULTS[k]]
            if used:
                raise ConfigError(f"{', '.join(used)} apply to the openai backend only (backend is "
                                  f"{self.backend}; a judge has judge_base_url and judge_api_key_env)")
            used = [k for k in ("request_timeout_s", "max_retries", "retry_backoff_s")
                    if getattr(self, k) != SERVER_DEFAULTS[k]]
            if used and self.judge is None:
                raise ConfigError(f"{', '.join(used)} apply to the openai backend or a judge only")
        if self.judge is None:
            used = [k for k, default in JUDGE_DEFAULTS.items() if getattr(self, k) != default]
            if used:
                raise ConfigError(f"{', '.join(used)} need a judge (--judge MODEL_OR_URL)")

    def _validate_ray_options(self) -> None:
        if self.ray is None:
            used = [k for k, default in RAY_DEFAULTS.items() if getattr(self, k) != default]
            if used:
                raise ConfigError(f"{', '.join(used)} need a Ray cluster (--ray [ADDRESS])")
            return
        if not self.ray.strip():
            raise ConfigError("ray must be 'local' or a cluster address, e.g. auto or ray://HOST:10001")
        for name, value in (("ray_replicas", self.ray_replicas), ("ray_chunk_size", self.ray_chunk_size)):
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be at least 1, got {value}")
        if self.ray_cpus_per_replica < 0 or self.ray_max_restarts < 0:
            raise ConfigError(f"ray_cpus_per_replica and ray_max_restarts must be at least 0, got "
                              f"{self.ray_cpus_per_replica} and {self.ray_max_restarts}")
        if self.backend == "vllm" and self.data_parallel_size != 1:
            raise ConfigError("with ray, each replica is one engine: give ray_replicas, not data_parallel_size")

    def generation(self) -> GenerationParams:
        return GenerationParams(max_new_tokens=self.max_new_tokens, temperature=self.temperature,
                                top_p=self.top_p, top_k=self.top_k, n=self.n_samples, seed=self.seed,
                                ignore_eos=self.ignore_eos)

    def weight_quantization(self) -> str | None:
        """The quantization the backend loads with: None, "fp8" or "bitsandbytes" (load_in_4bit is its alias)."""
        if self.load_in_4bit:
            return "bitsandbytes"
        return None if self.quantization == "none" else self.quantization

    def backend_options(self) -> dict[str, Any]:
        """The keyword options of load_backend(self.backend, self.model, ...) for this config."""
        options: dict[str, Any] = {"revision": self.revision, "adapter": self.adapter, "dtype": self.dtype}
        if self.backend == "openai":
            return {"base_url": self.base_url, "api_key_env": self.api_key_env, "timeout_s": self.request_timeout_s,
                    "max_retries": self.max_retries, "retry_backoff_s": self.retry_backoff_s,
                    "max_concurrency": self.max_concurrency}
        if self.backend == "vllm":
            options.update(quantization=self.weight_quantization(),
                           gpu_memory_utilization=self.gpu_memory_utilization,
                           max_model_len=self.max_model_len, tensor_parallel_size=self.tensor_parallel_size,
                           data_parallel_size=self.data_parallel_size, seed=self.seed,
                           merge_lora=self.merge_lora)
        else:
            options.update(load_in_4bit=self.weight_quantization() == "bitsandbytes", batch_size=self.batch_size)
        return options

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["image_size"] = list(self.image_size) if self.image_size else None
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> EvalConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; known keys: "
                              f"{', '.join(sorted(known))}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"{source}: {exc}") from exc

    @classmethod
    def from_file(cls, path: str | Path) -> dict[str, Any]:
        """Read a TOML or JSON config file into a dict of fields (checked when the config is built)."""
        return read_config_file(path)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A TOML (by suffix) or JSON file holding one table of settings; unreadable ones are ConfigErrors."""
    p = Path(path)
    try:
        text = p.read_text()
        data = tomllib.loads(text) if p.suffix == ".toml" else json.loads(text)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"config file {p} is not valid {p.suffix.lstrip('.') or 'JSON'}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a table of settings")
    return data


def field_help() -> dict[str, str]:
    """One help line per field (used by the CLI and the docs test)."""
    return {f.name: f.metadata.get("help", "") for f in fields(EvalConfig)}


def field_defaults() -> dict[str, Any]:
    out = {}
    for f in fields(EvalConfig):
        out[f.name] = f.default_factory() if f.default is MISSING else f.default  # type: ignore[misc]
    return out
