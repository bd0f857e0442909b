"""Training on several processes (trainers/distributed.py, trainers/launch.py): real runs of two CPU
processes over gloo, started by `harness train --num-processes 2` (accelerate launch in the command's
own process) and by `accelerate launch` by hand; and the checks that refuse what cannot run that way.

    python3 -m uv run --locked pytest tests/test_multi_process.py -q
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from transformers import TrainerControl, TrainerState

from core.errors import ConfigError, Interrupted
from harness.checkpoints import CheckpointInfo, read_checkpoint, read_train_log
from harness.cli import cli
from harness.config import EvalConfig
from harness.runner import run_eval
from harness.runstore import RunDir
from tests.fixtures.typed_shape import shape_problems
from trainers.config import TrainConfig
from trainers.distributed import World
from trainers.interrupt import StopOnSignal
from trainers.launch import accelerate_config
from trainers.resume import state_files

TINY = ["--engine", "trl", "--suite", "synth_charts", "--set", "limit=16", "--set", "per_device_train_batch_size=4",
        "--set", "num_generations=4", "--set", "steps_per_generation=1", "--set", "max_completion_length=8",
        "--set", "learning_rate=0.05"]


def _harness(*args) -> list[str]:
    return [sys.executable, "-m", "harness.cli", *map(str, args)]


def _step_rows(out) -> list[dict]:
    return [row for row in read_train_log(out) if "loss" in row]


# --- what is refused, in one line, before anything starts ----------------------------------------------
def test_the_generation_batch_counts_every_process():
    settings = {"per_device_train_batch_size": 2, "num_generations": 4, "steps_per_generation": 1}
    with pytest.raises(ConfigError, match=r"per_device_train_batch_size 2 x steps_per_generation 1 = 2\)"):
        TrainConfig.from_dict(settings)
    cfg, _ = TrainConfig.from_dict({**settings, "num_processes": 2})  # 2 x 2 processes: one group of 4
    assert (cfg.global_batch_size(), cfg.generation_batch_size()) == (4, 4)
    with pytest.raises(ConfigError, match="set num_processes to 2 or more"):
        TrainConfig.from_dict({"deepspeed": "zero2"})
    with pytest.raises(ConfigError, match="unknown deepspeed 'zero1'"):
        TrainConfig.from_dict({"deepspeed": "zero1", "num_processes": 2})
    with pytest.raises(ConfigError, match="trl_args.deepspeed: set it as the top-level key deepspeed"):
        TrainConfig.from_dict({"trl_args": {"deepspeed": "ds.json"}})


@pytest.mark.parametrize(("args", "message"), [
    (["--engine", "unsloth"], "error: the unsloth engine trains on one GPU; num_processes 2 needs --engine trl"),
    pytest.param(["--deepspeed", "zero2"], "error: --deepspeed zero2 needs the deepspeed package, which is not "
                 "installed (pip install deepspeed, on a CUDA machine)",
                 marks=pytest.mark.skipif(importlib.util.find_spec("deepspeed") is not None,
                                          reason="deepspeed is installed")),
])
def test_what_cannot_train_on_several_processes_is_one_line(tmp_path, args, message):
    out = tmp_path / "ckpt"
    result = CliRunner().invoke(cli, ["train", "--num-processes", "2", *args, "--out", str(out)])
    assert result.exit_code == 2 and result.output.strip() == message, result.output
    assert not out.exists()


def test_an_error_each_process_hits_is_printed_once_and_a_different_one_with_its_process(monkeypatch, tmp_path):
    from core.errors import LAUNCH_ERRORS_ENV
    from trainers.distributed import launch_error_lines, leave_error_to_launcher

    monkeypatch.setenv(LAUNCH_ERRORS_ENV, str(tmp_path))
    for rank, line in ((0, "error: bad split"), (1, "error: bad split"), (2, "error: disk full"), (3, "error: disk full")):
        monkeypatch.setenv("WORLD_SIZE", "4")
        monkeypatch.setenv("RANK", str(rank))
        assert leave_error_to_launcher(line) is (rank != 0)  # the main process prints its own
    assert launch_error_lines(tmp_path) == ["error: disk full (process 2)"]
    (tmp_path / "rank-0.txt").unlink()  # the main process stopped before it met the error
    assert launch_error_lines(tmp_path) == ["error: bad split (process 1)", "error: disk full (process 2)"]
    for rank in (2, 3):
        (tmp_path / f"rank-{rank}.txt").unlink()
    assert launch_error_lines(tmp_path) == ["error: bad split"]  # the others agree: the run's error
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert leave_error_to_launcher("error: x") is False  # one process: it prints


def test_a_user_error_stops_the_process_group_before_the_process_exits_and_a_crash_does_not():
    import torch.distributed as dist

    from core.errors import ConfigError
    from trainers.distributed import World, closed_on_error

    world = World(size=2, rank=1, backend="gloo")
    for error, stopped in ((ConfigError("bad split"), True), (RuntimeError("a bug"), False)):
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
        try:
            with pytest.raises(type(error)), closed_on_error(world):
                raise error
            assert dist.is_initialized() is not stopped
        finally:
            if dist.is_initialized():
                dist.destroy_process_group()


@pytest.mark.slow
def test_bad_input_every_process_meets_is_one_line(tiny_model_dir, tmp_path):
    done = subprocess.run(_harness("train", "--model", tiny_model_dir, *TINY, "--suite", "mathvista_testmini",
                                   "--data-dir", tmp_path, "--num-processes", 2, "--out", tmp_path / "c"),
                          check=False, capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    message = "error: suite mathvista_testmini has no split 'train'; splits: testmini"
    assert done.returncode == 2 and lines == [message], done.stderr[-2000:]
    assert not (tmp_path / "c").exists()


def test_several_processes_without_a_launcher_say_how_to_start_them(tmp_path, tiny_model_dir):
    from trainers.train import train

    cfg, _ = TrainConfig.from_dict({"model": str(tiny_model_dir), "num_processes": 2, "out": str(tmp_path / "c")})
    with pytest.raises(ConfigError, match=r"`harness train --num-processes 2`, which launches the processes"):
        train(cfg)
    assert not (tmp_path / "c").exists()
    result = CliRunner().invoke(cli, ["train", "--resume", str(tmp_path), "--num-processes", "2"])
    assert result.exit_code == 2 and "drop --num-processes" in result.output


def test_the_accelerate_config_of_a_launch():
    cfg, _ = TrainConfig.from_dict({"num_processes": 2})
    ddp = accelerate_config(cfg, 29999)
    assert ddp["distributed_type"] == "MULTI_GPU" and ddp["num_processes"] == 2 and ddp["main_process_port"] == 29999
    cfg, _ = TrainConfig.from_dict({"num_processes": 4, "deepspeed": "zero3", "dtype": "bfloat16"})
    zero3 = accelerate_config(cfg, 1)
    assert zero3["distributed_type"] == "DEEPSPEED" and zero3["mixed_precision"] == "bf16"
    assert zero3["deepspeed_config"]["zero_stage"] == 3 and zero3["deepspeed_config"]["zero3_save_16bit_model"]
    # accelerate reads it as its own config file
    from accelerate.commands.config.config_args import ClusterConfig

    assert ClusterConfig(**ddp).num_processes == 2


def test_a_saved_trainer_state_of_several_processes_has_each_ones_rng_state():
    assert "rng_state.pth" in state_files(1)
    assert {"rng_state_0.pth", "rng_state_1.pth", "optimizer.pt"} <= set(state_files(2))
    assert "latest" in state_files(2, "zero2") and "optimizer.pt" not in state_files(2, "zero2")


# --- signals: several processes stop together -----------------------------------------------------------
def _args():
    return SimpleNamespace(device="cpu")  # what the callbacks read of TrainingArguments


def test_processes_stop_together_after_the_step_in_which_any_got_a_signal(monkeypatch):
    others = {"signal": 0}  # what the other process contributes to the agreement
    monkeypatch.setattr(World, "max", lambda self, value, device: max(value, others["signal"]))
    stop = StopOnSignal(say=lambda message: None, world=World(size=2))
    state, control = TrainerState(global_step=3, max_steps=10), TrainerControl()
    with stop.installed():
        stop.on_step_begin(_args(), state, control)
        stop.on_step_end(_args(), state, control)
        assert not control.should_training_stop  # no one got a signal
        others["signal"] = signal.SIGTERM  # the other process got one; this one did not (yet)
        stop.on_step_begin(_args(), state, control)
        os.kill(os.getpid(), signal.SIGINT)  # this one's own signal mid-step: held, not raised
        os.kill(os.getpid(), signal.SIGINT)  # and again (the terminal and the launcher): still held
        stop.on_step_end(_args(), state, control)
    assert control.should_training_stop and stop.signum == signal.SIGTERM
    with pytest.raises(Interrupted) as caught:
        stop.on_epoch_end(_args(), state, control)
    assert caught.value.signum == signal.SIGTERM


# --- real runs of two processes -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_process_run(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("two") / "ckpt"
    started = time.monotonic()
    done = subprocess.run(_harness("train", "--model", tiny_model_dir, *TINY, "--max-steps", 3, "--num-processes", 2,
                                   "--out", out), check=False, capture_output=True, text=True, timeout=600)
    return out, done, time.monotonic() - started


@pytest.mark.slow
def test_two_processes_train_one_checkpoint_that_evaluates_as_any(two_process_run, tiny_model_dir, tmp_path):
    out, done, _ = two_process_run
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == [str(out)]  # the main process printed it, once
    assert done.stderr.count("training gspo (trl on cpu x 2 processes): 16 items, 3 steps, 8 completions a step") == 1
    info = read_checkpoint(out)
    assert shape_problems(info, CheckpointInfo) == []
    assert info["status"] == "finished" and info["steps"] == 3 and info["config"]["num_processes"] == 2
    assert info["distributed"] == {"world_size": 2, "global_batch_size": 8, "generation_batch_size": 8,
                                   "backend": "gloo", "deepspeed": None}
    # one writer: each step logged once, and each step generated both processes' 4 completions
    rows = _step_rows(out)
    assert [row["step"] for row in rows] == [1, 2, 3]
    assert [row["rollout/completions"] for row in rows] == [8.0, 8.0, 8.0]
    assert all(8 <= row["rollout/completion_tokens"] <= 8 * 8 for row in rows)  # up to 8 tokens each
    from trainers.bench import compare

    (summary,), _ = compare({"two": out}, "two")  # the benchmark's summary: processes, global batch, samples/s
    assert (summary["world_size"], summary["global_batch_size"]) == (2, 8)
    assert summary["samples_per_s"] == round(8 / summary["mean_step_wall_s"], 2)
    names = {path.name for path in out.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "train_fingerprints.json"} <= names
    assert not names & {".lock", "trainer", "steps"}
    run = run_eval(EvalConfig(model=str(out), suites=["synth_charts"], split="test", limit=2, max_new_tokens=4,
                              out=str(tmp_path / "run")), progress=False)
    entry = RunDir(run).read_manifest()["checkpoint"]
    assert entry["step"] == 3 and entry["world_size"] == 2 and entry["global_batch_size"] == 8
    # and as an adapter on its base, as `harness eval --adapter` loads one-process checkpoints
    result = CliRunner().invoke(cli, ["eval", "--model", str(tiny_model_dir), "--adapter", str(out), "--suite",
                                      "synth_charts", "--split", "test", "--limit", "2", "--max-new-tokens", "4",
                                      "--out", str(tmp_path / "adapter-run")])
    assert result.exit_code == 0, result.output
    assert RunDir(tmp_path / "adapter-run").read_manifest()["checkpoint"]["world_size"] == 2


@pytest.mark.slow
def test_a_second_run_into_the_directory_is_refused_on_every_process_in_one_line(two_process_run):
    out, done, _ = two_process_run
    assert done.returncode == 0
    again = subprocess.run(_harness("train", "--model", "unused", *TINY, "--num-processes", 2, "--out", out),
                           check=False, capture_output=True, text=True, timeout=600)
    assert again.returncode == 2
    errors = [line for line in again.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "checkpoint directory" in errors[0] and "--force" in errors[0], again.stderr[-2000:]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_run_started_by_accelerate_launch_stops_on_sigterm_and_resumes_on_two_processes(tiny_model_dir, tmp_path):
    out = tmp_path / "ckpt"
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"model": str(tiny_model_dir), "engine": "trl", "suites": ["synth_arith"], "limit": 8,
                                  "max_steps": 24, "per_device_train_batch_size": 2, "num_generations": 4,
                                  "steps_per_generation": 2, "max_completion_length": 8, "learning_rate": 0.05,
                                  "out": str(out)}))
    launcher = subprocess.Popen(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
         "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
         "--main_process_port", str(_free_port()), "-m", "tests.fixtures.train_length_reward", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while launcher.poll() is None and time.monotonic() < deadline:
        if (out / "train_log.jsonl").is_file() and len(_step_rows(out)) >= 2:
            break
        time.sleep(0.1)
    assert launcher.poll() is None, launcher.communicate()[1][-3000:]
    launcher.send_signal(signal.SIGTERM)  # to the launcher, which passes it to both processes
    _, stderr = launcher.communicate(timeout=300)
    info = read_checkpoint(out)
    assert info["status"] == "interrupted", stderr[-3000:]
    step = info["steps"]
    assert 2 <= step < 24 and info["interrupted"]["signal"] == "SIGTERM" and not info["interrupted"]["forced"]
    assert stderr.count("every training process stops after the step under way") == 1  # said by the main one
    state = out / info["interrupted"]["trainer_state"]
    assert {"rng_state_0.pth", "rng_state_1.pth", "optimizer.pt"} <= {p.name for p in state.iterdir()}
    assert [row["step"] for row in _step_rows(out)] == list(range(1, step + 1))
    assert info["distributed"]["world_size"] == 2 and info["distributed"]["generation_batch_size"] == 8

    resumed = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
         "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
         "--main_process_port", str(_free_port()), "-m", "tests.fixtures.train_length_reward", "--resume", str(out)],
        check=False, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    info = read_checkpoint(out)
    assert info["status"] == "finished" and info["steps"] == 24
    assert info["resumes"][0]["from_step"] == step and info["resumes"][0]["after"] == "interrupted"
    assert [row["step"] for row in _step_rows(out)] == list(range(1, 25))  # one line a step, across the resume
    assert info["lora"]["all_nonzero"] and info["lora"]["unchanged"] == []  # the length reward gave gradients
    assert not (out / "trainer").exists() and not (out / ".lock").exists()
