/* attention_prefill.cuh — what the two prefill attention kernels share: the
 * parameters, the copy and rounding primitives, the walk over runs of one
 * sequence's tokens, the masked online softmax of one 16-row m-tile and the
 * output stores. attention_prefill.cu: mma.sync (sm_80+); attention_prefill_wg.cu:
 * wgmma (sm_90a). Both keep S, P and O in the mma.sync C/A fragment layout
 * (mma.cuh), so everything here serves both. */
#ifndef RG_BACKEND_CUDA_ATTENTION_PREFILL_CUH
#define RG_BACKEND_CUDA_ATTENTION_PREFILL_CUH

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "backend/cuda/cuda_internal.h"

#define PF_BM 128 /* query rows per block */
#define PF_BN 64  /* K/V positions per tile */

struct prefill_params {
    const float *q;
    float *out;
    void *out16; /* or NULL: out also rounded to 16 bits (out16_f16: f16, else bf16) for the o-proj's cuBLAS input */
    bool out16_f16;
    const uint8_t *layer_base;
    const int32_t *row, *tables, *n_ctx;
    int64_t n_tok, table_w, n_head;
    int group, bs; /* query heads per KV head, KV block size */
    int bs_shift;  /* log2(bs) when bs is a power of two (the pool's default 16), else -1: no division per row */
    size_t unit_bytes, kv_bytes, head_bytes;
    float scale_log2; /* scale * log2(e): the softmax runs on exp2 */
};

template <typename E> __device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <> __device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
    __half2 v = __floats2half2_rn(lo, hi);
    uint32_t u;
    memcpy(&u, &v, 4);
    return u;
}
template <> __device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    uint32_t u;
    memcpy(&u, &v, 4);
    return u;
}

/* An accumulator of N fragments (mma.cuh's C layout) set to zero. */
template <int N> __device__ __forceinline__ void pf_zero(float (&x)[N][4]) {
#pragma unroll
    for (int n = 0; n < N; n++)
        x[n][0] = x[n][1] = x[n][2] = x[n][3] = 0.0f;
}

/* 16 bytes global -> shared, asynchronously; src_bytes 0 writes zeros (reads nothing). */
__device__ __forceinline__ void cp_async16(void *dst, const void *src, int src_bytes) {
    unsigned s = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

/* 2^x on the special function unit (ex2.approx: ~2 ulp, 2^-inf = 0): the softmax
 * takes 2 NJ of them per lane and tile, where exp2f's range handling would cost
 * several instructions each. */
__device__ __forceinline__ float exp2_fast(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

/* Start copying K and V of positions [p0, p0 + BN) into ks / vs, 16-byte chunk
 * c of position row r at element OFF(r, c); positions at or past kv_len (beyond
 * the run's context: their table entries are not valid) are zero-filled so that
 * P·V never meets garbage (0 · NaN). NTHR / BN threads share a row: one block-table
 * lookup each, then chunks q, q + NTHR / BN, ... (adjacent threads, adjacent
 * chunks: coalesced). The address arithmetic is a real cost here (measured: a
 * division by the block size per chunk made the wgmma kernel 13-16% slower). */
template <typename E, int HD, int NTHR, typename OFF, int BN = PF_BN>
__device__ __forceinline__ void pf_load_kv_tile(E *ks, E *vs, const prefill_params &a, const int32_t *table,
                                                int64_t hkv, int p0, int kv_len, OFF off) {
    constexpr int CH = HD / 8, TPR = NTHR / BN;
    static_assert(NTHR % BN == 0 && CH % TPR == 0, "threads must split rows evenly");
    const int r = threadIdx.x / TPR, q = threadIdx.x % TPR, p = p0 + r;
    const uint8_t *k = a.layer_base, *v = a.layer_base;
    int n = 0, step = 0;
    if (p < kv_len) {
        const int blk = a.bs_shift >= 0 ? p >> a.bs_shift : p / a.bs, slot = p - blk * a.bs;
        k = a.layer_base + (size_t)table[blk] * a.unit_bytes + (size_t)hkv * a.head_bytes +
            ((size_t)slot * HD + (size_t)q * 8) * sizeof(E);
        v = k + a.kv_bytes;
        n = 16, step = 16 * TPR;
    }
#pragma unroll
    for (int j = 0; j < CH / TPR; j++) {
        const int c = j * TPR + q;
        cp_async16(ks + off(r, c), k + j * step, n);
        cp_async16(vs + off(r, c), v + j * step, n);
    }
}

/* The block's PF_BM query rows of head h rounded to E into the shared tile q_s,
 * 16-byte chunk c of row r at element OFF(r, c); rows past n_rows are zeros. */
template <typename E, int HD, int NTHR, typename OFF>
__device__ __forceinline__ void pf_stage_q(E *q_s, const prefill_params &a, int64_t t0, int64_t h, int n_rows,
                                           OFF off) {
    constexpr int CH = HD / 8;
    for (int i = threadIdx.x; i < PF_BM * CH; i += NTHR) {
        const int r = i / CH, c = i % CH;
        uint32_t w[4] = {0, 0, 0, 0};
        if (r < n_rows) { /* q is 8-byte aligned (rg_cuda_attention_prefill checks) */
            const float2 *src = (const float2 *)(a.q + ((t0 + r) * a.n_head + h) * HD + 8 * c);
#pragma unroll
            for (int e = 0; e < 4; e++)
                w[e] = pack2<E>(src[e].x, src[e].y);
        }
        *(uint4 *)(q_s + off(r, c)) = make_uint4(w[0], w[1], w[2], w[3]);
    }
}

/* The block's query rows: table row and context length of each (-1 / 0 past n_rows). */
template <int NTHR>
__device__ __forceinline__ void pf_load_rows(int32_t *row_s, int32_t *ctx_s, const prefill_params &a, int64_t t0,
                                             int n_rows) {
    for (int i = threadIdx.x; i < PF_BM; i += NTHR) {
        row_s[i] = i < n_rows ? a.row[t0 + i] : -1;
        ctx_s[i] = i < n_rows ? a.n_ctx[t0 + i] : 0;
    }
}

/* One run of tokens of one sequence starting at row s0: its end s1 and the
 * longest context kv_len among its rows. */
__device__ __forceinline__ int pf_run_end(const int32_t *row_s, const int32_t *ctx_s, int s0, int n_rows, int *kv_len) {
    int s1 = s0 + 1;
    *kv_len = ctx_s[s0];
    while (s1 < n_rows && row_s[s1] == row_s[s0])
        *kv_len = max(*kv_len, ctx_s[s1]), s1++;
    return s1;
}

/* Mask one 16-row m-tile's scores s (8 NJ positions) of tile p0 (rows g and g + 8 of the lane's
 * quad see positions below ctx_lo / ctx_hi; masked only when mask, i.e. some row
 * of the caller's group ends inside the tile), then fold the tile into the online
 * softmax state: running max m (raw score units), the lane's share of the running
 * sum l, and o = sum_j e^(s_j - m) v_j; s is left holding P (unnormalized). A row
 * with nothing visible yet keeps m = -inf and uses 0 as its reference so that
 * e^(-inf - ref) is 0, not NaN. */
template <int NJ, int NO>
__device__ __forceinline__ void pf_softmax_tile(float (&s)[NJ][4], float (&o)[NO][4], float m[2], float l[2], int p0,
                                                int ctx_lo, int ctx_hi, bool mask, float scale_log2, int tq) {
    if (mask) {
#pragma unroll
        for (int j = 0; j < NJ; j++) {
            const int p = p0 + 8 * j + 2 * tq;
            if (p >= ctx_lo) s[j][0] = -INFINITY;
            if (p + 1 >= ctx_lo) s[j][1] = -INFINITY;
            if (p >= ctx_hi) s[j][2] = -INFINITY;
            if (p + 1 >= ctx_hi) s[j][3] = -INFINITY;
        }
    }
    float mx[2] = {m[0], m[1]};
#pragma unroll
    for (int j = 0; j < NJ; j++) {
        mx[0] = fmaxf(mx[0], fmaxf(s[j][0], s[j][1]));
        mx[1] = fmaxf(mx[1], fmaxf(s[j][2], s[j][3]));
    }
    float ref[2], alpha[2], sum[2] = {0.0f, 0.0f};
#pragma unroll
    for (int r = 0; r < 2; r++) {
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
        ref[r] = mx[r] == -INFINITY ? 0.0f : mx[r] * scale_log2;
        alpha[r] = exp2_fast(m[r] * scale_log2 - ref[r]);
        m[r] = mx[r];
    }
#pragma unroll
    for (int j = 0; j < NJ; j++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
            s[j][e] = exp2_fast(fmaf(s[j][e], scale_log2, -ref[e >> 1]));
            sum[e >> 1] += s[j][e];
        }
    }
    l[0] = l[0] * alpha[0] + sum[0];
    l[1] = l[1] * alpha[1] + sum[1];
    /* once the running maxima settle, most tiles leave every alpha at exactly 1:
     * the warp then skips multiplying o by it (the same bits, NO * 4 fewer FMULs) */
    if (__any_sync(0xffffffffu, alpha[0] != 1.0f || alpha[1] != 1.0f)) {
#pragma unroll
        for (int n = 0; n < NO; n++) {
            o[n][0] *= alpha[0], o[n][1] *= alpha[0];
            o[n][2] *= alpha[1], o[n][3] *= alpha[1];
        }
    }
}

/* k-step kk of P·V: the S fragments of n-tiles 2kk, 2kk + 1 (P rounded to E) are
 * the A fragment of 16 positions. */
template <typename E, int NJ>
__device__ __forceinline__ void pf_p_fragment(uint32_t pa[4], const float (&s)[NJ][4], int kk) {
    pa[0] = pack2<E>(s[2 * kk][0], s[2 * kk][1]);
    pa[1] = pack2<E>(s[2 * kk][2], s[2 * kk][3]);
    pa[2] = pack2<E>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
    pa[3] = pack2<E>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
}

/* out = o / l for one m-tile's rows r_lo, r_hi (l summed over the 4 lanes of a
 * row; no visible position gives 0, as the split kernel does), and the same
 * values rounded to 16 bits for the o-proj's input when a.out16. */
template <int HD>
__device__ __forceinline__ void pf_store_rows(const prefill_params &a, int64_t t0, int64_t h, int n_rows, int r_lo,
                                              int r_hi, const float (&o)[HD / 8][4], float l[2], int tq) {
#pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
        l[r] = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
    }
    float *out_lo = r_lo < n_rows ? a.out + ((t0 + r_lo) * a.n_head + h) * HD : NULL;
    float *out_hi = r_hi < n_rows ? a.out + ((t0 + r_hi) * a.n_head + h) * HD : NULL;
#pragma unroll
    for (int n = 0; n < HD / 8; n++) {
        const int d = 8 * n + 2 * tq;
        if (out_lo) *(float2 *)(out_lo + d) = make_float2(o[n][0] * l[0], o[n][1] * l[0]);
        if (out_hi) *(float2 *)(out_hi + d) = make_float2(o[n][2] * l[1], o[n][3] * l[1]);
    }
    if (a.out16) { /* the same values rounded as the conversion pass would round them, at the same offsets */
        uint32_t *o16 = (uint32_t *)a.out16;
#pragma unroll
        for (int n = 0; n < HD / 8; n++) {
            const int d = 8 * n + 2 * tq;
            const float v0 = o[n][0] * l[0], v1 = o[n][1] * l[0], v2 = o[n][2] * l[1], v3 = o[n][3] * l[1];
            if (out_lo)
                o16[(out_lo - a.out + d) / 2] = a.out16_f16 ? pack2<__half>(v0, v1) : pack2<__nv_bfloat16>(v0, v1);
            if (out_hi)
                o16[(out_hi - a.out + d) / 2] = a.out16_f16 ? pack2<__half>(v2, v3) : pack2<__nv_bfloat16>(v2, v3);
        }
    }
}

/* The wgmma kernel (attention_prefill_wg.cu): setup tells whether this build's
 * binary for the device has it (sm_90a); launch as attention_prefill.cu's grid. */
bool rg_cuda_prefill_wg_setup(cuda_backend *c, bool *usable);
void rg_cuda_prefill_wg_launch(cuda_backend *c, int64_t hd, bool f16, dim3 grid, const prefill_params &a);

#endif
