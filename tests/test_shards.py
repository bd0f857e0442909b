"""`harness eval --shard K/N` and `harness merge`: shards put back together equal a one-process run item for item;
shards that do not belong together are refused in one line."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.config import EvalConfig
from harness.runner import plan_suites
from harness.runstore import RunDir
from harness.sharding import assignment, parse_shard
from suites.base import Item

SUITES = ("synth_arith", "synth_charts")
TIMING_KEYS = ("latency_s", "ttft_s", "request_latency_s", "batch")


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def one_error_line(result, *expected: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for text in expected:
        assert text in lines[0], lines[0]


def without_timings(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]


@pytest.mark.parametrize("n_items", [0, 1, 7, 30, 101])
@pytest.mark.parametrize("count", [1, 2, 3, 8])
def test_shares_are_balanced_disjoint_and_the_same_on_every_call(n_items, count):
    ids = [f"test-{i:05d}" for i in range(n_items)]
    shard_of = assignment("synth_arith", ids, count)
    sizes = Counter(shard_of.values())
    assert sorted(shard_of) == ids and set(sizes) <= set(range(1, count + 1))
    assert max(sizes.values(), default=0) - min([sizes.get(k, 0) for k in range(1, count + 1)]) <= 1
    assert assignment("synth_arith", list(reversed(ids)), count) == shard_of  # the order given does not matter
    if count > 1 and n_items >= 30:
        assert [shard_of[i] for i in ids[:count]] != list(range(1, count + 1))  # dealt by hash, not position


def test_a_shard_evaluates_its_share_and_records_the_whole_suite(tmp_path):
    whole = plan_suites(EvalConfig.from_dict({"suites": ["synth_arith"], "limit": 10}))[0]
    shares = [plan_suites(EvalConfig.from_dict({"suites": ["synth_arith"], "limit": 10, "shard": f"{k}/3"}))[0]
              for k in (1, 2, 3)]
    assert sorted(i.sample_id for s in shares for i in s.items) == sorted(i.sample_id for i in whole.items)
    assert sorted(len(s.items) for s in shares) == [3, 3, 4]
    cfg = EvalConfig.from_dict({"suites": ["synth_arith"], "limit": 10, "shard": "2/3"})
    entry = shares[1].manifest_entry(cfg)
    assert entry["n_items"] == len(shares[1].items)
    assert entry["shard"] == {"index": 2, "count": 3, "n_items": 10, "content_sha256": whole.content_sha256(),
                              "item_ids": [i.sample_id for i in whole.items]}
    for bad in ("0/3", "4/3", "3", "a/b", "1/0"):
        with pytest.raises(Exception, match="shard must be K/N"):
            parse_shard(bad)


def _script(tmp_path: Path, name: str = "script.json", wrong_every: int = 3) -> Path:
    """Right, then wrong answers per attempt for every item of the two suites (every `wrong_every`-th: both wrong)."""
    cfg = EvalConfig.from_dict({"suites": list(SUITES), "limit": 10})
    responses = {}
    for plan in plan_suites(cfg):
        for i, item in enumerate(plan.items):
            right = f"<REASONING>work</REASONING><SOLUTION>{item.gold}</SOLUTION>"
            wrong = "<REASONING>work</REASONING><SOLUTION>-1</SOLUTION>"
            responses[f"{item.suite}/{item.sample_id}"] = [wrong if i % wrong_every == 0 else right, wrong]
    path = tmp_path / name
    path.write_text(json.dumps({"responses": responses}))
    return path


def _eval(out: Path, script: Path, *extra: str):
    args = ["eval", "--backend", "scripted", "--model", str(script), "--limit", "10", "--n-samples", "2",
            "--temperature", "0.7", "--batch-size", "3", "--out", str(out), "--quiet", *extra]
    for suite in SUITES:
        args += ["--suite", suite]
    return invoke(*args)


def _shards(tmp_path: Path, script: Path, count: int = 3, **extra: tuple[str, ...]) -> list[Path]:
    paths = []
    for k in range(1, count + 1):
        path = tmp_path / f"shard-{k}"
        result = _eval(path, script, "--shard", f"{k}/{count}", *extra.get(str(k), ()))
        assert result.exit_code == 0, result.output
        paths.append(path)
    return paths


def test_merged_shards_equal_the_one_process_run_item_for_item(tmp_path):
    script = _script(tmp_path)
    assert _eval(tmp_path / "whole", script).exit_code == 0
    shards = _shards(tmp_path, script)
    share = RunDir(shards[1]).read_manifest()
    assert share["config"]["shard"] == "2/3" and share["suites"][0]["shard"]["count"] == 3
    assert share["suites"][0]["n_items"] < 10

    result = invoke("merge", *map(str, reversed(shards)), "-o", str(tmp_path / "merged"))
    assert result.exit_code == 0, result.output
    whole, merged = RunDir(tmp_path / "whole"), RunDir(tmp_path / "merged")
    assert without_timings(merged.read_records()) == without_timings(whole.read_records())
    mw, mm = whole.read_manifest(), merged.read_manifest()
    assert mm["suites"] == mw["suites"] and mm["generation"] == mw["generation"]
    assert mm["status"] == "finished" and mm["config"]["shard"] is None
    assert [s["index"] for s in mm["shards"]] == [1, 2, 3]
    assert sorted(s["shard"] for s in mm["measurements"]["sessions"]) == ["1/3", "2/3", "3/3"]
    metrics_w, metrics_m = whole.read_metrics(), merged.read_metrics()
    assert metrics_m["suites"] == metrics_w["suites"] and metrics_m["completeness"] == metrics_w["completeness"]
    assert metrics_m["suites"]["synth_arith"]["accuracy"] == pytest.approx(0.3)
    assert {r["batch"].split("-")[0] for r in merged.read_records()} == {"0", "1", "2"}  # one session per shard

    gate = invoke("gate", "--baseline", str(whole.path), "--candidate", str(merged.path), "--json")
    assert gate.exit_code == 0 and json.loads(gate.stdout)["warnings"] == []
    resumed = invoke("eval", "--out", str(merged.path), "--resume")
    assert resumed.exit_code == 0 and "already finished" in resumed.output


def test_merged_tiny_model_shards_equal_the_one_process_run(tmp_path, tiny_model_dir):
    def run(out: Path, *extra: str) -> None:
        result = invoke("eval", "--model", str(tiny_model_dir), "--suite", "synth_arith", "--limit", "5",
                        "--max-new-tokens", "6", "--batch-size", "1", "--out", str(out), "--quiet", *extra)
        assert result.exit_code == 0, result.output

    run(tmp_path / "whole")
    for k in (1, 2, 3):
        run(tmp_path / f"s{k}", "--shard", f"{k}/3")
    assert invoke("merge", *(str(tmp_path / f"s{k}") for k in (1, 2, 3)), "-o", str(tmp_path / "m")).exit_code == 0
    whole, merged = RunDir(tmp_path / "whole").read_records(), RunDir(tmp_path / "m").read_records()
    assert [r["response"] for r in merged] == [r["response"] for r in whole]
    assert without_timings(merged) == without_timings(whole)


def test_a_missing_repeated_or_foreign_shard_is_one_line_and_writes_nothing(tmp_path):
    script = _script(tmp_path)
    s1, s2, s3 = _shards(tmp_path, script)
    out = str(tmp_path / "merged")
    one_error_line(invoke("merge", str(s1), str(s3), "-o", out), "shard(s) 2/3 missing", "item(s) in none of",
                   "synth_")
    one_error_line(invoke("merge", str(s1), str(s2), str(s2), str(s3), "-o", out), "shard 2/3 is given twice")

    other = _shards(tmp_path / "other", script, **{"2": ("--max-new-tokens", "64")})
    one_error_line(invoke("merge", str(s1), str(other[1]), str(s3), "-o", out), "differ in max_new_tokens: 1024 vs 64")
    halves = _shards(tmp_path / "halves", script, count=2)
    one_error_line(invoke("merge", str(s1), str(halves[1]), "-o", out), "different numbers of shares")
    _script(tmp_path, wrong_every=2)  # the same script file, other responses: another "model"
    assert _eval(tmp_path / "model-2", script, "--shard", "2/3").exit_code == 0
    one_error_line(invoke("merge", str(s1), str(tmp_path / "model-2"), str(s3), "-o", out),
                   "evaluated different models: model.script_sha256")

    whole = tmp_path / "whole"
    assert _eval(whole, script).exit_code == 0
    one_error_line(invoke("merge", str(whole), str(s2), "-o", out), "is not a shard")
    lines = (s2 / "records.jsonl").read_text().splitlines(keepends=True)
    (s2 / "records.jsonl").write_text("".join(lines[:-1]))
    one_error_line(invoke("merge", str(s1), str(s2), str(s3), "-o", out), f"shard {s2} is not finished",
                   "--resume")
    assert not Path(out).exists()


def test_shard_settings_are_checked_on_resume_and_on_the_command_line(tmp_path):
    script = _script(tmp_path)
    (s1,) = _shards(tmp_path, script, count=1)
    one_error_line(_eval(s1, script, "--shard", "1/2", "--resume"), "cannot resume: shard was '1/1'")
    one_error_line(_eval(tmp_path / "x", script, "--shard", "5/4"), "shard must be K/N")


def test_items_of_a_shard_keep_the_suite_order():
    from harness.sharding import items_of_shard

    items = [Item(suite="s", sample_id=f"q{i}", question="", gold="1") for i in range(12)]
    for k in (1, 2, 3):
        mine = items_of_shard(items, k, 3)
        assert mine == sorted(mine, key=items.index) and len(mine) == 4
