"""The evaluation loop with a scripted backend: run files, crash and resume, errors as records, rescore."""

from __future__ import annotations

import io
import json
from collections import Counter

import pytest
from PIL import Image

from core.errors import ConfigError, RunDirError
from harness.backends.scripted import ScriptedBackend
from harness.config import EvalConfig
from harness.run_schema import record_keys
from harness.runner import rescore, run_eval
from harness.runstore import RunDir
from suites import SUITES
from suites.base import Item, Suite


def gold_answer(request, attempt):
    """Answers synth questions correctly in the recipe's format, except every third request."""
    from suites import SUITES

    suite, sample_id = request.request_id.split("/", 1)
    item = {i.sample_id: i for i in SUITES[suite].load(_opts(suite))}[sample_id]
    wrong = int(sample_id.split("-")[-1]) % 3 == 0
    return f"<REASONING>thinking</REASONING><SOLUTION>{int(item.gold) + (1 if wrong else 0)}</SOLUTION>"


def _opts(suite):
    from suites.base import LoadOptions

    return LoadOptions(split=SUITES[suite].default_split)


def cfg(tmp_path, **kw):
    return EvalConfig.from_dict({"model": "scripted", "out": str(tmp_path / "run"), "limit": 6, **kw})


def test_run_writes_manifest_records_metrics(tmp_path):
    path = run_eval(cfg(tmp_path), backend=ScriptedBackend(gold_answer), progress=False)
    run = RunDir(path)
    manifest, records, metrics = run.read_manifest(), run.read_records(), run.read_metrics()
    assert manifest["status"] == "finished" and manifest["finished"]
    assert [s["name"] for s in manifest["suites"]] == ["synth_charts", "synth_arith"]
    for s in manifest["suites"]:
        assert s["n_items"] == 6 and len(s["content_sha256"]) == 64 and s["version"]
    assert manifest["harness"].keys() == {"commit", "dirty"}
    assert manifest["packages"]["torch"] and manifest["hardware"]["cpu_count"]
    assert len(records) == 12
    for r in records:
        assert set(record_keys()) == set(r), set(record_keys()) ^ set(r)
    charts = [r for r in records if r["suite"] == "synth_charts"]
    assert all(r["image"] and (run.images_dir / r["image"]).is_file() for r in charts)
    with Image.open(run.images_dir / charts[0]["image"]) as thumb:
        assert max(thumb.size) <= 256
    m = metrics["suites"]["synth_arith"]
    expected = sum(1 for r in records if r["suite"] == "synth_arith" and int(r["sample_id"][-5:]) % 3) / 6
    assert m["accuracy"] == pytest.approx(expected)
    assert m["format_compliance"] == 1.0
    assert metrics["memory"].get("note") or metrics["memory"]["nvml_peak_used_mib"]  # a note on CPU
    assert metrics["throughput"]["samples_per_s"] > 0


def test_killed_run_resumes_without_losing_or_repeating(tmp_path):
    crashing = ScriptedBackend(gold_answer, fail_after_calls=2)
    with pytest.raises(RuntimeError, match="simulated"):
        run_eval(cfg(tmp_path, batch_size=2), backend=crashing, progress=False)
    run = RunDir(tmp_path / "run")
    manifest = run.read_manifest()
    assert manifest["status"] == "error" and "simulated backend crash" in manifest["error"]["traceback"]
    done_before = {(r["suite"], r["sample_id"]) for r in run.read_records()}
    assert len(done_before) == 4
    # a torn half line, as a kill during a write leaves it
    with open(run.records_path, "a") as f:
        f.write('{"suite": "synth_charts", "sample_')
    resumed = ScriptedBackend(gold_answer)
    run_eval(cfg(tmp_path, batch_size=2), resume=True, backend=resumed, progress=False)
    records = run.read_records()
    keys = Counter((r["suite"], r["sample_id"], r["attempt"]) for r in records)
    assert len(keys) == 12 and max(keys.values()) == 1
    assert not done_before & {tuple(rid.split("/", 1)) for rid in resumed.requests_seen}
    manifest = run.read_manifest()
    assert manifest["status"] == "finished" and len(manifest["measurements"]["sessions"]) == 2


def test_existing_run_needs_resume_and_same_settings(tmp_path):
    run_eval(cfg(tmp_path), backend=ScriptedBackend(gold_answer), progress=False)
    with pytest.raises(RunDirError, match="--resume"):
        run_eval(cfg(tmp_path), backend=ScriptedBackend(gold_answer), progress=False)
    with pytest.raises(RunDirError, match="max_new_tokens"):
        run_eval(cfg(tmp_path, max_new_tokens=7), resume=True, backend=ScriptedBackend(gold_answer), progress=False)
    with pytest.raises(RunDirError, match="existing run directory"):
        run_eval(cfg(tmp_path, out=str(tmp_path / "nothing")), resume=True, progress=False)


def test_n_samples_gives_one_record_per_attempt(tmp_path):
    backend = ScriptedBackend(lambda r, a: "<REASONING>r</REASONING><SOLUTION>0</SOLUTION>" if a else "no")
    path = run_eval(cfg(tmp_path, suites=["synth_arith"], limit=3, n_samples=3, temperature=0.6),
                    backend=backend, progress=False)
    records = RunDir(path).read_records()
    assert sorted((r["sample_id"], r["attempt"]) for r in records) == sorted(
        (f"test-{i:05d}", a) for i in range(3) for a in range(3))
    m = RunDir(path).read_metrics()["suites"]["synth_arith"]
    assert m["attempts_per_item"] == 3 and m["format_compliance"] == pytest.approx(2 / 3)


def _png(color):
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, format="PNG")
    return buf.getvalue()


def test_bad_items_become_error_records(tmp_path, monkeypatch):
    items = [Item("broken", f"ok{i}", "1+1?", "2", "integer", image_bytes=_png("red")) for i in range(3)]
    items += [Item("broken", "corrupt", "1+2?", "3", "integer", image_bytes=b"not an image",
                   image_source="images/corrupt.png"),
              Item("broken", "malformed", "", "", "integer", error="row has no answer")]
    monkeypatch.setitem(SUITES, "broken", _suite("broken", items))
    backend = ScriptedBackend(lambda r, a: "<REASONING>r</REASONING><SOLUTION>2</SOLUTION>")
    path = run_eval(cfg(tmp_path, suites=["broken"]), backend=backend, progress=False)
    records = {r["sample_id"]: r for r in RunDir(path).read_records()}
    assert backend.requests_seen == ["broken/ok0", "broken/ok1", "broken/ok2"]
    assert records["ok0"]["correct"] and records["ok0"]["error"] is None
    assert records["corrupt"]["error"] == ("image images/corrupt.png could not be decoded: not a known image "
                                           "format (12 bytes starting b'not an i')")
    assert not records["corrupt"]["correct"]
    assert records["malformed"]["error"] == "row has no answer" and records["malformed"]["response"] is None
    m = RunDir(path).read_metrics()["suites"]["broken"]
    assert m["n"] == 5 and m["errors"] == 2 and m["accuracy"] == pytest.approx(3 / 5)


def _suite(name, items):
    return Suite(name=name, version="1", description="", source="test", splits={"test": len(items)},
                 default_split="test", load=lambda opts: items, question_text=lambda i: i.question,
                 score=SUITES["synth_arith"].score)


def test_rescore_recomputes_from_responses(tmp_path):
    path = run_eval(cfg(tmp_path), backend=ScriptedBackend(gold_answer), progress=False)
    run = RunDir(path)
    before = run.read_metrics()
    assert rescore(path)["suites"] == before["suites"]
    records = run.read_records()
    for r in records:  # make every response right, then rescore
        r["response"] = f"<REASONING>r</REASONING><SOLUTION>{r['gold']}</SOLUTION>"
    run.rewrite_records(records)
    after = rescore(path)
    assert all(m["accuracy"] == 1.0 for m in after["suites"].values())
    assert all(r["correct"] for r in run.read_records())


def test_config_is_closed_and_checked():
    with pytest.raises(ConfigError, match="unknown key"):
        EvalConfig.from_dict({"modle": "x"})
    with pytest.raises(ConfigError, match="temperature"):
        EvalConfig.from_dict({"n_samples": 4})
    with pytest.raises(ConfigError, match="prompt format"):
        EvalConfig.from_dict({"prompt_format": "xml"})
    with pytest.raises(ConfigError, match="no split"):
        run_eval(EvalConfig.from_dict({"model": "m", "suites": ["synth_arith"], "split": "dev"}),
                 backend=ScriptedBackend(gold_answer), progress=False)
    assert json.loads(json.dumps(EvalConfig().to_dict()))["prompt_format"] == "reasoning-solution"
