/* plan.c — the planner's formulas (plan.h). Each quantity is computed in one
 * place; `ridge plan` prints them with their inputs. */
#include "perf/plan.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "formats/gguf.h"
#include "model/hparams.h"
#include "model/synth.h"

/* The published configurations with tie_word_embeddings = true (the output
 * head reuses the embedding table); synth.h's shapes do not carry the flag. */
static bool tied_by_default(const char *name) {
    return !strcmp(name, "smollm2-135m") || !strcmp(name, "llama3.2-1b") || !strcmp(name, "tiny");
}

static double mat_bytes(rg_dtype t, int64_t k, int64_t n_out, bool *ok) {
    int64_t row = rg_dtype_row_bytes(t, k);
    if (row < 0) *ok = false;
    return (double)row * (double)n_out;
}

bool rg_plan_shape_named(const char *name, rg_dtype wtype, rg_plan_shape *out) {
    rg_synth_shape sh;
    if (!rg_synth_shape_named(name, &sh)) return false;
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", name);
    out->n_layer = sh.n_layer, out->n_embd = sh.n_embd, out->n_head = sh.n_head, out->n_head_kv = sh.n_head_kv;
    out->head_dim = sh.n_embd / sh.n_head, out->n_ff = sh.n_ff, out->n_vocab = sh.n_vocab;
    out->tied_output = tied_by_default(name);
    snprintf(out->weight_desc, sizeof out->weight_desc, "%s", rg_dtype_name(wtype));
    int64_t d = out->n_embd, nq = out->n_head * out->head_dim, nkv = out->n_head_kv * out->head_dim, ff = out->n_ff;
    bool ok = true;
    /* per layer: wq [nq x d], wk, wv [nkv x d], wo [d x nq], gate, up [ff x d], down [d x ff]; 2 norms */
    double layer = mat_bytes(wtype, d, nq, &ok) + 2 * mat_bytes(wtype, d, nkv, &ok) + mat_bytes(wtype, nq, d, &ok) +
                   2 * mat_bytes(wtype, d, ff, &ok) + mat_bytes(wtype, ff, d, &ok) + 2.0 * (double)d * 4;
    double embd = mat_bytes(wtype, d, out->n_vocab, &ok);
    if (!ok) return false;
    double layers = (double)out->n_layer * layer;
    out->weight_bytes = layers + embd * (out->tied_output ? 1 : 2) + (double)d * 4;
    out->stream_bytes = layers + embd + (double)d * 4; /* output head (tied or not), layers, final norm */
    double layer_params = (double)d * nq + 2.0 * d * nkv + (double)nq * d + 3.0 * d * ff;
    out->matmul_params = out->n_layer * layer_params + (double)out->n_vocab * d;
    return true;
}

rg_status rg_plan_shape_from_file(const char *path, rg_plan_shape *out, rg_err *err) {
    memset(out, 0, sizeof *out);
    rg_gguf *g;
    rg_status s = rg_gguf_open(path, &g, err);
    if (s) return s;
    rg_hparams hp;
    if ((s = rg_hparams_read(g, &hp, err))) {
        rg_gguf_close(g);
        return s;
    }
    snprintf(out->name, sizeof out->name, "%s", hp.name[0] ? hp.name : path);
    out->n_layer = hp.n_layer, out->n_embd = hp.n_embd, out->n_head = hp.n_head, out->n_head_kv = hp.n_head_kv;
    out->head_dim = hp.head_dim, out->n_ff = hp.n_ff, out->n_vocab = hp.n_vocab;
    const rg_gguf_tensor *embd = rg_gguf_find_tensor(g, "token_embd.weight");
    out->tied_output = rg_gguf_find_tensor(g, "output.weight") == NULL;
    double embd_elems = 0;
    for (int64_t i = 0; i < rg_gguf_tensor_count(g); i++) {
        const rg_gguf_tensor *t = rg_gguf_tensor_at(g, i);
        out->weight_bytes += (double)t->n_bytes;
        if (t == embd)
            embd_elems = (double)t->n_elements;
        else if (t->n_dims >= 2 && t->ne[1] > 1 && strcmp(t->name, "position_embd.weight")) /* not norms, biases */
            out->matmul_params += (double)t->n_elements;
    }
    out->stream_bytes = out->weight_bytes;
    if (embd && !out->tied_output) out->stream_bytes -= (double)embd->n_bytes; /* one row per token: negligible */
    if (out->tied_output) out->matmul_params += embd_elems;
    const char *ft = embd ? rg_dtype_name(embd->type) : "?";
    const rg_gguf_tensor *q = rg_gguf_find_tensor(g, "blk.0.attn_q.weight");
    snprintf(out->weight_desc, sizeof out->weight_desc, "%s (file; token_embd %s)", q ? rg_dtype_name(q->type) : "?",
             ft);
    rg_gguf_close(g);
    return RG_OK;
}

double rg_plan_kv_bytes_per_token(const rg_plan_shape *s, rg_dtype cache_type) {
    int64_t row = rg_dtype_row_bytes(cache_type, s->head_dim);
    if (row < 0) return -1;
    return 2.0 * (double)s->n_layer * (double)s->n_head_kv * (double)row;
}

double rg_plan_spec_expected_tokens(double alpha, int64_t gamma) {
    /* accepted prefix of gamma drafts plus the target's own token:
     * E = sum_{i=0..gamma} alpha^i = (1 - alpha^(gamma+1)) / (1 - alpha) */
    if (alpha >= 1) return (double)(gamma + 1);
    return (1 - pow(alpha, (double)(gamma + 1))) / (1 - alpha);
}

/* Attention FLOPs of one query per key it attends to, over all layers: q.k and
 * p.v, 2 FLOPs (a multiply-add) per element each. */
static double attn_flops_per_key(const rg_plan_shape *s) {
    return 4.0 * (double)s->n_layer * (double)s->n_head * (double)s->head_dim;
}

/* The output head's FLOPs for one token's logits. */
static double head_flops(const rg_plan_shape *s) { return 2.0 * (double)s->n_vocab * (double)s->n_embd; }

rg_status rg_plan_compute(const rg_plan_shape *s, const rg_machine *m, const rg_plan_inputs *in, rg_plan *p,
                          rg_err *err) {
    memset(p, 0, sizeof *p);
    if (in->ctx < 1 || in->batch < 1 || in->tp < 1 || in->gamma < 0 || !(in->alpha >= 0 && in->alpha <= 1))
        return rg_fail(err, RG_E_INVALID, "plan: ctx, batch and tp must be >= 1, gamma >= 0, alpha in [0, 1]");
    if (m->peak_flops <= 0 || m->mem_bw <= 0) return rg_fail(err, RG_E_INVALID, "plan: machine without ceilings");
    double kv_tok = rg_plan_kv_bytes_per_token(s, in->cache_type);
    if (kv_tok < 0)
        return rg_fail(err, RG_E_INVALID, "plan: cache type %s does not divide head_dim %lld",
                       rg_dtype_name(in->cache_type), (long long)s->head_dim);
    double B = (double)in->batch, ctx = (double)in->ctx, tp = (double)in->tp;
    double attn_per_key = attn_flops_per_key(s);
    p->weight_bytes = s->weight_bytes;
    p->stream_bytes = s->stream_bytes;
    p->matmul_params = s->matmul_params;
    p->kv_bytes_per_token = kv_tok;
    p->kv_bytes_per_sequence = kv_tok * ctx;
    p->capacity_bytes = m->capacity_bytes * tp;
    double free_bytes = p->capacity_bytes - p->weight_bytes;
    p->max_sequences = free_bytes > 0 ? (int64_t)floor(free_bytes / p->kv_bytes_per_sequence) : 0;

    p->decode_bytes = p->stream_bytes + B * p->kv_bytes_per_sequence;
    p->decode_flops = B * (2 * p->matmul_params + attn_per_key * ctx);
    p->decode_mem_ms = p->decode_bytes / (m->mem_bw * tp) * 1e3;
    p->decode_compute_ms = p->decode_flops / (m->peak_flops * tp) * 1e3;
    p->decode_floor_ms = fmax(p->decode_mem_ms, p->decode_compute_ms);
    p->decode_tok_s = B / (p->decode_floor_ms / 1e3);
    p->decode_intensity = p->decode_flops / p->decode_bytes;

    /* logits for the last prompt token only: the output head runs once */
    double head = head_flops(s);
    p->prefill_flops = B * (ctx * (2 * p->matmul_params - head) + head + attn_per_key * ctx * (ctx + 1) / 2);
    p->prefill_compute_ms = p->prefill_flops / (m->peak_flops * tp) * 1e3;
    p->prefill_mem_ms = (p->stream_bytes + B * p->kv_bytes_per_sequence) / (m->mem_bw * tp) * 1e3;
    p->prefill_floor_ms = fmax(p->prefill_compute_ms, p->prefill_mem_ms);

    p->ridge_point = rg_machine_ridge_point(m);
    double flops_tok = 2 * p->matmul_params + attn_per_key * ctx;
    p->compute_bound_batch_no_kv = p->ridge_point * p->stream_bytes / (2 * p->matmul_params);
    /* B f / (W + B k) = R  =>  B = R W / (f - R k), if the KV traffic grows slower than the FLOPs */
    double denom = flops_tok - p->ridge_point * p->kv_bytes_per_sequence;
    p->compute_bound_batch = denom > 0 ? p->ridge_point * p->stream_bytes / denom : -1;
    p->spec_expected_tokens = rg_plan_spec_expected_tokens(in->alpha, in->gamma);
    p->tp_allreduce_bytes_per_token = 2.0 * (double)s->n_layer * (double)s->n_embd * (double)in->act_bytes;
    p->tp_ring_bytes_per_gpu_per_token = in->tp > 1 ? 2 * (tp - 1) / tp * p->tp_allreduce_bytes_per_token : 0;
    return RG_OK;
}

rg_status rg_plan_step_floor(const rg_plan_shape *s, const rg_machine *m, rg_dtype cache_type, const rg_plan_step *st,
                             rg_plan_step_cost *out, rg_err *err) {
    memset(out, 0, sizeof *out);
    if (st->n_tokens < 0 || st->n_logits < 0 || st->n_logits > st->n_tokens || st->attn_keys < 0 ||
        st->kv_read_tokens < 0)
        return rg_fail(err, RG_E_INVALID, "plan: a step needs 0 <= n_logits <= n_tokens and no negative counts");
    if (m->peak_flops <= 0 || m->mem_bw <= 0) return rg_fail(err, RG_E_INVALID, "plan: machine without ceilings");
    double kv_tok = rg_plan_kv_bytes_per_token(s, cache_type);
    if (kv_tok < 0)
        return rg_fail(err, RG_E_INVALID, "plan: cache type %s does not divide head_dim %lld",
                       rg_dtype_name(cache_type), (long long)s->head_dim);
    if (st->n_tokens == 0) return RG_OK;
    /* the same terms as rg_plan_compute's decode and prefill, summed over the
     * step's tokens: weights streamed once, each sequence's K/V read once */
    double head = head_flops(s);
    out->bytes = s->stream_bytes + kv_tok * (double)st->kv_read_tokens;
    out->flops = (double)st->n_tokens * (2 * s->matmul_params - head) + (double)st->n_logits * head +
                 attn_flops_per_key(s) * (double)st->attn_keys;
    out->mem_s = out->bytes / m->mem_bw;
    out->compute_s = out->flops / m->peak_flops;
    out->floor_s = fmax(out->mem_s, out->compute_s);
    return RG_OK;
}
