/* attention_flash.c — flash attention for one query token over a range of its
 * context's KV blocks, all heads: block by block, and within a block KV head by
 * KV head, the query heads of each GQA group scored against the group's K slab
 * together and accumulated from its V slab together, so every K/V element is
 * read (and converted) once per token and only one block of scores per group
 * exists at a time.
 *
 * Online softmax, per query head i, after the blocks seen so far:
 *   m_i = the largest score,  l_i = sum_j exp(s_j - m_i),
 *   acc_i = sum_j exp(s_j - m_i) v_j.
 * A block with a larger max m' rescales l_i and acc_i by exp(m_i - m') before
 * adding its own terms; out = acc_i / l_i. Every exponent is <= 0, so nothing
 * overflows whatever the score range. Ranges of one token's context computed
 * apart (split-K, for parallelism in decode) merge by the same rule:
 * M = max_c m_c, out = sum_c exp(m_c - M) acc_c / sum_c exp(m_c - M) l_c. */
#include <math.h>
#include <string.h>

#include "backend/cpu/attention_internal.h"

int64_t rg_attn_flash_scratch(const rg_attn_job *j) {
    return j->group * j->block_size; /* one block of scores per head of a group */
}

void rg_attn_flash_range(const rg_attn_job *j, int64_t t, int64_t b0, int64_t b1, float *acc, float *m, float *l,
                         float *scratch) {
    const rg_attn_args *a = j->a;
    const rg_attn_isa *isa = j->isa;
    int64_t hd = j->head_dim, bs = j->block_size, n_group = j->group, n_head = a->n_head, n_ctx = a->n_ctx[t];
    const float *q = a->q + t * n_head * hd;
    const int32_t *table = a->tables[t];
    float *s = scratch;

    memset(acc, 0, (size_t)(n_head * hd) * sizeof *acc);
    for (int64_t h = 0; h < n_head; h++)
        m[h] = -INFINITY, l[h] = 0;
    for (int64_t b = b0; b < b1; b++) {
        int64_t p0 = b * bs, n = n_ctx - p0 < bs ? n_ctx - p0 : bs;
        for (int64_t g = 0; g < j->n_head_kv; g++) {
            int64_t h0 = g * n_group;
            isa->dot(j->dtype, q + h0 * hd, (int)n_group, rg_kv_k(a->pool, table[b], a->layer, g), n, hd, a->scale, s,
                     bs);
            for (int64_t i = 0, h = h0; i < n_group; i++, h++) {
                float *si = s + i * bs;
                if (a->alibi_slopes) {
                    float slope = a->alibi_slopes[h];
                    for (int64_t r = 0; r < n; r++)
                        si[r] += slope * (float)(p0 + r - (n_ctx - 1));
                }
                float m_block = isa->max(si, n);
                if (m_block > m[h]) {
                    if (m[h] != -INFINITY) { /* before the first block acc and l are zero */
                        float c = expf(m[h] - m_block);
                        l[h] *= c;
                        isa->scale(acc + h * hd, hd, c);
                    }
                    m[h] = m_block;
                }
                l[h] += isa->exp_sum(si, n, m[h]);
            }
            isa->axpy(j->dtype, s, (int)n_group, bs, rg_kv_v(a->pool, table[b], a->layer, g), n, hd, acc + h0 * hd);
        }
    }
}

void rg_attn_flash_merge(const rg_attn_job *j, int64_t n_part, const float *part, int64_t h, float *out) {
    int64_t hd = j->head_dim, n_head = j->a->n_head, stride = rg_attn_flash_part_floats(j);
    float big = -INFINITY, l = 0;
    for (int64_t c = 0; c < n_part; c++) {
        float mc = part[c * stride + n_head * hd + h];
        big = mc > big ? mc : big;
    }
    memset(out, 0, (size_t)hd * sizeof *out);
    for (int64_t c = 0; c < n_part; c++) {
        const float *pc = part + c * stride;
        float w = expf(pc[n_head * hd + h] - big);
        l += w * pc[n_head * hd + n_head + h];
        for (int64_t d = 0; d < hd; d++)
            out[d] += w * pc[h * hd + d];
    }
    j->isa->scale(out, hd, l > 0 ? 1.0f / l : 0.0f);
}
