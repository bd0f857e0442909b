"""Commands that write a model or checkpoint refuse a folder that holds one unless --force, before any
work; they say 'a file' for a file and 'permission denied' for an unreadable model; tiny-model writes
files everyone can read."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.errors import LockError, OutputExistsError
from harness.cli import cli
from harness.outdirs import claimed_output_dir, staged_output

HOLD_LOCK = """
import sys, time
from harness.dirlock import DirLock
with DirLock(sys.argv[1], "checkpoint directory"):
    print("held", flush=True)
    time.sleep(60)
"""


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: ") and not result.stdout.strip(), result.output
    return lines[0]


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*")
            if p.is_file()}


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_tiny_model_refuses_a_folder_holding_a_model_unless_forced(tmp_path, umask_022):
    out = tmp_path / "m"
    assert invoke("tiny-model", out, "--seed", "1").exit_code == 0
    before = snapshot(out)
    line = error_line(invoke("tiny-model", out, "--seed", "2"))
    assert line == (f"error: {out} already holds files (chat_template.jinja, config.json, generation_config.json, "
                    "...); pass --force to replace the model directory, or choose another folder")
    assert snapshot(out) == before
    forced = invoke("tiny-model", out, "--seed", "2", "--force")
    assert forced.exit_code == 0 and forced.stdout.strip() == str(out)
    after = snapshot(out)
    assert after.keys() == before.keys() and after["model.safetensors"][0] != before["model.safetensors"][0]
    assert json.loads((out / "tiny_model.json").read_text())["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no staging folder left beside it
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert set(modes.values()) == {0o644}, modes  # model.safetensors included (save_pretrained makes it 0600)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755


def test_tiny_model_and_export_pointed_at_a_file_are_one_line(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert error_line(invoke("tiny-model", a_file)) == f"error: {a_file} is a file; the model directory must be a folder"
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/no/such/base"}))
    assert error_line(invoke("export", ckpt, "--merge", a_file)) == (
        f"error: {a_file} is a file; the model directory must be a folder")
    assert error_line(invoke("export", a_file, "--merge", tmp_path / "out")) == (
        f"error: {a_file} is a file; pass the checkpoint's folder")
    assert a_file.read_text() == "x" and not (tmp_path / "out").exists()


def test_export_refuses_an_existing_model_before_loading_anything(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    # the base does not exist: had export loaded anything, the error would be about the base
    (ckpt / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/no/such/base"}))
    merged = tmp_path / "merged"
    merged.mkdir()
    (merged / "config.json").write_text("{}")
    line = error_line(invoke("export", ckpt, "--merge", merged))
    assert line == (f"error: {merged} already holds files (config.json); pass --force to replace the model "
                    "directory, or choose another folder")
    assert (merged / "config.json").read_text() == "{}"
    forced = error_line(invoke("export", ckpt, "--merge", merged, "--force"))
    assert "/no/such/base" in forced  # with --force it goes on, and fails on the missing base
    assert (merged / "config.json").read_text() == "{}" and sorted(p.name for p in tmp_path.iterdir()) == [
        "ckpt", "merged"]  # the failed merge left the old model and no staging folder


def test_train_refuses_an_existing_checkpoint_before_loading_anything(tmp_path):
    out = tmp_path / "ckpt"
    out.mkdir()
    (out / "checkpoint.json").write_text("{}")
    line = error_line(invoke("train", "--model", "/no/such/model", "--suite", "synth_arith", "--out", out))
    assert line == (f"error: {out} already holds files (checkpoint.json); pass --force to replace the checkpoint "
                    "directory, or choose another folder")
    assert [p.name for p in out.iterdir()] == ["checkpoint.json"]


def test_a_checkpoint_folder_in_use_is_refused_with_the_trainer_named(tmp_path):
    out = tmp_path / "ckpt"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        line = error_line(invoke("train", "--model", "/no/such/model", "--suite", "synth_arith", "--out", out))
        assert line.startswith(f"error: checkpoint directory {out} is in use by pid {holder.pid} on host ")
        with pytest.raises(LockError), claimed_output_dir(out, "checkpoint directory", force=True):
            pass
        assert (out / ".lock").exists()  # the holder's lock file is untouched
    finally:
        holder.kill()
        holder.wait()


def test_claimed_output_dir_forced_replaces_and_unused_new_folders_vanish(tmp_path):
    out = tmp_path / "ckpt"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(OutputExistsError), claimed_output_dir(out, "checkpoint directory"):
        pass
    with claimed_output_dir(out, "checkpoint directory", force=True) as folder:
        assert [p.name for p in folder.iterdir()] == [".lock"]
        (folder / "new.txt").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    fresh = tmp_path / "fresh"
    with pytest.raises(RuntimeError), claimed_output_dir(fresh, "checkpoint directory"):
        raise RuntimeError("failed before writing anything")
    assert not fresh.exists()


def test_a_failed_staged_build_leaves_the_old_content(tmp_path):
    out = tmp_path / "m"
    out.mkdir()
    (out / "config.json").write_text("old")
    with pytest.raises(RuntimeError), staged_output(out, "model directory", force=True) as staging:
        (staging / "config.json").write_text("half")
        raise RuntimeError("killed mid-build")
    assert (out / "config.json").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def _as_another_user() -> list[str]:
    """A command prefix under which this user's 0600 files owned by uid 65534 are unreadable: as root,
    the same root without the capabilities that bypass file permissions; else nothing (chmod 000 does)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv not found: cannot drop root's file-permission override")
    drop = "-dac_override,-dac_read_search"
    return ["setpriv", "--bounding-set", drop, "--inh-caps", drop, "--"]


def test_an_unreadable_model_file_is_reported_as_permission_denied(tiny_model_dir, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    weights = model / "model.safetensors"
    weights.chmod(0o600)
    if os.geteuid() == 0:
        os.chown(weights, 65534, 65534)  # another user's private file
    else:
        weights.chmod(0o000)
    out = tmp_path / "run"
    done = subprocess.run([*_as_another_user(), sys.executable, "-m", "harness.cli", "eval", "--model", str(model),
                           "--suite", "synth_arith", "--limit", "1", "--out", str(out), "--quiet"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 2, done.stderr
    owner = "owner uid 65534, mode 0600" if os.geteuid() == 0 else f"owner uid {os.geteuid()}, mode 0000"
    assert done.stderr == (f"error: cannot read model file {weights}: permission denied ({owner}); ask its owner "
                           "to make it readable (chmod a+r) or use a copy\n")
    assert "No such file" not in done.stderr and not out.exists()


def test_a_missing_adapter_is_called_an_adapter(tiny_model_dir, tmp_path):
    result = invoke("eval", "--model", tiny_model_dir, "--adapter", "/no/such/adapter", "--suite", "synth_arith",
                    "--limit", "1", "--out", tmp_path / "run", "--quiet")
    assert error_line(result) == "error: adapter directory /no/such/adapter does not exist"
    assert not (tmp_path / "run").exists()
