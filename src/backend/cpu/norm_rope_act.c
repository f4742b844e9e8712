/* norm_rope_act.c — the elementwise and row-wise ops of the forward pass:
 * rmsnorm, RoPE, SwiGLU, residual add, softmax, embedding rows. All act on
 * row-major [n_tok][n] f32 and follow ggml's float arithmetic (sum of squares
 * in double, RoPE angles from a float recurrence theta_i = pos * base^(-2i/n_rot)
 * built by repeated multiplication, silu(x) = x / (1 + e^-x)) so logits track
 * llama.cpp's. Loops are written for the compiler to vectorize; exp has an AVX2
 * version. Work is split over tokens only when it is large enough to pay for a
 * parallel region (PAR_MIN_ELEMS). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend/cpu/kernels.h"
#include "backend/cpu/ops.h"
#include "core/quant.h"

#if RG_X86_SIMD
#include "backend/cpu/avx2_util.h"
#endif

/* Below this many elements an op runs on the calling thread: waking the pool
 * costs a few microseconds, about what 64K elements of a streaming op take. */
#define PAR_MIN_ELEMS 65536

typedef void (*rows_fn)(void *arg, int64_t r0, int64_t r1);
typedef struct par_rows {
    rows_fn fn;
    void *arg;
    int64_t n_rows;
} par_rows;

static void par_rows_task(void *arg, int ith, int nth) {
    par_rows *p = arg;
    int64_t lo, hi;
    rg_split_range(p->n_rows, ith, nth, &lo, &hi);
    if (lo < hi) p->fn(p->arg, lo, hi);
}

/* fn over rows [0, n_rows), split across the pool when the op is big enough */
static void for_rows(rg_cpu_ctx *ctx, int64_t n_rows, int64_t elems_per_row, rows_fn fn, void *arg) {
    if (!ctx || !ctx->pool || n_rows < 2 || n_rows * elems_per_row < PAR_MIN_ELEMS) {
        fn(arg, 0, n_rows);
        return;
    }
    par_rows p = {fn, arg, n_rows};
    rg_threadpool_run(ctx->pool, par_rows_task, &p);
}

/* ---- silu and softmax (exp: avx2_exp_ps in avx2_util.h) */

#if RG_X86_SIMD
AVX2_FN static void swiglu_avx2(const float *g, const float *u, int64_t n, float *out) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(g + i);
        __m256 e = avx2_exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), x));
        __m256 silu = _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(silu, _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++)
        out[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* x[i] = e^(x[i] - max); returns the sum in double */
AVX2_FN static double exp_sub_sum_avx2(float *x, int64_t n, float max) {
    __m256 m = _mm256_set1_ps(max);
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = avx2_exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), m));
        _mm256_storeu_ps(x + i, e);
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    double lanes[4];
    _mm256_storeu_pd(lanes, _mm256_add_pd(s0, s1));
    double sum = lanes[0] + lanes[1] + lanes[2] + lanes[3];
    for (; i < n; i++)
        sum += (x[i] = expf(x[i] - max));
    return sum;
}
#endif

/* ---- rmsnorm */

typedef struct norm_args {
    const float *x, *w;
    int64_t n;
    float eps;
    float *out;
} norm_args;

static void rmsnorm_rows(void *arg, int64_t r0, int64_t r1) {
    const norm_args *a = arg;
    int64_t n = a->n;
    for (int64_t t = r0; t < r1; t++) {
        const float *x = a->x + t * n;
        float *o = a->out + t * n;
        double lane[8] = {0}; /* 8 independent double sums: vectorizes, stays exact enough */
        int64_t i = 0;
        for (; i + 8 <= n; i += 8)
            for (int j = 0; j < 8; j++)
                lane[j] += (double)(x[i + j] * x[i + j]);
        double sum = 0;
        for (; i < n; i++)
            sum += (double)(x[i] * x[i]);
        for (int j = 0; j < 8; j++)
            sum += lane[j];
        float scale = 1.0f / sqrtf((float)(sum / (double)n) + a->eps);
        for (i = 0; i < n; i++)
            o[i] = (x[i] * scale) * a->w[i];
    }
}

void rg_cpu_rmsnorm(rg_cpu_ctx *ctx, const float *x, const float *weight, int64_t n, int64_t n_tok, float eps,
                    float *out) {
    norm_args a = {x, weight, n, eps, out};
    for_rows(ctx, n_tok, n, rmsnorm_rows, &a);
}

/* ---- RoPE */

typedef struct rope_args {
    float *x;
    const int32_t *pos;
    int64_t n_head, head_dim;
    const rg_rope_params *p;
} rope_args;

enum { ROPE_MAX_HALF = 512 };

static void rope_rows(void *arg, int64_t t0, int64_t t1) {
    const rope_args *a = arg;
    const rg_rope_params *p = a->p;
    int64_t half = p->n_rot / 2;
    float cs[ROPE_MAX_HALF], sn[ROPE_MAX_HALF];
    const float theta_scale = powf(p->freq_base, -2.0f / (float)p->n_rot);
    for (int64_t t = t0; t < t1; t++) {
        /* angles once per token, shared by its heads; ggml's recurrence in float */
        float theta = (float)a->pos[t];
        for (int64_t i = 0; i < half; i++) {
            float ff = p->freq_factors ? p->freq_factors[i] : 1.0f;
            float th = p->freq_scale * (theta / ff);
            cs[i] = cosf(th), sn[i] = sinf(th);
            theta *= theta_scale;
        }
        for (int64_t h = 0; h < a->n_head; h++) {
            float *v = a->x + (t * a->n_head + h) * a->head_dim;
            if (p->neox) {
                float *v0 = v, *v1 = v + half;
                for (int64_t i = 0; i < half; i++) {
                    float x0 = v0[i], x1 = v1[i];
                    v0[i] = x0 * cs[i] - x1 * sn[i];
                    v1[i] = x0 * sn[i] + x1 * cs[i];
                }
            } else {
                for (int64_t i = 0; i < half; i++) {
                    float x0 = v[2 * i], x1 = v[2 * i + 1];
                    v[2 * i] = x0 * cs[i] - x1 * sn[i];
                    v[2 * i + 1] = x0 * sn[i] + x1 * cs[i];
                }
            }
        }
    }
}

void rg_cpu_rope(rg_cpu_ctx *ctx, float *x, const int32_t *pos, int64_t n_tok, int64_t n_head, int64_t head_dim,
                 const rg_rope_params *p) {
    if (p->n_rot / 2 > ROPE_MAX_HALF || p->n_rot > head_dim || p->n_rot % 2) {
        fprintf(stderr, "rg_cpu_rope: n_rot=%lld unsupported for head_dim=%lld\n", (long long)p->n_rot,
                (long long)head_dim);
        abort();
    }
    rope_args a = {x, pos, n_head, head_dim, p};
    for_rows(ctx, n_tok, n_head * head_dim, rope_rows, &a);
}

/* ---- SwiGLU and add: contiguous ranges, split in chunks of 4096 */

enum { CHUNK = 4096 };

typedef struct ew_args {
    const float *a, *b;
    float *out;
    int64_t n;
} ew_args;

static void swiglu_rows(void *arg, int64_t c0, int64_t c1) {
    const ew_args *e = arg;
    int64_t lo = c0 * CHUNK, hi = c1 * CHUNK < e->n ? c1 * CHUNK : e->n;
#if RG_X86_SIMD
    if (rg_cpu_isa_active() == RG_ISA_AVX2) {
        swiglu_avx2(e->a + lo, e->b + lo, hi - lo, e->out + lo);
        return;
    }
#endif
    for (int64_t i = lo; i < hi; i++)
        e->out[i] = e->a[i] / (1.0f + expf(-e->a[i])) * e->b[i];
}

void rg_cpu_swiglu(rg_cpu_ctx *ctx, const float *gate, const float *up, int64_t n, float *out) {
    ew_args e = {gate, up, out, n};
    for_rows(ctx, (n + CHUNK - 1) / CHUNK, CHUNK, swiglu_rows, &e);
}

static void add_rows(void *arg, int64_t c0, int64_t c1) {
    const ew_args *e = arg;
    int64_t hi = c1 * CHUNK < e->n ? c1 * CHUNK : e->n;
    for (int64_t i = c0 * CHUNK; i < hi; i++)
        e->out[i] += e->a[i];
}

void rg_cpu_add(rg_cpu_ctx *ctx, float *y, const float *x, int64_t n) {
    ew_args e = {x, NULL, y, n};
    for_rows(ctx, (n + CHUNK - 1) / CHUNK, CHUNK, add_rows, &e);
}

/* ---- softmax */

void rg_cpu_softmax(float *x, int64_t n, int64_t n_rows) {
    for (int64_t r = 0; r < n_rows; r++) {
        float *v = x + r * n;
        float max = -INFINITY;
        for (int64_t i = 0; i < n; i++)
            max = v[i] > max ? v[i] : max;
        double sum = 0;
#if RG_X86_SIMD
        if (rg_cpu_isa_active() == RG_ISA_AVX2)
            sum = exp_sub_sum_avx2(v, n, max);
        else
#endif
            for (int64_t i = 0; i < n; i++)
                sum += (v[i] = expf(v[i] - max));
        float inv = (float)(1.0 / sum);
        for (int64_t i = 0; i < n; i++)
            v[i] *= inv;
    }
}

/* ---- embedding rows */

void rg_cpu_get_rows(rg_dtype wtype, const void *w, int64_t k, const int32_t *ids, int64_t n, float *out) {
    int64_t row = rg_dtype_row_bytes(wtype, k);
    for (int64_t i = 0; i < n; i++)
        if (row < 0 || rg_dequantize_ref(wtype, (const char *)w + ids[i] * row, out + i * k, k, NULL)) {
            fprintf(stderr, "rg_cpu_get_rows: cannot dequantize %s rows of %lld\n", rg_dtype_name(wtype), (long long)k);
            abort();
        }
}
