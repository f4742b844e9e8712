#!/usr/bin/env python3
"""ncu_summary.py CSV — kernel time by kernel name from `ncu --metrics
gpu__time_duration.sum --csv` output: calls, total and mean microseconds, share.
Decode-step kernels (GEMV with one token, split-KV attention, ...) and prefill
kernels (cuBLAS) appear under their own names."""
import csv
import io
import re
import sys
from collections import defaultdict


def short(name):
    name = re.sub(r"\(.*", "", name) if not name.startswith("void") else name
    name = re.sub(r"^void ", "", name)
    name = re.sub(r"\(.*$", "", name)
    return name[:90]


def main():
    text = open(sys.argv[1], errors="replace").read()
    start = text.find('"ID"')
    if start < 0:
        print("no ncu rows in", sys.argv[1])
        return
    rows = list(csv.DictReader(io.StringIO(text[start:])))
    tot = defaultdict(float)
    cnt = defaultdict(int)
    for r in rows:
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        v = float(r["Metric Value"].replace(",", ""))
        unit = r.get("Metric Unit", "ns")
        us = v / 1000 if unit in ("nsecond", "ns") else v if unit in ("usecond", "us") else v * 1000
        k = short(r["Kernel Name"])
        tot[k] += us
        cnt[k] += 1
    all_us = sum(tot.values())
    print("%-90s %6s %10s %8s %6s" % ("kernel", "calls", "total us", "mean us", "share"))
    for k in sorted(tot, key=lambda k: -tot[k])[:30]:
        print("%-90s %6d %10.1f %8.2f %5.1f%%" % (k, cnt[k], tot[k], tot[k] / cnt[k], 100 * tot[k] / all_us))
    print("%-90s %6d %10.1f" % ("all kernels", sum(cnt.values()), all_us))


if __name__ == "__main__":
    main()
