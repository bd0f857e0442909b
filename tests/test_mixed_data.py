"""Mixed training data: several suites with mixing weights, text and image items in one run, each item
rewarded by its own suite's grader, the mix recorded in checkpoint.json.

    python3 -m uv run --locked pytest tests/test_mixed_data.py -q
"""

from __future__ import annotations

import json

import pytest
import torch

from core.errors import ConfigError, DataError
from harness.checkpoints import read_checkpoint
from trainers.config import TrainConfig
from trainers.data import load_training_data, to_trl_dataset
from trainers.data_order import OneKindPerBatch, Replayable

MIXED = {"suites": ["synth_charts", "synth_arith"], "limit": 8}  # synth_charts has pictures, synth_arith none


def test_mixing_weights_set_each_suites_share_and_are_recorded():
    data = load_training_data(TrainConfig.from_dict({**MIXED, "mix": {"synth_charts": 1, "synth_arith": 3}})[0])
    suites = [item.suite for item in data.items]
    assert (suites.count("synth_charts"), suites.count("synth_arith")) == (4, 12)  # 16 items, shares 1:3
    assert data.mix["synth_charts"] == {"weight": 1, "share": 0.25, "available": 8, "used": 4, "repeated": False}
    assert data.mix["synth_arith"] == {"weight": 3, "share": 0.75, "available": 8, "used": 12, "repeated": True}
    assert data.kinds() == {"image": 4, "text": 12}
    again = load_training_data(TrainConfig.from_dict({**MIXED, "mix": {"synth_charts": 1, "synth_arith": 3}})[0])
    assert [i.sample_id for i in again.items] == [i.sample_id for i in data.items]  # a seeded draw
    # limit is per source: 8 of each, every item once without weights
    plain = load_training_data(TrainConfig.from_dict(MIXED)[0])
    assert plain.kinds() == {"image": 8, "text": 8} and plain.mix is None
    with pytest.raises(DataError, match="no weight for synth_arith"):
        load_training_data(TrainConfig.from_dict({**MIXED, "mix": {"synth_charts": 1}})[0])
    with pytest.raises(DataError, match="unknown gsm8k"):
        load_training_data(TrainConfig.from_dict({**MIXED, "mix": {"synth_charts": 1, "synth_arith": 1,
                                                                  "gsm8k": 1}})[0])
    with pytest.raises(ConfigError, match="mix weights must be > 0"):
        TrainConfig.from_dict({**MIXED, "mix": {"synth_charts": 0, "synth_arith": 1}})


def test_each_suite_may_have_its_own_split(tmp_path):
    cfg = TrainConfig.from_dict({**MIXED, "suite_splits": {"synth_arith": "test"}})[0]
    data = load_training_data(cfg)
    assert [(s["name"], s["split"]) for s in data.source] == [("synth_charts", "train"), ("synth_arith", "test")]
    assert {i.sample_id.split("-")[0] for i in data.items if i.suite == "synth_arith"} == {"test"}
    from click.testing import CliRunner

    from harness.cli import cli

    result = CliRunner().invoke(cli, ["train", "--suite", "synth_charts", "--suite", "synth_arith",
                                      "--split", "synth_arith=nope", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "suite synth_arith has no split 'nope'" in result.output


def test_the_dataset_holds_both_kinds_and_each_rows_own_grader():
    cfg = TrainConfig.from_dict(MIXED)[0]
    dataset = to_trl_dataset(load_training_data(cfg).items, cfg)
    rows = list(dataset)
    assert {(r["suite"], r["grader"], r["kind"], len(r["images"])) for r in rows} == {
        ("synth_charts", "synth_charts", "image", 1), ("synth_arith", "synth_arith", "text", 0)}
    text_row = next(r for r in rows if r["kind"] == "text")
    assert [part["type"] for part in text_row["prompt"][0]["content"]] == ["text"]  # no image placeholder


class _Sampler:
    """The attributes of TRL's RepeatSampler that the ordering reads."""

    def __init__(self, n, batch_size):
        self.num_samples, self.batch_size, self.repeat_count, self.mini_repeat_count = n, batch_size, 2, 3
        self.seed, self.generator = 7, torch.Generator().manual_seed(7)


def test_every_generation_batch_is_one_kind_and_epochs_replay():
    kinds = ["image"] * 9 + ["text"] * 14
    sampler = Replayable(OneKindPerBatch(_Sampler(len(kinds), 4), kinds))
    epochs = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        order = list(sampler)
        assert len(order) == len(sampler) == (2 + 3) * 4 * 2 * 3  # 2 image and 3 text batches of 4 prompts
        chunks = [order[i:i + 4 * 2 * 3] for i in range(0, len(order), 4 * 2 * 3)]
        assert all(len({kinds[i] for i in chunk}) == 1 for chunk in chunks)
        assert sorted(kinds[c[0]] for c in chunks) == ["image"] * 2 + ["text"] * 3
        epochs.append(order)
    assert epochs[0] != epochs[1]
    fresh = Replayable(OneKindPerBatch(_Sampler(len(kinds), 4), kinds))
    fresh.set_epoch(2)  # a resumed run entering epoch 2 sees what the uninterrupted one saw
    assert list(fresh) == epochs[2]


@pytest.mark.slow
def test_a_mixed_run_trains_on_both_kinds(tmp_path, tiny_model_dir):
    from trainers.train import train

    seen = []

    def length_reward(completions, kind, suite, grader, **_):
        seen.append((tuple(kind), tuple(suite), tuple(grader)))
        return [len(c[0]["content"] if isinstance(c, list) else c) / 10 for c in completions]

    cfg = TrainConfig.from_dict({**MIXED, "mix": {"synth_charts": 1, "synth_arith": 1}, "model": str(tiny_model_dir),
                                 "engine": "trl", "max_steps": 8, "per_device_train_batch_size": 8,
                                 "num_generations": 2, "steps_per_generation": 1, "max_completion_length": 8,
                                 "learning_rate": 0.05, "out": str(tmp_path / "mixed")})[0]
    out = train(cfg, extra_reward_funcs=[length_reward], echo=lambda _: None)
    assert len(seen) == 8 and all(len(kind) == 8 for kind, _, _ in seen)  # a batch a step: 4 prompts x 2
    assert all(len(set(kind)) == 1 for kind, _, _ in seen)  # one kind per batch
    assert {kind[0] for kind, _, _ in seen} == {"image", "text"}  # and both kinds were trained on
    assert all(suite == grader for _, suite, grader in seen)  # each item graded by its own suite
    info = read_checkpoint(out)
    assert info["status"] == "finished" and info["steps"] == 8
    assert info["train_data"]["kinds"] == {"image": 8, "text": 8}
    assert set(info["train_data"]["mix"]) == {"synth_charts", "synth_arith"}
    assert info["lora"]["all_nonzero"] and info["lora"]["unchanged"] == []
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert [r["step"] for r in rows] == list(range(1, 9)) and all(r["grad_norm"] > 0 for r in rows)
