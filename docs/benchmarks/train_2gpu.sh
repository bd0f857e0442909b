#!/usr/bin/env bash
# GRPO training on two GPUs against one: `harness train --num-processes 2`
# (data parallel through accelerate launch) and one process, the same settings per process, on a host
# with two H200s. One phase per call:
#   bash docs/benchmarks/train_2gpu.sh env|models|row ROW|table|server RESULTS_DIR
# ROW is one of: 1gpu (one process on GPU 0), 2gpu (two processes on GPUs 0 and 1, each with the 1gpu row's
# per-device batch: twice its global batch), 2gpu-same-global (two processes with half that per-device
# batch: the 1gpu row's global batch, so the step time is what changes), 2gpu-zero2 / 2gpu-zero3 (the
# 2gpu row under DeepSpeed ZeRO stage 2 / 3), 1gpu-vllm / 2gpu-vllm (the 1gpu / 2gpu row with rollouts
# from a vLLM engine colocated in each training process, given VLLM_UTIL (0.5) of its GPU). `server`
# (not a `row`, it starts the server itself) is the 1gpu row with its rollouts from TRL's vLLM server on
# GPU 1: set against 1gpu-vllm, it says whether a GPU of its own for vLLM is faster.
#
#   res=docs/benchmarks/train-2gpu; bash $0 env $res; bash $0 models $res
#   bash $0 row $res 1gpu; bash $0 row $res 2gpu; bash $0 table $res     # a few minutes a row
#   bash $0 row $res 2gpu-same-global; bash $0 table $res                 # the optional third row
#   export SUITE=synth_arith CHECKPOINTS=/tmp/ck-text    # the server phase against colocated vLLM, text data
#   bash $0 server $res-text; bash $0 row $res-text 1gpu-vllm; BASE=1gpu-vllm bash $0 table $res-text
#
# Every row trains the same thing: random-weight Qwen2.5-VL-7B (harness random-model, MODEL7), GRPO, the
# trl engine with rollouts by transformers generate (unless the row says vLLM), synth_charts train (the
# first 512 items, images resized to 448x448), 12 optimizer steps (11 timed after the first, which carries
# start-up), each process generating PER_DEVICE (16) completions a step: PER_DEVICE/4 prompts x 4
# completions of TOKENS (96) tokens (steps_per_generation 1: every step has its rollouts), LoRA r 16 on
# the language model, gradient checkpointing, bf16, the same seed. A random model never stops early:
# every completion is TOKENS long.
# Sized so that the two main rows finish in about 7 minutes together: train_h200.sh's trl row (32
# completions of 128 tokens, the same model and engine) measured 17.3 s a step, half of it generating;
# PER_DEVICE=32 TOKENS=128 gives its sizes (about 4-5 minutes a row).
# Each row is its own `harness train` call; its numbers come from the checkpoint's training log and record
# (trainers/bench.py --summarize): mean wall time per step after the first, samples/s (completions trained
# per second: the global batch, per device x processes, over the step time), rollout tokens/s over every
# process, peak memory (NVML: summed over the training processes' GPUs; the server row's vLLM server is on
# a GPU of its own, not counted). checkpoint.json's `distributed` says how many processes trained and on
# what global batch. The table's ratios are to the BASE row (default 1gpu).
#
# Needs the locked environment (accelerate comes with it); the harness may run from PYTHONPATH (no console
# script): `harness train --num-processes 2` starts accelerate's launcher itself and its processes run
# `python -m harness.cli`. The vLLM rows and `server` need vllm (`uv sync --locked --extra vllm`), the
# ZeRO rows deepspeed (`pip install deepspeed`). MODEL7 defaults to /tmp/m7b.
# SUITE (default synth_charts) changes the training data: synth_arith is text only, which TRL's server mode
# can serve from a vLLM older than 0.30 (image prompts there need 0.30 or newer); compare the server row
# with rows of the same SUITE, kept apart by CHECKPOINTS.
set -uo pipefail
phase=$1; res=$2; row=${3:-}; mkdir -p "$res"
M7=${MODEL7:-/tmp/m7b}; C=${CHECKPOINTS:-/tmp/train-2gpu-ck}; PER_DEVICE=${PER_DEVICE:-16}; TOKENS=${TOKENS:-96}
H="python3 -m harness.cli"; VLLM="--set use_vllm=true --set gpu_memory_utilization=${VLLM_UTIL:-0.5}"
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0}  # NVLink multicast is not needed by two GPUs
COMMON=(--algo grpo --engine trl --model "$M7" --suite "${SUITE:-synth_charts}" --split train --max-steps 12 --set limit=512
        --set "image_size=[448,448]" --set num_generations=4 --set steps_per_generation=1
        --set max_completion_length="$TOKENS" --set max_seq_length=2048 --set learning_rate=1e-5 --set seed=0
        --set gradient_checkpointing=true --set resume_every=0)
row_flags() {  # the GPUs a row sees, then its harness train flags
  case $1 in
    1gpu)             echo "0 --set per_device_train_batch_size=$PER_DEVICE" ;;
    2gpu)             echo "0,1 --num-processes 2 --set per_device_train_batch_size=$PER_DEVICE" ;;
    2gpu-same-global) echo "0,1 --num-processes 2 --set per_device_train_batch_size=$((PER_DEVICE / 2))" ;;
    2gpu-zero2)       echo "0,1 --num-processes 2 --deepspeed zero2 --set per_device_train_batch_size=$PER_DEVICE" ;;
    2gpu-zero3)       echo "0,1 --num-processes 2 --deepspeed zero3 --set per_device_train_batch_size=$PER_DEVICE" ;;
    1gpu-vllm)        echo "0 $VLLM --set per_device_train_batch_size=$PER_DEVICE" ;;
    2gpu-vllm)        echo "0,1 --num-processes 2 $VLLM --set per_device_train_batch_size=$PER_DEVICE" ;;
    *) echo "unknown row $1 (1gpu, 2gpu, 2gpu-same-global, 2gpu-zero2, 2gpu-zero3, 1gpu-vllm, 2gpu-vllm)" >&2
       exit 2 ;;
  esac
}
timed() { local s=$EPOCHREALTIME; "$@"; local rc=$?; echo "wall $(awk "BEGIN{print $EPOCHREALTIME - $s}") s rc $rc: $*"; }
keep() {  # NAME: the row's log and small record files, kept in $res
  cp "$C/$1/checkpoint.json" "$res/$1.checkpoint.json" 2>/dev/null
  cp "$C/$1/train_log.jsonl" "$res/$1.train_log.jsonl" 2>/dev/null
}
case $phase in
env)
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  nvidia-smi topo -m
  python3 -c "import importlib.metadata as m
for p in ('torch','transformers','trl','peft','accelerate','vllm','deepspeed'):
    try: print(p, m.version(p))
    except m.PackageNotFoundError: print(p, 'not installed')" | tee "$res/packages.txt" ;;
models)
  [ -f "$M7/config.json" ] || timed $H random-model "$M7" --arch qwen2_5_vl_7b ;;
row)
  spec=$(row_flags "$row") || exit 2
  gpus=${GPUS:-${spec%% *}}; flags=${spec#* }  # GPUS: a one-GPU row on another GPU, beside a second row
  # shellcheck disable=SC2086
  CUDA_VISIBLE_DEVICES=$gpus timed $H train "${COMMON[@]}" $flags --out "$C/$row" --force 2> "$res/$row.log" | tail -1
  grep -v "^\[rank" "$res/$row.log" | tail -3
  keep "$row" ;;
table)
  args=()
  for name in 1gpu 2gpu 2gpu-same-global 2gpu-zero2 2gpu-zero3 1gpu-vllm 2gpu-vllm server; do
    [ -f "$C/$name/train_log.jsonl" ] && args+=(--summarize "$name=$C/$name")
  done
  python3 -m trainers.bench --out "$res" --base "${BASE:-1gpu}" "${args[@]}" ;;
server)  # one training process on GPU 0, its rollouts from TRL's vLLM server on GPU 1
  CUDA_VISIBLE_DEVICES=1 python3 -m trl.scripts.vllm_serve --model "$M7" --port 8011 --gpu-memory-utilization 0.8 \
      --max-model-len 2048 > "$res/server-vllm.log" 2>&1 &
  server=$!
  for _ in $(seq 120); do curl -sf http://127.0.0.1:8011/health >/dev/null && break; sleep 5; done
  CUDA_VISIBLE_DEVICES=0 timed $H train "${COMMON[@]}" --set per_device_train_batch_size="$PER_DEVICE" \
      --set use_vllm=true --set vllm_mode=server --set vllm_server_base_url=http://127.0.0.1:8011 \
      --out "$C/server" --force 2> "$res/server.log" | tail -1
  tail -3 "$res/server.log"
  keep server
  kill "$server"; wait "$server" ;;  # the server's GPU is free for the next row
*) echo "unknown phase $phase" >&2; exit 2 ;;
esac
