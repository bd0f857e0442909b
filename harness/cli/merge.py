"""`harness merge`: the shards of a run (`harness eval --shard K/N`) put back together as one run directory."""

from __future__ import annotations

import click


@click.command("merge")
@click.argument("shards", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--out", required=True, help="The merged run directory to write.")
def merge_command(shards: tuple[str, ...], out: str) -> None:
    """Merge the run directories of `harness eval --shard K/N` (all N of them) into one run; prints it.

    The shards must be finished runs of the same settings, model, scoring and suites; a missing or
    repeated shard, or one of other settings, is refused with one line naming it. The merged run equals
    a one-process run item for item, its metrics recomputed from the records.

    Example: harness merge runs/ckpt-shard-1 runs/ckpt-shard-2 runs/ckpt-shard-3 -o runs/ckpt
    """
    from harness.merge import merge_shards

    click.echo(str(merge_shards(list(shards), out, echo=lambda m: click.echo(m, err=True))))
