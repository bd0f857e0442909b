"""The trainer end to end on the tiny model through the real TRL GRPOTrainer (CPU, `trl` engine).

A random tiny model never writes the tags, so the suites' own rewards are all zero and give no
gradient; the mechanics tests add a reward that varies (completion length) through the Python API's
`extra_reward_funcs`, as TRL's own tests do.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from safetensors.torch import load_file

from core.errors import ConfigError, DataError
from harness.checkpoints import CheckpointInfo, read_checkpoint
from harness.cli import cli
from harness.config import EvalConfig
from harness.runner import run_eval
from harness.runstore import RunDir
from tests.fixtures.typed_shape import shape_problems
from trainers.config import TrainConfig
from trainers.train import grpo_kwargs, train

pytestmark = pytest.mark.slow


def length_reward(completions, **_):
    return [len(c[0]["content"] if isinstance(c, list) else c) / 10 for c in completions]


def tiny_cfg(tmp_path, name, model, **over):
    """Sizes for the tiny model; the algorithm's settings (loss type, ratio level, reuse of a generation
    batch, clipping) are the defaults unless `over` sets them."""
    settings = {"model": str(model), "engine": "trl", "suites": ["synth_charts"], "limit": 16, "max_steps": 2,
                "per_device_train_batch_size": 4, "num_generations": 4, "max_completion_length": 8,
                "learning_rate": 0.05, "out": str(tmp_path / name), **over}
    return TrainConfig.from_dict(settings)[0]


def log_rows(ckpt):
    return [json.loads(line) for line in (ckpt / "train_log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def on_policy_pair(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("onpolicy")
    return {algo: train(tiny_cfg(tmp, algo, tiny_model_dir, algo=algo, steps_per_generation=1),
                        extra_reward_funcs=[length_reward], echo=lambda _: None) for algo in ("gspo", "grpo")}


@pytest.mark.parametrize("algo", ["gspo", "grpo"])
def test_every_lora_parameter_trains_and_nothing_else(on_policy_pair, algo):
    info = read_checkpoint(on_policy_pair[algo])
    assert shape_problems(info, CheckpointInfo) == []
    assert info["status"] == "finished" and info["steps"] == 2 and info["algo"] == algo
    lora = info["lora"]
    assert lora["n_trainable"] == 2 * 14  # A and B of 7 projections x 2 language layers
    assert lora["unchanged"] == [] and lora["trainable_outside_lora"] == [] and lora["all_nonzero"]
    weights = load_file(on_policy_pair[algo] / "adapter_model.safetensors")
    assert weights and all("language_model" in k for k in weights)  # the vision tower stays frozen
    assert info["grpo_config"]["importance_sampling_level"] == ("sequence" if algo == "gspo" else "token")
    assert info["effectively_on_policy"] is True and info["reward_mode"] == "suite"
    rows = log_rows(on_policy_pair[algo])
    assert {"reward", "rewards/format_reward/mean", "rewards/correctness_reward/mean", "grad_norm",
            "clip_ratio/region_mean", "step_time", "completions/mean_length"} <= set(rows[0])


def test_on_policy_gspo_computes_grpo_gradient(on_policy_pair):
    gspo, grpo = ([r["grad_norm"] for r in log_rows(on_policy_pair[a]) if "grad_norm" in r] for a in ("gspo", "grpo"))
    assert len(gspo) == 2 and gspo == pytest.approx(grpo, rel=1e-4)
    assert all(g > 0 for g in gspo)


def test_off_policy_gspo_clips_differently(tmp_path, tiny_model_dir):
    # Two optimizer steps per generation batch: the second step's ratios differ from 1, and the
    # sequence-level ratio (a mean over tokens) is clipped far less often than per-token ratios.
    over = {"steps_per_generation": 2, "epsilon": 3e-4, "epsilon_high": 4e-4, "max_steps": 4}
    clip = {}
    for algo in ("gspo", "grpo"):
        ckpt = train(tiny_cfg(tmp_path, algo, tiny_model_dir, algo=algo, **over),
                     extra_reward_funcs=[length_reward], echo=lambda _: None)
        assert json.loads((ckpt / "checkpoint.json").read_text())["effectively_on_policy"] is False
        clip[algo] = [r["clip_ratio/region_mean"] for r in log_rows(ckpt) if "clip_ratio/region_mean" in r]
    assert any(g > 0 for g in clip["grpo"])  # off-policy steps do clip
    assert clip["gspo"] != clip["grpo"]


def test_default_gspo_is_the_papers_objective_and_its_ratios_move_after_the_first_update(tmp_path, tiny_model_dir):
    said = []
    ckpt = train(tiny_cfg(tmp_path, "default", tiny_model_dir, max_steps=4), extra_reward_funcs=[length_reward],
                 echo=said.append)
    info = read_checkpoint(ckpt)
    given = info["grpo_config"]
    assert (given["importance_sampling_level"], given["loss_type"]) == ("sequence", "grpo")  # per-sequence mean
    assert (given["steps_per_generation"], given["gradient_accumulation_steps"], given["num_iterations"]) == (4, 1, 1)
    assert info["effectively_on_policy"] is False and not any("on-policy" in line for line in said)
    rows = [r for r in log_rows(ckpt) if "importance_ratio/sequence_mean" in r]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    # Step 1 is the generation batch's first update: the policy that sampled it, a ratio of exactly 1.
    first = rows[0]
    assert first["importance_ratio/sequence_min"] == first["importance_ratio/sequence_max"] == 1.0
    # Steps 2-4 train on the same batch after 1-3 updates: off-policy, the ratios differ from 1.
    for row in rows[1:]:
        assert row["importance_ratio/sequence_min"] < 1.0 or row["importance_ratio/sequence_max"] > 1.0, row
        assert row["importance_ratio/token_min"] < row["importance_ratio/token_max"], row
        assert row["grad_norm"] > 0
    # --algo grpo is the same run but for the ratio's level: the GRPOConfig values differ in that one field.
    cfg_gspo = tiny_cfg(tmp_path, "a", tiny_model_dir)
    cfg_grpo = tiny_cfg(tmp_path, "a", tiny_model_dir, algo="grpo")
    gspo_args = grpo_kwargs(cfg_gspo, "trl", "cpu", tmp_path, [5])[0]
    grpo_args = grpo_kwargs(cfg_grpo, "trl", "cpu", tmp_path, [5])[0]
    assert {k for k in gspo_args if gspo_args[k] != grpo_args[k]} == {"importance_sampling_level"}
    assert (gspo_args["importance_sampling_level"], grpo_args["importance_sampling_level"]) == ("sequence", "token")
    assert {k for k, v in cfg_gspo.to_dict().items() if v != cfg_grpo.to_dict()[k]} == {"algo"}
    # ... and these are the values the run above recorded as given to GRPOConfig
    recorded = grpo_kwargs(tiny_cfg(tmp_path, "default", tiny_model_dir, max_steps=4), "trl", "cpu", ckpt, [5], 1)[0]
    assert {k: v for k, v in recorded.items() if k not in ("output_dir", "generation_kwargs")} == {
        k: v for k, v in given.items() if k != "generation_kwargs"}


def test_a_gspo_preset_that_is_on_policy_or_token_weighted_says_so_in_one_line(tmp_path, tiny_model_dir):
    said = []
    ckpt = train(tiny_cfg(tmp_path, "recipe", tiny_model_dir, max_steps=1, gradient_accumulation_steps=2,
                          steps_per_generation=2, loss_type="dr_grpo"), extra_reward_funcs=[length_reward],
                 echo=said.append)
    warnings = [line for line in said if line.startswith(("warning: GSPO", "note: GSPO"))]
    assert len(warnings) == 2 and all("\n" not in line for line in warnings)
    assert "computes GRPO's gradient" in warnings[0] and "weighted by its length" in warnings[1]
    assert read_checkpoint(ckpt)["effectively_on_policy"] is True
    row = next(r for r in log_rows(ckpt) if "importance_ratio/sequence_mean" in r)
    assert row["importance_ratio/sequence_min"] == row["importance_ratio/sequence_max"] == 1.0


def test_checkpoint_loads_in_harness_eval(tmp_path, on_policy_pair):
    ckpt = on_policy_pair["gspo"]
    run = run_eval(EvalConfig(model=str(ckpt), suites=["synth_charts"], split="train", limit=4,
                              max_new_tokens=4, out=str(tmp_path / "run")), progress=False)
    manifest = RunDir(run).read_manifest()
    entry = manifest["checkpoint"]
    assert entry["algo"] == "gspo" and entry["step"] == 2 and entry["effectively_on_policy"] is True
    assert entry["reward_mode"] == "suite"
    # The first 4 train items were trained on (limit 16): the manifest records the overlap.
    assert entry["overlap"]["n"] == 4 and len(entry["overlap"]["suites"]["synth_charts"]) == 4
    assert manifest["model"]["base_model"]


def test_guard_refuses_overlapping_train_set(tmp_path, tiny_model_dir):
    cfg = tiny_cfg(tmp_path, "overlap", tiny_model_dir, split="test", eval_suites=["synth_charts"])
    with pytest.raises(DataError, match=r"overlap the evaluation suites \(synth_charts: 16"):
        train(cfg, echo=lambda _: None)
    assert not (tmp_path / "overlap").exists()  # refused before anything was written


def test_guard_records_allowed_overlap_and_held_out(tmp_path):
    from trainers.data import guard, load_training_data

    cfg = TrainConfig.from_dict({"suites": ["synth_charts"], "split": "test", "limit": 20, "held_out": 5,
                                 "eval_suites": ["synth_charts"], "allow_overlap": True})[0]
    data = load_training_data(cfg)
    assert len(data.items) == 15 and len(data.held_out_ids["synth_charts"]) == 5
    # The held-out items are what the train suite is evaluated on; the other eval items overlap.
    summary = guard(cfg, data)
    assert summary is None  # eval = the 5 held-out ids only: no overlap
    cfg.held_out, cfg.limit = 0, 10
    summary = guard(cfg, load_training_data(cfg))
    assert summary["n"] == 10


def test_bad_configs_fail_with_one_line():
    cases = {
        ("--set", "num_generations=3"): "must be divisible by num_generations 3",
        ("--set", "max_prompt_length=512"): "max_prompt_length was removed",
        ("--set", "bogus=1"): "unknown key(s) bogus",
        ("--config", "no-such-preset"): "neither a file nor a preset",
        ("--set", "prompt_format=official"): "cannot be trained on",
        ("--set", "trl_args={\"importance_sampling_level\": \"token\"}"): "is set by the trainer",
        ("--engine", "unsloth"): "unsloth engine needs a CUDA GPU",
    }
    for args, message in cases.items():
        result = CliRunner().invoke(cli, ["train", *args])
        assert result.exit_code == 2, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (args, lines)


def test_presets_and_removed_fields():
    recipe, _ = TrainConfig.from_sources("unsloth-recipe")
    assert (recipe.learning_rate, recipe.loss_type, recipe.beta, recipe.scale_rewards, recipe.optim) == (
        5e-6, "dr_grpo", 0.0, "none", "adamw_8bit")
    assert recipe.per_device_train_batch_size * recipe.gradient_accumulation_steps == 32
    assert recipe.effectively_on_policy()
    paper, _ = TrainConfig.from_sources("gspo-paper")
    assert paper.loss_type == "grpo" and paper.steps_per_generation == 4 * paper.gradient_accumulation_steps
    assert not paper.effectively_on_policy()
    cfg, notes = TrainConfig.from_dict({"warmup_ratio": 0.1})
    assert cfg.warmup_steps == 0.1 and "warmup_ratio" in notes[0]
    with pytest.raises(ConfigError, match="not GRPOConfig fields"):
        TrainConfig.from_dict({"trl_args": {"no_such_field": 1}})[0].check_trl_args_known()


def test_export_merges_to_a_loadable_16bit_model(tmp_path, on_policy_pair):
    result = CliRunner().invoke(cli, ["export", str(on_policy_pair["grpo"]), "--merge", str(tmp_path / "merged")])
    assert result.exit_code == 0, result.output
    merged = tmp_path / "merged"
    config = json.loads((merged / "config.json").read_text())
    assert config["dtype"] == "bfloat16" and not (merged / "adapter_config.json").exists()
    assert json.loads((merged / "checkpoint.json").read_text())["merged_from"]
    run = run_eval(EvalConfig(model=str(merged), suites=["synth_arith"], limit=2, max_new_tokens=4,
                              out=str(tmp_path / "run")), progress=False)
    assert RunDir(run).read_manifest()["checkpoint"]["algo"] == "grpo"
    again = CliRunner().invoke(cli, ["export", str(on_policy_pair["grpo"]), "--merge", str(merged)])
    assert again.exit_code == 2 and "already holds files" in again.output and "--force" in again.output


def test_quick_demo_runs_the_whole_story(tmp_path):
    result = CliRunner().invoke(cli, ["demo", "--quick", "--seed", "3", "--out", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "demo" / "demo.json").read_text())
    assert set(summary["suites"]) == {"synth_charts", "synth_arith"} and summary["seed"] == 3
    for suite in summary["suites"].values():
        assert len(suite["format_compliance"]) == 2 and 0 <= suite["format_p"] <= 1 and suite["n"] == 16
    info = json.loads((tmp_path / "demo" / "checkpoints" / "gspo" / "checkpoint.json").read_text())
    assert info["status"] == "finished" and [e["step"] for e in info["evals"]] == [2, 4]
    assert info["extra_rewards"] == ["format_compliance_reward"] and info["config"]["seed"] == 3
    assert info["reward_mode"] == "recipe"  # the mode the demo was measured with
    assert json.loads((tmp_path / "demo" / "models" / "random" / "tiny_model.json").read_text())["seed"] == 3
    manifest = json.loads((tmp_path / "demo" / "runs" / "gspo" / "manifest.json").read_text())
    assert manifest["config"]["temperature"] == 0.7 and manifest["config"]["seed"] == 3
    assert (tmp_path / "demo" / "report.html").stat().st_size > 10_000
    assert "format compliance" in result.output and "seed 3. Measured over seeds" in result.output
    assert "headline (seed 3): synth_arith format compliance" in result.output
