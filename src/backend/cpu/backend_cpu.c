/* backend_cpu.c — the op table (backend/backend.h) on the CPU kernels: buffers
 * are host memory, weights stay where the model mapped them, KV lives in the
 * host pool's own storage. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/argmax.h"

typedef struct cpu_backend {
    rg_backend be;
    rg_cpu_ctx cpu;
    rg_kv_pool *kv;
    rg_step step;
} cpu_backend;

static cpu_backend *cpu_of(rg_backend *be) { return (cpu_backend *)be; }

static void cpu_destroy(rg_backend *be) {
    if (!be) return;
    free(cpu_of(be)->cpu.scratch);
    free(be);
}

static void *cpu_alloc(rg_backend *be, size_t bytes) {
    (void)be;
    void *p = NULL;
    return posix_memalign(&p, 64, bytes ? bytes : 1) ? NULL : p;
}
static void cpu_free(rg_backend *be, void *p) { (void)be, free(p); }
static void cpu_memcpy(rg_backend *be, void *dst, const void *src, size_t bytes) {
    (void)be;
    if (bytes && dst != src) memmove(dst, src, bytes);
}
static rg_status cpu_sync(rg_backend *be, rg_err *err) { return (void)be, (void)err, RG_OK; }

static rg_status cpu_load_weight(rg_backend *be, const rg_weight *host, rg_weight *dev, rg_err *err) {
    (void)be, (void)err;
    *dev = *host;
    return RG_OK;
}
static void cpu_unload_weight(rg_backend *be, rg_weight *dev) { (void)be, (void)dev; }

static rg_status cpu_reserve(rg_backend *be, const rg_backend_limits *lim, rg_kv_pool *pool, rg_err *err) {
    cpu_backend *c = cpu_of(be);
    c->kv = pool;
    rg_status s = rg_cpu_reserve(&c->cpu, lim->k_max, lim->max_tokens, err);
    return s ? s : rg_cpu_attention_reserve(&c->cpu, pool, lim->n_head, lim->max_ctx, err);
}

static void cpu_begin_step(rg_backend *be, const rg_step *s) { cpu_of(be)->step = *s; }
static void cpu_kv_copy_block(rg_backend *be, int32_t dst, int32_t src) {
    rg_kv_pool_copy_storage(cpu_of(be)->kv, dst, src);
}

static void cpu_get_rows(rg_backend *be, const rg_weight *w, const int32_t *ids, int64_t n, float *out) {
    (void)be;
    rg_cpu_get_rows(w->type, w->data, w->k, ids, n, out);
}

static void cpu_matmul(rg_backend *be, const rg_weight *w, const float *bias, const float *x, int64_t n_tok,
                       float *y) {
    rg_cpu_matmul(&cpu_of(be)->cpu, w->type, w->data, w->k, w->n_out, x, n_tok, y);
    if (!bias) return;
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t i = 0; i < w->n_out; i++) y[t * w->n_out + i] += bias[i];
}

static void cpu_rmsnorm(rg_backend *be, const float *x, const float *weight, int64_t n, int64_t n_tok, float eps,
                        float *out) {
    rg_cpu_rmsnorm(&cpu_of(be)->cpu, x, weight, n, n_tok, eps, out);
}

static void cpu_rope(rg_backend *be, float *x, int64_t n_head, int64_t head_dim, const rg_rope_params *p) {
    cpu_backend *c = cpu_of(be);
    rg_cpu_rope(&c->cpu, x, c->step.pos, c->step.n_tok, n_head, head_dim, p);
}

static void cpu_kv_store(rg_backend *be, int64_t layer, const float *k, const float *v) {
    cpu_backend *c = cpu_of(be);
    rg_kv_store(c->kv, layer, k, v, c->step.n_tok, c->step.tables, c->step.pos);
}

static void cpu_attention(rg_backend *be, const rg_backend_attn *a) {
    cpu_backend *c = cpu_of(be);
    rg_attn_args args = {
        .pool = c->kv,
        .layer = a->layer,
        .n_tok = c->step.n_tok,
        .n_head = a->n_head,
        .q = a->q,
        .out = a->out,
        .tables = c->step.tables,
        .n_ctx = c->step.n_ctx,
        .scale = a->scale,
        .kind = a->kind,
        .alibi_slopes = a->alibi_slopes,
    };
    rg_cpu_attention(&c->cpu, &args);
}

static void cpu_swiglu(rg_backend *be, const float *gate, const float *up, int64_t n, float *out) {
    rg_cpu_swiglu(&cpu_of(be)->cpu, gate, up, n, out);
}

static void cpu_add(rg_backend *be, float *y, const float *x, int64_t n) { rg_cpu_add(&cpu_of(be)->cpu, y, x, n); }

static void cpu_add_sinusoidal(rg_backend *be, float *x, int64_t d) {
    /* PE(p, 2i) = sin(p / 10000^(2i/d)), PE(p, 2i+1) = cos(...) (Vaswani et al. 2017) */
    cpu_backend *c = cpu_of(be);
    for (int64_t t = 0; t < c->step.n_tok; t++)
        for (int64_t i = 0; i < d / 2; i++) {
            double angle = c->step.pos[t] / pow(10000.0, 2.0 * (double)i / (double)d);
            x[t * d + 2 * i] += (float)sin(angle);
            x[t * d + 2 * i + 1] += (float)cos(angle);
        }
}

/* Greedy ids of logit rows: rows split across the pool's threads, each row the
 * reference rg_argmax itself (so the CPU result is the definition). */
typedef struct argmax_task {
    const float *logits;
    int64_t n_rows, n_vocab;
    int32_t *ids;
} argmax_task;

static void argmax_slice(void *arg, int ith, int nth) {
    const argmax_task *t = arg;
    for (int64_t r = ith; r < t->n_rows; r += nth)
        t->ids[r] = rg_argmax(t->logits + r * t->n_vocab, (int32_t)t->n_vocab, NULL);
}

static void cpu_argmax_rows(rg_backend *be, const float *logits, int64_t n_rows, int64_t n_vocab, int32_t *ids_host) {
    argmax_task t = {logits, n_rows, n_vocab, ids_host};
    rg_threadpool *pool = cpu_of(be)->cpu.pool;
    if (pool && n_rows > 1) rg_threadpool_run(pool, argmax_slice, &t);
    else argmax_slice(&t, 0, 1);
}

rg_status rg_backend_cpu_create(rg_threadpool *pool, rg_backend **out, rg_err *err) {
    cpu_backend *c = calloc(1, sizeof *c);
    *out = NULL;
    if (!c) return rg_fail(err, RG_E_NOMEM, "out of memory");
    c->cpu.pool = pool;
    c->be = (rg_backend){
        .name = "cpu",
        .destroy = cpu_destroy,
        .alloc = cpu_alloc,
        .free = cpu_free,
        .upload = cpu_memcpy,
        .download = cpu_memcpy,
        .copy = cpu_memcpy,
        .sync = cpu_sync,
        .load_weight = cpu_load_weight,
        .unload_weight = cpu_unload_weight,
        .reserve = cpu_reserve,
        .begin_step = cpu_begin_step,
        .kv_copy_block = cpu_kv_copy_block,
        .get_rows = cpu_get_rows,
        .matmul = cpu_matmul,
        .rmsnorm = cpu_rmsnorm,
        .rope = cpu_rope,
        .kv_store = cpu_kv_store,
        .attention = cpu_attention,
        .swiglu = cpu_swiglu,
        .add = cpu_add,
        .add_sinusoidal = cpu_add_sinusoidal,
        .argmax_rows = cpu_argmax_rows,
    };
    *out = &c->be;
    return RG_OK;
}
