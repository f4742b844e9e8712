/* attn_decode.cuh — one split of the decode attention kernel (attn_decode.cu's
 * design notes): what a block's WARPS warps do for split `split` of (token t,
 * KV head hkv), shared by attn_decode.cu's kernel (4 warps a block) and the
 * layer-stack kernel (decode_stack.cu: its 8 consumer warps, a named barrier
 * for sync, and coherent K/V loads because the same launch stored the newest
 * K/V rows; the split kernel reads them through the read-only path). */
#ifndef RG_BACKEND_CUDA_ATTN_DECODE_CUH
#define RG_BACKEND_CUDA_ATTN_DECODE_CUH

#include <float.h>

#include "backend/cuda/attention.cuh"

#define LOG2E 1.4426950408889634f
/* The running reference max moves only when a step's max exceeds it by more
 * than this (log2 units), so most steps skip the rescale of acc; probabilities
 * stay <= 2^8 and sums of them exact enough in f32. */
#define RESCALE_SLACK 8.0f

static __device__ __forceinline__ float ex2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

template <typename E> __device__ __forceinline__ void unpack8(const uint4 &r, float *f);
template <> __device__ __forceinline__ void unpack8<__nv_bfloat16>(const uint4 &r, float *f) {
    const uint32_t w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        f[2 * i] = __uint_as_float(w[i] << 16);
        f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
}
template <> __device__ __forceinline__ void unpack8<__half>(const uint4 &r, float *f) {
    const __half2 *h = reinterpret_cast<const __half2 *>(&r);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 x = __half22float2(h[i]);
        f[2 * i] = x.x, f[2 * i + 1] = x.y;
    }
}

/* HD: head_dim; GM: the query group padded up (1, 2, 4, 8). U shrinks as the
 * group's registers (q and acc: 16·GM floats a lane) grow. */
template <int HD, int GM> struct decode_shape {
    static constexpr int LPR = HD / 8, RPW = 32 / LPR;
    static constexpr int U = GM <= 1 ? 8 : GM <= 4 ? 4 : 2;
    static constexpr int CH = U * RPW;
};

/* 16 bytes of K or V: through the read-only cache, or (COHERENT) through L2
 * only, for rows the same launch may have written */
template <bool COHERENT> __device__ __forceinline__ uint4 load16(const uint4 *p) {
    if constexpr (COHERENT)
        return __ldcg(p);
    else
        return __ldg(p);
}

/* Shared memory: s_acc [WARPS][GM][HD] (16-byte aligned), s_m and s_l [WARPS][GM].
 * sync(): a barrier over the WARPS warps (threads 0 .. 32 WARPS - 1). */
template <typename E, int HD, int GM, int WARPS, bool COHERENT, typename Sync>
__device__ __forceinline__ void attn_decode_split(const attn_params &a, int64_t split, int64_t hkv, int64_t t,
                                                  float (*s_acc)[GM][HD], float (*s_m)[GM], float (*s_l)[GM],
                                                  Sync sync) {
    using S = decode_shape<HD, GM>;
    constexpr int LPR = S::LPR, RPW = S::RPW, U = S::U, CH = S::CH;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, li = lane % LPR, slot = lane / LPR;
    const int G = (int)(a.n_head / a.n_head_kv);
    /* positions fit in 32 bits (n_ctx is int32); the hot loop keeps them there */
    const int n_ctx = a.n_ctx[t], last = n_ctx - 1;
    const int32_t *table = a.tables + (int64_t)a.row[t] * a.table_w;
    /* this token's context in steps of CH positions, cut into n_split near-equal runs */
    const int n_steps = n_ctx > 0 ? (n_ctx + CH - 1) / CH : 0, per = (n_steps + (int)a.n_split - 1) / (int)a.n_split;
    const int s_begin = (int)split * per, s_end = s_begin + per < n_steps ? s_begin + per : n_steps;

    /* q pre-scaled by scale·log2(e) (and the ALiBi slopes by log2(e)): scores in log2 units */
    float q[GM][8], slope[GM];
#pragma unroll
    for (int g = 0; g < GM; g++) {
        const int64_t h = hkv * G + (g < G ? g : 0);
        const float *qr = a.q + (t * a.n_head + h) * HD + li * 8;
#pragma unroll
        for (int e = 0; e < 8; e++)
            q[g][e] = g < G ? qr[e] * (a.scale * LOG2E) : 0.0f;
        slope[g] = g < G && a.alibi ? a.alibi[h] * LOG2E : 0.0f;
    }
    float m[GM], l[GM], acc[GM][8];
#pragma unroll
    for (int g = 0; g < GM; g++) {
        m[g] = -FLT_MAX, l[g] = 0.0f;
#pragma unroll
        for (int e = 0; e < 8; e++)
            acc[g][e] = 0.0f;
    }

    /* row u of step c is position c·CH + u·RPW + slot; positions past the context
     * read the last one (a valid row) and are masked out of the softmax */
    const uint8_t *head = a.layer_base + hkv * a.head_bytes + li * 16;
    int32_t blk[U];
    int c = s_begin + warp;
    if (c < s_end) {
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int p = c * CH + u * RPW + slot;
            blk[u] = __ldg(table + ((p < last ? p : last) >> a.log2_bs));
        }
    }
    for (; c < s_end; c += WARPS) {
        uint4 kr[U], vr[U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            int p = c * CH + u * RPW + slot;
            p = p < last ? p : last;
            const uint8_t *r = head + (size_t)blk[u] * a.unit_bytes + (size_t)(p & ((int)a.bs - 1)) * (HD * sizeof(E));
            kr[u] = load16<COHERENT>((const uint4 *)r);
            vr[u] = load16<COHERENT>((const uint4 *)(r + a.kv_bytes));
        }
        /* the next step's table entries load while this step computes */
        if (c + WARPS < s_end) {
#pragma unroll
            for (int u = 0; u < U; u++) {
                const int p = (c + WARPS) * CH + u * RPW + slot;
                blk[u] = __ldg(table + ((p < last ? p : last) >> a.log2_bs));
            }
        }
        float s[U][GM];
#pragma unroll
        for (int u = 0; u < U; u++) {
            float k[8];
            unpack8<E>(kr[u], k);
#pragma unroll
            for (int g = 0; g < GM; g++) {
                float x = q[g][0] * k[0];
#pragma unroll
                for (int e = 1; e < 8; e++)
                    x = fmaf(q[g][e], k[e], x);
                s[u][g] = x;
            }
        }
#pragma unroll
        for (int off = LPR / 2; off; off >>= 1)
#pragma unroll
            for (int u = 0; u < U; u++)
#pragma unroll
                for (int g = 0; g < GM; g++)
                    s[u][g] += __shfl_xor_sync(0xffffffffu, s[u][g], off);
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int p = c * CH + u * RPW + slot;
            const float rel = (float)(p - last); /* ALiBi: slope · (p - (n_ctx - 1)) */
#pragma unroll
            for (int g = 0; g < GM; g++)
                s[u][g] = p <= last ? fmaf(slope[g], rel, s[u][g]) : -INFINITY;
        }
        /* online softmax: acc and l are sums of 2^(s - m[g]) over the positions seen */
#pragma unroll
        for (int g = 0; g < GM; g++) {
            float mx = s[0][g];
#pragma unroll
            for (int u = 1; u < U; u++)
                mx = fmaxf(mx, s[u][g]);
            if (mx > m[g] + RESCALE_SLACK) {
                const float alpha = ex2(m[g] - mx);
                m[g] = mx, l[g] *= alpha;
#pragma unroll
                for (int e = 0; e < 8; e++)
                    acc[g][e] *= alpha;
            }
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            float v[8];
            unpack8<E>(vr[u], v);
#pragma unroll
            for (int g = 0; g < GM; g++) {
                const float pr = ex2(s[u][g] - m[g]); /* masked: 2^-inf = 0 */
                l[g] += pr;
#pragma unroll
                for (int e = 0; e < 8; e++)
                    acc[g][e] = fmaf(pr, v[e], acc[g][e]);
            }
        }
    }

    /* merge the warp's row slots, then the warps (an empty state is m = -FLT_MAX, l = 0, acc = 0) */
#pragma unroll
    for (int off = LPR; off < 32; off <<= 1)
#pragma unroll
        for (int g = 0; g < GM; g++) {
            const float mo = __shfl_xor_sync(0xffffffffu, m[g], off), lo = __shfl_xor_sync(0xffffffffu, l[g], off);
            const float mn = fmaxf(m[g], mo), wa = ex2(m[g] - mn), wb = ex2(mo - mn);
            l[g] = l[g] * wa + lo * wb;
#pragma unroll
            for (int e = 0; e < 8; e++)
                acc[g][e] = acc[g][e] * wa + __shfl_xor_sync(0xffffffffu, acc[g][e], off) * wb;
            m[g] = mn;
        }
    if (slot == 0) {
#pragma unroll
        for (int g = 0; g < GM; g++) {
            float4 *dst = (float4 *)&s_acc[warp][g][li * 8];
            dst[0] = make_float4(acc[g][0], acc[g][1], acc[g][2], acc[g][3]);
            dst[1] = make_float4(acc[g][4], acc[g][5], acc[g][6], acc[g][7]);
            if (li == 0) s_m[warp][g] = m[g], s_l[warp][g] = l[g];
        }
    }
    sync();
    for (int i = threadIdx.x; i < G * HD; i += WARPS * 32) {
        const int g = i / HD, d = i % HD;
        float mx = s_m[0][g];
#pragma unroll
        for (int w = 1; w < WARPS; w++)
            mx = fmaxf(mx, s_m[w][g]);
        float sum = 0.0f, o = 0.0f;
#pragma unroll
        for (int w = 0; w < WARPS; w++) {
            const float wt = ex2(s_m[w][g] - mx);
            sum += s_l[w][g] * wt;
            o += s_acc[w][g][d] * wt;
        }
        const int64_t h = hkv * G + g;
        if (a.out) {
            a.out[(t * a.n_head + h) * HD + d] = sum > 0.0f ? o / sum : 0.0f;
        } else {
            a.o_part[((t * a.n_head + h) * a.n_split + split) * HD + d] = o;
            if (d == 0) a.ml[(t * a.n_head + h) * a.n_split + split] = make_float2(mx, sum);
        }
    }
}

#endif
