/* attention_prefill.cu — prefill attention over the paged KV pool on tensor
 * cores, FlashAttention-2 style: a block owns PF_BM consecutive query tokens of
 * one query head and walks the K/V of their sequence in tiles of PF_BN positions
 * read through the block table; S = Q·Kᵀ and O += P·V run as mma.sync m16n8k16
 * (f16/bf16 in, f32 accumulate), with the online softmax in registers.
 *
 * Warp w owns query rows 16w..16w+15 of the block (pf_shape: or 32w..32w+31
 * with RIDGE_CUDA_PF_MT2=1): its Q fragments stay in registers for the whole
 * walk, S never leaves registers (the C fragment of Q·Kᵀ is, two n-tiles at a
 * time, the A fragment of P·V), and only K/V tiles pass through shared memory
 * (cp.async, three stages, 16-byte chunks XOR-swizzled per row so that ldmatrix
 * reads 8 rows without bank conflicts).
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
 * scores, softmax and sums are f32. This is sm_80-level code; on Hopper,
 * attention_prefill_wg.cu issues the same two products as wgmma
 * (RIDGE_CUDA_PF_WGMMA). */
#include "backend/cuda/attention_prefill.cuh"
#include "backend/cuda/mma.cuh"

#include <type_traits>

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

/* Element offset of 16-byte chunk c of row r in a [rows][HD] tile: chunks are
 * XOR-swizzled by r % 8, so the 8 rows one ldmatrix reads hit 8 distinct bank groups. */
template <int HD> __device__ __forceinline__ int swz(int r, int c) { return r * HD + ((c ^ (r & 7)) << 3); }

template <int HD> struct swz_off {
    __device__ int operator()(int r, int c) const { return swz<HD>(r, c); }
};

/* The kernel's shape by MT, the 16-row m-tiles a warp owns:
 *   MT = 1: 8 warps x 16 rows, Q as A fragments in registers, 3 K/V stages
 *           (96 KiB at hd 128: one block of 8 warps an SM).
 *   MT = 2: 4 warps x 32 rows (RIDGE_CUDA_PF_MT2=1, opt-in): each K/V fragment
 *           read from shared memory by ldmatrix serves two m-tiles, halving the
 *           shared-memory reads per FLOP (FlashAttention-2's layout); Q no longer
 *           fits in registers beside S and O (64 + 128 floats a thread at hd 128)
 *           and is read back from a shared Q tile each K step; 2 K/V stages + Q
 *           (96 KiB at hd 128: two blocks of 4 warps an SM).
 * Both compute each row alike (Q rounded the same way, the same mma sequence per
 * m-tile, the same softmax); measured, their outputs differ by ~1e-8 relative
 * (not bit for bit: the two instances' floating-point contraction differs), and
 * test_cuda_ops holds each to the reference's bound. */
template <int MT> struct pf_shape { static constexpr int NW = 8 / MT, THREADS = 32 * NW, STAGES = MT == 1 ? 3 : 2; };

/* grid (n_head, ceil(n_tok / PF_BM)), pf_shape<MT>::THREADS threads; dynamic shared memory
 * (prefill_smem): STAGES x (K, V) x [PF_BN][HD] elements, then for MT = 2 Q [PF_BM][HD].
 * Registers (ptxas, MT = 1): ~205 at hd 128 (one block of 8 warps per SM); at hd 64
 * capped at 128 for two blocks per SM (no spills on sm_90a, 12 bytes on sm_80;
 * uncapped it takes ~147). */
template <typename E, int HD, int MT, int MINB>
__global__ void __launch_bounds__(pf_shape<MT>::THREADS, MINB) attn_prefill_kernel(prefill_params a) {
    constexpr int NTHR = pf_shape<MT>::THREADS, STAGES = pf_shape<MT>::STAGES;
    constexpr bool QS = MT > 1; /* Q from shared memory */
    extern __shared__ uint4 pf_smem[];
    __shared__ int32_t row_s[PF_BM], ctx_s[PF_BM];
    constexpr int STAGE = 2 * PF_BN * HD; /* elements: K [PF_BN][HD], then V */
    E *kv_s = (E *)pf_smem, *q_s = kv_s + STAGES * STAGE;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, tq = lane & 3;
    const int64_t h = blockIdx.x, hkv = h / a.group;
    /* the last query tiles see the longest contexts: start them first */
    const int64_t t0 = (int64_t)(gridDim.y - 1 - blockIdx.y) * PF_BM;
    const int n_rows = (int)(a.n_tok - t0 < PF_BM ? a.n_tok - t0 : PF_BM);
    pf_load_rows<NTHR>(row_s, ctx_s, a, t0, n_rows);
    /* this thread's two rows of each of its warp's m-tiles */
    int r_lo[MT], r_hi[MT];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
        r_lo[mt] = (warp * MT + mt) * 16 + g, r_hi[mt] = r_lo[mt] + 8;
    /* Q rounded to E: as A fragments in registers (MT = 1), or as a swizzled tile */
    uint32_t qa[QS ? 1 : HD / 16][4];
    if constexpr (!QS) {
        const float *q_lo = r_lo[0] < n_rows ? a.q + ((t0 + r_lo[0]) * a.n_head + h) * HD : NULL;
        const float *q_hi = r_hi[0] < n_rows ? a.q + ((t0 + r_hi[0]) * a.n_head + h) * HD : NULL;
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
    } else {
        pf_stage_q<E, HD, NTHR>(q_s, a, t0, h, n_rows, swz_off<HD>());
    }
    /* online softmax state of rows r_lo (index 0) and r_hi (1) of each m-tile:
     * running max m (raw score units), this lane's share of the running sum l
     * (summed over the 4 lanes of a row at the end), and o = sum_j e^(s_j - m) v_j
     * over this lane's columns */
    float o[MT][HD / 8][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
        pf_zero(o[mt]);
    float m[MT][2], l[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
        m[mt][0] = m[mt][1] = -INFINITY, l[mt][0] = l[mt][1] = 0.0f;
    __syncthreads();

    for (int s0 = 0; s0 < n_rows;) {
        /* one run of tokens of one sequence: rows [s0, s1) */
        int kv_len;
        const int s1 = pf_run_end(row_s, ctx_s, s0, n_rows, &kv_len);
        const int32_t *table = a.tables + (int64_t)row_s[s0] * a.table_w;
        /* a row outside the run sees nothing in this pass (limit 0) */
        int ctx_lo[MT], ctx_hi[MT], warp_max = 0, warp_min = INT_MAX;
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            ctx_lo[mt] = r_lo[mt] >= s0 && r_lo[mt] < s1 ? ctx_s[r_lo[mt]] : 0;
            ctx_hi[mt] = r_hi[mt] >= s0 && r_hi[mt] < s1 ? ctx_s[r_hi[mt]] : 0;
            warp_max = max(warp_max, max(ctx_lo[mt], ctx_hi[mt]));
            warp_min = min(warp_min, min(ctx_lo[mt], ctx_hi[mt]));
        }
#pragma unroll
        for (int off = 16; off; off >>= 1) {
            warp_max = max(warp_max, __shfl_xor_sync(0xffffffffu, warp_max, off));
            warp_min = min(warp_min, __shfl_xor_sync(0xffffffffu, warp_min, off));
        }
        const int n_tiles = (kv_len + PF_BN - 1) / PF_BN;
        /* STAGES stages, one barrier a tile: at tile it the barrier both publishes
         * tile it and proves every warp done with tile it - 1, whose stage the load
         * of tile it + STAGES - 1 then reuses. One commit group per tile (empty past
         * the end) keeps "all but the newest STAGES - 2 groups" meaning "tile it has
         * landed". */
        __syncthreads(); /* the previous run's warps are done with every stage */
#pragma unroll
        for (int st = 0; st < STAGES - 1; st++) {
            if (st < n_tiles) {
                E *nk = kv_s + st * STAGE;
                pf_load_kv_tile<E, HD, NTHR>(nk, nk + PF_BN * HD, a, table, hkv, st * PF_BN, kv_len, swz_off<HD>());
            }
            cp_async_commit();
        }
        for (int it = 0; it < n_tiles; it++) {
            cp_async_wait<STAGES - 2>();
            __syncthreads();
            if (it + STAGES - 1 < n_tiles) {
                E *nk = kv_s + ((it + STAGES - 1) % STAGES) * STAGE;
                pf_load_kv_tile<E, HD, NTHR>(nk, nk + PF_BN * HD, a, table, hkv, (it + STAGES - 1) * PF_BN, kv_len,
                                             swz_off<HD>());
            }
            cp_async_commit();
            const E *ks = kv_s + (it % STAGES) * STAGE, *vs = ks + PF_BN * HD;
            const int p0 = it * PF_BN;
            if (p0 < warp_max) { /* else: every row of this warp is past its limit (causal skip) */
                /* S = Q·Kᵀ: n-tile j holds positions p0 + 8j + 2tq (+1) of rows g, g + 8 */
                float s[MT][PF_BN / 8][4];
#pragma unroll
                for (int mt = 0; mt < MT; mt++)
                    pf_zero(s[mt]);
#pragma unroll
                for (int kk = 0; kk < HD / 16; kk++) {
                    uint32_t qf[MT][4];
                    if constexpr (QS) {
                        /* matrices: (rows +0..7, dims lo), (rows +8..15, lo), (+0..7, hi), (+8..15, hi) */
                        const int mi = lane >> 3;
#pragma unroll
                        for (int mt = 0; mt < MT; mt++)
                            ldsm_x4(qf[mt], q_s + swz<HD>((warp * MT + mt) * 16 + (mi & 1) * 8 + (lane & 7),
                                                          2 * kk + (mi >> 1)));
                    } else {
#pragma unroll
                        for (int e = 0; e < 4; e++)
                            qf[0][e] = qa[kk][e];
                    }
#pragma unroll
                    for (int jp = 0; jp < PF_BN / 16; jp++) {
                        /* matrices: (keys +0..7, dims lo), (keys +0..7, dims hi), (keys +8..15, lo), (+8..15, hi) */
                        const int mi = lane >> 3, key = jp * 16 + (mi >> 1) * 8 + (lane & 7);
                        uint32_t b[4];
                        ldsm_x4(b, ks + swz<HD>(key, 2 * kk + (mi & 1)));
#pragma unroll
                        for (int mt = 0; mt < MT; mt++) {
                            mma16816<E>(s[mt][2 * jp], qf[mt], b[0], b[1]);
                            mma16816<E>(s[mt][2 * jp + 1], qf[mt], b[2], b[3]);
                        }
                    }
                }
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    pf_softmax_tile<PF_BN / 8, HD / 8>(s[mt], o[mt], m[mt], l[mt], p0, ctx_lo[mt], ctx_hi[mt],
                                                       p0 + PF_BN > warp_min, a.scale_log2, tq);
                }
                /* O += P·V, each V fragment serving the warp's MT m-tiles; the S
                 * fragments of n-tiles 2kk, 2kk + 1 (P rounded to E) are the A
                 * fragment of k-step kk */
#pragma unroll
                for (int kk = 0; kk < PF_BN / 16; kk++) {
                    uint32_t pa[MT][4];
#pragma unroll
                    for (int mt = 0; mt < MT; mt++)
                        pf_p_fragment<E>(pa[mt], s[mt], kk);
#pragma unroll
                    for (int np = 0; np < HD / 16; np++) {
                        /* matrices (transposed): (keys +0..7, dims lo), (keys +8..15, lo), (+0..7, hi), (+8..15, hi) */
                        const int mi = lane >> 3, key = kk * 16 + (mi & 1) * 8 + (lane & 7);
                        uint32_t b[4];
                        ldsm_x4_trans(b, vs + swz<HD>(key, 2 * np + (mi >> 1)));
#pragma unroll
                        for (int mt = 0; mt < MT; mt++) {
                            mma16816<E>(o[mt][2 * np], pa[mt], b[0], b[1]);
                            mma16816<E>(o[mt][2 * np + 1], pa[mt], b[2], b[3]);
                        }
                    }
                }
            }
        }
        s0 = s1;
    }
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
        pf_store_rows<HD>(a, t0, h, n_rows, r_lo[mt], r_hi[mt], o[mt], l[mt], tq);
}

static size_t prefill_smem(int64_t hd, int mt) {
    const size_t stages = mt == 1 ? pf_shape<1>::STAGES : pf_shape<2>::STAGES;
    return (stages * 2 * PF_BN + (mt == 1 ? 0 : PF_BM)) * (size_t)hd * 2;
}

/* The kernel instances: blocks per SM asked of the compiler (MINB) is 2 for
 * head dim 64 and for MT = 2, 1 for MT = 1 at 128 (up to 255 registers a thread).
 * Two blocks of MT = 1 at head dim 128 (128 registers, 356 bytes spilled)
 * measured 11-30% slower (docs/BENCHMARKS.md). */
template <typename E, int HD, int MT, int MINB> static bool setup_one(cuda_backend *c) {
    return rg_cuda_check(c,
                         cudaFuncSetAttribute(attn_prefill_kernel<E, HD, MT, MINB>,
                                              cudaFuncAttributeMaxDynamicSharedMemorySize, (int)prefill_smem(HD, MT)),
                         "prefill attention setup");
}

bool rg_cuda_attention_prefill_setup(cuda_backend *c) {
    bool wg_usable;
    if (!rg_cuda_prefill_wg_setup(c, &wg_usable)) return false;
    c->pf_wgmma = c->pf_wgmma && wg_usable;
    return setup_one<__half, 64, 1, 2>(c) && setup_one<__nv_bfloat16, 64, 1, 2>(c) && setup_one<__half, 128, 1, 1>(c) &&
           setup_one<__nv_bfloat16, 128, 1, 1>(c) && setup_one<__half, 64, 2, 2>(c) &&
           setup_one<__nv_bfloat16, 64, 2, 2>(c) && setup_one<__half, 128, 2, 2>(c) &&
           setup_one<__nv_bfloat16, 128, 2, 2>(c);
}

template <typename E> static void launch_prefill(cuda_backend *c, int64_t hd, dim3 grid, const prefill_params &a) {
    if (c->pf_wgmma) return rg_cuda_prefill_wg_launch(c, hd, std::is_same<E, __half>::value, grid, a);
    const size_t smem = prefill_smem(hd, c->pf_mt2 ? 2 : 1);
    constexpr int T1 = pf_shape<1>::THREADS, T2 = pf_shape<2>::THREADS;
    if (c->pf_mt2) {
        if (hd == 64)
            attn_prefill_kernel<E, 64, 2, 2><<<grid, T2, smem, c->stream>>>(a);
        else
            attn_prefill_kernel<E, 128, 2, 2><<<grid, T2, smem, c->stream>>>(a);
    } else {
        if (hd == 64)
            attn_prefill_kernel<E, 64, 1, 2><<<grid, T1, smem, c->stream>>>(a);
        else
            attn_prefill_kernel<E, 128, 1, 1><<<grid, T1, smem, c->stream>>>(a);
    }
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
    const bool fits = c->prefill_inputs && q->next && q->next->k == q->n_head * hd && q->next->k <= c->k_max;
    const rg_dtype t16 = fits ? rg_cuda_x16_type(q->next) : RG_F32;
    a.out16 = t16 != RG_F32 ? c->x16 : NULL, a.out16_f16 = t16 == RG_F16;
    rg_cuda_forget_prepared(c);
    a.layer_base = c->kv_data + (size_t)q->layer * c->kv_layer_bytes;
    a.row = c->d_row, a.tables = c->d_tables, a.n_ctx = c->d_n_ctx;
    a.n_tok = n_tok, a.table_w = c->max_table_blocks, a.n_head = q->n_head;
    a.group = (int)(q->n_head / c->kvc.n_head_kv), a.bs = (int)c->kvc.block_size;
    a.bs_shift = (a.bs & (a.bs - 1)) == 0 ? __builtin_ctz((unsigned)a.bs) : -1;
    a.unit_bytes = c->kv_unit_bytes, a.kv_bytes = c->kv_kv_bytes, a.head_bytes = c->kv_head_bytes;
    a.scale_log2 = q->scale * 1.4426950408889634f;
    dim3 grid((unsigned)q->n_head, rg_cuda_blocks(n_tok, PF_BM));
    if (c->kvc.dtype == RG_F16)
        launch_prefill<__half>(c, hd, grid, a);
    else
        launch_prefill<__nv_bfloat16>(c, hd, grid, a);
    if (RG_CUDA_LAUNCHED(c, "prefill attention") && a.out16)
        rg_cuda_prepared_set(&c->act16, q->out, c->x16, t16, n_tok, q->n_head * hd);
    return true;
}

void rg_cuda_attention_op(rg_backend *be, const rg_backend_attn *q) {
    if (!rg_cuda_attention_prefill(be, q)) rg_cuda_attention(be, q);
}
