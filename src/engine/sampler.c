/* sampler.c — penalties, top-k / top-p / min-p truncation, seeded draws. */
#include "engine/sampler.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct cand {
    int32_t id;
    float logit;
    float p;
} cand;

struct rg_sampler {
    rg_sampling_params p;
    int32_t n_vocab;
    uint64_t rng;
    cand *cands;
    int32_t *counts;     /* per-token occurrences in the penalty window */
};

rg_sampling_params rg_sampling_default(void) {
    return (rg_sampling_params){
        .temperature = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .penalty_last_n = 64,
        .seed = 0x5eed,
    };
}

rg_status rg_sampler_create(const rg_sampling_params *p, int32_t n_vocab, rg_sampler **out, rg_err *err) {
    *out = NULL;
    if (n_vocab <= 0) return rg_fail(err, RG_E_INVALID, "n_vocab %d", n_vocab);
    if (!(p->temperature >= 0 || p->temperature < 0) || p->top_p < 0 || p->min_p < 0 || p->min_p > 1 ||
        p->repeat_penalty <= 0 || p->penalty_last_n < 0)
        return rg_fail(err, RG_E_INVALID, "sampling parameters out of range (top_p >= 0, 0 <= min_p <= 1, "
                                          "repeat_penalty > 0, penalty_last_n >= 0)");
    rg_sampler *s = calloc(1, sizeof *s);
    if (!s) return rg_fail(err, RG_E_NOMEM, "out of memory");
    s->p = *p;
    s->n_vocab = n_vocab;
    s->rng = p->seed * 0x9E3779B97F4A7C15ULL + 0xD1B54A32D192ED03ULL;
    s->cands = malloc((size_t)n_vocab * sizeof *s->cands);
    s->counts = calloc((size_t)n_vocab, sizeof *s->counts);
    if (!s->cands || !s->counts) {
        rg_sampler_free(s);
        return rg_fail(err, RG_E_NOMEM, "out of memory");
    }
    *out = s;
    return RG_OK;
}

void rg_sampler_free(rg_sampler *s) {
    if (!s) return;
    free(s->cands);
    free(s->counts);
    free(s);
}

static uint64_t next_u64(uint64_t *state) { /* splitmix64: tiny, seedable, good enough for sampling */
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* The penalties leave every logit as it is (apply_penalties returns at once or
 * looks at no token). */
static bool no_penalties(const rg_sampling_params *p) {
    return (p->repeat_penalty == 1.0f && p->frequency_penalty == 0 && p->presence_penalty == 0) ||
           p->penalty_last_n == 0;
}

bool rg_sampler_is_greedy(const rg_sampler *s) { return s->p.temperature <= 0 && no_penalties(&s->p); }

bool rg_sampler_edits_logits(const rg_sampler *s) { return !no_penalties(&s->p); }

static void apply_penalties(rg_sampler *s, float *logits, const int32_t *hist, int64_t n_hist) {
    const rg_sampling_params *p = &s->p;
    if (no_penalties(p)) return;
    int64_t start = n_hist > p->penalty_last_n ? n_hist - p->penalty_last_n : 0;
    for (int64_t i = start; i < n_hist; i++)
        if (hist[i] >= 0 && hist[i] < s->n_vocab) s->counts[hist[i]]++;
    for (int64_t i = start; i < n_hist; i++) {
        int32_t id = hist[i];
        if (id < 0 || id >= s->n_vocab || s->counts[id] == 0) continue;
        float *l = &logits[id];
        *l = *l > 0 ? *l / p->repeat_penalty : *l * p->repeat_penalty;
        *l -= (float)s->counts[id] * p->frequency_penalty + p->presence_penalty;
        s->counts[id] = 0; /* each distinct token penalized once; also resets for the next call */
    }
}

static int cmp_logit_desc(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
    return x->id - y->id;
}

/* Min-heap on logit (ties: larger id is "smaller") keeping the k best. */
static bool worse(const cand *a, const cand *b) { return a->logit < b->logit || (a->logit == b->logit && a->id > b->id); }

static void sift_down(cand *h, int32_t n, int32_t i) {
    for (;;) {
        int32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && worse(&h[l], &h[m])) m = l;
        if (r < n && worse(&h[r], &h[m])) m = r;
        if (m == i) return;
        cand t = h[i];
        h[i] = h[m], h[m] = t, i = m;
    }
}

/* The k largest logits into s->cands[0..k), sorted descending: O(n log k), so
 * top-k 40 over a 50k vocabulary costs a pass, not a full sort. */
static int32_t select_top_k(rg_sampler *s, const float *logits, int32_t k) {
    cand *h = s->cands;
    for (int32_t i = 0; i < k; i++) h[i] = (cand){i, logits[i], 0};
    for (int32_t i = k / 2 - 1; i >= 0; i--) sift_down(h, k, i);
    /* Ids arrive in increasing order, so a candidate tying the heap's minimum has
     * the larger id and loses: it enters only with logit > h[0].logit. Most runs of
     * 16 have none (the test vectorizes), and skip the heap. */
    int32_t i = k;
    for (; i + 16 <= s->n_vocab; i += 16) {
        const float th = h[0].logit;
        int any = 0;
        for (int j = 0; j < 16; j++) any |= logits[i + j] > th;
        if (!any) continue;
        for (int j = 0; j < 16; j++)
            if (logits[i + j] > h[0].logit) h[0] = (cand){i + j, logits[i + j], 0}, sift_down(h, k, 0);
    }
    for (; i < s->n_vocab; i++) {
        cand c = {i, logits[i], 0};
        if (worse(&h[0], &c)) h[0] = c, sift_down(h, k, 0);
    }
    qsort(h, (size_t)k, sizeof *h, cmp_logit_desc);
    return k;
}

/* A uniform draw in [0, total). */
static double draw(rg_sampler *s, double total) {
    return (double)(next_u64(&s->rng) >> 11) * (1.0 / 9007199254740992.0) * total;
}

/* No top-k, top-p or min-p cut (the OpenAI API's defaults): a draw from the
 * softmax of the whole row in one pass over it, no sort. */
static int32_t sample_whole_row(rg_sampler *s, const float *logits) {
    const int32_t n = s->n_vocab;
    const float t = s->p.temperature;
    float max = logits[0];
    for (int32_t i = 1; i < n; i++) max = logits[i] > max ? logits[i] : max;
    double total = 0;
    for (int32_t i = 0; i < n; i++) total += s->cands[i].p = expf((logits[i] - max) / t);
    double r = draw(s, total);
    int32_t last = 0;
    for (int32_t i = 0; i < n; i++) {
        if (s->cands[i].p > 0) last = i;
        if ((r -= s->cands[i].p) < 0) return i;
    }
    return last; /* rounding left r >= 0: the last token with weight */
}

int32_t rg_sampler_sample(rg_sampler *s, float *logits, const int32_t *history, int64_t n_history) {
    const rg_sampling_params *p = &s->p;
    apply_penalties(s, logits, history, n_history);
    if (p->temperature <= 0) return rg_argmax(logits, s->n_vocab, NULL);
    const bool whole = !(p->top_k > 0 && p->top_k < s->n_vocab); /* no top-k cut */
    if (whole && p->top_p >= 1.0f && p->min_p <= 0) return sample_whole_row(s, logits);

    /* Top-p and min-p keep a prefix of the candidates sorted by logit. Without a
     * top-k cut, the k best are selected (a heap: one pass over the row) with k
     * doubling until the prefix ends inside them, so a 128k vocabulary is not
     * sorted whole; probabilities are then over the whole row (zsum). */
    int32_t k = whole ? 64 : p->top_k, n;
    double zsum = 0; /* sum of the whole row's weights, when whole */
    for (;;) {
        if (k > s->n_vocab) k = s->n_vocab;
        n = select_top_k(s, logits, k);
        const float max = s->cands[0].logit;
        if (whole && zsum == 0)
            for (int32_t i = 0; i < s->n_vocab; i++) zsum += expf((logits[i] - max) / p->temperature);
        double sum = zsum;
        for (int32_t i = 0; i < n; i++) {
            s->cands[i].p = expf((s->cands[i].logit - max) / p->temperature);
            if (!whole) sum += s->cands[i].p;
        }
        for (int32_t i = 0; i < n; i++) s->cands[i].p = (float)(s->cands[i].p / sum);
        /* the kept prefix: the shorter of the two cuts; it is final once a cut
         * falls inside the n candidates (or they are the whole row, or top-k cut them) */
        bool exact = !whole || n == s->n_vocab;
        int32_t n_cut = n;
        if (p->top_p < 1.0f) {
            double cum = 0;
            for (int32_t i = 0; i < n; i++) {
                cum += s->cands[i].p;
                if (cum >= p->top_p) {
                    n_cut = i + 1, exact = true;
                    break;
                }
            }
        }
        if (p->min_p > 0) {
            const float floor = p->min_p * s->cands[0].p;
            int32_t keep = 1;
            while (keep < n && s->cands[keep].p >= floor) keep++;
            if (keep < n) n_cut = keep < n_cut ? keep : n_cut, exact = true;
        }
        n = n_cut;
        if (exact) break;
        k *= 2; /* the prefix may reach past the k best: take more */
    }
    double total = 0;
    for (int32_t i = 0; i < n; i++) total += s->cands[i].p;
    double r = draw(s, total);
    for (int32_t i = 0; i < n; i++) {
        r -= s->cands[i].p;
        if (r < 0) return s->cands[i].id;
    }
    return s->cands[n - 1].id;
}
