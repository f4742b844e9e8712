/* attention.cuh — what the attention kernels share (attention.cu: the dispatch,
 * the general tiled kernel and the split merge; attn_decode.cu: the fast kernel
 * for 16-bit KV). Both cut each (token, KV head)'s context into n_split
 * splits, one block each, and leave per split an unnormalized accumulator and
 * its (max, sum) for the merge, or the final output when n_split is 1. */
#ifndef RG_BACKEND_CUDA_ATTENTION_CUH
#define RG_BACKEND_CUDA_ATTENTION_CUH

#include "backend/cuda/cuda_internal.h"

struct attn_params {
    const float *q;
    const uint8_t *layer_base;
    const int32_t *row, *tables, *n_ctx;
    const float *alibi;
    int64_t table_w, n_head, n_head_kv, head_dim, bs, n_split;
    int log2_bs; /* block sizes are powers of two (divisors of RG_CUDA_ATTN_TILE) */
    size_t unit_bytes, kv_bytes, head_bytes;
    float scale;
    float *o_part; /* [n_tok][n_head][n_split][head_dim], unnormalized */
    float2 *ml;    /* [n_tok][n_head][n_split] (max, sum) */
    float *out;    /* non-NULL: n_split is 1 and the kernel writes the output itself */
};

typedef void (*attn_kernel)(attn_params);

/* The attention of `layer` over the attached pool for the current step, its
 * query heads scaled by `scale`: everything but q, alibi, n_split and out
 * (partials into the backend's attn_o / attn_ml). */
attn_params rg_cuda_attn_params(const cuda_backend *c, int64_t layer, int64_t n_head, float scale);
/* Splits per (token, KV head): `blocks` split blocks over the step's n_tok x
 * n_head_kv, within the units of `positions` the longest context allowed has
 * and the partials scratch (attn_entries), at least 1. From the batch size
 * only, so a captured step replays at any context. */
int64_t rg_cuda_attn_splits(const cuda_backend *c, int64_t blocks, int64_t n_tok, int64_t n_head, int64_t positions);

/* Threads per block of the decode kernel. */
#define RG_CUDA_ATTN_DECODE_THREADS 128

/* The decode kernel for this KV type, head_dim and query group (heads per KV
 * head), or NULL where it has no instance (f32 KV, other head dims, groups over
 * 8): those run the general kernel. *positions: how many positions one warp
 * reads per step, the unit in which the context is cut into splits.
 * The kernel writes split maxima in log2 units (merge with to_log2 = 1). */
attn_kernel rg_cuda_attn_decode_kernel(rg_dtype kv, int64_t head_dim, int64_t group, int64_t *positions);

#endif
