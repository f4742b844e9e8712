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
#include "backend/cuda/attn_decode.cuh"

#define WARPS (RG_CUDA_ATTN_DECODE_THREADS / 32)

/* grid (n_split, n_head_kv, n_tok), RG_CUDA_ATTN_DECODE_THREADS threads. */
template <typename E, int HD, int GM>
__global__ void __launch_bounds__(RG_CUDA_ATTN_DECODE_THREADS, GM <= 4 ? 4 : 2) attn_decode_kernel(attn_params a) {
    RG_PDL_TRIGGER();
    RG_PDL_WAIT(); /* q and the K/V just stored */
    __shared__ __align__(16) float s_acc[WARPS][GM][HD];
    __shared__ float s_m[WARPS][GM], s_l[WARPS][GM];
    attn_decode_split<E, HD, GM, WARPS, false>(a, blockIdx.x, blockIdx.y, blockIdx.z, s_acc, s_m, s_l, block_sync());
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
