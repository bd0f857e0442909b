"""The transformers backend on CPU with the tiny random models: batching, seeds, counts, LoRA, errors."""

from __future__ import annotations

import json

import pytest

from core.errors import BackendError, ConfigError, ModelError
from harness.backends import GenerationParams, Request, load_backend
from harness.tiny_model import ARCHS, build_tiny_model

torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")
from harness.backends.transformers_backend import TransformersBackend

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")


def image_request(request_id: str, text: str, n_images: int = 1) -> Request:
    parts = [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": text}]
    images = [Image.new("RGB", (90 + 40 * i, 60), (30 * i, 120, 200)) for i in range(n_images)]
    return Request(request_id, [{"role": "user", "content": parts}], images)


def text_request(request_id: str, text: str) -> Request:
    return Request(request_id, [{"role": "system", "content": "Answer briefly."},
                                {"role": "user", "content": text}])


MIXED = [image_request("geo-1", "What is the area of the triangle?"),
         text_request("alg-2", "Solve x + 3 = 5."),
         image_request("geo-3", "Which angle is larger?", n_images=2)]


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    return {arch: build_tiny_model(tmp_path_factory.mktemp(f"tiny-{arch}"), arch, seed=0) for arch in ARCHS}


@pytest.fixture(scope="module", params=ARCHS)
def backend(request, tiny_dirs):
    # batch_size 2: three requests make a full batch and a partial one.
    backend = load_backend("transformers", str(tiny_dirs[request.param]), batch_size=2, device="cpu")
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def adapter_dir(tiny_dirs, tmp_path_factory):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(tiny_dirs["qwen2_5_vl"])
    torch.manual_seed(0)
    # init_lora_weights=False: random B, so the adapter really changes the outputs.
    config = LoraConfig(r=4, lora_alpha=8, target_modules=r".*language_model.*\.(q_proj|v_proj)",
                        init_lora_weights=False)
    out = tmp_path_factory.mktemp("lora")
    get_peft_model(base, config).save_pretrained(out)
    return out


def test_greedy_mixed_batch(backend):
    params = GenerationParams(max_new_tokens=12)
    completions = backend.generate(MIXED, params)
    assert [(c.request_id, c.attempt) for c in completions] == [("geo-1", 0), ("alg-2", 0), ("geo-3", 0)]
    for completion in completions:
        assert 1 <= completion.n_output_tokens <= 12
        assert (completion.finish_reason == "length") == (completion.n_output_tokens == 12)
        assert completion.latency_s > 0
        assert "<|" not in completion.text
    # two images make a longer prompt than one; every prompt holds the chat scaffolding
    prompt_tokens = {c.request_id: c.n_prompt_tokens for c in completions}
    assert prompt_tokens["geo-3"] > prompt_tokens["geo-1"] > 10
    assert [c.text for c in backend.generate(MIXED, params)] == [c.text for c in completions]


def test_greedy_does_not_depend_on_batching(backend):
    params = GenerationParams(max_new_tokens=6)
    together = backend.generate(MIXED, params)
    backend.batch_size = 1
    try:
        alone = backend.generate(MIXED, params)
    finally:
        backend.batch_size = 2
    assert [c.text for c in alone] == [c.text for c in together]
    assert [c.n_prompt_tokens for c in alone] == [c.n_prompt_tokens for c in together]


def test_short_budget_ends_by_length(backend):
    completions = backend.generate(MIXED, GenerationParams(max_new_tokens=2))
    assert [(c.n_output_tokens, c.finish_reason) for c in completions] == [(2, "length")] * 3


def test_sampling_gives_n_attempts_per_request_and_follows_the_seed(backend):
    params = GenerationParams(max_new_tokens=16, temperature=1.0, top_p=0.95, top_k=50, n=3, seed=7)
    completions = backend.generate(MIXED, params)
    assert [(c.request_id, c.attempt) for c in completions] == [
        (r.request_id, k) for r in MIXED for k in range(3)]
    assert len({c.text for c in completions}) > 3
    for completion in completions:
        assert 1 <= completion.n_output_tokens <= 16
        assert completion.finish_reason == ("length" if completion.n_output_tokens == 16 else "stop")
    # the same seed gives the same samples even after other work ran; another seed differs
    backend.generate(MIXED[:1], GenerationParams(max_new_tokens=4, temperature=1.0))
    assert [c.text for c in backend.generate(MIXED, params)] == [c.text for c in completions]
    other = backend.generate(MIXED, GenerationParams(**{**params.to_dict(), "seed": 8}))
    assert [c.text for c in other] != [c.text for c in completions]


def test_eos_ends_with_stop_and_counts_the_eos(tiny_dirs):
    backend = TransformersBackend(str(tiny_dirs["qwen3_vl"]), device="cpu")
    # All-zero logits: greedy picks the lowest id not suppressed, <|endoftext|>, an end-of-sequence token.
    torch.nn.init.zeros_(backend.model.lm_head.weight)
    completions = backend.generate(MIXED, GenerationParams(max_new_tokens=8))
    assert [(c.text, c.n_output_tokens, c.finish_reason) for c in completions] == [("", 1, "stop")] * 3
    backend.close()


def test_ignore_eos_forces_the_full_length(tiny_dirs):
    backend = TransformersBackend(str(tiny_dirs["qwen3_vl"]), device="cpu")
    torch.nn.init.zeros_(backend.model.lm_head.weight)  # as above: greedy would stop at once
    completions = backend.generate(MIXED, GenerationParams(max_new_tokens=5, ignore_eos=True))
    assert [(c.n_output_tokens, c.finish_reason) for c in completions] == [(5, "length")] * 3
    backend.close()


def test_prompt_lengths_match_the_processed_prompts(backend):
    completions = backend.generate(MIXED, GenerationParams(max_new_tokens=1))
    assert backend.prompt_lengths(MIXED) == [c.n_prompt_tokens for c in completions]
    assert [len(ids) for ids in backend.prompt_token_ids(MIXED)] == [c.n_prompt_tokens for c in completions]


def test_iter_completions_batches_longest_prompts_first(backend):
    """Batches hold prompts of similar length (little padding); every request is answered once, and
    greedy answers do not depend on which batch a request landed in."""
    from harness.backends import iter_completions

    short = [Request(f"t-{i}", [{"role": "user", "content": "x"}]) for i in (1, 3)]
    requests = [short[0], image_request("i-2", "Which angle is larger here?", 2), short[1],
                image_request("i-4", "What is the area?")]
    lengths = backend.prompt_lengths(requests)
    assert lengths[1] > lengths[3] > lengths[0] == lengths[2]
    params = GenerationParams(max_new_tokens=4)
    completions = list(iter_completions(backend, requests, params, batch_size=2))
    assert [c.request_id for c in completions] == ["i-2", "i-4", "t-1", "t-3"]
    assert [c.batch_index for c in completions] == [0, 0, 1, 1]
    alone = {r.request_id: backend.generate([r], params)[0].text for r in requests}
    assert {c.request_id: c.text for c in completions} == alone


def test_parameters_and_inputs_are_checked(backend):
    with pytest.raises(ConfigError, match="temperature"):
        backend.generate(MIXED, GenerationParams(n=2, temperature=0.0))
    bad = Request("x", [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "?"}]}])
    with pytest.raises(ValueError, match="1 image parts"):
        backend.generate([bad], GenerationParams(max_new_tokens=2))
    assert backend.generate([], GenerationParams()) == []


def test_describe_and_memory_on_cpu(backend, tiny_dirs):
    facts = backend.describe()
    assert facts["model"] in {str(p) for p in tiny_dirs.values()}
    assert facts["base_model"] == facts["model"] and facts["adapter"] is None
    assert (facts["dtype"], facts["device"], facts["quantization"]) == ("float32", "cpu", None)
    assert 50_000 < facts["n_parameters"] < 500_000
    json.dumps(facts)  # goes into the manifest as is
    if not torch.cuda.is_available():
        assert backend.memory() == {"peak_allocated_mib": None, "peak_reserved_mib": None,
                                    "note": "no CUDA device"}


def test_lora_adapter_dir_loads_its_base_from_the_adapter_config(adapter_dir, tiny_dirs):
    params = GenerationParams(max_new_tokens=8)
    plain = TransformersBackend(str(tiny_dirs["qwen2_5_vl"]), device="cpu")
    with_lora = TransformersBackend(str(adapter_dir), device="cpu")
    explicit = TransformersBackend(str(tiny_dirs["qwen2_5_vl"]), adapter=str(adapter_dir), device="cpu")
    facts = with_lora.describe()
    assert (facts["adapter"], facts["base_model"]) == (str(adapter_dir), str(tiny_dirs["qwen2_5_vl"]))
    assert facts["n_parameters"] > plain.describe()["n_parameters"]
    lora_texts = [c.text for c in with_lora.generate(MIXED, params)]
    assert lora_texts == [c.text for c in explicit.generate(MIXED, params)]
    assert lora_texts != [c.text for c in plain.generate(MIXED, params)]
    for backend in (plain, with_lora, explicit):
        backend.close()
    with pytest.raises(ConfigError, match="itself a LoRA adapter"):
        TransformersBackend(str(adapter_dir), adapter=str(adapter_dir), device="cpu")


def test_missing_or_broken_models_are_model_errors(tmp_path, adapter_dir, monkeypatch):
    with pytest.raises(ModelError, match="does not exist"):
        TransformersBackend(str(tmp_path / "nowhere"))
    with pytest.raises(ModelError, match="neither config.json"):
        TransformersBackend(str(tmp_path))
    orphan = tmp_path / "orphan-adapter"
    orphan.mkdir()
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    (orphan / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "/gone/base"}))
    with pytest.raises(ModelError, match="adapter="):
        TransformersBackend(str(orphan))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    with pytest.raises(ModelError, match="cannot load model"):
        TransformersBackend(str(broken))

    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    with pytest.raises(ModelError, match="Hugging Face Hub"):
        TransformersBackend("some-org/some-vlm")


@no_cuda
def test_cpu_only_host_refuses_gpu_options(tiny_dirs):
    with pytest.raises(ModelError, match="CUDA GPU"):
        TransformersBackend(str(tiny_dirs["qwen2_5_vl"]), load_in_4bit=True)
    with pytest.raises(ConfigError, match="CUDA"):
        TransformersBackend(str(tiny_dirs["qwen2_5_vl"]), device="cuda")


def test_closed_backend_refuses_work(tiny_dirs):
    backend = TransformersBackend(str(tiny_dirs["qwen2_5_vl"]), device="cpu")
    backend.close()
    with pytest.raises(BackendError, match="closed"):
        backend.generate(MIXED, GenerationParams(max_new_tokens=2))
