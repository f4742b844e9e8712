/* matmul.cu — y[t][r] = sum_k W[r][k] x[t][k] (+ bias[r]) on the GPU.
 *
 * Decode-sized batches (n_tok <= GEMV_MAX_TOK) stream each weight row once per
 * tile of up to 8 tokens: one warp per row, each lane dequantizing 8 consecutive
 * weights per load (16 bytes for bf16/f16, a 4- or 8-byte word for the quantized
 * layouts) with several loads in flight, the activations read from L1/L2.
 * Bandwidth bound: the floor is the resident weight bytes over copy bandwidth.
 *
 * Larger batches (prefill) go to cuBLAS on tensor cores: activations rounded to
 * bf16 (f16 for f16 weights), quantized weights dequantized to bf16 one tile of
 * rows at a time into scratch, f32 accumulation and output. F32 weights use
 * sgemm (no tf32), matching the CPU to f32 rounding.
 *
 * Activations are rounded the way the CPU backend (and llama.cpp) round them,
 * so the backends compute the same function: for f16/bf16 weights x is rounded
 * to f16/bf16; on the GEMV path x is quantized to Q8_0 for Q8_0/Q4_0/Q4_1 weights and
 * to Q8_K for Q4_K/Q6_K weights, in matmul_q.cu's integer (dp4a) GEMV (its
 * float-activation predecessor measured 41% of copy bandwidth where dp4a gives
 * 67%, docs/BENCHMARKS.md, and was removed). The cuBLAS path of quantized weights uses bf16 activations instead
 * (tests/gpu states the tolerances). */
#include <string.h>

#include <type_traits>

#include "backend/cuda/act_q8.cuh"
#include "backend/cuda/dequant.cuh"
#include "backend/cuda/gemv_common.cuh"
#include "backend/cuda/mma.cuh"

template <int T> __device__ __forceinline__ float round_act(float v) {
    if (T == RG_F16) return __half2float(__float2half_rn(v));
    if (T == RG_BF16) return __bfloat162float(__float2bfloat16_rn(v));
    return v;
}

/* A block of GEMV_THREADS threads computes R rows together (2R in SWIGLU mode):
 * the threads split the row length (8 weights each per step, several steps'
 * loads in flight), so even a 2048-wide matrix keeps every SM busy, and each
 * activation value loaded serves every row. Partial sums meet through shuffles
 * and shared memory. */
/* f32/f16/bf16 weights: each 8-weight group is one 16-byte word (two for f32),
 * kept raw in registers until used (4 registers per 8 weights instead of 8), so
 * a thread holds U * RR words in flight in 32 registers. Nsight Compute on the
 * H100 showed the f32-converted form at 96 registers: 5 blocks an SM, 28%
 * occupancy, warps stalled on loads, 45% of DRAM bandwidth on 2048-wide rows. */
template <int T> struct w16 {
    static constexpr int words = T == RG_F32 ? 2 : 1;
    static __device__ __forceinline__ void load(const wplanes &w, int64_t r, int64_t g, uint4 *raw) {
        const uint4 *p = (const uint4 *)(w.p0 + (r * w.k + 8 * g) * (T == RG_F32 ? 4 : 2));
#pragma unroll
        for (int i = 0; i < words; i++) raw[i] = __ldg(p + i);
    }
    static __device__ __forceinline__ void decode(const uint4 *raw, float *o) {
        const uint32_t *p = (const uint32_t *)raw;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            if constexpr (T == RG_F32) {
                o[2 * i] = __uint_as_float(p[2 * i]), o[2 * i + 1] = __uint_as_float(p[2 * i + 1]);
            } else if constexpr (T == RG_BF16) {
                o[2 * i] = __uint_as_float(p[i] << 16), o[2 * i + 1] = __uint_as_float(p[i] & 0xffff0000u);
            } else {
                float2 f = __half22float2(*(const __half2 *)&p[i]);
                o[2 * i] = f.x, o[2 * i + 1] = f.y;
            }
        }
    }
};

template <int T, int NT, int R, int U, int MODE>
__global__ void __launch_bounds__(GEMV_THREADS) gemv_kernel(gemv_job job, const float *__restrict__ x, int64_t n_tok) {
    constexpr int RR = MODE == GEMV_SWIGLU ? 2 * R : R, W = w16<T>::words;
    RG_PDL_TRIGGER();
    const int tid = threadIdx.x;
    int64_t r0;
    const int m = gemv_block_matrix<MODE, R>(job, r0);
    const wplanes w0 = m == 0 ? job.w[0] : m == 1 ? job.w[1] : job.w[2], w1 = job.w[1];
    const int64_t groups = w0.k / 8;
    float acc[RR][NT];
#pragma unroll
    for (int i = 0; i < RR; i++)
#pragma unroll
        for (int t = 0; t < NT; t++) acc[i][t] = 0;
    for (int64_t g0 = tid; g0 < groups; g0 += GEMV_THREADS * U) {
        uint4 raw[U][RR][W];
#pragma unroll
        for (int u = 0; u < U; u++)
#pragma unroll
            for (int i = 0; i < RR; i++) {
                const wplanes &w = gemv_rows<MODE, R>(w0, w1, i);
                int64_t g = g0 + GEMV_THREADS * u, r = r0 + i % R < w.n_out ? r0 + i % R : w.n_out - 1;
                if (g < groups) w16<T>::load(w, r, g, raw[u][i]);
            }
        RG_PDL_WAIT(); /* the weights are constant; x is the previous kernel's output */
#pragma unroll
        for (int u = 0; u < U; u++) {
            int64_t g = g0 + GEMV_THREADS * u;
            if (g >= groups) break;
#pragma unroll
            for (int t = 0; t < NT; t++) {
                if (t >= n_tok) break;
                const float4 *xp = (const float4 *)(x + t * w0.k + 8 * g);
                float4 a = __ldg(xp), b = __ldg(xp + 1);
                float xs[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
#pragma unroll
                for (int j = 0; j < 8; j++) xs[j] = round_act<T>(xs[j]);
#pragma unroll
                for (int i = 0; i < RR; i++) {
                    float wv[8];
                    w16<T>::decode(raw[u][i], wv);
#pragma unroll
                    for (int j = 0; j < 8; j++) acc[i][t] = fmaf(wv[j], xs[j], acc[i][t]);
                }
            }
        }
    }
    RG_PDL_WAIT(); /* threads that had no weights to load: y is read (ADD) and written */
    gemv_epilogue<MODE, R, NT, RR>(job, m, r0, n_tok, w0.n_out, acc);
}

/* One launch per tile of up to 8 tokens (U: the 16-bit kernel's words per row in flight). */
template <int T, int R, int U, int MODE>
static void launch_gemv_r(cuda_backend *c, gemv_job job, int n_mat, const float *x, int64_t n_tok) {
    const int64_t k = job.w[0].k;
    const unsigned blocks = gemv_grid<R, MODE>(job, n_mat);
    for (int64_t t0 = 0; t0 < n_tok; t0 += 8) {
        int64_t nt = n_tok - t0 < 8 ? n_tok - t0 : 8;
        const float *xt = x + t0 * k;
        gemv_job jt = job;
        jt.rope_tok0 = t0;
        for (int i = 0; i < n_mat; i++)
            if (jt.y[i]) jt.y[i] = job.y[i] + t0 * job.w[i].n_out;
        if (nt == 1) rg_cuda_launch(c, gemv_kernel<T, 1, R, U, MODE>, dim3(blocks), dim3(GEMV_THREADS), 0, jt, xt, nt);
        else if (nt == 2)
            rg_cuda_launch(c, gemv_kernel<T, 2, R, U, MODE>, dim3(blocks), dim3(GEMV_THREADS), 0, jt, xt, nt);
        else if (nt <= 4)
            rg_cuda_launch(c, gemv_kernel<T, 4, R, U, MODE>, dim3(blocks), dim3(GEMV_THREADS), 0, jt, xt, nt);
        else rg_cuda_launch(c, gemv_kernel<T, 8, R, U, MODE>, dim3(blocks), dim3(GEMV_THREADS), 0, jt, xt, nt);
    }
}

/* 8 words in flight per thread (32 registers): rows of at most 2048 (256 words,
 * all in one step of 128 threads x 2) as 4 rows x 2 words, longer rows as 2 rows
 * x 4 words; SWIGLU halves the rows (its up rows double them). */
template <int T, int MODE>
static void launch_gemv(cuda_backend *c, const gemv_job &job, int n_mat, const float *x, int64_t n_tok) {
    constexpr bool SW = MODE == GEMV_SWIGLU;
    if (job.w[0].k <= 8 * GEMV_THREADS * 2) launch_gemv_r<T, SW ? 2 : 4, 2, MODE>(c, job, n_mat, x, n_tok);
    else launch_gemv_r<T, SW ? 1 : 2, 4, MODE>(c, job, n_mat, x, n_tok);
}

/* ---- the tensor-core GEMV: 2..16 tokens of 16-bit weights
 *
 * At 8-16 tokens the f32 GEMV above does 8-16 FMAs per weight it loads and is
 * bound by the FMA units, not HBM (10-53% of copy bandwidth on the H100). The
 * products bf16 x bf16 (f16 x f16) are exact in f32, so mma.sync m16n8k16 with
 * f32 accumulation computes what it computes (x rounded as round_act rounds
 * it), in a different summation order.
 *
 * A block of MMA_WARPS warps takes 16 rows (SWIGLU: 16 gate and the same 16 up
 * rows) and cuts the row length among its warps in chunks of 32 (split-K): in
 * a chunk, lane (g = lane/4, q = lane%4) loads 16 bytes of rows g and g + 8 at
 * elements 8q..8q+7 and the same 8 elements of x for token g (and g + 8 for the
 * second 8-token tile). A dot product does not care in which order its k come,
 * so the fragments name these elements as the mma's k positions (2q, 2q+1,
 * 2q+8, 2q+9) of two k16 steps — 8q..8q+3 in the first, 8q+4..8q+7 in the second
 * — for A and B alike, and every load stays a 16-byte one from global memory
 * (no shared-memory staging, no ldmatrix). The warps' partial 16 x NT tiles
 * meet in shared memory for gemv_apply. On the H100: 4096 -> 14336 at 16 tokens
 * 20% -> 63% of copy bandwidth (docs/BENCHMARKS.md); RIDGE_CUDA_GEMV_MMA=0 runs
 * the f32 GEMV instead. */
#define MMA_WARPS 8
#define MMA_U 4 /* chunks of weights each warp has in flight */

template <int T> __device__ __forceinline__ uint32_t pack16x2(float lo, float hi) {
    uint32_t u;
    if constexpr (T == RG_BF16) {
        __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
        memcpy(&u, &h, 4);
    } else {
        __half2 h = __floats2half2_rn(lo, hi);
        memcpy(&u, &h, 4);
    }
    return u;
}

template <int T, int NT, int MODE>
__global__ void __launch_bounds__(MMA_WARPS * 32) gemv_mma_kernel(gemv_job job, const float *__restrict__ x,
                                                                  int64_t n_tok) {
    using E = typename std::conditional<T == RG_BF16, __nv_bfloat16, __half>::type;
    constexpr int R = 16, NM = MODE == GEMV_SWIGLU ? 2 : 1, RR = R * NM, NJ = NT / 8;
    RG_PDL_TRIGGER();
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, q = lane & 3;
    int64_t r0;
    const int m = gemv_block_matrix<MODE, R>(job, r0);
    const wplanes w0 = m == 0 ? job.w[0] : m == 1 ? job.w[1] : job.w[2];
    const int64_t k = w0.k, chunks = k / 32;
    /* lane's 16-byte piece of rows g and g + 8 (rows past the matrix read its last) in chunk 0 */
    const uint4 *wr[NM][2];
#pragma unroll
    for (int mi = 0; mi < NM; mi++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const wplanes &w = MODE == GEMV_SWIGLU && mi == 1 ? job.w[1] : w0;
            const int64_t r = r0 + g + 8 * h < w.n_out ? r0 + g + 8 * h : w.n_out - 1;
            wr[mi][h] = (const uint4 *)(w.p0 + (size_t)r * (size_t)k * 2) + q;
        }
    float acc[NM][NJ][4];
#pragma unroll
    for (int mi = 0; mi < NM; mi++)
#pragma unroll
        for (int j = 0; j < NJ; j++) acc[mi][j][0] = acc[mi][j][1] = acc[mi][j][2] = acc[mi][j][3] = 0.0f;
    for (int64_t c0 = warp; c0 < chunks; c0 += MMA_WARPS * MMA_U) {
        uint4 wv[MMA_U][NM][2];
#pragma unroll
        for (int u = 0; u < MMA_U; u++) {
            const int64_t c = c0 + (int64_t)u * MMA_WARPS;
            if (c < chunks)
#pragma unroll
                for (int mi = 0; mi < NM; mi++)
#pragma unroll
                    for (int h = 0; h < 2; h++) wv[u][mi][h] = __ldg(wr[mi][h] + 4 * c);
        }
        RG_PDL_WAIT(); /* the weights are constant; x is the previous kernel's output */
#pragma unroll
        for (int u = 0; u < MMA_U; u++) {
            const int64_t c = c0 + (int64_t)u * MMA_WARPS;
            if (c >= chunks) break;
#pragma unroll
            for (int j = 0; j < NJ; j++) {
                const int tok = 8 * j + g;
                float xs[8] = {0, 0, 0, 0, 0, 0, 0, 0}; /* tokens past n_tok: zeros (their columns are dropped) */
                if (tok < n_tok) {
                    const float4 *xp = (const float4 *)(x + tok * k + 32 * c + 8 * q);
                    const float4 a = __ldg(xp), b = __ldg(xp + 1);
                    xs[0] = a.x, xs[1] = a.y, xs[2] = a.z, xs[3] = a.w;
                    xs[4] = b.x, xs[5] = b.y, xs[6] = b.z, xs[7] = b.w;
                }
                const uint32_t b00 = pack16x2<T>(xs[0], xs[1]), b01 = pack16x2<T>(xs[2], xs[3]);
                const uint32_t b10 = pack16x2<T>(xs[4], xs[5]), b11 = pack16x2<T>(xs[6], xs[7]);
#pragma unroll
                for (int mi = 0; mi < NM; mi++) {
                    const uint32_t *p0 = (const uint32_t *)&wv[u][mi][0], *p1 = (const uint32_t *)&wv[u][mi][1];
                    const uint32_t a0[4] = {p0[0], p1[0], p0[1], p1[1]}, a1[4] = {p0[2], p1[2], p0[3], p1[3]};
                    mma16816<E>(acc[mi][j], a0, b00, b01);
                    mma16816<E>(acc[mi][j], a1, b10, b11);
                }
            }
        }
    }
    RG_PDL_WAIT(); /* warps with no chunk: y is read (ADD) and written */
    __shared__ float red[MMA_WARPS][RR * NT];
#pragma unroll
    for (int mi = 0; mi < NM; mi++)
#pragma unroll
        for (int j = 0; j < NJ; j++) {
            const int t = 8 * j + 2 * q, i = mi * R + g; /* c0, c1: row g, tokens t, t+1; c2, c3: row g + 8 */
            red[warp][i * NT + t] = acc[mi][j][0], red[warp][i * NT + t + 1] = acc[mi][j][1];
            red[warp][(i + 8) * NT + t] = acc[mi][j][2], red[warp][(i + 8) * NT + t + 1] = acc[mi][j][3];
        }
    __syncthreads();
    gemv_apply<MODE, R, NT, RR, MMA_WARPS>(job, m, r0, n_tok, w0.n_out, red);
}

template <int T, int MODE>
static void launch_gemv_mma(cuda_backend *c, gemv_job job, int n_mat, const float *x, int64_t n_tok) {
    const unsigned blocks = gemv_grid<16, MODE>(job, n_mat);
    const dim3 grid(blocks), block(MMA_WARPS * 32);
    if (n_tok <= 8) rg_cuda_launch(c, gemv_mma_kernel<T, 8, MODE>, grid, block, 0, job, x, n_tok);
    else rg_cuda_launch(c, gemv_mma_kernel<T, 16, MODE>, grid, block, 0, job, x, n_tok);
}

/* ---- the cuBLAS path */

/* x rounded to O16 (RG_BF16 / RG_F16): four elements a thread (a 16-byte load, an
 * 8-byte store) where x is 16-byte aligned and n a multiple of 4, else one. */
template <int O16> __global__ void to_16bit_kernel(const float *x, int64_t n, void *out) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    if ((n & 3) == 0 && ((uintptr_t)x & 15) == 0) {
        for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n / 4; i += stride)
            store16x4<O16>(out, 4 * i, __ldg((const float4 *)x + i));
    } else {
        for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) store16<O16>(out, i, x[i]);
    }
}

/* rows [r0, r0 + nr) of W dequantized to bf16, 8 elements a thread (one 16-byte store) */
template <int T> __global__ void dequant_bf16_kernel(wplanes w, int64_t r0, int64_t nr, __nv_bfloat16 *out) {
    int64_t groups = w.k / 8;
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= nr * groups) return;
    int64_t r = i / groups, g = i % groups;
    float o[8];
    wt<T>::load(w, r0 + r, g, o);
    __align__(16) __nv_bfloat16 b[8];
#pragma unroll
    for (int j = 0; j < 8; j++) b[j] = __float2bfloat16_rn(o[j]);
    *(uint4 *)(out + r * w.k + 8 * g) = *(const uint4 *)b;
}

__global__ void add_bias_kernel(float *y, const float *bias, int64_t n_tok, int64_t n_out) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n_tok * n_out;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] += bias[i % n_out];
}

static bool cublas_ok(cuda_backend *c, cublasStatus_t s, const char *what) {
    if (s == CUBLAS_STATUS_SUCCESS) return true;
    rg_cuda_fail(c, what, cublasGetStatusString(s));
    return false;
}

/* The n_tok rows of x rounded to the cuBLAS input type of w (bf16, or f16 for f16
 * weights) into c->x16; one pass that the products of several matrices over the
 * same x share. None where the op that wrote x left that form in x16 (c->act16). */
static void cublas_input(cuda_backend *c, const rg_weight *w, const float *x, int64_t n_tok) {
    const bool prepared = rg_cuda_prepared_holds(&c->act16, x, rg_cuda_x16_type(w), n_tok, w->k);
    c->act16.src = NULL; /* consumed, or overwritten below */
    if (prepared) return;
    const int64_t n = n_tok * w->k;
    unsigned blocks = rg_cuda_blocks((n + 3) / 4, 256);
    if (blocks > 65535) blocks = 65535;
    if (w->type == RG_F16) to_16bit_kernel<RG_F16><<<blocks, 256, 0, c->stream>>>(x, n, c->x16);
    else to_16bit_kernel<RG_BF16><<<blocks, 256, 0, c->stream>>>(x, n, c->x16);
    RG_CUDA_LAUNCHED(c, "activation conversion");
}

/* y = W·x, or y += W·x when accumulate (beta = 1), with x already in c->x16
 * (cublas_input; f32 weights read x itself). y16 (bf16 weights only): the
 * product rounded to bf16 there instead of y. */
static void cublas_product(cuda_backend *c, const rg_weight *w, const float *x, int64_t n_tok, float *y,
                           bool accumulate, __nv_bfloat16 *y16 = NULL) {
    wplanes p = rg_cuda_planes(w);
    int m = (int)p.n_out, n = (int)n_tok, k = (int)p.k;
    float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    if (w->type == RG_F32) {
        cublas_ok(c, cublasSgemm(c->cublas, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, (const float *)p.p0, k, x, k,
                                 &beta, y, m),
                  "sgemm");
        return;
    }
    cudaDataType dt = w->type == RG_F16 ? CUDA_R_16F : CUDA_R_16BF;
    if (w->type == RG_F16 || w->type == RG_BF16) {
        void *out = y16 && w->type == RG_BF16 ? (void *)y16 : (void *)y;
        const cudaDataType ot = out == (void *)y16 ? CUDA_R_16BF : CUDA_R_32F;
        cublas_ok(c, cublasGemmEx(c->cublas, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, p.p0, dt, k, c->x16, dt, k,
                                  &beta, out, ot, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                  "gemm");
        return;
    }
    /* quantized: a tile of rows at a time through the bf16 scratch */
    int64_t tile = (int64_t)(c->w16_bytes / ((size_t)p.k * 2));
    if (tile > 256) tile &= ~(int64_t)127;
    if (tile < 1) {
        rg_cuda_fail(c, "matmul", "weight rows wider than the dequantization scratch");
        return;
    }
    for (int64_t r0 = 0; r0 < p.n_out && !c->status; r0 += tile) {
        int64_t nr = p.n_out - r0 < tile ? p.n_out - r0 : tile;
        unsigned blocks = rg_cuda_blocks(nr * (p.k / 8), 256);
        bool ok = rg_cuda_dispatch_type(w->type, [&]<int T>() {
            dequant_bf16_kernel<T><<<blocks, 256, 0, c->stream>>>(p, r0, nr, (__nv_bfloat16 *)c->w16);
        });
        if (!ok) rg_cuda_fail(c, "matmul", "weight type not resident");
        if (!RG_CUDA_LAUNCHED(c, "dequantize tile")) return;
        cublas_ok(c, cublasGemmEx(c->cublas, CUBLAS_OP_T, CUBLAS_OP_N, (int)nr, n, k, &one, c->w16, CUDA_R_16BF, k,
                                  c->x16, CUDA_R_16BF, k, &beta, y + r0, CUDA_R_32F, m, CUBLAS_COMPUTE_32F,
                                  CUBLAS_GEMM_DEFAULT),
                  "gemm (dequantized tile)");
    }
}

/* y = W·x, or y += W·x when accumulate (beta = 1). */
static void matmul_cublas(cuda_backend *c, const rg_weight *w, const float *x, int64_t n_tok, float *y,
                          bool accumulate) {
    if (w->type != RG_F32) cublas_input(c, w, x, n_tok);
    if (!c->status) cublas_product(c, w, x, n_tok, y, accumulate);
}

/* The GEMV path for n_mat matrices of one type and input width. */
template <int MODE>
static void gemv(cuda_backend *c, int n_mat, const rg_weight *const *w, const float *const *bias, const float *x,
                 int64_t n_tok, float *const *y, const rope_kv_layout *rope = NULL) {
    gemv_job job = {};
    if (rope) job.rope = *rope;
    for (int i = 0; i < n_mat; i++) {
        job.w[i] = rg_cuda_planes(w[i]);
        job.bias[i] = bias ? bias[i] : NULL;
        job.y[i] = y[i];
    }
    /* quantized weights: the integer-dot kernels (matmul_q.cu); 16-bit and f32 here */
    if (rg_cuda_gemv_dp4a(c, MODE, job, n_mat, w[0]->type, x, n_tok)) return;
    /* 2..16 tokens of 16-bit weights on tensor cores where asked for (whole 32-element chunks) */
    if (c->gemv_mma && n_tok >= 2 && job.w[0].k % 32 == 0 && (w[0]->type == RG_BF16 || w[0]->type == RG_F16)) {
        if (w[0]->type == RG_BF16) launch_gemv_mma<RG_BF16, MODE>(c, job, n_mat, x, n_tok);
        else launch_gemv_mma<RG_F16, MODE>(c, job, n_mat, x, n_tok);
        RG_CUDA_LAUNCHED(c, "gemv (tensor cores)");
        return;
    }
    bool ok = false;
    if (w[0]->type == RG_F32) ok = true, launch_gemv<RG_F32, MODE>(c, job, n_mat, x, n_tok);
    else if (w[0]->type == RG_F16) ok = true, launch_gemv<RG_F16, MODE>(c, job, n_mat, x, n_tok);
    else if (w[0]->type == RG_BF16) ok = true, launch_gemv<RG_BF16, MODE>(c, job, n_mat, x, n_tok);
    if (!ok) rg_cuda_fail(c, "matmul", "weight type not resident");
    RG_CUDA_LAUNCHED(c, "gemv");
}

static void add_bias(cuda_backend *c, float *y, const float *bias, int64_t n_tok, int64_t n_out) {
    unsigned blocks = rg_cuda_blocks(n_tok * n_out, 256);
    add_bias_kernel<<<blocks < 65535 ? blocks : 65535, 256, 0, c->stream>>>(y, bias, n_tok, n_out);
    RG_CUDA_LAUNCHED(c, "bias");
}

/* n (1..3) matrices one GEMV launch can serve: the same type and input width. */
static bool one_input(int n, const rg_weight *const *w) {
    if (n < 1 || n > 3) return false;
    for (int i = 1; i < n; i++)
        if (w[i]->type != w[0]->type || w[i]->k != w[0]->k) return false;
    return true;
}

void rg_cuda_matmul(rg_backend *be, const rg_weight *w, const float *bias, const float *x, int64_t n_tok, float *y) {
    rg_cuda_matmul_multi(be, 1, &w, &bias, x, n_tok, &y); /* one matrix is always served */
}

bool rg_cuda_matmul_multi(rg_backend *be, int n, const rg_weight *const *w, const float *const *bias, const float *x,
                          int64_t n_tok, float *const *y) {
    cuda_backend *c = cuda_of(be);
    if (!one_input(n, w)) return false;
    if (n_tok <= 0 || c->status) return true;
    if (n_tok <= GEMV_MAX_TOK) {
        gemv<GEMV_STORE>(c, n, w, bias, x, n_tok, y);
        return true;
    }
    /* prefill: x converted once for all n products */
    if (w[0]->type != RG_F32) cublas_input(c, w[0], x, n_tok);
    for (int i = 0; i < n && !c->status; i++) {
        cublas_product(c, w[i], x, n_tok, y[i], false);
        if (bias && bias[i] && !c->status) add_bias(c, y[i], bias[i], n_tok, w[i]->n_out);
    }
    return true;
}

/* y += W·x (+ bias): the GEMV epilogue adds; cuBLAS accumulates with beta = 1
 * (for bias, y + W·x + bias instead of y + (W·x + bias): one rounding apart). */
bool rg_cuda_matmul_add(rg_backend *be, const rg_weight *w, const float *bias, const float *x, int64_t n_tok,
                        float *y) {
    cuda_backend *c = cuda_of(be);
    if (n_tok <= 0 || c->status) return true;
    if (n_tok > GEMV_MAX_TOK) {
        matmul_cublas(c, w, x, n_tok, y, true);
        if (bias && !c->status) add_bias(c, y, bias, n_tok, w->n_out);
        return true;
    }
    gemv<GEMV_ADD>(c, 1, &w, &bias, x, n_tok, &y);
    return true;
}

/* Prefill with bf16 gate/up weights whose down product runs on cuBLAS in bf16
 * (RIDGE_CUDA_PREFILL_GU16, on by default): both products written as bf16 into
 * out's own memory (n_tok x n floats hold the two n_tok x n bf16 matrices), then
 * SwiGLU from them straight into the down product's bf16 input; out's floats
 * are never written (backend.h). Per element, SwiGLU reads 4 bytes where it read
 * 8 and the products write 4 where they wrote 8 (8B shape, 2048 tokens: ~470 MB a
 * layer less traffic). The price: gate and up are rounded to bf16 before SwiGLU
 * (as a bf16 PyTorch forward keeps them), one rounding more than the f32 path. */
static bool prefill_swiglu16(cuda_backend *c, const rg_weight *gate, const rg_weight *up, const float *x,
                             int64_t n_tok, float *out, const rg_weight *next) {
    const int64_t n = gate->n_out;
    if (!c->prefill_gu16 || !c->prefill_inputs || gate->type != RG_BF16 || !next ||
        rg_cuda_x16_type(next) != RG_BF16 || next->k != n || n > c->k_max)
        return false;
    if (c->status) return true;
    __nv_bfloat16 *g16 = (__nv_bfloat16 *)out, *u16 = g16 + n_tok * n;
    cublas_input(c, gate, x, n_tok);
    if (!c->status) cublas_product(c, gate, x, n_tok, NULL, false, g16);
    if (!c->status) cublas_product(c, up, x, n_tok, NULL, false, u16);
    if (!c->status) rg_cuda_swiglu_bf16(c, g16, u16, n_tok, n, out);
    return true;
}

/* out = silu(Wg·x) * (Wu·x) for decode-sized steps and prefill_swiglu16's case;
 * other prefill steps run the unfused ops. */
bool rg_cuda_matmul_swiglu(rg_backend *be, const rg_weight *gate, const rg_weight *up, const float *x, int64_t n_tok,
                           float *out, const rg_weight *next) {
    cuda_backend *c = cuda_of(be);
    if (gate->type != up->type || gate->k != up->k || gate->n_out != up->n_out) return false;
    if (n_tok > GEMV_MAX_TOK) return prefill_swiglu16(c, gate, up, x, n_tok, out, next);
    if (n_tok <= 0 || c->status) return true;
    const rg_weight *w[2] = {gate, up};
    float *y[2] = {out, NULL};
    gemv<GEMV_SWIGLU>(c, 2, w, NULL, x, n_tok, y);
    return true;
}

bool rg_cuda_holds_input_form(rg_backend *be, const float *x, const rg_weight *w, int64_t n_tok) {
    const cuda_backend *c = cuda_of(be);
    if (n_tok <= GEMV_MAX_TOK) return rg_cuda_prepared_holds(&c->act8, x, rg_cuda_act_fmt(w->type), n_tok, w->k);
    return rg_cuda_prepared_holds(&c->act16, x, rg_cuda_x16_type(w), n_tok, w->k);
}

/* q, k, v products with RoPE and the K/V store in the epilogue (GEMV_QKV_ROPE)
 * for decode-sized steps with adjacent-pair RoPE; the rest runs matmul_multi and
 * rope_kv_store. */
bool rg_cuda_qkv_rope_kv_store(rg_backend *be, int64_t layer, const rg_weight *const *w, const float *const *bias,
                               const float *x, int64_t n_tok, float *const *y, int64_t n_head, int64_t n_head_kv,
                               int64_t head_dim, const rg_rope_params *p) {
    cuda_backend *c = cuda_of(be);
    if (n_tok > GEMV_MAX_TOK || p->neox || p->n_rot > head_dim || p->n_rot % 2 || head_dim % 2 ||
        n_head_kv != c->kvc.n_head_kv || head_dim != c->kvc.head_dim || w[0]->n_out != n_head * head_dim ||
        w[1]->n_out != n_head_kv * head_dim || w[2]->n_out != n_head_kv * head_dim || !one_input(3, w))
        return false;
    if (n_tok <= 0 || c->status) return true;
    const rope_kv_layout r = rg_cuda_rope_layout(c, layer, head_dim, p);
    gemv<GEMV_QKV_ROPE>(c, 3, w, bias, x, n_tok, y, &r);
    return true;
}
