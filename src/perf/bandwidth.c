/* bandwidth.c — streaming read / write / triad probes (bandwidth.h).
 *
 * The kernels are written once over a GCC vector type and compiled three
 * times: plain (whatever the build targets), AVX2 and AVX-512 through target
 * attributes, picked at run time, so a portable build still issues the widest
 * loads the CPU has — what a cache level's bandwidth needs (L1 delivers two
 * full-width loads a cycle; 8-byte loads would measure the load ports, not the
 * cache). Reads sum into four independent accumulators so the loop is bound by
 * loads, not by an add chain; the best of several timed regions is reported
 * (noise on a shared machine only ever slows a region down). */
#include "perf/bandwidth.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define X86_DISPATCH 1
#else
#define X86_DISPATCH 0
#endif

const char *rg_stream_kind_name(rg_stream_kind k) {
    static const char *names[] = {"read", "write", "triad"};
    return (unsigned)k < RG_STREAM_COUNT ? names[k] : "?";
}

/* bytes each kernel counts per 8-byte element */
static const int bytes_per_elem[RG_STREAM_COUNT] = {8, 8, 24};

/* One set of kernels over vector type VT (W lanes of 8 bytes). n is a multiple
 * of 4 * W elements; the buffers are 64-byte aligned. */
#define STREAM_KERNELS(SUF, ATTR, W)                                                                                   \
    typedef uint64_t vu_##SUF __attribute__((vector_size(8 * W)));                                                     \
    typedef double vd_##SUF __attribute__((vector_size(8 * W)));                                                       \
    ATTR static uint64_t read_##SUF(const uint64_t *p, size_t n) {                                                     \
        const vu_##SUF *v = (const vu_##SUF *)(const void *)p;                                                         \
        vu_##SUF a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};                                                               \
        for (size_t i = 0; i < n / W; i += 4) {                                                                        \
            a0 += v[i], a1 += v[i + 1], a2 += v[i + 2], a3 += v[i + 3];                                                \
        }                                                                                                              \
        vu_##SUF s = a0 ^ a1 ^ a2 ^ a3;                                                                                \
        uint64_t r = 0;                                                                                                \
        for (int j = 0; j < W; j++)                                                                                    \
            r ^= s[j];                                                                                                 \
        return r;                                                                                                      \
    }                                                                                                                  \
    ATTR static void write_##SUF(uint64_t *p, size_t n, uint64_t x) {                                                  \
        vu_##SUF *v = (vu_##SUF *)(void *)p, c = (vu_##SUF){0} + x;                                                    \
        for (size_t i = 0; i < n / W; i += 4) {                                                                        \
            v[i] = c, v[i + 1] = c, v[i + 2] = c, v[i + 3] = c;                                                        \
        }                                                                                                              \
    }                                                                                                                  \
    ATTR static void triad_##SUF(double *a, const double *b, const double *c, size_t n, double q) {                    \
        vd_##SUF *va = (vd_##SUF *)(void *)a;                                                                          \
        const vd_##SUF *vb = (const vd_##SUF *)(const void *)b, *vc = (const vd_##SUF *)(const void *)c;               \
        for (size_t i = 0; i < n / W; i++)                                                                             \
            va[i] = vb[i] + q * vc[i];                                                                                 \
    }

STREAM_KERNELS(plain, , 2)
#if X86_DISPATCH
STREAM_KERNELS(avx2, __attribute__((target("avx2,fma"))), 4)
STREAM_KERNELS(avx512, __attribute__((target("avx512f"))), 8)
#endif

typedef struct kernels {
    uint64_t (*read)(const uint64_t *, size_t);
    void (*write)(uint64_t *, size_t, uint64_t);
    void (*triad)(double *, const double *, const double *, size_t, double);
} kernels;

static kernels pick_kernels(void) {
#if X86_DISPATCH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return (kernels){read_avx512, write_avx512, triad_avx512};
    if (__builtin_cpu_supports("avx2")) return (kernels){read_avx2, write_avx2, triad_avx2};
#endif
    return (kernels){read_plain, write_plain, triad_plain};
}

/* elements per thread: a multiple of 32 (four 64-byte vectors) */
#define ELEM_ALIGN 32

typedef struct stream_job {
    kernels k;
    rg_stream_kind kind;
    size_t n; /* elements per thread per array */
    int passes;
    uint64_t *buf[256][3]; /* per thread: the arrays it owns */
    uint64_t sink[256];
    int failed;
} stream_job;

static void alloc_slice(void *arg, int ith, int nth) {
    (void)nth;
    stream_job *j = arg;
    int n_arrays = j->kind == RG_STREAM_TRIAD ? 3 : 1;
    for (int a = 0; a < n_arrays; a++) {
        uint64_t *p = aligned_alloc(64, j->n * sizeof *p);
        j->buf[ith][a] = p;
        if (!p) {
            __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
            continue;
        }
        /* real pages touched by their thread, not the shared zero page */
        for (size_t i = 0; i < j->n; i++)
            p[i] = (i + (size_t)ith) * 0x9E3779B97F4A7C15ULL;
        if (a > 0) /* triad inputs: small doubles so nothing overflows to inf */
            for (size_t i = 0; i < j->n; i++)
                ((double *)(void *)p)[i] = (double)(i & 1023);
    }
}

static void stream_slice(void *arg, int ith, int nth) {
    (void)nth;
    stream_job *j = arg;
    uint64_t **b = j->buf[ith], acc = 0;
    for (int p = 0; p < j->passes; p++) {
        switch (j->kind) {
        case RG_STREAM_READ: acc ^= j->k.read(b[0], j->n); break;
        case RG_STREAM_WRITE: j->k.write(b[0], j->n, (uint64_t)p); break;
        default:
            j->k.triad((double *)(void *)b[0], (const double *)(const void *)b[1], (const double *)(const void *)b[2],
                       j->n, 0.5);
            break;
        }
    }
    j->sink[ith] = acc;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double rg_measure_stream(rg_threadpool *pool, rg_stream_kind kind, size_t bytes_per_thread, int passes, int reps) {
    int nth = rg_threadpool_size(pool);
    if ((unsigned)kind >= RG_STREAM_COUNT || nth > 256 || passes < 1) return -1;
    stream_job *j = calloc(1, sizeof *j);
    if (!j) return -1;
    j->k = pick_kernels();
    j->kind = kind;
    j->passes = passes;
    j->n = bytes_per_thread / sizeof(uint64_t) / ELEM_ALIGN * ELEM_ALIGN;
    if (j->n == 0) j->n = ELEM_ALIGN;
    rg_threadpool_run(pool, alloc_slice, j);
    double best = j->failed ? -1 : 0;
    if (!j->failed) {
        rg_threadpool_run(pool, stream_slice, j); /* warm-up: TLB, caches, thread wake-up */
        double bytes = (double)nth * (double)j->n * bytes_per_elem[kind] * passes;
        for (int r = 0; r < reps; r++) {
            double t0 = now_s();
            rg_threadpool_run(pool, stream_slice, j);
            double gbs = bytes / (now_s() - t0) / 1e9;
            if (gbs > best) best = gbs;
        }
    }
    for (int t = 0; t < nth; t++)
        for (int a = 0; a < 3; a++)
            free(j->buf[t][a]);
    free(j);
    return best;
}

double rg_measure_read_bandwidth(rg_threadpool *pool, size_t bytes, int reps) {
    int nth = rg_threadpool_size(pool);
    return rg_measure_stream(pool, RG_STREAM_READ, bytes / (size_t)(nth > 0 ? nth : 1), 1, reps);
}
