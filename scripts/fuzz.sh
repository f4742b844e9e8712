#!/usr/bin/env bash
# fuzz.sh [SECONDS] — run each libFuzzer target for SECONDS (default 60), seeded
# from its corpus in tests/corpus/. Findings are written to build/fuzz/findings/
# and fail the script; add each crasher to the corpus as a regression case.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
scripts/deps.sh
scripts/build.sh fuzz
mkdir -p build/fuzz/findings
status=0
for target in build/fuzz/fuzz/fuzz_*; do
  name=$(basename "$target")
  corpus=tests/corpus/${name#fuzz_}
  work=build/fuzz/corpus-${name#fuzz_}
  mkdir -p "$work"
  echo "== $name for ${secs}s (seed corpus $corpus) ==" >&2
  "$target" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix=build/fuzz/findings/"$name"- -print_final_stats=1 "$work" "$corpus" 2>&1 | tail -n 12 || status=1
done
exit $status
