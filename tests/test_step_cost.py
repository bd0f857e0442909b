"""The CPU step-cost estimate: it scales with what a step does, and warns with the CPU preset's name."""

from __future__ import annotations

import pytest

from trainers.config import TrainConfig
from trainers.step_cost import (
    CPU_PRESET,
    CPU_STEP_WARN_S,
    cpu_step_message,
    estimate_step,
    measure_cpu_flops,
)

TINY = {"n_params": 149_408, "n_layers": 2}  # the default tiny Qwen2.5-VL
SEVEN_B = {"n_params": 8_300_000_000, "n_layers": 28}
FLOPS = 2e10


def config(preset: str | None = None, **overrides) -> TrainConfig:
    return TrainConfig.from_sources(preset, overrides)[0]


def test_generation_scales_with_completion_length_and_training_with_parameters():
    short = estimate_step(config(max_completion_length=128), **TINY, flops_per_s=FLOPS)
    long = estimate_step(config(max_completion_length=512), **TINY, flops_per_s=FLOPS)
    assert long.generation_s == pytest.approx(4 * short.generation_s)
    small = estimate_step(config(), n_params=10**9, n_layers=28, flops_per_s=FLOPS)
    large = estimate_step(config(), n_params=2 * 10**9, n_layers=28, flops_per_s=FLOPS)
    assert large.training_s == pytest.approx(2 * small.training_s)
    assert small.completions == 8 and small.completion_tokens == 512


def test_one_generation_batch_serves_several_steps():
    # gspo-paper: steps_per_generation 4, so a step generates a quarter of a 4 x 8 generation batch
    paper = estimate_step(config("gspo-paper"), **TINY, flops_per_s=FLOPS)
    assert paper.completions == 8
    reused = estimate_step(config(num_iterations=2), **TINY, flops_per_s=FLOPS)
    once = estimate_step(config(), **TINY, flops_per_s=FLOPS)
    assert reused.generation_s == pytest.approx(once.generation_s / 2)


def test_gpu_sized_settings_on_a_large_model_warn_and_name_the_cpu_preset():
    estimate = estimate_step(config(), **SEVEN_B, flops_per_s=FLOPS)
    assert estimate.seconds > 3600
    message = cpu_step_message(config(), estimate)
    assert message.startswith("warning: these settings are sized for a GPU")
    assert f"--config {CPU_PRESET}" in message and "8.3B-parameter" in message and " h a step" in message
    assert "\n" not in message


def test_the_cpu_preset_on_the_tiny_model_is_cheap_and_only_informs():
    cfg = config(CPU_PRESET)
    estimate = estimate_step(cfg, **TINY, flops_per_s=FLOPS)
    assert estimate.seconds < CPU_STEP_WARN_S / 10
    assert cpu_step_message(cfg, estimate).startswith("on this CPU: roughly")


def test_small_settings_with_a_large_model_blame_the_model_not_the_settings():
    cfg = config(CPU_PRESET)
    message = cpu_step_message(cfg, estimate_step(cfg, **SEVEN_B, flops_per_s=FLOPS))
    assert message.startswith("warning:") and "The model is what is large" in message
    assert CPU_PRESET not in message


def test_this_machine_has_a_measurable_flop_rate():
    assert 1e8 < measure_cpu_flops(0.05) < 1e14
