/* hparams.h — a model's hyper-parameters, read from GGUF metadata.
 *
 * Keys are "<arch>.<name>" (llama.block_count, qwen2.embedding_length ...); the
 * Llama family (llama, mistral via llama, qwen2, smollm via llama) shares one
 * reader. Everything a later layer needs about shapes lives here, validated once:
 * heads divide the embedding, GQA groups divide the heads, sizes are bounded. */
#ifndef RG_MODEL_HPARAMS_H
#define RG_MODEL_HPARAMS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/error.h"
#include "formats/gguf.h"

typedef enum rg_rope_type {
    RG_ROPE_NORM = 0, /* rotate adjacent pairs (x0,x1),(x2,x3)... — Llama's GGUF layout */
    RG_ROPE_NEOX = 2, /* rotate (x_i, x_{i+d/2}) — Qwen2, GPT-NeoX */
} rg_rope_type;

typedef enum rg_rope_scaling {
    RG_ROPE_SCALING_NONE = 0,
    RG_ROPE_SCALING_LINEAR,
    RG_ROPE_SCALING_YARN,
    RG_ROPE_SCALING_LLAMA3, /* Llama 3.1 frequency scaling (rope_freqs.weight factors) */
} rg_rope_scaling;

typedef struct rg_hparams {
    char arch[32];        /* general.architecture */
    char name[128];       /* general.name, "" if absent */
    int64_t n_layer;
    int64_t n_ctx_train;
    int64_t n_embd;
    int64_t n_ff;
    int64_t n_head;
    int64_t n_head_kv;
    int64_t head_dim;     /* attention.key_length, else n_embd / n_head */
    int64_t n_vocab;
    int64_t n_rot;        /* rope.dimension_count, else head_dim */
    double rope_freq_base;
    rg_rope_type rope_type;
    rg_rope_scaling rope_scaling;
    double rope_scale_factor; /* 1 when unscaled */
    double rms_eps;
    bool has_qkv_bias;    /* Qwen2 */
    int64_t file_type;    /* general.file_type, -1 if absent */
} rg_hparams;

/* Read and validate. Unknown architectures are RG_E_UNSUPPORTED; missing or
 * inconsistent required keys are RG_E_FORMAT, naming the key. */
rg_status rg_hparams_read(const rg_gguf *g, rg_hparams *hp, rg_err *err);

/* Bytes of K and V for one token over all layers in a cache of the given dtype:
 * 2 (K and V) * n_layer * n_head_kv * head_dim * bytes per element, with the
 * per-block scale included for quantized caches (Q8_0: 34 bytes per 32). */
int64_t rg_hparams_kv_bytes_per_token(const rg_hparams *hp, rg_dtype cache_type);

#endif
