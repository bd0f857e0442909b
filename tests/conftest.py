"""Shared test fixtures: the reference data folder (optional) and the tiny offline models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never reach a hub: loaders must fall back to local files or fail fast with a clear error.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The Ray tests' workers use this Python environment (not Ray's `uv run` of a copy of the checkout).
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")

REPO = Path(__file__).resolve().parents[1]


def reference_data_dir() -> Path:
    """Real benchmark reference files, kept beside the checkout (never committed); tests skip without."""
    return Path(os.environ.get("HARNESS_REFERENCE_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def reference_data() -> Path:
    path = reference_data_dir()
    if not path.is_dir():
        pytest.skip(f"reference data not found at {path} (set HARNESS_REFERENCE_DATA)")
    return path


@pytest.fixture
def offline_hub(monkeypatch):
    """The Hub unreachable, as with no network: every `datasets.load_dataset` raises ConnectionError."""
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The tiny random Qwen2.5-VL model, built offline once per test session."""
    from harness.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "qwen2_5_vl", arch="qwen2_5_vl", seed=0)


@pytest.fixture(scope="session")
def tiny_qwen3_dir(tmp_path_factory) -> Path:
    from harness.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "qwen3_vl", arch="qwen3_vl", seed=0)
