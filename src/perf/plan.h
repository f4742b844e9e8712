/* plan.h — the napkin math of LLM inference (`ridge plan`, and the predicted
 * floor `ridge bench` prints): what a model must move and compute per token,
 * and what that means on a machine of a given bandwidth, peak and capacity.
 *
 * Decode is memory-bound at small batch: every step streams all weights once
 * plus each sequence's KV cache, so the floor is bytes / bandwidth. Prefill is
 * compute-bound: 2 FLOPs per weight per token plus attention, over the peak.
 * The batch at which decode turns compute-bound is where its arithmetic
 * intensity reaches the machine's ridge point (peak / bandwidth). */
#ifndef RG_PERF_PLAN_H
#define RG_PERF_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/error.h"
#include "perf/machine.h"

typedef struct rg_plan_shape {
    char name[128];
    int64_t n_layer, n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab;
    bool tied_output;     /* the output head is the embedding table */
    double weight_bytes;  /* every tensor as stored */
    double stream_bytes;  /* what a decode step reads: all but the embedding table (unless tied) */
    double matmul_params; /* weights a token multiplies with: layers' matrices + output head */
    char weight_desc[64]; /* "F16", "Q4_1 (file)" ... */
} rg_plan_shape;

/* A named published shape (rg_synth_shape_named: llama2-7b, llama2-70b,
 * llama3-8b, llama3.2-1b, smollm2-135m, ...) with every matrix of wtype and the
 * norms in f32. false for an unknown name or a wtype whose block does not divide
 * the rows. */
bool rg_plan_shape_named(const char *name, rg_dtype wtype, rg_plan_shape *out);

/* The shape and exact sizes of a GGUF model file (metadata and tensor table
 * only; the weights are not read). */
rg_status rg_plan_shape_from_file(const char *path, rg_plan_shape *out, rg_err *err);

typedef struct rg_plan_inputs {
    int64_t ctx;         /* context length per sequence (tokens) */
    int64_t batch;       /* sequences decoding together / prompts prefilled together */
    rg_dtype cache_type; /* KV dtype */
    double alpha;        /* speculative decoding: acceptance rate per drafted token, in [0, 1] */
    int64_t gamma;       /* draft tokens per step */
    int64_t tp;          /* tensor-parallel ways (1 = none) */
    int64_t act_bytes;   /* bytes per activation element in the all-reduce (2 = bf16) */
} rg_plan_inputs;

typedef struct rg_plan {
    double weight_bytes, stream_bytes, matmul_params;
    double kv_bytes_per_token;    /* 2 (K,V) * n_layer * n_head_kv * head_dim * bytes per element */
    double kv_bytes_per_sequence; /* kv_bytes_per_token * ctx */
    double capacity_bytes;        /* machine capacity * tp */
    int64_t max_sequences;        /* floor((capacity - weights) / kv_bytes_per_sequence), >= 0 */
    /* decode: one step of `batch` sequences, each at context ctx */
    double decode_bytes; /* stream_bytes + batch * kv_bytes_per_sequence */
    double decode_flops; /* batch * (2 matmul_params + 4 n_layer n_head head_dim ctx) */
    double decode_mem_ms, decode_compute_ms;
    double decode_floor_ms;  /* the larger of the two */
    double decode_tok_s;     /* batch / floor */
    double decode_intensity; /* decode_flops / decode_bytes */
    /* prefill: batch prompts of ctx tokens */
    double prefill_flops; /* batch * (2 ctx (matmul_params - output) + 2 output + causal attention) */
    double prefill_compute_ms, prefill_mem_ms;
    double prefill_floor_ms;
    double ridge_point;                     /* peak / bandwidth, FLOP per byte */
    double compute_bound_batch_no_kv;       /* ridge * stream_bytes / flops per token (KV ignored) */
    double compute_bound_batch;             /* with each sequence's KV read; < 0 when never */
    double spec_expected_tokens;            /* (1 - alpha^(gamma+1)) / (1 - alpha); gamma + 1 at alpha = 1 */
    double tp_allreduce_bytes_per_token;    /* 2 all-reduces per layer of n_embd activations */
    double tp_ring_bytes_per_gpu_per_token; /* ring all-reduce: 2 (tp - 1) / tp of it sent per GPU */
} rg_plan;

/* KV bytes per token of a shape in a cache dtype; < 0 if the dtype's block does
 * not divide head_dim. */
double rg_plan_kv_bytes_per_token(const rg_plan_shape *s, rg_dtype cache_type);

/* Expected tokens per target step with speculative decoding. */
double rg_plan_spec_expected_tokens(double alpha, int64_t gamma);

rg_status rg_plan_compute(const rg_plan_shape *s, const rg_machine *m, const rg_plan_inputs *in, rg_plan *out,
                          rg_err *err);

/* One step of a serving engine: a batch mixing decode tokens and prefill chunks
 * of several sequences (continuous batching), run as one forward pass. */
typedef struct rg_plan_step {
    int64_t n_tokens;       /* tokens in the batch */
    int64_t n_logits;       /* of which need the output head (each sequence's last) */
    int64_t attn_keys;      /* sum over the tokens of the keys each attends to (its position + 1) */
    int64_t kv_read_tokens; /* sum over the batch's sequences of their context after the step */
} rg_plan_step;

typedef struct rg_plan_step_cost {
    double bytes, flops;     /* weights once + K/V read; matmuls, output head, attention */
    double mem_s, compute_s; /* over the machine's bandwidth and peak */
    double floor_s;          /* the larger: the step cannot run faster */
} rg_plan_step_cost;

/* The floor of one step with rg_plan_compute's formulas: the weights stream once
 * per step whatever the batch, every sequence's K/V is read once, every token
 * does 2 FLOPs per matrix weight plus attention over its keys, the output head
 * only for n_logits tokens. A step of one decode token at context c costs exactly
 * rg_plan_compute's decode floor at batch 1, ctx c. RG_E_INVALID for negative or
 * inconsistent counts or a machine without ceilings. */
rg_status rg_plan_step_floor(const rg_plan_shape *s, const rg_machine *m, rg_dtype cache_type, const rg_plan_step *st,
                             rg_plan_step_cost *out, rg_err *err);

#endif
