"""`harness train --num-processes N`: the command starts itself again on N processes, one per GPU,
under `accelerate launch` (data parallel; `--deepspeed zero2|zero3` for DeepSpeed ZeRO).

The launch runs in this process: accelerate's launcher with an accelerate config written for the run
(MULTI_GPU, or DEEPSPEED with the ZeRO stage; shown by `accelerate_config`), its torchrun agent starting
`python -m harness.cli train ...` (the same arguments) N times. Those processes see the launcher's
environment and train together (trainers/distributed.py); this one waits and returns their exit
status. On a machine without CUDA the processes train on the CPU over gloo (the tests do).

    if needs_launch(cfg):
        status = launch(cfg, ["train", "--num-processes", "2", ...])   # 0, 2 (an error), 130/143 (signals)

SIGTERM / SIGINT here reach every training process through the agent; they stop together after the
step under way and save it (trainers/interrupt.py). The agent kills processes that have not exited
TORCH_ELASTIC_SHUTDOWN_TIMEOUT seconds later: set here to SHUTDOWN_TIMEOUT_S unless already set.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import LAUNCH_ERRORS_ENV, ConfigError
from trainers.config import TrainConfig
from trainers.distributed import launch_error_lines, under_launcher

SHUTDOWN_TIMEOUT_S = 600  # a 7B step and its save; torchrun's default 30 s would cut the save short
DEEPSPEED_MISSING = ("--deepspeed {stage} needs the deepspeed package, which is not installed "
                     "(pip install deepspeed, on a CUDA machine)")


def needs_launch(cfg: TrainConfig) -> bool:
    """Several processes asked for, and this process was not started by a launcher."""
    return cfg.world_size() > 1 and not under_launcher()


def check_launch(cfg: TrainConfig) -> None:
    """Refuse, before anything starts, what cannot train on cfg.num_processes processes: the unsloth
    engine, DeepSpeed without its package or without GPUs, fewer visible GPUs than processes."""
    from harness.models import cuda_available
    from trainers.engines import resolve_engine

    n = cfg.world_size()
    resolve_engine(cfg)  # the unsloth engine is refused with several processes
    if cfg.deepspeed and importlib.util.find_spec("deepspeed") is None:
        raise ConfigError(DEEPSPEED_MISSING.format(stage=cfg.deepspeed))
    if not cuda_available():
        if cfg.deepspeed:
            raise ConfigError(f"--deepspeed {cfg.deepspeed} needs CUDA GPUs; this machine has none")
        return  # CPU processes over gloo
    import torch

    visible = torch.cuda.device_count()
    if visible < n:
        raise ConfigError(f"{n} training processes need {n} GPUs, one each; {visible} visible "
                          f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})")


def accelerate_config(cfg: TrainConfig, port: int) -> dict[str, Any]:
    """The accelerate config the run is launched with (what `accelerate config` would write)."""
    config: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE", "distributed_type": "MULTI_GPU", "num_machines": 1,
        "machine_rank": 0, "num_processes": cfg.world_size(), "gpu_ids": "all", "main_process_port": port,
        "rdzv_backend": "static", "same_network": True, "use_cpu": False, "debug": False,
        # TrainingArguments sets the precision (bf16 on a GPU that has it); DeepSpeed needs it here too
        "mixed_precision": "no", "dynamo_config": {},
    }
    if cfg.deepspeed:
        from harness.models import pick_dtype

        dtype = str(pick_dtype(cfg.dtype, "cuda"))
        config.update(distributed_type="DEEPSPEED", mixed_precision={"torch.bfloat16": "bf16",
                                                                     "torch.float16": "fp16"}.get(dtype, "no"))
        config["deepspeed_config"] = {
            "zero_stage": int(cfg.deepspeed.removeprefix("zero")), "offload_optimizer_device": "none",
            "offload_param_device": "none", "zero3_init_flag": False, "deepspeed_multinode_launcher": "standard",
            # ZeRO-3 shards the weights: gather them whole when the trainer saves the adapter
            **({"zero3_save_16bit_model": True} if cfg.deepspeed == "zero3" else {}),
        }
    return config


def launch(cfg: TrainConfig, command: list[str], echo: Callable[[str], Any] = print) -> int:
    """Run `python -m harness.cli <command>` on cfg.num_processes processes under accelerate launch and
    wait for them; returns the exit status: the first failed process's, 128 + the signal's number when
    one stopped them, 0 when all finished. The main process prints its own error line; `echo` gets the
    lines it did not print (trainers.distributed.launch_error_lines)."""
    check_launch(cfg)  # what cannot run on several processes: one line before anything starts
    if not command or command[0] != "train":  # not `harness train ...` (an API or test caller's argv)
        raise ConfigError(f"num_processes {cfg.num_processes}: start it as `harness train ... --num-processes "
                          f"{cfg.num_processes}` or under `accelerate launch -m harness.cli train ...`")
    from accelerate.commands.launch import launch_command, launch_command_parser
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    os.environ.setdefault("TORCH_ELASTIC_SHUTDOWN_TIMEOUT", str(SHUTDOWN_TIMEOUT_S))
    threads = max(1, (os.cpu_count() or 1) // cfg.world_size())
    with tempfile.TemporaryDirectory(prefix="harness-launch-") as folder:
        config_file = Path(folder) / "accelerate_config.json"
        config_file.write_text(json.dumps(accelerate_config(cfg, _free_port()), indent=2) + "\n")
        errors = Path(folder) / "errors"
        errors.mkdir()
        args = launch_command_parser().parse_args(
            ["--config_file", str(config_file), "--num_cpu_threads_per_process", str(threads),
             "--module", "harness.cli", *command])
        # torchrun's agent logs each failed process at ERROR level; the processes' own lines say why
        elastic = logging.getLogger("torch.distributed.elastic")
        level, os.environ[LAUNCH_ERRORS_ENV] = elastic.level, str(errors)
        elastic.setLevel(logging.CRITICAL)
        try:
            launch_command(args)
        except ChildFailedError as exc:
            for line in launch_error_lines(errors):
                echo(line)
            return _status(exc)
        except SignalException as exc:
            return 128 + int(exc.sigval)
        finally:
            elastic.setLevel(level)
            os.environ.pop(LAUNCH_ERRORS_ENV, None)
    return 0


def _status(failed: Any) -> int:
    """The exit status of the process that failed first (the others were stopped because of it)."""
    _, failure = failed.get_first_failure()
    code = int(failure.exitcode)
    return code if code > 0 else 128 - code  # a negative exit code is the signal that killed it


def _free_port() -> int:
    """A port for the processes' rendezvous: two runs on one host must not share torchrun's default 29500."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
