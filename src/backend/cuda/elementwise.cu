/* elementwise.cu — the row-wise and elementwise ops on the GPU: embedding rows,
 * rmsnorm, RoPE, K/V store into the paged pool, SwiGLU, residual add, the
 * sinusoidal encoding. Each follows its CPU counterpart's arithmetic
 * (backend/cpu/norm_rope_act.c: RoPE angles by the same float recurrence) so the
 * two backends agree to rounding. */
#include <math.h>

#include "backend/cuda/dequant.cuh"
#include "backend/cuda/gemv_common.cuh"
#include "backend/cuda/rmsnorm.cuh"
#include "backend/cuda/rope.cuh"

/* ---- get_rows: out[i] = dequantize(W[ids[i]]), 8 elements a thread */

template <int T>
__global__ void get_rows_kernel(wplanes w, const int32_t *ids, int64_t n, float *out) {
    int64_t groups = w.k / 8, i = blockIdx.y, g = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= groups) return;
    int32_t id = ids[i];
    float o[8];
    if (id < 0 || id >= w.n_out) { /* validated by the caller; never read outside the matrix */
        for (int j = 0; j < 8; j++) o[j] = 0;
    } else {
        wt<T>::load(w, id, g, o);
    }
    float4 *dst = (float4 *)(out + i * w.k + 8 * g);
    dst[0] = make_float4(o[0], o[1], o[2], o[3]);
    dst[1] = make_float4(o[4], o[5], o[6], o[7]);
}

void rg_cuda_get_rows(rg_backend *be, const rg_weight *w, const int32_t *ids, int64_t n, float *out) {
    cuda_backend *c = cuda_of(be);
    rg_cuda_forget_prepared(c);
    if (n <= 0) return;
    const int32_t *d_ids = rg_cuda_stage_ids(c, ids, n);
    if (!d_ids) return;
    wplanes p = rg_cuda_planes(w);
    dim3 grid(rg_cuda_blocks(w->k / 8, 128), (unsigned)n);
    bool ok = rg_cuda_dispatch_type(w->type, [&]<int T>() {
        get_rows_kernel<T><<<grid, 128, 0, c->stream>>>(p, d_ids, n, out);
    });
    if (!ok) rg_cuda_fail(c, "get_rows", "weight type not resident");
    RG_CUDA_LAUNCHED(c, "get_rows");
}

/* ---- rmsnorm: one block per row; sum of squares in double like the CPU.
 * A decode step's row is one block on one SM: its loads are 16 bytes wide and
 * issued four at a time per thread, so the row arrives in about one memory
 * latency instead of one latency per element a thread owns. O16 (RG_BF16,
 * RG_F16; RG_F32: none): the normalized row also rounded to that type into
 * out16, the cuBLAS input form of the matmul that reads out next (rmsnorm_prepare
 * at prefill sizes), by store16 as to_16bit_kernel stores it. */

template <int O16>
__global__ void __launch_bounds__(RMS_THREADS) rmsnorm_kernel(const float *x, const float *w, int64_t n, float eps,
                                                              float *out, void *out16) {
    RG_PDL_TRIGGER();
    RG_PDL_WAIT();
    const float *xr = x + blockIdx.x * n;
    float *o = out + blockIdx.x * n;
    const int64_t o16 = (int64_t)blockIdx.x * n; /* the row's first element in out16 */
    const bool vec = (n & 3) == 0;
    const float scale = rmsnorm_scale(xr, n, eps);
    if (vec) {
        const float4 *x4 = (const float4 *)xr, *w4 = (const float4 *)w;
        float4 *o4 = (float4 *)o;
        for (int64_t i = threadIdx.x; i < n / 4; i += RMS_THREADS) {
            float4 a = x4[i], b = __ldg(w4 + i);
            const float4 v =
                make_float4((a.x * scale) * b.x, (a.y * scale) * b.y, (a.z * scale) * b.z, (a.w * scale) * b.w);
            o4[i] = v;
            store16x4<O16>(out16, o16 + 4 * i, v);
        }
    } else {
        for (int64_t i = threadIdx.x; i < n; i += RMS_THREADS) {
            o[i] = (xr[i] * scale) * w[i];
            store16<O16>(out16, o16 + i, o[i]);
        }
    }
}

void rg_cuda_rmsnorm(rg_backend *be, const float *x, const float *weight, int64_t n, int64_t n_tok, float eps,
                     float *out) {
    cuda_backend *c = cuda_of(be);
    rg_cuda_forget_prepared(c); /* out may be a prepared input's source */
    if (n_tok <= 0) return;
    rg_cuda_launch(c, rmsnorm_kernel<RG_F32>, dim3((unsigned)n_tok), dim3(RMS_THREADS), 0, x, weight, n, eps, out,
                   (void *)NULL);
    RG_CUDA_LAUNCHED(c, "rmsnorm");
}

/* out = rmsnorm(x), and next's input form from the same pass: the int8
 * activations of a quantized GEMV (matmul_q.cu, opt-in) for decode-sized steps,
 * the 16-bit cuBLAS input (x16) for larger ones. */
bool rg_cuda_rmsnorm_prepare(rg_backend *be, const float *x, const float *w, int64_t n, int64_t n_tok, float eps,
                             float *out, const rg_weight *next) {
    cuda_backend *c = cuda_of(be);
    if (n_tok <= GEMV_MAX_TOK) return rg_cuda_rmsnorm_int8(c, x, w, n, n_tok, eps, out, next);
    const rg_dtype t = next ? rg_cuda_x16_type(next) : RG_F32;
    if (t == RG_F32 || !c->prefill_inputs || next->k != n || n > c->k_max || c->status) return false;
    rg_cuda_forget_prepared(c);
    if (t == RG_BF16)
        rg_cuda_launch(c, rmsnorm_kernel<RG_BF16>, dim3((unsigned)n_tok), dim3(RMS_THREADS), 0, x, w, n, eps, out,
                       c->x16);
    else
        rg_cuda_launch(c, rmsnorm_kernel<RG_F16>, dim3((unsigned)n_tok), dim3(RMS_THREADS), 0, x, w, n, eps, out,
                       c->x16);
    if (RG_CUDA_LAUNCHED(c, "rmsnorm (+ 16-bit input)")) rg_cuda_prepared_set(&c->act16, out, c->x16, t, n_tok, n);
    return true;
}

/* ---- RoPE: one thread per (token, head, pair) */

__global__ void rope_kernel(float *x, const int32_t *pos, int64_t n_tok, int64_t n_head, int64_t head_dim,
                            int64_t n_rot, float theta_scale, float freq_scale, const float *ff, bool neox) {
    int64_t half = n_rot / 2;
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n_tok * n_head * half) return;
    int64_t p = i % half, th = i / half, t = th / n_head;
    float cs, sn;
    rope_cs(pos[t], p, theta_scale, freq_scale, ff, cs, sn);
    float *v = x + th * head_dim;
    int64_t i0 = neox ? p : 2 * p, i1 = neox ? p + half : 2 * p + 1;
    float x0 = v[i0], x1 = v[i1];
    v[i0] = x0 * cs - x1 * sn;
    v[i1] = x0 * sn + x1 * cs;
}

void rg_cuda_rope(rg_backend *be, float *x, int64_t n_head, int64_t head_dim, const rg_rope_params *p) {
    cuda_backend *c = cuda_of(be);
    rg_cuda_forget_prepared(c);
    int64_t n = c->n_tok * n_head * (p->n_rot / 2);
    if (n <= 0) return;
    if (p->n_rot > head_dim || p->n_rot % 2) {
        rg_cuda_fail(c, "rope", "n_rot does not fit the head");
        return;
    }
    float theta_scale = powf(p->freq_base, -2.0f / (float)p->n_rot);
    rope_kernel<<<rg_cuda_blocks(n, 256), 256, 0, c->stream>>>(x, c->d_pos, c->n_tok, n_head, head_dim, p->n_rot,
                                                               theta_scale, p->freq_scale, p->freq_factors, p->neox);
    RG_CUDA_LAUNCHED(c, "rope");
}

/* ---- K/V store: token t's heads to slot pos % bs of block table[pos / bs] */

template <typename E> __device__ __forceinline__ E to_elem(float f);
template <> __device__ __forceinline__ float to_elem<float>(float f) { return f; }
template <> __device__ __forceinline__ __half to_elem<__half>(float f) { return __float2half_rn(f); }
template <> __device__ __forceinline__ __nv_bfloat16 to_elem<__nv_bfloat16>(float f) { return __float2bfloat16_rn(f); }

/* The pool and step layout the K/V stores (kv_store, rope_kv_store, the QKV GEMV
 * epilogue) address through; p NULL: no RoPE. */
rope_kv_layout rg_cuda_rope_layout(const cuda_backend *c, int64_t layer, int64_t head_dim, const rg_rope_params *p) {
    return rope_kv_layout{c->d_pos, c->d_row, c->d_tables, p ? p->freq_factors : NULL,
                          c->kv_data + (size_t)layer * c->kv_layer_bytes, c->max_table_blocks, c->kvc.block_size,
                          head_dim, p ? p->n_rot : 0, c->kv_unit_bytes, c->kv_kv_bytes, c->kv_head_bytes,
                          p ? powf(p->freq_base, -2.0f / (float)p->n_rot) : 0.0f, p ? p->freq_scale : 0.0f,
                          (int)c->kvc.dtype};
}

/* grid (blocks over the KV heads' elements, n_tok) */
template <typename E>
__global__ void kv_store_kernel(rope_kv_layout l, const float *k, const float *v, int64_t n_head_kv) {
    const int64_t t = blockIdx.y, n = n_head_kv * l.head_dim;
    const int32_t p = l.pos[t];
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t h = i / l.head_dim, d = i % l.head_dim;
        ((E *)kv_row(l, t, p, h, false))[d] = to_elem<E>(k[t * n + i]);
        ((E *)kv_row(l, t, p, h, true))[d] = to_elem<E>(v[t * n + i]);
    }
}

void rg_cuda_kv_store(rg_backend *be, int64_t layer, const float *k, const float *v) {
    cuda_backend *c = cuda_of(be);
    if (c->n_tok <= 0) return;
    const rope_kv_layout l = rg_cuda_rope_layout(c, layer, c->kvc.head_dim, NULL);
    const int64_t n_kv = c->kvc.n_head_kv;
    dim3 grid(rg_cuda_blocks(n_kv * c->kvc.head_dim, 256), (unsigned)c->n_tok);
    if (c->kvc.dtype == RG_F32) kv_store_kernel<float><<<grid, 256, 0, c->stream>>>(l, k, v, n_kv);
    else if (c->kvc.dtype == RG_F16) kv_store_kernel<__half><<<grid, 256, 0, c->stream>>>(l, k, v, n_kv);
    else kv_store_kernel<__nv_bfloat16><<<grid, 256, 0, c->stream>>>(l, k, v, n_kv);
    RG_CUDA_LAUNCHED(c, "kv_store");
}

/* ---- RoPE of q and k and the K/V store in one launch (rg_cuda_rope_kv_store).
 * One thread per (token, element pair) and share of the q, k and v heads,
 * walking its heads: the pair's angle (rope_cs: up to head_dim/2
 * multiplications, a cosf and a sinf) is computed once per share instead of
 * once per head (a 2048-token prefill of the 8B shape: one share of 48 heads;
 * a decode step: a share per head, as many threads as before), and a warp's
 * pairs are consecutive, so each head row is read and written in whole pieces. q pairs are rotated in
 * place; k pairs are rotated in place and stored; v pairs are stored. Pairs
 * beyond n_rot (partial rotation) pass through. The rotation is rope_kernel's
 * arithmetic, the store kv_store_kernel's. */
struct rope_kv_args {
    float *q, *k;
    const float *v;
    rope_kv_layout l;
    int64_t n_tok, n_head, n_head_kv;
    bool neox;
};

template <typename E> __global__ void rope_kv_store_kernel(rope_kv_args a) {
    RG_PDL_TRIGGER();
    RG_PDL_WAIT();
    const rope_kv_layout &l = a.l;
    const int64_t pairs = l.head_dim / 2, half = l.n_rot / 2, heads = a.n_head + 2 * a.n_head_kv;
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= a.n_tok * pairs) return;
    const int64_t p = i % pairs, t = i / pairs;
    /* this thread's heads: the blockIdx.y-th of gridDim.y equal shares of q, k, v */
    const int64_t per = (heads + gridDim.y - 1) / gridDim.y, h0 = blockIdx.y * per;
    const int64_t h1 = h0 + per < heads ? h0 + per : heads;
    int64_t i0, i1;
    if (p < half) i0 = a.neox ? p : 2 * p, i1 = a.neox ? p + half : 2 * p + 1;
    else i0 = l.n_rot + 2 * (p - half), i1 = i0 + 1;
    const int32_t pos = l.pos[t];
    float cs = 1.0f, sn = 0.0f;
    if (p < half && h0 < a.n_head + a.n_head_kv) rope_cs(pos, p, l.theta_scale, l.freq_scale, l.ff, cs, sn);
    for (int64_t h = h0; h < h1; h++) {
        const bool is_q = h < a.n_head, is_v = h >= a.n_head + a.n_head_kv;
        const int64_t hk = is_q ? 0 : is_v ? h - a.n_head - a.n_head_kv : h - a.n_head;
        float *row = is_q ? a.q + (t * a.n_head + h) * l.head_dim
                          : (float *)(is_v ? a.v : a.k) + (t * a.n_head_kv + hk) * l.head_dim;
        float x0 = row[i0], x1 = row[i1];
        if (!is_v && p < half) {
            const float r0 = x0 * cs - x1 * sn, r1 = x0 * sn + x1 * cs;
            x0 = r0, x1 = r1;
            row[i0] = x0, row[i1] = x1;
        }
        if (is_q) continue;
        E *dst = (E *)kv_row(l, t, pos, hk, is_v);
        dst[i0] = to_elem<E>(x0);
        dst[i1] = to_elem<E>(x1);
    }
}

bool rg_cuda_rope_kv_store(rg_backend *be, int64_t layer, float *q, float *k, const float *v, int64_t n_head,
                           int64_t n_head_kv, int64_t head_dim, const rg_rope_params *p) {
    cuda_backend *c = cuda_of(be);
    if (p->n_rot > head_dim || p->n_rot % 2 || head_dim % 2 || n_head_kv != c->kvc.n_head_kv ||
        head_dim != c->kvc.head_dim)
        return false; /* the unfused ops report it */
    int64_t n = c->n_tok * (head_dim / 2);
    if (n <= 0) return true;
    rope_kv_args a = {q, k, v, rg_cuda_rope_layout(c, layer, head_dim, p), c->n_tok, n_head, n_head_kv, p->neox};
    /* heads split over grid.y until ~64k threads run (decode: a thread per head and pair) */
    const int64_t heads = n_head + 2 * n_head_kv, want = (65536 + n - 1) / n;
    const dim3 grid(rg_cuda_blocks(n, 256), (unsigned)(want < heads ? want : heads));
    if (c->kvc.dtype == RG_F32) rg_cuda_launch(c, rope_kv_store_kernel<float>, grid, dim3(256), 0, a);
    else if (c->kvc.dtype == RG_F16) rg_cuda_launch(c, rope_kv_store_kernel<__half>, grid, dim3(256), 0, a);
    else rg_cuda_launch(c, rope_kv_store_kernel<__nv_bfloat16>, grid, dim3(256), 0, a);
    RG_CUDA_LAUNCHED(c, "rope_kv_store");
    return true;
}

/* ---- SwiGLU, residual add, sinusoidal positions */

__device__ __forceinline__ float silu_mul(float g, float u) { return g / (1.0f + expf(-g)) * u; }

/* Four elements a thread (16-byte loads) where n and the buffers allow, else one.
 * O16: as rmsnorm_kernel's, written in place of out (swiglu_into). */
template <int O16> __global__ void swiglu_kernel(const float *g, const float *u, int64_t n, float *out, void *out16) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    const bool vec = (n & 3) == 0 && (((uintptr_t)g | (uintptr_t)u | (uintptr_t)out) & 15) == 0;
    if (vec) {
        for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n / 4; i += stride) {
            const float4 a = __ldg((const float4 *)g + i), b = __ldg((const float4 *)u + i);
            const float4 v =
                make_float4(silu_mul(a.x, b.x), silu_mul(a.y, b.y), silu_mul(a.z, b.z), silu_mul(a.w, b.w));
            if constexpr (O16 == RG_F32) ((float4 *)out)[i] = v;
            else store16x4<O16>(out16, 4 * i, v);
        }
    } else {
        for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
            const float v = silu_mul(g[i], u[i]);
            if constexpr (O16 == RG_F32) out[i] = v;
            else store16<O16>(out16, i, v);
        }
    }
}

static unsigned elementwise_blocks(int64_t n) {
    const unsigned b = rg_cuda_blocks((n + 3) / 4, 256);
    return b < 65535 ? b : 65535;
}

void rg_cuda_swiglu(rg_backend *be, const float *gate, const float *up, int64_t n, float *out) {
    cuda_backend *c = cuda_of(be);
    rg_cuda_forget_prepared(c);
    if (n <= 0) return;
    swiglu_kernel<RG_F32><<<elementwise_blocks(n), 256, 0, c->stream>>>(gate, up, n, out, NULL);
    RG_CUDA_LAUNCHED(c, "swiglu");
}

/* swiglu straight into the cuBLAS input form of the next product (backend.h:
 * out itself is not written) where that product runs on cuBLAS: more tokens than
 * the GEMV takes, 16-bit or quantized weights. Per element of the f32 path it
 * reads 8 bytes and writes 2, where swiglu + the conversion read 12 and write 6. */
bool rg_cuda_swiglu_into(rg_backend *be, const float *gate, const float *up, int64_t n, float *out,
                         const rg_weight *next) {
    cuda_backend *c = cuda_of(be);
    const rg_dtype t = next ? rg_cuda_x16_type(next) : RG_F32;
    if (t == RG_F32 || !c->prefill_inputs || next->k <= 0 || next->k > c->k_max || n % next->k ||
        n / next->k <= GEMV_MAX_TOK || c->status)
        return false;
    rg_cuda_forget_prepared(c);
    if (t == RG_BF16) swiglu_kernel<RG_BF16><<<elementwise_blocks(n), 256, 0, c->stream>>>(gate, up, n, out, c->x16);
    else swiglu_kernel<RG_F16><<<elementwise_blocks(n), 256, 0, c->stream>>>(gate, up, n, out, c->x16);
    if (RG_CUDA_LAUNCHED(c, "swiglu (into the 16-bit input)"))
        rg_cuda_prepared_set(&c->act16, out, c->x16, t, n / next->k, next->k);
    return true;
}

/* SwiGLU of bf16 gate/up rows into the bf16 cuBLAS input (prefill_swiglu16):
 * eight elements a thread (16-byte loads and store) where n allows. */
__global__ void swiglu_bf16_kernel(const __nv_bfloat16 *g, const __nv_bfloat16 *u, int64_t n, __nv_bfloat16 *out) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    if ((n & 7) == 0) {
        for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n / 8; i += stride) {
            const uint4 a = __ldg((const uint4 *)g + i), b = __ldg((const uint4 *)u + i);
            const __nv_bfloat162 *a2 = (const __nv_bfloat162 *)&a, *b2 = (const __nv_bfloat162 *)&b;
            uint4 r;
            __nv_bfloat162 *r2 = (__nv_bfloat162 *)&r;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const float2 x = __bfloat1622float2(a2[j]), y = __bfloat1622float2(b2[j]);
                r2[j] = __floats2bfloat162_rn(silu_mul(x.x, y.x), silu_mul(x.y, y.y));
            }
            ((uint4 *)out)[i] = r;
        }
    } else {
        for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
            out[i] = __float2bfloat16_rn(silu_mul(__bfloat162float(g[i]), __bfloat162float(u[i])));
    }
}

void rg_cuda_swiglu_bf16(cuda_backend *c, const __nv_bfloat16 *g, const __nv_bfloat16 *u, int64_t n_tok, int64_t n,
                         const float *out) {
    rg_cuda_forget_prepared(c);
    const int64_t total = n_tok * n;
    unsigned blocks = rg_cuda_blocks((total + 7) / 8, 256);
    swiglu_bf16_kernel<<<blocks < 65535 ? blocks : 65535, 256, 0, c->stream>>>(g, u, total,
                                                                                (__nv_bfloat16 *)c->x16);
    if (RG_CUDA_LAUNCHED(c, "swiglu (bf16 gate/up)")) rg_cuda_prepared_set(&c->act16, out, c->x16, RG_BF16, n_tok, n);
}

__global__ void add_kernel(float *y, const float *x, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        y[i] += x[i];
}

void rg_cuda_add(rg_backend *be, float *y, const float *x, int64_t n) {
    cuda_backend *c = cuda_of(be);
    rg_cuda_forget_prepared(c);
    if (n <= 0) return;
    unsigned blocks = rg_cuda_blocks(n, 256);
    add_kernel<<<blocks < 65535 ? blocks : 65535, 256, 0, c->stream>>>(y, x, n);
    RG_CUDA_LAUNCHED(c, "add");
}

__global__ void sinusoidal_kernel(float *x, const int32_t *pos, int64_t n_tok, int64_t d) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n_tok * (d / 2)) return;
    int64_t t = i / (d / 2), p = i % (d / 2);
    double angle = pos[t] / pow(10000.0, 2.0 * (double)p / (double)d);
    x[t * d + 2 * p] += (float)sin(angle);
    x[t * d + 2 * p + 1] += (float)cos(angle);
}

void rg_cuda_add_sinusoidal(rg_backend *be, float *x, int64_t d) {
    cuda_backend *c = cuda_of(be);
    int64_t n = c->n_tok * (d / 2);
    if (n <= 0) return;
    sinusoidal_kernel<<<rg_cuda_blocks(n, 256), 256, 0, c->stream>>>(x, c->d_pos, c->n_tok, d);
    RG_CUDA_LAUNCHED(c, "sinusoidal");
}
