"""ceilings.py — the GPU's two ceilings, measured with PyTorch in the same call as
the benchmarks they scale: device copy bandwidth (bytes read + written, 1 GiB
buffers) and the bf16 GEMM rate of cuBLAS (8192^3). Prints `copy_GBps X` and
`gemm_TFLOPs Y`."""
import torch

n = 1 << 30
a = torch.empty(n, dtype=torch.uint8, device="cuda")
b = torch.empty_like(a)
for _ in range(3):
    b.copy_(a)
torch.cuda.synchronize()
e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
e0.record()
for _ in range(10):
    b.copy_(a)
e1.record()
torch.cuda.synchronize()
print("copy_GBps %.1f" % (2 * n * 10 / (e0.elapsed_time(e1) * 1e-3) / 1e9))
del a, b
m = 8192
x = torch.randn(m, m, dtype=torch.bfloat16, device="cuda")
y = torch.randn(m, m, dtype=torch.bfloat16, device="cuda")
for _ in range(3):
    x @ y
torch.cuda.synchronize()
e0.record()
for _ in range(10):
    x @ y
e1.record()
torch.cuda.synchronize()
print("gemm_TFLOPs %.1f" % (2 * m**3 * 10 / (e0.elapsed_time(e1) * 1e-3) / 1e12))
