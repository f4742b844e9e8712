/* op_cost.c — FLOPs and bytes per op (op_cost.h). One case per op kind, the
 * formula first, in the event's shape letters; F = 4 bytes (an f32). */
#include "perf/op_cost.h"

#include <string.h>

#define F 4.0

static double row_bytes(rg_dtype t, int64_t n) {
    int64_t b = rg_dtype_row_bytes(t, n);
    return b > 0 ? (double)b : 0;
}

rg_op_cost rg_op_cost_of(const rg_op_event *e) {
    rg_op_cost c;
    memset(&c, 0, sizeof c);
    double T = (double)e->n_tok;
    switch (e->kind) {
    case RG_OP_GET_ROWS:
        /* n_tok rows of k copied out of the table (dequantized): the rows read in
         * the stored dtype, f32 rows written, one int32 id each */
        c.bytes_weight = T * row_bytes(e->wtype, e->k);
        c.bytes_act = T * (double)e->k * F + T * 4;
        break;
    case RG_OP_MATMUL:
        /* y[T][n] = x[T][k] W^T: 2 T k n FLOPs; W once (n_out rows of k in its
         * dtype); x read, y written; a bias adds T n FLOPs, n f32 read and one
         * more pass over y (read + write) */
        c.flops = 2 * T * (double)e->k * (double)e->n_out;
        c.bytes_weight = (double)e->n_out * row_bytes(e->wtype, e->k);
        c.bytes_act = T * (double)e->k * F + T * (double)e->n_out * F;
        if (e->has_bias) {
            c.flops += T * (double)e->n_out;
            c.bytes_weight += (double)e->n_out * F;
            c.bytes_act += 2 * T * (double)e->n_out * F;
        }
        break;
    case RG_OP_RMSNORM:
        /* per row of n: sum of squares (2n), then x * inv_rms * w (2n); x read,
         * out written, the weight vector read once */
        c.flops = T * 4 * (double)e->n;
        c.bytes_weight = (double)e->n * F;
        c.bytes_act = 2 * T * (double)e->n * F;
        break;
    case RG_OP_ROPE: {
        /* each pair (a, b) -> (a cos - b sin, a sin + b cos): 6 FLOPs per 2
         * elements; in place, read + written. n_head counts q and k heads. */
        double elems = T * (double)e->n_head * (double)e->head_dim;
        c.flops = 3 * elems;
        c.bytes_act = 2 * elems * F;
        break;
    }
    case RG_OP_KV_STORE: {
        /* K and V rows of n_head_kv x head_dim: f32 read, pool dtype written */
        double rows = 2 * T * (double)e->n_head_kv;
        c.bytes_act = rows * (double)e->head_dim * F;
        c.bytes_kv_write = rows * row_bytes(e->kv_type, e->head_dim);
        break;
    }
    case RG_OP_ATTENTION: {
        /* per (query head, key): q.k (2 hd), p.v (2 hd), scale, max, subtract,
         * exp, sum (5); per query head the final 1/l scale (hd). ctx_sum sums the
         * keys each query token attends to. q read, out written. */
        double H = (double)e->n_head, hd = (double)e->head_dim, S = (double)e->ctx_sum;
        c.flops = S * H * (4 * hd + 5) + T * H * hd;
        c.bytes_act = 2 * T * H * hd * F;
        double kv_row = row_bytes(e->kv_type, e->head_dim);
        if (e->attn_kind == 1) {
            /* naive: every query head reads its KV head's rows itself (no GQA
             * sharing), and materializes its score row: written by q.k, read and
             * written by the softmax, read by p.v = 4 passes of ctx f32 */
            c.bytes_kv_read = 2 * S * H * kv_row;
            c.bytes_act += 4 * S * H * F;
        } else {
            /* flash: each query token reads each KV head's rows once for its group */
            c.bytes_kv_read = 2 * S * (double)e->n_head_kv * kv_row;
        }
        break;
    }
    case RG_OP_SWIGLU:
        /* silu(g) * u = g / (1 + exp(-g)) * u: negate, exp, add, divide, multiply;
         * g and u read, out written */
        c.flops = 5 * (double)e->n;
        c.bytes_act = 3 * (double)e->n * F;
        break;
    case RG_OP_ADD:
        /* y += x over n: y read and written, x read */
        c.flops = (double)e->n;
        c.bytes_act = 3 * (double)e->n * F;
        break;
    case RG_OP_POS_ADD:
        /* n_tok rows of n: x += pe (pe computed or looked up: counted as read) */
        c.flops = T * (double)e->n;
        c.bytes_act = 3 * T * (double)e->n * F;
        break;
    default: break;
    }
    return c;
}

double rg_op_cost_bytes(const rg_op_cost *c) {
    return c->bytes_weight + c->bytes_act + c->bytes_kv_read + c->bytes_kv_write;
}

void rg_op_cost_add(rg_op_cost *a, const rg_op_cost *b) {
    a->flops += b->flops;
    a->bytes_weight += b->bytes_weight;
    a->bytes_act += b->bytes_act;
    a->bytes_kv_read += b->bytes_kv_read;
    a->bytes_kv_write += b->bytes_kv_write;
}

const char *rg_op_kind_name(rg_op_kind k) {
    static const char *names[RG_OP_COUNT] = {"get_rows",  "matmul", "rmsnorm", "rope",   "kv_store",
                                             "attention", "swiglu", "add",     "pos_add"};
    return (unsigned)k < RG_OP_COUNT ? names[k] : "?";
}

rg_compute_class rg_op_compute_class(const rg_op_event *e) {
    if (e->kind != RG_OP_MATMUL) return RG_COMPUTE_F32;
    switch (e->wtype) {
    case RG_F32:
    case RG_F16:
    case RG_BF16: return RG_COMPUTE_F32;
    default: return RG_COMPUTE_INT8;
    }
}
