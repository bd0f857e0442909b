"""`harness bench`: speed and memory of backends and quantizations on a real suite's prompts.

    from harness.bench import BenchConfig, run_bench
    cfg = BenchConfig(model="models/qwen2_5_vl_7b-random", backends=["vllm"], quantizations=["none", "fp8"],
                      suite="synth_charts", split="train", limit=1024, image_size=(448, 448),
                      max_new_tokens=256, ignore_eos=True)
    bench_dir = run_bench(cfg)            # benches/<id>/ with the bench file and PNG plots

Prompts are built exactly as `harness eval` builds them (the suite's items, the prompt format, images
decoded and resized the same way). Each (backend, quantization) is loaded once and swept: batch sizes
on a batch backend (transformers), requests in flight on a streaming one (vllm). What each
configuration records is in harness/benchstore.py and docs/benchmarks/README.md.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from core.errors import ConfigError, RunDirError
from harness import provenance
from harness.backends import BACKENDS, Backend, Request, load_backend
from harness.bench_measure import (
    DTYPE_BYTES,
    decode_weights,
    kv_bytes_per_token,
    measure_copy_bandwidth,
    safetensors_shapes,
)
from harness.bench_sweep import EngineFacts, Sweep
from harness.benchstore import BENCH_SCHEMA_VERSION, BenchDir, BenchFile, Configuration, PromptSet
from harness.config import EvalConfig
from harness.config_types import check_field_types
from harness.progress import Progress, ProgressMode

QUANTIZATION_ALIASES = {"4bit": "bitsandbytes", "bnb": "bitsandbytes"}
ENGINE_OPTIONS = ("gpu_memory_utilization", "max_model_len", "tensor_parallel_size", "data_parallel_size")


@dataclass
class BenchConfig:
    model: str | None = field(default=None, metadata={"help": "model dir, Hub id or LoRA adapter dir; "
                                                      "default: the tiny offline model"})
    revision: str | None = field(default=None, metadata={"help": "Hub revision (commit) of the model"})
    adapter: str | None = field(default=None, metadata={"help": "LoRA adapter dir applied on the model"})
    dtype: str = field(default="auto", metadata={"help": "auto, bfloat16, float16 or float32"})
    backends: list[str] = field(default_factory=lambda: ["transformers"], metadata={
        "help": "backends to load, each swept in turn"})
    quantizations: list[str] = field(default_factory=lambda: ["none"], metadata={
        "help": "none, fp8 (vllm) or 4bit (bitsandbytes); each loaded once per backend"})
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8, 32], metadata={
        "help": "batch backends (transformers): prompts per generate call, one configuration each"})
    concurrency: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32, 64, 128, 256], metadata={
        "help": "streaming backends (vllm): requests in flight at most, one configuration each"})
    suite: str = field(default="synth_charts", metadata={"help": "suite whose prompts (and images) are sent"})
    split: str | None = field(default=None, metadata={"help": "split of the suite; default: its evaluation split"})
    data_dir: dict[str, str] = field(default_factory=dict, metadata={"help": "suite -> local data dir ('*' for all)"})
    limit: int | None = field(default=128, metadata={"help": "number of prompts (the suite's first N items)"})
    image_size: tuple[int, int] | None = field(default=None, metadata={"help": "resize images to W,H RGB"})
    prompt_format: str = field(default="reasoning-solution", metadata={"help": "prompt format"})
    max_new_tokens: int = field(default=256, metadata={"help": "output tokens per request at most"})
    ignore_eos: bool = field(default=False, metadata={"help": "always generate max_new_tokens (a forced length)"})
    repeat: int = field(default=3, metadata={"help": "timed passes per configuration"})
    warmup: int = field(default=1, metadata={"help": "discarded passes (one batch or one wave) per configuration"})
    waves: int | None = field(default=None, metadata={"help": "send at most this many batches (or waves of "
                                                      "`concurrency` requests) per configuration; default: all"})
    bare: bool = field(default=False, metadata={"help": "also time the bare engine on the same prompts"})
    seed: int = field(default=0, metadata={"help": "generation and procedural-suite seed"})
    gpu_memory_utilization: float | None = field(default=None, metadata={"help": "vllm: share of GPU memory"})
    max_model_len: int | None = field(default=None, metadata={"help": "vllm: engine context length"})
    tensor_parallel_size: int | None = field(default=None, metadata={"help": "vllm: GPUs per model copy"})
    data_parallel_size: int | None = field(default=None, metadata={"help": "vllm: model copies"})
    out: str | None = field(default=None, metadata={"help": "bench directory; default benches/<bench id>"})

    def __post_init__(self) -> None:
        check_field_types(self)  # types first: the checks below compare numbers
        self.quantizations = [QUANTIZATION_ALIASES.get(q, q) for q in self.quantizations]
        for name in ("backends", "quantizations", "batch_sizes", "concurrency"):
            values = getattr(self, name)
            if not values or len(set(values)) != len(values):
                raise ConfigError(f"{name} must list at least one value, each once; got {values}")
        unknown = [b for b in self.backends if b not in BACKENDS]
        if unknown:
            raise ConfigError(f"unknown backend {unknown[0]!r}; choose from: {', '.join(BACKENDS)}")
        for name, values in (("batch_sizes", self.batch_sizes), ("concurrency", self.concurrency)):
            if min(values) < 1:
                raise ConfigError(f"{name} must be at least 1, got {values}")
        if self.repeat < 1 or self.warmup < 0 or (self.waves is not None and self.waves < 1):
            raise ConfigError(f"repeat and waves must be at least 1 and warmup at least 0 (got repeat "
                              f"{self.repeat}, waves {self.waves}, warmup {self.warmup})")
        if "vllm" not in self.backends and any(getattr(self, k) is not None for k in ENGINE_OPTIONS):
            raise ConfigError(f"{', '.join(k for k in ENGINE_OPTIONS if getattr(self, k) is not None)} apply to "
                              f"the vllm backend only")
        for backend in self.backends:  # every combination is checked before anything is loaded
            for quantization in self.quantizations:
                self.engine_config(backend, quantization)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "flags") -> BenchConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["image_size"] = list(self.image_size) if self.image_size else None
        return d

    def engine_config(self, backend: str, quantization: str) -> EvalConfig:
        """The eval settings of one engine: the same validation and backend options as `harness eval`."""
        settings: dict[str, Any] = {
            "model": self.model, "revision": self.revision, "adapter": self.adapter, "dtype": self.dtype,
            "backend": backend, "quantization": quantization, "suites": [self.suite], "split": self.split,
            "data_dir": self.data_dir, "limit": self.limit, "image_size": self.image_size,
            "prompt_format": self.prompt_format, "max_new_tokens": self.max_new_tokens,
            "ignore_eos": self.ignore_eos, "seed": self.seed,
            # a batch backend is loaded once for the largest batch; each pass sends smaller ones itself
            "batch_size": max(self.batch_sizes)}
        if backend == "vllm":
            settings.update({k: getattr(self, k) for k in ENGINE_OPTIONS if getattr(self, k) is not None})
        return EvalConfig.from_dict(settings, source=f"bench {backend}/{quantization}")


def bench_prompts(cfg: BenchConfig) -> tuple[list[Request], PromptSet]:
    """The suite's requests, built as `harness eval` builds them; items that cannot be sent are left out."""
    from core.formats import PROMPT_FORMATS
    from harness.images import decode
    from harness.prompts import messages, prompt_text
    from harness.runner import plan_suites

    [plan] = plan_suites(cfg.engine_config(cfg.backends[0], cfg.quantizations[0]))
    fmt = PROMPT_FORMATS[cfg.prompt_format]
    requests, skipped = [], 0
    for item in plan.items:
        images: list[Any] | None = []
        if item.error is None and item.image_bytes is not None:
            try:
                images = [decode(item.image_bytes, cfg.image_size)]
            except Exception:  # noqa: BLE001 -- a corrupt image: that item is not sent
                images = None
        if item.error is not None or images is None:
            skipped += 1
            continue
        text = prompt_text(item, plan.suite, fmt)
        requests.append(Request(f"{item.suite}/{item.sample_id}", messages(text, bool(images)), images))
    if not requests:
        raise ConfigError(f"suite {plan.suite.name} {plan.split} has no item the bench can send")
    return requests, {"suite": plan.suite.name, "suite_version": plan.suite.version, "split": plan.split,
                      "prompt_format": cfg.prompt_format,
                      "image_size": list(cfg.image_size) if cfg.image_size else None,
                      "n_requests": len(requests), "n_with_image": sum(1 for r in requests if r.images),
                      "n_skipped": skipped,
                      "content_sha256": plan.content_sha256()}


def _local_model_dir(ref: str, revision: str | None) -> Path | None:
    """The directory holding a model's config.json and weights: a local path, or the Hub cache."""
    path = Path(ref).expanduser()
    if path.is_dir():
        adapter = path / "adapter_config.json"
        if adapter.is_file():  # weights read per step are the base's (the adapter's are small)
            base = json.loads(adapter.read_text()).get("base_model_name_or_path")
            return _local_model_dir(base, None) if base else None
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(ref, revision=revision, local_files_only=True))
    except Exception:  # noqa: BLE001 -- not cached, or not a Hub id: the bandwidth says so
        return None


def _compute_dtype(model: dict[str, Any], config: dict[str, Any]) -> str:
    """The dtype the backend computes in: what describe() says, or for "auto" the checkpoint's own."""
    dtype = str(model.get("dtype") or "auto").removeprefix("torch.")
    if dtype != "auto":
        return dtype
    text = config.get("text_config") or {}
    return str(text.get("dtype") or text.get("torch_dtype") or config.get("dtype") or config.get("torch_dtype"))


def engine_facts(backend_name: str, quantization: str, ecfg: EvalConfig, model: dict[str, Any],
                 device_bytes_per_s: float | None, idle_mib: float | None) -> EngineFacts:
    """Weights read per decode step and KV bytes per token, from the checkpoint and its config."""
    weight_bytes = kv_bytes = None
    notes = []
    model_dir = _local_model_dir(str(model.get("base_model") or ecfg.model), ecfg.revision)
    if model_dir is None or not (model_dir / "config.json").is_file():
        notes.append("model files not found locally: weight and KV bytes unknown")
    else:
        config = json.loads((model_dir / "config.json").read_text())
        dtype = _compute_dtype(model, config)
        dtype_bytes = DTYPE_BYTES.get(dtype)
        if dtype_bytes is None:
            notes.append(f"unknown compute dtype {dtype!r}: weight and KV bytes unknown")
        else:
            shapes = safetensors_shapes(model_dir)
            if shapes:
                weight_bytes = decode_weights(shapes).bytes_per_step(dtype_bytes, quantization)
            else:
                notes.append("no safetensors weights in the model directory: weight bytes unknown")
            kv_dtype = str(model.get("kv_cache_dtype") or (model.get("engine_options") or {}).get("kv_cache_dtype")
                           or "auto")
            kv_bytes = kv_bytes_per_token(config, 1 if kv_dtype.startswith("fp8") else dtype_bytes)
    replicas = ecfg.data_parallel_size if backend_name == "vllm" else 1
    n_devices = replicas * (ecfg.tensor_parallel_size if backend_name == "vllm" else 1)
    if device_bytes_per_s is None:
        notes.append("device bandwidth not measured")
    return EngineFacts(backend_name, quantization, weight_bytes, kv_bytes, device_bytes_per_s, n_devices, replicas,
                       idle_mib, "; ".join(notes) or None)


def _nvml_used_mib() -> float | None:
    from harness.gpu_memory import NvmlSampler

    with NvmlSampler(interval_s=3600) as sampler:
        return sampler.baseline_used_mib


def idle_baseline_mib(settle_s: float = 30.0, interval_s: float = 0.5, tolerance_mib: float = 64.0,
                      read: Callable[[], float | None] = _nvml_used_mib) -> float | None:
    """Device memory used before an engine loads. An engine closed just before frees its memory as its
    processes exit: wait (at most settle_s) until two readings interval_s apart agree within tolerance."""
    previous = read()
    deadline = time.monotonic() + settle_s
    while previous is not None and time.monotonic() < deadline:
        time.sleep(interval_s)
        current = read()
        if current is None or abs(current - previous) <= tolerance_mib:
            return current
        previous = current
    return previous


def _bench_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def summary_line(c: Configuration) -> str:
    """One log line per configuration (what a non-terminal run prints)."""
    out = c["output_tokens_per_s"]
    head = f"{c['backend']} {c['quantization']} {c['axis'].replace('_', ' ')} {c['value']}"
    parts = [f"{head}: {out['mean']:,.1f} output tokens/s (sd {out['std']:,.1f})"]
    if c["latency_ms_p50"] is not None:
        parts.append(f"latency p50 {c['latency_ms_p50']:,.1f} ms")
    if c["ttft_ms_p50"] is not None:
        parts.append(f"TTFT p50 {c['ttft_ms_p50']:,.1f} ms")
    if c["decode"]["utilization"] is not None:
        parts.append(f"bandwidth {100 * c['decode']['utilization']:.1f}%")
    if c["bare"] and c["bare"]["harness_over_bare"] is not None:
        parts.append(f"harness/bare {c['bare']['harness_over_bare']:.3f}")
    return ", ".join(parts)


def engine_summary_line(points: list[Configuration]) -> str:
    """One line per engine after its sweep: the peak throughput and where, the bandwidth at the smallest point."""
    peak = max(points, key=lambda c: c["output_tokens_per_s"]["mean"] or 0)
    first = min(points, key=lambda c: c["value"])
    axis = peak["axis"].replace("_", " ")
    line = (f"{peak['backend']} {peak['quantization']}: peak {peak['output_tokens_per_s']['mean']:,.1f} output "
            f"tokens/s at {axis} {peak['value']}")
    if first["decode"]["utilization"] is not None:
        line += f"; decode bandwidth {100 * first['decode']['utilization']:.1f}% at {axis} {first['value']}"
    return line


Loader = Callable[[str, str, EvalConfig], Backend]


def _load(backend_name: str, quantization: str, ecfg: EvalConfig) -> Backend:
    return load_backend(backend_name, str(ecfg.model), **ecfg.backend_options())


def run_bench(cfg: BenchConfig, *, progress: ProgressMode = "off", log: Callable[[str], None] | None = None,
              loader: Loader = _load) -> Path:
    """Run the sweep and return the bench directory. `progress`: "bar" for a bar over the passes (see
    harness.progress); `log(line)` is called after every configuration; `loader` builds a backend (tests
    pass fakes)."""
    from harness.bench_plots import write_plots
    from harness.dirlock import DirLock
    from harness.runner import new_run_id, now, resolve_model

    requests, prompt_set = bench_prompts(cfg)  # data problems surface before any model is loaded
    model_cfg = resolve_model(cfg.engine_config(cfg.backends[0], cfg.quantizations[0]))
    bench_id = new_run_id(str(model_cfg.model))
    store = BenchDir(cfg.out or Path("benches") / bench_id)
    if store.exists():
        raise RunDirError(f"{store.path} already holds a bench; choose another --out")
    store.path.mkdir(parents=True, exist_ok=True)
    with DirLock(store.path, "bench directory"):
        if store.exists():  # another bench got here first
            raise RunDirError(f"{store.path} already holds a bench; choose another --out")
        bench: BenchFile = {
            "schema_version": BENCH_SCHEMA_VERSION, "bench_id": bench_id, "created": now(), "finished": None,
            "status": "running", "error": None, "settings": {**cfg.to_dict(), "model": model_cfg.model},
            "harness": provenance.git_state(), "packages": provenance.package_versions(),
            "hardware": provenance.platform_info(), "device_bandwidth": measure_copy_bandwidth(_bench_device()),
            "prompts": prompt_set, "engines": [], "configurations": [], "plots": []}
        store.write(bench)

        def measured(configuration: Configuration) -> None:
            bench["configurations"].append(configuration)
            store.write(bench)  # after every configuration: a crash keeps what was measured
            if log:
                log(summary_line(configuration))

        try:
            for backend_name in cfg.backends:
                for quantization in cfg.quantizations:
                    ecfg = resolve_model(cfg.engine_config(backend_name, quantization))
                    _sweep_engine(cfg, ecfg, backend_name, quantization, requests, bench, loader,
                                  progress="bar" if progress == "bar" else "off", on_configuration=measured)
                    if log:
                        log(engine_summary_line([c for c in bench["configurations"]
                                                 if (c["backend"], c["quantization"]) == (backend_name, quantization)]))
            bench["status"] = "finished"
        except BaseException as exc:
            bench["status"] = "error"
            bench["error"] = "".join(traceback.format_exception_only(exc)).strip()
            raise
        finally:
            bench["plots"] = write_plots(store, bench["configurations"])
            bench["finished"] = now()
            store.write(bench)
    return store.path


def _sweep_engine(cfg: BenchConfig, ecfg: EvalConfig, backend_name: str, quantization: str, requests: list[Request],
                  bench: BenchFile, loader: Loader, progress: ProgressMode,
                  on_configuration: Callable[[Configuration], None]) -> None:
    """Load one (backend, quantization), sweep its axis with a progress bar over its passes, close it."""
    idle_mib = idle_baseline_mib()  # before the load: what the engine takes is measured against it
    started = time.perf_counter()
    backend = loader(backend_name, quantization, ecfg)
    load_time_s = time.perf_counter() - started
    try:
        model = backend.describe()
        axis = "concurrency" if callable(getattr(backend, "stream", None)) else "batch_size"
        bench["engines"].append({"backend": backend_name, "quantization": quantization, "axis": axis,
                                 "load_time_s": load_time_s, "model": model})
        copy_gb_per_s = bench["device_bandwidth"]["gb_per_s"]
        facts = engine_facts(backend_name, quantization, ecfg, model,
                             copy_gb_per_s * 1e9 if copy_gb_per_s else None, idle_mib)
        values = cfg.concurrency if axis == "concurrency" else cfg.batch_sizes
        bare_passes = cfg.repeat * (1 if axis == "concurrency" else len(values))  # a stream's is shared
        bar = Progress(len(values) * (cfg.warmup + cfg.repeat + 1) + (
            bare_passes if cfg.bare and callable(getattr(backend, "generate_bare", None)) else 0),
            progress, label=f"bench {backend_name} {quantization}")
        sweep = Sweep(backend, requests, ecfg.generation(), facts, repeat=cfg.repeat, warmup=cfg.warmup,
                      bare=cfg.bare, waves=cfg.waves, on_pass=lambda label: bar.advance(1, label))
        try:
            for value in values:
                on_configuration(sweep.measure(axis, value))
        finally:
            bar.close()
    finally:
        backend.close()
