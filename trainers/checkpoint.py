"""The checkpoint directory: a LoRA adapter + processor that `harness eval --model DIR` loads, and the
record of how it was made.

```
<out>/
  adapter_config.json, adapter_model.safetensors, processor and tokenizer files
  checkpoint.json          base model, algo, engine, full config, GRPOConfig values, reward weights, data
                           hash and size, held-out ids, steps, git commit, effectively_on_policy, overlap,
                           LoRA check, periodic evals
  train_log.jsonl          TRL's log history, one line per logged step
  train_fingerprints.json  ids and image/text hashes of the training items (contamination checks)
  steps/step-000010/       intermediate adapters (periodic evaluation, save_steps)
  evals/step-000010/       ordinary run directories of the periodic evaluations
```
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.errors import ModelError
from harness.jsonfile import write_json_atomic

CHECKPOINT_FILE = "checkpoint.json"
CHECKPOINT_SCHEMA_VERSION = 1
TRAIN_LOG_FILE = "train_log.jsonl"


def read_checkpoint(folder: str | Path) -> dict[str, Any] | None:
    path = Path(folder) / CHECKPOINT_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def write_checkpoint(folder: Path, info: dict[str, Any]) -> None:
    write_json_atomic(Path(folder) / CHECKPOINT_FILE, {"schema_version": CHECKPOINT_SCHEMA_VERSION, **info})


def lora_check(model: Any) -> dict[str, Any]:
    """Every LoRA A and B matrix must be non-zero after training: B starts at zero, so a zero B means
    that module never received a gradient (the rewards gave no signal, or it was frozen)."""
    pairs: dict[str, dict[str, float]] = {}
    for name, param in model.named_parameters():
        for part in ("lora_A", "lora_B"):
            marker = f".{part}."
            if marker in name:
                module = name.split(marker)[0]
                pairs.setdefault(module, {})[part] = float(param.detach().float().abs().max())
    zero_b = sorted(m for m, p in pairs.items() if p.get("lora_B", 0.0) == 0.0)
    zero_a = sorted(m for m, p in pairs.items() if p.get("lora_A", 0.0) == 0.0)
    n_params = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    return {"n_modules": len(pairs), "n_parameters": n_params, "all_nonzero": bool(pairs) and not zero_a
            and not zero_b, "zero_a": zero_a[:20], "zero_b": zero_b[:20], "n_zero_b": len(zero_b)}


def merge_to_16bit(checkpoint: str | Path, out: str | Path, dtype: str = "bfloat16") -> Path:
    """Merge the LoRA adapter into its base model and save a plain 16-bit model (+ processor)."""
    from harness.models import (
        ResolvedModel,
        load_model,
        load_processor,
        pick_dtype,
        resolve_model,
        resolve_source,
    )

    ckpt, out = Path(checkpoint), Path(out)
    if not (ckpt / "adapter_config.json").is_file():
        raise ModelError(f"{ckpt} holds no adapter_config.json: not a LoRA checkpoint")
    if out.exists() and any(out.iterdir()):
        raise ModelError(f"{out} exists and is not empty; choose another output directory")
    model = resolve_model(str(ckpt))
    info = read_checkpoint(ckpt) or {}
    recorded_revision = (info.get("base_model") or {}).get("revision")
    if recorded_revision and not model.base.revision:  # an adapter_config.json that names no revision
        model = ResolvedModel(resolve_source(model.base.location, recorded_revision), model.adapter)
    # The base exactly as evaluation loads it for this adapter, on the CPU: merging needs no GPU.
    merged = load_model(model, dtype=pick_dtype(dtype, "cpu"), device="cpu").merge_and_unload()
    merged.save_pretrained(out)
    load_processor(model).save_pretrained(out)
    if info:
        write_checkpoint(out, {**{k: v for k, v in info.items() if k != "schema_version"},
                               "merged_from": str(ckpt.resolve()), "merged_dtype": dtype})
    return out
