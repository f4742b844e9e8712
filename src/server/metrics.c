/* metrics.c — histograms, counters and their Prometheus rendering. */
#include "server/metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Upper bounds in seconds, from 1 ms (a CPU decode step of a small model) to a
 * minute (a long prompt on a loaded server). */
static const double bounds[RG_HIST_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                               0.5,   1,      2.5,   5,    10,    20,   40,  60};

double rg_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void rg_metrics_init(rg_metrics *m) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

void rg_metrics_destroy(rg_metrics *m) { pthread_mutex_destroy(&m->mu); }

static void observe(rg_histogram *h, double v) {
    int b = 0;
    while (b < RG_HIST_BUCKETS && v > bounds[b])
        b++;
    h->counts[b]++;
    h->sum += v;
    h->n++;
}

void rg_metrics_observe_ttft(rg_metrics *m, double s) {
    pthread_mutex_lock(&m->mu);
    observe(&m->ttft, s);
    pthread_mutex_unlock(&m->mu);
}

void rg_metrics_observe_itl(rg_metrics *m, double s) {
    pthread_mutex_lock(&m->mu);
    observe(&m->itl, s);
    pthread_mutex_unlock(&m->mu);
}

void rg_metrics_request_done(rg_metrics *m, rg_finish_reason fin, double e2e, int64_t n_prompt, int64_t n_gen) {
    pthread_mutex_lock(&m->mu);
    if (fin == RG_FINISH_CANCELLED)
        m->requests_cancelled++;
    else if (fin == RG_FINISH_ERROR)
        m->requests_failed++;
    else
        m->requests_ok++, observe(&m->e2e, e2e);
    m->prompt_tokens += (uint64_t)n_prompt;
    m->generated_tokens += (uint64_t)n_gen;
    pthread_mutex_unlock(&m->mu);
}

void rg_metrics_rejected(rg_metrics *m) {
    pthread_mutex_lock(&m->mu);
    m->requests_rejected++;
    pthread_mutex_unlock(&m->mu);
}

/* Move the ring so that it covers [sec - 63, sec]. Caller holds mu. */
static void ring_advance(rg_metrics *m, int64_t sec) {
    const int64_t n = (int64_t)(sizeof m->sec_ring / sizeof *m->sec_ring);
    if (sec - m->sec_ring_start < n) return;
    int64_t shift = sec - m->sec_ring_start - n + 1;
    if (shift >= n)
        memset(m->sec_ring, 0, sizeof m->sec_ring);
    else {
        memmove(m->sec_ring, m->sec_ring + shift, (size_t)(n - shift) * sizeof *m->sec_ring);
        memset(m->sec_ring + (n - shift), 0, (size_t)shift * sizeof *m->sec_ring);
    }
    m->sec_ring_start += shift;
}

void rg_metrics_token(rg_metrics *m, double now) {
    pthread_mutex_lock(&m->mu);
    int64_t sec = (int64_t)now;
    if (m->sec_ring_start == 0) m->sec_ring_start = sec;
    ring_advance(m, sec);
    if (sec >= m->sec_ring_start) m->sec_ring[sec - m->sec_ring_start]++;
    pthread_mutex_unlock(&m->mu);
}

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if (b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p, b->cap = cap;
    }
}

static void put_hist(sbuf *b, const char *name, const char *help, const rg_histogram *h) {
    put(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < RG_HIST_BUCKETS; i++) {
        cum += h->counts[i];
        put(b, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], (unsigned long long)cum);
    }
    cum += h->counts[RG_HIST_BUCKETS];
    put(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name, (unsigned long long)cum, name, h->sum,
        name, (unsigned long long)h->n);
}

static void put_metric(sbuf *b, const char *name, const char *type, const char *help, double v) {
    put(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

char *rg_metrics_render(rg_metrics *m, const rg_sched_stats *st, double now) {
    sbuf b = {.p = malloc(4096), .cap = 4096};
    if (!b.p) return NULL;
    b.p[0] = 0;
    pthread_mutex_lock(&m->mu);
    ring_advance(m, (int64_t)now);
    /* the last 10 whole seconds before the current one */
    uint64_t recent = 0;
    for (int64_t s = (int64_t)now - 10; s < (int64_t)now; s++)
        if (s >= m->sec_ring_start && m->sec_ring_start) recent += m->sec_ring[s - m->sec_ring_start];
    rg_metrics snap = *m;
    pthread_mutex_unlock(&m->mu);
    put_metric(&b, "ridge_requests_running", "gauge", "Requests being generated.", (double)st->n_running);
    put_metric(&b, "ridge_requests_waiting", "gauge", "Requests queued or preempted.", (double)st->n_waiting);
    put_metric(&b, "ridge_kv_blocks_total", "gauge", "Blocks in the KV pool.", (double)st->kv_blocks_total);
    put_metric(&b, "ridge_kv_blocks_free", "gauge", "KV blocks on the free list.", (double)st->kv_blocks_free);
    put_metric(&b, "ridge_kv_blocks_used", "gauge", "KV blocks held by requests or the prefix cache.",
               (double)(st->kv_blocks_total - st->kv_blocks_free));
    put_metric(&b, "ridge_kv_blocks_cached", "gauge", "KV blocks held by the prefix cache.",
               (double)st->kv_blocks_cached);
    put_metric(&b, "ridge_prefix_cache_lookup_tokens_total", "counter", "Prompt tokens looked up in the prefix cache.",
               (double)st->prefix_lookup_tokens);
    put_metric(&b, "ridge_prefix_cache_hit_tokens_total", "counter", "Prompt tokens found in the prefix cache.",
               (double)st->prefix_hit_tokens);
    put_metric(&b, "ridge_prefix_cache_hit_rate", "gauge", "Hit tokens over looked-up tokens since start.",
               st->prefix_lookup_tokens ? (double)st->prefix_hit_tokens / (double)st->prefix_lookup_tokens : 0.0);
    put_metric(&b, "ridge_prefix_cache_evicted_blocks_total", "counter", "Cached blocks given back to the pool.",
               (double)st->prefix_evicted_blocks);
    put_metric(&b, "ridge_kv_slot_waste_ratio", "gauge",
               "KV token slots allocated to running requests but unused, averaged over steps since start.",
               st->kv_slots_allocated ? 1.0 - (double)st->kv_slots_used / (double)st->kv_slots_allocated : 0.0);
    put_metric(&b, "ridge_preemptions_total", "counter", "Requests preempted for KV blocks.",
               (double)st->n_preemptions);
    put_metric(&b, "ridge_engine_steps_total", "counter", "Scheduler iterations that ran a forward pass.",
               (double)st->n_steps);
    put_metric(&b, "ridge_engine_step_seconds_total", "counter",
               "Time of the engine steps that ran a forward pass (batching, forward, sampling).", st->step_seconds);
    put_metric(&b, "ridge_engine_step_floor_seconds_total", "counter",
               "Sum of those steps' roofline floors for their batch mix (0 without a saved roofline).",
               st->step_floor_seconds);
    put_metric(&b, "ridge_engine_roofline_fraction", "gauge",
               "Predicted floor over measured step time since start: the fraction of the roofline reached.",
               st->step_seconds > 0 ? st->step_floor_seconds / st->step_seconds : 0.0);
    put_metric(&b, "ridge_engine_steps_compute_bound_total", "counter",
               "Steps whose predicted floor is the compute one (the rest are memory-bound).",
               (double)st->n_steps_compute_bound);
    put_metric(&b, "ridge_engine_steps_greedy_ids_total", "counter",
               "Steps whose samples were all greedy: argmax ids came back instead of logits rows.",
               (double)st->n_steps_greedy_ids);
    put_metric(&b, "ridge_requests_success_total", "counter", "Requests finished (stop or length).",
               (double)snap.requests_ok);
    put_metric(&b, "ridge_requests_cancelled_total", "counter", "Requests cancelled (client gone).",
               (double)snap.requests_cancelled);
    put_metric(&b, "ridge_requests_failed_total", "counter", "Requests that failed in the engine.",
               (double)snap.requests_failed);
    put_metric(&b, "ridge_requests_rejected_total", "counter", "Requests refused (queue full).",
               (double)snap.requests_rejected);
    put_metric(&b, "ridge_prompt_tokens_total", "counter", "Prompt tokens of finished requests.",
               (double)snap.prompt_tokens);
    put_metric(&b, "ridge_generation_tokens_total", "counter", "Tokens generated.", (double)st->tokens_generated);
    put_metric(&b, "ridge_generation_tokens_per_second", "gauge", "Tokens generated per second over the last 10 s.",
               (double)recent / 10.0);
    put_hist(&b, "ridge_time_to_first_token_seconds", "Time from submission to the first token.", &snap.ttft);
    put_hist(&b, "ridge_inter_token_latency_seconds", "Time between consecutive tokens of a sample.", &snap.itl);
    put_hist(&b, "ridge_e2e_request_latency_seconds", "Time from submission to the last token.", &snap.e2e);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
