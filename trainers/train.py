"""GSPO / GRPO training of a LoRA adapter with TRL's GRPOTrainer, through Unsloth or plain TRL + PEFT.

    from trainers import TrainConfig, train
    cfg, notes = TrainConfig.from_sources("gspo-paper", {"model": "Qwen/Qwen2.5-VL-7B-Instruct", "max_steps": 200})
    out = train(cfg, notes=notes)        # the checkpoint dir; `harness eval --model out` evaluates it

GSPO and GRPO differ in one GRPOConfig field, importance_sampling_level ("sequence" vs "token").
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import ConfigError, Interrupted
from harness import provenance
from harness.checkpoints import CHECKPOINT_FILE, KIND, TRAIN_LOG_FILE, claimed_checkpoint_dir
from harness.models import image_pad_id, pick_dtype, vision_token_ids
from trainers.checkpoint import lora_check
from trainers.checkpoint_run import CheckpointRun
from trainers.config import TrainConfig
from trainers.data import TrainData, eval_plan, guard, load_training_data, to_trl_dataset
from trainers.distributed import World, closed_on_error, distributed_record, join, main_first
from trainers.engines import (
    device_of,
    import_unsloth,
    install_cpu_logprob,
    load_model,
    resolve_engine,
)
from trainers.rollouts import (
    check_rollout_engine,
    install_rollout_hooks,
    rollout_generation_kwargs,
    rollout_notes,
    rollouts_via_vllm,
    vllm_grpo_kwargs,
)

ON_POLICY_WARNING = ("GSPO with every update on-policy (num_iterations 1, steps_per_generation {spg} <= "
                     "gradient_accumulation_steps {ga}): the importance ratio is exactly 1, so GSPO computes "
                     "GRPO's gradient. Raise steps_per_generation (default: 4 x accumulation) or num_iterations "
                     "for GSPO to differ. Recorded as effectively_on_policy: true.")
TOKEN_WEIGHTED_WARNING = ("GSPO with loss_type {loss}: each sequence's loss is weighted by its length, not the "
                          "paper's per-sequence mean (loss_type grpo, the default)")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def grpo_kwargs(cfg: TrainConfig, engine: str, device: str, out: Path, suppress: list[int],
                n_extra_rewards: int = 0) -> tuple[dict[str, Any], list[str]]:
    """Every GRPOConfig value the run uses, explicit on both engines; plus notes on substitutions."""
    notes = []
    optim = cfg.optim
    if "8bit" in optim and device != "cuda":
        notes.append(f"optim {optim} needs CUDA; using adamw_torch on {device}")
        optim = "adamw_torch"
    dtype = pick_dtype(cfg.dtype, device)
    kwargs = {
        "output_dir": str(out / "trainer"),
        "importance_sampling_level": "sequence" if cfg.algo == "gspo" else "token",
        "learning_rate": cfg.learning_rate, "lr_scheduler_type": cfg.lr_scheduler_type,
        "warmup_steps": cfg.warmup_steps, "optim": optim, "weight_decay": cfg.weight_decay,
        "max_grad_norm": cfg.max_grad_norm, "per_device_train_batch_size": cfg.per_device_train_batch_size,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps, "num_generations": cfg.num_generations,
        "steps_per_generation": cfg.effective_steps_per_generation(), "num_iterations": cfg.num_iterations,
        "max_completion_length": cfg.max_completion_length, "loss_type": cfg.loss_type, "beta": cfg.beta,
        "epsilon": cfg.epsilon, "epsilon_high": cfg.epsilon_high if cfg.epsilon_high is not None else cfg.epsilon,
        "scale_rewards": cfg.scale_rewards, "temperature": cfg.temperature, "top_p": cfg.top_p,
        "mask_truncated_completions": cfg.mask_truncated_completions, "logging_steps": cfg.logging_steps,
        "max_steps": cfg.max_steps, "seed": cfg.seed, "data_seed": cfg.seed,
        "reward_weights": [cfg.reward_weights["format"], cfg.reward_weights["correctness"]] + [1.0] * n_extra_rewards,
        "generation_kwargs": rollout_generation_kwargs(suppress, rollouts_via_vllm(cfg, engine)),
        # TRL's own checkpoints (trainer/checkpoint-N: optimizer, scheduler, RNG, step) are what --resume
        # reads; two are kept, so a kill during a save still leaves a whole one.
        **({"save_strategy": "steps", "save_steps": cfg.resume_save_steps(), "save_total_limit": 2}
           if cfg.resume_every else {"save_strategy": "no"}),
        "report_to": "none", "remove_unused_columns": False,
        "use_cpu": device == "cpu", "bf16": str(dtype) == "torch.bfloat16",
        "fp16": str(dtype) == "torch.float16",
        # Unsloth brings its own checkpointing ("unsloth" in get_peft_model); TRL's is off on CPU
        # (nothing to save there, and it needs inputs that require grad).
        "gradient_checkpointing": cfg.gradient_checkpointing and device == "cuda" and engine == "trl",
        "disable_tqdm": True,
        **vllm_grpo_kwargs(cfg, engine),
        **cfg.trl_args,
    }
    return kwargs, notes + rollout_notes(cfg, engine)


def default_out(cfg: TrainConfig) -> Path:
    return Path("checkpoints") / f"{cfg.algo}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def _base_model(cfg: TrainConfig) -> str:
    if cfg.model:
        return cfg.model
    from harness.tiny_model import default_tiny_model

    return str(default_tiny_model())


def train(cfg: TrainConfig, *, notes: Sequence[str] = (), extra_reward_funcs: Sequence[Callable] = (),
          echo: Callable[[str], None] | None = None, force: bool = False) -> Path:
    """Train, save and verify the checkpoint; evaluate it when eval_suites are set. Returns its dir.

    The checkpoint folder must be new or empty unless force (then it is emptied first), and it is
    locked while training: a second trainer writing there gets a LockError naming this one. Under
    `accelerate launch` (several processes) the main process claims and locks it for all of them."""
    world = join(cfg)

    def claim(stack: contextlib.ExitStack) -> Path:  # before any data or model loads
        out = Path(cfg.out) if cfg.out else default_out(cfg)
        stack.enter_context(claimed_checkpoint_dir(out, force))
        return out

    with closed_on_error(world), main_first(world, claim) as out:
        return _train(cfg, out, world=world, notes=notes, extra_reward_funcs=extra_reward_funcs, echo=echo)


def _train(cfg: TrainConfig, out: Path, *, world: World, notes: Sequence[str], extra_reward_funcs: Sequence[Callable],
           echo: Callable[[str], None] | None, resume: Any = None) -> Path:
    """Train into `out` (locked by the caller's main process); with `resume` (a trainers.resume.Continuation,
    which imports this module), continue the run recorded there. Every process of `world` runs this."""
    say = (echo or (lambda msg: print(msg, file=sys.stderr))) if world.main else (lambda msg: None)
    engine = _start_engine(cfg)
    data, overlap = _guarded_data(cfg, say)
    dataset = to_trl_dataset(data.items, cfg)
    model_path = _base_model(cfg)
    model, processor, peft_config = load_model(cfg, engine, model_path)
    device = device_of(engine)
    if engine == "trl":
        install_cpu_logprob()
    if device == "cpu" and world.main:
        _say_cpu_step_cost(cfg, model, say)
    kwargs, substitutions = grpo_kwargs(cfg, engine, device, out, vision_token_ids(processor),
                                        len(extra_reward_funcs))
    args = _grpo_config(kwargs)
    info = _checkpoint_info(cfg, engine, device, model_path, data, overlap, kwargs,
                            [*notes, *substitutions], extra_reward_funcs, world)
    if resume is not None:
        info = resume.continued_info(info)
    run = CheckpointRun(out, info, data, eval_plan(cfg, data.held_out_ids), say,
                        wall_offset=resume.wall_s if resume else 0.0, world=world)
    from trainers.interrupt import StopOnSignal

    stop = StopOnSignal(say, world)  # SIGTERM / SIGINT from here on: the trained steps are saved, not lost
    with stop.installed():
        run.start()
        trainer = _trainer(cfg, model, processor, peft_config, args, dataset, extra_reward_funcs,
                           [*run.callbacks(cfg), stop])
        run.trainer = trainer
        if engine == "trl":  # Unsloth replaces the loss: its ratios are not reachable from here
            from trainers.ratios import log_importance_ratios

            log_importance_ratios(trainer)
        install_rollout_hooks(trainer, cfg, engine, vision_token_ids(processor), image_pad_id(processor), say)
        from trainers.data_order import install_data_order

        # a resumed run's later epochs get the uninterrupted run's data order; mixed kinds, one per batch
        install_data_order(trainer)
        on = f"{engine} on {device}" + (f" x {world.size} processes" if world.size > 1 else "")
        if resume is not None:
            # TRL picks the slice of its buffered generation batch by its micro-step count, which a new
            # trainer starts at 0: put it where the stopped run was.
            trainer._step = resume.step * cfg.gradient_accumulation_steps
            say(f"resuming {cfg.algo} at step {resume.step} of {cfg.max_steps} from {resume.state_dir} ({on})")
        else:
            say(f"training {cfg.algo} ({on}): {len(data.items)} items, {cfg.max_steps} steps, "
                f"{cfg.global_batch_size()} completions a step -> {out}")
        _train_and_save(trainer, processor, run, str(resume.state_dir) if resume else None)
    if stop.signum is not None:  # it came while the finished checkpoint was being saved
        late = Interrupted(f"{signal.Signals(stop.signum).name} after training: the checkpoint in {out} is "
                           f"complete; its final evaluation was skipped", stop.signum)
        late.reported_elsewhere = not world.main
        raise late
    if not world.main:
        return out
    if run.plan is not None:
        del trainer, model  # free the training copy before the evaluation loads the saved adapter
        run.trainer = None
        run.evaluate_final()
    _warn_if_lora_untrained(run.info, say)
    return out


def _start_engine(cfg: TrainConfig) -> str:
    """Pick the engine; Unsloth must be imported before trl, so it is imported here, first."""
    engine = resolve_engine(cfg)
    check_rollout_engine(cfg, engine, device_of(engine))  # vLLM asked for where it cannot run: before any import
    if engine == "unsloth":
        import_unsloth(cfg)
    cfg.check_trl_args_known()
    return engine


def _guarded_data(cfg: TrainConfig, say: Callable[[str], None]) -> tuple[TrainData, dict[str, Any] | None]:
    """The training items, refused when they overlap the evaluation suites (unless allowed, then warned)."""
    data = load_training_data(cfg)
    overlap = guard(cfg, data)
    if cfg.algo == "gspo" and cfg.effectively_on_policy():
        say("warning: " + ON_POLICY_WARNING.format(spg=cfg.effective_steps_per_generation(),
                                                  ga=cfg.gradient_accumulation_steps))
    if cfg.algo == "gspo" and cfg.loss_type in ("dr_grpo", "dapo", "bnpo", "cispo"):
        say("note: " + TOKEN_WEIGHTED_WARNING.format(loss=cfg.loss_type))
    if overlap:
        say(f"warning: training on {overlap['n']} items that overlap the evaluation suites (--allow-overlap); "
            f"recorded in {CHECKPOINT_FILE} and shown by every report of those suites")
    return data, overlap


def _grpo_config(kwargs: dict[str, Any]) -> Any:
    from trl import GRPOConfig

    try:
        return GRPOConfig(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"GRPOConfig refused the settings: {str(exc).splitlines()[0]}") from exc


def _checkpoint_info(cfg: TrainConfig, engine: str, device: str, model_path: str, data: TrainData,
                     overlap: dict[str, Any] | None, kwargs: dict[str, Any], notes: list[str],
                     extra_reward_funcs: Sequence[Callable], world: World) -> dict[str, Any]:
    """The checkpoint record as training starts: everything needed to reproduce and audit the run."""
    return {
        "kind": KIND, "status": "training", "created": now(), "finished": None,
        "algo": cfg.algo, "engine": engine, "device": device,
        "base_model": {"id": model_path, "revision": cfg.revision},
        "config": cfg.to_dict(), "config_notes": notes,
        "grpo_config": {k: v for k, v in kwargs.items() if k != "output_dir"},
        "reward_weights": dict(cfg.reward_weights), "reward_mode": cfg.reward_mode,
        "extra_rewards": [getattr(f, "__name__", repr(f)) for f in extra_reward_funcs],
        "train_data": {"sources": data.source, "n_items": len(data.items), "sha256": data.sha256(),
                       "held_out": {"n": cfg.held_out, "seed": cfg.held_out_seed, "ids": data.held_out_ids},
                       "kinds": data.kinds(), "mix": data.mix},
        "distributed": distributed_record(cfg, world),
        "effectively_on_policy": cfg.effectively_on_policy(), "overlap": overlap, "steps": 0,
        "harness": provenance.git_state(), "packages": provenance.package_versions(),
        "hardware": provenance.platform_info(), "lora": None, "evals": [], "train_metrics": None,
    }


def _trainer(cfg: TrainConfig, model: Any, processor: Any, peft_config: Any, args: Any, dataset: Any,
             extra_reward_funcs: Sequence[Callable], callbacks: list[Any]) -> Any:
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOTrainer

    from trainers.rewards import make_reward_funcs

    trainer = GRPOTrainer(model=model, processing_class=processor,
                          reward_funcs=[*make_reward_funcs(cfg.prompt_format, cfg.reward_weights, cfg.reward_mode),
                                        *extra_reward_funcs],
                          args=args, train_dataset=dataset, peft_config=peft_config, callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)  # TRL would print every log dict; the training log has them
    return trainer


def _train_and_save(trainer: Any, processor: Any, run: CheckpointRun, resume_from: str | None = None) -> None:
    """Train (from TRL's saved state `resume_from`, when given); save the adapter and the processor;
    record which LoRA parameters changed. A crash is recorded in the checkpoint record (status error)
    before it propagates. Every process runs this; the main one writes."""
    import torch

    from harness.gpu_memory import NvmlSampler

    main = run.world.main
    initial = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad} if main else {}
    started = time.monotonic()
    try:
        # the device's memory in use as the driver sees it: torch's peak misses what vLLM and NCCL hold
        with NvmlSampler(interval_s=0.2) as memory:
            result = trainer.train(resume_from_checkpoint=resume_from)
    except Interrupted as exc:
        from trainers.interrupt import save_interrupted

        raise save_interrupted(trainer, processor, run.out, run.info, exc, run.world) from None
    except Exception as exc:
        run.info.update(status="error", finished=now(), error=f"{type(exc).__name__}: {str(exc)[:500]}")
        run.write()
        raise
    run.world.barrier()  # every process has written its part of the last trainer state
    if main:  # TRL's output_dir holds the trainer states that --resume reads; a finished run needs them no more
        shutil.rmtree(run.out / "trainer", ignore_errors=True)
    with run.gathered():
        if not main:
            return
        trainer.model.save_pretrained(run.out)
        processor.save_pretrained(run.out)
        lora = lora_check(trainer.model)
        params = dict(trainer.model.named_parameters())
        lora["n_trainable"] = len(initial)
        lora["unchanged"] = sorted(n for n, p in initial.items() if torch.equal(p, params[n].detach()))[:50]
    lora["trainable_outside_lora"] = sorted(n for n in initial if "lora_" not in n)[:50]
    run.info.update(status="finished", finished=now(), steps=trainer.state.global_step, lora=lora,
                    train_metrics={**result.metrics, "wall_s": round(time.monotonic() - started, 2),
                                   "nvml_peak_used_mib": memory.peak_used_mib})
    run.write()


def _say_cpu_step_cost(cfg: TrainConfig, model: Any, say: Callable[[str], None]) -> None:
    """GPU-sized settings take hours a step on a CPU: say so before the first step, with the CPU preset."""
    from trainers.step_cost import cpu_step_message, estimate_step, language_layers, measure_cpu_flops

    estimate = estimate_step(cfg, n_params=sum(p.numel() for p in model.parameters()),
                             n_layers=language_layers(model), flops_per_s=measure_cpu_flops())
    say(cpu_step_message(cfg, estimate))


def _warn_if_lora_untrained(info: dict[str, Any], say: Callable[[str], None]) -> None:
    if not info["lora"]["all_nonzero"]:
        say(f"warning: {info['lora']['n_zero_b']} LoRA B matrices are still zero after training: those modules "
            f"got no gradient (constant rewards in every group give zero advantages); see {TRAIN_LOG_FILE}")
