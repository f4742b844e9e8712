/* model.c — binding a GGUF file's tensors to the Llama-family weight layout.
 *
 * Every tensor's shape is checked against the hyper-parameters before use, so the
 * forward pass can index without checks; a missing or misshapen tensor is an
 * error naming it. */
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/quant.h"

static rg_status find(const rg_model *m, const char *name, const rg_gguf_tensor **out, bool required, rg_err *err) {
    *out = rg_gguf_find_tensor(m->file, name);
    if (!*out && required) return rg_fail(err, RG_E_FORMAT, "missing tensor %s", name);
    if (*out && !rg_dtype_get((*out)->type)->supported)
        return rg_fail(err, RG_E_UNSUPPORTED, "tensor %s has type %s, which ridge cannot compute with", name,
                       rg_dtype_name((*out)->type));
    return RG_OK;
}

/* Bind a 2-D weight [n_out][k]. */
static rg_status bind_matrix(const rg_model *m, const char *name, int64_t k, int64_t n_out, bool required,
                             rg_weight *w, rg_err *err) {
    const rg_gguf_tensor *t;
    rg_status s = find(m, name, &t, required, err);
    if (s || !t) return s;
    if (t->ne[0] != k || t->ne[1] != n_out || t->ne[2] != 1 || t->ne[3] != 1)
        return rg_fail(err, RG_E_FORMAT, "tensor %s has shape %lld x %lld x %lld, expected %lld x %lld", name,
                       (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)k, (long long)n_out);
    *w = (rg_weight){t->type, k, n_out, t->data};
    return RG_OK;
}

/* Copy a 1-D tensor of n elements to a new f32 array (any supported type). */
static rg_status load_vector(const rg_model *m, const char *name, int64_t n, bool required, float **out, rg_err *err) {
    const rg_gguf_tensor *t;
    *out = NULL;
    rg_status s = find(m, name, &t, required, err);
    if (s || !t) return s;
    if (t->n_elements != n || t->ne[0] != n)
        return rg_fail(err, RG_E_FORMAT, "tensor %s has %lld elements, expected %lld", name, (long long)t->n_elements,
                       (long long)n);
    *out = malloc((size_t)n * sizeof **out);
    if (!*out) return rg_fail(err, RG_E_NOMEM, "out of memory");
    return rg_dequantize_ref(t->type, t->data, *out, n, err);
}

static rg_status read_pos_encoding(rg_model *m, rg_err *err) {
    rg_gguf_str s;
    m->pos_encoding = RG_POS_ROPE;
    if (!rg_gguf_find_str(m->file, "ridge.pos_encoding", &s)) return RG_OK;
    static const char *names[] = {"rope", "alibi", "sinusoidal", "learned"};
    for (int i = 0; i < 4; i++)
        if (s.len == strlen(names[i]) && !memcmp(s.ptr, names[i], s.len)) {
            m->pos_encoding = (rg_pos_encoding)i;
            return RG_OK;
        }
    return rg_fail(err, RG_E_UNSUPPORTED, "ridge.pos_encoding '%.*s' is not rope, alibi, sinusoidal or learned",
                   (int)(s.len > 32 ? 32 : s.len), s.ptr);
}

static rg_status bind(rg_model *m, rg_err *err) {
    const rg_hparams *hp = &m->hp;
    int64_t n_embd = hp->n_embd, n_q = hp->n_head * hp->head_dim, n_kv = hp->n_head_kv * hp->head_dim;
    rg_status s;
    if ((s = read_pos_encoding(m, err))) return s;
    if (hp->rope_scaling == RG_ROPE_SCALING_YARN)
        return rg_fail(err, RG_E_UNSUPPORTED, "RoPE scaling 'yarn' is not implemented (linear and Llama 3.1 are)");
    if ((s = bind_matrix(m, "token_embd.weight", n_embd, hp->n_vocab, true, &m->tok_embd, err))) return s;
    if ((s = bind_matrix(m, "output.weight", n_embd, hp->n_vocab, false, &m->output, err))) return s;
    m->tied_output = m->output.data == NULL;
    if (m->tied_output) m->output = m->tok_embd;
    if ((s = load_vector(m, "output_norm.weight", n_embd, true, &m->output_norm, err))) return s;
    if (m->pos_encoding == RG_POS_LEARNED &&
        (s = bind_matrix(m, "position_embd.weight", n_embd, hp->n_ctx_train, true, &m->pos_embd, err)))
        return s;
    if (hp->rope_scaling == RG_ROPE_SCALING_LLAMA3 &&
        (s = load_vector(m, "rope_freqs.weight", hp->n_rot / 2, true, &m->rope_freq_factors, err)))
        return s;

    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) return rg_fail(err, RG_E_NOMEM, "out of memory");
    for (int64_t i = 0; i < hp->n_layer; i++) {
        rg_layer *l = &m->layers[i];
        char name[96];
#define NAME(suffix) (snprintf(name, sizeof name, "blk.%lld." suffix, (long long)i), name)
        if ((s = load_vector(m, NAME("attn_norm.weight"), n_embd, true, &l->attn_norm, err)) ||
            (s = load_vector(m, NAME("ffn_norm.weight"), n_embd, true, &l->ffn_norm, err)) ||
            (s = bind_matrix(m, NAME("attn_q.weight"), n_embd, n_q, true, &l->wq, err)) ||
            (s = bind_matrix(m, NAME("attn_k.weight"), n_embd, n_kv, true, &l->wk, err)) ||
            (s = bind_matrix(m, NAME("attn_v.weight"), n_embd, n_kv, true, &l->wv, err)) ||
            (s = bind_matrix(m, NAME("attn_output.weight"), n_q, n_embd, true, &l->wo, err)) ||
            (s = bind_matrix(m, NAME("ffn_gate.weight"), n_embd, hp->n_ff, true, &l->w_gate, err)) ||
            (s = bind_matrix(m, NAME("ffn_up.weight"), n_embd, hp->n_ff, true, &l->w_up, err)) ||
            (s = bind_matrix(m, NAME("ffn_down.weight"), hp->n_ff, n_embd, true, &l->w_down, err)) ||
            (s = load_vector(m, NAME("attn_q.bias"), n_q, false, &l->bq, err)) ||
            (s = load_vector(m, NAME("attn_k.bias"), n_kv, false, &l->bk, err)) ||
            (s = load_vector(m, NAME("attn_v.bias"), n_kv, false, &l->bv, err)))
            return s;
#undef NAME
    }
    return RG_OK;
}

/* Touch every page of the weights so the first forward pass does not stall on
 * page faults, reporting progress as a fraction of bytes. */
static void page_in(const rg_model *m, void (*progress)(double, void *), void *user) {
    int64_t total = rg_model_weight_bytes(m), done = 0, next_report = 0;
    volatile unsigned char sink = 0;
    for (int64_t i = 0; i < rg_gguf_tensor_count(m->file); i++) {
        const rg_gguf_tensor *t = rg_gguf_tensor_at(m->file, i);
        const unsigned char *p = t->data;
        for (int64_t o = 0; o < t->n_bytes; o += 4096) sink ^= p[o];
        done += t->n_bytes;
        if (progress && done >= next_report) {
            progress((double)done / (double)(total ? total : 1), user);
            next_report = done + total / 50;
        }
    }
    if (progress) progress(1.0, user);
    (void)sink;
}

rg_status rg_model_load(const char *path, void (*progress)(double, void *), void *user, rg_model **out,
                        rg_err *err) {
    *out = NULL;
    rg_model *m = calloc(1, sizeof *m);
    if (!m) return rg_fail(err, RG_E_NOMEM, "out of memory");
    rg_status s = rg_gguf_open(path, &m->file, err);
    if (!s) s = rg_hparams_read(m->file, &m->hp, err);
    if (!s) s = rg_tokenizer_load(m->file, &m->tok, err);
    if (!s && rg_tokenizer_n_vocab(m->tok) != m->hp.n_vocab)
        s = rg_fail(err, RG_E_FORMAT, "tokenizer has %d tokens but the model's vocabulary is %lld",
                    rg_tokenizer_n_vocab(m->tok), (long long)m->hp.n_vocab);
    if (!s) s = bind(m, err);
    if (s) {
        rg_model_free(m);
        return s;
    }
    page_in(m, progress, user);
    *out = m;
    return RG_OK;
}

void rg_model_free(rg_model *m) {
    if (!m) return;
    if (m->layers) {
        for (int64_t i = 0; i < m->hp.n_layer; i++) {
            rg_layer *l = &m->layers[i];
            free(l->attn_norm), free(l->ffn_norm), free(l->bq), free(l->bk), free(l->bv);
        }
        free(m->layers);
    }
    free(m->output_norm);
    free(m->rope_freq_factors);
    rg_tokenizer_free(m->tok);
    rg_gguf_close(m->file);
    free(m);
}

int64_t rg_model_weight_bytes(const rg_model *m) {
    int64_t total = 0;
    for (int64_t i = 0; i < rg_gguf_tensor_count(m->file); i++) total += rg_gguf_tensor_at(m->file, i)->n_bytes;
    return total;
}
