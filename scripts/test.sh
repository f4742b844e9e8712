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
# The CUDA backend must keep compiling where nvcc is present (CI has no GPU: the
# GPU tests run on a GPU host with tests/gpu/run.sh). One architecture keeps it
# within CI time on 2 cores.
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  echo "== cuda build (compile only) ==" >&2
  RIDGE_CUDA_ARCHS=90a scripts/build.sh cuda
fi
echo "all tests passed (release and sanitize builds)" >&2
