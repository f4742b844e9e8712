/* probe_compute.h — this machine's peak arithmetic rates, the compute ceilings
 * of the roofline: f32 fused multiply-add with the widest SIMD the CPU has, and
 * the int8 dot product the quantized matmul kernels use (maddubs, or VNNI where
 * present). Each thread of the pool runs independent chains (more chains than
 * the FMA latency × ports needs, so throughput, not latency, bounds them). */
#ifndef RG_PERF_PROBE_COMPUTE_H
#define RG_PERF_PROBE_COMPUTE_H

#include "core/threadpool.h"

typedef struct rg_compute_rate {
    double gops;     /* 1e9 operations per second over all threads; 0 = ISA lacks it */
    const char *isa; /* which kernel ran: "avx512f", "avx2+fma", "scalar", "avx512-vnni", ... */
} rg_compute_rate;

/* f32: 2 FLOPs per lane per FMA. Runs about seconds_per_rep for each of reps. */
rg_compute_rate rg_measure_f32_fma(rg_threadpool *pool, double seconds_per_rep, int reps);

/* int8: 2 operations (multiply, add) per u8 x s8 product summed into int32.
 * gops 0 when the CPU has no SIMD int8 dot (no AVX2). */
rg_compute_rate rg_measure_int8_dot(rg_threadpool *pool, double seconds_per_rep, int reps);

#endif
