"""Side-by-side training benchmark of the two engines: step time and peak GPU memory.

    python -m trainers.bench --out bench-train --steps 8            # unsloth and trl, both archs, both algos

The tiny models get a short supervised warm start first (as in the demo), so that the suites' rewards
vary within groups and every LoRA matrix receives a gradient.

Each configuration runs `harness train` in a fresh process (Unsloth patches TRL at import, and peak
memory must not carry over), with identical settings apart from the engine; the numbers come from the
checkpoint's training log: the median step time over the steps after the first (which carries
compilation and warm-up), the first step's time, and the peak allocated GPU memory.

`--summarize NAME=CHECKPOINT_DIR` (repeatable) tabulates training runs made elsewhere instead, e.g. the
7B rows of docs/benchmarks/train_h200.sh, each as a ratio to the `--base` row:

    python -m trainers.bench --out res --summarize trl=ck/trl --summarize trl-vllm=ck/trl-vllm --base trl

Over the steps after the first: the mean wall time per step (the training log's clock, so generation,
backward, optimizer and logging), TRL's step_time, samples/s (completions trained per second: the
global batch, per device x processes x accumulation, over the mean step time) and rollout tokens/s
(completion tokens over the time spent generating them, `rollout/*` in the log, every process's);
peak memory as torch allocated it and as the driver saw it (NVML over the visible GPUs, vLLM's pool
included). A run on several processes (docs/benchmarks/train_2gpu.sh) shows its world size and
global batch, so samples/s compares runs of different batches.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness.checkpoints import read_checkpoint, read_train_log, world_size_of

ARCHS = ("qwen2_5_vl", "qwen3_vl")
COMMON = ["--suite", "synth_charts", "--set", "per_device_train_batch_size=8", "--set", "num_generations=4",
          "--set", "max_completion_length=32", "--set", "learning_rate=1e-4", "--set", "limit=256",
          "--set", "gradient_checkpointing=false"]


def summarize(checkpoint: Path) -> dict[str, Any]:
    rows = read_train_log(checkpoint) or []
    steps = [r for r in rows if "step_time" in r]
    times = [r["step_time"] for r in steps]
    peaks = [r["peak_gpu_memory_mib"] for r in rows if r.get("peak_gpu_memory_mib") is not None]
    info = read_checkpoint(checkpoint) or {}
    timed = steps[1:]  # the first step carries compilation, engine warm-up and the first weight sync
    walls = [b["wall_s"] - a["wall_s"] for a, b in itertools.pairwise(steps)]
    config = info.get("config") or {}
    batch = (info.get("distributed") or {}).get("global_batch_size") or (  # older records: one process
        (config.get("per_device_train_batch_size") or 0) * (config.get("gradient_accumulation_steps") or 1))
    mean_wall = round(statistics.mean(walls), 3) if walls else None
    rollout_s = sum(r.get("rollout/seconds") or 0.0 for r in timed)
    rollout_tokens = sum(r.get("rollout/completion_tokens") or 0.0 for r in timed)
    return {"steps": len(times), "first_step_s": round(times[0], 3) if times else None,
            "median_step_s": round(statistics.median(times[1:]), 3) if len(times) > 1 else None,
            "timed_steps": len(timed), "mean_step_wall_s": mean_wall,
            "world_size": world_size_of(info), "global_batch_size": batch or None,
            "samples_per_s": round(batch / mean_wall, 2) if batch and mean_wall else None,
            "mean_step_time_s": round(statistics.mean(times[1:]), 3) if len(times) > 1 else None,
            "rollout_tokens_per_s": round(rollout_tokens / rollout_s, 1) if rollout_s else None,
            "rollout_share": round(rollout_s / sum(times[1:]), 3) if rollout_s and sum(times[1:]) else None,
            "peak_allocated_mib": max(peaks) if peaks else None,
            "nvml_peak_used_mib": (info.get("train_metrics") or {}).get("nvml_peak_used_mib"),
            "train_runtime_s": (info.get("train_metrics") or {}).get("train_runtime"),
            "lora_all_nonzero": (info.get("lora") or {}).get("all_nonzero"), "engine": info.get("engine"),
            "generation_kwargs": (info.get("grpo_config") or {}).get("generation_kwargs"),
            "use_vllm": (info.get("grpo_config") or {}).get("use_vllm", False), "status": info.get("status")}


def compare(named: dict[str, Path], base: str) -> tuple[list[dict[str, Any]], str]:
    """Each run's summary and its ratios to the `base` row (step time: base / row, so above 1 is faster;
    samples/s, tokens/s and memory: row / base); and the Markdown table of them."""
    rows = [{"name": name, **summarize(path)} for name, path in named.items()]
    ref = next((r for r in rows if r["name"] == base), None)
    if ref is None:
        raise SystemExit(f"--base {base} is not one of the rows: {', '.join(named)}")

    def ratio(a: Any, b: Any) -> float | None:
        return round(a / b, 2) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None

    for r in rows:
        r["speedup_vs_base"] = ratio(ref["mean_step_wall_s"], r["mean_step_wall_s"])
        r["samples_per_s_vs_base"] = ratio(r["samples_per_s"], ref["samples_per_s"])
        r["rollout_tokens_per_s_vs_base"] = ratio(r["rollout_tokens_per_s"], ref["rollout_tokens_per_s"])
        r["nvml_peak_vs_base"] = ratio(r["nvml_peak_used_mib"], ref["nvml_peak_used_mib"])
    head = ("| row | engine | vLLM | timed steps | processes | global batch | mean step s (wall) | speed-up vs " + base
            + " | samples/s | vs " + base + " | TRL step_time s | rollout tokens/s | vs " + base + " | rollout share | "
            "peak allocated MiB | NVML peak MiB | vs " + base + " |\n|" + "---|" * 17 + "\n")
    body = "".join(
        f"| {r['name']} | {r['engine']} | {'yes' if r['use_vllm'] else 'no'} | {r['timed_steps']} | "
        f"{r['world_size']} | {r['global_batch_size']} | {r['mean_step_wall_s']} | {r['speedup_vs_base']} | "
        f"{r['samples_per_s']} | {r['samples_per_s_vs_base']} | {r['mean_step_time_s']} | {r['rollout_tokens_per_s']} | "
        f"{r['rollout_tokens_per_s_vs_base']} | {r['rollout_share']} | {r['peak_allocated_mib']} | "
        f"{r['nvml_peak_used_mib']} | {r['nvml_peak_vs_base']} |\n" for r in rows)
    return rows, head + body


def run_one(out: Path, engine: str, arch: str, algo: str, steps: int, model: str) -> dict[str, Any]:
    ckpt = out / f"{engine}-{arch}-{algo}"
    cmd = [sys.executable, "-m", "harness.cli", "train", "--engine", engine, "--algo", algo, "--model", model,
           "--max-steps", str(steps), "--out", str(ckpt), *COMMON]
    started = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = round(time.monotonic() - started, 1)
    (out / f"{ckpt.name}.log").write_text(done.stdout + done.stderr)
    row = {"engine": engine, "arch": arch, "algo": algo, "process_wall_s": wall, "rc": done.returncode}
    if done.returncode == 0:
        row.update(summarize(ckpt))
    else:
        row["error"] = (done.stderr.strip().splitlines() or ["?"])[-1][:300]
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    head = ("| arch | algo | engine | first step s | median step s | peak allocated MiB | process wall s | "
            "LoRA all non-zero |\n|---|---|---|---|---|---|---|---|\n")
    body = "".join(f"| {r['arch']} | {r['algo']} | {r['engine']} | {r.get('first_step_s', '-')} | "
                   f"{r.get('median_step_s', '-')} | {r.get('peak_allocated_mib', '-')} | {r['process_wall_s']} | "
                   f"{r.get('lora_all_nonzero', r.get('error', '-'))} |\n" for r in rows)
    return head + body


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--engines", default="unsloth,trl")
    parser.add_argument("--archs", default=",".join(ARCHS))
    parser.add_argument("--algos", default="gspo,grpo")
    parser.add_argument("--warm-start", type=int, default=150,
                        help="supervised warm-start steps first, so that the rewards vary (0: the random model)")
    parser.add_argument("--summarize", action="append", default=[], metavar="NAME=CHECKPOINT_DIR",
                        help="tabulate these finished runs (no training here); repeatable")
    parser.add_argument("--base", help="with --summarize: the row the ratios are to (default: the first)")
    args = parser.parse_args(argv)
    if args.summarize:
        named = dict(item.split("=", 1) for item in args.summarize)
        rows, table = compare({k: Path(v) for k, v in named.items()}, args.base or next(iter(named)))
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "rows.json").write_text(json.dumps(rows, indent=2) + "\n")
        (args.out / "rows.md").write_text(table)
        print(table)
        return
    from harness.tiny_model import default_tiny_model

    args.out.mkdir(parents=True, exist_ok=True)
    models = {arch: str(default_tiny_model(arch)) for arch in args.archs.split(",")}
    if args.warm_start:
        from suites import get_suite
        from suites.base import LoadOptions
        from trainers.warm_start import warm_start

        items = get_suite("synth_charts").load(LoadOptions(split="train"))[:400]
        models = {arch: str(warm_start(path, args.out / f"warm-{arch}", items, steps=args.warm_start))
                  for arch, path in models.items()}
    rows = []
    for arch in args.archs.split(","):
        for algo in args.algos.split(","):
            for engine in args.engines.split(","):
                rows.append(run_one(args.out, engine, arch, algo, args.steps, models[arch]))
                print(json.dumps(rows[-1]), flush=True)
    # Named apart from harness bench's directory file (harness/benchstore.py), which `harness report`
    # would otherwise try to read as one.
    (args.out / "engines.json").write_text(json.dumps(rows, indent=2) + "\n")
    (args.out / "engines.md").write_text(markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    main()
