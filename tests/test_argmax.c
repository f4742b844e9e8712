/* test_argmax.c — the greedy choice: rg_argmax (core/argmax.h) against a plain
 * two-pass definition, and the CPU backend's argmax_rows against rg_argmax, on
 * fresh random rows with planted ties, -inf, -0/+0 and NaN, odd row lengths, one
 * thread and a pool. (tests/gpu/test_cuda_ops.c checks the CUDA op against the
 * CPU one; test_forward.c and test_scheduler.c the paths that use it.) */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "backend/backend.h"
#include "core/argmax.h"
#include "testutil.h"

static uint64_t rng;

/* The definition, written to be read: entry 0 NaN -> 0; else the first entry
 * equal to the largest non-NaN value. */
static int32_t ref_argmax(const float *x, int32_t n) {
    if (isnan(x[0])) return 0;
    float max = x[0];
    for (int32_t i = 1; i < n; i++)
        if (!isnan(x[i]) && x[i] > max) max = x[i];
    for (int32_t i = 0; i < n; i++)
        if (x[i] == max) return i;
    return -1; /* unreachable: x[0] equals itself at least */
}

static int32_t rand_below(int32_t n) { return (int32_t)(rg_test_rand_u64(&rng) % (uint64_t)n); }

/* A row of kind k: 0 normal, 1 few distinct values (ties everywhere), 2 the max
 * planted at several places, 3 mostly -inf, 4 NaNs sprinkled, 5 NaN at entry 0,
 * 6 all -inf, 7 signed zeros and negatives. */
static void fill_row(float *x, int32_t n, int kind) {
    for (int32_t i = 0; i < n; i++) {
        switch (kind) {
        case 1: x[i] = (float)rand_below(4); break;
        case 3: x[i] = rand_below(8) ? -INFINITY : rg_test_rand_normal(&rng); break;
        case 6: x[i] = -INFINITY; break;
        case 7: x[i] = rand_below(2) ? -0.0f : (rand_below(2) ? 0.0f : -1.0f); break;
        default: x[i] = rg_test_rand_normal(&rng) * 5;
        }
        if (kind == 4 && rand_below(5) == 0) x[i] = NAN;
    }
    if (kind == 2)
        for (int k = 0; k < 3; k++)
            x[rand_below(n)] = 100.0f;
    if (kind == 5) x[0] = NAN;
}

static void test_argmax_definition(void **state) {
    (void)state;
    const int32_t lens[] = {1, 2, 3, 5, 8, 31, 300, 1001};
    float x[1001];
    for (int rep = 0; rep < 400; rep++) {
        int32_t n = lens[rep % 8];
        fill_row(x, n, rep / 8 % 8);
        int32_t second = -1, got = rg_argmax(x, n, &second);
        if (got != ref_argmax(x, n)) fail_msg("n %d kind %d: got %d, want %d", n, rep / 8 % 8, got, ref_argmax(x, n));
        assert_true(second >= 0 && second < n);
    }
    /* the cases by hand */
    assert_int_equal(rg_argmax((float[]){1, 3, 3, 2}, 4, NULL), 1);
    assert_int_equal(rg_argmax((float[]){NAN, 3, 4}, 3, NULL), 0);
    assert_int_equal(rg_argmax((float[]){-INFINITY, NAN, -INFINITY}, 3, NULL), 0);
    assert_int_equal(rg_argmax((float[]){1, NAN, 2, NAN}, 4, NULL), 2);
    assert_int_equal(rg_argmax((float[]){-0.0f, 0.0f}, 2, NULL), 0);
}

/* The CPU backend's argmax_rows equals rg_argmax row by row. */
static void check_backend(rg_threadpool *pool) {
    rg_backend *be;
    rg_err err = {0};
    assert_int_equal(rg_backend_cpu_create(pool, &be, &err), RG_OK);
    assert_non_null(be->argmax_rows);
    const int32_t lens[] = {1, 7, 300, 4099};
    for (int li = 0; li < 4; li++) {
        int32_t n = lens[li];
        for (int64_t rows = 1; rows <= 17; rows += 4) {
            float *x = be->alloc(be, (size_t)(rows * n) * sizeof *x);
            int32_t ids[17];
            assert_non_null(x);
            for (int64_t r = 0; r < rows; r++)
                fill_row(x + r * n, n, (int)((r + li) % 8));
            for (int64_t r = 0; r < rows; r++)
                ids[r] = -7; /* poison */
            be->argmax_rows(be, x, rows, n, ids);
            for (int64_t r = 0; r < rows; r++)
                if (ids[r] != rg_argmax(x + r * n, n, NULL))
                    fail_msg("n %d row %lld of %lld: got %d, want %d", n, (long long)r, (long long)rows, ids[r],
                             rg_argmax(x + r * n, n, NULL));
            be->free(be, x);
        }
    }
    be->destroy(be);
}

static void test_cpu_argmax_rows(void **state) {
    (void)state;
    check_backend(NULL);
    rg_threadpool *pool = rg_threadpool_create(3);
    assert_non_null(pool);
    check_backend(pool);
    rg_threadpool_free(pool);
}

int main(void) {
    rng = rg_test_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_argmax_definition),
        cmocka_unit_test(test_cpu_argmax_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
