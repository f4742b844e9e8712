#!/usr/bin/env bash
# tests/gpu/ab.sh — interleaved A/B of decode levers on random-weight models made
# here with ridge synth (the GPU host is shared and drifts: every round runs each
# (model, lever) once, so the compared runs sit next to each other in time).
#   B=build/gpu-run tests/gpu/ab.sh ROUNDS "SHAPE:TYPE[:LAYERS] ..." "LEVER ..."
# A lever is "-" (the default), RIDGE_CUDA_X=V[,RIDGE_CUDA_Y=W] (environment) or a
# ridge bench flag such as --no-fuse. Prints, per model and lever, the median
# ms/token over the rounds, its fraction of the copy bandwidth ridge bench
# measured, the median prefill rate, and the ratio of each to the first lever's.
# AB_BENCH replaces the bench arguments (default: -p 512 -n 128 -r 1), e.g. the
# issue's prefill measure "-p 2048 -n 16 -r 3 -ub 2048". Logs: $OUT/ab-*.json.
set -uo pipefail
cd "$(dirname "$0")/../.."
B=${B:-build/gpu-run}
O=${OUT:-build/gpu-out}
rounds=${1:-3}
models=${2:-llama3.2-1b:bf16}
levers=${3:--}
mkdir -p "$O"
. tests/gpu/models.sh
for spec in $models; do use_model "$spec"; done
for r in $(seq "$rounds"); do
  for spec in $models; do
    use_model "$spec" || continue
    for lever in $levers; do
      envs=() flags=()
      case $lever in
      -) ;;
      --*) flags=("${lever//,/ }") ;;
      *) IFS=, read -ra envs <<<"$lever" ;;
      esac
      tag=$(echo "$spec-$lever" | tr -c 'A-Za-z0-9_.\n-' '_')
      env "${envs[@]}" "$B/ridge" bench -m "$f" --gpu ${AB_BENCH:--p 512 -n 128 -r 1} --cache-type bf16 --json ${flags[@]} \
        2>>"$O/ab-$tag.log" | tail -n 1 >>"$O/ab-$tag.json"
    done
  done
done
python3 - "$O" "$models" "$levers" <<'PY'
import json, statistics, sys, re
out, models, levers = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
print("%-22s %-30s %8s %6s %6s %9s %6s" % ("model", "lever", "ms/tok", "of bw", "ratio", "pf tok/s", "ratio"))
for spec in models:
    base = pbase = None
    for lever in levers:
        tag = re.sub(r"[^A-Za-z0-9_.\n-]", "_", "%s-%s" % (spec, lever))
        try:
            rs = [json.loads(l) for l in open("%s/ab-%s.json" % (out, tag)) if l.strip().startswith("{")]
        except OSError:
            rs = []
        if not rs:
            print("%-26s %-34s no result" % (spec, lever)); continue
        ms = statistics.median(1e3 / r["decode_tok_s"] for r in rs)
        fr = statistics.median(r["decode_roofline_fraction"] for r in rs)
        pf = statistics.median(r["prefill_tok_s"] for r in rs)
        base, pbase = base or ms, pbase or pf
        print("%-22s %-30s %8.3f %5.1f%% %6.3f %9.0f %6.3f (n=%d: %s | %s)" % (spec, lever, ms, 100 * fr, ms / base, pf,
              pf / pbase, len(rs), " ".join("%.3f" % (1e3 / r["decode_tok_s"]) for r in rs),
              " ".join("%.0f" % r["prefill_tok_s"] for r in rs)))
PY
