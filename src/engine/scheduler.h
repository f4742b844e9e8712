/* scheduler.h — continuous batching: an iteration-level scheduler over a request
 * queue, feeding one rg_forward batch per step.
 *
 * Each step (Orca's iteration-level scheduling, vLLM's paged admission,
 * Sarathi-Serve's chunked prefill):
 *   1. requests submitted since the last step join the waiting queue; cancelled
 *      ones finish;
 *   2. waiting requests are admitted, oldest first, while the running samples
 *      stay within max_seqs and the KV pool (free blocks plus evictable prefix-
 *      cache blocks) holds their whole prompt; a prompt's cached full blocks are
 *      attached instead of recomputed (at admission, and again before each
 *      prefill chunk: prompt blocks are cached as soon as they are computed, so
 *      requests sharing a prefix that arrive together compute it once);
 *   3. the batch gets one decode token for every running sample, then prefill
 *      chunks of the others, oldest first, within max_batch_tokens;
 *   4. when a decode token finds no free block, LRU cache blocks go first, then
 *      the newest running request is preempted: its blocks are offered to the
 *      prefix cache and freed, and it goes back to the front of the queue to be
 *      recomputed later (its tokens, sampler state and text are kept, so under
 *      greedy sampling it continues exactly as if never interrupted);
 *   5. after the forward pass every sample that reached its last token samples
 *      the next one; finished samples release their blocks at once. When every
 *      such sample is greedy without penalties, the pass returns only each row's
 *      argmax id (computed on the device), not the n_vocab logits.
 * A request whose prompt cannot fit in the whole pool is refused at submission;
 * one that outgrows the pool while running alone finishes with "length".
 *
 * Threads: rg_sched_submit, rg_request_cancel and rg_sched_get_stats may be
 * called from any thread; everything else, and every output callback, runs on the
 * one thread that steps the scheduler. */
#ifndef RG_ENGINE_SCHEDULER_H
#define RG_ENGINE_SCHEDULER_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/request.h"
#include "model/forward.h"
#include "perf/plan.h"

typedef struct rg_sched_params {
    int64_t max_seqs;         /* running samples at once, 0 = 64 */
    int64_t max_batch_tokens; /* tokens per step (decode + prefill chunks), 0 = 256 */
    int64_t max_waiting;      /* queued requests beyond which submit refuses, 0 = 256 */
    bool prefix_cache;        /* keep full blocks after requests end and reuse them */
    bool static_batching;     /* baseline: admit only when nothing runs, so a batch
                                 lasts as long as its longest request */
    bool logits_on_host;      /* always bring every logits row to the host and sample
                                 there, even on steps where every sample is greedy
                                 (which otherwise get only argmax ids: rg_batch's
                                 argmax_out). Same tokens; the reference for tests. */
    /* Optional (both or neither): the model's shape and the machine's ceilings, to
     * add up each step's predicted floor (rg_plan_step_floor) next to its measured
     * time. Borrowed: they must outlive the scheduler. */
    const rg_plan_shape *floor_shape;
    const rg_machine *floor_machine;
} rg_sched_params;

typedef struct rg_sched_stats {
    int64_t n_running, n_waiting; /* requests */
    int64_t kv_blocks_total, kv_blocks_free, kv_blocks_cached;
    int64_t prefix_lookup_tokens, prefix_hit_tokens, prefix_evicted_blocks;
    int64_t n_preemptions, n_steps, n_finished;
    int64_t prompt_tokens_computed, tokens_generated;
    /* KV waste, summed over steps: token slots in the blocks running samples hold
     * vs positions written. 1 - used/allocated is the fraction allocated but unused
     * (each sample's partial last block; blocks shared by samples count once per
     * sample). */
    int64_t kv_slots_allocated, kv_slots_used;
    /* Time of the steps that ran a forward pass (batch building, the pass,
     * sampling), and the sum of their predicted floors when floor_shape is given;
     * floor / measured is the fraction of the roofline reached for the batch mix
     * the load produced. */
    double step_seconds, step_floor_seconds;
    int64_t n_steps_compute_bound; /* steps whose floor is the compute one */
    int64_t n_steps_greedy_ids;    /* steps whose tokens were argmax ids, no logits rows */
} rg_sched_stats;

typedef struct rg_scheduler rg_scheduler;

/* The scheduler runs on ctx (its KV pool and n_ctx) with the model's tokenizer.
 * Ownership: the caller's, freed with rg_sched_free (which finishes every request
 * still held with RG_FINISH_CANCELLED); ctx must outlive it. */
rg_status rg_sched_create(rg_ctx *ctx, const rg_sched_params *p, rg_scheduler **out, rg_err *err);
void rg_sched_free(rg_scheduler *s);

/* Queue a request. RG_E_INVALID when it can never run (prompt too long for n_ctx
 * or the pool, more samples than max_seqs, bad sampling parameters), RG_E_NOMEM
 * when the queue is full (max_waiting) — the caller's "try later". On success the
 * scheduler reports through r->on_output until an output with done. */
rg_status rg_sched_submit(rg_scheduler *s, rg_request *r, rg_err *err);

/* One iteration. *did_work is false when there was nothing to run. Errors of the
 * forward pass finish the requests of that batch with RG_FINISH_ERROR and are
 * returned. */
rg_status rg_sched_step(rg_scheduler *s, bool *did_work, rg_err *err);

/* True when no request is queued or running. */
bool rg_sched_idle(rg_scheduler *s);

/* Step until rg_sched_stop is called, sleeping while idle: the engine thread of
 * a server. */
void rg_sched_run(rg_scheduler *s);
void rg_sched_stop(rg_scheduler *s);

rg_sched_stats rg_sched_get_stats(rg_scheduler *s);

/* Drop every cached prefix block nobody else holds (engine thread). */
void rg_sched_clear_prefix_cache(rg_scheduler *s);

#endif
