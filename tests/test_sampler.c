/* test_sampler.c — the sampler against the distributions it claims to draw from.
 *
 * Statistical checks draw N = 40000 tokens and require every token's count to
 * lie within 5 standard deviations (sqrt(N p (1-p))) of N p, with p computed
 * here in double from the stated chain (penalties, top-k, temperature, softmax,
 * top-p, min-p); a token outside the kept set must never appear. At 5 sigma
 * a correct sampler passes with probability > 1 - 1e-6 per token and seed (the
 * seed is printed; RIDGE_TEST_SEED replays it). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/sampler.h"
#include "testutil.h"

#define N_DRAWS 40000
#define V 6

static const float base_logits[V] = {2.0f, 1.5f, 1.0f, 0.2f, -0.5f, -3.0f};

static rg_sampling_params plain(float temp) {
    rg_sampling_params p = rg_sampling_default();
    p.temperature = temp;
    p.top_k = 0, p.top_p = 1.0f, p.min_p = 0.0f;
    p.seed = rg_test_seed();
    return p;
}

/* count[t] = how many of `draws` tokens a sampler made with p drew as t, each
 * draw from a fresh copy of logits[n] (the sampler may edit its row). */
static void draw_counts(const rg_sampling_params *p, const float *logits, int n, int draws, long *count) {
    rg_sampler *s;
    rg_err err = {0};
    assert_int_equal(rg_sampler_create(p, n, &s, &err), RG_OK);
    float *work = malloc((size_t)n * sizeof *work);
    memset(count, 0, (size_t)n * sizeof *count);
    for (int d = 0; d < draws; d++) {
        memcpy(work, logits, (size_t)n * sizeof *work);
        int32_t t = rg_sampler_sample(s, work, NULL, 0);
        assert_true(t >= 0 && t < n);
        count[t]++;
    }
    free(work);
    rg_sampler_free(s);
}

/* Draw N_DRAWS tokens with p and check the counts against want[] (probabilities;
 * 0 = must never appear). */
static void check_distribution(const char *what, const rg_sampling_params *p, const double *want) {
    long count[V];
    draw_counts(p, base_logits, V, N_DRAWS, count);
    for (int t = 0; t < V; t++) {
        double mean = N_DRAWS * want[t], sd = sqrt(N_DRAWS * want[t] * (1 - want[t]));
        printf("  %-22s token %d: %6ld draws, expected %8.1f\n", what, t, count[t], mean);
        if (want[t] == 0) {
            if (count[t]) fail_msg("%s: token %d drawn %ld times, must never be", what, t, count[t]);
        } else if (fabs((double)count[t] - mean) > 5 * sd) {
            fail_msg("%s: token %d drawn %ld times, expected %.1f +- %.1f", what, t, count[t], mean, 5 * sd);
        }
    }
}

/* softmax(base / temp) over the tokens with keep[t], renormalized. */
static void softmax_kept(double temp, const int *keep, double *out) {
    double mx = -INFINITY, sum = 0;
    for (int t = 0; t < V; t++)
        if (keep[t] && base_logits[t] / temp > mx) mx = base_logits[t] / temp;
    for (int t = 0; t < V; t++) sum += out[t] = keep[t] ? exp(base_logits[t] / temp - mx) : 0;
    for (int t = 0; t < V; t++) out[t] /= sum;
}

static void test_greedy(void **state) {
    rg_sampling_params p = plain(0.0f);
    rg_sampler *s;
    rg_err err = {0};
    assert_int_equal(rg_sampler_create(&p, V, &s, &err), RG_OK);
    float l[V];
    memcpy(l, base_logits, sizeof l);
    assert_int_equal(rg_sampler_sample(s, l, NULL, 0), 0);
    /* ties go to the lowest id */
    float tie[V] = {0, 5, 1, 5, 2, 0};
    assert_int_equal(rg_sampler_sample(s, tie, NULL, 0), 1);
    int32_t second = -1;
    assert_int_equal(rg_argmax(base_logits, V, &second), 0);
    assert_int_equal(second, 1);
    rg_sampler_free(s);
    /* a repetition penalty of 2 on token 0 (2.0 -> 1.0) hands greedy to token 1 */
    p.repeat_penalty = 2.0f;
    assert_int_equal(rg_sampler_create(&p, V, &s, &err), RG_OK);
    memcpy(l, base_logits, sizeof l);
    int32_t hist[] = {0};
    assert_int_equal(rg_sampler_sample(s, l, hist, 1), 1);
    rg_sampler_free(s);
}

/* rg_sampler_is_greedy: true exactly when sampling is rg_argmax of the raw row
 * whatever the history (checked by sampling with a history of the argmax itself). */
static void test_is_greedy(void **state) {
    struct {
        float temp, repeat, freq, presence;
        int32_t last_n;
        bool greedy;
    } cases[] = {
        {0, 1, 0, 0, 64, true},     {-1, 1, 0, 0, 64, true},    {0.8f, 1, 0, 0, 64, false},
        {0, 1.1f, 0, 0, 64, false}, {0, 1, 0.5f, 0, 64, false}, {0, 1, 0, 0.5f, 64, false},
        {0, 1.1f, 0.5f, 0, 0, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        rg_sampling_params p = plain(cases[i].temp);
        p.repeat_penalty = cases[i].repeat, p.frequency_penalty = cases[i].freq;
        p.presence_penalty = cases[i].presence, p.penalty_last_n = cases[i].last_n;
        rg_sampler *s;
        rg_err err = {0};
        assert_int_equal(rg_sampler_create(&p, V, &s, &err), RG_OK);
        assert_int_equal(rg_sampler_is_greedy(s), cases[i].greedy);
        if (cases[i].greedy) {
            float l[V];
            memcpy(l, base_logits, sizeof l);
            int32_t hist[] = {0, 0, 1};
            assert_int_equal(rg_sampler_sample(s, l, hist, 3), rg_argmax(base_logits, V, NULL));
        }
        rg_sampler_free(s);
    }
}

static void test_temperature(void **state) {
    int all[V] = {1, 1, 1, 1, 1, 1};
    double want[V];
    const float temps[] = {1.0f, 0.5f, 2.0f};
    for (int i = 0; i < 3; i++) {
        rg_sampling_params p = plain(temps[i]);
        softmax_kept(temps[i], all, want);
        char what[32];
        snprintf(what, sizeof what, "temperature %.1f", temps[i]);
        check_distribution(what, &p, want);
    }
}

static void test_top_k(void **state) {
    rg_sampling_params p = plain(1.0f);
    p.top_k = 2;
    int keep[V] = {1, 1, 0, 0, 0, 0};
    double want[V];
    softmax_kept(1.0, keep, want);
    check_distribution("top-k 2", &p, want);
}

/* top-k over a vocabulary large enough for the selection's 16-wide skip test,
 * with heavy ties and with an ascending ramp (every candidate enters the heap):
 * draws stay within the exact top k (ties to the lower id) and reach all of it. */
static int cmp_desc_then_id(const void *a, const void *b, void *l) {
    const float *lg = l;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (lg[x] != lg[y]) return lg[x] < lg[y] ? 1 : -1;
    return x - y;
}
static void test_top_k_large(void **state) {
    enum { NV = 3001, K = 40, DRAWS = 20000 };
    static float logits[NV];
    static int32_t order[NV];
    for (int pattern = 0; pattern < 2; pattern++) {
        uint64_t r = rg_test_seed();
        for (int i = 0; i < NV; i++)
            logits[i] = pattern == 0 ? (float)(rg_test_rand_u64(&r) % 50) : 1e-3f * (float)i;
        for (int i = 0; i < NV; i++) order[i] = i;
        qsort_r(order, NV, sizeof *order, cmp_desc_then_id, logits);
        static bool in_top[NV];
        memset(in_top, 0, sizeof in_top);
        for (int i = 0; i < K; i++) in_top[order[i]] = true;
        rg_sampling_params p = plain(1.0f);
        p.top_k = K;
        static long count[NV];
        draw_counts(&p, logits, NV, DRAWS, count);
        for (int t = 0; t < NV; t++)
            if (count[t] && !in_top[t])
                fail_msg("pattern %d: drew %d (logit %g), outside the top %d", pattern, t, logits[t], K);
        for (int i = 0; i < K; i++)
            if (!count[order[i]]) fail_msg("pattern %d: top-%d token %d never drawn", pattern, K, order[i]);
    }
}

/* No top-k cut over a 3,001-entry vocabulary: the whole-row draw (no cuts at
 * all), top-p and min-p prefixes found without sorting the row. Five leading
 * logits 4..0 over a floor of 2,996 at -3: every token's draw count within 5
 * sigma of the chain computed here in double; tokens cut must never appear. */
static void test_cuts_whole_vocab(void **state) {
    enum { NV = 3001, DRAWS = 40000 };
    static float logits[NV];
    static double want[NV];
    static long count[NV];
    for (int i = 0; i < NV; i++) logits[i] = i < 5 ? (float)(4 - i) : -3.0f;
    const struct {
        const char *what;
        float top_p, min_p;
    } cases[] = {{"whole row", 1.0f, 0.0f}, {"top-p 0.7", 0.7f, 0.0f}, {"min-p 0.2", 1.0f, 0.2f}};
    for (int c = 0; c < 3; c++) {
        /* the chain in double: softmax, then the sorted prefix the cuts keep (ids in order here) */
        double z = 0, cum = 0;
        for (int i = 0; i < NV; i++) z += exp((double)logits[i]);
        int keep = NV;
        for (int i = 0; i < NV && cases[c].top_p < 1.0f; i++)
            if ((cum += exp((double)logits[i]) / z) >= cases[c].top_p) {
                keep = i + 1;
                break;
            }
        for (int i = 1; i < keep && cases[c].min_p > 0; i++)
            if (exp((double)logits[i] - logits[0]) < cases[c].min_p) keep = i;
        double kz = 0;
        for (int i = 0; i < keep; i++) kz += exp((double)logits[i]);
        for (int i = 0; i < NV; i++) want[i] = i < keep ? exp((double)logits[i]) / kz : 0;
        rg_sampling_params p = plain(1.0f);
        p.top_p = cases[c].top_p, p.min_p = cases[c].min_p;
        draw_counts(&p, logits, NV, DRAWS, count);
        long tail = 0;
        double tail_want = 0;
        for (int i = 5; i < NV; i++) tail += count[i], tail_want += want[i];
        printf("  %-10s kept %d: draws %ld %ld %ld %ld %ld, tail %ld (expected %.0f)\n", cases[c].what, keep, count[0],
               count[1], count[2], count[3], count[4], tail, DRAWS * tail_want);
        for (int i = 0; i < NV; i++) {
            if (want[i] == 0 && count[i])
                fail_msg("%s: token %d drawn %ld times, must never be", cases[c].what, i, count[i]);
            double mean = DRAWS * want[i], sd = sqrt(DRAWS * want[i] * (1 - want[i]));
            if (i < 5 && fabs((double)count[i] - mean) > 5 * sd + 1e-9)
                fail_msg("%s: token %d drawn %ld times, expected %.1f +- %.1f", cases[c].what, i, count[i], mean,
                         5 * sd);
        }
        double tsd = sqrt(DRAWS * tail_want * (1 - tail_want));
        if (fabs((double)tail - DRAWS * tail_want) > 5 * tsd + 1e-9)
            fail_msg("%s: the 2,996 floor tokens drawn %ld times, expected %.1f", cases[c].what, tail,
                     DRAWS * tail_want);
    }
}

static void test_top_p(void **state) {
    /* softmax(base): 0.450 0.273 0.166 0.074 0.037 0.002 -> cumulative 0.450
     * 0.723 0.889 ...; top-p 0.8 keeps the smallest prefix reaching 0.8: 3 tokens */
    rg_sampling_params p = plain(1.0f);
    p.top_p = 0.8f;
    int keep[V] = {1, 1, 1, 0, 0, 0};
    double want[V];
    softmax_kept(1.0, keep, want);
    check_distribution("top-p 0.8", &p, want);
}

static void test_min_p(void **state) {
    /* min-p 0.3: keep p >= 0.3 * 0.450 = 0.135, i.e. tokens 0, 1, 2 (0.166) */
    rg_sampling_params p = plain(1.0f);
    p.min_p = 0.3f;
    int keep[V] = {1, 1, 1, 0, 0, 0};
    double want[V];
    softmax_kept(1.0, keep, want);
    check_distribution("min-p 0.3", &p, want);
}

static void test_penalties_exact(void **state) {
    rg_sampling_params p = plain(0.0f);
    p.repeat_penalty = 1.5f;
    p.frequency_penalty = 0.25f;
    p.presence_penalty = 0.5f;
    p.penalty_last_n = 4;
    rg_sampler *s;
    rg_err err = {0};
    assert_int_equal(rg_sampler_create(&p, V, &s, &err), RG_OK);
    float l[V];
    memcpy(l, base_logits, sizeof l);
    /* token 5 is outside the last 4 and is not penalized */
    int32_t hist[] = {5, 1, 1, 4, 1};
    rg_sampler_sample(s, l, hist, 5);
    /* token 1: 1.5 / 1.5 - 3 * 0.25 - 0.5 = -0.25; token 4: -0.5 * 1.5 - 0.25 - 0.5 = -1.5 */
    assert_float_equal(l[1], -0.25f, 1e-6);
    assert_float_equal(l[4], -1.5f, 1e-6);
    assert_float_equal(l[5], -3.0f, 0);
    assert_float_equal(l[0], 2.0f, 0);
    rg_sampler_free(s);
}

static void test_seeded(void **state) {
    rg_sampling_params p = plain(1.0f);
    rg_sampler *a, *b, *c;
    rg_err err = {0};
    assert_int_equal(rg_sampler_create(&p, V, &a, &err), RG_OK);
    assert_int_equal(rg_sampler_create(&p, V, &b, &err), RG_OK);
    p.seed += 1;
    assert_int_equal(rg_sampler_create(&p, V, &c, &err), RG_OK);
    int differ = 0;
    for (int i = 0; i < 200; i++) {
        float la[V], lb[V], lc[V];
        memcpy(la, base_logits, sizeof la), memcpy(lb, base_logits, sizeof lb), memcpy(lc, base_logits, sizeof lc);
        int32_t ta = rg_sampler_sample(a, la, NULL, 0), tb = rg_sampler_sample(b, lb, NULL, 0);
        assert_int_equal(ta, tb);
        differ += ta != rg_sampler_sample(c, lc, NULL, 0);
    }
    assert_true(differ > 0);
    rg_sampler_free(a), rg_sampler_free(b), rg_sampler_free(c);
}

static void test_bad_params(void **state) {
    rg_sampler *s;
    rg_err err = {0};
    rg_sampling_params p = plain(1.0f);
    assert_int_equal(rg_sampler_create(&p, 0, &s, &err), RG_E_INVALID);
    p.min_p = 1.5f;
    assert_int_equal(rg_sampler_create(&p, V, &s, &err), RG_E_INVALID);
    p = plain(1.0f);
    p.repeat_penalty = 0;
    assert_int_equal(rg_sampler_create(&p, V, &s, &err), RG_E_INVALID);
    p = plain(NAN);
    assert_int_equal(rg_sampler_create(&p, V, &s, &err), RG_E_INVALID);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy),      cmocka_unit_test(test_temperature), cmocka_unit_test(test_top_k),
        cmocka_unit_test(test_top_k_large),
        cmocka_unit_test(test_cuts_whole_vocab),
        cmocka_unit_test(test_top_p),       cmocka_unit_test(test_min_p),       cmocka_unit_test(test_penalties_exact),
        cmocka_unit_test(test_seeded),      cmocka_unit_test(test_bad_params),  cmocka_unit_test(test_is_greedy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
