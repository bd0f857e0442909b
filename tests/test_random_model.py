"""Random models of published sizes: the configurations give the published parameter counts, and a
reduced copy of each architecture is built on a CPU and loads in both backends' loaders."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from core.errors import ConfigError, OutputExistsError
from harness.backends import GenerationParams, Request, load_backend
from harness.cli import cli
from harness.random_model import ARCHS, build_random_model, parameter_count, reduced_sizes

Image = pytest.importorskip("PIL.Image")
REDUCED = {"layers": 2, "hidden_size": 256, "vision_depth": 2, "vision_heads": 2, "vocab_size": 2048}
# Published parameter counts of the checkpoints whose sizes the architectures copy.
PUBLISHED_BILLIONS = {"qwen2_5_vl_7b": 8.29, "qwen2_5_vl_3b": 3.75, "qwen3_vl_8b": 8.77}


@pytest.mark.parametrize("arch", list(ARCHS))
def test_the_published_sizes_give_the_published_parameter_count(arch):
    assert parameter_count(arch) / 1e9 == pytest.approx(PUBLISHED_BILLIONS[arch], abs=0.005)


def test_reduced_sizes_keep_head_dimensions_and_special_layers():
    text, vision = reduced_sizes(ARCHS["qwen3_vl_8b"], hidden_size=256, vision_depth=3, vision_heads=2)
    assert (text["num_attention_heads"], text["num_key_value_heads"], text["head_dim"]) == (2, 2, 128)
    assert vision["out_hidden_size"] == 256 and vision["hidden_size"] == 2 * 72
    assert vision["deepstack_visual_indexes"] == [0, 1, 2]  # 8, 16, 24 of 27 blocks
    with pytest.raises(ConfigError, match="multiple of the head dimension 128"):
        reduced_sizes(ARCHS["qwen2_5_vl_7b"], hidden_size=200)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return {arch: build_random_model(tmp_path_factory.mktemp(arch) / "model", arch, device="cpu",
                                     dtype="float32", **REDUCED) for arch in ARCHS}


@pytest.mark.parametrize("arch", list(ARCHS))
def test_a_reduced_model_loads_and_generates_with_the_published_image_limits(built, arch):
    from transformers import AutoConfig, AutoTokenizer

    path = built[arch]
    marker = json.loads((path / "random_model.json").read_text())
    assert marker["arch"] == arch and marker["reduced"] == REDUCED and marker["built_on"] == "cpu"
    config = AutoConfig.from_pretrained(path)
    assert config.text_config.num_hidden_layers == 2 and config.text_config.vocab_size == 2048
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert len(tokenizer) == 2048 and tokenizer.decode([2047]).strip() == "~2047"  # every id decodes
    backend = load_backend("transformers", str(path), device="cpu", batch_size=2)
    image = Image.new("RGB", (448, 448), "white")
    request = Request("r", [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "x?"}]}], [image])
    [completion] = backend.generate([request], GenerationParams(max_new_tokens=3, ignore_eos=True))
    assert completion.n_output_tokens == 3
    # 448x448 in 28-pixel (Qwen2.5-VL) or 32-pixel (Qwen3-VL) merged patches, as the real processors make it
    image_tokens = (448 // 28) ** 2 if ARCHS[arch].family == "qwen2_5_vl" else (448 // 32) ** 2
    text_only = backend.prompt_lengths([Request("t", [{"role": "user", "content": [{"type": "text", "text": "x?"}]}])])
    assert completion.n_prompt_tokens - text_only[0] == image_tokens + 2  # the placeholder and vision start/end
    assert backend.model.generation_config.suppress_tokens  # the vision tokens, as in the tiny model
    backend.close()


def test_vllm_reads_the_model_config(built):
    pytest.importorskip("vllm")
    from vllm.config import ModelConfig

    for arch, path in built.items():
        config = ModelConfig(model=str(path), dtype="bfloat16")
        assert config.get_vocab_size() == 2048 and config.max_model_len == ARCHS[arch].text["max_position_embeddings"]


def test_the_command_builds_and_refuses_a_folder_in_use(tmp_path):
    out = tmp_path / "m"
    args = ["random-model", str(out), "--arch", "qwen2_5_vl_3b", "--device", "cpu", "--dtype", "float32",
            *[f"--{k.replace('_', '-')}={v}" for k, v in REDUCED.items()]]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out) and (out / "model.safetensors").is_file()
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 2 and "already holds files" in again.output
    with pytest.raises(OutputExistsError):
        build_random_model(out, "qwen2_5_vl_3b", device="cpu", **REDUCED)
