/* fp16.h — IEEE half and bfloat16 <-> float32 conversions (round to nearest even).
 *
 * Portable bit manipulation so the reference paths need no F16C; the SIMD
 * kernels use the hardware instructions and are tested against these. */
#ifndef RG_CORE_FP16_H
#define RG_CORE_FP16_H

#include <stdint.h>
#include <string.h>

static inline uint32_t rg_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float rg_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static inline float rg_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    if (exp == 0x1f) return rg_bits_f32(sign | 0x7f800000u | (mant << 13)); /* inf/nan */
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24 */
        float v = (float)mant * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return rg_bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

static inline uint16_t rg_f32_to_f16(float f) {
    uint32_t x = rg_f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds to >= 65520: inf */
    if (ax < 0x38800000u) {
        /* result is subnormal or zero: value / 2^-24, rounded to nearest even */
        float v = rg_bits_f32(ax) * 16777216.0f;
        uint32_t m = (uint32_t)v;
        float rem = v - (float)m;
        if (rem > 0.5f || (rem == 0.5f && (m & 1))) m++;
        return (uint16_t)(sign | m);
    }
    uint32_t mant = ax & 0x7fffff, exp = (ax >> 23) - 112;
    uint32_t h = (exp << 10) | (mant >> 13);
    uint32_t rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++; /* carry may bump the exponent: correct */
    return (uint16_t)(sign | h);
}

static inline float rg_bf16_to_f32(uint16_t b) { return rg_bits_f32((uint32_t)b << 16); }

static inline uint16_t rg_f32_to_bf16(float f) {
    uint32_t x = rg_f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet nan */
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

#endif
