/* bench_matmul.c — rg_cpu_matmul against this machine's two ceilings, measured
 * in the same run:
 *   decode  (n_tok = 1): weight bytes streamed per second vs a streaming-read
 *           probe (AVX2 sum over a 256 MiB buffer on the same threads). Each
 *           type cycles over enough copies of a k × n_out matrix to stream
 *           >= 96 MiB per pass (3× the 32 MiB L3), as a model's layers would.
 *   prefill (n_tok = 128): GFLOP/s (2·k·n_out·n_tok) vs an f32 FMA peak probe.
 * (The probe has no software prefetch: a variant with it read slower here.)
 * The machine is noisy (±30%), so a probe runs before every type's measurement
 * (probe, type, probe, type, ..., probe); the table gives the best of the reps
 * and, as the robust figure, the median over reps of the type's GB/s divided by
 * the mean of the two probes around it.
 *
 * usage: bench_matmul [-t threads] [-r reps] [-k k] [-n n_out] [-p n_tok_prefill]
 *                     [-T F16,Q8_0,...] [-s (scalar kernels)] [-D (decode only)] */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cpu/kernels.h"
#include "backend/cpu/ops.h"
#include "core/fp16.h"
#include "core/quant.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint64_t rand_u64(void) {
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    return rng * 0x2545F4914F6CDD1DULL;
}
static float rand_normal(void) {
    double u1 = ((double)(rand_u64() >> 11) + 1) / 9007199254740993.0,
           u2 = (double)(rand_u64() >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
}

/* ---- ceilings */

typedef struct read_probe {
    const uint8_t *buf;
    size_t bytes;
    uint64_t sink[64];
} read_probe;

#if defined(__x86_64__)
__attribute__((target("avx2"))) static uint64_t sum_avx2(const uint8_t *p, size_t n) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 128 <= n; i += 128) {
        a0 = _mm256_add_epi64(a0, _mm256_load_si256((const __m256i *)(p + i)));
        a1 = _mm256_add_epi64(a1, _mm256_load_si256((const __m256i *)(p + i + 32)));
        a2 = _mm256_add_epi64(a2, _mm256_load_si256((const __m256i *)(p + i + 64)));
        a3 = _mm256_add_epi64(a3, _mm256_load_si256((const __m256i *)(p + i + 96)));
    }
    __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
    return (uint64_t)_mm256_extract_epi64(s, 0) ^ (uint64_t)_mm256_extract_epi64(s, 3);
}
#endif

static void read_task(void *arg, int ith, int nth) {
    read_probe *p = arg;
    int64_t lo, hi;
    rg_split_range((int64_t)(p->bytes / 128), ith, nth, &lo, &hi);
    const uint8_t *b = p->buf + lo * 128;
    size_t n = (size_t)(hi - lo) * 128;
    uint64_t s = 0;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2"))
        s = sum_avx2(b, n);
    else
#endif
        for (size_t i = 0; i < n; i += 8)
            s += *(const uint64_t *)(b + i);
    p->sink[ith & 63] = s;
}

typedef struct fma_probe {
    int64_t iters;
    float sink[64];
} fma_probe;

#if defined(__x86_64__)
/* 12 independent accumulators: enough to cover FMA latency × 2 pipes */
__attribute__((target("avx2,fma"))) static float fma_loop(int64_t iters) {
    __m256 a[12], m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++)
        a[i] = _mm256_set1_ps((float)i);
    for (int64_t it = 0; it < iters; it++)
        for (int i = 0; i < 12; i++)
            a[i] = _mm256_fmadd_ps(a[i], m, c);
    __m256 s = a[0];
    for (int i = 1; i < 12; i++)
        s = _mm256_add_ps(s, a[i]);
    return _mm256_cvtss_f32(s);
}
#endif

static void fma_task(void *arg, int ith, int nth) {
    fma_probe *p = arg;
    (void)nth;
#if defined(__x86_64__)
    p->sink[ith & 63] = fma_loop(p->iters);
#endif
}

/* the dot kernel alone on cache-resident rows: thread ith takes rows
 * [ith*rows, (ith+1)*rows) and repeats them for ~20 ms */
typedef struct ceiling_job {
    rg_dtype type;
    const uint8_t *w;
    size_t w_row;
    int64_t k, rows;
    const float *x;
    int64_t passes[64];
} ceiling_job;

static void ceiling_task(void *arg, int ith, int nth) {
    ceiling_job *j = arg;
    (void)nth;
    const rg_cpu_kernels *kern = rg_cpu_kernels_get();
    rg_act_fmt fmt = kern->fmt[j->type];
    size_t a_row = rg_cpu_act_row_bytes(fmt, j->k);
    uint8_t *a = aligned_alloc(64, a_row);
    if (!a) return;
    kern->act[fmt](j->x, a, j->k);
    const uint8_t *w = j->w + (size_t)ith * (size_t)j->rows * j->w_row;
    float y;
    int64_t passes = 0;
    double t0 = now_s();
    do {
        for (int64_t r = 0; r < j->rows; r++)
            kern->dot[j->type](j->k, w + r * j->w_row, j->w_row, 1, a, a_row, 1, &y, 1);
        passes++;
    } while (now_s() - t0 < 0.02);
    j->passes[ith & 63] = passes;
    free(a);
}

/* ---- weights */

static void put_f16(uint8_t *p, float v) {
    uint16_t h = rg_f32_to_f16(v);
    memcpy(p, &h, 2);
}

/* Random values of the right shape: random bytes, sane f16 scales, and float
 * weights drawn from N(0, 0.05) (no denormals, no NaN). */
static uint8_t *make_weights(rg_dtype type, int64_t k, int64_t n_out) {
    const rg_dtype_info *info = rg_dtype_get(type);
    size_t bytes = (size_t)rg_dtype_row_bytes(type, k) * (size_t)n_out;
    uint8_t *w = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!w) return NULL;
    if (type == RG_F32 || type == RG_F16 || type == RG_BF16) {
        for (size_t i = 0; i < bytes / (size_t)info->type_size; i++) {
            float v = 0.05f * rand_normal();
            if (type == RG_F32)
                memcpy(w + 4 * i, &v, 4);
            else if (type == RG_F16)
                put_f16(w + 2 * i, v);
            else {
                uint16_t h = rg_f32_to_bf16(v);
                memcpy(w + 2 * i, &h, 2);
            }
        }
        return w;
    }
    for (size_t i = 0; i < bytes; i += 8) {
        uint64_t r = rand_u64();
        memcpy(w + i, &r, bytes - i < 8 ? bytes - i : 8);
    }
    for (size_t b = 0; b < bytes / (size_t)info->type_size; b++) {
        uint8_t *blk = w + b * (size_t)info->type_size;
        switch (type) {
        case RG_Q6_K: put_f16(blk + 208, 0.0003f); break;
        case RG_Q4_K:
        case RG_Q5_K:
        case RG_Q4_1:
        case RG_Q5_1: put_f16(blk, 0.002f), put_f16(blk + 2, 0.001f); break;
        default: put_f16(blk, 0.002f); break;
        }
    }
    return w;
}

/* ---- measurement */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static const rg_dtype all_types[] = {RG_F32,  RG_F16,  RG_BF16, RG_Q8_0, RG_Q5_0, RG_Q5_1,
                                     RG_Q4_0, RG_Q4_1, RG_Q6_K, RG_Q5_K, RG_Q4_K};
enum { MAX_TYPES = 16, MAX_REPS = 64 };

int main(int argc, char **argv) {
    int n_threads = 2, reps = 7, decode_only = 0;
    int64_t k = 2048, n_out = 8192, n_tok_prefill = 128;
    rg_dtype types[MAX_TYPES];
    int n_types = 0;
    int opt;
    while ((opt = getopt(argc, argv, "t:r:k:n:p:T:sD")) != -1) {
        switch (opt) {
        case 't': n_threads = atoi(optarg); break;
        case 'r': reps = atoi(optarg); break;
        case 'k': k = atoll(optarg); break;
        case 'n': n_out = atoll(optarg); break;
        case 'p': n_tok_prefill = atoll(optarg); break;
        case 'T':
            for (char *tok = strtok(optarg, ","); tok && n_types < MAX_TYPES; tok = strtok(NULL, ","))
                if (!rg_dtype_from_name(tok, &types[n_types]) || rg_cpu_act_fmt(types[n_types++]) == RG_ACT_NONE) {
                    fprintf(stderr, "no matmul for type %s\n", tok);
                    return 2;
                }
            break;
        case 's': rg_cpu_isa_force(RG_ISA_SCALAR); break;
        case 'D': decode_only = 1; break;
        default:
            fprintf(stderr, "usage: %s [-t threads] [-r reps] [-k k] [-n n_out] [-p n_tok] [-T types] [-s] [-D]\n",
                    argv[0]);
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    if (reps > MAX_REPS) reps = MAX_REPS;
    if (!n_types) {
        n_types = (int)(sizeof all_types / sizeof *all_types);
        memcpy(types, all_types, sizeof all_types);
    }

    rg_cpu_ctx ctx = {.pool = rg_threadpool_create(n_threads)};
    if (!ctx.pool) return 1;
    n_threads = rg_threadpool_size(ctx.pool);

    const size_t probe_bytes = (size_t)256 << 20, stream_target = (size_t)96 << 20;
    read_probe rp = {.buf = aligned_alloc(64, probe_bytes), .bytes = probe_bytes};
    if (!rp.buf) return 1;
    memset((void *)rp.buf, 1, probe_bytes); /* real pages */

    float *x = malloc((size_t)(k * n_tok_prefill) * sizeof *x);
    float *y = malloc((size_t)(n_out * n_tok_prefill) * sizeof *y);
    if (!x || !y) return 1;
    for (int64_t i = 0; i < k * n_tok_prefill; i++)
        x[i] = rand_normal();
    if (rg_cpu_reserve(&ctx, k, n_tok_prefill, NULL)) return 1;

    printf("bench_matmul: %d threads, kernels %s, k=%lld n_out=%lld, %d reps\n", n_threads,
           rg_cpu_isa_active() == RG_ISA_AVX2 ? "avx2" : "scalar", (long long)k, (long long)n_out, reps);
    /* other processes on the cores skew everything: say how busy the machine was */
    double load = 0;
    FILE *lf = fopen("/proc/loadavg", "r");
    if (lf) {
        if (fscanf(lf, "%lf", &load) != 1) load = 0;
        fclose(lf);
    }
    printf("load average at start: %.2f%s\n", load, load > 0.5 ? " (busy: numbers are contended)" : "");

    /* decode: per type, the copies that make >= 96 MiB, and the interleaved reps */
    double type_gbs[MAX_TYPES][MAX_REPS], ratio[MAX_TYPES][MAX_REPS], ms_best[MAX_TYPES];
    size_t mat_bytes[MAX_TYPES];
    int n_copies[MAX_TYPES];
    uint8_t **copies[MAX_TYPES];
    for (int ti = 0; ti < n_types; ti++) {
        mat_bytes[ti] = (size_t)rg_dtype_row_bytes(types[ti], k) * (size_t)n_out;
        n_copies[ti] = (int)((stream_target + mat_bytes[ti] - 1) / mat_bytes[ti]);
        copies[ti] = malloc((size_t)n_copies[ti] * sizeof *copies[ti]);
        for (int c = 0; c < n_copies[ti]; c++)
            if (!copies[ti] || !(copies[ti][c] = make_weights(types[ti], k, n_out))) {
                fprintf(stderr, "out of memory for the %s weights\n", rg_dtype_name(types[ti]));
                return 1;
            }
        ms_best[ti] = INFINITY;
        for (int c = 0; c < n_copies[ti]; c++) /* warm-up: page faults, scratch */
            rg_cpu_matmul(&ctx, types[ti], copies[ti][c], k, n_out, x, 1, y);
    }
    /* probe, type, probe, type, ...: each type's figure is divided by the mean
     * of the probes just before and just after it */
    static double probes[MAX_REPS * (MAX_TYPES + 1)];
    int n_probes = 0;
    rg_threadpool_run(ctx.pool, read_task, &rp);
    for (int r = 0; r < reps; r++)
        for (int ti = 0; ti <= n_types; ti++) {
            double t0 = now_s();
            rg_threadpool_run(ctx.pool, read_task, &rp);
            probes[n_probes++] = (double)probe_bytes / (now_s() - t0) / 1e9;
            if (ti > 0) ratio[ti - 1][r] = type_gbs[ti - 1][r] / (0.5 * (probes[n_probes - 2] + probes[n_probes - 1]));
            if (ti == n_types) break;
            t0 = now_s();
            for (int c = 0; c < n_copies[ti]; c++)
                rg_cpu_matmul(&ctx, types[ti], copies[ti][c], k, n_out, x, 1, y);
            double dt = now_s() - t0;
            type_gbs[ti][r] = (double)mat_bytes[ti] * n_copies[ti] / dt / 1e9;
            if (dt / n_copies[ti] * 1e3 < ms_best[ti]) ms_best[ti] = dt / n_copies[ti] * 1e3;
        }
    double probe_med = median(probes, n_probes); /* sorts probes */
    double probe_best = probes[n_probes - 1];
    printf("\nread bandwidth probe (%d threads, 256 MiB, %d runs): best %.1f GB/s, median %.1f GB/s\n", n_threads,
           n_probes, probe_best, probe_med);
    printf("\ndecode, n_tok=1 (weights streamed once per call; %zu+ MiB per pass)\n", stream_target >> 20);
    printf("| type | MiB/matrix | copies | ms/matrix (best) | GB/s best | GB/s median | best / best probe | "
           "median(GB/s / adjacent probes) |\n");
    printf("|------|-----------:|-------:|-----------------:|----------:|------------:|----------------:|--------------"
           "-------:|\n");
    for (int ti = 0; ti < n_types; ti++) {
        double best = 0;
        for (int r = 0; r < reps; r++)
            best = type_gbs[ti][r] > best ? type_gbs[ti][r] : best;
        double med = median(type_gbs[ti], reps), rmed = median(ratio[ti], reps);
        printf("| %-5s | %7.1f | %3d | %8.3f | %6.1f | %6.1f | %5.0f%% | %5.0f%% |\n", rg_dtype_name(types[ti]),
               (double)mat_bytes[ti] / (1 << 20), n_copies[ti], ms_best[ti], best, med, 100 * best / probe_best,
               100 * rmed);
    }
    for (int ti = 0; ti < n_types; ti++) {
        for (int c = 1; c < n_copies[ti]; c++)
            free(copies[ti][c]);
        n_copies[ti] = 1;
    }

    /* The kernels' own speed, memory out of the way: each thread runs the dot
     * kernel over its own 128 KiB of rows (L2-resident) again and again, on one
     * thread alone and then on all at once (two vCPUs need not be two cores'
     * worth of compute). Near or below the DRAM figure means compute-bound. */
    printf("\ncompute ceiling: dot kernel on L2-resident weights (128 KiB of rows per thread, n_tok=1)\n");
    printf("| type | 1 thread GB/s | %d threads GB/s | %d threads vs best probe |\n", n_threads, n_threads);
    printf("|------|--------------:|---------------:|------------------------:|\n");
    for (int ti = 0; ti < n_types; ti++) {
        double best[2] = {0, 0};
        for (int pass = 0; pass < 2; pass++) {
            ceiling_job cj = {.type = types[ti], .w = copies[ti][0], .k = k, .x = x};
            cj.w_row = (size_t)rg_dtype_row_bytes(types[ti], k);
            cj.rows = (int64_t)((128 << 10) / cj.w_row);
            cj.rows = cj.rows < 1 ? 1 : cj.rows;
            if (cj.rows * n_threads > n_out) cj.rows = n_out / n_threads;
            for (int r = 0; r < reps; r++) {
                double t0 = now_s();
                if (pass)
                    rg_threadpool_run(ctx.pool, ceiling_task, &cj);
                else
                    ceiling_task(&cj, 0, 1);
                double dt = now_s() - t0, bytes = 0;
                for (int i = 0; i < (pass ? n_threads : 1) && i < 64; i++)
                    bytes += (double)cj.passes[i] * cj.rows * cj.w_row;
                best[pass] = bytes / dt / 1e9 > best[pass] ? bytes / dt / 1e9 : best[pass];
            }
        }
        printf("| %-5s | %6.1f | %6.1f | %5.0f%% |\n", rg_dtype_name(types[ti]), best[0], best[1],
               100 * best[1] / probe_best);
    }
    if (decode_only) return 0;

    /* prefill: one matrix, n_tok tokens; FMA peak probe interleaved the same way */
    fma_probe fp = {.iters = 20000000};
    double peak[MAX_REPS], flops = 2.0 * (double)k * (double)n_out * (double)n_tok_prefill;
    double pf_gflops[MAX_TYPES][MAX_REPS], pf_ratio[MAX_TYPES][MAX_REPS], pf_ms[MAX_TYPES];
    for (int ti = 0; ti < n_types; ti++)
        pf_ms[ti] = INFINITY;
    int pf_reps = reps < 5 ? reps : 5;
    for (int r = 0; r < pf_reps; r++) {
        double t0 = now_s();
        rg_threadpool_run(ctx.pool, fma_task, &fp);
        peak[r] = (double)n_threads * fp.iters * 12 * 8 * 2 / (now_s() - t0) / 1e9;
        for (int ti = 0; ti < n_types; ti++) {
            t0 = now_s();
            rg_cpu_matmul(&ctx, types[ti], copies[ti][0], k, n_out, x, n_tok_prefill, y);
            double dt = now_s() - t0;
            pf_gflops[ti][r] = flops / dt / 1e9;
            pf_ratio[ti][r] = pf_gflops[ti][r] / peak[r];
            if (dt * 1e3 < pf_ms[ti]) pf_ms[ti] = dt * 1e3;
        }
    }
    double peak_best = 0;
    for (int r = 0; r < pf_reps; r++)
        peak_best = peak[r] > peak_best ? peak[r] : peak_best;
    printf("\nf32 FMA peak probe (%d threads): best %.1f GFLOP/s\n", n_threads, peak_best);
    printf("\nprefill, n_tok=%lld (%.2f GFLOP per call)\n", (long long)n_tok_prefill, flops / 1e9);
    printf("| type | ms (best) | GFLOP/s best | best/best FMA peak | median(GFLOP/s / peak) |\n");
    printf("|------|----------:|-------------:|-------------------:|-----------------------:|\n");
    for (int ti = 0; ti < n_types; ti++)
        printf("| %-5s | %8.1f | %7.1f | %5.0f%% | %5.0f%% |\n", rg_dtype_name(types[ti]), pf_ms[ti],
               flops / pf_ms[ti] / 1e6, 100 * flops / pf_ms[ti] / 1e6 / peak_best, 100 * median(pf_ratio[ti], pf_reps));
    return 0;
}
