/* elementwise.cu — the row-wise and elementwise ops on the GPU: embedding rows,
 * rmsnorm, RoPE, K/V store into the paged pool, SwiGLU, residual add, the
 * sinusoidal encoding. Each follows its CPU counterpart's arithmetic
 * (backend/cpu/norm_rope_act.c: RoPE angles by the same float recurrence) so the
 * two backends agree to rounding. */
#include <math.h>

#include "backend/cuda/dequant.cuh"
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
 * latency instead of one latency per element a thread owns. */

__global__ void __launch_bounds__(RMS_THREADS) rmsnorm_kernel(const float *x, const float *w, int64_t n, float eps,
                                                              float *out) {
    RG_PDL_TRIGGER();
    RG_PDL_WAIT();
    const float *xr = x + blockIdx.x * n;
    float *o = out + blockIdx.x * n;
    const bool vec = (n & 3) == 0;
    const float scale = rmsnorm_scale(xr, n, eps);
    if (vec) {
        const float4 *x4 = (const float4 *)xr, *w4 = (const float4 *)w;
        float4 *o4 = (float4 *)o;
        for (int64_t i = threadIdx.x; i < n / 4; i += RMS_THREADS) {
            float4 a = x4[i], b = __ldg(w4 + i);
            o4[i] = make_float4((a.x * scale) * b.x, (a.y * scale) * b.y, (a.z * scale) * b.z, (a.w * scale) * b.w);
        }
    } else {
        for (int64_t i = threadIdx.x; i < n; i += RMS_THREADS) o[i] = (xr[i] * scale) * w[i];
    }
}

void rg_cuda_rmsnorm(rg_backend *be, const float *x, const float *weight, int64_t n, int64_t n_tok, float eps,
                     float *out) {
    cuda_backend *c = cuda_of(be);
    c->xq_src = NULL; /* out may be the prepared activations' source */
    if (n_tok <= 0) return;
    rg_cuda_launch(c, rmsnorm_kernel, dim3((unsigned)n_tok), dim3(RMS_THREADS), 0, x, weight, n, eps, out);
    RG_CUDA_LAUNCHED(c, "rmsnorm");
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
 * One thread per (token, head, element pair) over the q, k and v heads of the
 * step: q pairs are rotated in place; k pairs are rotated in place and stored;
 * v pairs are stored. Pairs beyond n_rot (partial rotation) pass through. The
 * rotation is rope_kernel's arithmetic, the store kv_store_kernel's. */
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
    const int64_t pairs = l.head_dim / 2, heads = a.n_head + 2 * a.n_head_kv, half = l.n_rot / 2;
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= a.n_tok * heads * pairs) return;
    const int64_t p = i % pairs, h = (i / pairs) % heads, t = i / (pairs * heads);
    const bool is_q = h < a.n_head, is_v = h >= a.n_head + a.n_head_kv;
    const int64_t hk = is_q ? 0 : is_v ? h - a.n_head - a.n_head_kv : h - a.n_head;
    int64_t i0, i1;
    if (p < half) i0 = a.neox ? p : 2 * p, i1 = a.neox ? p + half : 2 * p + 1;
    else i0 = l.n_rot + 2 * (p - half), i1 = i0 + 1;
    float *row = is_q ? a.q + (t * a.n_head + h) * l.head_dim
                      : (float *)(is_v ? a.v : a.k) + (t * a.n_head_kv + hk) * l.head_dim;
    float x0 = row[i0], x1 = row[i1];
    const int32_t pos = l.pos[t];
    if (!is_v && p < half) {
        float cs, sn;
        rope_cs(pos, p, l.theta_scale, l.freq_scale, l.ff, cs, sn);
        float r0 = x0 * cs - x1 * sn, r1 = x0 * sn + x1 * cs;
        x0 = r0, x1 = r1;
        row[i0] = x0, row[i1] = x1;
    }
    if (is_q) return;
    E *dst = (E *)kv_row(l, t, pos, hk, is_v);
    dst[i0] = to_elem<E>(x0);
    dst[i1] = to_elem<E>(x1);
}

bool rg_cuda_rope_kv_store(rg_backend *be, int64_t layer, float *q, float *k, const float *v, int64_t n_head,
                           int64_t n_head_kv, int64_t head_dim, const rg_rope_params *p) {
    cuda_backend *c = cuda_of(be);
    if (p->n_rot > head_dim || p->n_rot % 2 || head_dim % 2 || n_head_kv != c->kvc.n_head_kv ||
        head_dim != c->kvc.head_dim)
        return false; /* the unfused ops report it */
    int64_t n = c->n_tok * (n_head + 2 * n_head_kv) * (head_dim / 2);
    if (n <= 0) return true;
    rope_kv_args a = {q, k, v, rg_cuda_rope_layout(c, layer, head_dim, p), c->n_tok, n_head, n_head_kv, p->neox};
    unsigned blocks = rg_cuda_blocks(n, 256);
    if (c->kvc.dtype == RG_F32) rg_cuda_launch(c, rope_kv_store_kernel<float>, dim3(blocks), dim3(256), 0, a);
    else if (c->kvc.dtype == RG_F16) rg_cuda_launch(c, rope_kv_store_kernel<__half>, dim3(blocks), dim3(256), 0, a);
    else rg_cuda_launch(c, rope_kv_store_kernel<__nv_bfloat16>, dim3(blocks), dim3(256), 0, a);
    RG_CUDA_LAUNCHED(c, "rope_kv_store");
    return true;
}

/* ---- SwiGLU, residual add, sinusoidal positions */

__global__ void swiglu_kernel(const float *g, const float *u, int64_t n, float *out) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void rg_cuda_swiglu(rg_backend *be, const float *gate, const float *up, int64_t n, float *out) {
    cuda_backend *c = cuda_of(be);
    if (n <= 0) return;
    unsigned blocks = rg_cuda_blocks(n, 256);
    swiglu_kernel<<<blocks < 65535 ? blocks : 65535, 256, 0, c->stream>>>(gate, up, n, out);
    RG_CUDA_LAUNCHED(c, "swiglu");
}

__global__ void add_kernel(float *y, const float *x, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        y[i] += x[i];
}

void rg_cuda_add(rg_backend *be, float *y, const float *x, int64_t n) {
    cuda_backend *c = cuda_of(be);
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
