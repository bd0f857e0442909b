"""eval-many plans (checked whole, one-line errors; runs grouped onto shared replicas) and the replica's engine
thread (chunks of requests from several callers; on vllm, LoRA adapters switched per request), without Ray."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.errors import ConfigError
from harness.backends import GenerationParams, Request
from harness.cli import cli
from harness.config import EvalConfig
from harness.eval_many import read_plan, replica_group
from harness.ray_replica import ReplicaCore
from harness.tiny_model import default_tiny_model
from tests.fake_vllm import FakeLLM, fake_api

PLAN = """
out = "{out}"
one_run_per_suite = true
[settings]
backend = "scripted"
suites = ["synth_arith", "synth_charts"]
limit = 3
[[checkpoints]]
name = "a"
model = "{script}"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plan.toml"
    path.write_text(text)
    return path


def test_a_plan_is_runs_of_checkpoints_times_suites(tmp_path):
    plan = read_plan(write(tmp_path, PLAN.format(out=tmp_path / "runs", script="s.json")
                           + '[[checkpoints]]\nname = "b"\nmodel = "t.json"\n'))
    runs = plan.runs()
    assert [r.name for r in runs] == ["a/synth_arith", "a/synth_charts", "b/synth_arith", "b/synth_charts"]
    assert runs[3].cfg.out == str(tmp_path / "runs" / "b" / "synth_charts") and runs[3].cfg.suites == ["synth_charts"]
    assert runs[3].cfg.model == "t.json" and runs[3].cfg.limit == 3
    assert replica_group(runs[0].cfg)[0] == replica_group(runs[1].cfg)[0] != replica_group(runs[2].cfg)[0]
    whole = read_plan(write(tmp_path, PLAN.format(out="runs", script="s.json").replace("true", "false")))
    assert [(r.name, r.cfg.out, r.cfg.suites) for r in whole.runs()] == [("a", "runs/a", ["synth_arith", "synth_charts"])]


@pytest.mark.parametrize(("edit", "message"), [
    (("limit = 3", "limit = 0"), "plan run a: limit must be at least 1, got 0"),
    (("limit = 3", "limti = 3"), "plan run a: unknown key(s) limti"),
    (("limit = 3", 'model = "x"'), "[settings] may not hold model"),
    (('name = "a"', 'name = "a/b"'), "checkpoint name 'a/b' must be letters"),
    (('name = "a"', 'nmae = "a"'), "checkpoints[0]: unknown key(s) nmae"),
    (('model = "{script}"', ""), "checkpoints[0] needs model"),
    (("one_run_per_suite = true", "one_run_per_suite = 1"), "one_run_per_suite must be true or false, got 1"),
    (('out = "{out}"', 'outdir = "x"'), "unknown key(s) outdir"),
    (("[[checkpoints]]", "[[checkpoints]]\nname = 'a'\nmodel = 'x'\n[[checkpoints]]"), "appear more than once"),
])
def test_a_bad_plan_is_one_line_before_anything_runs(tmp_path, edit, message):
    path = write(tmp_path, PLAN.replace(*edit).format(out=tmp_path / "runs", script="s.json"))
    with pytest.raises(ConfigError) as caught:
        read_plan(path)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    result = CliRunner().invoke(cli, ["eval-many", str(path)])
    assert result.exit_code == 2 and result.output.startswith("error: ") and message in result.output
    assert not (tmp_path / "runs").exists()


def test_check_lists_the_runs(tmp_path):
    result = CliRunner().invoke(cli, ["eval-many", str(write(tmp_path, PLAN.format(out="runs", script="s.json"))),
                                      "--check"])
    assert result.exit_code == 0 and result.output.splitlines() == [
        "a/synth_arith\truns/a/synth_arith\ts.json\tsynth_arith", "a/synth_charts\truns/a/synth_charts\ts.json\tsynth_charts"]


# --- vllm: one base model's replicas serve its adapters -----------------------------------------------


@pytest.fixture(scope="module")
def tiny() -> str:
    return str(default_tiny_model("qwen2_5_vl"))


@pytest.fixture(scope="module")
def adapters(tiny, tmp_path_factory) -> list[str]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    out = []
    for name, rank in (("gspo-40", 4), ("grpo-40", 8)):
        base = AutoModelForImageTextToText.from_pretrained(tiny)
        torch.manual_seed(rank)
        config = LoraConfig(r=rank, lora_alpha=8, target_modules=r".*language_model.*\.q_proj", init_lora_weights=False)
        path = tmp_path_factory.mktemp(name)
        get_peft_model(base, config).save_pretrained(path)
        out.append(str(path))
    return out


def test_vllm_runs_of_one_base_share_replicas_and_merged_adapters_do_not(tiny, adapters):
    def group(**settings):
        return replica_group(EvalConfig.from_dict({"backend": "vllm", **settings}))

    base_key, base_model, no_adapter, options = group(model=tiny)
    key, model, adapter, _ = group(model=adapters[0])
    assert key == base_key == group(model=tiny, adapter=adapters[1])[0] and model == base_model == tiny
    assert (no_adapter, adapter, options["adapter"]) == (None, adapters[0], None)
    assert group(model=adapters[0], merge_lora=True)[0] != base_key  # a merged adapter is another model
    assert group(model=tiny, max_new_tokens=64)[0] == base_key  # generation settings are per run
    assert group(model=tiny, gpu_memory_utilization=0.5)[0] != base_key


def request(request_id: str) -> Request:
    return Request(request_id, [{"role": "user", "content": [{"type": "text", "text": f"Solve {request_id}."}]}])


def test_a_replica_switches_adapters_per_request_and_serves_chunks_from_several_callers(tiny, adapters):
    core = ReplicaCore("vllm", tiny, {"api": fake_api(), "serve_adapters": adapters, "max_model_len": 2048})
    try:
        engine = FakeLLM.instances[-1]
        assert (engine.kwargs["enable_lora"], engine.kwargs["max_lora_rank"], engine.kwargs["max_loras"]) == (True, 8, 1)
        params = GenerationParams(max_new_tokens=5, temperature=0.7, n=2)
        answers: dict[str | None, list] = {}

        def call(adapter: str | None) -> None:
            ids = [f"{adapter and Path(adapter).name}-{i}" for i in range(5)]
            answers[adapter] = core.generate([request(i) for i in ids], params, 8, adapter)

        callers = [threading.Thread(target=call, args=(a,)) for a in (*adapters, None)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(timeout=60)
        for adapter, completions in answers.items():
            assert sorted((c.request_id, c.attempt) for c in completions) == \
                sorted((f"{adapter and Path(adapter).name}-{i}", a) for i in range(5) for a in range(2))
        loras = {prompt["prompt"]: lora for _, prompt, _, lora in engine.llm_engine.added}
        for prompt, lora in loras.items():
            wanted = next((a for a in adapters if f"Solve {Path(a).name}-" in prompt), None)
            assert (lora.lora_path if lora else None) == wanted
        facts = core.describe(adapters[1])
        assert facts["adapter"] == adapters[1] and facts["lora"]["rank"] == 8 and facts["base_model"] == tiny
        assert core.describe()["lora"] is None
        with pytest.raises(ConfigError, match="is not served"):
            core.generate([request("x")], params, 8, "/elsewhere")
    finally:
        core.close()
