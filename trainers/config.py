"""The typed, closed configuration of a training run, and the presets shipped as config files.

Every hyperparameter that Unsloth silently changes in TRL's defaults (learning rate, beta,
scale_rewards, optimizer, batch sizes, weight decay, warm-up, logging) is a field here with an explicit
value, and both engines pass all of them to GRPOConfig: the `unsloth` and `trl` paths train the same
thing. Defaults are TRL 1.15's own, except logging every step and two that make `--algo gspo` the GSPO
paper's objective: per-sequence loss aggregation (loss_type "grpo", not TRL's token-weighted "dapo")
and four optimizer steps per generation batch (steps_per_generation 4 x gradient accumulation), so
that updates after the first of each batch are off-policy and the importance ratio is not 1. Both
algorithms get the same defaults: `--algo grpo` differs in importance_sampling_level alone.

    cfg = TrainConfig.from_sources(preset=None, overrides={"max_steps": 50})
    cfg.effectively_on_policy()   # False: steps_per_generation 4 > gradient accumulation 1
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.formats import DEFAULT_REWARD_MODE, DEFAULT_REWARD_WEIGHTS, PROMPT_FORMATS, REWARD_MODES
from harness import config as harness_config
from harness.config_types import check_field_types
from suites import SUITES

PRESETS_DIR = Path(__file__).parent / "presets"
ALGOS = ("gspo", "grpo")
ENGINES = ("auto", "unsloth", "trl")
DEEPSPEED_STAGES = ("zero2", "zero3")
LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")

# GRPOConfig / TrainingArguments fields that newer TRL or transformers removed: mapped, or refused with
# the reason, never passed through to crash inside TRL.
REMOVED_FIELDS = {
    "max_prompt_length": "max_prompt_length was removed in TRL 0.28, and cutting a vision-language "
                         "prompt would cut its image tokens: set image_size to shrink images instead",
    "warmup_ratio": None,  # transformers 5 removed it; warmup_steps below 1 is read as a ratio
}
# Optimizer steps per generation batch, unless steps_per_generation says otherwise: TRL's GSPO recipe
# (its paper index and examples/scripts/gspo_vlm.py), so that GSPO's sequence-level ratio is not 1.
DEFAULT_GENERATION_REUSE = 4
# Set by the trainer itself (the algorithm, the engine, where it writes): not accepted in trl_args.
RESERVED_TRL_ARGS = {"importance_sampling_level", "output_dir", "use_cpu", "bf16", "fp16", "report_to",
                     "save_total_limit", "save_only_model",
                     "save_strategy", "generation_kwargs", "remove_unused_columns", "reward_weights"}
# GRPOConfig fields that a field of ours sets (on both engines, or for vLLM rollouts).
TRL_ARGS_OF_FIELDS = {"vllm_gpu_memory_utilization": "gpu_memory_utilization", "vllm_enable_sleep_mode": "vllm_standby",
                      "vllm_max_model_length": "max_seq_length"}


def _f(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})



@dataclass
class TrainConfig:
    # what and how
    algo: str = _f("gspo", "gspo (sequence-level importance ratio) or grpo (token-level)")
    engine: str = _f("auto", "unsloth, trl, or auto (unsloth where a CUDA GPU and unsloth are present)")
    model: str | None = _f(None, "base model dir or Hub id; default: the tiny offline model")
    revision: str | None = _f(None, "Hub revision (commit) of the base model")
    dtype: str = _f("auto", "auto (bf16 on GPU, fp32 on CPU), bfloat16, float16 or float32")
    load_in_4bit: bool = _f(False, "QLoRA: 4-bit base weights (CUDA only)")
    # data
    suites: list[str] = field(default_factory=lambda: ["synth_charts"],
                                metadata={"help": "suites whose split is the training data"})
    split: str = _f("train", "split of the training suites")
    suite_splits: dict[str, str] = field(default_factory=dict, metadata={
        "help": "a training suite's own split, overriding split, e.g. {mathvista_testmini: testmini} beside gsm8k's train"})
    data_dir: dict[str, str] = field(default_factory=dict, metadata={"help": "suite -> local data dir ('*' for all)"})
    dataset: str | None = _f(None, "a local dataset (parquet, jsonl or json: image, question, answer "
                                   "[, choices, sample_id]) used instead of suites")
    limit: int | None = _f(None, "first N items of each training source (suite or dataset)")
    mix: dict[str, float] = field(default_factory=dict, metadata={
        "help": "mixing weights of the training suites, e.g. {gsm8k: 1, mathvista_testmini: 3}: each suite's "
                "share of the training items (repeated or drawn to fit); default: every item once"})
    held_out: int = _f(0, "hold out N seeded items of the training data for evaluation (the recipe "
                          "that trains on MathVista testmini holds out 100)")
    held_out_seed: int = _f(0, "seed of the held-out draw")
    image_size: tuple[int, int] | None = _f(None, "resize images to W,H RGB (the recipe: 512,512)")
    prompt_format: str = _f("reasoning-solution", "prompt format (must have tags: the format reward)")
    reward_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_REWARD_WEIGHTS),
                                               metadata={"help": "format and correctness weights"})
    reward_mode: str = _f(DEFAULT_REWARD_MODE, "correctness reward: suite (the suite scorer's verdict, 2.0 when "
                                               "correct) or recipe (the Unsloth notebook's string rule: 2.0 exact, "
                                               "1.5 same number)")
    dataset_grader: str | None = _f(None, "the suite whose scorer grades a local dataset's items (needed by the "
                                          "suite reward mode), e.g. gsm8k for numeric answers")
    # evaluation and contamination guard
    eval_suites: list[str] = field(default_factory=list, metadata={
        "help": "suites evaluated every eval_every steps and at the end; training items overlapping them are refused"})
    eval_split: str | None = _f(None, "split of eval_suites; default: each suite's evaluation split")
    eval_limit: int | None = _f(None, "first N items of each eval suite")
    eval_every: int = _f(0, "evaluate every N steps (0: only at the end)")
    eval_max_new_tokens: int | None = _f(None, "generation limit of evaluations; default max_completion_length")
    eval_batch_size: int = _f(8, "prompts per generate call in evaluations")
    eval_temperature: float = _f(0.0, "sampling temperature of evaluations (0: greedy), seeded by seed")
    allow_overlap: bool = _f(False, "train even when training items overlap the eval suites (recorded)")
    # optimisation (passed to GRPOConfig on both engines)
    max_steps: int = _f(100, "optimizer steps")
    learning_rate: float = _f(1e-6, "peak learning rate (Unsloth's default would be 5e-5)")
    lr_scheduler_type: str = _f("linear", "learning rate schedule")
    warmup_steps: float = _f(0.0, "warm-up steps; below 1 a ratio of max_steps")
    optim: str = _f("adamw_torch", "optimizer (adamw_8bit needs CUDA and bitsandbytes)")
    weight_decay: float = _f(0.0, "weight decay (Unsloth's default would be 0.001)")
    max_grad_norm: float = _f(1.0, "gradient clipping")
    per_device_train_batch_size: int = _f(8, "completions per device per micro-step")
    gradient_accumulation_steps: int = _f(1, "micro-steps per optimizer step")
    num_generations: int = _f(8, "completions per prompt (the group)")
    steps_per_generation: int | None = _f(None, "optimizer micro-steps per generation batch; default: 4 x "
                                                "gradient_accumulation_steps (off-policy updates: the ratio "
                                                "matters; TRL's default would be gradient_accumulation_steps)")
    num_iterations: int = _f(1, "updates per generation batch")
    max_completion_length: int = _f(512, "completion length limit")
    loss_type: str = _f("grpo", "grpo (per-sequence mean, the GSPO and GRPO papers' aggregation), dr_grpo, dapo "
                                "(TRL's default), bnpo, ...")
    beta: float = _f(0.0, "KL coefficient; 0 = no reference model (Unsloth sets 0.001 for grpo)")
    epsilon: float = _f(0.2, "lower clip range")
    epsilon_high: float | None = _f(None, "upper clip range; default epsilon")
    scale_rewards: str = _f("group", "group, batch or none (Unsloth turns it off for dr_grpo)")
    temperature: float = _f(1.0, "sampling temperature of rollouts")
    top_p: float = _f(1.0, "nucleus sampling of rollouts")
    mask_truncated_completions: bool = _f(False, "drop truncated completions from the loss")
    logging_steps: int = _f(1, "log every N steps")
    save_steps: int = _f(0, "save an intermediate checkpoint every N steps (0: only at the end)")
    resume_every: int = _f(20, "save the trainer state (optimizer, scheduler, RNG, data position) every N steps, "
                               "rounded up to whole generation batches, for `harness train --resume`; 0: only on "
                               "SIGTERM / SIGINT")
    seed: int = _f(0, "training seed")
    trl_args: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "other GRPOConfig fields, passed through after checking"})
    # LoRA
    lora_r: int = _f(16, "LoRA rank")
    lora_alpha: int = _f(16, "LoRA alpha")
    lora_dropout: float = _f(0.0, "LoRA dropout")
    finetune_vision_layers: bool = _f(False, "also train the vision tower's LoRA")
    gradient_checkpointing: bool = _f(True, "gradient checkpointing (Unsloth's own on that engine; off on CPU)")
    max_seq_length: int = _f(4096, "longest prompt + completion: Unsloth's, and colocated vLLM's context")
    # vLLM rollouts (trainers/rollouts.py): Unsloth's fast_inference, or TRL's use_vllm on the trl engine
    fast_inference: bool = _f(False, "unsloth engine: generate rollouts with vLLM (Unsloth's engine, colocated)")
    use_vllm: bool = _f(False, "trl engine: generate rollouts with vLLM (TRL's use_vllm)")
    vllm_mode: str = _f("colocate", "use_vllm: colocate (vLLM in the training process, on its GPU) or server "
                                    "(`trl vllm-serve` on another GPU)")
    vllm_server_base_url: str | None = _f(None, "vllm_mode server: the server's URL (default http://0.0.0.0:8000)")
    gpu_memory_utilization: float = _f(0.6, "vLLM's share of the GPU's memory, colocated (the rest trains)")
    vllm_standby: bool = _f(False, "vLLM sleeps between rollouts, its memory lent to training (Unsloth's "
                                   "UNSLOTH_VLLM_STANDBY, TRL's vllm_enable_sleep_mode)")
    vllm_importance_sampling_correction: bool = _f(True, "reweight for vLLM's sampling probabilities differing from "
                                                         "training's (TRL's default; Unsloth's would be off)")
    # several processes (trainers/distributed.py, trainers/launch.py)
    num_processes: int | None = _f(None, "training processes, one per GPU (data parallel, the trl engine): harness "
                                         "train starts them under accelerate launch; default 1, or as many as "
                                         "accelerate launch started")
    deepspeed: str | None = _f(None, "DeepSpeed ZeRO with several processes: zero2 (optimizer states and gradients "
                                     "sharded) or zero3 (the weights too); needs the deepspeed package")
    out: str | None = _f(None, "checkpoint directory; default checkpoints/<algo>-<time>")

    def __post_init__(self) -> None:
        check_field_types(self)  # types first: the range checks below compare numbers
        self.validate()

    def validate(self) -> None:
        for name, value, allowed in (("algo", self.algo, ALGOS), ("engine", self.engine, ENGINES),
                                     ("reward_mode", self.reward_mode, tuple(REWARD_MODES)),
                                     ("loss_type", self.loss_type, LOSS_TYPES),
                                     ("scale_rewards", self.scale_rewards, ("group", "batch", "none")),
                                     ("vllm_mode", self.vllm_mode, ("colocate", "server")),
                                     ("dtype", self.dtype, ("auto", "bfloat16", "float16", "float32"))):
            if value not in allowed:
                raise ConfigError(f"unknown {name} {value!r}; choose one of: {', '.join(allowed)}")
        fmt = PROMPT_FORMATS.get(self.prompt_format)
        if fmt is None or fmt.answer_tags is None or fmt.reasoning_tags is None:
            tagged = [n for n, f in PROMPT_FORMATS.items() if f.answer_tags and f.reasoning_tags]
            raise ConfigError(f"prompt_format {self.prompt_format!r} cannot be trained on: the format reward "
                              f"needs tags; choose one of: {', '.join(tagged)}")
        for name in ("max_steps", "per_device_train_batch_size", "gradient_accumulation_steps",
                     "num_iterations", "max_completion_length", "logging_steps", "lora_r", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.num_generations < 2:
            raise ConfigError(f"num_generations must be at least 2 (a group), got {self.num_generations}")
        if self.steps_per_generation is not None and self.steps_per_generation < 1:
            raise ConfigError(f"steps_per_generation must be at least 1, got {self.steps_per_generation}")
        if self.deepspeed is not None and self.deepspeed not in DEEPSPEED_STAGES:
            raise ConfigError(f"unknown deepspeed {self.deepspeed!r}; choose one of: {', '.join(DEEPSPEED_STAGES)}")
        if self.num_processes is not None and self.num_processes < 1:
            raise ConfigError(f"num_processes must be at least 1, got {self.num_processes}")
        if self.deepspeed and self.world_size() < 2:
            raise ConfigError(f"deepspeed {self.deepspeed} shards training state across processes: set "
                              f"num_processes to 2 or more (--num-processes)")
        batch = self.generation_batch_size()
        if batch % self.num_generations:
            processes = f"num_processes {self.world_size()} x " if self.world_size() > 1 else ""
            raise ConfigError(
                f"the generation batch (per_device_train_batch_size {self.per_device_train_batch_size} x "
                f"{processes}steps_per_generation {self.effective_steps_per_generation()} = {batch}) "
                f"must be divisible by num_generations {self.num_generations}")
        for name in ("held_out", "eval_every", "save_steps", "resume_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ConfigError(f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        if self.eval_temperature < 0:
            raise ConfigError(f"eval_temperature must be >= 0, got {self.eval_temperature}")
        if self.learning_rate <= 0 or self.beta < 0 or self.epsilon <= 0:
            raise ConfigError("learning_rate and epsilon must be > 0 and beta >= 0")
        if set(self.reward_weights) != set(DEFAULT_REWARD_WEIGHTS):
            raise ConfigError(f"reward_weights must give exactly {', '.join(DEFAULT_REWARD_WEIGHTS)}, "
                              f"got {', '.join(self.reward_weights) or 'nothing'}")
        if any(w <= 0 for w in self.mix.values()):
            raise ConfigError(f"mix weights must be > 0, got {self.mix}")
        if self.image_size is not None and min(self.image_size) < 1:
            raise ConfigError(f"image_size must be two positive integers W,H, got {list(self.image_size)}")
        if not self.suites and not self.dataset:
            raise ConfigError("no training data: name suites or a local dataset")
        self._check_grader()
        self._check_trl_args()

    def _check_grader(self) -> None:
        if self.dataset_grader is not None and self.dataset_grader not in SUITES:
            raise ConfigError(f"dataset_grader {self.dataset_grader!r} is not a suite; choose one of: "
                              f"{', '.join(SUITES)}")
        if self.dataset and self.reward_mode == "suite" and self.dataset_grader is None:
            raise ConfigError("a local dataset has no scorer of its own: name the suite whose scorer grades it "
                              "(dataset_grader, e.g. gsm8k for numeric answers) or use reward_mode recipe")

    def _check_trl_args(self) -> None:
        ours = {f.name for f in fields(TrainConfig)}
        for key in self.trl_args:
            if key in REMOVED_FIELDS:
                raise ConfigError(f"trl_args.{key}: {REMOVED_FIELDS[key] or 'use warmup_steps'}")
            if key in RESERVED_TRL_ARGS:
                raise ConfigError(f"trl_args.{key} is set by the trainer (algo, engine, out): remove it")
            if key in ours or key in TRL_ARGS_OF_FIELDS:
                field_name = TRL_ARGS_OF_FIELDS.get(key, key)
                raise ConfigError(f"trl_args.{key}: set it as the top-level key {field_name} instead")

    def check_trl_args_known(self) -> None:
        """Separate from validate(): it imports trl, which under Unsloth must wait for `import unsloth`."""
        from trl import GRPOConfig

        known = {f.name for f in fields(GRPOConfig)}
        unknown = sorted(set(self.trl_args) - known)
        if unknown:
            raise ConfigError(f"trl_args: {', '.join(unknown)} are not GRPOConfig fields of TRL 1.15")

    # --- derived ----------------------------------------------------------------------------------
    def effective_steps_per_generation(self) -> int:
        return self.steps_per_generation or DEFAULT_GENERATION_REUSE * self.gradient_accumulation_steps

    def world_size(self) -> int:
        """Training processes: num_processes, 1 until a launcher says otherwise."""
        return self.num_processes or 1

    def global_batch_size(self) -> int:
        """Completions per optimizer step, over every process: per device x processes x accumulation."""
        return self.per_device_train_batch_size * self.world_size() * self.gradient_accumulation_steps

    def generation_batch_size(self) -> int:
        """Completions per generation batch, over every process (TRL's generation_batch_size)."""
        return self.per_device_train_batch_size * self.world_size() * self.effective_steps_per_generation()

    def split_of(self, suite: str) -> str:
        return self.suite_splits.get(suite, self.split)

    def generation_period(self) -> int:
        """Optimizer steps from one generation batch to the next: a run saved at a multiple of it resumes
        exactly where an uninterrupted run would be (no half-used batch of completions to rebuild)."""
        micro_steps = self.effective_steps_per_generation() * self.num_iterations
        return math.lcm(micro_steps, self.gradient_accumulation_steps) // self.gradient_accumulation_steps

    def resume_save_steps(self) -> int:
        """resume_every rounded up to whole generation periods (0: no periodic trainer-state saves)."""
        period = self.generation_period()
        return -(-self.resume_every // period) * period if self.resume_every else 0

    def effectively_on_policy(self) -> bool:
        """Every update uses the policy that generated its batch: the importance ratio is exactly 1, so
        GSPO's sequence-level ratio changes nothing and GSPO computes GRPO's gradient."""
        return self.num_iterations == 1 and self.effective_steps_per_generation() <= self.gradient_accumulation_steps

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["image_size"] = list(self.image_size) if self.image_size else None
        return d

    # --- loading ----------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> tuple[TrainConfig, list[str]]:
        """The config and the notes on keys that were mapped (e.g. warmup_ratio -> warmup_steps)."""
        data = dict(data)
        notes = []
        for key, reason in REMOVED_FIELDS.items():
            if key not in data:
                continue
            if reason:
                raise ConfigError(f"{source}: {reason}")
            ratio = data.pop(key)
            if "warmup_steps" in data:
                raise ConfigError(f"{source}: give warmup_steps or warmup_ratio, not both")
            if not isinstance(ratio, (int, float)) or not 0 <= ratio < 1:
                raise ConfigError(f"{source}: warmup_ratio must be a number in [0, 1), got {ratio!r}")
            data["warmup_steps"] = float(ratio)
            notes.append(f"warmup_ratio {ratio} (removed in transformers 5) -> warmup_steps {float(ratio)} "
                         f"(a value below 1 is a ratio)")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; other GRPOConfig fields go "
                              f"under trl_args; known keys: {', '.join(sorted(known))}")
        try:
            return cls(**data), notes
        except TypeError as exc:
            raise ConfigError(f"{source}: {exc}") from exc

    @classmethod
    def from_sources(cls, preset: str | None = None, overrides: dict[str, Any] | None = None,
                     defaults: dict[str, Any] | None = None) -> tuple[TrainConfig, list[str]]:
        """Defaults (what the environment says, e.g. the launcher's process count), a preset name or
        config file over them, then overrides (CLI flags) on top."""
        data: dict[str, Any] = dict(defaults or {})
        source = "config"
        if preset:
            data, source = {**data, **read_config_file(preset)}, str(preset)
        data.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return cls.from_dict(data, source)


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.toml"))


def read_config_file(name_or_path: str) -> dict[str, Any]:
    """A preset by name (see `preset_names()`), or a TOML / JSON file."""
    path = Path(name_or_path)
    if not path.exists() and (PRESETS_DIR / f"{name_or_path}.toml").is_file():
        path = PRESETS_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        raise ConfigError(f"config {name_or_path!r} is neither a file nor a preset ({', '.join(preset_names())})")
    return harness_config.read_config_file(path)
