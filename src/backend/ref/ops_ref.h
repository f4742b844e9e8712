/* ops_ref.h — plain reference implementations of the CPU ops in
 * backend/cpu/ops.h: obviously-correct loops, double accumulation, single
 * thread, no context. tests/test_cpu_ops.c checks every fast op against these.
 *
 * rg_ref_matmul models the same activation rounding as the fast kernel for each
 * weight type (rg_ref_act_dtype: x is quantized with rg_quantize_ref, then both
 * operands are dequantized and dotted in double), so fast-vs-reference
 * differences come only from summation order. */
#ifndef RG_BACKEND_REF_OPS_REF_H
#define RG_BACKEND_REF_OPS_REF_H

#include <stdint.h>

#include "backend/cpu/ops.h"
#include "core/error.h"

/* The format activations are rounded to before the product with a weight of
 * type wtype: Q8_0 for Q4_0/Q4_1/Q5_0/Q5_1/Q8_0, Q8_K for the K-quants, F16,
 * BF16, F32 for themselves. Returns false for a type without a matmul. */
bool rg_ref_act_dtype(rg_dtype wtype, rg_dtype *act);

/* y[t][r] = sum_i W[r][i] * act(x[t])[i] in double, stored as float. Allocates
 * two temporary rows (freed before returning). RG_E_UNSUPPORTED for a weight
 * type without a matmul, RG_E_INVALID for k not a multiple of its block. */
rg_status rg_ref_matmul(rg_dtype wtype, const void *w, int64_t k, int64_t n_out, const float *x, int64_t n_tok,
                        float *y, rg_err *err);

/* out[i][:] = dequantize(W[ids[i]]). */
rg_status rg_ref_get_rows(rg_dtype wtype, const void *w, int64_t k, const int32_t *ids, int64_t n, float *out,
                          rg_err *err);

/* out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * weight; out may equal x. */
void rg_ref_rmsnorm(const float *x, const float *weight, int64_t n, int64_t n_tok, float eps, float *out);

/* RoPE exactly as ops.h states it: theta_i = freq_scale * pos * base^(-2i/n_rot)
 * / freq_factors[i], in double. */
void rg_ref_rope(float *x, const int32_t *pos, int64_t n_tok, int64_t n_head, int64_t head_dim,
                 const rg_rope_params *p);

/* out = gate / (1 + exp(-gate)) * up. */
void rg_ref_swiglu(const float *gate, const float *up, int64_t n, float *out);

/* y += x. */
void rg_ref_add(float *y, const float *x, int64_t n);

/* x[t] = exp(x[t] - max) / sum(exp(x[t] - max)) per row of n. */
void rg_ref_softmax(float *x, int64_t n, int64_t n_rows);

#endif
