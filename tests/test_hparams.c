/* test_hparams.c — hyper-parameters from GGUF metadata: the Llama-family
 * architectures, defaults for optional keys, RoPE layout and scaling, and the
 * inconsistent files that must be refused with the key named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "formats/gguf.h"
#include "model/hparams.h"

typedef void (*edit_fn)(rg_gguf_writer *w);

/* A minimal llama-style header (no tensors) plus edits; returns the read status. */
static rg_status read_with(const char *arch, edit_fn edit, rg_hparams *hp, rg_err *err) {
    rg_gguf_writer *w = rg_gguf_writer_new();
    char key[96];
    rg_gguf_set_str(w, "general.architecture", arch);
#define K(suffix) (snprintf(key, sizeof key, "%s." suffix, arch), key)
    rg_gguf_set_u32(w, K("block_count"), 4);
    rg_gguf_set_u32(w, K("embedding_length"), 512);
    rg_gguf_set_u32(w, K("feed_forward_length"), 1024);
    rg_gguf_set_u32(w, K("attention.head_count"), 8);
    rg_gguf_set_u32(w, K("attention.head_count_kv"), 2);
    rg_gguf_set_u32(w, K("vocab_size"), 1000);
#undef K
    if (edit) edit(w);
    char path[256];
    snprintf(path, sizeof path, "%s/ridge-hparams-%d.gguf", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    assert_int_equal(rg_gguf_write(w, path, 0, err), RG_OK);
    rg_gguf_writer_free(w);
    rg_gguf *g;
    assert_int_equal(rg_gguf_open(path, &g, err), RG_OK);
    rg_status s = rg_hparams_read(g, hp, err);
    rg_gguf_close(g);
    unlink(path);
    return s;
}

static void test_defaults(void **state) {
    rg_hparams hp;
    rg_err err = {0};
    assert_int_equal(read_with("llama", NULL, &hp, &err), RG_OK);
    assert_int_equal(hp.n_layer, 4);
    assert_int_equal(hp.head_dim, 64);
    assert_int_equal(hp.n_rot, 64);
    assert_int_equal(hp.n_ctx_train, 2048);
    assert_int_equal(hp.n_vocab, 1000);
    assert_int_equal(hp.rope_type, RG_ROPE_NORM);
    assert_int_equal(hp.rope_scaling, RG_ROPE_SCALING_NONE);
    assert_true(hp.rope_freq_base == 10000.0 && hp.rope_scale_factor == 1.0 && hp.rms_eps == 1e-5);
    assert_false(hp.has_qkv_bias);
    /* f16 KV: 2 * 4 layers * 2 heads * 64 * 2 bytes */
    assert_int_equal(rg_hparams_kv_bytes_per_token(&hp, RG_F16), 2048);
    /* q8_0 KV: 64 elements = 2 blocks of 34 bytes */
    assert_int_equal(rg_hparams_kv_bytes_per_token(&hp, RG_Q8_0), 2 * 4 * 2 * 68);
}

static void qwen_edits(rg_gguf_writer *w) { rg_gguf_set_f32(w, "qwen2.rope.freq_base", 1000000.0f); }

static void test_qwen2_neox_bias(void **state) {
    rg_hparams hp;
    rg_err err = {0};
    assert_int_equal(read_with("qwen2", qwen_edits, &hp, &err), RG_OK);
    assert_int_equal(hp.rope_type, RG_ROPE_NEOX);
    assert_true(hp.has_qkv_bias);
    assert_true(hp.rope_freq_base == 1000000.0);
}

static void linear_edits(rg_gguf_writer *w) {
    rg_gguf_set_str(w, "llama.rope.scaling.type", "linear");
    rg_gguf_set_f32(w, "llama.rope.scaling.factor", 4.0f);
    rg_gguf_set_u32(w, "llama.rope.dimension_count", 32);
}

static void test_linear_scaling_partial_rotary(void **state) {
    rg_hparams hp;
    rg_err err = {0};
    assert_int_equal(read_with("llama", linear_edits, &hp, &err), RG_OK);
    assert_int_equal(hp.rope_scaling, RG_ROPE_SCALING_LINEAR);
    assert_true(hp.rope_scale_factor == 4.0);
    assert_int_equal(hp.n_rot, 32);
}

static void bad_scaling(rg_gguf_writer *w) { rg_gguf_set_str(w, "llama.rope.scaling.type", "dynamic-ntk"); }
static void zero_factor(rg_gguf_writer *w) {
    rg_gguf_set_str(w, "llama.rope.scaling.type", "linear");
    rg_gguf_set_f32(w, "llama.rope.scaling.factor", 0.0f);
}
static void odd_rot(rg_gguf_writer *w) { rg_gguf_set_u32(w, "llama.rope.dimension_count", 33); }
static void gqa_indivisible(rg_gguf_writer *w) { rg_gguf_set_u32(w, "llama.attention.head_count_kv", 3); }

static void test_refused(void **state) {
    struct { const char *arch; edit_fn edit; rg_status want; const char *needle; } cases[] = {
        {"llama", bad_scaling, RG_E_UNSUPPORTED, "rope.scaling.type"},
        {"llama", zero_factor, RG_E_FORMAT, "rope.scaling.factor"},
        {"llama", odd_rot, RG_E_FORMAT, "rope.dimension_count"},
        {"llama", gqa_indivisible, RG_E_FORMAT, "head_count_kv"},
        {"gpt-j", NULL, RG_E_UNSUPPORTED, "gpt-j"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        rg_hparams hp;
        rg_err err = {0};
        rg_status s = read_with(cases[i].arch, cases[i].edit, &hp, &err);
        printf("  case %zu: %s\n", i, err.msg);
        assert_int_equal(s, cases[i].want);
        assert_non_null(strstr(err.msg, cases[i].needle));
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_qwen2_neox_bias),
        cmocka_unit_test(test_linear_scaling_partial_rotary),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
