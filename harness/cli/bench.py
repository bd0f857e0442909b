"""`harness bench`: throughput, latency, memory and decode bandwidth over a sweep, into a bench directory."""

from __future__ import annotations

from typing import Any

import click

from core.errors import ConfigError
from harness.cli.eval import _parse_image_size
from harness.cli.options import parse_data_dirs


def _ints(value: str | None, option: str) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{option} takes comma-separated integers like 1,8,32, got {value!r}") from None


def _names(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


_FIELDS = ("model", "revision", "adapter", "dtype", "suite", "split", "limit", "prompt_format", "max_new_tokens",
           "ignore_eos", "repeat", "warmup", "waves", "bare", "seed", "gpu_memory_utilization", "max_model_len",
           "tensor_parallel_size", "data_parallel_size", "out")


@click.command("bench")
@click.option("--model", help="Model dir, Hub id or LoRA adapter dir (default: the tiny offline model).")
@click.option("--revision", help="Hub revision (commit) of the model.")
@click.option("--adapter", help="LoRA adapter dir applied on top of --model.")
@click.option("--dtype", help="auto, bfloat16, float16 or float32.")
@click.option("--backend", "backends", help="Backends, comma-separated: transformers,vllm (default transformers).")
@click.option("--quantization", "quantizations", help="Comma-separated: none, fp8 (vllm), 4bit (default none).")
@click.option("--batch-size", "batch_sizes", help="transformers: batch sizes to sweep (default 1,8,32).")
@click.option("--concurrency", help="vllm: requests in flight to sweep (default 1,2,4,...,256).")
@click.option("--suite", help="Suite whose prompts are sent (default synth_charts).")
@click.option("--split", help="Split of the suite (default: its evaluation split).")
@click.option("--data-dir", "data_dirs", multiple=True, help="Local data: PATH, or SUITE=PATH.")
@click.option("--limit", type=int, help="Number of prompts: the suite's first N items (default 128).")
@click.option("--image-size", help="Resize images to WxH RGB, e.g. 448x448.")
@click.option("--prompt-format", help="reasoning-solution (default), think-answer, boxed or official.")
@click.option("--max-new-tokens", type=int, help="Output tokens per request at most (default 256).")
@click.option("--ignore-eos", is_flag=True, default=None, help="Always generate --max-new-tokens.")
@click.option("--repeat", type=int, help="Timed passes per configuration (default 3).")
@click.option("--warmup", type=int, help="Discarded warm-up passes per configuration (default 1).")
@click.option("--waves", type=int, help="Per configuration, send only the first N batches (N x concurrency "
              "requests) of the prompts (default: all).")
@click.option("--bare", is_flag=True, default=None, help="Also time the bare engine on the same prompts.")
@click.option("--seed", type=int, help="Generation seed.")
@click.option("--gpu-memory-utilization", type=float, help="vllm: share of GPU memory the engine takes.")
@click.option("--max-model-len", type=int, help="vllm: engine context length.")
@click.option("--tensor-parallel-size", type=int, help="vllm: GPUs one model copy is split over.")
@click.option("--data-parallel-size", type=int, help="vllm: model copies.")
@click.option("--out", help="Bench directory (default: benches/<bench id>).")
@click.option("--quiet", is_flag=True, help="No progress bar and no per-configuration lines.")
def bench_command(backends: str | None, quantizations: str | None, batch_sizes: str | None,
                  concurrency: str | None, data_dirs: tuple[str, ...], image_size: str | None, quiet: bool,
                  **flags: Any) -> None:
    """Measure speed and memory over a sweep; prints the bench directory (bench file and PNG plots).

    Each (backend, quantization) is loaded once, then swept: batch sizes for transformers, requests
    in flight for vllm. Per configuration: output and total tokens/s, samples/s, latency, time to first
    token and per output token (where the backend measures them), peak memory, and the decode
    memory-bandwidth utilisation against the device's measured copy bandwidth. Render one or more
    bench directories side by side with `harness report`.

    Example: harness bench --model models/qwen2_5_vl_7b --backend vllm --quantization none,fp8 --suite synth_charts --split train --limit 1024 --image-size 448x448 --max-new-tokens 256 --ignore-eos --bare
    """
    from harness.bench import BenchConfig, run_bench
    from harness.progress import default_mode

    given: dict[str, Any] = {k: v for k, v in flags.items() if k in _FIELDS and v is not None}
    for key, value in (("backends", _names(backends)), ("quantizations", _names(quantizations)),
                       ("batch_sizes", _ints(batch_sizes, "--batch-size")),
                       ("concurrency", _ints(concurrency, "--concurrency")),
                       ("data_dir", parse_data_dirs(data_dirs) or None), ("image_size", _parse_image_size(image_size))):
        if value is not None:
            given[key] = value
    cfg = BenchConfig.from_dict(given)
    mode = default_mode(quiet)
    log = None if mode == "off" else (lambda line: click.echo(f"bench: {line}", err=True))
    click.echo(str(run_bench(cfg, progress=mode, log=log)))
