/* roofline_probe.c — runs the probes of bandwidth.h and probe_compute.h in a
 * fixed order and fills an rg_roofline.
 *
 * Working sets: main memory is probed with max(8 × last-level cache, 256 MiB)
 * in all (with --quick max(2 × last-level cache, 64 MiB)); a cache level with
 * half of one instance per thread sharing it, re-read until a region moves
 * ~256 MiB, so the data stays in that level and the timer sees milliseconds. */
#include "perf/roofline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "perf/probe_compute.h"

#define MiB ((size_t)1 << 20)

static void cpu_model_name(char *buf, size_t n) {
    snprintf(buf, n, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10)) continue;
        const char *c = strchr(line, ':');
        if (!c) break;
        c++;
        while (*c == ' ')
            c++;
        snprintf(buf, n, "%s", c);
        buf[strcspn(buf, "\n")] = 0;
        break;
    }
    fclose(f);
}

#if !defined(RIDGE_HAVE_CUDA)
rg_status rg_roofline_measure_gpu(rg_roofline *r, rg_err *err) {
    (void)r;
    return rg_fail(err, RG_E_UNSUPPORTED, "ridge was built without CUDA");
}
#endif

typedef struct stepper {
    const rg_probe_opts *o;
    int step, n_steps;
} stepper;

static void announce(stepper *s, const char *fmt, int threads) {
    char what[96];
    snprintf(what, sizeof what, fmt, threads, threads == 1 ? "" : "s");
    if (s->o->progress) s->o->progress(s->step, s->n_steps, what, s->o->user);
    s->step++;
}

rg_status rg_roofline_measure(const rg_probe_opts *o, rg_roofline *out, rg_err *err) {
    memset(out, 0, sizeof *out);
    cpu_model_name(out->cpu, sizeof out->cpu);
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    out->mem_bytes = pages > 0 && page > 0 ? (int64_t)pages * page : 0;
    out->quick = o->quick;
    time_t now = time(NULL);
    strftime(out->measured_at, sizeof out->measured_at, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    out->n_cache = rg_detect_cache_levels(out->cache, RG_MAX_CACHE_LEVELS);

    rg_threadpool *pools[2] = {rg_threadpool_create(1), rg_threadpool_create(o->n_threads)};
    if (!pools[0] || !pools[1]) {
        rg_threadpool_free(pools[0]), rg_threadpool_free(pools[1]);
        return rg_fail(err, RG_E_NOMEM, "cannot start the probe threads");
    }
    out->n_threads = rg_threadpool_size(pools[1]);
    int64_t llc = 0;
    for (int i = 0; i < out->n_cache; i++)
        if (out->cache[i].size_bytes > llc) llc = out->cache[i].size_bytes;
    size_t mem_total = o->quick ? 64 * MiB : 256 * MiB;
    if (mem_total < 2 * (size_t)llc) mem_total = 2 * (size_t)llc;
    if (!o->quick && mem_total < 8 * (size_t)llc) mem_total = 8 * (size_t)llc;
    int reps = o->quick ? 2 : 5;
    double compute_s = o->quick ? 0.02 : 0.2;

    stepper st = {.o = o, .n_steps = 2 * (RG_STREAM_COUNT + out->n_cache + 2)};
    rg_status s = RG_OK;
    for (int w = 0; w < 2 && !s; w++) {
        rg_threadpool *pool = pools[w];
        int nth = rg_threadpool_size(pool);
        static const char *mem_labels[] = {"memory read, %d thread%s", "memory write, %d thread%s",
                                           "memory triad, %d thread%s"};
        for (int k = 0; k < RG_STREAM_COUNT && !s; k++) {
            announce(&st, mem_labels[k], nth);
            /* triad streams three arrays: keep its total footprint the same */
            size_t per_thread = mem_total / (size_t)nth / (k == RG_STREAM_TRIAD ? 3 : 1);
            out->mem_gbs[k][w] = rg_measure_stream(pool, (rg_stream_kind)k, per_thread, 1, reps);
            if (out->mem_gbs[k][w] < 0)
                s = rg_fail(err, RG_E_NOMEM, "cannot allocate %zu MiB for the memory probe", mem_total / MiB);
        }
        for (int c = 0; c < out->n_cache && !s; c++) {
            rg_cache_level *L = &out->cache[c];
            char label[64];
            snprintf(label, sizeof label, "L%d read, %%d thread%%s", L->level);
            announce(&st, label, nth);
            /* threads of this pool that share one instance split it */
            int sharers = nth < L->shared_by ? nth : L->shared_by;
            size_t per_thread = (size_t)L->size_bytes / 2 / (size_t)(sharers > 0 ? sharers : 1);
            size_t region = o->quick ? 64 * MiB : 256 * MiB;
            int passes = (int)(region / (size_t)nth / (per_thread ? per_thread : 1));
            L->read_gbs[w] = rg_measure_stream(pool, RG_STREAM_READ, per_thread, passes > 0 ? passes : 1, reps);
        }
        if (s) break;
        announce(&st, "f32 FMA peak, %d thread%s", nth);
        rg_compute_rate f = rg_measure_f32_fma(pool, compute_s, reps);
        out->f32_gflops[w] = f.gops;
        snprintf(out->f32_isa, sizeof out->f32_isa, "%s", f.isa);
        announce(&st, "int8 dot peak, %d thread%s", nth);
        rg_compute_rate q = rg_measure_int8_dot(pool, compute_s, reps);
        out->int8_gops[w] = q.gops;
        snprintf(out->int8_isa, sizeof out->int8_isa, "%s", q.isa);
    }
    rg_threadpool_free(pools[0]);
    rg_threadpool_free(pools[1]);
    if (!s && o->progress) o->progress(st.n_steps, st.n_steps, "done", o->user);
    return s;
}
