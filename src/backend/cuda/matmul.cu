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
 * to f16/bf16; on the GEMV path x is quantized to Q8_0 for Q8_0/Q4_0 weights and
 * to Q8_K for Q4_K/Q6_K weights (then used as the exact f32 values q * d). The
 * cuBLAS path of quantized weights uses bf16 activations instead (tests/gpu
 * states the tolerances). */
#include "backend/cuda/dequant.cuh"

#define GEMV_MAX_TOK 16
#define GEMV_WARPS 4

template <int T> __device__ __forceinline__ float round_act(float v) {
    if (T == RG_F16) return __half2float(__float2half_rn(v));
    if (T == RG_BF16) return __bfloat162float(__float2bfloat16_rn(v));
    return v;
}

/* A block of GEMV_THREADS threads computes R rows together: the threads split
 * the row length (8 weights each per step, several steps' loads in flight), so
 * even a 2048-wide matrix keeps every SM busy, and each activation value loaded
 * serves R weights. Partial sums meet through shuffles and shared memory. */
#define GEMV_THREADS 128
template <int T> struct unroll_of { static constexpr int value = 2; };

template <int T, int NT, int R>
__global__ void __launch_bounds__(GEMV_THREADS) gemv_kernel(wplanes w, const float *__restrict__ x, int64_t n_tok,
                                                            const float *__restrict__ bias, float *__restrict__ y) {
    constexpr int U = unroll_of<T>::value;
    constexpr bool AFF = wq<T>::affine;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid / 32;
    const int64_t r0 = (int64_t)blockIdx.x * R, groups = w.k / 8;
    float acc[R][NT];
#pragma unroll
    for (int i = 0; i < R; i++)
#pragma unroll
        for (int t = 0; t < NT; t++) acc[i][t] = 0;
    for (int64_t g0 = tid; g0 < groups; g0 += GEMV_THREADS * U) {
        float wv[U][R][8], ws[U][R], wo[U][R];
#pragma unroll
        for (int u = 0; u < U; u++)
#pragma unroll
            for (int i = 0; i < R; i++) {
                int64_t g = g0 + GEMV_THREADS * u, r = r0 + i < w.n_out ? r0 + i : w.n_out - 1;
                if (g < groups) {
                    if constexpr (AFF) wq<T>::load(w, r, g, wv[u][i], ws[u][i], wo[u][i]);
                    else wt<T>::load(w, r, g, wv[u][i]);
                }
            }
#pragma unroll
        for (int u = 0; u < U; u++) {
            int64_t g = g0 + GEMV_THREADS * u;
            if (g >= groups) break;
#pragma unroll
            for (int t = 0; t < NT; t++) {
                if (t >= n_tok) break;
                const float4 *xp = (const float4 *)(x + t * w.k + 8 * g);
                float4 a = __ldg(xp), b = __ldg(xp + 1);
                float xs[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
#pragma unroll
                for (int j = 0; j < 8; j++) xs[j] = round_act<T>(xs[j]);
                if constexpr (AFF) {
                    float xsum = ((xs[0] + xs[1]) + (xs[2] + xs[3])) + ((xs[4] + xs[5]) + (xs[6] + xs[7]));
#pragma unroll
                    for (int i = 0; i < R; i++) {
                        float d = 0;
#pragma unroll
                        for (int j = 0; j < 8; j++) d = fmaf(wv[u][i][j], xs[j], d);
                        acc[i][t] = fmaf(ws[u][i], d, fmaf(wo[u][i], xsum, acc[i][t]));
                    }
                } else {
#pragma unroll
                    for (int i = 0; i < R; i++)
#pragma unroll
                        for (int j = 0; j < 8; j++) acc[i][t] = fmaf(wv[u][i][j], xs[j], acc[i][t]);
                }
            }
        }
    }
    __shared__ float red[GEMV_THREADS / 32][R * NT];
#pragma unroll
    for (int i = 0; i < R; i++)
#pragma unroll
        for (int t = 0; t < NT; t++) {
            float v = acc[i][t];
            for (int off = 16; off; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
            if (lane == 0) red[warp][i * NT + t] = v;
        }
    __syncthreads();
    if (tid < R * NT) {
        int i = tid / NT, t = tid % NT;
        float v = 0;
#pragma unroll
        for (int k = 0; k < GEMV_THREADS / 32; k++) v += red[k][tid];
        if (t < n_tok && r0 + i < w.n_out) y[t * w.n_out + r0 + i] = v + (bias ? bias[r0 + i] : 0.0f);
    }
}

/* The quantized types: as gemv_kernel, but each thread takes 32-element units
 * (16-byte loads of 4-bit values instead of 4-byte ones: four times the bytes
 * in flight per load), decoding 8 weights at a time from registers. */
template <int T, int NT, int R>
__global__ void __launch_bounds__(GEMV_THREADS) gemv_q_kernel(wplanes w, const float *__restrict__ x, int64_t n_tok,
                                                              const float *__restrict__ bias, float *__restrict__ y) {
    const int tid = threadIdx.x, lane = tid & 31, warp = tid / 32;
    const int64_t r0 = (int64_t)blockIdx.x * R, units = w.k / 32;
    float acc[R][NT];
#pragma unroll
    for (int i = 0; i < R; i++)
#pragma unroll
        for (int t = 0; t < NT; t++) acc[i][t] = 0;
    for (int64_t u = tid; u < units; u += GEMV_THREADS) {
        typename wu<T>::raw raw[R];
#pragma unroll
        for (int i = 0; i < R; i++) wu<T>::load(w, r0 + i < w.n_out ? r0 + i : w.n_out - 1, u, raw[i]);
#pragma unroll
        for (int j = 0; j < 4; j++) {
            float xs[NT][8], xsum[NT];
#pragma unroll
            for (int t = 0; t < NT; t++) {
                if (t >= n_tok) break;
                const float4 *xp = (const float4 *)(x + t * w.k + 32 * u + 8 * j);
                float4 a = __ldg(xp), b = __ldg(xp + 1);
                xs[t][0] = a.x, xs[t][1] = a.y, xs[t][2] = a.z, xs[t][3] = a.w;
                xs[t][4] = b.x, xs[t][5] = b.y, xs[t][6] = b.z, xs[t][7] = b.w;
                xsum[t] = ((a.x + a.y) + (a.z + a.w)) + ((b.x + b.y) + (b.z + b.w));
            }
#pragma unroll
            for (int i = 0; i < R; i++) {
                float q[8], sc, off;
                wu<T>::decode(raw[i], j, q, sc, off);
#pragma unroll
                for (int t = 0; t < NT; t++) {
                    if (t >= n_tok) break;
                    float d = 0;
#pragma unroll
                    for (int e = 0; e < 8; e++) d = fmaf(q[e], xs[t][e], d);
                    acc[i][t] = fmaf(sc, d, fmaf(off, xsum[t], acc[i][t]));
                }
            }
        }
    }
    __shared__ float red[GEMV_THREADS / 32][R * NT];
#pragma unroll
    for (int i = 0; i < R; i++)
#pragma unroll
        for (int t = 0; t < NT; t++) {
            float v = acc[i][t];
            for (int off = 16; off; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
            if (lane == 0) red[warp][i * NT + t] = v;
        }
    __syncthreads();
    if (tid < R * NT) {
        int i = tid / NT, t = tid % NT;
        float v = 0;
#pragma unroll
        for (int k = 0; k < GEMV_THREADS / 32; k++) v += red[k][tid];
        if (t < n_tok && r0 + i < w.n_out) y[t * w.n_out + r0 + i] = v + (bias ? bias[r0 + i] : 0.0f);
    }
}

template <int T, int R>
static void launch_gemv_r(cuda_backend *c, const wplanes &p, const float *x, int64_t n_tok, const float *bias,
                          float *y) {
    unsigned blocks = rg_cuda_blocks(p.n_out, R);
    for (int64_t t0 = 0; t0 < n_tok; t0 += 8) {
        int64_t nt = n_tok - t0 < 8 ? n_tok - t0 : 8;
        const float *xt = x + t0 * p.k;
        float *yt = y + t0 * p.n_out;
        if constexpr (wq<T>::affine) {
            if (nt == 1) gemv_q_kernel<T, 1, R><<<blocks, GEMV_THREADS, 0, c->stream>>>(p, xt, nt, bias, yt);
            else if (nt == 2) gemv_q_kernel<T, 2, R><<<blocks, GEMV_THREADS, 0, c->stream>>>(p, xt, nt, bias, yt);
            else if (nt <= 4) gemv_q_kernel<T, 4, R><<<blocks, GEMV_THREADS, 0, c->stream>>>(p, xt, nt, bias, yt);
            else gemv_q_kernel<T, 8, R><<<blocks, GEMV_THREADS, 0, c->stream>>>(p, xt, nt, bias, yt);
        } else {
            if (nt == 1) gemv_kernel<T, 1, R><<<blocks, GEMV_THREADS, 0, c->stream>>>(p, xt, nt, bias, yt);
            else if (nt == 2) gemv_kernel<T, 2, R><<<blocks, GEMV_THREADS, 0, c->stream>>>(p, xt, nt, bias, yt);
            else if (nt <= 4) gemv_kernel<T, 4, R><<<blocks, GEMV_THREADS, 0, c->stream>>>(p, xt, nt, bias, yt);
            else gemv_kernel<T, 8, R><<<blocks, GEMV_THREADS, 0, c->stream>>>(p, xt, nt, bias, yt);
        }
    }
}

/* Rows per block: 2 while that leaves fewer than ~8 blocks per SM, else 4. */
template <int T>
static void launch_gemv(cuda_backend *c, const wplanes &p, const float *x, int64_t n_tok, const float *bias,
                        float *y) {
    if (p.n_out < 8 * 4 * (int64_t)c->n_sm) launch_gemv_r<T, 2>(c, p, x, n_tok, bias, y);
    else launch_gemv_r<T, 4>(c, p, x, n_tok, bias, y);
}

/* ---- activation quantization (the GEMV path of quantized weights) */

/* Q8_0 per 32: d = amax/127 (kept as f16), q = roundf(x / d); one warp per block. */
__global__ void act_q8_0_kernel(const float *x, int64_t n, float *out) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i - (threadIdx.x & 31) >= n) return;
    float v = i < n ? x[i] : 0.0f, amax = fabsf(v);
    for (int off = 16; off; off >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
    float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
    float q = roundf(__fmul_rn(v, id));
    if (i < n) out[i] = q * __half2float(__float2half_rn(d));
}

/* Q8_K per 256: max = the first element of largest |x|, iscale = -127/max,
 * q = min(127, round-half-even(iscale * x)), d = 1/iscale; one block per 256. */
__global__ void act_q8_k_kernel(const float *x, float *out) {
    __shared__ float s_abs[256];
    __shared__ int s_idx[256];
    const float *xb = x + (int64_t)blockIdx.x * 256;
    int j = threadIdx.x;
    float v = xb[j];
    s_abs[j] = fabsf(v), s_idx[j] = j;
    __syncthreads();
    for (int stride = 128; stride; stride >>= 1) {
        if (j < stride) {
            float a = s_abs[j], b = s_abs[j + stride];
            int ia = s_idx[j], ib = s_idx[j + stride];
            if (b > a || (b == a && ib < ia)) s_abs[j] = b, s_idx[j] = ib;
        }
        __syncthreads();
    }
    float mx = xb[s_idx[0]];
    if (s_abs[0] == 0) {
        out[(int64_t)blockIdx.x * 256 + j] = 0;
        return;
    }
    float iscale = -127.0f / mx;
    float q = fminf(127.0f, nearbyintf(__fmul_rn(iscale, v)));
    out[(int64_t)blockIdx.x * 256 + j] = q * (1.0f / iscale);
}

/* x rounded to the activation format the CPU uses with weights of type t; x itself when none. */
static const float *quantize_act(cuda_backend *c, rg_dtype t, const float *x, int64_t n) {
    if (t == RG_Q8_0 || t == RG_Q4_0) {
        act_q8_0_kernel<<<rg_cuda_blocks(n, 256), 256, 0, c->stream>>>(x, n, c->xq);
    } else if (t == RG_Q4_K || t == RG_Q6_K) {
        act_q8_k_kernel<<<(unsigned)(n / 256), 256, 0, c->stream>>>(x, c->xq);
    } else {
        return x;
    }
    return RG_CUDA_LAUNCHED(c, "activation quantization") ? c->xq : NULL;
}

/* ---- the cuBLAS path */

template <typename E> __global__ void to_16bit_kernel(const float *x, int64_t n, E *out);
template <> __global__ void to_16bit_kernel<__half>(const float *x, int64_t n, __half *out) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = __float2half_rn(x[i]);
}
template <> __global__ void to_16bit_kernel<__nv_bfloat16>(const float *x, int64_t n, __nv_bfloat16 *out) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = __float2bfloat16_rn(x[i]);
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

static void matmul_cublas(cuda_backend *c, const rg_weight *w, const float *x, int64_t n_tok, float *y) {
    wplanes p = rg_cuda_planes(w);
    int m = (int)p.n_out, n = (int)n_tok, k = (int)p.k;
    float one = 1.0f, zero = 0.0f;
    unsigned conv_blocks = rg_cuda_blocks(n_tok * p.k, 256);
    if (conv_blocks > 65535) conv_blocks = 65535;
    if (w->type == RG_F32) {
        cublas_ok(c, cublasSgemm(c->cublas, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, (const float *)p.p0, k, x, k,
                                 &zero, y, m),
                  "sgemm");
        return;
    }
    cudaDataType dt = w->type == RG_F16 ? CUDA_R_16F : CUDA_R_16BF;
    if (w->type == RG_F16) to_16bit_kernel<__half><<<conv_blocks, 256, 0, c->stream>>>(x, n_tok * p.k, (__half *)c->x16);
    else to_16bit_kernel<__nv_bfloat16><<<conv_blocks, 256, 0, c->stream>>>(x, n_tok * p.k, (__nv_bfloat16 *)c->x16);
    if (!RG_CUDA_LAUNCHED(c, "activation conversion")) return;
    if (w->type == RG_F16 || w->type == RG_BF16) {
        cublas_ok(c, cublasGemmEx(c->cublas, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, p.p0, dt, k, c->x16, dt, k,
                                  &zero, y, CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
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
                                  c->x16, CUDA_R_16BF, k, &zero, y + r0, CUDA_R_32F, m, CUBLAS_COMPUTE_32F,
                                  CUBLAS_GEMM_DEFAULT),
                  "gemm (dequantized tile)");
    }
}

void rg_cuda_matmul(rg_backend *be, const rg_weight *w, const float *bias, const float *x, int64_t n_tok, float *y) {
    cuda_backend *c = cuda_of(be);
    if (n_tok <= 0 || c->status) return;
    if (n_tok > GEMV_MAX_TOK) {
        matmul_cublas(c, w, x, n_tok, y);
        if (bias && !c->status) {
            unsigned blocks = rg_cuda_blocks(n_tok * w->n_out, 256);
            add_bias_kernel<<<blocks < 65535 ? blocks : 65535, 256, 0, c->stream>>>(y, bias, n_tok, w->n_out);
            RG_CUDA_LAUNCHED(c, "bias");
        }
        return;
    }
    wplanes p = rg_cuda_planes(w);
    if (!(x = quantize_act(c, w->type, x, n_tok * w->k))) return;
    bool ok = rg_cuda_dispatch_type(w->type, [&]<int T>() { launch_gemv<T>(c, p, x, n_tok, bias, y); });
    if (!ok) rg_cuda_fail(c, "matmul", "weight type not resident");
    RG_CUDA_LAUNCHED(c, "gemv");
}
