/* scheduler.c — the step loop of scheduler.h: queues, admission, batch building
 * with preemption, and the per-sample bookkeeping after each forward pass.
 *
 * Invariants: `running` is in arrival order (oldest first), so the victim of a
 * preemption — the newest — is always the last entry, and during batch building
 * it never has tokens in the batch yet unless it is the request being scheduled
 * (whose entries are then dropped). Every block a request holds is in one of its
 * samples' tables; releasing a sample offers its full blocks to the prefix cache
 * first, so what was computed survives the request when the pool has room. */
#include "engine/scheduler.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv/prefix_cache.h"

/* One token to draw this step: sample i of request r from logits row `row`, or,
 * on a greedy step (row NULL), take token = the row's device argmax. */
typedef struct sample_task {
    rg_request *r;
    int32_t i;
    float *row;
    int32_t token;
} sample_task;

struct rg_scheduler {
    rg_ctx *ctx;
    const rg_model *m;
    const rg_tokenizer *tok;
    rg_kv_pool *kv;
    rg_prefix_cache *cache;
    rg_sched_params p;
    int64_t n_ctx, n_vocab, block_size;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    rg_request *in_head, *in_tail; /* submitted, not yet seen by the engine (mu) */
    int64_t n_queued;              /* incoming + waiting (mu) */
    rg_sched_stats published;      /* (mu) */

    /* engine thread only */
    rg_request *wait_head, *wait_tail;
    rg_request **running;
    int64_t n_running;
    uint64_t next_id; /* arrival order (mu) */
    rg_sched_stats st;

    /* the step's batch */
    int32_t *b_tok, *b_pos, *b_seq;
    bool *b_want;
    rg_kv_seq **b_kv; /* per batch sequence */
    rg_request **b_req;
    int32_t *b_sample;
    int64_t *b_chunk;
    int64_t n_tok, n_bseq;
    float *logits;
    int32_t *greedy_ids; /* per logits row, on greedy steps */
    /* the step's samples to draw (sample_tasks), and a logits row of scratch per
     * pool thread for samplers that edit their row */
    sample_task *tasks;
    int64_t n_tasks, cap_tasks; /* cap_tasks = max_seqs */
    float *scratch;
    int scratch_rows;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int64_t blocks_for(const rg_scheduler *s, int64_t n_tokens) {
    return n_tokens / s->block_size + (n_tokens % s->block_size != 0);
}

/* Blocks rg_kv_seq_reserve(kv, total) would take: new ones plus copies-on-write. */
static int64_t blocks_needed(const rg_scheduler *s, const rg_kv_seq *kv, int64_t total) {
    if (total <= kv->n_tokens) return 0;
    int64_t need = blocks_for(s, total), n = need > kv->n_blocks ? need - kv->n_blocks : 0;
    int64_t last = need < kv->n_blocks ? need : kv->n_blocks;
    for (int64_t i = kv->n_tokens / s->block_size; i < last; i++)
        n += rg_kv_block_refcount(s->kv, kv->blocks[i]) > 1;
    return n;
}

rg_status rg_sched_create(rg_ctx *ctx, const rg_sched_params *p, rg_scheduler **out, rg_err *err) {
    *out = NULL;
    rg_scheduler *s = calloc(1, sizeof *s);
    if (!s) return rg_fail(err, RG_E_NOMEM, "scheduler: out of memory");
    s->ctx = ctx;
    s->m = rg_ctx_model(ctx);
    s->tok = s->m->tok;
    s->kv = rg_ctx_kv(ctx);
    s->p = *p;
    if (s->p.max_seqs <= 0) s->p.max_seqs = 64;
    if (s->p.max_batch_tokens <= 0) s->p.max_batch_tokens = 256;
    if (s->p.max_waiting <= 0) s->p.max_waiting = 256;
    if (s->p.max_batch_tokens < s->p.max_seqs) s->p.max_batch_tokens = s->p.max_seqs; /* every decode fits a step */
    s->n_ctx = rg_ctx_n_ctx(ctx);
    s->n_vocab = s->m->hp.n_vocab;
    s->block_size = rg_kv_pool_config(s->kv)->block_size;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    int64_t T = s->p.max_batch_tokens, S = s->p.max_seqs;
    s->running = calloc((size_t)S, sizeof *s->running);
    s->b_tok = malloc((size_t)T * sizeof *s->b_tok);
    s->b_pos = malloc((size_t)T * sizeof *s->b_pos);
    s->b_seq = malloc((size_t)T * sizeof *s->b_seq);
    s->b_want = malloc((size_t)T * sizeof *s->b_want);
    s->b_kv = malloc((size_t)S * sizeof *s->b_kv);
    s->b_req = malloc((size_t)S * sizeof *s->b_req);
    s->b_sample = malloc((size_t)S * sizeof *s->b_sample);
    s->b_chunk = malloc((size_t)S * sizeof *s->b_chunk);
    s->logits = rg_ctx_alloc_logits(ctx, S); /* pinned on CUDA: sampled steps' rows land in one DMA */
    rg_threadpool *pool = rg_ctx_cpu_pool(ctx);
    s->scratch_rows = pool ? rg_threadpool_size(pool) : 1;
    s->scratch = malloc((size_t)s->scratch_rows * (size_t)s->n_vocab * sizeof *s->scratch);
    s->greedy_ids = malloc((size_t)S * sizeof *s->greedy_ids);
    s->cap_tasks = S;
    s->tasks = malloc((size_t)s->cap_tasks * sizeof *s->tasks);
    rg_status st = RG_OK;
    if (!s->running || !s->b_tok || !s->b_pos || !s->b_seq || !s->b_want || !s->b_kv || !s->b_req || !s->b_sample ||
        !s->b_chunk || !s->logits || !s->scratch || !s->greedy_ids || !s->tasks)
        st = rg_fail(err, RG_E_NOMEM, "scheduler: out of memory for %lld tokens x %lld sequences", (long long)T,
                     (long long)S);
    if (!st && p->prefix_cache) st = rg_prefix_cache_create(s->kv, &s->cache, err);
    if (st) {
        rg_sched_free(s);
        return st;
    }
    *out = s;
    return RG_OK;
}

static void emit(rg_request *r, int32_t index, int32_t token, const char *text, size_t len, rg_finish_reason fin,
                 bool done) {
    if (!r->on_output) return;
    rg_output o = {
        .index = index,
        .token = token,
        .text = text ? text : "",
        .text_len = len,
        .finish = fin,
        .done = done,
        .n_prompt = r->n_prompt,
        .n_cached = r->n_cached,
        .n_generated = r->samples[index].n_generated,
        .error = fin == RG_FINISH_ERROR ? r->error : NULL,
    };
    r->on_output(r->user, &o);
}

/* Give a sample's blocks back: full ones to the prefix cache first. */
static void release_sample(rg_scheduler *s, rg_sample *smp) {
    if (s->cache && smp->kv.n_tokens > 0) rg_prefix_cache_insert(s->cache, &smp->kv, smp->tokens, smp->kv.n_tokens);
    rg_kv_seq_free(s->kv, &smp->kv);
}

static int64_t n_unfinished(const rg_request *r) {
    int64_t n = 0;
    for (int32_t i = 0; i < r->n_samples; i++)
        n += r->samples[i].finish == RG_FINISH_NONE;
    return n;
}

static void remove_running(rg_scheduler *s, rg_request *r) {
    for (int64_t i = 0; i < s->n_running; i++)
        if (s->running[i] == r) {
            memmove(s->running + i, s->running + i + 1, (size_t)(s->n_running - i - 1) * sizeof *s->running);
            s->n_running--;
            return;
        }
}

/* Finish every unfinished sample of r (already out of the queues) with fin; the
 * last output carries done. */
static void finish_request(rg_scheduler *s, rg_request *r, rg_finish_reason fin) {
    int64_t left = n_unfinished(r);
    s->st.n_finished++;
    for (int32_t i = 0; i < r->n_samples; i++) {
        rg_sample *smp = &r->samples[i];
        if (smp->finish != RG_FINISH_NONE) continue;
        release_sample(s, smp);
        smp->finish = fin;
        /* text held back for a possible stop string is released with the finish */
        const char *text = smp->text ? smp->text + smp->emitted : "";
        size_t len = smp->text_len - smp->emitted;
        smp->emitted = smp->text_len;
        bool done = --left == 0;
        emit(r, i, -1, text, len, fin, done);
        if (done) return; /* the owner may have freed r */
    }
}

/* The newest running request goes back to the front of the queue, its blocks
 * released; it will be recomputed from its tokens. */
static void preempt(rg_scheduler *s, rg_request *r) {
    for (int32_t i = 0; i < r->n_live; i++)
        release_sample(s, &r->samples[i]);
    remove_running(s, r);
    r->next = s->wait_head;
    s->wait_head = r;
    if (!s->wait_tail) s->wait_tail = r;
    r->n_preempted++;
    s->st.n_preemptions++;
    pthread_mutex_lock(&s->mu);
    s->n_queued++;
    pthread_mutex_unlock(&s->mu);
}

rg_status rg_sched_submit(rg_scheduler *s, rg_request *r, rg_err *err) {
    int64_t max_prompt = s->n_ctx - 1, pool_tokens = (rg_kv_pool_config(s->kv)->n_blocks - 1) * s->block_size;
    if (pool_tokens < max_prompt) max_prompt = pool_tokens;
    if (r->n_prompt > max_prompt)
        return rg_fail(err, RG_E_INVALID, "the prompt has %lld tokens; at most %lld fit (context %lld, KV pool %lld)",
                       (long long)r->n_prompt, (long long)max_prompt, (long long)s->n_ctx, (long long)pool_tokens);
    if (r->n_samples > s->p.max_seqs)
        return rg_fail(err, RG_E_INVALID, "n = %d samples, the server runs at most %lld sequences", r->n_samples,
                       (long long)s->p.max_seqs);
    for (int64_t i = 0; i < r->n_prompt; i++)
        if (r->samples[0].tokens[i] < 0 || r->samples[0].tokens[i] >= s->n_vocab)
            return rg_fail(err, RG_E_INVALID, "prompt token %lld: id %d is not in the vocabulary", (long long)i,
                           r->samples[0].tokens[i]);
    for (int32_t i = 0; i < r->n_samples; i++) {
        if (r->samples[i].sampler) continue;
        rg_sampling_params sp = r->params.sampling;
        sp.seed += (uint64_t)i;
        rg_status st = rg_sampler_create(&sp, (int32_t)s->n_vocab, &r->samples[i].sampler, err);
        if (st) return st;
    }
    pthread_mutex_lock(&s->mu);
    rg_status st = RG_OK;
    if (s->n_queued >= s->p.max_waiting) {
        st = rg_fail(err, RG_E_NOMEM, "the queue is full (%lld requests waiting)", (long long)s->n_queued);
    } else {
        r->next = NULL;
        r->id = s->next_id++;
        if (s->in_tail)
            s->in_tail->next = r;
        else
            s->in_head = r;
        s->in_tail = r;
        s->n_queued++;
        pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

static void take_incoming(rg_scheduler *s) {
    pthread_mutex_lock(&s->mu);
    rg_request *head = s->in_head, *tail = s->in_tail;
    s->in_head = s->in_tail = NULL;
    pthread_mutex_unlock(&s->mu);
    if (!head) return;
    if (s->wait_tail)
        s->wait_tail->next = head;
    else
        s->wait_head = head;
    s->wait_tail = tail;
}

static void dequeued(rg_scheduler *s) {
    pthread_mutex_lock(&s->mu);
    s->n_queued--;
    pthread_mutex_unlock(&s->mu);
}

static void reap_cancelled(rg_scheduler *s) {
    for (rg_request **link = &s->wait_head, *prev = NULL; *link;) {
        rg_request *r = *link;
        if (!atomic_load(&r->cancel)) {
            prev = r, link = &r->next;
            continue;
        }
        *link = r->next;
        if (s->wait_tail == r) s->wait_tail = prev;
        dequeued(s);
        finish_request(s, r, RG_FINISH_CANCELLED);
    }
    for (int64_t i = s->n_running - 1; i >= 0; i--) {
        rg_request *r = s->running[i];
        if (!atomic_load(&r->cancel)) continue;
        remove_running(s, r);
        finish_request(s, r, RG_FINISH_CANCELLED);
    }
}

static int64_t running_slots(const rg_scheduler *s) {
    int64_t n = 0;
    for (int64_t i = 0; i < s->n_running; i++)
        n += n_unfinished(s->running[i]);
    return n;
}

static int64_t evictable(const rg_scheduler *s) { return s->cache ? rg_prefix_cache_n_evictable(s->cache) : 0; }

/* Admit the head of the queue if its samples fit: returns false to stop admitting. */
static bool admit_head(rg_scheduler *s) {
    rg_request *r = s->wait_head;
    if (!r || s->n_running >= s->p.max_seqs || running_slots(s) + n_unfinished(r) > s->p.max_seqs) return false;
    int64_t need = 0;
    for (int32_t i = 0; i < r->n_live; i++) {
        rg_sample *smp = &r->samples[i];
        if (smp->finish) continue;
        if (s->cache && smp->kv.n_blocks == 0) {
            int64_t hit = rg_prefix_cache_attach(s->cache, &smp->kv, smp->tokens, smp->n_tokens);
            /* all cached: recompute the last token for its logits (its block is copied on write) */
            if (hit == smp->n_tokens) smp->kv.n_tokens--;
            if (i == 0) r->n_cached = smp->kv.n_tokens;
        }
        need += blocks_needed(s, &smp->kv, smp->n_tokens);
    }
    /* keep 1% of the pool free for the running samples' next decode blocks, so a
     * new prompt does not get admitted only to be preempted at once (vLLM's
     * watermark); with nothing running the whole pool is the request's */
    int64_t n_free = rg_kv_pool_free_blocks(s->kv);
    int64_t watermark = s->n_running ? rg_kv_pool_config(s->kv)->n_blocks / 100 : 0;
    if (need + watermark > n_free + evictable(s)) {
        for (int32_t i = 0; i < r->n_live; i++)
            rg_kv_seq_truncate(s->kv, &r->samples[i].kv, 0);
        if (s->n_running > 0) return false;
        /* alone and still too big: only a resumed request that outgrew the pool */
        s->wait_head = r->next;
        if (!s->wait_head) s->wait_tail = NULL;
        dequeued(s);
        finish_request(s, r, RG_FINISH_LENGTH);
        return true;
    }
    if (need > n_free) rg_prefix_cache_evict(s->cache, need - n_free);
    if (s->cache) rg_prefix_cache_count_lookup(s->cache, r->samples[0].n_tokens, r->n_cached);
    s->wait_head = r->next;
    if (!s->wait_head) s->wait_tail = NULL;
    dequeued(s);
    /* running stays in arrival order: a resumed request keeps its place ahead of
     * later arrivals, so preemption always takes the newest */
    int64_t at = s->n_running;
    while (at > 0 && s->running[at - 1]->id > r->id)
        at--;
    memmove(s->running + at + 1, s->running + at, (size_t)(s->n_running - at) * sizeof *s->running);
    s->running[at] = r;
    s->n_running++;
    return true;
}

/* Reserve blocks for sample smp of r up to total tokens, evicting cache blocks
 * and then preempting newer requests. False when r itself had to go (preempted,
 * or finished because it cannot fit alone). */
static bool reserve_or_preempt(rg_scheduler *s, rg_request *r, rg_sample *smp, int64_t total) {
    for (;;) {
        if (rg_kv_seq_reserve(s->kv, &smp->kv, total, NULL) == RG_OK) return true;
        int64_t short_by = blocks_needed(s, &smp->kv, total) - rg_kv_pool_free_blocks(s->kv);
        if (s->cache && rg_prefix_cache_evict(s->cache, short_by) > 0) continue;
        rg_request *victim = s->running[s->n_running - 1];
        if (victim != r) {
            preempt(s, victim);
            continue;
        }
        if (s->n_running == 1) {
            remove_running(s, r);
            finish_request(s, r, RG_FINISH_LENGTH);
        } else {
            preempt(s, r);
        }
        return false;
    }
}

static void add_entry(rg_scheduler *s, rg_request *r, int32_t i, int64_t chunk) {
    rg_sample *smp = &r->samples[i];
    int64_t q = s->n_bseq++;
    s->b_kv[q] = &smp->kv;
    s->b_req[q] = r;
    s->b_sample[q] = i;
    s->b_chunk[q] = chunk;
    for (int64_t k = 0; k < chunk; k++) {
        int64_t p = smp->kv.n_tokens + k, t = s->n_tok++;
        s->b_tok[t] = smp->tokens[p];
        s->b_pos[t] = (int32_t)p;
        s->b_seq[t] = (int32_t)q;
        s->b_want[t] = p == smp->n_tokens - 1;
    }
}

/* Decode tokens first (every running sample one token), oldest first. */
static void schedule_decodes(rg_scheduler *s) {
    for (int64_t ri = 0; ri < s->n_running; ri++) {
        rg_request *r = s->running[ri];
        int64_t tok0 = s->n_tok, seq0 = s->n_bseq;
        for (int32_t i = 0; i < r->n_live; i++) {
            rg_sample *smp = &r->samples[i];
            if (smp->finish || smp->n_tokens - smp->kv.n_tokens != 1) continue;
            if (s->n_tok >= s->p.max_batch_tokens) return;
            if (!reserve_or_preempt(s, r, smp, smp->n_tokens)) {
                s->n_tok = tok0, s->n_bseq = seq0;
                ri--; /* r left `running`: the next request moved into its slot */
                break;
            }
            add_entry(s, r, i, 1);
        }
    }
}

/* Then prefill chunks within the remaining token budget, as far as blocks allow
 * (a prefill never preempts: it waits for decodes to finish). */
static void schedule_prefills(rg_scheduler *s) {
    for (int64_t ri = 0; ri < s->n_running; ri++) {
        rg_request *r = s->running[ri];
        for (int32_t i = 0; i < r->n_live; i++) {
            rg_sample *smp = &r->samples[i];
            int64_t rem = smp->n_tokens - smp->kv.n_tokens, budget = s->p.max_batch_tokens - s->n_tok;
            if (smp->finish || rem <= 1) continue;
            if (s->cache && smp->kv.n_tokens % s->block_size == 0) {
                /* blocks another request finished since admission (a shared prefix
                 * both started on) are taken instead of computed again */
                int64_t before = smp->kv.n_tokens;
                if (rg_prefix_cache_attach(s->cache, &smp->kv, smp->tokens, smp->n_tokens) > 0) {
                    if (smp->kv.n_tokens == smp->n_tokens) smp->kv.n_tokens--; /* its logits are needed */
                    rg_prefix_cache_count_lookup(s->cache, 0, smp->kv.n_tokens - before);
                    if (i == 0 && smp->n_generated == 0) r->n_cached += smp->kv.n_tokens - before;
                    rem = smp->n_tokens - smp->kv.n_tokens;
                }
            }
            if (budget <= 0) return;
            int64_t chunk = rem < budget ? rem : budget;
            int64_t short_by = blocks_needed(s, &smp->kv, smp->kv.n_tokens + chunk) - rg_kv_pool_free_blocks(s->kv);
            if (short_by > 0 && s->cache) rg_prefix_cache_evict(s->cache, short_by);
            if (rg_kv_seq_reserve(s->kv, &smp->kv, smp->kv.n_tokens + chunk, NULL)) {
                /* what fits: room left in the reserved blocks plus the free ones */
                int64_t fit = smp->kv.n_blocks * s->block_size - smp->kv.n_tokens +
                              (rg_kv_pool_free_blocks(s->kv) - 1) * s->block_size;
                if (fit <= 0) continue;
                chunk = chunk < fit ? chunk : fit;
                if (rg_kv_seq_reserve(s->kv, &smp->kv, smp->kv.n_tokens + chunk, NULL)) continue;
            }
            add_entry(s, r, i, chunk);
        }
    }
}

/* The first sample finished its prompt: the others start from it, sharing its
 * blocks (the last, partial one is copied when each first writes to it). */
static rg_status fork_samples(rg_scheduler *s, rg_request *r, rg_err *err) {
    rg_sample *s0 = &r->samples[0];
    for (int32_t i = 1; i < r->n_samples; i++) {
        rg_sample *smp = &r->samples[i];
        for (int64_t k = 0; k < s0->n_tokens; k++) {
            rg_status st = rg_sample_append(smp, s0->tokens[k], err);
            if (st) return st;
        }
        rg_status st = rg_kv_seq_fork(s->kv, &s0->kv, &smp->kv, err);
        if (st) return st;
    }
    r->n_live = r->n_samples;
    return RG_OK;
}

/* Every request in the batch samples greedily without penalties (all its samples:
 * a request whose prompt ends this step forks them all from one row), so each
 * row's argmax is all the sampling needs. */
static bool batch_is_greedy(const rg_scheduler *s) {
    for (int64_t q = 0; q < s->n_bseq; q++) {
        const rg_request *r = s->b_req[q];
        for (int32_t k = 0; k < r->n_samples; k++)
            if (!rg_sampler_is_greedy(r->samples[k].sampler)) return false;
    }
    return true;
}

/* Queue the draw of sample i's next token (see sample_task). The queue holds
 * max_seqs: admission keeps the running requests' unfinished samples within it
 * (running_slots), and each draws at most one token a step. */
static void add_task(rg_scheduler *s, rg_request *r, int32_t i, float *row, int32_t greedy_id) {
    if (s->n_tasks < s->cap_tasks) s->tasks[s->n_tasks++] = (sample_task){r, i, row, greedy_id};
}

/* Draw tasks ith, ith + nth, ... Samplers are per sample and rows are read-only
 * unless the sampler edits them (then it gets a copy in this thread's scratch
 * row: n > 1 samples share their prompt's row), so the draws are independent and
 * give the same tokens in any order and on any number of threads. */
typedef struct draw_job {
    rg_scheduler *s;
} draw_job;

static void draw_tasks(void *arg, int ith, int nth) {
    rg_scheduler *s = ((draw_job *)arg)->s;
    float *scratch = s->scratch + (size_t)(ith < s->scratch_rows ? ith : 0) * (size_t)s->n_vocab;
    for (int64_t k = ith; k < s->n_tasks; k += nth) {
        sample_task *t = &s->tasks[k];
        if (!t->row) continue; /* greedy: the id came from the device */
        rg_sample *smp = &t->r->samples[t->i];
        float *row = t->row;
        if (rg_sampler_edits_logits(smp->sampler)) {
            memcpy(scratch, row, (size_t)s->n_vocab * sizeof *row);
            row = scratch;
        }
        t->token = rg_sampler_sample(smp->sampler, row, smp->tokens, smp->n_tokens);
    }
}

/* Sample i of r takes its drawn token: append, stream, and finish it (and the
 * request with its last sample) on a stop condition. */
static void accept_token(rg_scheduler *s, rg_request *r, int32_t i, int32_t token) {
    rg_sample *smp = &r->samples[i];
    const char *delta;
    size_t len;
    rg_finish_reason fin = rg_sample_accept(smp, &r->params, s->tok, s->n_ctx, token, &delta, &len);
    s->st.tokens_generated++;
    bool done = false;
    if (fin) {
        release_sample(s, smp);
        if (n_unfinished(r) == 0) {
            remove_running(s, r);
            s->st.n_finished++;
            done = true;
        }
    }
    emit(r, i, token, delta, len, fin, done);
}

static void publish_stats(rg_scheduler *s) {
    s->st.n_running = s->n_running;
    s->st.kv_blocks_total = rg_kv_pool_config(s->kv)->n_blocks;
    s->st.kv_blocks_free = rg_kv_pool_free_blocks(s->kv);
    if (s->cache) {
        rg_prefix_stats ps = rg_prefix_cache_stats(s->cache);
        s->st.kv_blocks_cached = ps.n_cached_blocks;
        s->st.prefix_lookup_tokens = ps.lookup_tokens;
        s->st.prefix_hit_tokens = ps.hit_tokens;
        s->st.prefix_evicted_blocks = ps.n_evicted;
    }
    pthread_mutex_lock(&s->mu);
    s->st.n_waiting = s->n_queued; /* incoming ones too */
    s->published = s->st;
    pthread_mutex_unlock(&s->mu);
}

/* The predicted floor of the batch just built (0 without floor_shape). Called
 * before the forward pass: kv.n_tokens is still each sequence's context before
 * its chunk. */
static double step_floor(rg_scheduler *s) {
    if (!s->p.floor_shape || !s->p.floor_machine) return 0;
    rg_plan_step mix = {.n_tokens = s->n_tok};
    for (int64_t t = 0; t < s->n_tok; t++)
        mix.n_logits += s->b_want[t];
    for (int64_t q = 0; q < s->n_bseq; q++) {
        int64_t n0 = s->b_kv[q]->n_tokens, c = s->b_chunk[q];
        mix.attn_keys += c * n0 + c * (c + 1) / 2; /* token k of the chunk sees n0 + k keys */
        mix.kv_read_tokens += n0 + c;
    }
    rg_plan_step_cost cost;
    if (rg_plan_step_floor(s->p.floor_shape, s->p.floor_machine, rg_kv_pool_config(s->kv)->dtype, &mix, &cost, NULL))
        return 0;
    s->st.n_steps_compute_bound += cost.compute_s > cost.mem_s;
    return cost.floor_s;
}

rg_status rg_sched_step(rg_scheduler *s, bool *did_work, rg_err *err) {
    double t_start = now_s();
    *did_work = false;
    take_incoming(s);
    reap_cancelled(s);
    if (!s->p.static_batching || s->n_running == 0)
        while (admit_head(s)) {
        }
    s->n_tok = s->n_bseq = 0;
    schedule_decodes(s);
    schedule_prefills(s);
    if (s->n_tok == 0) {
        /* nothing could run for lack of blocks: make room by preempting the newest */
        if (s->n_running > 1) {
            preempt(s, s->running[s->n_running - 1]);
            *did_work = true;
        } else if (s->n_running == 1) {
            rg_request *r = s->running[0];
            remove_running(s, r);
            finish_request(s, r, RG_FINISH_LENGTH);
            *did_work = true;
        }
        publish_stats(s);
        return RG_OK;
    }
    *did_work = true;
    double floor_s = step_floor(s);
    /* a greedy step brings back one id per row instead of n_vocab floats (513 KB
     * a row at Llama 3's vocabulary) */
    bool greedy = !s->p.logits_on_host && batch_is_greedy(s);
    rg_batch b = {.n_tokens = s->n_tok, .token = s->b_tok, .pos = s->b_pos, .seq = s->b_seq, .want_logits = s->b_want,
                  .argmax_out = greedy ? s->greedy_ids : NULL};
    rg_status st = rg_forward(s->ctx, &b, s->b_kv, s->n_bseq, greedy ? NULL : s->logits, err);
    s->st.n_steps_greedy_ids += greedy;
    s->st.n_steps++;
    if (st) {
        /* nothing was computed: fail the requests of this batch, keep serving */
        for (int64_t q = 0; q < s->n_bseq; q++) {
            rg_request *r = s->b_req[q];
            if (!r) continue;
            for (int64_t k = q + 1; k < s->n_bseq; k++)
                if (s->b_req[k] == r) s->b_req[k] = NULL;
            snprintf(r->error, sizeof r->error, "%s", err && err->msg[0] ? err->msg : "forward pass failed");
            remove_running(s, r);
            finish_request(s, r, RG_FINISH_ERROR);
        }
        publish_stats(s);
        return st;
    }
    for (int64_t ri = 0; ri < s->n_running; ri++) {
        const rg_request *r = s->running[ri];
        for (int32_t i = 0; i < r->n_live; i++) {
            s->st.kv_slots_allocated += r->samples[i].kv.n_blocks * s->block_size;
            s->st.kv_slots_used += r->samples[i].kv.n_tokens;
        }
    }
    s->st.step_floor_seconds += floor_s;
    int64_t row = 0;
    s->n_tasks = 0;
    for (int64_t q = 0; q < s->n_bseq; q++) {
        rg_request *r = s->b_req[q];
        int32_t i = s->b_sample[q];
        rg_sample *smp = &r->samples[i];
        if (smp->n_generated == 0 && i == 0) s->st.prompt_tokens_computed += s->b_chunk[q];
        /* prompt blocks go to the cache as soon as they are full, so a request
         * sharing the prefix that arrives while this one is still prefilling
         * reuses them instead of computing them again */
        if (s->cache && s->b_chunk[q] > 1) rg_prefix_cache_insert(s->cache, &smp->kv, smp->tokens, smp->kv.n_tokens);
        if (smp->kv.n_tokens != smp->n_tokens) continue; /* mid-prompt chunk: no logits */
        float *logits = greedy ? NULL : s->logits + row * s->n_vocab;
        int32_t greedy_id = greedy ? s->greedy_ids[row] : -1;
        row++;
        if (r->n_live < r->n_samples) { /* the prompt is done: fork the samples */
            rg_err ferr = {0};
            if (fork_samples(s, r, &ferr)) {
                snprintf(r->error, sizeof r->error, "%s", ferr.msg);
                remove_running(s, r);
                finish_request(s, r, RG_FINISH_ERROR);
                continue;
            }
            for (int32_t k = 1; k < r->n_samples; k++) add_task(s, r, k, logits, greedy_id);
        }
        add_task(s, r, i, logits, greedy_id);
    }
    /* draw every sampled token of the step (on the context's CPU threads when
     * there are several rows: top-k over a 128k vocabulary is ~0.1 ms a row),
     * then accept them in batch order */
    rg_threadpool *pool = rg_ctx_cpu_pool(s->ctx);
    draw_job job = {s};
    if (!greedy && pool && s->n_tasks > 1) rg_threadpool_run(pool, draw_tasks, &job);
    else draw_tasks(&job, 0, 1);
    for (int64_t k = 0; k < s->n_tasks; k++) accept_token(s, s->tasks[k].r, s->tasks[k].i, s->tasks[k].token);
    s->st.step_seconds += now_s() - t_start;
    publish_stats(s);
    return RG_OK;
}

bool rg_sched_idle(rg_scheduler *s) {
    pthread_mutex_lock(&s->mu);
    bool idle = s->n_queued == 0 && s->n_running == 0;
    pthread_mutex_unlock(&s->mu);
    return idle;
}

void rg_sched_run(rg_scheduler *s) {
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->stop && s->n_queued == 0 && s->n_running == 0)
            pthread_cond_wait(&s->cv, &s->mu);
        bool stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        if (stop) return;
        bool did;
        rg_err err = {0};
        rg_sched_step(s, &did, &err); /* a failed step has already finished its requests with the error */
    }
}

void rg_sched_stop(rg_scheduler *s) {
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

rg_sched_stats rg_sched_get_stats(rg_scheduler *s) {
    pthread_mutex_lock(&s->mu);
    rg_sched_stats st = s->published;
    pthread_mutex_unlock(&s->mu);
    return st;
}

void rg_sched_clear_prefix_cache(rg_scheduler *s) {
    if (s->cache) rg_prefix_cache_clear(s->cache);
    publish_stats(s);
}

void rg_sched_free(rg_scheduler *s) {
    if (!s) return;
    take_incoming(s);
    while (s->wait_head) {
        rg_request *r = s->wait_head;
        s->wait_head = r->next;
        finish_request(s, r, RG_FINISH_CANCELLED);
    }
    while (s->n_running > 0) {
        rg_request *r = s->running[s->n_running - 1];
        s->n_running--;
        finish_request(s, r, RG_FINISH_CANCELLED);
    }
    rg_prefix_cache_free(s->cache);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->running);
    free(s->b_tok), free(s->b_pos), free(s->b_seq), free(s->b_want);
    free(s->b_kv), free(s->b_req), free(s->b_sample), free(s->b_chunk);
    rg_ctx_free_logits(s->ctx, s->logits);
    free(s->scratch), free(s->greedy_ids), free(s->tasks);
    free(s);
}
