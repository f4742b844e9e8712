/* quant_legacy.c — the 32-element block formats Q4_0, Q4_1, Q5_0, Q5_1, Q8_0.
 *
 * A block holds an f16 scale d (the _1 formats also an f16 offset m) and one
 * small unsigned code q per element:
 *   Q4_0 x = d*(q - 8)   Q5_0 x = d*(q - 16)   Q8_0 x = d*q (q int8)
 *   Q4_1 x = d*q + m     Q5_1 x = d*q + m
 * Element j < 16 is the low nibble of qs[j], element j + 16 its high nibble; the
 * fifth bit of element j (Q5) is bit j of qh read as a little-endian uint32.
 *
 * Quantizing follows ggml's reference rules, so the bytes match llama-quantize's:
 * the symmetric formats map the signed element of largest magnitude to the most
 * negative code (d = max/-8, max/-16) and get one extra code on the other side;
 * the _1 formats span [min, max]; codes come from the unrounded 1/d and round
 * half up (truncating q + 0.5) — Q8_0 rounds half away from zero — and d and m
 * are rounded to f16 only when stored. */
#include <math.h>
#include <string.h>

#include "core/fp16.h"
#include "core/quant.h"

/* Every product and sum rounds on its own, as in the build of llama-quantize
 * that made tests/data/refdata: in GNU C mode GCC would fuse x*id + 16.5 into an
 * fma, and 1 in 32768 of its Q5_0 blocks then came out different. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* floor(v) clamped to [0, hi]. For finite input v is already in range but for
 * rounding noise; clamping first keeps inf/NaN input defined (NaN → 0). */
static int floor_clamp(float v, int hi) { return (int)floorf(fminf(fmaxf(v, 0.0f), (float)hi)); }

static float inverse_or_zero(float d) { return d != 0 ? 1.0f / d : 0.0f; }

static uint32_t load_le32(const uint8_t b[4]) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void store_le32(uint8_t b[4], uint32_t v) {
    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(v >> 8 * i);
}

/* Element j's code from the nibbles (and for Q5 the high bits qh). */
static int code4(const uint8_t qs[16], int j) { return j < 16 ? qs[j] & 15 : qs[j - 16] >> 4; }

static int code5(const uint8_t qs[16], uint32_t qh, int j) { return code4(qs, j) | (int)((qh >> j) & 1) << 4; }

/* Pack 32 codes into nibbles (low 4 bits) and, for Q5, the fifth bits into *qh. */
static void pack_codes(const uint8_t q[32], uint8_t qs[16], uint32_t *qh) {
    for (int j = 0; j < 16; j++)
        qs[j] = (uint8_t)((q[j] & 15) | (q[j + 16] & 15) << 4);
    if (!qh) return;
    *qh = 0;
    for (int j = 0; j < 32; j++)
        *qh |= (uint32_t)(q[j] >> 4) << j;
}

/* Codes for x = d*(q - offset) with d = max/-offset (Q4_0, Q5_0); returns d. */
static float quantize_symmetric(const float *x, int offset, uint8_t q[32]) {
    float d = rg_quant_signed_absmax(x, 32) / (float)-offset, id = inverse_or_zero(d);
    for (int j = 0; j < 32; j++)
        q[j] = (uint8_t)floor_clamp(x[j] * id + ((float)offset + 0.5f), 2 * offset - 1);
    return d;
}

/* Codes for x = d*q + min over [min, max] (Q4_1, Q5_1); returns d, min in *m. */
static float quantize_affine(const float *x, int nmax, uint8_t q[32], float *m) {
    float min = x[0], max = x[0];
    for (int j = 1; j < 32; j++)
        min = fminf(min, x[j]), max = fmaxf(max, x[j]);
    float d = (max - min) / (float)nmax, id = inverse_or_zero(d);
    for (int j = 0; j < 32; j++)
        q[j] = (uint8_t)floor_clamp((x[j] - min) * id + 0.5f, nmax);
    *m = min;
    return d;
}

void rg_dequantize_q4_0(const void *src, float *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, dst += 32) {
        rg_block_q4_0 b;
        memcpy(&b, (const char *)src + i * sizeof b, sizeof b);
        float d = rg_f16_to_f32(b.d);
        for (int j = 0; j < 32; j++)
            dst[j] = (float)(code4(b.qs, j) - 8) * d;
    }
}

void rg_quantize_q4_0(const float *src, void *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += 32) {
        rg_block_q4_0 b;
        uint8_t q[32];
        b.d = rg_f32_to_f16(quantize_symmetric(src, 8, q));
        pack_codes(q, b.qs, NULL);
        memcpy((char *)dst + i * sizeof b, &b, sizeof b);
    }
}

void rg_dequantize_q4_1(const void *src, float *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, dst += 32) {
        rg_block_q4_1 b;
        memcpy(&b, (const char *)src + i * sizeof b, sizeof b);
        float d = rg_f16_to_f32(b.d), m = rg_f16_to_f32(b.m);
        for (int j = 0; j < 32; j++)
            dst[j] = (float)code4(b.qs, j) * d + m;
    }
}

void rg_quantize_q4_1(const float *src, void *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += 32) {
        rg_block_q4_1 b;
        uint8_t q[32];
        float m;
        b.d = rg_f32_to_f16(quantize_affine(src, 15, q, &m));
        b.m = rg_f32_to_f16(m);
        pack_codes(q, b.qs, NULL);
        memcpy((char *)dst + i * sizeof b, &b, sizeof b);
    }
}

void rg_dequantize_q5_0(const void *src, float *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, dst += 32) {
        rg_block_q5_0 b;
        memcpy(&b, (const char *)src + i * sizeof b, sizeof b);
        float d = rg_f16_to_f32(b.d);
        uint32_t qh = load_le32(b.qh);
        for (int j = 0; j < 32; j++)
            dst[j] = (float)(code5(b.qs, qh, j) - 16) * d;
    }
}

void rg_quantize_q5_0(const float *src, void *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += 32) {
        rg_block_q5_0 b;
        uint8_t q[32];
        uint32_t qh;
        b.d = rg_f32_to_f16(quantize_symmetric(src, 16, q));
        pack_codes(q, b.qs, &qh);
        store_le32(b.qh, qh);
        memcpy((char *)dst + i * sizeof b, &b, sizeof b);
    }
}

void rg_dequantize_q5_1(const void *src, float *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, dst += 32) {
        rg_block_q5_1 b;
        memcpy(&b, (const char *)src + i * sizeof b, sizeof b);
        float d = rg_f16_to_f32(b.d), m = rg_f16_to_f32(b.m);
        uint32_t qh = load_le32(b.qh);
        for (int j = 0; j < 32; j++)
            dst[j] = (float)code5(b.qs, qh, j) * d + m;
    }
}

void rg_quantize_q5_1(const float *src, void *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += 32) {
        rg_block_q5_1 b;
        uint8_t q[32];
        uint32_t qh;
        float m;
        b.d = rg_f32_to_f16(quantize_affine(src, 31, q, &m));
        b.m = rg_f32_to_f16(m);
        pack_codes(q, b.qs, &qh);
        store_le32(b.qh, qh);
        memcpy((char *)dst + i * sizeof b, &b, sizeof b);
    }
}

void rg_dequantize_q8_0(const void *src, float *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, dst += 32) {
        rg_block_q8_0 b;
        memcpy(&b, (const char *)src + i * sizeof b, sizeof b);
        float d = rg_f16_to_f32(b.d);
        for (int j = 0; j < 32; j++)
            dst[j] = (float)b.qs[j] * d;
    }
}

void rg_quantize_q8_0(const float *src, void *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += 32) {
        rg_block_q8_0 b;
        float amax = 0;
        for (int j = 0; j < 32; j++)
            amax = fmaxf(amax, fabsf(src[j]));
        float d = amax / 127.0f, id = inverse_or_zero(d);
        for (int j = 0; j < 32; j++)
            b.qs[j] = (int8_t)roundf(fminf(fmaxf(src[j] * id, -127.0f), 127.0f));
        b.d = rg_f32_to_f16(d);
        memcpy((char *)dst + i * sizeof b, &b, sizeof b);
    }
}
