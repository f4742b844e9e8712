/* op_event.h — what the forward pass reports about each op it runs, so that one
 * formula table (perf/op_cost) can turn it into FLOPs and bytes, and profiles,
 * `ridge bench` and the planner agree on the arithmetic (shared/DESIGN.md,
 * "Ops are counted").
 *
 * An event describes the op's shape, not its cost: the cost is computed from the
 * shape by whoever listens (rg_ctx_set_op_observer in model/forward.h). Events
 * are delivered on the thread that called rg_forward, after the op finished. */
#ifndef RG_PERF_OP_EVENT_H
#define RG_PERF_OP_EVENT_H

#include <stdint.h>

#include "core/dtype.h"

typedef enum rg_op_kind {
    RG_OP_GET_ROWS,  /* embedding lookup: n_tok rows of k from a weight of wtype */
    RG_OP_MATMUL,    /* y[n_tok][n_out] = x[n_tok][k] . W^T, W of wtype (+ bias if has_bias) */
    RG_OP_RMSNORM,   /* n_tok rows of n */
    RG_OP_ROPE,      /* n_tok tokens, n_head heads of head_dim (q or k) */
    RG_OP_KV_STORE,  /* n_tok tokens' K and V (n_head_kv x head_dim each) written to the pool */
    RG_OP_ATTENTION, /* n_tok queries of n_head heads over ctx_sum keys in total */
    RG_OP_SWIGLU,    /* n elements: silu(gate) * up */
    RG_OP_ADD,       /* n elements: residual add */
    RG_OP_POS_ADD,   /* absolute position encoding added to n_tok rows of n */
    RG_OP_COUNT
} rg_op_kind;

typedef struct rg_op_event {
    rg_op_kind kind;
    const char *name;      /* e.g. "attn_q", "ffn_down", "output", "attn_norm"; static storage */
    int32_t layer;         /* -1 outside the layer stack */
    int64_t n_tok;         /* rows (tokens) processed */
    /* GET_ROWS, MATMUL */
    rg_dtype wtype;
    int64_t k, n_out;
    int32_t has_bias;
    /* RMSNORM, SWIGLU, ADD, POS_ADD: elements per row (SWIGLU, ADD: in total) */
    int64_t n;
    /* ROPE, KV_STORE, ATTENTION */
    int64_t n_head, n_head_kv, head_dim;
    rg_dtype kv_type;      /* the pool's dtype */
    int64_t ctx_sum;       /* ATTENTION: sum over the n_tok queries of the keys each attends to */
    int64_t ctx_max;       /* ATTENTION: the longest of those */
    int32_t attn_kind;     /* ATTENTION: rg_attn_kind (0 flash, 1 naive) */
    /* timing, seconds on CLOCK_MONOTONIC; 0 when the observer asked for no timing */
    double t_start, t_end;
} rg_op_event;

typedef void (*rg_op_observer)(void *user, const rg_op_event *e);

#endif
