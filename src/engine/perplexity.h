/* perplexity.h — how well a model predicts a text: exp of the mean negative
 * log-likelihood of each token given the ones before it.
 *
 * The text is cut into windows of n_ctx tokens, each evaluated from an empty
 * cache in one batch with logits for every position; as llama.cpp's perplexity
 * tool does, only the second half of each window is scored, so every scored
 * token sees at least n_ctx/2 tokens of context and windows do not overlap.
 * The last, shorter window is scored the same way. A window of 1 token scores
 * nothing. */
#ifndef RG_ENGINE_PERPLEXITY_H
#define RG_ENGINE_PERPLEXITY_H

#include <stdint.h>

#include "model/forward.h"

typedef struct rg_ppl_result {
    int64_t n_scored;   /* tokens whose NLL was counted */
    double nll_sum;     /* natural log */
    double ppl;         /* exp(nll_sum / n_scored) */
    double ppl_stderr;  /* standard error of ppl from the spread of the per-token NLL (delta method) */
} rg_ppl_result;

/* Progress: called after each window with (windows done, windows in all). */
typedef void (*rg_ppl_progress)(int64_t done, int64_t total, double ppl_so_far, void *user);

/* Needs a context whose pool holds one sequence of n_ctx tokens and whose
 * max_batch_tokens may be smaller (rg_forward chunks). RG_E_INVALID for n_ctx < 2
 * or fewer than 2 tokens. */
rg_status rg_perplexity(rg_ctx *ctx, const int32_t *tokens, int64_t n, int64_t n_ctx, rg_ppl_progress progress,
                        void *user, rg_ppl_result *out, rg_err *err);

#endif
