"""The checkpoint directory while training writes it: its record, intermediate adapters, periodic
evaluations and the callbacks that trigger them. The files and their format belong to
harness/checkpoints.py; training (trainers/train.py) drives this.

    run = CheckpointRun(out, info, data, plan, say, world=world)
    run.start()                                 # the record (status training) and the data fingerprints
    trainer = GRPOTrainer(..., callbacks=run.callbacks(cfg))
    run.trainer = trainer                       # ZeRO-3: saves gather the LoRA weights through it
    ...
    run.evaluate_final()

With several training processes every one holds a CheckpointRun, and only the main one writes: the
others enter the collective parts (gathering ZeRO-3 weights for a save) and skip the rest.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.checkpoints import is_checkpoint_dir, step_dir, write_checkpoint
from harness.config import EvalConfig
from trainers.config import TrainConfig
from trainers.data import TrainData
from trainers.distributed import World, full_trainable_params


@dataclass
class CheckpointRun:
    """The checkpoint directory being written: its checkpoint record (`info`), step saves and evaluations."""

    out: Path
    info: dict[str, Any]
    data: TrainData
    plan: EvalConfig | None  # the periodic and final evaluation, or None without eval suites
    say: Callable[[str], None]
    wall_offset: float = 0.0  # a resumed run's training log continues the stopped run's clock
    world: World = field(default_factory=World)
    trainer: Any = None  # set once built: a ZeRO-3 save gathers the weights through it

    def start(self) -> None:
        if not self.world.main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        self.write()
        self.data.fingerprints.save(self.out)

    def write(self) -> None:
        if self.world.main:
            write_checkpoint(self.out, self.info)

    def gathered(self) -> contextlib.AbstractContextManager:
        """The trainable weights whole for the block (every process enters it)."""
        return full_trainable_params(self.trainer) if self.trainer is not None else contextlib.nullcontext()

    def save_step(self, step: int, live_model: Any, live_processor: Any) -> Path:
        saved = step_dir(self.out, step)
        with self.gathered():
            if not self.world.main or is_checkpoint_dir(saved):  # saved already (save_steps and eval_every coincide)
                return saved
            live_model.save_pretrained(saved)
            live_processor.save_pretrained(saved)
        self.data.fingerprints.save(saved)
        write_checkpoint(saved, {**self.info, "status": "intermediate", "steps": step,
                                 "training_dir": str(self.out.resolve())})
        return saved

    def evaluate(self, step: int, live_model: Any, live_processor: Any) -> None:
        saved = self.save_step(step, live_model, live_processor)
        if self.world.main:  # the other processes wait for it at the next step's first collective
            self._record_eval(saved, step)

    def evaluate_final(self) -> None:
        self._record_eval(self.out, self.info["steps"])

    def _record_eval(self, model_dir: Path, step: int) -> None:
        self.info["evals"].append(evaluate(self.plan, model_dir, self.out, step, self.say))
        self.write()

    def callbacks(self, cfg: TrainConfig) -> list[Any]:
        from trainers.callbacks import EveryNSteps, TrainLogWriter

        callbacks: list[Any] = []
        if self.world.main:
            callbacks.append(TrainLogWriter(self.out, self.say, max(1, cfg.max_steps // 8), self.wall_offset))
        if self.plan is not None and cfg.eval_every:
            callbacks.append(EveryNSteps(cfg.eval_every, self.evaluate))
        if cfg.save_steps:
            callbacks.append(EveryNSteps(cfg.save_steps, self.save_step))
        return callbacks


def evaluate(plan: EvalConfig, model_dir: Path, out: Path, step: int, say: Callable[[str], None]) -> dict[str, Any]:
    """Evaluate one saved adapter through the harness into evals/step-N, leaving training's RNG alone."""
    import torch

    from harness.runner import run_eval
    from harness.runstore import RunDir

    run_dir = out / "evals" / f"step-{step:06d}"
    cfg = EvalConfig.from_dict({**plan.to_dict(), "model": str(model_dir), "out": str(run_dir)})
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        run_eval(cfg, progress=False)
    metrics = RunDir(run_dir).read_metrics()
    summary = {name: {"accuracy": m["accuracy"], "format_compliance": m["format_compliance"]}
               for name, m in metrics["suites"].items()}
    say(f"step {step}: " + ", ".join(f"{n} accuracy {s['accuracy']:.3f}, format {s['format_compliance']}"
                                     for n, s in summary.items()))
    return {"step": step, "run_dir": str(run_dir.relative_to(out)), "suites": summary}
