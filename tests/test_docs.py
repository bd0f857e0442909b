"""The documented formats name every key of their types, and every config field has a help line."""

import re
from pathlib import Path
from typing import Any, get_args, get_type_hints, is_typeddict

import pytest

from harness.checkpoints import CheckpointInfo, TrainLogRow
from harness.config import field_help
from harness.judge_cache import JudgeCacheEntry
from harness.run_schema import Manifest, Metrics, Record
from harness.sweeps import SweepInfo

DOCS = Path(__file__).resolve().parents[1] / "docs"


def typed_keys(typed_dict: Any) -> set[str]:
    """Every key of a TypedDict and of the TypedDicts nested in its values (lists, dicts, unions)."""
    keys = set()
    for key, hint in get_type_hints(typed_dict).items():
        keys.add(key)
        for nested in _nested_typed_dicts(hint):
            keys |= typed_keys(nested)
    return keys


def _nested_typed_dicts(hint: Any):
    if is_typeddict(hint):
        yield hint
    for arg in get_args(hint):
        yield from _nested_typed_dicts(arg)


def doc_section(page: str, heading: str) -> str:
    """The text under `## heading` up to the next second-level heading."""
    text = (DOCS / page).read_text()
    start = text.index(f"\n## {heading}")
    end = text.find("\n## ", start + 4)
    return text[start:end if end > 0 else None]


def documented_words(section: str) -> set[str]:
    """Words inside backticks: `suites.<name>.accuracy` documents suites, name and accuracy."""
    return {word for span in re.findall(r"`([^`]+)`", section) for word in re.findall(r"[\w/]+", span)}


@pytest.mark.parametrize(("typed_dict", "page", "heading"), [
    (Record, "run-directory.md", "records.jsonl"),
    (Manifest, "run-directory.md", "manifest.json"),
    (Metrics, "run-directory.md", "metrics.json"),
    (CheckpointInfo, "training.md", "checkpoint.json"),
    (TrainLogRow, "training.md", "Periodic evaluation and logs"),
    (SweepInfo, "training.md", "sweep.json"),
    (JudgeCacheEntry, "judge.md", "The judge cache"),
], ids=lambda v: getattr(v, "__name__", None))
def test_every_key_of_a_format_type_is_documented(typed_dict, page, heading):
    words = documented_words(doc_section(page, heading))
    missing = sorted(k for k in typed_keys(typed_dict) if k not in words)
    assert not missing, f"{page} ## {heading} does not document {missing}"


def test_every_config_field_has_a_help_line():
    assert all(field_help().values())

def test_suites_page_is_current():
    from harness.docs_suites import hand_written, render

    page = (Path(__file__).resolve().parents[1] / "docs" / "suites.md").read_text()
    tail = hand_written(page)
    assert page == render() + ("\n" + tail if tail else ""), \
        "regenerate: uv run python -m harness.docs_suites --write"


def test_public_api_is_pinned():
    import harness

    assert sorted(harness.__all__) == sorted([
        "PROMPT_FORMATS", "BackendError", "Completion", "ConfigError", "DataError", "EvalConfig",
        "GenerationParams", "HarnessError", "ModelError", "Request", "RunDir", "RunDirError",
        "format_failures", "judge", "load_backend", "rescore", "rewards", "run_eval"])
    assert all(hasattr(harness, name) for name in harness.__all__)
