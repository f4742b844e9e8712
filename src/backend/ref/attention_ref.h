/* attention_ref.h — the plain reference for causal attention: contiguous f32
 * K/V, double precision, one loop per formula. It knows nothing of the paged
 * pool, so a test that stores K/V in the pool and compares rg_cpu_attention
 * against it checks the pool's indexing too.
 *
 *   out[t][h] = sum_j softmax_j(scale * q[t][h] . K[t][j][g] + bias_h(j)) * V[t][j][g]
 *   for j in [0, n_ctx[t]), g = h / (n_head / n_head_kv),
 *   bias_h(j) = alibi_slopes ? alibi_slopes[h] * (j - (n_ctx[t] - 1)) : 0. */
#ifndef RG_BACKEND_REF_ATTENTION_REF_H
#define RG_BACKEND_REF_ATTENTION_REF_H

#include <stdint.h>

#include "core/error.h"

/* q, out: [n_tok][n_head][head_dim]. k[t], v[t]: token t's sequence as
 * [n_ctx[t]][n_head_kv][head_dim] (tokens of one sequence may share pointers).
 * A token with n_ctx[t] == 0 gets zeros. RG_E_INVALID if n_head is not a
 * multiple of n_head_kv, RG_E_NOMEM if the score row cannot be allocated. */
rg_status rg_ref_attention(int64_t n_tok, int64_t n_head, int64_t n_head_kv, int64_t head_dim, const float *q,
                           const float *const *k, const float *const *v, const int32_t *n_ctx, float scale,
                           const float *alibi_slopes, float *out, rg_err *err);

#endif
