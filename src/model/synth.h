/* synth.h — random-weight Llama-family GGUF models of any shape and weight type,
 * for tests and benchmarks (nothing large has to travel: a benchmark host makes
 * its own). Weights are N(0, 1/fan_in) like an initialized network, norms
 * 1 + N(0, 0.1); the vocabulary is SentencePiece-style (<unk>, <s>, </s>, the 256
 * byte tokens, then made-up pieces), so any text tokenizes by byte fallback. */
#ifndef RG_MODEL_SYNTH_H
#define RG_MODEL_SYNTH_H

#include <stdbool.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/error.h"

typedef struct rg_synth_shape {
    char name[32];
    int64_t n_layer, n_embd, n_head, n_head_kv, n_ff, n_vocab, n_ctx;
    double rope_freq_base;
} rg_synth_shape;

/* Named shapes from the published configurations (llama2-7b, llama2-70b,
 * llama3-8b, llama3.2-1b, smollm2-135m, tiny, bench-1b). */
bool rg_synth_shape_named(const char *name, rg_synth_shape *out);
const char *rg_synth_shape_names(void);

typedef struct rg_synth_params {
    rg_synth_shape shape;
    rg_dtype type;               /* matrices (the 1-D norms stay F32) */
    rg_dtype embd_type;          /* token_embd; 0 = same as type */
    const char *pos_encoding;    /* NULL/"rope", "alibi", "sinusoidal", "learned" */
    bool tied_output;
    bool qkv_bias;               /* Qwen2-style biases (arch qwen2) */
    uint64_t seed;
    void (*progress)(double fraction, void *user);
    void *user;
} rg_synth_params;

rg_status rg_synth_write(const rg_synth_params *p, const char *path, rg_err *err);

#endif
