/* cmd_profile.c — `ridge profile`: run a prefill and N decode steps with every
 * op observed, then place each op kind (or name) of each phase under this
 * machine's roofline: calls, time share, achieved GB/s and GFLOP/s, arithmetic
 * intensity, the bounding roof and the fraction of it reached. Optional outputs:
 * a Chrome/Perfetto trace (--trace) and a roofline plot (--svg). --compare runs
 * variants of one lever (attn, kv, cache-type, model, threads) interleaved,
 * repetition by repetition, so a noisy machine slows them alike, and plots them
 * as series of one figure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "gen_opts.h"
#include "perf/profile.h"

#define MAX_VARIANTS 6

typedef struct variant {
    char label[96];
    gen_opts o;
    rg_model *m;
    rg_ctx *ctx;
    rg_profile prof;
    int n_threads;
} variant;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void usage(FILE *f) {
    fprintf(f, "usage: ridge profile -m FILE [-p 128] [-n 32] [-r 1] [--by kind|name] [--trace FILE] [--svg FILE]\n"
               "                     [--compare LEVER=A,B[,...]] [--roofline FILE] [--quick-roofline] [--json]\n"
               "                     [-t N] [--attn flash|naive] [--kv paged|none] [--cache-type T]\n"
               "  -p N            prompt tokens to prefill (default 128)\n"
               "  -n N            decode steps after it (default 32)\n"
               "  -r N            repetitions, summed (default 1)\n"
               "  --by name       rows per op name (attn_q, ffn_down ...) instead of per op kind\n"
               "  --trace FILE    Chrome trace / Perfetto JSON timeline of every op\n"
               "  --svg FILE      roofline plot, one point per op kind and phase\n"
               "  --compare L=A,B run each value of a lever, interleaved: attn, kv, cache-type, model, threads\n"
               "  --roofline FILE ceilings to use (default ~/.cache/ridge/roofline.json; measured if absent)\n"
               "  --quick-roofline  if no roofline is saved, measure a quick one (seconds) instead of a full one\n");
}

/* --compare LEVER=A,B: the option each value is given to */
static const char *lever_option(const char *lever) {
    static const char *map[][2] = {{"attn", "--attn"}, {"kv", "--kv"},    {"cache-type", "--cache-type"},
                                   {"model", "-m"},    {"threads", "-t"}, {"weights", "-m"}};
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (!strcmp(lever, map[i][0])) return map[i][1];
    return NULL;
}

static int run_once(variant *v, const int32_t *prompt, bool observe, rg_err *err) {
    rg_session s;
    if (rg_session_init(&s, v->ctx, !v->o.no_cache, err)) return cli_report("profile", err);
    if (observe) rg_ctx_set_op_observer(v->ctx, rg_profile_observe, &v->prof, true);
    if (observe && v->prof.keep_events)
        rg_threadpool_set_trace(rg_ctx_cpu_pool(v->ctx), rg_profile_thread_slice, &v->prof);
    int rc = 0;
    v->prof.phase = RG_PHASE_PREFILL;
    double t0 = now_s();
    if (rg_session_feed(&s, prompt, v->o.bench_prompt, err)) rc = cli_report("prefill", err);
    double t1 = now_s();
    v->prof.phase = RG_PHASE_DECODE;
    for (int i = 0; i < v->o.bench_gen && !rc; i++) {
        int32_t tok = rg_argmax(s.logits, (int32_t)v->m->hp.n_vocab, NULL);
        if (rg_session_feed(&s, &tok, 1, err)) rc = cli_report("decode", err);
    }
    double t2 = now_s();
    rg_ctx_set_op_observer(v->ctx, NULL, NULL, false);
    rg_threadpool_set_trace(rg_ctx_cpu_pool(v->ctx), NULL, NULL);
    rg_session_free(&s);
    if (observe) {
        v->prof.wall_s[RG_PHASE_PREFILL] += t1 - t0;
        v->prof.wall_s[RG_PHASE_DECODE] += t2 - t1;
        v->prof.tokens[RG_PHASE_PREFILL] += v->o.bench_prompt;
        v->prof.tokens[RG_PHASE_DECODE] += v->o.bench_gen;
    }
    return rc;
}

static int cmp_time(const void *a, const void *b) {
    double x = ((const rg_profile_stat *)a)->seconds, y = ((const rg_profile_stat *)b)->seconds;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The rows of one phase, busiest first; returns how many. */
static int phase_rows(const rg_profile *p, int ph, bool by_name, rg_profile_stat *rows) {
    int n = 0;
    if (by_name)
        for (int i = 0; i < p->n_names[ph]; i++)
            rows[n++] = p->by_name[ph][i];
    else
        for (int k = 0; k < RG_OP_COUNT; k++)
            if (p->by_kind[ph][k].calls) rows[n++] = p->by_kind[ph][k];
    qsort(rows, (size_t)n, sizeof *rows, cmp_time);
    return n;
}

/* The roof an op is measured against: a bandwidth level, or a compute peak. */
static const char *roof_name(const rg_profile_stat *s, const rg_roof_eval *e) {
    if (e->compute_roof) return s->cls == RG_COMPUTE_INT8 ? "int8" : "f32";
    return rg_mem_level_name(e->mem_level);
}

static void print_table(const variant *v, const rg_roofs *roofs, bool by_name) {
    const rg_profile *p = &v->prof;
    printf("\n== %s (%d thread%s)\n", v->label, v->n_threads, v->n_threads == 1 ? "" : "s");
    for (int ph = 0; ph < RG_PHASE_COUNT; ph++) {
        if (!p->tokens[ph]) continue;
        rg_profile_stat rows[RG_PROFILE_MAX_NAMES + RG_OP_COUNT];
        int n = phase_rows(p, ph, by_name, rows);
        double wall = p->wall_s[ph], in_ops = 0;
        for (int i = 0; i < n; i++)
            in_ops += rows[i].seconds;
        printf("\n%s: %lld tokens in %.1f ms (%.1f tok/s)\n", rg_phase_name((rg_phase)ph), (long long)p->tokens[ph],
               wall * 1e3, (double)p->tokens[ph] / wall);
        printf("%-14s %7s %9s %6s %9s %8s %8s %-14s %7s\n", by_name ? "op" : "op kind", "calls", "time ms", "share",
               "GFLOP/s", "GB/s", "FLOP/B", "bound (roof)", "of roof");
        for (int i = 0; i < n; i++) {
            rg_roof_eval e = rg_profile_evaluate(&rows[i], roofs);
            char bound[32];
            snprintf(bound, sizeof bound, "%s (%s)", rg_bound_name(e.bound), roof_name(&rows[i], &e));
            printf("%-14s %7lld %9.2f %5.1f%% %9.2f %8.2f %8.2f %-14s %6.1f%%\n", rows[i].key, (long long)rows[i].calls,
                   rows[i].seconds * 1e3, wall > 0 ? 100 * rows[i].seconds / wall : 0, e.gflops, e.gbs, e.intensity,
                   bound, 100 * e.efficiency);
        }
        printf("%-14s %7s %9.2f %5.1f%%   (sampling, session, between ops)\n", "other", "", (wall - in_ops) * 1e3,
               wall > 0 ? 100 * (wall - in_ops) / wall : 0);
    }
}

static void print_json(variant *vs, int nv, const rg_roofline *roof, bool by_name) {
    printf("{\"roofline\": {\"cpu\": \"%s\", \"measured_at\": \"%s\", \"mem_read_gbs\": [%.3f, %.3f], "
           "\"f32_gflops\": [%.3f, %.3f], \"int8_gops\": [%.3f, %.3f]}, \"variants\": [",
           roof->cpu, roof->measured_at, roof->mem_gbs[RG_STREAM_READ][0], roof->mem_gbs[RG_STREAM_READ][1],
           roof->f32_gflops[0], roof->f32_gflops[1], roof->int8_gops[0], roof->int8_gops[1]);
    for (int i = 0; i < nv; i++) {
        const rg_profile *p = &vs[i].prof;
        rg_roofs roofs = rg_roofs_from_roofline(roof, vs[i].n_threads);
        printf("%s{\"label\": \"%s\", \"threads\": %d, \"phases\": {", i ? ", " : "", vs[i].label, vs[i].n_threads);
        for (int ph = 0; ph < RG_PHASE_COUNT; ph++) {
            rg_profile_stat rows[RG_PROFILE_MAX_NAMES + RG_OP_COUNT];
            int n = phase_rows(p, ph, by_name, rows);
            printf("%s\"%s\": {\"tokens\": %lld, \"wall_s\": %.6f, \"ops\": [", ph ? ", " : "",
                   rg_phase_name((rg_phase)ph), (long long)p->tokens[ph], p->wall_s[ph]);
            for (int r = 0; r < n; r++) {
                rg_roof_eval e = rg_profile_evaluate(&rows[r], &roofs);
                printf("%s{\"op\": \"%s\", \"kind\": \"%s\", \"calls\": %lld, \"seconds\": %.6g, \"flops\": %.6g, "
                       "\"bytes\": %.6g, \"gflops\": %.6g, \"gbs\": %.6g, \"intensity\": %.6g, \"bound\": \"%s\", "
                       "\"roof\": \"%s\", \"efficiency\": %.4f}",
                       r ? ", " : "", rows[r].key, rg_op_kind_name(rows[r].kind), (long long)rows[r].calls,
                       rows[r].seconds, rows[r].cost.flops, rg_op_cost_bytes(&rows[r].cost), e.gflops, e.gbs,
                       e.intensity, rg_bound_name(e.bound), roof_name(&rows[r], &e), e.efficiency);
            }
            printf("]}");
        }
        printf("}}");
    }
    printf("]}\n");
}

int cmd_profile(int argc, char **argv) {
    gen_opts base;
    gen_opts_default(&base);
    base.sampling.temperature = 0;
    base.bench_gen = 32, base.bench_reps = 1;
    const char *trace = NULL, *svg = NULL, *compare = NULL, *roof_path = NULL;
    bool by_name = false, quick_roof = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "-p") || !strcmp(a, "-n") || !strcmp(a, "-r")) && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < (a[1] == 'n' ? 0 : 1) || v > 1 << 20) {
                fprintf(stderr, "ridge profile: bad value '%s' for %s\n", argv[i], a);
                return RG_EXIT_USAGE;
            }
            *(a[1] == 'p' ? &base.bench_prompt : a[1] == 'n' ? &base.bench_gen : &base.bench_reps) = (int)v;
        } else if (!strcmp(a, "--trace") && i + 1 < argc)
            trace = argv[++i];
        else if (!strcmp(a, "--svg") && i + 1 < argc)
            svg = argv[++i];
        else if (!strcmp(a, "--compare") && i + 1 < argc)
            compare = argv[++i];
        else if (!strcmp(a, "--roofline") && i + 1 < argc)
            roof_path = argv[++i];
        else if (!strcmp(a, "--quick-roofline"))
            quick_roof = true;
        else if (!strcmp(a, "--by") && i + 1 < argc) {
            const char *v = argv[++i];
            if (strcmp(v, "name") && strcmp(v, "kind")) {
                fprintf(stderr, "ridge profile: --by kind or --by name\n");
                return RG_EXIT_USAGE;
            }
            by_name = !strcmp(v, "name");
        } else {
            int r = gen_opts_parse(&base, argc, argv, &i);
            if (r < 0) return RG_EXIT_USAGE;
            if (r == 0) {
                bool help = !strcmp(a, "-h") || !strcmp(a, "--help");
                usage(help ? stdout : stderr);
                return help ? 0 : RG_EXIT_USAGE;
            }
        }
    }
    base.n_ctx = base.bench_prompt + base.bench_gen + 1;
    base.quiet = base.quiet || base.json;

    /* the variants: the base options, or one per value of the compared lever */
    variant *vs = calloc(MAX_VARIANTS, sizeof *vs);
    int nv = 0, rc = 0;
    if (!vs) return fprintf(stderr, "ridge: out of memory\n"), RG_EXIT_BAD_INPUT;
    if (compare) {
        const char *eq = strchr(compare, '=');
        char lever[32];
        const char *opt = NULL;
        if (eq && eq - compare < (int)sizeof lever) {
            memcpy(lever, compare, (size_t)(eq - compare));
            lever[eq - compare] = 0;
            opt = lever_option(lever);
        }
        if (!opt) {
            fprintf(stderr, "ridge profile: --compare LEVER=A,B with LEVER attn, kv, cache-type, model or threads\n");
            free(vs);
            return RG_EXIT_USAGE;
        }
        char *values = strdup(eq + 1);
        for (char *save = NULL, *tok = strtok_r(values, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
            if (nv == MAX_VARIANTS) {
                fprintf(stderr, "ridge profile: at most %d values to compare\n", MAX_VARIANTS);
                rc = RG_EXIT_USAGE;
                break;
            }
            variant *v = &vs[nv++];
            v->o = base;
            char *args[] = {(char *)opt, tok};
            int j = 0;
            if (gen_opts_parse(&v->o, 2, args, &j) != 1) rc = RG_EXIT_USAGE;
            snprintf(v->label, sizeof v->label, "%s=%s", lever, tok);
            v->o.model = v->o.model ? strdup(v->o.model) : NULL; /* tok's storage goes with values */
        }
        free(values);
        if (!rc && nv < 2) {
            fprintf(stderr, "ridge profile: --compare needs at least two values\n");
            rc = RG_EXIT_USAGE;
        }
    } else {
        vs[nv].o = base;
        snprintf(vs[nv].label, sizeof vs[nv].label, "attn=%s kv=%s", base.attn == RG_ATTN_FLASH ? "flash" : "naive",
                 base.no_cache ? "none" : "paged");
        nv++;
    }
    rg_roofline roof;
    if (!rc) rc = cli_roofline(roof_path, 0, quick_roof, base.json, &roof);
    for (int i = 0; i < nv && !rc; i++) {
        rc = gen_load(&vs[i].o, &vs[i].m, &vs[i].ctx);
        if (rc) break;
        if (vs[i].o.n_ctx > rg_ctx_n_ctx(vs[i].ctx)) {
            fprintf(stderr, "ridge profile: -p + -n exceed the model's context %lld\n",
                    (long long)rg_ctx_n_ctx(vs[i].ctx));
            rc = RG_EXIT_USAGE;
            break;
        }
        vs[i].n_threads = rg_threadpool_size(rg_ctx_cpu_pool(vs[i].ctx));
        rg_profile_init(&vs[i].prof, trace != NULL);
    }
    rg_err err = {0};
    int32_t *prompts[MAX_VARIANTS] = {0};
    for (int i = 0; i < nv && !rc; i++) {
        prompts[i] = gen_synthetic_prompt(vs[i].m, vs[i].o.bench_prompt);
        if (!prompts[i]) {
            fprintf(stderr, "ridge: out of memory\n");
            rc = RG_EXIT_BAD_INPUT;
        }
    }
    /* warm-up (not recorded): page in the weights, wake the threads */
    for (int i = 0; i < nv && !rc; i++) {
        int keep = vs[i].o.bench_gen;
        vs[i].o.bench_gen = keep < 2 ? keep : 2;
        rc = run_once(&vs[i], prompts[i], false, &err);
        vs[i].o.bench_gen = keep;
    }
    for (int r = 0; r < base.bench_reps && !rc; r++)
        for (int i = 0; i < nv && !rc; i++) {
            if (!base.json) fprintf(stderr, "profiling %s, repetition %d of %d\n", vs[i].label, r + 1, base.bench_reps);
            rc = run_once(&vs[i], prompts[i], true, &err);
        }
    if (!rc) {
        if (base.json) {
            print_json(vs, nv, &roof, by_name);
        } else {
            rg_roofs roofs0 = rg_roofs_from_roofline(&roof, vs[0].n_threads);
            printf("model %s; prefill %d tokens, then %d decode steps, x %d; ceilings: memory %.1f GB/s, f32 %.1f "
                   "GFLOP/s, int8 %.1f GOP/s (%s, measured %s)\n",
                   vs[0].o.model, base.bench_prompt, base.bench_gen, base.bench_reps, roofs0.mem_gbs,
                   roofs0.peak_gops[0], roofs0.peak_gops[1], roof.cpu, roof.measured_at);
            for (int i = 0; i < nv; i++) {
                rg_roofs roofs = rg_roofs_from_roofline(&roof, vs[i].n_threads);
                print_table(&vs[i], &roofs, by_name);
            }
            if (nv > 1) {
                printf("\ncomparison (same run, interleaved; ratio to %s)\n", vs[0].label);
                for (int ph = 0; ph < RG_PHASE_COUNT; ph++)
                    for (int i = 0; i < nv; i++) {
                        if (!vs[i].prof.tokens[ph]) continue;
                        double ms = vs[i].prof.wall_s[ph] * 1e3 / (double)vs[i].prof.tokens[ph];
                        double ms0 =
                            vs[0].prof.wall_s[ph] * 1e3 / (double)(vs[0].prof.tokens[ph] ? vs[0].prof.tokens[ph] : 1);
                        printf("  %-8s %-28s %9.3f ms/token  x%.2f\n", rg_phase_name((rg_phase)ph), vs[i].label, ms,
                               ms0 > 0 ? ms / ms0 : 0);
                    }
            }
        }
        const rg_profile *ps[MAX_VARIANTS];
        const char *labels[MAX_VARIANTS];
        for (int i = 0; i < nv; i++)
            ps[i] = &vs[i].prof, labels[i] = vs[i].label;
        if (trace) {
            if (rg_profile_write_trace(ps, labels, nv, trace, &err))
                rc = cli_report(trace, &err);
            else if (!base.json)
                fprintf(stderr, "wrote %s (open in ui.perfetto.dev or chrome://tracing)\n", trace);
        }
        if (svg && !rc) {
            char title[256];
            const char *model = vs[0].o.model, *slash = strrchr(model, '/');
            snprintf(title, sizeof title, "ridge profile: %s, prefill %d + decode %d", slash ? slash + 1 : model,
                     base.bench_prompt, base.bench_gen);
            if (rg_profile_write_svg(ps, labels, nv, &roof, vs[0].n_threads, title, svg, &err))
                rc = cli_report(svg, &err);
            else if (!base.json)
                fprintf(stderr, "wrote %s\n", svg);
        }
    }
    for (int i = 0; i < nv; i++) {
        free(prompts[i]);
        rg_profile_free(&vs[i].prof);
        rg_ctx_free(vs[i].ctx);
        rg_model_free(vs[i].m);
        if (compare) free((char *)vs[i].o.model);
    }
    free(vs);
    return rc;
}
