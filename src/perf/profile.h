/* profile.h — a run's per-op record (`ridge profile`): an op observer
 * (model/forward.h, rg_ctx_set_op_observer) that costs every event through the
 * formula table (op_cost.h) and sums calls, time, FLOPs and bytes per op kind
 * and per op name, for each phase (prefill, decode); optionally keeps every
 * event for a timeline. Then each sum is placed under the machine's roofline:
 * achieved GB/s and GFLOP/s, arithmetic intensity, the roof that bounds it and
 * the fraction of that roof reached. */
#ifndef RG_PERF_PROFILE_H
#define RG_PERF_PROFILE_H

#include <stdbool.h>
#include <stdint.h>

#include "perf/op_cost.h"
#include "perf/op_event.h"
#include "perf/roofline.h"

typedef enum rg_phase { RG_PHASE_PREFILL = 0, RG_PHASE_DECODE = 1, RG_PHASE_COUNT } rg_phase;
const char *rg_phase_name(rg_phase p);

#define RG_PROFILE_MAX_NAMES 48

typedef struct rg_profile_stat {
    char key[32]; /* op kind name ("matmul") or op name ("ffn_down") */
    rg_op_kind kind;
    rg_compute_class cls; /* the compute ceiling that applies (int8 for quantized matmuls) */
    int64_t calls;
    double seconds;
    rg_op_cost cost;
} rg_profile_stat;

typedef struct rg_profile_event {
    const char *name; /* static storage (the forward pass's op names) */
    rg_op_kind kind;
    int32_t layer;
    rg_phase phase;
    double t_start, t_end; /* CLOCK_MONOTONIC seconds */
    double flops, bytes;
} rg_profile_event;

#define RG_PROFILE_MAX_THREADS 64

/* A slice of a parallel region one pool thread ran (core/threadpool.h tracing). */
typedef struct rg_profile_slice {
    double t_start, t_end;
} rg_profile_slice;

typedef struct rg_profile {
    rg_phase phase; /* events are filed under this phase */
    rg_profile_stat by_kind[RG_PHASE_COUNT][RG_OP_COUNT];
    rg_profile_stat by_name[RG_PHASE_COUNT][RG_PROFILE_MAX_NAMES];
    int n_names[RG_PHASE_COUNT];
    double wall_s[RG_PHASE_COUNT];  /* filled by the caller: time of the phase's forward calls */
    int64_t tokens[RG_PHASE_COUNT]; /* filled by the caller */
    bool keep_events;
    rg_profile_event *events;
    int64_t n_events, cap_events;
    bool events_truncated; /* an allocation failed: the timeline is incomplete */
    /* per pool thread, appended only by that thread (rg_profile_thread_slice) */
    rg_profile_slice *slices[RG_PROFILE_MAX_THREADS];
    int64_t n_slices[RG_PROFILE_MAX_THREADS], cap_slices[RG_PROFILE_MAX_THREADS];
} rg_profile;

void rg_profile_init(rg_profile *p, bool keep_events);
void rg_profile_free(rg_profile *p);

/* The observer: pass it with user = the profile to rg_ctx_set_op_observer (with timing). */
void rg_profile_observe(void *user, const rg_op_event *e);

/* The thread-pool tracer: pass it with user = the profile to
 * rg_threadpool_set_trace on the run context's pool (rg_ctx_cpu_pool), so the
 * timeline shows what each thread did inside each op. Threads past
 * RG_PROFILE_MAX_THREADS are not recorded. */
void rg_profile_thread_slice(void *user, int thread, double t_start, double t_end);

/* The ceilings ops are placed under. */
typedef struct rg_roofs {
    double mem_gbs; /* main-memory read bandwidth */
    int n_cache;    /* cache levels, innermost first */
    int cache_level[RG_MAX_CACHE_LEVELS];
    double cache_gbs[RG_MAX_CACHE_LEVELS];
    double peak_gops[2]; /* by rg_compute_class: f32 FMA, int8 dot */
    int tier;            /* RG_1T or RG_ALL: which column of the roofline */
} rg_roofs;

/* The roofline's ceilings for a run with n_threads threads: the one-thread
 * column for 1, else the all-threads one. */
rg_roofs rg_roofs_from_roofline(const rg_roofline *r, int n_threads);

typedef enum rg_bound { RG_BOUND_MEMORY = 0, RG_BOUND_COMPUTE, RG_BOUND_OVERHEAD } rg_bound;
const char *rg_bound_name(rg_bound b);

/* Below this fraction of the roof that bounds it, an op is called bound by
 * overhead (thread fork-join, launch, loop control), not by either roof. */
#define RG_OVERHEAD_FRACTION 0.10

typedef struct rg_roof_eval {
    double gflops, gbs;       /* achieved */
    double intensity;         /* FLOP per byte (0 for ops without FLOPs) */
    double attainable_gflops; /* min(peak, intensity x bandwidth) */
    rg_bound bound;
    /* For a memory-bound op, the level its data must have come from: 0 = main
     * memory, else the outermost cache level whose bandwidth covers the achieved
     * GB/s (an op faster than DRAM allows worked out of a cache). */
    int mem_level;
    bool compute_roof; /* efficiency is against the compute peak (else a bandwidth) */
    double efficiency; /* achieved / the bounding roof: GB/s / that level's bandwidth, or GFLOP/s / peak */
} rg_roof_eval;

/* "DRAM", "L1", "L2" ... for rg_roof_eval.mem_level (static storage). */
const char *rg_mem_level_name(int level);

rg_roof_eval rg_profile_evaluate(const rg_profile_stat *s, const rg_roofs *roofs);

/* Chrome trace / Perfetto JSON of the kept events of n profiles (one process
 * per profile, named labels[i]; one complete "X" event per op on the forward
 * thread's track, with its layer, phase, FLOPs and bytes; each prefill or decode
 * step as a span on a second track; each pool thread's slices, named after the
 * op they ran in, on a track per thread (tid 10 + thread)). */
rg_status rg_profile_write_trace(const rg_profile *const *profiles, const char *const *labels, int n, const char *path,
                                 rg_err *err);

/* A roofline plot (SVG, log-log) of one or more profiles: the ceilings of
 * `roof` (memory and cache bandwidths, f32 and int8 peaks) and one labelled point
 * per op kind and phase of each profile (series labels[i]). */
rg_status rg_profile_write_svg(const rg_profile *const *profiles, const char *const *labels, int n,
                               const rg_roofline *roof, int n_threads, const char *title, const char *path,
                               rg_err *err);

#endif
