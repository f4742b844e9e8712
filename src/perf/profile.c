/* profile.c — summing op events per kind and name and placing the sums under
 * the roofline (profile.h). */
#include "perf/profile.h"

#include <stdlib.h>
#include <string.h>

const char *rg_phase_name(rg_phase p) {
    return p == RG_PHASE_PREFILL ? "prefill" : p == RG_PHASE_DECODE ? "decode" : "?";
}

const char *rg_mem_level_name(int level) {
    static const char *names[] = {"DRAM", "L1", "L2", "L3", "L4"};
    return level >= 0 && level <= 4 ? names[level] : "?";
}

const char *rg_bound_name(rg_bound b) {
    return b == RG_BOUND_MEMORY ? "memory" : b == RG_BOUND_COMPUTE ? "compute" : "overhead";
}

void rg_profile_init(rg_profile *p, bool keep_events) {
    memset(p, 0, sizeof *p);
    p->keep_events = keep_events;
    for (int ph = 0; ph < RG_PHASE_COUNT; ph++)
        for (int k = 0; k < RG_OP_COUNT; k++) {
            rg_profile_stat *s = &p->by_kind[ph][k];
            s->kind = (rg_op_kind)k;
            strncpy(s->key, rg_op_kind_name((rg_op_kind)k), sizeof s->key - 1);
        }
}

void rg_profile_free(rg_profile *p) {
    for (int t = 0; t < RG_PROFILE_MAX_THREADS; t++) {
        free(p->slices[t]);
        p->slices[t] = NULL;
        p->n_slices[t] = p->cap_slices[t] = 0;
    }
    free(p->events);
    p->events = NULL;
    p->n_events = p->cap_events = 0;
}

static void add(rg_profile_stat *s, const rg_op_event *e, const rg_op_cost *c, double dt) {
    s->calls++;
    s->seconds += dt;
    rg_op_cost_add(&s->cost, c);
    /* a kind mixing classes (float and quantized matmuls) takes the int8 roof
     * only if all its calls are int8; the first call decides, a float call demotes */
    rg_compute_class cls = rg_op_compute_class(e);
    if (s->calls == 1)
        s->cls = cls;
    else if (cls == RG_COMPUTE_F32)
        s->cls = RG_COMPUTE_F32;
}

void rg_profile_observe(void *user, const rg_op_event *e) {
    rg_profile *p = user;
    if ((unsigned)e->kind >= RG_OP_COUNT || (unsigned)p->phase >= RG_PHASE_COUNT) return;
    rg_op_cost c = rg_op_cost_of(e);
    double dt = e->t_end > e->t_start ? e->t_end - e->t_start : 0;
    int ph = p->phase;
    add(&p->by_kind[ph][e->kind], e, &c, dt);
    const char *name = e->name ? e->name : rg_op_kind_name(e->kind);
    int i = 0;
    while (i < p->n_names[ph] && strcmp(p->by_name[ph][i].key, name))
        i++;
    if (i == p->n_names[ph] && i < RG_PROFILE_MAX_NAMES) {
        rg_profile_stat *s = &p->by_name[ph][i];
        memset(s, 0, sizeof *s);
        strncpy(s->key, name, sizeof s->key - 1);
        s->kind = e->kind;
        p->n_names[ph]++;
    }
    if (i < RG_PROFILE_MAX_NAMES) add(&p->by_name[ph][i], e, &c, dt);
    if (!p->keep_events || p->events_truncated) return;
    if (p->n_events == p->cap_events) {
        int64_t cap = p->cap_events ? 2 * p->cap_events : 4096;
        rg_profile_event *ev = realloc(p->events, (size_t)cap * sizeof *ev);
        if (!ev) {
            p->events_truncated = true;
            return;
        }
        p->events = ev;
        p->cap_events = cap;
    }
    p->events[p->n_events++] = (rg_profile_event){.name = name,
                                                  .kind = e->kind,
                                                  .layer = e->layer,
                                                  .phase = p->phase,
                                                  .t_start = e->t_start,
                                                  .t_end = e->t_end,
                                                  .flops = c.flops,
                                                  .bytes = rg_op_cost_bytes(&c)};
}

void rg_profile_thread_slice(void *user, int thread, double t_start, double t_end) {
    rg_profile *p = user;
    if (thread < 0 || thread >= RG_PROFILE_MAX_THREADS) return;
    if (p->n_slices[thread] == p->cap_slices[thread]) {
        int64_t cap = p->cap_slices[thread] ? 2 * p->cap_slices[thread] : 4096;
        rg_profile_slice *s = realloc(p->slices[thread], (size_t)cap * sizeof *s);
        if (!s) return; /* the timeline loses this slice; the op totals do not depend on it */
        p->slices[thread] = s;
        p->cap_slices[thread] = cap;
    }
    p->slices[thread][p->n_slices[thread]++] = (rg_profile_slice){t_start, t_end};
}

rg_roofs rg_roofs_from_roofline(const rg_roofline *r, int n_threads) {
    int tier = n_threads == 1 ? RG_1T : RG_ALL;
    rg_roofs roofs = {.mem_gbs = r->mem_gbs[RG_STREAM_READ][tier], .tier = tier};
    roofs.peak_gops[RG_COMPUTE_F32] = r->f32_gflops[tier];
    /* without an int8 dot the quantized kernels run on the f32 units */
    roofs.peak_gops[RG_COMPUTE_INT8] = r->int8_gops[tier] > 0 ? r->int8_gops[tier] : r->f32_gflops[tier];
    for (int i = 0; i < r->n_cache && i < RG_MAX_CACHE_LEVELS; i++) {
        roofs.cache_level[roofs.n_cache] = r->cache[i].level;
        roofs.cache_gbs[roofs.n_cache++] = r->cache[i].read_gbs[tier];
    }
    return roofs;
}

rg_roof_eval rg_profile_evaluate(const rg_profile_stat *s, const rg_roofs *roofs) {
    rg_roof_eval v;
    memset(&v, 0, sizeof v);
    double bytes = rg_op_cost_bytes(&s->cost), peak = roofs->peak_gops[s->cls];
    if (s->seconds > 0) {
        v.gflops = s->cost.flops / s->seconds / 1e9;
        v.gbs = bytes / s->seconds / 1e9;
    }
    v.intensity = bytes > 0 ? s->cost.flops / bytes : 0;
    double mem_roof = v.intensity * roofs->mem_gbs;
    /* memory-bound where the bandwidth line is below the peak at this intensity */
    if (s->cost.flops <= 0 || mem_roof < peak) {
        v.bound = RG_BOUND_MEMORY;
        v.attainable_gflops = mem_roof;
        double bw = roofs->mem_gbs;
        /* faster than DRAM: outermost level first, the first whose bandwidth covers it
         * (past every level: the innermost, and an efficiency above 1) */
        for (int i = roofs->n_cache - 1; i >= 0 && v.gbs > bw; i--)
            if (roofs->cache_gbs[i] > 0) v.mem_level = roofs->cache_level[i], bw = roofs->cache_gbs[i];
        v.efficiency = bw > 0 ? v.gbs / bw : 0;
    } else {
        v.bound = RG_BOUND_COMPUTE;
        v.compute_roof = true;
        v.attainable_gflops = peak;
        v.efficiency = peak > 0 ? v.gflops / peak : 0;
    }
    if (s->calls > 0 && v.efficiency < RG_OVERHEAD_FRACTION) v.bound = RG_BOUND_OVERHEAD;
    return v;
}
