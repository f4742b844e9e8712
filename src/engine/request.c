/* request.c — request creation and the per-token accounting of a sample: history,
 * streamed text, stop tokens, stop strings and length limits. */
#include "engine/request.h"

#include <stdlib.h>
#include <string.h>

const char *rg_finish_reason_name(rg_finish_reason r) {
    switch (r) {
    case RG_FINISH_STOP: return "stop";
    case RG_FINISH_LENGTH: return "length";
    case RG_FINISH_CANCELLED: return "cancelled";
    case RG_FINISH_ERROR: return "error";
    default: return "";
    }
}

rg_status rg_sample_append(rg_sample *s, int32_t token, rg_err *err) {
    if (s->n_tokens == s->cap_tokens) {
        int64_t cap = s->cap_tokens ? 2 * s->cap_tokens : 64;
        int32_t *t = realloc(s->tokens, (size_t)cap * sizeof *t);
        if (!t) return rg_fail(err, RG_E_NOMEM, "out of memory for a token history");
        s->tokens = t, s->cap_tokens = cap;
    }
    s->tokens[s->n_tokens++] = token;
    return RG_OK;
}

rg_status rg_request_create(const int32_t *prompt, int64_t n_prompt, const rg_request_params *p, rg_output_fn on_output,
                            void *user, rg_request **out, rg_err *err) {
    *out = NULL;
    int32_t n = p->n ? p->n : 1;
    if (n_prompt <= 0) return rg_fail(err, RG_E_INVALID, "the prompt is empty");
    if (n < 1 || n > 64) return rg_fail(err, RG_E_INVALID, "n = %d samples (1 to 64)", p->n);
    if (p->n_stop < 0 || p->n_stop > RG_REQUEST_MAX_STOP || p->n_stop_tokens < 0 ||
        p->n_stop_tokens > RG_REQUEST_MAX_STOP)
        return rg_fail(err, RG_E_INVALID, "at most %d stop strings and %d stop tokens", RG_REQUEST_MAX_STOP,
                       RG_REQUEST_MAX_STOP);
    rg_request *r = calloc(1, sizeof *r);
    if (!r) return rg_fail(err, RG_E_NOMEM, "out of memory");
    r->params = *p;
    r->params.n = n;
    r->n_prompt = n_prompt;
    r->n_samples = n;
    r->n_live = 1;
    r->on_output = on_output;
    r->user = user;
    atomic_init(&r->cancel, false);
    r->samples = calloc((size_t)n, sizeof *r->samples);
    int32_t *stop_tokens = p->n_stop_tokens ? malloc((size_t)p->n_stop_tokens * sizeof *stop_tokens) : NULL;
    char **stop = p->n_stop ? calloc((size_t)p->n_stop, sizeof *stop) : NULL;
    r->params.stop_tokens = stop_tokens;
    r->params.stop = (const char *const *)stop;
    bool ok = r->samples && (!p->n_stop_tokens || stop_tokens) && (!p->n_stop || stop);
    for (int32_t i = 0; ok && i < p->n_stop_tokens; i++)
        stop_tokens[i] = p->stop_tokens[i];
    for (int32_t i = 0; ok && i < p->n_stop; i++)
        ok = (stop[i] = strdup(p->stop[i] ? p->stop[i] : "")) != NULL;
    rg_sample *s0 = r->samples;
    if (ok && s0) {
        s0->tokens = malloc((size_t)n_prompt * sizeof *s0->tokens);
        ok = s0->tokens != NULL;
        if (ok) {
            memcpy(s0->tokens, prompt, (size_t)n_prompt * sizeof *prompt);
            s0->n_tokens = s0->cap_tokens = n_prompt;
        }
    }
    if (!ok) {
        rg_request_free(r);
        return rg_fail(err, RG_E_NOMEM, "out of memory");
    }
    *out = r;
    return RG_OK;
}

void rg_request_free(rg_request *r) {
    if (!r) return;
    for (int32_t i = 0; r->samples && i < r->n_samples; i++) {
        rg_sample *s = &r->samples[i];
        /* blocks are released by the scheduler; a never-submitted request holds none */
        free(s->kv.blocks);
        free(s->tokens);
        free(s->text);
        rg_sampler_free(s->sampler);
    }
    free(r->samples);
    free((void *)r->params.stop_tokens);
    for (int32_t i = 0; r->params.stop && i < r->params.n_stop; i++)
        free((void *)r->params.stop[i]);
    free((void *)r->params.stop);
    free(r);
}

void rg_request_cancel(rg_request *r) { atomic_store(&r->cancel, true); }

static bool text_append(rg_sample *s, const char *piece, size_t n) {
    if (s->text_len + n + 1 > s->text_cap) {
        size_t cap = s->text_cap ? s->text_cap : 256;
        while (s->text_len + n + 1 > cap)
            cap *= 2;
        char *t = realloc(s->text, cap);
        if (!t) return false;
        s->text = t, s->text_cap = cap;
    }
    memcpy(s->text + s->text_len, piece, n);
    s->text_len += n;
    s->text[s->text_len] = 0;
    return true;
}

/* The longest suffix of text[from, len) that is a proper prefix of a stop string:
 * it must be held back, the next token might complete the stop string. */
static size_t held_back(const rg_sample *s, const rg_request_params *p, size_t from) {
    size_t best = 0, avail = s->text_len - from;
    for (int32_t i = 0; i < p->n_stop; i++) {
        size_t n = strlen(p->stop[i]);
        if (n == 0) continue;
        for (size_t k = (n - 1 < avail ? n - 1 : avail); k > best; k--)
            if (!memcmp(s->text + s->text_len - k, p->stop[i], k)) {
                best = k;
                break;
            }
    }
    return best;
}

rg_finish_reason rg_sample_accept(rg_sample *s, const rg_request_params *p, const rg_tokenizer *tok, int64_t n_ctx,
                                  int32_t token, const char **delta, size_t *delta_len) {
    rg_finish_reason fin = RG_FINISH_NONE;
    size_t from = s->emitted;
    s->n_generated++;
    bool stop_token = !p->ignore_eos && rg_token_is_eog(tok, token);
    for (int32_t i = 0; i < p->n_stop_tokens; i++)
        stop_token |= token == p->stop_tokens[i];
    if (stop_token) {
        fin = RG_FINISH_STOP; /* the stop token's text is never shown */
    } else {
        char piece[256];
        int64_t n = rg_detok_stream_push(tok, &s->detok, token, piece, sizeof piece);
        if (n > (int64_t)sizeof piece - 1) n = (int64_t)sizeof piece - 1; /* a 255-byte piece: cut */
        if (n > 0 && !text_append(s, piece, (size_t)n)) fin = RG_FINISH_ERROR;
        if (rg_sample_append(s, token, NULL)) fin = RG_FINISH_ERROR;
    }
    if (!fin && ((p->max_tokens > 0 && s->n_generated >= p->max_tokens) || s->n_tokens >= n_ctx))
        fin = RG_FINISH_LENGTH;
    if (fin == RG_FINISH_LENGTH || (fin == RG_FINISH_STOP && stop_token)) {
        char piece[16];
        int64_t n = rg_detok_stream_flush(&s->detok, piece, sizeof piece);
        if (n > 0 && n < (int64_t)sizeof piece) text_append(s, piece, (size_t)n);
    }
    /* earliest stop string in the unreleased text */
    size_t cut = s->text_len;
    bool hit = false;
    for (int32_t i = 0; i < p->n_stop; i++) {
        if (!p->stop[i][0]) continue;
        const char *at = s->text ? memmem(s->text + from, s->text_len - from, p->stop[i], strlen(p->stop[i])) : NULL;
        if (at && (size_t)(at - s->text) < cut) cut = (size_t)(at - s->text), hit = true;
    }
    if (hit) {
        fin = RG_FINISH_STOP;
    } else if (!fin) {
        cut = s->text_len - held_back(s, p, from);
    }
    *delta = s->text ? s->text + from : "";
    *delta_len = cut - from;
    s->emitted = cut;
    s->finish = fin;
    return fin;
}
