/* stream_probe.cu — how fast weights can stream from HBM into shared memory
 * through a ring of bulk copies (TMA), the way decode_stack.cu's producer
 * feeds its consumers, against plain 16-byte loads: the measurement that
 * decides the layer-stack kernel's stage size and work split (bench_cuda's
 * "stream" section). One block per SM; the producer lane fills a ring of
 * `stages` stages of `stage_bytes` (each in `copies` bulk copies), the 8
 * consumer warps wait for each stage, touch one word a lane and free it. */
#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/tma.cuh"

#define PROBE_CONSUMERS 8

struct probe_args {
    const uint8_t *src;
    int64_t n_items; /* stage-sized items of src */
    int stage, n, copies;
    bool dynamic; /* items from a counter (else a fixed contiguous share per block) */
    int work;     /* consumers: 0 touch one word a lane; 1 dot each warp's 2 KB chunk with a bf16 vector in
                     shared memory and reduce it across the warp (the layer-stack kernel's work); 2 the
                     same dot without the reduction */
    int *claims;
    unsigned *sink;
};

__global__ void __launch_bounds__((PROBE_CONSUMERS + 1) * 32, 1) ring_probe_kernel(probe_args a) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    extern __shared__ __align__(128) uint8_t sm[];
    uint64_t *full = (uint64_t *)(sm + (size_t)a.n * a.stage), *empty = full + a.n;
    int64_t *mark = (int64_t *)(empty + a.n);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (threadIdx.x == 0) {
        for (int i = 0; i < a.n; i++)
            mbar_init(&full[i], 1), mbar_init(&empty[i], PROBE_CONSUMERS);
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();
    if (warp == PROBE_CONSUMERS) {
        if (lane) return;
        uint32_t it = 0;
        const int64_t first = a.n_items * blockIdx.x / gridDim.x, last = a.n_items * (blockIdx.x + 1) / gridDim.x;
        for (int64_t k = first;; k++) {
            const int64_t j = a.dynamic ? atomicAdd(a.claims, 1) : k;
            const bool more = a.dynamic ? j < a.n_items : k < last;
            const int slot = (int)(it % (uint32_t)a.n);
            if (it >= (uint32_t)a.n) mbar_wait(&empty[slot], ((it / a.n) - 1) & 1);
            it++;
            mark[slot] = more ? j : -1;
            if (!more) {
                mbar_arrive(&full[slot]);
                return;
            }
            mbar_arrive_expect(&full[slot], (uint32_t)a.stage);
            const uint32_t piece = (uint32_t)(a.stage / a.copies);
            for (int c = 0; c < a.copies; c++)
                bulk_copy(sm + (size_t)slot * a.stage + c * piece, a.src + j * a.stage + c * piece, piece, &full[slot]);
        }
    }
    unsigned acc = 0;
    for (uint32_t it = 0;; it++) {
        const int slot = (int)(it % (uint32_t)a.n);
        mbar_wait(&full[slot], (it / a.n) & 1);
        const bool done = mark[slot] < 0;
        if (!done && a.work == 0) acc += ((const unsigned *)(sm + (size_t)slot * a.stage))[threadIdx.x];
        if (!done && a.work > 0) { /* a stage of 8 chunks of 1024 bf16: warp w dots chunk w (stage 16 KB) */
            const uint4 *wp = (const uint4 *)(sm + (size_t)slot * a.stage) + warp * 128;
            const uint4 *ap = (const uint4 *)(sm + (size_t)((slot + 1) % a.n) * a.stage); /* any bf16 data */
            float sum = 0.0f;
#pragma unroll
            for (int q = 0; q < 4; q++) {
                const uint4 w = wp[q * 32 + lane], x = ap[q * 32 + lane];
                const uint32_t ww[4] = {w.x, w.y, w.z, w.w}, xx[4] = {x.x, x.y, x.z, x.w};
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    sum = fmaf(__uint_as_float(ww[e] << 16), __uint_as_float(xx[e] << 16), sum);
                    sum = fmaf(__uint_as_float(ww[e] & 0xffff0000u), __uint_as_float(xx[e] & 0xffff0000u), sum);
                }
            }
            if (a.work == 1)
                for (int off = 16; off; off >>= 1)
                    sum += __shfl_xor_sync(0xffffffffu, sum, off);
            acc += __float_as_uint(sum);
        }
        __syncwarp();
        if (lane == 0) mbar_arrive(&empty[slot]);
        if (done) break;
    }
    a.sink[blockIdx.x * blockDim.x + threadIdx.x] = acc;
#endif
}

/* plain loads: four 16-byte words in flight a thread, grid-stride */
__global__ void ldg_probe_kernel(const uint4 *src, int64_t n16, unsigned *sink) {
    unsigned acc = 0;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n16; i += 4 * stride) {
        uint4 v[4];
#pragma unroll
        for (int u = 0; u < 4; u++)
            v[u] = i + u * stride < n16 ? __ldg(src + i + u * stride) : make_uint4(0, 0, 0, 0);
#pragma unroll
        for (int u = 0; u < 4; u++)
            acc ^= v[u].x ^ v[u].w;
    }
    sink[blockIdx.x * blockDim.x + threadIdx.x] = acc;
}

double rg_backend_cuda_stream_probe(int device, int mode, int stage_bytes, int stages, int copies) {
    const int work = mode >= 3 ? mode - 2 : 0; /* modes 3, 4: mode 0 with the consumers' dot work */
    if (mode >= 3) mode = 0;
    if (work && stage_bytes != 16384) return 0;
    const size_t bytes = (size_t)1 << 30;
    cudaDeviceProp prop;
    if (cudaSetDevice(device) != cudaSuccess || cudaGetDeviceProperties(&prop, device) != cudaSuccess) return 0;
    if (mode < 2 && (prop.major != 9 || stage_bytes % (16 * copies) || stage_bytes < 1024)) return 0;
    uint8_t *src = NULL;
    unsigned *sink = NULL;
    int *claims = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    double best = 0;
    const size_t smem = (size_t)stages * (stage_bytes + 24);
    if (cudaMalloc(&src, bytes) == cudaSuccess &&
        cudaMalloc(&sink, (size_t)prop.multiProcessorCount * 1024 * 4) == cudaSuccess &&
        cudaMalloc(&claims, 4) == cudaSuccess && cudaMemset(src, 1, bytes) == cudaSuccess &&
        cudaEventCreate(&e0) == cudaSuccess && cudaEventCreate(&e1) == cudaSuccess &&
        (mode == 2 || cudaFuncSetAttribute(ring_probe_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem) ==
                          cudaSuccess)) {
        probe_args a = {src,         stage_bytes > 0 ? (int64_t)(bytes / stage_bytes) : 0,
                        stage_bytes, stages,
                        copies,      mode == 1,
                        work,        claims,
                        sink};
        for (int r = 0; r < 6; r++) {
            cudaMemset(claims, 0, 4);
            cudaEventRecord(e0);
            if (mode == 2)
                ldg_probe_kernel<<<prop.multiProcessorCount * 8, 256>>>((const uint4 *)src, bytes / 16, sink);
            else
                ring_probe_kernel<<<prop.multiProcessorCount, (PROBE_CONSUMERS + 1) * 32, smem>>>(a);
            cudaEventRecord(e1);
            float ms = 0;
            if (cudaEventSynchronize(e1) != cudaSuccess || cudaEventElapsedTime(&ms, e0, e1) != cudaSuccess) break;
            if (r > 0 && bytes / (ms * 1e-3) > best) best = bytes / (ms * 1e-3);
        }
    }
    cudaGetLastError();
    cudaFree(src), cudaFree(sink), cudaFree(claims);
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    return best;
}
