#!/usr/bin/env bash
# tests/gpu/carry_parts.sh — files too large for one call to the GPU host (the
# device tool moves at most 64 MiB a call, the working tree included) cut into
# parts that successive calls carry into an ignored folder the warm machine keeps
# (build/keep), then joined there. Used for the default model (98 MB) and the
# largest refdata models; see docs/BENCHMARKS.md, session 5.
#   tests/gpu/carry_parts.sh [-s MB] FILE...
# writes build/carry1, build/carry2, ... (each at most MB, default 60, less the
# working tree's size, which every call also moves) and prints the calls to make,
# one after the other without pausing (the machine is released ~30 s after a
# call): call i carries build/carry<i> and moves it into build/keep; the last
# joins each FILE back at its own path under the repository (check: sha256).
# Move tracked files you do not need there (e.g. tests/data/refdata) out of the
# tree during the carrying calls to leave more room per call.
set -euo pipefail
cd "$(dirname "$0")/../.."
mb=60
[ "${1:-}" = -s ] && { mb=$2; shift 2; }
[ $# -ge 1 ] || { echo "usage: $0 [-s MB] FILE..." >&2; exit 2; }
tree=$(python3 - <<'PY'
import os, subprocess
fs = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                    capture_output=True, check=True).stdout.split(b"\0")
print(sum(os.path.getsize(f) for f in fs if f and os.path.exists(f)))
PY
)
room=$((mb * 1000000 - tree))
[ "$room" -gt 1000000 ] || { echo "the working tree ($tree bytes) leaves no room under $mb MB" >&2; exit 1; }
rm -rf build/carry[0-9]*
n=0 used=$room
for f in "$@"; do
  size=$(stat -c %s "$f")
  off=0 part=0
  while [ "$off" -lt "$size" ]; do
    if [ "$used" -ge "$room" ]; then n=$((n + 1)) used=0; mkdir -p "build/carry$n"; fi
    take=$((room - used)); [ $((size - off)) -lt "$take" ] && take=$((size - off))
    name=$(echo "$f" | sed 's|/|__|g').part$(printf %03d "$part")
    dd if="$f" of="build/carry$n/$name" bs=1M iflag=skip_bytes,count_bytes skip="$off" count="$take" status=none
    off=$((off + take)) used=$((used + take)) part=$((part + 1))
  done
done
echo "tree $tree bytes; $n calls of at most $room bytes of parts:"
for i in $(seq "$n"); do
  echo "  call $i: carry [\"build/carry$i\"], command: mkdir -p build/keep && mv build/carry$i/* build/keep/"
done
echo "  then, in the call that runs the work (nothing carried, or under the limit):"
for f in "$@"; do
  echo "    mkdir -p \"$(dirname "$f")\" && cat build/keep/$(echo "$f" | sed 's|/|__|g').part* >\"$f\" && sha256sum \"$f\"  # $(sha256sum "$f" | cut -c1-16)"
done
