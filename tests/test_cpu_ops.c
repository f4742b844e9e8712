/* test_cpu_ops.c — the CPU backend's ops against their plain references
 * (backend/ref/ops_ref.c), and the thread pool.
 *
 * Every fast op runs on fresh random inputs (seed printed; RIDGE_TEST_SEED
 * replays), odd sizes, outputs poisoned with NaN, on 1 and 2 threads, with the
 * scalar kernels and (where the CPU has it) AVX2. Tolerances are relative L2
 * errors ||fast - ref|| / ||ref||, stated per dtype below; each is a few times
 * what float summation order produces, the reference being exact in double.
 * Matmul is checked twice: against the reference with the same activation
 * quantization (only summation order differs), and end to end against the
 * plain f32 product of dequantized weights × unquantized x (bound = activation
 * rounding error). The activation quantizers must match core/quant's reference
 * quantizers bit for bit. RIDGE_TEST_VERBOSE=1 prints every error with its bound. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend/cpu/kernels.h"
#include "backend/cpu/ops.h"
#include "backend/ref/ops_ref.h"
#include "core/fp16.h"
#include "core/quant.h"
#include "core/threadpool.h"
#include "testutil.h"

static uint64_t rng;

/* ---- helpers */

static float *floats(int64_t n) {
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    assert_non_null(p);
    return p;
}

static void fill_normal(float *x, int64_t n, float scale) {
    for (int64_t i = 0; i < n; i++)
        x[i] = scale * rg_test_rand_normal(&rng);
}

static void poison(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        x[i] = NAN;
}

static double rel_l2(const float *got, const float *want, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)got[i] - want[i];
        if (isnan(got[i])) return INFINITY;
        num += d * d, den += (double)want[i] * want[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static bool verbose;

static void check_close(const char *what, const float *got, const float *want, int64_t n, double tol) {
    double e = rel_l2(got, want, n);
    if (verbose) fprintf(stderr, "  %-70s err %.3g (bound %.3g)\n", what, e, tol);
    if (!(e <= tol)) {
        int64_t worst = 0;
        for (int64_t i = 0; i < n; i++)
            if (!(fabsf(got[i] - want[i]) <= fabsf(got[worst] - want[worst]))) worst = i;
        fprintf(stderr, "%s: relative L2 error %.3g > %.3g (worst [%lld]: %.9g vs %.9g)\n", what, e, tol,
                (long long)worst, got[worst], want[worst]);
        fail();
    }
}

typedef struct isa_run {
    rg_cpu_isa isa;
    const char *name;
} isa_run;
static const isa_run isas[] = {{RG_ISA_SCALAR, "scalar"}, {RG_ISA_AVX2, "avx2"}};
static rg_cpu_isa default_isa;

static void restore_isa(void) { rg_cpu_isa_force(default_isa); }

/* ---- matmul */

/* Bound vs the reference with the same activation rounding. f32: float
 * summation vs double. f16/bf16/quants: the products are exact (f16 × f16-rounded
 * f32, int8 dots in int32), so only the float accumulation of the per-element /
 * per-block terms differs. */
typedef struct mm_case {
    rg_dtype type;
    double tol_same_act;
} mm_case;
static const mm_case mm_cases[] = {
    {RG_F32, 2e-6},  {RG_F16, 2e-6},  {RG_BF16, 2e-6}, {RG_Q8_0, 1e-6}, {RG_Q4_0, 1e-6}, {RG_Q4_1, 1e-6},
    {RG_Q5_0, 1e-6}, {RG_Q5_1, 1e-6}, {RG_Q4_K, 1e-6}, {RG_Q5_K, 1e-6}, {RG_Q6_K, 1e-6},
};

/* End-to-end bound vs dequantized W × unquantized x: what rounding the
 * activations costs, measured on this x (||x - act(x)|| / ||x||: ~2^-12 for
 * f16, 2^-9 for bf16, amax/127/sqrt(12) per block for Q8_0/Q8_K), times 6: with
 * as few as 18 outputs the ratio ||W e|| / ||W x|| scatters around ||e|| / ||x||
 * (up to 3.3x seen over 40 seeds); plus the same-activation bound. */
static double act_rounding_error(rg_dtype wtype, const float *x, int64_t n) {
    rg_dtype at;
    assert_true(rg_ref_act_dtype(wtype, &at));
    void *q = malloc((size_t)rg_dtype_row_bytes(at, n));
    float *xr = floats(n);
    assert_non_null(q);
    assert_int_equal(rg_quantize_ref(at, x, q, n, NULL), RG_OK);
    assert_int_equal(rg_dequantize_ref(at, q, xr, n, NULL), RG_OK);
    double e = rel_l2(xr, x, n);
    free(q), free(xr);
    return e;
}

static void put_f16(uint8_t *p, float v) {
    uint16_t h = rg_f32_to_f16(v);
    memcpy(p, &h, 2);
}

/* Random weights: random bytes (every nibble, bit and scale pattern, int8 -128
 * included) with the f16 scale fields set to sane values. Half the rows are
 * instead real quantizations of normal data. */
static void *random_weights(rg_dtype type, int64_t n_out, int64_t k) {
    const rg_dtype_info *info = rg_dtype_get(type);
    int64_t row = rg_dtype_row_bytes(type, k);
    uint8_t *w = malloc((size_t)(row * n_out));
    assert_non_null(w);
    float *tmp = floats(k);
    for (int64_t r = 0; r < n_out; r++) {
        uint8_t *wr = w + r * row;
        if (type == RG_F32 || type == RG_F16 || type == RG_BF16 || r % 2) {
            fill_normal(tmp, k, 0.05f);
            assert_int_equal(rg_quantize_ref(type, tmp, wr, k, NULL), RG_OK);
            continue;
        }
        for (int64_t i = 0; i < row; i++)
            wr[i] = (uint8_t)rg_test_rand_u64(&rng);
        for (int64_t b = 0; b < k / info->block_size; b++) {
            uint8_t *blk = wr + b * info->type_size;
            float d = 0.002f * (1 + rg_test_rand_uniform(&rng)), m = -0.01f * rg_test_rand_normal(&rng);
            switch (type) {
            case RG_Q6_K: put_f16(blk + 208, d / 8); break;
            case RG_Q4_K:
            case RG_Q5_K: put_f16(blk, d / 8), put_f16(blk + 2, fabsf(m) / 8); break;
            case RG_Q4_1:
            case RG_Q5_1: put_f16(blk, d), put_f16(blk + 2, m); break;
            default: put_f16(blk, d); break;
            }
        }
    }
    free(tmp);
    return w;
}

static void dequant_rows(rg_dtype type, const void *w, int64_t n_out, int64_t k, float *out) {
    int64_t row = rg_dtype_row_bytes(type, k);
    for (int64_t r = 0; r < n_out; r++)
        assert_int_equal(rg_dequantize_ref(type, (const uint8_t *)w + r * row, out + r * k, k, NULL), RG_OK);
}

static void matmul_case(const mm_case *c, int64_t k, int64_t n_out, int64_t n_tok) {
    void *w = random_weights(c->type, n_out, k);
    float *x = floats(n_tok * k), *want = floats(n_tok * n_out), *got = floats(n_tok * n_out);
    /* tokens of different magnitudes, and one outlier channel as real activations have */
    for (int64_t t = 0; t < n_tok; t++) {
        fill_normal(x + t * k, k, 0.1f + 3.0f * rg_test_rand_uniform(&rng));
        x[t * k + (t * 7) % k] *= 20;
    }
    rg_err err = {0};
    assert_int_equal(rg_ref_matmul(c->type, w, k, n_out, x, n_tok, want, &err), RG_OK);
    double act_err = 0;
    for (int64_t t = 0; t < n_tok; t++) {
        double e = act_rounding_error(c->type, x + t * k, k);
        act_err = e > act_err ? e : act_err;
    }
    double tol_f32 = 6 * act_err + c->tol_same_act;

    /* end to end: the fast kernel vs plain f32 product with unquantized x */
    float *wf = floats(n_out * k), *exact = floats(n_tok * n_out);
    float *got_odd = floats(n_tok * n_out), *exact_odd = floats(n_tok * n_out);
    dequant_rows(c->type, w, n_out, k, wf);
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t r = 0; r < n_out; r++) {
            double s = 0;
            for (int64_t i = 0; i < k; i++)
                s += (double)wf[r * k + i] * x[t * k + i];
            exact[t * n_out + r] = (float)s;
        }

    char what[160];
    for (int nth = 1; nth <= 2; nth++) {
        rg_cpu_ctx ctx = {.pool = rg_threadpool_create(nth)};
        assert_non_null(ctx.pool);
        assert_int_equal(rg_cpu_reserve(&ctx, k, n_tok, NULL), RG_OK);
        void *reserved = ctx.scratch;
        for (size_t i = 0; i < sizeof isas / sizeof *isas; i++) {
            if (!rg_cpu_isa_force(isas[i].isa)) continue;
            poison(got, n_tok * n_out);
            rg_cpu_matmul(&ctx, c->type, w, k, n_out, x, n_tok, got);
            assert_ptr_equal(ctx.scratch, reserved); /* reserved up front: no allocation in the step */
            snprintf(what, sizeof what, "matmul %s %s k=%lld n_out=%lld n_tok=%lld threads=%d", rg_dtype_name(c->type),
                     isas[i].name, (long long)k, (long long)n_out, (long long)n_tok, nth);
            check_close(what, got, want, n_tok * n_out, c->tol_same_act);
            /* end to end on the rows quantized from zero-mean data (odd rows): a
             * random-bytes row of a format with mins has a large mean, and then
             * one token's error ratio is sum(err)/sum(x), heavy-tailed by chance */
            for (int64_t i = 0; i < n_tok * (n_out / 2); i++) {
                int64_t t = i / (n_out / 2), r = 2 * (i % (n_out / 2)) + 1;
                got_odd[i] = got[t * n_out + r], exact_odd[i] = exact[t * n_out + r];
            }
            strcat(what, " (vs unquantized)");
            check_close(what, got_odd, exact_odd, n_tok * (n_out / 2), tol_f32);
        }
        restore_isa();
        rg_threadpool_free(ctx.pool);
        free(ctx.scratch);
    }
    free(w), free(x), free(want), free(got), free(wf), free(exact), free(got_odd), free(exact_odd);
}

static void test_matmul_decode(void **state) {
    /* n_tok 1..4 take the row-split decode path; n_out odd and prime */
    for (size_t i = 0; i < sizeof mm_cases / sizeof *mm_cases; i++) {
        matmul_case(&mm_cases[i], 512, 37, 1);
        matmul_case(&mm_cases[i], 768, 61, 3);
        matmul_case(&mm_cases[i], 2048, 301, 1); /* several row tiles of >= 64 KiB */
        if (rg_dtype_get(mm_cases[i].type)->block_size == 32) {
            /* block counts that are not a multiple of the kernels' group of 8 */
            matmul_case(&mm_cases[i], 32 * 13, 23, 2);
            matmul_case(&mm_cases[i], 32 * 3, 9, 4);
        }
    }
}

static void test_matmul_prefill(void **state) {
    /* 17 tokens: one token tile with a ragged group of 1; 70 tokens × 300 rows of
     * 1024: several row tiles and token tiles for every type */
    for (size_t i = 0; i < sizeof mm_cases / sizeof *mm_cases; i++) {
        matmul_case(&mm_cases[i], 256, 29, 17);
        matmul_case(&mm_cases[i], 1024, 300, 70);
    }
}

static void test_matmul_odd_k(void **state) {
    /* float weights accept any k: the SIMD loops' scalar tails */
    for (size_t i = 0; i < 3; i++) { /* mm_cases starts with F32, F16, BF16 */
        assert_true(rg_dtype_get(mm_cases[i].type)->block_size == 1);
        for (int64_t k = 1; k <= 45; k += 11)
            matmul_case(&mm_cases[i], k, 5, 3);
    }
}

/* ---- activation quantizers: bit-exact with core/quant's reference */

static void act_inputs(float *x, int64_t k) {
    fill_normal(x, k, 0.01f + 10 * rg_test_rand_uniform(&rng));
    /* ties and edges: a zero block; blocks whose scale makes x*id land on .5;
     * a block whose largest |x| occurs with both signs */
    for (int j = 0; j < 32; j++)
        x[j] = 0;
    for (int j = 0; j < 32; j++)
        x[32 + j] = (float)(j - 16) + 0.5f;
    x[32] = 127.0f; /* Q8_0: d = 1, id = 1, so x.5 is a tie */
    for (int j = 0; j < 256; j++)
        x[256 + j] = (float)((j % 64) - 32) + 0.5f;
    x[256 + 3] = -127.0f; /* Q8_K: max = -127 -> iscale = 1, ties on .5 */
    x[512 + 10] = 9.0f, x[512 + 20] = -9.0f;
    /* regression: products that round to a tie only after rounding (x * 1/d is
     * 58.4999997 but rounds to 58.5; iscale * x is -72.5000032 -> -72.5), which
     * an fma-contracted quantizer got wrong */
    for (int j = 768; j < 1024; j++)
        x[j] = 0;
    x[768] = 4.0517745f, x[769] = 1.8663685f, x[770] = -3.7167852f; /* Q8_0 block 24 */
    x[800] = 4.051774501800537f, x[801] = 2.313020944595337f;       /* Q8_K super-block 3 (max at 800) */
}

static void test_act_quantizers(void **state) {
    const int64_t kmax = 1024 + 256 + 96;
    float *x = floats(kmax), *got = floats(kmax), *want = floats(kmax);
    size_t bytes = rg_cpu_act_row_bytes(RG_ACT_F32, kmax) + 1024;
    uint8_t *a = aligned_alloc(64, bytes), *ref = malloc(bytes);
    assert_non_null(a), assert_non_null(ref);
    for (int rep = 0; rep < 200; rep++) { /* ~250k elements: the fma bug above showed 1 in ~70k */
        /* odd reps: 3 blocks of 32 past the last group of 8 (no Q8_K then) */
        const int64_t k = rep % 2 ? kmax : kmax - 96;
        act_inputs(x, k);
        for (size_t i = 0; i < sizeof isas / sizeof *isas; i++) {
            if (!rg_cpu_isa_force(isas[i].isa)) continue;
            const rg_cpu_kernels *K = rg_cpu_kernels_get();

            K->act[RG_ACT_Q8](x, a, k);
            assert_int_equal(rg_quantize_ref(RG_Q8_0, x, ref, k, NULL), RG_OK);
            const rg_block_q8_0 *q0 = (const rg_block_q8_0 *)ref;
            for (int64_t b = 0; b < k / 32; b++) {
                assert_true(rg_act_q8_d(a, k)[b] == rg_f16_to_f32(q0[b].d));
                assert_memory_equal(a + 32 * b, q0[b].qs, 32);
                int32_t s = 0;
                for (int j = 0; j < 32; j++)
                    s += q0[b].qs[j];
                assert_int_equal(rg_act_q8_sum(a, k)[b], s);
            }

            if (K->act[RG_ACT_Q8P]) { /* the AVX2 nibble kernels' layout: same values, paired and permuted */
                K->act[RG_ACT_Q8P](x, a, k);
                for (int64_t b = 0; b < k / 32; b++) {
                    const int8_t *y0 = (const int8_t *)a + 32 * b;
                    int64_t slot = b;
                    int8_t lo[16], hi[16];
                    if (b < k / 256 * 8) {
                        const int8_t *pair = (const int8_t *)a + 64 * (b / 2) + 16 * (b % 2);
                        memcpy(lo, pair, 16), memcpy(hi, pair + 32, 16);
                        slot = b - b % 8 + (b % 2 ? 4 + b % 8 / 2 : b % 8 / 2);
                    } else {
                        memcpy(lo, y0, 16), memcpy(hi, y0 + 16, 16);
                    }
                    assert_memory_equal(lo, q0[b].qs, 16);
                    assert_memory_equal(hi, q0[b].qs + 16, 16);
                    assert_true(rg_act_q8_d(a, k)[slot] == rg_f16_to_f32(q0[b].d));
                    int32_t s = 0;
                    for (int j = 0; j < 32; j++)
                        s += q0[b].qs[j];
                    assert_int_equal(rg_act_q8_sum(a, k)[slot], s);
                }
            }

            if (k % 256 == 0) K->act[RG_ACT_Q8K](x, a, k);
            if (k % 256 == 0) assert_int_equal(rg_quantize_ref(RG_Q8_K, x, ref, k, NULL), RG_OK);
            const rg_block_q8_K *qk = (const rg_block_q8_K *)ref;
            for (int64_t b = 0; b < k / 256 && k % 256 == 0; b++) {
                assert_true(rg_act_q8k_d(a, k)[b] == qk[b].d);
                assert_memory_equal(a + 256 * b, qk[b].qs, 256);
                if (qk[b].d != 0) assert_memory_equal(rg_act_q8k_bsums(a, k) + 16 * b, qk[b].bsums, 32);
                for (int j = 0; j < 16; j++) {
                    int s = 0;
                    for (int e = 0; e < 16; e++)
                        s += qk[b].qs[16 * j + e];
                    assert_int_equal(rg_act_q8k_bsums(a, k)[16 * b + j], s);
                }
            }

            K->act[RG_ACT_F16R](x, got, k);
            for (int64_t j = 0; j < k; j++)
                want[j] = rg_f16_to_f32(rg_f32_to_f16(x[j]));
            assert_memory_equal(got, want, (size_t)k * sizeof *got);
            K->act[RG_ACT_BF16R](x, got, k);
            for (int64_t j = 0; j < k; j++)
                want[j] = rg_bf16_to_f32(rg_f32_to_bf16(x[j]));
            assert_memory_equal(got, want, (size_t)k * sizeof *got);
        }
        restore_isa();
    }
    free(x), free(got), free(want), free(a), free(ref);
}

/* ---- norm, rope, activations */

static void with_pools(void (*body)(rg_cpu_ctx *ctx, const char *tag)) {
    char tag[64];
    for (int nth = 1; nth <= 2; nth++) {
        rg_cpu_ctx ctx = {.pool = rg_threadpool_create(nth)};
        assert_non_null(ctx.pool);
        for (size_t i = 0; i < sizeof isas / sizeof *isas; i++) {
            if (!rg_cpu_isa_force(isas[i].isa)) continue;
            snprintf(tag, sizeof tag, "%s threads=%d", isas[i].name, nth);
            body(&ctx, tag);
        }
        restore_isa();
        rg_threadpool_free(ctx.pool);
        free(ctx.scratch);
    }
}

static void rmsnorm_body(rg_cpu_ctx *ctx, const char *tag) {
    static const int64_t toks[] = {1, 3, 17};
    const int64_t n = 4099;
    for (int i = 0; i < 3; i++) {
        int64_t nt = toks[i];
        float *x = floats(nt * n), *w = floats(n), *got = floats(nt * n), *want = floats(nt * n);
        fill_normal(x, nt * n, 2.0f), fill_normal(w, n, 1.0f);
        rg_ref_rmsnorm(x, w, n, nt, 1e-5f, want);
        poison(got, nt * n);
        rg_cpu_rmsnorm(ctx, x, w, n, nt, 1e-5f, got);
        check_close(tag, got, want, nt * n, 1e-6);
        rg_cpu_rmsnorm(ctx, x, w, n, nt, 1e-5f, x); /* in place */
        check_close(tag, x, want, nt * n, 1e-6);
        free(x), free(w), free(got), free(want);
    }
}
static void test_rmsnorm(void **state) { with_pools(rmsnorm_body); }

/* RoPE: the fast op builds angles by ggml's float recurrence (as llama.cpp
 * does), the reference in double: the angle error grows with the position
 * (float spacing at pos), so the bound is stated per position range. */
static void rope_body(rg_cpu_ctx *ctx, const char *tag) {
    const int64_t n_head = 5, head_dim = 64, nt = 17;
    float factors[32];
    for (int i = 0; i < 32; i++)
        factors[i] = 1.0f + 7.0f * (float)i / 31.0f;
    for (int variant = 0; variant < 8; variant++) {
        rg_rope_params p = {
            .n_rot = variant & 4 ? 32 : 64, /* partial rotation leaves the tail alone */
            .freq_base = variant & 1 ? 500000.0f : 10000.0f,
            .freq_scale = variant & 2 ? 0.25f : 1.0f,
            .neox = variant & 1,
        };
        if (variant == 3) p.freq_factors = factors;
        for (int range = 0; range < 2; range++) {
            int32_t pos[17];
            for (int t = 0; t < nt; t++)
                pos[t] = (int32_t)(rg_test_rand_u64(&rng) % (range ? 8192 : 64));
            float *x = floats(nt * n_head * head_dim), *want = floats(nt * n_head * head_dim);
            fill_normal(x, nt * n_head * head_dim, 1.0f);
            memcpy(want, x, (size_t)(nt * n_head * head_dim) * sizeof *x);
            rg_ref_rope(want, pos, nt, n_head, head_dim, &p);
            rg_cpu_rope(ctx, x, pos, nt, n_head, head_dim, &p);
            char what[128];
            snprintf(what, sizeof what, "rope %s variant %d pos<%d", tag, variant, range ? 8192 : 64);
            check_close(what, x, want, nt * n_head * head_dim, range ? 2e-4 : 2e-6);
            free(x), free(want);
        }
    }
}
static void test_rope(void **state) { with_pools(rope_body); }

static void swiglu_body(rg_cpu_ctx *ctx, const char *tag) {
    static const int64_t sizes[] = {1, 13, 8 * 1024 + 5, 17 * 4099};
    for (int i = 0; i < 4; i++) {
        int64_t n = sizes[i];
        float *g = floats(n), *u = floats(n), *got = floats(n), *want = floats(n);
        fill_normal(g, n, 4.0f), fill_normal(u, n, 1.0f);
        if (n > 4) g[0] = 95.0f, g[1] = -95.0f, g[2] = -87.5f, g[3] = 0.0f; /* exp clamps */
        rg_ref_swiglu(g, u, n, want);
        poison(got, n);
        rg_cpu_swiglu(ctx, g, u, n, got);
        check_close(tag, got, want, n, 1e-6);
        for (int64_t j = 0; j < n; j++) /* elementwise too: silu has no cancellation */
            if (!(fabsf(got[j] - want[j]) <= 4e-7f * fabsf(want[j]) + 1e-30f)) {
                fprintf(stderr, "swiglu %s: [%lld] gate %g: %.9g vs %.9g\n", tag, (long long)j, g[j], got[j], want[j]);
                fail();
            }
        rg_cpu_swiglu(ctx, g, u, n, g); /* out aliases gate */
        check_close(tag, g, want, n, 1e-6);
        free(g), free(u), free(got), free(want);
    }
}
static void test_swiglu(void **state) { with_pools(swiglu_body); }

static void add_body(rg_cpu_ctx *ctx, const char *tag) {
    static const int64_t sizes[] = {1, 7, 17 * 4099};
    for (int i = 0; i < 3; i++) {
        int64_t n = sizes[i];
        float *y = floats(n), *x = floats(n), *want = floats(n);
        fill_normal(y, n, 1.0f), fill_normal(x, n, 1.0f);
        memcpy(want, y, (size_t)n * sizeof *y);
        rg_ref_add(want, x, n);
        rg_cpu_add(ctx, y, x, n);
        assert_memory_equal(y, want, (size_t)n * sizeof *y);
        free(y), free(x), free(want);
    }
}
static void test_add(void **state) { with_pools(add_body); }

static void softmax_body(rg_cpu_ctx *ctx, const char *tag) {
    static const int64_t sizes[] = {1, 5, 32003};
    for (int i = 0; i < 3; i++) {
        int64_t n = sizes[i], rows = 3;
        float *x = floats(n * rows), *want = floats(n * rows);
        fill_normal(x, n * rows, 5.0f);
        x[0] = -1e30f; /* underflows to 0 */
        memcpy(want, x, (size_t)(n * rows) * sizeof *x);
        rg_ref_softmax(want, n, rows);
        rg_cpu_softmax(x, n, rows);
        check_close(tag, x, want, n * rows, 1e-6);
        free(x), free(want);
    }
}
static void test_softmax(void **state) { with_pools(softmax_body); }

static void test_get_rows(void **state) {
    static const rg_dtype types[] = {RG_F32, RG_F16, RG_BF16, RG_Q8_0, RG_Q4_0, RG_Q4_K, RG_Q6_K};
    const int64_t k = 512, n_rows = 11;
    int32_t ids[5] = {10, 0, 3, 3, 7};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        void *w = random_weights(types[i], n_rows, k);
        float *got = floats(5 * k), *want = floats(5 * k);
        poison(got, 5 * k);
        assert_int_equal(rg_ref_get_rows(types[i], w, k, ids, 5, want, NULL), RG_OK);
        rg_cpu_get_rows(types[i], w, k, ids, 5, got);
        assert_memory_equal(got, want, 5 * k * sizeof *got);
        free(w), free(got), free(want);
    }
}

/* ---- thread pool */

typedef struct cover {
    _Atomic int *hits;
    int64_t n;
    _Atomic int ran[8];
} cover;

static void cover_task(void *arg, int ith, int nth) {
    cover *c = arg;
    int64_t lo, hi;
    rg_split_range(c->n, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++)
        atomic_fetch_add_explicit(&c->hits[i], 1, memory_order_relaxed);
    atomic_fetch_add(&c->ran[ith], 1);
}

static void test_threadpool(void **state) {
    for (int nth = 1; nth <= 4; nth++) { /* 3 and 4 oversubscribe a 2-core machine */
        rg_threadpool *pool = rg_threadpool_create(nth);
        assert_non_null(pool);
        assert_int_equal(rg_threadpool_size(pool), nth);
        const int64_t n = 1001;
        cover c = {.n = n};
        c.hits = calloc((size_t)n, sizeof *c.hits);
        assert_non_null(c.hits);
        const int regions = nth <= 2 ? 20000 : 2000;
        for (int r = 0; r < regions; r++) {
            rg_threadpool_run(pool, cover_task, &c);
            if (r % 997 == 0) usleep(2000); /* long enough for the workers to go to sleep */
        }
        for (int64_t i = 0; i < n; i++)
            assert_int_equal(c.hits[i], regions);
        for (int i = 0; i < nth; i++)
            assert_int_equal(c.ran[i], regions);
        free(c.hits);
        rg_threadpool_free(pool);
    }
    rg_threadpool *pool = rg_threadpool_create(0);
    assert_non_null(pool);
    assert_int_equal(rg_threadpool_size(pool), (int)sysconf(_SC_NPROCESSORS_ONLN));
    rg_threadpool_free(pool);
    rg_threadpool_free(NULL);
}

static void test_split_range(void **state) {
    for (int64_t n = 0; n < 40; n++)
        for (int nth = 1; nth <= 9; nth++) {
            int64_t next = 0;
            for (int i = 0; i < nth; i++) {
                int64_t lo, hi;
                rg_split_range(n, i, nth, &lo, &hi);
                assert_int_equal(lo, next); /* contiguous, in order, no gaps */
                assert_true(hi >= lo && hi - lo <= n / nth + 1);
                next = hi;
            }
            assert_int_equal(next, n);
        }
}

int main(void) {
    rng = rg_test_seed();
    verbose = getenv("RIDGE_TEST_VERBOSE") != NULL;
    default_isa = rg_cpu_isa_active();
    fprintf(stderr, "[isa] best available: %s\n",
            default_isa == RG_ISA_AVX2 ? "avx2" : "scalar (AVX2 paths not tested)");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_range),    cmocka_unit_test(test_threadpool),
        cmocka_unit_test(test_act_quantizers), cmocka_unit_test(test_matmul_decode),
        cmocka_unit_test(test_matmul_prefill), cmocka_unit_test(test_matmul_odd_k),
        cmocka_unit_test(test_rmsnorm),        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_swiglu),         cmocka_unit_test(test_add),
        cmocka_unit_test(test_softmax),        cmocka_unit_test(test_get_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
