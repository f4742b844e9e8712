/* attention.cu — causal attention over the paged KV pool on the GPU, as split-KV
 * flash decoding: the context of each (token, KV head) is cut into splits that
 * run as separate blocks, so a batch of one with a long context still fills the
 * GPU; each block keeps a running max, running sum and rescaled accumulator
 * (online softmax) over tiles of RG_CUDA_ATTN_TILE positions read through the
 * block table, for all the query heads that share its KV head (GQA: each K/V
 * tile is loaded once for the whole group). A second kernel merges the splits.
 *
 * Every query token is its own grid row, so prefill reuses the decode kernel:
 * correct, but each token re-reads its context from L2; a query-tiled prefill
 * kernel (tensor cores) is not written yet. Scores, softmax and sums are f32. */
#include <float.h>

#include "backend/cuda/cuda_internal.h"

#define ATTN_THREADS 128
#define TILE RG_CUDA_ATTN_TILE

template <typename E> __device__ __forceinline__ float elem_f(E v);
template <> __device__ __forceinline__ float elem_f<float>(float v) { return v; }
template <> __device__ __forceinline__ float elem_f<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float elem_f<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

struct attn_params {
    const float *q;
    const uint8_t *layer_base;
    const int32_t *row, *tables, *n_ctx;
    const float *alibi;
    int64_t table_w, n_head, n_head_kv, head_dim, bs, n_split;
    size_t unit_bytes, kv_bytes, head_bytes;
    float scale;
    float *o_part;  /* [n_tok][n_head][n_split][head_dim] */
    float2 *ml;     /* [n_tok][n_head][n_split] */
};

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

/* grid (n_head, n_tok): out = sum_s o_s e^(m_s - M) / sum_s l_s e^(m_s - M). */
__global__ void attn_combine_kernel(const float *o_part, const float2 *ml, int64_t n_head, int64_t n_split,
                                    int64_t hd, float *out) {
    int64_t h = blockIdx.x, t = blockIdx.y;
    const float2 *m = ml + (t * n_head + h) * n_split;
    float M = -FLT_MAX;
    for (int64_t s = 0; s < n_split; s++)
        if (m[s].y > 0) M = fmaxf(M, m[s].x);
    float L = 0;
    for (int64_t s = 0; s < n_split; s++)
        if (m[s].y > 0) L += m[s].y * expf(m[s].x - M);
    for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
        float acc = 0;
        for (int64_t s = 0; s < n_split; s++)
            if (m[s].y > 0) acc += o_part[((t * n_head + h) * n_split + s) * hd + d] * expf(m[s].x - M);
        out[(t * n_head + h) * hd + d] = L > 0 ? acc / L : 0.0f;
    }
}

static size_t attn_smem(int64_t G, int64_t hd) {
    return (size_t)(G * hd + 2 * TILE * (hd + 1) + G * TILE + G * hd + 3 * G) * sizeof(float);
}

bool rg_cuda_attention_setup(cuda_backend *c, int64_t n_head, int64_t n_head_kv, int64_t head_dim) {
    int smem = (int)attn_smem(n_head / n_head_kv, head_dim);
    return rg_cuda_check(c, cudaFuncSetAttribute(attn_split_kernel<float>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem), "attention setup") &&
           rg_cuda_check(c, cudaFuncSetAttribute(attn_split_kernel<__half>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem), "attention setup") &&
           rg_cuda_check(c, cudaFuncSetAttribute(attn_split_kernel<__nv_bfloat16>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem), "attention setup");
}

void rg_cuda_attention(rg_backend *be, const rg_backend_attn *q) {
    cuda_backend *c = cuda_of(be);
    int64_t n_tok = c->n_tok;
    if (n_tok <= 0 || c->status) return;
    attn_params a;
    a.q = q->q;
    a.layer_base = c->kv_data + (size_t)q->layer * c->kv_layer_bytes;
    a.row = c->d_row, a.tables = c->d_tables, a.n_ctx = c->d_n_ctx;
    a.alibi = q->alibi_slopes;
    a.table_w = c->max_table_blocks;
    a.n_head = q->n_head, a.n_head_kv = c->kvc.n_head_kv, a.head_dim = c->kvc.head_dim, a.bs = c->kvc.block_size;
    a.unit_bytes = c->kv_unit_bytes, a.kv_bytes = c->kv_kv_bytes, a.head_bytes = c->kv_head_bytes;
    a.scale = q->scale;
    /* splits: aim for ~4 blocks per SM, within the partials scratch and the tiles
     * the longest context allowed has; independent of this step's contexts */
    int64_t n_tiles = (c->max_table_blocks * c->kvc.block_size + TILE - 1) / TILE;
    int64_t want = (4 * (int64_t)c->n_sm + n_tok * a.n_head_kv - 1) / (n_tok * a.n_head_kv);
    int64_t cap = c->attn_entries / (n_tok * a.n_head);
    int64_t n_split = want < n_tiles ? want : n_tiles;
    if (n_split > cap) n_split = cap;
    if (n_split < 1) n_split = 1;
    if (cap < 1) {
        rg_cuda_fail(c, "attention", "split scratch too small for the step");
        return;
    }
    a.n_split = n_split;
    a.o_part = c->attn_o, a.ml = c->attn_ml;
    int64_t G = a.n_head / a.n_head_kv, hd = a.head_dim;
    size_t smem = attn_smem(G, hd);
    dim3 grid((unsigned)a.n_split, (unsigned)a.n_head_kv, (unsigned)n_tok);
    if (c->kvc.dtype == RG_F32) attn_split_kernel<float><<<grid, ATTN_THREADS, smem, c->stream>>>(a);
    else if (c->kvc.dtype == RG_F16) attn_split_kernel<__half><<<grid, ATTN_THREADS, smem, c->stream>>>(a);
    else attn_split_kernel<__nv_bfloat16><<<grid, ATTN_THREADS, smem, c->stream>>>(a);
    if (!RG_CUDA_LAUNCHED(c, "attention")) return;
    attn_combine_kernel<<<dim3((unsigned)a.n_head, (unsigned)n_tok), 128, 0, c->stream>>>(c->attn_o, c->attn_ml,
                                                                                        a.n_head, a.n_split, hd, q->out);
    RG_CUDA_LAUNCHED(c, "attention combine");
}
