"""Opening and closing a run directory around the evaluation loop (harness/runner.py calls these).

- `claimed_run_dir` checks the output location, creates it and locks it before any model loads, and
  removes what it created if the run never wrote its manifest (a bad model leaves no run).
- `repair` is what a resume does first: cut a torn last line, drop repeated records (the first of each
  key is kept), and say so.
- `finalize` recomputes the metrics file and closes the manifest: `finished`, or `error` when more than half
  of a suite's items failed (missing images, undecodable files), with a one-line summary.

    with claimed_run_dir(Path("runs/r1"), resume=False) as run:
        ...  # run.path exists, is writable and locked by this process
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import HarnessError, ItemsFailedError, RunDirError, storage_error
from harness import metrics as metrics_mod
from harness.dirlock import LOCK_FILE, DirLock
from harness.runstore import RunDir
from suites import get_suite

# A suite with more failed items than this share ends the run with status error and a non-zero exit.
MAX_FAILED_SHARE = 0.5


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _make_dirs(path: Path) -> list[Path]:
    """mkdir -p that returns the folders it created, outermost first."""
    created = []
    for folder in [*reversed(path.parents), path]:
        if not folder.exists():
            folder.mkdir()
            created.append(folder)
    return created


def _check_out(out: Path, resume: bool) -> None:
    if resume:
        if not RunDir(out).exists():
            raise RunDirError(f"--resume needs --out pointing at an existing run directory (got {out})")
        return
    if out.exists() and not out.is_dir():
        raise RunDirError(f"{out} is a file, not a run directory; choose another --out")
    if RunDir(out).exists():
        raise RunDirError(f"{out} already holds a run; pass --resume to finish it, or choose another --out")
    if out.is_dir():
        others = sorted(p.name for p in out.iterdir() if p.name != LOCK_FILE)
        if others:
            shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
            raise RunDirError(f"{out} is not empty and holds no run ({shown}); choose a new or empty --out")


@contextmanager
def claimed_run_dir(out: Path, resume: bool, echo: Callable[[str], None] | None = None) -> Iterator[RunDir]:
    """The run directory, checked, created and locked for the duration of the block."""
    _check_out(out, resume)
    try:
        created = _make_dirs(out)
    except OSError as exc:
        raise storage_error(exc, "create the run directory", out) from exc
    lock = DirLock(out, "run directory")
    try:
        lock.acquire()  # writes the lock file: a read-only location fails here, before any model loads
        if lock.stale_holder and echo:
            echo(f"note: took over the lock of pid {lock.stale_holder.get('pid')}, which stopped without "
                 "releasing it")
        _check_out(out, resume)  # again under the lock: another process may have started a run here
        yield RunDir(out)
    finally:
        lock.release()
        if created and not RunDir(out).exists():  # never started: leave nothing behind
            for folder in reversed(created):
                _rmdir_if_empty(folder)


def _rmdir_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def repair(run: RunDir, manifest: dict[str, Any], echo: Callable[[str], None] | None = None) -> dict[str, int]:
    """Cut a torn last line, drop repeated records, and drop the records of failed requests (to be sent
    again); noted in the manifest's `repairs` when any."""
    done = {"torn_bytes": run.repair_tail(), "duplicates_dropped": run.drop_duplicates(),
            "failed_requests_resent": run.drop_failed_requests()}
    if done["duplicates_dropped"] and echo:
        echo(f"repaired {run.path}: dropped {done['duplicates_dropped']} repeated record(s), kept the first of "
             "each (suite, sample_id, attempt)")
    if done["failed_requests_resent"] and echo:
        echo(f"{run.path}: sending the {done['failed_requests_resent']} request(s) that failed again")
    if any(done.values()):
        manifest.setdefault("repairs", []).append({"time": now(), **done})
    return done


def suite_specs(manifest: dict[str, Any]) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    out = {}
    for entry in manifest.get("suites", []):
        try:
            suite = get_suite(entry["name"])
        except HarnessError:
            continue
        out[entry["name"]] = (suite.breakdowns, suite.multi_label)
    return out


def incomplete_message(path: Path, state: dict[str, Any]) -> str:
    """Why a run's records are not (yet) a finished run, in one line."""
    parts = [f"{state['records_present']} of {state['records_expected']} records present"]
    if state["duplicated"]:
        parts.append(f"{state['duplicated']} duplicated")
    return f"{path}: {', '.join(parts)}"


def failure_summary(records: list[dict[str, Any]], state: dict[str, Any], path: Path | None = None) -> str | None:
    """A one-line summary when more than MAX_FAILED_SHARE of some suite's items failed, else None."""
    bad = [name for name, s in state["suites"].items()
           if s["items_expected"] and s["errored"] > MAX_FAILED_SHARE * s["items_expected"]]
    if not bad:
        return None
    counts = ", ".join(f"{state['suites'][n]['errored']} of {state['suites'][n]['items_expected']} items of {n}"
                       for n in bad)
    first = next(r for r in records if r["suite"] in bad and r.get("error") is not None)
    resend = (f"; harness eval --out {path or 'RUN'} --resume sends the failed requests again"
              if any(r.get("request_failed") for r in records) else "")
    return (f"{counts} failed and were scored wrong; first: {first['suite']} {first['sample_id']}: "
            f"{first['error']} (every record's error field says why){resend}")


def finalize(run: RunDir, manifest: dict[str, Any]) -> dict[str, Any]:
    """Recompute metrics from the records and close the manifest (status finished, or error when most
    items of a suite failed: then ItemsFailedError is raised after both files are written)."""
    records = run.read_records()
    metrics = metrics_mod.compute_metrics(records, manifest, suite_specs(manifest))
    state = metrics["completeness"]
    if not state["complete"]:
        if state["records_present"] == state["records_expected"] and not state["duplicated"]:
            raise RunDirError(f"{run.records_path}: holds records of items or attempts this run does not "
                              "have; it was edited or mixed with another run")
        raise RunDirError(incomplete_message(run.path, state) + "; resume the run to finish it")
    run.write_metrics(metrics)
    failed = failure_summary(records, state, run.path)
    manifest["status"] = "error" if failed else "finished"
    manifest["finished"] = now()
    manifest["error"] = {"type": "ItemsFailedError", "message": failed, "traceback": None} if failed else None
    run.write_manifest(manifest)
    if failed:
        raise ItemsFailedError(f"{run.path}: {failed}")
    return metrics
