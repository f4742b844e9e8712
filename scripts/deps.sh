#!/usr/bin/env bash
# deps.sh — install the Debian packages ridge builds and tests with (idempotent).
# Runs apt-get only when something is missing; uses sudo when not root.
set -euo pipefail
pkgs=(build-essential cmake pkg-config python3 python3-pip libpcre2-dev libcjson-dev libcmocka-dev clang libclang-rt-14-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}" >&2
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
