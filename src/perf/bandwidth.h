/* bandwidth.h — measuring this machine's memory read bandwidth, the ceiling a
 * decode step streams its weights against. */
#ifndef RG_PERF_BANDWIDTH_H
#define RG_PERF_BANDWIDTH_H

#include <stddef.h>

#include "core/threadpool.h"

/* Read a buffer of `bytes` (far larger than the last-level cache) with all threads
 * of pool, `reps` times; returns the best bytes-read per second in GB/s (1e9),
 * or a negative value if the buffer cannot be allocated. */
double rg_measure_read_bandwidth(rg_threadpool *pool, size_t bytes, int reps);

#endif
