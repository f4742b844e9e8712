/* probe_compute.c — peak f32 FMA and int8 dot rates (probe_compute.h).
 *
 * Each kernel runs `iters` iterations of NCHAIN independent accumulators; the
 * CPU needs latency × issue ports chains in flight (Zen 3 / Skylake FMA: 4-5
 * cycles × 2 ports = 8-10), so 12 covers it. Values stay bounded: f32 chains are
 * acc = acc * m + c with m < 1 (a fixed point, never inf or denormal); int8
 * chains add small products into int32 whose wrap-around is harmless. The
 * result is folded into a sink so the compiler cannot drop the loop. Iteration
 * counts are calibrated once so a timed region lasts about seconds_per_rep. */
#include "perf/probe_compute.h"

#include <stdint.h>
#include <time.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define X86_DISPATCH 1
#else
#define X86_DISPATCH 0
#endif

#define NCHAIN 12

/* ---- f32 FMA kernels: return the number of FLOPs done */

typedef float v4f __attribute__((vector_size(16)));

static double fma_plain(int64_t iters, float *sink) {
    v4f acc[NCHAIN], m = {0.999f, 0.999f, 0.999f, 0.999f}, c = {1e-3f, 1e-3f, 1e-3f, 1e-3f};
    for (int i = 0; i < NCHAIN; i++)
        acc[i] = (v4f){0} + (float)i;
    for (int64_t it = 0; it < iters; it++)
        for (int i = 0; i < NCHAIN; i++)
            acc[i] = acc[i] * m + c;
    float s = 0;
    for (int i = 0; i < NCHAIN; i++)
        s += acc[i][0] + acc[i][3];
    *sink = s;
    return (double)iters * NCHAIN * 4 * 2;
}

#if X86_DISPATCH
__attribute__((target("avx2,fma"))) static double fma_avx2(int64_t iters, float *sink) {
    __m256 acc[NCHAIN], m = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(1e-3f);
    for (int i = 0; i < NCHAIN; i++)
        acc[i] = _mm256_set1_ps((float)i);
    for (int64_t it = 0; it < iters; it++)
        for (int i = 0; i < NCHAIN; i++)
            acc[i] = _mm256_fmadd_ps(acc[i], m, c);
    __m256 s = acc[0];
    for (int i = 1; i < NCHAIN; i++)
        s = _mm256_add_ps(s, acc[i]);
    *sink = _mm256_cvtss_f32(s);
    return (double)iters * NCHAIN * 8 * 2;
}

__attribute__((target("avx512f"))) static double fma_avx512(int64_t iters, float *sink) {
    __m512 acc[NCHAIN], m = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(1e-3f);
    for (int i = 0; i < NCHAIN; i++)
        acc[i] = _mm512_set1_ps((float)i);
    for (int64_t it = 0; it < iters; it++)
        for (int i = 0; i < NCHAIN; i++)
            acc[i] = _mm512_fmadd_ps(acc[i], m, c);
    __m512 s = acc[0];
    for (int i = 1; i < NCHAIN; i++)
        s = _mm512_add_ps(s, acc[i]);
    *sink = _mm512_reduce_add_ps(s);
    return (double)iters * NCHAIN * 16 * 2;
}

/* ---- int8 dot kernels: u8 x s8 products summed into int32 lanes, as the
 * quantized matmuls do (dot_avx2.c: maddubs then madd with ones) */

/* Four chains (the add is their only dependency; more spill registers), each with its own u8 operand passed through an
 * empty asm so the compiler must assume it changes and cannot hoist the (otherwise loop-invariant) products out of the
 * loop; the asm emits no instruction. Named variables, not arrays: an array with an asm operand is kept in memory. */
#define NCHAIN8 4
#define DOT_STEP(ADD, MADD, MADDUBS, C, x, acc)                                                                        \
    do {                                                                                                               \
        __asm__("" : "+" C(x));                                                                                        \
        acc = ADD(acc, MADD(MADDUBS(x, b), ones));                                                                     \
    } while (0)
#define DOT_KERNEL(NAME, ATTR, VEC, SET1_8, SET1_16, SET1_32, ADD, MADD, MADDUBS, C, LANES, REDUCE)                    \
    ATTR static double NAME(int64_t iters, float *sink) {                                                              \
        VEC b = SET1_8(-2), ones = SET1_16(1);                                                                         \
        VEC x0 = SET1_8(1), x1 = SET1_8(2), x2 = SET1_8(3), x3 = SET1_8(4);                                            \
        VEC a0 = SET1_32(0), a1 = a0, a2 = a0, a3 = a0;                                                                \
        for (int64_t it = 0; it < iters; it++) {                                                                       \
            DOT_STEP(ADD, MADD, MADDUBS, C, x0, a0);                                                                   \
            DOT_STEP(ADD, MADD, MADDUBS, C, x1, a1);                                                                   \
            DOT_STEP(ADD, MADD, MADDUBS, C, x2, a2);                                                                   \
            DOT_STEP(ADD, MADD, MADDUBS, C, x3, a3);                                                                   \
        }                                                                                                              \
        VEC s = ADD(ADD(a0, a1), ADD(a2, a3));                                                                         \
        *sink = (float)REDUCE(s);                                                                                      \
        return (double)iters * NCHAIN8 * LANES * 2;                                                                    \
    }

/* The sink takes one lane, not a sum: the chains wrap around int32 by design, and
 * a horizontal sum in int (GCC's _mm512_reduce_add_epi32) would overflow, which
 * UBSan reports. */
__attribute__((target("avx2"))) static inline int first_lane_avx2(__m256i v) { return _mm256_extract_epi32(v, 0); }
__attribute__((target("avx512f"))) static inline int first_lane_avx512(__m512i v) {
    return _mm_cvtsi128_si32(_mm512_castsi512_si128(v));
}

DOT_KERNEL(dot_avx2, __attribute__((target("avx2"))), __m256i, _mm256_set1_epi8, _mm256_set1_epi16, _mm256_set1_epi32,
           _mm256_add_epi32, _mm256_madd_epi16, _mm256_maddubs_epi16, "x", 32, first_lane_avx2)
DOT_KERNEL(dot_avx512bw, __attribute__((target("avx512f,avx512bw"))), __m512i, _mm512_set1_epi8, _mm512_set1_epi16,
           _mm512_set1_epi32, _mm512_add_epi32, _mm512_madd_epi16, _mm512_maddubs_epi16, "v", 64, first_lane_avx512)

/* vpdpbusd: 4 u8 x s8 products per int32 lane in one instruction */
__attribute__((target("avx512f,avx512vnni"))) static double dot_avx512vnni(int64_t iters, float *sink) {
    __m512i acc[NCHAIN], a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
    for (int i = 0; i < NCHAIN; i++)
        acc[i] = _mm512_set1_epi32(i);
    for (int64_t it = 0; it < iters; it++)
        for (int i = 0; i < NCHAIN; i++)
            acc[i] = _mm512_dpbusd_epi32(acc[i], a, b);
    __m512i s = acc[0];
    for (int i = 1; i < NCHAIN; i++)
        s = _mm512_add_epi32(s, acc[i]);
    *sink = (float)first_lane_avx512(s);
    return (double)iters * NCHAIN * 64 * 2;
}
#endif

typedef double (*kernel_fn)(int64_t iters, float *sink);

typedef struct compute_job {
    kernel_fn fn;
    int64_t iters;
    double ops[256];
    float sink[256];
} compute_job;

static void run_slice(void *arg, int ith, int nth) {
    (void)nth;
    compute_job *j = arg;
    j->ops[ith & 255] = j->fn(j->iters, &j->sink[ith & 255]);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double measure(rg_threadpool *pool, kernel_fn fn, double seconds, int reps) {
    int nth = rg_threadpool_size(pool);
    if (nth > 256) nth = 256;
    compute_job j = {.fn = fn, .iters = 1000};
    /* calibrate: grow the count until a region takes a tenth of the target */
    for (;;) {
        double t0 = now_s();
        rg_threadpool_run(pool, run_slice, &j);
        double dt = now_s() - t0;
        if (dt >= seconds / 10 || j.iters > ((int64_t)1 << 40)) {
            double scale = dt > 0 ? seconds / dt : 10;
            j.iters = (int64_t)((double)j.iters * scale) + 1;
            break;
        }
        j.iters *= 4;
    }
    double best = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        rg_threadpool_run(pool, run_slice, &j);
        double dt = now_s() - t0, ops = 0;
        for (int t = 0; t < nth; t++)
            ops += j.ops[t];
        if (ops / dt / 1e9 > best) best = ops / dt / 1e9;
    }
    return best;
}

rg_compute_rate rg_measure_f32_fma(rg_threadpool *pool, double seconds_per_rep, int reps) {
    kernel_fn fn = fma_plain;
    const char *isa = "scalar";
#if X86_DISPATCH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        fn = fma_avx512, isa = "avx512f";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        fn = fma_avx2, isa = "avx2+fma";
#endif
    return (rg_compute_rate){measure(pool, fn, seconds_per_rep, reps), isa};
}

rg_compute_rate rg_measure_int8_dot(rg_threadpool *pool, double seconds_per_rep, int reps) {
#if X86_DISPATCH
    __builtin_cpu_init();
    kernel_fn fn = NULL;
    const char *isa = "none";
    if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512f"))
        fn = dot_avx512vnni, isa = "avx512-vnni";
    else if (__builtin_cpu_supports("avx512bw"))
        fn = dot_avx512bw, isa = "avx512bw";
    else if (__builtin_cpu_supports("avx2"))
        fn = dot_avx2, isa = "avx2";
    if (fn) return (rg_compute_rate){measure(pool, fn, seconds_per_rep, reps), isa};
    return (rg_compute_rate){0, isa};
#else
    (void)pool, (void)seconds_per_rep, (void)reps;
    return (rg_compute_rate){0, "none"};
#endif
}
