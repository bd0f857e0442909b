"""What a manifest records about where a run came from: git state, package versions, hardware."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("vlm-math-harness", "torch", "torchvision", "transformers", "datasets", "peft", "accelerate",
            "tokenizers", "math-verify", "pillow", "numpy", "bitsandbytes", "trl", "vllm", "unsloth")

_REPO = Path(__file__).resolve().parents[1]


def git_state(cwd: Path = _REPO) -> dict[str, Any]:
    """Commit and dirty flag of the harness's own checkout (None outside a git checkout)."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def platform_info() -> dict[str, Any]:
    from harness.gpu_memory import hardware_info

    return {"platform": platform.platform(), **hardware_info()}
