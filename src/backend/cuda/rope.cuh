/* rope.cuh — the RoPE angle as every CUDA kernel that rotates computes it
 * (elementwise.cu's rope kernels, the QKV GEMV epilogue in gemv_common.cuh),
 * so that fused and unfused rotations give the same bits. */
#ifndef RG_BACKEND_CUDA_ROPE_CUH
#define RG_BACKEND_CUDA_ROPE_CUH

#include <stdint.h>

#include "backend/cuda/cuda_internal.h"

/* What a kernel that stores K/V (and rotates q and k) needs of the step and the
 * KV pool: positions and block tables (device copies), one layer of the pool,
 * the RoPE constants. rg_cuda_rope_layout fills it (elementwise.cu); the K/V
 * store and RoPE + K/V store kernels and the QKV GEMV's epilogue read it. */
struct rope_kv_layout {
    const int32_t *pos, *row, *tables;
    const float *ff;
    uint8_t *layer_base;
    int64_t table_w, bs, head_dim, n_rot;
    size_t unit_bytes, kv_bytes, head_bytes;
    float theta_scale, freq_scale;
    int kv_type; /* RG_F32, RG_F16 or RG_BF16 */
};
/* p NULL: the K/V store alone (no RoPE constants). */
rope_kv_layout rg_cuda_rope_layout(const cuda_backend *c, int64_t layer, int64_t head_dim, const rg_rope_params *p);

/* Where token t's row at position pos lies in a layer's block of the pool,
 * relative to the layer's base: the part of kv_row that a step's token fixes. */
__device__ __forceinline__ size_t kv_pos_offset(const rope_kv_layout &l, int64_t t, int32_t pos) {
    const int32_t block = l.tables[l.row[t] * l.table_w + pos / l.bs];
    const int elem = l.kv_type == RG_F32 ? 4 : 2;
    return (size_t)block * l.unit_bytes + (size_t)(pos % l.bs) * l.head_dim * elem;
}

/* The K (or V) row of KV head `head` at a kv_pos_offset: its first element. */
__device__ __forceinline__ uint8_t *kv_row_at(const rope_kv_layout &l, size_t pos_offset, int64_t head, bool is_v) {
    return l.layer_base + pos_offset + head * l.head_bytes + (is_v ? l.kv_bytes : 0);
}

/* Where token t's K (or V) row of KV head `head` lies in the pool: its first element. */
__device__ __forceinline__ uint8_t *kv_row(const rope_kv_layout &l, int64_t t, int32_t pos, int64_t head, bool is_v) {
    return kv_row_at(l, kv_pos_offset(l, t, pos), head, is_v);
}

/* The rotation angle of pair p at position pos, by ggml's recurrence
 * (backend/cpu/norm_rope_act.c does the same): theta_p = pos * theta_scale^p
 * by repeated multiplication in float. */
__device__ __forceinline__ void rope_cs(int32_t pos, int64_t p, float theta_scale, float freq_scale, const float *ff,
                                        float &cs, float &sn) {
    float theta = (float)pos;
    for (int64_t j = 0; j < p; j++)
        theta *= theta_scale;
    float a = freq_scale * (theta / (ff ? ff[p] : 1.0f));
    cs = cosf(a), sn = sinf(a);
}

/* Element j of a rotated pair from its own value v and its partner's pv
 * (rope_kv_store_kernel's r0 for even j, r1 for odd). */
__device__ __forceinline__ float rope_rotate(float v, float pv, int64_t j, float cs, float sn) {
    return j & 1 ? pv * sn + v * cs : v * cs - pv * sn;
}

#endif
