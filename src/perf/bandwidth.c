/* bandwidth.c — streaming-read probe: each thread sums its slice of a large
 * buffer with independent accumulators (so the loop is bound by loads, not by
 * an add chain) and the best of several passes is reported. */
#include "perf/bandwidth.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct probe {
    const uint64_t *buf;
    size_t n;
    uint64_t sums[256];
} probe;

static void read_slice(void *arg, int ith, int nth) {
    probe *p = arg;
    int64_t lo, hi;
    rg_split_range((int64_t)(p->n / 8), ith, nth, &lo, &hi);
    const uint64_t *b = p->buf;
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
    for (int64_t i = lo * 8; i < hi * 8; i += 8) {
        a0 += b[i], a1 += b[i + 1], a2 += b[i + 2], a3 += b[i + 3];
        a4 += b[i + 4], a5 += b[i + 5], a6 += b[i + 6], a7 += b[i + 7];
    }
    p->sums[ith & 255] = a0 ^ a1 ^ a2 ^ a3 ^ a4 ^ a5 ^ a6 ^ a7;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double rg_measure_read_bandwidth(rg_threadpool *pool, size_t bytes, int reps) {
    size_t n = bytes / sizeof(uint64_t) / 8 * 8;
    uint64_t *buf = aligned_alloc(64, n * sizeof *buf);
    if (!buf) return -1;
    for (size_t i = 0; i < n; i++) buf[i] = i * 0x9E3779B97F4A7C15ULL; /* real pages, not the zero page */
    probe p = {.buf = buf, .n = n};
    double best = 0;
    rg_threadpool_run(pool, read_slice, &p); /* warm-up: TLB, thread wake-up */
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        rg_threadpool_run(pool, read_slice, &p);
        double dt = now_s() - t0;
        double gbs = (double)(n * sizeof *buf) / dt / 1e9;
        if (gbs > best) best = gbs;
    }
    free(buf);
    return best;
}
