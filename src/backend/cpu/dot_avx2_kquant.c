/* dot_avx2_kquant.c — AVX2 dot kernels for the K-quants against Q8_K
 * activations (kernels.h RG_ACT_Q8K), one weight row at a time × nt <= 4 tokens.
 * Per 256-element super-block, exact in int32:
 *   Q4_K/Q5_K: sumi = sum_j sc_j * (q_w·q_a over sub-block j of 32), mins via the
 *              activation's per-16 sums: summ = sum_i m_{i/2} * bsum_i;
 *              acc += d*d_a*sumi - dmin*d_a*summ
 *   Q6_K:      q_w stored as 0..63 with offset 32: sumi = sum_i sc_i * q_w·q_a
 *              - 32 * sum_i sc_i * bsum_i (sub-blocks of 16); acc += d*d_a*sumi
 * maddubs takes the unsigned weights and the signed activations directly, so
 * no sign juggling; its int16 pair sums cannot saturate (63*127*2 < 2^15). */
#include <stdbool.h>
#include <string.h>

#include "backend/cpu/kernels.h"
#include "core/quant.h"

#if RG_X86_SIMD

#include "backend/cpu/avx2_util.h"

typedef struct q8k_rows {
    const int8_t *qs[RG_DOT_MAX_NT];
    const float *d[RG_DOT_MAX_NT];
    const int16_t *bsums[RG_DOT_MAX_NT];
} q8k_rows;

/* Q4_K/Q5_K's 12 packed bytes -> bytes 0..7 the 6-bit scales, 8..15 the mins. */
AVX2_INLINE __m128i unpack_scales_mins(const uint8_t s[12]) {
    uint32_t u[3];
    memcpy(&u[0], s, 4), memcpy(&u[1], s + 4, 4), memcpy(&u[2], s + 8, 4); /* three loads, no stack copy */
    const uint32_t m6 = 0x3f3f3f3f, m4 = 0x0f0f0f0f, m2 = 0x03030303;
    uint32_t sc_lo = u[0] & m6, mn_lo = u[1] & m6;
    uint32_t sc_hi = (u[2] & m4) | ((u[0] >> 6) & m2) << 4;
    uint32_t mn_hi = ((u[2] >> 4) & m4) | ((u[1] >> 6) & m2) << 4;
    return _mm_setr_epi32((int)sc_lo, (int)sc_hi, (int)mn_lo, (int)mn_hi);
}

/* int16 vector of byte j of v (both halves hold v), zero-extended */
AVX2_INLINE __m256i bcast_u8_epi16(__m256i v2, int j) {
    return _mm256_shuffle_epi8(v2, _mm256_set1_epi16((short)(0x8000 | j)));
}

AVX2_INLINE void dot_q45k_n(const rg_dtype type, int64_t k, const void *w, const q8k_rows *r, const int nt, float *y,
                            size_t ys) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), bit4 = _mm256_set1_epi8(0x10);
    const __m128i pair_mins = _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
    __m256 acc[RG_DOT_MAX_NT];
    for (int t = 0; t < nt; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < k / 256; b++) {
        const uint8_t *qs, *qh = NULL, *scales;
        uint16_t dh, dminh;
        prefetch_ahead((const uint8_t *)w + b * (type == RG_Q4_K ? sizeof(rg_block_q4_K) : sizeof(rg_block_q5_K)),
                       type == RG_Q4_K ? sizeof(rg_block_q4_K) : sizeof(rg_block_q5_K));
        if (type == RG_Q4_K) {
            const rg_block_q4_K *x = (const rg_block_q4_K *)w + b;
            qs = x->qs, scales = x->scales, dh = x->d, dminh = x->dmin;
        } else {
            const rg_block_q5_K *x = (const rg_block_q5_K *)w + b;
            qs = x->qs, qh = x->qh, scales = x->scales, dh = x->d, dminh = x->dmin;
        }
        __m128i sm = unpack_scales_mins(scales);
        __m256i sm2 = _mm256_broadcastsi128_si256(sm);
        __m256i mins16 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(sm, pair_mins)); /* m_{i/2}, i < 16 */
        __m256i hbits = type == RG_Q5_K ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
        __m256i sumi[RG_DOT_MAX_NT];
        for (int t = 0; t < nt; t++)
            sumi[t] = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) { /* 64 elements: sub-blocks 2c (low nibbles) and 2c+1 (high) */
            __m256i qv = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
            __m256i lo = _mm256_and_si256(qv, m4), hi = _mm256_and_si256(_mm256_srli_epi16(qv, 4), m4);
            if (type == RG_Q5_K) { /* bits 2c and 2c+1 of qh; hbits moves down 2 per chunk */
                lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(hbits, 4), bit4));
                hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(hbits, 3), bit4));
                hbits = _mm256_srli_epi16(hbits, 2);
            }
            __m256i s_lo = bcast_u8_epi16(sm2, 2 * c), s_hi = bcast_u8_epi16(sm2, 2 * c + 1);
            for (int t = 0; t < nt; t++) {
                const int8_t *xa = r->qs[t] + 256 * b + 64 * c;
                __m256i p_lo = _mm256_maddubs_epi16(lo, _mm256_load_si256((const __m256i *)xa));
                __m256i p_hi = _mm256_maddubs_epi16(hi, _mm256_load_si256((const __m256i *)(xa + 32)));
                sumi[t] = _mm256_add_epi32(
                    sumi[t], _mm256_add_epi32(_mm256_madd_epi16(p_lo, s_lo), _mm256_madd_epi16(p_hi, s_hi)));
            }
        }
        float dw = f16_to_f32(dh), dmin = f16_to_f32(dminh);
        for (int t = 0; t < nt; t++) {
            float da = r->d[t][b];
            __m256i summ = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(r->bsums[t] + 16 * b)), mins16);
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dw * da), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
            acc[t] = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * da), _mm256_cvtepi32_ps(summ), acc[t]);
        }
    }
    for (int t = 0; t < nt; t++)
        y[t * ys] = hsum_ps(acc[t]);
}

AVX2_INLINE void dot_q6k_n(int64_t k, const void *w, const q8k_rows *r, const int nt, float *y, size_t ys) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(0x03);
    /* low half: bytes 0,1 of each dword (scale 2p), high half: bytes 2,3 (scale 2p+1) */
    const __m256i pick = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3,
                                          2, 3, 2, 3, 2, 3);
    __m256 acc[RG_DOT_MAX_NT];
    for (int t = 0; t < nt; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < k / 256; b++) {
        const rg_block_q6_K *x = (const rg_block_q6_K *)w + b;
        prefetch_ahead(x, sizeof *x);
        __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x->scales));
        __m256i sumi[RG_DOT_MAX_NT];
        for (int t = 0; t < nt; t++) /* the offset: -32 * sum_i sc_i * bsum_i */
            sumi[t] = _mm256_slli_epi32(
                _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(r->bsums[t] + 16 * b)), sc16), 5);
        for (int t = 0; t < nt; t++)
            sumi[t] = _mm256_sub_epi32(_mm256_setzero_si256(), sumi[t]);
        for (int h = 0; h < 2; h++) {
            __m256i ql0 = _mm256_loadu_si256((const __m256i *)(x->ql + 64 * h));
            __m256i ql1 = _mm256_loadu_si256((const __m256i *)(x->ql + 64 * h + 32));
            __m256i qh = _mm256_loadu_si256((const __m256i *)(x->qh + 32 * h));
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4));
            for (int g = 0; g < 4; g++) { /* 32 elements = sub-blocks 8h+2g, 8h+2g+1 */
                __m256i sc = _mm256_shuffle_epi8(_mm256_permutevar8x32_epi32(sc16, _mm256_set1_epi32(4 * h + g)), pick);
                for (int t = 0; t < nt; t++) {
                    const int8_t *xa = r->qs[t] + 256 * b + 128 * h + 32 * g;
                    __m256i p = _mm256_maddubs_epi16(q[g], _mm256_load_si256((const __m256i *)xa));
                    sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(p, sc));
                }
            }
        }
        float dw = f16_to_f32(x->d);
        for (int t = 0; t < nt; t++)
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dw * r->d[t][b]), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
    }
    for (int t = 0; t < nt; t++)
        y[t * ys] = hsum_ps(acc[t]);
}

AVX2_INLINE void dot_kquant_n(const rg_dtype type, int64_t k, const void *w, const uint8_t *a, size_t as, const int nt,
                              float *y, size_t ys) {
    q8k_rows r;
    for (int t = 0; t < nt; t++) {
        const uint8_t *row = a + t * as;
        r.qs[t] = (const int8_t *)row, r.d[t] = rg_act_q8k_d(row, k), r.bsums[t] = rg_act_q8k_bsums(row, k);
    }
    if (type == RG_Q6_K)
        dot_q6k_n(k, w, &r, nt, y, ys);
    else
        dot_q45k_n(type, k, w, &r, nt, y, ys);
}

#define DOT_KERNEL(name, type) AVX2_DOT_ROWS_KERNEL(name, dot_kquant_n, type)

DOT_KERNEL(dot_q4_K, RG_Q4_K)
DOT_KERNEL(dot_q5_K, RG_Q5_K)
DOT_KERNEL(dot_q6_K, RG_Q6_K)

void rg_cpu_fill_avx2_kquant(rg_cpu_kernels *t) {
    t->dot[RG_Q4_K] = dot_q4_K;
    t->dot[RG_Q5_K] = dot_q5_K;
    t->dot[RG_Q6_K] = dot_q6_K;
}

#endif
