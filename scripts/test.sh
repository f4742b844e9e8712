#!/usr/bin/env bash
# test.sh — the whole test suite: install what is missing, fetch the default
# model, then build and run every test twice: optimized (release) and under
# AddressSanitizer + UndefinedBehaviorSanitizer. Any failure fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/fetch-model.sh
for kind in release sanitize; do
  echo "== $kind build ==" >&2
  scripts/build.sh "$kind"
  ctest --test-dir "build/$kind" --output-on-failure -j"$(nproc)" --timeout 900
done
echo "all tests passed (release and sanitize builds)" >&2
