"""`harness train --resume DIR`: continue a stopped or crashed training run from its last saved step.

What is saved: while training, TRL writes its own checkpoint every `resume_every` steps (rounded up to
whole generation batches) into `DIR/trainer/checkpoint-N`: the adapter, the optimizer and scheduler
states, the RNG states and the trainer state (step, log history); SIGTERM / SIGINT save one at the
step where they stop (trainers/interrupt.py). A SIGKILL or a crash leaves the last periodic one, and
the two newest are kept, so one being written when the process died still leaves a whole one.

What resuming does: it reads the run's recorded config (the checkpoint record; nothing can be changed), loads
the same data (refused when its hash differs), takes the newest complete saved state, drops what the
stopped run wrote past that step (training-log lines, intermediate step saves, periodic evaluations),
and hands the state to `trainer.train(resume_from_checkpoint=...)`: adapter, optimizer, scheduler and
RNG are restored, and the data loader skips the batches already trained, so the step count and the
training log continue where the saved step left them. The checkpoint record lists each resume (`resumes`).

Exactness: a state saved at a generation-batch boundary (every periodic save) continues exactly as the
uninterrupted run would, as far as the hardware repeats its arithmetic (tests/test_resume.py compares
the loss, reward and gradient norm of every step with an uninterrupted run's). A state saved by a
signal in the middle of a generation batch lacks that batch's completions, which are not saved: the
resumed run generates them again, from the current policy, for the batch's remaining steps.

A run trained on several processes resumes on as many (its recorded num_processes; `harness train
--resume` launches them): each process's RNG state is restored from its own file, and the global batch
stays the one the run was trained with.

    from trainers.resume import resume
    resume("checkpoints/gspo-1")                       # the checkpoint dir; trains to the recorded max_steps
    resume(out, extra_reward_funcs=[my_reward])        # runs trained with train(..., extra_reward_funcs=...)
    resumable_config(out).num_processes                # how many processes the run needs
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import ConfigError, DataError, RunDirError
from harness.checkpoints import (
    CHECKPOINT_FILE,
    locked_checkpoint_dir,
    read_checkpoint,
    read_train_log,
    truncate_train_log,
    world_size_of,
)
from trainers.config import TrainConfig
from trainers.distributed import closed_on_error, join, main_first

STATE_PREFIX = "checkpoint-"  # TRL's (transformers') name for a saved trainer state
STATE_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt", "rng_state.pth", "adapter_model.safetensors")
# DeepSpeed saves the optimizer (each process its shard) and scheduler under global_stepN/, named by `latest`
DEEPSPEED_STATE_FILES = ("trainer_state.json", "latest", "adapter_model.safetensors")
RESUMABLE = ("training", "interrupted", "error")  # training: the process died without a word (a kill, a crash)


@dataclass
class Continuation:
    """Where a resumed run picks up: the saved state, its step, and the record being continued."""

    state_dir: Path
    step: int
    exact: bool  # saved at a generation-batch boundary
    wall_s: float  # the training log's clock at that step
    info: dict[str, Any]  # the checkpoint record of the stopped run, cleaned up to `step`

    def continued_info(self, fresh: dict[str, Any]) -> dict[str, Any]:
        """The stopped run's record, checked against the one this process would write for the same config."""
        old, new = self.info["train_data"]["sha256"], fresh["train_data"]["sha256"]
        if old != new:
            raise DataError(f"the training data changed since this run started (sha256 {old[:12]}... then, "
                            f"{new[:12]}... now): it cannot be resumed on other data; train a new run")
        return self.info


def state_files(world_size: int = 1, deepspeed: str | None = None) -> list[str]:
    """The files of a whole saved trainer state: with several processes, one RNG state per process."""
    names = [n for n in (DEEPSPEED_STATE_FILES if deepspeed else STATE_FILES) if n != "rng_state.pth"]
    return names + (["rng_state.pth"] if world_size == 1 else [f"rng_state_{i}.pth" for i in range(world_size)])


def saved_states(out: Path, world_size: int = 1, deepspeed: str | None = None) -> list[tuple[int, Path]]:
    """The complete trainer states under out/trainer, oldest first (a partial one, cut by a kill, is left out)."""
    needed = state_files(world_size, deepspeed)
    found = []
    for folder in (out / "trainer").glob(f"{STATE_PREFIX}*"):
        step = folder.name.removeprefix(STATE_PREFIX)
        if step.isdigit() and _complete(folder, int(step), needed):
            found.append((int(step), folder))
    return sorted(found)


def _complete(folder: Path, step: int, needed: list[str]) -> bool:
    if not all((folder / name).is_file() and (folder / name).stat().st_size > 0 for name in needed):
        return False
    try:  # written last, and not atomically: a kill during the save leaves it cut short
        return json.loads((folder / "trainer_state.json").read_text()).get("global_step") == step
    except (OSError, ValueError):
        return False


def resume(out: str | Path, *, extra_reward_funcs: Sequence[Callable] = (),
           echo: Callable[[str], None] | None = None) -> Path:
    """Continue the run in `out` from its newest saved trainer state to its max_steps. Returns `out`."""
    from trainers.train import _train

    out = Path(out)
    cfg = resumable_config(out, extra_reward_funcs)
    world = join(cfg)  # as many processes as the run trained on

    def lock_and_continue(stack: contextlib.ExitStack) -> Continuation:  # the main process's job
        stack.enter_context(locked_checkpoint_dir(out))
        info = read_checkpoint(out)  # again under the lock: the record another process left
        return _continuation(out, cfg, info)

    with closed_on_error(world), main_first(world, lock_and_continue) as continuation:
        return _train(cfg, out, world=world, notes=continuation.info.get("config_notes") or [],
                      extra_reward_funcs=extra_reward_funcs, echo=echo, resume=continuation)


def resumable_config(out: str | Path, extra_reward_funcs: Sequence[Callable] = ()) -> TrainConfig:
    """The recorded config of a run that can be resumed (else a one-line error saying why not), with the
    number of processes it trained on."""
    out = Path(out)
    info = _resumable_record(out, extra_reward_funcs)
    cfg, _ = TrainConfig.from_dict(info["config"], str(out / CHECKPOINT_FILE))
    if cfg.num_processes is None:  # recorded before multi-process training: one process
        cfg.num_processes = world_size_of(info)
    # a run launched by hand with an accelerate DeepSpeed config resumes under the same ZeRO stage
    cfg.deepspeed = cfg.deepspeed or (info.get("distributed") or {}).get("deepspeed")
    return cfg


def _resumable_record(out: Path, extra_reward_funcs: Sequence[Callable]) -> dict[str, Any]:
    if not out.is_dir():
        raise RunDirError(f"{out} is not a folder: nothing to resume")
    info = read_checkpoint(out)
    if info is None:
        raise RunDirError(f"{out} holds no {CHECKPOINT_FILE}: not a training run, nothing to resume")
    if info.get("training_dir") or info.get("merged_from"):
        origin = info.get("training_dir") or info.get("merged_from")
        raise RunDirError(f"{out} is a saved step or a merged export of {origin}: resume that run instead")
    if info.get("status") == "finished":
        raise RunDirError(f"{out} finished at step {info.get('steps')}: nothing to resume")
    if info.get("status") not in RESUMABLE:
        raise RunDirError(f"{out} has status {info.get('status')!r}: only {', '.join(RESUMABLE)} runs resume")
    names = [getattr(f, "__name__", repr(f)) for f in extra_reward_funcs]
    if names != list(info.get("extra_rewards") or []):
        raise ConfigError(f"{out} was trained with the extra rewards {info.get('extra_rewards') or 'none'}; "
                          f"resume it with the same ones (given: {names or 'none'}); the command line has none, "
                          f"so such a run resumes through trainers.resume.resume(..., extra_reward_funcs=...)")
    return info


def _continuation(out: Path, cfg: TrainConfig, info: dict[str, Any]) -> Continuation:
    states = saved_states(out, cfg.world_size(), cfg.deepspeed)  # both as resumable_config set them
    if not states:
        raise RunDirError(f"{out} holds no saved trainer state (trainer/{STATE_PREFIX}N): it stopped before its "
                          f"first save (resume_every {cfg.resume_every}); the adapter there, if any, still "
                          f"evaluates, but training starts over")
    step, state_dir = states[-1]
    period = cfg.generation_period()
    rows = read_train_log(out) or []
    wall_s = max((r.get("wall_s") or 0.0 for r in rows if r.get("step") == step), default=0.0)
    dropped = truncate_train_log(out, step)
    for kind in ("steps", "evals"):  # what the stopped run saved or evaluated past `step` is redone
        for folder in (out / kind).glob("step-*"):
            if folder.name.removeprefix("step-").isdigit() and int(folder.name.removeprefix("step-")) > step:
                shutil.rmtree(folder)
    entry = {"from_step": step, "at": datetime.now(UTC).isoformat(timespec="seconds"),
             "trainer_state": str(state_dir.relative_to(out)), "dropped_log_rows": dropped,
             "exact": step % period == 0, "after": info.get("status")}
    info = {k: v for k, v in info.items() if k not in ("error", "interrupted")}
    info.update(status="training", finished=None, steps=step,
                evals=[e for e in info.get("evals") or [] if e.get("step", 0) <= step],
                resumes=[*(info.get("resumes") or []), entry])
    return Continuation(state_dir, step, entry["exact"], wall_s, info)
