/* avx2_util.h — shared by the AVX2 kernel files: the target attribute (the rest
 * of the build need not be compiled for AVX2; dispatch.c checks the CPU first)
 * and a few horizontal reductions. */
#ifndef RG_BACKEND_CPU_AVX2_UTIL_H
#define RG_BACKEND_CPU_AVX2_UTIL_H

#include <immintrin.h>
#include <stdint.h>

#define AVX2_FN __attribute__((target("avx2,fma,f16c")))
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma,f16c")))

AVX2_INLINE float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2_INLINE float f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }

/* Software prefetch of the weight stream, PREFETCH_BYTES ahead of the bytes
 * [p, p + n) about to be read, one prefetch per 64-byte line. On the 2-vCPU
 * EPYC (A/B, 5 alternating runs, decode at k=2048): Q8_0 66 -> 82%, Q4_0
 * 56 -> 63%, Q4_K 54 -> 62%, Q6_K 58 -> 72% of the read probe under a busy
 * neighbour, and 70-80 -> 87-99% when quiet; 1 and 4 KiB ahead measured the same
 * as 2 KiB; one prefetch per 8-block group instead of per line lost 23-50
 * points. The float kernels do without (it cost them ~10 points). Prefetches
 * past the end of the weights are harmless (no fault). */
/* An exported dot kernel for one weight type from an inner kernel
 * inner(type, k, w_row, a, as, nt, y, ys) over one row: rows one at a time, and a
 * switch on nt so that each case is compiled with the token count as a constant
 * (loops unrolled, accumulators in registers). */
#define AVX2_DOT_ROWS_KERNEL(name, inner, type)                                                                       \
    AVX2_FN static void name(int64_t k, const void *w, size_t ws, int nr, const void *a, size_t as, int nt, float *y,  \
                             size_t ys) {                                                                              \
        for (int r = 0; r < nr; r++) {                                                                                 \
            const void *wr = (const uint8_t *)w + r * ws;                                                              \
            switch (nt) {                                                                                              \
            case 1: inner(type, k, wr, a, as, 1, y + r, ys); break;                                                    \
            case 2: inner(type, k, wr, a, as, 2, y + r, ys); break;                                                    \
            case 3: inner(type, k, wr, a, as, 3, y + r, ys); break;                                                    \
            default: inner(type, k, wr, a, as, 4, y + r, ys); break;                                                   \
            }                                                                                                          \
        }                                                                                                              \
    }

/* e^x for softmax and silu: x = n ln2 + r (ln2 split in two so n ln2 is exact),
 * e^r by a degree-7 polynomial, 2^n built in the exponent bits. x is clamped to
 * [-88.38, 88.38]; x <= -88.38 gives exactly 0 (n = -127), a NaN stays NaN.
 * Relative error a few ulp (tests/test_cpu_ops.c checks softmax and swiglu). */
AVX2_INLINE __m256 avx2_exp_ps(__m256 x) {
    /* min/max with the constant first: a NaN in x comes out as NaN, not clamped */
    x = _mm256_min_ps(_mm256_set1_ps(88.3762626647949f), x);
    x = _mm256_max_ps(_mm256_set1_ps(-88.3762626647949f), x);
    /* x = n ln2 + r, |r| <= ln2/2, ln2 split in two so n ln2 is exact */
    __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), r);
    y = _mm256_add_ps(y, _mm256_set1_ps(1.0f));
    /* 2^n by building the exponent; n = -127 (x <= -88) gives 0 */
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

#ifndef PREFETCH_BYTES
#define PREFETCH_BYTES 2048
#endif
AVX2_INLINE void prefetch_ahead(const void *p, size_t n) {
    for (size_t o = 0; o < n; o += 64)
        _mm_prefetch((const char *)p + PREFETCH_BYTES + o, _MM_HINT_T0);
}

/* 16 packed nibbles -> 32 bytes: low nibbles then high nibbles (the element
 * order of Q4_0/Q4_1/Q5_x blocks), each 0..15. */
AVX2_INLINE __m256i unpack_nibbles(const uint8_t *qs) {
    __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    return _mm256_and_si256(_mm256_srlv_epi64(v, _mm256_setr_epi64x(0, 0, 4, 4)), _mm256_set1_epi8(0x0f));
}

#endif
