"""The order in which training sees its items: a function of the seed and the epoch alone, and, when
image and text items are mixed, one kind per generation batch.

- Resuming (trainers/resume.py): TRL's sampler draws a new shuffle from one generator per pass over the
  data, so a resumed trainer (a new generator) would give epoch k the first epoch's order. The data
  loader tells the sampler its epoch (`set_epoch`), and the sampler replays its generator to that
  epoch: the order an uninterrupted run has there.
- Mixed data (trainers/data.py): TRL 1.15 hands a generation batch's pictures to the processor as one
  list, and a row without a picture breaks it. So the shuffled items are cut into generation batches
  of one kind each (image or text, the dataset's `kind` column), and the batches are shuffled: every
  step trains on one kind, and over an epoch each kind gets its share of steps. Per kind, the items
  that do not fill a whole batch wait for the next epoch's shuffle (TRL drops one partial batch per
  epoch likewise).

    install_data_order(trainer)     # before trainer.train(); an unmixed, unresumed run trains as before
"""

from __future__ import annotations

from typing import Any


def install_data_order(trainer: Any) -> None:
    original = trainer._get_train_sampler

    def ordered_sampler(dataset: Any = None) -> Any:
        sampler = original(dataset)
        needed = ("generator", "seed", "num_samples", "batch_size", "repeat_count", "mini_repeat_count")
        if not all(hasattr(sampler, a) for a in needed) or sampler.seed is None:
            return sampler  # not TRL's seeded, shuffling RepeatSampler: nothing to replay or group
        dataset = trainer.train_dataset if dataset is None else dataset
        kinds = list(dataset["kind"]) if "kind" in dataset.column_names else []
        if len(set(kinds)) > 1:
            sampler = OneKindPerBatch(sampler, kinds)
        return Replayable(sampler)

    trainer._get_train_sampler = ordered_sampler


class OneKindPerBatch:
    """TRL's RepeatSampler (which it wraps), with every chunk of `batch_size` prompts of one kind."""

    def __init__(self, base: Any, kinds: list[str]):
        self.base, self.kinds = base, kinds
        self.generator = base.generator
        self.by_kind = {k: sum(1 for x in kinds if x == k) for k in sorted(set(kinds))}

    def draw(self) -> list[list[int]]:
        """One epoch's chunks: the items shuffled, cut per kind, the chunks shuffled."""
        import torch

        bs = self.base.batch_size
        order = torch.randperm(self.base.num_samples, generator=self.generator).tolist()
        chunks = []
        for kind in self.by_kind:
            same = [i for i in order if self.kinds[i] == kind]
            chunks += [same[j:j + bs] for j in range(0, len(same) - bs + 1, bs)]
        return [chunks[k] for k in torch.randperm(len(chunks), generator=self.generator).tolist()]

    def __iter__(self):
        for chunk in self.draw():
            for _ in range(self.base.repeat_count):
                for index in chunk:
                    for _ in range(self.base.mini_repeat_count):
                        yield index

    def __len__(self) -> int:
        chunks = sum(n // self.base.batch_size for n in self.by_kind.values())
        return chunks * self.base.batch_size * self.base.mini_repeat_count * self.base.repeat_count


class Replayable:
    """A sampler whose epoch e order is the seeded generator's (e+1)-th draw, whatever ran before."""

    def __init__(self, sampler: Any):
        self.sampler = sampler
        base = getattr(sampler, "base", sampler)
        self.generator, self.seed, self.num_samples = base.generator, base.seed, base.num_samples

    def set_epoch(self, epoch: int) -> None:
        import torch

        self.generator.manual_seed(self.seed)
        for _ in range(epoch):
            if isinstance(self.sampler, OneKindPerBatch):
                self.sampler.draw()
            else:  # RepeatSampler.__iter__ draws one permutation per pass
                torch.randperm(self.num_samples, generator=self.generator)

    def __iter__(self):
        return iter(self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)
