/* ref_forward.h — an obviously-correct forward pass for one sequence, used only by
 * tests: weights dequantized to f32 up front, double accumulation, contiguous K/V,
 * materialized softmax. Supports every position encoding ridge does. */
#ifndef RG_TEST_REF_FORWARD_H
#define RG_TEST_REF_FORWARD_H

#include "model/model.h"

/* Logits after each of the n tokens (out: n * n_vocab floats). Returns 0 on success. */
int rg_test_ref_forward(const rg_model *m, const int32_t *tokens, int64_t n, float *out);

#endif
