#!/usr/bin/env bash
# A judge pass over 1,000 items on one GPU, timed: `vllm serve` with a random-weight model of
# Qwen2.5-VL-7B's published sizes in the background, then `harness rescore --judge` over a finished run
# of 1,000 synth_arith items whose answers the rules cannot read (so every item is judged: two calls
# each, extract then judge), then the same rescore again, answered from the judge cache.
#   bash docs/benchmarks/judge_vllm.sh RESULTS_DIR
# MODEL (default /tmp/m7b) is built with `harness random-model` when missing. CONCURRENCY: judge requests
# in flight (default 256). The model's replies are random text, so the verdicts mean nothing; the time,
# the calls and the tokens do. RESULTS_DIR gets the server's log, the run's manifest and metrics, and
# judge-timing.json.
set -uo pipefail
res=${1:?usage: judge_vllm.sh RESULTS_DIR}; mkdir -p "$res"
M=${MODEL:-/tmp/m7b}; R=${RUNS:-/tmp/runs}; CACHE=${JUDGE_CACHE:-/tmp/judge-cache-$$}
H="python3 -m harness.cli"
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0} PYTHONUNBUFFERED=1 VLLM_USE_FLASHINFER_SAMPLER=0
timed() { local s=$EPOCHREALTIME; "$@"; local rc=$?; echo "wall $(awk "BEGIN{print $EPOCHREALTIME - $s}") s rc $rc: $*"; return $rc; }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
[ -f "$M/config.json" ] || timed $H random-model "$M" --arch qwen2_5_vl_7b || exit 1

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
template=(); [ -f "$M/chat_template.jinja" ] && template=(--chat-template "$M/chat_template.jinja")
serve_started=$EPOCHREALTIME
vllm serve "$M" --served-model-name judge-7b-random --host 127.0.0.1 --port "$PORT" --max-model-len 4096 \
    --gpu-memory-utilization 0.85 "${template[@]}" > "$res/vllm-serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null' EXIT
python3 - "$PORT" "$server" <<'PY' || { tail -40 "$res/vllm-serve.log"; exit 1; }
import sys, time, urllib.request
port, pid = sys.argv[1], int(sys.argv[2])
for _ in range(900):  # the engine loads and compiles: up to 15 minutes
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2).read()
        sys.exit(0)
    except OSError:
        try:
            state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        except OSError:
            state = "gone"
        if state in ("Z", "gone"):
            sys.exit(1)  # the server died: stop waiting
        time.sleep(1)
sys.exit(1)
PY
echo "server up after $(awk "BEGIN{print $EPOCHREALTIME - $serve_started}") s"

# 1,000 finished items with answers no rule can read (a scripted run: no model, seconds)
echo '{"default": "I would rather not say which one it is."}' > "$res/script.json"
rm -rf "$R/judge-1000"
$H eval --backend scripted --model "$res/script.json" --suite synth_arith --split train --limit 1000 \
    --out "$R/judge-1000" --quiet || exit 1

judge=(--judge "http://127.0.0.1:$PORT/v1" --judge-cache "$CACHE" --judge-max-concurrency "${CONCURRENCY:-256}")
timed $H rescore "$R/judge-1000" "${judge[@]}" > "$res/rescore-1.txt" 2>&1; cat "$res/rescore-1.txt"
cp "$R/judge-1000/manifest.json" "$res/judge-1000.first.manifest.json"
cp "$R/judge-1000/metrics.json" "$res/judge-1000.first.metrics.json"
timed $H rescore "$R/judge-1000" "${judge[@]}" > "$res/rescore-2.txt" 2>&1; cat "$res/rescore-2.txt"
cp "$R/judge-1000/manifest.json" "$res/judge-1000.cached.manifest.json"

python3 - "$res" <<'PY'
import json, sys
from pathlib import Path
res = Path(sys.argv[1])
out = {}
for name in ("first", "cached"):
    judge = json.loads((res / f"judge-1000.{name}.manifest.json").read_text())["llm_judge"]
    req = judge["requests"]
    out[name] = {"wall_s": judge["wall_s"], "calls_sent": req["requests"], "calls_from_cache": judge["calls_from_cache"],
                 "retries": req["retries"], "failed": req["failed"], "prompt_tokens": req["prompt_tokens"],
                 "completion_tokens": req["completion_tokens"],
                 "calls_per_s": round(req["requests"] / judge["wall_s"], 2) if judge["wall_s"] else None,
                 "completion_tokens_per_s": round(req["completion_tokens"] / judge["wall_s"], 1) if judge["wall_s"] else None}
out["items"] = json.loads((res / "judge-1000.first.metrics.json").read_text())["suites"]["synth_arith"]["llm_judge"]
(res / "judge-timing.json").write_text(json.dumps(out, indent=2))
print(json.dumps(out, indent=2))
PY
