/* metrics.h — the server's counters and latency histograms, rendered in the
 * Prometheus text format (version 0.0.4) for GET /metrics.
 *
 * Latencies are recorded by the engine thread as tokens come out: time to first
 * token from submission, inter-token latency between a sample's consecutive
 * tokens, and end-to-end request latency. Generation throughput is the tokens of
 * the last 10 whole seconds, from a ring of per-second counts. */
#ifndef RG_SERVER_METRICS_H
#define RG_SERVER_METRICS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/scheduler.h"

#define RG_HIST_BUCKETS 16

typedef struct rg_histogram {
    uint64_t counts[RG_HIST_BUCKETS + 1]; /* the last one is +Inf */
    double sum;
    uint64_t n;
} rg_histogram;

typedef struct rg_metrics {
    pthread_mutex_t mu;
    rg_histogram ttft, itl, e2e;
    uint64_t requests_ok, requests_rejected, requests_cancelled, requests_failed;
    uint64_t prompt_tokens, generated_tokens;
    int64_t sec_ring_start; /* the second ring[0] counts */
    uint64_t sec_ring[64];
} rg_metrics;

void rg_metrics_init(rg_metrics *m);
void rg_metrics_destroy(rg_metrics *m);

void rg_metrics_observe_ttft(rg_metrics *m, double seconds);
void rg_metrics_observe_itl(rg_metrics *m, double seconds);
/* A request ended: its outcome (finish reason) and totals. */
void rg_metrics_request_done(rg_metrics *m, rg_finish_reason fin, double e2e_seconds, int64_t n_prompt,
                             int64_t n_generated);
void rg_metrics_token(rg_metrics *m, double now_seconds);
void rg_metrics_rejected(rg_metrics *m);

/* Render every metric with the scheduler's stats into a malloc'd string. */
char *rg_metrics_render(rg_metrics *m, const rg_sched_stats *st, double now_seconds);

/* CLOCK_MONOTONIC in seconds. */
double rg_now_s(void);

#endif
