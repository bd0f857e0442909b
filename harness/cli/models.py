"""`harness tiny-model`, `harness random-model` and `harness export`: building test and benchmark models,
and merging LoRA checkpoints."""

from __future__ import annotations

from pathlib import Path

import click

from harness.random_model import ARCHS as RANDOM_ARCHS


@click.command("tiny-model")
@click.argument("out", type=click.Path())
@click.option("--arch", type=click.Choice(["qwen2_5_vl", "qwen3_vl"]), default="qwen2_5_vl", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--force", is_flag=True, help="Replace what OUT holds (refused otherwise).")
def tiny_model_command(out: str, arch: str, seed: int, force: bool) -> None:
    """Build a tiny random model of a real Qwen-VL architecture, offline, loadable by from_pretrained.

    OUT must be new or empty unless --force; the model is written aside and moved into place whole.

    Example: harness tiny-model /tmp/tiny-qwen3 --arch qwen3_vl --seed 1
    """
    from harness.tiny_model import build_tiny_model

    click.echo(str(build_tiny_model(Path(out), arch=arch, seed=seed, force=force)))


@click.command("random-model")
@click.argument("out", type=click.Path())
@click.option("--arch", required=True, type=click.Choice(list(RANDOM_ARCHS)),
              help="Whose published sizes the model has.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--dtype", type=click.Choice(["bfloat16", "float16", "float32"]), default="bfloat16", show_default=True)
@click.option("--device", default="auto", show_default=True, help="Where to build it: auto (the GPU when there is "
              "one), cpu, cuda or cuda:N.")
@click.option("--layers", type=int, help="Language-model layers instead of the published count.")
@click.option("--hidden-size", type=int, help="Language-model width (a multiple of its head dimension).")
@click.option("--vision-depth", type=int, help="Vision-tower blocks instead of the published count.")
@click.option("--vision-heads", type=int, help="Vision-tower heads (its width follows).")
@click.option("--vocab-size", type=int, help="Vocabulary size instead of the published one.")
@click.option("--force", is_flag=True, help="Replace what OUT holds (refused otherwise).")
def random_model_command(out: str, arch: str, seed: int, dtype: str, device: str, force: bool,
                         **reduce: int | None) -> None:
    """Build a model of a published Qwen-VL architecture's sizes with random weights, for speed and memory
    benchmarks: the tiny model's offline tokenizer (padded to the model's vocabulary) and the family's
    published image limits, saved as safetensors; both backends load it. Built on the GPU when there is
    one (about 16 GB and half a minute for qwen2_5_vl_7b). The size options make reduced copies for tests.

    Example: harness random-model models/qwen2_5_vl_7b-random --arch qwen2_5_vl_7b
    """
    from harness.random_model import build_random_model

    click.echo(str(build_random_model(Path(out), arch, seed=seed, device=device, dtype=dtype, force=force, **reduce)))


@click.command("export")
@click.argument("checkpoint", type=click.Path())
@click.option("--merge", "merge_out", required=True, help="Write the base model with the LoRA merged in here.")
@click.option("--dtype", type=click.Choice(["bfloat16", "float16"]), default="bfloat16", show_default=True)
@click.option("--force", is_flag=True, help="Replace what the --merge folder holds (refused otherwise).")
def export_command(checkpoint: str, merge_out: str, dtype: str, force: bool) -> None:
    """Merge a LoRA checkpoint into its base model and save a 16-bit model (with the processor).

    The --merge folder must be new or empty unless --force; it is checked before anything loads.

    Example: harness export checkpoints/gspo-20261120 --merge models/gspo-merged
    """
    from trainers.checkpoint import merge_to_16bit

    click.echo(str(merge_to_16bit(Path(checkpoint), Path(merge_out), dtype, force=force)))
