"""`harness eval --backend vllm` against a bare `LLM.generate`, on one engine, each pass from cold caches.

    python docs/benchmarks/eval_vs_bare.py MODEL OUT_DIR [N_PROMPTS [ROUNDS]]

Loads one vLLM engine and warms it up with one bare pass over synth_charts' test split (its 200 items,
all in flight at once; up to N_PROMPTS), so that the passes measured next do not pay for first-time
kernel and graph work at large batches. Then
ROUNDS (default 3) rounds over the first N_PROMPTS items of the train split (448x448, 256 forced output
tokens), each pass after emptying the engine's prefix and image caches, in an order that alternates
from round to round (eval then bare, bare then eval, ...) so that a drift over the session does not
favour one path:
- eval: a whole `run_eval` (images decoded and thumbnails written ahead of the engine, prompts built,
  records scored and written, as `harness eval` does); its throughput is its generation window's;
- bare: one `LLM.generate` over the same prompts, whose chat template and decoded images are prepared
  before its clock starts, as a user of vLLM would.
For every pass it also records how long the engine was being fed (first to last `add_request`).
Prints and writes OUT_DIR/eval_vs_bare.json: every pass, and per path the mean, min and max of output
tokens/s; the ratio eval / bare of the means and its range over the rounds.
"""

from __future__ import annotations

import json
import statistics
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


class FeedClock:
    """Wraps the engine's add_request: when the first and the last request of a pass were handed over."""

    def __init__(self, engine):
        self.engine, self.add = engine, engine.add_request
        self.first = self.last = None
        engine.add_request = self

    def __call__(self, *args, **kwargs):
        now = time.perf_counter()
        self.first = self.first or now
        out = self.add(*args, **kwargs)
        self.last = time.perf_counter()
        return out

    def take(self) -> float:
        span, self.first, self.last = (self.last - self.first) if self.first else 0.0, None, None
        return round(span, 3)


def eval_pass(backend: VllmBackend, model: str, out: Path, n: int) -> dict:
    cfg = EvalConfig(model=model, backend="vllm", suites=["synth_charts"], split="train", limit=n,
                     image_size=(448, 448), max_new_tokens=256, ignore_eos=True, dtype="bfloat16", out=str(out))
    started = time.perf_counter()
    run_eval(cfg, backend=backend, progress="off")
    wall = time.perf_counter() - started
    run = RunDir(out)
    throughput, session = run.read_metrics()["throughput"], run.read_manifest()["measurements"]["sessions"][-1]
    return {"output_tokens_per_s": throughput["output_tokens_per_s"], "generation_s": throughput["wall_s"],
            "run_eval_s": round(wall, 3), "prepare_s": session.get("prepare_s")}


def bare_pass(backend: VllmBackend, prompts, params: GenerationParams) -> dict:
    completions = backend.generate_bare(prompts, params)
    seconds = completions[0].latency_s
    return {"output_tokens_per_s": sum(c.n_output_tokens for c in completions) / seconds, "generation_s": seconds}


def spread(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values), "n": len(values)}


def main(model: str, out: str, n: int, rounds: int) -> None:
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    backend = VllmBackend(model, dtype="bfloat16", gpu_memory_utilization=0.85)
    params = GenerationParams(max_new_tokens=256, ignore_eos=True)
    warm, _ = bench_prompts(BenchConfig(model=model, backends=["vllm"], limit=n, split="test", **SHAPE))
    warm_s = bare_pass(backend, warm, params)["generation_s"]
    prompts, _ = bench_prompts(BenchConfig(model=model, backends=["vllm"], limit=n, split="train", **SHAPE))
    feed = FeedClock(backend.llm.llm_engine)
    paths = ["eval", "bare"]
    passes = []
    for r in range(rounds):
        for path in paths if r % 2 == 0 else list(reversed(paths)):
            backend.reset_caches()
            if path == "bare":
                result = bare_pass(backend, prompts, params)
            else:
                result = eval_pass(backend, model, out_dir / f"run-{r}", n)
            passes.append({"round": r, "path": path, **result, "feed_s": feed.take()})
            print(json.dumps(passes[-1]), flush=True)
    tps = {p: [x["output_tokens_per_s"] for x in passes if x["path"] == p] for p in paths}
    per_round = [e / b for e, b in zip(tps["eval"], tps["bare"], strict=True)]
    result = {"n_prompts": n, "rounds": rounds, "load_time_s": backend.load_time_s, "warmup_s": warm_s,
              "passes": passes, "output_tokens_per_s": {p: spread(v) for p, v in tps.items()},
              "eval_over_bare": statistics.fmean(tps["eval"]) / statistics.fmean(tps["bare"]),
              "eval_over_bare_per_round": spread(per_round)}
    print(json.dumps({k: v for k, v in result.items() if k != "passes"}, indent=2))
    (out_dir / "eval_vs_bare.json").write_text(json.dumps(result, indent=2) + "\n")
    backend.close()


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4, 5):
        sys.exit(__doc__.strip().splitlines()[2].strip())
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 1024,
         int(sys.argv[4]) if len(sys.argv) > 4 else 3)
