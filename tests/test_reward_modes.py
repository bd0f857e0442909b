"""One grader: in the suite reward mode the correctness reward is the suite scorer's verdict, on a shared
table of responses for every suite (tests/fixtures/verdict_cases.json); the recipe mode keeps the
Unsloth notebook's string rule and reproduces the numbers it gave before the modes existed.

    python3 -m uv run --locked pytest tests/test_reward_modes.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.formats import PROMPT_FORMATS, VERDICT_REWARD, answer_region, format_reward, rewards
from harness.scoring import judge
from suites import SUITES, get_suite
from suites.base import ScoringInput, Target
from trainers.config import TrainConfig
from trainers.rewards import make_reward_funcs

FIXTURES = Path(__file__).parent / "fixtures"
TABLE = json.loads((FIXTURES / "verdict_cases.json").read_text(encoding="utf-8"))
CALCULATOR_CASES = json.loads((FIXTURES / "reward_cases.json").read_text(encoding="utf-8"))["cases"]
FMT = PROMPT_FORMATS["reasoning-solution"]
WEIGHTS = {"format": 0.3, "correctness": 1.0}


def response_of(case: dict) -> str:
    return case.get("response") or f"<REASONING>work</REASONING><SOLUTION>{case['answer']}</SOLUTION>"


def target_of(case: dict) -> tuple[str, dict]:
    """The grader (suite name) and the target JSON column, as the training dataset holds them."""
    spec = dict(TABLE["targets"][case["target"]])
    return spec.pop("suite"), spec


def live_verdict(suite_name: str, target: dict, response: str) -> bool:
    """The suite's own Score.correct, called directly (not through the reward code)."""
    region, rule = answer_region(response, FMT)
    return get_suite(suite_name).score(ScoringInput(response, region, rule, Target.from_dict(target))).correct


def trainer_rewards(mode: str, cases: list[dict]) -> tuple[list[float], list[float]]:
    """The format and correctness rewards TRL gets for the cases, through the trainer's reward functions
    called as TRL calls them (conversational completions, dataset columns as keyword lists)."""
    fmt_fn, corr_fn = make_reward_funcs("reasoning-solution", WEIGHTS, mode)
    graders, targets = zip(*(target_of(c) for c in cases), strict=True)
    columns = {"grader": list(graders), "suite": list(graders), "target": [json.dumps(t) for t in targets]}
    completions = [[{"role": "assistant", "content": response_of(c)}] for c in cases]
    return fmt_fn(completions, **columns), corr_fn(completions, **columns)


def test_the_table_covers_every_suite_with_both_verdicts():
    cases = TABLE["cases"]
    for name in SUITES:
        verdicts = {c["verdict"] for c in cases if TABLE["targets"][c["target"]]["suite"] == name}
        assert verdicts == {True, False}, f"{name}: the table needs a correct and a wrong response"
    # where the two graders disagree is the point of the table: correct, yet no recipe reward
    assert sum(c["verdict"] and c["recipe"] == 0.0 for c in cases) >= 10


def test_suite_mode_rewards_the_suite_verdict_on_every_case():
    cases = TABLE["cases"]
    formats, correctness = trainer_rewards("suite", cases)
    for case, fmt_r, corr in zip(cases, formats, correctness, strict=True):
        suite_name, target = target_of(case)
        response = response_of(case)
        verdict = live_verdict(suite_name, target, response)
        assert verdict == case["verdict"], (case, "the suite's verdict changed")
        assert corr == (VERDICT_REWARD if verdict else 0.0), case
        assert fmt_r == format_reward(response, FMT), case  # the format reward stays the recipe's


@pytest.mark.parametrize(("target", "response"), [
    ("mathvista_int", "<SOLUTION>The answer is 5</SOLUTION>"),
    ("math500_half", "<SOLUTION>0.5</SOLUTION>"),
])
def test_the_issues_cases_earn_the_correctness_reward_in_suite_mode_only(target, response):
    case = {"target": target, "response": response}
    assert live_verdict(*target_of(case), response)
    assert trainer_rewards("suite", [case])[1] == [VERDICT_REWARD]
    assert trainer_rewards("recipe", [case])[1] == [0.0]


def test_recipe_mode_reproduces_the_string_rule_numbers():
    cases = TABLE["cases"]
    _formats, correctness = trainer_rewards("recipe", cases)
    assert correctness == [c["recipe"] for c in cases]
    assert {1.5, 2.0, 0.0} <= set(correctness)
    # The calculator's shared table (the page's rules, checked against Python in Chromium by
    # tests/test_reward_calculator.py): the trainer's recipe mode gives core.formats' rewards on it.
    tagged = [c for c in CALCULATOR_CASES if PROMPT_FORMATS[c["format"]].answer_tags is not None
              and isinstance(c["response"], str)]
    assert len(tagged) > 30
    for case in tagged:
        fmt = PROMPT_FORMATS[case["format"]]
        fmt_fn, corr_fn = make_reward_funcs(fmt.name, WEIGHTS, "recipe")
        target = json.dumps({"gold": case["gold"], "answer_type": "text", "choices": case.get("choices")})
        columns = {"grader": ["synth_arith"], "target": [target]}
        want = rewards(case["response"], case["gold"], fmt, None, WEIGHTS, case.get("choices"))
        assert (fmt_fn([case["response"]], **columns), corr_fn([case["response"]], **columns)) == (
            [want["format"]], [want["correctness"]]), case["id"]


def test_evaluation_records_hold_the_suite_mode_rewards_with_the_mode():
    case = {"target": "gsm8k", "answer": "2,125"}
    suite_name, target = target_of(case)
    judged = judge(get_suite(suite_name), response_of(case), FMT, Target.from_dict(target))
    assert judged["correct"] is True
    assert judged["rewards"] == {"mode": "suite", "format": 2.0, "correctness": 2.0, "total": pytest.approx(2.6)}
    recipe = judge(get_suite(suite_name), response_of(case), FMT, Target.from_dict(target), reward_mode="recipe")
    assert recipe["rewards"]["mode"] == "recipe" and recipe["rewards"]["correctness"] == 1.5
    with pytest.raises(ValueError, match="unknown reward mode"):
        make_reward_funcs("reasoning-solution", WEIGHTS, "loose")


def test_reward_mode_config_and_local_dataset_grader():
    assert TrainConfig.from_dict({})[0].reward_mode == "suite"
    assert TrainConfig.from_dict({"reward_mode": "recipe"})[0].reward_mode == "recipe"
    with pytest.raises(ConfigError, match="unknown reward_mode 'loose'"):
        TrainConfig.from_dict({"reward_mode": "loose"})
    with pytest.raises(ConfigError, match="local dataset has no scorer of its own"):
        TrainConfig.from_dict({"dataset": "data.jsonl", "suites": []})
    with pytest.raises(ConfigError, match="dataset_grader 'nope' is not a suite"):
        TrainConfig.from_dict({"dataset": "data.jsonl", "suites": [], "dataset_grader": "nope"})
    TrainConfig.from_dict({"dataset": "data.jsonl", "suites": [], "reward_mode": "recipe"})


def test_a_local_dataset_is_graded_by_its_named_suite(tmp_path):
    from trainers.data import load_training_data, to_trl_dataset

    path = tmp_path / "local.jsonl"
    path.write_text(json.dumps({"question": "Half of one?", "answer": "\\frac{1}{2}"}) + "\n")
    cfg = TrainConfig.from_dict({"dataset": str(path), "suites": [], "dataset_grader": "math500"})[0]
    row = to_trl_dataset(load_training_data(cfg).items, cfg)[0]
    assert (row["suite"], row["grader"]) == ("local", "math500")
    _, corr_fn = make_reward_funcs("reasoning-solution", WEIGHTS, "suite")
    got = corr_fn(["<SOLUTION>0.5</SOLUTION>"], grader=[row["grader"]], target=[row["target"]], suite=[row["suite"]])
    assert got == [VERDICT_REWARD]
