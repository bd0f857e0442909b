"""Data-parallel training on several processes (one per GPU) started by `accelerate launch`: which
process this is, the process group, and the work that only the main process does.

Every process trains on its share of each generation batch and DDP averages the gradients, so all hold
the same weights. The main process (rank 0) alone claims and locks the checkpoint directory and writes
into it: the checkpoint record, the training log, adapters, evaluations. The others learn the outcome of its
claim (or its error) through the process group, so a refused directory stops every process with the
same one-line error instead of leaving them waiting.

    world = join(cfg)                  # cfg.num_processes resolved; the process group started when > 1
    with closed_on_error(world), main_first(world, claim) as out:   # claim(stack) runs on the main
        ...                                      # process, all get its result; a user error stops the group
    if world.main: ...                 # rank 0 writes
    with full_trainable_params(trainer): ...   # ZeRO-3: the LoRA weights gathered on every process

Started by hand (`accelerate launch -m harness.cli train ...`) or by `harness train --num-processes N`
(trainers/launch.py), the processes read their rank and world size from the launcher's environment.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from core.errors import LAUNCH_ERRORS_ENV, ConfigError, HarnessError
from trainers.config import TrainConfig

T = TypeVar("T")
DEFAULT_TIMEOUT_S = 1800  # transformers' ddp_timeout: how long a process waits for the others


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    size: int = 1
    rank: int = 0
    local_rank: int = 0
    backend: str | None = None  # the process group's; None with one process

    @property
    def main(self) -> bool:
        return self.rank == 0

    def broadcast(self, value: T) -> T:
        """The main process's `value`, on every process (pickled through the process group)."""
        if self.size == 1:
            return value
        from accelerate.utils import broadcast_object_list

        box = [value]
        broadcast_object_list(box, from_process=0)
        return box[0]

    def max(self, value: int, device: Any) -> int:
        """The largest of every process's `value` (all of them must call it)."""
        if self.size == 1:
            return value
        import torch

        tensor = torch.tensor([value], dtype=torch.int64, device=device)
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
        return int(tensor.item())

    def barrier(self) -> None:
        if self.size > 1:
            import torch

            torch.distributed.barrier()


def launched_world() -> World:
    """Rank and world size as the launcher (torchrun, under accelerate launch) set them; one process otherwise."""
    size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if size <= 1:
        return World()
    return World(size=size, rank=int(os.environ.get("RANK", "0")), local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def under_launcher() -> bool:
    return launched_world().size > 1


def leave_error_to_launcher(line: str) -> bool:
    """In a process that `harness train --num-processes` started, keep its one-line error (every process
    that hits bad input hits it on its own) for the launching command, which prints each line the main
    process did not. True where this process must not print it: every one but the main process."""
    folder, world = os.environ.get(LAUNCH_ERRORS_ENV), launched_world()
    if not folder or world.size <= 1:
        return False
    with contextlib.suppress(OSError):
        (Path(folder) / f"rank-{world.rank}.txt").write_text(line + "\n", encoding="utf-8")
    return not world.main


def launch_error_lines(folder: Path) -> list[str]:
    """The error lines the processes left that the main process did not print, each once. A line is
    marked with the process that left it where the lines differ; where the main process printed nothing
    (another process failed first and the launcher stopped it) and the others agree, their line is the
    run's error and goes out unmarked."""
    main = _read_line(folder / "rank-0.txt")
    left: dict[str, str] = {}  # line -> the first process that left it
    for path in sorted(folder.glob("rank-*.txt"), key=lambda p: int(p.stem.removeprefix("rank-"))):
        line = _read_line(path)
        if line is not None and line != main:
            left.setdefault(line, path.stem.removeprefix("rank-"))
    if main is None and len(left) == 1:
        return list(left)
    return [f"{line} (process {rank})" for line, rank in left.items()]


def _read_line(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def join(cfg: TrainConfig) -> World:
    """Resolve cfg.num_processes against the launcher's world (None: as launched) and, with several
    processes, start the process group, so that the main process's claim can be shared before any
    model loads. A config asking for more processes than were started is refused in one line."""
    launched = launched_world()
    asked = cfg.num_processes
    if asked is not None and asked != launched.size:
        if launched.size == 1:
            raise ConfigError(f"num_processes {asked}: start training with `harness train --num-processes {asked}`, "
                              f"which launches the processes, or under `accelerate launch --num_processes {asked}`")
        raise ConfigError(f"num_processes {asked}, but accelerate launch started {launched.size} processes")
    cfg.num_processes = launched.size
    cfg.validate()  # the generation batch counts every process
    if launched.size == 1:
        return launched
    launched_stage = launcher_deepspeed_stage()
    if cfg.deepspeed and cfg.deepspeed != launched_stage:
        raise ConfigError(f"deepspeed {cfg.deepspeed}, but accelerate launch started these processes "
                          f"{'with ' + launched_stage if launched_stage else 'without DeepSpeed'}: use "
                          f"`harness train --num-processes {launched.size} --deepspeed {cfg.deepspeed}`, which "
                          f"writes the accelerate config")
    from accelerate import PartialState

    from harness.models import pick_device

    # transformers rebuilds this state from TrainingArguments and keeps the process group started here,
    # so it is started with the timeout TrainingArguments would give it
    timeout = timedelta(seconds=int(cfg.trl_args.get("ddp_timeout", DEFAULT_TIMEOUT_S)))
    cpu = pick_device("auto") == "cpu"
    state = PartialState(cpu=cpu, timeout=timeout)
    if cpu:
        _allow_indexed_cpu_locations()
    return World(size=state.num_processes, rank=state.process_index, local_rank=state.local_process_index,
                 backend=state.backend)


def _allow_indexed_cpu_locations() -> None:
    """A resumed run's optimizer state is loaded with map_location=args.device, which several CPU
    processes call "cpu:0" and torch's loader does not know: tensors mapped there stay on the CPU."""
    import torch.serialization

    global _INDEXED_CPU
    if not _INDEXED_CPU:
        torch.serialization.register_package(
            11, lambda obj: None, lambda obj, location: obj if re.fullmatch(r"cpu:\d+", location) else None)
        _INDEXED_CPU = True


_INDEXED_CPU = False


@contextlib.contextmanager
def closed_on_error(world: World) -> Iterator[None]:
    """Stop this process's part of the process group before a user error leaves the block: a process
    that exits with the group's threads still running is now and then aborted on the way out ("terminate
    called without an active exception"), and the launcher then reports 134 in place of the error's 2."""
    try:
        yield
    except HarnessError:
        if world.size > 1:
            import torch.distributed

            if torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()
        raise


@contextlib.contextmanager
def main_first(world: World, work: Callable[[contextlib.ExitStack], T]) -> Iterator[T]:
    """Run `work` on the main process alone (contexts it enters on the stack, such as a directory lock,
    are held until the block ends) and give every process its result, or raise its error everywhere."""
    with contextlib.ExitStack() as stack:
        result, error = None, None
        if world.main:
            try:
                result = work(stack)
            except HarnessError as exc:
                error = exc
            except Exception as exc:
                if world.size == 1:
                    raise
                world.broadcast((None, HarnessError(f"the main training process failed: {exc}")))
                raise
        result, error = world.broadcast((result, error))
        if error is not None:
            error.reported_elsewhere = not world.main
            raise error
        yield result


def launcher_deepspeed_stage() -> str | None:
    """zero2 / zero3 when an accelerate DeepSpeed config launched this process, else None."""
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
        return f"zero{os.environ.get('ACCELERATE_DEEPSPEED_ZERO_STAGE', '2')}"
    return None


def deepspeed_stage(cfg: TrainConfig) -> str | None:
    """zero2 / zero3 as configured, or as the launcher's DeepSpeed config says."""
    return cfg.deepspeed or launcher_deepspeed_stage()


def distributed_record(cfg: TrainConfig, world: World) -> dict[str, Any]:
    """The checkpoint record's `distributed` entry (harness.checkpoints.Distributed)."""
    return {"world_size": world.size, "global_batch_size": cfg.global_batch_size(),
            "generation_batch_size": cfg.generation_batch_size(), "backend": world.backend,
            "deepspeed": deepspeed_stage(cfg)}


def full_trainable_params(trainer: Any) -> contextlib.AbstractContextManager:
    """Under ZeRO-3 each process holds a shard of every weight: gather the trainable (LoRA) ones whole on
    every process for the block (every process must enter it). Elsewhere the weights are whole already."""
    plugin = getattr(getattr(trainer, "accelerator", None), "state", None)
    plugin = getattr(plugin, "deepspeed_plugin", None)
    if not getattr(trainer, "is_deepspeed_enabled", False) or getattr(plugin, "zero_stage", None) != 3:
        return contextlib.nullcontext()
    import deepspeed

    params = [p for p in trainer.model.parameters() if p.requires_grad]
    return deepspeed.zero.GatheredParameters(params, modifier_rank=None)
