"""SIGTERM / SIGINT during training: where the stop happens, and what `harness train` leaves behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from transformers import TrainerControl, TrainerState

from core.errors import Interrupted
from harness.checkpoints import read_checkpoint, read_train_log
from harness.config import EvalConfig
from harness.runner import run_eval
from harness.runstore import RunDir
from trainers.interrupt import StopOnSignal


def _send(signum: int) -> None:
    os.kill(os.getpid(), signum)  # Python runs the handler at the next bytecode, in this thread


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_a_steps_computation_stops_at_once(signum):
    stop = StopOnSignal(say=lambda message: None)
    with stop.installed():
        stop.on_step_begin(None, None, TrainerControl())
        with pytest.raises(Interrupted) as caught:
            _send(signum)
    assert caught.value.signum == signum and signal.Signals(signum).name in str(caught.value)


def test_a_signal_during_an_update_or_save_waits_for_it_then_stops_before_the_next_step():
    said: list[str] = []
    stop = StopOnSignal(say=said.append)
    control = TrainerControl()
    with stop.installed():
        stop.on_step_begin(None, None, control)
        stop.on_pre_optimizer_step(None, None, control)
        _send(signal.SIGTERM)  # during the optimizer update: held
        assert said and "send it again to stop now" in said[0]
        stop.on_step_end(None, None, control)
        assert control.should_training_stop
        with pytest.raises(Interrupted):
            stop.on_step_begin(None, None, control)


def test_a_held_signal_interrupts_the_run_instead_of_finishing_it_early():
    stop = StopOnSignal(say=lambda message: None)
    state, control = TrainerState(global_step=2, max_steps=10), TrainerControl()
    with stop.installed():
        stop.on_step_begin(None, state, control)
        stop.on_pre_optimizer_step(None, state, control)
        _send(signal.SIGTERM)  # during the update: held to the step's end
        stop.on_step_end(None, state, control)
        with pytest.raises(Interrupted):  # TRL leaves its loop there and would close the run as finished
            stop.on_epoch_end(None, state, control)


def test_a_second_signal_stops_at_once_and_the_handlers_are_restored_after():
    before = signal.getsignal(signal.SIGTERM)
    stop = StopOnSignal(say=lambda message: None)
    with stop.installed():
        _send(signal.SIGINT)
        with pytest.raises(Interrupted) as caught:
            _send(signal.SIGTERM)
    assert caught.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


def _harness(*args) -> list[str]:
    return [sys.executable, "-m", "harness.cli", *map(str, args)]


def _logged_steps(out) -> int:
    rows = read_train_log(out) or []
    return max((row["step"] for row in rows), default=0)


@pytest.mark.slow
def test_sigterm_mid_run_saves_the_adapter_and_marks_the_checkpoint_interrupted(tiny_model_dir, tmp_path):
    out = tmp_path / "ckpt"
    proc = subprocess.Popen(
        _harness("train", "--model", tiny_model_dir, "--suite", "synth_arith", "--max-steps", 500, "--out", out,
                 "--set", "per_device_train_batch_size=4", "--set", "num_generations=4",
                 "--set", "max_completion_length=16", "--set", "learning_rate=1e-3"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while _logged_steps(out) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("interrupted: SIGTERM at step ") and f"harness train --resume {out}" in last, stderr
    assert "on this CPU: roughly" in stderr and stdout == ""  # the step-cost line came before training

    info = read_checkpoint(out)
    assert info["status"] == "interrupted" and info["finished"]
    step = info["steps"]
    assert 2 <= step < 500 and f"at step {step} of 500" in last
    assert info["interrupted"]["signal"] == "SIGTERM" and info["interrupted"]["step"] == step
    assert not info["interrupted"]["forced"]
    assert info["lora"]["n_modules"] > 0  # the LoRA check of the saved adapter is recorded
    assert (out / "adapter_model.safetensors").stat().st_size > 0 and (out / "adapter_config.json").is_file()
    state = out / info["interrupted"]["trainer_state"]
    assert state.name == f"checkpoint-{step}" and (state / "optimizer.pt").is_file()
    assert not (out / ".lock").exists()
    run = run_eval(EvalConfig(model=str(out), suites=["synth_arith"], limit=2, max_new_tokens=4,
                              out=str(tmp_path / "run")), progress=False)
    assert RunDir(run).read_manifest()["checkpoint"]["step"] == step  # it evaluates like any checkpoint


def test_gpu_sized_settings_on_a_cpu_warn_before_the_first_step(tiny_model_dir, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from harness.cli import cli
    from trainers import step_cost

    monkeypatch.setattr(step_cost, "measure_cpu_flops", lambda seconds=0.1: 1e5)  # a very slow CPU
    result = CliRunner().invoke(cli, ["train", "--model", str(tiny_model_dir), "--suite", "synth_arith",
                                      "--max-steps", "1", "--set", "max_completion_length=4",
                                      "--out", str(tmp_path / "ckpt")])
    assert result.exit_code == 0, result.output
    warning = next(line for line in result.output.splitlines() if line.startswith("warning: these settings"))
    assert "sized for a GPU" in warning and "--config cpu-small" in warning and "a step" in warning
