/* attention_naive.c — the baseline the field measures flash against, for one
 * (token, query head) work item: materialize all n_ctx scores, softmax them,
 * then the weighted sum of V. Each query head reads its KV head's blocks for
 * itself (no sharing across a GQA group) and the score row grows with the
 * context; the inner loops are the same SIMD ones flash uses, so a benchmark of
 * the two measures the algorithm, not the code quality. */
#include <string.h>

#include "backend/cpu/attention_internal.h"

int64_t rg_attn_naive_scratch(const rg_attn_job *j, int64_t max_ctx) {
    (void)j;
    return max_ctx; /* the score row */
}

void rg_attn_naive_item(const rg_attn_job *j, int64_t t, int64_t h, float *scores) {
    const rg_attn_args *a = j->a;
    const rg_attn_isa *isa = j->isa;
    int64_t hd = j->head_dim, bs = j->block_size, g = h / j->group, n_ctx = a->n_ctx[t];
    const float *q = a->q + (t * a->n_head + h) * hd;
    float *out = a->out + (t * a->n_head + h) * hd;
    const int32_t *table = a->tables[t];

    memset(out, 0, (size_t)hd * sizeof *out);
    if (n_ctx <= 0) return;
    for (int64_t p0 = 0; p0 < n_ctx; p0 += bs) {
        int64_t n = n_ctx - p0 < bs ? n_ctx - p0 : bs;
        isa->dot(j->dtype, q, 1, rg_kv_k(a->pool, table[p0 / bs], a->layer, g), n, hd, a->scale, scores + p0, 0);
    }
    if (a->alibi_slopes)
        for (int64_t p = 0; p < n_ctx; p++)
            scores[p] += a->alibi_slopes[h] * (float)(p - (n_ctx - 1));
    float sum = isa->exp_sum(scores, n_ctx, isa->max(scores, n_ctx));
    for (int64_t p0 = 0; p0 < n_ctx; p0 += bs) {
        int64_t n = n_ctx - p0 < bs ? n_ctx - p0 : bs;
        isa->axpy(j->dtype, scores + p0, 1, 0, rg_kv_v(a->pool, table[p0 / bs], a->layer, g), n, hd, out);
    }
    isa->scale(out, hd, 1.0f / sum);
}
