"""The sweep directory of `harness sweep`: sweep.json and one ordinary run directory per evaluated step.
The only module that knows the file's name and shape; trainers/sweep.py writes it, reports read it.

```
<sweep>/
  sweep.json              SweepInfo: the checkpoint directory, the evaluation settings, every step's runs
  subset/step-000040/     run directory: the step on the first --limit items (with --limit)
  full/step-000040/       run directory: the step on the whole suites (every step, or the --top best)
```

    info = read_sweep("checkpoints/gspo-1/sweeps/mathvista_testmini")   # None when there is no sweep.json
    for entry in info["steps"]:
        print(entry["step"], run_path(folder, entry, "subset"), run_path(folder, entry, "full"))

The runs are the records (their metrics, manifests and records are read from them, never copied here);
sweep.json says which runs belong to which step and stage, and which steps the subset ranked best.
"""

# No `from __future__ import annotations`: on Python 3.11 it hides NotRequired from TypedDict.
from pathlib import Path
from typing import Any, Literal, TypedDict

from harness.jsonfile import read_versioned_json, write_json_atomic

SWEEP_FILE = "sweep.json"
SWEEP_SCHEMA_VERSION = 1
KIND = "vlm-math-harness sweep"
STAGES = ("subset", "full")


class SweepStep(TypedDict):
    step: int
    model_dir: str  # the saved adapter evaluated (absolute)
    final: bool  # the training directory's own adapter (finished or interrupted), not an intermediate save
    subset: str | None  # its subset run directory, relative to the sweep directory (None: no subset stage)
    full: str | None  # its full run directory, relative (None: not among the best, or not run yet)
    subset_score: float | None  # mean subset accuracy over the suites (what --top ranks by)


class SweepInfo(TypedDict):
    schema_version: int
    kind: str
    status: Literal["running", "finished", "error"]
    created: str
    finished: str | None
    checkpoint_dir: str  # the training run swept (absolute)
    eval: dict[str, Any]  # the settings every run shares (suites, split, limit, max_new_tokens, ...)
    every: int | None  # only steps that are multiples of this (and the final one)
    limit: int | None  # the subset stage's items per suite; None: no subset stage
    top: int  # steps the full stage evaluates after a subset stage
    ranked: list[int]  # steps by subset score, best first (empty without a subset stage)
    steps: list[SweepStep]
    error: str | None


def sweep_path(folder: str | Path) -> Path:
    return Path(folder) / SWEEP_FILE


def is_sweep_dir(folder: str | Path | None) -> bool:
    return bool(folder) and sweep_path(folder).is_file()


def read_sweep(folder: str | Path) -> SweepInfo | None:
    """The sweep record, its schema version checked; None when the folder holds none."""
    path = sweep_path(folder)
    if not path.is_file():
        return None
    return read_versioned_json(path, SWEEP_SCHEMA_VERSION, "sweep")


def write_sweep(folder: str | Path, info: SweepInfo | dict[str, Any]) -> None:
    write_json_atomic(sweep_path(folder), {**info, "schema_version": SWEEP_SCHEMA_VERSION, "kind": KIND})


def stage_run_dir(folder: str | Path, stage: str, step: int) -> Path:
    """Where a step's run of a stage lives."""
    return Path(folder) / stage / f"step-{step:06d}"


def run_path(folder: str | Path, entry: SweepStep, stage: str) -> Path | None:
    """The run directory of a step's stage, or None when the sweep has none."""
    relative = entry.get(stage)
    return Path(folder) / relative if relative else None


def sweep_of_run(run_dir: str | Path) -> Path | None:
    """The sweep directory a run directory belongs to (<sweep>/<stage>/step-N), or None."""
    run_dir = Path(run_dir).resolve()
    folder = run_dir.parent.parent
    if run_dir.parent.name not in STAGES or not is_sweep_dir(folder):
        return None
    return folder
