"""Trainer callbacks: the training log file, and actions every N steps (evaluation, intermediate saves)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from harness.checkpoints import append_train_log


def _plain(value: Any) -> Any:
    """Log values as JSON numbers; NaN/inf (an all-NaN reward, say) become null."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class TrainLogWriter(TrainerCallback):
    """Appends each TRL log entry to the checkpoint's training log with the step, wall time and peak GPU memory."""

    def __init__(self, out: Path, echo: Callable[[str], None] | None = None, echo_every: int = 10,
                 wall_offset: float = 0.0):
        self.out = Path(out)
        self.started = time.monotonic() - wall_offset  # a resumed run continues the stopped run's clock
        self.echo, self.echo_every = echo, echo_every

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs:
            return
        row = {"step": state.global_step, **{k: _plain(v) for k, v in logs.items()},
               "wall_s": round(time.monotonic() - self.started, 3), "peak_gpu_memory_mib": _peak_mib()}
        append_train_log(self.out, row)
        if self.echo and "reward" in row and (state.global_step % self.echo_every == 0 or state.global_step == 1):
            parts = [f"step {state.global_step}/{state.max_steps}: reward {row['reward']:.3f}"]
            parts += [f"{name.split('/')[1].removesuffix('_reward')} {value:.3f}" for name, value in row.items()
                      if name.startswith("rewards/") and name.endswith("/mean") and value is not None]
            parts.append(f"{row.get('step_time') or 0:.2f} s/step")
            self.echo(", ".join(parts))


def _peak_mib() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


class EveryNSteps(TrainerCallback):
    """Calls `action(step, model, processor)` every `every` steps before the last one (the final step is
    saved and evaluated after training): the periodic evaluation and the intermediate saves."""

    def __init__(self, every: int, action: Callable[[int, Any, Any], Any]):
        self.every = every
        self.action = action

    def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        if self.every and state.global_step % self.every == 0 and state.global_step < state.max_steps:
            self.action(state.global_step, model, processing_class)
