/* sampler.h — choosing the next token from logits.
 *
 * Order (as llama.cpp's default chain): penalties on the logits of recently seen
 * tokens (repetition: divide positive / multiply negative logits; frequency and
 * presence: subtract count*freq + presence), then greedy if temperature <= 0,
 * else top-k, temperature, softmax, top-p (smallest set with mass >= p), min-p
 * (drop tokens with p < min_p * p_max), and a draw from the renormalized rest.
 * The generator is seeded: same seed + same logits -> same tokens. */
#ifndef RG_ENGINE_SAMPLER_H
#define RG_ENGINE_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/argmax.h" /* rg_argmax: the greedy choice */
#include "core/error.h"

typedef struct rg_sampling_params {
    float temperature;      /* <= 0: greedy */
    int32_t top_k;          /* <= 0: off */
    float top_p;            /* >= 1: off */
    float min_p;            /* <= 0: off */
    float repeat_penalty;   /* 1: off */
    float frequency_penalty, presence_penalty; /* 0: off */
    int32_t penalty_last_n; /* how many recent tokens the penalties look at */
    uint64_t seed;
} rg_sampling_params;

/* Defaults matching llama.cpp's CLI: temp 0.8, top-k 40, top-p 0.95, min-p 0.05,
 * no penalties, last_n 64. */
rg_sampling_params rg_sampling_default(void);

typedef struct rg_sampler rg_sampler;

rg_status rg_sampler_create(const rg_sampling_params *p, int32_t n_vocab, rg_sampler **out, rg_err *err);
void rg_sampler_free(rg_sampler *s);

/* Pick a token. logits (n_vocab) is modified (penalties applied in place).
 * history: the tokens so far (prompt + generated), newest last. */
int32_t rg_sampler_sample(rg_sampler *s, float *logits, const int32_t *history, int64_t n_history);

/* True when the sampler's choice is the argmax of the raw logits whatever the
 * history: greedy (temperature <= 0) with no penalty that changes a logit. Such a
 * sample can take its token from rg_argmax / a backend's argmax_rows instead of
 * the full row (engine/scheduler.c does, to keep logits on the device). */
bool rg_sampler_is_greedy(const rg_sampler *s);

/* Whether rg_sampler_sample writes to its logits (the penalties edit them in
 * place); when false the caller may pass a shared row without copying it. */
bool rg_sampler_edits_logits(const rg_sampler *s);

#endif
