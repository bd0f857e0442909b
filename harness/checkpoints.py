"""The checkpoint directory's record files: checkpoint.json and the training log. The only module that
knows their names and shapes; the trainer writes, and evaluation, reports and benches read, through it.

```
<out>/
  adapter_config.json, adapter_model.safetensors, processor and tokenizer files
  checkpoint.json          CheckpointInfo: base model, algo, engine, full config, GRPOConfig values, reward
                           weights and mode, data hash and size, held-out ids, steps, git commit,
                           world size and global batch, effectively_on_policy, overlap, LoRA check,
                           periodic evals
  train_log.jsonl          TrainLogRow per line: TRL's log history, one line per logged step
  train_fingerprints.json  ids and image/text hashes of the training items (harness/contamination.py)
  steps/step-000010/       intermediate adapters (periodic evaluation, save_steps)
  evals/step-000010/       ordinary run directories of the periodic evaluations
```

    info = read_checkpoint("checkpoints/gspo-1")   # None when the folder holds no checkpoint record
    rows = read_train_log("checkpoints/gspo-1")     # None when there is no log
    for saved in saved_steps("checkpoints/gspo-1"): # every evaluable adapter: steps/step-N, then the final one
        print(saved.step, saved.path)

checkpoint.json carries the schema version of the directory (the training log included); reading one
of another version is a one-line SchemaVersionError. With several training processes only the main one
writes any of these files.

While training writes a checkpoint directory it holds the directory's lock (`.lock`, harness/dirlock.py):

    with claimed_checkpoint_dir(Path("checkpoints/gspo-1"), force=False) as out:
        ...  # new or empty (emptied first with force), and no other trainer can write here meanwhile
    with locked_checkpoint_dir(Path("checkpoints/gspo-1")):
        ...  # an existing checkpoint directory, kept as it is (a resume), and locked
"""

# No `from __future__ import annotations`: on Python 3.11 it hides NotRequired from TypedDict.
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NotRequired, TypedDict

from core.errors import storage_error
from harness.dirlock import DirLock
from harness.jsonfile import (
    check_schema_version,
    json_object_line,
    read_json,
    write_json_atomic,
    write_text_atomic,
)
from harness.outdirs import claimed_output_dir

CHECKPOINT_FILE = "checkpoint.json"
STEPS_DIR = "steps"
CHECKPOINT_SCHEMA_VERSION = 1
TRAIN_LOG_FILE = "train_log.jsonl"
KIND = "vlm-math-harness checkpoint"


class BaseModelRef(TypedDict):
    id: str  # a local directory or a Hub id
    revision: str | None


class HeldOut(TypedDict):
    n: int
    seed: int
    ids: dict[str, list[str]]  # suite -> sample ids held out of training


class TrainData(TypedDict):
    sources: list[dict[str, Any]]  # per suite or dataset file: where the items came from, rows skipped
    n_items: int
    sha256: str  # over the items' content hashes
    held_out: HeldOut
    kinds: NotRequired[dict[str, int]]  # {image, text}: items with a picture, items without
    # with mixing weights, per suite: weight, share, available, used, repeated; null without
    mix: NotRequired[dict[str, Any] | None]


class LoraCheck(TypedDict):
    n_modules: int
    n_parameters: int
    all_nonzero: bool  # every LoRA A and B matrix non-zero: each module received a gradient
    zero_a: list[str]
    zero_b: list[str]
    n_zero_b: int
    n_trainable: NotRequired[int]
    unchanged: NotRequired[list[str]]  # trainable tensors still equal to their initial value
    trainable_outside_lora: NotRequired[list[str]]


class EvalSummary(TypedDict):
    accuracy: float | None
    format_compliance: float | None


class PeriodicEval(TypedDict):
    step: int
    run_dir: str  # relative to the checkpoint directory
    suites: dict[str, EvalSummary]


class Interruption(TypedDict):
    signal: str  # SIGTERM or SIGINT
    step: int  # optimizer steps finished; the saved adapter is theirs
    max_steps: int
    forced: bool  # a second signal stopped an update or save under way: the last step may be partial
    trainer_state: str | None  # TRL's checkpoint-N folder (optimizer, scheduler, RNG) that --resume reads


class Resume(TypedDict):
    from_step: int  # the step whose saved trainer state training continued from
    at: str  # when
    trainer_state: str  # the state folder, relative to the checkpoint directory
    dropped_log_rows: int  # training-log lines past from_step (written before the stop), removed
    exact: bool  # saved at a generation-batch boundary: the continuation is the uninterrupted run's
    after: str  # the status it resumed from: training (the process was killed or crashed), interrupted, error


class Distributed(TypedDict):
    world_size: int  # training processes (data parallel, one per GPU); 1 without a launcher
    global_batch_size: int  # completions per optimizer step: per device x world_size x gradient accumulation
    generation_batch_size: int  # completions per generation batch, over every process
    backend: str | None  # the process group's (nccl, gloo); None with one process
    deepspeed: str | None  # zero2 or zero3 (DeepSpeed ZeRO), else None


class CheckpointInfo(TypedDict):
    schema_version: int
    kind: str
    status: Literal["training", "intermediate", "finished", "interrupted", "error"]
    created: str
    finished: str | None
    algo: str  # gspo or grpo
    engine: str  # unsloth or trl
    device: str
    base_model: BaseModelRef
    config: dict[str, Any]  # every TrainConfig field
    config_notes: list[str]
    grpo_config: dict[str, Any]  # the values given to GRPOConfig
    reward_weights: dict[str, float]
    # how correctness was rewarded (core.formats.REWARD_MODES); absent in checkpoints written before
    # the modes existed, which used the recipe's rule
    reward_mode: NotRequired[Literal["suite", "recipe"]]
    extra_rewards: list[str]
    train_data: TrainData
    # how many processes trained and on how big a batch; absent in checkpoints older than multi-process
    # training, which trained on one (world_size_of reads both)
    distributed: NotRequired[Distributed]
    effectively_on_policy: bool
    overlap: dict[str, Any] | None  # {n, suites: {suite: [sample ids]}}: trained-on evaluation items
    steps: int
    harness: dict[str, Any]  # {commit, dirty}
    packages: dict[str, str | None]
    hardware: dict[str, Any]
    lora: LoraCheck | None
    evals: list[PeriodicEval]
    train_metrics: dict[str, Any] | None  # TRL's train() metrics plus wall_s and nvml_peak_used_mib (None on CPU)
    error: NotRequired[str]  # why training stopped (status error)
    interrupted: NotRequired[Interruption]  # status interrupted: the signal, and what was saved
    resumes: NotRequired[list[Resume]]  # every `harness train --resume` of this run, in order
    training_dir: NotRequired[str]  # an intermediate step's: the training run it belongs to
    merged_from: NotRequired[str]  # a merged export's: the adapter it was merged from
    merged_dtype: NotRequired[str]


# One line of the training log. TRL names its keys with slashes, hence the functional form; TRL logs
# more than these (every key it logs is kept), these are the ones the harness reads or adds.
TrainLogRow = TypedDict("TrainLogRow", {
    "step": int,
    "wall_s": float,  # since training started
    "peak_gpu_memory_mib": float | None,  # None on CPU
    "reward": float,
    "reward_std": float,
    "rewards/format_reward/mean": float,
    "rewards/correctness_reward/mean": float,
    "completions/mean_length": float,
    "completions/clipped_ratio": float,
    "clip_ratio/region_mean": float,
    # the `trl` engine's importance ratios (trainers/ratios.py): GSPO's per-sequence, GRPO's per-token
    "importance_ratio/sequence_mean": float,
    "importance_ratio/sequence_min": float,
    "importance_ratio/sequence_max": float,
    "importance_ratio/token_min": float,
    "importance_ratio/token_max": float,
    "kl": float,  # logged when beta > 0
    "entropy": float,
    "grad_norm": float,
    "learning_rate": float,
    "step_time": float,
    # a step that generated a batch (trainers/rollouts.py), over every process: generation time (the
    # slowest process's), completions and their tokens, tokens per second
    "rollout/seconds": float,
    "rollout/completions": float,
    "rollout/completion_tokens": float,
    "rollout/tokens_per_s": float,
}, total=False)


def claimed_checkpoint_dir(out: Path, force: bool = False):
    """The checkpoint directory to train into, checked before any work (a folder holding something is
    refused unless force) and locked until the block ends (a second trainer gets a LockError)."""
    return claimed_output_dir(Path(out), "checkpoint directory", force)


@contextmanager
def locked_checkpoint_dir(out: Path) -> Iterator[Path]:
    """An existing checkpoint directory, locked until the block ends and left as it is (a resume)."""
    with DirLock(Path(out), "checkpoint directory"):
        yield Path(out)


def step_dir(folder: str | Path, step: int) -> Path:
    """Where training saves the adapter of an intermediate step."""
    return Path(folder) / STEPS_DIR / f"step-{step:06d}"


@dataclass(frozen=True)
class SavedStep:
    step: int
    path: Path  # a checkpoint directory holding that step's adapter (`harness eval --model PATH`)
    final: bool  # the training directory itself: its finished or interrupted adapter


def saved_steps(folder: str | Path) -> list[SavedStep]:
    """Every adapter a training run has saved so far, by step: the intermediate saves (steps/step-N,
    each written before its record) and, once training finished or was interrupted, the directory's own.
    A run still training (or one that failed) contributes its intermediate saves only."""
    folder = Path(folder)
    found: dict[int, SavedStep] = {}
    for path in sorted((folder / STEPS_DIR).glob("step-*")):
        info = read_checkpoint(path) if path.is_dir() else None
        if info is not None and isinstance(info.get("steps"), int):
            found[info["steps"]] = SavedStep(info["steps"], path, final=False)
    info = read_checkpoint(folder)
    if info is not None and info.get("status") in ("finished", "interrupted") and isinstance(info.get("steps"), int):
        found[info["steps"]] = SavedStep(info["steps"], folder, final=True)
    return [found[step] for step in sorted(found)]


def is_checkpoint_dir(folder: str | Path | None) -> bool:
    """Whether the folder holds a checkpoint record (a trained, intermediate or merged checkpoint)."""
    return bool(folder) and (Path(folder) / CHECKPOINT_FILE).is_file()


def world_size_of(info: CheckpointInfo | dict[str, Any]) -> int:
    """How many processes trained the checkpoint (1 for a record older than multi-process training)."""
    return int((info.get("distributed") or {}).get("world_size") or 1)


def read_checkpoint(folder: str | Path) -> CheckpointInfo | None:
    """The checkpoint record, its schema version checked; None when the folder holds none."""
    path = Path(folder) / CHECKPOINT_FILE
    if not path.is_file():
        return None
    info = read_json(path, "checkpoint")
    check_schema_version(info, path, CHECKPOINT_SCHEMA_VERSION, "checkpoint")
    return info


def write_checkpoint(folder: str | Path, info: dict[str, Any]) -> None:
    """Write (atomically) the record; its schema version is this harness's, whatever `info` held."""
    write_json_atomic(Path(folder) / CHECKPOINT_FILE, {**info, "schema_version": CHECKPOINT_SCHEMA_VERSION})


def append_train_log(folder: str | Path, row: TrainLogRow | dict[str, Any]) -> None:
    path = Path(folder) / TRAIN_LOG_FILE
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
    except OSError as exc:
        raise storage_error(exc, "write", path) from exc


def truncate_train_log(folder: str | Path, last_step: int) -> int:
    """Drop the log lines of steps after last_step (a resume continues from it); returns how many. The
    file is replaced whole, so a kill meanwhile leaves the old log or the new one."""
    rows = read_train_log(folder)
    if rows is None:
        return 0
    kept = [row for row in rows if not isinstance(row.get("step"), int) or row["step"] <= last_step]
    if len(kept) < len(rows):
        write_text_atomic(Path(folder) / TRAIN_LOG_FILE, "".join(json.dumps(row) + "\n" for row in kept))
    return len(rows) - len(kept)


def read_train_log(folder: str | Path) -> list[TrainLogRow] | None:
    """Every logged step, in order; None when the folder has no training log. The log's schema is the
    checkpoint record's: a folder whose checkpoint.json has another version is refused."""
    path = Path(folder) / TRAIN_LOG_FILE
    if not path.is_file():
        return None
    read_checkpoint(folder)  # checks the directory's schema version, when there is a record
    rows: list[TrainLogRow] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise storage_error(exc, "read", path) from exc
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        rows.append(json_object_line(line, f"{path}:{lineno}", "a log entry"))
    return rows
