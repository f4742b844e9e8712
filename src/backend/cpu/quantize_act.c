/* quantize_act.c — rounding activation rows into the formats of kernels.h,
 * scalar and AVX2. Both are bit-exact with core/quant's reference quantizers
 * (ggml's *_ref rules), which tests/test_cpu_ops.c checks:
 *   Q8_0: d = amax/127, q = roundf(x * (1/d)) (half away from zero), d kept as f16
 *   Q8_K: per 256, max = the first element of largest |x|, iscale = -127/max,
 *         q = min(127, round-half-even(iscale * x)), d = 1/iscale, sums per 16
 *   F16/BF16: round to nearest even, stored back as the exact f32 value. */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "backend/cpu/kernels.h"
#include "core/fp16.h"

/* Every product rounds on its own, as in the reference quantizers (core/quant_*.c
 * do the same): with -march=native GCC fused iscale*x + 2^23 into an fma, and
 * 1 element in ~70k came out one step off (a tie seen only after rounding the
 * product; test_act_quantizers keeps that case). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#if RG_X86_SIMD
#include <immintrin.h>
#define TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#endif

void rg_act_f32_row(const float *x, void *a, int64_t k) { memcpy(a, x, (size_t)k * sizeof *x); }

void rg_act_f16r_row(const float *x, void *a, int64_t k) {
    float *o = a;
    for (int64_t i = 0; i < k; i++)
        o[i] = rg_f16_to_f32(rg_f32_to_f16(x[i]));
}

void rg_act_bf16r_row(const float *x, void *a, int64_t k) {
    float *o = a;
    for (int64_t i = 0; i < k; i++)
        o[i] = rg_bf16_to_f32(rg_f32_to_bf16(x[i]));
}

void rg_act_q8_row(const float *x, void *a, int64_t k) {
    int8_t *qs = a;
    float *dd = (float *)(qs + k);
    int32_t *sums = (int32_t *)(dd + k / 32);
    for (int64_t b = 0; b < k / 32; b++) {
        const float *xb = x + b * 32;
        float amax = 0;
        for (int j = 0; j < 32; j++)
            amax = fmaxf(amax, fabsf(xb[j]));
        float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
        int32_t sum = 0;
        for (int j = 0; j < 32; j++) {
            int8_t q = (int8_t)roundf(xb[j] * id);
            qs[b * 32 + j] = q;
            sum += q;
        }
        dd[b] = rg_f16_to_f32(rg_f32_to_f16(d));
        sums[b] = sum;
    }
}

/* round half to even, as ggml's nearest_int (valid for |v| < 2^22) */
static inline int nearest_int(float v) {
    float t = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &t, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

void rg_act_q8k_row(const float *x, void *a, int64_t k) {
    int8_t *qs = a;
    float *dd = (float *)(qs + k);
    int16_t *bsums = (int16_t *)(dd + k / 256);
    for (int64_t b = 0; b < k / 256; b++) {
        const float *xb = x + b * 256;
        int8_t *q = qs + b * 256;
        float amax = 0, max = 0;
        for (int j = 0; j < 256; j++)
            if (fabsf(xb[j]) > amax) amax = fabsf(xb[j]), max = xb[j];
        if (amax == 0) {
            dd[b] = 0;
            memset(q, 0, 256);
        } else {
            float iscale = -127.0f / max;
            for (int j = 0; j < 256; j++) {
                int v = nearest_int(iscale * xb[j]);
                q[j] = (int8_t)(v < 127 ? v : 127);
            }
            dd[b] = 1 / iscale;
        }
        for (int s = 0; s < 16; s++) {
            int sum = 0;
            for (int j = 0; j < 16; j++)
                sum += q[s * 16 + j];
            bsums[b * 16 + s] = (int16_t)sum;
        }
    }
}

#if RG_X86_SIMD

TARGET_AVX2 void rg_act_f16r_row_avx2(const float *x, void *a, int64_t k) {
    float *o = a;
    int64_t i = 0;
    for (; i + 8 <= k; i += 8)
        _mm256_storeu_ps(o + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT)));
    for (; i < k; i++)
        o[i] = rg_f16_to_f32(rg_f32_to_f16(x[i]));
}

TARGET_AVX2 void rg_act_bf16r_row_avx2(const float *x, void *a, int64_t k) {
    float *o = a;
    const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    const __m256i bias = _mm256_set1_epi32(0x7fff), one = _mm256_set1_epi32(1);
    const __m256i hi = _mm256_set1_epi32((int)0xffff0000u), quiet = _mm256_set1_epi32(0x400000);
    int64_t i = 0;
    for (; i + 8 <= k; i += 8) {
        __m256i u = _mm256_castps_si256(_mm256_loadu_ps(x + i));
        __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), one);
        __m256i r = _mm256_and_si256(_mm256_add_epi32(u, _mm256_add_epi32(bias, lsb)), hi);
        __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs_mask), inf);
        __m256i qnan = _mm256_or_si256(_mm256_and_si256(u, hi), quiet);
        _mm256_storeu_ps(o + i, _mm256_castsi256_ps(_mm256_blendv_epi8(r, qnan, nan)));
    }
    for (; i < k; i++)
        o[i] = rg_bf16_to_f32(rg_f32_to_bf16(x[i]));
}

TARGET_AVX2 static inline float hmax_ps(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

TARGET_AVX2 static inline int hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* roundf(): truncate, then step away from zero when the dropped part is >= 0.5
 * (v - trunc(v) is exact for the |v| <= 128 seen here). */
TARGET_AVX2 static inline __m256i round_away_epi32(__m256 v) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
    __m256 step = _mm256_or_ps(_mm256_set1_ps(1.0f), _mm256_and_ps(sign, v));
    t = _mm256_add_ps(t, _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ), step));
    return _mm256_cvttps_epi32(t);
}

/* Pack 4×8 int32 (each in [-128, 127]) into 32 int8 in element order. */
TARGET_AVX2 static inline __m256i pack_epi8(__m256i a, __m256i b, __m256i c, __m256i d) {
    __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
    __m256i p = _mm256_packs_epi16(ab, cd); /* lanes interleaved: a0 b0 c0 d0 a1 b1 c1 d1 (4 each) */
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* Q8_0 rows, in RG_ACT_Q8's plain layout or RG_ACT_Q8P's paired one */
TARGET_AVX2 static inline void q8_row_avx2(const float *x, void *a, int64_t k, bool paired) {
    int8_t *qs = a;
    float *dd = (float *)(qs + k);
    int32_t *sums = (int32_t *)(dd + k / 32);
    const int64_t nb = k / 32, nb_grouped = paired ? nb / 8 * 8 : 0;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < nb; b++) {
        const float *xb = x + b * 32;
        __m256 v[4], m = _mm256_setzero_ps();
        for (int j = 0; j < 4; j++) {
            v[j] = _mm256_loadu_ps(xb + 8 * j);
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[j]));
        }
        float amax = hmax_ps(m);
        float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
        __m256 vid = _mm256_set1_ps(id);
        __m256i q[4];
        for (int j = 0; j < 4; j++)
            q[j] = round_away_epi32(_mm256_mul_ps(v[j], vid));
        __m256i s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        __m256i packed = pack_epi8(q[0], q[1], q[2], q[3]);
        int64_t slot = b; /* where d and sum go */
        if (b < nb_grouped) {
            int8_t *pair = qs + 64 * (b / 2) + 16 * (b % 2);
            _mm_storeu_si128((__m128i *)pair, _mm256_castsi256_si128(packed));
            _mm_storeu_si128((__m128i *)(pair + 32), _mm256_extracti128_si256(packed, 1));
            int i = (int)(b % 8);
            slot = b - i + (i % 2 ? 4 + i / 2 : i / 2); /* lane order 0 2 4 6 1 3 5 7 */
        } else {
            _mm256_storeu_si256((__m256i *)(qs + b * 32), packed);
        }
        dd[slot] = _cvtsh_ss(_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT));
        sums[slot] = hsum_epi32(s);
    }
}

TARGET_AVX2 void rg_act_q8_row_avx2(const float *x, void *a, int64_t k) { q8_row_avx2(x, a, k, false); }
TARGET_AVX2 void rg_act_q8p_row_avx2(const float *x, void *a, int64_t k) { q8_row_avx2(x, a, k, true); }

TARGET_AVX2 void rg_act_q8k_row_avx2(const float *x, void *a, int64_t k) {
    int8_t *qs = a;
    float *dd = (float *)(qs + k);
    int16_t *bsums = (int16_t *)(dd + k / 256);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i ones16 = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < k / 256; b++) {
        const float *xb = x + b * 256;
        int8_t *q = qs + b * 256;
        __m256 m = _mm256_setzero_ps();
        for (int j = 0; j < 256; j += 8)
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(xb + j)));
        float amax = hmax_ps(m);
        if (amax == 0) {
            dd[b] = 0;
            memset(q, 0, 256);
            memset(bsums + b * 16, 0, 16 * sizeof *bsums);
            continue;
        }
        /* the reference keeps the sign of the first element reaching amax */
        __m256 vamax = _mm256_set1_ps(amax);
        float max = 0;
        for (int j = 0; j < 256; j += 8) {
            __m256 xv = _mm256_loadu_ps(xb + j);
            int hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, xv), vamax, _CMP_EQ_OQ));
            if (hit) {
                max = xb[j + __builtin_ctz((unsigned)hit)];
                break;
            }
        }
        float iscale = -127.0f / max;
        __m256 vis = _mm256_set1_ps(iscale);
        const __m256i lim = _mm256_set1_epi32(127);
        for (int j = 0; j < 256; j += 32) {
            __m256i v[4];
            for (int u = 0; u < 4; u++) {
                __m256 r = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(xb + j + 8 * u), vis),
                                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                v[u] = _mm256_min_epi32(_mm256_cvtps_epi32(r), lim);
            }
            __m256i p = pack_epi8(v[0], v[1], v[2], v[3]);
            _mm256_storeu_si256((__m256i *)(q + j), p);
            /* two sums of 16: widen to int16 pairs, then add within each 128-bit half */
            __m256i s16 = _mm256_maddubs_epi16(_mm256_set1_epi8(1), p); /* 16 pair sums */
            __m256i s32 = _mm256_madd_epi16(s16, ones16);               /* 8 quad sums */
            __m128i lo = _mm256_castsi256_si128(s32), hi = _mm256_extracti128_si256(s32, 1);
            lo = _mm_add_epi32(lo, _mm_shuffle_epi32(lo, 0x4e));
            hi = _mm_add_epi32(hi, _mm_shuffle_epi32(hi, 0x4e));
            lo = _mm_add_epi32(lo, _mm_shuffle_epi32(lo, 0xb1));
            hi = _mm_add_epi32(hi, _mm_shuffle_epi32(hi, 0xb1));
            bsums[b * 16 + j / 16] = (int16_t)_mm_cvtsi128_si32(lo);
            bsums[b * 16 + j / 16 + 1] = (int16_t)_mm_cvtsi128_si32(hi);
        }
        dd[b] = 1 / iscale;
    }
}

#endif
