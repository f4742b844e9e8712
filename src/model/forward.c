/* forward.c — the Llama-family forward pass over a token batch, written once
 * against the backend op table (backend/backend.h): the CPU and CUDA backends
 * run the same sequence of ops, each reported to the op observer.
 *
 * Per layer, for all tokens of the step at once (so every weight is streamed
 * once per step, whatever the number of sequences):
 *   xb = rmsnorm(x) ; q,k,v = xb·Wq,Wk,Wv (+bias) ; rope(q,k) ; store k,v in the pool
 *   x += attention(q, pool)·Wo ; xb = rmsnorm(x) ; x += (silu(xb·Wg) * xb·Wu)·Wd
 * then the final norm and the output head only for the rows that want logits. */
#include "model/forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/argmax.h"
#include "perf/op_event.h"

/* The model's tensors as the backend holds them (backend memory). */
typedef struct resident_layer {
    float *attn_norm, *ffn_norm, *bq, *bk, *bv;
    rg_weight wq, wk, wv, wo, w_gate, w_up, w_down;
} resident_layer;

/* Rows of logits computed per output-head matmul: bounds the logits buffer
 * (n_vocab floats a row) whatever the step size. */
#define LOGIT_ROWS 64

struct rg_ctx {
    const rg_model *m;
    rg_backend *be;
    rg_backend_kind backend;
    rg_threadpool *pool;
    rg_kv_pool *kv;
    rg_attn_kind attn;
    int64_t n_ctx, max_tokens;
    resident_layer *layers;
    rg_backend_layer *stack;  /* the layers as layer_stack reads them (pointers into layers) */
    rg_weight tok_embd, output, pos_embd;
    float *output_norm, *rope_freq_factors, *alibi_slopes;
    /* step buffers in backend memory, [max_tokens][width] */
    float *x, *xb, *q, *k, *v, *att, *gate, *up, *out_rows, *logits;
    /* host side of a step */
    int32_t *pos_buf, *n_ctx_buf, *row_ids;
    float *host_logits;      /* logit rows for argmax_out on a backend without argmax_rows */
    const int32_t **tables;
    rg_op_observer observer; /* NULL: ops are not reported */
    void *observer_user;
    bool observer_timing;
    bool no_graphs;
    bool fuse;               /* use the backend's fused ops where it has them */
};

/* Copy a host f32 vector into backend memory (NULL stays NULL). */
static rg_status upload_vector(rg_backend *be, const float *host, int64_t n, float **out, rg_err *err) {
    *out = NULL;
    if (!host) return RG_OK;
    *out = be->alloc(be, (size_t)n * sizeof(float));
    if (!*out) return rg_fail(err, RG_E_NOMEM, "%s: out of memory for a vector of %lld floats", be->name, (long long)n);
    be->upload(be, *out, host, (size_t)n * sizeof(float));
    return RG_OK;
}

static rg_status load_weight(rg_ctx *c, const rg_weight *w, rg_weight *out, rg_err *err) {
    if (!w->data) return *out = *w, RG_OK;
    return c->be->load_weight(c->be, w, out, err);
}

/* Weights, norms, biases and rope factors resident in the backend. */
static rg_status load_model(rg_ctx *c, rg_err *err) {
    const rg_model *m = c->m;
    const rg_hparams *hp = &m->hp;
    int64_t d = hp->n_embd;
    rg_status s;
    c->layers = calloc((size_t)hp->n_layer, sizeof *c->layers);
    c->stack = calloc((size_t)hp->n_layer, sizeof *c->stack);
    if (!c->layers || !c->stack) return rg_fail(err, RG_E_NOMEM, "out of memory");
    if ((s = load_weight(c, &m->tok_embd, &c->tok_embd, err))) return s;
    if (m->output.data == m->tok_embd.data) c->output = c->tok_embd; /* tied: one copy */
    else if ((s = load_weight(c, &m->output, &c->output, err))) return s;
    if ((s = load_weight(c, &m->pos_embd, &c->pos_embd, err))) return s;
    if ((s = upload_vector(c->be, m->output_norm, d, &c->output_norm, err)) ||
        (s = upload_vector(c->be, m->rope_freq_factors, hp->n_rot / 2, &c->rope_freq_factors, err)))
        return s;
    int64_t n_q = hp->n_head * hp->head_dim, n_kv = hp->n_head_kv * hp->head_dim;
    for (int64_t il = 0; il < hp->n_layer; il++) {
        const rg_layer *l = &m->layers[il];
        resident_layer *r = &c->layers[il];
        if ((s = upload_vector(c->be, l->attn_norm, d, &r->attn_norm, err)) ||
            (s = upload_vector(c->be, l->ffn_norm, d, &r->ffn_norm, err)) ||
            (s = upload_vector(c->be, l->bq, n_q, &r->bq, err)) ||
            (s = upload_vector(c->be, l->bk, n_kv, &r->bk, err)) ||
            (s = upload_vector(c->be, l->bv, n_kv, &r->bv, err)) || (s = load_weight(c, &l->wq, &r->wq, err)) ||
            (s = load_weight(c, &l->wk, &r->wk, err)) || (s = load_weight(c, &l->wv, &r->wv, err)) ||
            (s = load_weight(c, &l->wo, &r->wo, err)) || (s = load_weight(c, &l->w_gate, &r->w_gate, err)) ||
            (s = load_weight(c, &l->w_up, &r->w_up, err)) || (s = load_weight(c, &l->w_down, &r->w_down, err)))
            return s;
        c->stack[il] = (rg_backend_layer){.attn_norm = r->attn_norm, .ffn_norm = r->ffn_norm, .bq = r->bq,
                                          .bk = r->bk, .bv = r->bv, .wq = &r->wq, .wk = &r->wk, .wv = &r->wv,
                                          .wo = &r->wo, .w_gate = &r->w_gate, .w_up = &r->w_up,
                                          .w_down = &r->w_down};
    }
    return c->be->sync(c->be, err);
}

static void unload_weight(rg_ctx *c, rg_weight *w) {
    if (w->data) c->be->unload_weight(c->be, w);
    w->data = NULL;
}

static void free_model(rg_ctx *c) {
    rg_backend *be = c->be;
    if (c->layers) {
        for (int64_t il = 0; il < c->m->hp.n_layer; il++) {
            resident_layer *r = &c->layers[il];
            be->free(be, r->attn_norm), be->free(be, r->ffn_norm);
            be->free(be, r->bq), be->free(be, r->bk), be->free(be, r->bv);
            unload_weight(c, &r->wq), unload_weight(c, &r->wk), unload_weight(c, &r->wv), unload_weight(c, &r->wo);
            unload_weight(c, &r->w_gate), unload_weight(c, &r->w_up), unload_weight(c, &r->w_down);
        }
        free(c->layers);
    }
    free(c->stack);
    if (c->output.data != c->tok_embd.data) unload_weight(c, &c->output);
    unload_weight(c, &c->tok_embd), unload_weight(c, &c->pos_embd);
    be->free(be, c->output_norm), be->free(be, c->rope_freq_factors), be->free(be, c->alibi_slopes);
}

static void kv_copy_hook(void *user, int32_t dst, int32_t src) {
    rg_backend *be = user;
    be->kv_copy_block(be, dst, src);
}

static float *alloc_floats(rg_ctx *c, int64_t n) {
    return c->be->alloc(c->be, (size_t)(n > 0 ? n : 1) * sizeof(float));
}

rg_status rg_ctx_create(const rg_model *m, const rg_ctx_params *p, rg_ctx **out, rg_err *err) {
    *out = NULL;
    const rg_hparams *hp = &m->hp;
    rg_ctx *c = calloc(1, sizeof *c);
    if (!c) return rg_fail(err, RG_E_NOMEM, "out of memory");
    c->m = m;
    c->attn = p->attn;
    c->backend = p->backend;
    c->no_graphs = p->no_graphs;
    c->fuse = !p->no_fusion;
    c->n_ctx = p->n_ctx > 0 ? p->n_ctx : hp->n_ctx_train;
    if (m->pos_encoding == RG_POS_LEARNED && c->n_ctx > hp->n_ctx_train) c->n_ctx = hp->n_ctx_train;
    c->max_tokens = p->max_batch_tokens > 0 ? p->max_batch_tokens : 512;
    int64_t n_seq = p->n_seq_max > 0 ? p->n_seq_max : 1;
    rg_kv_config kc = {
        .n_layer = hp->n_layer,
        .n_head_kv = hp->n_head_kv,
        .head_dim = hp->head_dim,
        .block_size = RG_KV_DEFAULT_BLOCK_SIZE,
        .dtype = p->kv_type ? p->kv_type : RG_F32,
    };
    kc.n_blocks = p->kv_blocks > 0 ? p->kv_blocks : n_seq * ((c->n_ctx + kc.block_size - 1) / kc.block_size);
    rg_status s = rg_kv_pool_create(&kc, &c->kv, err);
    if (s) {
        rg_ctx_free(c);
        return s;
    }
    c->pool = rg_threadpool_create(p->n_threads);
    if (!c->pool) {
        rg_ctx_free(c);
        return rg_fail(err, RG_E_NOMEM, "cannot start the thread pool");
    }
    if (p->backend == RG_BACKEND_CUDA) s = rg_backend_cuda_create(p->device, &c->be, err);
    else if (p->backend == RG_BACKEND_CPU) s = rg_backend_cpu_create(c->pool, &c->be, err);
    else s = rg_fail(err, RG_E_INVALID, "unknown backend %d", (int)p->backend);
    if (s || (s = load_model(c, err))) {
        rg_ctx_free(c);
        return s;
    }
    rg_kv_pool_set_copy_fn(c->kv, kv_copy_hook, c->be);
    int64_t T = c->max_tokens, n_q = hp->n_head * hp->head_dim, n_kv = hp->n_head_kv * hp->head_dim;
    int64_t logit_rows = T < LOGIT_ROWS ? T : LOGIT_ROWS;
    c->x = alloc_floats(c, T * hp->n_embd);
    c->xb = alloc_floats(c, T * (hp->n_embd > n_q ? hp->n_embd : n_q));
    c->q = alloc_floats(c, T * n_q);
    c->k = alloc_floats(c, T * n_kv);
    c->v = alloc_floats(c, T * n_kv);
    c->att = alloc_floats(c, T * n_q);
    c->gate = alloc_floats(c, T * hp->n_ff);
    c->up = alloc_floats(c, T * hp->n_ff);
    c->out_rows = alloc_floats(c, logit_rows * hp->n_embd);
    c->logits = alloc_floats(c, logit_rows * hp->n_vocab);
    c->pos_buf = malloc((size_t)T * sizeof *c->pos_buf);
    c->n_ctx_buf = malloc((size_t)T * sizeof *c->n_ctx_buf);
    c->row_ids = malloc((size_t)T * sizeof *c->row_ids);
    c->tables = malloc((size_t)T * sizeof *c->tables);
    if (!c->be->argmax_rows) c->host_logits = malloc((size_t)(logit_rows * hp->n_vocab) * sizeof *c->host_logits);
    if (!c->x || !c->xb || !c->q || !c->k || !c->v || !c->att || !c->gate || !c->up || !c->out_rows ||
        !c->logits || !c->pos_buf || !c->n_ctx_buf || !c->row_ids || !c->tables ||
        (!c->be->argmax_rows && !c->host_logits)) {
        rg_ctx_free(c);
        return rg_fail(err, RG_E_NOMEM, "out of memory for the step buffers (%lld tokens)", (long long)T);
    }
    /* Scratch for the largest matmul and for attention at full context, so that no step allocates. */
    int64_t k_max = hp->n_ff > n_q ? hp->n_ff : n_q;
    if (hp->n_embd > k_max) k_max = hp->n_embd;
    int64_t n_out_max = hp->n_vocab > hp->n_ff ? hp->n_vocab : hp->n_ff;
    if (n_q > n_out_max) n_out_max = n_q;
    rg_backend_limits lim = {
        .max_tokens = T,
        .k_max = k_max,
        .n_out_max = n_out_max,
        .n_head = hp->n_head,
        .n_head_kv = hp->n_head_kv,
        .head_dim = hp->head_dim,
        .max_ctx = c->n_ctx,
    };
    if ((s = c->be->reserve(c->be, &lim, c->kv, err))) {
        rg_ctx_free(c);
        return s;
    }
    if (m->pos_encoding == RG_POS_ALIBI) {
        /* ALiBi slopes: a geometric sequence 2^(-8h/n) for n a power of two, with the
         * standard interleaving for other head counts (Press et al. 2022). */
        float *slopes = malloc((size_t)hp->n_head * sizeof *slopes);
        int64_t n2 = 1;
        while (n2 * 2 <= hp->n_head) n2 *= 2;
        for (int64_t h = 0; slopes && h < hp->n_head; h++)
            slopes[h] = h < n2 ? powf(2.0f, -8.0f * (float)(h + 1) / (float)n2)
                               : powf(2.0f, -4.0f * (float)(2 * (h - n2) + 1) / (float)n2);
        s = slopes ? upload_vector(c->be, slopes, hp->n_head, &c->alibi_slopes, err)
                   : rg_fail(err, RG_E_NOMEM, "out of memory");
        free(slopes);
        if (s) {
            rg_ctx_free(c);
            return s;
        }
    }
    *out = c;
    return RG_OK;
}

void rg_ctx_free(rg_ctx *c) {
    if (!c) return;
    if (c->be) {
        rg_backend *be = c->be;
        free_model(c);
        be->free(be, c->x), be->free(be, c->xb), be->free(be, c->q), be->free(be, c->k), be->free(be, c->v);
        be->free(be, c->att), be->free(be, c->gate), be->free(be, c->up), be->free(be, c->out_rows);
        be->free(be, c->logits);
        be->destroy(be);
    }
    rg_kv_pool_free(c->kv);
    rg_threadpool_free(c->pool);
    free(c->pos_buf), free(c->n_ctx_buf), free(c->row_ids), free(c->tables), free(c->host_logits);
    free(c);
}

void rg_ctx_set_op_observer(rg_ctx *c, rg_op_observer fn, void *user, bool timing) {
    c->observer = fn;
    c->observer_user = user;
    c->observer_timing = timing;
}

rg_kv_pool *rg_ctx_kv(rg_ctx *c) { return c->kv; }
const rg_model *rg_ctx_model(const rg_ctx *c) { return c->m; }
int64_t rg_ctx_n_ctx(const rg_ctx *c) { return c->n_ctx; }
rg_threadpool *rg_ctx_cpu_pool(rg_ctx *c) { return c->pool; }
rg_backend_kind rg_ctx_backend(const rg_ctx *c) { return c->backend; }

float *rg_ctx_alloc_logits(rg_ctx *c, int64_t n_rows) {
    size_t bytes = (size_t)(n_rows > 0 ? n_rows : 1) * (size_t)c->m->hp.n_vocab * sizeof(float);
    return c->be->host_alloc ? c->be->host_alloc(c->be, bytes) : malloc(bytes);
}

void rg_ctx_free_logits(rg_ctx *c, float *logits) {
    if (!logits) return;
    if (c->be->host_free) c->be->host_free(c->be, logits);
    else free(logits);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Op reporting: OP_BEGIN before an op, op_end(c, &event) after it. Costs one
 * branch per op when nobody listens. With timing, the backend's queue is drained
 * before both clock reads, so a GPU op's time is its own. */
static double op_begin(rg_ctx *c) {
    if (!c->observer || !c->observer_timing) return 0;
    c->be->sync(c->be, NULL);
    return now_s();
}
#define OP_BEGIN(c) double op_t0_ = op_begin(c)
static void op_end(rg_ctx *c, rg_op_event *e, double t0) {
    if (!c->observer) return;
    if (c->observer_timing) c->be->sync(c->be, NULL);
    e->t_start = t0;
    e->t_end = c->observer_timing ? now_s() : 0;
    c->observer(c->observer_user, e);
}

/* y = x . W^T (+ bias), reported as one MATMUL event named `name`. */
static void matmul(rg_ctx *c, const char *name, int32_t layer, const rg_weight *w, const float *bias, const float *x,
                   int64_t n_tok, float *y) {
    OP_BEGIN(c);
    c->be->matmul(c->be, w, bias, x, n_tok, y);
    op_end(c, &(rg_op_event){.kind = RG_OP_MATMUL, .name = name, .layer = layer, .n_tok = n_tok, .wtype = w->type,
                             .k = w->k, .n_out = w->n_out, .has_bias = bias != NULL},
           op_t0_);
}

static void rmsnorm(rg_ctx *c, const char *name, int32_t layer, const float *x, const float *weight, int64_t n_tok,
                    float *out) {
    OP_BEGIN(c);
    c->be->rmsnorm(c->be, x, weight, c->m->hp.n_embd, n_tok, (float)c->m->hp.rms_eps, out);
    op_end(c, &(rg_op_event){.kind = RG_OP_RMSNORM, .name = name, .layer = layer, .n_tok = n_tok, .n = c->m->hp.n_embd},
           op_t0_);
}

static void residual_add(rg_ctx *c, const char *name, int32_t layer, const float *x, int64_t n_tok) {
    OP_BEGIN(c);
    c->be->add(c->be, c->x, x, n_tok * c->m->hp.n_embd);
    op_end(c, &(rg_op_event){.kind = RG_OP_ADD, .name = name, .layer = layer, .n_tok = n_tok,
                             .n = n_tok * c->m->hp.n_embd},
           op_t0_);
}

/* Absolute position encodings added to the embeddings (sinusoidal, learned). */
static void add_positions(rg_ctx *c, const int32_t *pos, int64_t n_tok) {
    const rg_model *m = c->m;
    int64_t d = m->hp.n_embd;
    if (m->pos_encoding != RG_POS_SINUSOIDAL && m->pos_encoding != RG_POS_LEARNED) return;
    OP_BEGIN(c);
    if (m->pos_encoding == RG_POS_SINUSOIDAL) {
        c->be->add_sinusoidal(c->be, c->x, d);
    } else {
        c->be->get_rows(c->be, &c->pos_embd, pos, n_tok, c->xb);
        c->be->add(c->be, c->x, c->xb, n_tok * d);
    }
    op_end(c, &(rg_op_event){.kind = RG_OP_POS_ADD, .name = "pos_encoding", .layer = -1, .n_tok = n_tok, .n = d},
           op_t0_);
}

/* Fused ops only without an observer: its events are per op, and a fused op's
 * time cannot be split among the ops it replaces (ridge profile shows the
 * unfused sequence). */
static bool fused(const rg_ctx *c) { return c->fuse && !c->observer; }

/* out = rmsnorm(x): with the input form of `next` (the weight that reads out
 * next) prepared in the same op where the backend does that. */
static void rmsnorm_for(rg_ctx *c, const char *name, int32_t layer, const float *x, const float *weight,
                        int64_t n_tok, float *out, const rg_weight *next) {
    rg_backend *be = c->be;
    if (fused(c) && be->rmsnorm_prepare &&
        be->rmsnorm_prepare(be, x, weight, c->m->hp.n_embd, n_tok, (float)c->m->hp.rms_eps, out, next))
        return;
    rmsnorm(c, name, layer, x, weight, n_tok, out);
}

/* x += W·in: one op where the backend fuses the residual add into the matmul. */
static void matmul_residual(rg_ctx *c, const char *name, const char *add_name, int32_t layer, const rg_weight *w,
                            const float *in, int64_t n_tok) {
    if (fused(c) && c->be->matmul_add && c->be->matmul_add(c->be, w, NULL, in, n_tok, c->x)) return;
    matmul(c, name, layer, w, NULL, in, n_tok, c->xb);
    residual_add(c, add_name, layer, c->xb, n_tok);
}

/* RoPE of q and k and the K/V store of the step (after the QKV products): one
 * op where the backend fuses them. */
static void rope_and_store(rg_ctx *c, int32_t L, int64_t n, bool rope, const rg_rope_params *rope_p) {
    const rg_hparams *hp = &c->m->hp;
    rg_backend *be = c->be;
    if (rope && fused(c) && be->rope_kv_store &&
        be->rope_kv_store(be, L, c->q, c->k, c->v, hp->n_head, hp->n_head_kv, hp->head_dim, rope_p))
        return;
    if (rope) {
        OP_BEGIN(c);
        be->rope(be, c->q, hp->n_head, hp->head_dim, rope_p);
        be->rope(be, c->k, hp->n_head_kv, hp->head_dim, rope_p);
        op_end(c, &(rg_op_event){.kind = RG_OP_ROPE, .name = "rope_qk", .layer = L, .n_tok = n,
                                 .n_head = hp->n_head + hp->n_head_kv, .head_dim = hp->head_dim},
               op_t0_);
    }
    OP_BEGIN(c);
    be->kv_store(be, L, c->k, c->v);
    op_end(c, &(rg_op_event){.kind = RG_OP_KV_STORE, .name = "kv_store", .layer = L, .n_tok = n,
                             .n_head_kv = hp->n_head_kv, .head_dim = hp->head_dim,
                             .kv_type = rg_kv_pool_config(c->kv)->dtype},
           op_t0_);
}

/* The layer stack for the n tokens of the current step (x in, x out). */
static void run_layers(rg_ctx *c, int64_t n, int64_t ctx_sum, int64_t ctx_max) {
    const rg_model *m = c->m;
    const rg_hparams *hp = &m->hp;
    rg_backend *be = c->be;
    rg_rope_params rope_p = {
        .n_rot = hp->n_rot,
        .freq_base = (float)hp->rope_freq_base,
        .freq_scale = hp->rope_scaling == RG_ROPE_SCALING_LINEAR ? (float)(1.0 / hp->rope_scale_factor) : 1.0f,
        .freq_factors = c->rope_freq_factors,
        .neox = hp->rope_type == RG_ROPE_NEOX,
    };
    const rg_kv_config *kvc = rg_kv_pool_config(c->kv);
    /* one token, nobody observing single ops: the whole stack in one backend op where it has one */
    if (n == 1 && fused(c) && !c->observer && be->layer_stack &&
        be->layer_stack(be, &(rg_backend_stack){.n_layer = hp->n_layer, .n_head = hp->n_head,
                                                .n_head_kv = hp->n_head_kv, .head_dim = hp->head_dim,
                                                .eps = (float)hp->rms_eps,
                                                .scale = 1.0f / sqrtf((float)hp->head_dim),
                                                .rope = m->pos_encoding == RG_POS_ROPE ? &rope_p : NULL,
                                                .layers = c->stack, .x = c->x}))
        return;
    for (int64_t il = 0; il < hp->n_layer; il++) {
        const resident_layer *l = &c->layers[il];
        int32_t L = (int32_t)il;
        rmsnorm_for(c, "attn_norm", L, c->x, l->attn_norm, n, c->xb, &l->wq);
        bool rope = m->pos_encoding == RG_POS_ROPE;
        const rg_weight *const wqkv[3] = {&l->wq, &l->wk, &l->wv};
        const float *const bqkv[3] = {l->bq, l->bk, l->bv};
        float *const qkv[3] = {c->q, c->k, c->v};
        if (!(rope && fused(c) && be->qkv_rope_kv_store &&
              be->qkv_rope_kv_store(be, il, wqkv, bqkv, c->xb, n, qkv, hp->n_head, hp->n_head_kv, hp->head_dim,
                                    &rope_p))) {
            if (!fused(c) || !be->matmul_multi || !be->matmul_multi(be, 3, wqkv, bqkv, c->xb, n, qkv)) {
                matmul(c, "attn_q", L, &l->wq, l->bq, c->xb, n, c->q);
                matmul(c, "attn_k", L, &l->wk, l->bk, c->xb, n, c->k);
                matmul(c, "attn_v", L, &l->wv, l->bv, c->xb, n, c->v);
            }
            rope_and_store(c, L, n, rope, &rope_p);
        }
        {
            OP_BEGIN(c);
            be->attention(be, &(rg_backend_attn){.layer = il,
                                                 .n_head = hp->n_head,
                                                 .q = c->q,
                                                 .out = c->att,
                                                 .scale = 1.0f / sqrtf((float)hp->head_dim),
                                                 .kind = c->attn,
                                                 .alibi_slopes = c->alibi_slopes,
                                                 .next = fused(c) ? &l->wo : NULL});
            op_end(c, &(rg_op_event){.kind = RG_OP_ATTENTION, .name = "attention", .layer = L, .n_tok = n,
                                     .n_head = hp->n_head, .n_head_kv = hp->n_head_kv, .head_dim = hp->head_dim,
                                     .kv_type = kvc->dtype, .ctx_sum = ctx_sum, .ctx_max = ctx_max,
                                     .attn_kind = (int32_t)c->attn},
                   op_t0_);
        }
        matmul_residual(c, "attn_output", "attn_residual", L, &l->wo, c->att, n);

        rmsnorm_for(c, "ffn_norm", L, c->x, l->ffn_norm, n, c->xb, &l->w_gate);
        if (!fused(c) || !be->matmul_swiglu ||
            !be->matmul_swiglu(be, &l->w_gate, &l->w_up, c->xb, n, c->gate, &l->w_down)) {
            /* both products in one op where the backend shares their input pass (prefill on CUDA) */
            if (!fused(c) || !be->matmul_multi ||
                !be->matmul_multi(be, 2, (const rg_weight *const[]){&l->w_gate, &l->w_up}, NULL, c->xb, n,
                                  (float *const[]){c->gate, c->up})) {
                matmul(c, "ffn_gate", L, &l->w_gate, NULL, c->xb, n, c->gate);
                matmul(c, "ffn_up", L, &l->w_up, NULL, c->xb, n, c->up);
            }
            OP_BEGIN(c);
            if (!fused(c) || !be->swiglu_into ||
                !be->swiglu_into(be, c->gate, c->up, n * hp->n_ff, c->gate, &l->w_down))
                be->swiglu(be, c->gate, c->up, n * hp->n_ff, c->gate);
            op_end(c, &(rg_op_event){.kind = RG_OP_SWIGLU, .name = "swiglu", .layer = L, .n_tok = n,
                                     .n = n * hp->n_ff},
                   op_t0_);
        }
        matmul_residual(c, "ffn_down", "ffn_residual", L, &l->w_down, c->gate, n);
    }
}

/* ids[i] = rg_argmax of logit row i of c->logits (nr rows): on the backend where
 * it has argmax_rows, else from the host rows (`host`, or downloaded here). */
static void argmax_logits(rg_ctx *c, int64_t nr, const float *host, int32_t *ids) {
    int64_t n_vocab = c->m->hp.n_vocab;
    if (c->be->argmax_rows) {
        c->be->argmax_rows(c->be, c->logits, nr, n_vocab, ids);
        return;
    }
    if (!host) {
        c->be->download(c->be, c->host_logits, c->logits, (size_t)(nr * n_vocab) * sizeof(float));
        host = c->host_logits;
    }
    for (int64_t i = 0; i < nr; i++)
        ids[i] = rg_argmax(host + i * n_vocab, (int32_t)n_vocab, NULL);
}

/* One chunk of at most max_tokens tokens whose KV blocks are reserved. */
static void forward_chunk(rg_ctx *c, const rg_batch *b, int64_t t0, int64_t n, rg_kv_seq *const *seqs,
                          float *logits, int64_t *logit_row) {
    const rg_model *m = c->m;
    const rg_hparams *hp = &m->hp;
    rg_backend *be = c->be;
    int64_t d = hp->n_embd;
    const int32_t *pos = b->pos + t0;
    int64_t ctx_sum = 0, ctx_max = 0;
    for (int64_t t = 0; t < n; t++) {
        const rg_kv_seq *s = seqs[b->seq[t0 + t]];
        c->tables[t] = s->blocks;
        c->n_ctx_buf[t] = pos[t] + 1;
        ctx_sum += c->n_ctx_buf[t];
        if (c->n_ctx_buf[t] > ctx_max) ctx_max = c->n_ctx_buf[t];
    }
    be->begin_step(be, &(rg_step){.n_tok = n, .pos = pos, .tables = c->tables, .n_ctx = c->n_ctx_buf,
                                  .ctx_max = ctx_max});
    {
        OP_BEGIN(c);
        be->get_rows(be, &c->tok_embd, b->token + t0, n, c->x);
        op_end(c, &(rg_op_event){.kind = RG_OP_GET_ROWS, .name = "token_embd", .layer = -1, .n_tok = n,
                                 .wtype = m->tok_embd.type, .k = d, .n_out = m->tok_embd.n_out},
               op_t0_);
    }
    add_positions(c, pos, n);
    /* A decode-sized step (no observer: events are per op) replays the recorded
     * layer ops of its batch size where the backend records them (CUDA graphs). */
    bool graph = be->graph_replay && !c->observer && !c->no_graphs && n <= 16;
    if (!graph || !be->graph_replay(be, n)) {
        if (graph) be->graph_record_begin(be, n);
        run_layers(c, n, ctx_sum, ctx_max);
        if (graph) be->graph_record_end(be, n);
    }
    /* The rows that want logits, LOGIT_ROWS at a time: gather, final norm, output
     * head, then copy the logits out and/or reduce them to greedy ids. */
    if (!logits && !b->argmax_out) return;
    int64_t n_want = 0;
    for (int64_t t = 0; t < n; t++) {
        bool want = b->want_logits ? b->want_logits[t0 + t] : (t0 + t == b->n_tokens - 1);
        if (want) c->row_ids[n_want++] = (int32_t)t;
    }
    int64_t rows_max = c->max_tokens < LOGIT_ROWS ? c->max_tokens : LOGIT_ROWS;
    for (int64_t r0 = 0; r0 < n_want; r0 += rows_max) {
        int64_t nr = n_want - r0 < rows_max ? n_want - r0 : rows_max;
        for (int64_t i = 0; i < nr; i++)
            be->copy(be, c->out_rows + i * d, c->x + (int64_t)c->row_ids[r0 + i] * d, (size_t)d * sizeof(float));
        rmsnorm(c, "output_norm", -1, c->out_rows, c->output_norm, nr, c->out_rows);
        matmul(c, "output", -1, &c->output, NULL, c->out_rows, nr, c->logits);
        float *rows = logits ? logits + *logit_row * hp->n_vocab : NULL;
        if (rows) be->download(be, rows, c->logits, (size_t)(nr * hp->n_vocab) * sizeof(float));
        if (b->argmax_out) argmax_logits(c, nr, rows, b->argmax_out + *logit_row);
        *logit_row += nr;
    }
}

rg_status rg_forward(rg_ctx *c, const rg_batch *b, rg_kv_seq *const *seqs, int64_t n_seqs, float *logits,
                     rg_err *err) {
    const rg_hparams *hp = &c->m->hp;
    /* Validate: ids in range; each sequence continues from where it stands. */
    int64_t *next = calloc((size_t)(n_seqs > 0 ? n_seqs : 1), sizeof *next);
    if (!next) return rg_fail(err, RG_E_NOMEM, "out of memory");
    for (int64_t i = 0; i < n_seqs; i++) next[i] = seqs[i]->n_tokens;
    rg_status s = RG_OK;
    for (int64_t t = 0; t < b->n_tokens && !s; t++) {
        int32_t id = b->token[t], sq = b->seq[t];
        if (id < 0 || id >= hp->n_vocab)
            s = rg_fail(err, RG_E_INVALID, "token %lld: id %d out of range", (long long)t, id);
        else if (sq < 0 || sq >= n_seqs)
            s = rg_fail(err, RG_E_INVALID, "token %lld: sequence %d out of range", (long long)t, sq);
        else if (b->pos[t] != next[sq])
            s = rg_fail(err, RG_E_INVALID, "token %lld: position %d, but sequence %d continues at %lld", (long long)t,
                        b->pos[t], sq, (long long)next[sq]);
        else if (b->pos[t] >= c->n_ctx)
            s = rg_fail(err, RG_E_INVALID, "sequence %d reached the context length %lld", sq, (long long)c->n_ctx);
        else next[sq]++;
    }
    /* Reserve blocks for every sequence, all or nothing. */
    int64_t reserved = 0;
    for (; reserved < n_seqs && !s; reserved++)
        s = rg_kv_seq_reserve(c->kv, seqs[reserved], next[reserved], err);
    if (s) {
        for (int64_t i = 0; i + 1 < reserved; i++) rg_kv_seq_truncate(c->kv, seqs[i], seqs[i]->n_tokens);
        free(next);
        return s;
    }
    int64_t logit_row = 0;
    for (int64_t t0 = 0; t0 < b->n_tokens; t0 += c->max_tokens) {
        int64_t n = b->n_tokens - t0 < c->max_tokens ? b->n_tokens - t0 : c->max_tokens;
        forward_chunk(c, b, t0, n, seqs, logits, &logit_row);
    }
    /* A failed backend op leaves every sequence where it stood (its K/V may be partly written). */
    if (!(s = c->be->sync(c->be, err)))
        for (int64_t i = 0; i < n_seqs; i++) seqs[i]->n_tokens = next[i];
    free(next);
    return s;
}
