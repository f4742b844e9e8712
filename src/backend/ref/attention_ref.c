/* attention_ref.c — reference attention: scores, softmax, weighted sum, all in
 * double over contiguous f32 K/V. Allocates one score row per call. */
#include "backend/ref/attention_ref.h"

#include <math.h>
#include <stdlib.h>

rg_status rg_ref_attention(int64_t n_tok, int64_t n_head, int64_t n_head_kv, int64_t head_dim, const float *q,
                           const float *const *k, const float *const *v, const int32_t *n_ctx, float scale,
                           const float *alibi_slopes, float *out, rg_err *err) {
    if (n_head_kv <= 0 || n_head % n_head_kv)
        return rg_fail(err, RG_E_INVALID, "attention: %lld heads over %lld kv heads", (long long)n_head,
                       (long long)n_head_kv);
    int64_t group = n_head / n_head_kv, max_ctx = 1;
    for (int64_t t = 0; t < n_tok; t++)
        if (n_ctx[t] > max_ctx) max_ctx = n_ctx[t];
    double *p = malloc((size_t)max_ctx * sizeof *p);
    if (!p) return rg_fail(err, RG_E_NOMEM, "attention: out of memory for %lld scores", (long long)max_ctx);
    for (int64_t t = 0; t < n_tok; t++) {
        for (int64_t h = 0; h < n_head; h++) {
            int64_t g = h / group, n = n_ctx[t];
            const float *qh = q + (t * n_head + h) * head_dim;
            float *o = out + (t * n_head + h) * head_dim;
            double max = -INFINITY, sum = 0;
            for (int64_t j = 0; j < n; j++) {
                const float *kj = k[t] + (j * n_head_kv + g) * head_dim;
                double s = 0;
                for (int64_t d = 0; d < head_dim; d++)
                    s += (double)qh[d] * kj[d];
                s *= scale;
                if (alibi_slopes) s += (double)alibi_slopes[h] * (double)(j - (n - 1));
                p[j] = s;
                if (s > max) max = s;
            }
            for (int64_t j = 0; j < n; j++)
                sum += p[j] = exp(p[j] - max);
            for (int64_t d = 0; d < head_dim; d++) {
                double acc = 0;
                for (int64_t j = 0; j < n; j++)
                    acc += p[j] * v[t][(j * n_head_kv + g) * head_dim + d];
                o[d] = n > 0 ? (float)(acc / sum) : 0.0f;
            }
        }
    }
    free(p);
    return RG_OK;
}
