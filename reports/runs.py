"""Runs as reports see them: read from run directories only (manifest, records, metrics, training logs).

    from reports.runs import load_runs, comparability
    base, cand = load_runs(["runs/base", "runs/candidate"])
    print(base.label, base.suites(), comparability([base, cand]))
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import RunDirError
from harness.checkpoints import read_checkpoint, read_train_log
from harness.metrics import compute_metrics
from harness.run_state import RunState, run_state
from harness.runstore import RunDir, first_of_each_key

# Record keys a report cannot do without (the others are optional for display).
REQUIRED_RECORD_KEYS = ("suite", "sample_id", "attempt", "correct")


@dataclass
class Run:
    path: Path
    manifest: dict[str, Any]
    metrics: dict[str, Any]
    records: list[dict[str, Any]]
    label: str
    checkpoint: dict[str, Any] | None = None
    train_log: list[dict[str, Any]] | None = None
    periodic_evals: list[dict[str, Any]] | None = None
    state: RunState | None = None  # finished, or running / unfinished / duplicated / error, with one line
    # records grouped by suite, rebuilt when the records list is replaced or grows
    _by_suite: tuple[tuple[int, int], dict[str, list[dict[str, Any]]]] | None = field(
        default=None, repr=False, compare=False)

    def suites(self) -> list[str]:
        """Suite names in the manifest's order (the order the run evaluated them)."""
        names = [s["name"] for s in self.manifest.get("suites", [])]
        return names or sorted({r["suite"] for r in self.records})

    def suite_entry(self, suite: str) -> dict[str, Any] | None:
        """The manifest's entry for a suite (split, variant, content_sha256, ...), or None."""
        return next((s for s in self.manifest.get("suites", []) if s.get("name") == suite), None)

    def records_of(self, suite: str) -> list[dict[str, Any]]:
        signature = (id(self.records), len(self.records))
        if self._by_suite is None or self._by_suite[0] != signature:
            grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for r in self.records:
                grouped[r["suite"]].append(r)
            self._by_suite = (signature, dict(grouped))
        return self._by_suite[1].get(suite, [])

    def item_correct(self, suite: str) -> dict[str, float]:
        """sample_id -> mean correctness over attempts (0.0 or 1.0 with one attempt)."""
        sums: dict[str, list[float]] = defaultdict(list)
        for r in self.records_of(suite):
            sums[str(r["sample_id"])].append(1.0 if r["correct"] else 0.0)
        return {sid: sum(v) / len(v) for sid, v in sums.items()}


def _label(manifest: dict[str, Any], path: Path) -> str:
    model = manifest.get("model") or {}
    ckpt = manifest.get("checkpoint")
    short = Path(str(model.get("id") or "model").rstrip("/")).name
    if ckpt:
        base = Path(str(ckpt.get("base_model") or short).rstrip("/")).name
        algo = ckpt.get("algo") or "ckpt"
        step = ckpt.get("step")
        return f"{base} {algo}" + (f" step {step}" if step is not None else "")
    if model.get("adapter"):
        return f"{short}+{Path(str(model['adapter']).rstrip('/')).name}"
    if manifest.get("imported"):
        return f"{short} ({manifest['imported'].get('tool')})"
    return str(manifest.get("run_id") or path.name)


def origin(run: Run, suite: str) -> str:
    """Whose prompts a suite's responses answer: "harness prompt format X", or the tool and task an imported
    run came from ("lmms-eval task mathvista_testmini_cot")."""
    imported = run.manifest.get("imported")
    if not imported:
        return f"harness prompt format {run.manifest.get('prompt_format')}"
    tasks = [name for name, task in (imported.get("tasks") or {}).items() if task.get("suite") == suite]
    return f"{imported.get('tool')} task {', '.join(tasks) or 'unknown'}"


def _checkpoint_dir(ckpt: dict[str, Any], run_path: Path) -> Path | None:
    if not ckpt.get("dir"):
        return None
    raw = Path(str(ckpt["dir"]))
    for candidate in ([raw] if raw.is_absolute() else [raw, run_path / raw]):
        if candidate.is_dir():
            return candidate
    return None  # moved machine or deleted: reports show a note instead of curves


def _training_files(ckpt: dict[str, Any] | None, run_path: Path):
    if not ckpt:
        return None, None
    folder = _checkpoint_dir(ckpt, run_path)
    if folder is None:
        return None, None
    train_log = read_train_log(folder)
    evals = None
    info = read_checkpoint(folder)
    if info is not None:
        evals = []
        for entry in info.get("evals") or []:
            run_dir = entry.get("run_dir")
            resolved = str(folder / run_dir) if run_dir else None
            evals.append({**entry, "path": resolved})
    return train_log, evals


def load_run(path: str | Path) -> Run:
    """Read one run directory; its metrics are recomputed from the records when the file is missing.

    Raises RunDirError with one line when the directory, manifest or records are missing or invalid.

        run = load_run("runs/20250101-000000-tiny-ab12")
        run.item_correct("synth_arith")  # {"synth_arith-00000": 1.0, ...}
    """
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"run directory not found: {path}")
    store = RunDir(path)
    manifest = store.read_manifest()  # checks the schema version and the shape
    if not store.has_records():
        raise RunDirError(f"{path}: {store.records_path.name} not found: not a run directory")
    records = store.read_records()
    for i, r in enumerate(records, 1):
        missing = [k for k in REQUIRED_RECORD_KEYS if k not in r]
        if missing:
            raise RunDirError(f"{store.records_path}:{i} lacks {', '.join(missing)}")
    state = run_state(path, manifest, records)
    if state.finished and store.has_metrics():
        metrics = store.read_metrics()
    else:  # missing, or partial numbers of an unfinished run: recomputed from the records present
        from harness.runner import suite_specs  # the suite registry: only needed to recompute

        metrics = compute_metrics(records, manifest, suite_specs(manifest))
    ckpt = manifest.get("checkpoint") or None
    train_log, evals = _training_files(ckpt, path)
    return Run(path=path, manifest=manifest, metrics=metrics, records=first_of_each_key(records),
               label=_label(manifest, path), checkpoint=ckpt, train_log=train_log, periodic_evals=evals,
               state=state)


def load_runs(paths) -> list[Run]:
    """load_run on each path; labels made unique with a #2, #3 suffix where two runs would share one."""
    runs = [load_run(p) for p in paths]
    seen: dict[str, int] = {}
    for run in runs:
        count = seen.get(run.label, 0) + 1
        seen[run.label] = count
        if count > 1:
            run.label = f"{run.label} #{count}"
    return runs


def _generation_differences(base: dict[str, Any], other: dict[str, Any]) -> list[str]:
    keys = sorted(set(base) | set(other))
    greedy = base.get("temperature") == 0 and other.get("temperature") == 0
    return [f"{k} {base.get(k)!r} vs {other.get(k)!r}" for k in keys
            if base.get(k) != other.get(k) and not (k == "seed" and greedy)]  # greedy ignores the seed


def differences(runs: list[Run], suites: list[str] | None = None) -> list[tuple[str, str]]:
    """(kind, message) per difference vs runs[0]; kind is one of state (a run that is not finished:
    running, unfinished, duplicated or error), suite_missing, content, split, variant, prompt_format,
    origin (responses to another tool's prompts: an imported run), scoring, generation, overlap. suites: the
    suites to check (default: every suite of any run)."""
    if not runs:
        return []
    base = runs[0]
    wanted = suites if suites is not None else list(dict.fromkeys(s for r in runs for s in r.suites()))
    out: list[tuple[str, str]] = [("state", f"{run.label}: {run.state.line}") for run in runs
                                  if run.state is not None and not run.state.finished]
    for run in runs:
        for suite in wanted:
            if suite not in run.suites():
                out.append(("suite_missing", f"{run.label} has no suite {suite}"))
    for run in runs[1:]:
        for suite in wanted:
            a, b = base.suite_entry(suite), run.suite_entry(suite)
            if a is None or b is None:
                continue
            if a.get("content_sha256") != b.get("content_sha256"):
                sha_a, sha_b = str(a.get("content_sha256"))[:12], str(b.get("content_sha256"))[:12]
                message = (f"{suite}: items differ between {base.label} and {run.label} "
                           f"(content_sha256 {sha_a} vs {sha_b})")
                out.append(("content", message))
            for key in ("split", "variant"):
                if a.get(key) != b.get(key):
                    out.append((key, f"{suite}: {key} {a.get(key)!r} in {base.label}, {b.get(key)!r} in {run.label}"))
        fmt_a, fmt_b = base.manifest.get("prompt_format"), run.manifest.get("prompt_format")
        if fmt_a != fmt_b:
            out.append(("prompt_format", f"prompt format {fmt_a!r} in {base.label}, {fmt_b!r} in {run.label}"))
        for suite in wanted:
            imported = base.manifest.get("imported") or run.manifest.get("imported")
            if imported and origin(base, suite) != origin(run, suite):
                message = (f"{suite}: prompts differ: {origin(base, suite)} in {base.label}, {origin(run, suite)} "
                           f"in {run.label}")
                out.append(("origin", message))
        scoring_a, scoring_b = base.manifest.get("scoring", "strict"), run.manifest.get("scoring", "strict")
        if scoring_a != scoring_b:
            out.append(("scoring", (f"scoring {scoring_a!r} in {base.label}, {scoring_b!r} in {run.label} (harness "
                                   f"rescore RUN --scoring {scoring_a} makes them comparable)")))
        gen = _generation_differences(base.manifest.get("generation") or {}, run.manifest.get("generation") or {})
        if gen:
            out.append(("generation", f"generation differs between {base.label} and {run.label}: {', '.join(gen)}"))
    for run in runs:
        overlap = (run.checkpoint or {}).get("overlap") or {}
        for suite, ids in sorted((overlap.get("suites") or {}).items()):
            if suite in wanted and ids:
                out.append(("overlap", f"{run.label}: {len(ids)} item(s) of {suite} were in its training data"))
    return out


def comparability(runs: list[Run], suites: list[str] | None = None) -> list[str]:
    """Human-readable differences vs runs[0] that make a comparison doubtful; empty = comparable.

        notes = comparability(load_runs(["runs/a", "runs/b"]))
        # e.g. ["synth_arith: split 'test' in a, 'train' in b"]
    """
    return [message for _, message in differences(runs, suites)]
