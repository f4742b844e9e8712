/* model.h — a loaded Llama-family model: hyper-parameters, tokenizer and weights
 * bound to the tensors of a memory-mapped GGUF file (no copies of the matrices;
 * small vectors — norms, biases — are converted to f32 once).
 *
 * Position encodings: RoPE (normal or NeoX layout, from the architecture) is what
 * real checkpoints use; ALiBi, sinusoidal and learned absolute positions are
 * model options for synthetic models (metadata key "ridge.pos_encoding"), so the
 * levers the field compares run on the same forward pass. */
#ifndef RG_MODEL_MODEL_H
#define RG_MODEL_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/error.h"
#include "formats/gguf.h"
#include "model/hparams.h"
#include "tok/tokenizer.h"

typedef enum rg_pos_encoding {
    RG_POS_ROPE = 0,
    RG_POS_ALIBI,       /* linear bias -slope_h * distance on the attention scores */
    RG_POS_SINUSOIDAL,  /* fixed sin/cos added to the token embeddings */
    RG_POS_LEARNED,     /* a learned table "position_embd.weight" added to the embeddings */
} rg_pos_encoding;

/* A matrix of n_out rows of k elements as stored in the file. */
typedef struct rg_weight {
    rg_dtype type;
    int64_t k, n_out;
    const void *data;
} rg_weight;

typedef struct rg_layer {
    float *attn_norm, *ffn_norm;     /* [n_embd] f32, owned */
    float *bq, *bk, *bv;             /* optional biases (Qwen2), f32, owned; NULL if absent */
    rg_weight wq, wk, wv, wo;
    rg_weight w_gate, w_up, w_down;
} rg_layer;

typedef struct rg_model {
    rg_hparams hp;
    rg_gguf *file;
    rg_tokenizer *tok;
    rg_weight tok_embd;              /* [n_vocab][n_embd] */
    rg_weight output;                /* [n_vocab][n_embd]; = tok_embd when tied */
    rg_weight pos_embd;              /* learned positions [n_ctx_train][n_embd], or .data NULL */
    float *output_norm;              /* [n_embd] f32, owned */
    float *rope_freq_factors;        /* [n_rot/2] (Llama 3.1 scaling) or NULL, owned */
    rg_pos_encoding pos_encoding;
    bool tied_output;
    rg_layer *layers;
} rg_model;

/* Load a model file. progress (may be NULL) is called with a fraction in [0,1]
 * while the weights are touched (paged in) so large loads show progress.
 * Ownership: *out is the caller's; free with rg_model_free. */
rg_status rg_model_load(const char *path, void (*progress)(double fraction, void *user), void *user,
                        rg_model **out, rg_err *err);
void rg_model_free(rg_model *m);

/* Bytes of all weights (what a decode step must stream once). */
int64_t rg_model_weight_bytes(const rg_model *m);

#endif
