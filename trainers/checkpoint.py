"""The trainer's side of a checkpoint: the LoRA check after training, and the merge into a 16-bit model.
The checkpoint directory's files and their format belong to harness/checkpoints.py.

    lora = lora_check(trainer.model)     # {"all_nonzero": True, "n_modules": 28, ...}
    merge_to_16bit("checkpoints/gspo-1", "models/gspo-merged")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.errors import ModelError
from harness.checkpoints import LoraCheck, read_checkpoint, write_checkpoint
from harness.outdirs import check_output_dir, staged_output


def lora_check(model: Any) -> LoraCheck:
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


def merge_to_16bit(checkpoint: str | Path, out: str | Path, dtype: str = "bfloat16", force: bool = False) -> Path:
    """Merge the LoRA adapter into its base model and save a plain 16-bit model (+ processor).
    `out` must be new or empty unless force (checked before anything loads); it is written aside and
    moved into place whole."""
    from harness.models import ADAPTER_CONFIG_FILE, merge_adapter, resolve_model

    ckpt, out = Path(checkpoint), Path(out)
    if ckpt.exists() and not ckpt.is_dir():
        raise ModelError(f"{ckpt} is a file; pass the checkpoint's folder")
    if not (ckpt / ADAPTER_CONFIG_FILE).is_file():
        raise ModelError(f"{ckpt} holds no {ADAPTER_CONFIG_FILE}: not a LoRA checkpoint")
    check_output_dir(out, "model directory", force)
    model = resolve_model(str(ckpt))
    info = read_checkpoint(ckpt)
    with staged_output(out, "model directory", force) as staging:
        merge_adapter(model, staging, dtype)  # the base as evaluation loads it, on the CPU
        if info:
            write_checkpoint(staging, {**info, "merged_from": str(ckpt.resolve()), "merged_dtype": dtype})
    return out
