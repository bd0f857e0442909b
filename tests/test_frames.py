"""Loading runs (reports.runs) and the pandas entry point (reports.frames) on handwritten run directories."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from core.errors import RunDirError
from reports.frames import metrics_frame, records_frame
from reports.runs import comparability, load_run, load_runs
from tests.fixtures.run_fixture import write_checkpoint, write_run


@pytest.fixture
def two_runs(tmp_path):
    items = [{"sample_id": f"q{i}", "correct": i < 3, "meta": {"task": "geometry" if i % 2 else "algebra"},
              "scores": {"flexible_extract": {"extracted": "1", "correct": i < 4}}} for i in range(5)]
    base = write_run(tmp_path, "base", {"synth_arith": items, "synth_charts": items[:2]}, throughput=20.0)
    ckpt = {"dir": str(tmp_path / "moved"), "algo": "grpo", "engine": "trl", "base_model": "org/Qwen-VL",
            "step": 40, "effectively_on_policy": True, "overlap": None}
    cand_items = [{**item, "correct": not item["correct"]} for item in items]
    cand = write_run(tmp_path, "cand", {"synth_arith": cand_items}, checkpoint=ckpt,
                     memory={"peak_allocated_mib": 900.0, "peak_reserved_mib": 1000.0, "nvml_peak_used_mib": 1200})
    return base, cand


def test_records_frame_has_one_row_per_record_with_run_columns(two_runs):
    base, cand = two_runs
    df = records_frame([base, cand])
    assert len(df) == 5 + 2 + 5
    assert set(df["run_label"]) == {"base", "Qwen-VL grpo step 40"}
    assert set(df["run"]) == {"base", "cand"}
    assert set(df["model"]) == {"tiny"}
    cand_rows = df[df["run"] == "cand"]
    assert set(cand_rows["algo"]) == {"grpo"} and set(cand_rows["checkpoint_step"]) == {40}
    # nested fields are flattened, the raw nested columns are gone
    for column in ("rewards.format", "rewards.correctness", "rewards.total", "meta.task", "target.answer_type",
                   "scores.flexible_extract.correct"):
        assert column in df.columns, column
    assert "rewards" not in df.columns and "meta" not in df.columns
    acc = df.groupby(["run", "suite"])["correct"].mean()
    assert acc[("base", "synth_arith")] == pytest.approx(0.6)
    assert acc[("cand", "synth_arith")] == pytest.approx(0.4)
    base_arith = df[(df["run"] == "base") & (df["suite"] == "synth_arith")]
    by_task = base_arith.groupby("meta.task")["correct"].sum()
    assert by_task["algebra"] == 2 and by_task["geometry"] == 1  # q0, q2 / q1
    assert df.loc[df["correct"], "rewards.correctness"].gt(0).all()


def test_metrics_frame_has_one_row_per_run_and_suite(two_runs):
    base, cand = two_runs
    m = metrics_frame([base, load_run(cand)])  # paths and loaded runs mix
    assert list(zip(m["run"], m["suite"], strict=True)) == [("base", "synth_arith"), ("base", "synth_charts"),
                                                            ("cand", "synth_arith")]
    row = m.iloc[0]
    metrics = load_run(base).metrics["suites"]["synth_arith"]
    assert row["n"] == 5 and row["accuracy"] == pytest.approx(0.6)
    assert [row["ci_low"], row["ci_high"]] == pytest.approx(metrics["accuracy_ci95"])
    assert row["format_compliance"] == 1.0 and row["truncation_rate"] == 0.0
    assert row["mean_output_tokens"] == pytest.approx(metrics["mean_output_tokens"])
    assert row["rewards_mean.total"] == pytest.approx(metrics["rewards_mean"]["total"])
    assert row["samples_per_s"] == pytest.approx(20.0) and row["split"] == "test"
    assert pd.isna(m.iloc[0]["peak_allocated_mib"])  # the CPU run measured no GPU memory
    assert m.iloc[2]["nvml_peak_used_mib"] == 1200 and m.iloc[2]["accuracy"] == pytest.approx(0.4)
    pivot = m.pivot(index="suite", columns="run_label", values="accuracy")
    assert pivot.loc["synth_arith", "base"] == pytest.approx(0.6)


def test_frames_accept_one_path_and_refuse_a_bad_one(two_runs, tmp_path):
    base, _ = two_runs
    assert len(metrics_frame(base)) == 2
    assert len(records_frame(str(base))) == 7
    with pytest.raises(RunDirError, match="run directory not found"):
        records_frame([tmp_path / "missing"])


# --- loading runs (reports.runs) -------------------------------------------------------------------------
def test_load_run_recomputes_missing_metrics_and_reads_training_files(tmp_path):
    items = [{"sample_id": f"q{i}", "correct": i % 2 == 0} for i in range(6)]
    ckpt_dir = write_checkpoint(tmp_path / "ckpt", "gspo", [{"step": 1, "loss": 0.5, "reward": 1.2},
                                                           {"step": 2, "loss": 0.4}],
                                [{"step": 10, "run_dir": "evals/step-000010"}])
    write_run(ckpt_dir / "evals", "step-000010", {"synth_arith": items})
    ckpt = {"dir": str(ckpt_dir), "algo": "gspo", "engine": "trl", "base_model": "org/Qwen-VL", "step": 20,
            "effectively_on_policy": True, "overlap": None}
    path = write_run(tmp_path, "run", {"synth_arith": items}, checkpoint=ckpt)
    written = load_run(path).metrics
    (path / "metrics.json").unlink()
    run = load_run(path)
    assert run.metrics["suites"] == written["suites"]
    assert run.label == "Qwen-VL gspo step 20" and run.checkpoint["step"] == 20
    assert [row["step"] for row in run.train_log] == [1, 2]
    assert run.periodic_evals == [{"step": 10, "run_dir": "evals/step-000010",
                                   "path": str(ckpt_dir / "evals" / "step-000010")}]
    assert load_run(run.periodic_evals[0]["path"]).item_correct("synth_arith") == run.item_correct("synth_arith")
    assert run.item_correct("synth_arith") == {f"q{i}": float(i % 2 == 0) for i in range(6)}


def test_a_moved_checkpoint_dir_leaves_no_training_data(tmp_path):
    ckpt = {"dir": str(tmp_path / "elsewhere"), "algo": "grpo", "step": 5}
    run = load_run(write_run(tmp_path, "run", {"s": [{"sample_id": "a", "correct": True}]}, checkpoint=ckpt))
    assert run.checkpoint["algo"] == "grpo" and run.train_log is None and run.periodic_evals is None


def test_load_run_refuses_broken_directories(tmp_path):
    path = write_run(tmp_path, "run", {"s": [{"sample_id": "a", "correct": True}]})
    (path / "records.jsonl").write_text('{"suite": "s", "sample_id": "a"}\n')
    with pytest.raises(RunDirError, match=r"records.jsonl:1 lacks attempt"):
        load_run(path)
    (path / "records.jsonl").unlink()
    with pytest.raises(RunDirError, match="records.jsonl not found"):
        load_run(path)
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps({**manifest, "schema_version": 99}))
    with pytest.raises(RunDirError, match="schema version 99 is not supported"):
        load_run(path)
    (path / "manifest.json").unlink()
    with pytest.raises(RunDirError, match="manifest.json not found"):
        load_run(path)


def test_labels_are_unique_and_comparability_lists_every_difference(tmp_path):
    items = [{"sample_id": "a", "correct": True}, {"sample_id": "b", "correct": False}]
    overlap = {"n": 1, "suites": {"s": ["a"]}}
    paths = [write_run(tmp_path, "base", {"s": items, "t": items}),
             write_run(tmp_path, "other", {"s": items[:1]}, prompt_format="boxed",
                       generation={"temperature": 0.6, "seed": 3}, suite_overrides={"s": {"variant": "numeric"}},
                       checkpoint={"dir": None, "algo": "gspo", "base_model": "m", "step": 1, "overlap": overlap}),
             write_run(tmp_path, "same", {"s": items, "t": items}, generation={"seed": 7})]
    runs = load_runs(paths + [paths[0]])
    assert [r.label for r in runs] == ["base", "m gspo step 1", "same", "base #2"]
    assert comparability([runs[0], runs[2], runs[3]]) == []  # greedy decoding: the seed does not matter
    other = "m gspo step 1"
    sha = [r.suite_entry("s")["content_sha256"][:12] for r in runs[:2]]
    generation = f"generation differs between base and {other}: seed 0 vs 3, temperature 0.0 vs 0.6"
    fmt = f"prompt format 'reasoning-solution' in base, 'boxed' in {other}"
    assert comparability(runs[:2]) == [
        f"{other} has no suite t",
        f"s: items differ between base and {other} (content_sha256 {sha[0]} vs {sha[1]})",
        f"s: variant None in base, 'numeric' in {other}",
        fmt,
        generation,
        f"{other}: 1 item(s) of s were in its training data",
    ]
    assert comparability(runs[:2], suites=["t"]) == [f"{other} has no suite t", fmt, generation]
