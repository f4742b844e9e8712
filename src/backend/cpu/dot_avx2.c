/* dot_avx2.c — AVX2/FMA/F16C dot kernels for the float weights and the legacy
 * 32-element quant blocks (kernels.h formats), nr <= 2 weight rows × nt <= 4
 * tokens per call: a weight vector or block is loaded and decoded once, then
 * used for each token.
 *   float:  acc += w * x, f16/bf16 weights widened by F16C / a shift; 2 rows ×
 *           4 tokens = 8 FMA chains for prefill, 4 chains for decode;
 *   legacy: the int8 dot of a block via maddubs (unsigned weights × signed
 *           activations, |w| and sign moved onto x for Q8_0) and madd, exact in
 *           int32; the format's offset (8 or 16) comes off as offset*sum(q_a);
 *           acc += d_w*d_a * dot (+ m_w*d_a*sum(q_a) for the formats with a
 *           min). Blocks go 8 at a time with one lane per block, so offsets,
 *           scales and the float accumulate are vector ops per 8 blocks. */
#include <stdbool.h>
#include <string.h>

#include "backend/cpu/kernels.h"
#include "core/quant.h"

#if RG_X86_SIMD

#include "backend/cpu/avx2_util.h"

/* ---- float weights */

/* element i of the weight row as 8 floats */
AVX2_INLINE __m256 load_w8(rg_dtype type, const void *w, int64_t i) {
    if (type == RG_F32) return _mm256_loadu_ps((const float *)w + i);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + i));
    if (type == RG_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)); /* bf16 */
}

AVX2_INLINE float load_w1(rg_dtype type, const void *w, int64_t i) {
    if (type == RG_F32) return ((const float *)w)[i];
    uint16_t h = ((const uint16_t *)w)[i];
    if (type == RG_F16) return f16_to_f32(h);
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

AVX2_INLINE void dot_float_n(const rg_dtype type, int64_t k, const void *w, size_t ws, const int nr, const uint8_t *a,
                             size_t as, const int nt, float *y, size_t ys) {
    enum { MAX_NC = 4 };
    /* independent accumulators per (row, token): 8 chains in all cover the FMA latency */
    const int nc = nr * nt >= 8 ? 1 : nr * nt >= 3 ? 2 : 4;
    __m256 acc[RG_DOT_MAX_NR][RG_DOT_MAX_NT][MAX_NC];
    for (int r = 0; r < nr; r++)
        for (int t = 0; t < nt; t++)
            for (int c = 0; c < nc; c++)
                acc[r][t][c] = _mm256_setzero_ps();
    /* no software prefetch here: it cost F32/F16 decode ~10 points of the read
     * probe (the dense stream is what the hardware prefetchers handle best) */
    int64_t i = 0;
    for (; i + 8 * nc <= k; i += 8 * nc)
        for (int c = 0; c < nc; c++) {
            __m256 wv[RG_DOT_MAX_NR];
            for (int r = 0; r < nr; r++)
                wv[r] = load_w8(type, (const uint8_t *)w + r * ws, i + 8 * c);
            for (int t = 0; t < nt; t++) {
                __m256 xv = _mm256_load_ps((const float *)(a + t * as) + i + 8 * c);
                for (int r = 0; r < nr; r++)
                    acc[r][t][c] = _mm256_fmadd_ps(wv[r], xv, acc[r][t][c]);
            }
        }
    for (int r = 0; r < nr; r++)
        for (int t = 0; t < nt; t++) {
            const float *x = (const float *)(a + t * as);
            __m256 sum = acc[r][t][0];
            for (int c = 1; c < nc; c++)
                sum = _mm256_add_ps(sum, acc[r][t][c]);
            float v = hsum_ps(sum);
            for (int64_t j = i; j < k; j++)
                v += load_w1(type, (const uint8_t *)w + r * ws, j) * x[j];
            y[r + t * ys] = v;
        }
}

/* Float kernels: every (nr, nt) combination compiled with constants. */
#define FLOAT_CASE(type, NR, NT) dot_float_n(type, k, w, ws, NR, a, as, NT, y, ys)
#define FLOAT_KERNEL(name, type)                                                                                       \
    AVX2_FN static void name(int64_t k, const void *w, size_t ws, int nr, const void *a, size_t as, int nt, float *y,  \
                             size_t ys) {                                                                              \
        switch (nr * 8 + nt) {                                                                                         \
        case 9: FLOAT_CASE(type, 1, 1); break;                                                                         \
        case 10: FLOAT_CASE(type, 1, 2); break;                                                                        \
        case 11: FLOAT_CASE(type, 1, 3); break;                                                                        \
        case 12: FLOAT_CASE(type, 1, 4); break;                                                                        \
        case 17: FLOAT_CASE(type, 2, 1); break;                                                                        \
        case 18: FLOAT_CASE(type, 2, 2); break;                                                                        \
        case 19: FLOAT_CASE(type, 2, 3); break;                                                                        \
        default: FLOAT_CASE(type, 2, 4); break;                                                                        \
        }                                                                                                              \
    }
FLOAT_KERNEL(dot_f32, RG_F32)
FLOAT_KERNEL(dot_f16, RG_F16)
FLOAT_KERNEL(dot_bf16, RG_BF16)

/* ---- legacy quant blocks against RG_ACT_Q8 */

typedef struct q8_rows {
    const int8_t *qs[RG_DOT_MAX_NT];
    const float *d[RG_DOT_MAX_NT];
    const int32_t *sum[RG_DOT_MAX_NT];
} q8_rows;

/* Q5's fifth bits: bit i of the 32-bit qh -> 0x10 in byte i */
AVX2_INLINE __m256i unpack_high_bits(const uint8_t qh4[4]) {
    uint32_t qh;
    memcpy(&qh, qh4, sizeof qh);
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3,
                                            3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201LL);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), spread); /* byte i = qh byte i/8 */
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

/* One block b (natural RG_ACT_Q8 layout, which RG_ACT_Q8P keeps past its last
 * group of 8): acc[t] += d_w*d_a * dot, macc[t] += m_w * d_a * sum(q_a). */
AVX2_INLINE void legacy_block(const rg_dtype type, const void *w, int64_t b, const q8_rows *r, const int nt,
                              __m256 acc[], float macc[]) {
    __m256i q;
    float dw, mw = 0;
    int offset = 0;
    switch (type) {
    case RG_Q4_0: {
        const rg_block_q4_0 *x = (const rg_block_q4_0 *)w + b;
        q = unpack_nibbles(x->qs), dw = f16_to_f32(x->d), offset = 8;
        break;
    }
    case RG_Q4_1: {
        const rg_block_q4_1 *x = (const rg_block_q4_1 *)w + b;
        q = unpack_nibbles(x->qs), dw = f16_to_f32(x->d), mw = f16_to_f32(x->m);
        break;
    }
    case RG_Q5_0: {
        const rg_block_q5_0 *x = (const rg_block_q5_0 *)w + b;
        q = _mm256_or_si256(unpack_nibbles(x->qs), unpack_high_bits(x->qh)), dw = f16_to_f32(x->d), offset = 16;
        break;
    }
    case RG_Q5_1: {
        const rg_block_q5_1 *x = (const rg_block_q5_1 *)w + b;
        q = _mm256_or_si256(unpack_nibbles(x->qs), unpack_high_bits(x->qh));
        dw = f16_to_f32(x->d), mw = f16_to_f32(x->m);
        break;
    }
    default: { /* RG_Q8_0: signed weights; maddubs wants |w| and moves the sign onto x */
        const rg_block_q8_0 *x = (const rg_block_q8_0 *)w + b;
        q = _mm256_loadu_si256((const __m256i *)x->qs), dw = f16_to_f32(x->d);
        break;
    }
    }
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i uq = type == RG_Q8_0 ? _mm256_sign_epi8(q, q) : q;
    for (int t = 0; t < nt; t++) {
        __m256i xa = _mm256_load_si256((const __m256i *)(r->qs[t] + 32 * b));
        if (type == RG_Q8_0) xa = _mm256_sign_epi8(xa, q);
        __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(uq, xa), ones);
        if (offset) p = _mm256_sub_epi32(p, _mm256_zextsi128_si256(_mm_cvtsi32_si128(offset * r->sum[t][b])));
        float da = r->d[t][b];
        acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dw * da), _mm256_cvtepi32_ps(p), acc[t]);
        if (type == RG_Q4_1 || type == RG_Q5_1) macc[t] += mw * (da * (float)r->sum[t][b]);
    }
}

/* ---- 8 blocks at a time: each block's int32 dot lands in its own lane, so the
 * offset, the scales (8 f16 converted at once) and the float accumulate happen
 * once per 8 blocks instead of per block. Q4_0 decode loop per 8 blocks
 * (llvm-mca -mcpu=znver3): the one-block path above, ~20 instructions a block,
 * ~160; lanes reduced with phaddd, 21.5 cycles; unpacks and the RG_ACT_Q8P
 * pairing below, 16 (17 with the prefetches); single-thread L1 throughput went
 * 15 -> 21 GB/s. The one-block path now only does blocks past the last group. */

AVX2_INLINE uint16_t rd16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* 8 f16 scales of consecutive blocks as 8 floats, in block order 0..7, or in
 * RG_ACT_Q8P's lane order 0 2 4 6 1 3 5 7 when paired. Assembled in
 * general-purpose registers: the integer ports are idle in these kernels while
 * the vector ones are the bottleneck (the empty asm keeps GCC from
 * vectorizing the shifts and ors). */
AVX2_INLINE __m256 gather_f16x8(const uint8_t *p, size_t stride, bool paired) {
    uint64_t lo = 0, hi = 0;
    for (int j = 0; j < 4; j++) {
        uint64_t a = rd16(p + (paired ? 2 * j : j) * stride), b = rd16(p + (paired ? 2 * j + 1 : j + 4) * stride);
        __asm__("" : "+r"(a), "+r"(b));
        lo |= a << (16 * j);
        hi |= b << (16 * j);
    }
    return _mm256_cvtph_ps(_mm_set_epi64x((long long)hi, (long long)lo));
}

/* 4 vectors of int32 partial sums -> lanes [a b c d | a b c d], each lane the
 * sum of 4 of that vector's elements (low half: elements 0..3, high: 4..7).
 * Unpacks instead of vphaddd: on Zen 3 phaddd is 3 uops on the one pipe that
 * maddubs/madd also need, which made it the bottleneck (llvm-mca -mcpu=znver3). */
AVX2_INLINE __m256i reduce4_epi32(__m256i a, __m256i b, __m256i c, __m256i d) {
    __m256i ab = _mm256_add_epi32(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
    __m256i cd = _mm256_add_epi32(_mm256_unpacklo_epi32(c, d), _mm256_unpackhi_epi32(c, d));
    return _mm256_add_epi32(_mm256_unpacklo_epi64(ab, cd), _mm256_unpackhi_epi64(ab, cd));
}

/* 8 Q8_0 blocks against RG_ACT_Q8: maddubs takes |w| and moves w's sign onto x. */
AVX2_INLINE void q8_0_group8(const void *w, int64_t b0, const q8_rows *r, const int nt, __m256 acc[]) {
    const rg_block_q8_0 *x = (const rg_block_q8_0 *)w + b0;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i half[2][RG_DOT_MAX_NT];
    for (int h = 0; h < 2; h++) {
        __m256i p[4][RG_DOT_MAX_NT];
        for (int j = 0; j < 4; j++) {
            int64_t b = 4 * h + j;
            __m256i q = _mm256_loadu_si256((const __m256i *)x[b].qs), uq = _mm256_sign_epi8(q, q);
            for (int t = 0; t < nt; t++) {
                __m256i xa = _mm256_sign_epi8(_mm256_load_si256((const __m256i *)(r->qs[t] + 32 * (b0 + b))), q);
                p[j][t] = _mm256_madd_epi16(_mm256_maddubs_epi16(uq, xa), ones);
            }
        }
        for (int t = 0; t < nt; t++)
            half[h][t] = reduce4_epi32(p[0][t], p[1][t], p[2][t], p[3][t]);
    }
    /* half[h] lanes: blocks 4h..4h+3, over elements (0..3 | 4..7) of each block's partials */
    __m256 dw = gather_f16x8((const uint8_t *)x, sizeof *x, false);
    for (int t = 0; t < nt; t++) {
        __m256i s = _mm256_add_epi32(_mm256_permute2x128_si256(half[0][t], half[1][t], 0x20),
                                     _mm256_permute2x128_si256(half[0][t], half[1][t], 0x31));
        __m256 da = _mm256_loadu_ps(r->d[t] + b0);
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, da), acc[t]);
    }
}

/* Two blocks b, b+1 of a 4/5-bit format: lo = [b's elements 0..15 | b+1's],
 * hi = [b's elements 16..31 | b+1's], each byte 0..31 — RG_ACT_Q8P's order. */
AVX2_INLINE void decode_pair(const rg_dtype type, const void *w, int64_t b, __m256i *lo, __m256i *hi) {
    const uint8_t *qa, *qb, *ha = NULL, *hb = NULL;
    switch (type) {
    case RG_Q4_0: qa = ((const rg_block_q4_0 *)w)[b].qs, qb = ((const rg_block_q4_0 *)w)[b + 1].qs; break;
    case RG_Q4_1: qa = ((const rg_block_q4_1 *)w)[b].qs, qb = ((const rg_block_q4_1 *)w)[b + 1].qs; break;
    case RG_Q5_0: {
        const rg_block_q5_0 *x = (const rg_block_q5_0 *)w + b;
        qa = x[0].qs, qb = x[1].qs, ha = x[0].qh, hb = x[1].qh;
        break;
    }
    default: { /* RG_Q5_1 */
        const rg_block_q5_1 *x = (const rg_block_q5_1 *)w + b;
        qa = x[0].qs, qb = x[1].qs, ha = x[0].qh, hb = x[1].qh;
        break;
    }
    }
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)qa)),
                                        _mm_loadu_si128((const __m128i *)qb), 1);
    *lo = _mm256_and_si256(v, m4);
    *hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    if (type == RG_Q5_0 || type == RG_Q5_1) { /* bit i of qh is element i's fifth bit */
        uint32_t a, c;
        memcpy(&a, ha, 4), memcpy(&c, hb, 4);
        /* both qh words in every 64-bit lane (one broadcast); the low 128-bit half
         * picks bytes of a, the high half bytes of c */
        __m256i h = _mm256_set1_epi64x((long long)((uint64_t)c << 32 | a));
        const __m256i bit = _mm256_set1_epi64x(0x8040201008040201LL), b4 = _mm256_set1_epi8(0x10);
        const __m256i spread_lo = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 4, 4, 4, 4, 4, 4, 4,
                                                   4, 5, 5, 5, 5, 5, 5, 5, 5);
        const __m256i spread_hi = _mm256_add_epi8(spread_lo, _mm256_set1_epi8(2));
        __m256i l = _mm256_and_si256(_mm256_shuffle_epi8(h, spread_lo), bit);
        __m256i u = _mm256_and_si256(_mm256_shuffle_epi8(h, spread_hi), bit);
        *lo = _mm256_or_si256(*lo, _mm256_and_si256(_mm256_cmpeq_epi8(l, bit), b4));
        *hi = _mm256_or_si256(*hi, _mm256_and_si256(_mm256_cmpeq_epi8(u, bit), b4));
    }
}

/* 8 blocks of a 4/5-bit format against RG_ACT_Q8P: per pair of blocks one
 * 256-bit nibble load, two maddubs summed in int16 (<= 2 * 2*31*127, no
 * saturation) and one madd; the 4 pair vectors reduce to lanes in block order
 * 0 2 4 6 1 3 5 7, which is how RG_ACT_Q8P stores d and sum. */
AVX2_INLINE void nibble_group8(const rg_dtype type, const void *w, int64_t b0, const q8_rows *r, const int nt,
                               __m256 acc[], __m256 macc[]) {
    const size_t bsize = type == RG_Q4_0   ? sizeof(rg_block_q4_0)
                         : type == RG_Q4_1 ? sizeof(rg_block_q4_1)
                         : type == RG_Q5_0 ? sizeof(rg_block_q5_0)
                                           : sizeof(rg_block_q5_1);
    const bool has_min = type == RG_Q4_1 || type == RG_Q5_1;
    const int offset_shift = type == RG_Q4_0 ? 3 : type == RG_Q5_0 ? 4 : 0;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i p[4][RG_DOT_MAX_NT];
    for (int j = 0; j < 4; j++) {
        __m256i lo, hi;
        decode_pair(type, w, b0 + 2 * j, &lo, &hi);
        for (int t = 0; t < nt; t++) {
            const int8_t *ya = r->qs[t] + 32 * b0 + 64 * j;
            __m256i p16 = _mm256_add_epi16(_mm256_maddubs_epi16(lo, _mm256_load_si256((const __m256i *)ya)),
                                           _mm256_maddubs_epi16(hi, _mm256_load_si256((const __m256i *)(ya + 32))));
            p[j][t] = _mm256_madd_epi16(p16, ones); /* [block 2j: 4 partials | block 2j+1: 4 partials] */
        }
    }
    const uint8_t *blk = (const uint8_t *)w + b0 * bsize;
    __m256 dw = gather_f16x8(blk, bsize, true), mw = has_min ? gather_f16x8(blk + 2, bsize, true) : _mm256_setzero_ps();
    for (int t = 0; t < nt; t++) {
        __m256i x01 =
            _mm256_add_epi32(_mm256_unpacklo_epi32(p[0][t], p[1][t]), _mm256_unpackhi_epi32(p[0][t], p[1][t]));
        __m256i x23 =
            _mm256_add_epi32(_mm256_unpacklo_epi32(p[2][t], p[3][t]), _mm256_unpackhi_epi32(p[2][t], p[3][t]));
        __m256i s = _mm256_add_epi32(_mm256_unpacklo_epi64(x01, x23), _mm256_unpackhi_epi64(x01, x23));
        __m256i sums = _mm256_loadu_si256((const __m256i *)(r->sum[t] + b0));
        if (offset_shift) s = _mm256_sub_epi32(s, _mm256_slli_epi32(sums, offset_shift));
        __m256 da = _mm256_loadu_ps(r->d[t] + b0);
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, da), acc[t]);
        if (has_min) macc[t] = _mm256_fmadd_ps(mw, _mm256_mul_ps(da, _mm256_cvtepi32_ps(sums)), macc[t]);
    }
}

AVX2_INLINE void dot_legacy_n(const rg_dtype type, int64_t k, const void *w, const uint8_t *a, size_t as, const int nt,
                              float *y, size_t ys) {
    const int64_t nb = k / 32;
    q8_rows r;
    for (int t = 0; t < nt; t++) {
        const uint8_t *row = a + t * as;
        r.qs[t] = (const int8_t *)row, r.d[t] = rg_act_q8_d(row, k), r.sum[t] = rg_act_q8_sum(row, k);
    }
    __m256 acc8[RG_DOT_MAX_NT], macc8[RG_DOT_MAX_NT];
    for (int t = 0; t < nt; t++)
        acc8[t] = macc8[t] = _mm256_setzero_ps();
    int64_t b = 0;
    const size_t bsize = rg_dtype_row_bytes(type, 32);
    for (; b + 8 <= nb; b += 8) {
        prefetch_ahead((const uint8_t *)w + b * bsize, 8 * bsize);
        if (type == RG_Q8_0)
            q8_0_group8(w, b, &r, nt, acc8);
        else
            nibble_group8(type, w, b, &r, nt, acc8, macc8);
    }
    float macc[RG_DOT_MAX_NT] = {0};
    for (; b < nb; b++)
        legacy_block(type, w, b, &r, nt, acc8, macc); /* past the last group of 8 */
    for (int t = 0; t < nt; t++)
        y[t * ys] = hsum_ps(_mm256_add_ps(acc8[t], macc8[t])) + macc[t];
}

#define DOT_KERNEL(name, type) AVX2_DOT_ROWS_KERNEL(name, dot_legacy_n, type)

DOT_KERNEL(dot_q4_0, RG_Q4_0)
DOT_KERNEL(dot_q4_1, RG_Q4_1)
DOT_KERNEL(dot_q5_0, RG_Q5_0)
DOT_KERNEL(dot_q5_1, RG_Q5_1)
DOT_KERNEL(dot_q8_0, RG_Q8_0)

void rg_cpu_fill_avx2(rg_cpu_kernels *t) {
    t->dot[RG_F32] = dot_f32;
    t->dot[RG_F16] = dot_f16;
    t->dot[RG_BF16] = dot_bf16;
    t->dot[RG_Q4_0] = dot_q4_0;
    t->dot[RG_Q4_1] = dot_q4_1;
    t->dot[RG_Q5_0] = dot_q5_0;
    t->dot[RG_Q5_1] = dot_q5_1;
    t->dot[RG_Q8_0] = dot_q8_0;
    rg_cpu_fill_avx2_kquant(t);
    t->act[RG_ACT_F16R] = rg_act_f16r_row_avx2;
    t->act[RG_ACT_BF16R] = rg_act_bf16r_row_avx2;
    t->act[RG_ACT_Q8] = rg_act_q8_row_avx2;
    t->act[RG_ACT_Q8P] = rg_act_q8p_row_avx2;
    t->fmt[RG_Q4_0] = t->fmt[RG_Q4_1] = t->fmt[RG_Q5_0] = t->fmt[RG_Q5_1] = RG_ACT_Q8P;
    t->act[RG_ACT_Q8K] = rg_act_q8k_row_avx2;
}

#else

void rg_cpu_fill_avx2(rg_cpu_kernels *t) { (void)t; }

#endif
