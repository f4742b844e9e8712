/* kernels.h — internal to the CPU backend: the activation row formats the
 * matmul quantizes x into, and the per-ISA table of kernels matmul.c drives.
 *
 * A dot kernel computes nr <= RG_DOT_MAX_NR weight rows against nt <=
 * RG_DOT_MAX_NT activation rows at once, so a weight block is loaded and
 * decoded once per nt tokens (and, for float weights, an activation vector
 * loaded once per 2 rows: that keeps the f32/f16 prefill kernel FMA-bound
 * rather than load-bound).
 * Activation rows (each 64-byte aligned, act_row_bytes apart):
 *   RG_ACT_F32   float x[k]                         (F32 weights)
 *   RG_ACT_F16R  float x[k], each rounded to f16    (F16 weights; f16->f32 is exact,
 *   RG_ACT_BF16R float x[k], each rounded to bf16    so this is llama.cpp's f16 dot)
 *   RG_ACT_Q8    int8 qs[k]; float d[k/32]; int32 sum[k/32]    (Q4_0..Q8_0; d is
 *                the f16-rounded Q8_0 scale, sum = sum of the block's qs)
 *   RG_ACT_Q8K   int8 qs[k]; float d[k/256]; int16 bsums[k/16] (K-quants; Q8_K)
 *   RG_ACT_Q8P   RG_ACT_Q8's values, laid out for the AVX2 nibble kernels: in each
 *                full group of 8 blocks, block pairs (2p, 2p+1) interleave their
 *                halves, qs = y0[0:16] y1[0:16] y0[16:32] y1[16:32] (so one
 *                256-bit load of two blocks' nibbles lines up without shuffles),
 *                and d/sum run in block order 0 2 4 6 1 3 5 7 (the lane order the
 *                kernel's reduction produces); blocks past the last full group
 *                stay as in RG_ACT_Q8.
 * qs first keeps every 32-byte block load aligned. */
#ifndef RG_BACKEND_CPU_KERNELS_H
#define RG_BACKEND_CPU_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"

/* The AVX2 kernels exist on x86-64 builds (compiled with target attributes and
 * chosen at run time); -DRIDGE_NO_SIMD builds the portable kernels alone. */
#if defined(__x86_64__) && !defined(RIDGE_NO_SIMD)
#define RG_X86_SIMD 1
#else
#define RG_X86_SIMD 0
#endif

#define RG_DOT_MAX_NT 4
#define RG_DOT_MAX_NR 2

typedef enum rg_act_fmt {
    RG_ACT_NONE = -1,
    RG_ACT_F32 = 0,
    RG_ACT_F16R,
    RG_ACT_BF16R,
    RG_ACT_Q8,
    RG_ACT_Q8K,
    RG_ACT_Q8P,
    RG_ACT_COUNT
} rg_act_fmt;

typedef enum rg_cpu_isa { RG_ISA_SCALAR = 0, RG_ISA_AVX2 = 1 } rg_cpu_isa;

/* y[r + t * y_stride] = dot(weight row r, activation row t) for r < nr, t < nt;
 * weight rows start w_stride bytes apart at w, activation rows a_stride bytes
 * apart at a. k is a multiple of the block size. */
typedef void (*rg_dot_fn)(int64_t k, const void *w, size_t w_stride, int nr, const void *a, size_t a_stride, int nt,
                          float *y, size_t y_stride);

/* Quantize / round one row of k floats into activation format. */
typedef void (*rg_act_fn)(const float *x, void *a, int64_t k);

typedef struct rg_cpu_kernels {
    rg_dot_fn dot[RG_DTYPE_COUNT];  /* NULL where the weight type has no matmul */
    rg_act_fmt fmt[RG_DTYPE_COUNT]; /* the activation format dot[type] reads */
    rg_act_fn act[RG_ACT_COUNT];
} rg_cpu_kernels;

/* The activation format a weight type is multiplied against by the kernels in
 * use (RG_ACT_NONE if none). */
rg_act_fmt rg_cpu_act_fmt(rg_dtype wtype);
/* Bytes of one activation row of k elements, a multiple of 64. */
size_t rg_cpu_act_row_bytes(rg_act_fmt fmt, int64_t k);

/* The table for the ISA in use: the best this CPU supports, unless forced. */
const rg_cpu_kernels *rg_cpu_kernels_get(void);
rg_cpu_isa rg_cpu_isa_active(void);
/* For tests and benchmarks: run on `isa`; false (and no change) if the CPU lacks it. */
bool rg_cpu_isa_force(rg_cpu_isa isa);

/* Fill a table: the portable kernels (dot_scalar.c), or overwrite the entries
 * AVX2 implements (dot_avx2.c, which calls dot_avx2_kquant.c's). */
void rg_cpu_fill_scalar(rg_cpu_kernels *t);
void rg_cpu_fill_avx2(rg_cpu_kernels *t);
void rg_cpu_fill_avx2_kquant(rg_cpu_kernels *t);

/* Activation quantizers, scalar and AVX2 (quantize_act.c). */
void rg_act_f32_row(const float *x, void *a, int64_t k);
void rg_act_f16r_row(const float *x, void *a, int64_t k);
void rg_act_bf16r_row(const float *x, void *a, int64_t k);
void rg_act_q8_row(const float *x, void *a, int64_t k);
void rg_act_q8k_row(const float *x, void *a, int64_t k);
void rg_act_f16r_row_avx2(const float *x, void *a, int64_t k);
void rg_act_bf16r_row_avx2(const float *x, void *a, int64_t k);
void rg_act_q8_row_avx2(const float *x, void *a, int64_t k);
void rg_act_q8p_row_avx2(const float *x, void *a, int64_t k);
void rg_act_q8k_row_avx2(const float *x, void *a, int64_t k);

/* Views of the quantized activation rows (RG_ACT_Q8P shares RG_ACT_Q8's). */
static inline const float *rg_act_q8_d(const void *a, int64_t k) { return (const float *)((const int8_t *)a + k); }
static inline const int32_t *rg_act_q8_sum(const void *a, int64_t k) {
    return (const int32_t *)((const int8_t *)a + k + k / 32 * 4);
}
static inline const float *rg_act_q8k_d(const void *a, int64_t k) { return (const float *)((const int8_t *)a + k); }
static inline const int16_t *rg_act_q8k_bsums(const void *a, int64_t k) {
    return (const int16_t *)((const int8_t *)a + k + k / 256 * 4);
}

#endif
