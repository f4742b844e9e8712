/* test_op_cost.c — the op formula table (perf/op_cost.h) against counts made by
 * hand, and against the forward pass:
 *
 *  * each op kind on synthetic shapes, bytes and FLOPs written out as the
 *    arithmetic a reader would do (Q4_0: 18 bytes per 32 weights; Q4_K: 144 per
 *    256; Q8_0: 34 per 32; f16 KV: 2 bytes per element);
 *  * flash vs naive attention: same FLOPs, naive reads K/V once per query head
 *    instead of once per KV head and moves 4 passes of its score rows;
 *  * the forward pass of a synthetic model, observed for one decode token: the
 *    matmul FLOPs sum to 2 x the matmul parameters and the weight bytes of
 *    matmuls + norms sum to what the planner says a decode step streams (an
 *    independent count from the shape, perf/plan.c). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/session.h"
#include "model/synth.h"
#include "perf/op_cost.h"
#include "perf/plan.h"
#include "perf/profile.h"

static void matmul_q4_0_4096(void **state) {
    (void)state;
    rg_op_event e = {.kind = RG_OP_MATMUL, .n_tok = 1, .wtype = RG_Q4_0, .k = 4096, .n_out = 4096};
    rg_op_cost c = rg_op_cost_of(&e);
    assert_true(c.bytes_weight == 4096.0 * 4096 / 32 * 18); /* 9,437,184 */
    assert_true(c.bytes_weight == 9437184.0);
    assert_true(c.flops == 2.0 * 4096 * 4096);
    assert_true(c.bytes_act == 4096.0 * 4 + 4096.0 * 4);
    assert_true(c.bytes_kv_read == 0 && c.bytes_kv_write == 0);
    assert_true(rg_op_cost_bytes(&c) == 9437184.0 + 32768.0);
    assert_int_equal(rg_op_compute_class(&e), RG_COMPUTE_INT8);
}

static void matmul_other_dtypes(void **state) {
    (void)state;
    /* Q4_K, 7 tokens, with a bias: 11008 rows of 4096/256 = 16 blocks of 144 bytes */
    rg_op_event e = {.kind = RG_OP_MATMUL, .n_tok = 7, .wtype = RG_Q4_K, .k = 4096, .n_out = 11008, .has_bias = 1};
    rg_op_cost c = rg_op_cost_of(&e);
    assert_true(c.bytes_weight == 11008.0 * 16 * 144 + 11008.0 * 4);
    assert_true(c.flops == 2.0 * 7 * 4096 * 11008 + 7.0 * 11008);
    assert_true(c.bytes_act == 7.0 * 4096 * 4 + 7.0 * 11008 * 4 + 2 * 7.0 * 11008 * 4);
    /* f16 and Q8_0: 2 bytes per weight, 34 bytes per 32 */
    e = (rg_op_event){.kind = RG_OP_MATMUL, .n_tok = 3, .wtype = RG_F16, .k = 576, .n_out = 1536};
    c = rg_op_cost_of(&e);
    assert_true(c.bytes_weight == 576.0 * 1536 * 2);
    assert_int_equal(rg_op_compute_class(&e), RG_COMPUTE_F32);
    e.wtype = RG_Q8_0;
    c = rg_op_cost_of(&e);
    assert_true(c.bytes_weight == 1536.0 * 18 * 34);
    assert_true(c.flops == 2.0 * 3 * 576 * 1536);
    /* Q4_1: 20 bytes per 32 */
    e.wtype = RG_Q4_1;
    assert_true(rg_op_cost_of(&e).bytes_weight == 1536.0 * 18 * 20);
    /* a row length the block does not divide counts no weight bytes (not garbage) */
    e.wtype = RG_Q4_K;
    assert_true(rg_op_cost_of(&e).bytes_weight == 0);
}

static void attention_flash_vs_naive(void **state) {
    (void)state;
    /* SmolLM2's attention: 9 query heads over 3 KV heads of 64, f16 KV; one
     * decode token at context 100 */
    rg_op_event e = {.kind = RG_OP_ATTENTION,
                     .n_tok = 1,
                     .n_head = 9,
                     .n_head_kv = 3,
                     .head_dim = 64,
                     .kv_type = RG_F16,
                     .ctx_sum = 100,
                     .ctx_max = 100,
                     .attn_kind = 0};
    rg_op_cost flash = rg_op_cost_of(&e);
    e.attn_kind = 1;
    rg_op_cost naive = rg_op_cost_of(&e);
    double flops = 100.0 * 9 * (4 * 64 + 5) + 9.0 * 64;
    assert_true(flash.flops == flops && naive.flops == flops);
    assert_true(flash.bytes_kv_read == 2.0 * 100 * 3 * 64 * 2); /* K and V, 100 positions, 3 heads, 128 B rows */
    assert_true(naive.bytes_kv_read == 2.0 * 100 * 9 * 64 * 2);
    assert_true(flash.bytes_act == 2.0 * 9 * 64 * 4);
    assert_true(naive.bytes_act == 2.0 * 9 * 64 * 4 + 4.0 * 100 * 9 * 4);
    assert_true(flash.bytes_weight == 0 && flash.bytes_kv_write == 0);
    /* prefill of 4 tokens at positions 0..3: ctx_sum = 1+2+3+4 */
    e = (rg_op_event){.kind = RG_OP_ATTENTION,
                      .n_tok = 4,
                      .n_head = 8,
                      .n_head_kv = 8,
                      .head_dim = 32,
                      .kv_type = RG_F32,
                      .ctx_sum = 10,
                      .ctx_max = 4};
    rg_op_cost p = rg_op_cost_of(&e);
    assert_true(p.bytes_kv_read == 2.0 * 10 * 8 * 32 * 4);
    assert_true(p.flops == 10.0 * 8 * (4 * 32 + 5) + 4.0 * 8 * 32);
}

static void elementwise_ops(void **state) {
    (void)state;
    rg_op_event e = {.kind = RG_OP_KV_STORE, .n_tok = 5, .n_head_kv = 3, .head_dim = 64, .kv_type = RG_F16};
    rg_op_cost c = rg_op_cost_of(&e);
    assert_true(c.bytes_kv_write == 2.0 * 5 * 3 * 64 * 2 && c.bytes_act == 2.0 * 5 * 3 * 64 * 4 && c.flops == 0);
    e = (rg_op_event){.kind = RG_OP_RMSNORM, .n_tok = 3, .n = 576};
    c = rg_op_cost_of(&e);
    assert_true(c.flops == 3.0 * 4 * 576 && c.bytes_act == 2.0 * 3 * 576 * 4 && c.bytes_weight == 576.0 * 4);
    e = (rg_op_event){.kind = RG_OP_ADD, .n_tok = 3, .n = 3 * 576};
    c = rg_op_cost_of(&e);
    assert_true(c.flops == 1728 && c.bytes_act == 3.0 * 1728 * 4);
    e = (rg_op_event){.kind = RG_OP_SWIGLU, .n_tok = 2, .n = 2 * 1536};
    c = rg_op_cost_of(&e);
    assert_true(c.flops == 5.0 * 3072 && c.bytes_act == 3.0 * 3072 * 4);
    e = (rg_op_event){.kind = RG_OP_ROPE, .n_tok = 2, .n_head = 12, .head_dim = 64};
    c = rg_op_cost_of(&e);
    assert_true(c.flops == 3.0 * 2 * 12 * 64 && c.bytes_act == 2.0 * 2 * 12 * 64 * 4);
    e = (rg_op_event){.kind = RG_OP_GET_ROWS, .n_tok = 2, .wtype = RG_Q8_0, .k = 576, .n_out = 49152};
    c = rg_op_cost_of(&e);
    assert_true(c.bytes_weight == 2.0 * 18 * 34 && c.bytes_act == 2.0 * 576 * 4 + 8 && c.flops == 0);
    /* an unknown kind costs nothing */
    e = (rg_op_event){.kind = RG_OP_COUNT, .n_tok = 1};
    c = rg_op_cost_of(&e);
    assert_true(c.flops == 0 && rg_op_cost_bytes(&c) == 0);
    assert_string_equal(rg_op_kind_name(RG_OP_ATTENTION), "attention");
    assert_string_equal(rg_op_kind_name(RG_OP_COUNT), "?");
}

/* ---- the forward pass of a synthetic model, observed */

typedef struct sums {
    double matmul_flops, matmul_weight, norm_weight;
    int64_t n_matmul, n_attention, n_events;
} sums;

static void observe(void *user, const rg_op_event *e) {
    sums *s = user;
    rg_op_cost c = rg_op_cost_of(e);
    s->n_events++;
    if (e->kind == RG_OP_MATMUL) s->matmul_flops += c.flops, s->matmul_weight += c.bytes_weight, s->n_matmul++;
    if (e->kind == RG_OP_RMSNORM) s->norm_weight += c.bytes_weight;
    if (e->kind == RG_OP_ATTENTION) s->n_attention++;
}

static void forward_matches_planner(void **state) {
    (void)state;
    char path[] = "/tmp/ridge_test_op_cost_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    rg_synth_params sp = {.type = RG_F16, .tied_output = true, .seed = 7};
    assert_true(rg_synth_shape_named("tiny", &sp.shape));
    rg_err err = {0};
    if (rg_synth_write(&sp, path, &err)) fail_msg("synth: %s", err.msg);
    rg_model *m;
    if (rg_model_load(path, NULL, NULL, &m, &err)) fail_msg("load: %s", err.msg);
    rg_ctx_params cp = {.n_threads = 1, .n_ctx = 32, .kv_type = RG_F16};
    rg_ctx *ctx;
    if (rg_ctx_create(m, &cp, &ctx, &err)) fail_msg("ctx: %s", err.msg);
    rg_session s;
    assert_int_equal(rg_session_init(&s, ctx, true, &err), RG_OK);
    int32_t prompt[5] = {300, 301, 302, 303, 304};
    assert_int_equal(rg_session_feed(&s, prompt, 5, &err), RG_OK);
    sums sum = {0};
    rg_ctx_set_op_observer(ctx, observe, &sum, false);
    int32_t next = 305;
    assert_int_equal(rg_session_feed(&s, &next, 1, &err), RG_OK);
    rg_ctx_set_op_observer(ctx, NULL, NULL, false);

    rg_plan_shape shape;
    assert_true(rg_plan_shape_named("tiny", RG_F16, &shape));
    /* tiny: 2 layers of 7 matrices, plus the (tied) output head */
    assert_int_equal(sum.n_matmul, 2 * 7 + 1);
    assert_int_equal(sum.n_attention, 2);
    assert_true(sum.matmul_flops == 2 * shape.matmul_params);
    /* what the step streams: every matrix, every norm vector, the output head */
    assert_true(sum.matmul_weight + sum.norm_weight == shape.stream_bytes);
    /* and the file agrees with the planner's count of the named shape */
    rg_plan_shape from_file;
    assert_int_equal(rg_plan_shape_from_file(path, &from_file, &err), RG_OK);
    assert_true(from_file.weight_bytes == shape.weight_bytes);
    assert_true(from_file.stream_bytes == shape.stream_bytes);
    assert_true(from_file.matmul_params == shape.matmul_params);
    assert_true(from_file.tied_output);

    /* the profile sums the same events per kind and per name */
    rg_profile prof;
    rg_profile_init(&prof, true);
    prof.phase = RG_PHASE_DECODE;
    rg_ctx_set_op_observer(ctx, rg_profile_observe, &prof, true);
    next = 306;
    assert_int_equal(rg_session_feed(&s, &next, 1, &err), RG_OK);
    rg_ctx_set_op_observer(ctx, NULL, NULL, false);
    assert_int_equal(prof.n_events, sum.n_events);
    assert_int_equal(prof.by_kind[RG_PHASE_DECODE][RG_OP_MATMUL].calls, 15);
    assert_true(prof.by_kind[RG_PHASE_DECODE][RG_OP_MATMUL].cost.flops == sum.matmul_flops);
    assert_int_equal(prof.by_kind[RG_PHASE_PREFILL][RG_OP_MATMUL].calls, 0);
    int64_t named = 0;
    for (int i = 0; i < prof.n_names[RG_PHASE_DECODE]; i++) {
        const rg_profile_stat *st = &prof.by_name[RG_PHASE_DECODE][i];
        if (!strcmp(st->key, "ffn_down")) assert_int_equal(st->calls, 2);
        if (!strcmp(st->key, "output")) assert_int_equal(st->calls, 1);
        named += st->calls;
    }
    assert_int_equal(named, sum.n_events);
    for (int64_t i = 0; i < prof.n_events; i++)
        assert_true(prof.events[i].t_end >= prof.events[i].t_start);
    rg_profile_free(&prof);

    rg_session_free(&s);
    rg_ctx_free(ctx);
    rg_model_free(m);
    unlink(path);
}

static void roof_evaluation(void **state) {
    (void)state;
    rg_roofs roofs = {.mem_gbs = 10, .peak_gops = {100, 200}};
    /* 1 GFLOP and 1 GB in 0.2 s: 5 GB/s at intensity 1, below the ridge (10): memory, 50% */
    rg_profile_stat s = {.calls = 1, .seconds = 0.2, .cost = {.flops = 1e9, .bytes_act = 1e9}};
    rg_roof_eval v = rg_profile_evaluate(&s, &roofs);
    assert_int_equal(v.bound, RG_BOUND_MEMORY);
    assert_true(fabs(v.efficiency - 0.5) < 1e-12 && fabs(v.intensity - 1) < 1e-12 && fabs(v.gbs - 5) < 1e-9);
    /* intensity 100 above the ridge: compute; 50 GFLOP/s of 100 */
    s.cost.flops = 1e11;
    s.seconds = 2;
    s.cost.bytes_act = 1e9;
    v = rg_profile_evaluate(&s, &roofs);
    assert_int_equal(v.bound, RG_BOUND_COMPUTE);
    assert_true(fabs(v.efficiency - 0.5) < 1e-12);
    /* the int8 class uses the int8 peak */
    s.cls = RG_COMPUTE_INT8;
    v = rg_profile_evaluate(&s, &roofs);
    assert_true(fabs(v.efficiency - 0.25) < 1e-12);
    assert_true(v.compute_roof);
    /* memory-bound faster than DRAM: measured against the outermost cache that covers it */
    rg_roofs cached = {
        .mem_gbs = 10, .peak_gops = {100, 200}, .n_cache = 2, .cache_level = {1, 2}, .cache_gbs = {100, 50}};
    rg_profile_stat m = {.calls = 1, .seconds = 0.1, .cost = {.flops = 1e8, .bytes_act = 3e9}}; /* 30 GB/s */
    v = rg_profile_evaluate(&m, &cached);
    assert_int_equal(v.bound, RG_BOUND_MEMORY);
    assert_int_equal(v.mem_level, 2);
    assert_false(v.compute_roof);
    assert_true(fabs(v.efficiency - 0.6) < 1e-12);
    m.seconds = 0.02; /* 150 GB/s: past L1 too */
    v = rg_profile_evaluate(&m, &cached);
    assert_int_equal(v.mem_level, 1);
    assert_true(fabs(v.efficiency - 1.5) < 1e-12);
    m.seconds = 0.5; /* 6 GB/s: DRAM */
    v = rg_profile_evaluate(&m, &cached);
    assert_int_equal(v.mem_level, 0);
    assert_string_equal(rg_mem_level_name(v.mem_level), "DRAM");
    /* far below both: overhead */
    s.seconds = 200;
    v = rg_profile_evaluate(&s, &roofs);
    assert_int_equal(v.bound, RG_BOUND_OVERHEAD);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(matmul_q4_0_4096),         cmocka_unit_test(matmul_other_dtypes),
        cmocka_unit_test(attention_flash_vs_naive), cmocka_unit_test(elementwise_ops),
        cmocka_unit_test(forward_matches_planner),  cmocka_unit_test(roof_evaluation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
