"""The name fix for unsloth_zoo's Qwen2.5-VL tables (trainers/unsloth_compat.py), on a module built like
unsloth_zoo.empty_model: functions that read `get_model_type` as a module global at call time."""

from __future__ import annotations

from types import ModuleType, SimpleNamespace

from transformers import Qwen2_5_VLConfig, Qwen3VLConfig

from trainers.unsloth_compat import NEW_VISION_NAMES, patch_model_type_names

EMPTY_MODEL_SOURCE = '''
QWEN_VL_MERGED_QKV_TYPES = ("qwen2_5_vl", "qwen3_vl", "qwen3_vl_vision")

def get_model_type(config):
    model_type = getattr(config, "model_type", "causal_lm")
    if hasattr(config, "vision_config"):
        model_type = getattr(config.vision_config, "model_type", model_type)
    return model_type

def qkv_is_fused(config):
    return get_model_type(config) in QWEN_VL_MERGED_QKV_TYPES

def layer_count(config):
    if get_model_type(config) == "qwen2_5_vl":
        return max(config.text_config.num_hidden_layers, config.vision_config.depth)
    return 32
'''


def empty_model_module(source: str = EMPTY_MODEL_SOURCE) -> ModuleType:
    module = ModuleType("empty_model")
    exec(compile(source, "empty_model.py", "exec"), module.__dict__)  # noqa: S102 -- the test's own source
    return module


def test_transformers_names_qwen2_5_vl_vision_config_as_the_fix_expects():
    # The premise: a config loaded by this transformers answers with the new names.
    assert Qwen2_5_VLConfig().vision_config.model_type in NEW_VISION_NAMES
    assert Qwen3VLConfig().vision_config.model_type == "qwen3_vl_vision"


def test_the_new_qwen2_5_vl_name_reads_as_the_old_one_everywhere_the_module_asks():
    module = empty_model_module()
    config = Qwen2_5_VLConfig(text_config={"num_hidden_layers": 36}, vision_config={"depth": 32})
    assert not module.qkv_is_fused(config) and module.layer_count(config) == 32  # the failure: split, 32
    assert patch_model_type_names(module)
    assert module.qkv_is_fused(config) and module.layer_count(config) == 36
    assert module.get_model_type(Qwen3VLConfig()) == "qwen3_vl_vision"  # other names pass through
    assert module.get_model_type(SimpleNamespace(model_type="llama")) == "llama"
    assert not patch_model_type_names(module)  # once only


def test_an_unsloth_zoo_that_knows_the_new_name_is_left_alone():
    module = empty_model_module(EMPTY_MODEL_SOURCE.replace('"qwen3_vl_vision")', '"qwen3_vl_vision", '
                                                                                 '"qwen2_5_vl_vision")'))
    original = module.get_model_type
    assert not patch_model_type_names(module) and module.get_model_type is original
    assert not patch_model_type_names(ModuleType("no_such_function"))
