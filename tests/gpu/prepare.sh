#!/usr/bin/env bash
# tests/gpu/prepare.sh — build, on this (GPU-less) machine, the CUDA build that
# tests/gpu/run.sh runs on a GPU host: build/gpu (sm_90a, no -march=native, so it
# runs on any x86-64), and build/gpu-run with just its programs and lib/ holding the shared libraries the GPU
# host's image lacks (the Debian libraries ridge links: PCRE2, xxHash,
# libmicrohttpd and its TLS stack, cJSON). The C library, libstdc++ and the CUDA
# libraries are the host's own. Then, on the GPU host:
#   RIDGE_GPU_BUILD=build/gpu-run tests/gpu/run.sh   (carry build/gpu-run)
set -euo pipefail
cd "$(dirname "$0")/../.."
B=build/gpu
command -v nvcc >/dev/null || export CUDACXX=/usr/local/cuda/bin/nvcc
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release -DRIDGE_CUDA=ON -DRIDGE_CUDA_ARCHS="${RIDGE_CUDA_ARCHS:-90a}" \
  -DRIDGE_NATIVE=OFF -DRIDGE_TESTS=OFF >/dev/null
cmake --build "$B" -j"$(nproc)" 2>&1 | grep -E "error|warning|Built target ridge$" || true
[ -x "$B/ridge" ] && [ -x "$B/tests/gpu/test_cuda_ops" ] && [ -x "$B/bench/bench_cuda" ] || { echo "build failed" >&2; exit 1; }
R=build/gpu-run
rm -rf "$R" && mkdir -p "$R/lib" "$R/tests/gpu" "$R/bench"
cp "$B/ridge" "$R/" && cp "$B/tests/gpu/test_cuda_ops" "$R/tests/gpu/" && cp "$B/bench/bench_cuda" "$R/bench/"
ldd "$B/ridge" | awk '$3 ~ /^\// {print $3}' | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|ld-linux*|libstdc++*|libgcc_s*|libcuda*|libcublas*) ;;
    *) cp -L "$lib" "$R/lib/" ;;
  esac
done
strip "$R/ridge" "$R/tests/gpu/test_cuda_ops" "$R/bench/bench_cuda" 2>/dev/null || true
du -sh "$R" | awk '{print "build/gpu-run: " $1}'
