/* op_cost.h — the one formula table that turns an op event (op_event.h) into the
 * FLOPs it does and the bytes it moves, so that `ridge profile`, `ridge bench`
 * and `ridge plan` agree on the arithmetic (shared/DESIGN.md, "Ops are counted").
 *
 * Bytes are the traffic each op's kernel names, counted once per call:
 * weights in their stored dtype with their block scales (rg_dtype_row_bytes),
 * f32 activations read and written, K/V read and written in the pool's dtype.
 * Scratch a kernel keeps in L1 (flash attention's block of scores, a matmul's
 * quantized copy of its input) is not counted; the score rows naive attention
 * materializes are (that traffic is what flash attention removes). FLOPs count
 * multiplies and adds (an FMA is 2); exp and divide count 1 each; dtype
 * conversions count 0. The formula of each op is written next to it in
 * op_cost.c. */
#ifndef RG_PERF_OP_COST_H
#define RG_PERF_OP_COST_H

#include "perf/op_event.h"

typedef struct rg_op_cost {
    double flops;
    double bytes_weight;   /* weights (and biases, norm vectors) */
    double bytes_act;      /* activations read + written (incl. naive attention's score rows) */
    double bytes_kv_read;  /* K and V read by attention */
    double bytes_kv_write; /* K and V stored */
} rg_op_cost;

/* The cost of one event. Unknown kinds or dtypes give zeros. */
rg_op_cost rg_op_cost_of(const rg_op_event *e);

/* Sum of the byte fields. */
double rg_op_cost_bytes(const rg_op_cost *c);

/* a += b, field by field. */
void rg_op_cost_add(rg_op_cost *a, const rg_op_cost *b);

/* "matmul", "attention", ... */
const char *rg_op_kind_name(rg_op_kind k);

/* Which compute ceiling bounds the op on the CPU backend: the int8 dot for
 * matmuls whose weights are block-quantized (their activations are quantized to
 * 8 bits and the dot runs in int8), f32 FMA for everything else. */
typedef enum rg_compute_class { RG_COMPUTE_F32 = 0, RG_COMPUTE_INT8 = 1 } rg_compute_class;
rg_compute_class rg_op_compute_class(const rg_op_event *e);

#endif
