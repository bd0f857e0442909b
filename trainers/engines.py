"""The two ways to train, one checkpoint format: Unsloth's FastVisionModel, or plain TRL + PEFT.

Both train LoRA on the language model's attention and MLP projections (the vision tower frozen unless
asked), and both hand GRPOTrainer the same GRPOConfig values (see trainers/config.py).

    engine = resolve_engine(cfg)            # "unsloth" on a CUDA machine with unsloth installed (one process), else "trl"
    if engine == "unsloth":
        import_unsloth(cfg)                 # must run before anything imports trl
    model, processor, peft_config = load_model(cfg, engine, model_path)
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

from core.errors import ConfigError, ModelError
from harness.models import (
    ResolvedModel,
    cuda_available,
    first_line,
    load_model_and_processor,
    pick_device,
    pick_dtype,
    resolve_model,
)
from trainers.config import TrainConfig

# Language-model projections (attention + MLP); the vision tower's modules live under `visual`.
LANGUAGE_LORA = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
VISION_LORA = r".*visual\.blocks.*\.(qkv|attn\.proj|gate_proj|up_proj|down_proj|linear_fc1|linear_fc2)"


def resolve_engine(cfg: TrainConfig) -> str:
    """The engine to train with; several processes train on the trl engine only (Unsloth is single-GPU)."""
    if cfg.engine == "trl":
        return "trl"
    if cfg.world_size() > 1:
        if cfg.engine == "unsloth":
            raise ConfigError(f"the unsloth engine trains on one GPU; num_processes {cfg.world_size()} needs "
                              f"--engine trl")
        return "trl"
    has_unsloth = importlib.util.find_spec("unsloth") is not None
    if cfg.engine == "unsloth":
        if not cuda_available():
            raise ConfigError("the unsloth engine needs a CUDA GPU (Unsloth's CPU backend does not train "
                              "vision models); use --engine trl")
        if not has_unsloth:
            raise ConfigError("the unsloth engine needs the unsloth and unsloth_zoo packages; install them "
                              "(pip install --no-deps unsloth unsloth_zoo) or use --engine trl")
        return "unsloth"
    return "unsloth" if has_unsloth and cuda_available() else "trl"


def import_unsloth(cfg: TrainConfig) -> None:
    """Unsloth patches TRL's trainers when it is imported, so it must come first."""
    if "trl" in sys.modules and "unsloth" not in sys.modules:
        raise ModelError("trl was imported before unsloth; Unsloth cannot patch it. Start a fresh process "
                         "(harness train does this in the right order)")
    if cfg.vllm_standby:
        os.environ["UNSLOTH_VLLM_STANDBY"] = "1"  # read by unsloth_zoo at import time
    import unsloth  # noqa: F401


def device_of(engine: str) -> str:
    return "cuda" if engine == "unsloth" else pick_device("auto")


def load_model(cfg: TrainConfig, engine: str, model_path: str) -> tuple[Any, Any, Any]:
    """(model, processor, peft_config): the unsloth engine returns a PEFT model and no config; the trl
    engine a plain model and the LoraConfig that GRPOTrainer applies. Both load the base named by
    model_path at cfg.revision, quantized by harness.models' one 4-bit configuration when asked."""
    model = resolve_model(model_path, cfg.revision)
    if model.adapter is not None:
        raise ModelError(f"{model_path} is a LoRA adapter; train from a full model (merge it first with "
                         f"`harness export`)")
    if engine == "unsloth":
        return (*_load_unsloth(cfg, model), None)
    return _load_trl(cfg, model)


def _load_unsloth(cfg: TrainConfig, model: ResolvedModel) -> tuple[Any, Any]:
    from unsloth import FastVisionModel

    from trainers.unsloth_compat import patch_unsloth_zoo

    patch_unsloth_zoo()  # Qwen2.5-VL's vision config under transformers 5's name (see that module)

    # Unsloth builds its 4-bit configuration inside from_pretrained, with the values of
    # harness.models.bnb_4bit_config (NF4, double quantization, compute in the load dtype).
    # use_exact_model_name: load the base named, not Unsloth's pre-quantized copy of it.
    try:
        net, processor = FastVisionModel.from_pretrained(
            model.base.location, revision=model.base.revision, load_in_4bit=cfg.load_in_4bit,
            dtype=pick_dtype(cfg.dtype, "cuda"), use_exact_model_name=True, max_seq_length=cfg.max_seq_length,
            fast_inference=cfg.fast_inference, gpu_memory_utilization=cfg.gpu_memory_utilization,
            max_lora_rank=cfg.lora_r, use_gradient_checkpointing="unsloth" if cfg.gradient_checkpointing else False,
        )
    except (OSError, ValueError) as exc:
        raise ModelError(f"Unsloth could not load {model.base.location}: {first_line(exc)}") from exc
    net = FastVisionModel.get_peft_model(
        net, finetune_vision_layers=cfg.finetune_vision_layers, finetune_language_layers=True,
        finetune_attention_modules=True, finetune_mlp_modules=True, r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout, bias="none", random_state=cfg.seed,
        use_gradient_checkpointing="unsloth" if cfg.gradient_checkpointing else False,
    )
    tokenizer = getattr(processor, "tokenizer", processor)
    tokenizer.padding_side = "left"
    return net, processor


def _load_trl(cfg: TrainConfig, model: ResolvedModel) -> tuple[Any, Any, Any]:
    from peft import LoraConfig

    device = device_of("trl")
    if cfg.load_in_4bit and device == "cpu":
        raise ConfigError("load_in_4bit needs a CUDA GPU")
    net, processor = load_model_and_processor(model, dtype=pick_dtype(cfg.dtype, device), device=device,
                                              load_in_4bit=cfg.load_in_4bit)
    targets = LANGUAGE_LORA + (f"|{VISION_LORA}" if cfg.finetune_vision_layers else "")
    # revision: the adapter names its base's revision, so `harness eval` loads the same base.
    peft_config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                             target_modules=targets, bias="none", task_type="CAUSAL_LM",
                             revision=model.base.hub_options().get("revision"))
    return net, processor, peft_config


class _TorchLogProb:
    """TRL 1.15's fused LM-head log-probabilities run only as a Triton kernel on CUDA; this computes the
    same per-token outputs with plain torch ops (autograd does the backward) for every other device."""

    cuda_function: Any = None

    @classmethod
    def apply(cls, hidden, weight, bias, targets, temperature, chunk_size, softcap, logit_scale, outputs):
        import torch

        if hidden.is_cuda and cls.cuda_function is not None:
            return cls.cuda_function.apply(hidden, weight, bias, targets, temperature, chunk_size, softcap,
                                           logit_scale, outputs)
        z = torch.nn.functional.linear(hidden, weight, bias).float() * logit_scale
        if softcap is not None:
            z = softcap * torch.tanh(z / softcap)
        z = z / temperature
        logp = z.log_softmax(-1)
        log_probs = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        entropy = -(logp.exp() * logp).sum(-1) if "entropy" in outputs else None
        log_sum_sq = torch.logsumexp(2 * logp, -1).detach() if "log_sum_sq_probs" in outputs else None
        mean_logits = z.mean(-1).detach() if "mean_logits" in outputs else None
        is_top1 = None
        if "is_top1" in outputs:
            is_top1 = (z.argmax(-1) == targets).detach()
        return log_probs, entropy, log_sum_sq, mean_logits, is_top1


def install_cpu_logprob() -> None:
    import trl.trainer.utils as trl_utils

    current = trl_utils._ChunkedLogProbFunction
    if current is _TorchLogProb:
        return
    _TorchLogProb.cuda_function = current
    trl_utils._ChunkedLogProbFunction = _TorchLogProb
