"""The bench directory: bench.json (every configuration with its raw samples) and the PNG plots.

    from harness.benchstore import BenchDir
    bench = BenchDir("benches/h200-vllm").read()          # checks the schema version
    for c in bench["configurations"]:
        print(c["backend"], c["quantization"], c["axis"], c["value"], c["output_tokens_per_s"]["mean"])

This module is the only one that knows the file names and the shape of the file: `harness bench`
writes through `BenchDir.write` (after every configuration, so a crash keeps what was measured, with
`status` "running" or "error"), and `harness report` reads through `BenchDir.read`, which refuses a
file of another schema version with a one-line error. The keys are documented in
docs/benchmarks/README.md; a test checks that every key of these types is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypedDict

from core.errors import RunDirError
from harness.jsonfile import read_versioned_json, write_json_atomic

BENCH_SCHEMA_VERSION = 1
BENCH_FILE = "bench.json"
THROUGHPUT_PLOT = "throughput.png"
LATENCY_PLOT = "latency.png"


class RepeatStat(TypedDict):
    """One figure over the timed repeats: summary and the raw per-repeat samples."""
    mean: float | None
    std: float | None  # sample standard deviation; 0.0 for a single repeat
    min: float | None
    max: float | None
    samples: list[float]


class RepeatSample(TypedDict):
    """One timed pass over all prompts (raw: per-request values in completion order)."""
    wall_s: float
    prompt_tokens: int
    output_tokens: int
    n_completions: int
    latency_ms: list[float]
    ttft_ms: list[float] | None  # None where the backend does not expose time to first token


class MemoryFigures(TypedDict):
    """Peak memory of one configuration, each figure labelled by what measured it."""
    backend: dict[str, Any]  # the backend's own labelled figures (torch peaks, vLLM weights/KV sizes)
    nvml_idle_baseline_mib: float | None  # device memory used before the engine was loaded
    nvml_peak_used_mib: float | None  # peak device memory used while this configuration ran
    nvml_peak_over_idle_mib: float | None  # the two above subtracted: what the engine held
    note: str | None


class DecodeBandwidth(TypedDict):
    """Decode memory-bandwidth utilisation: bytes read per decode step, times steps, over decode time."""
    weight_bytes_per_step: int | None
    kv_bytes_per_token: int | None
    decode_steps: int
    context_tokens_read: int  # sum over decode steps of the context tokens of the sequences in flight
    bytes_read: int | None
    prefill_s: float | None  # a pass with max_new_tokens=1 over the same batches / concurrency
    decode_s: float | None  # mean wall_s minus prefill_s
    achieved_gb_per_s: float | None
    device_gb_per_s: float | None  # measured copy bandwidth per device, times n_devices
    n_devices: int
    utilization: float | None  # achieved / device
    note: str | None


class BareTiming(TypedDict):
    """The engine without the harness on the same prompts (vLLM `generate_bare`, plain `model.generate`)."""
    scope: Literal["batch", "engine"]  # timed per batch size, or once per engine (continuous batching)
    wall_s: RepeatStat
    output_tokens_per_s: RepeatStat
    harness_over_bare: float | None  # this configuration's mean output tokens/s over the bare mean


class Configuration(TypedDict):
    """One (backend, quantization, batch size or concurrency) point of the sweep."""
    backend: str
    quantization: str
    axis: Literal["batch_size", "concurrency"]
    value: int
    n_requests: int
    warmup_passes: int
    wall_s: RepeatStat
    output_tokens_per_s: RepeatStat
    total_tokens_per_s: RepeatStat
    samples_per_s: RepeatStat
    prompt_tokens_mean: float
    output_tokens_mean: float
    latency_ms_mean: float | None
    latency_ms_p50: float | None
    latency_ms_p90: float | None
    latency_ms_p99: float | None
    ttft_ms_mean: float | None
    ttft_ms_p50: float | None
    ttft_ms_p90: float | None
    ttft_ms_p99: float | None
    tpot_ms_mean: float | None
    tpot_ms_p50: float | None
    tpot_ms_p90: float | None
    tpot_ms_p99: float | None
    memory: MemoryFigures
    decode: DecodeBandwidth
    bare: BareTiming | None
    repeats: list[RepeatSample]


class Engine(TypedDict):
    """One loaded (backend, quantization): loaded once, then swept."""
    backend: str
    quantization: str
    axis: Literal["batch_size", "concurrency"]
    load_time_s: float | None  # wall time of the load, as the bench measured it
    model: dict[str, Any]  # the backend's describe(): dtype, device, parameters, its own load time


class PromptSet(TypedDict):
    suite: str
    suite_version: str
    split: str
    prompt_format: str
    image_size: list[int] | None
    n_requests: int
    n_with_image: int
    n_skipped: int  # items left out: malformed, or an image that does not decode
    content_sha256: str


class DeviceCopyBandwidth(TypedDict):
    device: str
    method: str
    bytes_per_copy: int
    gb_per_s: float | None
    note: str | None


class BenchFile(TypedDict):
    schema_version: int
    bench_id: str
    created: str
    finished: str | None
    status: Literal["running", "finished", "error"]
    error: str | None
    settings: dict[str, Any]  # the BenchConfig, as given
    harness: dict[str, Any]  # git commit and dirty flag
    packages: dict[str, str | None]
    hardware: dict[str, Any]  # CPU, RAM, GPU name and count, driver and CUDA versions
    device_bandwidth: DeviceCopyBandwidth
    prompts: PromptSet
    engines: list[Engine]
    configurations: list[Configuration]
    plots: list[str]  # PNG file names in the bench directory


class BenchDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.bench_path = self.path / BENCH_FILE

    def exists(self) -> bool:
        return self.bench_path.is_file()

    def plot_path(self, name: str) -> Path:
        return self.path / name

    def write(self, bench: BenchFile) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.bench_path, bench)

    def read(self) -> BenchFile:
        """The bench file; one-line errors for a missing or invalid file, another schema version, or a
        file that lacks keys of this version."""
        data = read_versioned_json(self.bench_path, BENCH_SCHEMA_VERSION, "bench")
        missing = [key for key in BenchFile.__annotations__ if key not in data]
        if missing:
            raise RunDirError(f"{self.bench_path} lacks {', '.join(missing)}: not a complete bench file")
        return data  # type: ignore[return-value]


def is_bench_dir(path: str | Path) -> bool:
    return BenchDir(path).exists()
