/* act_q8.cuh — the int8 activation forms of the integer GEMV (matmul_q.cu) and
 * the kernels that write them for it (the activation quantization kernels,
 * rmsnorm + int8, the attention merge): per 32 elements a scale and the two sums
 * of 16 quantized values, the rules the CPU backend quantizes activations by. */
#ifndef RG_BACKEND_CUDA_ACT_Q8_CUH
#define RG_BACKEND_CUDA_ACT_Q8_CUH

#include <stdint.h>

#include "backend/cuda/cuda_internal.h"

/* Per 32 activations: the scale and the sums of q over elements 0..15 and 16..31. */
struct act_meta {
    float d;
    int16_t s0, s1;
};
static_assert(sizeof(act_meta) == 8, "act_meta is read as one int2");

/* Where element e goes in the int8 layout: in place, or (PERM) per 8 the even
 * elements then the odd ones, matching the low/high nibbles of a weight word. */
template <bool PERM> __device__ __forceinline__ int act_pos(int e) {
    return PERM ? (e & ~7) | (e & 1) << 2 | (e & 7) >> 1 : e;
}

/* Lane 0 of a warp (one 32-element unit, lane = element) writes d and the two
 * sums of 16. Every lane must take part. */
__device__ __forceinline__ void act_meta_store(int q, float d, act_meta *m) {
    int s = q;
    for (int off = 8; off; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
    int s1 = __shfl_sync(0xffffffffu, s, 16);
    if ((threadIdx.x & 31) == 0) *m = act_meta{d, (int16_t)s, (int16_t)s1};
}

/* Q8_0 per 32, one warp a unit (lane = element v): d = amax/127, q = roundf(v *
 * (1/d)) (half away from zero, the product rounded on its own as on the CPU), d
 * kept as its f16 value; the unit's 32 int8 go to unit_q, its act_meta to m. */
template <bool PERM> __device__ __forceinline__ void q8_0_unit(float v, int lane, int8_t *unit_q, act_meta *m) {
    float amax = fabsf(v);
    for (int off = 16; off; off >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
    const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
    const int qi = (int)roundf(__fmul_rn(v, id));
    unit_q[act_pos<PERM>(lane)] = (int8_t)qi;
    act_meta_store(qi, __half2float(__float2half_rn(d)), m);
}

/* The int8 activation forms: per 32 with Q8_0's rule, in place (Q8_0 weights) or
 * permuted (Q4_0, Q4_1), and per 256 with Q8_K's rule, permuted (Q4_K, Q6_K). */
enum { ACT_Q8_0 = 1, ACT_Q8_0_PERM, ACT_Q8_K_PERM };

/* The form the integer GEMV of weights of type t reads (0: none, not an integer-GEMV type). */
constexpr int rg_cuda_act_fmt(rg_dtype t) {
    return t == RG_Q8_0                  ? ACT_Q8_0
           : t == RG_Q4_0 || t == RG_Q4_1 ? ACT_Q8_0_PERM
           : t == RG_Q4_K || t == RG_Q6_K ? ACT_Q8_K_PERM
                                          : 0;
}

#endif
