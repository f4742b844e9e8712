#!/usr/bin/env bash
# tests/gpu/ncu_kernels.sh — Nsight Compute's full report on the decode kernels
# that bound ridge's decode speed, one launch each from bench_cuda (streaming
# from HBM, clocks as the GPU runs them): the 1B shape's gate GEMV (short rows)
# and down GEMV (long rows), and split-KV attention at batch 1, context 4096.
# Reports go to $OUT (or build/gpu-out); a summary of the headline metrics is printed.
set -uo pipefail
cd "$(dirname "$0")/../.."
B=${RIDGE_GPU_BUILD:-build/gpu}
O=${OUT:-build/gpu-out}
mkdir -p "$O"
. tests/gpu/env.sh
run_ncu() { # NAME KERNEL_REGEX SKIP SECTIONS...
  local name=$1 kre=$2 skip=$3; shift 3
  ncu --set full --clock-control none -k "regex:$kre" --launch-skip "$skip" -c 1 \
    "$B/bench/bench_cuda" 0 "$@" >"$O/ncu-$name.txt" 2>&1
  echo "== $name =="
  grep -E "^ +(Duration|Memory Throughput|DRAM Throughput|Achieved Occupancy|Theoretical Occupancy|Registers Per Thread|Block Limit Registers|Waves Per SM|Compute \(SM\) Throughput|Issue Slots Busy|Warp Cycles Per Issued Instruction|Eligible Warps Per Scheduler|L1/TEX Hit Rate|L2 Hit Rate) " "$O/ncu-$name.txt" | head -n 16
  grep -E "stall|Stall" "$O/ncu-$name.txt" | grep -iE "est|cause|on average" | head -n 4
}
run_ncu gemv-bf16-2048x8192 gemv 10 gemv=BF16:2048:8192
run_ncu gemv-bf16-8192x2048 gemv 10 gemv=BF16:8192:2048
run_ncu gemv-q4_0-4096x14336 gemv 10 gemv=Q4_0:4096:14336
run_ncu attn-b1-4096 attn_decode 10 attn
