"""How rollouts are generated: transformers `generate`, or vLLM (TRL's `use_vllm` on the `trl` engine,
Unsloth's `fast_inference` on the `unsloth` engine); the check that vLLM generates from the prompt the
processor built; and rollout throughput in the training log.

With several training processes (trainers/distributed.py) each generates its share of a generation
batch with transformers or a colocated vLLM; in `vllm_mode="server"` TRL gathers every process's
prompts, the main process sends them to the one server and hands each process its slice back. The
server must run on GPUs that training does not use (CUDA_VISIBLE_DEVICES; docs/training.md).

    check_rollout_engine(cfg, engine, device)           # vLLM asked for where it cannot run: one-line error
    kwargs = vllm_grpo_kwargs(cfg, engine)              # use_vllm, vllm_mode, ... for GRPOConfig
    gen = rollout_generation_kwargs([151655], True)     # {"logit_bias": {151655: -100.0}}
    install_rollout_hooks(trainer, cfg, engine, [151652, 151653, 151655], 151655, say)   # after GRPOTrainer
                        # is built: unexpanded prompts to a colocated vLLM, the prompt check, rollout/seconds

Vision placeholder tokens must never be sampled (a completion holding one breaks the next forward pass).
transformers' generate takes `suppress_tokens`; vLLM's SamplingParams has no such field (TypeError at
the first rollout), so through vLLM they get a logit bias of -100: the OpenAI API's floor, which vLLM's
server clamps any bias to, and a number JSON can carry to `vllm_mode="server"` (-inf it cannot).

TRL hands a colocated vLLM the processor's token ids, image placeholders already expanded, beside the
raw image; vLLM's own processor then expands the first placeholder of each image again (256 image
tokens became 511 for a 448x448 image on Qwen2.5-VL-7B, vLLM 0.25.1: trl#6294). So the ids sent to a
colocated engine (TRL's colocate mode, Unsloth's fast_inference) carry one placeholder per image, vLLM
expands it, and the check compares vLLM's expansion with the processor's. Server mode is left alone:
TRL's server path places precomputed image features on the expanded runs.
"""

from __future__ import annotations

import functools
import importlib.util
import time
from collections.abc import Sequence
from typing import Any

from core.errors import ConfigError, ModelError
from trainers.config import TrainConfig

SUPPRESS_BIAS = -100.0
VLLM_MISSING = ("vLLM rollouts need the vllm package (the project's vllm extra: uv sync --extra vllm, or "
                "pip install 'vllm==0.31.*')")


def rollouts_via_vllm(cfg: TrainConfig, engine: str) -> bool:
    return cfg.fast_inference if engine == "unsloth" else cfg.use_vllm


def check_rollout_engine(cfg: TrainConfig, engine: str, device: str) -> None:
    """Refuse, before any model loads, vLLM rollouts that cannot run here."""
    vllm_grpo_kwargs(cfg, engine)  # the settings that belong to the other engine
    if not rollouts_via_vllm(cfg, engine):
        return
    if engine == "unsloth" and cfg.finetune_vision_layers:
        raise ConfigError("Unsloth's vLLM rollouts (fast_inference) cannot train the vision tower's LoRA: set "
                          "finetune_vision_layers false, or fast_inference false")
    if device != "cuda":
        raise ConfigError(f"vLLM rollouts ({'fast_inference' if engine == 'unsloth' else 'use_vllm'}) need a CUDA "
                          f"GPU; this run trains on {device}")
    if importlib.util.find_spec("vllm") is None:
        raise ConfigError(VLLM_MISSING)


def vllm_grpo_kwargs(cfg: TrainConfig, engine: str) -> dict[str, Any]:
    """The GRPOConfig values of vLLM rollouts (none without them). Unsloth builds its engine at load
    (fast_inference, gpu_memory_utilization, standby) and generates through it in colocate mode."""
    if engine == "unsloth" and cfg.use_vllm:
        raise ConfigError("use_vllm is the trl engine's; the unsloth engine's vLLM rollouts are fast_inference "
                          "(--set fast_inference=true)")
    if engine == "trl" and cfg.fast_inference:
        raise ConfigError("fast_inference is the unsloth engine's; the trl engine's vLLM rollouts are use_vllm "
                          "(--set use_vllm=true)")
    if not rollouts_via_vllm(cfg, engine):
        return {}
    common = {"use_vllm": True, "vllm_importance_sampling_correction": cfg.vllm_importance_sampling_correction}
    if engine == "unsloth":
        return {**common, "vllm_mode": "colocate"}
    kwargs = {**common, "vllm_mode": cfg.vllm_mode}
    if cfg.vllm_mode == "colocate":
        kwargs.update(vllm_gpu_memory_utilization=cfg.gpu_memory_utilization,
                      vllm_enable_sleep_mode=cfg.vllm_standby, vllm_max_model_length=cfg.max_seq_length)
    elif cfg.vllm_server_base_url:
        kwargs["vllm_server_base_url"] = cfg.vllm_server_base_url
    return kwargs


def rollout_generation_kwargs(suppress: Sequence[int], via_vllm: bool) -> dict[str, Any] | None:
    """GRPOConfig.generation_kwargs keeping `suppress` out of every completion, in the generator's terms."""
    if not suppress:
        return None
    if via_vllm:
        return {"logit_bias": {int(token): SUPPRESS_BIAS for token in suppress}}
    return {"suppress_tokens": [int(token) for token in suppress]}


def rollout_notes(cfg: TrainConfig, engine: str) -> list[str]:
    """What the run's rollout settings mean, for the checkpoint record's config notes."""
    if not rollouts_via_vllm(cfg, engine):
        return []
    notes = []
    if engine == "unsloth" and cfg.vllm_standby:
        notes.append("vllm_standby: Unsloth turns standby off for vision models unless UNSLOTH_VLLM_STANDBY_VISION=1 "
                     "is set (it has crashed multimodal runs)")
    if engine == "trl" and cfg.vllm_mode == "server" and cfg.vllm_standby:
        notes.append("vllm_standby has no effect with vllm_mode server (the server owns its memory)")
    return notes


# --- the prompt check -----------------------------------------------------------------------------------
def prompt_mismatch(built: Sequence[Sequence[int]], received: Sequence[Sequence[int]],
                    image_token_ids: Sequence[int]) -> str | None:
    """Why the prompts vLLM generated from (`received`) are not the ones the processor built, or None;
    `image_token_ids` (the vision start, end and pad tokens) are counted in each."""
    if len(built) != len(received):
        return f"vLLM returned {len(received)} prompts for the {len(built)} it was given"
    images = set(image_token_ids)
    for index, (ours, theirs) in enumerate(zip(built, received, strict=True)):
        ours, theirs = list(ours), list(theirs)
        if ours == theirs:
            continue
        at = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
        n_ours, n_theirs = sum(t in images for t in ours), sum(t in images for t in theirs)
        return (f"prompt {index}: the processor built {len(ours)} tokens ({n_ours} vision tokens), vLLM generated "
                f"from {len(theirs)} ({n_theirs} vision tokens), first difference at token {at}")
    return None


def collapse_image_runs(ids: Sequence[int], image_pad: int) -> list[int]:
    """`ids` with each run of image placeholders cut to one: the prompt before the processor expanded it."""
    out: list[int] = []
    for token in ids:
        if token == image_pad and out and out[-1] == image_pad:
            continue
        out.append(token)
    return out


def check_rollout_prompts(trainer: Any, image_token_ids: Sequence[int], image_pad: int | None = None) -> bool:
    """Make every vLLM rollout compare the prompt vLLM generated from (what its output reports, image
    tokens expanded by vLLM's own processor) with the processor's token ids that TRL sent; a difference
    stops training with a ModelError. A colocated engine is sent the ids with one `image_pad` per image
    (module docstring). False when this trainer generates without TRL's vLLM generator."""
    generator = getattr(trainer, "vllm_generation", None)
    if generator is None or not callable(getattr(generator, "generate", None)):
        return False
    generate = generator.generate
    unexpand = image_pad is not None and getattr(generator, "mode", "colocate") == "colocate"

    @functools.wraps(generate)
    def checked(prompts: Any, *args: Any, **kwargs: Any) -> Any:
        sent = [collapse_image_runs(p, image_pad) for p in prompts] if unexpand else prompts
        out = generate(sent, *args, **kwargs)
        why = prompt_mismatch(prompts, out[0], image_token_ids)
        if why is not None:
            raise ModelError(f"vLLM generated rollouts from a prompt other than the processor's ({why}); stopped "
                             f"rather than train on them: check the image placeholders vLLM's processor expands")
        return out

    generator.generate = checked
    return True


# --- rollout throughput ---------------------------------------------------------------------------------
def log_rollout_throughput(trainer: Any) -> bool:
    """Time each rollout generation and count its completions and their tokens into TRL's metrics, so the
    training log's step that generated a batch has `rollout/seconds`, `rollout/completions`,
    `rollout/completion_tokens` and `rollout/tokens_per_s`: over every training process (their sums, and
    the slowest one's time). False when this TRL has no single-turn generate."""
    generate = getattr(trainer, "_generate_single_turn", None)
    if generate is None:
        return False

    @functools.wraps(generate)
    def timed(*args: Any, **kwargs: Any) -> Any:
        mode = "train" if trainer.model.training else "eval"  # TRL's rule, read before generation switches it
        started = time.perf_counter()
        out = generate(*args, **kwargs)
        seconds = time.perf_counter() - started  # token ids come back as lists: the GPU work is done
        completions, tokens, seconds = _over_processes(trainer.accelerator, len(out[0]),
                                                       sum(len(ids) for ids in out[0]), seconds)
        metrics = trainer._metrics[mode]
        metrics["rollout/seconds"].append(seconds)
        metrics["rollout/completions"].append(float(completions))
        metrics["rollout/completion_tokens"].append(float(tokens))
        metrics["rollout/tokens_per_s"].append(tokens / seconds if seconds > 0 else 0.0)
        return out

    trainer._generate_single_turn = timed
    return True


def _over_processes(accelerator: Any, completions: int, tokens: int, seconds: float) -> tuple[int, int, float]:
    """Completions and tokens summed over the training processes, the slowest one's seconds (every
    process generates its share of each batch at the same point, so all of them call this)."""
    if getattr(accelerator, "num_processes", 1) <= 1:
        return completions, tokens, seconds
    import torch

    sums = torch.tensor([completions, tokens], dtype=torch.float64, device=accelerator.device)
    slowest = torch.tensor([seconds], dtype=torch.float64, device=accelerator.device)
    torch.distributed.all_reduce(sums)
    torch.distributed.all_reduce(slowest, op=torch.distributed.ReduceOp.MAX)
    return int(sums[0].item()), int(sums[1].item()), float(slowest.item())


def install_rollout_hooks(trainer: Any, cfg: TrainConfig, engine: str, image_token_ids: Sequence[int],
                          image_pad: int | None, say: Any) -> None:
    """Throughput logging always; unexpanded prompts and the prompt check when vLLM generates (a warning
    where it cannot be hooked)."""
    log_rollout_throughput(trainer)
    if rollouts_via_vllm(cfg, engine) and not check_rollout_prompts(trainer, image_token_ids, image_pad):
        say("warning: this trainer generates through vLLM without TRL's vLLM generator; the rollout prompts are "
            "not checked against the processor's")
