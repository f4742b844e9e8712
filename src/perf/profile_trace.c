/* profile_trace.c — the Chrome trace event format (chrome://tracing, Perfetto,
 * ui.perfetto.dev): {"traceEvents": [...]} with "X" (complete) events whose ts
 * and dur are microseconds, and "M" metadata events naming processes and
 * threads. Tracks per process: tid 1 the ops (forward thread), tid 2 the steps,
 * tid 10 + t what pool thread t ran. Written with fprintf: up to hundreds of
 * thousands of small events. */
#include <stdio.h>

#include "perf/profile.h"

/* s as a JSON string body (labels come from the command line) */
static void put_escaped(FILE *f, const char *s) {
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
}

/* The op event during which t happened (events are in time order), or NULL. */
static const rg_profile_event *op_at(const rg_profile *p, double t) {
    int64_t lo = 0, hi = p->n_events; /* first event starting after t */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (p->events[mid].t_start <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0) return NULL;
    const rg_profile_event *e = &p->events[lo - 1];
    return t <= e->t_end ? e : NULL;
}

rg_status rg_profile_write_trace(const rg_profile *const *profiles, const char *const *labels, int n, const char *path,
                                 rg_err *err) {
    FILE *f = fopen(path, "w");
    if (!f) return rg_fail(err, RG_E_IO, "cannot write %s", path);
    fprintf(f, "{\"displayTimeUnit\": \"ms\", \"traceEvents\": [\n");
    bool first = true;
    for (int i = 0; i < n; i++) {
        const rg_profile *p = profiles[i];
        int pid = i + 1;
        fprintf(f, "%s{\"ph\": \"M\", \"name\": \"process_name\", \"pid\": %d, \"tid\": 1, \"args\": {\"name\": \"",
                first ? "" : ",\n", pid);
        put_escaped(f, labels[i]);
        fprintf(f,
                "\"}},\n{\"ph\": \"M\", \"name\": \"thread_name\", \"pid\": %d, \"tid\": 1, \"args\": {\"name\": "
                "\"ops (forward thread)\"}},\n"
                "{\"ph\": \"M\", \"name\": \"thread_name\", \"pid\": %d, \"tid\": 2, \"args\": {\"name\": "
                "\"steps\"}}",
                pid, pid);
        first = false;
        if (!p->n_events) continue;
        double t0 = p->events[0].t_start;
        /* each pool thread's slices, named after the op they ran in */
        for (int th = 0; th < RG_PROFILE_MAX_THREADS; th++) {
            if (!p->n_slices[th]) continue;
            fprintf(f,
                    ",\n{\"ph\": \"M\", \"name\": \"thread_name\", \"pid\": %d, \"tid\": %d, \"args\": {\"name\": "
                    "\"pool thread %d\"}}",
                    pid, 10 + th, th);
            for (int64_t k = 0; k < p->n_slices[th]; k++) {
                const rg_profile_slice *sl = &p->slices[th][k];
                if (sl->t_start < t0) continue;
                const rg_profile_event *op = op_at(p, sl->t_start);
                fprintf(f,
                        ",\n{\"ph\": \"X\", \"name\": \"%s\", \"cat\": \"slice\", \"pid\": %d, \"tid\": %d, "
                        "\"ts\": %.3f, \"dur\": %.3f}",
                        op ? op->name : "region", pid, 10 + th, (sl->t_start - t0) * 1e6,
                        (sl->t_end - sl->t_start) * 1e6);
            }
        }
        /* steps: a run of events of one phase, split where a new token embedding starts */
        int64_t step_start = 0;
        for (int64_t e = 0; e < p->n_events; e++) {
            const rg_profile_event *ev = &p->events[e];
            fprintf(f,
                    ",\n{\"ph\": \"X\", \"name\": \"%s\", \"cat\": \"%s\", \"pid\": %d, \"tid\": 1, \"ts\": %.3f, "
                    "\"dur\": %.3f, \"args\": {\"layer\": %d, \"phase\": \"%s\", \"flops\": %.0f, \"bytes\": %.0f}}",
                    ev->name, rg_op_kind_name(ev->kind), pid, (ev->t_start - t0) * 1e6, (ev->t_end - ev->t_start) * 1e6,
                    ev->layer, rg_phase_name(ev->phase), ev->flops, ev->bytes);
            bool last = e + 1 == p->n_events;
            bool boundary = last || p->events[e + 1].kind == RG_OP_GET_ROWS || p->events[e + 1].phase != ev->phase;
            if (boundary) {
                const rg_profile_event *s0 = &p->events[step_start];
                fprintf(f,
                        ",\n{\"ph\": \"X\", \"name\": \"%s step\", \"cat\": \"step\", \"pid\": %d, \"tid\": 2, "
                        "\"ts\": %.3f, \"dur\": %.3f}",
                        rg_phase_name(s0->phase), pid, (s0->t_start - t0) * 1e6, (ev->t_end - s0->t_start) * 1e6);
                step_start = e + 1;
            }
        }
    }
    fprintf(f, "\n]}\n");
    if (fclose(f)) return rg_fail(err, RG_E_IO, "cannot write %s", path);
    return RG_OK;
}
