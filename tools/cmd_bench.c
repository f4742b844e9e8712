/* cmd_bench.c — `ridge bench`: prefill and decode speed against the memory roofline.
 *
 * Each repetition prefills -p tokens into an empty sequence, then decodes -n
 * tokens one at a time (greedy). A decode step must stream every weight the
 * token touches once (all matrices but the embedding table, whose single row is
 * negligible — unless the output head is tied to it) plus the KV cache of the
 * context so far. Bytes per token over measured read bandwidth is the floor; the
 * reported fraction is floor time / measured time. The bandwidth probe runs
 * between repetitions so both numbers come from the same minutes of a noisy
 * machine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "gen_opts.h"
#include "perf/bandwidth.h"
#include "perf/plan.h"
#include "perf/profile.h"

#define PROBE_BYTES ((size_t)512 << 20)

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct stats {
    double min, median, max;
} stats;

static stats summarize(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return (stats){v[0], n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]), v[n - 1]};
}

/* One repetition: the prompt in one fresh session, then n_gen greedy tokens (the
 * argmax taken where the logits are, rg_session_feed_greedy); their rates. */
static int bench_rep(rg_ctx *ctx, const rg_model *m, const gen_opts *o, const int32_t *prompt, int n_gen,
                     double *prefill_tok_s, double *decode_tok_s) {
    rg_err err = {0};
    rg_session s;
    if (rg_session_init(&s, ctx, !o->no_cache, &err)) return cli_report("bench", &err);
    int rc = 0;
    double t0 = now_s();
    if (rg_session_feed(&s, prompt, o->bench_prompt, &err)) rc = cli_report("prefill", &err);
    double t1 = now_s();
    int32_t tok = rc ? 0 : rg_argmax(s.logits, (int32_t)m->hp.n_vocab, NULL);
    for (int i = 0; i < n_gen && !rc; i++)
        if (rg_session_feed_greedy(&s, &tok, 1, &tok, &err)) rc = cli_report("decode", &err);
    double t2 = now_s();
    rg_session_free(&s);
    *prefill_tok_s = o->bench_prompt / (t1 - t0);
    *decode_tok_s = n_gen ? n_gen / (t2 - t1) : 0;
    return rc;
}

int cmd_bench(int argc, char **argv) {
    gen_opts o;
    gen_opts_default(&o);
    o.sampling.temperature = 0;
    bool warmup = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--no-warmup")) { /* llama-bench's flag */
            warmup = false;
            continue;
        }
        /* -p and -n take counts here, as in llama-bench */
        if ((!strcmp(a, "-p") || !strcmp(a, "-n") || !strcmp(a, "-r")) && i + 1 < argc) {
            int v = atoi(argv[++i]);
            if (v < (a[1] == 'p' ? 1 : 0) || v > 1 << 20) {
                fprintf(stderr, "ridge bench: bad value for %s\n", a);
                return RG_EXIT_USAGE;
            }
            *(a[1] == 'p' ? &o.bench_prompt : a[1] == 'n' ? &o.bench_gen : &o.bench_reps) = v;
            continue;
        }
        int r = gen_opts_parse(&o, argc, argv, &i);
        if (r < 0) return RG_EXIT_USAGE;
        if (r == 0) {
            fprintf(stderr, "usage: ridge bench -m FILE [-p 128] [-n 64] [-r 3] [--no-warmup] [--json] [-t N] [--attn] "
                            "[--kv] [--cache-type]\n");
            return strcmp(a, "-h") && strcmp(a, "--help") ? RG_EXIT_USAGE : 0;
        }
    }
    if (o.bench_reps < 1) o.bench_reps = 1;
    o.n_ctx = o.bench_prompt + o.bench_gen + 1;
    o.quiet = o.quiet || o.json;
    rg_model *m;
    rg_ctx *ctx;
    int rc = gen_load(&o, &m, &ctx);
    if (rc) return rc;
    if (o.n_ctx > rg_ctx_n_ctx(ctx)) {
        fprintf(stderr, "ridge bench: -p + -n exceed the model's context %lld\n", (long long)rg_ctx_n_ctx(ctx));
        rg_ctx_free(ctx), rg_model_free(m);
        return RG_EXIT_USAGE;
    }
    int32_t *prompt = gen_synthetic_prompt(m, o.bench_prompt);
    double *pre = calloc((size_t)o.bench_reps, sizeof *pre), *dec = calloc((size_t)o.bench_reps, sizeof *dec),
           *bw = calloc((size_t)o.bench_reps + 1, sizeof *bw);
    rg_threadpool *probe_pool = rg_threadpool_create(o.n_threads);
    rg_err err = {0};
    char roof_path[1024];
    /* the ceiling: host read bandwidth on the CPU; device copy bandwidth (read +
     * written bytes) on the GPU */
    bool gpu = o.backend == RG_BACKEND_CUDA;
#define PROBE()                                                                                                        \
    (gpu ? rg_backend_cuda_copy_bandwidth(o.device, (size_t)1 << 30, 5) / 1e9                                          \
         : rg_measure_read_bandwidth(probe_pool, PROBE_BYTES, 3))
    bw[o.bench_reps] = PROBE();
    /* An untimed repetition first (as llama-bench): the first prompt and decode
     * steps pay one-time costs that are not the steady rate (CUDA: cuBLAS's first
     * calls at a shape and the decode graph's capture; measured on an H100 a
     * single cold 2048-token prefill of the 8B shape ran at ~30k tok/s where warm
     * ones run at ~145k). A few decode tokens reach the captured graph. */
    if (warmup) {
        double wp, wd;
        rc = bench_rep(ctx, m, &o, prompt, o.bench_gen < 4 ? o.bench_gen : 4, &wp, &wd);
    }
    for (int r = 0; r < o.bench_reps && !rc; r++) {
        rc = bench_rep(ctx, m, &o, prompt, o.bench_gen, &pre[r], &dec[r]);
        bw[r] = PROBE();
        if (!o.json)
            fprintf(stderr, "rep %d: prefill %.1f tok/s, decode %.2f tok/s, bandwidth %.1f GB/s\n", r + 1, pre[r],
                    dec[r], bw[r]);
    }
    rg_threadpool_free(probe_pool);
    if (!rc) {
        stats sp = summarize(pre, o.bench_reps), sd = summarize(dec, o.bench_reps),
              sb = summarize(bw, o.bench_reps + 1);
        /* The planner's floors (perf/plan.h, the same formulas as `ridge plan`): a
         * decode token streams the weights plus the KV cache at the average context
         * (none with --kv none, which recomputes instead), over the bandwidth just
         * measured; the prompt's FLOPs over the compute peak: on the CPU the saved
         * roofline's (int8 dot for quantized weights), when `ridge roofline` has
         * saved one; on the GPU cuBLAS's bf16 GEMM rate measured here, after the
         * repetitions (prefill runs every product through cuBLAS in bf16 or f16,
         * quantized weights dequantized tile by tile). */
        rg_plan_shape shape;
        rg_plan plan, plan_pre;
        rg_roofline roof;
        bool have_peak = false;
        double peak_flops = 0;
        int n_threads = rg_threadpool_size(rg_ctx_cpu_pool(ctx));
        bool quantized =
            m->layers[0].wq.type != RG_F32 && m->layers[0].wq.type != RG_F16 && m->layers[0].wq.type != RG_BF16;
        if (gpu) {
            peak_flops = rg_backend_cuda_gemm_tflops(o.device, true, 8192) * 1e12;
            have_peak = peak_flops > 0;
        } else if (rg_roofline_default_path(roof_path, sizeof roof_path) && !rg_roofline_load(roof_path, &roof, &err)) {
            peak_flops = rg_roofs_from_roofline(&roof, n_threads).peak_gops[quantized] * 1e9;
            have_peak = true;
        }
        rg_machine mach = {.mem_bw = sb.median * 1e9,
                           .peak_flops = have_peak ? peak_flops : 1e30, /* unknown: no compute floor */
                           .capacity_bytes = 0};
        double avg_ctx = o.bench_prompt + 0.5 * o.bench_gen;
        rg_plan_inputs in = {
            .ctx = (int64_t)(avg_ctx + 1.5), .batch = 1, .cache_type = o.kv_type, .tp = 1, .act_bytes = 2};
        if (rg_plan_shape_from_file(o.model, &shape, &err) || rg_plan_compute(&shape, &mach, &in, &plan, &err)) {
            rc = cli_report("bench: plan", &err);
        } else {
            in.ctx = o.bench_prompt;
            rg_plan_compute(&shape, &mach, &in, &plan_pre, &err);
            double weights = plan.stream_bytes, kv_tok = plan.kv_bytes_per_token;
            double bytes = o.no_cache ? weights : plan.decode_bytes;
            double decode_floor_ms = o.no_cache ? bytes / mach.mem_bw * 1e3 : plan.decode_floor_ms;
            double decode_ms = sd.median > 0 ? 1e3 / sd.median : 0, prefill_ms = 1e3 * o.bench_prompt / sp.median;
            double prefill_floor_ms = have_peak ? plan_pre.prefill_floor_ms : 0;
            double mem_floor_ms = bytes / mach.mem_bw * 1e3; /* the field's meaning since it exists: memory roof only */
            double frac = decode_ms > 0 ? mem_floor_ms / decode_ms : 0;
            if (o.json) {
                printf(
                    "{\"model\": \"%s\", \"threads\": %d, \"prompt_tokens\": %d, \"gen_tokens\": %d, \"reps\": %d, "
                    "\"warmup\": %s, "
                    "\"attn\": \"%s\", \"kv\": \"%s\", \"prefill_tok_s\": %.3f, \"prefill_tok_s_min\": %.3f, "
                    "\"prefill_tok_s_max\": %.3f, \"decode_tok_s\": %.3f, \"decode_tok_s_min\": %.3f, "
                    "\"decode_tok_s_max\": %.3f, \"decode_bytes_per_token\": %.0f, \"weight_bytes\": %.0f, "
                    "\"kv_bytes_per_token\": %.0f, \"backend\": \"%s\", \"bandwidth_gb_s\": %.3f, "
                    "\"decode_roofline_fraction\": %.4f, "
                    "\"decode_floor_ms\": %.6g, \"decode_measured_ms\": %.6g, \"decode_measured_over_floor\": %.4f, "
                    "\"prefill_floor_ms\": %.6g, \"prefill_measured_ms\": %.6g, \"prefill_measured_over_floor\": %.4f, "
                    "\"prefill_roofline_fraction\": %.4f, \"prefill_flops\": %.6g, \"compute_peak_gflops\": %.6g}\n",
                    o.model, n_threads, o.bench_prompt, o.bench_gen, o.bench_reps, warmup ? "true" : "false",
                    o.attn == RG_ATTN_FLASH ? "flash" : "naive", o.no_cache ? "none" : "paged", sp.median, sp.min,
                    sp.max, sd.median, sd.min, sd.max, bytes, weights, kv_tok, gpu ? "cuda" : "cpu", sb.median, frac,
                    decode_floor_ms, decode_ms, decode_floor_ms > 0 ? decode_ms / decode_floor_ms : 0, prefill_floor_ms,
                    prefill_ms, prefill_floor_ms > 0 ? prefill_ms / prefill_floor_ms : 0,
                    prefill_floor_ms > 0 ? prefill_floor_ms / prefill_ms : 0, plan_pre.prefill_flops,
                    have_peak ? mach.peak_flops / 1e9 : 0);
            } else {
                printf("model            %s (%s, %d threads, attn %s, kv %s)\n", o.model, gpu ? "cuda" : "cpu",
                       n_threads, o.attn == RG_ATTN_FLASH ? "flash" : "naive", o.no_cache ? "none" : "paged");
                printf("prefill %4d tok  %9.1f tok/s  (min %.1f, max %.1f)\n", o.bench_prompt, sp.median, sp.min,
                       sp.max);
                printf("decode  %4d tok  %9.2f tok/s  (min %.2f, max %.2f)\n", o.bench_gen, sd.median, sd.min, sd.max);
                printf("bytes per decode token  %.1f MB (weights %.1f MB + KV %.2f MB at avg context %.0f)\n",
                       bytes / 1e6, weights / 1e6, (bytes - weights) / 1e6, avg_ctx);
                printf("%s %.1f GB/s (median of %d probes, min %.1f, max %.1f)\n",
                       gpu ? "device copy bandwidth  " : "memory read bandwidth  ", sb.median, o.bench_reps + 1, sb.min,
                       sb.max);
                printf("planner floor, decode   %.2f ms/token, measured %.2f ms/token: measured/floor %.2f "
                       "(%.0f%% of the memory roofline)\n",
                       decode_floor_ms, decode_ms, decode_floor_ms > 0 ? decode_ms / decode_floor_ms : 0, 100 * frac);
                if (have_peak)
                    printf("planner floor, prefill  %.1f ms for %d tokens (%.3g FLOP / %.1f GFLOP/s %s), measured %.1f "
                           "ms: measured/floor %.2f (%.0f%% of the compute roofline)\n",
                           prefill_floor_ms, o.bench_prompt, plan_pre.prefill_flops, mach.peak_flops / 1e9,
                           gpu         ? "cuBLAS bf16 GEMM"
                           : quantized ? "int8 dot"
                                       : "f32 FMA",
                           prefill_ms, prefill_ms / prefill_floor_ms, 100 * prefill_floor_ms / prefill_ms);
                else if (gpu)
                    printf("planner floor, prefill  the GEMM probe failed: no compute floor\n");
                else
                    printf("planner floor, prefill  needs the compute peak: run `ridge roofline` once\n");
            }
        }
    }
    free(prompt), free(pre), free(dec), free(bw);
    rg_ctx_free(ctx);
    rg_model_free(m);
    return rc;
}
