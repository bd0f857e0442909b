"""One fix where the installed Unsloth and transformers disagree on a name, applied before Unsloth loads.

    patch_model_type_names(unsloth_zoo.empty_model)   # True where it patched

transformers 5 names Qwen2.5-VL's vision config `qwen2_5_vl_vision`. unsloth_zoo 2026.10.9 knows the
fused vision `qkv` of Qwen2.5-VL only under the old name `qwen2_5_vl` (its list has Qwen3-VL's new name,
`qwen3_vl_vision`, but not this one). Under the new name its weight sharing with vLLM (`fast_inference`)
slices the fused `qkv` as if it were three projections and writes the last slice back over the training
model's `qkv`: at 7B the 16-bit run failed at its first training step reshaping a 1,280-row `qkv` (3,840
expected), and the 4-bit run at load with an IndexError over two shard offsets. It also counts the layers
as a language model's default 32. Every one of those places asks `unsloth_zoo.empty_model.get_model_type`,
so that function is wrapped to give the old name for the new one, and only while the installed
unsloth_zoo does not list the new name itself.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

# transformers 5's model_type of a vision config -> the name unsloth_zoo's tables use for that model
NEW_VISION_NAMES = {"qwen2_5_vl_vision": "qwen2_5_vl"}


def patch_model_type_names(module: ModuleType) -> bool:
    """Wrap `module.get_model_type` so that it answers with the names `module`'s tables know; False where
    there is nothing to do (no such function, already wrapped, or every new name known)."""
    original = getattr(module, "get_model_type", None)
    if original is None or getattr(original, "harness_renames", None) is not None:
        return False
    known = set(getattr(module, "QWEN_VL_MERGED_QKV_TYPES", ()))
    renames = {new: old for new, old in NEW_VISION_NAMES.items() if new not in known}
    if not renames:
        return False

    @functools.wraps(original)
    def get_model_type(config: Any) -> Any:
        name = original(config)
        return renames.get(name, name)

    get_model_type.harness_renames = renames  # type: ignore[attr-defined]
    module.get_model_type = get_model_type
    return True


def patch_unsloth_zoo() -> bool:
    """Apply the fix to the installed unsloth_zoo (imported by `import unsloth`)."""
    from unsloth_zoo import empty_model

    return patch_model_type_names(empty_model)
