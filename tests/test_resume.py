"""`harness train --resume`: a training process killed at a random step (SIGKILL, a real subprocess)
continues from its last saved trainer state, with the step count and the training log continuing.

What is compared with an uninterrupted run of the same settings (one CPU thread in both, so the sums
run in one order): every value of every step's training-log line (loss, rewards, gradient norm,
learning rate, entropy, importance ratios, token counts), equal to 1e-6 relative, and the final
adapter's weights. Not compared: wall-clock fields (`wall_s`, `step_time`, `rollout/seconds`,
`rollout/tokens_per_s`) and the closing summary line, whose `train_loss` and runtime cover only the resumed part.

    python3 -m uv run --locked pytest tests/test_resume.py -q
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from core.errors import ConfigError, RunDirError
from harness.checkpoints import read_checkpoint, read_train_log
from harness.cli import cli
from trainers.config import TrainConfig
from trainers.resume import saved_states
from trainers.train import train

pytestmark = pytest.mark.slow

SETTINGS = {"engine": "trl", "suites": ["synth_arith"], "limit": 8, "max_steps": 12,
            "per_device_train_batch_size": 4, "num_generations": 4, "max_completion_length": 8,
            "learning_rate": 0.05, "resume_every": 4}
WALL_CLOCK = {"wall_s", "step_time", "rollout/seconds", "rollout/tokens_per_s"}


def _start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _kill_after(proc: subprocess.Popen, out, step: int, timeout_s: float = 300) -> int:
    """SIGKILL the process once its training log has reached `step`; returns the last step it logged."""
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline:
        rows = read_train_log(out) if (out / "train_log.jsonl").is_file() else None
        if rows and rows[-1]["step"] >= step:
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    return read_train_log(out)[-1]["step"]


def _step_rows(out) -> list[dict]:
    return [r for r in read_train_log(out) if "loss" in r]


def test_a_run_killed_at_a_random_step_resumes_and_repeats_the_uninterrupted_run(tiny_model_dir, tmp_path):
    from tests.fixtures.train_length_reward import length_reward

    # After the first save (step 4) and before the end; steps 9-11 are in the data's second epoch.
    kill_step = random.Random().randrange(5, SETTINGS["max_steps"])
    why = f"killed after logging step {kill_step}"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the training processes below
    try:
        cfg = TrainConfig.from_dict({**SETTINGS, "model": str(tiny_model_dir), "out": str(tmp_path / "whole")})[0]
        whole = train(cfg, extra_reward_funcs=[length_reward], echo=lambda _: None)
    finally:
        torch.set_num_threads(threads)

    out = tmp_path / "killed"
    config = tmp_path / "killed.json"
    config.write_text(json.dumps({**SETTINGS, "model": str(tiny_model_dir), "out": str(out)}))
    logged = _kill_after(_start("-m", "tests.fixtures.train_length_reward", config), out, kill_step)
    assert read_checkpoint(out)["status"] == "training"  # a kill leaves no word
    saved = saved_states(out)[-1][0]
    assert saved % 4 == 0 and saved <= logged, why  # periodic saves fall on generation-batch boundaries

    resumed = _start("-m", "tests.fixtures.train_length_reward", "--resume", out)
    _, stderr = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, stderr[-3000:]
    assert f"resuming gspo at step {saved} of 12" in stderr

    info = read_checkpoint(out)
    assert info["status"] == "finished" and info["steps"] == 12
    assert info["resumes"] == [{**info["resumes"][0], "from_step": saved, "exact": True, "after": "training",
                                "trainer_state": f"trainer/checkpoint-{saved}"}]
    assert info["resumes"][0]["dropped_log_rows"] == logged - saved, why
    assert not (out / "trainer").exists()  # a finished run keeps no resume state
    got, want = _step_rows(out), _step_rows(whole)
    assert [r["step"] for r in got] == list(range(1, 13)), why  # continued, nothing repeated or lost
    for mine, theirs in zip(got, want, strict=True):
        assert set(mine) == set(theirs)
        for key in set(mine) - WALL_CLOCK:
            expected = theirs[key] if theirs[key] is None else pytest.approx(theirs[key], rel=1e-6, abs=1e-9)
            assert mine[key] == expected, (why, mine["step"], key)
    assert [r["wall_s"] for r in got] == sorted(r["wall_s"] for r in got)  # the clock continues too
    adapter, reference = load_file(out / "adapter_model.safetensors"), load_file(whole / "adapter_model.safetensors")
    assert adapter.keys() == reference.keys()
    assert all(torch.allclose(adapter[k], reference[k], rtol=1e-5, atol=1e-7) for k in adapter), why


def test_harness_train_resume_continues_a_run_stopped_by_sigterm_mid_batch(tiny_model_dir, tmp_path):
    out = tmp_path / "ckpt"
    proc = _start("-m", "harness.cli", "train", "--model", tiny_model_dir, "--suite", "synth_arith", "--out", out,
                  "--max-steps", 8, "--set", "per_device_train_batch_size=4", "--set", "num_generations=4",
                  "--set", "max_completion_length=8", "--set", "resume_every=4")
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        rows = read_train_log(out) if (out / "train_log.jsonl").is_file() else None
        if rows and rows[-1]["step"] >= 5:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    stopped = read_checkpoint(out)["steps"]
    assert 5 <= stopped < 8 and f"harness train --resume {out}" in stderr.splitlines()[-1]

    # Other settings are refused: a resume continues the recorded run, nothing else.
    refused = CliRunner().invoke(cli, ["train", "--resume", str(out), "--max-steps", "20"])
    assert refused.exit_code == 2 and refused.output.count("\n") == 1 and "drop --max-steps" in refused.output

    result = CliRunner().invoke(cli, ["train", "--resume", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    info = read_checkpoint(out)
    assert info["status"] == "finished" and info["steps"] == 8 and "interrupted" not in info
    entry = info["resumes"][0]
    # A signal's save falls mid generation batch unless at a multiple of 4: its completions were not saved.
    assert (entry["from_step"], entry["after"], entry["exact"]) == (stopped, "interrupted", stopped % 4 == 0)
    assert [r["step"] for r in _step_rows(out)] == list(range(1, 9))

    again = CliRunner().invoke(cli, ["train", "--resume", str(out)])
    assert again.exit_code == 2 and "finished at step 8: nothing to resume" in again.output
    missing = CliRunner().invoke(cli, ["train", "--resume", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "nothing to resume" in missing.output


def test_a_run_with_extra_rewards_resumes_only_with_the_same_ones(tmp_path):
    from harness.checkpoints import write_checkpoint
    from trainers.resume import resume

    out = tmp_path / "ckpt"
    out.mkdir()
    config = TrainConfig.from_dict({"out": str(out)})[0].to_dict()
    write_checkpoint(out, {"status": "training", "config": config, "extra_rewards": ["length_reward"]})
    with pytest.raises(ConfigError, match=r"extra rewards \['length_reward'\]"):
        resume(out)
    write_checkpoint(out, {"status": "training", "config": config, "extra_rewards": []})
    with pytest.raises(RunDirError, match="no saved trainer state"):
        resume(out)
    result = CliRunner().invoke(cli, ["train", "--resume", str(out)])
    assert result.exit_code == 2 and "no saved trainer state" in result.output
