"""`harness import`: other tools' evaluation logs as run directories (today: lmms-eval's sample logs)."""

from __future__ import annotations

import click

from harness.cli.options import parse_data_dirs


@click.group("import")
def import_group() -> None:
    """Turn another tool's evaluation logs into a run directory (report, gate and show read it).

    Example: harness import lmms-eval logs/Qwen__Qwen2.5-VL-7B-Instruct -o runs/qwen-lmms --data-dir ~/data/MathVista
    """


@import_group.command("lmms-eval")
@click.argument("path", type=click.Path())
@click.option("-o", "--out", help="Run directory to write (default: runs/<run id>).")
@click.option("--data-dir", "data_dirs", multiple=True,
              help="The suite's data, as for eval: PATH for all suites, or SUITE=PATH (default: the hub).")
@click.option("--task", "tasks", multiple=True,
              help="Import only this lmms-eval task (repeatable; default: every task in the log).")
def lmms_eval_command(path: str, out: str | None, data_dirs: tuple[str, ...], tasks: tuple[str, ...]) -> None:
    """Import lmms-eval's --log_samples output (MathVista, MathVerse, GSM8K); prints the run directory.

    PATH is a samples file (<date>_samples_<task>.jsonl), a results file (<date>_results.json) or the
    folder holding one evaluation's files. Responses are re-scored with the harness's scorers; lmms-eval's
    own verdict stays beside them in each record, and the manifest says where the run came from.

    Example: harness import lmms-eval logs/Qwen__Qwen2.5-VL-7B-Instruct --task mathvista_testmini_cot -o runs/qwen-cot
    """
    from harness.lmms_eval_import import import_lmms_eval

    click.echo(str(import_lmms_eval(path, out, parse_data_dirs(data_dirs), list(tasks) or None)))
