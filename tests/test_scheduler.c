/* test_scheduler.c — continuous batching on a small random-weight model.
 *
 *  * mixed prompts and lengths, more requests than max_seqs, prefill chunked by a
 *    small token budget: every request's greedy tokens equal a solo rg_session run;
 *  * a pool too small for all requests at once: preemption happens, and the
 *    resumed requests still give the solo tokens; every block is free at the end;
 *  * requests that fit the pool alone but outgrow it together take turns and
 *    end with "length", never an error;
 *  * n > 1 samples share their prompt's full blocks and copy the partial last one
 *    on write; each sample equals a solo run with its own seed;
 *  * cancellation frees the blocks; stop strings and stop tokens;
 *  * KV waste accounting: a sequence holds exactly the blocks its written tokens
 *    need at every step (blocks grow as it decodes, none reserved ahead), whole
 *    prompt or chunked; the summed step floors are rg_plan_step_floor of each
 *    step's mix;
 *  * prefix cache: a repeated prompt hits (fully cached too) with identical
 *    output; a request sharing a prompt still being prefilled takes its blocks
 *    as they are cached; the cache evicts least recently used leaves first;
 *  * greedy steps that bring back argmax ids instead of logits rows give exactly
 *    the tokens of the logits path, all-greedy or mixed with sampled requests.
 * "Equal to the solo run" for greedy tokens: the scheduler's token must be the
 * solo argmax given the same history, except at a near-tie (gap below 1e-4 of the
 * logit scale), which batched summation order may flip; such ties are counted. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/scheduler.h"
#include "engine/session.h"
#include "kv/prefix_cache.h"
#include "model/synth.h"
#include "testutil.h"

static uint64_t rng;
static rg_model *model;

static int setup(void **state) {
    char path[512];
    snprintf(path, sizeof path, "%s/ridge-sched-%d.gguf", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    rg_synth_params p = {.type = RG_F32, .seed = rg_test_rand_u64(&rng)};
    p.shape = (rg_synth_shape){"t", 2, 128, 4, 2, 256, 300, 512, 10000};
    rg_err err = {0};
    if (rg_synth_write(&p, path, &err)) fail_msg("synth: %s", err.msg);
    if (rg_model_load(path, NULL, NULL, &model, &err)) fail_msg("load: %s", err.msg);
    unlink(path);
    return 0;
}

static int teardown(void **state) {
    rg_model_free(model);
    return 0;
}

static void random_tokens(int32_t *t, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        t[i] = (int32_t)(3 + rg_test_rand_u64(&rng) % (uint64_t)(model->hp.n_vocab - 3));
}

/* What the callback collected for one request. */
typedef struct collected {
    int32_t tokens[4][128];
    int32_t n[4];
    char text[4][1024];
    size_t text_len[4];
    rg_finish_reason finish[4];
    int n_done;
    int64_t n_cached;
    /* copy-on-write checks, made while the request runs */
    rg_request *req;
    rg_kv_pool *pool;
    int cow_checked;
} collected;

static void on_output(void *user, const rg_output *o) {
    collected *c = user;
    assert_true(o->index >= 0 && o->index < 4);
    if (o->token >= 0 && !o->finish)
        c->tokens[o->index][c->n[o->index]++] = o->token;
    else if (o->token >= 0 && o->finish == RG_FINISH_LENGTH)
        c->tokens[o->index][c->n[o->index]++] = o->token;
    assert_true(c->text_len[o->index] + o->text_len < sizeof c->text[0]);
    memcpy(c->text[o->index] + c->text_len[o->index], o->text, o->text_len);
    c->text_len[o->index] += o->text_len;
    if (o->finish) c->finish[o->index] = o->finish;
    c->n_cached = o->n_cached;
    if (o->done) c->n_done++;
    /* n > 1: at each sample's second token its first block is shared by all
     * samples (and the cache-free pool), while the partial block it writes to is
     * its own copy */
    if (c->req && c->req->n_samples > 1 && o->n_generated == 2 && !o->finish) {
        const rg_request *r = c->req;
        const rg_kv_seq *kv = &r->samples[o->index].kv;
        assert_true(kv->n_blocks >= 2);
        assert_int_equal(rg_kv_block_refcount(c->pool, kv->blocks[0]), r->n_samples);
        assert_int_equal(rg_kv_block_refcount(c->pool, kv->blocks[1]), 1);
        for (int32_t j = 0; j < r->n_samples; j++)
            if (j != o->index && r->samples[j].kv.n_blocks >= 2) {
                assert_int_equal(r->samples[j].kv.blocks[0], kv->blocks[0]);
                assert_int_not_equal(r->samples[j].kv.blocks[1], kv->blocks[1]);
            }
        c->cow_checked++;
    }
}

static rg_ctx *make_ctx(int64_t kv_blocks, int64_t n_seq) {
    rg_ctx_params cp = {
        .n_threads = 2, .n_ctx = 512, .n_seq_max = n_seq, .kv_blocks = kv_blocks, .max_batch_tokens = 64};
    rg_ctx *ctx;
    rg_err err = {0};
    if (rg_ctx_create(model, &cp, &ctx, &err)) fail_msg("ctx: %s", err.msg);
    return ctx;
}

/* Check got[0, n) against a solo session under `params` sampling: greedy tokens
 * must be the solo argmax (near-ties counted in *ties); sampled ones must equal a
 * solo sampler with the same seed. */
static void check_solo(const int32_t *prompt, int64_t n_prompt, const int32_t *got, int32_t n,
                       const rg_sampling_params *sp, int *ties) {
    rg_ctx *ctx = make_ctx(0, 1);
    rg_session s;
    rg_err err = {0};
    assert_int_equal(rg_session_init(&s, ctx, true, &err), RG_OK);
    rg_sampler *smp;
    assert_int_equal(rg_sampler_create(sp, (int32_t)model->hp.n_vocab, &smp, &err), RG_OK);
    if (rg_session_feed(&s, prompt, n_prompt, &err)) fail_msg("feed: %s", err.msg);
    for (int32_t i = 0; i < n; i++) {
        int32_t want = rg_sampler_sample(smp, s.logits, s.history, s.n_history);
        if (want != got[i]) {
            if (sp->temperature > 0) fail_msg("sampled token %d: got %d, solo run %d", i, got[i], want);
            float scale = fabsf(s.logits[want]) > 1 ? fabsf(s.logits[want]) : 1;
            if (!(s.logits[want] - s.logits[got[i]] <= 1e-4f * scale))
                fail_msg("token %d: got %d (logit %g), solo argmax %d (logit %g)", i, got[i], s.logits[got[i]], want,
                         s.logits[want]);
            (*ties)++;
        }
        if (rg_session_feed(&s, &got[i], 1, &err)) fail_msg("feed: %s", err.msg);
    }
    rg_sampler_free(smp);
    rg_session_free(&s);
    rg_ctx_free(ctx);
}

static rg_request_params greedy(int32_t max_tokens) {
    rg_request_params p = {.sampling = rg_sampling_default(), .max_tokens = max_tokens, .ignore_eos = true};
    p.sampling.temperature = 0;
    return p;
}

static void run_to_end(rg_scheduler *s) {
    rg_err err = {0};
    bool did = true;
    for (int guard = 0; !rg_sched_idle(s); guard++) {
        if (rg_sched_step(s, &did, &err)) fail_msg("step: %s", err.msg);
        assert_true(guard < 100000);
    }
}

/* n_req requests with random prompts and lengths through a scheduler on a pool of
 * kv_blocks; each output checked against its solo run. Returns the stats. */
static rg_sched_stats run_mix(int n_req, int64_t kv_blocks, const rg_sched_params *sp, int *ties) {
    rg_ctx *ctx = make_ctx(kv_blocks, 8);
    rg_scheduler *s;
    rg_err err = {0};
    assert_int_equal(rg_sched_create(ctx, sp, &s, &err), RG_OK);
    int32_t prompts[16][80];
    int64_t n_prompt[16];
    collected *c = calloc((size_t)n_req, sizeof *c);
    rg_request *req[16];
    for (int i = 0; i < n_req; i++) {
        n_prompt[i] = 1 + (int64_t)(rg_test_rand_u64(&rng) % 79);
        random_tokens(prompts[i], n_prompt[i]);
        rg_request_params p = greedy(8 + (int32_t)(rg_test_rand_u64(&rng) % 40));
        assert_int_equal(rg_request_create(prompts[i], n_prompt[i], &p, on_output, &c[i], &req[i], &err), RG_OK);
        if (rg_sched_submit(s, req[i], &err)) fail_msg("submit: %s", err.msg);
        if (i % 3 == 2) { /* some arrive while others run */
            bool did;
            assert_int_equal(rg_sched_step(s, &did, &err), RG_OK);
        }
    }
    run_to_end(s);
    rg_sched_stats st = rg_sched_get_stats(s);
    for (int i = 0; i < n_req; i++) {
        assert_int_equal(c[i].n_done, 1);
        assert_int_equal(c[i].finish[0], RG_FINISH_LENGTH);
        assert_int_equal(c[i].n[0], req[i]->params.max_tokens);
        check_solo(prompts[i], n_prompt[i], c[i].tokens[0], c[i].n[0], &req[i]->params.sampling, ties);
        rg_request_free(req[i]);
    }
    /* every block back in the pool (the prefix cache, if on, is cleared first) */
    rg_sched_clear_prefix_cache(s);
    assert_int_equal(rg_kv_pool_free_blocks(rg_ctx_kv(ctx)), rg_kv_pool_config(rg_ctx_kv(ctx))->n_blocks);
    rg_sched_free(s);
    rg_ctx_free(ctx);
    free(c);
    return st;
}

static void test_batching_and_chunking(void **state) {
    int ties = 0;
    rg_sched_params sp = {.max_seqs = 4, .max_batch_tokens = 24};
    rg_sched_stats st = run_mix(10, 0, &sp, &ties);
    printf("  batching: %lld steps, %lld tokens generated, %d near-ties\n", (long long)st.n_steps,
           (long long)st.tokens_generated, ties);
    assert_int_equal(st.n_preemptions, 0);
    assert_int_equal(st.n_finished, 10);
    assert_true(ties <= 2);
    /* the static-batching baseline computes the same tokens */
    sp.static_batching = true;
    st = run_mix(10, 0, &sp, &ties);
    printf("  static batching: %lld steps, %lld tokens generated\n", (long long)st.n_steps,
           (long long)st.tokens_generated);
    assert_int_equal(st.n_finished, 10);
    assert_true(ties <= 4);
}

static void test_preemption_resume(void **state) {
    int ties = 0;
    /* 10 blocks = 160 tokens for up to 6 requests of up to 79 + 47 tokens each */
    rg_sched_params sp = {.max_seqs = 6, .max_batch_tokens = 32};
    rg_sched_stats st = run_mix(10, 10, &sp, &ties);
    printf("  preemption: %lld preemptions over %lld steps, %d near-ties\n", (long long)st.n_preemptions,
           (long long)st.n_steps, ties);
    assert_true(st.n_preemptions > 0);
    assert_true(ties <= 2);
    /* the same with the prefix cache: resumed requests find their blocks again */
    sp.prefix_cache = true;
    st = run_mix(10, 10, &sp, &ties);
    printf("  preemption + prefix cache: %lld preemptions, %lld of %lld prompt tokens from the cache\n",
           (long long)st.n_preemptions, (long long)st.prefix_hit_tokens, (long long)st.prefix_lookup_tokens);
    assert_true(st.n_preemptions > 0);
}

/* Requests that each fit the pool alone but outgrow it: they take turns
 * (preemption), none fails, each ends with "length" when the whole pool is its
 * own and full, and the tokens before that are still the solo ones. */
static void test_outgrows_pool(void **state) {
    rg_ctx *ctx = make_ctx(6, 2); /* 96 token slots */
    rg_scheduler *s;
    rg_err err = {0};
    rg_sched_params sp = {.max_seqs = 2, .max_batch_tokens = 32};
    assert_int_equal(rg_sched_create(ctx, &sp, &s, &err), RG_OK);
    int32_t prompt[2][40];
    collected *c = calloc(2, sizeof *c);
    rg_request *r[2];
    for (int i = 0; i < 2; i++) {
        random_tokens(prompt[i], 40);
        rg_request_params p = greedy(100);
        assert_int_equal(rg_request_create(prompt[i], 40, &p, on_output, &c[i], &r[i], &err), RG_OK);
        assert_int_equal(rg_sched_submit(s, r[i], &err), RG_OK);
    }
    run_to_end(s);
    rg_sched_stats st = rg_sched_get_stats(s);
    assert_true(st.n_preemptions > 0);
    int ties = 0;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(c[i].n_done, 1);
        assert_int_equal(c[i].finish[0], RG_FINISH_LENGTH);
        /* the pool holds 96 positions: the last sampled token is never stored */
        assert_int_equal(c[i].n[0], 96 - 40 + 1);
        check_solo(prompt[i], 40, c[i].tokens[0], c[i].n[0], &r[i]->params.sampling, &ties);
        rg_request_free(r[i]);
    }
    assert_int_equal(rg_kv_pool_free_blocks(rg_ctx_kv(ctx)), 6);
    rg_sched_free(s);
    rg_ctx_free(ctx);
    free(c);
}

/* n = 3 samples of a 21-token prompt: block 0 shared, block 1 (partial) copied. */
static void test_parallel_samples_cow(void **state) {
    rg_ctx *ctx = make_ctx(0, 4);
    rg_scheduler *s;
    rg_err err = {0};
    rg_sched_params sp = {.max_seqs = 4};
    assert_int_equal(rg_sched_create(ctx, &sp, &s, &err), RG_OK);
    int32_t prompt[21];
    random_tokens(prompt, 21);
    rg_request_params p = greedy(10);
    p.n = 3;
    p.sampling = rg_sampling_default();
    p.sampling.seed = 1234;
    collected *c = calloc(1, sizeof *c);
    rg_request *r;
    assert_int_equal(rg_request_create(prompt, 21, &p, on_output, c, &r, &err), RG_OK);
    c->req = r, c->pool = rg_ctx_kv(ctx);
    assert_int_equal(rg_sched_submit(s, r, &err), RG_OK);
    run_to_end(s);
    assert_int_equal(c->n_done, 1);
    assert_int_equal(c->cow_checked, 3);
    int ties = 0;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(c->n[i], 10);
        rg_sampling_params own = p.sampling;
        own.seed += (uint64_t)i;
        check_solo(prompt, 21, c->tokens[i], c->n[i], &own, &ties);
    }
    assert_int_equal(rg_kv_pool_free_blocks(rg_ctx_kv(ctx)), rg_kv_pool_config(rg_ctx_kv(ctx))->n_blocks);
    rg_request_free(r);
    rg_sched_free(s);
    rg_ctx_free(ctx);
    free(c);
}

static void test_cancel_frees_blocks(void **state) {
    rg_ctx *ctx = make_ctx(0, 2);
    rg_scheduler *s;
    rg_err err = {0};
    rg_sched_params sp = {.max_seqs = 1};
    assert_int_equal(rg_sched_create(ctx, &sp, &s, &err), RG_OK);
    int32_t prompt[40];
    random_tokens(prompt, 40);
    rg_request_params p = greedy(400);
    collected c[2] = {0};
    rg_request *r[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(rg_request_create(prompt, 40, &p, on_output, &c[i], &r[i], &err), RG_OK);
        assert_int_equal(rg_sched_submit(s, r[i], &err), RG_OK);
    }
    bool did;
    for (int i = 0; i < 5; i++)
        assert_int_equal(rg_sched_step(s, &did, &err), RG_OK);
    int64_t total = rg_kv_pool_config(rg_ctx_kv(ctx))->n_blocks;
    assert_true(rg_kv_pool_free_blocks(rg_ctx_kv(ctx)) < total); /* r[0] runs, r[1] waits (max_seqs 1) */
    rg_request_cancel(r[0]);
    rg_request_cancel(r[1]);
    assert_int_equal(rg_sched_step(s, &did, &err), RG_OK);
    assert_int_equal(c[0].n_done, 1);
    assert_int_equal(c[1].n_done, 1);
    assert_int_equal(c[0].finish[0], RG_FINISH_CANCELLED);
    assert_int_equal(c[1].finish[0], RG_FINISH_CANCELLED);
    assert_true(c[0].n[0] >= 4);
    assert_int_equal(rg_kv_pool_free_blocks(rg_ctx_kv(ctx)), total);
    assert_true(rg_sched_idle(s));
    /* a queue of max_waiting refuses more; a prompt longer than the context is invalid */
    rg_request *big;
    int32_t *longp = calloc(600, sizeof *longp);
    for (int i = 0; i < 600; i++)
        longp[i] = 5;
    assert_int_equal(rg_request_create(longp, 600, &p, on_output, &c[0], &big, &err), RG_OK);
    assert_int_equal(rg_sched_submit(s, big, &err), RG_E_INVALID);
    rg_request_free(big);
    free(longp);
    for (int i = 0; i < 2; i++)
        rg_request_free(r[i]);
    rg_sched_free(s);
    rg_ctx_free(ctx);
}

/* Stop strings are cut from the text (even split across tokens), stop tokens end
 * the sample without text. Byte tokens of the synthetic vocabulary are 3 + byte. */
static void test_stop_strings(void **state) {
    const char *stops[] = {"STOP", "", "xyz"}; /* an empty stop string is ignored */
    rg_request_params p = greedy(100);
    p.stop = stops, p.n_stop = 3;
    p.stop_tokens = (const int32_t[]){200}, p.n_stop_tokens = 1;
    rg_request *r;
    rg_err err = {0};
    int32_t prompt[1] = {5};
    assert_int_equal(rg_request_create(prompt, 1, &p, NULL, NULL, &r, &err), RG_OK);
    rg_sample *smp = &r->samples[0];
    const char *text = "ab ST";
    const char *d;
    size_t n;
    char out[64] = {0};
    size_t out_len = 0;
    for (const char *c = text; *c; c++) {
        assert_int_equal(rg_sample_accept(smp, &r->params, model->tok, 512, 3 + (unsigned char)*c, &d, &n),
                         RG_FINISH_NONE);
        memcpy(out + out_len, d, n), out_len += n;
    }
    assert_string_equal(out, "ab "); /* "ST" is held back: it may begin "STOP" */
    assert_int_equal(rg_sample_accept(smp, &r->params, model->tok, 512, 3 + 'O', &d, &n), RG_FINISH_NONE);
    assert_int_equal(n, 0);
    assert_int_equal(rg_sample_accept(smp, &r->params, model->tok, 512, 3 + 'P', &d, &n), RG_FINISH_STOP);
    assert_int_equal(n, 0); /* the stop string itself is never sent */
    rg_request_free(r);
    /* a held-back prefix that does not complete is released */
    assert_int_equal(rg_request_create(prompt, 1, &p, NULL, NULL, &r, &err), RG_OK);
    smp = &r->samples[0];
    assert_int_equal(rg_sample_accept(smp, &r->params, model->tok, 512, 3 + 'x', &d, &n), RG_FINISH_NONE);
    assert_int_equal(n, 0);
    assert_int_equal(rg_sample_accept(smp, &r->params, model->tok, 512, 3 + 'q', &d, &n), RG_FINISH_NONE);
    assert_int_equal(n, 2);
    assert_memory_equal(d, "xq", 2);
    assert_int_equal(rg_sample_accept(smp, &r->params, model->tok, 512, 200, &d, &n), RG_FINISH_STOP);
    assert_int_equal(n, 0);
    rg_request_free(r);
    /* max_tokens */
    p.max_tokens = 2;
    assert_int_equal(rg_request_create(prompt, 1, &p, NULL, NULL, &r, &err), RG_OK);
    smp = &r->samples[0];
    assert_int_equal(rg_sample_accept(smp, &r->params, model->tok, 512, 3 + 'a', &d, &n), RG_FINISH_NONE);
    assert_int_equal(rg_sample_accept(smp, &r->params, model->tok, 512, 3 + 'b', &d, &n), RG_FINISH_LENGTH);
    rg_request_free(r);
}

/* Two requests with one prompt after another: the second finds the first's full
 * blocks and gives the same tokens; a prompt of whole blocks recomputes its last
 * token only. */
/* One request of a 20-token prompt and 14 generated tokens, prefilled in one
 * step or in chunks of 8: after each step the sequence holds ceil(n / 16) blocks
 * for its n written tokens, so the summed allocated and used slots follow from
 * the n of each step; and each step's floor is that of its (tokens, keys, K/V
 * read) mix. */
static void check_waste_and_floors(int64_t max_batch_tokens) {
    rg_ctx *ctx = make_ctx(64, 4);
    rg_plan_shape shape = {.n_layer = 2, .n_embd = 128, .n_head = 4, .n_head_kv = 2, .head_dim = 32,
                           .n_ff = 256, .n_vocab = 300, .stream_bytes = 3e5, .matmul_params = 2e5};
    rg_machine mach = {.peak_flops = 1e10, .mem_bw = 1e9};
    rg_sched_params sp = {.max_seqs = 4, .max_batch_tokens = max_batch_tokens, .floor_shape = &shape,
                          .floor_machine = &mach};
    rg_scheduler *s;
    rg_err err = {0};
    assert_int_equal(rg_sched_create(ctx, &sp, &s, &err), RG_OK);
    const int64_t P = 20, G = 14, bs = 16;
    int32_t prompt[20];
    random_tokens(prompt, P);
    collected c = {0};
    rg_request *r;
    rg_request_params rp = greedy((int32_t)G);
    assert_int_equal(rg_request_create(prompt, P, &rp, on_output, &c, &r, &err), RG_OK);
    assert_int_equal(rg_sched_submit(s, r, &err), RG_OK);
    run_to_end(s);
    rg_sched_stats st = rg_sched_get_stats(s);
    assert_int_equal(c.n[0], G);
    int64_t alloc = 0, used = 0, steps = 0;
    double floor_s = 0;
    rg_dtype kv_type = rg_kv_pool_config(rg_ctx_kv(ctx))->dtype;
    for (int64_t n0 = 0; n0 < P + G - 1; steps++) {
        int64_t chunk = n0 >= P ? 1 : (P - n0 < max_batch_tokens ? P - n0 : max_batch_tokens), n = n0 + chunk;
        alloc += (n + bs - 1) / bs * bs;
        used += n;
        rg_plan_step mix = {.n_tokens = chunk, .n_logits = n >= P, .attn_keys = chunk * n0 + chunk * (chunk + 1) / 2,
                            .kv_read_tokens = n};
        rg_plan_step_cost cost;
        assert_int_equal(rg_plan_step_floor(&shape, &mach, kv_type, &mix, &cost, &err), RG_OK);
        floor_s += cost.floor_s;
        n0 = n;
    }
    assert_int_equal(st.n_steps, steps);
    assert_int_equal(st.kv_slots_allocated, alloc);
    assert_int_equal(st.kv_slots_used, used);
    assert_true(alloc > used); /* the partial last block is the waste */
    assert_true(fabs(st.step_floor_seconds - floor_s) <= 1e-9 * floor_s);
    assert_true(st.step_seconds > 0);
    rg_request_free(r);
    rg_sched_free(s);
    rg_ctx_free(ctx);
}

static void test_kv_waste_and_floors(void **state) {
    check_waste_and_floors(256); /* the prompt in one step */
    check_waste_and_floors(8);   /* chunks of 8: 8, 16, 20 tokens written */
}

/* Six requests (one with n = 2 samples) through a fresh scheduler; `mixed`
 * makes request 4 sampled (temperature 0.8) and request 5 greedy with a
 * repetition penalty, so steps where either samples need the full rows. */
static rg_sched_stats run_greedy_set(bool logits_on_host, bool mixed, const int32_t (*prompts)[60],
                                     const int64_t *n_prompt, collected *c) {
    rg_ctx *ctx = make_ctx(0, 8);
    rg_scheduler *s;
    rg_err err = {0};
    rg_sched_params sp = {.max_seqs = 8, .max_batch_tokens = 32, .logits_on_host = logits_on_host};
    assert_int_equal(rg_sched_create(ctx, &sp, &s, &err), RG_OK);
    rg_request *req[6];
    for (int i = 0; i < 6; i++) {
        rg_request_params p = greedy(6 + 7 * i);
        if (i == 3) p.n = 2;
        if (mixed && i == 4) p.sampling.temperature = 0.8f, p.sampling.seed = 99;
        if (mixed && i == 5) p.sampling.repeat_penalty = 1.3f;
        assert_int_equal(rg_request_create(prompts[i], n_prompt[i], &p, on_output, &c[i], &req[i], &err), RG_OK);
        assert_int_equal(rg_sched_submit(s, req[i], &err), RG_OK);
        if (i % 2) {
            bool did;
            assert_int_equal(rg_sched_step(s, &did, &err), RG_OK);
        }
    }
    run_to_end(s);
    rg_sched_stats st = rg_sched_get_stats(s);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(c[i].n_done, 1);
        rg_request_free(req[i]);
    }
    rg_sched_free(s);
    rg_ctx_free(ctx);
    return st;
}

/* Greedy steps take ids from the forward pass (argmax_out) instead of logits
 * rows: the tokens must be exactly those of the logits path, all greedy or mixed
 * with requests that need the rows (then only the steps without them use ids). */
static void test_greedy_ids_match_logits(void **state) {
    int32_t prompts[6][60];
    int64_t n_prompt[6];
    for (int i = 0; i < 6; i++) {
        n_prompt[i] = 1 + (int64_t)(rg_test_rand_u64(&rng) % 59);
        random_tokens(prompts[i], n_prompt[i]);
    }
    for (int mixed = 0; mixed < 2; mixed++) {
        collected *ids = calloc(6, sizeof *ids), *rows = calloc(6, sizeof *rows);
        rg_sched_stats st_ids = run_greedy_set(false, mixed, prompts, n_prompt, ids);
        rg_sched_stats st_rows = run_greedy_set(true, mixed, prompts, n_prompt, rows);
        printf("  greedy ids (%s): %lld of %lld steps without logits rows\n", mixed ? "mixed" : "all greedy",
               (long long)st_ids.n_steps_greedy_ids, (long long)st_ids.n_steps);
        assert_int_equal(st_rows.n_steps_greedy_ids, 0);
        assert_true(st_ids.n_steps_greedy_ids > 0);
        if (mixed) assert_true(st_ids.n_steps_greedy_ids < st_ids.n_steps);
        else assert_int_equal(st_ids.n_steps_greedy_ids, st_ids.n_steps);
        for (int i = 0; i < 6; i++)
            for (int k = 0; k < (i == 3 ? 2 : 1); k++) {
                assert_int_equal(ids[i].n[k], rows[i].n[k]);
                assert_true(ids[i].n[k] > 0);
                assert_memory_equal(ids[i].tokens[k], rows[i].tokens[k], (size_t)ids[i].n[k] * sizeof(int32_t));
                assert_int_equal(ids[i].text_len[k], rows[i].text_len[k]);
            }
        free(ids), free(rows);
    }
}

static void test_prefix_cache_hit(void **state) {
    const int64_t lens[] = {40, 32};
    for (int li = 0; li < 2; li++) {
        rg_ctx *ctx = make_ctx(0, 2);
        rg_scheduler *s;
        rg_err err = {0};
        rg_sched_params sp = {.max_seqs = 2, .prefix_cache = true};
        assert_int_equal(rg_sched_create(ctx, &sp, &s, &err), RG_OK);
        int64_t n = lens[li];
        int32_t prompt[40];
        random_tokens(prompt, n);
        collected *c = calloc(2, sizeof *c);
        for (int k = 0; k < 2; k++) {
            rg_request_params p = greedy(12);
            rg_request *r;
            assert_int_equal(rg_request_create(prompt, n, &p, on_output, &c[k], &r, &err), RG_OK);
            assert_int_equal(rg_sched_submit(s, r, &err), RG_OK);
            run_to_end(s);
            assert_int_equal(c[k].n_done, 1);
            rg_request_free(r);
        }
        assert_int_equal(c[0].n_cached, 0);
        assert_int_equal(c[1].n_cached, n % 16 ? n / 16 * 16 : n - 1);
        assert_int_equal(c[0].n[0], 12);
        assert_memory_equal(c[0].tokens[0], c[1].tokens[0], 12 * sizeof(int32_t));
        rg_sched_stats st = rg_sched_get_stats(s);
        assert_int_equal(st.prefix_hit_tokens, c[1].n_cached);
        assert_int_equal(st.prefix_lookup_tokens, 2 * n);
        assert_true(st.kv_blocks_cached > 0);
        rg_sched_clear_prefix_cache(s);
        assert_int_equal(rg_kv_pool_free_blocks(rg_ctx_kv(ctx)), rg_kv_pool_config(rg_ctx_kv(ctx))->n_blocks);
        rg_sched_free(s);
        rg_ctx_free(ctx);
        free(c);
    }
}

/* Two requests with one 40-token prompt submitted together, prefill budget 16
 * tokens per step: the older computes the prompt, the newer takes its blocks as
 * they are cached (32 tokens) instead of computing them too. Same tokens. */
static void test_prefix_shared_while_prefilling(void **state) {
    rg_ctx *ctx = make_ctx(0, 2);
    rg_scheduler *s;
    rg_err err = {0};
    rg_sched_params sp = {.max_seqs = 2, .max_batch_tokens = 16, .prefix_cache = true};
    assert_int_equal(rg_sched_create(ctx, &sp, &s, &err), RG_OK);
    int32_t prompt[40];
    random_tokens(prompt, 40);
    collected *c = calloc(2, sizeof *c);
    rg_request *r[2];
    for (int k = 0; k < 2; k++) {
        rg_request_params p = greedy(6);
        assert_int_equal(rg_request_create(prompt, 40, &p, on_output, &c[k], &r[k], &err), RG_OK);
        assert_int_equal(rg_sched_submit(s, r[k], &err), RG_OK);
    }
    run_to_end(s);
    assert_int_equal(c[0].n_cached, 0);
    assert_int_equal(c[1].n_cached, 32);
    assert_int_equal(c[1].n[0], 6);
    assert_memory_equal(c[0].tokens[0], c[1].tokens[0], 6 * sizeof(int32_t));
    rg_sched_stats st = rg_sched_get_stats(s);
    assert_int_equal(st.prompt_tokens_computed, 40 + 8);
    for (int k = 0; k < 2; k++)
        rg_request_free(r[k]);
    rg_sched_clear_prefix_cache(s);
    assert_int_equal(rg_kv_pool_free_blocks(rg_ctx_kv(ctx)), rg_kv_pool_config(rg_ctx_kv(ctx))->n_blocks);
    rg_sched_free(s);
    rg_ctx_free(ctx);
    free(c);
}

/* Directly on a pool: LRU leaves go first; blocks held by a sequence never. */
static void test_prefix_cache_eviction_order(void **state) {
    rg_kv_config kc = {.n_layer = 1, .n_head_kv = 1, .head_dim = 4, .block_size = 4, .n_blocks = 16, .dtype = RG_F32};
    rg_kv_pool *pool;
    rg_err err = {0};
    assert_int_equal(rg_kv_pool_create(&kc, &pool, &err), RG_OK);
    rg_prefix_cache *c;
    assert_int_equal(rg_prefix_cache_create(pool, &c, &err), RG_OK);
    int32_t a[8] = {1, 2, 3, 4, 5, 6, 7, 8}, b[8] = {1, 2, 3, 4, 9, 9, 9, 9}, d[8] = {7, 7, 7, 7, 7, 7, 7, 7};
    const int32_t *prompts[3] = {a, b, d};
    for (int i = 0; i < 3; i++) { /* a, b share their first block */
        rg_kv_seq seq = {0};
        int64_t hit = rg_prefix_cache_attach(c, &seq, prompts[i], 8);
        assert_int_equal(hit, i == 1 ? 4 : 0);
        assert_int_equal(rg_kv_seq_reserve(pool, &seq, 8, &err), RG_OK);
        seq.n_tokens = 8;
        rg_prefix_cache_insert(c, &seq, prompts[i], 8);
        rg_kv_seq_free(pool, &seq);
    }
    assert_int_equal(rg_prefix_cache_stats(c).n_cached_blocks, 5);
    assert_int_equal(rg_kv_pool_free_blocks(pool), 11);
    /* use a again: now b's leaf, then d's blocks, are the least recently used */
    rg_kv_seq held = {0};
    assert_int_equal(rg_prefix_cache_attach(c, &held, a, 8), 8);
    assert_int_equal(rg_prefix_cache_evict(c, 1), 1);
    rg_kv_seq probe = {0};
    assert_int_equal(rg_prefix_cache_attach(c, &probe, b, 8), 4); /* b's second block went */
    rg_kv_seq_free(pool, &probe);
    assert_int_equal(rg_prefix_cache_attach(c, &probe, d, 8), 8);
    rg_kv_seq_free(pool, &probe);
    /* the probes touched b's first block (shared with a) and d: evicting all that
     * can go leaves exactly a's chain, held by `held` */
    assert_int_equal(rg_prefix_cache_evict(c, 100), 2);
    assert_int_equal(rg_prefix_cache_stats(c).n_cached_blocks, 2);
    assert_int_equal(rg_prefix_cache_attach(c, &probe, a, 8), 8);
    rg_kv_seq_free(pool, &probe);
    rg_kv_seq_free(pool, &held);
    assert_int_equal(rg_prefix_cache_evict(c, 100), 2);
    assert_int_equal(rg_kv_pool_free_blocks(pool), 16);
    rg_prefix_cache_free(c);
    rg_kv_pool_free(pool);
}

int main(void) {
    rng = rg_test_seed();
    const struct CMUnitTest tests[] = {
        // clang-format off
        cmocka_unit_test(test_batching_and_chunking),
        cmocka_unit_test(test_preemption_resume),
        cmocka_unit_test(test_outgrows_pool),
        cmocka_unit_test(test_parallel_samples_cow),
        cmocka_unit_test(test_cancel_frees_blocks),
        cmocka_unit_test(test_stop_strings),
        cmocka_unit_test(test_kv_waste_and_floors),
        cmocka_unit_test(test_prefix_cache_hit),
        cmocka_unit_test(test_prefix_shared_while_prefilling),
        cmocka_unit_test(test_prefix_cache_eviction_order),
        cmocka_unit_test(test_greedy_ids_match_logits),
        // clang-format on
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
