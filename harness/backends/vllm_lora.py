"""LoRA adapters on the vllm backend: which modules an adapter changes, which of them vLLM applies, and the
engine options and request that apply it without merging.

    plan = plan_adapter(resolve_model("runs/gspo/checkpoint-500").adapter)
    plan.engine_options()   # {"enable_lora": True, "max_lora_rank": 16, "max_loras": 1}
    plan.describe()         # {"mode": "lora", "rank": 16, "applied": {"language_model q_proj": 28, ...}, ...}

vLLM applies LoRA to the language model of a Qwen-VL model. Weights an adapter holds for the vision tower
(`visual.*`: patch embedding, blocks, merger) or whole saved modules (`modules_to_save`) would be dropped
without a word, so `plan_adapter` refuses such an adapter; with `merge=True` the caller merges it into
its base first (`merged_model_dir`) and evaluates the merged model instead.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ModelError
from harness.models import ADAPTER_CONFIG_FILE, ModelSource, ResolvedModel

# The max_lora_rank values vLLM accepts (vllm.config.lora.MaxLoRARanks, the same in 0.25 and 0.31).
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
LORA_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+?)\.(?:lora_A|lora_B|lora_embedding_A|lora_embedding_B)"
                      r"(?:\.weight)?$")
VISION_MODULE = re.compile(r"(^|\.)visual\.")


def adapter_weight_names(adapter_dir: Path) -> list[str]:
    """The tensor names an adapter stores (safetensors header only; a .bin adapter is loaded on the CPU)."""
    st_file, bin_file = adapter_dir / "adapter_model.safetensors", adapter_dir / "adapter_model.bin"
    if st_file.is_file():
        from safetensors import safe_open

        with safe_open(str(st_file), framework="pt") as f:
            return list(f.keys())
    if bin_file.is_file():
        import torch

        return list(torch.load(bin_file, map_location="cpu", weights_only=True))
    raise ModelError(f"adapter {adapter_dir} holds neither adapter_model.safetensors nor adapter_model.bin")


def _kind(module: str) -> str:
    """'model.language_model.layers.3.self_attn.q_proj' -> 'language_model q_proj' (the layer index dropped)."""
    tower = "vision_tower" if VISION_MODULE.search(module) else "language_model"
    return f"{tower} {module.rsplit('.', 1)[-1]}"


@dataclass(frozen=True)
class AdapterPlan:
    path: str  # a local directory (vLLM reads the adapter from disk)
    rank: int
    language_modules: list[str]
    vision_modules: list[str] = field(default_factory=list)
    other_weights: list[str] = field(default_factory=list)  # whole saved modules, not LoRA pairs

    @property
    def max_lora_rank(self) -> int:
        for allowed in VLLM_LORA_RANKS:
            if allowed >= self.rank:
                return allowed
        raise ModelError(f"adapter {self.path} has LoRA rank {self.rank}; vLLM supports at most {VLLM_LORA_RANKS[-1]}")

    @property
    def ignored_by_vllm(self) -> list[str]:
        return self.vision_modules + self.other_weights

    def engine_options(self) -> dict[str, Any]:
        return {"enable_lora": True, "max_lora_rank": self.max_lora_rank, "max_loras": 1}

    def describe(self) -> dict[str, Any]:
        return {"mode": "lora", "path": self.path, "rank": self.rank, "max_lora_rank": self.max_lora_rank,
                "applied": dict(sorted(Counter(map(_kind, self.language_modules)).items())),
                "n_applied_modules": len(self.language_modules)}


def plan_adapter(adapter: ModelSource) -> AdapterPlan:
    """What vLLM will do with `adapter`: the modules it applies, and those it would ignore."""
    local = Path(adapter.location) if adapter.local else _download(adapter)
    config = adapter.adapter_config or json.loads((local / ADAPTER_CONFIG_FILE).read_text())
    if str(config.get("peft_type", "LORA")).upper() != "LORA":
        raise ModelError(f"adapter {adapter.location} is a {config.get('peft_type')} adapter; vLLM applies LoRA only")
    ranks = [int(config.get("r", 8)), *(int(r) for r in (config.get("rank_pattern") or {}).values())]
    modules, others = set(), []
    for name in adapter_weight_names(local):
        match = LORA_KEY.match(name)
        if match:
            modules.add(match["module"])
        else:
            others.append(name)
    language = sorted(m for m in modules if not VISION_MODULE.search(m))
    vision = sorted(m for m in modules if VISION_MODULE.search(m))
    return AdapterPlan(str(local), max(ranks), language, vision, sorted(others))


def refusal(plan: AdapterPlan) -> str:
    """The one-line reason an adapter cannot be evaluated by vLLM unmerged."""
    parts = []
    if plan.vision_modules:
        kinds = Counter(map(_kind, plan.vision_modules))
        parts.append(f"LoRA on {len(plan.vision_modules)} vision-tower modules ({', '.join(sorted(kinds))})")
    if plan.other_weights:
        parts.append(f"{len(plan.other_weights)} fully saved weights (e.g. {plan.other_weights[0]})")
    return (f"adapter {plan.path} holds {' and '.join(parts)}, which vLLM would silently ignore (it applies LoRA "
            f"to the language model only); pass --merge-lora to merge the adapter into its base first, or "
            f"use --backend transformers")


def merged_model_dir(model: ResolvedModel, cache_root: Path, dtype: str = "bfloat16") -> Path:
    """The adapter merged into its base, in 16-bit, cached under `cache_root` by the adapter's content."""
    from harness.models import merge_adapter

    assert model.adapter is not None
    local = Path(model.adapter.location) if model.adapter.local else _download(model.adapter)
    h = hashlib.sha256(f"{model.base.location}@{model.base.revision}|{dtype}".encode())
    for name in sorted(p.name for p in local.iterdir() if p.is_file()):
        h.update(name.encode())
        h.update(hashlib.sha256((local / name).read_bytes()).digest())
    out = cache_root / "merged" / f"{local.name}-{h.hexdigest()[:16]}"
    marker = out / "merged_from.json"
    if marker.is_file():
        return out
    from harness.outdirs import staged_output

    # Written aside and moved into place whole: an interrupted merge leaves nothing that looks finished.
    with staged_output(out, "merged model directory", force=True) as staging:
        merge_adapter(ResolvedModel(model.base, ModelSource(str(local), None, True, model.adapter.adapter_config)),
                      staging, dtype)
        (staging / marker.name).write_text(json.dumps({"adapter": model.adapter.location, "base": model.base.location,
                                                       "base_revision": model.base.revision, "dtype": dtype}) + "\n")
    return out


def _download(source: ModelSource) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(source.location, **source.hub_options()))
    except Exception as exc:  # offline, unknown repo, ...: one clear line
        raise ModelError(f"cannot fetch adapter {source.location}: {str(exc).splitlines()[0][:200]}") from exc
