"""The offline tiny models: real architecture classes, loadable, deterministic, never emitting image tokens."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.models import VISION_TOKENS
from harness.tiny_model import ARCHS, MARKER_FILE, build_tiny_model, default_tiny_model

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
Image = pytest.importorskip("PIL.Image")

CLASSES = {"qwen2_5_vl": ("Qwen2_5_VLForConditionalGeneration", "Qwen2_5_VLProcessor"),
           "qwen3_vl": ("Qwen3VLForConditionalGeneration", "Qwen3VLProcessor")}


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    return {arch: build_tiny_model(tmp_path_factory.mktemp(f"tiny-{arch}"), arch, seed=0) for arch in ARCHS}


@pytest.fixture(scope="module")
def loaded(tiny_dirs):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    return {arch: (AutoModelForImageTextToText.from_pretrained(path), AutoProcessor.from_pretrained(path))
            for arch, path in tiny_dirs.items()}


@pytest.mark.parametrize("arch", ARCHS)
def test_loads_as_the_real_architecture(arch, tiny_dirs, loaded):
    model, processor = loaded[arch]
    assert (type(model).__name__, type(processor).__name__) == CLASSES[arch]
    tokenizer = processor.tokenizer
    assert model.config.text_config.vocab_size == len(tokenizer)
    assert 300 <= len(tokenizer) <= 1000
    assert model.config.image_token_id == tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    assert tokenizer.padding_side == "left"
    assert not model.config.tie_word_embeddings
    assert sum(p.numel() for p in model.parameters()) < 500_000
    assert sum(f.stat().st_size for f in tiny_dirs[arch].iterdir()) < 5 * 2**20
    marker = json.loads((tiny_dirs[arch] / MARKER_FILE).read_text())
    assert (marker["arch"], marker["seed"]) == (arch, 0)


@pytest.mark.parametrize("arch", ARCHS)
def test_chat_template_has_the_chatml_shape(arch, loaded):
    _, processor = loaded[arch]
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is x?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    user_turn = "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What is x?<|im_end|>\n"
    default_system = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    expected = (default_system if arch == "qwen2_5_vl" else "") + user_turn + "<|im_start|>assistant\n"
    assert text == expected

    conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]}]
    text = processor.apply_chat_template(conversation, tokenize=False)
    assert text == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                    "<|im_start|>assistant\nHello<|im_end|>\n")


@pytest.mark.parametrize("arch", ARCHS)
def test_an_image_becomes_a_few_tokens(arch, loaded):
    _, processor = loaded[arch]
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Area?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    for size in [(20, 20), (300, 200), (1200, 900)]:
        inputs = processor(text=[text], images=[Image.new("RGB", size)], return_tensors="pt")
        n_image_tokens = int((inputs["input_ids"] == processor.image_token_id).sum())
        assert 2 <= n_image_tokens <= 16, (size, n_image_tokens)


@pytest.mark.parametrize("arch", ARCHS)
def test_sampling_never_emits_vision_tokens(arch, loaded):
    model, processor = loaded[arch]
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Solve it."}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[Image.new("RGB", (64, 64), "white")], return_tensors="pt")
    torch.manual_seed(0)
    output = model.generate(**inputs, do_sample=True, temperature=1.5, max_new_tokens=64,
                            num_return_sequences=8, min_new_tokens=64)
    generated = output[:, inputs["input_ids"].shape[1]:]
    assert generated.shape == (8, 64)
    vision_ids = processor.tokenizer.convert_tokens_to_ids(VISION_TOKENS)
    assert not torch.isin(generated, torch.tensor(vision_ids)).any()


def test_generation_config_stops_on_im_end_and_pads_with_endoftext(loaded):
    model, processor = loaded["qwen2_5_vl"]
    tokenizer = processor.tokenizer
    config = model.generation_config
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in config.eos_token_id
    assert config.pad_token_id == tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert sorted(config.suppress_tokens) == sorted(tokenizer.convert_tokens_to_ids(VISION_TOKENS))


def test_same_seed_same_weights(tmp_path, tiny_dirs):
    again = build_tiny_model(tmp_path / "again", "qwen2_5_vl", seed=0)
    other = build_tiny_model(tmp_path / "other", "qwen2_5_vl", seed=1)
    weights = (tiny_dirs["qwen2_5_vl"] / "model.safetensors").read_bytes()
    assert (again / "model.safetensors").read_bytes() == weights
    assert (other / "model.safetensors").read_bytes() != weights
    assert (again / "tokenizer.json").read_text() == (tiny_dirs["qwen2_5_vl"] / "tokenizer.json").read_text()


def test_default_tiny_model_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    first = default_tiny_model("qwen3_vl", seed=3)
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert default_tiny_model("qwen3_vl", seed=3) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp
    assert first.parent == tmp_path and first.name.startswith("tiny-qwen3_vl-s3-v")
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no staging folder left behind
    assert first.stat().st_mode & 0o777 == 0o755


def test_unknown_arch_is_refused(tmp_path):
    with pytest.raises(ValueError, match="qwen2_5_vl"):
        build_tiny_model(tmp_path, "llava")


def test_importing_the_harness_stays_light():
    code = ("import sys, harness, harness.backends, harness.tiny_model, harness.gpu_memory; "
            "print(sorted({'torch', 'transformers', 'peft'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
