/* attention_simd.c — the inner loops of CPU attention, portable and AVX2.
 *
 * Both algorithms reduce to two products over one KV slab (block_size rows of
 * head_dim elements of one KV head, in the pool's dtype) plus a softmax:
 *   dot:  s[i][j]  = scale * q_i . K_j        for nh query heads i, rows j
 *   axpy: acc_i   += sum_j p[i][j] V_j
 * Every K/V element is converted from f16/bf16 as it is loaded and used for all
 * nh heads at once, so a GQA group reads and converts its slab once. An earlier
 * version converted each slab into an f32 tile first and then ran per-head
 * loops over the tile: the convert-and-store pass took ~35% of decode time
 * (perf), and fusing it halved decode at short contexts (32/8 heads, head_dim
 * 64, f16, one thread: 29 -> 15 us at n_ctx 64, 230 -> 130 us at 512).
 *
 * Register blocking: every AVX2 tile keeps 8 independent accumulators (an FMA
 * has 4 cycles of latency and the core issues 2 a cycle): dot takes nh heads x
 * 8/nh rows, axpy nh heads x 8/nh column vectors. head_dim need not be a
 * multiple of 8 (the last columns go through a zero-padded buffer). exp is the
 * Cephes polynomial (relative error ~2e-7 on [-88, 0], tested). */
#include <math.h>

#include "backend/cpu/attention_internal.h"
#include "backend/cpu/kernels.h"
#include "core/fp16.h"

/* ---- portable ---------------------------------------------------------- */

static float load1(rg_dtype t, const void *base, int64_t i) {
    if (t == RG_F32) return ((const float *)base)[i];
    if (t == RG_F16) return rg_f16_to_f32(((const uint16_t *)base)[i]);
    return rg_bf16_to_f32(((const uint16_t *)base)[i]);
}

static void dot_scalar(rg_dtype t, const float *q, int nh, const void *k, int64_t n_rows, int64_t hd, float scale,
                       float *s, int64_t s_stride) {
    for (int i = 0; i < nh; i++)
        for (int64_t j = 0; j < n_rows; j++) {
            float acc = 0;
            for (int64_t d = 0; d < hd; d++)
                acc += q[i * hd + d] * load1(t, k, j * hd + d);
            s[i * s_stride + j] = acc * scale;
        }
}

static void axpy_scalar(rg_dtype t, const float *p, int nh, int64_t p_stride, const void *v, int64_t n_rows, int64_t hd,
                        float *acc) {
    for (int64_t j = 0; j < n_rows; j++)
        for (int64_t d = 0; d < hd; d++) {
            float x = load1(t, v, j * hd + d);
            for (int i = 0; i < nh; i++)
                acc[i * hd + d] += p[i * p_stride + j] * x;
        }
}

static float max_scalar(const float *s, int64_t n) {
    float m = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        m = s[i] > m ? s[i] : m;
    return m;
}

static float exp_sum_scalar(float *s, int64_t n, float m) {
    float sum = 0;
    for (int64_t i = 0; i < n; i++)
        sum += s[i] = expf(s[i] - m);
    return sum;
}

static void scale_scalar(float *x, int64_t n, float c) {
    for (int64_t i = 0; i < n; i++)
        x[i] *= c;
}

static const rg_attn_isa isa_scalar = {dot_scalar, axpy_scalar, max_scalar, exp_sum_scalar, scale_scalar};

/* ---- AVX2 + FMA + F16C -------------------------------------------------- */
#if defined(__x86_64__)
#include "backend/cpu/avx2_util.h"

/* 8 elements at base[i..i+8) as f32; t is a constant after inlining. */
AVX2_INLINE __m256 load8(rg_dtype t, const void *base, int64_t i) {
    if (t == RG_F32) return _mm256_loadu_ps((const float *)base + i);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)base + i));
    if (t == RG_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* base[i..i+n) for n < 8, zero-padded to 8 lanes. */
AVX2_INLINE __m256 load_tail(rg_dtype t, const void *base, int64_t i, int64_t n) {
    float buf[8] = {0};
    for (int64_t e = 0; e < n; e++)
        buf[e] = load1(t, base, i + e);
    return _mm256_loadu_ps(buf);
}

/* Lanes [0, n) set, n in [0, 8]. */
AVX2_INLINE __m256i tail_mask(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Sum of each of 8 vectors, as one vector [sum a0, ..., sum a7]. */
AVX2_INLINE __m256 hsum8(const __m256 a[8]) {
    __m256 h0 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
    __m256 h1 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
    /* h0 = [a0..a3 over lanes 0-3 | a0..a3 over lanes 4-7], h1 the same for a4..a7 */
    return _mm256_add_ps(_mm256_permute2f128_ps(h0, h1, 0x20), _mm256_permute2f128_ps(h0, h1, 0x31));
}

/* Scores of NH heads against NR rows starting at row j (NH * NR <= 8);
 * accumulator a[i * NR + r] holds head i, row r. */
AVX2_INLINE void dot_tile(rg_dtype t, const float *q, const void *k, int64_t j, int64_t hd, float scale, float *s,
                          int64_t s_stride, int NH, int NR) {
    __m256 a[8];
    for (int x = 0; x < 8; x++)
        a[x] = _mm256_setzero_ps();
    __m256 qv[8];
    int64_t d = 0;
    for (; d + 8 <= hd; d += 8) {
        for (int i = 0; i < NH; i++)
            qv[i] = _mm256_loadu_ps(q + i * hd + d); /* once per column, not per row */
        for (int r = 0; r < NR; r++) {
            __m256 kv = load8(t, k, (j + r) * hd + d);
            for (int i = 0; i < NH; i++)
                a[i * NR + r] = _mm256_fmadd_ps(qv[i], kv, a[i * NR + r]);
        }
    }
    if (d < hd) {
        __m256i m = tail_mask(hd - d);
        for (int i = 0; i < NH; i++)
            qv[i] = _mm256_maskload_ps(q + i * hd + d, m);
        for (int r = 0; r < NR; r++) {
            __m256 kv = load_tail(t, k, (j + r) * hd + d, hd - d);
            for (int i = 0; i < NH; i++)
                a[i * NR + r] = _mm256_fmadd_ps(qv[i], kv, a[i * NR + r]);
        }
    }
    float out[8];
    _mm256_storeu_ps(out, _mm256_mul_ps(hsum8(a), _mm256_set1_ps(scale)));
    for (int i = 0; i < NH; i++)
        for (int r = 0; r < NR; r++)
            s[i * s_stride + j + r] = out[i * NR + r];
}

/* NH heads (NH in 1, 2, 4, 8) over all rows: 8/NH rows a pass, then one at a time. */
AVX2_INLINE void dot_heads(rg_dtype t, const float *q, const void *k, int64_t n_rows, int64_t hd, float scale, float *s,
                           int64_t s_stride, int NH) {
    int NR = 8 / NH;
    int64_t j = 0;
    for (; j + NR <= n_rows; j += NR)
        dot_tile(t, q, k, j, hd, scale, s, s_stride, NH, NR);
    for (; j < n_rows; j++)
        dot_tile(t, q, k, j, hd, scale, s, s_stride, NH, 1);
}

AVX2_INLINE void dot_any(rg_dtype t, const float *q, int nh, const void *k, int64_t n_rows, int64_t hd, float scale,
                         float *s, int64_t s_stride) {
    for (int i = 0; i < nh;) { /* the heads in passes of 8, 4, 2, 1 */
        int left = nh - i;
        const float *qi = q + i * hd;
        float *si = s + i * s_stride;
        if (left >= 8)
            dot_heads(t, qi, k, n_rows, hd, scale, si, s_stride, 8), i += 8;
        else if (left >= 4)
            dot_heads(t, qi, k, n_rows, hd, scale, si, s_stride, 4), i += 4;
        else if (left >= 2)
            dot_heads(t, qi, k, n_rows, hd, scale, si, s_stride, 2), i += 2;
        else
            dot_heads(t, qi, k, n_rows, hd, scale, si, s_stride, 1), i += 1;
    }
}

AVX2_FN static void dot_avx2(rg_dtype t, const float *q, int nh, const void *k, int64_t n_rows, int64_t hd, float scale,
                             float *s, int64_t s_stride) {
    if (t == RG_F32)
        dot_any(RG_F32, q, nh, k, n_rows, hd, scale, s, s_stride);
    else if (t == RG_F16)
        dot_any(RG_F16, q, nh, k, n_rows, hd, scale, s, s_stride);
    else
        dot_any(RG_BF16, q, nh, k, n_rows, hd, scale, s, s_stride);
}

/* acc_i[d0 + 8c ..] += sum_j p_i[j] V_j[..] for NH heads, NC column vectors (NH * NC <= 8). */
AVX2_INLINE void axpy_tile(rg_dtype t, const float *p, int64_t p_stride, const void *v, int64_t n_rows, int64_t hd,
                           float *acc, int64_t d0, int NH, int NC) {
    __m256 a[8];
    for (int i = 0; i < NH; i++)
        for (int c = 0; c < NC; c++)
            a[i * NC + c] = _mm256_loadu_ps(acc + i * hd + d0 + 8 * c);
    for (int64_t j = 0; j < n_rows; j++)
        for (int c = 0; c < NC; c++) {
            __m256 vv = load8(t, v, j * hd + d0 + 8 * c);
            for (int i = 0; i < NH; i++)
                a[i * NC + c] = _mm256_fmadd_ps(_mm256_broadcast_ss(p + i * p_stride + j), vv, a[i * NC + c]);
        }
    for (int i = 0; i < NH; i++)
        for (int c = 0; c < NC; c++)
            _mm256_storeu_ps(acc + i * hd + d0 + 8 * c, a[i * NC + c]);
}

AVX2_INLINE void axpy_heads(rg_dtype t, const float *p, int64_t p_stride, const void *v, int64_t n_rows, int64_t hd,
                            float *acc, int NH) {
    int NC = 8 / NH;
    int64_t d = 0;
    for (; d + 8 * NC <= hd; d += 8 * NC)
        axpy_tile(t, p, p_stride, v, n_rows, hd, acc, d, NH, NC);
    for (; d + 8 <= hd; d += 8)
        axpy_tile(t, p, p_stride, v, n_rows, hd, acc, d, NH, 1);
    if (d < hd) {
        __m256i m = tail_mask(hd - d);
        for (int i = 0; i < NH; i++) {
            __m256 a = _mm256_maskload_ps(acc + i * hd + d, m);
            for (int64_t j = 0; j < n_rows; j++)
                a = _mm256_fmadd_ps(_mm256_broadcast_ss(p + i * p_stride + j), load_tail(t, v, j * hd + d, hd - d), a);
            _mm256_maskstore_ps(acc + i * hd + d, m, a);
        }
    }
}

AVX2_INLINE void axpy_any(rg_dtype t, const float *p, int nh, int64_t p_stride, const void *v, int64_t n_rows,
                          int64_t hd, float *acc) {
    for (int i = 0; i < nh;) {
        int left = nh - i;
        const float *pi = p + i * p_stride;
        float *ai = acc + i * hd;
        if (left >= 8)
            axpy_heads(t, pi, p_stride, v, n_rows, hd, ai, 8), i += 8;
        else if (left >= 4)
            axpy_heads(t, pi, p_stride, v, n_rows, hd, ai, 4), i += 4;
        else if (left >= 2)
            axpy_heads(t, pi, p_stride, v, n_rows, hd, ai, 2), i += 2;
        else
            axpy_heads(t, pi, p_stride, v, n_rows, hd, ai, 1), i += 1;
    }
}

AVX2_FN static void axpy_avx2(rg_dtype t, const float *p, int nh, int64_t p_stride, const void *v, int64_t n_rows,
                              int64_t hd, float *acc) {
    if (t == RG_F32)
        axpy_any(RG_F32, p, nh, p_stride, v, n_rows, hd, acc);
    else if (t == RG_F16)
        axpy_any(RG_F16, p, nh, p_stride, v, n_rows, hd, acc);
    else
        axpy_any(RG_BF16, p, nh, p_stride, v, n_rows, hd, acc);
}

AVX2_FN static float max_avx2(const float *s, int64_t n) {
    __m256 m = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        m = _mm256_max_ps(m, _mm256_loadu_ps(s + i));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    float r = _mm_cvtss_f32(h);
    for (; i < n; i++)
        r = s[i] > r ? s[i] : r;
    return r;
}

AVX2_FN static float exp_sum_avx2(float *s, int64_t n, float m) {
    __m256 mv = _mm256_set1_ps(m), sum = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = avx2_exp_ps(_mm256_sub_ps(_mm256_loadu_ps(s + i), mv));
        _mm256_storeu_ps(s + i, e);
        sum = _mm256_add_ps(sum, e);
    }
    if (i < n) {
        __m256i mask = tail_mask(n - i);
        __m256 e = avx2_exp_ps(_mm256_sub_ps(_mm256_maskload_ps(s + i, mask), mv));
        e = _mm256_and_ps(e, _mm256_castsi256_ps(mask));
        _mm256_maskstore_ps(s + i, mask, e);
        sum = _mm256_add_ps(sum, e);
    }
    return hsum_ps(sum);
}

AVX2_FN static void scale_avx2(float *x, int64_t n, float c) {
    __m256 cv = _mm256_set1_ps(c);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), cv));
    for (; i < n; i++)
        x[i] *= c;
}

static const rg_attn_isa isa_avx2 = {dot_avx2, axpy_avx2, max_avx2, exp_sum_avx2, scale_avx2};
#endif

const rg_attn_isa *rg_attn_isa_get(void) {
#if defined(__x86_64__)
    if (rg_cpu_isa_active() == RG_ISA_AVX2) return &isa_avx2;
#endif
    return &isa_scalar;
}
