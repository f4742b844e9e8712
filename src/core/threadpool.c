/* threadpool.c — fork-join pool: the caller publishes (fn, arg) and a new
 * ticket = (generation, next index to claim); every thread, the caller
 * included, claims indices 1..nth-1 from the ticket with a CAS and runs
 * fn(arg, i, nth); the caller always runs index 0. Workers spin on the
 * generation for a while, then sleep on a condition variable.
 *
 * Claiming instead of fixed assignment keeps a region from waiting on a worker
 * that is asleep or descheduled (another process on the cores): whoever is
 * running takes its index. Measured on the shared 2-vCPU machine: with a fixed
 * assignment, a busy neighbour made back-to-back 10 µs regions take ~230 µs.
 *
 * Sleep/wake handshake (no lost wake-ups, no syscall while workers are spinning):
 * a worker increments n_sleeping and then re-reads the ticket under the mutex;
 * the caller stores the ticket and then reads n_sleeping. Both are seq_cst, so
 * at least one side sees the other's write: either the worker sees the new
 * generation and does not wait, or the caller sees a sleeper and broadcasts
 * (taking the mutex first, so the broadcast cannot fall between the worker's
 * check and its wait). */
#include "core/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif

/* How long a worker spins before sleeping. A decode step runs a region every
 * few tens of microseconds, so workers stay hot through a step and sleep
 * between requests. */
#define SPIN_NS 200000LL

typedef struct worker {
    rg_threadpool *pool;
    pthread_t thread;
} worker;

struct rg_threadpool {
    int n_threads;
    worker *workers; /* n_threads - 1 of them; the caller is thread 0 */

    rg_task_fn fn; /* written by the caller only while no index is claimable */
    void *arg;
    _Atomic uint64_t ticket; /* generation << 32 | next index to claim */
    _Atomic int n_done;      /* indices >= 1 finished in the current generation */
    _Atomic int n_sleeping;  /* workers blocked (or about to block) on cond */
    _Atomic int stop;

    pthread_mutex_t mutex;
    pthread_cond_t cond;

    rg_thread_trace_fn trace; /* set only between regions; NULL: no tracing */
    void *trace_user;
};

static uint32_t gen_of(uint64_t ticket) { return (uint32_t)(ticket >> 32); }

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Wait until the ticket's generation differs from seen; returns the ticket. */
static uint64_t wait_for_region(rg_threadpool *p, uint32_t seen) {
    int64_t t0 = now_ns();
    for (unsigned i = 1;; i++) {
        uint64_t t = atomic_load_explicit(&p->ticket, memory_order_acquire);
        if (gen_of(t) != seen) return t;
        cpu_relax();
        if ((i & 255) == 0 && now_ns() - t0 > SPIN_NS) break;
    }
    pthread_mutex_lock(&p->mutex);
    atomic_fetch_add(&p->n_sleeping, 1);
    uint64_t t;
    while (gen_of(t = atomic_load(&p->ticket)) == seen)
        pthread_cond_wait(&p->cond, &p->mutex);
    atomic_fetch_sub(&p->n_sleeping, 1);
    pthread_mutex_unlock(&p->mutex);
    return t;
}

static double now_s(void) { return (double)now_ns() * 1e-9; }

/* fn for index ith, reported to the tracer (if any) as run by thread self. */
static void run_index(rg_threadpool *p, int self, int ith) {
    if (!p->trace) {
        p->fn(p->arg, ith, p->n_threads);
        return;
    }
    double t0 = now_s();
    p->fn(p->arg, ith, p->n_threads);
    p->trace(p->trace_user, self, t0, now_s());
}

/* Claim and run indices of the region whose ticket is t until none is left.
 * A successful CAS means the region is still open (its last index cannot have
 * finished), so fn and arg are still this region's. */
static void run_claims(rg_threadpool *p, uint64_t t, int self) {
    const uint32_t gen = gen_of(t);
    while (gen_of(t) == gen && (uint32_t)t < (uint32_t)p->n_threads) {
        if (atomic_compare_exchange_weak_explicit(&p->ticket, &t, t + 1, memory_order_acquire, memory_order_acquire)) {
            run_index(p, self, (int)(uint32_t)t);
            atomic_fetch_add_explicit(&p->n_done, 1, memory_order_release);
            t = atomic_load_explicit(&p->ticket, memory_order_acquire);
        }
    }
}

static void *worker_main(void *arg) {
    worker *w = arg;
    rg_threadpool *p = w->pool;
    uint32_t seen = 0;
    for (;;) {
        uint64_t t = wait_for_region(p, seen);
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) break;
        run_claims(p, t, (int)(w - p->workers));
        seen = gen_of(t);
    }
    return NULL;
}

/* Open a region: the ticket's store (seq_cst) pairs with a sleeper's n_sleeping increment. */
static void publish(rg_threadpool *p, uint64_t ticket) {
    atomic_store(&p->ticket, ticket);
    if (atomic_load(&p->n_sleeping) > 0) {
        pthread_mutex_lock(&p->mutex);
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->mutex);
    }
}

rg_threadpool *rg_threadpool_create(int n_threads) {
    if (n_threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n > 0 ? (int)n : 1;
    }
    if (n_threads > 1024) n_threads = 1024;
    rg_threadpool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n_threads = n_threads;
    atomic_init(&p->ticket, (uint64_t)(uint32_t)n_threads); /* generation 0, nothing to claim */
    atomic_init(&p->n_done, 0);
    atomic_init(&p->n_sleeping, 0);
    atomic_init(&p->stop, 0);
    if (pthread_mutex_init(&p->mutex, NULL)) {
        free(p);
        return NULL;
    }
    if (pthread_cond_init(&p->cond, NULL)) {
        pthread_mutex_destroy(&p->mutex);
        free(p);
        return NULL;
    }
    p->workers = calloc((size_t)n_threads, sizeof *p->workers);
    if (!p->workers) {
        rg_threadpool_free(p);
        return NULL;
    }
    for (int i = 1; i < n_threads; i++) {
        worker *w = &p->workers[i];
        w->pool = p;
        if (pthread_create(&w->thread, NULL, worker_main, w)) {
            p->n_threads = i; /* free() joins only the threads that exist */
            rg_threadpool_free(p);
            return NULL;
        }
    }
    return p;
}

void rg_threadpool_free(rg_threadpool *p) {
    if (!p) return;
    if (p->workers) {
        atomic_store_explicit(&p->stop, 1, memory_order_release);
        uint64_t t = atomic_load(&p->ticket);
        publish(p, (uint64_t)(gen_of(t) + 1) << 32 | (uint32_t)p->n_threads); /* wakes all, nothing to claim */
        for (int i = 1; i < p->n_threads; i++)
            pthread_join(p->workers[i].thread, NULL);
        free(p->workers);
    }
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->mutex);
    free(p);
}

int rg_threadpool_size(const rg_threadpool *p) { return p ? p->n_threads : 1; }

void rg_threadpool_run(rg_threadpool *p, rg_task_fn fn, void *arg) {
    if (!p || p->n_threads == 1) {
        if (p && p->trace) {
            double t0 = now_s();
            fn(arg, 0, 1);
            p->trace(p->trace_user, 0, t0, now_s());
        } else {
            fn(arg, 0, 1);
        }
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->n_done, 0, memory_order_relaxed); /* ordered before the ticket by publish() */
    uint32_t gen = gen_of(atomic_load_explicit(&p->ticket, memory_order_relaxed)) + 1;
    publish(p, (uint64_t)gen << 32 | 1);
    run_index(p, 0, 0);
    run_claims(p, atomic_load_explicit(&p->ticket, memory_order_acquire), 0); /* whatever nobody took yet */
    /* Spin for the indices other threads claimed: they are running. If one was
     * descheduled (more threads than free cores), yield the core to it. */
    int want = p->n_threads - 1;
    for (unsigned i = 1; atomic_load_explicit(&p->n_done, memory_order_acquire) != want; i++) {
        cpu_relax();
        if ((i & 1023) == 0) sched_yield();
    }
}

void rg_threadpool_set_trace(rg_threadpool *p, rg_thread_trace_fn trace, void *user) {
    if (!p) return;
    p->trace_user = user;
    p->trace = trace;
}

void rg_split_range(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi) {
    int64_t base = n / nth, rem = n % nth;
    *lo = ith * base + (ith < rem ? ith : rem);
    *hi = *lo + base + (ith < rem ? 1 : 0);
}
