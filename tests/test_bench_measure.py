"""The bench's arithmetic on hand-computed cases: decode steps, context tokens, weight and KV bytes,
bandwidth utilisation, percentiles and repeat statistics."""

from __future__ import annotations

import json
import struct

import pytest

from harness.bench_measure import (
    context_tokens,
    decode_bandwidth,
    decode_weights,
    kv_bytes_per_token,
    percentile,
    repeat_stat,
    safetensors_shapes,
    static_decode_steps,
    streaming_decode_steps,
)

# A toy checkpoint: 64 + 128 linear weights in the layers, 8 + 8 others, a 100 x 8 output head, an
# 800-value embedding table (indexed, not read, per step) and a vision tower (not used in decode).
SHAPES = {
    "model.embed_tokens.weight": [100, 8],
    "model.layers.0.self_attn.q_proj.weight": [8, 8],
    "model.layers.0.self_attn.q_proj.bias": [8],
    "model.layers.0.mlp.up_proj.weight": [16, 8],
    "model.norm.weight": [8],
    "lm_head.weight": [100, 8],
    "visual.blocks.0.attn.qkv.weight": [24, 8],
}


def test_decode_weights_split_and_bytes():
    weights = decode_weights(SHAPES)
    assert (weights.linear_params, weights.other_params) == (192, 816)
    assert weights.bytes_per_step(2, "none") == 2016  # (192 + 816) x 2 bytes
    assert weights.bytes_per_step(2, "fp8") == 1824  # 192 x 1 + 816 x 2
    assert weights.bytes_per_step(2, "bitsandbytes") == 1728  # 192 x 0.5 + 816 x 2


def test_tied_embeddings_are_read_once_as_the_output_head():
    tied = {k: v for k, v in SHAPES.items() if k != "lm_head.weight"}
    assert decode_weights(tied).other_params == 16 + 800


def test_kv_bytes_per_token_from_the_config():
    config = {"text_config": {"num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                              "hidden_size": 64}}
    assert kv_bytes_per_token(config, 2) == 2 * 2 * 2 * 16 * 2  # layers x K,V x kv heads x head dim x bytes
    # Qwen2.5-VL-7B's published sizes: 28 layers, 4 KV heads of 128 -> 56 KiB per token in bf16.
    qwen7b = {"text_config": {"num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
                              "hidden_size": 3584}}
    assert kv_bytes_per_token(qwen7b, 2) == 56 * 1024
    assert kv_bytes_per_token({"text_config": {}}, 2) is None


def test_decode_steps_and_context_tokens():
    # One static batch of (P=10, O=4) and (P=20, O=2): 3 decode steps (prefill makes the first token);
    # the first request reads contexts 11, 12, 13 and the second 21: 57 context tokens in all.
    assert static_decode_steps([[4, 2]]) == 3
    assert static_decode_steps([[4, 2], [5]]) == 3 + 4
    assert context_tokens([(10, 4), (20, 2)]) == 11 + 12 + 13 + 21
    # Continuous batching: 3 + 1 + 2 decode tokens, 2 in flight -> 3 steps; two data-parallel replicas
    # with 1 in flight each (3 // 2) read their weights on 6 steps in all.
    assert streaming_decode_steps([4, 2, 3], concurrency=2) == 3
    assert streaming_decode_steps([4, 2, 3], concurrency=4, replicas=2) == 6


def test_bandwidth_utilization_hand_computed():
    result = decode_bandwidth(weight_bytes_per_step=2016, kv_bytes_per_token=256, decode_steps=3,
                              context_tokens_read=57, decode_s=0.001, prefill_s=0.0005,
                              device_bytes_per_s=1e9, n_devices=2)
    assert result["bytes_read"] == 2016 * 3 + 256 * 57 == 20640
    assert result["achieved_gb_per_s"] == pytest.approx(0.02064)
    assert result["device_gb_per_s"] == pytest.approx(2.0)
    assert result["utilization"] == pytest.approx(0.01032)
    unknown = decode_bandwidth(weight_bytes_per_step=None, kv_bytes_per_token=256, decode_steps=3,
                               context_tokens_read=57, decode_s=0.001, device_bytes_per_s=1e9)
    assert unknown["bytes_read"] is None and unknown["utilization"] is None
    negative = decode_bandwidth(weight_bytes_per_step=1, kv_bytes_per_token=1, decode_steps=1,
                                context_tokens_read=1, decode_s=-0.1, device_bytes_per_s=1e9)
    assert negative["utilization"] is None and "decode time" in negative["note"]


def test_percentiles_and_repeat_stats():
    assert percentile([4, 1, 3, 2], 50) == 2.5
    assert percentile([1, 2, 3, 4], 90) == pytest.approx(3.7)
    assert percentile([], 50) is None
    stat = repeat_stat([10.0, 14.0])
    assert stat == {"mean": 12.0, "std": pytest.approx(2.8284271), "min": 10.0, "max": 14.0, "samples": [10.0, 14.0]}
    assert repeat_stat([5.0])["std"] == 0.0


def test_safetensors_headers_are_read_without_loading(tmp_path):
    header = {name: {"dtype": "BF16", "shape": shape, "data_offsets": [0, 0]} for name, shape in SHAPES.items()}
    header["__metadata__"] = {"format": "pt"}
    raw = json.dumps(header).encode()
    (tmp_path / "model-00001-of-00001.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw)
    assert safetensors_shapes(tmp_path) == SHAPES


def test_every_bench_file_key_is_documented():
    from pathlib import Path
    from typing import get_type_hints

    from harness import benchstore

    doc = (Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "README.md").read_text()
    types = [benchstore.BenchFile, benchstore.PromptSet, benchstore.DeviceCopyBandwidth, benchstore.Engine,
             benchstore.Configuration, benchstore.RepeatStat, benchstore.RepeatSample, benchstore.MemoryFigures,
             benchstore.DecodeBandwidth, benchstore.BareTiming]
    missing = [f"{t.__name__}.{key}" for t in types for key in get_type_hints(t) if f"`{key}`" not in doc]
    assert not missing
