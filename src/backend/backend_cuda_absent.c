/* backend_cuda_absent.c — rg_backend_cuda_create in a build without CUDA
 * (RIDGE_CUDA=OFF): a clear error instead of a link failure. */
#include "backend/backend.h"

#ifndef RIDGE_HAVE_CUDA
rg_status rg_backend_cuda_create(int device, rg_backend **out, rg_err *err) {
    (void)device;
    *out = NULL;
    return rg_fail(err, RG_E_UNSUPPORTED, "this ridge was built without CUDA (configure with -DRIDGE_CUDA=ON)");
}

double rg_backend_cuda_copy_bandwidth(int device, size_t bytes, int reps) {
    (void)device, (void)bytes, (void)reps;
    return 0;
}

double rg_backend_cuda_stream_probe(int device, int mode, int stage_bytes, int stages, int copies) {
    (void)device, (void)mode, (void)stage_bytes, (void)stages, (void)copies;
    return 0;
}

double rg_backend_cuda_gemm_tflops(int device, bool bf16, int n) {
    (void)device, (void)bf16, (void)n;
    return 0;
}
#endif
