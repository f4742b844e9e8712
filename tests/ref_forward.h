/* ref_forward.h — an obviously-correct forward pass for one sequence, used only by
 * tests: weights dequantized to f32 up front, double accumulation, contiguous K/V,
 * materialized softmax. Supports every position encoding ridge does. */
#ifndef RG_TEST_REF_FORWARD_H
#define RG_TEST_REF_FORWARD_H

#include <stdbool.h>

#include "model/model.h"

/* Logits after each of the n tokens (out: n * n_vocab floats). With model_rounding,
 * every matmul first rounds its input activation the way the CPU kernels do for
 * that weight type (8-bit blocks for quantized weights, f16/bf16 for half
 * weights), so the only difference left is summation order; without it the
 * reference is the exact product of the dequantized weights. Returns 0. */
int rg_test_ref_forward(const rg_model *m, const int32_t *tokens, int64_t n, bool model_rounding, float *out);

#endif
