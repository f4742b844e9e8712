"""cuda_timing.py — the timing rule every PyTorch peer uses, so their figures
compare with bench_cuda's: 3 warm-up calls, then the median of 5 timings of n
back-to-back calls between CUDA events. Returns milliseconds per call."""
import torch


def median_ms(fn, n=20):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(5):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        for _ in range(n):
            fn()
        e1.record()
        torch.cuda.synchronize()
        ts.append(e0.elapsed_time(e1) / n)
    return sorted(ts)[2]
