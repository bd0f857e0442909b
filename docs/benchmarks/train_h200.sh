#!/usr/bin/env bash
# Training at real size on one H200: the engines and rollout generators side by side. One
# phase per call:
#   bash docs/benchmarks/train_h200.sh env|models|row ROW|qwen3 ROW|table|server RESULTS_DIR
# ROW is one of: unsloth16 (Unsloth 16-bit + fast_inference), unsloth4 (Unsloth 4-bit + fast_inference),
# trl-vllm (TRL use_vllm colocate), trl (TRL, rollouts by transformers generate).
#
#   res=docs/benchmarks/train-h200; for r in trl trl-vllm unsloth16 unsloth4; do bash $0 row $res $r; done
#   bash $0 table $res          # rows.md: step time, rollout tokens/s, peak memory, ratios to the trl row
#   bash $0 qwen3 $res unsloth16    # the fastest row again on Qwen3-VL-8B's published sizes
# Results: docs/benchmarks/train_h200.md. On a two-GPU machine two rows can run at once,
# one per GPU (CUDA_VISIBLE_DEVICES=0 / 1); give each row 5 minutes (the Unsloth rows more: compilation).
#
# Every row trains the same thing: random-weight Qwen2.5-VL-7B (harness random-model, MODEL7), GSPO,
# synth_charts train (the first 512 items, images resized to 448x448), 12 optimizer steps (11 timed after
# the first, which carries compilation, engine start-up and the first weight sync), each step generating
# 8 prompts x 4 completions of 128 tokens (steps_per_generation 1: every step has its rollouts, so step
# times compare; the run is on-policy, which costs the same as off-policy), LoRA r 16 on the language
# model, gradient checkpointing, bf16, the same seed; vLLM rows give vLLM GPU_UTIL (0.5) of the GPU.
# A random model never stops early, so every completion is 128 tokens on every row.
# Each row is its own `harness train` process on GPU 0 (Unsloth patches TRL at import; peaks must not
# carry over); its numbers come from the checkpoint's training log (trainers/bench.py --summarize): mean
# wall time per step after the first, rollout tokens/s (rollout/* in the log), torch's peak allocated
# memory and the driver's (NVML) peak in use, vLLM's pool included.
#
# Needs, beside the locked environment: vllm (`uv sync --locked --extra vllm`: 0.31) and, for the
# unsloth rows, `pip install --no-deps unsloth==2026.10.9 unsloth_zoo==2026.10.9` plus their small
# dependencies (docs/training.md, Engines). MODEL7 / MODEL8 default to /tmp/m7b and /tmp/m8b.
# SUITE (default synth_charts) changes the training data: synth_arith is text only, which TRL's server mode
# can serve from a vLLM older than 0.30 (image prompts there need 0.30 or newer).
set -uo pipefail
phase=$1; res=$2; row=${3:-}; mkdir -p "$res"
M7=${MODEL7:-/tmp/m7b}; M8=${MODEL8:-/tmp/m8b}; C=${CHECKPOINTS:-/tmp/train-ck}
H="python3 -m harness.cli"
export PYTHONUNBUFFERED=1 CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}
COMMON=(--algo gspo --suite "${SUITE:-synth_charts}" --split train --max-steps 12 --set limit=512 --set "image_size=[448,448]"
        --set per_device_train_batch_size=32 --set num_generations=4 --set steps_per_generation=1
        --set max_completion_length=128 --set max_seq_length=2048 --set learning_rate=1e-5 --set seed=0
        --set gradient_checkpointing=true --set "gpu_memory_utilization=${GPU_UTIL:-0.5}")
row_flags() {
  case $1 in
    unsloth16) echo "--engine unsloth --set fast_inference=true" ;;
    unsloth4)  echo "--engine unsloth --load-in-4bit --set fast_inference=true" ;;
    trl-vllm)  echo "--engine trl --set use_vllm=true" ;;
    trl)       echo "--engine trl" ;;
    *) echo "unknown row $1 (unsloth16, unsloth4, trl-vllm, trl)" >&2; exit 2 ;;
  esac
}
timed() { local s=$EPOCHREALTIME; "$@"; local rc=$?; echo "wall $(awk "BEGIN{print $EPOCHREALTIME - $s}") s rc $rc: $*"; }
train_row() {  # MODEL NAME ROW: one row, its log and small record files kept in $res
  local model=$1 name=$2 flags; flags=$(row_flags "$3") || exit 2
  # shellcheck disable=SC2086
  timed $H train --model "$model" "${COMMON[@]}" $flags --out "$C/$name" --force 2> "$res/$name.log" | tail -1
  tail -3 "$res/$name.log"
  cp "$C/$name/checkpoint.json" "$res/$name.checkpoint.json" 2>/dev/null
  cp "$C/$name/train_log.jsonl" "$res/$name.train_log.jsonl" 2>/dev/null
}
case $phase in
env)
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import importlib.metadata as m
for p in ('torch','transformers','trl','peft','vllm','unsloth','unsloth_zoo','bitsandbytes'):
    try: print(p, m.version(p))
    except m.PackageNotFoundError: print(p, 'not installed')" | tee "$res/packages.txt" ;;
models)
  [ -f "$M7/config.json" ] || timed $H random-model "$M7" --arch qwen2_5_vl_7b
  [ -f "$M8/config.json" ] || timed $H random-model "$M8" --arch qwen3_vl_8b ;;
row)    # one row on Qwen2.5-VL-7B
  train_row "$M7" "$row" "$row" ;;
qwen3)  # a row (the fastest of the 7B rows) on Qwen3-VL-8B
  train_row "$M8" "qwen3-$row" "$row" ;;
table)
  args=()
  for name in trl trl-vllm unsloth16 unsloth4 qwen3-unsloth16 qwen3-unsloth4 qwen3-trl-vllm qwen3-trl; do
    [ -f "$C/$name/train_log.jsonl" ] && args+=(--summarize "$name=$C/$name")
  done
  base=trl; [ -f "$C/trl/train_log.jsonl" ] || base=${args[1]%%=*}   # ratios to trl, or to the first row
  python3 -m trainers.bench --out "$res" --base "$base" "${args[@]}" ;;
server)  # TRL's server mode on a machine with two GPUs: vLLM on GPU 1, training on GPU 0 (not a table row)
  CUDA_VISIBLE_DEVICES=1 python3 -m trl.scripts.vllm_serve --model "$M7" --port 8011 --gpu-memory-utilization 0.8 \
      --max-model-len 2048 > "$res/server-vllm.log" 2>&1 &
  server=$!
  for _ in $(seq 120); do curl -sf http://127.0.0.1:8011/health >/dev/null && break; sleep 5; done
  CUDA_VISIBLE_DEVICES=0 timed $H train --model "$M7" "${COMMON[@]}" --engine trl --set use_vllm=true \
      --set vllm_mode=server --set vllm_server_base_url=http://127.0.0.1:8011 --out "$C/trl-server" --force \
      2> "$res/trl-server.log" | tail -1
  tail -3 "$res/trl-server.log"
  cp "$C/trl-server/checkpoint.json" "$res/trl-server.checkpoint.json" 2>/dev/null
  cp "$C/trl-server/train_log.jsonl" "$res/trl-server.train_log.jsonl" 2>/dev/null
  kill "$server"; wait "$server" ;;  # the server's GPU is free for the next row
*) echo "unknown phase $phase" >&2; exit 2 ;;
esac
