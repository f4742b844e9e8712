#!/usr/bin/env bash
# deps.sh — install the Debian packages ridge builds and tests with (idempotent).
# Runs apt-get only when something is missing; uses sudo when not root.
set -euo pipefail
pkgs=(build-essential cmake pkg-config python3 python3-pip libpcre2-dev libcjson-dev libcmocka-dev libxxhash-dev libmicrohttpd-dev clang libclang-rt-14-dev)
# Optional: the server tests also drive `ridge serve` with the unmodified OpenAI
# Python client when it can be installed from PyPI; without it they use raw HTTP.
python3 -c "import openai" 2>/dev/null || python3 -m pip install --quiet --break-system-packages openai >/dev/null 2>&1 ||
  echo "deps: the optional openai Python package could not be installed" >&2
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}" >&2
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
