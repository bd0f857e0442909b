"""What one GRPO/GSPO training step will roughly cost on a CPU, told before the first step.

The defaults and the shipped presets are sized for a GPU: 8 completions of up to 512 tokens a step. On
a CPU a step of a real model then takes hours, so `train()` prints this estimate on a CPU and, above
`CPU_STEP_WARN_S`, a warning that names the CPU-sized preset (`--config cpu-small`).

The estimate is arithmetic, not a measurement of the step: generation decodes `max_completion_length`
tokens one pass at a time (an untrained model seldom stops early), each pass costing a fixed overhead
per layer plus 2 FLOPs per parameter per sequence; training runs the old-policy forward, the forward
and the backward over prompt + completion tokens (about 8 FLOPs per parameter per token). The FLOP
rate is this machine's, measured with a short matrix product; the overhead constants were measured on
a 2-core CPU (docs/training.md). Expect the right order of magnitude, not the exact time.

    flops = measure_cpu_flops()
    est = estimate_step(cfg, n_params=model.num_parameters(), n_layers=4, flops_per_s=flops)
    print(est.describe(cfg.max_steps))   # "roughly 12 s a step (100 steps: about 20 min) ..."
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from trainers.config import TrainConfig, read_config_file

CPU_STEP_WARN_S = 60.0
CPU_PRESET = "cpu-small"
# Python and kernel-launch cost of one decoding pass, per language-model layer and fixed (measured on
# the tiny models: 2 layers about 20 ms a pass, 4 layers about 30 ms, on a shared 2-core CPU).
DECODE_OVERHEAD_S = 0.010
DECODE_OVERHEAD_PER_LAYER_S = 0.005
# A prompt's length in tokens: a question plus a resized image's tokens (512x512 is about 330).
PROMPT_TOKENS = 300


@dataclass(frozen=True)
class StepEstimate:
    seconds: float
    generation_s: float
    training_s: float
    completions: int  # generated per optimizer step
    completion_tokens: int
    n_params: int
    flops_per_s: float

    def describe(self, max_steps: int) -> str:
        return (f"roughly {_duration(self.seconds)} a step ({max_steps} steps: about "
                f"{_duration(self.seconds * max_steps)}): {self.completions} completions of up to "
                f"{self.completion_tokens} tokens from a {_count(self.n_params)}-parameter model at this "
                f"CPU's {self.flops_per_s / 1e9:.0f} GFLOP/s")


def estimate_step(cfg: TrainConfig, n_params: int, n_layers: int, flops_per_s: float) -> StepEstimate:
    spg = cfg.effective_steps_per_generation()
    generation_batch = cfg.per_device_train_batch_size * spg
    # One generation batch serves spg micro-steps, num_iterations times over.
    rounds_per_step = cfg.gradient_accumulation_steps / spg / cfg.num_iterations
    passes = cfg.max_completion_length * rounds_per_step
    per_pass = (DECODE_OVERHEAD_S + DECODE_OVERHEAD_PER_LAYER_S * n_layers
                + 2 * n_params * generation_batch / flops_per_s)
    trained_tokens = (cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps
                      * (PROMPT_TOKENS + cfg.max_completion_length))
    training_s = 8 * n_params * trained_tokens / flops_per_s
    generation_s = passes * per_pass
    return StepEstimate(seconds=generation_s + training_s, generation_s=generation_s, training_s=training_s,
                        completions=round(generation_batch * rounds_per_step),
                        completion_tokens=cfg.max_completion_length, n_params=n_params, flops_per_s=flops_per_s)


def cpu_step_message(cfg: TrainConfig, estimate: StepEstimate) -> str:
    """The line printed before training on a CPU: the estimate, and above the threshold a warning that
    names the CPU-sized preset (or, when the settings are that small already, says the model is)."""
    text = f"on this CPU: {estimate.describe(cfg.max_steps)}"
    if estimate.seconds < CPU_STEP_WARN_S:
        return text
    preset = read_config_file(CPU_PRESET)
    if (estimate.completions <= preset["per_device_train_batch_size"]
            and cfg.max_completion_length <= preset["max_completion_length"]):
        return f"warning: {text}. The model is what is large: use a smaller one, or train on a GPU"
    return (f"warning: these settings are sized for a GPU; {text}. For a CPU use --config {CPU_PRESET} "
            f"({preset['per_device_train_batch_size']} completions of up to {preset['max_completion_length']} "
            f"tokens, {preset['max_steps']} steps) with a small model, or train on a GPU")


def measure_cpu_flops(seconds: float = 0.1) -> float:
    """float32 matrix-product FLOP/s on this machine with torch's current thread count."""
    import torch

    a, b = torch.randn(256, 256), torch.randn(256, 256)
    a @ b  # first call: allocation and thread-pool start-up, not counted
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        n += 1
    return 2 * 256**3 * n / (time.perf_counter() - started)


def language_layers(model: object) -> int:
    """Decoder layers of a loaded model (its text config's num_hidden_layers; 1 when unknown)."""
    config = getattr(model, "config", None)
    text = getattr(config, "text_config", None) or config
    return int(getattr(text, "num_hidden_layers", 1) or 1)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def _count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)
