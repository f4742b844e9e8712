/* roofline.h — this machine's ceilings, measured once (`ridge roofline`) and
 * saved as JSON so `ridge profile`, `ridge plan --machine this` and `ridge bench`
 * reuse them instead of re-measuring.
 *
 * Every ceiling is measured twice: one thread ([RG_1T]) and all threads
 * ([RG_ALL]). Bandwidths are GB/s (1e9 bytes/s, read + written), rates are
 * GFLOP/s or GOP/s (1e9/s). A ceiling pair's ridge point is compute / bandwidth
 * in FLOP per byte: an op with a lower arithmetic intensity is bound by that
 * bandwidth. */
#ifndef RG_PERF_ROOFLINE_H
#define RG_PERF_ROOFLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "perf/bandwidth.h"

enum { RG_1T = 0, RG_ALL = 1 };

#define RG_MAX_CACHE_LEVELS 4

typedef struct rg_cache_level {
    int level;          /* 1, 2, 3 */
    int64_t size_bytes; /* one instance */
    int shared_by;      /* CPUs sharing one instance */
    double read_gbs[2]; /* read bandwidth with a working set of half the level */
} rg_cache_level;

typedef struct rg_roofline {
    char cpu[128];                      /* model name */
    int n_threads;                      /* the all-threads measurement's threads */
    int64_t mem_bytes;                  /* physical memory */
    double mem_gbs[RG_STREAM_COUNT][2]; /* main memory: read, write, triad */
    int n_cache;
    rg_cache_level cache[RG_MAX_CACHE_LEVELS];
    double f32_gflops[2]; /* FMA peak */
    char f32_isa[32];
    double int8_gops[2]; /* int8 dot peak, 0 when the ISA has none */
    char int8_isa[32];
    bool quick;           /* measured with --quick (short, small buffers) */
    char measured_at[32]; /* UTC, ISO 8601 */
    /* GPU ceilings: filled only by a CUDA build (RIDGE_HAVE_CUDA) through
     * rg_roofline_measure_gpu; has_gpu false everywhere else. */
    bool has_gpu;
    char gpu_name[128];
    double gpu_mem_gbs;     /* device memory copy/stream bandwidth */
    double gpu_bf16_tflops; /* cuBLAS bf16 GEMM */
    double gpu_fp16_tflops;
    double gpu_launch_us; /* empty kernel launch overhead */
    int64_t gpu_mem_bytes;
} rg_roofline;

typedef struct rg_probe_opts {
    int n_threads; /* <= 0: all cores */
    bool quick;    /* small buffers, short runs (tests, CI) */
    /* progress: called before each measurement with its index, the total and a
     * label ("memory read, 2 threads"); may be NULL */
    void (*progress)(int step, int n_steps, const char *what, void *user);
    void *user;
} rg_probe_opts;

/* Measure everything above (seconds with quick, about a minute without). */
rg_status rg_roofline_measure(const rg_probe_opts *o, rg_roofline *out, rg_err *err);

/* The GPU hook: a CUDA build defines it (backend/cuda) and fills the gpu_*
 * fields; without CUDA it returns RG_E_UNSUPPORTED and changes nothing. */
rg_status rg_roofline_measure_gpu(rg_roofline *r, rg_err *err);

/* Cache levels of CPU 0 from /sys/devices/system/cpu/cpu0/cache (data and
 * unified caches only); returns how many were found (0 if sysfs is absent). */
int rg_detect_cache_levels(rg_cache_level *out, int max);

/* JSON text of r (malloc'd, the caller frees), or NULL when out of memory. */
char *rg_roofline_to_json(const rg_roofline *r);
/* Parse JSON written by rg_roofline_to_json; RG_E_FORMAT naming what is wrong. */
rg_status rg_roofline_from_json(const char *text, rg_roofline *r, rg_err *err);

/* $XDG_CACHE_HOME/ridge/roofline.json, else $HOME/.cache/ridge/roofline.json. */
bool rg_roofline_default_path(char *buf, size_t n);
/* Write to path, creating its directory; load from path. */
rg_status rg_roofline_save(const rg_roofline *r, const char *path, rg_err *err);
rg_status rg_roofline_load(const char *path, rg_roofline *r, rg_err *err);

#endif
