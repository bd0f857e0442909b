"""Trainer pieces without a training run: rewards, local datasets, held-out draws, fingerprints, export."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from core.errors import ConfigError, DataError
from core.formats import PROMPT_FORMATS
from harness.contamination import Fingerprints
from harness.scoring import judge
from suites import get_suite
from suites.base import LoadOptions
from tests.fixtures import write_parquet
from trainers.config import TrainConfig
from trainers.data import load_local_dataset, load_training_data, to_trl_dataset
from trainers.rewards import completion_text, make_reward_funcs


def _png(color) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (20, 20), color).save(buf, format="PNG")
    return buf.getvalue()


def test_rewards_equal_the_evaluation_records_for_both_completion_forms():
    suite = get_suite("synth_arith")
    item = suite.load(LoadOptions(split="train"))[0]
    fmt = PROMPT_FORMATS["reasoning-solution"]
    responses = [f"<REASONING>ok</REASONING><SOLUTION>{item.gold}</SOLUTION>", "<SOLUTION>3</SOLUTION>",
                 f"<REASONING>x</REASONING>\n<SOLUTION>{item.gold}.0</SOLUTION>", "addCriterion\n" * 20]
    target = json.dumps(item.target() | {"meta": item.meta})
    fmt_fn, corr_fn = make_reward_funcs("reasoning-solution", {"format": 0.3, "correctness": 1.0})
    assert (fmt_fn.__name__, corr_fn.__name__) == ("format_reward", "correctness_reward")
    for completions in (responses, [[{"role": "assistant", "content": r}] for r in responses]):
        kwargs = {"suite": [item.suite] * 4, "target": [target] * 4}
        got = list(zip(fmt_fn(completions, **kwargs), corr_fn(completions, **kwargs), strict=True))
        want = [(judge(suite, r, fmt, item_target := _target(item))["rewards"]["format"],
                 judge(suite, r, fmt, item_target)["rewards"]["correctness"]) for r in responses]
        assert got == want
    # suite mode (the default): "580.0" is the scorer's correct, so the full 2.0 (the recipe gave 1.5)
    assert got[0] == (2.0, 2.0) and got[2][1] == 2.0 and got[3][0] < 0


def _target(item):
    from suites.base import Target

    return Target.from_dict(item.target())


def test_completion_text_forms():
    assert completion_text("a") == "a"
    assert completion_text([{"role": "assistant", "content": "b"}]) == "b"
    assert completion_text([{"role": "assistant", "content": [{"type": "text", "text": "c"}]}]) == "c"
    with pytest.raises(TypeError):
        completion_text(3)


def test_local_parquet_dataset_with_images_and_a_bad_row(tmp_path):
    (tmp_path / "img.png").write_bytes(_png("blue"))
    rows = [{"question": "How many?", "answer": "3", "image": {"bytes": _png("red"), "path": None}, "sample_id": "a"},
            {"question": "What colour?", "answer": "blue", "image": {"bytes": None, "path": "img.png"},
             "sample_id": "b"},
            {"question": "", "answer": "1", "image": None, "sample_id": "c"}]
    write_parquet(rows, tmp_path / "train.parquet")
    items = load_local_dataset(tmp_path / "train.parquet")
    assert [i.sample_id for i in items] == ["a", "b", "c"]
    assert items[0].image_bytes and items[1].image_bytes == _png("blue") and "lacks question" in items[2].error
    cfg = TrainConfig.from_dict({"dataset": str(tmp_path / "train.parquet"), "suites": [],
                                 "dataset_grader": "mathvista_testmini"})[0]
    data = load_training_data(cfg)
    assert len(data.items) == 2 and data.source[-1]["n_skipped"] == 1
    dataset = to_trl_dataset(data.items, cfg)
    assert dataset[0]["prompt"][0]["content"][0]["type"] == "image" and dataset[0]["image"].size == (20, 20)
    with pytest.raises(DataError, match="does not exist"):
        load_local_dataset(tmp_path / "missing.jsonl")


def test_held_out_draw_is_seeded_and_recorded():
    base = {"suites": ["synth_arith"], "limit": 50, "held_out": 10}
    first = load_training_data(TrainConfig.from_dict(base)[0])
    again = load_training_data(TrainConfig.from_dict(base)[0])
    other = load_training_data(TrainConfig.from_dict({**base, "held_out_seed": 1})[0])
    assert first.held_out_ids == again.held_out_ids != other.held_out_ids
    assert len(first.items) == 40 and first.sha256() == again.sha256() != other.sha256()
    assert not set(first.held_out_ids["synth_arith"]) & {i.sample_id for i in first.items}


def test_fingerprints_match_reencoded_images_and_texts():
    charts = get_suite("synth_charts").load(LoadOptions(split="test"))[:3]
    fp = Fingerprints.of(charts)
    copy = charts[1]
    buf = io.BytesIO()
    Image.open(io.BytesIO(copy.image_bytes)).save(buf, format="PNG", compress_level=1)  # other bytes, same pixels
    renamed = type(copy)(suite="elsewhere", sample_id="zz", question="?", gold="0", image_bytes=buf.getvalue())
    assert buf.getvalue() != copy.image_bytes and fp.matches(renamed)
    arith = get_suite("synth_arith").load(LoadOptions(split="test"))[:2]
    text_fp = Fingerprints.of(arith)
    spaced = type(arith[0])(suite="other", sample_id="q", question="  " + arith[0].question.upper(), gold=arith[0].gold)
    assert text_fp.matches(spaced)
    assert Fingerprints.from_dict(fp.to_dict()).overlap(charts) == [c.sample_id for c in charts]


def test_held_out_items_are_the_evaluation_only_on_the_trained_split():
    from trainers.data import eval_plan

    held = {"synth_arith": ["3", "7"]}
    on_test = TrainConfig.from_dict({"suites": ["synth_arith"], "split": "test", "eval_suites": ["synth_arith"]})[0]
    assert eval_plan(on_test, held).sample_ids == held
    on_train = TrainConfig.from_dict({"suites": ["synth_arith"], "eval_suites": ["synth_arith"]})[0]
    assert eval_plan(on_train, held).sample_ids == {}  # evaluated on its own test split


def test_evaluations_during_training_sample_at_eval_temperature_with_the_training_seed():
    from trainers.data import eval_plan

    cfg = TrainConfig.from_dict({"suites": ["synth_arith"], "eval_suites": ["synth_arith"], "seed": 4})[0]
    assert eval_plan(cfg, {}).temperature == 0.0  # greedy unless asked
    sampled = TrainConfig.from_dict({"suites": ["synth_arith"], "eval_suites": ["synth_arith"], "seed": 4,
                                     "eval_temperature": 0.7})[0]
    plan = eval_plan(sampled, {})
    assert (plan.temperature, plan.seed) == (0.7, 4)
    with pytest.raises(ConfigError, match="eval_temperature must be >= 0"):
        TrainConfig.from_dict({"eval_temperature": -1})


def test_the_compliance_reward_is_the_evaluations_format_check():
    from core.formats import format_failures
    from trainers.rewards import make_compliance_reward

    reward = make_compliance_reward("reasoning-solution")
    texts = ["<REASONING>2 + 3 = 5</REASONING>\n<SOLUTION>5</SOLUTION>",
             "<REASONING>2 + 3</REASONING>\n<SOLUTION></SOLUTION>",  # full format reward, not compliant
             "<REASONING>x</REASONING>\n<SOLUTION>5", "<SOLUTION>5</SOLUTION><REASONING>x</REASONING>"]
    fmt = PROMPT_FORMATS["reasoning-solution"]
    assert reward(texts) == [1.0, 0.0, 0.0, 0.0] == [float(not format_failures(t, fmt)) for t in texts]
    assert reward([[{"role": "assistant", "content": texts[0]}]]) == [1.0]
    with pytest.raises(ValueError, match="no tags"):
        make_compliance_reward("boxed")
