#!/usr/bin/env python3
"""sdpa_prefill.py — the PyTorch peer for ridge's prefill attention (bench_cuda's
"prefill" lines): torch.nn.functional.scaled_dot_product_attention on bf16 Q/K/V
of one sequence of L tokens, forced onto the cuDNN backend and onto the flash
backend in turn (torch.nn.attention.sdpa_kernel), causal and not, at the shapes
bench_cuda uses. Reports ms per call (median of 5 timings of N calls, CUDA
events) and TFLOP/s counting 4·L²·head_dim·n_head FLOPs non-causal and half of
that causal, as bench_cuda does. GQA runs natively (enable_gqa) where the
backend takes it, else over K/V expanded to every query head before timing
(same FLOPs; marked "kv expanded"). A backend that refuses a shape prints n/a.
Usage: python3 sdpa_prefill.py (needs a GPU)."""
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from cuda_timing import median_ms

SHAPES = [(128, 32, 8), (64, 32, 8), (64, 16, 16)]  # head_dim, query heads, KV heads
LENGTHS = [1024, 4096, 16384]


def run(backend, q, k, v, causal, n):
    """(ms, note) or (None, reason)."""
    note = ""
    with sdpa_kernel([backend]):
        try:
            fn = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=k.shape[1] != q.shape[1])
            fn()
        except (RuntimeError, TypeError):
            rep = q.shape[1] // k.shape[1]
            ke, ve = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
            fn = lambda: F.scaled_dot_product_attention(q, ke, ve, is_causal=causal)
            note = "kv expanded"
            try:
                fn()
            except RuntimeError as e:
                return None, str(e).splitlines()[0][:60]
        return median_ms(fn, n), note


def main():
    torch.manual_seed(0)
    print("torch %s, %s" % (torch.__version__, torch.cuda.get_device_name()))
    backends = [("cudnn", SDPBackend.CUDNN_ATTENTION), ("flash", SDPBackend.FLASH_ATTENTION)]
    for hd, nh, nkv in SHAPES:
        for L in LENGTHS:
            q = torch.randn(1, nh, L, hd, dtype=torch.bfloat16, device="cuda")
            k = torch.randn(1, nkv, L, hd, dtype=torch.bfloat16, device="cuda")
            v = torch.randn_like(k)
            for causal in (True, False):
                flops = 4.0 * L * L * hd * nh * (0.5 if causal else 1.0)
                for name, be in backends:
                    ms, note = run(be, q, k, v, causal, 5 if L >= 16384 else 20)
                    label = "prefill hd %3d heads %2d/%-2d L %5d %-10s torch-%-5s" % (
                        hd, nh, nkv, L, "causal" if causal else "non-causal", name)
                    if ms is None:
                        print("%s %9s ms %7s TFLOP/s  (%s)" % (label, "n/a", "n/a", note))
                    else:
                        print("%s %9.3f ms %7.1f TFLOP/s%s" % (label, ms, flops / (ms * 1e-3) / 1e12,
                                                              "  (" + note + ")" if note else ""))


if __name__ == "__main__":
    main()
