"""`harness eval --backend vllm` against a bare `LLM.generate`, on one engine, each pass from cold caches.

    python docs/benchmarks/eval_vs_bare.py MODEL OUT_DIR [N_PROMPTS]

Loads one vLLM engine, warms it up on 16 prompts of synth_charts' test split, then, each time after
emptying the engine's prefix and image caches: (1) a whole `run_eval` (prompts built, records written
and scored as `harness eval` does) over the first N_PROMPTS (default 1,024) items of synth_charts'
train split at 448x448 with 256 forced output tokens; (2) one bare `LLM.generate` over the same
prompts (chat template and decoded images prepared before the clock starts, as a user of vLLM would).
Prints and writes OUT_DIR/eval_vs_bare.json: each one's output tokens/s and the ratio.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from harness.backends import GenerationParams
from harness.backends.vllm_backend import VllmBackend
from harness.bench import BenchConfig, bench_prompts
from harness.config import EvalConfig
from harness.runner import run_eval
from harness.runstore import RunDir

SHAPE = {"suite": "synth_charts", "image_size": (448, 448), "max_new_tokens": 256, "ignore_eos": True}


def main(model: str, out: str, n: int) -> None:
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    backend = VllmBackend(model, dtype="bfloat16", gpu_memory_utilization=0.85)
    params = GenerationParams(max_new_tokens=256, ignore_eos=True)
    warm, _ = bench_prompts(BenchConfig(model=model, backends=["vllm"], limit=16, split="test", **SHAPE))
    backend.generate(warm, params)

    backend.reset_caches()
    cfg = EvalConfig(model=model, backend="vllm", suites=["synth_charts"], split="train", limit=n,
                     image_size=(448, 448), max_new_tokens=256, ignore_eos=True, dtype="bfloat16",
                     out=str(out_dir / "run"))
    started = time.perf_counter()
    run = run_eval(cfg, backend=backend, progress="off")
    eval_wall = time.perf_counter() - started
    metrics = RunDir(run).read_metrics()

    backend.reset_caches()
    prompts, _ = bench_prompts(BenchConfig(model=model, backends=["vllm"], limit=n, split="train", **SHAPE))
    completions = backend.generate_bare(prompts, params)
    bare_s = completions[0].latency_s
    bare_tps = sum(c.n_output_tokens for c in completions) / bare_s
    harness_tps = metrics["throughput"]["output_tokens_per_s"]
    result = {"n_prompts": n, "eval_output_tokens_per_s": harness_tps, "eval_generation_s": metrics["throughput"]["wall_s"],
              "eval_command_s": eval_wall, "bare_output_tokens_per_s": bare_tps, "bare_s": bare_s,
              "eval_over_bare": harness_tps / bare_tps, "load_time_s": backend.load_time_s}
    print(json.dumps(result, indent=2))
    (out_dir / "eval_vs_bare.json").write_text(json.dumps(result, indent=2) + "\n")
    backend.close()


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__.strip().splitlines()[2].strip())
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) == 4 else 1024)
