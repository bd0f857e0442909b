"""GSPO / GRPO checkpoints for the harness: TRL's GRPOTrainer through Unsloth or plain TRL + PEFT,
rewarded by the suites' own scoring, written in one checkpoint format that `harness eval` loads.

Heavy libraries (torch, trl, unsloth) load only when training starts.
"""

from trainers.config import TrainConfig, preset_names
from trainers.train import train

__all__ = ["TrainConfig", "preset_names", "train"]
