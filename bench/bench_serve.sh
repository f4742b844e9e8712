#!/usr/bin/env bash
# bench_serve.sh [MODEL] — serving benchmarks on this machine with `ridge serve`
# and `ridge loadgen` (results go to docs/BENCHMARKS.md, "Serving (CPU)"):
#   1. continuous vs static batching on mixed-length traces (48 requests, prompts
#      16-64 tokens, outputs 8-128 tokens, at most 16 sequences), all arriving at
#      once and as a Poisson process at 1.5 requests/s;
#   2. prefix cache on vs off with a shared 1000-token prompt prefix (8 requests,
#      Poisson arrivals at 0.2/s, 16 unique prompt tokens, 8 output tokens);
#   3. the same prefix with 16 requests arriving at once (a burst: the first
#      request computes the prefix, the others take its blocks as they are cached).
# Variants are interleaved and each is run REPS times (default 2); SECTIONS
# picks which of "batching prefix burst" run (default all).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
reps=${REPS:-2}
ridge=build/release/ridge
port=$((20000 + RANDOM % 20000))

run() { # NAME SERVER_OPTS -- LOADGEN_OPTS
  local name=$1; shift
  local sopts=() lopts=()
  while [ "$1" != "--" ]; do sopts+=("$1"); shift; done; shift
  lopts=("$@")
  "$ridge" serve -m "$model" --port "$port" "${sopts[@]}" 2>/dev/null &
  local pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
  echo "== $name: serve ${sopts[*]} | loadgen ${lopts[*]} | load average $(cut -d' ' -f1 /proc/loadavg)"
  "$ridge" loadgen --url "http://127.0.0.1:$port" "${lopts[@]}"
  curl -s "http://127.0.0.1:$port/metrics" | grep -E "^ridge_(kv_slot_waste_ratio|preemptions_total|prefix_cache_hit_rate|engine_steps_total) "
  kill -INT "$pid"; wait "$pid" || true
}

echo "host: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u +%Y-%m-%dT%H:%MZ); model $model"
sections=${SECTIONS:-batching prefix burst}
trace=(--n 48 --prompt-len 16:64 --output-len 8:128 --seed 3)
[[ " $sections " == *" batching "* ]] && for r in $(seq "$reps"); do
  run "continuous, at once #$r" --max-seqs 16 --kv-blocks 1024 --no-prefix-cache -- "${trace[@]}"
  run "static, at once #$r" --max-seqs 16 --kv-blocks 1024 --no-prefix-cache --static-batching -- "${trace[@]}"
  run "continuous, 1.5/s #$r" --max-seqs 16 --kv-blocks 1024 --no-prefix-cache -- "${trace[@]}" --rate 1.5
  run "static, 1.5/s #$r" --max-seqs 16 --kv-blocks 1024 --no-prefix-cache --static-batching -- "${trace[@]}" --rate 1.5
done
shared=(--n 8 --rate 0.2 --shared-prefix 1000 --prompt-len 16 --output-len 8 --seed 5)
[[ " $sections " == *" prefix "* ]] && for r in $(seq "$reps"); do
  run "prefix cache on #$r" --max-seqs 16 --kv-blocks 1024 -- "${shared[@]}"
  run "prefix cache off #$r" --max-seqs 16 --kv-blocks 1024 --no-prefix-cache -- "${shared[@]}"
done
burst=(--n 16 --shared-prefix 1000 --prompt-len 16 --output-len 8 --seed 7)
[[ " $sections " == *" burst "* ]] && for r in $(seq "$reps"); do
  run "burst, prefix cache on #$r" --max-seqs 16 --kv-blocks 1536 -- "${burst[@]}"
  run "burst, prefix cache off #$r" --max-seqs 16 --kv-blocks 1536 --no-prefix-cache -- "${burst[@]}"
done
true
