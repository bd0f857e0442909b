"""`harness eval`, `show`, `rescore`, `score` and `suites`: evaluating models and reading runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from core.errors import ConfigError
from harness.cli.options import parse_data_dirs


def _parse_image_size(value: str | None) -> list[int] | None:
    if value is None:
        return None
    parts = value.lower().replace(",", "x").split("x")
    try:
        size = [int(p) for p in parts]
    except ValueError:
        raise ConfigError(f"--image-size must look like 512x512, got {value!r}") from None
    if len(size) != 2:
        raise ConfigError(f"--image-size must look like 512x512, got {value!r}")
    return size


# CLI option -> EvalConfig field, for the options that map one to one.
_EVAL_FIELDS = ("model", "revision", "adapter", "backend", "dtype", "load_in_4bit", "split", "variant",
                "prompt_format", "scoring", "limit", "max_new_tokens", "temperature", "top_p", "top_k", "n_samples",
                "batch_size", "seed", "out", "ignore_eos", "quantization", "max_concurrency",
                "gpu_memory_utilization", "max_model_len", "tensor_parallel_size", "data_parallel_size",
                "merge_lora", "base_url", "api_key_env", "request_timeout_s", "max_retries", "retry_backoff_s",
                "judge", "judge_base_url", "judge_api_key_env", "judge_all", "judge_max_concurrency", "judge_cache",
                "shard", "ray", "ray_replicas", "ray_cpus_per_replica", "ray_chunk_size", "ray_max_restarts")
# Where a run is spread, not what it evaluates: a resumed run takes them from the command line, not its manifest.
_PLACEMENT_FIELDS = ("ray", "ray_replicas", "ray_cpus_per_replica", "ray_chunk_size", "ray_max_restarts")


def judge_options(command: Any) -> Any:
    """The LLM judge's options, shared by eval and rescore."""
    for option in reversed([
        click.option("--judge", help="LLM answer judge on an OpenAI-compatible server: a model name (at "
                     "--judge-base-url) or a server URL (its one model). Judges the records the rules extract "
                     "no answer from (all with --judge-all); see docs/judge.md."),
        click.option("--judge-base-url", help="The judge server of a judge given by name (default: --base-url "
                     "with the openai backend, else $OPENAI_BASE_URL, else OpenAI's)."),
        click.option("--judge-api-key-env", help="Environment variable holding the judge server's API key "
                     "(default OPENAI_API_KEY; the key is never written)."),
        click.option("--judge-all", is_flag=True, default=None, help="Judge every answered record, not only "
                     "those without an extracted answer."),
        click.option("--judge-max-concurrency", type=int, help="Judge requests in flight at most (32)."),
        click.option("--judge-cache", help="Folder of the judge cache (default: <harness cache>/judge)."),
    ]):
        command = option(command)
    return command


@click.command("eval")
@click.option("--model", help="Model dir, Hub id or LoRA adapter dir (default: the tiny offline model).")
@click.option("--revision", help="Hub revision (commit) of the model.")
@click.option("--adapter", help="LoRA adapter dir applied on top of --model.")
@click.option("--suite", "suites", multiple=True, help="Suite to run (repeatable; default: synth_charts, synth_arith).")
@click.option("--split", help="Split for every suite (default: each suite's evaluation split).")
@click.option("--variant", help="Suite variant, e.g. numeric for mathvista_testmini.")
@click.option("--data-dir", "data_dirs", multiple=True, help="Local data: PATH for all suites, or SUITE=PATH.")
@click.option("--image-size", help="Resize images to WxH RGB before prompting, e.g. 512x512.")
@click.option("--backend", help="Generation backend (default: transformers). vllm: vLLM's engine. openai: an "
              "OpenAI-compatible server at --base-url, --model naming the served model. scripted: no model, "
              "--model is a JSON script of fixed responses (see harness/backends/scripted.py).")
@click.option("--dtype", help="auto, bfloat16, float16 or float32.")
@click.option("--load-in-4bit", is_flag=True, default=None, help="bitsandbytes 4-bit weights (CUDA only).")
@click.option("--prompt-format", help="reasoning-solution, think-answer, boxed or official.")
@click.option("--scoring", type=click.Choice(["strict", "official"]),
              help="Which verdict is the accuracy (default strict): the harness's rules, or the benchmark's official "
              "fallbacks (MathVista: any extraction mapped to the nearest choice). Both are kept in every record.")
@click.option("--limit", type=int, help="Evaluate the first N items of each suite.")
@click.option("--max-new-tokens", type=int, help="Generation length limit (default 1024).")
@click.option("--temperature", type=float, help="0 = greedy (default).")
@click.option("--top-p", type=float, help="Nucleus sampling.")
@click.option("--top-k", type=int, help="Top-k sampling (0 = off).")
@click.option("--n-samples", type=int, help="Samples per prompt; accuracy averages them (avg@n).")
@click.option("--batch-size", type=int, help="transformers: prompts per generate call, longest prompts first "
              "(default 8). vllm: not used; the engine batches continuously (see --max-concurrency).")
@click.option("--ignore-eos", is_flag=True, default=None, help="Always generate --max-new-tokens (benchmarks).")
@click.option("--quantization", type=click.Choice(["none", "fp8", "bitsandbytes"]),
              help="Weight quantization: fp8 (vllm) or bitsandbytes 4-bit (both backends; = --load-in-4bit).")
@click.option("--max-concurrency", type=int, help="vllm: requests in flight at most (default: all at once); "
              "openai: the same (default 32).")
@click.option("--gpu-memory-utilization", type=float, help="vllm: share of GPU memory the engine takes (0.9).")
@click.option("--max-model-len", type=int, help="vllm: engine context length (default: the model's).")
@click.option("--tensor-parallel-size", type=int, help="vllm: GPUs one model copy is split over (1).")
@click.option("--data-parallel-size", type=int, help="vllm: model copies, one per GPU group (1).")
@click.option("--merge-lora", is_flag=True, default=None,
              help="vllm: merge a LoRA adapter into its base first (vLLM ignores vision-tower LoRA).")
@click.option("--base-url", help="openai: the server's base URL, e.g. http://127.0.0.1:8000/v1 (default: "
              "$OPENAI_BASE_URL, else OpenAI's).")
@click.option("--api-key-env", help="openai: environment variable holding the API key (default OPENAI_API_KEY; "
              "the key is never written to the run).")
@click.option("--request-timeout", "request_timeout_s", type=float,
              help="openai and judge: seconds one attempt of a request may take (600).")
@click.option("--max-retries", type=int, help="openai and judge: retries on 429, 5xx, timeouts and dropped "
              "connections (6), with exponential backoff and jitter; Retry-After is honoured.")
@click.option("--retry-backoff", "retry_backoff_s", type=float,
              help="openai and judge: the first wait before a retry, in seconds (1), doubled each time.")
@judge_options
@click.option("--seed", type=int, help="Generation and procedural-suite seed.")
@click.option("--shard", help="K/N: evaluate the K-th of N balanced shares of every suite's items (by a hash of "
              "the sample id; the same share on every rerun); put the shards together with harness merge.")
@click.option("--ray", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
              help="Spread the requests over backend replicas on a Ray cluster: with no ADDRESS a local cluster is "
              "started here, else connect to ADDRESS (auto, HOST:6379, ray://HOST:10001). This process alone "
              "writes the run; see docs/scale-out.md.")
@click.option("--ray-replicas", type=int, help="ray: backend replicas, one Ray actor each (default: as many as "
              "the cluster's GPUs, or CPUs, hold).")
@click.option("--ray-cpus-per-replica", type=float, help="ray: CPUs each replica reserves (1).")
@click.option("--ray-chunk-size", type=int, help="ray: requests sent to a replica at a time (default: "
              "--batch-size for transformers, 16 for vllm, --max-concurrency or 32 for openai).")
@click.option("--ray-max-restarts", type=int, help="ray: replicas started anew after worker deaths (3).")
@click.option("--out", help="Run directory (default: runs/<run id>).")
@click.option("--resume", is_flag=True, help="Finish the run in --out: completed samples are kept.")
@click.option("--config", "config_file", type=click.Path(), help="TOML or JSON file of the same settings.")
@click.option("--quiet", is_flag=True, help="No progress (a bar on a terminal, else a log line on stderr every "
              "tenth of the work or 30 s, with rate and ETA).")
def eval_command(suites: tuple[str, ...], data_dirs: tuple[str, ...], image_size: str | None, resume: bool,
             config_file: str | None, quiet: bool, **flags: Any) -> None:
    """Evaluate a model on suites; prints the run directory.

    With no arguments it runs the embedded default: the tiny offline model on synth_charts + synth_arith.

    Example: harness eval --model Qwen/Qwen2.5-VL-7B-Instruct --suite mathvista_testmini --limit 100
    """
    from harness.config import EvalConfig
    from harness.progress import default_mode
    from harness.runner import run_eval
    from harness.runstore import RunDir

    given: dict[str, Any] = {k: v for k, v in flags.items() if k in _EVAL_FIELDS and v is not None}
    if suites:
        given["suites"] = list(suites)
    if data_dirs:
        given["data_dir"] = parse_data_dirs(data_dirs)
    if image_size:
        given["image_size"] = _parse_image_size(image_size)
    settings: dict[str, Any] = EvalConfig.from_file(config_file) if config_file else {}
    if resume and given.get("out") and RunDir(given["out"]).exists():
        stored = RunDir(given["out"]).read_manifest()
        if stored.get("imported"):
            raise ConfigError(f"{given['out']} was imported from {stored['imported'].get('tool')}'s logs; it has "
                              "nothing to resume")
        # A resumed run keeps its own settings; flags given again must agree with them (checked later).
        settings = {**{k: v for k, v in stored["config"].items() if k not in _PLACEMENT_FIELDS}, **settings}
    cfg = EvalConfig.from_dict({**settings, **given}, source=config_file or "flags")
    path = run_eval(cfg, resume=resume, progress=default_mode(quiet), echo=lambda m: click.echo(m, err=True))
    click.echo(str(path))


@click.command("suites")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def suites_command(as_json: bool) -> None:
    """List the suites with their splits, sizes, sources and scoring notes.

    Example: harness suites
    """
    from suites import SUITES

    rows = [{"name": s.name, "version": s.version, "splits": s.splits, "default_split": s.default_split,
             "source": s.source, "breakdowns": list(s.breakdowns), "variants": list(s.variants),
             "description": s.description, "notes": s.notes, "data_dir_help": s.data_dir_help}
            for s in SUITES.values()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Column, Table

    table = Table("version", "splits (items)", "source", "description")
    table.columns.insert(0, Column("suite", no_wrap=True))
    for r in rows:
        splits = ", ".join(f"{k} ({v:,})" for k, v in r["splits"].items())
        table.add_row(r["name"], r["version"], splits, r["source"], r["description"])
    Console().print(table)


@click.command("show")
@click.argument("run", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON (the metrics file of a finished run).")
def show_command(run: str, as_json: bool) -> None:
    """Print a run's metrics table.

    A run that is running, unfinished, duplicated or stopped with an error says so first, on stderr,
    and its numbers are computed from the records present (partial).

    Example: harness show runs/20261120-101500-tiny-qwen2_5_vl-1a2b
    """
    from harness.report_text import metrics_table
    from harness.run_state import read_run

    manifest, metrics, state = read_run(run)
    if state.line:
        click.echo(f"warning: {state.line}", err=True)
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
        return
    label = None if state.finished else state.kind.upper() + (
        "" if state.completeness["complete"] else ", PARTIAL NUMBERS")
    metrics_table(manifest, metrics, state=label)


@click.command("rescore")
@click.argument("run", type=click.Path())
@click.option("--scoring", type=click.Choice(["strict", "official"]),
              help="Make this the run's scoring mode (recorded in the manifest); default: the run's own.")
@judge_options
@click.option("--request-timeout", "request_timeout_s", type=float, default=600.0, show_default=True,
              help="judge: seconds one attempt of a request may take.")
@click.option("--max-retries", type=int, default=6, show_default=True,
              help="judge: retries on 429, 5xx, timeouts and dropped connections.")
@click.option("--retry-backoff", "retry_backoff_s", type=float, default=1.0, show_default=True,
              help="judge: the first wait before a retry, in seconds, doubled each time.")
@click.option("--quiet", is_flag=True, help="No progress of the judge's calls.")
def rescore_command(run: str, scoring: str | None, **judge_flags: Any) -> None:
    """Re-extract and re-score every record from its response, then recompute the metrics.

    With --judge, an LLM judge then reads the answers the rules could not (every answer with
    --judge-all); its verdicts go beside the rules' and its calls are cached, so a second rescore pays
    nothing. Without --judge, verdicts of an earlier judge pass are kept.

    An unfinished or duplicated run is rescored too; its metrics file says `complete: false` and a
    warning says why (finish or repair it with `harness eval --out RUN --resume`).

    Example: harness rescore runs/20261120-101500-tiny-qwen2_5_vl-1a2b --scoring official
    Example: harness rescore runs/20261120-101500-tiny-qwen2_5_vl-1a2b --judge http://127.0.0.1:8001/v1
    """
    from harness.progress import default_mode
    from harness.report_text import metrics_table
    from harness.runner import rescore
    from harness.runstore import RunDir

    quiet = judge_flags.pop("quiet")
    metrics = rescore(run, echo=lambda m: click.echo(m, err=True), judge=_judge_settings(judge_flags),
                      progress=default_mode(quiet), scoring=scoring)
    complete = metrics["completeness"]["complete"]
    metrics_table(RunDir(run).read_manifest(), metrics, state=None if complete else "PARTIAL NUMBERS")


def _judge_settings(flags: dict[str, Any]) -> Any:
    """JudgeSettings from rescore's flags (checked as eval's config checks them), or None without --judge."""
    from harness.config import EvalConfig
    from harness.llm_judge import JudgeSettings

    given = {k: v for k, v in flags.items() if v is not None}
    cfg = EvalConfig.from_dict({"model": "judge", **given}, source="flags")
    return JudgeSettings.from_config(cfg)


@click.command("score")
@click.option("--suite", required=True, help="Suite whose official output format the file is in.")
@click.option("--predictions", required=True, type=click.Path(), help="Prediction file (official format).")
@click.option("--field", type=click.Choice(["extraction", "response"]), default="extraction", show_default=True,
              help="Score the stored extraction (official path) or extract from the raw response.")
@click.option("--data-dir", help="Local copy of the data set, where the file lacks answer fields.")
@click.option("--scoring", type=click.Choice(["strict", "official"]), default="strict", show_default=True,
              help="With --field response: the harness's strict verdict, or the official pipeline's fallbacks.")
@click.option("--json", "as_json", is_flag=True, help="Print the full JSON, per-item verdicts included.")
def score_command(suite: str, predictions: str, field: str, data_dir: str | None, scoring: str,
                  as_json: bool) -> None:
    """Score an external prediction file in a benchmark's official output format.

    Items that lack the field are scored as no answer (wrong), and the count is printed.

    Example: harness score --suite mathvista_testmini --predictions output_bard.json --field response --scoring official
    """
    from suites import get_suite

    s = get_suite(suite)
    if s.score_predictions is None:
        raise ConfigError(f"suite {suite} has no official prediction-file format to score")
    result = s.score_predictions(Path(predictions), field, Path(data_dir) if data_dir else None, scoring)
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{suite}: accuracy {result['accuracy']:.4f} on {result['n']} items (--field {field}, scoring "
               f"{result['scoring']}); no answer: {result['no_answer']}")
    if result["missing_field"]:
        click.echo(f"note: {result['missing_field']} item(s) have no {field!r} field: scored as no answer", err=True)
