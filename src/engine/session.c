/* session.c — single-sequence generation on top of rg_forward. */
#include "engine/session.h"

#include <stdlib.h>
#include <string.h>

rg_status rg_session_init(rg_session *s, rg_ctx *ctx, bool cache, rg_err *err) {
    memset(s, 0, sizeof *s);
    s->ctx = ctx;
    s->cache = cache;
    s->logits = rg_ctx_alloc_logits(ctx, 1);
    if (!s->logits) return rg_fail(err, RG_E_NOMEM, "out of memory");
    return RG_OK;
}

void rg_session_free(rg_session *s) {
    if (s->ctx) rg_kv_seq_free(rg_ctx_kv(s->ctx), &s->seq);
    free(s->history);
    if (s->ctx) rg_ctx_free_logits(s->ctx, s->logits);
    memset(s, 0, sizeof *s);
}

/* One forward pass over tokens at positions start.. : the last token's logits
 * into s->logits, or, with next non-NULL, only its greedy id into *next. */
static rg_status run(rg_session *s, const int32_t *tokens, int64_t n, int32_t start, int32_t *next, rg_err *err) {
    int32_t *pos = malloc((size_t)n * sizeof *pos), *seq = calloc((size_t)n, sizeof *seq);
    if (!pos || !seq) {
        free(pos), free(seq);
        return rg_fail(err, RG_E_NOMEM, "out of memory");
    }
    for (int64_t i = 0; i < n; i++) pos[i] = start + (int32_t)i;
    rg_batch b = {.n_tokens = n, .token = tokens, .pos = pos, .seq = seq, .want_logits = NULL, .argmax_out = next};
    rg_kv_seq *seqs[1] = {&s->seq};
    rg_status st = rg_forward(s->ctx, &b, seqs, 1, next ? NULL : s->logits, err);
    free(pos), free(seq);
    return st;
}

static rg_status feed(rg_session *s, const int32_t *tokens, int64_t n, int32_t *next, rg_err *err) {
    if (n <= 0) return rg_fail(err, RG_E_INVALID, "nothing to feed");
    if (s->n_history + n > s->cap_history) {
        int64_t cap = (s->n_history + n) * 2;
        int32_t *h = realloc(s->history, (size_t)cap * sizeof *h);
        if (!h) return rg_fail(err, RG_E_NOMEM, "out of memory");
        s->history = h, s->cap_history = cap;
    }
    if (s->n_history + n > rg_ctx_n_ctx(s->ctx))
        return rg_fail(err, RG_E_INVALID, "context full: %lld + %lld tokens exceed n_ctx %lld",
                       (long long)s->n_history, (long long)n, (long long)rg_ctx_n_ctx(s->ctx));
    memcpy(s->history + s->n_history, tokens, (size_t)n * sizeof *tokens);
    rg_status st;
    if (s->cache) {
        st = run(s, tokens, n, (int32_t)s->n_history, next, err);
    } else {
        /* baseline: drop the cache and recompute the whole prefix */
        rg_kv_seq_truncate(rg_ctx_kv(s->ctx), &s->seq, 0);
        st = run(s, s->history, s->n_history + n, 0, next, err);
    }
    if (!st) s->n_history += n;
    return st;
}

rg_status rg_session_feed(rg_session *s, const int32_t *tokens, int64_t n, rg_err *err) {
    return feed(s, tokens, n, NULL, err);
}

rg_status rg_session_feed_greedy(rg_session *s, const int32_t *tokens, int64_t n, int32_t *next, rg_err *err) {
    return feed(s, tokens, n, next, err);
}

void rg_session_rewind(rg_session *s, int64_t n) {
    if (n >= s->n_history) return;
    s->n_history = n;
    rg_kv_seq_truncate(rg_ctx_kv(s->ctx), &s->seq, n);
}
