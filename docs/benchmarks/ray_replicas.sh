#!/usr/bin/env bash
# One suite on two vLLM replicas through Ray vs one replica, on a two-GPU machine.
# Each configuration runs ROUNDS (2) times into fresh run directories; the whole command is
# timed (cluster start and model loads included) and so is its generation alone (the manifest's
# sessions[].generation_s: first request handed over to last completion back).
#
#   uv sync --extra ray --extra vllm
#   MODEL=/tmp/m7b bash docs/benchmarks/ray_replicas.sh RESULTS_DIR
#
# MODEL (default /tmp/m7b): e.g. a random-weight Qwen2.5-VL-7B (`harness random-model /tmp/m7b --arch
# qwen2_5_vl_7b`); LIMIT (1024) synth_charts prompts at 448x448 with 256 forced output tokens, so both
# configurations generate exactly the same tokens. The speed-up is the one-replica generation time over
# the two-replica one (target: at least 1.8x); RESULTS_DIR/summary.txt lists every round.
set -uo pipefail
res=${1:?RESULTS_DIR}; mkdir -p "$res"
M=${MODEL:-/tmp/m7b}; R=${RUNS:-/tmp/ray-runs}; LIMIT=${LIMIT:-1024}; ROUNDS=${ROUNDS:-2}
H="python3 -m harness.cli"
export VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1
SUITE="--backend vllm --model $M --suite synth_charts --split train --image-size 448x448 --limit $LIMIT \
--max-new-tokens 256 --ignore-eos --gpu-memory-utilization 0.85 --quiet"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$res/gpus.csv"
[ -f "$M/config.json" ] || $H random-model "$M" --arch qwen2_5_vl_7b

run() {  # run NAME ARGS...: one timed eval, its manifest and metrics kept, one summary line
  local name=$1; shift
  rm -rf "$R/$name"
  local started=$EPOCHREALTIME
  $H eval $SUITE --out "$R/$name" "$@"
  local rc=$? wall
  wall=$(awk "BEGIN{printf \"%.1f\", $EPOCHREALTIME - $started}")
  cp "$R/$name/manifest.json" "$res/$name.manifest.json" 2>/dev/null
  cp "$R/$name/metrics.json" "$res/$name.metrics.json" 2>/dev/null
  python3 - "$R/$name" "$name" "$wall" "$rc" <<'EOF' | tee -a "$res/summary.txt"
import json, sys
path, name, wall, rc = sys.argv[1:]
try:
    session = json.load(open(f"{path}/manifest.json"))["measurements"]["sessions"][-1]
    tokens = json.load(open(f"{path}/metrics.json"))["throughput"]["output_tokens"]
except (OSError, KeyError, ValueError) as exc:
    print(f"{name}: rc {rc}, no result ({exc})")
    raise SystemExit
generation = session["generation_s"]
ray = session.get("ray") or {}
print(f"{name}: rc {rc}, command {wall} s, load {session.get('load_time_s')} s, generation {generation} s, "
      f"{tokens / generation:.0f} output tokens/s, replicas {ray.get('replicas', 1)}, "
      f"worker deaths {ray.get('worker_deaths', 0)}")
EOF
}

for round in $(seq 1 "$ROUNDS"); do
  CUDA_VISIBLE_DEVICES=0 run "one-replica-$round"                       # one engine, one process, GPU 0
  run "ray-two-replicas-$round" --ray --ray-replicas 2                  # a local cluster, one engine per GPU
done
python3 - "$res/summary.txt" <<'EOF' | tee -a "$res/summary.txt"
import re, statistics, sys
rows = [line for line in open(sys.argv[1]) if "generation" in line]
def seconds(prefix):
    return [float(re.search(r"generation ([\d.]+) s", r)[1]) for r in rows if r.startswith(prefix)]
one, two = seconds("one-replica"), seconds("ray-two-replicas")
if one and two:
    print(f"speed-up (median generation time, one replica / two replicas through Ray): "
          f"{statistics.median(one) / statistics.median(two):.2f}x over {len(one)} and {len(two)} rounds")
EOF
