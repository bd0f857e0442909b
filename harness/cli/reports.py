"""`harness report` and `harness gate`: the comparison page and the CI regression gate over run directories."""

from __future__ import annotations

import click

from core.errors import ConfigError


@click.command("report")
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--out", default="report.html", show_default=True, type=click.Path(),
              help="The HTML file to write.")
@click.option("--title", help="Page title (default: the run labels).")
@click.option("--lang", type=click.Choice(["en", "zh"]), default="en", show_default=True,
              help="The page's starting language (it has an English / 中文 switch).")
def report_command(runs: tuple[str, ...], out: str, title: str | None, lang: str) -> None:
    """Write one self-contained HTML page comparing runs; the first RUN is the baseline.

    Bench directories (from `harness bench`) get the bench page instead: one or more of them side by
    side, with each one's throughput as a ratio to the first. A sweep directory (from `harness sweep`)
    stands for its runs and adds accuracy, no-answer rate and format compliance against step.

    Example: harness report runs/base runs/candidate -o report.html --title "GSPO step 40"
    """
    from harness.benchstore import is_bench_dir

    benches = [is_bench_dir(path) for path in runs]
    if any(benches):
        if not all(benches):
            raise ConfigError("a report is of run directories or of bench directories, not both: "
                              + ", ".join(path for path, bench in zip(runs, benches, strict=True) if not bench)
                              + " holds no bench")
        from reports.bench_page import build_bench_report

        click.echo(f"wrote {build_bench_report(runs, out, title=title)}")
        return
    from reports.page import build_report

    click.echo(f"wrote {build_report(runs, out, title=title, lang=lang)}")


@click.command("gate")
@click.option("--baseline", required=True, help="The baseline run directory.")
@click.option("--candidate", required=True, help="The candidate run directory.")
@click.option("--suite", "suites", multiple=True, help="Suite to gate (repeatable; default: every baseline suite).")
@click.option("--max-drop", type=float, default=1.0, show_default=True,
              help="Allowed accuracy drop in percentage points.")
@click.option("--alpha", type=float, default=0.05, show_default=True,
              help="Significance level of McNemar's exact test, after Holm over the gated suites.")
@click.option("--min-format", type=float, default=None,
              help="Floor (0-1) on the candidate's format compliance on each gated suite.")
@click.option("--allow-partial", is_flag=True,
              help="Gate runs that are not finished (running, unfinished, duplicated, error) on the items both have.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout (verdict on stderr).")
@click.pass_context
def gate_command(ctx: click.Context, baseline: str, candidate: str, suites: tuple[str, ...], max_drop: float,
                 alpha: float, min_format: float | None, allow_partial: bool, as_json: bool) -> None:
    """CI regression gate: fail when the candidate run is worse than the baseline run.

    A suite fails when the candidate's accuracy drops by more than --max-drop points and McNemar's
    exact test on the paired items supports it (p < --alpha after Holm over the gated suites), or
    when its format compliance is below --min-format. Prints a one-line verdict and a Markdown
    summary (JSON with --json). Exit status: 0 pass, 1 regression, 2 runs that cannot be compared
    (missing run, different items, split, prompt format or generation settings, or a run that is not
    finished, unless --allow-partial).

    Example: harness gate --baseline runs/base --candidate runs/ckpt-40 --max-drop 2 --min-format 0.95
    """
    from reports.gate import gate, gate_verdict

    args = (baseline, candidate, list(suites) or None, max_drop, alpha, min_format)
    if as_json:
        # CI scripts read the JSON summary, unusable input included (verdict "error", exit code 2).
        result = gate_verdict(*args, allow_partial=allow_partial)
        click.echo(result.reason, err=True)
        click.echo(result.to_json())
    else:
        result = gate(*args, allow_partial=allow_partial)  # unusable input raises: one line and exit 2
        click.echo(result.reason)
        click.echo()
        click.echo(result.to_markdown(), nl=False)
    ctx.exit(result.exit_code)
