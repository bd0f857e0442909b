"""vLLM rollouts on a CPU: what the trainer hands TRL for each rollout generator, TRL's own vLLM
generation code (trl.generation.vllm_generation, colocate branch) run against a stand-in engine whose
SamplingParams refuses what vLLM's refuses, and the check that vLLM generated from the prompt the
processor built, on the tiny model's real prompts (image tokens included). vLLM itself needs a GPU.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from transformers import AutoProcessor

from core.errors import ConfigError, ModelError
from harness.models import image_pad_id, vision_token_ids
from suites import get_suite
from suites.base import LoadOptions
from tests.fake_vllm import FakeSamplingParams
from trainers.config import TrainConfig
from trainers.data import to_trl_dataset
from trainers.rollouts import (
    SUPPRESS_BIAS,
    check_rollout_engine,
    check_rollout_prompts,
    collapse_image_runs,
    prompt_mismatch,
    rollout_generation_kwargs,
)
from trainers.train import grpo_kwargs


def cfg_of(**over):
    return TrainConfig.from_dict({"max_steps": 2, **over})[0]


# --- what the trainer hands GRPOConfig ------------------------------------------------------------------
def test_transformers_rollouts_suppress_and_vllm_rollouts_bias_the_vision_tokens(tmp_path):
    plain = grpo_kwargs(cfg_of(), "trl", "cpu", tmp_path, [151655, 151656])[0]
    assert plain["generation_kwargs"] == {"suppress_tokens": [151655, 151656]}
    assert "use_vllm" not in plain and "vllm_mode" not in plain

    trl_vllm = grpo_kwargs(cfg_of(use_vllm=True, gpu_memory_utilization=0.45, vllm_standby=True), "trl", "cuda",
                           tmp_path, [151655, 151656])[0]
    assert trl_vllm["generation_kwargs"] == {"logit_bias": {151655: SUPPRESS_BIAS, 151656: SUPPRESS_BIAS}}
    assert {k: trl_vllm[k] for k in ("use_vllm", "vllm_mode", "vllm_gpu_memory_utilization", "vllm_enable_sleep_mode",
                                     "vllm_max_model_length", "vllm_importance_sampling_correction")} == {
        "use_vllm": True, "vllm_mode": "colocate", "vllm_gpu_memory_utilization": 0.45,
        "vllm_enable_sleep_mode": True, "vllm_max_model_length": 4096, "vllm_importance_sampling_correction": True}

    server = grpo_kwargs(cfg_of(use_vllm=True, vllm_mode="server", vllm_server_base_url="http://10.0.0.2:8000"),
                         "trl", "cuda", tmp_path, [7])[0]
    assert server["vllm_mode"] == "server" and server["vllm_server_base_url"] == "http://10.0.0.2:8000"
    assert "vllm_gpu_memory_utilization" not in server  # the server owns its memory
    json.dumps(server["generation_kwargs"], allow_nan=False)  # server mode sends them as JSON: no -inf

    # Unsloth builds its engine at load (fast_inference, gpu_memory_utilization) and generates colocated.
    unsloth = grpo_kwargs(cfg_of(fast_inference=True), "unsloth", "cuda", tmp_path, [7])[0]
    assert unsloth["generation_kwargs"] == {"logit_bias": {7: SUPPRESS_BIAS}}
    assert (unsloth["use_vllm"], unsloth["vllm_mode"]) == (True, "colocate")
    assert "vllm_gpu_memory_utilization" not in unsloth
    assert grpo_kwargs(cfg_of(), "unsloth", "cuda", tmp_path, [7])[0]["generation_kwargs"] == {"suppress_tokens": [7]}
    assert rollout_generation_kwargs([], True) is None

    from trl import GRPOConfig  # TRL 1.15 accepts every value given (on a CPU: no vllm import at config time)

    args = GRPOConfig(**{**trl_vllm, "output_dir": str(tmp_path / "o"), "use_cpu": True, "bf16": False})
    assert args.use_vllm and args.generation_kwargs == trl_vllm["generation_kwargs"]


@pytest.mark.parametrize(("over", "engine", "device", "says"), [
    ({"use_vllm": True}, "unsloth", "cuda", "use_vllm is the trl engine's"),
    ({"fast_inference": True}, "trl", "cuda", "fast_inference is the unsloth engine's"),
    ({"use_vllm": True}, "trl", "cpu", "need a CUDA GPU; this run trains on cpu"),
    ({"fast_inference": True, "finetune_vision_layers": True}, "unsloth", "cuda", "cannot train the vision tower"),
    ({"use_vllm": True}, "trl", "cuda", "need the vllm package"),  # not installed on this machine
])
def test_vllm_rollouts_where_they_cannot_run_fail_in_one_line(over, engine, device, says):
    with pytest.raises(ConfigError, match=says) as caught:
        check_rollout_engine(cfg_of(**over), engine, device)
    assert "\n" not in str(caught.value)


def test_vllm_settings_are_checked_and_trl_args_cannot_set_them_twice():
    with pytest.raises(ConfigError, match="unknown vllm_mode 'remote'"):
        cfg_of(vllm_mode="remote")
    with pytest.raises(ConfigError, match=r"gpu_memory_utilization must be in \(0, 1\]"):
        cfg_of(gpu_memory_utilization=1.5)
    for key, ours in (("vllm_gpu_memory_utilization", "gpu_memory_utilization"), ("use_vllm", "use_vllm"),
                      ("vllm_enable_sleep_mode", "vllm_standby")):
        with pytest.raises(ConfigError, match=f"set it as the top-level key {ours} instead"):
            cfg_of(trl_args={key: 0.5})


def test_the_harness_train_flag_sets_trl_vllm_rollouts():
    from click.testing import CliRunner

    from harness.cli import cli

    result = CliRunner().invoke(cli, ["train", "--engine", "trl", "--set", "use_vllm=true", "--max-steps", "1"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: vLLM rollouts (use_vllm) need a CUDA GPU; this run trains on cpu"]


# --- TRL's vLLM generation code with the kwargs above -----------------------------------------------------
class EchoEngine:
    """vLLM's LLM.generate for token prompts: outputs report the prompt the engine generated from (here the
    prompt as it was sent)."""

    def __init__(self, image_token: int):
        self.image_token, self.calls = image_token, []

    def generate(self, prompts, sampling_params, use_tqdm=True):
        self.calls.append((prompts, sampling_params))
        outputs = []
        for prompt in prompts:
            ids = list(prompt["prompt_token_ids"])
            sample = SimpleNamespace(token_ids=[11, 12, 13], logprobs=[
                {t: SimpleNamespace(rank=1, logprob=-0.5)} for t in (11, 12, 13)])
            outputs.append(SimpleNamespace(prompt_token_ids=ids, outputs=[sample]))
        return outputs


def trl_generator(monkeypatch, engine, generation_kwargs):
    """TRL's VLLMGeneration in colocate mode around `engine`, as GRPOTrainer builds it from GRPOConfig."""
    import torch
    from trl.generation import vllm_generation

    monkeypatch.setattr(vllm_generation, "SamplingParams", FakeSamplingParams, raising=False)
    generator = object.__new__(vllm_generation.VLLMGeneration)
    generator.__dict__.update(mode="colocate", enable_sleep_mode=False, structured_outputs_regex=None,
                              tensor_parallel_size=1, temperature=1.0, top_p=1.0, top_k=0, min_p=0.0,
                              repetition_penalty=1.0, max_completion_length=8, logprobs=0, llm=engine,
                              generation_kwargs=generation_kwargs or {}, accelerator=None, model=torch.nn.Module())
    return generator


@pytest.fixture(scope="module")
def tiny_prompts(tiny_model_dir):
    """The tiny model's rollout prompts as TRL builds them: the trainer's dataset rows, their image put in
    by TRL's prepare_multimodal_messages, rendered and tokenized by the processor."""
    from trl.data_utils import prepare_multimodal_messages

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    items = get_suite("synth_charts").load(LoadOptions(split="train"))[:2]
    rows = list(to_trl_dataset(items, cfg_of()))
    ids = []
    for row in rows:
        conversation = prepare_multimodal_messages(row["prompt"], images=[row["image"]])
        ids.append(processor.apply_chat_template(conversation=[conversation], add_generation_prompt=True,
                                                 tokenize=True, return_dict=True)["input_ids"][0])
    images = [[row["image"]] for row in rows]
    return processor, [list(i) for i in ids], images


def test_trl_vllm_generation_refuses_suppress_tokens_and_takes_the_logit_bias(monkeypatch, tiny_prompts):
    processor, ids, images = tiny_prompts
    suppress = vision_token_ids(processor)
    image_token = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    # what the trainer passed before: vLLM's SamplingParams has no suppress_tokens (the first rollout's TypeError)
    old = trl_generator(monkeypatch, EchoEngine(image_token), {"suppress_tokens": suppress})
    with pytest.raises(TypeError, match="suppress_tokens"):
        old.generate(prompts=ids, images=images, num_generations=1)
    engine = EchoEngine(image_token)
    generator = trl_generator(monkeypatch, engine, rollout_generation_kwargs(suppress, via_vllm=True))
    _, completions, _, _ = generator.generate(prompts=ids, images=images, num_generations=1)
    assert completions == [[11, 12, 13]] * 2
    (sent, params), = engine.calls
    assert params.logit_bias == {t: SUPPRESS_BIAS for t in suppress} and image_token in suppress
    assert [p["prompt_token_ids"] for p in sent] == ids and sent[0]["multi_modal_data"]["image"] is images[0][0]


class VllmProcessorEngine(EchoEngine):
    """LLM.generate as vLLM 0.25.1 treats token prompts with images: for each image its processor replaces
    the first placeholder after the last expansion with the image's `per_image` tokens, whether or not the
    prompt was expanded already (so the processor's 256 became 511 on the GPU)."""

    def __init__(self, image_token: int, per_image: int):
        super().__init__(image_token)
        self.per_image = per_image

    def generate(self, prompts, sampling_params, use_tqdm=True):
        outputs = super().generate(prompts, sampling_params, use_tqdm)
        for prompt, output in zip(prompts, outputs, strict=True):
            ids, at = list(prompt["prompt_token_ids"]), 0
            images = (prompt.get("multi_modal_data") or {}).get("image")
            for _ in ([images] if images is not None and not isinstance(images, list) else images or []):
                at = ids.index(self.image_token, at)
                ids[at:at + 1] = [self.image_token] * self.per_image
                at += self.per_image
            output.prompt_token_ids = ids
        return outputs


def test_a_colocated_vllm_gets_one_placeholder_per_image_and_expands_it_as_the_processor(monkeypatch,
                                                                                          tiny_prompts):
    processor, ids, images = tiny_prompts
    image_token = image_pad_id(processor)
    n_image = ids[0].count(image_token)
    assert n_image >= 4  # the processor expanded the placeholder to the image's patches
    assert collapse_image_runs(ids[0], image_token).count(image_token) == 1
    assert len(collapse_image_runs(ids[0], image_token)) == len(ids[0]) - n_image + 1
    engine = VllmProcessorEngine(image_token, per_image=n_image)
    trainer = SimpleNamespace(vllm_generation=trl_generator(monkeypatch, engine, {}))
    assert check_rollout_prompts(trainer, vision_token_ids(processor), image_token)
    prompt_ids, completions, _, _ = trainer.vllm_generation.generate(prompts=ids, images=images, num_generations=1)
    (sent, _), = engine.calls
    assert [p["prompt_token_ids"] for p in sent] == [collapse_image_runs(i, image_token) for i in ids]
    assert prompt_ids == ids and completions == [[11, 12, 13]] * 2  # vLLM's expansion is the processor's


def test_a_rollout_prompt_vllm_expanded_again_stops_training_in_one_line(monkeypatch, tiny_prompts):
    processor, ids, images = tiny_prompts
    image_token = image_pad_id(processor)
    n_image = ids[0].count(image_token)
    n_vision = sum(t in vision_token_ids(processor) for t in ids[0])  # the pads, and the start and end markers

    # the expanded ids sent as they are (TRL's colocate path): vLLM expands the first placeholder again
    doubled = SimpleNamespace(vllm_generation=trl_generator(
        monkeypatch, VllmProcessorEngine(image_token, per_image=n_image), {}))
    check_rollout_prompts(doubled, vision_token_ids(processor))
    with pytest.raises(ModelError) as caught:
        doubled.vllm_generation.generate(prompts=ids, images=images, num_generations=1)
    message = str(caught.value)
    assert "\n" not in message
    assert (f"prompt 0: the processor built {len(ids[0])} tokens ({n_vision} vision tokens), vLLM generated from "
            f"{len(ids[0]) + n_image - 1} ({n_vision + n_image - 1} vision tokens)") in message
    assert message.startswith("vLLM generated rollouts from a prompt other than the processor's")

    # one placeholder sent, but vLLM's processor sizes the image otherwise: stopped as well
    resized = SimpleNamespace(vllm_generation=trl_generator(
        monkeypatch, VllmProcessorEngine(image_token, per_image=n_image * 4), {}))
    check_rollout_prompts(resized, vision_token_ids(processor), image_token)
    with pytest.raises(ModelError, match="prompt 0: the processor built"):
        resized.vllm_generation.generate(prompts=ids, images=images, num_generations=1)

    # a trainer without TRL's vLLM generator (transformers rollouts) is left alone
    assert check_rollout_prompts(SimpleNamespace(), [image_token]) is False


def test_server_mode_prompts_keep_their_expansion(tiny_prompts):
    """TRL's server mode places precomputed image features on the expanded runs: nothing is cut there."""
    processor, ids, images = tiny_prompts
    sent = []

    def generate(prompts, images, num_generations, profiler=None):
        sent.append(prompts)
        return prompts, [[11]] * len(prompts), None, None

    trainer = SimpleNamespace(vllm_generation=SimpleNamespace(mode="server", generate=generate))
    assert check_rollout_prompts(trainer, vision_token_ids(processor), image_pad_id(processor))
    trainer.vllm_generation.generate(ids, images, 1)
    assert sent == [ids]


def test_prompt_mismatch_names_the_first_difference():
    assert prompt_mismatch([[1, 2, 3]], [[1, 2, 3]], [2]) is None
    assert prompt_mismatch([[1, 2, 3]], [[1, 9, 3]], [2]) == (
        "prompt 0: the processor built 3 tokens (1 vision tokens), vLLM generated from 3 (0 vision tokens), first "
        "difference at token 1")
    assert prompt_mismatch([[1], [2]], [[1]], []) == "vLLM returned 1 prompts for the 2 it was given"


@pytest.mark.slow
def test_the_training_log_has_rollout_throughput(tmp_path, tiny_model_dir):
    from harness.checkpoints import read_train_log
    from trainers.bench import compare
    from trainers.train import train

    cfg = TrainConfig.from_dict({"model": str(tiny_model_dir), "engine": "trl", "limit": 8, "max_steps": 3,
                                 "per_device_train_batch_size": 4, "num_generations": 4, "max_completion_length": 6,
                                 "steps_per_generation": 1, "out": str(tmp_path / "ckpt")})[0]
    ckpt = train(cfg, echo=lambda _: None)
    rows = [r for r in read_train_log(ckpt) if "loss" in r]
    assert [r["step"] for r in rows] == [1, 2, 3]  # one generation batch per step here
    for row in rows:
        assert row["rollout/seconds"] > 0 and 4 <= row["rollout/completion_tokens"] <= 4 * 6
        assert row["rollout/tokens_per_s"] == pytest.approx(row["rollout/completion_tokens"] / row["rollout/seconds"])
    # the benchmark's summary (docs/benchmarks/train_h200.sh): steps after the first, tokens over generation time
    (summary,), table = compare({"trl": ckpt}, "trl")
    assert summary["timed_steps"] == 2 and summary["use_vllm"] is False
    tokens = sum(r["rollout/completion_tokens"] for r in rows[1:])
    assert summary["rollout_tokens_per_s"] == round(tokens / sum(r["rollout/seconds"] for r in rows[1:]), 1)
    assert summary["mean_step_wall_s"] == round((rows[2]["wall_s"] - rows[0]["wall_s"]) / 2, 3)
    assert summary["nvml_peak_used_mib"] is None and summary["speedup_vs_base"] == 1.0  # no GPU here
    assert (summary["world_size"], summary["global_batch_size"]) == (1, 4)
    assert summary["samples_per_s"] == round(4 / summary["mean_step_wall_s"], 2)
    assert table.count("\n") == 3 and "| trl | trl | no | 2 | 1 | 4 |" in table
