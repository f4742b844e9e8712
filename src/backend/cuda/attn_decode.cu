/* attn_decode.cu — split-KV attention over the paged KV pool for f16 and bf16
 * KV, written to stream K and V at memory bandwidth (decode: one query token per
 * sequence, the whole context read once per step).
 *
 * Work: a block of 4 warps takes one split of one (token, KV head); its warps
 * take steps of CH positions in turn. In a step each lane owns 8 consecutive
 * elements (16 bytes) of a K row and of a V row: LPR = head_dim/8 lanes cover a
 * row, a warp covers RPW = 32/LPR consecutive rows per load instruction (one
 * contiguous 512-byte piece of a KV block) and issues U such loads of K and U
 * of V before it uses any, straight from global memory into registers. The
 * lane's slice of q for all G query heads of the group stays in registers, so
 * one K load serves the G scores (each KV head is read once for its group);
 * a butterfly over the row's lanes finishes the dot products and leaves the
 * same bits in every lane of the row, so they all take the same softmax
 * decisions. Each row slot of a warp runs its own online softmax (m, l,
 * acc[G][8]) in log2 units; slots merge by shuffles and warps through shared
 * memory once, at the end of the split.
 *
 * Why CUDA cores and not tensor cores: per position and KV head the step reads
 * 4·head_dim bytes (K and V, 16-bit) and does 2·G·head_dim FMAs, G/2 FMAs a
 * byte, well under what f32 FMA units sustain at HBM speed (H100: ~34 T FMA/s
 * against 3.35 TB/s, 10 a byte). The issue slots are the budget: at G = 4 and
 * head_dim 128 a lane spends about 135 instructions on each 1 KB a warp reads
 * (2 loads, 16 conversions, 64 FMAs, 16 shuffles + 16 adds for the dot
 * products, ~12 for the softmax), about half the issue rate at full bandwidth.
 * A 16-bit mma would round q and the probabilities to 16 bits (bf16: 4e-3
 * relative), far outside the f32 reference's 1e-5 that the tests hold the
 * GPU to; splitting them into high and low halves would triple the mma work
 * and the fragment shuffling for a kernel that is not compute-bound anyway.
 *
 * The context of each token is cut by its own n_ctx read on the device; the
 * split count is chosen on the host from the batch size only (attention.cu),
 * so a captured decode step replays at any context. Splits past the context
 * write an empty (max, sum = 0) that the merge skips. */
#include <float.h>

#include "backend/cuda/attention.cuh"

#define WARPS (RG_CUDA_ATTN_DECODE_THREADS / 32)
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

/* grid (n_split, n_head_kv, n_tok), RG_CUDA_ATTN_DECODE_THREADS threads. */
template <typename E, int HD, int GM>
__global__ void __launch_bounds__(RG_CUDA_ATTN_DECODE_THREADS, GM <= 4 ? 4 : 2) attn_decode_kernel(attn_params a) {
    RG_PDL_TRIGGER();
    RG_PDL_WAIT(); /* q and the K/V just stored */
    using S = decode_shape<HD, GM>;
    constexpr int LPR = S::LPR, RPW = S::RPW, U = S::U, CH = S::CH;
    __shared__ __align__(16) float s_acc[WARPS][GM][HD];
    __shared__ float s_m[WARPS][GM], s_l[WARPS][GM];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, li = lane % LPR, slot = lane / LPR;
    const int64_t split = blockIdx.x, hkv = blockIdx.y, t = blockIdx.z;
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
        for (int e = 0; e < 8; e++) q[g][e] = g < G ? qr[e] * (a.scale * LOG2E) : 0.0f;
        slope[g] = g < G && a.alibi ? a.alibi[h] * LOG2E : 0.0f;
    }
    float m[GM], l[GM], acc[GM][8];
#pragma unroll
    for (int g = 0; g < GM; g++) {
        m[g] = -FLT_MAX, l[g] = 0.0f;
#pragma unroll
        for (int e = 0; e < 8; e++) acc[g][e] = 0.0f;
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
            kr[u] = __ldg((const uint4 *)r);
            vr[u] = __ldg((const uint4 *)(r + a.kv_bytes));
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
                for (int e = 1; e < 8; e++) x = fmaf(q[g][e], k[e], x);
                s[u][g] = x;
            }
        }
#pragma unroll
        for (int off = LPR / 2; off; off >>= 1)
#pragma unroll
            for (int u = 0; u < U; u++)
#pragma unroll
                for (int g = 0; g < GM; g++) s[u][g] += __shfl_xor_sync(0xffffffffu, s[u][g], off);
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int p = c * CH + u * RPW + slot;
            const float rel = (float)(p - last); /* ALiBi: slope · (p - (n_ctx - 1)) */
#pragma unroll
            for (int g = 0; g < GM; g++) s[u][g] = p <= last ? fmaf(slope[g], rel, s[u][g]) : -INFINITY;
        }
        /* online softmax: acc and l are sums of 2^(s - m[g]) over the positions seen */
#pragma unroll
        for (int g = 0; g < GM; g++) {
            float mx = s[0][g];
#pragma unroll
            for (int u = 1; u < U; u++) mx = fmaxf(mx, s[u][g]);
            if (mx > m[g] + RESCALE_SLACK) {
                const float alpha = ex2(m[g] - mx);
                m[g] = mx, l[g] *= alpha;
#pragma unroll
                for (int e = 0; e < 8; e++) acc[g][e] *= alpha;
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
                for (int e = 0; e < 8; e++) acc[g][e] = fmaf(pr, v[e], acc[g][e]);
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
            for (int e = 0; e < 8; e++) acc[g][e] = acc[g][e] * wa + __shfl_xor_sync(0xffffffffu, acc[g][e], off) * wb;
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
    __syncthreads();
    for (int i = threadIdx.x; i < G * HD; i += RG_CUDA_ATTN_DECODE_THREADS) {
        const int g = i / HD, d = i % HD;
        float mx = s_m[0][g];
#pragma unroll
        for (int w = 1; w < WARPS; w++) mx = fmaxf(mx, s_m[w][g]);
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

template <typename E, int HD, int GM> static attn_kernel instance(int64_t *positions) {
    *positions = decode_shape<HD, GM>::CH;
    return attn_decode_kernel<E, HD, GM>;
}

template <typename E, int HD> static attn_kernel by_group(int64_t group, int64_t *positions) {
    if (group <= 1) return instance<E, HD, 1>(positions);
    if (group <= 2) return instance<E, HD, 2>(positions);
    if (group <= 4) return instance<E, HD, 4>(positions);
    return instance<E, HD, 8>(positions);
}

template <typename E> static attn_kernel by_dim(int64_t head_dim, int64_t group, int64_t *positions) {
    switch (head_dim) {
    case 64: return by_group<E, 64>(group, positions);
    case 128: return by_group<E, 128>(group, positions);
    case 256: return by_group<E, 256>(group, positions);
    default: return NULL;
    }
}

attn_kernel rg_cuda_attn_decode_kernel(rg_dtype kv, int64_t head_dim, int64_t group, int64_t *positions) {
    if (group < 1 || group > 8) return NULL;
    if (kv == RG_BF16) return by_dim<__nv_bfloat16>(head_dim, group, positions);
    if (kv == RG_F16) return by_dim<__half>(head_dim, group, positions);
    return NULL;
}
