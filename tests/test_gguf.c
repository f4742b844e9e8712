/* test_gguf.c — GGUF reader and writer.
 *
 * Writer -> reader round trips of every metadata value type and every tensor
 * type (the data of quantized tensors comes from rg_quantize_ref, so the
 * dequantized values must survive the trip bit for bit); the real refdata files;
 * and hostile inputs: every prefix of a valid file and random byte flips must be
 * rejected or parsed, never crash (ASan/UBSan builds run this too). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/quant.h"
#include "formats/gguf.h"
#include "testutil.h"

static uint64_t rng;

static char *tmp_path(const char *name) {
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/ridge-test-%d-%s", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid(), name);
    return buf;
}

static void test_metadata_round_trip(void **state) {
    rg_gguf_writer *w = rg_gguf_writer_new();
    assert_non_null(w);
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    int64_t i64 = -(INT64_C(1) << 40);
    double f64 = 3.141592653589793;
    assert_int_equal(rg_gguf_set_scalar(w, "t.u8", RG_GGUF_U8, &u8), RG_OK);
    assert_int_equal(rg_gguf_set_scalar(w, "t.i8", RG_GGUF_I8, &i8), RG_OK);
    assert_int_equal(rg_gguf_set_scalar(w, "t.u16", RG_GGUF_U16, &u16), RG_OK);
    assert_int_equal(rg_gguf_set_scalar(w, "t.i16", RG_GGUF_I16, &i16), RG_OK);
    assert_int_equal(rg_gguf_set_u32(w, "t.u32", 4000000000u), RG_OK);
    assert_int_equal(rg_gguf_set_i32(w, "t.i32", -2000000000), RG_OK);
    assert_int_equal(rg_gguf_set_f32(w, "t.f32", 0.25f), RG_OK);
    assert_int_equal(rg_gguf_set_bool(w, "t.bool", true), RG_OK);
    assert_int_equal(rg_gguf_set_str(w, "t.str", "héllo\nworld"), RG_OK);
    assert_int_equal(rg_gguf_set_u64(w, "t.u64", UINT64_C(1) << 63), RG_OK);
    assert_int_equal(rg_gguf_set_scalar(w, "t.i64", RG_GGUF_I64, &i64), RG_OK);
    assert_int_equal(rg_gguf_set_scalar(w, "t.f64", RG_GGUF_F64, &f64), RG_OK);
    assert_int_equal(rg_gguf_set_str(w, "t.replaced", "first"), RG_OK);
    assert_int_equal(rg_gguf_set_str(w, "t.replaced", "second"), RG_OK);
    float floats[5] = {1, -2, 3.5f, 0, 1e-30f};
    assert_int_equal(rg_gguf_set_arr(w, "t.arr_f32", RG_GGUF_F32, floats, 5), RG_OK);
    assert_int_equal(rg_gguf_set_arr(w, "t.arr_empty", RG_GGUF_I32, NULL, 0), RG_OK);
    const char *strs[] = {"a", "", "<|im_start|>", "\xe2\x96\x81word"};
    assert_int_equal(rg_gguf_set_arr_str(w, "t.arr_str", strs, 4), RG_OK);
    rg_err err = {0};
    const char *path = tmp_path("meta.gguf");
    assert_int_equal(rg_gguf_write(w, path, 0, &err), RG_OK);
    rg_gguf_writer_free(w);

    rg_gguf *g;
    assert_int_equal(rg_gguf_open(path, &g, &err), RG_OK);
    assert_int_equal(rg_gguf_version(g), 3);
    assert_int_equal(rg_gguf_kv_count(g), 16);
    int64_t v;
    assert_true(rg_gguf_find_i64(g, "t.u8", &v) && v == 200);
    assert_true(rg_gguf_find_i64(g, "t.i8", &v) && v == -100);
    assert_true(rg_gguf_find_i64(g, "t.u16", &v) && v == 60000);
    assert_true(rg_gguf_find_i64(g, "t.i16", &v) && v == -30000);
    assert_true(rg_gguf_find_i64(g, "t.u32", &v) && v == 4000000000);
    assert_true(rg_gguf_find_i64(g, "t.i32", &v) && v == -2000000000);
    assert_true(rg_gguf_find_i64(g, "t.i64", &v) && v == i64);
    assert_false(rg_gguf_find_i64(g, "t.u64", &v)); /* 2^63 does not fit int64 */
    uint32_t u32;
    assert_true(rg_gguf_get_u32(g, rg_gguf_find_key(g, "t.u32"), &u32) && u32 == 4000000000u);
    assert_false(rg_gguf_get_u32(g, rg_gguf_find_key(g, "t.i32"), &u32)); /* exact type only */
    double d;
    assert_true(rg_gguf_find_f64(g, "t.f32", &d) && d == 0.25);
    assert_true(rg_gguf_find_f64(g, "t.f64", &d) && d == f64);
    assert_false(rg_gguf_find_f64(g, "t.u8", &d));
    bool b;
    assert_true(rg_gguf_find_bool(g, "t.bool", &b) && b);
    rg_gguf_str s;
    assert_true(rg_gguf_find_str(g, "t.str", &s));
    assert_int_equal(s.len, strlen("héllo\nworld"));
    assert_memory_equal(s.ptr, "héllo\nworld", s.len);
    assert_true(rg_gguf_find_str(g, "t.replaced", &s) && s.len == 6 && !memcmp(s.ptr, "second", 6));
    assert_int_equal(rg_gguf_find_key(g, "t.missing"), -1);

    rg_gguf_type et;
    uint64_t n;
    int64_t ai = rg_gguf_find_key(g, "t.arr_f32");
    assert_true(rg_gguf_get_arr(g, ai, &et, &n) && et == RG_GGUF_F32 && n == 5);
    assert_memory_equal(rg_gguf_arr_data(g, ai), floats, sizeof floats);
    assert_true(rg_gguf_get_arr(g, rg_gguf_find_key(g, "t.arr_empty"), &et, &n) && n == 0 && et == RG_GGUF_I32);
    ai = rg_gguf_find_key(g, "t.arr_str");
    assert_true(rg_gguf_get_arr(g, ai, &et, &n) && et == RG_GGUF_STRING && n == 4);
    for (uint64_t j = 0; j < 4; j++) {
        assert_true(rg_gguf_arr_str(g, ai, j, &s));
        assert_int_equal(s.len, strlen(strs[j]));
        assert_memory_equal(s.ptr, strs[j], s.len);
    }
    assert_false(rg_gguf_arr_str(g, ai, 4, &s)); /* out of range */
    char buf[128];
    rg_gguf_format_value(g, ai, buf, sizeof buf);
    assert_non_null(strstr(buf, "[string x 4]"));
    rg_gguf_format_value(g, rg_gguf_find_key(g, "t.str"), buf, 8); /* tiny buffer: truncated, terminated */
    assert_true(strlen(buf) < 8);
    rg_gguf_close(g);
    unlink(path);
}

/* Every supported tensor type, random values quantized with the reference, at
 * several alignments: names, shapes, offsets and bytes survive; data is aligned. */
static void test_tensor_round_trip(void **state) {
    const rg_dtype types[] = {RG_F32, RG_F16, RG_BF16, RG_Q8_0, RG_Q4_0, RG_Q4_1, RG_Q5_0,
                              RG_Q5_1, RG_Q4_K, RG_Q5_K, RG_Q6_K, RG_Q8_K};
    const int n_types = sizeof types / sizeof *types;
    const uint32_t alignments[] = {0, 64, 4096};
    for (int a = 0; a < 3; a++) {
        rg_gguf_writer *w = rg_gguf_writer_new();
        rg_err err = {0};
        void *blobs[16];
        int64_t sizes[16];
        for (int i = 0; i < n_types; i++) {
            int64_t ne[2] = {512, 3 + i}; /* rows of 512: whole blocks for every type */
            int64_t n = ne[0] * ne[1];
            float *x = malloc((size_t)n * sizeof *x);
            for (int64_t k = 0; k < n; k++) x[k] = rg_test_rand_normal(&rng);
            sizes[i] = rg_dtype_row_bytes(types[i], ne[0]) * ne[1];
            blobs[i] = malloc((size_t)sizes[i]);
            assert_int_equal(rg_quantize_ref(types[i], x, blobs[i], n, &err), RG_OK);
            char name[64];
            snprintf(name, sizeof name, "blk.%d.%s.weight", i, rg_dtype_name(types[i]));
            assert_int_equal(rg_gguf_add_tensor(w, name, types[i], 2, ne, blobs[i], &err), RG_OK);
            free(x);
        }
        int64_t bad_ne[1] = {33};
        assert_int_not_equal(rg_gguf_add_tensor(w, "ragged", RG_Q4_0, 1, bad_ne, blobs[0], &err), RG_OK);
        int64_t ne1[1] = {512};
        assert_int_not_equal(rg_gguf_add_tensor(w, "blk.0.F32.weight", RG_F32, 1, ne1, blobs[0], &err), RG_OK);
        const char *path = tmp_path("tensors.gguf");
        assert_int_equal(rg_gguf_write(w, path, alignments[a], &err), RG_OK);
        rg_gguf_writer_free(w);

        rg_gguf *g;
        assert_int_equal(rg_gguf_open(path, &g, &err), RG_OK);
        uint64_t align = alignments[a] ? alignments[a] : 32;
        assert_int_equal(rg_gguf_alignment(g), align);
        assert_int_equal(rg_gguf_tensor_count(g), n_types);
        for (int i = 0; i < n_types; i++) {
            const rg_gguf_tensor *t = rg_gguf_tensor_at(g, i);
            assert_int_equal(t->type, types[i]);
            assert_int_equal(t->n_dims, 2);
            assert_int_equal(t->ne[0], 512);
            assert_int_equal(t->ne[1], 3 + i);
            assert_int_equal(t->ne[2], 1);
            assert_int_equal(t->n_elements, 512 * (3 + i));
            assert_int_equal(t->n_bytes, sizes[i]);
            assert_int_equal(((uintptr_t)t->data - (uintptr_t)rg_gguf_tensor_at(g, 0)->data) % align, 0);
            assert_memory_equal(t->data, blobs[i], (size_t)sizes[i]);
            assert_ptr_equal(rg_gguf_find_tensor(g, t->name), t);
            /* dequantizing what was read equals dequantizing what was written */
            float *a1 = malloc((size_t)t->n_elements * sizeof *a1), *a2 = malloc((size_t)t->n_elements * sizeof *a2);
            assert_int_equal(rg_dequantize_ref(t->type, t->data, a1, t->n_elements, &err), RG_OK);
            assert_int_equal(rg_dequantize_ref(types[i], blobs[i], a2, t->n_elements, &err), RG_OK);
            assert_memory_equal(a1, a2, (size_t)t->n_elements * sizeof *a1);
            free(a1), free(a2), free(blobs[i]);
        }
        assert_null(rg_gguf_find_tensor(g, "nope"));
        rg_gguf_close(g);
        unlink(path);
    }
}

/* The llama.cpp-written refdata files parse, with the documented shapes. */
static void test_refdata_models(void **state) {
    const struct { const char *file; int64_t n_tensors; rg_dtype attn_q; } cases[] = {
        {"refdata/models/ref-gqa-f32.gguf", 21, RG_F32},    {"refdata/models/ref-gqa-f16.gguf", 21, RG_F16},
        {"refdata/models/ref-gqa-q8_0.gguf", 21, RG_Q8_0},  {"refdata/models/ref-gqa-q4_0.gguf", 21, RG_Q4_0},
        {"refdata/models/ref-gqa-q4_1.gguf", 21, RG_Q4_1},  {"refdata/models/ref-gqa-q5_0.gguf", 21, RG_Q5_0},
        {"refdata/models/ref-gqa-q5_1.gguf", 21, RG_Q5_1},  {"refdata/models/ref-gqa-q4_k_m.gguf", 21, RG_Q4_K},
        {"refdata/models/ref-gqa-q5_k_m.gguf", 21, RG_Q5_K}, {"refdata/models/ref-gqa-q6_k.gguf", 21, RG_Q6_K},
        {"refdata/models/ref-mha-f16.gguf", 20, RG_F16},    {"refdata/models/ref-mqa-f16.gguf", 30, RG_F16},
        {"refdata/models/ref-mqa-q8_0.gguf", 30, RG_Q8_0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        rg_gguf *g;
        rg_err err = {0};
        const char *path = rg_test_path(cases[i].file);
        if (rg_gguf_open(path, &g, &err)) fail_msg("%s: %s", path, err.msg);
        assert_int_equal(rg_gguf_tensor_count(g), cases[i].n_tensors);
        const rg_gguf_tensor *q = rg_gguf_find_tensor(g, "blk.0.attn_q.weight");
        assert_non_null(q);
        assert_int_equal(q->type, cases[i].attn_q);
        assert_int_equal(q->ne[0], q->ne[1]); /* n_embd x n_embd */
        /* every tensor dequantizes (reads stay inside the mapping under ASan) */
        for (int64_t k = 0; k < rg_gguf_tensor_count(g); k++) {
            const rg_gguf_tensor *t = rg_gguf_tensor_at(g, k);
            float *x = malloc((size_t)t->n_elements * sizeof *x);
            assert_int_equal(rg_dequantize_ref(t->type, t->data, x, t->n_elements, &err), RG_OK);
            for (int64_t e = 0; e < t->n_elements; e++)
                if (!isfinite(x[e])) fail_msg("%s: %s[%lld] is not finite", path, t->name, (long long)e);
            free(x);
        }
        rg_gguf_close(g);
    }
}

/* Every prefix of a valid file is rejected (a GGUF file has no optional tail) and
 * random corruptions never crash. */
static void test_truncation_and_corruption(void **state) {
    size_t size;
    char *good = rg_test_read_file(rg_test_path("../corpus/gguf/ok-tiny-llama.gguf"), &size);
    assert_non_null(good);
    rg_err err = {0};
    rg_gguf *g;
    assert_int_equal(rg_gguf_open_memory(good, size, &g, &err), RG_OK);
    rg_gguf_close(g);
    for (size_t cut = 0; cut < size; cut += (cut < 2048 ? 1 : 97)) {
        char *prefix = malloc(cut ? cut : 1); /* exact-size copy so ASan sees any over-read */
        memcpy(prefix, good, cut);
        if (rg_gguf_open_memory(prefix, cut, &g, &err) == RG_OK) fail_msg("prefix of %zu bytes accepted", cut);
        free(prefix);
    }
    char *bad = malloc(size);
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(bad, good, size);
        int flips = 1 + (int)(rg_test_rand_u64(&rng) % 4);
        for (int f = 0; f < flips; f++) {
            size_t pos = rg_test_rand_u64(&rng) % 2048 % size; /* the header region, where parsing happens */
            bad[pos] = (char)rg_test_rand_u64(&rng);
        }
        if (rg_gguf_open_memory(bad, size, &g, &err) == RG_OK) rg_gguf_close(g);
        else assert_true(err.msg[0] != 0);
    }
    free(bad);
    free(good);
}

static void test_missing_file(void **state) {
    rg_gguf *g;
    rg_err err = {0};
    assert_int_equal(rg_gguf_open("/nonexistent/x.gguf", &g, &err), RG_E_IO);
    assert_null(g);
    assert_int_equal(rg_gguf_open("/", &g, &err), RG_E_IO);
}

int main(void) {
    rng = rg_test_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metadata_round_trip),
        cmocka_unit_test(test_tensor_round_trip),
        cmocka_unit_test(test_refdata_models),
        cmocka_unit_test(test_truncation_and_corruption),
        cmocka_unit_test(test_missing_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
