"""`harness sweep`: evaluate the saved steps of a training run (trainers/sweep.py)."""

from __future__ import annotations

import click

from harness.cli.options import parse_data_dirs


@click.command("sweep")
@click.argument("checkpoint_dir", type=click.Path())
@click.option("--suite", "suites", multiple=True, required=True, help="Suite to evaluate each step on (repeatable).")
@click.option("--every", type=int, help="Only the steps that are multiples of K (the final step always).")
@click.option("--limit", type=int, help="First evaluate every step on the first N items of each suite, then "
              "only the --top best on the whole suites (default: every step on the whole suites).")
@click.option("--top", type=int, default=3, show_default=True,
              help="With --limit: how many of the best steps on the subset get the whole suites (0: none).")
@click.option("--split", help="Split of the suites (default: each suite's evaluation split).")
@click.option("--data-dir", "data_dirs", multiple=True, help="Local data: PATH for all suites, or SUITE=PATH "
              "(default: the training run's).")
@click.option("--backend", help="Generation backend, as for harness eval (default: transformers).")
@click.option("--max-new-tokens", type=int, help="Generation limit (default: the training run's evaluations').")
@click.option("--batch-size", type=int, help="Prompts per generate call (default: the training run's evaluations').")
@click.option("--out", help="Sweep directory (default: CHECKPOINT_DIR/sweeps/<suites>); a sweep there is resumed.")
@click.option("--quiet", is_flag=True, help="No progress bars or progress log lines.")
def sweep_command(checkpoint_dir: str, suites: tuple[str, ...], every: int | None, limit: int | None, top: int,
                  split: str | None, data_dirs: tuple[str, ...], backend: str | None, max_new_tokens: int | None,
                  batch_size: int | None, out: str | None, quiet: bool) -> None:
    """Evaluate the saved steps of a training run; prints the sweep directory.

    The steps are the adapters `harness train` saved (steps/step-N with --set save_steps=N or eval_every,
    and the final one). Each is evaluated with the run's own evaluation settings (prompt format,
    generation limit, temperature, seed; a suite trained on is evaluated on its held-out items), into
    one ordinary run directory per step: with --limit, each step on a subset first, then the --top best
    on the whole suites. Run it again to resume: finished runs are kept, steps saved since are added.
    `harness report SWEEP_DIR` plots accuracy, no-answer rate and format compliance against step.

    Example: harness sweep checkpoints/gspo-1 --suite mathvista_testmini --every 20 --limit 100 --top 3
    """
    from harness.progress import default_mode
    from trainers.sweep import sweep

    path = sweep(checkpoint_dir, list(suites), every=every, limit=limit, top=top, out=out, split=split,
                 data_dir=parse_data_dirs(data_dirs), progress=default_mode(quiet),
                 overrides={"backend": backend, "max_new_tokens": max_new_tokens, "batch_size": batch_size},
                 echo=lambda m: click.echo(m, err=True))
    click.echo(str(path))
