#!/usr/bin/env bash
# gen_smollm2_vectors.sh — regenerate tests/data/smollm2*.tok.out with llama.cpp
# (an independent implementation) from the inputs in tests/data/smollm2*.tok.inp.
#
# llama.cpp comes from the llama-cpp-python 0.3.36 source package (it vendors
# llama.cpp commit 0c1e57098bba43ac29e6e3b677cdceebdd22334f); only libllama and
# tests/tools/ref_tokenize.cpp are built (about 6 minutes on 2 cores).
#   usage: tests/tools/gen_smollm2_vectors.sh [WORK_DIR]   (default /tmp/ridge-llama-cpp)
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-/tmp/ridge-llama-cpp}
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
[ -s "$model" ] || scripts/fetch-model.sh
mkdir -p "$work"
if [ ! -d "$work/src" ]; then
  python3 -m pip download --quiet --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d "$work"
  tar -xzf "$work"/llama_cpp_python-0.3.36.tar.gz -C "$work"
  mv "$work"/llama_cpp_python-0.3.36/vendor/llama.cpp "$work/src"
fi
cmake -S "$work/src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TOOLS=OFF >/dev/null
cmake --build "$work/build" -j"$(nproc)" --target llama >/dev/null
lib=$(dirname "$(find "$work/build" -name 'libllama.so' | head -n 1)")
g++ -O1 -std=c++17 -I"$work/src/include" -I"$work/src/ggml/include" -o "$work/ref_tokenize" \
  tests/tools/ref_tokenize.cpp -L"$lib" -lllama -lggml -lggml-base -Wl,-rpath,"$lib"
# plain vectors: no BOS, special tokens not parsed (as tests/data/refdata/vocab); chat vectors: both on
"$work/ref_tokenize" "$model" tests/data/smollm2.tok.inp 0 0 > tests/data/smollm2.tok.out
"$work/ref_tokenize" "$model" tests/data/smollm2-special.tok.inp 1 1 > tests/data/smollm2-special.tok.out
echo "wrote tests/data/smollm2.tok.out and tests/data/smollm2-special.tok.out" >&2
