"""Is a run finished, and if not, what is it? One word and one line for `show`, `report` and `gate`.

Read from the files only: the manifest's status and error, the records' completeness (metrics.py) and
whether a live process holds the directory's lock.

    state = run_state(Path("runs/r1"), manifest, records)
    state.kind   # "finished", "running", "unfinished", "duplicated" or "error"
    state.line   # "" when finished, else e.g. "unfinished: 36 of 120 records present and no process is
                 #  writing it; finish it with harness eval --out runs/r1 --resume"
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.dirlock import lock_holder
from harness.metrics import completeness

KINDS = ("finished", "running", "unfinished", "duplicated", "error")


@dataclass(frozen=True)
class RunState:
    kind: str
    line: str  # one line saying what is wrong; "" for a finished run
    completeness: dict[str, Any]
    holder: dict[str, Any] | None = None  # the live process writing the run, if any

    @property
    def finished(self) -> bool:
        return self.kind == "finished"


def run_state(path: str | Path, manifest: dict[str, Any], records: list[dict[str, Any]]) -> RunState:
    path = Path(path)
    state = completeness(records, manifest)
    holder = lock_holder(path)
    present, expected = state["records_present"], state["records_expected"]
    counts = f"{present} of {expected} records present"
    resume = f"harness eval --out {path} --resume"
    status = manifest.get("status")
    if holder is not None:
        return RunState("running", f"running: pid {holder.get('pid')} on host {holder.get('host')} is writing it; "
                        f"{present} of {expected} records so far", state, holder)
    if status == "error":
        error = manifest.get("error") or {}
        line = f"error: the run stopped with {error.get('type', 'an error')}: {error.get('message', '')}".rstrip(": ")
        if not state["complete"]:
            line += f"; {counts}; finish it with {resume}"
        return RunState("error", line, state)
    if state["duplicated"]:
        return RunState("duplicated", f"duplicated: {state['duplicated']} records repeat a (suite, sample_id, "
                        f"attempt) already present; the numbers count the first of each; repair it with {resume}",
                        state)
    if not state["complete"] or status != "finished":
        return RunState("unfinished", f"unfinished: {counts} and no process is writing it (status {status}); "
                        f"finish it with {resume}", state)
    return RunState("finished", "", state)


def read_run(path: str | Path) -> tuple[dict[str, Any], dict[str, Any], RunState]:
    """Manifest, metrics and state of a run directory. The metrics are the stored file's for a finished run,
    else computed from the records present (partial numbers; their `completeness` says so)."""
    from harness.metrics import compute_metrics
    from harness.run_lifecycle import suite_specs  # the suite registry, only needed here
    from harness.runstore import RunDir

    run = RunDir(path)
    manifest = run.read_manifest()
    records = run.read_records()
    state = run_state(run.path, manifest, records)
    if state.finished and run.has_metrics():
        return manifest, run.read_metrics(), state
    return manifest, compute_metrics(records, manifest, suite_specs(manifest)), state
