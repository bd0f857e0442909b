"""`harness eval --ray`: a local Ray cluster of two replicas (the tiny model, transformers backend) writes the
run directory a one-process run writes, item for item; a worker killed midway loses and repeats nothing;
--resume works as on one host.

Records may differ from the one-process run only in what each process measures for itself: the timings
(`latency_s`, `ttft_s`, `request_latency_s`) and `batch` (the n-th batch the driver received, counted over
the cluster, not the n-th generate call of one process). With batch_size 1 each request is generated on
its own, so padding cannot change a greedy answer and the responses are equal token for token.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import ray
from click.testing import CliRunner

from harness.cli import cli
from harness.config import EvalConfig
from harness.ray_pool import ray_backend
from harness.runner import run_eval
from harness.runstore import RunDir, record_key

SUITES = ["synth_charts", "synth_arith"]  # the embedded default suites
PER_PROCESS_KEYS = ("latency_s", "ttft_s", "request_latency_s", "batch")
TINY = {"suites": SUITES, "limit": 4, "max_new_tokens": 6, "batch_size": 1}


@pytest.fixture(scope="module")
def cluster():
    """One local cluster for the module (starting one takes tens of seconds): two CPUs, two replicas."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=200 * 1024**2)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def one_process_run(tmp_path_factory, tiny_model_dir) -> RunDir:
    out = tmp_path_factory.mktemp("one") / "run"
    run_eval(EvalConfig.from_dict({**TINY, "model": str(tiny_model_dir), "out": str(out)}), progress="off")
    return RunDir(out)


def without_per_process(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in PER_PROCESS_KEYS} for r in records]


def ray_facts(run: RunDir) -> dict:
    return run.read_manifest()["measurements"]["sessions"][-1]["ray"]


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def assert_same_run(run: RunDir, reference: RunDir) -> None:
    records = run.read_records()
    assert len({record_key(r) for r in records}) == len(records)  # nothing recorded twice
    assert without_per_process(records) == without_per_process(reference.read_records())
    mine, theirs = run.read_manifest(), reference.read_manifest()
    assert mine["status"] == "finished"
    assert mine["suites"] == theirs["suites"] and mine["generation"] == theirs["generation"]
    assert {k: v for k, v in mine["model"].items() if k != "load_time_s"} == \
        {k: v for k, v in theirs["model"].items() if k != "load_time_s"}
    metrics, reference_metrics = run.read_metrics(), reference.read_metrics()
    assert metrics["suites"] == reference_metrics["suites"]
    assert metrics["completeness"] == reference_metrics["completeness"]


@pytest.fixture(scope="module")
def tiny_replicas(cluster, tiny_model_dir):
    """Two replicas of the tiny model, shared by the module's runs (each start imports torch and loads it)."""
    backend = ray_backend(EvalConfig.from_dict({**TINY, "model": str(tiny_model_dir), "ray": "local",
                                                "ray_replicas": 2, "ray_max_restarts": 1}))
    yield backend
    backend.close()


def tiny_config(tiny_model_dir: Path, out: Path) -> EvalConfig:
    return EvalConfig.from_dict({**TINY, "model": str(tiny_model_dir), "out": str(out), "ray": "local",
                                 "ray_replicas": 2, "ray_max_restarts": 1})


def test_a_ray_run_equals_the_one_process_run(tiny_replicas, tiny_model_dir, one_process_run, tmp_path):
    run = RunDir(run_eval(tiny_config(tiny_model_dir, tmp_path / "run"), backend=tiny_replicas, progress="off"))
    assert_same_run(run, one_process_run)
    facts = ray_facts(run)
    assert facts["version"] == ray.__version__ and facts["replicas"] == 2 and facts["nodes"] == 1
    assert facts["replica_resources"] == {"num_cpus": 1.0, "num_gpus": 0.0} and facts["chunk_size"] == 1
    assert facts["worker_deaths"] == facts["requests_retried"] == facts["replicas_restarted"] == 0
    assert run.read_manifest()["config"]["ray"] == "local"
    assert sorted(r["batch"] for r in run.read_records()) == sorted(f"0-{i}" for i in range(8))  # one per request


def test_a_worker_killed_midway_loses_and_repeats_nothing(tiny_replicas, tiny_model_dir, one_process_run, tmp_path):
    victim = tiny_replicas.pool.replicas[0].info["pid"]
    outcome: dict = {}

    def evaluate() -> None:
        try:
            outcome["path"] = run_eval(tiny_config(tiny_model_dir, tmp_path / "run"), backend=tiny_replicas,
                                       progress="off")
        except BaseException as exc:  # noqa: BLE001 -- reported by the assertion below
            outcome["error"] = exc

    worker = threading.Thread(target=evaluate)
    worker.start()
    records_file = tmp_path / "run" / "records.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (records_file.is_file() and records_file.read_text().count("\n") >= 1):
        time.sleep(0.02)
    written_before_the_kill = records_file.read_text().count("\n")
    os.kill(victim, signal.SIGKILL)  # the worker process dies as a lost node's would
    worker.join(timeout=300)
    assert "error" not in outcome, outcome.get("error")
    assert 1 <= written_before_the_kill < 8
    run = RunDir(tmp_path / "run")
    assert_same_run(run, one_process_run)
    facts = ray_facts(run)
    assert facts["worker_deaths"] == 1 and facts["requests_retried"] >= 1 and facts["replicas_restarted"] == 1
    tiny_replicas.close()  # the CPUs back to the cluster for the tests below
    deadline = time.monotonic() + 60
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)


def _script(tmp_path: Path, **extra) -> Path:
    path = tmp_path / "script.json"
    path.write_text(json.dumps({"default": ["<REASONING>r</REASONING><SOLUTION>5</SOLUTION>", "no answer"], **extra}))
    return path


def _scripted(script: Path, out: Path, *extra: str):
    return invoke("eval", "--backend", "scripted", "--model", str(script), "--suite", "synth_arith", "--limit", "12",
                  "--n-samples", "2", "--temperature", "0.7", "--batch-size", "2", "--out", str(out), "--quiet",
                  *extra)


def test_a_crashed_ray_run_resumes_on_one_host(cluster, tmp_path):
    script = _script(tmp_path)
    assert _scripted(script, tmp_path / "one").exit_code == 0
    out = tmp_path / "ray"
    assert _scripted(script, out, "--ray", "--ray-replicas", "2").exit_code == 0
    # A crash after half the records: the tail of the file lost, the manifest still running.
    lines = (out / "records.jsonl").read_text().splitlines(keepends=True)
    (out / "records.jsonl").write_text("".join(lines[:11]) + lines[11][:40])
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "status": "running", "finished": None}))
    result = _scripted(script, out, "--resume")  # no --ray: the placement is the resuming command's
    assert result.exit_code == 0, result.output
    run = RunDir(out)
    assert_same_run(run, RunDir(tmp_path / "one"))
    first, second = run.read_manifest()["measurements"]["sessions"]
    assert first["ray"]["replicas"] == 2 and "ray" not in second
    assert second["n_records"] == 13  # 11 of 24 records kept: the 13 others, and only they, redone


def test_a_replica_error_stops_the_run_and_resume_with_ray_finishes_it(cluster, tmp_path):
    script = _script(tmp_path)
    assert _scripted(script, tmp_path / "one").exit_code == 0
    failing = _script(tmp_path, fail_after_calls=1)  # the same file and answers; each replica fails on its 2nd chunk
    out = tmp_path / "run"
    result = _scripted(failing, out, "--ray", "--ray-replicas", "2")
    assert result.exit_code == 1 and "simulated backend crash" in str(result.exception)
    manifest = RunDir(out).read_manifest()
    assert manifest["status"] == "error" and "simulated backend crash" in manifest["error"]["message"]
    records = RunDir(out).read_records()
    assert 0 < len(records) < 24 and len({record_key(r) for r in records}) == len(records)
    assert Counter(r["attempt"] for r in records) == {0: len(records) // 2, 1: len(records) // 2}
    _script(tmp_path)  # the failure went away
    result = _scripted(failing, out, "--resume", "--ray", "--ray-replicas", "2")
    assert result.exit_code == 0, result.output
    assert_same_run(RunDir(out), RunDir(tmp_path / "one"))

    too_many = "need 3 CPUs; the Ray cluster has 0 GPUs (0 free) and 2 CPUs (2 free)"
    for args, message in (((str(tmp_path / "x"), "--ray", "--ray-replicas", "3"), too_many),
                          ((str(tmp_path / "y"), "--ray-replicas", "2"), "ray_replicas need a Ray cluster")):
        result = _scripted(failing, Path(args[0]), *args[1:])
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], result.output
        assert not Path(args[0]).exists()
    missing = invoke("eval", "--backend", "scripted", "--model", str(tmp_path / "nope.json"), "--ray",
                     "--ray-replicas", "1", "--out", str(tmp_path / "z"), "--quiet")
    assert missing.exit_code == 2 and "could not start" in missing.output and "is not a file" in missing.output
    assert len(missing.output.strip().splitlines()) == 1 and not (tmp_path / "z").exists()


def test_eval_many_shares_replicas_per_model_and_finishes_what_is_left(cluster, tmp_path):
    scripts = {"a": _script(tmp_path), "b": tmp_path / "b.json", "c": tmp_path / "missing.json"}
    scripts["b"].write_text(json.dumps({"default": "<REASONING>r</REASONING><SOLUTION>7</SOLUTION>"}))
    plan = tmp_path / "plan.toml"
    plan.write_text(f'out = "{tmp_path / "runs"}"\none_run_per_suite = true\n[settings]\nbackend = "scripted"\n'
                    'suites = ["synth_arith", "synth_charts"]\nlimit = 3\nn_samples = 2\ntemperature = 0.7\n'
                    'batch_size = 2\nray_replicas = 2\n'
                    + "".join(f'[[checkpoints]]\nname = "{name}"\nmodel = "{path}"\n' for name, path in scripts.items()))
    result = invoke("eval-many", str(plan), "--ray")
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1].startswith("error: 2 of 6 run(s) failed: c/synth_arith (")
    assert "could not start" in result.output and "is not a file" in result.output
    for name in ("a", "b"):  # one set of replicas per model, serving both of its runs
        assert f"starting 2 scripted replica(s) of {scripts[name]} for 2 run(s)" in result.output
        for suite in ("synth_arith", "synth_charts"):
            one = tmp_path / "one" / name / suite
            assert invoke("eval", "--backend", "scripted", "--model", str(scripts[name]), "--suite", suite,
                          "--limit", "3", "--n-samples", "2", "--temperature", "0.7", "--out", str(one),
                          "--quiet").exit_code == 0
            run = RunDir(tmp_path / "runs" / name / suite)
            assert_same_run(run, RunDir(one))
            assert ray_facts(run)["replicas"] == 2
    assert not (tmp_path / "runs" / "c" / "synth_arith").exists()
    again = invoke("eval-many", str(plan), "--ray")
    assert again.exit_code == 2 and again.output.count("already finished") == 4
