/* bandwidth.h — measuring this machine's memory and cache bandwidths: the
 * ceilings a decode step streams its weights against (`ridge bench`, `ridge
 * roofline`).
 *
 * Three streaming kernels, counted the way STREAM counts them (bytes the kernel
 * names, read + written; a store's read-for-ownership is not counted):
 *   read   s += a[i]            8 bytes per element
 *   write  a[i] = c             8 bytes per element
 *   triad  a[i] = b[i] + q*c[i] 24 bytes per element
 * Every thread of the pool works on its own buffer (first touched by that
 * thread), so the same call measures a private cache level (small buffers,
 * many passes) or main memory (buffers far larger than the last-level cache). */
#ifndef RG_PERF_BANDWIDTH_H
#define RG_PERF_BANDWIDTH_H

#include <stddef.h>

#include "core/threadpool.h"

typedef enum rg_stream_kind { RG_STREAM_READ = 0, RG_STREAM_WRITE, RG_STREAM_TRIAD, RG_STREAM_COUNT } rg_stream_kind;

const char *rg_stream_kind_name(rg_stream_kind k);

/* Each thread of pool streams its own `bytes_per_thread` (per array) `passes`
 * times in one timed region; the best of `reps` regions is returned in GB/s
 * (1e9 bytes per second, read + written), or a negative value if the buffers
 * cannot be allocated. */
double rg_measure_stream(rg_threadpool *pool, rg_stream_kind kind, size_t bytes_per_thread, int passes, int reps);

/* Read a buffer of `bytes` in total (far larger than the last-level cache) with
 * all threads of pool, `reps` times; the best bytes-read per second in GB/s. */
double rg_measure_read_bandwidth(rg_threadpool *pool, size_t bytes, int reps);

#endif
