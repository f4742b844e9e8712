/* sample.cu — greedy sampling on the GPU: the argmax of each logits row, so a
 * greedy decode step downloads one id per sequence instead of its n_vocab floats
 * (513 KB a row at Llama 3's 128,256 entries; 64 of them took most of a serving
 * step on the H100, docs/BENCHMARKS.md "Serving (H100)").
 *
 * One block per row: each thread scans a strided slice with 16-byte loads, four
 * in flight, keeping (value, index); then warp shuffles and one shared-memory
 * round reduce the pairs. The rule is core/argmax.h's: an entry wins when it is
 * greater, or equal with a lower index, so ties go to the lowest id whatever the
 * order the threads saw them in; NaN never wins (every comparison with it is
 * false), except that a NaN at entry 0 makes 0 the answer, as the sequential
 * scan starting there decides. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "backend/cuda/cuda_internal.h"

#define ARGMAX_THREADS 1024

/* (v, i) replaces (bv, bi) when it ranks higher: greater, or equal at a lower index. */
__device__ __forceinline__ void take(float &bv, int32_t &bi, float v, int32_t i) {
    if (v > bv || (v == bv && i < bi)) bv = v, bi = i;
}

__device__ __forceinline__ void take4(float &bv, int32_t &bi, float4 v, int32_t i) {
    take(bv, bi, v.x, i), take(bv, bi, v.y, i + 1), take(bv, bi, v.z, i + 2), take(bv, bi, v.w, i + 3);
}

__global__ void __launch_bounds__(ARGMAX_THREADS)
    argmax_rows_kernel(const float *logits, int64_t n_vocab, int32_t *ids) {
    const float *row = logits + (int64_t)blockIdx.x * n_vocab;
    /* start below every entry but NaN: (-inf, INT32_MAX) loses to any real -inf */
    float bv = -INFINITY;
    int32_t bi = INT32_MAX;
    const int T = ARGMAX_THREADS;
    int64_t tail = 0; /* entries before tail were covered by the vector loop */
    if ((((uintptr_t)row) & 15) == 0) {
        const float4 *r4 = (const float4 *)row;
        const int64_t n4 = n_vocab / 4;
        int64_t j = threadIdx.x;
        for (; j + 3 * T < n4; j += 4 * T) {
            float4 v0 = __ldg(r4 + j), v1 = __ldg(r4 + j + T), v2 = __ldg(r4 + j + 2 * T), v3 = __ldg(r4 + j + 3 * T);
            take4(bv, bi, v0, (int32_t)(4 * j)), take4(bv, bi, v1, (int32_t)(4 * (j + T)));
            take4(bv, bi, v2, (int32_t)(4 * (j + 2 * T))), take4(bv, bi, v3, (int32_t)(4 * (j + 3 * T)));
        }
        for (; j < n4; j += T)
            take4(bv, bi, __ldg(r4 + j), (int32_t)(4 * j));
        tail = 4 * n4;
    }
    for (int64_t j = tail + threadIdx.x; j < n_vocab; j += T)
        take(bv, bi, __ldg(row + j), (int32_t)j);

    for (int off = 16; off > 0; off >>= 1) {
        float ov = __shfl_down_sync(0xffffffffu, bv, off);
        int32_t oi = __shfl_down_sync(0xffffffffu, bi, off);
        take(bv, bi, ov, oi);
    }
    __shared__ float s_v[ARGMAX_THREADS / 32];
    __shared__ int32_t s_i[ARGMAX_THREADS / 32];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) s_v[warp] = bv, s_i[warp] = bi;
    __syncthreads();
    if (warp != 0) return;
    bv = lane < T / 32 ? s_v[lane] : -INFINITY;
    bi = lane < T / 32 ? s_i[lane] : INT32_MAX;
    for (int off = 16; off > 0; off >>= 1) {
        float ov = __shfl_down_sync(0xffffffffu, bv, off);
        int32_t oi = __shfl_down_sync(0xffffffffu, bi, off);
        take(bv, bi, ov, oi);
    }
    /* a NaN at entry 0 stays the sequential scan's best; bi is a real index
     * otherwise (entry 0 itself ranks above the starting pair) */
    if (lane == 0) ids[blockIdx.x] = isnan(row[0]) ? 0 : bi;
}

void rg_cuda_argmax_rows(rg_backend *be, const float *logits, int64_t n_rows, int64_t n_vocab, int32_t *ids_host) {
    cuda_backend *c = cuda_of(be);
    if (n_rows <= 0) return;
    if (n_rows > c->max_tokens || !c->d_argmax || n_vocab <= 0 || n_vocab > INT32_MAX) {
        rg_cuda_fail(c, "argmax_rows", "more rows than reserved, or a vocabulary out of range");
        memset(ids_host, 0, (size_t)n_rows * sizeof *ids_host);
        return;
    }
    argmax_rows_kernel<<<(unsigned)n_rows, ARGMAX_THREADS, 0, c->stream>>>(logits, n_vocab, c->d_argmax);
    RG_CUDA_LAUNCHED(c, "argmax_rows");
    be->download(be, ids_host, c->d_argmax, (size_t)n_rows * sizeof *ids_host); /* zeroes them after a failure */
}
