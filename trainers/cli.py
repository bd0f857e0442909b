"""`harness train`, `harness export` and `harness demo`: the command line over trainers/.

Nothing here imports trl at module level: under Unsloth, `import unsloth` must come first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from harness.errors import ConfigError


def _parse_set(values: tuple[str, ...]) -> dict[str, Any]:
    """--set KEY=VALUE, VALUE read as JSON when it parses (numbers, true, lists), else as a string."""
    out: dict[str, Any] = {}
    for value in values:
        key, sep, raw = value.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set takes KEY=VALUE, got {value!r}")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


@click.command("train")
@click.option("--algo", type=click.Choice(["gspo", "grpo"]), help="gspo (default) or grpo; nothing else differs.")
@click.option("--model", help="Base model dir or Hub id (default: the tiny offline model).")
@click.option("--revision", help="Hub revision (commit) of the base model.")
@click.option("--suite", "suites", multiple=True, help="Training suite (repeatable); its --split is trained on.")
@click.option("--split", help="Split of the training suites (default: train).")
@click.option("--dataset", help="Local dataset file or dir (image, question, answer) instead of suites.")
@click.option("--data-dir", "data_dirs", multiple=True, help="Local data: PATH for all suites, or SUITE=PATH.")
@click.option("--config", "config", help="Preset name (unsloth-recipe, gspo-paper) or a TOML/JSON file.")
@click.option("--engine", type=click.Choice(["auto", "unsloth", "trl"]), help="Default auto: unsloth on CUDA.")
@click.option("--max-steps", type=int, help="Optimizer steps.")
@click.option("--eval-suite", "eval_suites", multiple=True, help="Suite to evaluate and guard against (repeatable).")
@click.option("--eval-every", type=int, help="Evaluate every N steps (and always at the end).")
@click.option("--eval-limit", type=int, help="First N items of each eval suite.")
@click.option("--held-out", type=int, help="Hold out N seeded training items for evaluation.")
@click.option("--allow-overlap", is_flag=True, default=None, help="Train despite train/eval overlap (recorded).")
@click.option("--load-in-4bit", is_flag=True, default=None, help="QLoRA: 4-bit base weights (CUDA).")
@click.option("--fast-inference", is_flag=True, default=None, help="Unsloth: vLLM rollouts.")
@click.option("--set", "sets", multiple=True, help="Any config key, e.g. --set num_generations=4 (repeatable).")
@click.option("--out", help="Checkpoint directory (default checkpoints/<algo>-<time>).")
def train_command(suites: tuple[str, ...], data_dirs: tuple[str, ...], eval_suites: tuple[str, ...],
                  sets: tuple[str, ...], config: str | None, **flags: Any) -> None:
    """Train a LoRA checkpoint with GSPO or GRPO (TRL's GRPOTrainer; Unsloth or plain TRL + PEFT).

    Rewards are the suites' own format and correctness rewards. Prints the checkpoint directory, which
    `harness eval --model DIR` evaluates.

    Example: harness train --algo gspo --config unsloth-recipe --model Qwen/Qwen2.5-VL-7B-Instruct
    --suite mathvista_testmini --split testmini --held-out 100 --eval-suite mathvista_testmini --max-steps 60
    """
    from harness.cli import _parse_data_dirs
    from trainers.config import TrainConfig

    given = {k: v for k, v in flags.items() if v is not None}
    if suites:
        given["suites"] = list(suites)
    if eval_suites:
        given["eval_suites"] = list(eval_suites)
    if data_dirs:
        given["data_dir"] = _parse_data_dirs(data_dirs)
    if given.get("dataset") and not suites:
        given["suites"] = []
    given.update(_parse_set(sets))
    cfg, notes = TrainConfig.from_sources(config, given)
    from trainers.train import train

    click.echo(str(train(cfg, notes=notes, echo=lambda m: click.echo(m, err=True))))


@click.command("export")
@click.argument("checkpoint", type=click.Path())
@click.option("--merge", "merge_out", required=True, help="Write the base model with the LoRA merged in here.")
@click.option("--dtype", type=click.Choice(["bfloat16", "float16"]), default="bfloat16", show_default=True)
def export_command(checkpoint: str, merge_out: str, dtype: str) -> None:
    """Merge a LoRA checkpoint into its base model and save a 16-bit model (with the processor).

    Example: harness export checkpoints/gspo-20261120 --merge models/gspo-merged
    """
    from trainers.checkpoint import merge_to_16bit

    click.echo(str(merge_to_16bit(Path(checkpoint), Path(merge_out), dtype)))


@click.command("demo")
@click.option("--out", default="demo", show_default=True, help="Directory for everything the demo writes.")
@click.option("--algo", type=click.Choice(["gspo", "grpo"]), default="gspo", show_default=True)
@click.option("--quick", is_flag=True, help="Fewer steps and items (a smoke run, for tests).")
def demo_command(out: str, algo: str, quick: bool) -> None:
    """The whole story offline on a CPU: tiny model, warm start, baseline eval, GSPO, eval again, diff.

    Example: harness demo --out demo
    """
    from trainers.demo import run_demo

    run_demo(Path(out), algo=algo, quick=quick, echo=lambda m: click.echo(m, err=True))
