"""Tiny random Qwen2.5-VL / Qwen3-VL models, built offline for tests and smoke runs.

The model has the real architecture class, a real processor and a chat template of the Qwen ChatML
shape, but a few hundred thousand random weights and its own small byte-level BPE vocabulary. It
answers with random tokens; what it is for is exercising every code path (image tokens, mrope,
batching, LoRA, generation) in seconds on a CPU.

    >>> path = build_tiny_model(Path("tiny"), "qwen2_5_vl", seed=0)
    >>> sorted(p.name for p in path.iterdir())[:4]
    ['chat_template.jinja', 'config.json', 'generation_config.json', 'model.safetensors']

A rendered prompt with one image (4 image tokens for a small picture):

    <|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n<|im_start|>user\\n<|vision_start|>
    <|image_pad|><|image_pad|><|image_pad|><|image_pad|><|vision_end|>What is x?<|im_end|>\\n
    <|im_start|>assistant\\n
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

from harness.models import VISION_TOKENS
from harness.outdirs import check_output_dir, staged_output

# Bump when the built model changes (sizes, vocabulary, template): cached models are keyed on it.
BUILDER_VERSION = 1
MARKER_FILE = "tiny_model.json"
ARCHS = ("qwen2_5_vl", "qwen3_vl")
Arch = Literal["qwen2_5_vl", "qwen3_vl"]

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
VOCAB_SIZE = 800

# Qwen2.5-VL's template adds this system turn when the conversation has none; Qwen3-VL's does not.
DEFAULT_SYSTEM = {"qwen2_5_vl": "You are a helpful assistant.", "qwen3_vl": None}

# Our own Jinja template of the ChatML shape, preceded by one line that sets the default system
# message. Content is a string or a list of parts ({"type": "image"|"video"|"text"}); an image
# part becomes one placeholder that the processor expands to the image's token count.
CHAT_TEMPLATE_BODY = r"""
{%- if default_system and (not messages or messages[0]['role'] != 'system') %}
{{- '<|im_start|>system\n' + default_system + '<|im_end|>\n' }}
{%- endif %}
{%- for message in messages %}
{{- '<|im_start|>' + message['role'] + '\n' }}
{%- if message['content'] is string %}
{{- message['content'] }}
{%- elif message['content'] %}
{%- for part in message['content'] %}
{%- if part['type'] in ['image', 'image_url'] %}
{{- '<|vision_start|><|image_pad|><|vision_end|>' }}
{%- elif part['type'] == 'video' %}
{{- '<|vision_start|><|video_pad|><|vision_end|>' }}
{%- elif part['type'] == 'text' %}
{{- part['text'] }}
{%- endif %}
{%- endfor %}
{%- endif %}
{{- '<|im_end|>\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
{{- '<|im_start|>assistant\n' }}
{%- endif %}
"""


def chat_template(arch: Arch) -> str:
    system = DEFAULT_SYSTEM[arch]
    header = f"{{%- set default_system = {json.dumps(system)} %}}" if system else "{%- set default_system = none %}"
    return header + CHAT_TEMPLATE_BODY


def _corpus() -> list[str]:
    """A small fixed training text for the BPE: the words and tags math prompts and answers use."""
    words = [
        "what", "which", "how", "many", "much", "is", "are", "the", "of", "a", "an", "and", "or", "in", "on",
        "at", "to", "from", "by", "with", "for", "find", "compute", "calculate", "solve", "determine",
        "value", "answer", "question", "image", "figure", "shown", "below", "above", "triangle", "circle",
        "square", "rectangle", "angle", "area", "perimeter", "radius", "diameter", "length", "width",
        "height", "side", "degrees", "sum", "product", "difference", "ratio", "equation", "function",
        "graph", "point", "line", "parallel", "perpendicular", "x", "y", "z", "cm", "m", "km", "kg",
        "percent", "total", "number", "integer", "fraction", "decimal", "therefore", "so", "thus",
        "because", "let", "then", "we", "have", "first", "next", "finally", "step", "answer", "is",
        "system", "user", "assistant", "you", "are", "a", "helpful", "please", "reason", "put", "your",
        "final", "within",
    ]
    tags = [
        "<REASONING>", "</REASONING>", "<SOLUTION>", "</SOLUTION>",
        "<think>", "</think>", "<answer>", "</answer>",
    ]
    lines = [" ".join(words[i:i + 12]) for i in range(0, len(words), 6)]
    lines += [f"{a} + {b} = {a + b}, {a} * {b} = {a * b}" for a in range(0, 40, 3) for b in range(1, 30, 4)]
    lines += [f"\\boxed{{{n}}} The answer is {n}." for n in range(0, 200, 7)]
    lines += [f"{t} step by step {t}" for t in tags]
    lines += [f"<think>\nWhat is the area of the triangle?\n</think>\n<answer>\\boxed{{{n}}}</answer>"
              for n in (12, 3.5, 180)]
    lines += [f"<REASONING>The angle is {n} degrees.</REASONING><SOLUTION>{n}</SOLUTION>"
              for n in (30, 45, 60, 90)]
    lines += ["Question: How many sides does the square have? Answer: 4",
              "Which of the following is correct? (A) 1 (B) 2 (C) 3 (D) 4",
              "Let x = 5. Then 2x + 3 = 13, so x^2 = 25 and sqrt(16) = 4; 1/2 = 0.5, -7 < 0."]
    return lines


def _build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        model_max_length=32768,
    )


def _build_processor(arch: Arch, tokenizer, pixels: tuple[int, int] | None = None):
    """The family's processor with our chat template; `pixels` = (min, max) pixels of a resized image
    (default: the tiny limits, 4 to 16 image tokens per image)."""
    from transformers import Qwen2VLImageProcessor

    if arch == "qwen2_5_vl":
        from transformers import Qwen2_5_VLProcessor, Qwen2VLVideoProcessor

        patch, processor_class, video_class = 14, Qwen2_5_VLProcessor, Qwen2VLVideoProcessor
        normalize = {}  # the family's default: CLIP mean and std
    else:
        from transformers import Qwen3VLProcessor, Qwen3VLVideoProcessor

        patch, processor_class, video_class = 16, Qwen3VLProcessor, Qwen3VLVideoProcessor
        normalize = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
    unit = patch * 2  # one merged 2x2 patch block = one image token
    # Between 4 and 16 image tokens per image. `size` is passed as a fresh dict: the processors'
    # min_pixels/max_pixels arguments edit a dict shared by the class.
    low, high = pixels or ((2 * unit) ** 2, (4 * unit) ** 2)
    image_size = {"shortest_edge": low, "longest_edge": high}
    image_processor = Qwen2VLImageProcessor(size=image_size, patch_size=patch, temporal_patch_size=2,
                                            merge_size=2, **normalize)
    video_size = {"shortest_edge": low, "longest_edge": 4 * high}
    video_processor = video_class(size=video_size, patch_size=patch, temporal_patch_size=2, merge_size=2,
                                  **normalize)
    return processor_class(image_processor=image_processor, tokenizer=tokenizer,
                           video_processor=video_processor, chat_template=chat_template(arch))


def _build_config(arch: Arch, tokenizer, hidden: int = 32, layers: int = 2):
    ids = {name: tokenizer.convert_tokens_to_ids(tok) for name, tok in (
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"))}
    eos, pad = tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")
    # head_dim stays 16 at every width (the rotary sections below depend on it).
    text = {"vocab_size": len(tokenizer), "hidden_size": hidden, "intermediate_size": 2 * hidden,
            "num_hidden_layers": layers, "num_attention_heads": hidden // 16, "num_key_value_heads": 1, "max_position_embeddings": 4096,
            "bos_token_id": pad, "eos_token_id": eos, "pad_token_id": pad, "tie_word_embeddings": False}
    vision = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": hidden,
              "spatial_merge_size": 2, "temporal_patch_size": 2}
    # head_dim is 16, so the rotary sections (temporal, height, width) must sum to 8; these keep the
    # real models' proportions (16/24/24 of 64 and 24/20/20 of 64).
    if arch == "qwen2_5_vl":
        from transformers import Qwen2_5_VLConfig

        text["rope_parameters"] = {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]}
        vision.update(patch_size=14, window_size=56, fullatt_block_indexes=[1], hidden_act="silu")
        return Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False, **ids)
    from transformers import Qwen3VLConfig

    text.update(head_dim=16, rope_parameters={"rope_type": "default", "rope_theta": 5000000.0,
                                              "mrope_section": [4, 2, 2], "mrope_interleaved": True})
    vision.update(patch_size=16, num_position_embeddings=64, deepstack_visual_indexes=[1])
    return Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False, **ids)


def build_tiny_model(out: Path, arch: Arch = "qwen2_5_vl", seed: int = 0, hidden: int = 32, layers: int = 2,
                     force: bool = False) -> Path:
    """Build a random `arch` model with its tokenizer and processor into `out`; same seed, same weights.
    `hidden` (a multiple of 16) and `layers` size the language model; the default is the smallest.
    A folder `out` that holds anything is refused (OutputExistsError) unless force; the model is
    written aside and moved into place whole, its files readable by all (0644 with the usual umask)."""
    if hidden % 16 or hidden < 32 or layers < 1:
        raise ValueError(f"hidden must be a multiple of 16 (at least 32) and layers at least 1, got {hidden}, {layers}")
    if arch not in ARCHS:
        raise ValueError(f"unknown tiny model architecture {arch!r}; choose one of {ARCHS}")
    out = Path(out)
    check_output_dir(out, "model directory", force)  # before anything is built
    import torch
    from transformers import AutoModelForImageTextToText, GenerationConfig

    tokenizer = _build_tokenizer()
    processor = _build_processor(arch, tokenizer)
    config = _build_config(arch, tokenizer, hidden, layers)
    with torch.random.fork_rng(devices=[]):  # leave the caller's random state alone
        torch.manual_seed(seed)
        model = AutoModelForImageTextToText.from_config(config, dtype=torch.float32)
    eos, pad = tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")
    model.generation_config = GenerationConfig(
        bos_token_id=pad, eos_token_id=[eos, pad], pad_token_id=pad,
        # Random weights sample any token, vision placeholders included: generation never emits those.
        suppress_tokens=tokenizer.convert_tokens_to_ids(list(VISION_TOKENS)),
    )
    marker = {"arch": arch, "seed": seed, "hidden": hidden, "layers": layers, "builder_version": BUILDER_VERSION,
              "n_parameters": sum(p.numel() for p in model.parameters())}
    return save_model_dir(out, model, processor, MARKER_FILE, marker, force)


def save_model_dir(out: Path, model: Any, processor: Any, marker_file: str, marker: dict[str, Any], force: bool,
                   **save_options: Any) -> Path:
    """Write a built model, its processor and its marker file into `out`, whole or not at all."""
    from transformers.utils import logging as hf_logging

    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a "writing shards" bar per build is noise
    try:
        with staged_output(out, "model directory", force) as staging:
            model.save_pretrained(staging, **save_options)
            processor.save_pretrained(staging)
            (staging / marker_file).write_text(json.dumps(marker, indent=2) + "\n")
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
    return out


def tiny_model_cache_dir() -> Path:
    return Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "vlm-math-harness"))


def default_tiny_model(arch: Arch = "qwen2_5_vl", seed: int = 0, hidden: int = 32, layers: int = 2) -> Path:
    """The cached tiny model for (arch, seed, size), built on first use."""
    root = tiny_model_cache_dir()
    size = "" if (hidden, layers) == (32, 2) else f"-h{hidden}l{layers}"
    final = root / f"tiny-{arch}{size}-s{seed}-v{BUILDER_VERSION}"
    if (final / MARKER_FILE).is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    # Build aside and rename into place, so a killed or concurrent build never leaves half a model.
    staging = Path(tempfile.mkdtemp(prefix=f".building-{final.name}-", dir=root))
    try:
        build_tiny_model(staging, arch, seed, hidden, layers)  # readable by all: the cache may be shared
        try:
            os.rename(staging, final)
        except OSError:
            if not (final / MARKER_FILE).is_file():  # not another builder's finished copy
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final
