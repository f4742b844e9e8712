/* wgmma.cuh — Hopper's warpgroup MMA (sm_90a): wgmma.mma_async with f32
 * accumulators over 16-bit inputs, for the prefill attention kernel.
 *
 * A warpgroup (4 warps, 128 threads) computes D[64][N] (+)= A[64][16]·B[16][N]
 * per instruction; A from shared memory (a descriptor) or registers, B from
 * shared memory. The accumulator layout per warp w of the group equals the
 * mma.sync m16n8 C layout on rows 16w..16w+15: d[4j + e] holds
 * (row 16w + g + 8(e / 2), column 8j + 2t + e % 2), g = lane / 4, t = lane % 4;
 * A in registers is the m16n8k16 A fragment of those rows (mma.cuh).
 *
 * Shared-memory operands here are all in the 128-byte-swizzle layout: a tile of
 * 64 16-bit columns per row (128 bytes), rows in groups of 8 (1024 bytes, aligned
 * to 1024), the 16-byte chunk c of row r stored at chunk c ^ (r % 8). Wider tiles
 * are several such column blocks one after the other (pf_wg_off). */
#ifndef RG_BACKEND_CUDA_WGMMA_CUH
#define RG_BACKEND_CUDA_WGMMA_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

/* The shared-memory matrix descriptor: start address, leading- and stride-
 * dimension byte offsets (all in 16-byte units), swizzle mode 1 = 128 bytes.
 * K-major operands (A, and B stored [N][K]): sbo = 1024 (the next 8 rows), lbo
 * unused; a k-step of 16 within the 64-column block adds 32 bytes to the start.
 * MN-major B (stored [K][N], used transposed): lbo = the distance between
 * 64-column blocks along N, sbo = 1024 (the next 8 rows along K). */
__device__ __forceinline__ uint64_t wg_desc(const void *smem, uint32_t lbo, uint32_t sbo) {
    const uint32_t addr = (uint32_t)__cvta_generic_to_shared(smem);
    return (uint64_t)((addr & 0x3FFFF) >> 4) | (uint64_t)((lbo >> 4) & 0x3FFF) << 16 |
           (uint64_t)((sbo >> 4) & 0x3FFF) << 32 | 1ull << 62;
}

/* Order this thread's prior register writes before the next wgmma's reads. */
__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
/* Wait for all committed wgmma groups, then pin the accumulators after the wait:
 * the compiler sees them as written here, so no read moves above it. */
template <int NR> __device__ __forceinline__ void wg_wait_all(float *d) {
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
#pragma unroll
    for (int i = 0; i < NR; i++) asm volatile("" : "+f"(d[i])::"memory");
}
/* Shared memory written by ordinary stores or cp.async becomes visible to the
 * async proxy that wgmma reads through (each writer, before the barrier). */
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

#define WG_F8(d, i) \
    "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), \
        "+f"(d[i + 7])
#define WG_D32(d) WG_F8(d, 0), WG_F8(d, 8), WG_F8(d, 16), WG_F8(d, 24)
#define WG_D64(d) WG_D32(d), WG_F8(d, 32), WG_F8(d, 40), WG_F8(d, 48), WG_F8(d, 56)
#define WG_R32 \
    "%0,%1,%2,%3,%4,%5,%6,%7," \
    "%8,%9,%10,%11,%12,%13,%14,%15," \
    "%16,%17,%18,%19,%20,%21,%22,%23," \
    "%24,%25,%26,%27,%28,%29,%30,%31"
#define WG_R64 \
    "%0,%1,%2,%3,%4,%5,%6,%7," \
    "%8,%9,%10,%11,%12,%13,%14,%15," \
    "%16,%17,%18,%19,%20,%21,%22,%23," \
    "%24,%25,%26,%27,%28,%29,%30,%31," \
    "%32,%33,%34,%35,%36,%37,%38,%39," \
    "%40,%41,%42,%43,%44,%45,%46,%47," \
    "%48,%49,%50,%51,%52,%53,%54,%55," \
    "%56,%57,%58,%59,%60,%61,%62,%63"

/* d[64][N] = (accumulate ? d : 0) + A·B, A and B K-major in shared memory. */
template <typename E, int N> __device__ void wgmma_ss(float *d, uint64_t a, uint64_t b, int accumulate);
/* d[64][N] = (accumulate ? d : 0) + A·B, A in registers, B MN-major (transposed). */
template <typename E, int N> __device__ void wgmma_rs_tb(float *d, const uint32_t a[4], uint64_t b, int accumulate);

/* A, B, then the accumulate flag follow the NR accumulator operands: OPA.. name them */
#define WG_SS(E, TY, N, REGS, DOPS, OPA, OPB, OPS) \
    template <> __device__ __forceinline__ void wgmma_ss<E, N>(float *d, uint64_t a, uint64_t b, int accumulate) { \
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, " OPS ", 0;\n" \
                     "wgmma.mma_async.sync.aligned.m64n" #N "k16.f32." TY "." TY " {" REGS "}, " OPA ", " OPB \
                     ", p, 1, 1, 0, 0;\n}\n" \
                     : DOPS(d) \
                     : "l"(a), "l"(b), "r"(accumulate)); \
    }
#define WG_RS(E, TY, N, REGS, DOPS, OPA, OPB, OPS) \
    template <> \
    __device__ __forceinline__ void wgmma_rs_tb<E, N>(float *d, const uint32_t a[4], uint64_t b, int accumulate) { \
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, " OPS ", 0;\n" \
                     "wgmma.mma_async.sync.aligned.m64n" #N "k16.f32." TY "." TY " {" REGS "}, " OPA ", " OPB \
                     ", p, 1, 1, 1;\n}\n" \
                     : DOPS(d) \
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate)); \
    }
WG_SS(__half, "f16", 64, WG_R32, WG_D32, "%32", "%33", "%34")
WG_SS(__nv_bfloat16, "bf16", 64, WG_R32, WG_D32, "%32", "%33", "%34")
WG_SS(__half, "f16", 128, WG_R64, WG_D64, "%64", "%65", "%66")
WG_SS(__nv_bfloat16, "bf16", 128, WG_R64, WG_D64, "%64", "%65", "%66")
WG_RS(__half, "f16", 64, WG_R32, WG_D32, "{%32, %33, %34, %35}", "%36", "%37")
WG_RS(__nv_bfloat16, "bf16", 64, WG_R32, WG_D32, "{%32, %33, %34, %35}", "%36", "%37")
WG_RS(__half, "f16", 128, WG_R64, WG_D64, "{%64, %65, %66, %67}", "%68", "%69")
WG_RS(__nv_bfloat16, "bf16", 128, WG_R64, WG_D64, "{%64, %65, %66, %67}", "%68", "%69")

#endif
