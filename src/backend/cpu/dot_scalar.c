/* dot_scalar.c — portable dot kernels: one weight row against nt activation
 * rows (kernels.h formats). Each weight block is decoded once into small
 * integers, then dotted exactly in int32 against each token's int8 block and
 * scaled in float, as ggml's vec_dot_*_q8_* do:
 *   legacy: sum_b d_w*d_a * sum_i q_w*q_a  (+ m_w * d_a * sum_i q_a for Q4_1/Q5_1)
 *   K:      sum_b d_w*d_a * sum_j sc_j * sum_i q_w*q_a  - dmin_w*d_a * sum_j m_j * bsum_j
 * The fallback when the CPU has no AVX2, and the scalar twin the SIMD kernels
 * are tested against besides the reference. */
#include <string.h>

#include "backend/cpu/kernels.h"
#include "core/fp16.h"
#include "core/quant.h"

/* ---- block decoders: element i of the block -> q[i] (signed, offset removed where the format has one) */

static void decode_q4_0(const rg_block_q4_0 *b, int8_t q[32]) {
    for (int j = 0; j < 16; j++) {
        q[j] = (int8_t)((b->qs[j] & 0x0f) - 8);
        q[j + 16] = (int8_t)((b->qs[j] >> 4) - 8);
    }
}

static void decode_q4_1(const rg_block_q4_1 *b, int8_t q[32]) {
    for (int j = 0; j < 16; j++) {
        q[j] = (int8_t)(b->qs[j] & 0x0f);
        q[j + 16] = (int8_t)(b->qs[j] >> 4);
    }
}

static uint32_t load_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void decode_q5(const uint8_t qs[16], const uint8_t qh4[4], int offset, int8_t q[32]) {
    uint32_t qh = load_u32(qh4);
    for (int j = 0; j < 16; j++) {
        q[j] = (int8_t)(((qs[j] & 0x0f) | ((qh >> j) & 1) << 4) - offset);
        q[j + 16] = (int8_t)(((qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4) - offset);
    }
}

/* 6-bit sub-block scales and mins of Q4_K/Q5_K (ggml's get_scale_min_k4) */
static void unpack_scales_k4(const uint8_t s[12], uint8_t sc[8], uint8_t mn[8]) {
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 63;
        mn[j] = s[j + 4] & 63;
        sc[j + 4] = (uint8_t)((s[j + 8] & 0x0f) | (s[j] >> 6) << 4);
        mn[j + 4] = (uint8_t)((s[j + 8] >> 4) | (s[j + 4] >> 6) << 4);
    }
}

static void decode_q4_K(const rg_block_q4_K *b, int8_t q[256]) {
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            q[64 * c + l] = (int8_t)(b->qs[32 * c + l] & 0x0f);
            q[64 * c + 32 + l] = (int8_t)(b->qs[32 * c + l] >> 4);
        }
}

static void decode_q5_K(const rg_block_q5_K *b, int8_t q[256]) {
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            q[64 * c + l] = (int8_t)((b->qs[32 * c + l] & 0x0f) | ((b->qh[l] >> (2 * c)) & 1) << 4);
            q[64 * c + 32 + l] = (int8_t)((b->qs[32 * c + l] >> 4) | ((b->qh[l] >> (2 * c + 1)) & 1) << 4);
        }
}

static void decode_q6_K(const rg_block_q6_K *b, int8_t q[256]) {
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
        int8_t *o = q + 128 * h;
        for (int l = 0; l < 32; l++) {
            o[l] = (int8_t)(((ql[l] & 0x0f) | ((qh[l] >> 0) & 3) << 4) - 32);
            o[l + 32] = (int8_t)(((ql[l + 32] & 0x0f) | ((qh[l] >> 2) & 3) << 4) - 32);
            o[l + 64] = (int8_t)(((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32);
            o[l + 96] = (int8_t)(((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32);
        }
    }
}

static int32_t idot(const int8_t *a, const int8_t *b, int n) {
    int32_t s = 0;
    for (int i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* ---- float weights */

static void dot_f32_row(int64_t k, const void *w, const void *a, size_t as, int nt, float *y, size_t ys) {
    for (int t = 0; t < nt; t++) {
        const float *x = (const float *)((const char *)a + t * as), *wf = w;
        float s = 0;
        for (int64_t i = 0; i < k; i++)
            s += wf[i] * x[i];
        y[t * ys] = s;
    }
}

static void dot_f16_row(int64_t k, const void *w, const void *a, size_t as, int nt, float *y, size_t ys) {
    for (int t = 0; t < nt; t++) {
        const float *x = (const float *)((const char *)a + t * as);
        const uint16_t *wh = w;
        float s = 0;
        for (int64_t i = 0; i < k; i++)
            s += rg_f16_to_f32(wh[i]) * x[i];
        y[t * ys] = s;
    }
}

static void dot_bf16_row(int64_t k, const void *w, const void *a, size_t as, int nt, float *y, size_t ys) {
    for (int t = 0; t < nt; t++) {
        const float *x = (const float *)((const char *)a + t * as);
        const uint16_t *wh = w;
        float s = 0;
        for (int64_t i = 0; i < k; i++)
            s += rg_bf16_to_f32(wh[i]) * x[i];
        y[t * ys] = s;
    }
}

/* ---- legacy 32-element blocks against RG_ACT_Q8 */

/* Block b of a legacy row: q with the offset removed, scale d, min m (0 if none). */
static void decode_legacy(rg_dtype type, const void *row, int64_t b, int8_t q[32], float *d, float *m) {
    *m = 0;
    switch (type) {
    case RG_Q4_0: {
        const rg_block_q4_0 *x = (const rg_block_q4_0 *)row + b;
        decode_q4_0(x, q), *d = rg_f16_to_f32(x->d);
        break;
    }
    case RG_Q4_1: {
        const rg_block_q4_1 *x = (const rg_block_q4_1 *)row + b;
        decode_q4_1(x, q), *d = rg_f16_to_f32(x->d), *m = rg_f16_to_f32(x->m);
        break;
    }
    case RG_Q5_0: {
        const rg_block_q5_0 *x = (const rg_block_q5_0 *)row + b;
        decode_q5(x->qs, x->qh, 16, q), *d = rg_f16_to_f32(x->d);
        break;
    }
    case RG_Q5_1: {
        const rg_block_q5_1 *x = (const rg_block_q5_1 *)row + b;
        decode_q5(x->qs, x->qh, 0, q), *d = rg_f16_to_f32(x->d), *m = rg_f16_to_f32(x->m);
        break;
    }
    default: { /* RG_Q8_0 */
        const rg_block_q8_0 *x = (const rg_block_q8_0 *)row + b;
        memcpy(q, x->qs, 32), *d = rg_f16_to_f32(x->d);
        break;
    }
    }
}

static void dot_legacy(rg_dtype type, int64_t k, const void *w, const void *a, size_t as, int nt, float *y, size_t ys) {
    float acc[RG_DOT_MAX_NT] = {0};
    int8_t q[32];
    for (int64_t b = 0; b < k / 32; b++) {
        float dw, mw;
        decode_legacy(type, w, b, q, &dw, &mw);
        for (int t = 0; t < nt; t++) {
            const int8_t *qa = (const int8_t *)a + t * as;
            float da = rg_act_q8_d(qa, k)[b];
            acc[t] += (float)idot(q, qa + 32 * b, 32) * (dw * da);
            acc[t] += mw * (da * (float)rg_act_q8_sum(qa, k)[b]); /* the min: m * sum of x */
        }
    }
    for (int t = 0; t < nt; t++)
        y[t * ys] = acc[t];
}

/* ---- K-quants against RG_ACT_Q8K */

/* Super-block b of a K-quant row: q (offset removed), a scale and a min per 16
 * elements (a 32-element sub-block's pair repeated), d and dmin. */
static void decode_kquant(rg_dtype type, const void *row, int64_t b, int8_t q[256], int32_t sc[16], int32_t mn[16],
                          float *d, float *dmin) {
    uint8_t s8[8], m8[8];
    if (type == RG_Q6_K) {
        const rg_block_q6_K *x = (const rg_block_q6_K *)row + b;
        decode_q6_K(x, q);
        for (int j = 0; j < 16; j++)
            sc[j] = x->scales[j], mn[j] = 0;
        *d = rg_f16_to_f32(x->d), *dmin = 0;
        return;
    }
    if (type == RG_Q4_K) {
        const rg_block_q4_K *x = (const rg_block_q4_K *)row + b;
        decode_q4_K(x, q), unpack_scales_k4(x->scales, s8, m8);
        *d = rg_f16_to_f32(x->d), *dmin = rg_f16_to_f32(x->dmin);
    } else { /* RG_Q5_K */
        const rg_block_q5_K *x = (const rg_block_q5_K *)row + b;
        decode_q5_K(x, q), unpack_scales_k4(x->scales, s8, m8);
        *d = rg_f16_to_f32(x->d), *dmin = rg_f16_to_f32(x->dmin);
    }
    for (int j = 0; j < 16; j++)
        sc[j] = s8[j / 2], mn[j] = m8[j / 2];
}

static void dot_kquant(rg_dtype type, int64_t k, const void *w, const void *a, size_t as, int nt, float *y, size_t ys) {
    float acc[RG_DOT_MAX_NT] = {0};
    int8_t q[256];
    int32_t sc[16], mn[16];
    for (int64_t b = 0; b < k / 256; b++) {
        float dw, dmin;
        decode_kquant(type, w, b, q, sc, mn, &dw, &dmin);
        for (int t = 0; t < nt; t++) {
            const int8_t *row = (const int8_t *)a + t * as;
            const int16_t *bs = rg_act_q8k_bsums(row, k) + 16 * b;
            float da = rg_act_q8k_d(row, k)[b];
            int32_t sumi = 0, summ = 0;
            for (int j = 0; j < 16; j++) {
                sumi += sc[j] * idot(q + 16 * j, row + 256 * b + 16 * j, 16);
                summ += mn[j] * bs[j];
            }
            acc[t] += dw * da * (float)sumi;
            acc[t] -= dmin * da * (float)summ;
        }
    }
    for (int t = 0; t < nt; t++)
        y[t * ys] = acc[t];
}

/* the kernels.h signature: one row at a time */
#define WRAP(name, CALL)                                                                                               \
    static void name(int64_t k, const void *w, size_t ws, int nr, const void *a, size_t as, int nt, float *y,          \
                     size_t ys) {                                                                                      \
        for (int r = 0; r < nr; r++) {                                                                                 \
            const void *wr = (const uint8_t *)w + r * ws;                                                              \
            CALL;                                                                                                      \
        }                                                                                                              \
    }
WRAP(dot_f32, dot_f32_row(k, wr, a, as, nt, y + r, ys))
WRAP(dot_f16, dot_f16_row(k, wr, a, as, nt, y + r, ys))
WRAP(dot_bf16, dot_bf16_row(k, wr, a, as, nt, y + r, ys))
WRAP(dot_q4_0, dot_legacy(RG_Q4_0, k, wr, a, as, nt, y + r, ys))
WRAP(dot_q4_1, dot_legacy(RG_Q4_1, k, wr, a, as, nt, y + r, ys))
WRAP(dot_q5_0, dot_legacy(RG_Q5_0, k, wr, a, as, nt, y + r, ys))
WRAP(dot_q5_1, dot_legacy(RG_Q5_1, k, wr, a, as, nt, y + r, ys))
WRAP(dot_q8_0, dot_legacy(RG_Q8_0, k, wr, a, as, nt, y + r, ys))
WRAP(dot_q4_K, dot_kquant(RG_Q4_K, k, wr, a, as, nt, y + r, ys))
WRAP(dot_q5_K, dot_kquant(RG_Q5_K, k, wr, a, as, nt, y + r, ys))
WRAP(dot_q6_K, dot_kquant(RG_Q6_K, k, wr, a, as, nt, y + r, ys))

void rg_cpu_fill_scalar(rg_cpu_kernels *t) {
    memset(t, 0, sizeof *t);
    t->dot[RG_F32] = dot_f32;
    t->dot[RG_F16] = dot_f16;
    t->dot[RG_BF16] = dot_bf16;
    t->dot[RG_Q4_0] = dot_q4_0;
    t->dot[RG_Q4_1] = dot_q4_1;
    t->dot[RG_Q5_0] = dot_q5_0;
    t->dot[RG_Q5_1] = dot_q5_1;
    t->dot[RG_Q8_0] = dot_q8_0;
    t->dot[RG_Q4_K] = dot_q4_K;
    t->dot[RG_Q5_K] = dot_q5_K;
    t->dot[RG_Q6_K] = dot_q6_K;
    for (int i = 0; i < RG_DTYPE_COUNT; i++)
        t->fmt[i] = RG_ACT_NONE;
    t->fmt[RG_F32] = RG_ACT_F32;
    t->fmt[RG_F16] = RG_ACT_F16R;
    t->fmt[RG_BF16] = RG_ACT_BF16R;
    t->fmt[RG_Q4_0] = t->fmt[RG_Q4_1] = t->fmt[RG_Q5_0] = t->fmt[RG_Q5_1] = t->fmt[RG_Q8_0] = RG_ACT_Q8;
    t->fmt[RG_Q4_K] = t->fmt[RG_Q5_K] = t->fmt[RG_Q6_K] = RG_ACT_Q8K;
    t->act[RG_ACT_F32] = rg_act_f32_row;
    t->act[RG_ACT_F16R] = rg_act_f16r_row;
    t->act[RG_ACT_BF16R] = rg_act_bf16r_row;
    t->act[RG_ACT_Q8] = rg_act_q8_row;
    t->act[RG_ACT_Q8K] = rg_act_q8k_row;
}
