/* dequant.cuh — 8 consecutive weights of a resident row into registers, for each
 * resident layout (cuda_internal.h). Element group g covers elements 8g..8g+7
 * of row r; each layout reads one aligned word of quantized values per group
 * plus its scales (which neighbouring groups share, so they come from cache).
 * The arithmetic follows the reference dequantizers in core/quant_*.c. */
#ifndef RG_BACKEND_CUDA_DEQUANT_CUH
#define RG_BACKEND_CUDA_DEQUANT_CUH

#include "backend/cuda/cuda_internal.h"

template <int T> struct wt {};

template <> struct wt<RG_F32> {
    static constexpr int bytes8 = 32;
    static __device__ __forceinline__ void load(const wplanes &w, int64_t r, int64_t g, float *o) {
        const float4 *p = (const float4 *)(w.p0 + (r * w.k + 8 * g) * 4);
        float4 a = __ldg(p), b = __ldg(p + 1);
        o[0] = a.x, o[1] = a.y, o[2] = a.z, o[3] = a.w, o[4] = b.x, o[5] = b.y, o[6] = b.z, o[7] = b.w;
    }
};

template <> struct wt<RG_F16> {
    static constexpr int bytes8 = 16;
    static __device__ __forceinline__ void load(const wplanes &w, int64_t r, int64_t g, float *o) {
        uint4 u = __ldg((const uint4 *)(w.p0 + (r * w.k + 8 * g) * 2));
        const __half2 *h = (const __half2 *)&u;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            float2 f = __half22float2(h[i]);
            o[2 * i] = f.x, o[2 * i + 1] = f.y;
        }
    }
};

template <> struct wt<RG_BF16> {
    static constexpr int bytes8 = 16;
    static __device__ __forceinline__ void load(const wplanes &w, int64_t r, int64_t g, float *o) {
        uint4 u = __ldg((const uint4 *)(w.p0 + (r * w.k + 8 * g) * 2));
        const uint32_t *p = (const uint32_t *)&u;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            o[2 * i] = __uint_as_float(p[i] << 16);
            o[2 * i + 1] = __uint_as_float(p[i] & 0xffff0000u);
        }
    }
};

template <> struct wt<RG_Q8_0> {
    static constexpr int bytes8 = 8;
    static __device__ __forceinline__ void load(const wplanes &w, int64_t r, int64_t g, float *o) {
        uint2 u = __ldg((const uint2 *)(w.p0 + r * w.k + 8 * g));
        float d = __half2float(__ldg((const __half *)w.p1 + r * (w.k / 32) + g / 4));
        const int8_t *q = (const int8_t *)&u;
#pragma unroll
        for (int i = 0; i < 8; i++) o[i] = (float)q[i] * d;
    }
};

template <> struct wt<RG_Q4_0> {
    static constexpr int bytes8 = 4;
    static __device__ __forceinline__ void load(const wplanes &w, int64_t r, int64_t g, float *o) {
        uint32_t u = __ldg((const uint32_t *)(w.p0 + r * (w.k / 2) + 4 * g));
        float d = __half2float(__ldg((const __half *)w.p1 + r * (w.k / 32) + g / 4));
#pragma unroll
        for (int i = 0; i < 8; i++) o[i] = (float)((int)((u >> (4 * i)) & 15) - 8) * d;
    }
};

template <> struct wt<RG_Q4_1> {
    static constexpr int bytes8 = 4;
    static __device__ __forceinline__ void load(const wplanes &w, int64_t r, int64_t g, float *o) {
        uint32_t u = __ldg((const uint32_t *)(w.p0 + r * (w.k / 2) + 4 * g));
        float2 dm = __half22float2(__ldg((const __half2 *)w.p1 + r * (w.k / 32) + g / 4));
#pragma unroll
        for (int i = 0; i < 8; i++) o[i] = (float)((u >> (4 * i)) & 15) * dm.x + dm.y;
    }
};
template <> struct wt<RG_Q4_K> {
    static constexpr int bytes8 = 4;
    static __device__ __forceinline__ void load(const wplanes &w, int64_t r, int64_t g, float *o) {
        uint32_t u = __ldg((const uint32_t *)(w.p0 + r * (w.k / 2) + 4 * g));
        float2 dm = __half22float2(__ldg((const __half2 *)w.p1 + r * (w.k / 256) + g / 32));
        uchar2 sm = __ldg((const uchar2 *)w.p2 + r * (w.k / 32) + g / 4);
        float d1 = dm.x * (float)sm.x, m1 = dm.y * (float)sm.y;
#pragma unroll
        for (int i = 0; i < 8; i++) o[i] = d1 * (float)((u >> (4 * i)) & 15) - m1;
    }
};

template <> struct wt<RG_Q6_K> {
    static constexpr int bytes8 = 6;
    static __device__ __forceinline__ void load(const wplanes &w, int64_t r, int64_t g, float *o) {
        uint32_t lo = __ldg((const uint32_t *)(w.p0 + r * (w.k / 2) + 4 * g));
        uint32_t hi = __ldg((const uint16_t *)(w.p1 + r * (w.k / 4) + 2 * g));
        float sc = (float)__ldg((const int8_t *)w.p2 + r * (w.k / 16) + g / 2);
        float d = __half2float(__ldg((const __half *)w.p3 + r * (w.k / 256) + g / 32));
        float ds = d * sc;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            int q = (int)(((lo >> (4 * i)) & 15) | (((hi >> (2 * i)) & 3) << 4)) - 32;
            o[i] = ds * (float)q;
        }
    }
};

/* The quantized types by 32-element units (one Q4/Q8_0 block, two Q6_K
 * sub-blocks): one 16-byte load of quantized values per unit and row (two for
 * Q8_0) with the unit's scales, kept raw in registers (matmul_q.cu decodes them
 * for its integer dot products). */
template <int T> struct wu {};
template <> struct wu<RG_Q8_0> {
    struct raw { uint4 a, b; float d; };
    static __device__ __forceinline__ void load(const wplanes &w, int64_t r, int64_t u, raw &x) {
        const uint4 *p = (const uint4 *)(w.p0 + r * w.k + 32 * u);
        x.a = __ldg(p), x.b = __ldg(p + 1);
        x.d = __half2float(__ldg((const __half *)w.p1 + r * (w.k / 32) + u));
    }
};
static __device__ __forceinline__ uint32_t word_of(const uint4 &v, int j) {
    return j == 0 ? v.x : j == 1 ? v.y : j == 2 ? v.z : v.w;
}
template <> struct wu<RG_Q4_0> {
    struct raw { uint4 n; float d; };
    static __device__ __forceinline__ void load(const wplanes &w, int64_t r, int64_t u, raw &x) {
        x.n = __ldg((const uint4 *)(w.p0 + r * (w.k / 2) + 16 * u));
        x.d = __half2float(__ldg((const __half *)w.p1 + r * (w.k / 32) + u));
    }
};
/* 32 4-bit codes q with one scale and one offset, w = s q + o: Q4_1's (d, m),
 * Q4_K's (d sc, -dmin m) */
struct wu_nibbles_so {
    uint4 n;
    float s, o;
};
template <> struct wu<RG_Q4_1> {
    using raw = wu_nibbles_so;
    static __device__ __forceinline__ void load(const wplanes &w, int64_t r, int64_t u, raw &x) {
        x.n = __ldg((const uint4 *)(w.p0 + r * (w.k / 2) + 16 * u));
        const float2 dm = __half22float2(__ldg((const __half2 *)w.p1 + r * (w.k / 32) + u));
        x.s = dm.x, x.o = dm.y;
    }
};
template <> struct wu<RG_Q4_K> {
    using raw = wu_nibbles_so;
    static __device__ __forceinline__ void load(const wplanes &w, int64_t r, int64_t u, raw &x) {
        x.n = __ldg((const uint4 *)(w.p0 + r * (w.k / 2) + 16 * u));
        float2 dm = __half22float2(__ldg((const __half2 *)w.p1 + r * (w.k / 256) + u / 8));
        uchar2 sm = __ldg((const uchar2 *)w.p2 + r * (w.k / 32) + u);
        x.s = dm.x * (float)sm.x, x.o = -(dm.y * (float)sm.y);
    }
};
template <> struct wu<RG_Q6_K> {
    struct raw { uint4 lo; uint2 hi; float s0, s1; };
    static __device__ __forceinline__ void load(const wplanes &w, int64_t r, int64_t u, raw &x) {
        x.lo = __ldg((const uint4 *)(w.p0 + r * (w.k / 2) + 16 * u));
        x.hi = __ldg((const uint2 *)(w.p1 + r * (w.k / 4) + 8 * u));
        char2 sc = __ldg((const char2 *)w.p2 + r * (w.k / 32) + u);
        float d = __half2float(__ldg((const __half *)w.p3 + r * (w.k / 256) + u / 8));
        x.s0 = d * (float)sc.x, x.s1 = d * (float)sc.y;
    }
};

/* Call f.template operator()<T>() for the resident type t; false if none. */
template <typename F> static bool rg_cuda_dispatch_type(rg_dtype t, F &&f) {
    switch (t) {
    case RG_F32: f.template operator()<RG_F32>(); return true;
    case RG_F16: f.template operator()<RG_F16>(); return true;
    case RG_BF16: f.template operator()<RG_BF16>(); return true;
    case RG_Q8_0: f.template operator()<RG_Q8_0>(); return true;
    case RG_Q4_0: f.template operator()<RG_Q4_0>(); return true;
    case RG_Q4_1: f.template operator()<RG_Q4_1>(); return true;
    case RG_Q4_K: f.template operator()<RG_Q4_K>(); return true;
    case RG_Q6_K: f.template operator()<RG_Q6_K>(); return true;
    default: return false;
    }
}

#endif
