#!/usr/bin/env python3
"""sdpa_attention.py — the PyTorch peer for ridge's decode attention (bench_cuda):
torch.nn.functional.scaled_dot_product_attention on bf16 K/V, 32 query heads
over 8 KV heads (GQA), head_dim 128, one query token per sequence, at the batch
sizes and contexts bench_cuda uses. Reports microseconds per call (median of 5
timings of 20 calls, CUDA events) and GB/s over the K+V bytes, the same bytes
bench_cuda counts; then the same 20 calls recorded once as a CUDA graph and
replayed ("graphed": the per-call launch cost of the Python/PyTorch host path taken
out, as bench_cuda's graphed column takes out ridge's). Usage: python3
sdpa_attention.py (needs a GPU)."""
import torch
import torch.nn.functional as F

from cuda_timing import median_ms


def graphed_ms(fn, n=20):
    """Milliseconds per call of fn, n calls captured in one CUDA graph and replayed."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up off the capture, as torch.cuda.graph requires
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(n):
            fn()
    return median_ms(g.replay, n=5) / n


def main():
    torch.manual_seed(0)
    print("%-40s %10s %9s %10s %9s" % ("torch sdpa decode (bf16, 32/8, hd 128)", "us/call", "GB/s", "graphed us",
                                        "GB/s"))
    for batch, ctx in [(1, 4096), (1, 16384), (1, 32768), (16, 4096), (16, 16384)]:
        q = torch.randn(batch, 32, 1, 128, dtype=torch.bfloat16, device="cuda")
        k = torch.randn(batch, 8, ctx, 128, dtype=torch.bfloat16, device="cuda")
        v = torch.randn_like(k)
        call = lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
        us = 1e3 * median_ms(call)
        gus = 1e3 * graphed_ms(call)
        gb, ggb = (2 * k.numel() * 2 / (t * 1e-6) / 1e9 for t in (us, gus))
        print("%-40s %10.1f %9.1f %10.1f %9.1f" % ("batch %d, context %d" % (batch, ctx), us, gb, gus, ggb))


if __name__ == "__main__":
    main()
