/* attention.cu — causal attention over the paged KV pool on the GPU, as split-KV
 * flash decoding: the context of each (token, KV head) is cut into splits that
 * run as separate blocks, so a batch of one with a long context still fills the
 * GPU; each block keeps a running max, running sum and rescaled accumulator
 * (online softmax) over the positions it reads through the block table, for all
 * the query heads that share its KV head (GQA: each K/V row is loaded once for
 * the whole group). A second kernel merges the splits.
 *
 * Two split kernels: f16/bf16 KV with head_dim 64/128/256 and groups up to 8
 * run the register-streaming decode kernel (attn_decode.cu); everything else
 * runs the general one below, which stages tiles of RG_CUDA_ATTN_TILE positions
 * as f32 in shared memory (any head_dim that is a multiple of 8, groups to 16).
 *
 * Every query token is its own grid row, so prefill reuses the decode kernels:
 * correct, but each token re-reads its context from L2; a query-tiled prefill
 * kernel (tensor cores) is not written yet. Scores, softmax and sums are f32. */
#include <float.h>

#include "backend/cuda/attention.cuh"

#define ATTN_THREADS 128
#define TILE RG_CUDA_ATTN_TILE

template <typename E> __device__ __forceinline__ float elem_f(E v);
template <> __device__ __forceinline__ float elem_f<float>(float v) { return v; }
template <> __device__ __forceinline__ float elem_f<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float elem_f<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

/* grid (n_split, n_head_kv, n_tok). Shared memory: q [G][hd], K and V tiles
 * [TILE][hd + 1], probabilities [G][TILE], accumulator [G][hd], per-head state. */
template <typename E> __global__ void __launch_bounds__(ATTN_THREADS) attn_split_kernel(attn_params a) {
    extern __shared__ float sm[];
    const int64_t hd = a.head_dim, G = a.n_head / a.n_head_kv, hdp = hd + 1;
    const int64_t split = blockIdx.x, hkv = blockIdx.y, t = blockIdx.z;
    float *q_s = sm, *k_s = q_s + G * hd, *v_s = k_s + TILE * hdp, *p_s = v_s + TILE * hdp, *o_s = p_s + G * TILE;
    float *m_s = o_s + G * hd, *l_s = m_s + G, *alpha_s = l_s + G;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid / 32;
    const int32_t n_ctx = a.n_ctx[t];
    const int32_t *table = a.tables + (int64_t)a.row[t] * a.table_w;
    /* this token's context in n_split near-equal runs of tiles (the split count is
     * fixed per batch size so that a captured decode step replays at any context) */
    const int64_t n_tiles = (n_ctx + TILE - 1) / TILE, per = (n_tiles + a.n_split - 1) / a.n_split;
    const int64_t tile0 = split * per;
    int64_t tile1 = tile0 + per;
    if (tile1 > n_tiles) tile1 = n_tiles;

    for (int64_t i = tid; i < G * hd; i += ATTN_THREADS) {
        q_s[i] = a.q[(t * a.n_head + hkv * G) * hd + i] * a.scale;
        o_s[i] = 0;
    }
    for (int64_t g = tid; g < G; g += ATTN_THREADS) m_s[g] = -FLT_MAX, l_s[g] = 0;
    __syncthreads();

    for (int64_t tile = tile0; tile < tile1; tile++) {
        const int64_t p0 = tile * TILE;
        const int n_valid = (int)(n_ctx - p0 < TILE ? n_ctx - p0 : TILE);
        /* K and V of this tile's positions, 16 bytes a load, converted to f32 */
        constexpr int VE = 16 / sizeof(E);
        const int64_t vecs = hd / VE;
        for (int64_t i = tid; i < n_valid * vecs; i += ATTN_THREADS) {
            int64_t j = i / vecs, d0 = (i % vecs) * VE, p = p0 + j;
            const uint8_t *unit = a.layer_base + (size_t)table[p / a.bs] * a.unit_bytes + hkv * a.head_bytes;
            const E *kr = (const E *)unit + (p % a.bs) * hd + d0;
            const E *vr = (const E *)(unit + a.kv_bytes) + (p % a.bs) * hd + d0;
            uint4 ku = __ldg((const uint4 *)kr), vu = __ldg((const uint4 *)vr);
            const E *ke = (const E *)&ku, *ve = (const E *)&vu;
#pragma unroll
            for (int e = 0; e < VE; e++) {
                k_s[j * hdp + d0 + e] = elem_f<E>(ke[e]);
                v_s[j * hdp + d0 + e] = elem_f<E>(ve[e]);
            }
        }
        __syncthreads();
        /* scores */
        for (int64_t i = tid; i < G * TILE; i += ATTN_THREADS) {
            int64_t g = i / TILE, j = i % TILE;
            float s = -FLT_MAX;
            if (j < n_valid) {
                s = 0;
                for (int64_t d = 0; d < hd; d++) s = fmaf(q_s[g * hd + d], k_s[j * hdp + d], s);
                if (a.alibi) s += a.alibi[hkv * G + g] * (float)(p0 + j - (n_ctx - 1));
            }
            p_s[i] = s;
        }
        __syncthreads();
        /* online softmax: one warp per query head, one lane per position */
        for (int64_t g = warp; g < G; g += ATTN_THREADS / 32) {
            float s = p_s[g * TILE + lane];
            float mx = s;
            for (int off = 16; off; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
            float m_old = m_s[g], m_new = fmaxf(m_old, mx);
            float pj = lane < n_valid ? expf(s - m_new) : 0.0f;
            float sum = pj;
            for (int off = 16; off; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
            p_s[g * TILE + lane] = pj;
            __syncwarp();
            if (lane == 0) {
                float alpha = expf(m_old - m_new);
                alpha_s[g] = alpha;
                l_s[g] = l_s[g] * alpha + sum;
                m_s[g] = m_new;
            }
        }
        __syncthreads();
        /* acc = acc * alpha + P V */
        for (int64_t i = tid; i < G * hd; i += ATTN_THREADS) {
            int64_t g = i / hd, d = i % hd;
            float acc = o_s[i] * alpha_s[g];
            for (int j = 0; j < n_valid; j++) acc = fmaf(p_s[g * TILE + j], v_s[j * hdp + d], acc);
            o_s[i] = acc;
        }
        __syncthreads();
    }
    for (int64_t i = tid; i < G * hd; i += ATTN_THREADS) {
        int64_t g = i / hd, d = i % hd, h = hkv * G + g;
        a.o_part[((t * a.n_head + h) * a.n_split + split) * hd + d] = o_s[i];
    }
    for (int64_t g = tid; g < G; g += ATTN_THREADS) {
        int64_t h = hkv * G + g;
        a.ml[(t * a.n_head + h) * a.n_split + split] = make_float2(m_s[g], l_s[g]);
    }
}

#define MERGE_THREADS 256
/* The most splits a step uses (the merge keeps two floats a split in shared memory). */
#define MAX_SPLIT 1024

static __device__ float block_reduce(float v, bool take_max, float *red) {
    for (int off = 16; off; off >>= 1) {
        const float o = __shfl_xor_sync(0xffffffffu, v, off);
        v = take_max ? fmaxf(v, o) : v + o;
    }
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
    __syncthreads();
    v = red[0];
    for (int w = 1; w < MERGE_THREADS / 32; w++) v = take_max ? fmaxf(v, red[w]) : v + red[w];
    __syncthreads(); /* red is reused by the next call */
    return v;
}

/* Threads per (split, 16-byte column) group of the merge, and its shared floats. */
static __host__ __device__ int merge_groups(int64_t hd) { return MERGE_THREADS / (int)(hd / 4); }
static size_t merge_smem(int64_t n_split, int64_t hd) {
    return (size_t)(2 * n_split + merge_groups(hd) * hd) * sizeof(float);
}

/* grid (n_head, n_tok), MERGE_THREADS threads:
 *   out = sum_s o_s 2^((m_s - M) k) / sum_s l_s 2^((m_s - M) k)
 * over the splits that saw positions (l_s > 0; the others may hold anything),
 * with k = to_log2: 1 where the split maxima are in log2 units, log2(e) where
 * natural. The split weights go to shared memory first; then groups of hd/4
 * threads, 16 bytes a thread, take every merge_groups-th split, so a long
 * split list is read with many loads in flight rather than one chain. */
__global__ void __launch_bounds__(MERGE_THREADS) attn_merge_kernel(const float *o_part, const float2 *ml,
                                                                   int64_t n_head, int64_t n_split, int64_t hd,
                                                                   float to_log2, float *out) {
    RG_PDL_TRIGGER();
    RG_PDL_WAIT();
    extern __shared__ float sh[]; /* weight [n_split] | l [n_split] | per-group sums [groups][hd] */
    __shared__ float red[MERGE_THREADS / 32];
    const int64_t row = (int64_t)blockIdx.y * n_head + blockIdx.x;
    const float2 *mlr = ml + row * n_split;
    float *wt = sh, *sum = sh + n_split, *part = sh + 2 * n_split;
    const int tid = threadIdx.x;
    float mx = -FLT_MAX;
    for (int64_t s = tid; s < n_split; s += MERGE_THREADS) {
        const float2 v = mlr[s];
        wt[s] = v.x, sum[s] = v.y;
        if (v.y > 0) mx = fmaxf(mx, v.x);
    }
    mx = block_reduce(mx, true, red);
    float total = 0;
    for (int64_t s = tid; s < n_split; s += MERGE_THREADS) { /* the same s as above: no barrier needed */
        const float w = sum[s] > 0 ? exp2f((wt[s] - mx) * to_log2) : 0.0f;
        wt[s] = w;
        total += sum[s] * w;
    }
    total = block_reduce(total, false, red); /* its barriers publish wt */
    const int nv = (int)(hd / 4), groups = merge_groups(hd), grp = tid / nv, v = tid % nv;
    if (grp < groups) {
        float4 acc = make_float4(0, 0, 0, 0);
#pragma unroll 4
        for (int64_t s = grp; s < n_split; s += groups) {
            const float w = wt[s];
            if (w > 0) {
                const float4 o = __ldg((const float4 *)(o_part + (row * n_split + s) * hd) + v);
                acc.x = fmaf(w, o.x, acc.x), acc.y = fmaf(w, o.y, acc.y);
                acc.z = fmaf(w, o.z, acc.z), acc.w = fmaf(w, o.w, acc.w);
            }
        }
        float *dst = part + grp * hd + 4 * v;
        dst[0] = acc.x, dst[1] = acc.y, dst[2] = acc.z, dst[3] = acc.w;
    }
    __syncthreads();
    for (int64_t d = tid; d < hd; d += MERGE_THREADS) {
        float o = 0;
        for (int g = 0; g < groups; g++) o += part[g * hd + d];
        out[row * hd + d] = total > 0 ? o / total : 0.0f;
    }
}

static size_t attn_smem(int64_t G, int64_t hd) {
    return (size_t)(G * hd + 2 * TILE * (hd + 1) + G * TILE + G * hd + 3 * G) * sizeof(float);
}

static bool is_pow2(int64_t v) { return v > 0 && !(v & (v - 1)); }

/* The decode kernel for the attached pool's KV and this head layout, or NULL:
 * the general kernel runs. *unit: positions per step of the kernel that runs. */
static attn_kernel decode_kernel(const cuda_backend *c, int64_t group, int64_t head_dim, int64_t *unit) {
    attn_kernel k = is_pow2(c->kvc.block_size) ? rg_cuda_attn_decode_kernel(c->kvc.dtype, head_dim, group, unit) : NULL;
    if (!k) *unit = TILE;
    return k;
}

bool rg_cuda_attention_setup(cuda_backend *c, int64_t n_head, int64_t n_head_kv, int64_t head_dim) {
    int smem = (int)attn_smem(n_head / n_head_kv, head_dim);
    if (!rg_cuda_check(c, cudaFuncSetAttribute(attn_split_kernel<float>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem), "attention setup") ||
        !rg_cuda_check(c, cudaFuncSetAttribute(attn_split_kernel<__half>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem), "attention setup") ||
        !rg_cuda_check(c, cudaFuncSetAttribute(attn_split_kernel<__nv_bfloat16>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem), "attention setup"))
        return false;
    /* how many blocks of the split kernel this layout runs fit on an SM: the
     * split count is chosen to fill them once */
    int64_t unit;
    attn_kernel k = decode_kernel(c, n_head / n_head_kv, head_dim, &unit);
    int per_sm = 0;
    cudaError_t e = k ? cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, k, RG_CUDA_ATTN_DECODE_THREADS, 0)
                      : cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, attn_split_kernel<float>, ATTN_THREADS, smem);
    if (!rg_cuda_check(c, e, "attention setup")) return false;
    c->attn_blocks_per_sm = per_sm > 0 ? per_sm : 1;
    return true;
}

attn_params rg_cuda_attn_params(const cuda_backend *c, int64_t layer, int64_t n_head, float scale) {
    attn_params a;
    memset(&a, 0, sizeof a);
    a.layer_base = c->kv_data + (size_t)layer * c->kv_layer_bytes;
    a.row = c->d_row, a.tables = c->d_tables, a.n_ctx = c->d_n_ctx;
    a.table_w = c->max_table_blocks;
    a.n_head = n_head, a.n_head_kv = c->kvc.n_head_kv, a.head_dim = c->kvc.head_dim, a.bs = c->kvc.block_size;
    for (a.log2_bs = 0; ((int64_t)1 << a.log2_bs) < a.bs; a.log2_bs++) {}
    a.unit_bytes = c->kv_unit_bytes, a.kv_bytes = c->kv_kv_bytes, a.head_bytes = c->kv_head_bytes;
    a.scale = scale;
    a.o_part = c->attn_o, a.ml = c->attn_ml;
    return a;
}

int64_t rg_cuda_attn_splits(const cuda_backend *c, int64_t blocks, int64_t n_tok, int64_t n_head, int64_t positions) {
    const int64_t n_units = (c->max_table_blocks * c->kvc.block_size + positions - 1) / positions;
    const int64_t cap = c->attn_entries / (n_tok * n_head);
    int64_t n_split = blocks / (n_tok * c->kvc.n_head_kv);
    if (n_split > n_units) n_split = n_units;
    if (n_split > cap) n_split = cap;
    if (n_split > MAX_SPLIT) n_split = MAX_SPLIT;
    return n_split < 1 ? 1 : n_split;
}

void rg_cuda_attention(rg_backend *be, const rg_backend_attn *q) {
    cuda_backend *c = cuda_of(be);
    rg_cuda_forget_prepared(c);
    int64_t n_tok = c->n_tok;
    if (n_tok <= 0 || c->status) return;
    attn_params a = rg_cuda_attn_params(c, q->layer, q->n_head, q->scale);
    a.q = q->q;
    a.alibi = q->alibi_slopes;
    int64_t G = a.n_head / a.n_head_kv, hd = a.head_dim, unit;
    attn_kernel fast = decode_kernel(c, G, hd, &unit);
    /* splits: one wave of the blocks that fit on the GPU, within the steps the
     * longest context allowed has and the partials scratch; independent of this
     * step's contexts, so a captured step replays at any of them */
    if (c->attn_entries / (n_tok * a.n_head) < 1) {
        rg_cuda_fail(c, "attention", "split scratch too small for the step");
        return;
    }
    const int64_t n_split = rg_cuda_attn_splits(c, (int64_t)c->n_sm * c->attn_blocks_per_sm, n_tok, a.n_head, unit);
    a.n_split = n_split;
    a.out = fast && n_split == 1 ? q->out : NULL; /* one split: the decode kernel normalizes in place */
    dim3 grid((unsigned)a.n_split, (unsigned)a.n_head_kv, (unsigned)n_tok);
    if (fast) {
        rg_cuda_launch(c, fast, grid, dim3(RG_CUDA_ATTN_DECODE_THREADS), 0, a);
    } else {
        size_t smem = attn_smem(G, hd);
        if (c->kvc.dtype == RG_F32) attn_split_kernel<float><<<grid, ATTN_THREADS, smem, c->stream>>>(a);
        else if (c->kvc.dtype == RG_F16) attn_split_kernel<__half><<<grid, ATTN_THREADS, smem, c->stream>>>(a);
        else attn_split_kernel<__nv_bfloat16><<<grid, ATTN_THREADS, smem, c->stream>>>(a);
    }
    if (!RG_CUDA_LAUNCHED(c, "attention") || a.out) return;
    /* the decode kernel's maxima are in log2 units, the general kernel's natural */
    rg_cuda_launch(c, attn_merge_kernel, dim3((unsigned)a.n_head, (unsigned)n_tok), dim3(MERGE_THREADS),
                   merge_smem(n_split, hd), (const float *)c->attn_o, (const float2 *)c->attn_ml, a.n_head, a.n_split,
                   hd, fast ? 1.0f : 1.4426950408889634f, q->out);
    RG_CUDA_LAUNCHED(c, "attention merge");
}
