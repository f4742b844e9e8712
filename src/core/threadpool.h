/* threadpool.h — a fixed pool of worker threads that run one parallel region at
 * a time (fork-join), built for the hundreds of short regions a decode step has.
 *
 * rg_threadpool_run(pool, fn, arg) calls fn(arg, ith, nth) on every thread
 * (the caller is thread 0) and returns when all have finished. Workers spin
 * briefly on an atomic generation counter before sleeping, so back-to-back
 * regions cost a few microseconds, not a futex round trip each. */
#ifndef RG_CORE_THREADPOOL_H
#define RG_CORE_THREADPOOL_H

#include <stdint.h>

typedef struct rg_threadpool rg_threadpool;
typedef void (*rg_task_fn)(void *arg, int ith, int nth);

/* n_threads <= 0 means all online cores. Returns NULL on failure. */
rg_threadpool *rg_threadpool_create(int n_threads);
void rg_threadpool_free(rg_threadpool *pool);
int rg_threadpool_size(const rg_threadpool *pool);

/* Run fn on all threads; not reentrant (fn must not call run on the same pool). */
void rg_threadpool_run(rg_threadpool *pool, rg_task_fn fn, void *arg);

/* Tracing (ridge profile --trace): after each slice fn(arg, ith, nth) a thread
 * ran, trace(user, thread, t_start, t_end) is called on that thread, thread
 * being 0 for the caller and 1.. for the workers, times in CLOCK_MONOTONIC
 * seconds. Two clock reads per slice while set; one branch when not. Set or
 * clear (NULL) only while no region runs. */
typedef void (*rg_thread_trace_fn)(void *user, int thread, double t_start, double t_end);
void rg_threadpool_set_trace(rg_threadpool *pool, rg_thread_trace_fn trace, void *user);

/* Split [0, n) into nth near-equal contiguous ranges; thread ith gets [*lo, *hi). */
void rg_split_range(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi);

#endif
