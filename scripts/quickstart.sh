#!/usr/bin/env bash
# quickstart.sh — the main job on a fresh machine: install what is missing, build
# ridge, fetch the default model (SmolLM2-135M-Instruct, Q4_1) and generate text
# with it: a plain continuation, then one chat turn through its chat template.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh release
scripts/fetch-model.sh
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
echo "== ridge run ==" >&2
build/release/ridge run -m "$model" -p "Once upon a time" -n 64 --seed 42
echo "== ridge chat ==" >&2
build/release/ridge chat -m "$model" -p "Give me three tips for staying healthy." -n 160 --temp 0 </dev/null
