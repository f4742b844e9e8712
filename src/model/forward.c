/* forward.c — the Llama-family forward pass over a token batch (CPU backend).
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

#include "backend/cpu/ops.h"
#include "perf/op_event.h"

struct rg_ctx {
    const rg_model *m;
    rg_cpu_ctx cpu;
    rg_kv_pool *kv;
    rg_attn_kind attn;
    int64_t n_ctx, max_tokens;
    /* step buffers, [max_tokens][width] */
    float *x, *xb, *q, *k, *v, *att, *gate, *up, *logit_rows;
    int32_t *pos_buf, *n_ctx_buf;
    const int32_t **tables;
    float *alibi_slopes;
    rg_op_observer observer; /* NULL: ops are not reported */
    void *observer_user;
    bool observer_timing;
};

static void *alloc_floats(int64_t n) { return malloc((size_t)(n > 0 ? n : 1) * sizeof(float)); }

rg_status rg_ctx_create(const rg_model *m, const rg_ctx_params *p, rg_ctx **out, rg_err *err) {
    *out = NULL;
    const rg_hparams *hp = &m->hp;
    rg_ctx *c = calloc(1, sizeof *c);
    if (!c) return rg_fail(err, RG_E_NOMEM, "out of memory");
    c->m = m;
    c->attn = p->attn;
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
    c->cpu.pool = rg_threadpool_create(p->n_threads);
    int64_t T = c->max_tokens, n_q = hp->n_head * hp->head_dim, n_kv = hp->n_head_kv * hp->head_dim;
    c->x = alloc_floats(T * hp->n_embd);
    c->xb = alloc_floats(T * (hp->n_embd > n_q ? hp->n_embd : n_q));
    c->q = alloc_floats(T * n_q);
    c->k = alloc_floats(T * n_kv);
    c->v = alloc_floats(T * n_kv);
    c->att = alloc_floats(T * n_q);
    c->gate = alloc_floats(T * hp->n_ff);
    c->up = alloc_floats(T * hp->n_ff);
    c->pos_buf = malloc((size_t)T * sizeof *c->pos_buf);
    c->n_ctx_buf = malloc((size_t)T * sizeof *c->n_ctx_buf);
    c->tables = malloc((size_t)T * sizeof *c->tables);
    if (!c->cpu.pool || !c->x || !c->xb || !c->q || !c->k || !c->v || !c->att || !c->gate || !c->up ||
        !c->pos_buf || !c->n_ctx_buf || !c->tables) {
        rg_ctx_free(c);
        return rg_fail(err, RG_E_NOMEM, "out of memory for the step buffers (%lld tokens)", (long long)T);
    }
    /* Scratch for the largest matmul input (k up to max(n_embd, n_q, n_ff)) and for
     * attention at full context, so that no step allocates. */
    int64_t k_max = hp->n_ff > n_q ? hp->n_ff : n_q;
    if (hp->n_embd > k_max) k_max = hp->n_embd;
    if ((s = rg_cpu_reserve(&c->cpu, k_max, T, err)) ||
        (s = rg_cpu_attention_reserve(&c->cpu, c->kv, hp->n_head, c->n_ctx, err))) {
        rg_ctx_free(c);
        return s;
    }
    if (m->pos_encoding == RG_POS_ALIBI) {
        /* ALiBi slopes: a geometric sequence 2^(-8h/n) for n a power of two, with the
         * standard interleaving for other head counts (Press et al. 2022). */
        c->alibi_slopes = alloc_floats(hp->n_head);
        int64_t n2 = 1;
        while (n2 * 2 <= hp->n_head) n2 *= 2;
        for (int64_t h = 0; h < hp->n_head; h++)
            c->alibi_slopes[h] = h < n2 ? powf(2.0f, -8.0f * (float)(h + 1) / (float)n2)
                                        : powf(2.0f, -4.0f * (float)(2 * (h - n2) + 1) / (float)n2);
    }
    *out = c;
    return RG_OK;
}

void rg_ctx_free(rg_ctx *c) {
    if (!c) return;
    rg_kv_pool_free(c->kv);
    rg_threadpool_free(c->cpu.pool);
    free(c->cpu.scratch);
    free(c->x), free(c->xb), free(c->q), free(c->k), free(c->v), free(c->att), free(c->gate), free(c->up);
    free(c->pos_buf), free(c->n_ctx_buf), free(c->tables), free(c->alibi_slopes);
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
rg_threadpool *rg_ctx_cpu_pool(rg_ctx *c) { return c->cpu.pool; }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Op reporting: OP_BEGIN before an op, op_end(c, &event) after it. Costs one
 * branch per op when nobody listens. */
#define OP_BEGIN(c) double op_t0_ = (c)->observer && (c)->observer_timing ? now_s() : 0
static void op_end(rg_ctx *c, rg_op_event *e, double t0) {
    if (!c->observer) return;
    e->t_start = t0;
    e->t_end = c->observer_timing ? now_s() : 0;
    c->observer(c->observer_user, e);
}

static void add_bias(float *y, const float *bias, int64_t n_tok, int64_t n) {
    if (!bias) return;
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t i = 0; i < n; i++) y[t * n + i] += bias[i];
}

/* y = x . W^T (+ bias), reported as one MATMUL event named `name`. */
static void matmul(rg_ctx *c, const char *name, int32_t layer, const rg_weight *w, const float *bias, const float *x,
                   int64_t n_tok, float *y) {
    OP_BEGIN(c);
    rg_cpu_matmul(&c->cpu, w->type, w->data, w->k, w->n_out, x, n_tok, y);
    add_bias(y, bias, n_tok, w->n_out);
    op_end(c, &(rg_op_event){.kind = RG_OP_MATMUL, .name = name, .layer = layer, .n_tok = n_tok, .wtype = w->type,
                             .k = w->k, .n_out = w->n_out, .has_bias = bias != NULL},
           op_t0_);
}

static void rmsnorm(rg_ctx *c, const char *name, int32_t layer, const float *x, const float *weight, int64_t n_tok,
                    float *out) {
    OP_BEGIN(c);
    rg_cpu_rmsnorm(&c->cpu, x, weight, c->m->hp.n_embd, n_tok, (float)c->m->hp.rms_eps, out);
    op_end(c, &(rg_op_event){.kind = RG_OP_RMSNORM, .name = name, .layer = layer, .n_tok = n_tok, .n = c->m->hp.n_embd},
           op_t0_);
}

static void residual_add(rg_ctx *c, const char *name, int32_t layer, const float *x, int64_t n_tok) {
    OP_BEGIN(c);
    rg_cpu_add(&c->cpu, c->x, x, n_tok * c->m->hp.n_embd);
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
        /* PE(p, 2i) = sin(p / 10000^(2i/d)), PE(p, 2i+1) = cos(...) (Vaswani et al. 2017) */
        for (int64_t t = 0; t < n_tok; t++)
            for (int64_t i = 0; i < d / 2; i++) {
                double angle = pos[t] / pow(10000.0, 2.0 * (double)i / (double)d);
                c->x[t * d + 2 * i] += (float)sin(angle);
                c->x[t * d + 2 * i + 1] += (float)cos(angle);
            }
    } else if (m->pos_encoding == RG_POS_LEARNED) {
        rg_cpu_get_rows(m->pos_embd.type, m->pos_embd.data, d, pos, n_tok, c->xb);
        rg_cpu_add(&c->cpu, c->x, c->xb, n_tok * d);
    }
    op_end(c, &(rg_op_event){.kind = RG_OP_POS_ADD, .name = "pos_encoding", .layer = -1, .n_tok = n_tok, .n = d},
           op_t0_);
}

/* One chunk of at most max_tokens tokens whose KV blocks are reserved. */
static void forward_chunk(rg_ctx *c, const rg_batch *b, int64_t t0, int64_t n, rg_kv_seq *const *seqs,
                          float *logits, int64_t *logit_row) {
    const rg_model *m = c->m;
    const rg_hparams *hp = &m->hp;
    int64_t d = hp->n_embd;
    const int32_t *pos = b->pos + t0;
    for (int64_t t = 0; t < n; t++) {
        const rg_kv_seq *s = seqs[b->seq[t0 + t]];
        c->tables[t] = s->blocks;
        c->n_ctx_buf[t] = pos[t] + 1;
    }
    int64_t ctx_sum = 0, ctx_max = 0;
    for (int64_t t = 0; t < n; t++) {
        ctx_sum += c->n_ctx_buf[t];
        if (c->n_ctx_buf[t] > ctx_max) ctx_max = c->n_ctx_buf[t];
    }
    {
        OP_BEGIN(c);
        rg_cpu_get_rows(m->tok_embd.type, m->tok_embd.data, d, b->token + t0, n, c->x);
        op_end(c, &(rg_op_event){.kind = RG_OP_GET_ROWS, .name = "token_embd", .layer = -1, .n_tok = n,
                                 .wtype = m->tok_embd.type, .k = d, .n_out = m->tok_embd.n_out},
               op_t0_);
    }
    add_positions(c, pos, n);
    rg_rope_params rope = {
        .n_rot = hp->n_rot,
        .freq_base = (float)hp->rope_freq_base,
        .freq_scale = hp->rope_scaling == RG_ROPE_SCALING_LINEAR ? (float)(1.0 / hp->rope_scale_factor) : 1.0f,
        .freq_factors = m->rope_freq_factors,
        .neox = hp->rope_type == RG_ROPE_NEOX,
    };
    const rg_kv_config *kvc = rg_kv_pool_config(c->kv);
    for (int64_t il = 0; il < hp->n_layer; il++) {
        const rg_layer *l = &m->layers[il];
        int32_t L = (int32_t)il;
        rmsnorm(c, "attn_norm", L, c->x, l->attn_norm, n, c->xb);
        matmul(c, "attn_q", L, &l->wq, l->bq, c->xb, n, c->q);
        matmul(c, "attn_k", L, &l->wk, l->bk, c->xb, n, c->k);
        matmul(c, "attn_v", L, &l->wv, l->bv, c->xb, n, c->v);
        if (m->pos_encoding == RG_POS_ROPE) {
            OP_BEGIN(c);
            rg_cpu_rope(&c->cpu, c->q, pos, n, hp->n_head, hp->head_dim, &rope);
            rg_cpu_rope(&c->cpu, c->k, pos, n, hp->n_head_kv, hp->head_dim, &rope);
            op_end(c, &(rg_op_event){.kind = RG_OP_ROPE, .name = "rope_qk", .layer = L, .n_tok = n,
                                     .n_head = hp->n_head + hp->n_head_kv, .head_dim = hp->head_dim},
                   op_t0_);
        }
        {
            OP_BEGIN(c);
            rg_kv_store(c->kv, il, c->k, c->v, n, c->tables, pos);
            op_end(c, &(rg_op_event){.kind = RG_OP_KV_STORE, .name = "kv_store", .layer = L, .n_tok = n,
                                     .n_head_kv = hp->n_head_kv, .head_dim = hp->head_dim, .kv_type = kvc->dtype},
                   op_t0_);
        }
        rg_attn_args a = {
            .pool = c->kv,
            .layer = il,
            .n_tok = n,
            .n_head = hp->n_head,
            .q = c->q,
            .out = c->att,
            .tables = c->tables,
            .n_ctx = c->n_ctx_buf,
            .scale = 1.0f / sqrtf((float)hp->head_dim),
            .kind = c->attn,
            .alibi_slopes = c->alibi_slopes,
        };
        {
            OP_BEGIN(c);
            rg_cpu_attention(&c->cpu, &a);
            op_end(c, &(rg_op_event){.kind = RG_OP_ATTENTION, .name = "attention", .layer = L, .n_tok = n,
                                     .n_head = hp->n_head, .n_head_kv = hp->n_head_kv, .head_dim = hp->head_dim,
                                     .kv_type = kvc->dtype, .ctx_sum = ctx_sum, .ctx_max = ctx_max,
                                     .attn_kind = (int32_t)c->attn},
                   op_t0_);
        }
        matmul(c, "attn_output", L, &l->wo, NULL, c->att, n, c->xb);
        residual_add(c, "attn_residual", L, c->xb, n);

        rmsnorm(c, "ffn_norm", L, c->x, l->ffn_norm, n, c->xb);
        matmul(c, "ffn_gate", L, &l->w_gate, NULL, c->xb, n, c->gate);
        matmul(c, "ffn_up", L, &l->w_up, NULL, c->xb, n, c->up);
        {
            OP_BEGIN(c);
            rg_cpu_swiglu(&c->cpu, c->gate, c->up, n * hp->n_ff, c->gate);
            op_end(c, &(rg_op_event){.kind = RG_OP_SWIGLU, .name = "swiglu", .layer = L, .n_tok = n,
                                     .n = n * hp->n_ff},
                   op_t0_);
        }
        matmul(c, "ffn_down", L, &l->w_down, NULL, c->gate, n, c->xb);
        residual_add(c, "ffn_residual", L, c->xb, n);
    }
    /* Gather the rows that want logits, then norm + output head on those alone. */
    int64_t n_out = 0;
    for (int64_t t = 0; t < n; t++) {
        bool want = b->want_logits ? b->want_logits[t0 + t] : (t0 + t == b->n_tokens - 1);
        if (want) memcpy(c->xb + n_out++ * d, c->x + t * d, (size_t)d * sizeof(float));
    }
    if (!n_out) return;
    rmsnorm(c, "output_norm", -1, c->xb, m->output_norm, n_out, c->xb);
    matmul(c, "output", -1, &m->output, NULL, c->xb, n_out, logits + *logit_row * hp->n_vocab);
    *logit_row += n_out;
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
        if (id < 0 || id >= hp->n_vocab) s = rg_fail(err, RG_E_INVALID, "token %lld: id %d out of range", (long long)t, id);
        else if (sq < 0 || sq >= n_seqs) s = rg_fail(err, RG_E_INVALID, "token %lld: sequence %d out of range", (long long)t, sq);
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
    for (int64_t i = 0; i < n_seqs; i++) seqs[i]->n_tokens = next[i];
    free(next);
    return RG_OK;
}
