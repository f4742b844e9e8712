/* attention_prefill_wg.cu — the prefill attention kernel on Hopper's warpgroup
 * MMA (wgmma, sm_90a): the default where the device and the binary have it
 * (RIDGE_CUDA_PF_WGMMA=0 falls back to attention_prefill.cu's). The same walk, masking, online
 * softmax and outputs as attention_prefill.cu (attention_prefill.cuh), with the
 * two products issued per warpgroup instead of per warp:
 *   S[64][PF_BN] = Q·Kᵀ   wgmma m64n64k16, Q and K from shared memory
 *   O[64][HD]   += P·V    wgmma m64nHDk16, P from registers (S's accumulator
 *                         layout is P's A fragment), V from shared memory, MN-major.
 * No ldmatrix: the tensor cores read the operands from shared memory themselves,
 * at twice mma.sync's rate per SM. A block is two warpgroups (128 query rows of one
 * head), K/V tiles go through two cp.async stages in the 128-byte-swizzle layout
 * that the wgmma descriptors name (wgmma.cuh), and Q is staged once, rounded to
 * the KV dtype. Warp w of the block still owns rows 16w..16w+15, so the softmax
 * and the stores are attention_prefill.cuh's.
 * What FlashAttention-3 adds on top (TMA loads by a producer warp, softmax of
 * one warpgroup overlapping the other's MMA by named barriers, in-register
 * pipelining of the two products) is not done here: the two blocks an SM overlap
 * each other's phases instead. That caps a thread at 128 registers (4 warpgroups
 * an SM), which S, O and P fill at head dim 128: a second S in flight, or Q kept
 * in registers, needs a different partition of the SM (one block of three
 * warpgroups, or a producer warp with setmaxnreg). */
#include "backend/cuda/attention_prefill.cuh"
#include "backend/cuda/wgmma.cuh"

#define WG_THREADS 256 /* two warpgroups of 64 query rows: PF_BM */
#define WG_STAGES 2
#define WG_BLOCKS_PER_SM 2 /* 97 KiB of shared memory and 128 registers a thread at head dim 128 */

/* Element offset of 16-byte chunk c of row r in a [ROWS][HD] tile kept as HD / 64
 * column blocks of [ROWS][64], each 128-byte-swizzled (wgmma.cuh). */
template <int HD, int ROWS> struct wg_off {
    __device__ int operator()(int r, int c) const { return (c >> 3) * ROWS * 64 + r * 64 + (((c & 7) ^ (r & 7)) << 3); }
};

static constexpr size_t wg_smem(int hd) { /* Q, the K/V stages, and slack to align to 1024 bytes */
    return ((size_t)PF_BM * hd + (size_t)WG_STAGES * 2 * PF_BN * hd) * 2 + 1024;
}

/* grid (n_head, ceil(n_tok / PF_BM)), WG_THREADS threads, wg_smem(HD) bytes of
 * dynamic shared memory. Compiled to an empty body for other architectures
 * (rg_cuda_prefill_wg_setup checks the binary before it is ever launched). */
template <typename E, int HD>
__global__ void __launch_bounds__(WG_THREADS, WG_BLOCKS_PER_SM) attn_prefill_wg_kernel(prefill_params a) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ == 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int BN = PF_BN, TILE = BN * HD; /* positions and elements of one K or V tile */
    extern __shared__ uint4 wg_smem_raw[];
    __shared__ int32_t row_s[PF_BM], ctx_s[PF_BM];
    __shared__ int warp_lim[WG_THREADS / 32]; /* each warp's longest context in the current run */
    E *q_s = (E *)(((uintptr_t)wg_smem_raw + 1023) & ~(uintptr_t)1023);
    E *kv_s = q_s + PF_BM * HD; /* stage st: K at kv_s + 2 st TILE, V after it */
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, wg = warp >> 2, g = lane >> 2, tq = lane & 3;
    const int64_t h = blockIdx.x, hkv = h / a.group;
    const int64_t t0 = (int64_t)(gridDim.y - 1 - blockIdx.y) * PF_BM; /* the longest contexts first */
    const int n_rows = (int)(a.n_tok - t0 < PF_BM ? a.n_tok - t0 : PF_BM);
    pf_load_rows<WG_THREADS>(row_s, ctx_s, a, t0, n_rows);
    pf_stage_q<E, HD, WG_THREADS>(q_s, a, t0, h, n_rows, wg_off<HD, PF_BM>());
    fence_proxy_async();
    const int r_lo = warp * 16 + g, r_hi = r_lo + 8;
    float o[HD / 8][4];
    pf_zero(o);
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    __syncthreads();

    for (int s0 = 0; s0 < n_rows;) {
        int kv_len;
        const int s1 = pf_run_end(row_s, ctx_s, s0, n_rows, &kv_len);
        const int32_t *table = a.tables + (int64_t)row_s[s0] * a.table_w;
        const int ctx_lo = r_lo >= s0 && r_lo < s1 ? ctx_s[r_lo] : 0,
                  ctx_hi = r_hi >= s0 && r_hi < s1 ? ctx_s[r_hi] : 0;
        int warp_max = max(ctx_lo, ctx_hi), warp_min = min(ctx_lo, ctx_hi);
#pragma unroll
        for (int off = 16; off; off >>= 1) {
            warp_max = max(warp_max, __shfl_xor_sync(0xffffffffu, warp_max, off));
            warp_min = min(warp_min, __shfl_xor_sync(0xffffffffu, warp_min, off));
        }
        if (lane == 0) warp_lim[warp] = warp_max;
        __syncthreads(); /* warp_lim written; the previous run's products are done with every stage */
        /* the warpgroup skips the tiles none of its rows can see (the causal skip);
         * wgmma is collective over the group, so the limit is the group's */
        int group_max = 0;
#pragma unroll
        for (int w = 0; w < 4; w++)
            group_max = max(group_max, warp_lim[4 * wg + w]);
        const int n_tiles = (kv_len + BN - 1) / BN;
        if (n_tiles > 0)
            pf_load_kv_tile<E, HD, WG_THREADS>(kv_s, kv_s + TILE, a, table, hkv, 0, kv_len, wg_off<HD, BN>());
        cp_async_commit();
        for (int it = 0; it < n_tiles; it++) {
            /* tile it landed (and, past the barrier, every thread's part of it, made
             * visible to wgmma's reads); every group is done with tile it - 1, whose
             * stage the load of tile it + 1 then reuses */
            cp_async_wait<0>();
            fence_proxy_async();
            __syncthreads();
            if (it + 1 < n_tiles) {
                E *nk = kv_s + 2 * ((it + 1) % WG_STAGES) * TILE;
                pf_load_kv_tile<E, HD, WG_THREADS>(nk, nk + TILE, a, table, hkv, (it + 1) * BN, kv_len,
                                                   wg_off<HD, BN>());
            }
            cp_async_commit();
            const E *ks = kv_s + 2 * (it % WG_STAGES) * TILE, *vs = ks + TILE;
            const int p0 = it * BN;
            if (p0 >= group_max) continue;
            float s[BN / 8][4];
            pf_zero(s);
            wg_fence();
#pragma unroll
            for (int kk = 0; kk < HD / 16; kk++) {
                /* k-step kk: column block kk / 4, 32 bytes into it per step */
                const uint64_t da = wg_desc(q_s + (kk >> 2) * PF_BM * 64 + wg * 64 * 64 + (kk & 3) * 16, 16, 1024);
                const uint64_t db = wg_desc(ks + (kk >> 2) * BN * 64 + (kk & 3) * 16, 16, 1024);
                wgmma_ss<E, BN>(&s[0][0], da, db, kk > 0);
            }
            wg_commit();
            wg_wait_all<BN / 2>(&s[0][0]);
            pf_softmax_tile<BN / 8, HD / 8>(s, o, m, l, p0, ctx_lo, ctx_hi, p0 + BN > warp_min, a.scale_log2, tq);
            uint32_t pa[BN / 16][4]; /* all of P rounded first: no register writes between the products */
#pragma unroll
            for (int kk = 0; kk < BN / 16; kk++)
                pf_p_fragment<E>(pa[kk], s, kk);
            wg_fence();
#pragma unroll
            for (int kk = 0; kk < BN / 16; kk++) {
                /* 16 positions = two 8-row groups (2048 bytes) per k-step; the column
                 * blocks of V lie BN rows (BN * 128 bytes) apart */
                const uint64_t db = wg_desc(vs + kk * 16 * 64, BN * 128, 1024);
                wgmma_rs_tb<E, HD>(&o[0][0], pa[kk], db, 1);
            }
            wg_commit();
            wg_wait_all<HD / 2>(&o[0][0]);
        }
        s0 = s1;
    }
    pf_store_rows<HD>(a, t0, h, n_rows, r_lo, r_hi, o, l, tq);
#endif
}

/* Instances: two blocks an SM (97 KiB of shared memory each at head dim 128).
 * 128-position tiles (S as m64n128, one block an SM: 193 registers) measured
 * 12-25% slower than these (docs/BENCHMARKS.md, session 6): the two blocks' phases
 * overlapping each other is worth more than the wider product. */
template <typename E, int HD> static bool setup_one(cuda_backend *c, bool *usable) {
    cudaFuncAttributes fa;
    if (!rg_cuda_check(c, cudaFuncGetAttributes(&fa, attn_prefill_wg_kernel<E, HD>), "prefill attention (wgmma)"))
        return false;
    *usable = *usable && fa.binaryVersion == 90;
    return rg_cuda_check(c,
                         cudaFuncSetAttribute(attn_prefill_wg_kernel<E, HD>,
                                              cudaFuncAttributeMaxDynamicSharedMemorySize, (int)wg_smem(HD)),
                         "prefill attention (wgmma) setup");
}

bool rg_cuda_prefill_wg_setup(cuda_backend *c, bool *usable) {
    *usable = true;
    return setup_one<__half, 64>(c, usable) && setup_one<__nv_bfloat16, 64>(c, usable) &&
           setup_one<__half, 128>(c, usable) && setup_one<__nv_bfloat16, 128>(c, usable);
}

template <typename E> static void launch(cuda_backend *c, int64_t hd, dim3 grid, const prefill_params &a) {
    if (hd == 64)
        attn_prefill_wg_kernel<E, 64><<<grid, WG_THREADS, wg_smem(64), c->stream>>>(a);
    else
        attn_prefill_wg_kernel<E, 128><<<grid, WG_THREADS, wg_smem(128), c->stream>>>(a);
}

void rg_cuda_prefill_wg_launch(cuda_backend *c, int64_t hd, bool f16, dim3 grid, const prefill_params &a) {
    if (f16)
        launch<__half>(c, hd, grid, a);
    else
        launch<__nv_bfloat16>(c, hd, grid, a);
}
