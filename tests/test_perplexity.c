/* test_perplexity.c — rg_perplexity against the reference forward pass: the same
 * windows (n_ctx tokens from an empty cache, second half scored), the NLL of each
 * scored token from the reference's logits in double. f32 weights: relative
 * error 1e-5 (summation order only). Also the window bookkeeping and bad input. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/perplexity.h"
#include "model/synth.h"
#include "ref_forward.h"
#include "testutil.h"

static double ref_ppl(const rg_model *m, const int32_t *tok, int64_t n, int64_t n_ctx, int64_t *scored) {
    int64_t V = m->hp.n_vocab;
    float *logits = malloc((size_t)(n_ctx * V) * sizeof *logits);
    double sum = 0;
    *scored = 0;
    for (int64_t start = 0; start < n; start += n_ctx) {
        int64_t len = n - start < n_ctx ? n - start : n_ctx;
        if (len < 2) break;
        rg_test_ref_forward(m, tok + start, len, false, logits);
        for (int64_t i = len / 2; i + 1 < len; i++) {
            const float *l = logits + i * V;
            double mx = -INFINITY, z = 0;
            for (int64_t j = 0; j < V; j++) mx = l[j] > mx ? l[j] : mx;
            for (int64_t j = 0; j < V; j++) z += exp(l[j] - mx);
            sum += log(z) - (l[tok[start + i + 1]] - mx);
            ++*scored;
        }
    }
    free(logits);
    return exp(sum / (double)*scored);
}

static void test_vs_reference(void **state) {
    uint64_t rng = rg_test_seed();
    rg_synth_params p = {.type = RG_F32, .seed = rg_test_rand_u64(&rng)};
    p.shape = (rg_synth_shape){"t", 2, 128, 4, 2, 256, 300, 128, 10000};
    char path[256];
    snprintf(path, sizeof path, "%s/ridge-ppl-%d.gguf", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    rg_err err = {0};
    assert_int_equal(rg_synth_write(&p, path, &err), RG_OK);
    rg_model *m;
    assert_int_equal(rg_model_load(path, NULL, NULL, &m, &err), RG_OK);
    unlink(path);
    int32_t tok[45];
    for (int i = 0; i < 45; i++) tok[i] = (int32_t)(3 + rg_test_rand_u64(&rng) % 290);
    /* windows of 16 over 45 tokens: 16 + 16 + 13, scoring 7 + 7 + 6 tokens */
    rg_ctx_params cp = {.n_threads = 2, .n_ctx = 16, .max_batch_tokens = 5};
    rg_ctx *ctx;
    assert_int_equal(rg_ctx_create(m, &cp, &ctx, &err), RG_OK);
    rg_ppl_result r;
    assert_int_equal(rg_perplexity(ctx, tok, 45, 16, NULL, NULL, &r, &err), RG_OK);
    int64_t scored;
    double want = ref_ppl(m, tok, 45, 16, &scored);
    printf("  perplexity %.6f, reference %.6f, scored %lld (+- %.4f)\n", r.ppl, want, (long long)r.n_scored,
           r.ppl_stderr);
    assert_int_equal(r.n_scored, 20);
    assert_int_equal(scored, 20);
    assert_true(fabs(r.ppl - want) <= 1e-5 * want);
    assert_true(r.ppl_stderr > 0 && isfinite(r.ppl_stderr));
    /* the cache is left empty */
    assert_int_equal(rg_kv_pool_free_blocks(rg_ctx_kv(ctx)), rg_kv_pool_config(rg_ctx_kv(ctx))->n_blocks);
    /* bad input */
    assert_int_equal(rg_perplexity(ctx, tok, 1, 16, NULL, NULL, &r, &err), RG_E_INVALID);
    assert_int_equal(rg_perplexity(ctx, tok, 45, 1, NULL, NULL, &r, &err), RG_E_INVALID);
    assert_int_equal(rg_perplexity(ctx, tok, 45, 17, NULL, NULL, &r, &err), RG_E_INVALID);
    int32_t bad[4] = {5, 6, 100000, 7};
    assert_int_equal(rg_perplexity(ctx, bad, 4, 4, NULL, NULL, &r, &err), RG_E_INVALID);
    rg_ctx_free(ctx);
    rg_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_vs_reference)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
