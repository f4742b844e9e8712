/* test_roofline_probe.c — sanity of the roofline probes (perf/bandwidth.h,
 * perf/probe_compute.h, perf/roofline.h). Never a timed pass/fail on absolute
 * speed: results must be plausible for any machine from a laptop to a server
 * and repeated runs must agree within a stated spread.
 *
 *  * main-memory read/write/triad between 0.5 and 2000 GB/s;
 *  * three repeated reads within a factor of 4 of each other (generous: CI
 *    machines are shared; a broken probe is off by orders of magnitude);
 *  * f32 FMA between 0.1 and 100,000 GFLOP/s; int8 either absent ("none") or
 *    in the same range;
 *  * sysfs cache levels ascend and have sizes;
 *  * a --quick roofline fills every field and reports progress in order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "perf/bandwidth.h"
#include "perf/probe_compute.h"
#include "perf/roofline.h"

#define MiB ((size_t)1 << 20)
#define PLAUSIBLE_GBS(x) ((x) >= 0.5 && (x) <= 2000)
#define MAX_SPREAD 4.0

static void memory_streams(void **state) {
    (void)state;
    rg_threadpool *pool = rg_threadpool_create(1);
    assert_non_null(pool);
    /* Five runs; a neighbour on the shared cores can slow any one of them (seen:
     * 5.5 4.0 17.0 GB/s while another test ran), so the stability check is on
     * the middle three: sorted runs[1..3] within MAX_SPREAD. */
    double runs[5];
    for (int r = 0; r < 5; r++) {
        runs[r] = rg_measure_stream(pool, RG_STREAM_READ, 64 * MiB, 1, 2);
        assert_true(PLAUSIBLE_GBS(runs[r]));
    }
    for (int i = 1; i < 5; i++)
        for (int j = i; j > 0 && runs[j] < runs[j - 1]; j--) {
            double t = runs[j];
            runs[j] = runs[j - 1], runs[j - 1] = t;
        }
    double lo = runs[1], hi = runs[3];
    print_message("memory read, 1 thread, sorted: %.1f %.1f %.1f %.1f %.1f GB/s (middle three spread x%.2f, allowed x%.0f)\n",
                  runs[0], runs[1], runs[2], runs[3], runs[4], hi / lo, MAX_SPREAD);
    assert_true(hi / lo <= MAX_SPREAD);
    double w = rg_measure_stream(pool, RG_STREAM_WRITE, 32 * MiB, 1, 2);
    double t = rg_measure_stream(pool, RG_STREAM_TRIAD, 16 * MiB, 1, 2);
    assert_true(PLAUSIBLE_GBS(w) && PLAUSIBLE_GBS(t));
    /* the old entry point (`ridge bench`) is the read stream */
    assert_true(PLAUSIBLE_GBS(rg_measure_read_bandwidth(pool, 32 * MiB, 1)));
    /* an unknown kind is refused, not run */
    assert_true(rg_measure_stream(pool, RG_STREAM_COUNT, MiB, 1, 1) < 0);
    assert_true(rg_measure_stream(pool, RG_STREAM_READ, MiB, 0, 1) < 0);
    rg_threadpool_free(pool);
}

static void compute_peaks(void **state) {
    (void)state;
    rg_threadpool *pool = rg_threadpool_create(1);
    rg_compute_rate f = rg_measure_f32_fma(pool, 0.01, 2);
    print_message("f32 FMA %.1f GFLOP/s (%s)\n", f.gops, f.isa);
    assert_true(f.gops >= 0.1 && f.gops <= 1e5);
    assert_non_null(f.isa);
    rg_compute_rate q = rg_measure_int8_dot(pool, 0.01, 2);
    print_message("int8 dot %.1f GOP/s (%s)\n", q.gops, q.isa);
    if (!strcmp(q.isa, "none"))
        assert_true(q.gops == 0);
    else
        assert_true(q.gops >= 0.1 && q.gops <= 1e5);
    rg_threadpool_free(pool);
}

static void cache_levels(void **state) {
    (void)state;
    rg_cache_level levels[RG_MAX_CACHE_LEVELS];
    int n = rg_detect_cache_levels(levels, RG_MAX_CACHE_LEVELS);
    assert_true(n >= 0 && n <= RG_MAX_CACHE_LEVELS);
    for (int i = 0; i < n; i++) {
        assert_true(levels[i].level >= 1 && levels[i].level <= 4);
        assert_true(levels[i].size_bytes >= 1024 && levels[i].shared_by >= 1);
        if (i) assert_true(levels[i].level > levels[i - 1].level);
    }
}

typedef struct steps {
    int calls, last, n_steps;
    bool ordered;
} steps;

static void on_progress(int step, int n_steps, const char *what, void *user) {
    steps *s = user;
    if (step < s->last || !what || !*what) s->ordered = false;
    s->last = step, s->n_steps = n_steps, s->calls++;
}

static void quick_roofline(void **state) {
    (void)state;
    steps st = {.ordered = true};
    rg_probe_opts o = {.n_threads = 2, .quick = true, .progress = on_progress, .user = &st};
    rg_roofline r;
    rg_err err = {0};
    assert_int_equal(rg_roofline_measure(&o, &r, &err), RG_OK);
    assert_true(st.ordered);
    assert_int_equal(st.last, st.n_steps); /* the final "done" call */
    assert_int_equal(st.calls, st.n_steps + 1);
    assert_int_equal(r.n_threads, 2);
    assert_true(r.quick && r.cpu[0] && r.measured_at[0]);
    for (int k = 0; k < RG_STREAM_COUNT; k++)
        assert_true(PLAUSIBLE_GBS(r.mem_gbs[k][RG_1T]) && PLAUSIBLE_GBS(r.mem_gbs[k][RG_ALL]));
    for (int i = 0; i < r.n_cache; i++)
        assert_true(r.cache[i].read_gbs[RG_1T] >= 0.5);
    assert_true(r.f32_gflops[RG_1T] >= 0.1 && r.f32_gflops[RG_ALL] >= 0.1);
    assert_false(r.has_gpu);
#if !defined(RIDGE_HAVE_CUDA)
    assert_int_equal(rg_roofline_measure_gpu(&r, &err), RG_E_UNSUPPORTED);
    assert_false(r.has_gpu);
#endif
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(memory_streams),
        cmocka_unit_test(compute_peaks),
        cmocka_unit_test(cache_levels),
        cmocka_unit_test(quick_roofline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
