#!/usr/bin/env bash
# quickstart.sh — the main job on a fresh machine: install what is missing, build
# ridge, fetch the default model (SmolLM2-135M-Instruct, Q4_1) and show it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh release
scripts/fetch-model.sh
build/release/ridge info --no-metadata models/SmolLM2-135M-Instruct.Q4_1.gguf
build/release/ridge tokenize -m models/SmolLM2-135M-Instruct.Q4_1.gguf "Hello! ridge reads GGUF files."
