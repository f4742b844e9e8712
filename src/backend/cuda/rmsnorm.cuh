/* rmsnorm.cuh — one row's rmsnorm by one block, as every CUDA kernel that
 * normalizes computes it (elementwise.cu's rmsnorm kernel; the GEMV epilogue
 * that normalizes the residual stream it has just updated, gemv_common.cuh):
 * the sum of squares in double like the CPU, then (x * scale) * w. x is read
 * through L2 (__ldcg): in the GEMV epilogue other blocks of the same kernel
 * wrote it. The double sum of float squares makes the scale independent of
 * the summation order in practice (its rounding to float dominates), so the
 * two block sizes give the same bits. */
#ifndef RG_BACKEND_CUDA_RMSNORM_CUH
#define RG_BACKEND_CUDA_RMSNORM_CUH

#include <stdint.h>

/* All THREADS threads of the block call it; part: THREADS / 32 doubles of shared memory. */
template <int THREADS>
__device__ __forceinline__ void rmsnorm_row(const float *xr, const float *__restrict__ w, int64_t n, float eps,
                                            float *o, double *part) {
    double sum = 0;
    const bool vec = (n & 3) == 0;
    if (vec) {
        const float4 *x4 = (const float4 *)xr;
        const int64_t n4 = n / 4;
        for (int64_t i = threadIdx.x; i < n4; i += 4 * THREADS) {
            float4 v[4];
#pragma unroll
            for (int u = 0; u < 4; u++) v[u] = i + u * THREADS < n4 ? __ldcg(x4 + i + u * THREADS) : make_float4(0, 0, 0, 0);
#pragma unroll
            for (int u = 0; u < 4; u++)
                sum += ((double)(v[u].x * v[u].x) + (double)(v[u].y * v[u].y)) +
                       ((double)(v[u].z * v[u].z) + (double)(v[u].w * v[u].w));
        }
    } else {
        for (int64_t i = threadIdx.x; i < n; i += THREADS) {
            const float v = __ldcg(xr + i);
            sum += (double)(v * v);
        }
    }
    for (int off = 16; off; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x / 32] = sum;
    __syncthreads();
    double total = 0;
#pragma unroll
    for (int i = 0; i < THREADS / 32; i++) total += part[i];
    const float scale = 1.0f / sqrtf((float)(total / (double)n) + eps);
    if (vec) {
        const float4 *x4 = (const float4 *)xr, *w4 = (const float4 *)w;
        float4 *o4 = (float4 *)o;
        for (int64_t i = threadIdx.x; i < n / 4; i += THREADS) {
            const float4 a = __ldcg(x4 + i), b = __ldg(w4 + i);
            o4[i] = make_float4((a.x * scale) * b.x, (a.y * scale) * b.y, (a.z * scale) * b.z, (a.w * scale) * b.w);
        }
    } else {
        for (int64_t i = threadIdx.x; i < n; i += THREADS) o[i] = (__ldcg(xr + i) * scale) * w[i];
    }
    __syncthreads(); /* part is reused by the next row */
}

#endif
