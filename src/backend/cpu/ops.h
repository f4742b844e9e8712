/* ops.h — the CPU backend's operations on f32 activations.
 *
 * Layouts: activations are row-major [n_tok][n] f32. A weight matrix is GGUF's
 * [n_out rows][k columns] in its stored dtype (row r = k contiguous elements,
 * rg_dtype_row_bytes(type, k) bytes). Every op here has a plain reference in
 * backend/ref/ops_ref.h (same semantics, no context), and tests/test_cpu_ops.c
 * checks one against the other on fresh random inputs with per-dtype tolerances.
 *
 * Activation formats follow how each weight format is meant to be used (and how
 * the reference outputs in tests/data/refdata were computed): for Q4_0/Q4_1/Q5_0/
 * Q5_1/Q8_0 weights the activations are quantized to Q8_0 (Q8_1-style sums for
 * the formats with a min), for the K-quants to Q8_K, for F16 weights rounded to
 * F16, for BF16 to BF16, for F32 kept as f32. */
#ifndef RG_BACKEND_CPU_OPS_H
#define RG_BACKEND_CPU_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/error.h"
#include "core/threadpool.h"

/* Per-thread scratch and the pool; created once per model context. */
typedef struct rg_cpu_ctx {
    rg_threadpool *pool;
    void *scratch;        /* activation quantization buffer */
    size_t scratch_bytes;
} rg_cpu_ctx;

/* Make ctx->scratch at least `bytes` (64-byte aligned; contents not kept). The one
 * scratch is shared by the ops (matmul's quantized activations, attention's
 * per-thread rows): they run one after another. false when allocation fails. */
bool rg_cpu_scratch_grow(rg_cpu_ctx *ctx, size_t bytes);

/* y[t][r] = sum_k W[r][k] * x[t][k] for t < n_tok, r < n_out.
 * W: n_out rows of k elements of wtype (k a multiple of its block size).
 * Grows ctx->scratch as needed (the only allocation; none in steady state). */
void rg_cpu_matmul(rg_cpu_ctx *ctx, rg_dtype wtype, const void *w, int64_t k, int64_t n_out, const float *x,
                   int64_t n_tok, float *y);

/* Grow ctx->scratch up front for matmuls of up to n_tok rows of k (so a decode
 * step never allocates). rg_cpu_matmul grows it on demand too, and aborts if
 * that allocation fails. ctx->scratch is freed with free(). */
rg_status rg_cpu_reserve(rg_cpu_ctx *ctx, int64_t k, int64_t n_tok, rg_err *err);

/* out[i][:] = dequantize(W[ids[i]]) — the embedding lookup. */
void rg_cpu_get_rows(rg_dtype wtype, const void *w, int64_t k, const int32_t *ids, int64_t n, float *out);

/* out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * weight (elementwise); out may equal x. */
void rg_cpu_rmsnorm(rg_cpu_ctx *ctx, const float *x, const float *weight, int64_t n, int64_t n_tok, float eps,
                    float *out);

/* Rotary position embedding in place on x[n_tok][n_head][head_dim]: the first
 * n_rot dims of each head rotate by pos[t] * theta_i, theta_i = freq_scale *
 * base^(-2i/n_rot) / freq_factors[i] (freq_factors may be NULL: Llama 3.1 scaling).
 * neox: pairs (i, i + n_rot/2) instead of (2i, 2i+1). */
typedef struct rg_rope_params {
    int64_t n_rot;
    float freq_base;
    float freq_scale;           /* 1 / linear scaling factor */
    const float *freq_factors;  /* n_rot/2 factors or NULL */
    bool neox;
} rg_rope_params;
void rg_cpu_rope(rg_cpu_ctx *ctx, float *x, const int32_t *pos, int64_t n_tok, int64_t n_head, int64_t head_dim,
                 const rg_rope_params *p);

/* out = silu(gate) * up, elementwise over n (= n_tok * n_ff). out may alias gate. */
void rg_cpu_swiglu(rg_cpu_ctx *ctx, const float *gate, const float *up, int64_t n, float *out);

/* y += x over n elements (the residual add). */
void rg_cpu_add(rg_cpu_ctx *ctx, float *y, const float *x, int64_t n);

/* In place: x[t] = softmax(x[t]) over rows of n. */
void rg_cpu_softmax(float *x, int64_t n, int64_t n_rows);

#endif
