/* attention_prefill.cu — prefill attention over the paged KV pool on tensor
 * cores, FlashAttention-2 style: a block owns PF_BM consecutive query tokens of
 * one query head and walks the K/V of their sequence in tiles of PF_BN positions
 * read through the block table; S = Q·Kᵀ and O += P·V run as mma.sync m16n8k16
 * (f16/bf16 in, f32 accumulate), with the online softmax in registers.
 *
 * Warp w owns query rows 16w..16w+15 of the block: its Q fragments stay in
 * registers for the whole walk, S never leaves registers (the C fragment of
 * Q·Kᵀ is, two n-tiles at a time, the A fragment of P·V), and only K/V tiles
 * pass through shared memory (cp.async, three stages, 16-byte chunks XOR-swizzled
 * per row so that ldmatrix reads 8 rows without bank conflicts).
 *
 * Masking is per query token: token t attends to positions [0, n_ctx[t]) of the
 * sequence behind table row row[t]. A block's tokens may belong to several
 * sequences (runs of equal row[t], a sequence's tokens being consecutive): the
 * block walks each run's context in turn, with the other runs' rows masked; a
 * warp skips the tiles none of its rows of the run can see (the causal skip),
 * and masks only the tiles that cross some row's limit. GQA: the query heads of
 * one KV head are adjacent in blockIdx.x, so their blocks run together and read
 * the same K/V tiles from L2 (K/V is never duplicated in memory).
 *
 * Q arrives as f32 and is rounded to the KV dtype (as the tensor cores need);
 * scores, softmax and sums are f32. Hopper's wgmma (asynchronous warpgroup MMA
 * from shared memory) with TMA loads and warp specialization would let loads,
 * softmax and MMA overlap (FlashAttention-3); this pass is sm_80-level code. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/mma.cuh"

#define PF_BM 128   /* query rows per block: 8 warps x 16 rows */
#define PF_BN 64    /* K/V positions per tile */
#define PF_STAGES 3 /* K/V tiles in flight or in use */
#define PF_WARPS (PF_BM / 16)
#define PF_THREADS (PF_WARPS * 32)

struct prefill_params {
    const float *q;
    float *out;
    void *out16; /* or NULL: out also rounded to 16 bits (out16_f16: f16, else bf16) for the o-proj's cuBLAS input */
    bool out16_f16;
    const uint8_t *layer_base;
    const int32_t *row, *tables, *n_ctx;
    int64_t n_tok, table_w, n_head;
    int group, bs; /* query heads per KV head, KV block size */
    size_t unit_bytes, kv_bytes, head_bytes;
    float scale_log2; /* scale * log2(e): the softmax runs on exp2 */
};

/* ---- PTX wrappers (sm_80+) */

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

/* Four 8x8 16-bit matrices; lanes 8i..8i+7 give the row addresses of matrix i,
 * and lane l receives (row l/4, cols 2(l%4)..+1) of each, or with .trans
 * (rows 2(l%4)..+1, col l/4). */
__device__ __forceinline__ void ldsm_x4(uint32_t r[4], const void *p) {
    unsigned s = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t r[4], const void *p) {
    unsigned s = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}

/* 16 bytes global -> shared, asynchronously; src_bytes 0 writes zeros (reads nothing). */
__device__ __forceinline__ void cp_async16(void *dst, const void *src, int src_bytes) {
    unsigned s = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

/* 2^x on the special function unit (ex2.approx: ~2 ulp, 2^-inf = 0): the softmax
 * takes PF_BN / 2 of them per lane and tile, where exp2f's range handling would cost
 * several instructions each. */
__device__ __forceinline__ float exp2_fast(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

/* Element offset of 16-byte chunk c of row r in a [rows][HD] tile: chunks are
 * XOR-swizzled by r % 8, so the 8 rows one ldmatrix reads hit 8 distinct bank groups. */
template <int HD> __device__ __forceinline__ int swz(int r, int c) { return r * HD + ((c ^ (r & 7)) << 3); }

/* Start copying K and V of positions [p0, p0 + PF_BN) into ks / vs; positions at
 * or past kv_len (beyond the run's context: their table entries are not valid)
 * are zero-filled so that P·V never meets garbage (0 · NaN). */
template <typename E, int HD>
__device__ __forceinline__ void load_kv_tile(E *ks, E *vs, const prefill_params &a, const int32_t *table, int64_t hkv,
                                             int p0, int kv_len) {
    constexpr int CH = HD / 8;
    for (int i = threadIdx.x; i < PF_BN * CH; i += PF_THREADS) {
        int r = i / CH, c = i % CH, p = p0 + r;
        const uint8_t *k = a.layer_base, *v = a.layer_base;
        int n = 0;
        if (p < kv_len) {
            k = a.layer_base + (size_t)table[p / a.bs] * a.unit_bytes + (size_t)hkv * a.head_bytes +
                ((size_t)(p % a.bs) * HD + (size_t)c * 8) * sizeof(E);
            v = k + a.kv_bytes;
            n = 16;
        }
        cp_async16(ks + swz<HD>(r, c), k, n);
        cp_async16(vs + swz<HD>(r, c), v, n);
    }
}

/* grid (n_head, ceil(n_tok / PF_BM)), PF_THREADS threads; dynamic shared memory:
 * PF_STAGES x (K, V) x [PF_BN][HD] elements (96 KiB at hd 128, 48 KiB at hd 64).
 * Registers (ptxas): ~205 at hd 128 (one block of 8 warps per SM); at hd 64
 * capped at 128 for two blocks per SM (no spills on sm_90a, 12 bytes on sm_80;
 * uncapped it takes ~147). */
template <typename E, int HD, int MINB>
__global__ void __launch_bounds__(PF_THREADS, MINB) attn_prefill_kernel(prefill_params a) {
    extern __shared__ uint4 pf_smem[];
    __shared__ int32_t row_s[PF_BM], ctx_s[PF_BM];
    constexpr int STAGE = 2 * PF_BN * HD; /* elements: K [PF_BN][HD], then V */
    E *kv_s = (E *)pf_smem;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, tq = lane & 3;
    const int64_t h = blockIdx.x, hkv = h / a.group;
    /* the last query tiles see the longest contexts: start them first */
    const int64_t t0 = (int64_t)(gridDim.y - 1 - blockIdx.y) * PF_BM;
    const int n_rows = (int)(a.n_tok - t0 < PF_BM ? a.n_tok - t0 : PF_BM);
    for (int i = threadIdx.x; i < PF_BM; i += PF_THREADS) {
        row_s[i] = i < n_rows ? a.row[t0 + i] : -1;
        ctx_s[i] = i < n_rows ? a.n_ctx[t0 + i] : 0;
    }
    /* this thread's two rows of its warp's 16, and their Q as A fragments */
    const int r_lo = warp * 16 + g, r_hi = r_lo + 8;
    uint32_t qa[HD / 16][4];
    {
        const float *q_lo = r_lo < n_rows ? a.q + ((t0 + r_lo) * a.n_head + h) * HD : NULL;
        const float *q_hi = r_hi < n_rows ? a.q + ((t0 + r_hi) * a.n_head + h) * HD : NULL;
        const float2 zero = make_float2(0.0f, 0.0f);
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++) {
            int d = kk * 16 + 2 * tq;
            float2 x0 = q_lo ? *(const float2 *)(q_lo + d) : zero, x1 = q_hi ? *(const float2 *)(q_hi + d) : zero;
            float2 x2 = q_lo ? *(const float2 *)(q_lo + d + 8) : zero,
                   x3 = q_hi ? *(const float2 *)(q_hi + d + 8) : zero;
            qa[kk][0] = pack2<E>(x0.x, x0.y), qa[kk][1] = pack2<E>(x1.x, x1.y);
            qa[kk][2] = pack2<E>(x2.x, x2.y), qa[kk][3] = pack2<E>(x3.x, x3.y);
        }
    }
    /* online softmax state of rows r_lo (index 0) and r_hi (1): running max m (raw
     * score units), this lane's share of the running sum l (summed over the 4 lanes
     * of a row at the end), and o = sum_j e^(s_j - m) v_j over this lane's columns */
    float o[HD / 8][4];
#pragma unroll
    for (int n = 0; n < HD / 8; n++)
        o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    __syncthreads();

    for (int s0 = 0; s0 < n_rows;) {
        /* one run of tokens of one sequence: rows [s0, s1) */
        int s1 = s0 + 1, kv_len = ctx_s[s0];
        while (s1 < n_rows && row_s[s1] == row_s[s0])
            kv_len = max(kv_len, ctx_s[s1]), s1++;
        const int32_t *table = a.tables + (int64_t)row_s[s0] * a.table_w;
        /* a row outside the run sees nothing in this pass (limit 0) */
        const int ctx_lo = r_lo >= s0 && r_lo < s1 ? ctx_s[r_lo] : 0;
        const int ctx_hi = r_hi >= s0 && r_hi < s1 ? ctx_s[r_hi] : 0;
        int warp_max = max(ctx_lo, ctx_hi), warp_min = min(ctx_lo, ctx_hi);
#pragma unroll
        for (int off = 16; off; off >>= 1) {
            warp_max = max(warp_max, __shfl_xor_sync(0xffffffffu, warp_max, off));
            warp_min = min(warp_min, __shfl_xor_sync(0xffffffffu, warp_min, off));
        }
        const int n_tiles = (kv_len + PF_BN - 1) / PF_BN;
        /* three stages, one barrier a tile: at tile it the barrier both publishes tile
         * it and proves every warp done with tile it - 1, whose stage the load of tile
         * it + 2 then reuses. One commit group per tile (empty past the end) keeps
         * "all but the newest group" meaning "tile it has landed". */
        __syncthreads(); /* the previous run's warps are done with every stage */
        if (n_tiles > 0) {
            load_kv_tile<E, HD>(kv_s, kv_s + PF_BN * HD, a, table, hkv, 0, kv_len);
            cp_async_commit();
            if (n_tiles > 1) load_kv_tile<E, HD>(kv_s + STAGE, kv_s + STAGE + PF_BN * HD, a, table, hkv, PF_BN, kv_len);
            cp_async_commit();
        }
        for (int it = 0; it < n_tiles; it++) {
            cp_async_wait<1>();
            __syncthreads();
            if (it + 2 < n_tiles) {
                E *nk = kv_s + ((it + 2) % PF_STAGES) * STAGE;
                load_kv_tile<E, HD>(nk, nk + PF_BN * HD, a, table, hkv, (it + 2) * PF_BN, kv_len);
            }
            cp_async_commit();
            const E *ks = kv_s + (it % PF_STAGES) * STAGE, *vs = ks + PF_BN * HD;
            const int p0 = it * PF_BN;
            if (p0 < warp_max) { /* else: every row of this warp is past its limit (causal skip) */
                /* S = Q·Kᵀ: n-tile j holds positions p0 + 8j + 2tq (+1) of rows g, g + 8 */
                float s[PF_BN / 8][4];
#pragma unroll
                for (int j = 0; j < PF_BN / 8; j++)
                    s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
                for (int kk = 0; kk < HD / 16; kk++) {
#pragma unroll
                    for (int jp = 0; jp < PF_BN / 16; jp++) {
                        /* matrices: (keys +0..7, dims lo), (keys +0..7, dims hi), (keys +8..15, lo), (+8..15, hi) */
                        const int mi = lane >> 3, key = jp * 16 + (mi >> 1) * 8 + (lane & 7);
                        uint32_t b[4];
                        ldsm_x4(b, ks + swz<HD>(key, 2 * kk + (mi & 1)));
                        mma16816<E>(s[2 * jp], qa[kk], b[0], b[1]);
                        mma16816<E>(s[2 * jp + 1], qa[kk], b[2], b[3]);
                    }
                }
                if (p0 + PF_BN > warp_min) { /* some row of the warp ends inside this tile */
#pragma unroll
                    for (int j = 0; j < PF_BN / 8; j++) {
                        const int p = p0 + 8 * j + 2 * tq;
                        if (p >= ctx_lo) s[j][0] = -INFINITY;
                        if (p + 1 >= ctx_lo) s[j][1] = -INFINITY;
                        if (p >= ctx_hi) s[j][2] = -INFINITY;
                        if (p + 1 >= ctx_hi) s[j][3] = -INFINITY;
                    }
                }
                /* online softmax; a row with nothing visible yet keeps m = -inf and
                 * uses 0 as its reference so that e^(-inf - ref) is 0, not NaN */
                float mx[2] = {m[0], m[1]};
#pragma unroll
                for (int j = 0; j < PF_BN / 8; j++) {
                    mx[0] = fmaxf(mx[0], fmaxf(s[j][0], s[j][1]));
                    mx[1] = fmaxf(mx[1], fmaxf(s[j][2], s[j][3]));
                }
                float ref[2], alpha[2], sum[2] = {0.0f, 0.0f};
#pragma unroll
                for (int r = 0; r < 2; r++) {
                    mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
                    mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
                    ref[r] = mx[r] == -INFINITY ? 0.0f : mx[r] * a.scale_log2;
                    alpha[r] = exp2_fast(m[r] * a.scale_log2 - ref[r]);
                    m[r] = mx[r];
                }
#pragma unroll
                for (int j = 0; j < PF_BN / 8; j++) {
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        s[j][e] = exp2_fast(fmaf(s[j][e], a.scale_log2, -ref[e >> 1]));
                        sum[e >> 1] += s[j][e];
                    }
                }
                l[0] = l[0] * alpha[0] + sum[0];
                l[1] = l[1] * alpha[1] + sum[1];
#pragma unroll
                for (int n = 0; n < HD / 8; n++)
                    o[n][0] *= alpha[0], o[n][1] *= alpha[0], o[n][2] *= alpha[1], o[n][3] *= alpha[1];
                    /* O += P·V: the S fragments of n-tiles 2kk, 2kk + 1 are the A fragment of k-step kk */
#pragma unroll
                for (int kk = 0; kk < PF_BN / 16; kk++) {
                    uint32_t pa[4] = {pack2<E>(s[2 * kk][0], s[2 * kk][1]), pack2<E>(s[2 * kk][2], s[2 * kk][3]),
                                      pack2<E>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                      pack2<E>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
                    for (int np = 0; np < HD / 16; np++) {
                        /* matrices (transposed): (keys +0..7, dims lo), (keys +8..15, lo), (+0..7, hi), (+8..15, hi) */
                        const int mi = lane >> 3, key = kk * 16 + (mi & 1) * 8 + (lane & 7);
                        uint32_t b[4];
                        ldsm_x4_trans(b, vs + swz<HD>(key, 2 * np + (mi >> 1)));
                        mma16816<E>(o[2 * np], pa, b[0], b[1]);
                        mma16816<E>(o[2 * np + 1], pa, b[2], b[3]);
                    }
                }
            }
        }
        s0 = s1;
    }
    /* out = o / l, l summed over the 4 lanes that share a row */
#pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
        l[r] = l[r] > 0.0f ? 1.0f / l[r] : 0.0f; /* no visible position: 0, as the split kernel does */
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
            if (out_lo)
                o16[(out_lo - a.out + d) / 2] = a.out16_f16 ? pack2<__half>(o[n][0] * l[0], o[n][1] * l[0])
                                                            : pack2<__nv_bfloat16>(o[n][0] * l[0], o[n][1] * l[0]);
            if (out_hi)
                o16[(out_hi - a.out + d) / 2] = a.out16_f16 ? pack2<__half>(o[n][2] * l[1], o[n][3] * l[1])
                                                            : pack2<__nv_bfloat16>(o[n][2] * l[1], o[n][3] * l[1]);
        }
    }
}

static size_t prefill_smem(int64_t hd) { return (size_t)PF_STAGES * 2 * PF_BN * (size_t)hd * 2; }

/* The kernel instances: blocks per SM asked of the compiler (MINB) is 2 for
 * head dim 64, 1 for 128 (up to 255 registers a thread). Two blocks of head dim
 * 128 (128 registers, 356 bytes spilled) measured 11-30% slower (docs/BENCHMARKS.md). */
template <typename E, int HD, int MINB> static bool setup_one(cuda_backend *c) {
    return rg_cuda_check(c,
                         cudaFuncSetAttribute(attn_prefill_kernel<E, HD, MINB>,
                                              cudaFuncAttributeMaxDynamicSharedMemorySize, (int)prefill_smem(HD)),
                         "prefill attention setup");
}

bool rg_cuda_attention_prefill_setup(cuda_backend *c) {
    return setup_one<__half, 64, 2>(c) && setup_one<__nv_bfloat16, 64, 2>(c) && setup_one<__half, 128, 1>(c) &&
           setup_one<__nv_bfloat16, 128, 1>(c);
}

template <typename E>
static void launch_prefill(cuda_backend *c, int64_t hd, dim3 grid, size_t smem, const prefill_params &a) {
    if (hd == 64) attn_prefill_kernel<E, 64, 2><<<grid, PF_THREADS, smem, c->stream>>>(a);
    else attn_prefill_kernel<E, 128, 1><<<grid, PF_THREADS, smem, c->stream>>>(a);
}

bool rg_cuda_attention_prefill(rg_backend *be, const rg_backend_attn *q) {
    cuda_backend *c = cuda_of(be);
    const int64_t n_tok = c->n_tok, hd = c->kvc.head_dim;
    if (n_tok <= RG_CUDA_GRAPHS || c->status) return false;
    if ((c->kvc.dtype != RG_F16 && c->kvc.dtype != RG_BF16) || (hd != 64 && hd != 128) || q->alibi_slopes ||
        !(q->scale > 0.0f) || ((uintptr_t)q->q & 7) || ((uintptr_t)q->out & 7))
        return false;
    /* runs of tokens of one sequence (host copy of this step's rows): a block walks
     * each run's context separately, so steps made mostly of one-token runs
     * (decode batches) stay on the split-KV kernel */
    const int32_t *row = c->h_stage + 2 * c->max_tokens;
    int64_t runs = 1;
    for (int64_t t = 1; t < n_tok; t++)
        runs += row[t] != row[t - 1];
    if (n_tok < 16 * runs) return false;

    prefill_params a;
    a.q = q->q, a.out = q->out;
    /* the o-proj's cuBLAS input written here too (rg_backend_attn.next) */
    const bool fits = c->prefill_inputs && q->next && q->next->k == q->n_head * hd && n_tok * q->next->k <= c->x16_elems;
    const rg_dtype t16 = fits ? rg_cuda_x16_type(q->next) : RG_F32;
    a.out16 = t16 != RG_F32 ? c->x16 : NULL, a.out16_f16 = t16 == RG_F16;
    rg_cuda_forget_prepared(c);
    a.layer_base = c->kv_data + (size_t)q->layer * c->kv_layer_bytes;
    a.row = c->d_row, a.tables = c->d_tables, a.n_ctx = c->d_n_ctx;
    a.n_tok = n_tok, a.table_w = c->max_table_blocks, a.n_head = q->n_head;
    a.group = (int)(q->n_head / c->kvc.n_head_kv), a.bs = (int)c->kvc.block_size;
    a.unit_bytes = c->kv_unit_bytes, a.kv_bytes = c->kv_kv_bytes, a.head_bytes = c->kv_head_bytes;
    a.scale_log2 = q->scale * 1.4426950408889634f;
    dim3 grid((unsigned)q->n_head, rg_cuda_blocks(n_tok, PF_BM));
    size_t smem = prefill_smem(hd);
    if (c->kvc.dtype == RG_F16) launch_prefill<__half>(c, hd, grid, smem, a);
    else launch_prefill<__nv_bfloat16>(c, hd, grid, smem, a);
    if (RG_CUDA_LAUNCHED(c, "prefill attention") && a.out16)
        c->x16_src = q->out, c->x16_n = n_tok * q->n_head * hd, c->x16_type = t16;
    return true;
}

void rg_cuda_attention_op(rg_backend *be, const rg_backend_attn *q) {
    if (!rg_cuda_attention_prefill(be, q)) rg_cuda_attention(be, q);
}
