/* perplexity.c — see perplexity.h. */
#include "engine/perplexity.h"

#include <math.h>
#include <stdlib.h>

/* -log softmax(logits)[target], in double, stable for large logits. */
static double token_nll(const float *logits, int64_t n_vocab, int32_t target) {
    float mx = logits[0];
    for (int64_t i = 1; i < n_vocab; i++)
        if (logits[i] > mx) mx = logits[i];
    double sum = 0;
    for (int64_t i = 0; i < n_vocab; i++) sum += exp((double)logits[i] - mx);
    return log(sum) - ((double)logits[target] - mx);
}

rg_status rg_perplexity(rg_ctx *ctx, const int32_t *tokens, int64_t n, int64_t n_ctx, rg_ppl_progress progress,
                        void *user, rg_ppl_result *out, rg_err *err) {
    *out = (rg_ppl_result){0};
    if (n_ctx < 2 || n_ctx > rg_ctx_n_ctx(ctx))
        return rg_fail(err, RG_E_INVALID, "window of %lld tokens: need 2 .. %lld", (long long)n_ctx,
                       (long long)rg_ctx_n_ctx(ctx));
    if (n < 2) return rg_fail(err, RG_E_INVALID, "perplexity needs at least 2 tokens, got %lld", (long long)n);
    int64_t V = rg_ctx_model(ctx)->hp.n_vocab, first_scored = n_ctx / 2;
    float *logits = malloc((size_t)(n_ctx - first_scored) * (size_t)V * sizeof *logits);
    int32_t *pos = malloc((size_t)n_ctx * sizeof *pos), *seq = calloc((size_t)n_ctx, sizeof *seq);
    bool *want = malloc((size_t)n_ctx * sizeof *want);
    if (!logits || !pos || !seq || !want) {
        free(logits), free(pos), free(seq), free(want);
        return rg_fail(err, RG_E_NOMEM, "out of memory for %lld logit rows", (long long)(n_ctx - first_scored));
    }
    int64_t n_windows = (n + n_ctx - 1) / n_ctx;
    double sum = 0, sum_sq = 0;
    rg_status st = RG_OK;
    rg_kv_seq s = {0};
    rg_kv_seq *seqs[1] = {&s};
    for (int64_t w = 0; w < n_windows && !st; w++) {
        int64_t start = w * n_ctx, len = n - start < n_ctx ? n - start : n_ctx, skip = len / 2;
        if (len < 2) break;
        for (int64_t i = 0; i < len; i++) pos[i] = (int32_t)i, want[i] = i >= skip && i + 1 < len;
        rg_batch b = {.n_tokens = len, .token = tokens + start, .pos = pos, .seq = seq, .want_logits = want};
        rg_kv_seq_truncate(rg_ctx_kv(ctx), &s, 0);
        if ((st = rg_forward(ctx, &b, seqs, 1, logits, err))) break;
        /* row r holds the logits after token skip + r, which predict token skip + r + 1 */
        for (int64_t i = skip; i + 1 < len; i++) {
            double nll = token_nll(logits + (i - skip) * V, V, tokens[start + i + 1]);
            sum += nll, sum_sq += nll * nll;
            out->n_scored++;
        }
        if (progress) progress(w + 1, n_windows, out->n_scored ? exp(sum / (double)out->n_scored) : 0, user);
    }
    rg_kv_seq_free(rg_ctx_kv(ctx), &s);
    free(logits), free(pos), free(seq), free(want);
    if (st) return st;
    if (!out->n_scored) return rg_fail(err, RG_E_INVALID, "no token was scored (text too short for the window)");
    double k = (double)out->n_scored, mean = sum / k, var = k > 1 ? (sum_sq - k * mean * mean) / (k - 1) : 0;
    out->nll_sum = sum;
    out->ppl = exp(mean);
    out->ppl_stderr = out->ppl * sqrt((var > 0 ? var : 0) / k);
    return RG_OK;
}
