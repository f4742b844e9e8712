/* machine.h — the two numbers the planner needs about a machine (peak compute,
 * memory bandwidth) and its memory capacity, from a datasheet preset or from
 * this machine's measured roofline. */
#ifndef RG_PERF_MACHINE_H
#define RG_PERF_MACHINE_H

#include <stdbool.h>

#include "perf/roofline.h"

typedef struct rg_machine {
    char name[64];
    double peak_flops;     /* FLOP/s of the compute ceiling */
    double mem_bw;         /* bytes/s of the memory ceiling */
    double capacity_bytes; /* memory for weights + KV */
    char peak_what[64];    /* where peak_flops comes from, e.g. "dense bf16, datasheet" */
    char bw_what[64];
} rg_machine;

/* Datasheet presets (dense bf16 tensor-core FLOP/s without sparsity, HBM
 * bandwidth, HBM capacity): "a100" (A100 SXM 80GB: 312 TFLOP/s, 2.0 TB/s, 80 GB),
 * "h100" (H100 SXM: 989, 3.35, 80), "h200" (989, 4.8, 141), "b200" (2250, 8, 192).
 * Case-insensitive; false for other names. */
bool rg_machine_preset(const char *name, rg_machine *out);
const char *rg_machine_preset_names(void);

/* This machine from its roofline: all-threads f32 FMA peak (or int8 when
 * use_int8), all-threads memory read bandwidth, physical memory. A roofline with
 * GPU ceilings gives the GPU's instead (bf16 GEMM, device memory). */
void rg_machine_from_roofline(const rg_roofline *r, bool use_int8, rg_machine *out);

/* FLOP per byte where the machine turns from memory- to compute-bound. */
double rg_machine_ridge_point(const rg_machine *m);

#endif
