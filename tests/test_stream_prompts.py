"""A stream's prompts, built by threads ahead of the engine: the same prompts, images and thumbnails as a
batch backend gets, and a thumbnail that cannot be written stops the run, which a resume then finishes."""

from __future__ import annotations

import pytest

from core.errors import StorageError
from harness.backends.scripted import ScriptedBackend
from harness.backends.vllm_backend import VllmBackend
from harness.config import EvalConfig
from harness.runner import run_eval
from harness.runstore import RunDir
from harness.tiny_model import default_tiny_model
from tests.fake_vllm import FakeLLM, fake_api


def vllm_cfg(tmp_path, name, **kw):
    return EvalConfig.from_dict({"model": "tiny", "backend": "vllm", "out": str(tmp_path / name), "limit": 6,
                                 "suites": ["synth_charts"], "image_size": [96, 80], "max_new_tokens": 8, **kw})


def test_a_stream_gets_the_same_prompts_and_thumbnails_as_a_batch_backend(tmp_path):
    backend = VllmBackend(str(default_tiny_model("qwen2_5_vl")), api=fake_api())
    streamed = RunDir(run_eval(vllm_cfg(tmp_path, "stream"), backend=backend, progress=False))
    added = FakeLLM.instances[-1].llm_engine.added
    inline = RunDir(run_eval(vllm_cfg(tmp_path, "inline", backend="scripted"), backend=ScriptedBackend(lambda request, attempt: "1"),
                             progress=False))
    assert streamed.read_manifest()["measurements"]["sessions"][0]["prepare_s"] > 0
    by_key = {r["sample_id"]: r for r in inline.read_records()}
    for record in streamed.read_records():
        other = by_key[record["sample_id"]]
        assert record["prompt_sha256"] == other["prompt_sha256"] and record["image"] == other["image"]
        assert (streamed.images_dir / record["image"]).read_bytes() == (inline.images_dir / other["image"]).read_bytes()
    sent = [prompt["multi_modal_data"]["image"][0] for _, prompt, _, _ in added]
    assert len(sent) == 6 and all(image.size == (96, 80) and image.mode == "RGB" for image in sent)


def test_a_thumbnail_a_worker_cannot_write_stops_a_stream_and_resume_finishes_it(tmp_path):
    tiny = str(default_tiny_model("qwen2_5_vl"))
    run = RunDir(tmp_path / "stream")
    with pytest.raises(RuntimeError, match="simulated engine failure"):  # a run left half done
        run_eval(vllm_cfg(tmp_path, "stream", max_concurrency=2), backend=VllmBackend(tiny, api=fake_api(fail_after_steps=5)),
                 progress=False)
    done = len(run.read_records())
    assert 0 < done < 6
    thumbnails = run.images_dir.with_name("kept")
    run.images_dir.rename(thumbnails)
    run.images_dir.write_text("a file where the thumbnails go")
    with pytest.raises(StorageError, match=f"cannot write {run.images_dir}/synth_charts__"):
        run_eval(vllm_cfg(tmp_path, "stream", max_concurrency=2), resume=True,
                 backend=VllmBackend(tiny, api=fake_api()), progress=False)
    assert len(run.read_records()) == done and run.read_manifest()["status"] == "error"
    run.images_dir.unlink()
    thumbnails.rename(run.images_dir)
    run_eval(vllm_cfg(tmp_path, "stream", max_concurrency=2), resume=True, backend=VllmBackend(tiny, api=fake_api()),
             progress=False)
    records = run.read_records()
    assert len(records) == 6 and all(r["error"] is None and (run.images_dir / r["image"]).is_file() for r in records)
