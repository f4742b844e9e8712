/* test_cuda_ops.c — every op of the CUDA backend against a reference on fresh
 * random inputs (seed printed; RIDGE_TEST_SEED replays), outputs poisoned with
 * NaN before each run so an unwritten element fails.
 *
 * References: matmul against a double-precision product of the reference
 * dequantization (core/quant.h) with x rounded as the GPU path rounds it (to
 * f16/bf16 for those weights; to bf16 on the cuBLAS path of quantized weights);
 * get_rows against the reference dequantization; the other ops against the CPU
 * backend through the same op table (itself tested against backend/ref in
 * tests/test_cpu_ops.c; argmax_rows in tests/test_argmax.c). Error measure:
 * ||gpu - ref|| / ||ref|| per case, with the tolerance stated next to each case
 * (argmax_rows: the count of rows whose id differs, tolerance 0). Needs a GPU:
 * built only with RIDGE_CUDA=ON and run by tests/gpu/run.sh, not by ctest. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/fp16.h"
#include "core/quant.h"
#include "testutil.h"

static int n_fail, n_pass;
static uint64_t rng;

static void check(const char *what, double err, double tol) {
    bool ok = err <= tol; /* NaN fails */
    printf("%-4s %-52s rel err %.3e (tol %.0e)\n", ok ? "ok" : "FAIL", what, err, tol);
    ok ? n_pass++ : n_fail++;
}

static double rel_err(const float *got, const double *ref, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)got[i] - ref[i];
        if (isnan(got[i])) return NAN;
        num += d * d, den += ref[i] * ref[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

static double rel_err_f(const float *got, const float *ref, int64_t n) {
    double *r = malloc((size_t)n * sizeof *r);
    for (int64_t i = 0; i < n; i++) r[i] = ref[i];
    double e = rel_err(got, r, n);
    free(r);
    return e;
}

static float *randn(int64_t n, float scale) {
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++) x[i] = scale * rg_test_rand_normal(&rng);
    return x;
}

/* A device buffer of n floats filled with NaN. */
static float *dev_poisoned(rg_backend *be, int64_t n) {
    float *h = malloc((size_t)n * sizeof *h);
    for (int64_t i = 0; i < n; i++) h[i] = NAN;
    float *d = be->alloc(be, (size_t)n * sizeof *d);
    be->upload(be, d, h, (size_t)n * sizeof *d);
    free(h);
    return d;
}

static float *dev_copy(rg_backend *be, const float *h, int64_t n) {
    float *d = be->alloc(be, (size_t)n * sizeof *d);
    be->upload(be, d, h, (size_t)n * sizeof *d);
    return d;
}

static float *download(rg_backend *be, const float *d, int64_t n) {
    float *h = malloc((size_t)n * sizeof *h);
    be->download(be, h, d, (size_t)n * sizeof *h);
    return h;
}

/* rel_err_f of two backend buffers of n floats (got against ref), downloaded. */
static double dev_rel_err(rg_backend *be, const float *got, const float *ref, int64_t n) {
    float *g = download(be, got, n), *r = download(be, ref, n);
    double e = rel_err_f(g, r, n);
    free(g), free(r);
    return e;
}

/* n rows of k activations as the GPU's integer GEMV sees them: quantized to aq
 * (Q8_0 or Q8_K) and back with the reference quantizer; a copy for RG_F32. malloc'd. */
static float *act_round_trip(rg_dtype aq, const float *x, int64_t n, int64_t k) {
    float *xa = malloc((size_t)(n * k) * sizeof *xa);
    memcpy(xa, x, (size_t)(n * k) * sizeof *xa);
    if (aq == RG_F32) return xa;
    rg_err err = {0};
    void *blocks = malloc((size_t)rg_dtype_row_bytes(aq, k));
    for (int64_t tt = 0; tt < n; tt++) {
        rg_quantize_ref(aq, x + tt * k, blocks, k, &err);
        rg_dequantize_ref(aq, blocks, xa + tt * k, k, &err);
    }
    free(blocks);
    return xa;
}

static float round_to(rg_dtype t, float v) {
    if (t == RG_F16) return rg_f16_to_f32(rg_f32_to_f16(v));
    if (t == RG_BF16) return rg_bf16_to_f32(rg_f32_to_bf16(v));
    return v;
}

/* ---- weights: matmul (both paths) and get_rows for each type */

static void test_weight_type(rg_backend *gpu, rg_dtype t) {
    const int64_t k = 512, n_out = 301;
    float *wf = randn(k * n_out, 0.05f);
    size_t row = (size_t)rg_dtype_row_bytes(t, k);
    uint8_t *wq = malloc(row * (size_t)n_out);
    rg_err err = {0};
    for (int64_t r = 0; r < n_out; r++) {
        if (t == RG_F32) memcpy(wq + r * row, wf + r * k, row);
        else if (t == RG_F16)
            for (int64_t i = 0; i < k; i++)
                ((uint16_t *)(wq + r * row))[i] = rg_f32_to_f16(wf[r * k + i]);
        else if (t == RG_BF16)
            for (int64_t i = 0; i < k; i++)
                ((uint16_t *)(wq + r * row))[i] = rg_f32_to_bf16(wf[r * k + i]);
        else if (rg_quantize_ref(t, wf + r * k, wq + r * row, k, &err)) {
            check(err.msg, NAN, 0);
            free(wf), free(wq);
            return;
        }
    }
    /* what the weights are after quantization */
    float *wd = malloc((size_t)(k * n_out) * sizeof *wd);
    for (int64_t r = 0; r < n_out; r++) rg_dequantize_ref(t, wq + r * row, wd + r * k, k, &err);
    rg_weight host = {.type = t, .k = k, .n_out = n_out, .data = wq}, dev;
    char what[640];
    if (gpu->load_weight(gpu, &host, &dev, &err)) {
        snprintf(what, sizeof what, "%s load_weight: %s", rg_dtype_name(t), err.msg);
        check(what, NAN, 0);
        free(wf), free(wq), free(wd);
        return;
    }
    /* resident as f16 when not kept quantized: the reference rounds the same way */
    if (dev.type == RG_F16 && t != RG_F16)
        for (int64_t i = 0; i < k * n_out; i++) wd[i] = round_to(RG_F16, wd[i]);

    /* get_rows */
    int32_t ids[5] = {0, 300, 17, 17, 150};
    float *d_rows = dev_poisoned(gpu, 5 * k);
    gpu->begin_step(gpu, &(rg_step){.n_tok = 0});
    gpu->get_rows(gpu, &dev, ids, 5, d_rows);
    float *rows = download(gpu, d_rows, 5 * k);
    double *rref = malloc((size_t)(5 * k) * sizeof *rref);
    for (int i = 0; i < 5; i++)
        for (int64_t j = 0; j < k; j++) rref[i * k + j] = wd[ids[i] * k + j];
    snprintf(what, sizeof what, "get_rows %s (resident %s)", rg_dtype_name(t), rg_dtype_name(dev.type));
    check(what, rel_err(rows, rref, 5 * k), 1e-6);
    free(rows), free(rref), gpu->free(gpu, d_rows);

    /* matmul: GEMV sizes and cuBLAS sizes, with and without bias */
    const int64_t toks[] = {1, 2, 3, 8, 13, 16, 40};
    for (size_t ti = 0; ti < sizeof toks / sizeof *toks; ti++) {
        int64_t n = toks[ti];
        bool cublas = n > 16, with_bias = ti % 2 == 1;
        float *x = randn(n * k, 1.0f), *bias = randn(n_out, 0.5f);
        rg_dtype xr =
            dev.type == RG_F16 || dev.type == RG_BF16 ? dev.type : (cublas && dev.type != RG_F32 ? RG_BF16 : RG_F32);
        /* the GEMV path quantizes x as the CPU does: Q8_0 for Q8_0/Q4_0/Q4_1, Q8_K for the K-quants */
        rg_dtype aq = cublas ? RG_F32 : dev.type == RG_Q8_0 || dev.type == RG_Q4_0 || dev.type == RG_Q4_1 ? RG_Q8_0
                                        : dev.type == RG_Q4_K || dev.type == RG_Q6_K ? RG_Q8_K : RG_F32;
        float *xa = act_round_trip(aq, x, n, k);
        double *ref = malloc((size_t)(n * n_out) * sizeof *ref);
        for (int64_t tt = 0; tt < n; tt++)
            for (int64_t r = 0; r < n_out; r++) {
                double s = with_bias ? bias[r] : 0;
                for (int64_t i = 0; i < k; i++) {
                    double w = cublas && xr == RG_BF16 && dev.type != RG_BF16 ? round_to(RG_BF16, wd[r * k + i])
                                                                              : wd[r * k + i];
                    s += w * (double)round_to(xr, xa[tt * k + i]);
                }
                ref[tt * n_out + r] = s;
            }
        float *dx = dev_copy(gpu, x, n * k), *db = dev_copy(gpu, bias, n_out), *dy = dev_poisoned(gpu, n * n_out);
        gpu->matmul(gpu, &dev, with_bias ? db : NULL, dx, n, dy);
        float *y = download(gpu, dy, n * n_out);
        /* f32 accumulation in another order: 1e-5; the cuBLAS path on tensor cores: 1e-4 */
        snprintf(what, sizeof what, "matmul %s n_tok %lld%s (%s)", rg_dtype_name(t), (long long)n,
                 with_bias ? " +bias" : "", cublas ? "cuBLAS" : "GEMV");
        check(what, rel_err(y, ref, n * n_out), cublas ? 1e-4 : 1e-5);
        free(x), free(xa), free(bias), free(ref), free(y);
        gpu->free(gpu, dx), gpu->free(gpu, db), gpu->free(gpu, dy);
    }
    gpu->unload_weight(gpu, &dev);
    free(wf), free(wq), free(wd);
}

/* ---- elementwise and row ops: GPU vs the CPU backend */

static void test_rows_ops(rg_backend *gpu, rg_backend *cpu) {
    const int64_t n_tok = 7, d = 576, n_head = 9, hd = 64;
    int32_t pos[7] = {0, 1, 2, 100, 4095, 17, 33};
    /* rmsnorm */
    float *x = randn(n_tok * d, 2.0f), *w = randn(d, 1.0f);
    float *ref = malloc((size_t)(n_tok * d) * sizeof *ref);
    cpu->rmsnorm(cpu, x, w, d, n_tok, 1e-5f, ref);
    float *dx = dev_copy(gpu, x, n_tok * d), *dw = dev_copy(gpu, w, d), *dy = dev_poisoned(gpu, n_tok * d);
    gpu->rmsnorm(gpu, dx, dw, d, n_tok, 1e-5f, dy);
    float *y = download(gpu, dy, n_tok * d);
    check("rmsnorm 7 x 576", rel_err_f(y, ref, n_tok * d), 1e-6);
    free(y);
    /* swiglu, add */
    float *u = randn(n_tok * d, 2.0f), *du = dev_copy(gpu, u, n_tok * d);
    cpu->swiglu(cpu, x, u, n_tok * d, ref);
    gpu->swiglu(gpu, dx, du, n_tok * d, dy);
    y = download(gpu, dy, n_tok * d);
    check("swiglu 4032", rel_err_f(y, ref, n_tok * d), 1e-6);
    free(y);
    memcpy(ref, x, (size_t)(n_tok * d) * sizeof *ref);
    cpu->add(cpu, ref, u, n_tok * d);
    gpu->add(gpu, dx, du, n_tok * d);
    y = download(gpu, dx, n_tok * d);
    check("add 4032", rel_err_f(y, ref, n_tok * d), 0);
    free(y);
    gpu->free(gpu, dx), gpu->free(gpu, dw), gpu->free(gpu, dy), gpu->free(gpu, du);
    free(x), free(w), free(u), free(ref);

    /* rope: normal and neox, with and without frequency factors, partial rotation */
    for (int variant = 0; variant < 4; variant++) {
        float *q = randn(n_tok * n_head * hd, 1.0f), *ff = malloc(hd / 2 * sizeof *ff);
        for (int i = 0; i < hd / 2; i++) ff[i] = 1.0f + (float)i / 8;
        float *dff = dev_copy(gpu, ff, hd / 2);
        rg_rope_params p = {.n_rot = variant == 3 ? hd / 2 : hd, .freq_base = 500000.0f, .freq_scale = 0.5f,
                            .neox = variant & 1};
        rg_step st = {.n_tok = n_tok, .pos = pos};
        cpu->begin_step(cpu, &st);
        gpu->begin_step(gpu, &st);
        float *dq = dev_copy(gpu, q, n_tok * n_head * hd);
        if (variant == 2) p.freq_factors = ff;
        cpu->rope(cpu, q, n_head, hd, &p);
        if (variant == 2) p.freq_factors = dff;
        gpu->rope(gpu, dq, n_head, hd, &p);
        y = download(gpu, dq, n_tok * n_head * hd);
        char what[64];
        snprintf(what, sizeof what, "rope %s%s%s", variant & 1 ? "neox" : "normal", variant == 2 ? " freq_factors" : "",
                 variant == 3 ? " n_rot = head_dim/2" : "");
        check(what, rel_err_f(y, q, n_tok * n_head * hd), 1e-5);
        free(y), free(q), free(ff);
        gpu->free(gpu, dq), gpu->free(gpu, dff);
    }
    /* sinusoidal positions */
    x = randn(n_tok * d, 1.0f);
    dx = dev_copy(gpu, x, n_tok * d);
    cpu->add_sinusoidal(cpu, x, d);
    gpu->add_sinusoidal(gpu, dx, d);
    y = download(gpu, dx, n_tok * d);
    check("add_sinusoidal", rel_err_f(y, x, n_tok * d), 1e-6);
    free(y), free(x), gpu->free(gpu, dx);
}

/* The larger error; NaN (an unwritten output) sticks once seen. */
static double worse(double worst, double e) { return isnan(worst) || isnan(e) ? NAN : e > worst ? e : worst; }

/* Attention tolerance (global relative error) for a step of n tokens: the
 * split-KV kernel computes in f32 like the CPU (1e-5); steps of more than
 * RG_CUDA_GRAPHS (16) tokens over a 16-bit KV cache with head_dim 64 or 128 go
 * to the tensor-core prefill kernel, which rounds q and the probabilities to the
 * cache's type as FlashAttention does (a 2^-9 (bf16) or 2^-12 (f16) relative
 * rounding per element; measured 2.2e-3 / 2.9e-4 on these tests: ~5x headroom). */
static double attn_tol(int64_t n_tok, rg_dtype kv_type, int64_t hd) {
    bool tc = n_tok > 16 && kv_type != RG_F32 && (hd == 64 || hd == 128);
    return !tc ? 1e-5 : kv_type == RG_BF16 ? 1e-2 : 2e-3;
}

/* ---- fused ops (backend.h): each against the unfused ops it replaces */

/* a random weight of type t made resident on gpu */
static bool random_weight(rg_backend *gpu, rg_dtype t, int64_t k, int64_t n_out, rg_weight *dev, void **host_data) {
    float *wf = randn(k * n_out, 0.05f);
    size_t row = (size_t)rg_dtype_row_bytes(t, k);
    uint8_t *wq = malloc(row * (size_t)n_out);
    rg_err err = {0};
    bool ok = true;
    for (int64_t r = 0; r < n_out && ok; r++) {
        if (t == RG_BF16)
            for (int64_t i = 0; i < k; i++)
                ((uint16_t *)(wq + r * row))[i] = rg_f32_to_bf16(wf[r * k + i]);
        else if (t == RG_F16)
            for (int64_t i = 0; i < k; i++)
                ((uint16_t *)(wq + r * row))[i] = rg_f32_to_f16(wf[r * k + i]);
        else ok = !rg_quantize_ref(t, wf + r * k, wq + r * row, k, &err);
    }
    rg_weight host = {.type = t, .k = k, .n_out = n_out, .data = wq};
    ok = ok && !gpu->load_weight(gpu, &host, dev, &err);
    if (!ok) check(err.msg, NAN, 0);
    free(wf);
    *host_data = wq;
    return ok;
}

/* The tensor-core GEMV (the default, backend `mma`) against the f32 GEMV
 * (RIDGE_CUDA_GEMV_MMA=0, backend `plain`) on the same bf16 weights and inputs: row lengths of one
 * 32-element chunk, of chunks that leave warps idle or uneven (65), and long
 * ones; row counts that end inside a 16-row block; 2..16 tokens (one and two
 * 8-token tiles). Same products, another summation order: 1e-5. */
static void test_gemv_mma_shapes(rg_backend *mma, rg_backend *plain) {
    const int64_t shapes[][2] = {{32, 16}, {2080, 301}, {4096, 40}, {512, 1000}};
    const int64_t toks[] = {2, 7, 9, 16};
    char what[160];
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        const int64_t k = shapes[si][0], n_out = shapes[si][1];
        rg_weight wm, wp;
        void *hm = NULL, *hp = NULL;
        uint64_t keep = rng;
        if (!random_weight(mma, RG_BF16, k, n_out, &wm, &hm)) return;
        rng = keep; /* the same weights for the plain backend */
        if (!random_weight(plain, RG_BF16, k, n_out, &wp, &hp)) return;
        double worst = 0;
        for (size_t ti = 0; ti < sizeof toks / sizeof *toks; ti++) {
            const int64_t n = toks[ti];
            float *x = randn(n * k, 1.0f);
            float *xm = dev_copy(mma, x, n * k), *xp = dev_copy(plain, x, n * k);
            float *ym = dev_poisoned(mma, n * n_out), *yp = dev_poisoned(plain, n * n_out);
            mma->matmul(mma, &wm, NULL, xm, n, ym);
            plain->matmul(plain, &wp, NULL, xp, n, yp);
            float *a = download(mma, ym, n * n_out), *b = download(plain, yp, n * n_out);
            worst = worse(worst, rel_err_f(a, b, n * n_out));
            free(a), free(b), free(x);
            mma->free(mma, xm), mma->free(mma, ym), plain->free(plain, xp), plain->free(plain, yp);
        }
        snprintf(what, sizeof what, "tensor-core GEMV bf16 %lld x %lld, 2..16 tokens, vs f32 GEMV", (long long)k,
                 (long long)n_out);
        check(what, worst, 1e-5);
        mma->unload_weight(mma, &wm), plain->unload_weight(plain, &wp), free(hm), free(hp);
    }
}

/* The pool of the tests that use none of it (the matmul-family ones): one layer, 4 blocks. */
static const rg_kv_config small_pool = {
    .n_layer = 1, .n_head_kv = 1, .head_dim = 64, .block_size = 16, .n_blocks = 4, .dtype = RG_F32};

/* Set (or, with set false, unset) the environment variables of "A=1 B=2". */
static void set_levers(const char *spec, bool set) {
    char buf[160];
    snprintf(buf, sizeof buf, "%s", spec);
    for (char *save = NULL, *kv = strtok_r(buf, " ", &save); kv; kv = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq) continue;
        *eq = 0;
        if (set) setenv(kv, eq + 1, 1);
        else unsetenv(kv);
    }
}

/* A CUDA backend created with the levers `levers` set ("A=1 B=0", NULL: none) and
 * reserved for lim over a pool of kc (NULL: small_pool); false (reported) on failure. */
static bool make_gpu(const char *levers, const rg_backend_limits *lim, const rg_kv_config *kc, rg_backend **gpu,
                     rg_kv_pool **pool) {
    rg_err err = {0};
    if (levers) set_levers(levers, true);
    rg_status st = rg_backend_cuda_create(0, gpu, &err);
    if (levers) set_levers(levers, false);
    if (st || rg_kv_pool_create(kc ? kc : &small_pool, pool, &err) || (*gpu)->reserve(*gpu, lim, *pool, &err)) {
        check(err.msg, NAN, 0);
        return false;
    }
    return true;
}

/* make_gpu's backend and pool released, after a last check of the backend's status. */
static void drop_gpu(rg_backend *gpu, rg_kv_pool *pool) {
    rg_err err = {0};
    if (gpu->sync(gpu, &err)) check(err.msg, NAN, 0);
    gpu->destroy(gpu);
    rg_kv_pool_free(pool);
}

/* rmsnorm_prepare (the default, RIDGE_CUDA_NORM_QUANT=0 off: rmsnorm and the int8 activations in
 * one kernel) then the quantized GEMVs on its output, against rmsnorm then the
 * same GEMVs quantizing for themselves: the normalized rows and every product
 * bit for bit (the same scale, values and quantization rules), for QKV
 * (matmul_multi) and gate/up (matmul_swiglu), 1..16 tokens. Then a plain rmsnorm
 * into the same buffer must drop what was prepared (the next GEMV re-quantizes). */
static void test_norm_quant(rg_dtype t) {
    char what[200];
    rg_kv_pool *pool;
    rg_backend *gpu;
    const int64_t k = 2048, n_outs[3] = {300, 64, 64}, n_ff = 200;
    rg_backend_limits lim = {.max_tokens = 16, .k_max = k, .n_out_max = 512, .n_head = 1, .n_head_kv = 1,
                             .head_dim = 64, .max_ctx = 64};
    if (!make_gpu(NULL, &lim, NULL, &gpu, &pool)) return;
    rg_weight w[5];
    void *hw[5] = {0};
    const int64_t outs[5] = {n_outs[0], n_outs[1], n_outs[2], n_ff, n_ff};
    for (int i = 0; i < 5; i++)
        if (!random_weight(gpu, t, k, outs[i], &w[i], &hw[i])) return;
    const rg_weight *const qkv[3] = {&w[0], &w[1], &w[2]};
    float *g = randn(k, 0.3f);
    for (int64_t i = 0; i < k; i++) g[i] += 1.0f;
    float *dg = dev_copy(gpu, g, k);
    double worst_x = 0, worst_y = 0, worst_inv = 0;
    int compared = 0;
    bool handled = true;
    const int64_t toks[] = {1, 3, 8, 16};
    for (size_t ti = 0; ti < sizeof toks / sizeof *toks; ti++) {
        const int64_t n = toks[ti];
        float *x = randn(n * k, 2.0f), *x2 = randn(n * k, 1.0f);
        float *dx = dev_copy(gpu, x, n * k), *dx2 = dev_copy(gpu, x2, n * k);
        float *xb_ref = dev_poisoned(gpu, n * k), *xb = dev_poisoned(gpu, n * k);
        float *yr[4], *yg[4];
        for (int i = 0; i < 4; i++) {
            const int64_t no = i < 3 ? outs[i] : n_ff;
            yr[i] = dev_poisoned(gpu, n * no), yg[i] = dev_poisoned(gpu, n * no);
        }
        /* reference: rmsnorm, then the GEMVs quantize for themselves */
        gpu->rmsnorm(gpu, dx, dg, k, n, 1e-5f, xb_ref);
        gpu->matmul_multi(gpu, 3, qkv, NULL, xb_ref, n, yr);
        gpu->matmul_swiglu(gpu, &w[3], &w[4], xb_ref, n, yr[3], NULL);
        /* prepared: QKV consumes the prepared activations; gate/up after a second prepare */
        handled = handled && gpu->rmsnorm_prepare(gpu, dx, dg, k, n, 1e-5f, xb, &w[0]);
        gpu->matmul_multi(gpu, 3, qkv, NULL, xb, n, yg);
        handled = handled && gpu->rmsnorm_prepare(gpu, dx, dg, k, n, 1e-5f, xb, &w[3]);
        gpu->matmul_swiglu(gpu, &w[3], &w[4], xb, n, yg[3], NULL);
        worst_x = worse(worst_x, dev_rel_err(gpu, xb, xb_ref, n * k));
        for (int i = 0; i < 4; i++)
            worst_y = worse(worst_y, dev_rel_err(gpu, yg[i], yr[i], n * (i < 3 ? outs[i] : n_ff)));
        /* invalidation: prepare from x, then a plain rmsnorm of x2 into the same buffer */
        gpu->rmsnorm(gpu, dx2, dg, k, n, 1e-5f, xb_ref);
        gpu->matmul_multi(gpu, 3, qkv, NULL, xb_ref, n, yr);
        handled = handled && gpu->rmsnorm_prepare(gpu, dx, dg, k, n, 1e-5f, xb, &w[0]);
        gpu->rmsnorm(gpu, dx2, dg, k, n, 1e-5f, xb);
        gpu->matmul_multi(gpu, 3, qkv, NULL, xb, n, yg);
        for (int i = 0; i < 3; i++) worst_inv = worse(worst_inv, dev_rel_err(gpu, yg[i], yr[i], n * outs[i]));
        compared++;
        for (int i = 0; i < 4; i++) gpu->free(gpu, yr[i]), gpu->free(gpu, yg[i]);
        gpu->free(gpu, dx), gpu->free(gpu, dx2), gpu->free(gpu, xb_ref), gpu->free(gpu, xb);
        free(x), free(x2);
    }
    const char *name = rg_dtype_name(t);
    snprintf(what, sizeof what, "rmsnorm_prepare %s: taken for 1..16 tokens", name);
    check(what, handled ? 0 : NAN, 0);
    snprintf(what, sizeof what, "rmsnorm_prepare %s: normalized rows vs rmsnorm", name);
    check(what, compared ? worst_x : NAN, 0);
    snprintf(what, sizeof what, "rmsnorm_prepare %s: QKV and gate/up products vs self-quantizing GEMVs", name);
    check(what, compared ? worst_y : NAN, 0);
    snprintf(what, sizeof what, "rmsnorm_prepare %s: a later rmsnorm into the buffer drops the prepared form", name);
    check(what, compared ? worst_inv : NAN, 0);
    for (int i = 0; i < 5; i++) gpu->unload_weight(gpu, &w[i]), free(hw[i]);
    gpu->free(gpu, dg), free(g);
    drop_gpu(gpu, pool);
}

/* The cuBLAS input forms written by the ops that produce a prefill product's
 * input (rmsnorm_prepare, swiglu_into; attention's `next` is checked in
 * prefill_step), in place of the conversion pass: the products bit for bit
 * against the same ops unprepared (the same values rounded the same way), and
 * the normalized rows rmsnorm_prepare writes too. A plain op into the prepared
 * buffer drops the form, and a product consumes it (a second product on the
 * same input converts again). 17..40 tokens: the cuBLAS path. */
static void test_prefill_inputs(rg_dtype t) {
    char what[200];
    rg_kv_pool *pool;
    rg_backend *gpu;
    const int64_t k = 512, n_ff = 768, n_out = 320;
    rg_backend_limits lim = {.max_tokens = 64, .k_max = n_ff, .n_out_max = n_ff, .n_head = 1, .n_head_kv = 1,
                             .head_dim = 64, .max_ctx = 64};
    if (!make_gpu(NULL, &lim, NULL, &gpu, &pool)) return;
    rg_weight wq, wd; /* a k -> n_out product after the norm, an n_ff -> k one after SwiGLU */
    void *hq = NULL, *hd = NULL;
    if (!random_weight(gpu, t, k, n_out, &wq, &hq) || !random_weight(gpu, t, n_ff, k, &wd, &hd)) return;
    float *g = randn(k, 0.3f);
    for (int64_t i = 0; i < k; i++) g[i] += 1.0f;
    float *dg = dev_copy(gpu, g, k);
    double worst_x = 0, worst_norm = 0, worst_again = 0, worst_inv = 0, worst_swiglu = 0;
    bool handled = true;
    const int64_t toks[] = {17, 40};
    for (size_t ti = 0; ti < sizeof toks / sizeof *toks; ti++) {
        const int64_t n = toks[ti];
        float *x = randn(n * k, 2.0f), *x2 = randn(n * k, 1.0f);
        float *dx = dev_copy(gpu, x, n * k), *dx2 = dev_copy(gpu, x2, n * k);
        float *xb_ref = dev_poisoned(gpu, n * k), *xb = dev_poisoned(gpu, n * k);
        float *yr = dev_poisoned(gpu, n * n_out), *yp = dev_poisoned(gpu, n * n_out),
              *y2 = dev_poisoned(gpu, n * n_out);
        /* rmsnorm_prepare then the product, against rmsnorm then the product */
        gpu->rmsnorm(gpu, dx, dg, k, n, 1e-5f, xb_ref);
        gpu->matmul(gpu, &wq, NULL, xb_ref, n, yr);
        handled = handled && gpu->rmsnorm_prepare(gpu, dx, dg, k, n, 1e-5f, xb, &wq);
        gpu->matmul(gpu, &wq, NULL, xb, n, yp);
        gpu->matmul(gpu, &wq, NULL, xb, n, y2); /* the form was consumed: converts xb again */
        worst_norm = worse(worst_norm, dev_rel_err(gpu, xb, xb_ref, n * k));
        worst_x = worse(worst_x, dev_rel_err(gpu, yp, yr, n * n_out));
        worst_again = worse(worst_again, dev_rel_err(gpu, y2, yr, n * n_out));
        /* invalidation: prepared from x, then a plain rmsnorm of x2 into the same buffer */
        gpu->rmsnorm(gpu, dx2, dg, k, n, 1e-5f, xb_ref);
        gpu->matmul(gpu, &wq, NULL, xb_ref, n, yr);
        handled = handled && gpu->rmsnorm_prepare(gpu, dx, dg, k, n, 1e-5f, xb, &wq);
        gpu->rmsnorm(gpu, dx2, dg, k, n, 1e-5f, xb);
        gpu->matmul(gpu, &wq, NULL, xb, n, yp);
        worst_inv = worse(worst_inv, dev_rel_err(gpu, yp, yr, n * n_out));
        /* swiglu_into then the residual product (matmul_add), against swiglu then matmul_add */
        float *hg = randn(n * n_ff, 2.0f), *hu = randn(n * n_ff, 1.0f), *res = randn(n * k, 1.0f);
        float *dgate = dev_copy(gpu, hg, n * n_ff), *dup = dev_copy(gpu, hu, n * n_ff);
        float *s_ref = dev_poisoned(gpu, n * n_ff), *s_in = dev_poisoned(gpu, n * n_ff);
        float *res_ref = dev_copy(gpu, res, n * k), *res_p = dev_copy(gpu, res, n * k);
        gpu->swiglu(gpu, dgate, dup, n * n_ff, s_ref);
        gpu->matmul_add(gpu, &wd, NULL, s_ref, n, res_ref);
        handled = handled && gpu->swiglu_into(gpu, dgate, dup, n * n_ff, s_in, &wd);
        gpu->matmul_add(gpu, &wd, NULL, s_in, n, res_p);
        worst_swiglu = worse(worst_swiglu, dev_rel_err(gpu, res_p, res_ref, n * k));
        free(hg), free(hu), free(res);
        gpu->free(gpu, dgate), gpu->free(gpu, dup), gpu->free(gpu, s_ref), gpu->free(gpu, s_in);
        gpu->free(gpu, res_ref), gpu->free(gpu, res_p);
        gpu->free(gpu, dx), gpu->free(gpu, dx2), gpu->free(gpu, xb_ref), gpu->free(gpu, xb);
        gpu->free(gpu, yr), gpu->free(gpu, yp), gpu->free(gpu, y2);
        free(x), free(x2);
    }
    /* decode-sized steps are not the cuBLAS path: swiglu_into declines */
    handled = handled && !gpu->swiglu_into(gpu, dg, dg, 16 * n_ff, NULL, &wd);
    const char *name = rg_dtype_name(t);
    snprintf(what, sizeof what, "prefill inputs %s: taken for 17..40 tokens, declined for 16", name);
    check(what, handled ? 0 : NAN, 0);
    snprintf(what, sizeof what, "prefill inputs %s: rmsnorm_prepare's rows vs rmsnorm", name);
    check(what, worst_norm, 0);
    snprintf(what, sizeof what, "prefill inputs %s: product after rmsnorm_prepare vs after rmsnorm", name);
    check(what, worst_x, 0);
    snprintf(what, sizeof what, "prefill inputs %s: a second product on the same input (converted again)", name);
    check(what, worst_again, 0);
    snprintf(what, sizeof what, "prefill inputs %s: a later rmsnorm into the buffer drops the prepared form", name);
    check(what, worst_inv, 0);
    snprintf(what, sizeof what, "prefill inputs %s: swiglu_into + matmul_add vs swiglu + matmul_add", name);
    check(what, worst_swiglu, 0);
    gpu->unload_weight(gpu, &wq), gpu->unload_weight(gpu, &wd), free(hq), free(hd);
    gpu->free(gpu, dg), free(g);
    drop_gpu(gpu, pool);
}

/* matmul_swiglu at prefill sizes with bf16 weights and a bf16 down product
 * (matmul.cu's prefill_swiglu16, RIDGE_CUDA_PREFILL_GU16): gate and up kept in
 * bf16, SwiGLU written only as the down product's input. Against the unfused
 * GPU ops (gate/up in f32, swiglu, down): the down product's outputs within
 * 1e-2 of their scale — the extra bf16 rounding of gate and up (2^-9 relative an
 * element) averaged over n_ff terms lands near 2e-3; a wrong element or row
 * would be far over. With the lever off, the op declines at these sizes. */
static void test_prefill_swiglu16(void) {
    char what[200];
    rg_kv_pool *pool, *pool_off;
    rg_backend *gpu, *off;
    const int64_t k = 512, n_ff = 768;
    rg_backend_limits lim = {.max_tokens = 160, .k_max = n_ff, .n_out_max = n_ff, .n_head = 1, .n_head_kv = 1,
                             .head_dim = 64, .max_ctx = 64};
    if (!make_gpu(NULL, &lim, NULL, &gpu, &pool) ||
        !make_gpu("RIDGE_CUDA_PREFILL_GU16=0", &lim, NULL, &off, &pool_off))
        return;
    rg_err err = {0};
    rg_weight wg, wu, wd, wg2;
    void *hg = NULL, *hu = NULL, *hd = NULL;
    if (!random_weight(gpu, RG_BF16, k, n_ff, &wg, &hg) || !random_weight(gpu, RG_BF16, k, n_ff, &wu, &hu) ||
        !random_weight(gpu, RG_BF16, n_ff, k, &wd, &hd))
        return;
    rg_weight host_g = {.type = RG_BF16, .k = k, .n_out = n_ff, .data = hg};
    if (off->load_weight(off, &host_g, &wg2, &err)) check(err.msg, NAN, 0);
    double worst = 0;
    bool handled = true, held = true;
    const int64_t toks[] = {17, 64, 150};
    for (size_t ti = 0; ti < sizeof toks / sizeof *toks; ti++) {
        const int64_t n = toks[ti];
        float *x = randn(n * k, 1.0f);
        float *dx = dev_copy(gpu, x, n * k), *s1 = dev_poisoned(gpu, n * n_ff), *g = dev_poisoned(gpu, n * n_ff);
        float *u = dev_poisoned(gpu, n * n_ff), *y1 = dev_poisoned(gpu, n * k), *y2 = dev_poisoned(gpu, n * k);
        handled = handled && gpu->matmul_swiglu(gpu, &wg, &wu, dx, n, s1, &wd);
        held = held && gpu->holds_input_form(gpu, s1, &wd, n);
        gpu->matmul(gpu, &wd, NULL, s1, n, y1);
        /* unfused: f32 gate/up, swiglu, down */
        gpu->matmul_multi(gpu, 2, (const rg_weight *const[]){&wg, &wu}, NULL, dx, n, (float *const[]){g, u});
        gpu->swiglu(gpu, g, u, n * n_ff, g);
        gpu->matmul(gpu, &wd, NULL, g, n, y2);
        worst = worse(worst, dev_rel_err(gpu, y1, y2, n * k));
        free(x);
        gpu->free(gpu, dx), gpu->free(gpu, s1), gpu->free(gpu, g), gpu->free(gpu, u);
        gpu->free(gpu, y1), gpu->free(gpu, y2);
    }
    /* the lever off: declined (forward.c then runs the unfused ops) */
    float *dx = dev_poisoned(off, 64 * k), *s = dev_poisoned(off, 64 * n_ff);
    const bool declined = !off->matmul_swiglu(off, &wg2, &wg2, dx, 64, s, &wd);
    off->free(off, dx), off->free(off, s);
    check("matmul_swiglu, prefill bf16: handled, the down product's form held", handled && held ? 0 : NAN, 0);
    snprintf(what, sizeof what, "matmul_swiglu, prefill bf16 (gate/up in bf16): down product vs unfused f32 path");
    check(what, worst, 1e-2);
    check("matmul_swiglu, prefill bf16, RIDGE_CUDA_PREFILL_GU16=0: declined", declined ? 0 : NAN, 0);
    gpu->unload_weight(gpu, &wg), gpu->unload_weight(gpu, &wu), gpu->unload_weight(gpu, &wd);
    off->unload_weight(off, &wg2);
    free(hg), free(hu), free(hd);
    drop_gpu(off, pool_off);
    drop_gpu(gpu, pool);
}

/* The GEMV of quantized weights quantizes x to int8 on the GPU (Q8_0 per 32 for
 * Q8_0/Q4_0 weights, Q8_K per 256 for Q4_K/Q6_K) and must round exactly as the
 * CPU reference quantizer: one activation a step off moves its token's outputs
 * by ~1e-3 relative, far over the tolerance. Rows built to hit the rounding
 * rules: all-zero blocks; blocks whose scale is exact (amax 127 -> d = 1, and
 * Q8_K's iscale = 1 from a first max of -127; amax 63.5 -> d = 0.5 / iscale -2)
 * holding values at exact .5 ties (Q8_0 rounds them away from zero, Q8_K to
 * even); tiny values (f16-subnormal Q8_0 scales); then random rows. k = 8192:
 * two 32-element units per thread of a block. */
static void test_gemv_act_rounding(rg_backend *gpu, rg_dtype t) {
    const int64_t k = 8192, n_out = 37;
    const rg_dtype aq = t == RG_Q8_0 || t == RG_Q4_0 || t == RG_Q4_1 ? RG_Q8_0 : RG_Q8_K;
    rg_weight dev;
    void *hw = NULL;
    if (!random_weight(gpu, t, k, n_out, &dev, &hw)) {
        free(hw);
        return;
    }
    rg_err err = {0};
    size_t row = (size_t)rg_dtype_row_bytes(t, k);
    float *wd = malloc((size_t)(k * n_out) * sizeof *wd);
    for (int64_t r = 0; r < n_out; r++) rg_dequantize_ref(t, (uint8_t *)hw + r * row, wd + r * k, k, &err);
    const int64_t toks[] = {3, 9};
    for (size_t ti = 0; ti < sizeof toks / sizeof *toks; ti++) {
        int64_t n = toks[ti];
        float *x = randn(n * k, 1.0f);
        for (int64_t i = 0; i < 256; i++) x[i] = 0; /* token 0: a zero super-block */
        for (int64_t i = 256; i < 1024; i++) x[i] = (float)(i % 97 - 48) + 0.5f;
        x[256] = -127, x[300] = 127;
        for (int64_t b = 288; b < 1024; b += 32) x[b] = (b / 32) % 2 ? 127.0f : -127.0f;
        for (int64_t i = 0; i < 1024; i++) x[k + i] = ((float)(i % 101 - 50) + 0.5f) / 2; /* token 1 */
        for (int64_t b = 0; b < 1024; b += 32) x[k + b] = 63.5f;
        for (int64_t i = 0; i < k; i++) x[2 * k + i] *= 1e-3f; /* token 2 */
        float *xa = act_round_trip(aq, x, n, k);
        double *ref = malloc((size_t)(n * n_out) * sizeof *ref);
        for (int64_t tt = 0; tt < n; tt++)
            for (int64_t r = 0; r < n_out; r++) {
                double s = 0;
                for (int64_t i = 0; i < k; i++) s += (double)wd[r * k + i] * xa[tt * k + i];
                ref[tt * n_out + r] = s;
            }
        float *dx = dev_copy(gpu, x, n * k), *dy = dev_poisoned(gpu, n * n_out);
        gpu->matmul(gpu, &dev, NULL, dx, n, dy);
        float *y = download(gpu, dy, n * n_out);
        /* per token: the tiny token's error would vanish in a global norm */
        double worst = 0;
        for (int64_t tt = 0; tt < n; tt++) {
            double e = rel_err(y + tt * n_out, ref + tt * n_out, n_out);
            if (isnan(e) || e > worst) worst = e; /* a NaN stays */
        }
        char what[160];
        snprintf(what, sizeof what, "GEMV %s n_tok %lld, x rounded as the CPU (%s), worst token", rg_dtype_name(t),
                 (long long)n, rg_dtype_name(aq));
        check(what, worst, 1e-5);
        free(x), free(xa), free(ref), free(y);
        gpu->free(gpu, dx), gpu->free(gpu, dy);
    }
    gpu->unload_weight(gpu, &dev);
    free(hw), free(wd);
}

/* The GEMV's thread mappings (matmul_q.cu: G = 2 for rows of <= 64 units, U = 2
 * for Q4_0 rows of >= 256 units at one token, the plain one otherwise) in every
 * mode: STORE (matmul, and matmul_multi over three matrices of different n_out
 * as QKV), ADD (matmul_add) and SWIGLU (matmul_swiglu), n_tok 1, 2, 5, 8, 16.
 * Each result against the double-precision reference with x rounded as the
 * CPU does (1e-5, as test_weight_type), and against `plain`, a backend with the
 * plain mapping only (RIDGE_CUDA_GEMV_Q_SHORT=0; `gpu` has the default short-row
 * one and RIDGE_CUDA_GEMV_Q_U2=1): every mapping sums the
 * same units of a row in the same order and adds only zeros for the rows a
 * thread does not take, so the outputs must be equal (tolerance 0). n_q >=
 * 32 * n_sm (5121 here: 132 SMs) gives blocks of 4 rows (gemv_rows_per_block). */
static void test_gemv_paths(rg_backend *gpu, rg_backend *plain, rg_dtype t, int64_t k, int64_t n_q) {
    enum { NW = 5 }; /* q, k, v, gate, up */
    const int64_t n_ff = 203, n_outs[NW] = {n_q, 40, 24, n_ff, n_ff};
    const rg_dtype aq = t == RG_Q8_0 || t == RG_Q4_0 || t == RG_Q4_1 ? RG_Q8_0 : RG_Q8_K;
    rg_err err = {0};
    rg_weight dw[2][NW] = {0};
    float *wd[NW] = {0};
    uint8_t *wq[NW] = {0}; /* a backend may keep pointing at the host copy until unload */
    bool ok = true;
    for (int j = 0; j < NW && ok; j++) {
        const int64_t n = n_outs[j];
        float *wf = randn(k * n, 0.05f);
        size_t row = (size_t)rg_dtype_row_bytes(t, k);
        wq[j] = malloc(row * (size_t)n);
        wd[j] = malloc((size_t)(k * n) * sizeof *wd[j]);
        for (int64_t r = 0; r < n && ok; r++)
            ok = !rg_quantize_ref(t, wf + r * k, wq[j] + r * row, k, &err) &&
                 !rg_dequantize_ref(t, wq[j] + r * row, wd[j] + r * k, k, &err);
        rg_weight host = {.type = t, .k = k, .n_out = n, .data = wq[j]};
        ok = ok && !gpu->load_weight(gpu, &host, &dw[0][j], &err) && !plain->load_weight(plain, &host, &dw[1][j], &err);
        free(wf);
    }
    const int64_t toks[] = {1, 2, 5, 8, 16};
    const char *modes[] = {"QKV", "STORE", "ADD", "SWIGLU"};
    double worst = 0;
    int64_t n_diff = 0;
    const char *worst_mode = "";
    int64_t worst_tok = 0;
    if (!ok) check(err.msg, NAN, 0);
    for (size_t ti = 0; ok && ti < sizeof toks / sizeof *toks; ti++) {
        const int64_t n = toks[ti];
        float *x = randn(n * k, 1.0f), *bias = randn(n_q, 0.5f), *resid = randn(n * n_q, 1.0f);
        float *xa = act_round_trip(aq, x, n, k);
        double *dot[NW];
        for (int j = 0; j < NW; j++) {
            dot[j] = malloc((size_t)(n * n_outs[j]) * sizeof *dot[j]);
            for (int64_t tt = 0; tt < n; tt++)
                for (int64_t r = 0; r < n_outs[j]; r++) {
                    double s = 0;
                    for (int64_t i = 0; i < k; i++) s += (double)wd[j][r * k + i] * xa[tt * k + i];
                    dot[j][tt * n_outs[j] + r] = s;
                }
        }
        /* outputs: q, k, v of the QKV launch, matmul, matmul_add, matmul_swiglu */
        const int64_t n_y[6] = {n * n_q, n * n_outs[1], n * n_outs[2], n * n_q, n * n_q, n * n_ff};
        double *ref[6];
        for (int o = 0; o < 6; o++) ref[o] = malloc((size_t)n_y[o] * sizeof *ref[o]);
        for (int64_t i = 0; i < n * n_q; i++) {
            ref[0][i] = ref[3][i] = dot[0][i] + bias[i % n_q];
            ref[4][i] = resid[i] + ref[0][i];
        }
        for (int64_t i = 0; i < n_y[1]; i++) ref[1][i] = dot[1][i];
        for (int64_t i = 0; i < n_y[2]; i++) ref[2][i] = dot[2][i];
        for (int64_t i = 0; i < n_y[5]; i++) ref[5][i] = dot[3][i] / (1 + exp(-dot[3][i])) * dot[4][i];
        float *got[2][6];
        for (int b = 0; b < 2; b++) {
            rg_backend *be = b ? plain : gpu;
            rg_weight *w = dw[b];
            float *dx = dev_copy(be, x, n * k), *db = dev_copy(be, bias, n_q), *dy[6];
            for (int o = 0; o < 6; o++) dy[o] = o == 4 ? dev_copy(be, resid, n * n_q) : dev_poisoned(be, n_y[o]);
            const float *biases[3] = {db, NULL, NULL};
            bool handled = be->matmul_multi(be, 3, (const rg_weight *const[]){&w[0], &w[1], &w[2]}, biases, dx, n, dy);
            be->matmul(be, &w[0], db, dx, n, dy[3]);
            handled = be->matmul_add(be, &w[0], db, dx, n, dy[4]) && handled;
            handled = be->matmul_swiglu(be, &w[3], &w[4], dx, n, dy[5], NULL) && handled;
            if (!handled) check("GEMV paths: a fused matmul declined", NAN, 0);
            for (int o = 0; o < 6; o++) got[b][o] = download(be, dy[o], n_y[o]), be->free(be, dy[o]);
            be->free(be, dx), be->free(be, db);
        }
        for (int o = 0; o < 6; o++) {
            double e = rel_err(got[0][o], ref[o], n_y[o]);
            if (!isnan(worst) && (isnan(e) || e > worst))
                worst = e, worst_mode = modes[o < 3 ? 0 : o - 2], worst_tok = n;
            for (int64_t i = 0; i < n_y[o]; i++) n_diff += !(got[0][o][i] == got[1][o][i]); /* NaN differs */
            free(got[0][o]), free(got[1][o]), free(ref[o]);
        }
        for (int j = 0; j < NW; j++) free(dot[j]);
        free(x), free(xa), free(bias), free(resid);
    }
    char what[200];
    if (!ok) worst = NAN;
    const int64_t units = k / 32;
    const char *map = units <= 64 ? "G=2" : t == RG_Q4_0 && units >= 256 ? "U=2 at 1 token" : "plain";
    snprintf(what, sizeof what, "GEMV %s k %lld (%lld units, %s) n_q %lld, worst of 4 modes x 5 n_tok (%s n_tok %lld)",
             rg_dtype_name(t), (long long)k, (long long)units, map, (long long)n_q, worst_mode, (long long)worst_tok);
    check(what, worst, 1e-5);
    snprintf(what, sizeof what, "GEMV %s k %lld n_q %lld: elements differing from the plain mapping", rg_dtype_name(t),
             (long long)k, (long long)n_q);
    check(what, (double)n_diff, 0);
    for (int j = 0; j < NW; j++) {
        gpu->unload_weight(gpu, &dw[0][j]), plain->unload_weight(plain, &dw[1][j]);
        free(wd[j]), free(wq[j]);
    }
}

static void test_fused_matmuls(rg_backend *gpu, rg_dtype t) {
    const int64_t k = 512, n_q = 301, n_kv = 64, n_ff = 200;
    rg_weight w[5];
    void *hd[5] = {0};
    const int64_t n_outs[5] = {n_q, n_kv, n_kv, n_ff, n_ff};
    for (int i = 0; i < 5; i++)
        if (!random_weight(gpu, t, k, n_outs[i], &w[i], &hd[i])) return;
    const int64_t toks[] = {1, 3, 8, 16, 40};
    char what[160];
    for (size_t ti = 0; ti < sizeof toks / sizeof *toks; ti++) {
        int64_t n = toks[ti];
        float *x = randn(n * k, 1.0f), *b = randn(n_q, 0.5f), *r = randn(n * n_q, 1.0f);
        float *dx = dev_copy(gpu, x, n * k), *db = dev_copy(gpu, b, n_q);
        /* QKV in one launch vs three matmuls (bias on the first) */
        float *ref[3], *got[3];
        const float *bias[3] = {db, NULL, NULL};
        for (int i = 0; i < 3; i++) {
            ref[i] = dev_poisoned(gpu, n * n_outs[i]), got[i] = dev_poisoned(gpu, n * n_outs[i]);
            gpu->matmul(gpu, &w[i], bias[i], dx, n, ref[i]);
        }
        bool handled = gpu->matmul_multi(gpu, 3, (const rg_weight *const[]){&w[0], &w[1], &w[2]}, bias, dx, n, got);
        if (handled) {
            double worst = 0;
            for (int i = 0; i < 3; i++) {
                float *a = download(gpu, ref[i], n * n_outs[i]), *c = download(gpu, got[i], n * n_outs[i]);
                double e = rel_err_f(c, a, n * n_outs[i]);
                worst = worse(worst, e);
                free(a), free(c);
            }
            /* the same kernel arithmetic row by row: equal up to contraction choices */
            snprintf(what, sizeof what, "fused matmul_multi (QKV) %s n_tok %lld", rg_dtype_name(t), (long long)n);
            check(what, worst, 1e-6);
        } else if (n <= 16) {
            snprintf(what, sizeof what, "fused matmul_multi %s n_tok %lld declined", rg_dtype_name(t), (long long)n);
            check(what, NAN, 0);
        }
        /* y += W x + b vs matmul then add */
        float *dr = dev_copy(gpu, r, n * n_q), *dr2 = dev_copy(gpu, r, n * n_q), *dt = dev_poisoned(gpu, n * n_q);
        gpu->matmul(gpu, &w[0], db, dx, n, dt);
        gpu->add(gpu, dr, dt, n * n_q);
        if (gpu->matmul_add(gpu, &w[0], db, dx, n, dr2)) {
            float *a = download(gpu, dr, n * n_q), *c = download(gpu, dr2, n * n_q);
            snprintf(what, sizeof what, "fused matmul_add %s n_tok %lld (%s)", rg_dtype_name(t), (long long)n,
                     n > 16 ? "cuBLAS beta=1" : "GEMV epilogue");
            check(what, rel_err_f(c, a, n * n_q), n > 16 ? 1e-5 : 1e-6);
            free(a), free(c);
        }
        /* silu(Wg x) * (Wu x) vs two matmuls and swiglu */
        float *dg = dev_poisoned(gpu, n * n_ff), *du = dev_poisoned(gpu, n * n_ff), *ds = dev_poisoned(gpu, n * n_ff);
        gpu->matmul(gpu, &w[3], NULL, dx, n, dg);
        gpu->matmul(gpu, &w[4], NULL, dx, n, du);
        gpu->swiglu(gpu, dg, du, n * n_ff, dg);
        if (gpu->matmul_swiglu(gpu, &w[3], &w[4], dx, n, ds, NULL)) {
            float *a = download(gpu, dg, n * n_ff), *c = download(gpu, ds, n * n_ff);
            snprintf(what, sizeof what, "fused matmul_swiglu %s n_tok %lld", rg_dtype_name(t), (long long)n);
            check(what, rel_err_f(c, a, n * n_ff), 1e-6);
            free(a), free(c);
        } else if (n <= 16) {
            snprintf(what, sizeof what, "fused matmul_swiglu %s n_tok %lld declined", rg_dtype_name(t), (long long)n);
            check(what, NAN, 0);
        }
        for (int i = 0; i < 3; i++) gpu->free(gpu, ref[i]), gpu->free(gpu, got[i]);
        gpu->free(gpu, dx), gpu->free(gpu, db), gpu->free(gpu, dr), gpu->free(gpu, dr2), gpu->free(gpu, dt);
        gpu->free(gpu, dg), gpu->free(gpu, du), gpu->free(gpu, ds);
        free(x), free(b), free(r);
    }
    for (int i = 0; i < 5; i++) gpu->unload_weight(gpu, &w[i]), free(hd[i]);
}

/* rope_kv_store on the GPU vs the CPU backend's rope, rope, kv_store; the cache
 * contents are compared through attention over them. */
static void test_fused_rope_kv(rg_dtype kv_type, bool neox, int64_t n_rot) {
    const int64_t n_head = 8, n_head_kv = 2, hd = 64, n_q = n_head * hd, n_kv = n_head_kv * hd;
    char what[160];
    rg_err err = {0};
    rg_kv_config kc = {.n_layer = 1, .n_head_kv = n_head_kv, .head_dim = hd, .block_size = 16, .n_blocks = 240,
                       .dtype = kv_type};
    rg_kv_pool *pool;
    rg_backend *cpu, *gpu;
    rg_threadpool *tp = rg_threadpool_create(0);
    rg_backend_limits lim = {.max_tokens = 2100, .k_max = 64, .n_out_max = 64, .n_head = n_head,
                             .n_head_kv = n_head_kv, .head_dim = hd, .max_ctx = 3600};
    if (rg_kv_pool_create(&kc, &pool, &err) || rg_backend_cpu_create(tp, &cpu, &err) ||
        rg_backend_cuda_create(0, &gpu, &err) || cpu->reserve(cpu, &lim, pool, &err) ||
        gpu->reserve(gpu, &lim, pool, &err)) {
        check(err.msg, NAN, 0);
        return;
    }
    rg_kv_seq s = {0};
    int32_t stray = rg_kv_alloc_block(pool); /* the table is not in pool order */
    rg_rope_params p = {.n_rot = n_rot, .freq_base = 10000.0f, .freq_scale = 1.0f, .neox = neox};
    int64_t done = 0;
    double worst_q = 0, worst_k = 0, worst_o = 0;
    /* a prefill, decode tokens, then prefills long enough that a thread of the
     * kernel walks several heads (1100 tokens: two shares of the 12 heads; 2100:
     * one share) */
    const int64_t steps[] = {40, 3, 1100, 2100};
    for (int step = 0; step < 4; step++) {
        int64_t n = steps[step];
        if (rg_kv_seq_reserve(pool, &s, done + n, &err)) {
            check(err.msg, NAN, 0);
            return;
        }
        static int32_t pos[2100], nctx[2100];
        static const int32_t *tables[2100];
        for (int64_t i = 0; i < n; i++) pos[i] = (int32_t)(done + i), nctx[i] = pos[i] + 1, tables[i] = s.blocks;
        rg_step st = {.n_tok = n, .pos = pos, .tables = tables, .n_ctx = nctx, .ctx_max = (int32_t)(done + n)};
        cpu->begin_step(cpu, &st);
        gpu->begin_step(gpu, &st);
        float *q = randn(n * n_q, 1.0f), *k = randn(n * n_kv, 1.0f), *v = randn(n * n_kv, 1.0f);
        float *dq = dev_copy(gpu, q, n * n_q), *dk = dev_copy(gpu, k, n * n_kv), *dv = dev_copy(gpu, v, n * n_kv);
        cpu->rope(cpu, q, n_head, hd, &p);
        cpu->rope(cpu, k, n_head_kv, hd, &p);
        cpu->kv_store(cpu, 0, k, v);
        if (!gpu->rope_kv_store(gpu, 0, dq, dk, dv, n_head, n_head_kv, hd, &p)) {
            check("fused rope_kv_store declined", NAN, 0);
            return;
        }
        float *gq = download(gpu, dq, n * n_q), *gk = download(gpu, dk, n * n_kv);
        double e = rel_err_f(gq, q, n * n_q);
        worst_q = worse(worst_q, e);
        e = rel_err_f(gk, k, n * n_kv);
        worst_k = worse(worst_k, e);
        float *out_ref = malloc((size_t)(n * n_q) * sizeof *out_ref), *dout = dev_poisoned(gpu, n * n_q);
        rg_backend_attn a = {.layer = 0, .n_head = n_head, .q = q, .out = out_ref, .scale = 0.125f,
                             .kind = RG_ATTN_FLASH};
        cpu->attention(cpu, &a);
        a.q = dq, a.out = dout;
        gpu->attention(gpu, &a);
        float *go = download(gpu, dout, n * n_q);
        e = rel_err_f(go, out_ref, n * n_q) / attn_tol(n, kv_type, hd); /* in units of the tolerance */
        worst_o = worse(worst_o, e);
        free(q), free(k), free(v), free(gq), free(gk), free(go), free(out_ref);
        gpu->free(gpu, dq), gpu->free(gpu, dk), gpu->free(gpu, dv), gpu->free(gpu, dout);
        done += n, s.n_tokens = done;
    }
    const char *name = rg_dtype_name(kv_type);
    snprintf(what, sizeof what, "fused rope_kv_store q (%s, n_rot %lld, kv %s)", neox ? "neox" : "normal",
             (long long)n_rot, name);
    check(what, worst_q, 1e-5);
    snprintf(what, sizeof what, "fused rope_kv_store k (%s, n_rot %lld, kv %s)", neox ? "neox" : "normal",
             (long long)n_rot, name);
    check(what, worst_k, 1e-5);
    /* attention over what was stored, at the attention kernels' tolerances (attn_tol) */
    snprintf(what, sizeof what, "attention over fused-stored K/V (kv %s), error / tolerance", name);
    check(what, worst_o, 1);
    if (gpu->sync(gpu, &err)) check(err.msg, NAN, 0);
    rg_kv_seq_free(pool, &s);
    rg_kv_block_unref(pool, stray);
    gpu->destroy(gpu), cpu->destroy(cpu);
    rg_kv_pool_free(pool);
    rg_threadpool_free(tp);
}

/* qkv_rope_kv_store (the QKV GEMV with RoPE and the K/V store in its epilogue)
 * vs matmul_multi then rope_kv_store, both on the GPU: q, k, v equal up to
 * contraction choices, and attention over the cache each path filled agrees. */
static void test_fused_qkv_rope(rg_dtype wt, rg_dtype kv_type, int64_t n_rot, bool with_bias) {
    const int64_t n_head = 8, n_head_kv = 2, hd = 64, n_q = n_head * hd, n_kv = n_head_kv * hd, k = 512;
    char what[200];
    rg_err err = {0};
    rg_kv_config kc = {.n_layer = 2, .n_head_kv = n_head_kv, .head_dim = hd, .block_size = 16, .n_blocks = 16,
                       .dtype = kv_type};
    rg_kv_pool *pool;
    rg_backend *gpu;
    rg_backend_limits lim = {.max_tokens = 64, .k_max = k, .n_out_max = n_q, .n_head = n_head,
                             .n_head_kv = n_head_kv, .head_dim = hd, .max_ctx = 200};
    if (rg_kv_pool_create(&kc, &pool, &err) || rg_backend_cuda_create(0, &gpu, &err) ||
        gpu->reserve(gpu, &lim, pool, &err)) {
        check(err.msg, NAN, 0);
        return;
    }
    if (!gpu->qkv_rope_kv_store) {
        check("qkv_rope_kv_store not in the op table (RIDGE_CUDA_QKV_ROPE=0?)", NAN, 0);
        return;
    }
    rg_weight w[3];
    void *hw[3] = {0};
    const int64_t n_outs[3] = {n_q, n_kv, n_kv};
    for (int i = 0; i < 3; i++)
        if (!random_weight(gpu, wt, k, n_outs[i], &w[i], &hw[i])) return;
    const rg_weight *const wp[3] = {&w[0], &w[1], &w[2]};
    float *hb[3], *db[3];
    for (int i = 0; i < 3; i++) hb[i] = randn(n_outs[i], 0.5f), db[i] = dev_copy(gpu, hb[i], n_outs[i]);
    const float *bias[3] = {with_bias ? db[0] : NULL, with_bias ? db[1] : NULL, with_bias ? db[2] : NULL};
    float *ff = malloc((size_t)(n_rot / 2) * sizeof *ff);
    for (int64_t i = 0; i < n_rot / 2; i++) ff[i] = 1.0f + 0.25f * (float)(i % 5); /* llama3-style factors */
    float *dff = dev_copy(gpu, ff, n_rot / 2);
    rg_rope_params p = {.n_rot = n_rot, .freq_base = 500000.0f, .freq_scale = 1.0f, .freq_factors = dff};
    rg_kv_seq s = {0};
    int32_t stray = rg_kv_alloc_block(pool); /* the table is not in pool order */
    int64_t done = 0;
    double worst_qkv = 0, worst_o = 0;
    const int64_t steps[] = {37, 1, 3, 8, 16, 1}; /* a prefill (unfused path), then decode-sized steps */
    for (size_t si = 0; si < sizeof steps / sizeof *steps; si++) {
        int64_t n = steps[si];
        if (rg_kv_seq_reserve(pool, &s, done + n, &err)) {
            check(err.msg, NAN, 0);
            return;
        }
        int32_t pos[64], nctx[64];
        const int32_t *tables[64];
        for (int64_t i = 0; i < n; i++) pos[i] = (int32_t)(done + i), nctx[i] = pos[i] + 1, tables[i] = s.blocks;
        gpu->begin_step(gpu, &(rg_step){.n_tok = n, .pos = pos, .tables = tables, .n_ctx = nctx,
                                        .ctx_max = (int32_t)(done + n)});
        float *x = randn(n * k, 1.0f), *dx = dev_copy(gpu, x, n * k);
        float *ref[3], *got[3], *o_ref = dev_poisoned(gpu, n * n_q), *o_got = dev_poisoned(gpu, n * n_q);
        for (int i = 0; i < 3; i++)
            ref[i] = dev_poisoned(gpu, n * n_outs[i]), got[i] = dev_poisoned(gpu, n * n_outs[i]);
        rg_backend_attn a = {.layer = 1, .n_head = n_head, .scale = 0.125f, .kind = RG_ATTN_FLASH};
        /* unfused into layer 1 of the cache, attention; then fused into the same slots, attention */
        if (!gpu->matmul_multi(gpu, 3, wp, bias, dx, n, ref) ||
            !gpu->rope_kv_store(gpu, 1, ref[0], ref[1], ref[2], n_head, n_head_kv, hd, &p)) {
            check("unfused reference path declined", NAN, 0);
            return;
        }
        a.q = ref[0], a.out = o_ref;
        gpu->attention(gpu, &a);
        bool handled = gpu->qkv_rope_kv_store(gpu, 1, wp, bias, dx, n, got, n_head, n_head_kv, hd, &p);
        if (n > 16) {
            snprintf(what, sizeof what, "fused qkv_rope_kv_store declines a %lld-token step", (long long)n);
            check(what, handled ? NAN : 0, 0);
            if (handled) return;
            gpu->matmul_multi(gpu, 3, wp, bias, dx, n, got);
            gpu->rope_kv_store(gpu, 1, got[0], got[1], got[2], n_head, n_head_kv, hd, &p);
        } else if (!handled) {
            snprintf(what, sizeof what, "fused qkv_rope_kv_store %s declined", rg_dtype_name(wt));
            check(what, NAN, 0);
            return;
        }
        a.q = got[0], a.out = o_got;
        gpu->attention(gpu, &a);
        for (int i = 0; i < 3; i++) {
            float *r = download(gpu, ref[i], n * n_outs[i]), *g = download(gpu, got[i], n * n_outs[i]);
            if (n <= 16) worst_qkv = worse(worst_qkv, rel_err_f(g, r, n * n_outs[i]));
            free(r), free(g);
        }
        float *r = download(gpu, o_ref, n * n_q), *g = download(gpu, o_got, n * n_q);
        if (n <= 16) worst_o = worse(worst_o, rel_err_f(g, r, n * n_q));
        free(r), free(g), free(x);
        for (int i = 0; i < 3; i++) gpu->free(gpu, ref[i]), gpu->free(gpu, got[i]);
        gpu->free(gpu, dx), gpu->free(gpu, o_ref), gpu->free(gpu, o_got);
        done += n, s.n_tokens = done;
    }
    snprintf(what, sizeof what, "fused qkv_rope_kv_store q/k/v %s, kv %s, n_rot %lld%s", rg_dtype_name(wt),
             rg_dtype_name(kv_type), (long long)n_rot, with_bias ? ", bias" : "");
    check(what, worst_qkv, 1e-6);
    /* the two paths' k and v differ by ~1e-7 (contraction), so a few of the tens of
     * thousands of elements stored round to neighbouring values of a 16-bit cache:
     * one such step (2^-11 relative in f16, 2^-8 in bf16) weighted by its softmax
     * probability moves an output by up to ~1e-6 / ~1e-5 of the scale (measured
     * 2.1e-6 once in f16); a wrong rotation or slot moves it by ~1e-1 */
    snprintf(what, sizeof what, "  attention over its cache %s, kv %s", rg_dtype_name(wt), rg_dtype_name(kv_type));
    check(what, worst_o, kv_type == RG_F32 ? 1e-6 : kv_type == RG_F16 ? 1e-5 : 1e-4);
    if (gpu->sync(gpu, &err)) check(err.msg, NAN, 0);
    for (int i = 0; i < 3; i++) gpu->unload_weight(gpu, &w[i]), free(hw[i]), gpu->free(gpu, db[i]), free(hb[i]);
    gpu->free(gpu, dff), free(ff);
    rg_kv_seq_free(pool, &s);
    rg_kv_block_unref(pool, stray);
    gpu->destroy(gpu);
    rg_kv_pool_free(pool);
}

/* ---- KV store + attention through block tables, then copy-on-write */

static void test_attention(rg_backend *gpu_unused, rg_dtype kv_type, int64_t n_head, int64_t n_head_kv, int64_t hd,
                           int64_t ctx_long) {
    (void)gpu_unused;
    char what[160];
    rg_err err = {0};
    rg_kv_config kc = {.n_layer = 2, .n_head_kv = n_head_kv, .head_dim = hd, .block_size = 16,
                       .n_blocks = 2 * (ctx_long / 16 + 2) + 8, .dtype = kv_type};
    rg_kv_pool *pool;
    rg_backend *cpu, *gpu;
    rg_threadpool *tp = rg_threadpool_create(0);
    if (rg_kv_pool_create(&kc, &pool, &err) || rg_backend_cpu_create(tp, &cpu, &err) ||
        rg_backend_cuda_create(0, &gpu, &err)) {
        check(err.msg, NAN, 0);
        return;
    }
    rg_backend_limits lim = {.max_tokens = 64, .k_max = 64, .n_out_max = 64, .n_head = n_head,
                             .n_head_kv = n_head_kv, .head_dim = hd, .max_ctx = ctx_long + 64};
    if (cpu->reserve(cpu, &lim, pool, &err) || gpu->reserve(gpu, &lim, pool, &err)) {
        check(err.msg, NAN, 0);
        return;
    }
    /* two sequences; a few stray blocks first so tables are not in pool order */
    rg_kv_seq s[2] = {0};
    int32_t stray[3] = {rg_kv_alloc_block(pool), rg_kv_alloc_block(pool), rg_kv_alloc_block(pool)};
    rg_kv_block_unref(pool, stray[1]);
    int64_t len[2] = {ctx_long, 37};
    /* fill both: steps of up to 64 tokens alternating between the sequences */
    int64_t done[2] = {0, 0};
    int32_t pos[64], nctx[64];
    const int32_t *tables[64];
    int64_t n_kv = n_head_kv * hd, n_q = n_head * hd;
    float *q = NULL, *out_ref = NULL, *out_gpu = NULL;
    double worst = 0;
    int steps = 0;
    for (;;) {
        int64_t n = 0;
        for (int sq = 0; sq < 2; sq++) {
            int64_t take = len[sq] - done[sq] < 29 ? len[sq] - done[sq] : 29;
            if (take <= 0) continue;
            if (rg_kv_seq_reserve(pool, &s[sq], done[sq] + take, &err)) {
                check(err.msg, NAN, 0);
                return;
            }
            for (int64_t i = 0; i < take; i++) {
                pos[n] = (int32_t)(done[sq] + i), nctx[n] = pos[n] + 1, tables[n] = s[sq].blocks;
                n++;
            }
            done[sq] += take;
        }
        for (int sq = 0; sq < 2; sq++) s[sq].n_tokens = done[sq]; /* stored below, before the next reserve */
        if (!n) break;
        rg_step st = {.n_tok = n, .pos = pos, .tables = tables, .n_ctx = nctx, .ctx_max = 0};
        for (int64_t i = 0; i < n; i++) st.ctx_max = nctx[i] > st.ctx_max ? nctx[i] : st.ctx_max;
        cpu->begin_step(cpu, &st);
        gpu->begin_step(gpu, &st);
        for (int64_t layer = 0; layer < 2; layer++) {
            float *k = randn(n * n_kv, 1.0f), *v = randn(n * n_kv, 1.0f);
            q = randn(n * n_q, 1.0f);
            float *dk = dev_copy(gpu, k, n * n_kv), *dv = dev_copy(gpu, v, n * n_kv), *dq = dev_copy(gpu, q, n * n_q);
            float *dout = dev_poisoned(gpu, n * n_q);
            cpu->kv_store(cpu, layer, k, v);
            gpu->kv_store(gpu, layer, dk, dv);
            out_ref = malloc((size_t)(n * n_q) * sizeof *out_ref);
            rg_backend_attn a = {.layer = layer, .n_head = n_head, .q = q, .out = out_ref,
                                 .scale = 1.0f / sqrtf((float)hd), .kind = RG_ATTN_FLASH};
            cpu->attention(cpu, &a);
            a.q = dq, a.out = dout;
            gpu->attention(gpu, &a);
            out_gpu = download(gpu, dout, n * n_q);
            /* in units of the step's tolerance: f32 softmax and sums in another order (1e-5),
             * or the tensor-core prefill kernel's 16-bit q and P (attn_tol) */
            double e = rel_err_f(out_gpu, out_ref, n * n_q) / attn_tol(n, kv_type, hd);
            worst = worse(worst, e);
            free(k), free(v), free(q), free(out_ref), free(out_gpu);
            gpu->free(gpu, dk), gpu->free(gpu, dv), gpu->free(gpu, dq), gpu->free(gpu, dout);
        }
        steps++;
    }
    snprintf(what, sizeof what, "kv_store+attention kv %s, %lld/%lld heads, hd %lld, ctx %lld (%d steps), err/tol",
             rg_dtype_name(kv_type), (long long)n_head, (long long)n_head_kv, (long long)hd, (long long)ctx_long,
             steps);
    check(what, worst, 1);

    /* decode after a fork: the fork's partial last block is copied on write through the backends */
    rg_kv_pool_set_copy_fn(pool, NULL, NULL);
    rg_kv_seq f = {0};
    if (rg_kv_seq_fork(pool, &s[1], &f, &err)) {
        check(err.msg, NAN, 0);
        return;
    }
    int32_t shared = f.blocks[(37) / 16];
    /* reserve copies in the host pool's storage (no copy_fn): the CPU side; do the GPU side by hand */
    if (rg_kv_seq_reserve(pool, &f, 38, &err)) {
        check(err.msg, NAN, 0);
        return;
    }
    int32_t fresh = f.blocks[37 / 16];
    gpu->kv_copy_block(gpu, fresh, shared);
    pos[0] = 37, nctx[0] = 38, tables[0] = f.blocks;
    rg_step st = {.n_tok = 1, .pos = pos, .tables = tables, .n_ctx = nctx, .ctx_max = 38};
    cpu->begin_step(cpu, &st);
    gpu->begin_step(gpu, &st);
    worst = 0;
    for (int64_t layer = 0; layer < 2; layer++) {
        float *k = randn(n_kv, 1.0f), *v = randn(n_kv, 1.0f);
        q = randn(n_q, 1.0f);
        float *dk = dev_copy(gpu, k, n_kv), *dv = dev_copy(gpu, v, n_kv), *dq = dev_copy(gpu, q, n_q);
        float *dout = dev_poisoned(gpu, n_q);
        cpu->kv_store(cpu, layer, k, v);
        gpu->kv_store(gpu, layer, dk, dv);
        out_ref = malloc((size_t)n_q * sizeof *out_ref);
        rg_backend_attn a = {.layer = layer, .n_head = n_head, .q = q, .out = out_ref, .scale = 0.125f};
        cpu->attention(cpu, &a);
        a.q = dq, a.out = dout;
        gpu->attention(gpu, &a);
        out_gpu = download(gpu, dout, n_q);
        double e = rel_err_f(out_gpu, out_ref, n_q);
        worst = worse(worst, e);
        free(k), free(v), free(q), free(out_ref), free(out_gpu);
        gpu->free(gpu, dk), gpu->free(gpu, dv), gpu->free(gpu, dq), gpu->free(gpu, dout);
    }
    snprintf(what, sizeof what, "attention after copy-on-write (kv %s)", rg_dtype_name(kv_type));
    check(what, fresh != shared ? worst : NAN, 1e-5);
    if (gpu->sync(gpu, &err)) check(err.msg, NAN, 0);
    rg_kv_seq_free(pool, &f), rg_kv_seq_free(pool, &s[0]), rg_kv_seq_free(pool, &s[1]);
    rg_kv_block_unref(pool, stray[0]), rg_kv_block_unref(pool, stray[2]);
    gpu->destroy(gpu), cpu->destroy(cpu);
    rg_kv_pool_free(pool);
    rg_threadpool_free(tp);
}

/* ---- decode attention: a batch of sequences of different lengths, one query
 * token each, then each sequence alone (the most splits), then a run of the last
 * tokens of the longest (causal by each token's n_ctx): contexts that cross many
 * splits and end inside a KV block, splits left empty by short sequences. f16 and
 * bf16 KV at head_dim 64/128/256 with groups up to 8 run the register-streaming
 * kernel (attn_decode.cu), the rest the general one. */

/* One step of n tokens (pos[i] = nctx[i] - 1) through both backends' attention. */
static double decode_step_err(rg_backend *cpu, rg_backend *gpu, int64_t n, const int32_t *nctx,
                              const int32_t *const *tables, int64_t n_head, int64_t hd, const float *slopes,
                              const float *d_slopes) {
    int32_t pos[64];
    int64_t ctx_max = 0;
    for (int64_t i = 0; i < n; i++) pos[i] = nctx[i] - 1, ctx_max = nctx[i] > ctx_max ? nctx[i] : ctx_max;
    rg_step st = {.n_tok = n, .pos = pos, .tables = tables, .n_ctx = nctx, .ctx_max = ctx_max};
    cpu->begin_step(cpu, &st);
    gpu->begin_step(gpu, &st);
    int64_t n_q = n * n_head * hd;
    float *q = randn(n_q, 1.0f), *out_ref = malloc((size_t)n_q * sizeof *out_ref);
    float *dq = dev_copy(gpu, q, n_q), *dout = dev_poisoned(gpu, n_q);
    rg_backend_attn a = {.layer = 0, .n_head = n_head, .q = q, .out = out_ref, .scale = 1.0f / sqrtf((float)hd),
                         .kind = RG_ATTN_FLASH, .alibi_slopes = slopes};
    cpu->attention(cpu, &a);
    a.q = dq, a.out = dout, a.alibi_slopes = d_slopes;
    gpu->attention(gpu, &a);
    float *out_gpu = download(gpu, dout, n_q);
    double e = rel_err_f(out_gpu, out_ref, n_q);
    free(q), free(out_ref), free(out_gpu);
    gpu->free(gpu, dq), gpu->free(gpu, dout);
    return e;
}

static void test_attention_decode(rg_dtype kv_type, int64_t n_head, int64_t n_head_kv, int64_t hd, bool alibi,
                                  int n_seq, const int64_t *ctx) {
    char what[160];
    rg_err err = {0};
    int64_t longest = 0, n_blocks = 8;
    for (int i = 0; i < n_seq; i++) longest = ctx[i] > longest ? ctx[i] : longest, n_blocks += ctx[i] / 16 + 2;
    rg_kv_config kc = {.n_layer = 1, .n_head_kv = n_head_kv, .head_dim = hd, .block_size = 16, .n_blocks = n_blocks,
                       .dtype = kv_type};
    rg_kv_pool *pool;
    rg_backend *cpu, *gpu;
    rg_threadpool *tp = rg_threadpool_create(0);
    if (rg_kv_pool_create(&kc, &pool, &err) || rg_backend_cpu_create(tp, &cpu, &err) ||
        rg_backend_cuda_create(0, &gpu, &err)) {
        check(err.msg, NAN, 0);
        return;
    }
    rg_backend_limits lim = {.max_tokens = 64, .k_max = 64, .n_out_max = 64, .n_head = n_head,
                             .n_head_kv = n_head_kv, .head_dim = hd, .max_ctx = longest + 64};
    if (cpu->reserve(cpu, &lim, pool, &err) || gpu->reserve(gpu, &lim, pool, &err)) {
        check(err.msg, NAN, 0);
        return;
    }
    /* fill in rounds of up to 16 tokens a sequence, so the sequences' blocks interleave in the pool */
    rg_kv_seq s[4] = {0};
    int64_t done[4] = {0};
    int32_t pos[64], nctx[64];
    const int32_t *tables[64];
    int64_t n_kv = n_head_kv * hd;
    for (;;) {
        int64_t n = 0;
        for (int sq = 0; sq < n_seq; sq++) {
            int64_t take = ctx[sq] - done[sq] < 16 ? ctx[sq] - done[sq] : 16;
            if (take <= 0) continue;
            if (rg_kv_seq_reserve(pool, &s[sq], done[sq] + take, &err)) {
                check(err.msg, NAN, 0);
                return;
            }
            for (int64_t i = 0; i < take; i++) {
                pos[n] = (int32_t)(done[sq] + i), nctx[n] = pos[n] + 1, tables[n] = s[sq].blocks;
                n++;
            }
            done[sq] += take;
            s[sq].n_tokens = done[sq];
        }
        if (!n) break;
        rg_step st = {.n_tok = n, .pos = pos, .tables = tables, .n_ctx = nctx, .ctx_max = 0};
        for (int64_t i = 0; i < n; i++) st.ctx_max = nctx[i] > st.ctx_max ? nctx[i] : st.ctx_max;
        cpu->begin_step(cpu, &st);
        gpu->begin_step(gpu, &st);
        float *k = randn(n * n_kv, 1.0f), *v = randn(n * n_kv, 1.0f);
        float *dk = dev_copy(gpu, k, n * n_kv), *dv = dev_copy(gpu, v, n * n_kv);
        cpu->kv_store(cpu, 0, k, v);
        gpu->kv_store(gpu, 0, dk, dv);
        free(k), free(v);
        gpu->free(gpu, dk), gpu->free(gpu, dv);
    }
    /* ALiBi slopes as models use them: 2^(-8 (h + 1) / n_head) */
    float *slopes = NULL, *d_slopes = NULL;
    if (alibi) {
        slopes = malloc((size_t)n_head * sizeof *slopes);
        for (int64_t h = 0; h < n_head; h++) slopes[h] = exp2f(-8.0f * (float)(h + 1) / (float)n_head);
        d_slopes = dev_copy(gpu, slopes, n_head);
    }
    char shape[96];
    snprintf(shape, sizeof shape, "kv %s, %lld/%lld heads, hd %lld%s", rg_dtype_name(kv_type), (long long)n_head,
             (long long)n_head_kv, (long long)hd, alibi ? ", alibi" : "");
    /* f32 softmax and sums in another order: 1e-5 */
    for (int sq = 0; sq < n_seq; sq++) nctx[sq] = (int32_t)ctx[sq], tables[sq] = s[sq].blocks;
    snprintf(what, sizeof what, "decode attention batch %d, %s", n_seq, shape);
    check(what, decode_step_err(cpu, gpu, n_seq, nctx, tables, n_head, hd, slopes, d_slopes), 1e-5);
    double worst = 0;
    for (int sq = 0; sq < n_seq; sq++) {
        double e = decode_step_err(cpu, gpu, 1, nctx + sq, tables + sq, n_head, hd, slopes, d_slopes);
        worst = worse(worst, e);
    }
    snprintf(what, sizeof what, "decode attention one at a time, %s", shape);
    check(what, worst, 1e-5);
    int run = longest < 3 ? (int)longest : 3, longest_seq = 0;
    for (int sq = 0; sq < n_seq; sq++) longest_seq = ctx[sq] == longest ? sq : longest_seq;
    for (int i = 0; i < run; i++) nctx[i] = (int32_t)(longest - run + 1 + i), tables[i] = s[longest_seq].blocks;
    snprintf(what, sizeof what, "decode attention run of %d tokens, %s", run, shape);
    check(what, decode_step_err(cpu, gpu, run, nctx, tables, n_head, hd, slopes, d_slopes), 1e-5);
    if (gpu->sync(gpu, &err)) check(err.msg, NAN, 0);
    if (d_slopes) gpu->free(gpu, d_slopes);
    free(slopes);
    for (int sq = 0; sq < n_seq; sq++) rg_kv_seq_free(pool, &s[sq]);
    gpu->destroy(gpu), cpu->destroy(cpu);
    rg_kv_pool_free(pool);
    rg_threadpool_free(tp);
}

/* ---- prefill attention: steps of many tokens (the tensor-core kernel on the GPU)
 * against the CPU backend on the same pool contents */

/* Worst over (token, head) rows of max_d |got - ref| / max_d |ref|; NaN if any
 * output is NaN (unwritten). */
static double row_max_err(const float *got, const float *ref, int64_t n_rows, int64_t hd) {
    double worst = 0;
    for (int64_t r = 0; r < n_rows; r++) {
        double num = 0, den = 0;
        for (int64_t d = 0; d < hd; d++) {
            if (isnan(got[r * hd + d])) return NAN;
            double e = fabs((double)got[r * hd + d] - ref[r * hd + d]), m = fabs(ref[r * hd + d]);
            num = e > num ? e : num, den = m > den ? m : den;
        }
        double rel = num / (den > 0 ? den : 1);
        worst = rel > worst ? rel : worst;
    }
    return worst;
}

/* The prefill-attention kernels besides the default, each a backend made with its levers */
#define N_PF_ALT 2
static const char *const PF_ALT[N_PF_ALT] = {"RIDGE_CUDA_PF_WGMMA=0", "RIDGE_CUDA_PF_WGMMA=0 RIDGE_CUDA_PF_MT2=1"};

typedef struct prefill_case {
    rg_backend *cpu, *gpu;
    rg_backend *alt[N_PF_ALT]; /* the other prefill kernels, on the same inputs: PF_ALT's levers */
    double worst_alt[N_PF_ALT]; /* the row error of each against the CPU reference */
    int64_t n_head, n_head_kv, hd;
    rg_weight wo;      /* an o-proj: the GPU attention is told it reads out next (rg_backend_attn.next) */
    double worst_next; /* its product on the form attention wrote vs on out converted */
    int n_prepared;    /* steps of more than 16 tokens where attention wrote that form (holds_input_form) */
} prefill_case;

/* One step of n tokens on both backends: random K/V stored at each token's
 * position, then (if attend) attention of random queries; the row error. */
static double prefill_step(prefill_case *pc, int64_t n, const int32_t *pos, const int32_t *nctx,
                           const int32_t *const *tables, bool attend) {
    rg_step st = {.n_tok = n, .pos = pos, .tables = tables, .n_ctx = nctx, .ctx_max = 0};
    for (int64_t i = 0; i < n; i++) st.ctx_max = nctx[i] > st.ctx_max ? nctx[i] : st.ctx_max;
    rg_backend *cpu = pc->cpu, *gpu = pc->gpu;
    cpu->begin_step(cpu, &st);
    gpu->begin_step(gpu, &st);
    for (int i = 0; i < N_PF_ALT; i++) pc->alt[i]->begin_step(pc->alt[i], &st);
    int64_t n_kv = pc->n_head_kv * pc->hd, n_q = pc->n_head * pc->hd;
    float *k = randn(n * n_kv, 1.0f), *v = randn(n * n_kv, 1.0f);
    float *dk = dev_copy(gpu, k, n * n_kv), *dv = dev_copy(gpu, v, n * n_kv);
    cpu->kv_store(cpu, 0, k, v);
    gpu->kv_store(gpu, 0, dk, dv);
    for (int i = 0; i < N_PF_ALT; i++) {
        rg_backend *g2 = pc->alt[i];
        float *dk2 = dev_copy(g2, k, n * n_kv), *dv2 = dev_copy(g2, v, n * n_kv);
        g2->kv_store(g2, 0, dk2, dv2);
        g2->free(g2, dk2), g2->free(g2, dv2);
    }
    double e = 0;
    if (attend) {
        float *q = randn(n * n_q, 1.0f), *out_ref = malloc((size_t)(n * n_q) * sizeof *out_ref);
        float *dq = dev_copy(gpu, q, n * n_q), *dout = dev_poisoned(gpu, n * n_q);
        rg_backend_attn a = {.layer = 0, .n_head = pc->n_head, .q = q, .out = out_ref,
                             .scale = 1.0f / sqrtf((float)pc->hd), .kind = RG_ATTN_FLASH};
        cpu->attention(cpu, &a);
        a.q = dq, a.out = dout, a.next = &pc->wo;
        gpu->attention(gpu, &a);
        pc->n_prepared += n > 16 && gpu->holds_input_form(gpu, dout, &pc->wo, n);
        float *out_gpu = download(gpu, dout, n * n_q);
        e = row_max_err(out_gpu, out_ref, n * pc->n_head, pc->hd);
        /* the other kernels on the same inputs */
        for (int i = 0; i < N_PF_ALT; i++) {
            rg_backend *g2 = pc->alt[i];
            float *dq2 = dev_copy(g2, q, n * n_q), *dout2 = dev_poisoned(g2, n * n_q);
            rg_backend_attn a2 = a;
            a2.q = dq2, a2.out = dout2, a2.next = NULL;
            g2->attention(g2, &a2);
            float *out2 = download(g2, dout2, n * n_q);
            pc->worst_alt[i] = worse(pc->worst_alt[i], row_max_err(out2, out_ref, n * pc->n_head, pc->hd));
            free(out2), g2->free(g2, dq2), g2->free(g2, dout2);
        }
        /* the o-proj on what attention wrote for it, then again (converting out) */
        const int64_t no = pc->wo.n_out;
        float *y1 = dev_poisoned(gpu, n * no), *y2 = dev_poisoned(gpu, n * no);
        gpu->matmul(gpu, &pc->wo, NULL, dout, n, y1);
        gpu->matmul(gpu, &pc->wo, NULL, dout, n, y2);
        pc->worst_next = worse(pc->worst_next, dev_rel_err(gpu, y1, y2, n * no));
        gpu->free(gpu, y1), gpu->free(gpu, y2);
        free(q), free(out_ref), free(out_gpu);
        gpu->free(gpu, dq), gpu->free(gpu, dout);
    }
    free(k), free(v);
    gpu->free(gpu, dk), gpu->free(gpu, dv);
    return e;
}

/* A fresh sequence with room for n tokens, its block table shuffled (nothing is
 * stored yet, so any order of its blocks is a valid table): pages out of order. */
static bool prefill_seq(rg_kv_pool *pool, rg_kv_seq *s, int64_t n) {
    rg_err err = {0};
    if (rg_kv_seq_reserve(pool, s, n, &err)) {
        check(err.msg, NAN, 0);
        return false;
    }
    for (int64_t i = s->n_blocks - 1; i > 0; i--) {
        int64_t j = (int64_t)(rg_test_rand_u64(&rng) % (uint64_t)(i + 1));
        int32_t t = s->blocks[i];
        s->blocks[i] = s->blocks[j], s->blocks[j] = t;
    }
    return true;
}

static void test_attention_prefill(rg_dtype kv_type, int64_t n_head, int64_t n_head_kv, int64_t hd, int64_t bs) {
    char what[160];
    rg_err err = {0};
    rg_kv_config kc = {.n_layer = 1, .n_head_kv = n_head_kv, .head_dim = hd, .block_size = bs,
                       .n_blocks = 4 * (512 / bs) + 8, .dtype = kv_type};
    rg_kv_pool *pool;
    prefill_case pc = {.n_head = n_head, .n_head_kv = n_head_kv, .hd = hd};
    rg_threadpool *tp = rg_threadpool_create(0);
    rg_status st2 = 0;
    for (int i = 0; i < N_PF_ALT && !st2; i++) {
        set_levers(PF_ALT[i], true);
        st2 = rg_backend_cuda_create(0, &pc.alt[i], &err);
        set_levers(PF_ALT[i], false);
    }
    if (st2 || rg_kv_pool_create(&kc, &pool, &err) || rg_backend_cpu_create(tp, &pc.cpu, &err) ||
        rg_backend_cuda_create(0, &pc.gpu, &err)) {
        check(err.msg, NAN, 0);
        return;
    }
    rg_backend_limits lim = {.max_tokens = 512, .k_max = n_head * hd, .n_out_max = 64, .n_head = n_head,
                             .n_head_kv = n_head_kv, .head_dim = hd, .max_ctx = 512};
    if (pc.cpu->reserve(pc.cpu, &lim, pool, &err) || pc.gpu->reserve(pc.gpu, &lim, pool, &err) ||
        pc.alt[0]->reserve(pc.alt[0], &lim, pool, &err) || pc.alt[1]->reserve(pc.alt[1], &lim, pool, &err)) {
        check(err.msg, NAN, 0);
        return;
    }
    void *h_wo = NULL;
    if (!random_weight(pc.gpu, kv_type == RG_F16 ? RG_F16 : RG_BF16, n_head * hd, 64, &pc.wo, &h_wo)) return;
    /* Tolerance, per row: max |err| / max |out| <= 2e-2 (bf16 KV), 5e-3 (f16 KV).
     * The GPU rounds Q and the probabilities P to the KV type for the tensor cores
     * (the CPU reference keeps both in f32): a relative rounding of 2^-9 (bf16) or
     * 2^-12 (f16) per element, which moves each output by a few units of that
     * relative to the row's scale; the bound leaves ~5x headroom over the worst of
     * a few hundred rows x head_dim elements. One-token steps take the split-KV
     * kernel (exact to ~1e-6) and must pass the same bound. */
    double tol = kv_type == RG_BF16 ? 2e-2 : 5e-3;
    const char *tn = rg_dtype_name(kv_type);
    static int32_t pos[512], nctx[512];
    static const int32_t *tables[512];
    /* one fresh sequence, causal, lengths around the 128-query and 64-key tiles */
    const int64_t lens[] = {1, 17, 100, 333};
    for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
        int64_t L = lens[li];
        rg_kv_seq s = {0};
        if (!prefill_seq(pool, &s, L)) return;
        for (int64_t i = 0; i < L; i++) pos[i] = (int32_t)i, nctx[i] = (int32_t)i + 1, tables[i] = s.blocks;
        double e = prefill_step(&pc, L, pos, nctx, tables, true);
        snprintf(what, sizeof what, "prefill attn %s %lld/%lld hd %lld bs %lld: %lld tokens", tn, (long long)n_head,
                 (long long)n_head_kv, (long long)hd, (long long)bs, (long long)L);
        check(what, e, tol);
        rg_kv_seq_free(pool, &s);
    }
    /* non-causal (every token sees the whole sequence; the benchmark's mode) */
    {
        rg_kv_seq s = {0};
        if (!prefill_seq(pool, &s, 150)) return;
        for (int64_t i = 0; i < 150; i++) pos[i] = (int32_t)i, nctx[i] = 150, tables[i] = s.blocks;
        double e = prefill_step(&pc, 150, pos, nctx, tables, true);
        snprintf(what, sizeof what, "prefill attn %s %lld/%lld hd %lld bs %lld: 150 tokens, non-causal", tn,
                 (long long)n_head, (long long)n_head_kv, (long long)hd, (long long)bs);
        check(what, e, tol);
        rg_kv_seq_free(pool, &s);
    }
    /* three sequences in one step: A fresh (100 tokens), C fresh (1 token), and B
     * continuing at positions 200..327 after a step that cached 0..199; the first
     * query tile holds all three, the second only B */
    {
        rg_kv_seq A = {0}, B = {0}, C = {0};
        if (!prefill_seq(pool, &A, 100) || !prefill_seq(pool, &B, 328) || !prefill_seq(pool, &C, 1)) return;
        for (int64_t i = 0; i < 200; i++) pos[i] = (int32_t)i, nctx[i] = (int32_t)i + 1, tables[i] = B.blocks;
        double e0 = prefill_step(&pc, 200, pos, nctx, tables, true);
        int64_t n = 0;
        for (int64_t i = 0; i < 100; i++, n++) pos[n] = (int32_t)i, nctx[n] = (int32_t)i + 1, tables[n] = A.blocks;
        pos[n] = 0, nctx[n] = 1, tables[n] = C.blocks, n++;
        for (int64_t i = 200; i < 328; i++, n++) pos[n] = (int32_t)i, nctx[n] = (int32_t)i + 1, tables[n] = B.blocks;
        double e1 = prefill_step(&pc, n, pos, nctx, tables, true);
        snprintf(what, sizeof what, "prefill attn %s %lld/%lld hd %lld bs %lld: 3 seqs, chunk at 200", tn,
                 (long long)n_head, (long long)n_head_kv, (long long)hd, (long long)bs);
        check(what, isnan(e0) || isnan(e1) ? NAN : (e0 > e1 ? e0 : e1), tol);
        rg_kv_seq_free(pool, &A), rg_kv_seq_free(pool, &B), rg_kv_seq_free(pool, &C);
    }
    snprintf(what, sizeof what, "prefill attn %s %lld/%lld hd %lld: o-proj on the form written by attention (next)",
             tn, (long long)n_head, (long long)n_head_kv, (long long)hd);
    check(what, pc.worst_next, 0);
    snprintf(what, sizeof what, "prefill attn %s %lld/%lld hd %lld: the o-proj's form written on steps of > 16 tokens",
             tn, (long long)n_head, (long long)n_head_kv, (long long)hd);
    check(what, pc.n_prepared > 0 ? 0 : NAN, 0);
    for (int i = 0; i < N_PF_ALT; i++) { /* every case above, the same bound */
        snprintf(what, sizeof what, "prefill attn %s %lld/%lld hd %lld bs %lld: %s, all steps", tn,
                 (long long)n_head, (long long)n_head_kv, (long long)hd, (long long)bs, PF_ALT[i]);
        check(what, pc.worst_alt[i], tol);
    }
    pc.gpu->unload_weight(pc.gpu, &pc.wo), free(h_wo);
    if (pc.gpu->sync(pc.gpu, &err)) check(err.msg, NAN, 0);
    for (int i = 0; i < N_PF_ALT; i++) {
        if (pc.alt[i]->sync(pc.alt[i], &err)) check(err.msg, NAN, 0);
        pc.alt[i]->destroy(pc.alt[i]);
    }
    pc.gpu->destroy(pc.gpu), pc.cpu->destroy(pc.cpu);
    rg_kv_pool_free(pool);
    rg_threadpool_free(tp);
}

/* Prefill attention: GQA, MHA and MQA at head dims 64 and 128, KV block sizes 8-32. */
static void test_prefill_all(void) {
    test_attention_prefill(RG_F16, 32, 8, 128, 16);
    test_attention_prefill(RG_BF16, 32, 8, 128, 16);
    test_attention_prefill(RG_BF16, 8, 8, 64, 16);
    test_attention_prefill(RG_F16, 8, 1, 64, 8);
    test_attention_prefill(RG_BF16, 8, 1, 128, 32);
}

/* A logits row of kind k for the argmax test: 0 normal, 1 few distinct values
 * (ties everywhere), 2 the max planted at three places (one in the last float4),
 * 3 mostly -inf, 4 NaNs sprinkled, 5 NaN at entry 0, 6 all -inf, 7 one constant. */
static void argmax_row(float *x, int64_t n, int kind) {
    for (int64_t i = 0; i < n; i++) {
        uint64_t u = rg_test_rand_u64(&rng);
        switch (kind) {
        case 1: x[i] = (float)(u % 4); break;
        case 3: x[i] = u % 64 ? -INFINITY : rg_test_rand_normal(&rng); break;
        case 4: x[i] = u % 5 ? rg_test_rand_normal(&rng) : NAN; break;
        case 6: x[i] = -INFINITY; break;
        case 7: x[i] = 0.5f; break;
        default: x[i] = 4 * rg_test_rand_normal(&rng);
        }
    }
    if (kind == 2) {
        x[rg_test_rand_u64(&rng) % (uint64_t)n] = 100, x[rg_test_rand_u64(&rng) % (uint64_t)n] = 100;
        x[n - 1 - (int64_t)(rg_test_rand_u64(&rng) % 4)] = 100;
    }
    if (kind == 5) x[0] = NAN;
}

/* argmax_rows against the CPU backend's (rg_argmax row by row): 1..64 rows of
 * Llama 3's vocabulary (16-byte loads) and of odd lengths (rows off the 16-byte
 * grid: the scalar path), every row kind above. The ids must be equal. */
static void test_argmax_rows(rg_backend *gpu, rg_backend *cpu) {
    const int64_t vocabs[] = {128256, 1001, 32003};
    const int64_t row_counts[] = {1, 2, 7, 33, 64};
    for (size_t vi = 0; vi < sizeof vocabs / sizeof *vocabs; vi++)
        for (size_t ri = 0; ri < sizeof row_counts / sizeof *row_counts; ri++) {
            int64_t V = vocabs[vi], rows = row_counts[ri];
            float *x = malloc((size_t)(rows * V) * sizeof *x);
            for (int64_t r = 0; r < rows; r++) argmax_row(x + r * V, V, (int)((r + (int64_t)ri) % 8));
            int32_t want[64], got[64];
            for (int64_t r = 0; r < rows; r++) want[r] = got[r] = -7; /* poison */
            cpu->argmax_rows(cpu, x, rows, V, want);
            float *dx = dev_copy(gpu, x, rows * V);
            gpu->argmax_rows(gpu, dx, rows, V, got);
            int64_t wrong = 0;
            for (int64_t r = 0; r < rows; r++) {
                if (got[r] != want[r] && wrong < 3)
                    printf("     row %lld (kind %d): gpu %d, cpu %d\n", (long long)r, (int)((r + (int64_t)ri) % 8),
                           got[r], want[r]);
                wrong += got[r] != want[r] || want[r] < 0;
            }
            char what[96];
            snprintf(what, sizeof what, "argmax_rows %lld x %lld (rows wrong)", (long long)rows, (long long)V);
            check(what, (double)wrong, 0);
            gpu->free(gpu, dx), free(x);
        }
    rg_err err = {0};
    if (gpu->sync(gpu, &err)) check(err.msg, NAN, 0);
}

/* The prefill-path tests alone (`test_cuda_ops prefill`): a short run for
 * compute-sanitizer over the prefill kernels. */
static int run_prefill_only(void) {
    test_prefill_swiglu16();
    test_prefill_all();
    printf("test_cuda_ops (prefill): %d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    rng = rg_test_seed();
    printf("seed %llu\n", (unsigned long long)rng);
    if (argc > 1 && !strcmp(argv[1], "prefill")) return run_prefill_only();
    rg_err err = {0};
    rg_backend *gpu, *cpu, *gpu_plain;
    rg_threadpool *tp = rg_threadpool_create(0);
    if (rg_backend_cuda_create(0, &gpu, &err) || rg_backend_cpu_create(tp, &cpu, &err)) {
        fprintf(stderr, "test_cuda_ops: %s\n", err.msg);
        return 1;
    }
    rg_kv_pool *pool;
    rg_backend_limits lim = {.max_tokens = 64, .k_max = 14336, .n_out_max = 5121, .n_head = 9, .n_head_kv = 1,
                             .head_dim = 64, .max_ctx = 64};
    /* the same backend with other mappings (levers read at creation): gpu_mapped
     * adds matmul_q.cu's long-row mapping (opt-in) to the default short-row one;
     * gpu_plain has neither and the f32 GEMV instead of the tensor-core one */
    rg_backend *gpu_mapped;
    setenv("RIDGE_CUDA_GEMV_Q_U2", "1", 1);
    rg_status mapped_st = rg_backend_cuda_create(0, &gpu_mapped, &err);
    unsetenv("RIDGE_CUDA_GEMV_Q_U2");
    setenv("RIDGE_CUDA_GEMV_Q_SHORT", "0", 1), setenv("RIDGE_CUDA_GEMV_MMA", "0", 1);
    rg_status plain_st = rg_backend_cuda_create(0, &gpu_plain, &err);
    unsetenv("RIDGE_CUDA_GEMV_Q_SHORT"), unsetenv("RIDGE_CUDA_GEMV_MMA");
    if (mapped_st || plain_st || rg_kv_pool_create(&small_pool, &pool, &err) || gpu->reserve(gpu, &lim, pool, &err) ||
        gpu_mapped->reserve(gpu_mapped, &lim, pool, &err) || gpu_plain->reserve(gpu_plain, &lim, pool, &err) ||
        cpu->reserve(cpu, &lim, pool, &err)) {
        fprintf(stderr, "test_cuda_ops: %s\n", err.msg);
        return 1;
    }
    const rg_dtype types[] = {RG_F32, RG_F16, RG_BF16, RG_Q8_0, RG_Q4_0, RG_Q4_K, RG_Q6_K, RG_Q4_1, RG_Q5_K};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) test_weight_type(gpu, types[i]);
    test_rows_ops(gpu, cpu);
    test_argmax_rows(gpu, cpu);
    const rg_dtype fused_types[] = {RG_BF16, RG_Q4_0, RG_Q4_1, RG_Q8_0, RG_Q4_K, RG_Q6_K};
    for (size_t i = 0; i < sizeof fused_types / sizeof *fused_types; i++) test_fused_matmuls(gpu, fused_types[i]);
    const rg_dtype int8_types[] = {RG_Q8_0, RG_Q4_0, RG_Q4_1, RG_Q4_K, RG_Q6_K};
    for (size_t i = 0; i < sizeof int8_types / sizeof *int8_types; i++) test_gemv_act_rounding(gpu, int8_types[i]);
    /* k by path: 64 units and fewer (G = 2), 65 and 129 (plain, one and two
     * steps), 256 (U = 2 for Q4_0), 264 and 448 (U = 2 with a partial last step) */
    const int64_t gemv_k[][2] = {{96, 301},   {256, 301},  {512, 301},  {1024, 301}, {2048, 301}, {2048, 5121},
                                 {2080, 301}, {4128, 301}, {8192, 301}, {8448, 64},  {14336, 64}};
    for (size_t i = 0; i < sizeof int8_types / sizeof *int8_types; i++)
        for (size_t j = 0; j < sizeof gemv_k / sizeof *gemv_k; j++)
            if (gemv_k[j][0] %
                    (int8_types[i] == RG_Q8_0 || int8_types[i] == RG_Q4_0 || int8_types[i] == RG_Q4_1 ? 32 : 256) ==
                0)
                test_gemv_paths(gpu_mapped, gpu_plain, int8_types[i], gemv_k[j][0], gemv_k[j][1]);
    /* the tensor-core GEMV of 2..16 tokens (the default) against the f32 GEMV, and
     * the f32 GEMV's own checks (RIDGE_CUDA_GEMV_MMA=0) */
    test_gemv_mma_shapes(gpu, gpu_plain);
    printf("-- RIDGE_CUDA_GEMV_MMA=0 RIDGE_CUDA_GEMV_Q_SHORT=0 (f32 GEMV for 2..16 tokens, plain mappings) --\n");
    test_weight_type(gpu_plain, RG_BF16);
    test_weight_type(gpu_plain, RG_F16);
    test_fused_matmuls(gpu_plain, RG_BF16);
    setenv("RIDGE_CUDA_GEMV_MMA", "0", 1);
    test_fused_qkv_rope(RG_BF16, RG_BF16, 64, true); /* creates its own backend: the variable is still set */
    unsetenv("RIDGE_CUDA_GEMV_MMA");
    printf("-- end of RIDGE_CUDA_GEMV_MMA=0 --\n");
    if (gpu->sync(gpu, &err)) check(err.msg, NAN, 0);
    if (gpu_mapped->sync(gpu_mapped, &err)) check(err.msg, NAN, 0);
    if (gpu_plain->sync(gpu_plain, &err)) check(err.msg, NAN, 0);
    gpu->destroy(gpu), gpu_mapped->destroy(gpu_mapped), gpu_plain->destroy(gpu_plain), cpu->destroy(cpu);
    rg_kv_pool_free(pool);
    rg_threadpool_free(tp);
    test_attention(NULL, RG_F32, 8, 2, 64, 300);
    test_attention(NULL, RG_F16, 32, 8, 128, 1100);
    test_attention(NULL, RG_BF16, 8, 1, 64, 200);
    test_attention(NULL, RG_F32, 4, 4, 32, 70);
    test_fused_rope_kv(RG_F32, false, 64);
    test_fused_rope_kv(RG_BF16, true, 64);
    test_fused_rope_kv(RG_F16, false, 32);
    const rg_dtype norm_quant_types[] = {RG_Q8_0, RG_Q4_0, RG_Q4_1, RG_Q4_K, RG_Q6_K};
    for (size_t i = 0; i < sizeof norm_quant_types / sizeof *norm_quant_types; i++)
        test_norm_quant(norm_quant_types[i]);
    test_prefill_swiglu16();
    const rg_dtype prefill_input_types[] = {RG_BF16, RG_F16, RG_Q4_0, RG_Q4_K};
    for (size_t i = 0; i < sizeof prefill_input_types / sizeof *prefill_input_types; i++)
        test_prefill_inputs(prefill_input_types[i]);
    test_fused_qkv_rope(RG_BF16, RG_BF16, 64, false);
    test_fused_qkv_rope(RG_F16, RG_F16, 32, true); /* partial rotation */
    test_fused_qkv_rope(RG_F32, RG_F32, 64, true);
    test_fused_qkv_rope(RG_Q4_0, RG_BF16, 64, true);
    test_fused_qkv_rope(RG_Q4_1, RG_F16, 64, true);
    test_fused_qkv_rope(RG_Q4_K, RG_F16, 64, false);
    test_fused_qkv_rope(RG_Q8_0, RG_BF16, 64, false);
    test_fused_qkv_rope(RG_Q6_K, RG_BF16, 64, false);
    const int64_t ctx_long[] = {4099, 1000, 17, 1}, ctx_mid[] = {2050, 333, 5};
    test_attention_decode(RG_BF16, 32, 8, 128, false, 4, ctx_long); /* the benchmark's shape */
    test_attention_decode(RG_F16, 32, 8, 128, true, 4, ctx_long);
    test_attention_decode(RG_F16, 8, 1, 64, false, 3, ctx_mid);    /* MQA: group 8 */
    test_attention_decode(RG_BF16, 4, 4, 128, false, 3, ctx_mid);  /* MHA: group 1 */
    test_attention_decode(RG_BF16, 12, 4, 64, true, 3, ctx_mid);   /* group 3, padded to 4 */
    test_attention_decode(RG_F16, 8, 4, 256, false, 3, ctx_mid);   /* hd 256, group 2 */
    test_attention_decode(RG_BF16, 12, 2, 96, false, 3, ctx_mid);  /* general kernel: hd 96, group 6 */
    test_attention_decode(RG_F32, 32, 8, 128, true, 3, ctx_mid);   /* general kernel, many splits */
    test_prefill_all();
    printf("test_cuda_ops: %d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
