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
