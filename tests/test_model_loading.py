"""The one model-loading module: sources, dtype and device, the 4-bit configuration, vision tokens; and
that training and evaluation load a QLoRA adapter's base quantized the same way."""

from __future__ import annotations

import json

import pytest

from core.errors import ConfigError, ModelError
from harness import models
from harness.models import (
    VISION_TOKENS,
    bnb_4bit_config,
    pick_device,
    pick_dtype,
    resolve_model,
    resolve_source,
    vision_token_ids,
)

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def lora_dir(tiny_model_dir, tmp_path_factory):
    """An adapter as the trl engine makes it: its own LoraConfig on the tiny model, saved by PEFT."""
    from peft import get_peft_model

    from trainers.config import TrainConfig
    from trainers.engines import load_model

    cfg = TrainConfig.from_dict({"model": str(tiny_model_dir), "engine": "trl"})[0]
    model, processor, peft_config = load_model(cfg, "trl", str(tiny_model_dir))
    out = tmp_path_factory.mktemp("qlora")
    get_peft_model(model, peft_config).save_pretrained(out)
    processor.save_pretrained(out)
    return out


def test_sources_local_adapter_and_hub(tiny_model_dir, lora_dir, tmp_path):
    base = resolve_source(str(tiny_model_dir), "ignored-for-local-dirs")
    assert (base.local, base.is_adapter, base.hub_options()) == (True, False, {})
    resolved = resolve_model(str(lora_dir))
    assert resolved.base.location == str(tiny_model_dir) and resolved.adapter.location == str(lora_dir)
    assert resolve_model(str(tiny_model_dir), adapter=str(lora_dir)) == resolved
    # an adapter naming a pinned Hub base keeps the revision for that base
    pinned = tmp_path / "pinned"
    pinned.mkdir()
    config = json.loads((lora_dir / "adapter_config.json").read_text())
    (pinned / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "org/vlm",
                                                            "revision": "abc123"}))
    with pytest.raises(ModelError, match="org/vlm"):  # offline: the error names the base it wanted
        resolve_model(str(pinned))
    with pytest.raises(ModelError, match="not a PEFT adapter"):
        resolve_model(str(tiny_model_dir), adapter=str(tiny_model_dir))


def test_dtype_device_and_vision_tokens(tiny_model_dir):
    from transformers import AutoProcessor

    assert pick_dtype("auto", "cpu") is torch.float32
    assert pick_dtype("bf16", "cpu") is torch.bfloat16 and pick_dtype("half", "cpu") is torch.float16
    with pytest.raises(ConfigError, match="unknown dtype"):
        pick_dtype("int3", "cpu")
    assert pick_device("cpu") == "cpu"
    with pytest.raises(ConfigError, match="unknown device"):
        pick_device("tpu")
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    ids = vision_token_ids(processor)
    assert ids == processor.tokenizer.convert_tokens_to_ids(list(VISION_TOKENS)) and len(set(ids)) == 4


def test_the_4bit_configuration_is_nf4_with_double_quantization():
    config = bnb_4bit_config(torch.bfloat16).to_dict()
    assert (config["load_in_4bit"], config["bnb_4bit_quant_type"], config["bnb_4bit_use_double_quant"],
            config["bnb_4bit_compute_dtype"]) == (True, "nf4", True, "bfloat16")


class _Captured(Exception):
    """Raised by the patched from_pretrained once it has recorded its arguments."""


def test_qlora_adapter_is_evaluated_on_the_base_it_was_trained_on(tiny_model_dir, lora_dir, monkeypatch):
    """On a GPU host with bitsandbytes, the trainer (trl engine) and the eval backend hand the base's
    from_pretrained the same arguments: same base, dtype, device and 4-bit configuration. This host has
    neither, so the test says it has and stops each load at from_pretrained."""
    from transformers import AutoModelForImageTextToText

    from harness.backends.transformers_backend import TransformersBackend
    from trainers.config import TrainConfig
    from trainers.engines import load_model

    calls = []

    def capture(location, **kwargs):
        calls.append((str(location), kwargs))
        raise _Captured

    monkeypatch.setattr(models, "cuda_available", lambda: True)
    monkeypatch.setattr(models, "require_4bit_support", lambda: None)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)  # the GPU a second training process owns
    monkeypatch.setattr(AutoModelForImageTextToText, "from_pretrained", capture)

    cfg = TrainConfig.from_dict({"model": str(tiny_model_dir), "engine": "trl", "load_in_4bit": True})[0]
    with pytest.raises(ModelError, match="cannot load model"):
        load_model(cfg, "trl", str(tiny_model_dir))
    with pytest.raises(ModelError, match="cannot load model"):
        TransformersBackend(str(lora_dir), load_in_4bit=True)  # the adapter dir, as `harness eval` gets it
    (train_base, train_kwargs), (eval_base, eval_kwargs) = calls
    assert train_base == eval_base == str(tiny_model_dir)
    train_quant, eval_quant = train_kwargs.pop("quantization_config"), eval_kwargs.pop("quantization_config")
    assert train_quant.to_dict() == eval_quant.to_dict() == bnb_4bit_config(torch.bfloat16).to_dict()
    assert train_kwargs == eval_kwargs == {"dtype": torch.bfloat16, "trust_remote_code": False,
                                           "device_map": {"": "cuda:1"}}
