/* test_attention.c — rg_cpu_attention (flash and naive) against the double-
 * precision reference rg_ref_attention over contiguous K/V.
 *
 * Each case builds a pool whose free list is shuffled first, so the sequences'
 * block tables interleave and are out of order; stores K/V for two layers through
 * rg_kv_store in shuffled multi-sequence batches; then runs layer 1 for a batch
 * of query tokens (a prefill chunk of one sequence together with decode tokens
 * of others, in shuffled order) into outputs poisoned with NaN, on the AVX2 and
 * the scalar kernels, with no thread pool and with 3 threads (few decode tokens
 * of long contexts then take the split-K path: ranges of a context computed
 * apart and merged). Odd shapes too: head_dim 20, block sizes 5 and 64, ALiBi,
 * and a token with n_ctx 0. The kernels' exp is checked against libm's.
 *
 * Tolerance: max |out - ref| <= 1e-5 * max |ref| for every pool dtype. For f16
 * and bf16 pools the reference is fed the same rounded K/V (the pool's rounding
 * is tested bit for bit in test_kv_pool.c), so what remains is f32 arithmetic
 * against double, and the bound stays as tight as for f32. Flash and naive must
 * also agree with each other within the same bound. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend/cpu/attention.h"
#include "backend/cpu/attention_internal.h"
#include "backend/cpu/kernels.h"
#include "backend/ref/attention_ref.h"
#include "core/fp16.h"
#include "testutil.h"

#define TOL 1e-5

static uint64_t rng;
static rg_threadpool *pool3;

static int64_t rand_below(int64_t n) { return (int64_t)(rg_test_rand_u64(&rng) % (uint64_t)n); }

/* A sequence: n_cache positions in the cache once the batch is stored, of
 * which [first_query, n_cache) are query tokens of the batch. */
typedef struct seq_spec {
    int32_t n_cache, first_query;
} seq_spec;

typedef struct attn_case {
    const char *what;
    int64_t n_head, n_head_kv, head_dim, block_size;
    int n_seq;
    seq_spec seqs[6];
    float q_mul; /* score spread: larger is a peakier softmax */
    bool alibi;
} attn_case;

static float round_to(rg_dtype t, float x) {
    if (t == RG_F16) return rg_f16_to_f32(rg_f32_to_f16(x));
    if (t == RG_BF16) return rg_bf16_to_f32(rg_f32_to_bf16(x));
    return x;
}

static void swap_i32(int32_t *a, int64_t i, int64_t j) {
    int32_t t = a[i];
    a[i] = a[j], a[j] = t;
}

static double max_err(const float *got, const float *want, int64_t n, double *scale_out) {
    double err = 0, scale = 0;
    *scale_out = 1;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(got[i])) return INFINITY;
        double e = fabs((double)got[i] - want[i]);
        err = e > err ? e : err;
        scale = fabs(want[i]) > scale ? fabs(want[i]) : scale;
    }
    *scale_out = scale > 0 ? scale : 1;
    return err;
}

static void run_case(const attn_case *c, rg_dtype dtype) {
    const int64_t NL = 2, L = 1; /* attention runs on layer 1; layer 0 holds other data */
    int64_t nkv = c->n_head_kv, hd = c->head_dim, bs = c->block_size, nh = c->n_head;
    rg_err err = {0};

    /* the pool, its free list shuffled so tables interleave out of order */
    int64_t n_blocks = 3;
    for (int s = 0; s < c->n_seq; s++)
        n_blocks += (c->seqs[s].n_cache + bs - 1) / bs;
    rg_kv_config kc = {NL, nkv, hd, bs, n_blocks, dtype};
    rg_kv_pool *kv;
    if (rg_kv_pool_create(&kc, &kv, &err)) fail_msg("%s", err.msg);
    int32_t *ids = malloc((size_t)n_blocks * sizeof *ids);
    for (int64_t i = 0; i < n_blocks; i++)
        ids[i] = rg_kv_alloc_block(kv);
    for (int64_t i = n_blocks - 1; i > 0; i--)
        swap_i32(ids, i, rand_below(i + 1));
    for (int64_t i = 0; i < n_blocks; i++)
        rg_kv_block_unref(kv, ids[i]);
    free(ids);
    rg_kv_seq seqs[6];
    memset(seqs, 0, sizeof seqs);
    for (int32_t n = 1, more = 1; more; n += (int32_t)bs) {
        more = 0;
        for (int s = 0; s < c->n_seq; s++) {
            int32_t want = n < c->seqs[s].n_cache ? n : c->seqs[s].n_cache;
            if (rg_kv_seq_reserve(kv, &seqs[s], want, &err)) fail_msg("%s", err.msg);
            more |= n < c->seqs[s].n_cache;
        }
    }

    /* K/V per sequence and layer, contiguous [n_cache][nkv][hd]: `raw` is what
     * is stored, `rnd` the same rounded to the pool dtype (the reference's input) */
    float *raw[6][2], *rnd[6][2];
    int64_t n_all = 0;
    for (int s = 0; s < c->n_seq; s++) {
        n_all += c->seqs[s].n_cache;
        for (int l = 0; l < NL; l++) {
            size_t n = 2 * (size_t)(c->seqs[s].n_cache * nkv * hd); /* K then V */
            raw[s][l] = malloc(n * sizeof(float) + 1);
            rnd[s][l] = malloc(n * sizeof(float) + 1);
            for (size_t i = 0; i < n; i++)
                raw[s][l][i] = rg_test_rand_normal(&rng);
            for (size_t i = 0; i < n; i++)
                rnd[s][l][i] = round_to(dtype, raw[s][l][i]);
        }
    }
    /* store every position of every sequence, in shuffled batches */
    int32_t *all_seq = malloc((size_t)n_all * sizeof *all_seq), *all_pos = malloc((size_t)n_all * sizeof *all_pos);
    for (int s = 0, t = 0; s < c->n_seq; s++)
        for (int32_t p = 0; p < c->seqs[s].n_cache; p++, t++)
            all_seq[t] = s, all_pos[t] = p;
    for (int64_t i = n_all - 1; i > 0; i--) {
        int64_t j = rand_below(i + 1);
        swap_i32(all_seq, i, j), swap_i32(all_pos, i, j);
    }
    float *kb = malloc((size_t)(n_all * nkv * hd) * sizeof *kb), *vb = malloc((size_t)(n_all * nkv * hd) * sizeof *vb);
    const int32_t **tb = malloc((size_t)n_all * sizeof *tb);
    for (int l = 0; l < NL; l++) {
        for (int64_t t0 = 0; t0 < n_all;) {
            int64_t n = 1 + rand_below(40);
            if (n > n_all - t0) n = n_all - t0;
            for (int64_t t = 0; t < n; t++) {
                int s = all_seq[t0 + t];
                int64_t p = all_pos[t0 + t], m = c->seqs[s].n_cache * nkv * hd;
                memcpy(kb + t * nkv * hd, raw[s][l] + p * nkv * hd, (size_t)(nkv * hd) * sizeof *kb);
                memcpy(vb + t * nkv * hd, raw[s][l] + m + p * nkv * hd, (size_t)(nkv * hd) * sizeof *vb);
                tb[t] = seqs[s].blocks;
            }
            rg_kv_store(kv, l, kb, vb, n, tb, all_pos + t0);
            t0 += n;
        }
    }
    for (int s = 0; s < c->n_seq; s++)
        seqs[s].n_tokens = c->seqs[s].n_cache;

    /* the query batch, shuffled */
    int64_t n_tok = 0;
    for (int s = 0; s < c->n_seq; s++)
        n_tok += c->seqs[s].n_cache - c->seqs[s].first_query;
    int32_t *tok_seq = malloc((size_t)n_tok * sizeof *tok_seq), *n_ctx = malloc((size_t)n_tok * sizeof *n_ctx);
    for (int s = 0, t = 0; s < c->n_seq; s++)
        for (int32_t p = c->seqs[s].first_query; p < c->seqs[s].n_cache; p++, t++)
            tok_seq[t] = s, n_ctx[t] = p + 1;
    for (int64_t i = n_tok - 1; i > 0; i--) {
        int64_t j = rand_below(i + 1);
        swap_i32(tok_seq, i, j), swap_i32(n_ctx, i, j);
    }
    const int32_t **tables = malloc((size_t)n_tok * sizeof *tables);
    const float **rk = malloc((size_t)n_tok * sizeof *rk), **rv = malloc((size_t)n_tok * sizeof *rv);
    for (int64_t t = 0; t < n_tok; t++) {
        int s = tok_seq[t];
        tables[t] = seqs[s].blocks;
        rk[t] = rnd[s][L];
        rv[t] = rnd[s][L] + c->seqs[s].n_cache * nkv * hd;
    }
    size_t n_out = (size_t)(n_tok * nh * hd);
    float *q = malloc(n_out * sizeof *q), *want = malloc(n_out * sizeof *want);
    float *flash = malloc(n_out * sizeof *flash), *naive = malloc(n_out * sizeof *naive);
    for (size_t i = 0; i < n_out; i++)
        q[i] = rg_test_rand_normal(&rng) * c->q_mul;
    float *slopes = NULL;
    if (c->alibi) {
        slopes = malloc((size_t)nh * sizeof *slopes);
        for (int64_t h = 0; h < nh; h++)
            slopes[h] = powf(2.0f, -8.0f * (float)(h + 1) / (float)nh);
    }
    float scale = 1.0f / sqrtf((float)hd);
    assert_int_equal(rg_ref_attention(n_tok, nh, nkv, hd, q, rk, rv, n_ctx, scale, slopes, want, &err), RG_OK);

    for (int isa = RG_ISA_AVX2; isa >= RG_ISA_SCALAR; isa--) {
        if (!rg_cpu_isa_force((rg_cpu_isa)isa)) continue;
        for (int threaded = 0; threaded < 2; threaded++) {
            rg_cpu_ctx ctx = {.pool = threaded ? pool3 : NULL};
            for (size_t i = 0; i < n_out; i++)
                flash[i] = naive[i] = NAN;
            rg_attn_args a = {kv, L, n_tok, nh, q, flash, tables, n_ctx, scale, RG_ATTN_FLASH, slopes};
            rg_cpu_attention(&ctx, &a);
            a.kind = RG_ATTN_NAIVE, a.out = naive;
            rg_cpu_attention(&ctx, &a);
            free(ctx.scratch);
            double sf, sn, sx, ef = max_err(flash, want, (int64_t)n_out, &sf),
                               en = max_err(naive, want, (int64_t)n_out, &sn);
            double ex = max_err(flash, naive, (int64_t)n_out, &sx);
            const char *isa_name = isa == RG_ISA_AVX2 ? "avx2" : "scalar";
            if (ef > TOL * sf || en > TOL * sn || ex > TOL * sx)
                fail_msg("%s, %s pool, %s, %s: max err flash %.3g naive %.3g flash-naive %.3g (scale %.3g, bound %.3g)",
                         c->what, rg_dtype_name(dtype), isa_name, threaded ? "3 threads" : "1 thread", ef, en, ex, sf,
                         TOL * sf);
            if (threaded && dtype == RG_F16)
                print_message("%-40s %-6s rel err flash %.2e naive %.2e\n", c->what, isa_name, ef / sf, en / sn);
        }
    }
    rg_cpu_isa_force(RG_ISA_AVX2);

    for (int s = 0; s < c->n_seq; s++) {
        rg_kv_seq_free(kv, &seqs[s]);
        for (int l = 0; l < NL; l++)
            free(raw[s][l]), free(rnd[s][l]);
    }
    assert_int_equal(rg_kv_pool_free_blocks(kv), n_blocks);
    rg_kv_pool_free(kv);
    free(all_seq), free(all_pos), free(kb), free(vb), free(tb), free(tok_seq), free(n_ctx), free(tables);
    free(rk), free(rv), free(q), free(want), free(flash), free(naive), free(slopes);
}

static void run_all_dtypes(const attn_case *c) {
    run_case(c, RG_F32);
    run_case(c, RG_F16);
    run_case(c, RG_BF16);
}

/* One sequence, one decode token at each of the context lengths that straddle
 * block boundaries. */
static void decode_lengths(const char *what, int64_t nh, int64_t nkv, int64_t hd) {
    static const int32_t lens[] = {1, 15, 16, 17, 100, 300};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        char name[96];
        snprintf(name, sizeof name, "%s decode n_ctx %d", what, lens[i]);
        attn_case c = {name, nh, nkv, hd, 16, 1, {{lens[i], lens[i] - 1}}, 1.0f, false};
        run_all_dtypes(&c);
    }
}

static void test_decode_mha(void **state) { (void)state, decode_lengths("MHA 4/4 hd64", 4, 4, 64); }
static void test_decode_gqa(void **state) { (void)state, decode_lengths("GQA 8/2 hd128", 8, 2, 128); }
static void test_decode_mqa(void **state) { (void)state, decode_lengths("MQA 8/1 hd64", 8, 1, 64); }
static void test_decode_hd32(void **state) { (void)state, decode_lengths("GQA 4/2 hd32", 4, 2, 32); }

/* A prefill chunk of one sequence (its first positions already cached) with
 * decode tokens of four others, lengths around the block size, in one batch. */
static void mixed_batch(const char *what, int64_t nh, int64_t nkv, int64_t hd, int64_t bs, float q_mul, bool alibi) {
    attn_case c = {what, nh, nkv, hd, bs, 5, {{53, 20}, {1, 0}, {16, 15}, {100, 99}, {300, 299}}, q_mul, alibi};
    run_all_dtypes(&c);
}

static void test_mixed_gqa(void **state) { (void)state, mixed_batch("mixed GQA 8/2 hd64", 8, 2, 64, 16, 1.0f, false); }
static void test_mixed_mqa(void **state) {
    (void)state, mixed_batch("mixed MQA 8/1 hd128", 8, 1, 128, 16, 1.0f, false);
}
static void test_mixed_mha_peaky(void **state) {
    (void)state, mixed_batch("mixed MHA 4/4 hd64, peaky", 4, 4, 64, 16, 4.0f, false);
}
/* head_dim not a multiple of 8 (masked tails), odd block size (tiles of < 8 rows) */
static void test_mixed_odd_shapes(void **state) {
    (void)state, mixed_batch("mixed GQA 6/3 hd20 bs5", 6, 3, 20, 5, 2.0f, false);
}
/* group sizes the kernels take in passes of 8, 4, 2 and 1 heads: 12 = 8 + 4, 7 = 4 + 2 + 1 */
static void test_mixed_odd_groups(void **state) {
    (void)state;
    mixed_batch("mixed MQA 12/1 hd32", 12, 1, 32, 16, 1.0f, false);
    mixed_batch("mixed GQA 14/2 hd64", 14, 2, 64, 16, 1.0f, false);
}
static void test_mixed_big_blocks(void **state) {
    (void)state, mixed_batch("mixed GQA 8/2 hd64 bs64", 8, 2, 64, 64, 1.0f, false);
}
static void test_mixed_alibi(void **state) {
    (void)state, mixed_batch("mixed GQA 8/2 hd32 alibi", 8, 2, 32, 16, 1.0f, true);
}

/* Decode tokens of long contexts, fewer than the threads x 4: each context is
 * split into ranges computed apart and merged (split-K). */
static void test_decode_split(void **state) {
    (void)state;
    attn_case c = {"decode split-K GQA 8/2 hd64", 8, 2, 64, 16, 3, {{700, 699}, {1030, 1029}, {64, 63}}, 2.0f, false};
    run_all_dtypes(&c);
    attn_case d = {"decode split-K MQA 4/1 hd20 bs5", 4, 1, 20, 5, 2, {{1500, 1498}, {3, 2}}, 1.0f, true};
    run_all_dtypes(&d);
}

/* A whole prompt prefilled in one batch (causal within the batch). */
static void test_prefill(void **state) {
    (void)state;
    attn_case c = {"prefill GQA 8/2 hd64", 8, 2, 64, 16, 2, {{77, 0}, {33, 0}}, 1.0f, false};
    run_all_dtypes(&c);
}

/* A token with n_ctx 0 gets zeros, not NaN; reserving scratch up front means the
 * call allocates nothing. */
static void test_empty_context_and_reserve(void **state) {
    (void)state;
    rg_kv_config kc = {1, 2, 64, 16, 4, RG_F16};
    rg_kv_pool *kv;
    rg_err err = {0};
    assert_int_equal(rg_kv_pool_create(&kc, &kv, &err), RG_OK);
    rg_kv_seq s = {0};
    assert_int_equal(rg_kv_seq_reserve(kv, &s, 20, &err), RG_OK);
    float k[2 * 64], v[2 * 64], q[2 * 4 * 64], out[2 * 4 * 64];
    for (int i = 0; i < 2 * 64; i++)
        k[i] = rg_test_rand_normal(&rng), v[i] = 1.0f;
    for (int i = 0; i < 2 * 4 * 64; i++)
        q[i] = rg_test_rand_normal(&rng);
    const int32_t *tables[2] = {s.blocks, NULL};
    int32_t pos[1] = {0}, n_ctx[2] = {1, 0};
    rg_kv_store(kv, 0, k, v, 1, tables, pos);
    for (int kind = 0; kind < 2; kind++) {
        rg_cpu_ctx ctx = {.pool = pool3};
        assert_int_equal(rg_cpu_attention_reserve(&ctx, kv, 4, 300, &err), RG_OK);
        void *scratch = ctx.scratch;
        for (int i = 0; i < 2 * 4 * 64; i++)
            out[i] = NAN;
        rg_attn_args a = {kv, 0, 2, 4, q, out, tables, n_ctx, 0.125f, (rg_attn_kind)kind, NULL};
        rg_cpu_attention(&ctx, &a);
        assert_ptr_equal(ctx.scratch, scratch);
        for (int i = 0; i < 4 * 64; i++)
            assert_float_equal(out[i], 1.0f, 0.0f); /* one position: v itself */
        for (int i = 4 * 64; i < 2 * 4 * 64; i++)
            assert_float_equal(out[i], 0.0f, 0.0f);
        free(ctx.scratch);
    }
    rg_kv_seq_free(kv, &s);
    rg_kv_pool_free(kv);
}

/* The kernels' exp against libm's, on [-100, 0] (every score minus its max
 * lands there): within 4e-7 relative, underflow to (near) zero below -87, and a
 * NaN score stays NaN instead of being clamped into a probability. */
static void test_exp_accuracy(void **state) {
    (void)state;
    enum { N = 4099 };
    static float s[N], x[N];
    for (int isa = RG_ISA_AVX2; isa >= RG_ISA_SCALAR; isa--) {
        if (!rg_cpu_isa_force((rg_cpu_isa)isa)) continue;
        const rg_attn_isa *k = rg_attn_isa_get();
        for (int i = 0; i < N; i++)
            x[i] = -100.0f * rg_test_rand_uniform(&rng);
        x[0] = 0, x[1] = -1e-30f, x[2] = -87.0f, x[3] = -88.5f, x[4] = -0.3465736f, x[5] = -0.3465737f;
        for (int i = 0; i < N; i++)
            s[i] = x[i] + 3.0f;
        double sum = 0, got_sum = k->exp_sum(s, N, 3.0f);
        for (int i = 0; i < N; i++) {
            double want = exp((double)(x[i] + 3.0f) - 3.0); /* the same float input the kernel saw */
            sum += s[i];
            if (!(fabs(s[i] - want) <= 4e-7 * want + 1e-37))
                fail_msg("isa %d: exp(%.9g) = %.9g, want %.9g", isa, (double)x[i], (double)s[i], want);
        }
        assert_true(fabs(got_sum - sum) <= 3e-5 * sum); /* a float sum of 4099 terms */
        for (int i = 0; i < 13; i++)
            s[i] = i == 6 ? NAN : -1.0f;
        k->exp_sum(s, 13, 0.0f);
        assert_true(isnan(s[6]));
        assert_float_equal(s[12], expf(-1.0f), 1e-7);
    }
    rg_cpu_isa_force(RG_ISA_AVX2);
}

int main(void) {
    rng = rg_test_seed();
    pool3 = rg_threadpool_create(3);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exp_accuracy),
        cmocka_unit_test(test_decode_mha),
        cmocka_unit_test(test_decode_gqa),
        cmocka_unit_test(test_decode_mqa),
        cmocka_unit_test(test_decode_hd32),
        cmocka_unit_test(test_mixed_gqa),
        cmocka_unit_test(test_mixed_mqa),
        cmocka_unit_test(test_mixed_mha_peaky),
        cmocka_unit_test(test_mixed_odd_shapes),
        cmocka_unit_test(test_mixed_odd_groups),
        cmocka_unit_test(test_mixed_big_blocks),
        cmocka_unit_test(test_mixed_alibi),
        cmocka_unit_test(test_decode_split),
        cmocka_unit_test(test_prefill),
        cmocka_unit_test(test_empty_context_and_reserve),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    rg_threadpool_free(pool3);
    return r;
}
