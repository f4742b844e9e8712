/* attention_internal.h — internal to the CPU attention: the inner loops per ISA
 * (attention_simd.c) and the two algorithms built on them (attention_flash.c,
 * attention_naive.c), which attention.c schedules over the thread pool.
 *
 * A slab is the K (or V) of one (block, layer, KV head): block_size rows of
 * head_dim elements in the pool's dtype, read directly by the kernels, which
 * convert f16/bf16 to f32 as they load. */
#ifndef RG_BACKEND_CPU_ATTENTION_INTERNAL_H
#define RG_BACKEND_CPU_ATTENTION_INTERNAL_H

#include <stdint.h>

#include "backend/cpu/attention.h"

typedef struct rg_attn_isa {
    /* s[i * s_stride + j] = scale * dot(q + i * hd, row j of slab k) for i < nh, j < n_rows. */
    void (*dot)(rg_dtype t, const float *q, int nh, const void *k, int64_t n_rows, int64_t hd, float scale, float *s,
                int64_t s_stride);
    /* acc[i * hd + d] += sum_j p[i * p_stride + j] * (row j of slab v)[d] for i < nh, j < n_rows, d < hd. */
    void (*axpy)(rg_dtype t, const float *p, int nh, int64_t p_stride, const void *v, int64_t n_rows, int64_t hd,
                 float *acc);
    /* max of s[0, n). */
    float (*max)(const float *s, int64_t n);
    /* s[j] = exp(s[j] - m) for j < n; returns the sum of the new s. */
    float (*exp_sum)(float *s, int64_t n, float m);
    /* x[i] *= c, i < n. */
    void (*scale)(float *x, int64_t n, float c);
} rg_attn_isa;

/* The inner loops for the ISA matmul uses too (rg_cpu_isa_active), so forcing
 * the scalar kernels for a test forces them here as well. */
const rg_attn_isa *rg_attn_isa_get(void);

/* One parallel call: the arguments plus what every work item needs. */
typedef struct rg_attn_job {
    const rg_attn_args *a;
    const rg_attn_isa *isa;
    int64_t n_head_kv, head_dim, block_size, group; /* group = n_head / n_head_kv */
    rg_dtype dtype;
} rg_attn_job;

/* Floats of per-thread scratch each algorithm needs for contexts up to max_ctx. */
int64_t rg_attn_flash_scratch(const rg_attn_job *j);
int64_t rg_attn_naive_scratch(const rg_attn_job *j, int64_t max_ctx);

/* Flash over blocks [b0, b1) of token t's context, every head: leaves the
 * online-softmax state, acc [n_head][head_dim] (not yet divided by l), m and l
 * [n_head]. acc/m/l may be a partial record (below) or out[t] and scratch. */
void rg_attn_flash_range(const rg_attn_job *j, int64_t t, int64_t b0, int64_t b1, float *acc, float *m, float *l,
                         float *scratch);

/* A partial record of one range: acc [n_head][head_dim], m [n_head], l [n_head]. */
static inline int64_t rg_attn_flash_part_floats(const rg_attn_job *j) { return j->a->n_head * (j->head_dim + 2); }
/* out (head_dim floats) = head h of the token whose context is split over the
 * n_part consecutive partial records at part. */
void rg_attn_flash_merge(const rg_attn_job *j, int64_t n_part, const float *part, int64_t h, float *out);

/* Naive: token t, query head h. */
void rg_attn_naive_item(const rg_attn_job *j, int64_t t, int64_t h, float *scratch);

#endif
