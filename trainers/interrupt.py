"""SIGTERM and SIGINT during training: stop without losing the steps already trained.

A signal that arrives while a step generates, runs forward or backward stops training at once: no
optimizer update of that step has begun, so the weights are still those of the last finished step.
One that arrives during the update, a log write, a save or an evaluation is held until that part is
done, and training stops before the next step starts. A second signal stops at once, whatever runs.
Either way `trainer.train()` raises `Interrupted`, and `save_interrupted` saves the adapter and the
processor (a checkpoint that `harness eval --model DIR` evaluates), the trainer state in TRL's own
layout (optimizer, scheduler, RNG: what `harness train --resume DIR` continues from, trainers/resume.py),
and marks the checkpoint record (CHECKPOINT_FILE) `interrupted`.

With several processes (trainers/distributed.py) the launcher passes the signal to each of them, not
at the same instant, and a process stopping mid-step would leave the others waiting in a collective
that never completes. So there every process finishes the step under way, they agree at its end (the
largest signal number any of them got) and all stop after that same step; repeated signals change
nothing (a Ctrl-C reaches each process twice, from the terminal and from the launcher). Every process
saves its part of the trainer state (its RNG state, its optimizer shard under DeepSpeed); the main
process saves the adapter and writes the record.

    stop = StopOnSignal(say)
    with stop.installed():
        trainer.add_callback(stop)
        try:
            trainer.train()        # raises Interrupted(signum=15) on SIGTERM
        except Interrupted as exc:
            raise save_interrupted(trainer, processor, out, info, exc) from None
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from core.errors import Interrupted
from harness.checkpoints import CHECKPOINT_FILE, write_checkpoint
from trainers.checkpoint import lora_check
from trainers.distributed import World, full_trainable_params

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopOnSignal(TrainerCallback):
    """Turns SIGTERM / SIGINT into `Interrupted` at a point where the weights are those of a whole step."""

    def __init__(self, say: Callable[[str], None], world: World | None = None):
        self.say = say
        self.world = world or World()
        self.signum: int | None = None  # the first signal received (with several processes: agreed on)
        self.computing = False  # between a step's start and its optimizer update
        self.forced = False  # a second signal stopped a part that was under way (an update, a save)
        self.received: int | None = None  # with several processes: this one's signal, before the agreement

    @contextmanager
    def installed(self) -> Iterator[StopOnSignal]:
        """The handlers, for the duration of the block; the previous ones are restored after it."""
        previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    @property
    def collective(self) -> bool:
        return self.world.size > 1

    def _handle(self, signum: int, frame: Any) -> None:
        if self.collective:
            if self.received is None:
                self.received = signum
                self.say(f"{signal.Signals(signum).name}: every training process stops after the step under way")
            return
        again = self.signum is not None
        self.signum = self.signum or signum
        if self.computing or again:
            self.forced = again and not self.computing
            self.computing = False
            raise Interrupted(f"{signal.Signals(signum).name} during training", signum)
        self.say(f"{signal.Signals(signum).name}: stopping once the part under way (update, save or evaluation) "
                 f"is done; send it again to stop now")

    def on_step_begin(self, args, state, control, **kwargs):
        if self.collective:
            return
        if self.signum is not None:  # held from between two steps: nothing of this step has run yet
            raise Interrupted(f"{signal.Signals(self.signum).name} during training", self.signum)
        self.computing = True

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.computing = False

    def on_step_end(self, args, state, control, **kwargs):
        if self.collective:  # every process calls this once a step: the one place they can agree
            agreed = self.world.max(self.received or 0, args.device)
            self.signum = agreed or None
        if self.signum is not None:
            control.should_training_stop = True

    def on_epoch_end(self, args, state, control, **kwargs):
        # Training left its loop at a step's end because of a held signal: stopped, not finished. (Without
        # this, TRL would close the run as if it had reached max_steps.)
        if self.signum is not None and state.global_step < state.max_steps:
            raise Interrupted(f"{signal.Signals(self.signum).name} during training", self.signum)


def save_interrupted(trainer: Any, processor: Any, out: Path, info: dict[str, Any], exc: Interrupted,
                     world: World | None = None) -> Interrupted:
    """Save what the interrupted run trained and record it; returns the one-line Interrupted to raise.
    With several processes every one calls this: each saves its part of the trainer state, the main
    process the adapter and the record."""
    world = world or World()
    name = signal.Signals(exc.signum).name
    step, max_steps = trainer.state.global_step, trainer.state.max_steps
    with full_trainable_params(trainer):
        if world.main:
            trainer.model.save_pretrained(out)
            processor.save_pretrained(out)
            lora = lora_check(trainer.model)
    state_dir = _save_trainer_state(trainer)
    forced = any(getattr(c, "forced", False) for c in trainer.callback_handler.callbacks)
    if world.main:
        info.update(status="interrupted", finished=datetime.now(UTC).isoformat(timespec="seconds"), steps=step,
                    lora=lora,
                    interrupted={"signal": name, "step": step, "max_steps": max_steps, "forced": forced,
                                 "trainer_state": str(state_dir.relative_to(out)) if state_dir else None})
        write_checkpoint(out, info)
    then = (f"`harness train --resume {out}` continues from step {step}" if state_dir else
             "its trainer state could not be saved, so `harness train --resume` continues from the last periodic save")
    stopped = Interrupted(f"{name} at step {step} of {max_steps}: the adapter of step {step} is saved in {out} and "
                          f"{CHECKPOINT_FILE} says interrupted (`harness eval --model {out}` evaluates it); {then}",
                          exc.signum)
    stopped.reported_elsewhere = not world.main
    return stopped


def _save_trainer_state(trainer: Any) -> Path | None:
    """TRL's own checkpoint (output_dir/checkpoint-N: adapter, optimizer, scheduler, RNG, trainer state),
    the folder that `trainer.train(resume_from_checkpoint=...)` reads."""
    try:
        trainer._save_checkpoint(trainer.model, trial=None)
    except (OSError, RuntimeError, ValueError):
        return None  # the adapter saved above is what matters; a resume would start from it
    found = Path(trainer.args.output_dir) / f"checkpoint-{trainer.state.global_step}"
    return found if found.is_dir() else None
