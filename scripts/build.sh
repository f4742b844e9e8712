#!/usr/bin/env bash
# build.sh KIND — configure and build one build tree under build/KIND:
#   release   -O3 -march=native (the default)
#   sanitize  ASan + UBSan, -O1 -g
#   fuzz      clang libFuzzer targets (ASan + UBSan)
#   cuda      release with the CUDA backend (needs nvcc; $RIDGE_CUDA_ARCHS, default "90a;80")
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-release}
jobs=$(nproc)
case "$kind" in
  release)  opts=(-DCMAKE_BUILD_TYPE=Release) ;;
  sanitize) opts=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" -DRIDGE_SANITIZE=ON -DRIDGE_NATIVE=OFF) ;;
  fuzz)     opts=(-DCMAKE_C_COMPILER=clang -DRIDGE_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  cuda)     opts=(-DCMAKE_BUILD_TYPE=Release -DRIDGE_CUDA=ON -DRIDGE_CUDA_ARCHS="${RIDGE_CUDA_ARCHS:-90a;80}") ;;
  *) echo "usage: scripts/build.sh release|sanitize|fuzz|cuda" >&2; exit 1 ;;
esac
if [ "$kind" = cuda ] && ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export CUDACXX=/usr/local/cuda/bin/nvcc
fi
cmake -S . -B "build/$kind" "${opts[@]}" >/dev/null
cmake --build "build/$kind" -j"$jobs"
