#!/usr/bin/env bash
# The GPU measurements of docs/benchmarks/h200.md, one phase per call:
#   bash docs/benchmarks/h200.sh model|eval|evalbare|mathvista|sweep|sweep-dp RESULTS_DIR
# MODEL (default /tmp/m7b) is a random-weight model of Qwen2.5-VL-7B's published sizes; MV_ANNOT is the
# MathVista repository's data/testmini.json. Single-GPU phases run on GPU 0 only.
set -uo pipefail
phase=$1; res=$2; mkdir -p "$res"
M=${MODEL:-/tmp/m7b}; R=${RUNS:-/tmp/runs}; B=${BENCHES:-/tmp/benches}
H="python3 -m harness.cli"
export VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1
SYNTH="--suite synth_charts --split train --image-size 448x448 --max-new-tokens 256 --ignore-eos"
keep_run() { for f in manifest.json metrics.json; do cp "$R/$1/$f" "$res/$1.$f" 2>/dev/null; done; }
keep_bench() { cp "$B/$1/bench.json" "$res/$1.bench.json" 2>/dev/null; }
timed() { local s=$EPOCHREALTIME; "$@"; local rc=$?; echo "wall $(awk "BEGIN{print $EPOCHREALTIME - $s}") s rc $rc: $*"; }
case $phase in
model)
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  [ -f "$M/config.json" ] || timed $H random-model "$M" --arch qwen2_5_vl_7b ;;
eval)  # harness eval (vllm) vs bare LLM.generate on the same 1,024 prompts; transformers on 128
  export CUDA_VISIBLE_DEVICES=0
  timed $H eval --backend vllm --model "$M" $SYNTH --limit 1024 --gpu-memory-utilization 0.85 --out "$R/vllm-1024" --quiet
  keep_run vllm-1024
  timed $H bench --model "$M" --backend vllm --concurrency 1024 $SYNTH --limit 1024 --gpu-memory-utilization 0.85 \
      --repeat 2 --warmup 0 --bare --out "$B/bare-1024" --quiet
  keep_bench bare-1024
  timed $H eval --backend transformers --batch-size 32 --dtype bfloat16 --model "$M" $SYNTH --limit 128 --out "$R/tf-128" --quiet
  keep_run tf-128 ;;
evalbare)  # eval and bare again, ROUNDS (3) rounds on one engine after a full warm-up pass
  export CUDA_VISIBLE_DEVICES=0
  timed python3 docs/benchmarks/eval_vs_bare.py "$M" /tmp/evalbare 1024 "${ROUNDS:-3}"
  cp /tmp/evalbare/eval_vs_bare.json "$res/" ;;
mathvista)  # 1,000 MathVista-shaped items, 512 forced output tokens, the whole command timed
  export CUDA_VISIBLE_DEVICES=0
  python3 docs/benchmarks/mathvista_shaped.py "$MV_ANNOT" /tmp/mvshaped >/dev/null
  timed $H eval --backend vllm --model "$M" --suite mathvista_testmini --data-dir /tmp/mvshaped --max-new-tokens 512 \
      --ignore-eos --gpu-memory-utilization 0.85 --out "$R/mathvista-1000" --quiet
  keep_run mathvista-1000 ;;
sweep)  # concurrency 1..256, bf16 and fp8, one GPU
  export CUDA_VISIBLE_DEVICES=0
  timed $H bench --model "$M" --backend vllm --quantization "${QUANT:-none,fp8}" --concurrency 1,2,4,8,16,32,64,128,256 $SYNTH \
      --limit 512 --waves 2 --repeat 3 --warmup 1 --gpu-memory-utilization 0.85 --out "$B/sweep-${QUANT:-none,fp8}" --quiet
  keep_bench "sweep-${QUANT:-none,fp8}"; cp "$B/sweep-${QUANT:-none,fp8}"/*.png "$res/" 2>/dev/null ;;
sweep-dp)  # data parallelism 2 on two GPUs, the same sweep (bf16)
  timed $H bench --model "$M" --backend vllm --data-parallel-size 2 --concurrency 1,2,4,8,16,32,64,128,256,512 $SYNTH \
      --limit 1024 --waves 2 --repeat 3 --warmup 1 --gpu-memory-utilization 0.85 --out "$B/sweep-dp2" --quiet
  keep_bench sweep-dp2 ;;
esac
