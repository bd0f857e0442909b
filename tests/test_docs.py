"""The documented run-directory schema names every field the code writes."""

from pathlib import Path

from harness.config import field_help
from harness.metrics import suite_metrics, throughput
from harness.runstore import RECORD_KEYS

DOC = (Path(__file__).resolve().parents[1] / "docs" / "run-directory.md").read_text()


def test_every_record_key_is_documented():
    missing = [k for k in RECORD_KEYS if f"`{k}`" not in DOC]
    assert not missing


def test_every_metric_key_is_documented():
    keys = set(suite_metrics([])) | set(throughput([]))
    missing = [k for k in keys - {"note", "n_records", "attempts_per_item"} if f"`{k}`" not in DOC
               and f"suites.<name>.{k}" not in DOC]
    assert not missing


def test_every_config_field_has_a_help_line():
    assert all(field_help().values())


def test_suites_page_is_current():
    from harness.docs_suites import render

    page = (Path(__file__).resolve().parents[1] / "docs" / "suites.md").read_text()
    assert page == render(), "regenerate: uv run python -m harness.docs_suites > docs/suites.md"


def test_public_api_is_pinned():
    import harness

    assert sorted(harness.__all__) == sorted([
        "PROMPT_FORMATS", "BackendError", "Completion", "ConfigError", "DataError", "EvalConfig",
        "GenerationParams", "HarnessError", "ModelError", "Request", "RunDir", "RunDirError",
        "format_failures", "judge", "load_backend", "rescore", "rewards", "run_eval"])
    assert all(hasattr(harness, name) for name in harness.__all__)
