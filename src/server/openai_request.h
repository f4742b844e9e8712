/* openai_request.h — the body of an OpenAI /v1/completions or
 * /v1/chat/completions request, parsed and checked.
 *
 * Only what ridge acts on is kept; unknown fields are ignored (as OpenAI-compatible
 * servers do), but a known field of the wrong type or out of its range is an
 * error naming the field, which the server returns as HTTP 400. Sampling
 * defaults are OpenAI's (temperature 1, top_p 1, no top-k/min-p), not the CLI's.
 * Extensions accepted as llama.cpp's and vLLM's servers spell them: top_k, min_p,
 * repetition_penalty (alias repeat_penalty), ignore_eos, seed. */
#ifndef RG_SERVER_OPENAI_REQUEST_H
#define RG_SERVER_OPENAI_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "engine/request.h"
#include "tok/chat_template.h"

#define RG_OAI_MAX_STOP 4

typedef struct rg_oai_request {
    bool chat;
    char *model; /* may be NULL */
    /* completions: a prompt string, or token ids */
    char *prompt;
    int32_t *prompt_ids;
    int64_t n_prompt_ids;
    /* chat: messages, role and content owned */
    rg_chat_msg *msgs;
    size_t n_msgs;
    bool stream, include_usage;
    int32_t max_tokens; /* 0: not given */
    int32_t n;
    bool ignore_eos;
    rg_sampling_params sampling;
    bool seed_given; /* without "seed" the server draws one per request */
    char *stop[RG_OAI_MAX_STOP];
    int32_t n_stop;
    char param[48]; /* on error: the offending field, "" if none */
} rg_oai_request;

/* Parse len bytes of JSON (need not be NUL-terminated). On error (RG_E_INVALID
 * for bad JSON or parameters, RG_E_NOMEM) err says why, out->param names the
 * field, and out holds nothing to free. Ownership: rg_oai_request_clear frees
 * what a successful parse allocated. */
rg_status rg_oai_parse(const char *body, size_t len, bool chat, rg_oai_request *out, rg_err *err);
void rg_oai_request_clear(rg_oai_request *r);

/* The engine's view: sampling, max tokens, n, stop strings (pointing into r). */
rg_request_params rg_oai_request_params(const rg_oai_request *r);

#endif
