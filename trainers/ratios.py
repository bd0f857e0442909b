"""The importance ratios of every training step, logged: the evidence that GSPO is not GRPO in disguise.

TRL's GRPOTrainer logs clip fractions but not the ratios themselves. When every update is on-policy the
ratio pi_theta / pi_old is exactly 1 and GSPO computes GRPO's gradient; only off-policy updates (more
optimizer steps per generation batch, or several iterations over it) move it. `log_importance_ratios`
wraps the trainer's loss so that each micro-batch adds, beside TRL's own metrics:

- `importance_ratio/sequence_{mean,min,max}`: GSPO's ratio per completion, exp of the mean token
  log-ratio over its tokens (the value TRL's "sequence" level clips);
- `importance_ratio/token_{min,max}`: the per-token ratios GRPO clips.

TRL averages each over the micro-batches of a logged step, so with logging_steps 1 and no gradient
accumulation a row holds that step's own extremes. The ratio's old log-probabilities are those TRL
computed when the batch was generated; on-policy it has none and the ratio is 1 by construction, which
is what gets logged.

    trainer = GRPOTrainer(...)
    log_importance_ratios(trainer)     # the `trl` engine; Unsloth replaces the loss and is left alone
"""

from __future__ import annotations

import functools
from typing import Any

PREFIX = "importance_ratio/"


def log_importance_ratios(trainer: Any) -> bool:
    """Wrap the trainer's loss and log-probability calls; False when this TRL has neither (nothing logged)."""
    compute_loss = getattr(trainer, "_compute_loss", None)
    logps = getattr(trainer, "_get_per_token_logps_and_entropies", None)
    if compute_loss is None or logps is None:
        return False
    current: dict[str, Any] = {}

    @functools.wraps(compute_loss)
    def loss_with_ratios(model: Any, inputs: dict[str, Any]) -> Any:
        current["inputs"] = inputs
        try:
            return compute_loss(model, inputs)
        finally:
            current.clear()

    @functools.wraps(logps)
    def logps_with_ratios(*args: Any, **kwargs: Any) -> Any:
        out = logps(*args, **kwargs)
        inputs = current.pop("inputs", None)  # the first call inside the loss is the policy's own
        if inputs is not None and trainer.model.training:
            _record(trainer, out[0].detach(), inputs)
        return out

    trainer._compute_loss = loss_with_ratios
    trainer._get_per_token_logps_and_entropies = logps_with_ratios
    return True


def _record(trainer: Any, per_token_logps: Any, inputs: dict[str, Any]) -> None:
    import torch

    mask = inputs["completion_mask"]
    if "tool_mask" in inputs:
        mask = mask * inputs["tool_mask"]
    old = inputs.get("old_per_token_logps")
    log_ratio = torch.zeros_like(per_token_logps) if old is None else per_token_logps - old
    log_ratio = log_ratio.float() * mask
    counts = mask.sum(-1)
    has_tokens = counts > 0
    if not bool(has_tokens.any()):
        return
    sequence = torch.exp(log_ratio.sum(-1)[has_tokens] / counts[has_tokens])
    tokens = torch.exp(log_ratio[mask.bool()])
    metrics = trainer._metrics["train"]
    metrics[PREFIX + "sequence_mean"].append(sequence.mean().item())
    metrics[PREFIX + "sequence_min"].append(sequence.min().item())
    metrics[PREFIX + "sequence_max"].append(sequence.max().item())
    metrics[PREFIX + "token_min"].append(tokens.min().item())
    metrics[PREFIX + "token_max"].append(tokens.max().item())
