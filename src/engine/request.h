/* request.h — one generation request as the scheduler sees it: a prompt, its
 * sampling parameters and stop conditions, and n parallel samples, each with its
 * own token history, KV block table, sampler and released text.
 *
 * The one idea: a sample's state is just its tokens (prompt + generated) and how
 * many of them have K/V in the pool (kv.n_tokens). Prefill, decode and resuming
 * after preemption are then the same thing — compute K/V for tokens
 * [kv.n_tokens, n_tokens) and sample after the last — so a preempted sample that
 * lost its blocks resumes by recomputation with no special case.
 *
 * Text goes out through a callback as it is released: a piece is held back
 * while it could still be the start of a stop string, and the stop string itself
 * is never sent (as OpenAI's API does). */
#ifndef RG_ENGINE_REQUEST_H
#define RG_ENGINE_REQUEST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/sampler.h"
#include "kv/kv_pool.h"
#include "tok/tokenizer.h"

typedef enum rg_finish_reason {
    RG_FINISH_NONE = 0,  /* still generating */
    RG_FINISH_STOP,      /* end-of-generation token, a stop token or a stop string */
    RG_FINISH_LENGTH,    /* max_tokens, the context length, or the KV pool cannot hold more */
    RG_FINISH_CANCELLED, /* rg_request_cancel */
    RG_FINISH_ERROR,     /* the forward pass failed; the message is in the output */
} rg_finish_reason;

/* "stop", "length", "cancelled", "error" ("" for NONE). */
const char *rg_finish_reason_name(rg_finish_reason r);

#define RG_REQUEST_MAX_STOP 16

typedef struct rg_request_params {
    rg_sampling_params sampling; /* sample i uses seed + i */
    int32_t max_tokens;          /* <= 0: until the context is full */
    int32_t n;                   /* parallel samples sharing the prompt's blocks, 0 = 1 */
    bool ignore_eos;             /* do not stop at end-of-generation tokens */
    const int32_t *stop_tokens;  /* copied */
    int32_t n_stop_tokens;
    const char *const *stop; /* stop strings, copied; empty strings are ignored */
    int32_t n_stop;
} rg_request_params;

/* What the scheduler reports, on its own thread, after each step that touched a
 * sample. text is the newly released text (may be empty; not NUL-terminated).
 * Once an output with `done` has been delivered the scheduler never touches the
 * request again: the owner may free it. */
typedef struct rg_output {
    int32_t index; /* which sample */
    int32_t token; /* the sampled token, -1 for none (finish/cancel only) */
    const char *text;
    size_t text_len;
    rg_finish_reason finish; /* set once per sample, on its last output */
    bool done;               /* every sample has finished */
    int64_t n_prompt;        /* prompt tokens */
    int64_t n_cached;        /* of which found in the prefix cache (last admission) */
    int64_t n_generated;     /* this sample's tokens so far */
    const char *error;       /* with RG_FINISH_ERROR */
} rg_output;

typedef void (*rg_output_fn)(void *user, const rg_output *out);

typedef struct rg_sample {
    rg_kv_seq kv;
    int32_t *tokens; /* prompt then generated */
    int64_t n_tokens, cap_tokens;
    rg_sampler *sampler;
    rg_detok_stream detok;
    char *text; /* generated text; [0, emitted) has been released */
    size_t text_len, text_cap, emitted;
    int32_t n_generated;
    rg_finish_reason finish;
} rg_sample;

typedef struct rg_request {
    rg_request_params params; /* stop lists point into owned copies */
    int64_t n_prompt;
    rg_sample *samples; /* n of them; only samples[0] is live until the prompt is done */
    int32_t n_samples, n_live;
    rg_output_fn on_output;
    void *user;
    atomic_bool cancel;
    /* the scheduler's bookkeeping */
    uint64_t id;             /* arrival order: lower is older (higher priority) */
    struct rg_request *next; /* incoming/waiting lists */
    int32_t n_preempted;
    int64_t n_cached;
    char error[512];
} rg_request;

/* Copy the prompt and parameters into a new request. Samplers are created by the
 * scheduler at submission (it knows n_vocab). RG_E_INVALID for an empty prompt,
 * n < 0 or > 64, more than RG_REQUEST_MAX_STOP stop strings or tokens.
 * Ownership: the caller's, free with rg_request_free once it is done (or was
 * never submitted). */
rg_status rg_request_create(const int32_t *prompt, int64_t n_prompt, const rg_request_params *p, rg_output_fn on_output,
                            void *user, rg_request **out, rg_err *err);
void rg_request_free(rg_request *r);

/* Ask the scheduler to stop the request at its next step (any thread). */
void rg_request_cancel(rg_request *r);

/* Append a token to a sample's history (grows it). */
rg_status rg_sample_append(rg_sample *s, int32_t token, rg_err *err);

/* Account one sampled token: append it, extend the text, check stop tokens, stop
 * strings and max_tokens (n_ctx bounds the history). Sets *delta and *delta_len to
 * the text released now and returns the finish reason (NONE to go on). */
rg_finish_reason rg_sample_accept(rg_sample *s, const rg_request_params *p, const rg_tokenizer *tok, int64_t n_ctx,
                                  int32_t token, const char **delta, size_t *delta_len);

#endif
