/* bench_attention.c — decode attention, flash vs naive, over a paged f16 pool.
 *
 * One sequence, one query token (decode), 32 query heads over 8 KV heads,
 * head_dim 64, block size 16, at contexts 512/2048/8192. The floor is the KV
 * cache itself: every K and V element of the context is read once,
 *   bytes/token = n_ctx * n_head_kv * head_dim * 2 (K and V) * 2 (f16),
 * and the FLOPs are 4 * n_head * n_ctx * head_dim (QK^T and PV, a multiply-add
 * each). GB/s below is always that floor over the measured time, so the naive
 * kernel, which reads each KV head once per query head (4x the floor) and
 * materializes the score row, shows as a lower effective bandwidth.
 *
 * "cold": the pool spans enough layers (>= 256 MiB in all) that cycling through
 * them reads every layer's KV from DRAM, as a real decode step does; the
 * fraction is of the read bandwidth measured in the same run. "hot": one layer
 * again and again, its KV in cache.
 *
 * Usage: bench_attention [-t threads] [-r seconds per measurement] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/cpu/attention.h"
#include "perf/bandwidth.h"

enum { N_HEAD = 32, N_HEAD_KV = 8, HEAD_DIM = 64 };

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static float rand_normal(void) { /* Box-Muller over xorshift64* */
    float u[2];
    for (int i = 0; i < 2; i++) {
        rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
        u[i] = (float)((rng * 0x2545F4914F6CDD1DULL) >> 40) / 16777216.0f;
    }
    return sqrtf(-2.0f * logf(u[0] > 1e-7f ? u[0] : 1e-7f)) * cosf(6.2831853f * u[1]);
}

/* Seconds per call, median of 5 measurements of about `secs` / 5 each, cycling
 * over n_layers layers. */
static double time_calls(rg_cpu_ctx *ctx, rg_attn_args *a, int64_t n_layers, double secs) {
    int64_t calls = 0;
    double t0 = now_s();
    while (now_s() - t0 < 0.05 || calls < n_layers) { /* warm-up, and a first estimate */
        a->layer = calls++ % n_layers;
        rg_cpu_attention(ctx, a);
    }
    double per_call = (now_s() - t0) / (double)calls, m[5];
    int64_t n = (int64_t)(secs / 5 / per_call) + 1;
    for (int r = 0; r < 5; r++) {
        double t = now_s();
        for (int64_t i = 0; i < n; i++) {
            a->layer = i % n_layers;
            rg_cpu_attention(ctx, a);
        }
        m[r] = (now_s() - t) / (double)n;
    }
    for (int i = 0; i < 5; i++) /* sort the five for the median */
        for (int j = i + 1; j < 5; j++)
            if (m[j] < m[i]) {
                double x = m[i];
                m[i] = m[j], m[j] = x;
            }
    return m[2];
}

int main(int argc, char **argv) {
    int n_threads = 0;
    double secs = 1.0;
    for (int opt; (opt = getopt(argc, argv, "t:r:")) != -1;) {
        if (opt == 't')
            n_threads = atoi(optarg);
        else if (opt == 'r')
            secs = atof(optarg);
        else {
            fprintf(stderr, "usage: %s [-t threads] [-r seconds per measurement]\n", argv[0]);
            return 2;
        }
    }
    rg_threadpool *tp = rg_threadpool_create(n_threads);
    if (!tp) {
        fprintf(stderr, "bench_attention: cannot create the thread pool\n");
        return 1;
    }
    double bw = rg_measure_read_bandwidth(tp, (size_t)512 << 20, 5);
    printf("decode attention: %d heads / %d kv heads, head_dim %d, f16 pool, block 16, %d threads\n", N_HEAD, N_HEAD_KV,
           HEAD_DIM, rg_threadpool_size(tp));
    printf("measured read bandwidth: %.1f GB/s (512 MiB, best of 5)\n\n", bw);
    printf("%6s %6s %5s %12s %10s %10s %8s %10s %8s\n", "n_ctx", "kind", "data", "KV bytes/tok", "us/call", "GB/s",
           "of bw", "GFLOP/s", "t/flash");

    static const int64_t contexts[] = {512, 2048, 8192};
    for (size_t ci = 0; ci < sizeof contexts / sizeof contexts[0]; ci++) {
        int64_t n_ctx = contexts[ci], bs = 16;
        double kv_bytes = (double)n_ctx * N_HEAD_KV * HEAD_DIM * 2 * 2;
        double flops = 4.0 * N_HEAD * (double)n_ctx * HEAD_DIM;
        int64_t n_layers = (int64_t)ceil((double)(256 << 20) / kv_bytes);
        rg_kv_config kc = {n_layers, N_HEAD_KV, HEAD_DIM, bs, (n_ctx + bs - 1) / bs, RG_F16};
        rg_kv_pool *kv;
        rg_err err = {0};
        if (rg_kv_pool_create(&kc, &kv, &err)) {
            fprintf(stderr, "bench_attention: %s\n", err.msg);
            return 1;
        }
        rg_kv_seq seq = {0};
        if (rg_kv_seq_reserve(kv, &seq, n_ctx, &err)) {
            fprintf(stderr, "bench_attention: %s\n", err.msg);
            return 1;
        }
        /* fill every layer, one block of positions per store */
        float *k = malloc((size_t)(bs * N_HEAD_KV * HEAD_DIM) * sizeof *k);
        float *v = malloc((size_t)(bs * N_HEAD_KV * HEAD_DIM) * sizeof *v);
        float *q = malloc(N_HEAD * HEAD_DIM * sizeof *q), *out = malloc(N_HEAD * HEAD_DIM * sizeof *out);
        int32_t pos[16];
        const int32_t *tables[16];
        for (int64_t i = 0; i < bs * N_HEAD_KV * HEAD_DIM; i++)
            k[i] = rand_normal(), v[i] = rand_normal();
        for (int i = 0; i < N_HEAD * HEAD_DIM; i++)
            q[i] = rand_normal();
        for (int64_t l = 0; l < n_layers; l++)
            for (int64_t p0 = 0; p0 < n_ctx; p0 += bs) {
                for (int i = 0; i < bs; i++)
                    pos[i] = (int32_t)(p0 + i), tables[i] = seq.blocks;
                rg_kv_store(kv, l, k, v, n_ctx - p0 < bs ? n_ctx - p0 : bs, tables, pos);
            }
        seq.n_tokens = n_ctx;
        rg_cpu_ctx ctx = {.pool = tp};
        if (rg_cpu_attention_reserve(&ctx, kv, N_HEAD, n_ctx, &err)) {
            fprintf(stderr, "bench_attention: %s\n", err.msg);
            return 1;
        }
        int32_t n_ctx32 = (int32_t)n_ctx;
        rg_attn_args a = {kv, 0, 1, N_HEAD, q, out, tables, &n_ctx32, 0.125f, RG_ATTN_FLASH, NULL};
        for (int cold = 1; cold >= 0; cold--) {
            double t_flash = 0;
            for (int kind = RG_ATTN_FLASH; kind <= RG_ATTN_NAIVE; kind++) {
                a.kind = (rg_attn_kind)kind;
                double t = time_calls(&ctx, &a, cold ? n_layers : 1, secs);
                if (kind == RG_ATTN_FLASH) t_flash = t;
                double gbs = kv_bytes / t / 1e9;
                char frac[16] = "-";
                if (cold) snprintf(frac, sizeof frac, "%.0f%%", 100 * gbs / bw);
                printf("%6lld %6s %5s %12.0f %10.1f %10.2f %8s %10.2f %7.2fx\n", (long long)n_ctx,
                       kind == RG_ATTN_FLASH ? "flash" : "naive", cold ? "cold" : "hot", kv_bytes, t * 1e6, gbs, frac,
                       flops / t / 1e9, t / t_flash);
            }
        }
        free(ctx.scratch);
        free(k), free(v), free(q), free(out);
        rg_kv_seq_free(kv, &seq);
        rg_kv_pool_free(kv);
    }
    rg_threadpool_free(tp);
    return 0;
}
