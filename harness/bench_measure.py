"""The arithmetic of `harness bench`: repeat statistics, percentiles, and decode bandwidth.

Decode is memory bound: every decode step reads the weights the language model uses per token once,
plus the KV cache of every sequence in flight. Over a pass,

    bytes_read = weight_bytes_per_step * decode_steps + kv_bytes_per_token * context_tokens_read
    kv_bytes_per_token = layers * 2 * kv_heads * head_dim * bytes per KV value
    context_tokens_read = sum over requests of sum_{j=1}^{O-1} (P + j) = (O-1) P + O (O-1) / 2

(a request with P prompt tokens and O output tokens takes part in O-1 decode steps, since prefill
makes the first token), and the utilisation is bytes_read / decode_s against the bandwidth of the
devices, measured with a copy (`measure_copy_bandwidth`):

    decode_bandwidth(weight_bytes_per_step=1000, kv_bytes_per_token=10, decode_steps=3,
                     context_tokens_read=context_tokens([(5, 4)]), decode_s=0.5, device_bytes_per_s=1e5)
    -> bytes_read 3000 + 10 * 21 = 3210, achieved 6420 B/s, utilization 0.0642

Weights read per decode step are counted from the checkpoint's safetensors headers (shapes only, no
tensor is loaded): everything but the vision tower and the input embedding table (which decode
indexes, not reads whole); a model with tied embeddings reads that table once as its output head.
"""

from __future__ import annotations

import json
import math
import statistics
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.benchstore import DecodeBandwidth, DeviceCopyBandwidth, RepeatStat

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float8": 1, "fp8": 1}
# Bytes per weight of a quantized linear layer (block scales are not counted: under 1%).
QUANTIZED_WEIGHT_BYTES = {"fp8": 1.0, "bitsandbytes": 0.5}
PERCENTILES = (50, 90, 99)


# --- statistics ----------------------------------------------------------------------------------
def repeat_stat(samples: list[float]) -> RepeatStat:
    values = [float(v) for v in samples]
    if not values:
        return {"mean": None, "std": None, "min": None, "max": None, "samples": []}
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "samples": values}


def percentile(values: list[float], p: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def distribution(prefix: str, values: list[float] | None) -> dict[str, float | None]:
    """{prefix_mean, prefix_p50, prefix_p90, prefix_p99}; all None when there are no values."""
    values = values or []
    out: dict[str, float | None] = {f"{prefix}_mean": statistics.fmean(values) if values else None}
    for p in PERCENTILES:
        out[f"{prefix}_p{p}"] = percentile(values, p)
    return out


# --- decode bandwidth ----------------------------------------------------------------------------
def context_tokens(prompt_output_pairs: list[tuple[int, int]]) -> int:
    """Context tokens read over all decode steps: sum of (O-1) P + O (O-1) / 2 per request."""
    return sum((o - 1) * p + o * (o - 1) // 2 for p, o in prompt_output_pairs if o > 0)


def static_decode_steps(batches: list[list[int]]) -> int:
    """Decode steps of static batches: each batch runs until its longest completion is done."""
    return sum(max(outputs) - 1 for outputs in batches if outputs and max(outputs) > 0)


def streaming_decode_steps(outputs: list[int], concurrency: int, replicas: int = 1) -> int:
    """Engine steps under continuous batching with `concurrency` requests in flight (shared by
    `replicas` data-parallel engines, each of which reads its own weights every step)."""
    tokens = sum(o - 1 for o in outputs if o > 0)
    in_flight = max(1, min(concurrency, len(outputs)))
    per_replica = max(1, in_flight // max(1, replicas))
    return math.ceil(tokens / per_replica)


def kv_bytes_per_token(model_config: dict[str, Any], value_bytes: float) -> int | None:
    """layers x 2 (K and V) x kv_heads x head_dim x bytes, from a (multimodal) config.json's text part."""
    text = model_config.get("text_config") or model_config.get("llm_config") or model_config
    try:
        layers = int(text["num_hidden_layers"])
        heads = int(text["num_attention_heads"])
        kv_heads = int(text.get("num_key_value_heads") or heads)
        head_dim = int(text.get("head_dim") or int(text["hidden_size"]) // heads)
    except (KeyError, TypeError, ValueError):
        return None
    return int(layers * 2 * kv_heads * head_dim * value_bytes)


@dataclass(frozen=True)
class DecodeWeights:
    """Parameters read per decode step, split by how quantization treats them."""
    linear_params: int  # 2-D weights of the decoder layers (quantized by fp8 / 4-bit)
    other_params: int  # norms, biases, the output head (kept in the compute dtype)

    def bytes_per_step(self, dtype_bytes: float, quantization: str) -> int:
        linear = QUANTIZED_WEIGHT_BYTES.get(quantization, dtype_bytes)
        return int(self.linear_params * linear + self.other_params * dtype_bytes)


def decode_weights(shapes: dict[str, list[int]]) -> DecodeWeights:
    """Split a checkpoint's tensors (name -> shape) into what a decode step reads."""
    linear = other = embed = 0
    has_head = any(name.endswith("lm_head.weight") for name in shapes)
    for name, shape in shapes.items():
        size = math.prod(shape)
        if "visual" in name or "vision" in name:
            continue
        if "embed_tokens" in name:
            embed += size
        elif ".layers." in name and len(shape) == 2:
            linear += size
        else:
            other += size
    return DecodeWeights(linear, other + (0 if has_head else embed))


def safetensors_shapes(model_dir: Path) -> dict[str, list[int]]:
    """name -> shape of every tensor in a checkpoint directory's *.safetensors files (headers only)."""
    shapes: dict[str, list[int]] = {}
    for path in sorted(model_dir.glob("*.safetensors")):
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
        shapes.update({k: v["shape"] for k, v in header.items() if k != "__metadata__"})
    return shapes


def decode_bandwidth(*, weight_bytes_per_step: int | None, kv_bytes_per_token: int | None, decode_steps: int,
                     context_tokens_read: int, decode_s: float | None, prefill_s: float | None = None,
                     device_bytes_per_s: float | None, n_devices: int = 1, note: str | None = None
                     ) -> DecodeBandwidth:
    known = weight_bytes_per_step is not None and kv_bytes_per_token is not None
    bytes_read = weight_bytes_per_step * decode_steps + kv_bytes_per_token * context_tokens_read if known else None
    achieved = bytes_read / decode_s if bytes_read is not None and decode_s and decode_s > 0 else None
    device = device_bytes_per_s * n_devices if device_bytes_per_s else None
    if decode_s is not None and decode_s <= 0:
        note = note or "decode time not measurable: the prefill-only pass took as long as the full pass"
    return {"weight_bytes_per_step": weight_bytes_per_step, "kv_bytes_per_token": kv_bytes_per_token,
            "decode_steps": decode_steps, "context_tokens_read": context_tokens_read, "bytes_read": bytes_read,
            "prefill_s": prefill_s, "decode_s": decode_s,
            "achieved_gb_per_s": achieved / 1e9 if achieved is not None else None,
            "device_gb_per_s": device / 1e9 if device else None, "n_devices": n_devices,
            "utilization": achieved / device if achieved is not None and device else None, "note": note}


# --- the device's own bandwidth ------------------------------------------------------------------
def measure_copy_bandwidth(device: str, n_bytes: int = 1 << 30, iterations: int = 20) -> DeviceCopyBandwidth:
    """Bandwidth of a copy on `device`, counting the bytes read and the bytes written.

    CUDA: a device-to-device copy of `n_bytes`, timed with CUDA events after a warm-up copy. CPU: the
    same copy in host memory (64 MiB, timed with the wall clock): a memcpy figure, for scale only.
    """
    import torch

    if device.startswith("cuda"):
        free, _ = torch.cuda.mem_get_info(device)
        size = min(n_bytes, free // 4)
        src = torch.empty(size, dtype=torch.uint8, device=device)
        dst = torch.empty_like(src)
        dst.copy_(src)  # warm-up
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        start.record()
        for _ in range(iterations):
            dst.copy_(src)
        end.record()
        end.synchronize()
        seconds = start.elapsed_time(end) / 1000
        del src, dst
        torch.cuda.empty_cache()
        method = "device-to-device copy (torch, timed with CUDA events), read + write bytes"
        note = None
    else:
        size, iterations = min(n_bytes, 64 << 20), 5
        src = torch.ones(size, dtype=torch.uint8)
        dst = torch.empty_like(src)
        dst.copy_(src)
        started = time.perf_counter()
        for _ in range(iterations):
            dst.copy_(src)
        seconds = time.perf_counter() - started
        method = "host memcpy (torch CPU copy, wall clock), read + write bytes"
        note = "no CUDA device: a host memory figure, for scale only"
    rate = 2 * size * iterations / seconds if seconds > 0 else None
    return {"device": device, "method": method, "bytes_per_copy": size,
            "gb_per_s": rate / 1e9 if rate else None, "note": note}
