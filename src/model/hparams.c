/* hparams.c — reading Llama-family hyper-parameters from GGUF metadata. */
#include "model/hparams.h"

#include <stdio.h>
#include <string.h>

/* Architectures that run on the Llama forward pass, and their RoPE layout. */
static const struct {
    const char *arch;
    rg_rope_type rope;
    bool qkv_bias;
} known_archs[] = {
    {"llama", RG_ROPE_NORM, false},
    {"mistral", RG_ROPE_NORM, false},
    {"qwen2", RG_ROPE_NEOX, true},
};

#define MAX_DIM (INT64_C(1) << 24) /* no real model has a dimension past 16M */

static rg_status get_int(const rg_gguf *g, const char *arch, const char *name, bool required, int64_t def,
                         int64_t *out, rg_err *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, name);
    int64_t i = rg_gguf_find_key(g, key);
    if (i < 0) {
        if (required) return rg_fail(err, RG_E_FORMAT, "missing metadata key %s", key);
        *out = def;
        return RG_OK;
    }
    int64_t v;
    if (!rg_gguf_get_i64(g, i, &v))
        return rg_fail(err, RG_E_FORMAT, "metadata %s has type %s, expected an integer", key,
                       rg_gguf_type_name(rg_gguf_kv_type(g, i)));
    if (v <= 0 || v > MAX_DIM)
        return rg_fail(err, RG_E_FORMAT, "metadata %s = %lld is out of range (1..%lld)", key, (long long)v,
                       (long long)MAX_DIM);
    *out = v;
    return RG_OK;
}

static rg_status get_float(const rg_gguf *g, const char *arch, const char *name, double def, double *out,
                           rg_err *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, name);
    int64_t i = rg_gguf_find_key(g, key);
    *out = def;
    if (i < 0) return RG_OK;
    if (!rg_gguf_get_f64(g, i, out))
        return rg_fail(err, RG_E_FORMAT, "metadata %s has type %s, expected a float", key,
                       rg_gguf_type_name(rg_gguf_kv_type(g, i)));
    if (!(*out > 0) || *out > 1e12) return rg_fail(err, RG_E_FORMAT, "metadata %s = %g is out of range", key, *out);
    return RG_OK;
}

rg_status rg_hparams_read(const rg_gguf *g, rg_hparams *hp, rg_err *err) {
    memset(hp, 0, sizeof *hp);
    rg_gguf_str s;
    if (!rg_gguf_find_str(g, "general.architecture", &s))
        return rg_fail(err, RG_E_FORMAT, "missing metadata key general.architecture");
    if (s.len == 0 || s.len >= sizeof hp->arch || memchr(s.ptr, 0, s.len))
        return rg_fail(err, RG_E_FORMAT, "general.architecture is empty or too long");
    memcpy(hp->arch, s.ptr, s.len);
    size_t k = 0;
    for (; k < sizeof known_archs / sizeof *known_archs; k++)
        if (!strcmp(known_archs[k].arch, hp->arch)) break;
    if (k == sizeof known_archs / sizeof *known_archs)
        return rg_fail(err, RG_E_UNSUPPORTED, "architecture '%s' is not supported (ridge runs llama, mistral, qwen2)",
                       hp->arch);
    hp->rope_type = known_archs[k].rope;
    hp->has_qkv_bias = known_archs[k].qkv_bias;
    if (rg_gguf_find_str(g, "general.name", &s)) {
        size_t n = s.len < sizeof hp->name - 1 ? (size_t)s.len : sizeof hp->name - 1;
        memcpy(hp->name, s.ptr, n);
    }
    const char *a = hp->arch;
    rg_status st;
    if ((st = get_int(g, a, "block_count", true, 0, &hp->n_layer, err)) ||
        (st = get_int(g, a, "embedding_length", true, 0, &hp->n_embd, err)) ||
        (st = get_int(g, a, "feed_forward_length", true, 0, &hp->n_ff, err)) ||
        (st = get_int(g, a, "attention.head_count", true, 0, &hp->n_head, err)) ||
        (st = get_int(g, a, "attention.head_count_kv", false, hp->n_head, &hp->n_head_kv, err)) ||
        (st = get_int(g, a, "context_length", false, 2048, &hp->n_ctx_train, err)))
        return st;
    if (hp->n_embd % hp->n_head)
        return rg_fail(err, RG_E_FORMAT, "embedding_length %lld is not a multiple of head_count %lld",
                       (long long)hp->n_embd, (long long)hp->n_head);
    if (hp->n_head % hp->n_head_kv)
        return rg_fail(err, RG_E_FORMAT, "head_count %lld is not a multiple of head_count_kv %lld",
                       (long long)hp->n_head, (long long)hp->n_head_kv);
    if ((st = get_int(g, a, "attention.key_length", false, hp->n_embd / hp->n_head, &hp->head_dim, err)) ||
        (st = get_int(g, a, "rope.dimension_count", false, hp->head_dim, &hp->n_rot, err)))
        return st;
    if (hp->n_rot > hp->head_dim || hp->n_rot % 2)
        return rg_fail(err, RG_E_FORMAT, "rope.dimension_count %lld must be even and at most the head size %lld",
                       (long long)hp->n_rot, (long long)hp->head_dim);
    if ((st = get_float(g, a, "rope.freq_base", 10000.0, &hp->rope_freq_base, err)) ||
        (st = get_float(g, a, "attention.layer_norm_rms_epsilon", 1e-5, &hp->rms_eps, err)))
        return st;

    /* vocab size: the arch key, else the tokenizer's token list */
    int64_t vi = -1;
    char key[128];
    snprintf(key, sizeof key, "%s.vocab_size", a);
    if (rg_gguf_find_key(g, key) >= 0) {
        if ((st = get_int(g, a, "vocab_size", true, 0, &hp->n_vocab, err))) return st;
    } else if ((vi = rg_gguf_find_key(g, "tokenizer.ggml.tokens")) >= 0) {
        uint64_t n;
        rg_gguf_type et;
        if (!rg_gguf_get_arr(g, vi, &et, &n) || et != RG_GGUF_STRING || n == 0 || n > (uint64_t)MAX_DIM)
            return rg_fail(err, RG_E_FORMAT, "tokenizer.ggml.tokens is not a non-empty string array");
        hp->n_vocab = (int64_t)n;
    } else {
        return rg_fail(err, RG_E_FORMAT, "no vocabulary size: neither %s nor tokenizer.ggml.tokens is present", key);
    }

    hp->rope_scaling = RG_ROPE_SCALING_NONE;
    hp->rope_scale_factor = 1.0;
    snprintf(key, sizeof key, "%s.rope.scaling.type", a);
    if (rg_gguf_find_str(g, key, &s)) {
        if (s.len == 4 && !memcmp(s.ptr, "none", 4)) hp->rope_scaling = RG_ROPE_SCALING_NONE;
        else if (s.len == 6 && !memcmp(s.ptr, "linear", 6)) hp->rope_scaling = RG_ROPE_SCALING_LINEAR;
        else if (s.len == 4 && !memcmp(s.ptr, "yarn", 4)) hp->rope_scaling = RG_ROPE_SCALING_YARN;
        else return rg_fail(err, RG_E_UNSUPPORTED, "%s = '%.*s' is not supported", key, (int)(s.len > 32 ? 32 : s.len), s.ptr);
        if ((st = get_float(g, a, "rope.scaling.factor", 1.0, &hp->rope_scale_factor, err))) return st;
    }
    /* Llama 3.1 ships its frequency scaling as a rope_freqs tensor. */
    if (rg_gguf_find_tensor(g, "rope_freqs.weight")) hp->rope_scaling = RG_ROPE_SCALING_LLAMA3;

    hp->file_type = -1;
    rg_gguf_find_i64(g, "general.file_type", &hp->file_type);
    return RG_OK;
}

int64_t rg_hparams_kv_bytes_per_token(const rg_hparams *hp, rg_dtype cache_type) {
    int64_t row = rg_dtype_row_bytes(cache_type, hp->head_dim);
    if (row < 0) return -1;
    return 2 * hp->n_layer * hp->n_head_kv * row;
}
