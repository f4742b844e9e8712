/* roofline_gpu.cu — the GPU ceilings for `ridge roofline` (perf/roofline.h):
 * device-to-device copy bandwidth (bytes read + written, the ceiling decode is
 * measured against), cuBLAS bf16 and f16 GEMM rates on 8192^3 random data (never
 * zeros: they run faster than real data), and the launch overhead of an empty
 * kernel. Best of several timed runs after a warm-up, CUDA events. */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

extern "C" {
#include "backend/backend.h"
#include "perf/roofline.h"
}

__global__ void fill_random_16bit(uint16_t *p, int64_t n, bool bf16) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 2654435761u;
        h ^= h >> 15, h *= 2246822519u, h ^= h >> 13;
        float v = (float)(h & 0xffff) / 65536.0f - 0.5f;
        p[i] = bf16 ? __bfloat16_as_ushort(__float2bfloat16_rn(v)) : __half_as_ushort(__float2half_rn(v));
    }
}

__global__ void empty_kernel() {}

static double gemm_tflops(cublasHandle_t h, cudaDataType t, void *a, void *b, float *c, int n) {
    float one = 1, zero = 0;
    cudaEvent_t e0, e1;
    double best = 0;
    if (cudaEventCreate(&e0) != cudaSuccess || cudaEventCreate(&e1) != cudaSuccess) return 0;
    for (int r = 0; r < 6; r++) {
        float ms = 0;
        cudaEventRecord(e0);
        cublasStatus_t s = cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, a, t, n, b, t, n, &zero, c,
                                        CUDA_R_32F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        cudaEventRecord(e1);
        if (s != CUBLAS_STATUS_SUCCESS || cudaEventSynchronize(e1) != cudaSuccess ||
            cudaEventElapsedTime(&ms, e0, e1) != cudaSuccess)
            break;
        double tf = 2.0 * n * (double)n * n / (ms * 1e-3) / 1e12;
        if (r > 0 && tf > best) best = tf; /* the first run is the warm-up */
    }
    cudaEventDestroy(e0), cudaEventDestroy(e1);
    return best;
}

/* cuBLAS's 16-bit GEMM rate on n^3 random data (bf16 or f16 in, f32 out),
 * TFLOP/s, best of 5 after a warm-up; 0 on failure (nothing left allocated). */
extern "C" double rg_backend_cuda_gemm_tflops(int device, bool bf16, int n) {
    if (cudaSetDevice(device) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    size_t elems = (size_t)n * n;
    void *a = NULL, *b = NULL;
    float *c = NULL;
    cublasHandle_t h = NULL;
    double tf = 0;
    if (cudaMalloc(&a, elems * 2) == cudaSuccess && cudaMalloc(&b, elems * 2) == cudaSuccess &&
        cudaMalloc((void **)&c, elems * 4) == cudaSuccess && cublasCreate(&h) == CUBLAS_STATUS_SUCCESS) {
        fill_random_16bit<<<1024, 256>>>((uint16_t *)a, (int64_t)elems, bf16);
        fill_random_16bit<<<1024, 256>>>((uint16_t *)b, (int64_t)elems, bf16);
        tf = gemm_tflops(h, bf16 ? CUDA_R_16BF : CUDA_R_16F, a, b, c, n);
        if (cudaDeviceSynchronize() != cudaSuccess) tf = 0;
    }
    cudaGetLastError();
    if (h) cublasDestroy(h);
    cudaFree(a), cudaFree(b), cudaFree(c);
    return tf;
}

extern "C" rg_status rg_roofline_measure_gpu(rg_roofline *r, rg_err *err) {
    int n_dev = 0;
    cudaDeviceProp prop;
    if (cudaGetDeviceCount(&n_dev) != cudaSuccess || n_dev == 0 || cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
        cudaGetLastError();
        return rg_fail(err, RG_E_UNSUPPORTED, "cuda: no usable GPU");
    }
    const int n = 8192;
    const double bf16 = rg_backend_cuda_gemm_tflops(0, true, n), fp16 = rg_backend_cuda_gemm_tflops(0, false, n);
    if (bf16 <= 0)
        return rg_fail(err, RG_E_NOMEM, "cuda: the GEMM probe failed (%zu MB of buffers)", (size_t)n * n * 8 >> 20);
    /* launch overhead: many empty kernels back to back */
    cudaEvent_t e0, e1;
    float ms = 0;
    double launch_us = 0;
    if (cudaEventCreate(&e0) == cudaSuccess && cudaEventCreate(&e1) == cudaSuccess) {
        empty_kernel<<<1, 32>>>();
        cudaEventRecord(e0);
        for (int i = 0; i < 1000; i++) empty_kernel<<<1, 32>>>();
        cudaEventRecord(e1);
        if (cudaEventSynchronize(e1) == cudaSuccess && cudaEventElapsedTime(&ms, e0, e1) == cudaSuccess)
            launch_us = ms * 1e3 / 1000;
        cudaEventDestroy(e0), cudaEventDestroy(e1);
    }
    cudaError_t e = cudaDeviceSynchronize();
    if (e != cudaSuccess) return rg_fail(err, RG_E_IO, "cuda: roofline probe failed (%s)", cudaGetErrorString(e));
    r->has_gpu = true;
    snprintf(r->gpu_name, sizeof r->gpu_name, "%s", prop.name);
    r->gpu_mem_gbs = rg_backend_cuda_copy_bandwidth(0, (size_t)1 << 30, 10) / 1e9;
    r->gpu_bf16_tflops = bf16;
    r->gpu_fp16_tflops = fp16;
    r->gpu_launch_us = launch_us;
    r->gpu_mem_bytes = (int64_t)prop.totalGlobalMem;
    return RG_OK;
}
