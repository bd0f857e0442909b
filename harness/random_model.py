"""Random-weight models of published Qwen-VL sizes, for speed and memory measurements without downloads.

    build_random_model(Path("models/qwen2_5_vl_7b-random"), "qwen2_5_vl_7b")        # 8.29 B parameters
    build_random_model(Path("/tmp/m"), "qwen3_vl_8b", layers=2, hidden_size=128,     # a reduced copy for tests
                       vision_depth=2, vision_heads=2, vocab_size=1024)

A model has its architecture's published sizes (config.json of the Hugging Face repo named in ARCHS:
hidden size, layers, heads, the vision tower, the vocabulary) and random weights, the tiny model's
offline tokenizer (its vocabulary padded with filler tokens to the model's, so every id a random model
samples decodes) and the family's published image-processor limits (so a 448x448 image becomes 256
image tokens, as with the real checkpoint). It is built on the GPU when there is one (initialising
8 B parameters on a CPU takes minutes), saved as safetensors in bfloat16, with the vision placeholder
tokens suppressed in its generation config as in the tiny model, and loads in both backends.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ConfigError

BUILDER_VERSION = 1
MARKER_FILE = "random_model.json"


@dataclass(frozen=True)
class ArchSpec:
    family: str  # qwen2_5_vl | qwen3_vl: the tiny model's chat template and processor classes
    source: str  # the Hub repo whose config.json gives the sizes
    text: dict[str, Any]
    vision: dict[str, Any]
    tie_word_embeddings: bool
    pixels: tuple[int, int]  # preprocessor_config.json: min and max pixels of a resized image


QWEN2_5_VL_VISION = {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "patch_size": 14,
                     "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
                     "fullatt_block_indexes": [7, 15, 23, 31], "hidden_act": "silu", "tokens_per_second": 2}
QWEN2_5_VL_ROPE = {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]}

ARCHS: dict[str, ArchSpec] = {
    "qwen2_5_vl_7b": ArchSpec(
        "qwen2_5_vl", "Qwen/Qwen2.5-VL-7B-Instruct",
        text={"vocab_size": 152064, "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
              "num_attention_heads": 28, "num_key_value_heads": 4, "max_position_embeddings": 128000,
              "rms_norm_eps": 1e-6, "rope_parameters": QWEN2_5_VL_ROPE},
        vision={**QWEN2_5_VL_VISION, "out_hidden_size": 3584},
        tie_word_embeddings=False, pixels=(3136, 12845056)),
    "qwen2_5_vl_3b": ArchSpec(
        "qwen2_5_vl", "Qwen/Qwen2.5-VL-3B-Instruct",
        text={"vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36,
              "num_attention_heads": 16, "num_key_value_heads": 2, "max_position_embeddings": 128000,
              "rms_norm_eps": 1e-6, "rope_parameters": QWEN2_5_VL_ROPE},
        vision={**QWEN2_5_VL_VISION, "out_hidden_size": 2048},
        tie_word_embeddings=True, pixels=(3136, 12845056)),
    "qwen3_vl_8b": ArchSpec(
        "qwen3_vl", "Qwen/Qwen3-VL-8B-Instruct",
        text={"vocab_size": 151936, "hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 36,
              "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
              "max_position_embeddings": 262144, "rms_norm_eps": 1e-6,
              "rope_parameters": {"rope_type": "default", "rope_theta": 5000000.0, "mrope_section": [24, 20, 20],
                                  "mrope_interleaved": True}},
        vision={"depth": 27, "hidden_size": 1152, "intermediate_size": 4304, "num_heads": 16, "patch_size": 16,
                "spatial_merge_size": 2, "temporal_patch_size": 2, "num_position_embeddings": 2304,
                "deepstack_visual_indexes": [8, 16, 24], "hidden_act": "gelu_pytorch_tanh", "out_hidden_size": 4096},
        tie_word_embeddings=False, pixels=(65536, 16777216)),
}


def reduced_sizes(spec: ArchSpec, *, layers: int | None = None, hidden_size: int | None = None,
                  vision_depth: int | None = None, vision_heads: int | None = None,
                  vocab_size: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The text and vision configs with the given sizes replaced (for tests and quick runs). Head
    dimensions stay the published ones (the rotary sections depend on them): the text's heads follow
    hidden_size, the vision tower's width follows vision_heads; MLP widths keep their ratio."""
    text, vision = copy.deepcopy(spec.text), copy.deepcopy(spec.vision)
    if hidden_size is not None:
        head_dim = text.get("head_dim") or text["hidden_size"] // text["num_attention_heads"]
        if hidden_size % head_dim:
            raise ConfigError(f"hidden_size must be a multiple of the head dimension {head_dim}, got {hidden_size}")
        heads = hidden_size // head_dim
        kv_heads = max(h for h in range(1, min(heads, text["num_key_value_heads"]) + 1) if heads % h == 0)
        text["intermediate_size"] = max(8, round(text["intermediate_size"] * hidden_size / text["hidden_size"]))
        text.update(hidden_size=hidden_size, num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim)
        vision["out_hidden_size"] = hidden_size
    if layers is not None:
        text["num_hidden_layers"] = layers
    if vocab_size is not None:
        text["vocab_size"] = vocab_size
    if vision_heads is not None:
        head_dim = vision["hidden_size"] // vision["num_heads"]
        width = vision_heads * head_dim
        vision["intermediate_size"] = max(8, round(vision["intermediate_size"] * width / vision["hidden_size"]))
        vision.update(hidden_size=width, num_heads=vision_heads)
    if vision_depth is not None:
        # Layers with a role (full attention, deepstack taps) keep their relative depth.
        for key in ("fullatt_block_indexes", "deepstack_visual_indexes"):
            if key in vision:
                vision[key] = sorted({min(vision_depth - 1, i * vision_depth // vision["depth"]) for i in vision[key]})
        vision["depth"] = vision_depth
    for name, value in (("layers", text["num_hidden_layers"]), ("vision_depth", vision["depth"]),
                        ("vision_heads", vision["num_heads"]), ("vocab_size", text["vocab_size"]),
                        ("hidden_size", text["hidden_size"])):
        if value < 1:
            raise ConfigError(f"{name} must be at least 1, got {value}")
    return text, vision


def padded_tokenizer(tokenizer, vocab_size: int):
    """The tokenizer with filler tokens (never produced by encoding) up to `vocab_size` ids, so that every
    id the model can sample decodes to text."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    data = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab = data["model"]["vocab"]
    used = set(vocab.values()) | {t["id"] for t in data.get("added_tokens", [])}
    if len(used) > vocab_size:
        raise ConfigError(f"vocab_size {vocab_size} is smaller than the tokenizer's {len(used)} tokens")
    for token_id in range(vocab_size):
        if token_id not in used:
            vocab[f"\u0120~{token_id}"] = token_id  # "Ġ~123": decodes to " ~123"
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(data)),
                                   eos_token=tokenizer.eos_token, pad_token=tokenizer.pad_token,
                                   padding_side="left", model_max_length=tokenizer.model_max_length)


def _config(spec: ArchSpec, text: dict[str, Any], vision: dict[str, Any], tokenizer, dtype: str):
    ids = {name: tokenizer.convert_tokens_to_ids(tok) for name, tok in (
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"))}
    eos, pad = tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")
    text = {**text, "bos_token_id": pad, "eos_token_id": eos, "pad_token_id": pad,
            "tie_word_embeddings": spec.tie_word_embeddings, "dtype": dtype}
    if spec.family == "qwen2_5_vl":
        from transformers import Qwen2_5_VLConfig as ConfigClass
    else:
        from transformers import Qwen3VLConfig as ConfigClass
    return ConfigClass(text_config=text, vision_config=vision, tie_word_embeddings=spec.tie_word_embeddings,
                       dtype=dtype, **ids)


def parameter_count(arch: str, **reduce: int | None) -> int:
    """The model's parameter count, from its configuration alone (built on the meta device: no memory)."""
    import torch
    from transformers import AutoModelForImageTextToText

    from harness.tiny_model import _build_tokenizer

    spec = ARCHS[arch]
    text, vision = reduced_sizes(spec, **reduce)
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(_config(spec, text, vision, _build_tokenizer(), "bfloat16"))
    return sum(p.numel() for p in model.parameters())


def build_random_model(out: Path, arch: str, *, seed: int = 0, device: str = "auto", dtype: str = "bfloat16",
                       force: bool = False, **reduce: int | None) -> Path:
    """Build a random `arch` model into `out` (new or empty unless force); `reduce`: layers, hidden_size,
    vision_depth, vision_heads, vocab_size overrides. Returns `out`."""
    if arch not in ARCHS:
        raise ConfigError(f"unknown architecture {arch!r}; choose one of: {', '.join(ARCHS)}")
    if dtype not in ("bfloat16", "float16", "float32"):
        raise ConfigError(f"dtype must be bfloat16, float16 or float32, got {dtype!r}")
    from harness.outdirs import check_output_dir

    out = Path(out)
    check_output_dir(out, "model directory", force)  # before minutes of work
    spec = ARCHS[arch]
    text, vision = reduced_sizes(spec, **reduce)

    import torch
    from transformers import AutoModelForImageTextToText, GenerationConfig

    from harness.models import VISION_TOKENS, pick_device
    from harness.tiny_model import _build_processor, _build_tokenizer, save_model_dir

    tokenizer = padded_tokenizer(_build_tokenizer(), text["vocab_size"])
    processor = _build_processor(spec.family, tokenizer, pixels=spec.pixels)  # type: ignore[arg-type]
    config = _config(spec, text, vision, tokenizer, dtype)
    target = pick_device(device)
    cuda_index = [torch.device(target).index or 0] if target.startswith("cuda") else []
    with torch.random.fork_rng(devices=cuda_index), torch.device(target):
        torch.manual_seed(seed)
        # Created and initialised on the target device: on a GPU, seconds for 8 B parameters.
        model = AutoModelForImageTextToText.from_config(config, dtype=getattr(torch, dtype))
    eos, pad = tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")
    model.generation_config = GenerationConfig(bos_token_id=pad, eos_token_id=[eos, pad], pad_token_id=pad,
                                               suppress_tokens=tokenizer.convert_tokens_to_ids(list(VISION_TOKENS)))
    n_parameters = sum(p.numel() for p in model.parameters())
    marker = {"arch": arch, "sizes_from": spec.source, "seed": seed, "dtype": dtype, "n_parameters": n_parameters,
              "reduced": {k: v for k, v in reduce.items() if v is not None}, "builder_version": BUILDER_VERSION,
              "built_on": target}
    return save_model_dir(out, model, processor, MARKER_FILE, marker, force, max_shard_size="5GB")
