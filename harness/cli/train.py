"""`harness train` and `harness demo`: the command line over trainers/.

Nothing here imports trl at module level: under Unsloth, `import unsloth` must come first.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from core.errors import ConfigError
from harness.cli.options import parse_data_dirs, parse_set, parse_weights


@click.command("train")
@click.option("--algo", type=click.Choice(["gspo", "grpo"]), help="gspo (default) or grpo; nothing else differs.")
@click.option("--model", help="Base model dir or Hub id (default: the tiny offline model).")
@click.option("--revision", help="Hub revision (commit) of the base model.")
@click.option("--suite", "suites", multiple=True, help="Training suite (repeatable); its --split is trained on.")
@click.option("--split", "splits", multiple=True, help="Split of the training suites (default: train), or "
              "SUITE=SPLIT for one of them (repeatable).")
@click.option("--dataset", help="Local dataset file or dir (image, question, answer) instead of suites.")
@click.option("--data-dir", "data_dirs", multiple=True, help="Local data: PATH for all suites, or SUITE=PATH.")
@click.option("--mix", "mix", multiple=True, help="Mixing weight SUITE=WEIGHT of a training suite (repeatable; "
              "give one for every --suite), e.g. --mix gsm8k=1 --mix mathvista_testmini=3.")
@click.option("--config", "config", help="Preset name (unsloth-recipe, gspo-paper, cpu-small) or a TOML/JSON file.")
@click.option("--engine", type=click.Choice(["auto", "unsloth", "trl"]), help="Default auto: unsloth on CUDA.")
@click.option("--reward-mode", type=click.Choice(["suite", "recipe"]),
              help="Correctness reward: suite (default: the suite scorer's verdict) or recipe (the notebook's string rule).")
@click.option("--max-steps", type=int, help="Optimizer steps.")
@click.option("--eval-suite", "eval_suites", multiple=True, help="Suite to evaluate and guard against (repeatable).")
@click.option("--eval-every", type=int, help="Evaluate every N steps (and always at the end).")
@click.option("--eval-limit", type=int, help="First N items of each eval suite.")
@click.option("--held-out", type=int, help="Hold out N seeded training items for evaluation.")
@click.option("--allow-overlap", is_flag=True, default=None, help="Train despite train/eval overlap (recorded).")
@click.option("--load-in-4bit", is_flag=True, default=None, help="QLoRA: 4-bit base weights (CUDA).")
@click.option("--fast-inference", is_flag=True, default=None, help="Unsloth: vLLM rollouts.")
@click.option("--num-processes", type=click.IntRange(min=1), help="Train on N processes, one per GPU (data "
              "parallel, trl engine): the command starts itself again under accelerate launch.")
@click.option("--deepspeed", type=click.Choice(["zero2", "zero3"]), help="With --num-processes: DeepSpeed ZeRO "
              "(needs the deepspeed package).")
@click.option("--set", "sets", multiple=True, help="Any config key, e.g. --set num_generations=4 (repeatable).")
@click.option("--out", help="Checkpoint directory (default checkpoints/<algo>-<time>); new or empty unless --force.")
@click.option("--force", is_flag=True, help="Replace what --out holds (refused otherwise).")
@click.option("--resume", "resume_dir", help="Continue the stopped or crashed run in this checkpoint directory "
              "from its last saved step, with its own settings (no other option).")
def train_command(suites: tuple[str, ...], data_dirs: tuple[str, ...], eval_suites: tuple[str, ...],
                  sets: tuple[str, ...], config: str | None, force: bool, resume_dir: str | None,
                  mix: tuple[str, ...], splits: tuple[str, ...], **flags: Any) -> None:
    """Train a LoRA checkpoint with GSPO or GRPO (TRL's GRPOTrainer; Unsloth or plain TRL + PEFT).

    Rewards are the suites' own: the recipe's format reward, and correctness as the suite's scorer judges
    it (--reward-mode recipe: the Unsloth notebook's string rule instead). Prints the checkpoint directory, which
    `harness eval --model DIR` evaluates. On a CPU it first says what a step will roughly cost (the
    defaults are sized for a GPU; --config cpu-small is not). SIGTERM or Ctrl-C saves the adapter
    trained so far and marks the checkpoint interrupted (exit 143 or 130); --resume DIR continues a
    stopped or crashed run from its last saved step (trainer states are saved every resume_every steps).
    --num-processes N trains on N GPUs (or N CPU processes), each with the per-device batch; a run so
    trained resumes on as many. `accelerate launch -m harness.cli train ...` works too.

    Example: harness train --algo gspo --config unsloth-recipe --model Qwen/Qwen2.5-VL-7B-Instruct
    --suite mathvista_testmini --split testmini --held-out 100 --eval-suite mathvista_testmini --max-steps 60
    """
    from trainers.config import TrainConfig
    from trainers.distributed import launched_world

    given = {k: v for k, v in flags.items() if v is not None}
    if resume_dir is not None:
        others = [name for name, value in (("--suite", suites), ("--data-dir", data_dirs), ("--eval-suite", eval_suites),
                                           ("--set", sets), ("--config", config), ("--force", force), ("--mix", mix),
                                           ("--split", splits))
                  if value]
        others += ["--" + name.replace("_", "-") for name in given]
        if others:
            raise ConfigError(f"--resume continues a run with its recorded settings; drop {', '.join(others)}")
        from trainers.resume import resumable_config, resume

        _launch_if_needed(resumable_config(resume_dir))  # on as many processes as the run trained on
        out = resume(resume_dir, echo=lambda m: click.echo(m, err=True))
        if launched_world().main:
            click.echo(str(out))
        return
    if suites:
        given["suites"] = list(suites)
    if eval_suites:
        given["eval_suites"] = list(eval_suites)
    if data_dirs:
        given["data_dir"] = parse_data_dirs(data_dirs)
    if mix:
        given["mix"] = parse_weights(mix)
    for value in splits:
        name, sep, split = value.partition("=")
        if sep:
            given.setdefault("suite_splits", {})[name] = split
        else:
            given["split"] = value
    if given.get("dataset") and not suites:
        given["suites"] = []
    given.update(parse_set(sets))
    # under accelerate launch: as many processes as it started, unless the config or a flag says otherwise
    launched = {"num_processes": launched_world().size} if launched_world().size > 1 else {}
    cfg, notes = TrainConfig.from_sources(config, given, defaults=launched)
    _launch_if_needed(cfg)
    from trainers.train import train

    out = train(cfg, notes=notes, echo=lambda m: click.echo(m, err=True), force=force)
    if launched_world().main:  # one line from the processes together
        click.echo(str(out))


def _launch_if_needed(cfg: Any) -> None:
    """Several processes asked for outside a launcher: run this same command under accelerate launch on
    them, and exit with their status (the main process printed the checkpoint directory)."""
    from trainers.launch import launch, needs_launch

    if needs_launch(cfg):
        click.get_current_context().exit(launch(cfg, sys.argv[1:], echo=lambda m: click.echo(m, err=True)))


@click.command("demo")
@click.option("--out", default="demo", show_default=True, help="Directory for everything the demo writes.")
@click.option("--algo", type=click.Choice(["gspo", "grpo"]), default="gspo", show_default=True)
@click.option("--quick", is_flag=True, help="Fewer steps and items (a smoke run, for tests).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds the random model, the warm start, the RL run and the drawn test items.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="torch CPU threads.")
def demo_command(out: str, algo: str, quick: bool, seed: int, threads: int) -> None:
    """The whole story offline on a CPU: tiny model, warm start, baseline eval, GSPO, eval again, diff.

    Prints its seed and the range that seeds 0-4 gave (docs/measurements.md), then this run's numbers.

    Example: harness demo --out demo --seed 3
    """
    from trainers.demo import run_demo

    run_demo(Path(out), algo=algo, quick=quick, seed=seed, threads=threads, echo=lambda m: click.echo(m, err=True))
