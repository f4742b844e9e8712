/* test_quant.c — core/quant: reference (de)quantization of every block format.
 *
 * What proves the layouts bit-exact: hand-built blocks checked against values
 * computed here by the formats' plain formulas (chosen so every product is
 * exact in float), and fixtures made by gguf-py from llama-quantize output
 * (tests/tools/dequant_ref.py), which the quantizers must also reproduce byte
 * for byte. What bounds quality: round trips of fresh random data, with an RMS
 * bound per type and, per element, "the code is the nearest one" — the error is
 * at most half a step unless the element lies beyond the end of its grid. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/fp16.h"
#include "core/quant.h"
#include "testutil.h"

static uint64_t rng;

static const rg_dtype all_types[] = {RG_F32,  RG_F16,  RG_BF16, RG_Q4_0, RG_Q4_1, RG_Q5_0,
                                     RG_Q5_1, RG_Q8_0, RG_Q4_K, RG_Q5_K, RG_Q6_K, RG_Q8_K};
#define N_TYPES (sizeof all_types / sizeof all_types[0])

/* A NaN no dequantizer writes: any element still holding it was skipped. */
static const uint32_t POISON = 0x7fbadbadu;

static void *quantize(rg_dtype type, const float *x, int64_t n) {
    int64_t bytes = rg_dtype_row_bytes(type, n);
    assert_true(bytes >= 0);
    void *q = malloc((size_t)bytes + 1);
    assert_non_null(q);
    rg_err err;
    assert_int_equal(rg_quantize_ref(type, x, q, n, &err), RG_OK);
    return q;
}

/* Dequantize into a poisoned buffer and check every element was written. */
static float *dequantize(rg_dtype type, const void *q, int64_t n) {
    float *y = malloc((size_t)n * sizeof *y);
    assert_non_null(y);
    for (int64_t i = 0; i < n; i++)
        memcpy(&y[i], &POISON, 4);
    rg_err err;
    assert_int_equal(rg_dequantize_ref(type, q, y, n, &err), RG_OK);
    for (int64_t i = 0; i < n; i++)
        if (!memcmp(&y[i], &POISON, 4)) fail_msg("%s: element %lld not written", rg_dtype_name(type), (long long)i);
    return y;
}

static float f16(uint16_t h) { return rg_f16_to_f32(h); }

static uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* ---- round trips: the nearest-code check ---- */

/* Half the spacing of f16 values around v: the most rounding v to f16 moved it. */
static double f16_half_ulp(float v) {
    double a = fabs(v);
    return a < 0x1p-14 ? 0x1p-25 : ldexp(1, ilogb(a) - 11);
}

/* Element e of a quantized row is y = s*l + o for an integer code l in [lo, hi].
 * The quantizer picked l by rounding (x - o)/s computed from s and o as they
 * were before rounding to f16: within s_err and o_err of the stored ones.
 * Elements past the ends of the grid get the end code; the scale rule keeps
 * them within `beyond` steps of it (Q4_0, Q5_0: the value -max needs code
 * half, one past the top; K-quants: the fitted grid may leave any element out). */
typedef struct grid {
    double s, o, s_err, o_err, beyond;
    int lo, hi;
} grid;

/* Q4_K/Q5_K sub-block j's 6-bit scale and min, read by the bit map of
 * scales[12] (capitals: scales, lower case: mins, A..H the 8 sub-blocks):
 *   0-3  EEAAAAAA FFBBBBBB GGCCCCCC HHDDDDDD
 *   4-7  eeaaaaaa ffbbbbbb ggcccccc hhdddddd
 *   8-11 eeeeEEEE ffffFFFF ggggGGGG hhhhHHHH */
static void k_scale_min(const uint8_t *s, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 0x3f;
        *m = s[4 + j] & 0x3f;
    } else {
        *sc = (s[8 + j - 4] & 0x0f) + 16 * (s[j - 4] >> 6);
        *m = (s[8 + j - 4] >> 4) + 16 * (s[4 + j - 4] >> 6);
    }
}

static grid element_grid(rg_dtype type, const uint8_t *row, int64_t e) {
    const rg_dtype_info *info = rg_dtype_get(type);
    const uint8_t *b = row + e / info->block_size * info->type_size;
    int sub = (int)(e % info->block_size);
    grid g = {0};
    switch (type) {
    case RG_Q4_0:
    case RG_Q5_0:
    case RG_Q8_0: {
        int half = type == RG_Q4_0 ? 8 : type == RG_Q5_0 ? 16 : 128;
        g.s = f16(get_u16(b)), g.s_err = f16_half_ulp((float)g.s);
        g.lo = -half, g.hi = half - 1, g.beyond = type == RG_Q8_0 ? 0 : 1;
        break;
    }
    case RG_Q4_1:
    case RG_Q5_1:
        g.s = f16(get_u16(b)), g.s_err = f16_half_ulp((float)g.s);
        g.o = f16(get_u16(b + 2)), g.o_err = f16_half_ulp((float)g.o);
        g.lo = 0, g.hi = type == RG_Q4_1 ? 15 : 31;
        break;
    case RG_Q4_K:
    case RG_Q5_K: {
        /* Codes are re-rounded against the stored scales: no s_err, o_err. */
        int sc, m;
        k_scale_min(b + 4, sub / 32, &sc, &m);
        g.s = (double)(f16(get_u16(b)) * (float)sc);
        g.o = -(double)(f16(get_u16(b + 2)) * (float)m);
        g.lo = 0, g.hi = type == RG_Q4_K ? 15 : 31, g.beyond = INFINITY;
        break;
    }
    case RG_Q6_K:
        g.s = (double)(f16(get_u16(b + 208)) * (float)(int8_t)b[192 + sub / 16]);
        g.lo = -32, g.hi = 31, g.beyond = INFINITY;
        break;
    case RG_Q8_K: {
        float d;
        memcpy(&d, b, 4);
        g.s = d, g.s_err = fabs(d) * 0x1p-23; /* d = 1/iscale, rounded */
        g.lo = -128, g.hi = 127;
        break;
    }
    default: fail_msg("no grid for %s", rg_dtype_name(type));
    }
    return g;
}

/* Round trip statistics of one row; asserts the nearest-code property. */
typedef struct stats {
    double sum_err2, sum_x2, max_half_steps; /* largest |x - y| / (|s|/2) of an element on the grid */
    int64_t n, clamped;
} stats;

static void check_row(rg_dtype type, const float *x, int64_t n, stats *st) {
    uint8_t *q = quantize(type, x, n);
    float *y = dequantize(type, q, n);
    for (int64_t e = 0; e < n; e++) {
        double err = (double)y[e] - x[e];
        st->sum_err2 += err * err, st->sum_x2 += (double)x[e] * x[e], st->n++;
        if (type == RG_F32) {
            assert_true(y[e] == x[e]);
            continue;
        }
        if (type == RG_F16 || type == RG_BF16) { /* round to nearest: half an ulp of the result */
            double hu = type == RG_F16 ? f16_half_ulp(y[e]) : fabs(y[e]) * 0x1p-8;
            if (fabs(err) > hu) fail_msg("%s x=%g y=%g", rg_dtype_name(type), x[e], y[e]);
            continue;
        }
        grid g = element_grid(type, q, e);
        if (g.s == 0) { /* a zero scale (all-zero or negligible block): y is the offset */
            assert_true(y[e] == (float)g.o);
            continue;
        }
        double lf = ((double)y[e] - g.o) / g.s, l = nearbyint(lf), t = ((double)x[e] - g.o) / g.s;
        assert_true(fabs(lf - l) < 1e-3 && l >= g.lo && l <= g.hi);
        double tol = 1e-4 + (fabs(l) + 1) * g.s_err / fabs(g.s) + g.o_err / fabs(g.s);
        if (fabs(t - l) <= 0.5 + tol) {
            st->max_half_steps = fmax(st->max_half_steps, 2 * fabs(t - l));
            continue;
        }
        st->clamped++; /* beyond the end of the grid, which is the nearest code */
        bool top = l == g.hi && t > g.hi && t <= g.hi + g.beyond + tol;
        bool bottom = l == g.lo && t < g.lo && t >= g.lo - g.beyond - tol;
        if (!top && !bottom)
            fail_msg("%s element %lld: x=%.9g y=%.9g, code %g but x sits at %.6f (scale %g offset %g)",
                     rg_dtype_name(type), (long long)e, x[e], y[e], l, t, g.s, g.o);
    }
    free(q);
    free(y);
}

typedef enum data_kind { DATA_NORMAL, DATA_OUTLIERS, DATA_SPECIAL, N_KINDS } data_kind;

/* n elements of kind: N(0, 1); N(0, 1) with one element in 64 times 30; or
 * 256-element stretches that are zero, constant, tiny (1e-4), huge (1e4),
 * one-signed, or one spike among zeros. */
static void fill(float *x, int64_t n, data_kind kind) {
    for (int64_t i = 0; i < n; i++)
        x[i] = rg_test_rand_normal(&rng);
    if (kind == DATA_OUTLIERS)
        for (int64_t i = 0; i < n; i += 64)
            x[i + (int64_t)(rg_test_rand_u64(&rng) % 64)] *= 30;
    if (kind != DATA_SPECIAL) return;
    for (int64_t b = 0; b < n / 256; b++) {
        float *xb = x + 256 * b;
        float c = 0.1f + 2 * rg_test_rand_uniform(&rng);
        for (int i = 0; i < 256; i++)
            switch (b % 7) {
            case 0: xb[i] = 0; break;
            case 1: xb[i] = c; break;
            case 2: xb[i] = -c; break;
            case 3: xb[i] *= 1e-4f; break;
            case 4: xb[i] *= 1e4f; break;
            case 5: xb[i] = fabsf(xb[i]) + c; break;
            case 6: xb[i] = i == 77 ? -c : 0; break;
            }
    }
}

/* Bounds on RMS error / RMS of the input, for N(0, 1) rows and for N(0, 1)
 * with outliers (4096 elements each). Set about 10% above the largest of 40
 * runs with fresh seeds; the means of those runs follow each bound.
 * The K-quants beat the legacy formats of the same width: their scale search
 * gives up a little on the largest element for all the others. Q8_K is worse
 * than Q8_0 because one scale covers 256 elements, not 32. */
static const struct {
    rg_dtype type;
    double normal, outliers;
} rms_bounds[] = {
    {RG_F32, 0, 0},            /* exact */
    {RG_F16, 2.5e-4, 2.8e-4},  /* 2.1e-4 2.1e-4 */
    {RG_BF16, 1.9e-3, 2.6e-3}, /* 1.7e-3 1.6e-3 */
    {RG_Q4_0, 0.095, 0.165},   /* 0.086  0.131 */
    {RG_Q4_1, 0.086, 0.132},   /* 0.078  0.115 */
    {RG_Q5_0, 0.047, 0.103},   /* 0.043  0.088 */
    {RG_Q5_1, 0.042, 0.061},   /* 0.038  0.053 */
    {RG_Q8_0, 0.0060, 0.0140}, /* 0.0054 0.0123 */
    {RG_Q4_K, 0.079, 0.113},   /* 0.071  0.095 */
    {RG_Q5_K, 0.040, 0.058},   /* 0.036  0.051 */
    {RG_Q6_K, 0.0200, 0.040},  /* 0.0177 0.034 */
    {RG_Q8_K, 0.0085, 0.034},  /* 0.0070 0.027 */
};

static void test_round_trip(void **state) {
    static const int64_t row_sizes[] = {256, 768, 1024, 2048};
    for (size_t t = 0; t < sizeof rms_bounds / sizeof rms_bounds[0]; t++) {
        rg_dtype type = rms_bounds[t].type;
        for (int kind = 0; kind < N_KINDS; kind++) {
            stats st = {0};
            for (size_t r = 0; r < sizeof row_sizes / sizeof row_sizes[0]; r++) {
                float *x = malloc((size_t)row_sizes[r] * sizeof *x);
                assert_non_null(x);
                fill(x, row_sizes[r], (data_kind)kind);
                check_row(type, x, row_sizes[r], &st);
                free(x);
            }
            double rel = sqrt(st.sum_err2 / st.sum_x2);
            if (getenv("RIDGE_TEST_VERBOSE"))
                fprintf(stderr, "%-5s %-8s rms rel %.5f  max |err|/half-step %.4f  clamped %lld/%lld\n",
                        rg_dtype_name(type), (const char *[]){"normal", "outliers", "special"}[kind], rel,
                        st.max_half_steps, (long long)st.clamped, (long long)st.n);
            double bound = kind == DATA_NORMAL ? rms_bounds[t].normal : rms_bounds[t].outliers;
            if (kind != DATA_SPECIAL && rel > bound)
                fail_msg("%s: relative RMS error %.5f above %.5f", rg_dtype_name(type), rel, bound);
        }
    }
}

/* Zero blocks come back as exact zeros, in every format. */
static void test_zero_blocks(void **state) {
    float x[512] = {0};
    for (size_t t = 0; t < N_TYPES; t++) {
        void *q = quantize(all_types[t], x, 512);
        float *y = dequantize(all_types[t], q, 512);
        for (int i = 0; i < 512; i++)
            assert_true(y[i] == 0);
        free(q);
        free(y);
    }
}

/* The scale rules of the reference quantizers, seen from the stored blocks. */
static void test_quantizer_rules(void **state) {
    float x[256];
    for (int i = 0; i < 256; i++)
        x[i] = rg_test_rand_normal(&rng);
    x[37] = 5.5f, x[200] = -5.5f; /* the first of equal magnitudes sets the sign */
    int i_min = 0, i_max = 0;
    for (int i = 0; i < 32; i++) {
        if (x[i] < x[i_min]) i_min = i;
        if (x[i] > x[i_max]) i_max = i;
    }
    rg_block_q4_0 *q40 = quantize(RG_Q4_0, x, 256); /* d = max/-8: the max gets code 0 */
    assert_int_equal(q40[1].d, rg_f32_to_f16(5.5f / -8));
    assert_int_equal(q40[1].qs[5] & 15, 0);
    rg_block_q5_0 *q50 = quantize(RG_Q5_0, x, 256); /* d = max/-16 */
    assert_int_equal(q50[1].d, rg_f32_to_f16(5.5f / -16));
    rg_block_q4_1 *q41 = quantize(RG_Q4_1, x, 256); /* [min, max] spans codes 0..15 */
    assert_int_equal(q41[0].m, rg_f32_to_f16(x[i_min]));
    assert_int_equal(q41[0].d, rg_f32_to_f16((x[i_max] - x[i_min]) / 15));
    rg_block_q8_0 *q80 = quantize(RG_Q8_0, x, 256); /* d = amax/127 */
    assert_int_equal(q80[1].d, rg_f32_to_f16(5.5f / 127));
    assert_int_equal(q80[1].qs[5], 127);
    assert_int_equal(q80[6].qs[8], -127);
    rg_block_q8_K *q8k = quantize(RG_Q8_K, x, 256); /* float d = 1/(-127/max), sums of 16 */
    assert_true(q8k->d == 1 / (-127 / 5.5f));
    assert_int_equal(q8k->qs[37], -127);
    assert_int_equal(q8k->qs[200], 127);
    for (int j = 0; j < 16; j++) {
        int sum = 0;
        for (int i = 0; i < 16; i++)
            sum += q8k->qs[16 * j + i];
        assert_int_equal(q8k->bsums[j], sum);
    }
    free(q40), free(q50), free(q41), free(q80), free(q8k);
}

/* Non-finite input has no meaningful encoding, but must not crash or trip UBSan. */
static void test_non_finite_input(void **state) {
    float x[256];
    for (int i = 0; i < 256; i++)
        x[i] = i % 3 == 0 ? NAN : i % 3 == 1 ? INFINITY : -1e38f;
    for (size_t t = 0; t < N_TYPES; t++) {
        void *q = quantize(all_types[t], x, 256);
        float y[256];
        rg_err err;
        assert_int_equal(rg_dequantize_ref(all_types[t], q, y, 256, &err), RG_OK);
        free(q);
    }
}

/* ---- hand-built blocks: layouts against the formulas ---- */

static void expect_equal(rg_dtype type, const void *block, const float *want, int n) {
    float *y = dequantize(type, block, n);
    for (int i = 0; i < n; i++)
        if (y[i] != want[i]) fail_msg("%s element %d: got %.9g, want %.9g", rg_dtype_name(type), i, y[i], want[i]);
    free(y);
}

static void test_hand_legacy(void **state) {
    float want[32];
    /* Q4_0, d = 0.5: byte j holds element j (low nibble) and j + 16 (high). */
    rg_block_q4_0 b40 = {.d = 0x3800};
    for (int j = 0; j < 16; j++)
        b40.qs[j] = (uint8_t)(j | (15 - j) << 4);
    for (int j = 0; j < 16; j++)
        want[j] = 0.5f * (j - 8), want[j + 16] = 0.5f * ((15 - j) - 8);
    expect_equal(RG_Q4_0, &b40, want, 32);

    /* Q4_1, d = 0.25, m = -1.5. */
    rg_block_q4_1 b41 = {.d = 0x3400, .m = 0xbe00};
    for (int j = 0; j < 16; j++)
        b41.qs[j] = (uint8_t)((3 * j) % 16 | ((7 * j + 2) % 16) << 4);
    for (int j = 0; j < 16; j++)
        want[j] = 0.25f * ((3 * j) % 16) - 1.5f, want[j + 16] = 0.25f * ((7 * j + 2) % 16) - 1.5f;
    expect_equal(RG_Q4_1, &b41, want, 32);

    /* Q5_0, d = -2: the fifth bit of element j is bit j of qh as a little-endian
     * uint32, here 0xA5C30F01. */
    const uint32_t qh = 0xA5C30F01u;
    rg_block_q5_0 b50 = {.d = 0xc000, .qh = {0x01, 0x0F, 0xC3, 0xA5}};
    for (int j = 0; j < 16; j++)
        b50.qs[j] = (uint8_t)(j << 4 | (j * 5) % 16);
    for (int j = 0; j < 32; j++) {
        int lo = j < 16 ? (j * 5) % 16 : j - 16;
        want[j] = -2.0f * ((lo | (int)(qh >> j & 1) << 4) - 16);
    }
    expect_equal(RG_Q5_0, &b50, want, 32);

    /* Q5_1, d = 0.125, m = 3. */
    rg_block_q5_1 b51 = {.d = 0x3000, .m = 0x4200, .qh = {0x01, 0x0F, 0xC3, 0xA5}};
    memcpy(b51.qs, b50.qs, 16);
    for (int j = 0; j < 32; j++) {
        int lo = j < 16 ? (j * 5) % 16 : j - 16;
        want[j] = 0.125f * (lo | (int)(qh >> j & 1) << 4) + 3.0f;
    }
    expect_equal(RG_Q5_1, &b51, want, 32);

    /* Q8_0, d = -0.0625, the full int8 range. */
    rg_block_q8_0 b80 = {.d = 0xac00};
    for (int j = 0; j < 32; j++)
        b80.qs[j] = (int8_t)(j * 8 - 128 + (j == 31 ? 7 : 0));
    for (int j = 0; j < 32; j++)
        want[j] = -0.0625f * b80.qs[j];
    expect_equal(RG_Q8_0, &b80, want, 32);
}

/* Q4_K / Q5_K, d = 0.5, dmin = 0.25. Scales and mins above 15 in sub-blocks
 * 4..7 put bits in all three parts of scales[12]; codes packed as the format
 * says: qs[32p + l] holds element 64p + l (low nibble) and 64p + 32 + l (high);
 * Q5_K's fifth bit of element 32j + l is bit j of qh[l]. */
static void test_hand_k_scale_min(void **state) {
    static const int sc[8] = {1, 63, 17, 42, 5, 33, 60, 48}, mn[8] = {2, 7, 63, 0, 61, 19, 36, 50};
    uint8_t scales[12];
    for (int j = 0; j < 4; j++) {
        scales[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
        scales[j + 4] = (uint8_t)(mn[j] | (mn[j + 4] >> 4) << 6);
        scales[j + 8] = (uint8_t)((sc[j + 4] & 15) | (mn[j + 4] & 15) << 4);
    }
    int code[256];
    for (int e = 0; e < 256; e++)
        code[e] = (e * 13 + 5) % 32;
    float want[256];

    rg_block_q4_K b4 = {.d = 0x3800, .dmin = 0x3400};
    memcpy(b4.scales, scales, 12);
    for (int p = 0; p < 4; p++)
        for (int l = 0; l < 32; l++)
            b4.qs[32 * p + l] = (uint8_t)((code[64 * p + l] & 15) | (code[64 * p + 32 + l] & 15) << 4);
    for (int e = 0; e < 256; e++)
        want[e] = 0.5f * sc[e / 32] * (code[e] & 15) - 0.25f * mn[e / 32];
    expect_equal(RG_Q4_K, &b4, want, 256);

    rg_block_q5_K b5 = {.d = 0x3800, .dmin = 0x3400};
    memcpy(b5.scales, scales, 12);
    memcpy(b5.qs, b4.qs, sizeof b5.qs);
    for (int e = 0; e < 256; e++)
        b5.qh[e % 32] |= (uint8_t)((code[e] >> 4) << (e / 32));
    for (int e = 0; e < 256; e++)
        want[e] = 0.5f * sc[e / 32] * code[e] - 0.25f * mn[e / 32];
    expect_equal(RG_Q5_K, &b5, want, 256);
}

/* Q6_K, d = 0.25, int8 scales of both signs and extremes. In each 128-element
 * half h, element l + 32k (l < 32, k < 4) has its low 4 bits in ql[64h + l]
 * (k = 0 low nibble, k = 2 high) or ql[64h + 32 + l] (k = 1, 3), and its top
 * 2 bits at bits 2k..2k+1 of qh[32h + l]. */
static void test_hand_q6_K(void **state) {
    static const int8_t sc[16] = {-128, 127, 0, 1, -1, 64, -37, 90, 3, -100, 55, 12, -7, 33, 120, -64};
    rg_block_q6_K b = {.d = 0x3400};
    memcpy(b.scales, sc, 16);
    int code[256];
    float want[256];
    for (int e = 0; e < 256; e++)
        code[e] = (e * 37 + 11) % 64;
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) {
                int c = code[128 * h + 32 * k + l];
                b.ql[64 * h + (k == 1 || k == 3 ? 32 : 0) + l] |= (uint8_t)((c & 15) << (k >= 2 ? 4 : 0));
                b.qh[32 * h + l] |= (uint8_t)((c >> 4) << (2 * k));
            }
    for (int e = 0; e < 256; e++)
        want[e] = 0.25f * sc[e / 16] * (code[e] - 32);
    expect_equal(RG_Q6_K, &b, want, 256);
}

static void test_hand_q8_K(void **state) {
    rg_block_q8_K b = {.d = 0.3f};
    float want[256];
    for (int e = 0; e < 256; e++)
        b.qs[e] = (int8_t)(e - 128), want[e] = 0.3f * (float)(e - 128);
    expect_equal(RG_Q8_K, &b, want, 256);
}

/* Blocks at odd addresses (a GGUF file may align tensors to 1 byte) decode the
 * same; ASan/UBSan builds would flag any in-place misaligned read. */
static void test_unaligned(void **state) {
    float x[512];
    fill(x, 512, DATA_NORMAL);
    for (size_t t = 0; t < N_TYPES; t++) {
        rg_dtype type = all_types[t];
        size_t bytes = (size_t)rg_dtype_row_bytes(type, 512);
        uint8_t *q = quantize(type, x, 512), *odd = malloc(bytes + 1);
        assert_non_null(odd);
        rg_err err;
        assert_int_equal(rg_quantize_ref(type, x, odd + 1, 512, &err), RG_OK);
        assert_memory_equal(q, odd + 1, bytes);
        float *a = dequantize(type, q, 512), *b = dequantize(type, odd + 1, 512);
        assert_memory_equal(a, b, sizeof x);
        free(q), free(odd), free(a), free(b);
    }
}

/* ---- fixtures from gguf-py and llama-quantize ---- */

static void test_fixtures(void **state) {
    static const rg_dtype types[] = {RG_Q4_0, RG_Q4_1, RG_Q5_0, RG_Q5_1, RG_Q8_0, RG_Q4_K, RG_Q5_K, RG_Q6_K};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        char name[64];
        snprintf(name, sizeof name, "quant_fixtures/%s.bin", rg_dtype_name(types[t]));
        for (char *c = name; *c; c++)
            *c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
        size_t size;
        uint8_t *f = (uint8_t *)rg_test_read_file(rg_test_path(name), &size);
        if (!f) fail_msg("cannot read %s", rg_test_path(name));
        uint32_t hdr[4];
        assert_true(size >= 20 && !memcmp(f, "RGQF", 4));
        memcpy(hdr, f + 4, sizeof hdr);
        assert_int_equal(hdr[0], 1);
        assert_int_equal(hdr[1], types[t]);
        int64_t n_real = hdr[2], n_rand = hdr[3];
        int64_t real_bytes = rg_dtype_row_bytes(types[t], n_real), rand_bytes = rg_dtype_row_bytes(types[t], n_rand);
        assert_true(real_bytes > 0 && rand_bytes > 0);
        assert_int_equal(size, 20 + real_bytes + 8 * n_real + rand_bytes + 4 * n_rand);
        const uint8_t *real = f + 20, *real_want = real + real_bytes, *source = real_want + 4 * n_real;
        const uint8_t *rand = source + 4 * n_real, *rand_want = rand + rand_bytes;

        float *y = dequantize(types[t], real, n_real);
        assert_memory_equal(y, real_want, 4 * (size_t)n_real);
        free(y);
        y = dequantize(types[t], rand, n_rand);
        assert_memory_equal(y, rand_want, 4 * (size_t)n_rand);
        free(y);
        /* llama-quantize made `real` from `source` with the reference quantizer */
        float *x = malloc(4 * (size_t)n_real);
        assert_non_null(x);
        memcpy(x, source, 4 * (size_t)n_real);
        uint8_t *q = quantize(types[t], x, n_real);
        assert_memory_equal(q, real, (size_t)real_bytes);
        free(q), free(x), free(f);
    }
}

/* ---- F16 and BF16 ---- */

/* The value of an f16 bit pattern by the IEEE formula (NaN for NaNs). */
static double f16_value(uint16_t h) {
    int sign = h >> 15, exp = h >> 10 & 31, mant = h & 1023;
    double v = exp == 31 ? (mant ? NAN : INFINITY) : exp == 0 ? ldexp(mant, -24) : ldexp(1024 + mant, exp - 25);
    return sign ? -v : v;
}

static void test_f16_all_patterns(void **state) {
    uint16_t *h = malloc(65536 * 2), *back = malloc(65536 * 2);
    assert_true(h && back);
    for (int i = 0; i < 65536; i++)
        h[i] = (uint16_t)i;
    float *y = dequantize(RG_F16, h, 65536);
    rg_err err;
    assert_int_equal(rg_quantize_ref(RG_F16, y, back, 65536, &err), RG_OK);
    for (int i = 0; i < 65536; i++) {
        double want = f16_value((uint16_t)i);
        if (isnan(want)) { /* NaN stays NaN, sign kept */
            assert_true(isnan(y[i]) && !!signbit(y[i]) == (i >> 15));
            assert_true((back[i] & 0x7c00) == 0x7c00 && (back[i] & 0x3ff) && back[i] >> 15 == i >> 15);
        } else {
            if ((double)y[i] != want || !!signbit(y[i]) != (i >> 15))
                fail_msg("f16 0x%04x: %g, want %g", i, y[i], want);
            assert_int_equal(back[i], i);
        }
    }
    free(h), free(back), free(y);
}

static void test_bf16_all_patterns(void **state) {
    uint16_t *b = malloc(65536 * 2), *back = malloc(65536 * 2);
    assert_true(b && back);
    for (int i = 0; i < 65536; i++)
        b[i] = (uint16_t)i;
    float *y = dequantize(RG_BF16, b, 65536);
    rg_err err;
    assert_int_equal(rg_quantize_ref(RG_BF16, y, back, 65536, &err), RG_OK);
    for (int i = 0; i < 65536; i++) {
        uint32_t bits;
        memcpy(&bits, &y[i], 4);
        assert_int_equal(bits, (uint32_t)i << 16); /* bf16 is the top half of an f32 */
        if (isnan(y[i]))
            assert_true(isnan(rg_bf16_to_f32(back[i])) && back[i] >> 15 == i >> 15);
        else
            assert_int_equal(back[i], i);
    }
    free(b), free(back), free(y);
}

/* Rounding to nearest, ties to even, at hand-picked halfway points. */
static void test_f16_bf16_rounding(void **state) {
    static const struct {
        float x;
        uint16_t h;
    } f16_cases[] = {
        {1.0f + 0x1p-11f, 0x3c00},            /* halfway 1 .. 1+2^-10: to even 1 */
        {1.0f + 3 * 0x1p-11f, 0x3c02},        /* halfway, odd below: up */
        {1.0f + 0x1p-11f + 0x1p-20f, 0x3c01}, /* just above halfway */
        {-(1.0f + 0x1p-11f), 0xbc00},
        {65504.0f, 0x7bff}, /* largest finite */
        {65519.99f, 0x7bff},
        {65520.0f, 0x7c00}, /* halfway to 2^16: to even, i.e. inf */
        {0x1p-24f, 0x0001}, /* smallest subnormal */
        {0x1p-25f, 0x0000}, /* halfway 0 .. 2^-24: to even 0 */
        {0x1p-25f * 1.0001f, 0x0001},
        {3 * 0x1p-25f, 0x0002},        /* halfway 1 .. 2 subnormal steps: 2 */
        {0x1p-14f - 0x1p-25f, 0x0400}, /* halfway largest subnormal .. smallest normal */
        {-0.0f, 0x8000},
    };
    for (size_t i = 0; i < sizeof f16_cases / sizeof f16_cases[0]; i++)
        if (rg_f32_to_f16(f16_cases[i].x) != f16_cases[i].h)
            fail_msg("f16(%a) = 0x%04x, want 0x%04x", f16_cases[i].x, rg_f32_to_f16(f16_cases[i].x), f16_cases[i].h);
    static const struct {
        float x;
        uint16_t b;
    } bf16_cases[] = {
        {1.0f + 0x1p-8f, 0x3f80}, /* halfway 1 .. 1+2^-7: to even */
        {1.0f + 3 * 0x1p-8f, 0x3f82}, {1.0f + 0x1p-8f + 0x1p-20f, 0x3f81}, {-(1.0f + 3 * 0x1p-8f), 0xbf82},
        {3.4028235e38f, 0x7f80}, /* FLT_MAX is past the last halfway point: inf */
        {0x1p-134f, 0x0000},     /* halfway 0 .. smallest subnormal: to even 0 */
        {3 * 0x1p-134f, 0x0002},
    };
    for (size_t i = 0; i < sizeof bf16_cases / sizeof bf16_cases[0]; i++)
        if (rg_f32_to_bf16(bf16_cases[i].x) != bf16_cases[i].b)
            fail_msg("bf16(%a) = 0x%04x, want 0x%04x", bf16_cases[i].x, rg_f32_to_bf16(bf16_cases[i].x),
                     bf16_cases[i].b);
}

/* Random floats: the result is no farther than either neighbour, and even on a tie. */
static void test_f16_bf16_nearest(void **state) {
    for (int i = 0; i < 200000; i++) {
        /* f32 exponents covering f16 subnormals to past its overflow */
        uint32_t bits = (uint32_t)rg_test_rand_u64(&rng);
        bits = (bits & 0x807fffffu) | (uint32_t)(127 - 26 + (int)((bits >> 23) % 44)) << 23;
        float x = rg_bits_f32(bits);
        uint16_t h = rg_f32_to_f16(x);
        if (fabsf(x) >= 65520.0f) {
            assert_int_equal(h & 0x7fff, 0x7c00);
            continue;
        }
        double d = fabs(f16_value(h) - x);
        for (int step = -1; step <= 1; step += 2) {
            int nb = (h & 0x7fff) + step;
            if (nb < 0 || nb > 0x7bff) continue;
            double dn = fabs(f16_value((uint16_t)((h & 0x8000) | nb)) - x);
            assert_true(d < dn || (d == dn && !(h & 1)));
        }
        uint16_t b = rg_f32_to_bf16(x);
        d = fabs((double)rg_bf16_to_f32(b) - x);
        for (int step = -1; step <= 1; step += 2) {
            int nb = (b & 0x7fff) + step;
            if (nb < 0 || nb > 0x7f7f) continue;
            double dn = fabs((double)rg_bf16_to_f32((uint16_t)((b & 0x8000) | nb)) - x);
            assert_true(d < dn || (d == dn && !(b & 1)));
        }
    }
}

/* ---- errors ---- */

static void test_errors(void **state) {
    uint8_t blocks[1024] = {0}; /* 256 elements of any type */
    float y[512], x[512] = {0};
    rg_err err;
    /* ragged and negative n */
    err.msg[0] = 0;
    assert_int_equal(rg_dequantize_ref(RG_Q4_0, blocks, y, 33, &err), RG_E_INVALID);
    assert_true(err.msg[0] != 0);
    assert_int_equal(rg_quantize_ref(RG_Q4_K, x, blocks, 300, &err), RG_E_INVALID);
    assert_int_equal(rg_dequantize_ref(RG_Q8_K, blocks, y, 128, &err), RG_E_INVALID);
    assert_int_equal(rg_dequantize_ref(RG_F16, blocks, y, -2, &err), RG_E_INVALID);
    assert_int_equal(rg_dequantize_ref(RG_Q8_0, NULL, y, 32, &err), RG_E_INVALID);
    assert_int_equal(rg_quantize_ref(RG_Q8_0, x, NULL, 32, &err), RG_E_INVALID);
    assert_int_equal(rg_dequantize_ref(RG_Q8_0, NULL, NULL, 0, &err), RG_OK);
    /* types without a reference: known but unsupported, unassigned, out of range */
    static const int bad[] = {RG_Q8_1, RG_Q2_K, RG_Q3_K, 4, 5, 16, 23, RG_I8, RG_I32, RG_F64, 31, 39, 40, 1000, -1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(rg_dequantize_ref((rg_dtype)bad[i], blocks, y, 256, &err), RG_E_INVALID);
        assert_int_equal(rg_quantize_ref((rg_dtype)bad[i], x, blocks, 256, NULL), RG_E_INVALID);
    }
    /* the reference covers exactly the types rg_dtype_info calls supported */
    for (uint32_t id = 0; id < RG_DTYPE_COUNT; id++) {
        const rg_dtype_info *info = rg_dtype_get(id);
        bool supported = info && info->supported;
        assert_int_equal(rg_dequantize_ref((rg_dtype)id, blocks, y, 256, &err) == RG_OK, supported);
        assert_int_equal(rg_quantize_ref((rg_dtype)id, x, blocks, 256, &err) == RG_OK, supported);
    }
}

int main(void) {
    rng = rg_test_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_zero_blocks),
        cmocka_unit_test(test_quantizer_rules),
        cmocka_unit_test(test_non_finite_input),
        cmocka_unit_test(test_hand_legacy),
        cmocka_unit_test(test_hand_k_scale_min),
        cmocka_unit_test(test_hand_q6_K),
        cmocka_unit_test(test_hand_q8_K),
        cmocka_unit_test(test_unaligned),
        cmocka_unit_test(test_fixtures),
        cmocka_unit_test(test_f16_all_patterns),
        cmocka_unit_test(test_bf16_all_patterns),
        cmocka_unit_test(test_f16_bf16_rounding),
        cmocka_unit_test(test_f16_bf16_nearest),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
