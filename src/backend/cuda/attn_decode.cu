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
 * write an empty (max, sum = 0) that the merge skips.
 *
 * With RIDGE_CUDA_ATTN_FUSED_MERGE=1 (opt-in: written without a GPU, to be
 * checked and measured) the merge of the splits runs in the last block of each
 * (token, KV head) to finish (the threadfence-reduction pattern): every block writes its partial,
 * fences, and takes a ticket from a per-(token, KV head) counter; the block that
 * draws n_split - 1 knows all partials are in L2, merges the G heads' splits
 * and resets the counter to 0 for the next launch (and graph replay). That
 * saves the separate merge kernel's launch (~4 us of a 13.4 us attention call
 * at batch 1, context 4096, 32/8 heads on an H100). The split weights live in
 * the shared memory of s_acc (no more shared memory, so no lower occupancy), so
 * the host runs the separate merge where G·n_split floats do not fit there
 * (attn_decode_info.merge_splits). */
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

/* blockIdx.y and .z read anew (volatile: not kept live from the kernel's start).
 * The merge's indices come from these so that nothing more stays in registers
 * across the main loop: at the 128 registers of GM = 4, reusing t and hkv made
 * ptxas spill inside the loop (head_dim 256). */
static __device__ __forceinline__ void ctaid_yz(int64_t *y, int64_t *z) {
    unsigned ry, rz;
    asm volatile("mov.u32 %0, %%ctaid.y;" : "=r"(ry));
    asm volatile("mov.u32 %0, %%ctaid.z;" : "=r"(rz));
    *y = ry, *z = rz;
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
    /* shared floats the merge reuses for its split weights (those of s_acc) */
    static constexpr int MERGE_FLOATS = WARPS * GM * HD;
};

/* Splits the last block merges per trip: this many 16-byte loads of each
 * thread in flight before it uses any (a column of 66 splits is 9 round trips
 * to L2 rather than 66). */
#define MERGE_UNROLL 8

/* The 16-byte column col (of G·HD/4, head-major) of the weighted sum over the
 * splits grp, grp + stride, ... of the partials, with the weights w [G][n_split]. */
template <int HD>
static __device__ __forceinline__ float4 merge_column(const attn_params &a, int64_t row0, const float *w, int col,
                                                      int grp, int stride) {
    constexpr int NV = HD / 4;
    const int n_split = (int)a.n_split, g = col / NV;
    const float *wg = w + g * n_split;
    /* written by other blocks during this kernel: read through L2 (__ldcg), never the read-only path */
    const float4 *src = (const float4 *)(a.o_part + (row0 + g) * n_split * HD) + col % NV;
    float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    for (int s0 = grp; s0 < n_split; s0 += MERGE_UNROLL * stride) {
        float wt[MERGE_UNROLL];
        float4 o[MERGE_UNROLL];
#pragma unroll
        for (int j = 0; j < MERGE_UNROLL; j++) {
            const int s = s0 + j * stride;
            wt[j] = s < n_split ? wg[s] : 0.0f;
            o[j] = wt[j] > 0.0f ? __ldcg(src + (size_t)s * NV) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
#pragma unroll
        for (int j = 0; j < MERGE_UNROLL; j++) {
            acc.x = fmaf(wt[j], o[j].x, acc.x), acc.y = fmaf(wt[j], o[j].y, acc.y);
            acc.z = fmaf(wt[j], o[j].z, acc.z), acc.w = fmaf(wt[j], o[j].w, acc.w);
        }
    }
    return acc;
}

/* The merged output of column col: the weighted sum over the total weight. */
template <int HD>
static __device__ __forceinline__ void merge_store(const attn_params &a, int64_t row0, const float *total, int col,
                                                   float4 o) {
    constexpr int NV = HD / 4;
    const int g = col / NV;
    const float tot = total[g];
    const float4 r =
        tot > 0.0f ? make_float4(o.x / tot, o.y / tot, o.z / tot, o.w / tot) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    ((float4 *)(a.out + (row0 + g) * HD))[col % NV] = r;
}

/* The last block's merge of the n_split partials of query heads row0 .. row0 +
 * G - 1 (rows of [n_tok][n_head]), attn_merge_kernel's math in log2 units:
 *   out = sum_s o_s 2^(m_s - M) / sum_s l_s 2^(m_s - M)
 * over the splits with l_s > 0. sh: at least G·n_split floats (the host
 * checks), free to reuse; total: G floats.
 * Weights: a warp a head, each lane an online (max, sum) over every 32nd split,
 * so the (max, sum) pairs are read from L2 once; the raw maxima wait in sh.
 * Sums: G·HD/4 16-byte columns over 128 threads; where there are fewer columns
 * than threads, groups of threads take every groups-th split and meet in sh. */
template <int HD>
static __device__ void merge_splits(const attn_params &a, int64_t row0, int G, float *sh, int sh_floats, float *total) {
    constexpr int NV = HD / 4, THREADS = RG_CUDA_ATTN_DECODE_THREADS;
    const int n_split = (int)a.n_split, tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    for (int g = warp; g < G; g += WARPS) {
        const float2 *ml = a.ml + (row0 + g) * n_split;
        float *w = sh + g * n_split;
        float mx = -FLT_MAX, sum = 0.0f; /* sum of l_s 2^(m_s - mx) over this lane's splits */
        for (int s = lane; s < n_split; s += 32) {
            const float2 v = __ldcg(ml + s);
            w[s] = v.y > 0.0f ? v.x : -INFINITY;
            if (v.y > 0.0f) {
                if (v.x > mx) sum = sum * exp2f(mx - v.x) + v.y, mx = v.x;
                else sum += v.y * exp2f(v.x - mx);
            }
        }
        float M = mx;
#pragma unroll
        for (int off = 16; off; off >>= 1) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, off));
        sum = sum > 0.0f ? sum * exp2f(mx - M) : 0.0f;
#pragma unroll
        for (int off = 16; off; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
        if (lane == 0) total[g] = sum;
        for (int s = lane; s < n_split; s += 32) w[s] = exp2f(w[s] - M); /* the lane's own; 2^-inf = 0: skipped */
    }
    __syncthreads();
    const int ncol = G * NV;
    int groups = THREADS / ncol;
    if (groups <= 1) {
        for (int col = tid; col < ncol; col += THREADS)
            merge_store<HD>(a, row0, total, col, merge_column<HD>(a, row0, sh, col, 0, 1));
        return;
    }
    /* the partials [groups][ncol] float4 must fit in sh too (only G = 1, HD = 64 is short of 8 groups) */
    if (groups * ncol * 4 > sh_floats) groups = sh_floats / (ncol * 4);
    const int grp = tid / ncol, col = tid % ncol;
    float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (grp < groups) acc = merge_column<HD>(a, row0, sh, col, grp, groups);
    __syncthreads(); /* the weights are read: their space takes the partials */
    float4 *part = (float4 *)sh;
    if (grp < groups) part[tid] = acc;
    __syncthreads();
    if (grp == 0) {
        for (int k = 1; k < groups; k++) {
            const float4 p = part[k * ncol + col];
            acc.x += p.x, acc.y += p.y, acc.z += p.z, acc.w += p.w;
        }
        merge_store<HD>(a, row0, total, col, acc);
    }
}

/* grid (n_split, n_head_kv, n_tok), RG_CUDA_ATTN_DECODE_THREADS threads. */
template <typename E, int HD, int GM>
__global__ void __launch_bounds__(RG_CUDA_ATTN_DECODE_THREADS, GM <= 4 ? 4 : 2) attn_decode_kernel(attn_params a) {
    RG_PDL_TRIGGER();
    RG_PDL_WAIT(); /* q and the K/V just stored */
    using S = decode_shape<HD, GM>;
    constexpr int LPR = S::LPR, RPW = S::RPW, U = S::U, CH = S::CH;
    __shared__ __align__(16) float s_acc[WARPS][GM][HD];
    __shared__ float s_m[WARPS][GM], s_l[WARPS][GM];
    __shared__ float s_total[GM]; /* the merge's sum of weights of each head */
    __shared__ int s_last;        /* this block drew the last ticket */
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
        if (a.n_split == 1) {
            a.out[(t * a.n_head + h) * HD + d] = sum > 0.0f ? o / sum : 0.0f;
        } else {
            a.o_part[((t * a.n_head + h) * a.n_split + split) * HD + d] = o;
            if (d == 0) a.ml[(t * a.n_head + h) * a.n_split + split] = make_float2(mx, sum);
        }
    }
    if (a.n_split == 1 || !a.tickets) return;

    /* every thread's partial writes are visible device-wide before thread 0 takes
     * the block's ticket (the barrier orders them before its atomic) */
    int64_t kv_head, tok;
    ctaid_yz(&kv_head, &tok);
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        int *ticket = a.tickets + tok * a.n_head_kv + kv_head;
        s_last = atomicAdd(ticket, 1) == (int)a.n_split - 1;
        if (s_last) *ticket = 0; /* all n_split tickets are taken: ready for the next launch */
    }
    __syncthreads();
    if (!s_last) return;
    __threadfence(); /* the other blocks' partials, fenced before their tickets, are read after ours */
    merge_splits<HD>(a, tok * a.n_head + kv_head * G, G, &s_acc[0][0][0], S::MERGE_FLOATS, s_total);
}

template <typename E, int HD, int GM> static attn_kernel instance(int64_t group, attn_decode_info *info) {
    info->positions = decode_shape<HD, GM>::CH;
    info->merge_splits = decode_shape<HD, GM>::MERGE_FLOATS / group;
    return attn_decode_kernel<E, HD, GM>;
}

template <typename E, int HD> static attn_kernel by_group(int64_t group, attn_decode_info *info) {
    if (group <= 1) return instance<E, HD, 1>(group, info);
    if (group <= 2) return instance<E, HD, 2>(group, info);
    if (group <= 4) return instance<E, HD, 4>(group, info);
    return instance<E, HD, 8>(group, info);
}

template <typename E> static attn_kernel by_dim(int64_t head_dim, int64_t group, attn_decode_info *info) {
    switch (head_dim) {
    case 64: return by_group<E, 64>(group, info);
    case 128: return by_group<E, 128>(group, info);
    case 256: return by_group<E, 256>(group, info);
    default: return NULL;
    }
}

attn_kernel rg_cuda_attn_decode_kernel(rg_dtype kv, int64_t head_dim, int64_t group, attn_decode_info *info) {
    if (group < 1 || group > 8) return NULL;
    if (kv == RG_BF16) return by_dim<__nv_bfloat16>(head_dim, group, info);
    if (kv == RG_F16) return by_dim<__half>(head_dim, group, info);
    return NULL;
}
