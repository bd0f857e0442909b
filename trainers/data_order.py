"""The order in which training sees its items, made a function of the seed and the epoch alone, so that a
resumed run (trainers/resume.py) sees in every epoch what the uninterrupted run would have seen.

    replayable_epochs(trainer)     # before trainer.train(); harmless when the run is not resumed
"""

from __future__ import annotations

from typing import Any


def replayable_epochs(trainer: Any) -> None:
    """Make each epoch's data order a function of the seed and the epoch alone. TRL's sampler draws a
    new shuffle from one generator per pass over the data, so a resumed trainer (a new generator) would
    give epoch k the first epoch's order; the data loader tells the sampler its epoch (set_epoch), and
    the sampler then replays the generator to that epoch: the order an uninterrupted run has there."""
    original = trainer._get_train_sampler

    def sampler_with_epochs(*args: Any, **kwargs: Any) -> Any:
        import torch

        sampler = original(*args, **kwargs)
        generator, seed = getattr(sampler, "generator", None), getattr(sampler, "seed", None)
        if generator is None or seed is None or not hasattr(sampler, "num_samples"):
            return sampler  # not shuffled, or not TRL's RepeatSampler: nothing to replay

        def set_epoch(epoch: int) -> None:
            generator.manual_seed(seed)
            for _ in range(epoch):
                torch.randperm(sampler.num_samples, generator=generator)

        sampler.set_epoch = set_epoch
        return sampler

    trainer._get_train_sampler = sampler_with_epochs
