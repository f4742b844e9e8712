/* rmsnorm.cuh — the rmsnorm scale 1 / sqrt(mean(x^2) + eps) of one row, computed
 * by a block of RMS_THREADS threads exactly as the rmsnorm kernel computes it
 * (elementwise.cu), so that kernels which normalize on the way (matmul_q.cu's
 * rmsnorm + int8 activations) give the same bits: squares in float, summed in
 * double like the CPU, 16-byte loads four in flight a thread. */
#ifndef RG_BACKEND_CUDA_RMSNORM_CUH
#define RG_BACKEND_CUDA_RMSNORM_CUH

#include <stdint.h>

#include "backend/cuda/cuda_internal.h"

#define RMS_THREADS 256

/* All RMS_THREADS threads of the block call it (threads 0 .. RMS_THREADS - 1,
 * which sync() brings together); every thread gets the scale. */
template <typename Sync = block_sync>
__device__ __forceinline__ float rmsnorm_scale(const float *xr, int64_t n, float eps, Sync sync = Sync()) {
    double sum = 0;
    const bool vec = (n & 3) == 0;
    if (vec) {
        const float4 *x4 = (const float4 *)xr;
        const int64_t n4 = n / 4;
        for (int64_t i = threadIdx.x; i < n4; i += 4 * RMS_THREADS) {
            float4 v[4];
#pragma unroll
            for (int u = 0; u < 4; u++)
                v[u] = i + u * RMS_THREADS < n4 ? x4[i + u * RMS_THREADS] : make_float4(0, 0, 0, 0);
#pragma unroll
            for (int u = 0; u < 4; u++)
                sum += ((double)(v[u].x * v[u].x) + (double)(v[u].y * v[u].y)) +
                       ((double)(v[u].z * v[u].z) + (double)(v[u].w * v[u].w));
        }
    } else {
        for (int64_t i = threadIdx.x; i < n; i += RMS_THREADS) sum += (double)(xr[i] * xr[i]);
    }
    __shared__ double part[RMS_THREADS / 32];
    for (int off = 16; off; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x / 32] = sum;
    sync();
    double total = 0;
#pragma unroll
    for (int i = 0; i < RMS_THREADS / 32; i++) total += part[i];
    return 1.0f / sqrtf((float)(total / (double)n) + eps);
}

#endif
