"""Config values are checked against their field types, with the key named, from flags, --set and files,
before anything loads and before any run or checkpoint directory is made."""

from __future__ import annotations

import doctest
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from click.testing import CliRunner

from core.errors import ConfigError
from harness import config_types
from harness.cli import cli
from harness.config import EvalConfig
from harness.config_types import check_field_types, checked
from trainers.config import TrainConfig


@pytest.mark.parametrize(
    "annotation, value, expected",
    [
        (int, 3, 3), (int | None, None, None), (int | None, 4, 4), (float, 1, 1.0), (float, 0.5, 0.5),
        (bool, False, False), (str, "x", "x"), (list[str], ["a", "b"], ["a", "b"]), (list[str], ("a",), ["a"]),
        (dict[str, str], {"*": "d"}, {"*": "d"}), (dict[str, list[str]], {"s": ["1"]}, {"s": ["1"]}),
        (dict[str, float], {"format": 1}, {"format": 1.0}), (tuple[int, int], [512, 256], (512, 256)),
        (tuple[int, int] | None, (2, 3), (2, 3)), (Literal["a", "b"], "b", "b"), (Any, {"x": [1]}, {"x": [1]}),
        (dict[str, Any], {"k": None}, {"k": None}), (tuple[int, ...], [1, 2, 3], (1, 2, 3)),
    ],
)
def test_values_of_the_right_type_pass_and_are_normalised(annotation, value, expected):
    result = checked("key", value, annotation)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(
    "annotation, value, message",
    [
        (int, 2.5, "key must be an integer, got 2.5"),
        (int | None, 1.9, "key must be an integer, got 1.9"),
        (int, True, "key must be an integer, got true"),
        (int, "abc", "key must be an integer, got 'abc'"),
        (float, "1e-6", "key must be a number, got '1e-6'"),
        (float, False, "key must be a number, got false"),
        (bool, 1, "key must be true or false, got 1"),
        (str, 3, "key must be a string, got 3"),
        (str | None, ["a"], "key must be a string, got ['a']"),
        (list[str], "arith", 'key must be a list of strings, got the string \'arith\'; write a list, e.g. ["arith"]'),
        (list[str], ["a", 2], "key[1] must be a string, got 2"),
        (dict[str, str], "str", "key must be a table of strings (key -> value), got the string 'str'"),
        (dict[str, str], {"s": 1}, "key.s must be a string, got 1"),
        (dict[str, list[str]], {"s": "x"}, "key.s must be a list of strings, got the string 'x'; write a list, e.g. [\"x\"]"),
        (dict[str, list[str]], ["x"], "key must be a table of lists of strings, got ['x']"),
        (tuple[int, int], [512], "key must be two integers, got [512]"),
        (tuple[int, int] | None, "512", "key must be two integers, got the string '512'; write a list"),
        (tuple[int, int], [512, 1.5], "key[1] must be an integer, got 1.5"),
        (Literal["a", "b"], "c", "key must be one of 'a', 'b', got 'c'"),
    ],
)
def test_values_of_the_wrong_type_name_the_key(annotation, value, message):
    with pytest.raises(ConfigError) as caught:
        checked("key", value, annotation)
    assert str(caught.value) == message


def test_an_annotation_without_a_check_fails_loudly_not_silently():
    @dataclass
    class WithSet:
        tags: set[str] = field(default_factory=set)

    with pytest.raises(TypeError, match="no type check"):
        check_field_types(WithSet())


@pytest.mark.parametrize("config_class", [EvalConfig, TrainConfig])
def test_every_field_of_both_configs_is_checked_and_its_default_passes(config_class):
    config_class()  # every annotation is one the checker knows (else TypeError), every default fits it
    for name in config_types._field_types(config_class):
        with pytest.raises(ConfigError, match=f"^{name}"):
            config_class(**{name: object()})


def test_the_module_docstring_example_holds():
    assert doctest.testmod(config_types).failed == 0


def _one_error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.mark.parametrize(
    "toml, message",
    [
        ("batch_size = 2.5", "batch_size must be an integer, got 2.5"),
        ("limit = 1.9", "limit must be an integer, got 1.9"),
        ('data_dir = "str"', "data_dir must be a table of strings (key -> value), got the string 'str'"),
        ('suites = "synth_arith"', "suites must be a list of strings, got the string 'synth_arith'"),
        ("limit = true", "limit must be an integer, got true"),
        ('temperature = "hot"', "temperature must be a number, got 'hot'"),
        ("image_size = [512]", "image_size must be two integers, got [512]"),
        ('sample_ids = {synth_arith = "a"}', "sample_ids.synth_arith must be a list of strings"),
    ],
)
def test_eval_config_file_values_are_type_checked_before_the_model_loads(toml, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config_file = tmp_path / "eval.toml"
    config_file.write_text(toml + "\n")
    # The model does not exist: the type error must come first, since the model is never reached.
    result = CliRunner().invoke(cli, ["eval", "--config", str(config_file), "--model", str(tmp_path / "no-model"),
                                      "--out", str(tmp_path / "run")])
    assert message in _one_error_line(result)
    assert not (tmp_path / "run").exists() and not (tmp_path / "runs").exists()


def test_eval_json_config_and_flags_meet_the_same_check(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config_file = tmp_path / "eval.json"
    config_file.write_text(json.dumps({"suites": ["synth_arith"], "max_new_tokens": "16"}))
    result = CliRunner().invoke(cli, ["eval", "--config", str(config_file), "--limit", "2"])
    assert "max_new_tokens must be an integer, got '16'" in _one_error_line(result)
    flag = CliRunner().invoke(cli, ["eval", "--limit", "1.9"])
    assert flag.exit_code == 2 and "--limit" in flag.output and "1.9" in flag.output
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "num_generations=abc"], "num_generations must be an integer, got 'abc'"),
        (["--set", "limit=true"], "limit must be an integer, got true"),
        (["--set", "learning_rate=fast"], "learning_rate must be a number, got 'fast'"),
        (["--set", "suites=synth_charts"], "suites must be a list of strings, got the string 'synth_charts'"),
        (["--set", "reward_weights={\"format\": \"high\", \"correctness\": 1}"],
         "reward_weights.format must be a number, got 'high'"),
        (["--set", "allow_overlap=yes"], "allow_overlap must be true or false, got 'yes'"),
        (["--set", "image_size=[512, 512.5]"], "image_size[1] must be an integer, got 512.5"),
    ],
)
def test_train_set_values_are_type_checked_with_the_key_named(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["train", *args, "--out", str(tmp_path / "ckpt")])
    assert message in _one_error_line(result)
    assert not (tmp_path / "ckpt").exists() and not (tmp_path / "checkpoints").exists()


def test_train_config_file_values_are_type_checked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    preset = tmp_path / "train.toml"
    preset.write_text("per_device_train_batch_size = 2.5\n")
    result = CliRunner().invoke(cli, ["train", "--config", str(preset), "--out", str(tmp_path / "ckpt")])
    assert "per_device_train_batch_size must be an integer, got 2.5" in _one_error_line(result)
    assert not (tmp_path / "ckpt").exists()


def test_numbers_written_as_integers_are_accepted_for_float_keys():
    cfg, _ = TrainConfig.from_sources(None, {"learning_rate": 1, "warmup_steps": 2, "temperature": 1})
    assert cfg.learning_rate == 1.0 and isinstance(cfg.learning_rate, float) and isinstance(cfg.warmup_steps, float)
    assert EvalConfig.from_dict({"image_size": [64, 32]}).image_size == (64, 32)
