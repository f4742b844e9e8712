/* rope.cuh — the RoPE angle as every CUDA kernel that rotates computes it
 * (elementwise.cu's rope kernels, the QKV GEMV epilogue in gemv_common.cuh),
 * so that fused and unfused rotations give the same bits. */
#ifndef RG_BACKEND_CUDA_ROPE_CUH
#define RG_BACKEND_CUDA_ROPE_CUH

#include <stdint.h>

/* The rotation angle of pair p at position pos, by ggml's recurrence
 * (backend/cpu/norm_rope_act.c does the same): theta_p = pos * theta_scale^p
 * by repeated multiplication in float. */
__device__ __forceinline__ void rope_cs(int32_t pos, int64_t p, float theta_scale, float freq_scale, const float *ff,
                                        float &cs, float &sn) {
    float theta = (float)pos;
    for (int64_t j = 0; j < p; j++) theta *= theta_scale;
    float a = freq_scale * (theta / (ff ? ff[p] : 1.0f));
    cs = cosf(a), sn = sinf(a);
}

#endif
