#!/usr/bin/env bash
# bench_serve.sh [MODEL] — serving benchmarks with `ridge serve` and `ridge loadgen`
# (results go to docs/BENCHMARKS.md, "Serving"). Sections (SECTIONS, default
# "batching sharegpt prefix"; "burst" on request):
#   batching  continuous vs static batching (--static-batching) on a mixed-length
#             trace (N_MIX requests, prompts 16-64 tokens, outputs 8-128 tokens),
#             all arriving at once (saturation) and as a Poisson process at RATE/s;
#   sharegpt  continuous batching on ShareGPT-shaped lengths (`loadgen --sharegpt`:
#             lognormal, mean prompt 161, mean output 338 tokens), N_SHAREGPT
#             requests at once: throughput at saturation and KV slot waste;
#   prefix    prefix cache on vs off (--no-prefix-cache): N_PREFIX requests sharing a
#             1000-token prompt prefix + 16 unique tokens, 8 output tokens, Poisson
#             at PREFIX_RATE/s;
#   burst     the same prefix, 16 requests at once.
# Every run starts a fresh server, so its /metrics cover that run alone: KV slot
# waste, and the sum of each engine step's predicted floor for its batch mix
# (rg_plan_step_floor over the saved roofline) against the steps' measured time.
# Variants are interleaved, each run REPS times (default 1); a table of medians
# over the reps comes last.
#
# Environment (defaults for the CPU; GPU=1 switches to GPU-sized ones):
#   RIDGE=build/release/ridge  MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf
#   GPU=1 (serve --gpu)  MAX_SEQS (16; GPU 64)  KV_BLOCKS (1024; GPU: serve's default)
#   N_MIX (48; GPU 256)  RATE (1.5; GPU 16)  N_SHAREGPT (24; GPU 256)
#   N_PREFIX (8)  PREFIX_RATE (0.2; GPU 2)  VOCAB (20000: prompt ids in [100, VOCAB))
#   SERVE_OPTS (extra options for every `ridge serve`, e.g. "--cache-type bf16")
# Without a saved roofline (~/.cache/ridge/roofline.json; on the GPU one measured
# by a CUDA build) `ridge roofline --quick` runs first.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${MODEL:-${1:-models/SmolLM2-135M-Instruct.Q4_1.gguf}}
ridge=${RIDGE:-build/release/ridge}
reps=${REPS:-1}
gpu=${GPU:-0}
if [ "$gpu" = 1 ]; then
  max_seqs=${MAX_SEQS:-64} n_mix=${N_MIX:-256} rate=${RATE:-16} n_sharegpt=${N_SHAREGPT:-256}
  prefix_rate=${PREFIX_RATE:-2} kv_blocks=${KV_BLOCKS:-}
  gpu_opt=(--gpu)
else
  max_seqs=${MAX_SEQS:-16} n_mix=${N_MIX:-48} rate=${RATE:-1.5} n_sharegpt=${N_SHAREGPT:-24}
  prefix_rate=${PREFIX_RATE:-0.2} kv_blocks=${KV_BLOCKS:-1024}
  gpu_opt=()
fi
n_prefix=${N_PREFIX:-8}
vocab=${VOCAB:-20000}
read -r -a extra <<<"${SERVE_OPTS:-}"
common=(--max-seqs "$max_seqs" --max-queue 4096 ${kv_blocks:+--kv-blocks "$kv_blocks"} "${gpu_opt[@]}" "${extra[@]}")
port=$((20000 + RANDOM % 20000))
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

roof=${XDG_CACHE_HOME:-$HOME/.cache}/ridge/roofline.json
if [ ! -f "$roof" ] || { [ "$gpu" = 1 ] && grep -q '"gpu":[[:space:]]*null' "$roof"; }; then
  echo "no saved roofline for this device: ridge roofline --quick"
  "$ridge" roofline --quick >/dev/null
fi

# run KEY NAME SERVER_OPTS -- LOADGEN_OPTS: one server, one load; numbers to $out/KEY.N
run() {
  local key=$1 name=$2; shift 2
  local sopts=() lopts=()
  while [ "$1" != "--" ]; do sopts+=("$1"); shift; done; shift
  lopts=("$@")
  "$ridge" serve -m "$model" --port "$port" "${common[@]}" "${sopts[@]}" 2>"$out/serve.log" &
  local pid=$!
  until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do
    kill -0 "$pid" 2>/dev/null || { echo "ridge serve failed:"; cat "$out/serve.log"; exit 1; }
    sleep 0.2
  done
  echo "== $name: serve ${sopts[*]} | loadgen ${lopts[*]} | load average $(cut -d' ' -f1 /proc/loadavg)"
  local f=$out/$key.$(ls "$out" | grep -c "^$key\.") rc=0
  "$ridge" loadgen --url "http://127.0.0.1:$port" --vocab "$vocab" "${lopts[@]}" | tee "$f.lg" || rc=$?
  curl -s "http://127.0.0.1:$port/metrics" | grep -E "^ridge_(kv_slot_waste_ratio|preemptions_total|prefix_cache_hit_rate|engine_steps_total|engine_step_seconds_total|engine_step_floor_seconds_total|engine_roofline_fraction|engine_steps_compute_bound_total) " | tee "$f.m"
  kill -INT "$pid"; wait "$pid" || true
  [ "$rc" = 0 ] || { echo "loadgen failed ($rc)"; exit 1; }
  # one line of numbers: req/s tok/s ttft_mean ttft_p50 ttft_p99 itl_p50 itl_p99 wall_s waste floor_s step_s hit
  awk '/^requests/ {wall=$7} /^throughput/ {rs=$2; ts=$4}
       /^TTFT/ {tm=$4; t50=$6; t99=$10} /^ITL/ {i50=$4; i99=$8}
       END {print rs, ts, tm, t50, t99, i50, i99, wall}' "$f.lg" >"$f"
  awk '/^ridge_kv_slot_waste_ratio/ {w=$2} /^ridge_engine_step_floor_seconds_total/ {fl=$2}
       /^ridge_engine_step_seconds_total/ {st=$2} /^ridge_prefix_cache_hit_rate/ {h=$2}
       END {print w, fl, st, h}' "$f.m" >>"$f"
}

echo "host: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores$([ "$gpu" = 1 ] && nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | sed 's/^/, GPU /'); $(date -u +%Y-%m-%dT%H:%MZ); model $model; $ridge"
sections=${SECTIONS:-batching sharegpt prefix}
mix=(--n "$n_mix" --prompt-len 16:64 --output-len 8:128 --seed 3)
sharegpt=(--n "$n_sharegpt" --sharegpt --seed 11)
shared=(--n "$n_prefix" --rate "$prefix_rate" --shared-prefix 1000 --prompt-len 16 --output-len 8 --seed 5)
burst=(--n 16 --shared-prefix 1000 --prompt-len 16 --output-len 8 --seed 7)
for r in $(seq "$reps"); do
  if [[ " $sections " == *" batching "* ]]; then
    run cont_once "continuous, at once #$r" --no-prefix-cache -- "${mix[@]}"
    run stat_once "static, at once #$r" --no-prefix-cache --static-batching -- "${mix[@]}"
    run cont_rate "continuous, $rate/s #$r" --no-prefix-cache -- "${mix[@]}" --rate "$rate"
    run stat_rate "static, $rate/s #$r" --no-prefix-cache --static-batching -- "${mix[@]}" --rate "$rate"
  fi
  [[ " $sections " == *" sharegpt "* ]] && run sharegpt "ShareGPT lengths, at once #$r" --no-prefix-cache -- "${sharegpt[@]}"
  if [[ " $sections " == *" prefix "* ]]; then
    run prefix_on "prefix cache on #$r" -- "${shared[@]}"
    run prefix_off "prefix cache off #$r" --no-prefix-cache -- "${shared[@]}"
  fi
  if [[ " $sections " == *" burst "* ]]; then
    run burst_on "burst, prefix cache on #$r" -- "${burst[@]}"
    run burst_off "burst, prefix cache off #$r" --no-prefix-cache -- "${burst[@]}"
  fi
done

# med KEY COLUMN: the median over the reps of one column (1-based) of $out/KEY.N
med() {
  [ -n "$(ls "$out" | grep -E "^$1\.[0-9]+$")" ] || { echo "-"; return; }
  for f in "$out/$1".[0-9]*; do [[ $f == *.lg || $f == *.m ]] || tr '\n' ' ' <"$f" | awk -v c="$2" '{print $c}'; done |
    sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b}'; }
pct() { awk -v a="$1" 'BEGIN {if (a == "-") print "-"; else printf "%.1f%%", 100 * a}'; }
frac() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.1f%%", 100 * a / b}'; }

echo
echo "summary (median of $reps rep(s); times in ms; floor = predicted step floors / measured step time):"
printf "%-24s %8s %9s %9s %9s %8s %8s %7s %7s\n" run "req/s" "out tok/s" "TTFT p50" "TTFT p99" "ITL p50" "ITL p99" "KV waste" "floor"
for k in cont_once stat_once cont_rate stat_rate sharegpt prefix_on prefix_off burst_on burst_off; do
  [ "$(med $k 1)" = "-" ] && continue
  printf "%-24s %8s %9s %9s %9s %8s %8s %7s %7s\n" "$k" "$(med $k 1)" "$(med $k 2)" "$(med $k 4)" "$(med $k 5)" \
    "$(med $k 6)" "$(med $k 7)" "$(pct "$(med $k 9)")" "$(frac "$(med $k 10)" "$(med $k 11)")"
done
[ "$(med cont_once 1)" = "-" ] || echo "continuous / static, output tok/s at once: $(ratio "$(med cont_once 2)" "$(med stat_once 2)")x;" \
  "TTFT p50 static / continuous at $rate/s: $(ratio "$(med stat_rate 4)" "$(med cont_rate 4)")x"
[ "$(med prefix_on 1)" = "-" ] ||
  echo "prefix cache: mean TTFT off / on: $(ratio "$(med prefix_off 3)" "$(med prefix_on 3)")x (hit rate $(pct "$(med prefix_on 12)"))"
echo "saturation (all at once): predicted floor / measured step time: mixed $(frac "$(med cont_once 10)" "$(med cont_once 11)")," \
  "ShareGPT $(frac "$(med sharegpt 10)" "$(med sharegpt 11)"); floor / loadgen wall time:" \
  "mixed $(frac "$(med cont_once 10)" "$(med cont_once 8)"), ShareGPT $(frac "$(med sharegpt 10)" "$(med sharegpt 8)")"
