"""`harness eval-many PLAN.toml`: several checkpoints x suites as one job, each run in its own directory."""

from __future__ import annotations

import click

from core.errors import HarnessError


@click.command("eval-many")
@click.argument("plan_file", metavar="PLAN", type=click.Path())
@click.option("--ray", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
              help="Run on a Ray cluster (overrides the plan's ray setting): with no ADDRESS a local cluster is "
              "started here, else connect to ADDRESS (auto, HOST:6379, ray://HOST:10001).")
@click.option("--check", is_flag=True, help="Check the plan and list its runs; evaluate nothing.")
@click.option("--quiet", is_flag=True, help="No progress bars or log lines of the runs.")
def eval_many_command(plan_file: str, ray: str | None, check: bool, quiet: bool) -> None:
    """Evaluate every checkpoint of a plan on its suites, each run writing its own run directory; prints
    each run directory as it finishes.

    Runs of one base model share the replicas on a Ray cluster (vllm: LoRA adapters switched per
    request). A run directory that already exists is resumed, so running the plan again after a crash
    finishes it. A run that fails is reported and the others go on; the exit status is then 2. The plan
    format: docs/scale-out.md.

    Example: harness eval-many sweep.toml --ray auto
    """
    from harness.eval_many import read_plan, run_plan
    from harness.progress import default_mode

    plan = read_plan(plan_file, {"ray": ray} if ray else None)
    if check:
        for run in plan.runs():
            click.echo(f"{run.name}\t{run.cfg.out}\t{run.cfg.model}\t{','.join(run.cfg.suites) or 'default suites'}")
        return
    outcomes = run_plan(plan, echo=lambda m: click.echo(m, err=True), progress=default_mode(quiet))
    for outcome in outcomes:
        if outcome.error is None:
            click.echo(str(outcome.path))
    failed = [o for o in outcomes if o.error is not None]
    if failed:
        raise HarnessError(f"{len(failed)} of {len(outcomes)} run(s) failed: "
                           + "; ".join(f"{o.name} ({o.error})" for o in failed))
