/* attention.h — causal attention over the paged KV cache, in two forms:
 *
 *   flash: tiled over KV blocks with an online softmax (running max m, running
 *          sum l, rescaled accumulator) — never materializes the score row, reads
 *          each KV head once per query group (GQA-aware);
 *   naive: materializes the full score row, softmax, then the weighted sum —
 *          the baseline the field measures flash against.
 *
 * Token t (query q[t], [n_head][head_dim] f32, RoPE applied) attends to positions
 * [0, n_ctx[t]) of its sequence, whose block table is tables[t]. Query head h
 * reads KV head h / (n_head / n_head_kv). out is [n_tok][n_head][head_dim]. */
#ifndef RG_BACKEND_CPU_ATTENTION_H
#define RG_BACKEND_CPU_ATTENTION_H

#include "backend/cpu/ops.h"
#include "kv/kv_pool.h"

typedef enum rg_attn_kind { RG_ATTN_FLASH = 0, RG_ATTN_NAIVE = 1 } rg_attn_kind;

typedef struct rg_attn_args {
    const rg_kv_pool *pool;
    int64_t layer;
    int64_t n_tok, n_head;           /* n_head_kv and head_dim come from the pool */
    const float *q;
    float *out;
    const int32_t *const *tables;    /* per token */
    const int32_t *n_ctx;            /* per token: attend to positions [0, n_ctx) */
    float scale;                     /* usually 1/sqrt(head_dim) */
    rg_attn_kind kind;
    const float *alibi_slopes;       /* NULL, or per query head: score += slope_h * (j - (n_ctx - 1)) */
} rg_attn_args;

/* out for every token (a token with n_ctx 0 gets zeros). tables[t] must cover
 * positions [0, n_ctx[t]), all stored. Runs on ctx->pool (NULL: the calling
 * thread) and grows ctx->scratch as needed: n_threads * (block_size + 2) *
 * (n_head / n_head_kv) floats for flash, n_threads * max n_ctx for naive; aborts
 * if that allocation fails (rg_cpu_attention_reserve up front avoids both).
 * n_head must be a multiple of n_head_kv (abort otherwise: a bug). */
void rg_cpu_attention(rg_cpu_ctx *ctx, const rg_attn_args *a);

/* Grow ctx->scratch so that attention of n_head query heads over `pool` with
 * contexts up to max_ctx, either kind, never allocates. RG_E_NOMEM on failure. */
rg_status rg_cpu_attention_reserve(rg_cpu_ctx *ctx, const rg_kv_pool *pool, int64_t n_head, int64_t max_ctx,
                                   rg_err *err);

#endif
