"""Nothing lost, nothing misreported: duplicates repaired, no-op resumes, partial rescores, mostly-failed
runs, I/O errors (a patched writer and a real full tmpfs), wrong-shaped manifests, progress lines."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from core.errors import DataError, ItemsFailedError, RunDirError, StorageError
from harness.backends.scripted import ScriptedBackend
from harness.config import EvalConfig
from harness.metrics import compute_metrics
from harness.progress import Progress
from harness.runner import rescore, run_eval
from harness.runstore import RunDir
from suites import SUITES
from suites.base import Item
from tests.test_runner import _png, _suite, gold_answer


def cfg(tmp_path, **kw):
    return EvalConfig.from_dict({"model": "scripted", "out": str(tmp_path / "run"), "limit": 6, **kw})


def keys(run: RunDir) -> Counter:
    return Counter((r["suite"], r["sample_id"], r["attempt"]) for r in run.read_records())


def leftovers(folder: Path) -> list[str]:
    """Temporary or lock files a failed write must not leave behind."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name.endswith(".tmp")
                  or p.name == ".lock")


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text, text
    return text


def test_resume_repairs_duplicated_records(tmp_path):
    crashing = ScriptedBackend(gold_answer, fail_after_calls=2)
    with pytest.raises(RuntimeError):
        run_eval(cfg(tmp_path, batch_size=2), backend=crashing, progress=False)
    run = RunDir(tmp_path / "run")
    lines = run.records_path.read_text().splitlines(keepends=True)
    with open(run.records_path, "a") as f:  # two unlocked writers once wrote the same samples twice
        f.writelines(lines + lines[:1])
    assert sum(keys(run).values()) == 9
    notes: list[str] = []
    run_eval(cfg(tmp_path, batch_size=2), resume=True, backend=ScriptedBackend(gold_answer), progress=False,
             echo=notes.append)
    assert f"repaired {run.path}: dropped 5 repeated record(s), kept the first of each (suite, sample_id, " \
           "attempt)" in notes
    counted = keys(run)
    assert len(counted) == 12 and max(counted.values()) == 1
    assert run.read_records()[:4] == [json.loads(line) for line in lines]  # the first of each, unchanged
    manifest = run.read_manifest()
    assert manifest["status"] == "finished" and manifest["repairs"][0]["duplicates_dropped"] == 5
    state = run.read_metrics()["completeness"]
    assert state == {**state, "complete": True, "records_expected": 12, "records_present": 12, "duplicated": 0}


def test_noop_resume_of_a_finished_run_adds_no_session(tmp_path):
    run_eval(cfg(tmp_path), backend=ScriptedBackend(gold_answer), progress=False)
    run = RunDir(tmp_path / "run")
    before = {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()}
    notes: list[str] = []
    for _ in range(3):
        run_eval(cfg(tmp_path), resume=True, backend=ScriptedBackend(gold_answer), progress=False,
                 echo=notes.append)
    assert notes == [f"{run.path}: the run is already finished; nothing to do"] * 3
    assert {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()} == before
    assert len(run.read_manifest()["measurements"]["sessions"]) == 1


def test_rescore_of_an_unfinished_run_says_so_and_marks_metrics_partial(tmp_path):
    with pytest.raises(RuntimeError):
        run_eval(cfg(tmp_path, batch_size=2), backend=ScriptedBackend(gold_answer, fail_after_calls=2),
                 progress=False)
    run = RunDir(tmp_path / "run")
    notes: list[str] = []
    metrics = rescore(run.path, echo=notes.append)
    assert notes == [(f"warning: {run.path}: 4 of 12 records present: the metrics are partial (complete: false); "
                     f"finish the run with harness eval --out {run.path} --resume")]
    assert metrics["completeness"]["complete"] is False and run.read_metrics() == metrics
    assert metrics["completeness"]["items_present"] == 4 and metrics["completeness"]["items_expected"] == 12
    assert sum(keys(run).values()) == 4 and not leftovers(run.path)


def test_rescore_of_a_duplicated_run_counts_each_record_once(tmp_path):
    run_eval(cfg(tmp_path), backend=ScriptedBackend(gold_answer), progress=False)
    run = RunDir(tmp_path / "run")
    before = run.read_metrics()
    with open(run.records_path, "a") as f:
        f.write(run.records_path.read_text())
    notes: list[str] = []
    metrics = rescore(run.path, echo=notes.append)
    assert "12 of 12 records present, 12 duplicated" in notes[0]
    assert metrics["completeness"]["duplicated"] == 12 and not metrics["completeness"]["complete"]
    assert metrics["suites"] == before["suites"]  # each sample counted once
    assert sum(keys(run).values()) == 24  # rescore repairs nothing: resume does


def broken_images_suite(monkeypatch, n_bad: int, n_good: int = 0, missing: bool = False) -> None:
    items = [Item("broken", f"good{i}", "1+1?", "2", "integer", image_bytes=_png("red"), image_source=f"g{i}.png")
             for i in range(n_good)]
    for i in range(n_bad):
        if missing:  # what the MathVista loader records for an image file that is not there
            items.append(Item("broken", f"bad{i}", "1+2?", "3", "integer",
                              error=f"image images/{i}.jpg not found beside testmini.json or one folder up"))
        else:
            items.append(Item("broken", f"bad{i}", "1+2?", "3", "integer", image_bytes=b"\x89PNG broken",
                              image_source=f"images/{i}.png"))
    monkeypatch.setitem(SUITES, "broken", _suite("broken", items))


def test_a_run_whose_images_all_fail_to_decode_ends_in_error(tmp_path, monkeypatch):
    broken_images_suite(monkeypatch, n_bad=4, n_good=1)
    backend = ScriptedBackend(lambda r, a: "<REASONING>r</REASONING><SOLUTION>2</SOLUTION>")
    with pytest.raises(ItemsFailedError) as err:
        run_eval(cfg(tmp_path, suites=["broken"]), backend=backend, progress=False)
    assert one_line(err.value) == (
        f"{tmp_path / 'run'}: 4 of 5 items of broken failed and were scored wrong; first: broken bad0: image "
        "images/0.png could not be decoded: not a known image format (11 bytes starting b'\\x89PNG bro') "
        "(every record's error field says why)")
    run = RunDir(tmp_path / "run")
    manifest = run.read_manifest()
    assert manifest["status"] == "error" and manifest["error"]["type"] == "ItemsFailedError"
    errors = {r["sample_id"]: r["error"] for r in run.read_records()}
    assert all(f"images/{i}.png" in errors[f"bad{i}"] for i in range(4)) and errors["good0"] is None
    assert "BytesIO" not in run.records_path.read_text()
    assert run.read_metrics()["completeness"]["errored"] == 4


def test_a_suite_whose_images_are_all_missing_is_refused_before_the_model_loads(tmp_path, monkeypatch):
    broken_images_suite(monkeypatch, n_bad=3, missing=True)
    with pytest.raises(DataError) as err:
        run_eval(cfg(tmp_path, suites=["broken"], model="/no/such/model"), progress=False)
    assert one_line(err.value) == ("3 of 3 items of broken test cannot be evaluated; first: bad0: image "
                                   "images/0.jpg not found beside testmini.json or one folder up")
    assert not (tmp_path / "run").exists()


def test_disk_full_while_appending_marks_the_run_error_and_resume_finishes_it(tmp_path, monkeypatch):
    real_append = RunDir.append_records
    calls = {"n": 0}

    def append_then_fail(self, records, sync=True):
        calls["n"] += 1
        if calls["n"] != 3:
            return real_append(self, records, sync=sync)
        real_fsync = os.fsync

        def full(fd):  # the batch reached the page cache, but the disk filled up before it was safe
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(os, "fsync", full)
        try:
            return real_append(self, records, sync=True)  # an append whose fsync is due
        finally:
            monkeypatch.setattr(os, "fsync", real_fsync)

    monkeypatch.setattr(RunDir, "append_records", append_then_fail)
    with pytest.raises(StorageError) as err:
        run_eval(cfg(tmp_path, batch_size=2), backend=ScriptedBackend(gold_answer), progress=False)
    run = RunDir(tmp_path / "run")
    assert one_line(err.value) == (f"cannot write {run.records_path}: disk full (No space left on device)")
    manifest = run.read_manifest()
    assert manifest["status"] == "error" and manifest["error"]["message"] == str(err.value)
    # records are appended per item: the third item's record is cut off again, the first two stay
    assert sum(keys(run).values()) == 2 and run.records_path.read_bytes().endswith(b"\n")
    assert not leftovers(run.path)
    monkeypatch.setattr(RunDir, "append_records", real_append)
    run_eval(cfg(tmp_path, batch_size=2), resume=True, backend=ScriptedBackend(gold_answer), progress=False)
    assert len(keys(run)) == 12 and max(keys(run).values()) == 1 and run.read_manifest()["status"] == "finished"


def test_disk_full_while_writing_metrics_leaves_no_temp_file(tmp_path, monkeypatch):
    def full(self, metrics):
        with open(self.metrics_path.with_name("metrics.json.tmp"), "w") as f:
            f.write("{")  # what a full disk leaves of the temporary file
        from harness.jsonfile import write_json_atomic

        monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left "
                                                                                 "on device")))
        try:
            write_json_atomic(self.metrics_path, metrics)
        finally:
            monkeypatch.undo()

    monkeypatch.setattr(RunDir, "write_metrics", full)
    with pytest.raises(StorageError, match="cannot write .*metrics.json: disk full"):
        run_eval(cfg(tmp_path), backend=ScriptedBackend(gold_answer), progress=False)
    run = RunDir(tmp_path / "run")
    assert not leftovers(run.path) and not run.metrics_path.exists()
    assert run.read_manifest()["status"] == "error"
    run_eval(cfg(tmp_path), resume=True, backend=ScriptedBackend(gold_answer), progress=False)
    assert run.read_manifest()["status"] == "finished" and len(run.read_manifest()["measurements"]["sessions"]) == 1


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 200 KiB tmpfs (root only): a real disk that fills up."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mount)],
                                           capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the patched-writer tests cover disk full")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_real_full_disk_gives_one_line_and_a_resumable_run(small_tmpfs):
    long_answer = "<REASONING>" + "x " * 3000 + "</REASONING><SOLUTION>1</SOLUTION>"
    settings = {"model": "scripted", "out": str(small_tmpfs / "run"), "suites": ["synth_arith"], "limit": 60,
                "batch_size": 2}
    with pytest.raises(StorageError) as err:
        run_eval(EvalConfig.from_dict(settings), backend=ScriptedBackend(lambda r, a: long_answer), progress=False)
    run = RunDir(small_tmpfs / "run")
    assert "disk full (No space left on device)" in one_line(err.value)
    assert not leftovers(run.path)
    assert run.records_path.read_bytes().endswith(b"\n") and run.read_records()  # whole batches only
    manifest = run.read_manifest()  # still valid JSON
    if manifest["status"] == "error":
        assert manifest["error"]["message"] == str(err.value)
    else:  # the disk could not take the manifest either, and the message says so
        assert "the manifest could not record this either" in str(err.value)
    subprocess.run(["mount", "-o", "remount,size=4m", str(small_tmpfs)], check=True)
    run_eval(EvalConfig.from_dict(settings), resume=True, backend=ScriptedBackend(lambda r, a: long_answer),
             progress=False)
    assert len(keys(run)) == 60 and max(keys(run).values()) == 1 and run.read_manifest()["status"] == "finished"


def test_output_location_problems_are_one_line_before_the_model_loads(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    cases = [(a_file, f"{a_file} is a file, not a run directory; choose another --out"),
             (a_file / "run", (f"cannot create the run directory {a_file / 'run'}: a file stands where a folder "
                              "is expected (Not a directory)")),
             (model_dir, f"{model_dir} is not empty and holds no run (config.json); choose a new or empty --out")]
    for out, message in cases:
        with pytest.raises((RunDirError, StorageError)) as err:  # the model does not exist: never reached
            run_eval(cfg(tmp_path, out=str(out), model="/no/such/model"), progress=False)
        assert one_line(err.value) == message
    assert a_file.read_text() == "x" and sorted(p.name for p in model_dir.iterdir()) == ["config.json"]


def test_a_model_that_fails_to_load_leaves_no_run_directory(tmp_path):
    with pytest.raises(Exception, match="/no/such/model"):
        run_eval(cfg(tmp_path, out=str(tmp_path / "runs" / "r1"), model="/no/such/model"), progress=False)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("content, message", [
    ("[]", "holds a list, not a run manifest (an object)"),
    ('{"schema_version": 1}', "is not a valid run manifest: run_id is missing; status is missing"),
    (('{"schema_version": 1, "run_id": "r", "status": "finished", "prompt_format": "boxed", "generation": {"n": 1},'
     ' "suites": "synth_arith", "config": {}, "model": {}, "measurements": {"sessions": []}}'),
     "is not a valid run manifest: suites is a string"),
])
def test_a_wrong_shaped_manifest_is_one_line_for_resume_and_rescore(tmp_path, content, message):
    run_eval(cfg(tmp_path), backend=ScriptedBackend(gold_answer), progress=False)
    run = RunDir(tmp_path / "run")
    run.manifest_path.write_text(content)
    records = run.records_path.read_bytes()
    for attempt in (lambda: run_eval(cfg(tmp_path), resume=True, backend=ScriptedBackend(gold_answer),
                                     progress=False),
                    lambda: rescore(run.path)):
        with pytest.raises(RunDirError) as err:
            attempt()
        assert one_line(err.value).startswith(str(run.manifest_path)) and message in str(err.value)
    assert run.manifest_path.read_text() == content and run.records_path.read_bytes() == records
    assert not leftovers(run.path)


def test_progress_logs_rate_and_eta_when_not_a_terminal():
    lines: list[str] = []
    clock = iter([0.0, 5.0, 10.0, 45.0, 50.0, 60.0]).__next__
    bar = Progress(100, "log", lines.append, clock=clock)  # started at 0 s
    bar.advance(10, "synth_arith")  # 10% at 5 s
    bar.advance(5, "synth_arith")  # 15% at 10 s: no line
    bar.advance(1, "synth_arith")  # 45 s: 30 s since the last line
    bar.advance(4, "synth_arith")  # 20% at 50 s
    bar.advance(80, "synth_charts")  # done at 60 s
    assert lines == ["evaluating synth_arith: 10/100 (10%), 2.00 items/s, ETA 45 s",
                     "evaluating synth_arith: 16/100 (16%), 0.36 items/s, ETA 3 min 56 s",
                     "evaluating synth_arith: 20/100 (20%), 0.40 items/s, ETA 3 min 20 s",
                     "evaluating synth_charts: 100/100 (100%), 1.67 items/s, done in 1 min 00 s"]


def test_run_eval_logs_progress_lines(tmp_path):
    lines: list[str] = []
    run_eval(cfg(tmp_path, batch_size=3), backend=ScriptedBackend(gold_answer), progress="log", echo=lines.append)
    # the bar moves per item as its records land: a line at each tenth of the 12 items (2/12 is the first)
    assert len(lines) == 10 and lines[-1].startswith("evaluating synth_arith: 12/12 (100%)")
    assert all("items/s" in line for line in lines) and "ETA" in lines[0]


def test_avg_at_n_interval_is_not_empty_when_nothing_is_right():
    records = [{"suite": "s", "sample_id": f"i{i}", "attempt": a, "correct": False, "format_ok": True,
                "error": None} for i in range(200) for a in range(2)]
    manifest = {"suites": [{"name": "s", "n_items": 200}], "generation": {"n": 2}}
    m = compute_metrics(records, manifest, {})["suites"]["s"]
    low, high = m["accuracy_ci95"]
    assert m["accuracy"] == 0.0 and low == 0.0 and high == pytest.approx(0.0188, abs=1e-4)


def test_mathvista_with_every_image_missing_is_one_line_and_exit_2(tmp_path):
    from click.testing import CliRunner

    from harness.cli import cli
    from tests.fixtures.mathvista_fixture import write_mathvista_fixture

    data = write_mathvista_fixture(tmp_path / "MathVista")
    for image in (data / "images").iterdir():
        image.unlink()
    result = CliRunner().invoke(cli, ["eval", "--suite", "mathvista_testmini", "--data-dir", str(data),
                                      "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 2 and not result.stdout
    assert result.stderr.startswith("error: 6 of 6 items of mathvista_testmini testmini cannot be evaluated; first: ")
    assert result.stderr.rstrip().endswith(".jpg not found beside testmini.json or one folder up")
    assert len(result.stderr.splitlines()) == 1 and not (tmp_path / "run").exists()


def test_mathvista_with_undecodable_images_ends_in_error_naming_each_file(tmp_path):
    from tests.fixtures.mathvista_fixture import write_mathvista_fixture

    data = write_mathvista_fixture(tmp_path / "MathVista")
    for image in (data / "images").iterdir():
        image.write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    settings = {"model": "scripted", "out": str(tmp_path / "run"), "suites": ["mathvista_testmini"],
                "data_dir": {"*": str(data)}}
    with pytest.raises(ItemsFailedError) as err:
        run_eval(EvalConfig.from_dict(settings), backend=ScriptedBackend(gold_answer), progress=False)
    assert "6 of 6 items of mathvista_testmini failed and were scored wrong; first: mathvista_testmini " \
           in one_line(err.value)
    run = RunDir(tmp_path / "run")
    records = run.read_records()
    assert all(f"image images/{r['sample_id']}.jpg could not be decoded: " in r["error"] for r in records)
    assert "BytesIO" not in run.records_path.read_text()
    assert run.read_manifest()["status"] == "error"


def test_a_read_only_out_is_found_before_the_model_loads(tmp_path):
    from tests.test_run_state import read_only

    parent = tmp_path / "ro"
    parent.mkdir()
    # "/no/such/model" would fail later: the location is checked first
    with read_only(parent), pytest.raises(StorageError) as err:
        run_eval(cfg(tmp_path, out=str(parent / "run"), model="/no/such/model"), progress=False)
    assert one_line(err.value).startswith(f"cannot create the run directory {parent / 'run'}: ")
    assert list(parent.iterdir()) == []


def test_disk_full_while_writing_a_thumbnail_stops_the_run_instead_of_failing_the_item(tmp_path, monkeypatch):
    from PIL import Image

    real_save = Image.Image.save

    def full(self, fp, *args, **kwargs):
        if not isinstance(fp, (str, os.PathLike)):  # the suite drawing its images in memory
            return real_save(self, fp, *args, **kwargs)
        with open(fp, "wb") as f:  # a thumbnail: half of it reached the disk
            f.write(b"\xff\xd8 half a jpeg")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Image.Image, "save", full)
    with pytest.raises(StorageError) as err:
        run_eval(cfg(tmp_path, suites=["synth_charts"]), backend=ScriptedBackend(gold_answer), progress=False)
    run = RunDir(tmp_path / "run")
    assert one_line(err.value).startswith(f"cannot write {run.images_dir}/synth_charts__")
    assert err.value.args[0].endswith(": disk full (No space left on device)")
    assert not leftovers(run.path) and not list(run.images_dir.iterdir())
    assert run.read_records() == [] and run.read_manifest()["status"] == "error"  # no item blamed for it
    monkeypatch.setattr(Image.Image, "save", real_save)
    run_eval(cfg(tmp_path, suites=["synth_charts"]), resume=True, backend=ScriptedBackend(gold_answer),
             progress=False)
    assert len(keys(run)) == 6 and all(r["error"] is None for r in run.read_records())
