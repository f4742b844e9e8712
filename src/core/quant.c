/* quant.c — rg_dequantize_ref / rg_quantize_ref: argument checks and dispatch
 * to the per-format converters (quant_legacy.c, quant_k.c), plus the plain
 * float types.
 *
 * F16 and BF16 convert with fp16.h (round to nearest even); F32 is a copy. All
 * source and destination block data is accessed through memcpy, so any byte
 * alignment is fine (see quant.h). */
#include "core/quant.h"

#include <math.h>
#include <string.h>

#include "core/fp16.h"

static void dequantize_f32(const void *src, float *dst, int64_t n) { memcpy(dst, src, (size_t)n * sizeof *dst); }

static void quantize_f32(const float *src, void *dst, int64_t n) { memcpy(dst, src, (size_t)n * sizeof *src); }

static void dequantize_f16(const void *src, float *dst, int64_t n) {
    const unsigned char *p = src;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        dst[i] = rg_f16_to_f32(h);
    }
}

static void quantize_f16(const float *src, void *dst, int64_t n) {
    unsigned char *p = dst;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = rg_f32_to_f16(src[i]);
        memcpy(p + 2 * i, &h, 2);
    }
}

static void dequantize_bf16(const void *src, float *dst, int64_t n) {
    const unsigned char *p = src;
    for (int64_t i = 0; i < n; i++) {
        uint16_t b;
        memcpy(&b, p + 2 * i, 2);
        dst[i] = rg_bf16_to_f32(b);
    }
}

static void quantize_bf16(const float *src, void *dst, int64_t n) {
    unsigned char *p = dst;
    for (int64_t i = 0; i < n; i++) {
        uint16_t b = rg_f32_to_bf16(src[i]);
        memcpy(p + 2 * i, &b, 2);
    }
}

typedef struct converter {
    void (*dequantize)(const void *src, float *dst, int64_t nb);
    void (*quantize)(const float *src, void *dst, int64_t nb);
} converter;

/* Exactly the types rg_dtype_info marks supported (tests/test_quant.c checks). */
/* clang-format off */
static const converter converters[RG_DTYPE_COUNT] = {
    [RG_F32] = {dequantize_f32, quantize_f32},
    [RG_F16] = {dequantize_f16, quantize_f16},
    [RG_BF16] = {dequantize_bf16, quantize_bf16},
    [RG_Q4_0] = {rg_dequantize_q4_0, rg_quantize_q4_0},
    [RG_Q4_1] = {rg_dequantize_q4_1, rg_quantize_q4_1},
    [RG_Q5_0] = {rg_dequantize_q5_0, rg_quantize_q5_0},
    [RG_Q5_1] = {rg_dequantize_q5_1, rg_quantize_q5_1},
    [RG_Q8_0] = {rg_dequantize_q8_0, rg_quantize_q8_0},
    [RG_Q4_K] = {rg_dequantize_q4_K, rg_quantize_q4_K},
    [RG_Q5_K] = {rg_dequantize_q5_K, rg_quantize_q5_K},
    [RG_Q6_K] = {rg_dequantize_q6_K, rg_quantize_q6_K},
    [RG_Q8_K] = {rg_dequantize_q8_K, rg_quantize_q8_K},
};
/* clang-format on */

/* The converter for (type, n), or NULL with err filled. */
static const converter *find_converter(rg_dtype type, const void *src, const void *dst, int64_t n, int64_t *nb,
                                       const char *what, rg_err *err) {
    const rg_dtype_info *info = rg_dtype_get((uint32_t)type);
    if (!info || !converters[type].dequantize) {
        rg_fail(err, RG_E_INVALID, "cannot %s type %s", what, rg_dtype_name((uint32_t)type));
        return NULL;
    }
    if (n < 0 || n % info->block_size) {
        rg_fail(err, RG_E_INVALID, "cannot %s %lld elements of %s: not a multiple of its block size %lld", what,
                (long long)n, info->name, (long long)info->block_size);
        return NULL;
    }
    if (n > 0 && (!src || !dst)) {
        rg_fail(err, RG_E_INVALID, "cannot %s %s: NULL buffer", what, info->name);
        return NULL;
    }
    *nb = n / info->block_size;
    return &converters[type];
}

rg_status rg_dequantize_ref(rg_dtype type, const void *src, float *dst, int64_t n, rg_err *err) {
    int64_t nb;
    const converter *c = find_converter(type, src, dst, n, &nb, "dequantize", err);
    if (!c) return RG_E_INVALID;
    if (nb) c->dequantize(src, dst, nb);
    return RG_OK;
}

rg_status rg_quantize_ref(rg_dtype type, const float *src, void *dst, int64_t n, rg_err *err) {
    int64_t nb;
    const converter *c = find_converter(type, src, dst, n, &nb, "quantize", err);
    if (!c) return RG_E_INVALID;
    if (nb) c->quantize(src, dst, nb);
    return RG_OK;
}

float rg_quant_signed_absmax(const float *x, int n) {
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) amax = fabsf(x[i]), max = x[i];
    return max;
}
