"""`harness report` over bench directories: both benches on one page, the ratios to the first,
escaping of what a bench file holds, the embedded plots, and refusing a mix of runs and benches."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from harness.cli import cli
from tests.fixtures.run_fixture import write_run
from tests.test_bench import _fake_bench
from tests.test_report_page import _tables


def _scaled_copy(source: Path, target: Path, factor: float, model: str) -> Path:
    """A second bench: the first one's files with every output tokens/s multiplied by `factor`."""
    shutil.copytree(source, target)
    bench = json.loads((target / "bench.json").read_text())
    for c in bench["configurations"]:
        stat = c["output_tokens_per_s"]
        stat.update({k: stat[k] * factor for k in ("mean", "std", "min", "max")},
                    samples=[v * factor for v in stat["samples"]])
    bench["settings"]["model"] = model
    bench["packages"]["transformers"] = "9.9.9"
    (target / "bench.json").write_text(json.dumps(bench))
    return target


def _page(tmp_path, *paths) -> str:
    out = tmp_path / "bench.html"
    result = CliRunner().invoke(cli, ["report", *map(str, paths), "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out.read_text(encoding="utf-8")


def test_two_benches_side_by_side_with_ratios(tmp_path, tiny_model_dir):
    first, _ = _fake_bench(tmp_path, tiny_model_dir, name="h200-a")
    second = _scaled_copy(first, tmp_path / "h200-b", 2.0, "<img src=x onerror=alert(1)>")
    page = _page(tmp_path, first, second)
    tables = _tables(page)

    machines = tables["machines-table"]
    assert machines[0] == ["", "h200-a", "h200-b"]
    transformers_row = next(row for row in machines if row[0] == "transformers")
    assert transformers_row[2] == "9.9.9" and transformers_row[1] != "9.9.9"

    engines = tables["engines-table"]
    assert [row[:2] for row in engines[1:]] == [["transformers none", "h200-a"], ["transformers none", "h200-b"]]
    best = max(c["output_tokens_per_s"]["mean"] for c in json.loads((first / "bench.json").read_text())["configurations"])
    assert engines[2][3] == f"{2 * best:,.1f}" and engines[1][3] == f"{best:,.1f}"

    throughput = tables["throughput-transformers-none"]
    assert throughput[0] == ["in flight", "h200-a output tok/s", "± sd", "h200-b output tok/s", "± sd", "× h200-a"]
    bench = json.loads((first / "bench.json").read_text())
    for row, c in zip(throughput[1:], bench["configurations"], strict=True):
        assert row[0] == str(c["value"])
        assert row[1] == f"{c['output_tokens_per_s']['mean']:,.1f}"
        assert row[3] == f"{2 * c['output_tokens_per_s']['mean']:,.1f}"
        assert row[5] == "2.00×"
    detail = tables["detail-transformers-none"]
    assert len(detail) == 1 + 2 * 3  # a row per bench and point
    assert {row[1] for row in detail[1:]} == {"h200-a", "h200-b"}
    assert {row[detail[0].index("the backend's memory figures")] for row in detail[1:]} == {"engine_kv_cache_mib 1"}

    # What a bench file holds is text, never markup; the page runs no script and loads nothing.
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<script" not in page
    assert "default-src 'none'" in page and "script-src" not in page
    # The comparison chart plus each bench's two plots, as data: URLs.
    assert page.count('src="data:image/png;base64,') == 1 + 2 * 2


def test_one_bench_alone_and_a_plot_name_from_the_file_is_not_followed(tmp_path, tiny_model_dir):
    path, _ = _fake_bench(tmp_path, tiny_model_dir)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG secret")
    bench = json.loads((path / "bench.json").read_text())
    bench["plots"].append("../secret.png")
    (path / "bench.json").write_text(json.dumps(bench))
    page = _page(tmp_path, path)
    assert page.count('src="data:image/png;base64,') == 2  # no comparison chart for one bench
    assert "× " not in "".join(_tables(page)["throughput-transformers-none"][0])


def test_runs_and_benches_do_not_mix(tmp_path, tiny_model_dir):
    bench, _ = _fake_bench(tmp_path, tiny_model_dir)
    run = write_run(tmp_path, "base", {"synth_arith": [{"sample_id": "a0", "correct": True}]})
    result = CliRunner().invoke(cli, ["report", str(bench), str(run), "-o", str(tmp_path / "x.html")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "not both" in lines[0] and str(run) in lines[0]
