/* session.h — one sequence generating on a run context: feed tokens, get the
 * logits of the last one. The building block of `ridge run`, `chat` and `eval`.
 *
 * With cache = false the session is the no-KV-cache baseline: every call runs the
 * whole history again from position 0 (O(n^2) work over a generation), which is
 * what the KV cache saves and what `--kv none` measures. */
#ifndef RG_ENGINE_SESSION_H
#define RG_ENGINE_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "model/forward.h"

typedef struct rg_session {
    rg_ctx *ctx;
    rg_kv_seq seq;
    bool cache;
    int32_t *history;       /* every token fed so far */
    int64_t n_history, cap_history;
    float *logits;          /* n_vocab: logits after the last fed token */
} rg_session;

rg_status rg_session_init(rg_session *s, rg_ctx *ctx, bool cache, rg_err *err);
void rg_session_free(rg_session *s);

/* Append n tokens and compute the logits after the last (s->logits). */
rg_status rg_session_feed(rg_session *s, const int32_t *tokens, int64_t n, rg_err *err);

/* Append n tokens; *next = the greedy token after the last (rg_argmax of its
 * logits: what a greedy rg_sampler picks), computed where the logits are — on
 * the GPU one id crosses to the host instead of n_vocab floats, and the host
 * does no pass over them. s->logits is left as it was (stale). */
rg_status rg_session_feed_greedy(rg_session *s, const int32_t *tokens, int64_t n, int32_t *next, rg_err *err);

/* Forget everything after the first n tokens (e.g. to re-run a turn). */
void rg_session_rewind(rg_session *s, int64_t n);

#endif
