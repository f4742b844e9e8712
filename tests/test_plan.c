/* test_plan.c — the planner's formulas against numbers from the literature and
 * counts made by hand:
 *
 *  * Llama-2-7B, f16 KV: 2 x 32 layers x 32 heads x 128 x 2 B = 524,288 B/token;
 *  * Llama-2-70B (GQA, 8 KV heads) at 8K context, f16: 2 x 80 x 8 x 128 x 2 x 8192
 *    = 2,684,354,560 B = the "2.7 GB per request" usually quoted;
 *  * H100 SXM ridge point 989 TFLOP/s / 3.35 TB/s = 295.2 FLOP/byte;
 *  * speculative decoding alpha 0.8, gamma 4: (1 - 0.8^5) / 0.2 = 3.3616;
 *  * weight bytes of published shapes from their published parameter counts
 *    (Llama-2-7B 6,738,415,616; Llama-3-8B 8,030,261,248; the norms are kept in
 *    f32 here, 2 more bytes each);
 *  * decode floor, max sequences, compute-bound batch, TP bytes by hand;
 *  * a serving step's floor: one decode token is rg_plan_compute's decode floor,
 *    one whole prompt its prefill floor, and a mixed step adds the pieces by hand;
 *  * bad inputs are errors, not numbers;
 *  * machine presets, and the roofline JSON round trip and its rejections. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "perf/machine.h"
#include "perf/plan.h"
#include "perf/roofline.h"

static rg_plan_inputs inputs(int64_t ctx, int64_t batch) {
    return (rg_plan_inputs){
        .ctx = ctx, .batch = batch, .cache_type = RG_F16, .alpha = 0.8, .gamma = 4, .tp = 1, .act_bytes = 2};
}

static void kv_cache_sizes(void **state) {
    (void)state;
    rg_plan_shape s;
    assert_true(rg_plan_shape_named("llama2-7b", RG_F16, &s));
    assert_true(rg_plan_kv_bytes_per_token(&s, RG_F16) == 524288.0);
    assert_true(rg_plan_kv_bytes_per_token(&s, RG_F32) == 2 * 524288.0);
    /* Q8_0 cache: 34 bytes per 32 elements */
    assert_true(rg_plan_kv_bytes_per_token(&s, RG_Q8_0) == 2.0 * 32 * 32 * (128 / 32 * 34));
    assert_true(rg_plan_shape_named("llama2-70b", RG_F16, &s));
    rg_machine h100;
    assert_true(rg_machine_preset("h100", &h100));
    rg_plan p;
    rg_plan_inputs in = inputs(8192, 1);
    rg_err err = {0};
    assert_int_equal(rg_plan_compute(&s, &h100, &in, &p, &err), RG_OK);
    assert_true(p.kv_bytes_per_token == 327680.0);
    assert_true(p.kv_bytes_per_sequence == 2684354560.0);
    assert_true(fabs(p.kv_bytes_per_sequence / 1e9 - 2.7) < 0.05);
    /* 70B f16 weights (138 GB) do not fit one 80 GB H100: no sequence fits */
    assert_int_equal(p.max_sequences, 0);
    in.tp = 2; /* 160 GB: (160 - 137.96) GB / 2.684 GB = 8.2 */
    assert_int_equal(rg_plan_compute(&s, &h100, &in, &p, &err), RG_OK);
    assert_int_equal(p.max_sequences, (int64_t)floor((160e9 - p.weight_bytes) / 2684354560.0));
    assert_int_equal(p.max_sequences, 8);
    /* all-reduce: 2 per layer of 8192 bf16 activations = 2,621,440 B; ring over 2 sends 2 (2-1)/2 of it */
    assert_true(p.tp_allreduce_bytes_per_token == 2.0 * 80 * 8192 * 2);
    assert_true(p.tp_ring_bytes_per_gpu_per_token == p.tp_allreduce_bytes_per_token);
}

static void published_weights(void **state) {
    (void)state;
    rg_plan_shape s;
    assert_true(rg_plan_shape_named("llama2-7b", RG_F16, &s));
    double norms = (2.0 * 32 + 1) * 4096;
    assert_true(s.weight_bytes == 2 * 6738415616.0 + 2 * norms);
    assert_false(s.tied_output);
    assert_true(rg_plan_shape_named("llama3-8b", RG_F16, &s));
    norms = (2.0 * 32 + 1) * 4096;
    assert_true(s.weight_bytes == 2 * 8030261248.0 + 2 * norms);
    /* Llama-3.2-1B: 1,235,814,400 parameters with the tied embedding counted once */
    assert_true(rg_plan_shape_named("llama3.2-1b", RG_BF16, &s));
    assert_true(s.tied_output);
    norms = (2.0 * 16 + 1) * 2048;
    assert_true(s.weight_bytes == 2 * 1235814400.0 + 2 * norms);
    /* SmolLM2-135M: 134,515,008 parameters (tied) */
    assert_true(rg_plan_shape_named("smollm2-135m", RG_F16, &s));
    norms = (2.0 * 30 + 1) * 576;
    assert_true(s.weight_bytes == 2 * 134515008.0 + 2 * norms);
    /* Q4_0: 18 bytes per 32 weights */
    assert_true(rg_plan_shape_named("llama2-7b", RG_Q4_0, &s));
    norms = (2.0 * 32 + 1) * 4096;
    assert_true(s.weight_bytes == (6738415616.0 - norms) / 32 * 18 + 4 * norms);
    assert_false(rg_plan_shape_named("llama2-13b", RG_F16, &s));
    assert_false(rg_plan_shape_named("smollm2-135m", RG_Q4_K, &s)); /* 576 is no multiple of 256 */
}

static void floors_and_ridge(void **state) {
    (void)state;
    rg_machine h100;
    assert_true(rg_machine_preset("H100", &h100)); /* case-insensitive */
    assert_true(fabs(rg_machine_ridge_point(&h100) - 295.2) < 0.05);
    rg_plan_shape s;
    assert_true(rg_plan_shape_named("llama2-7b", RG_F16, &s));
    rg_plan p;
    rg_plan_inputs in = inputs(4096, 1);
    rg_err err = {0};
    assert_int_equal(rg_plan_compute(&s, &h100, &in, &p, &err), RG_OK);
    assert_true(fabs(p.ridge_point - 989.0 / 3.35) < 1e-9);
    /* decode: the step streams weights but the embedding table (13.22 GB) plus 2 GiB of KV */
    double bytes = s.weight_bytes - 32000.0 * 4096 * 2 + 524288.0 * 4096;
    assert_true(fabs(p.decode_bytes - bytes) < 1);
    assert_true(fabs(p.decode_floor_ms - bytes / 3.35e12 * 1e3) < 1e-9);
    assert_true(p.decode_mem_ms > p.decode_compute_ms);
    /* 80 GB - 13.48 GB of weights = 66.5 GB over 2.147 GB per 4K sequence: 30 */
    assert_int_equal(p.max_sequences, 30);
    /* ignoring KV, decode turns compute-bound at ridge x bytes per parameter / 2 = 295 for f16 */
    assert_true(fabs(p.compute_bound_batch_no_kv - 295.2) < 1.0);
    /* with a 4K MHA cache per sequence the KV bytes grow faster than the FLOPs: never */
    assert_true(p.compute_bound_batch < 0);
    /* prefill of 4096 tokens: at least 2 x 6.6e9 x 4096 FLOPs, compute-bound on an H100 */
    assert_true(p.prefill_flops > 2 * s.matmul_params * 4096 - 2.0 * 32000 * 4096 * 4096);
    assert_true(p.prefill_floor_ms == p.prefill_compute_ms && p.prefill_compute_ms > p.prefill_mem_ms);
    /* GQA-8 at short context does turn compute-bound: llama3-8b at ctx 128 (at 512
     * already 295 x 64 MiB of KV per sequence exceeds its 15 GFLOP per token) */
    assert_true(rg_plan_shape_named("llama3-8b", RG_F16, &s));
    in = inputs(512, 1);
    assert_int_equal(rg_plan_compute(&s, &h100, &in, &p, &err), RG_OK);
    assert_true(p.compute_bound_batch < 0);
    in = inputs(128, 1);
    assert_int_equal(rg_plan_compute(&s, &h100, &in, &p, &err), RG_OK);
    assert_true(p.compute_bound_batch > p.compute_bound_batch_no_kv);
    double f = 2 * p.matmul_params + 4.0 * 32 * 32 * 128 * 128, k = 131072.0 * 128;
    assert_true(fabs(p.compute_bound_batch - p.ridge_point * p.stream_bytes / (f - p.ridge_point * k)) < 1e-6);
    assert_true(p.tp_ring_bytes_per_gpu_per_token == 0); /* tp 1 */
}

static void speculative(void **state) {
    (void)state;
    assert_true(fabs(rg_plan_spec_expected_tokens(0.8, 4) - 3.3616) < 1e-9);
    assert_true(rg_plan_spec_expected_tokens(1.0, 4) == 5);
    assert_true(rg_plan_spec_expected_tokens(0.0, 4) == 1);
    assert_true(fabs(rg_plan_spec_expected_tokens(0.5, 1) - 1.5) < 1e-12);
}

static void step_floors(void **state) {
    (void)state;
    rg_machine h100;
    assert_true(rg_machine_preset("h100", &h100));
    rg_plan_shape s;
    assert_true(rg_plan_shape_named("llama3-8b", RG_BF16, &s));
    rg_plan p;
    rg_plan_step_cost c;
    rg_err err = {0};
    /* one decode token at position 299: 300 keys, 300 tokens of K/V read */
    rg_plan_inputs in = inputs(300, 1);
    assert_int_equal(rg_plan_compute(&s, &h100, &in, &p, &err), RG_OK);
    rg_plan_step one = {.n_tokens = 1, .n_logits = 1, .attn_keys = 300, .kv_read_tokens = 300};
    assert_int_equal(rg_plan_step_floor(&s, &h100, RG_F16, &one, &c, &err), RG_OK);
    assert_true(fabs(c.bytes - p.decode_bytes) < 1e-6 * p.decode_bytes);
    assert_true(fabs(c.flops - p.decode_flops) < 1e-9 * p.decode_flops);
    assert_true(fabs(c.floor_s * 1e3 - p.decode_floor_ms) < 1e-9 * p.decode_floor_ms);
    /* one whole 300-token prompt: token k sees k + 1 keys, logits for the last */
    rg_plan_step pre = {.n_tokens = 300, .n_logits = 1, .attn_keys = 300 * 301 / 2, .kv_read_tokens = 300};
    assert_int_equal(rg_plan_step_floor(&s, &h100, RG_F16, &pre, &c, &err), RG_OK);
    assert_true(fabs(c.flops - p.prefill_flops) < 1e-9 * p.prefill_flops);
    assert_true(fabs(c.floor_s * 1e3 - p.prefill_floor_ms) < 1e-9 * p.prefill_floor_ms);
    /* 32 decodes at context 1000 and a 64-token chunk after 128 cached tokens:
     * weights once, 32 x 1000 + 192 tokens of K/V, 96 tokens through the
     * matrices, 33 through the output head */
    int64_t keys = 32 * 1000 + 64 * 128 + 64 * 65 / 2;
    rg_plan_step mix = {.n_tokens = 96, .n_logits = 33, .attn_keys = keys, .kv_read_tokens = 32 * 1000 + 192};
    assert_int_equal(rg_plan_step_floor(&s, &h100, RG_F16, &mix, &c, &err), RG_OK);
    double kv_tok = 2.0 * 32 * 8 * 128 * 2, head = 2.0 * 128256 * 4096;
    assert_true(fabs(c.bytes - (s.stream_bytes + kv_tok * (32 * 1000 + 192))) < 1);
    double flops = 96 * (2 * s.matmul_params - head) + 33 * head + 4.0 * 32 * 32 * 128 * (double)mix.attn_keys;
    assert_true(fabs(c.flops - flops) < 1e-9 * flops);
    assert_true(c.floor_s == fmax(c.mem_s, c.compute_s) && c.mem_s == c.bytes / 3.35e12);
    /* bad counts, and a machine without ceilings */
    rg_plan_step bad = {.n_tokens = 1, .n_logits = 2};
    assert_int_equal(rg_plan_step_floor(&s, &h100, RG_F16, &bad, &c, &err), RG_E_INVALID);
    bad = (rg_plan_step){.n_tokens = 4, .attn_keys = -1};
    assert_int_equal(rg_plan_step_floor(&s, &h100, RG_F16, &bad, &c, &err), RG_E_INVALID);
    rg_machine none = {0};
    assert_int_equal(rg_plan_step_floor(&s, &none, RG_F16, &one, &c, &err), RG_E_INVALID);
}

static void bad_inputs(void **state) {
    (void)state;
    rg_plan_shape s;
    assert_true(rg_plan_shape_named("smollm2-135m", RG_F16, &s));
    rg_machine m;
    assert_true(rg_machine_preset("a100", &m));
    assert_false(rg_machine_preset("h800", &m));
    assert_true(rg_machine_preset("b200", &m) && m.peak_flops == 2250e12 && m.mem_bw == 8e12 &&
                m.capacity_bytes == 192e9);
    assert_true(rg_machine_preset("h200", &m) && m.peak_flops == 989e12 && m.mem_bw == 4.8e12 &&
                m.capacity_bytes == 141e9);
    rg_plan p;
    rg_err err = {0};
    rg_plan_inputs in = inputs(4096, 1);
    in.alpha = 1.5;
    assert_int_equal(rg_plan_compute(&s, &m, &in, &p, &err), RG_E_INVALID);
    in = inputs(0, 1);
    assert_int_equal(rg_plan_compute(&s, &m, &in, &p, &err), RG_E_INVALID);
    in = inputs(16, 1);
    in.cache_type = RG_Q4_K; /* head_dim 64: no whole 256-element block */
    assert_int_equal(rg_plan_compute(&s, &m, &in, &p, &err), RG_E_INVALID);
    assert_non_null(strstr(err.msg, "head_dim"));
    rg_machine none = {0};
    in = inputs(16, 1);
    assert_int_equal(rg_plan_compute(&s, &none, &in, &p, &err), RG_E_INVALID);
    rg_plan_shape f;
    assert_int_not_equal(rg_plan_shape_from_file("/nonexistent/model.gguf", &f, &err), RG_OK);
}

static rg_roofline sample_roofline(void) {
    rg_roofline r = {.n_threads = 4, .mem_bytes = 1LL << 34, .n_cache = 2, .quick = true};
    snprintf(r.cpu, sizeof r.cpu, "Test CPU \"quoted\"");
    snprintf(r.measured_at, sizeof r.measured_at, "2026-01-01T00:00:00Z");
    for (int k = 0; k < RG_STREAM_COUNT; k++)
        r.mem_gbs[k][0] = 10 + k, r.mem_gbs[k][1] = 20 + k;
    r.cache[0] = (rg_cache_level){.level = 1, .size_bytes = 32768, .shared_by = 1, .read_gbs = {150, 600}};
    r.cache[1] = (rg_cache_level){.level = 3, .size_bytes = 1 << 25, .shared_by = 4, .read_gbs = {40, 90}};
    r.f32_gflops[0] = 100, r.f32_gflops[1] = 400;
    r.int8_gops[0] = 190, r.int8_gops[1] = 760;
    snprintf(r.f32_isa, sizeof r.f32_isa, "avx2+fma");
    snprintf(r.int8_isa, sizeof r.int8_isa, "avx2");
    return r;
}

static void roofline_json_round_trip(void **state) {
    (void)state;
    rg_roofline r = sample_roofline(), back;
    char *text = rg_roofline_to_json(&r);
    assert_non_null(text);
    rg_err err = {0};
    assert_int_equal(rg_roofline_from_json(text, &back, &err), RG_OK);
    assert_string_equal(back.cpu, r.cpu);
    assert_string_equal(back.measured_at, r.measured_at);
    assert_int_equal(back.n_threads, 4);
    assert_true(back.mem_bytes == r.mem_bytes && back.quick);
    for (int k = 0; k < RG_STREAM_COUNT; k++)
        assert_true(back.mem_gbs[k][0] == r.mem_gbs[k][0] && back.mem_gbs[k][1] == r.mem_gbs[k][1]);
    assert_int_equal(back.n_cache, 2);
    assert_int_equal(back.cache[1].level, 3);
    assert_int_equal(back.cache[1].shared_by, 4);
    assert_true(back.cache[1].size_bytes == 1 << 25 && back.cache[1].read_gbs[1] == 90);
    assert_true(back.f32_gflops[1] == 400 && back.int8_gops[0] == 190);
    assert_string_equal(back.int8_isa, "avx2");
    assert_false(back.has_gpu);
    /* the machine built from it: all-threads columns */
    rg_machine m;
    rg_machine_from_roofline(&back, false, &m);
    assert_true(m.peak_flops == 400e9 && m.mem_bw == 20e9 && fabs(rg_machine_ridge_point(&m) - 20) < 1e-12);
    rg_machine_from_roofline(&back, true, &m);
    assert_true(m.peak_flops == 760e9);
    free(text);

    /* rejections name the problem */
    assert_int_equal(rg_roofline_from_json("{", &back, &err), RG_E_FORMAT);
    assert_int_equal(rg_roofline_from_json("{\"version\": 2, \"threads\": 1, \"mem_bytes\": 1}", &back, &err),
                     RG_E_FORMAT);
    assert_non_null(strstr(err.msg, "version"));
    r.f32_gflops[1] = 0;
    text = rg_roofline_to_json(&r);
    assert_int_equal(rg_roofline_from_json(text, &back, &err), RG_E_FORMAT);
    free(text);
    assert_int_equal(rg_roofline_from_json("{\"version\": 1, \"threads\": 1, \"mem_bytes\": 1, \"memory\": {}, "
                                           "\"caches\": []}",
                                           &back, &err),
                     RG_E_FORMAT);
    assert_non_null(strstr(err.msg, "read"));
}

static void roofline_save_load(void **state) {
    (void)state;
    char dir[] = "/tmp/ridge_test_plan_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/sub/dir/roofline.json", dir);
    rg_roofline r = sample_roofline(), back;
    rg_err err = {0};
    assert_int_equal(rg_roofline_save(&r, path, &err), RG_OK);
    assert_int_equal(rg_roofline_load(path, &back, &err), RG_OK);
    assert_true(back.f32_gflops[0] == 100);
    remove(path);
    assert_int_equal(rg_roofline_load(path, &back, &err), RG_E_IO);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kv_cache_sizes),     cmocka_unit_test(published_weights),
        cmocka_unit_test(floors_and_ridge),   cmocka_unit_test(speculative),
        cmocka_unit_test(step_floors),        cmocka_unit_test(bad_inputs),
        cmocka_unit_test(roofline_json_round_trip),
        cmocka_unit_test(roofline_save_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
