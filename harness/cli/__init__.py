"""`harness`: the one command line, a thin layer over the libraries. Each command's docstring is its --help.

One module per command group: eval.py (eval, show, rescore, score, suites), bench.py (bench),
models.py (tiny-model, random-model, export), train.py (train, demo), sweep.py (sweep), reports.py (report,
gate), imports.py (import lmms-eval), merge.py (merge), eval_many.py (eval-many). The libraries below return
values and raise HarnessError; this package alone prints and exits. `main` is the console script `harness`:

    harness eval --suite synth_arith --limit 4
    python -m harness.cli eval --suite synth_arith --limit 4
"""

from __future__ import annotations

import os
from typing import Any

import click

from core.errors import LAUNCH_ERRORS_ENV, HarnessError, Interrupted
from harness.cli.bench import bench_command
from harness.cli.eval import eval_command, rescore_command, score_command, show_command, suites_command
from harness.cli.eval_many import eval_many_command
from harness.cli.imports import import_group
from harness.cli.merge import merge_command
from harness.cli.models import export_command, random_model_command, tiny_model_command
from harness.cli.reports import gate_command, report_command
from harness.cli.sweep import sweep_command
from harness.cli.train import demo_command, train_command


class _Group(click.Group):
    """The one place where an error the user can fix becomes one line on stderr and exit status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Interrupted as exc:  # work stopped by a signal, saved: the shell's 128 + signal number
            if not exc.reported_elsewhere:
                _say(f"interrupted: {exc}")
            ctx.exit(128 + exc.signum)
        except HarnessError as exc:
            if not exc.reported_elsewhere:
                _say(f"error: {exc}")
            ctx.exit(2)


def _say(line: str) -> None:
    """One line on stderr; in one of several training processes, from the main one only (the command
    that launched them prints the others' lines that differ)."""
    if os.environ.get(LAUNCH_ERRORS_ENV):  # a launched training process (the trainers package loads only then)
        from trainers.distributed import leave_error_to_launcher

        if leave_error_to_launcher(line):
            return
    click.echo(line, err=True)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vlm-math-harness")
def cli() -> None:
    """Evaluate and benchmark vision-language math reasoning checkpoints.

    Example: harness eval --model runs/ckpt --suite mathvista_testmini --data-dir ~/data/MathVista
    """


for _command in (eval_command, suites_command, show_command, rescore_command, score_command,
                 tiny_model_command, random_model_command, export_command, train_command, demo_command, report_command,
                 gate_command, bench_command, import_group, merge_command, sweep_command, eval_many_command):
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="harness")


__all__ = ["cli", "main"]
