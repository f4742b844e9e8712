/* test_tokenizer.c — the tokenizers against llama.cpp's outputs, decoding, and hostile input.
 *
 * Vectors: tests/data/refdata/vocab/ggml-vocab-*.gguf.{inp,out} (llama.cpp's
 * llama_tokenize, no BOS, special tokens not parsed) and tests/data/smollm2*.tok.*
 * for the default model (see tests/data/README.txt). A missing file fails the
 * test; nothing is skipped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "formats/gguf.h"
#include "testutil.h"
#include "tok/tokenizer.h"

#define SMOLLM2 "../../models/SmolLM2-135M-Instruct.Q4_1.gguf"

static rg_tokenizer *load_path(const char *path) {
    rg_gguf *g;
    rg_tokenizer *t = NULL;
    rg_err err = {0};
    if (access(path, R_OK)) fail_msg("missing test file %s", path);
    if (rg_gguf_open(path, &g, &err)) fail_msg("%s: %s", path, err.msg);
    rg_status s = rg_tokenizer_load(g, &t, &err);
    rg_gguf_close(g);
    if (s) fail_msg("%s: %s", path, err.msg);
    return t;
}

static rg_tokenizer *load(const char *rel) { return load_path(rg_test_path(rel)); }

/* Tokenize into a malloc'd array (*n ids). */
static int32_t *tokenize(const rg_tokenizer *t, const char *text, size_t len, bool add_special, bool parse_special,
                         int64_t *n) {
    rg_err err = {0};
    int64_t cap = (int64_t)len * 3 + 16;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    assert_non_null(ids);
    *n = rg_tokenize(t, text, len, add_special, parse_special, ids, cap, &err);
    if (*n < 0) fail_msg("rg_tokenize: %s", err.msg);
    assert_true(*n <= cap);
    for (int64_t i = 0; i < *n; i++)
        assert_true(ids[i] >= 0 && ids[i] < rg_tokenizer_n_vocab(t));
    return ids;
}

static char *detokenize(const rg_tokenizer *t, const int32_t *ids, int64_t n, bool render_special, int64_t *len) {
    int64_t need = rg_detokenize(t, ids, n, render_special, NULL, 0);
    assert_true(need >= 0);
    char *out = malloc((size_t)need + 1);
    assert_non_null(out);
    *len = rg_detokenize(t, ids, n, render_special, out, (size_t)need + 1);
    assert_int_equal(*len, need);
    assert_int_equal(out[need], '\0');
    return out;
}

/* ---- vectors ---- */

typedef struct vector_set {
    const char *model, *vectors; /* paths relative to tests/data; vectors without .inp/.out */
    bool add_special, parse_special;
} vector_set;

static const vector_set SETS[] = {
    {"refdata/vocab/ggml-vocab-llama-spm.gguf", "refdata/vocab/ggml-vocab-llama-spm.gguf", false, false},
    {"refdata/vocab/ggml-vocab-phi-3.gguf", "refdata/vocab/ggml-vocab-phi-3.gguf", false, false},
    {"refdata/vocab/ggml-vocab-gpt-2.gguf", "refdata/vocab/ggml-vocab-gpt-2.gguf", false, false},
    {"refdata/vocab/ggml-vocab-falcon.gguf", "refdata/vocab/ggml-vocab-falcon.gguf", false, false},
    {"refdata/vocab/ggml-vocab-deepseek-coder.gguf", "refdata/vocab/ggml-vocab-deepseek-coder.gguf", false, false},
    {"refdata/vocab/ggml-vocab-mpt.gguf", "refdata/vocab/ggml-vocab-mpt.gguf", false, false},
    {SMOLLM2, "smollm2.tok", false, false},
    {SMOLLM2, "smollm2-special.tok", true, true},
};

/* Each input must give exactly the expected ids and decode back to itself. */
static void test_vectors(void **state) {
    const vector_set *vs = *state;
    char path[4096];
    size_t n_inp, n_out;
    snprintf(path, sizeof path, "%s.inp", rg_test_path(vs->vectors));
    char *inp = rg_test_read_file(path, &n_inp);
    if (!inp) fail_msg("missing vector file %s", path);
    snprintf(path, sizeof path, "%s.out", rg_test_path(vs->vectors));
    char *out = rg_test_read_file(path, &n_out);
    if (!out) fail_msg("missing vector file %s", path);
    rg_tokenizer *t = load(vs->model);

    static const char sep[] = "\n__ggml_vocab_test__\n";
    int n_pass = 0, n_total = 0;
    char *line = out;
    for (char *p = inp, *e; (e = memmem(p, n_inp - (size_t)(p - inp), sep, sizeof sep - 1)); p = e + sizeof sep - 1) {
        size_t len = (size_t)(e - p);
        char *nl = strchr(line, '\n');
        if (!nl) fail_msg("%s.out has fewer lines than inputs", vs->vectors);
        *nl = '\0';
        int32_t want[1024];
        int64_t n_want = 0;
        for (char *q = line, *end;; q = end) {
            long v = strtol(q, &end, 10);
            if (end == q) break;
            assert_true(n_want < 1024);
            want[n_want++] = (int32_t)v;
        }
        line = nl + 1;
        n_total++;

        int64_t n;
        int32_t *ids = tokenize(t, p, len, vs->add_special, vs->parse_special, &n);
        bool same = n == n_want && !memcmp(ids, want, (size_t)n * sizeof *ids);
        if (!same) {
            print_error("%s #%d '%.*s': want %lld ids, got %lld:", vs->vectors, n_total, (int)len, p, (long long)n_want,
                        (long long)n);
            for (int64_t i = 0; i < n; i++)
                print_error(" %d", ids[i]);
            print_error("\n");
        }
        /* Round trip: the pieces give back the text (the SentencePiece space prefix is
         * removed again by rg_detokenize); special tokens rendered when parsed. */
        int64_t dl;
        char *back = detokenize(t, ids, n, vs->parse_special, &dl);
        if (dl != (int64_t)len || memcmp(back, p, len)) {
            print_error("%s #%d: decodes to '%s', not '%.*s'\n", vs->vectors, n_total, back, (int)len, p);
            same = false;
        }
        n_pass += same;
        free(back);
        free(ids);
    }
    print_message("%s: %d/%d vectors pass\n", vs->vectors, n_pass, n_total);
    assert_true(n_total > 0);
    assert_int_equal(n_pass, n_total);
    rg_tokenizer_free(t);
    free(inp);
    free(out);
}

/* ---- special tokens and flags ---- */

static void test_smollm2_chatml(void **state) {
    (void)state;
    rg_tokenizer *t = load(SMOLLM2);
    assert_string_equal(rg_tokenizer_model(t), "gpt2");
    assert_string_equal(rg_tokenizer_pre(t), "smollm");
    assert_int_equal(rg_tokenizer_n_vocab(t), 49152);
    assert_false(rg_tokenizer_add_bos(t)); /* tokenizer.ggml.add_bos_token = false */
    assert_int_equal(rg_token_eos(t), 2);
    assert_int_equal(rg_token_eot(t), 2); /* <|im_end|> */
    assert_true(rg_token_is_eog(t, 2));
    assert_true(rg_token_is_eog(t, 0)); /* <|endoftext|> */
    assert_false(rg_token_is_eog(t, 1));
    assert_false(rg_token_is_eog(t, -1));
    assert_int_equal(rg_token_attr_of(t, 1), RG_TOKEN_CONTROL);
    assert_string_equal(rg_token_text(t, 1), "<|im_start|>");

    const char *chat = "<|im_start|>user\nHi<|im_end|>\n";
    int64_t n;
    int32_t *ids = tokenize(t, chat, strlen(chat), true, true, &n);
    assert_true(n >= 4);
    assert_int_equal(ids[0], 1);
    bool has_end = false;
    for (int64_t i = 0; i < n; i++)
        has_end |= ids[i] == 2;
    assert_true(has_end);
    /* rendered back only when asked */
    int64_t dl;
    char *text = detokenize(t, ids, n, true, &dl);
    assert_string_equal(text, chat);
    free(text);
    text = detokenize(t, ids, n, false, &dl);
    assert_string_equal(text, "user\nHi\n");
    free(text);
    free(ids);
    /* without parse_special the marker is plain text */
    ids = tokenize(t, chat, strlen(chat), true, false, &n);
    for (int64_t i = 0; i < n; i++)
        assert_true(ids[i] != 1 && ids[i] != 2);
    free(ids);
    rg_tokenizer_free(t);
}

static void test_spm_bos_and_prefix(void **state) {
    (void)state;
    rg_tokenizer *t = load("refdata/vocab/ggml-vocab-llama-spm.gguf");
    assert_true(rg_tokenizer_add_bos(t));
    assert_false(rg_tokenizer_add_eos(t));
    assert_int_equal(rg_token_bos(t), 1);
    assert_int_equal(rg_token_eos(t), 2);
    assert_true(rg_token_is_eog(t, 2));
    rg_err err = {0};
    int32_t ids[8];
    /* "Hello" -> <s> ▁Hello; the empty text with add_special is just <s> */
    assert_int_equal(rg_tokenize(t, "Hello", 5, true, false, ids, 8, &err), 2);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 15043);
    assert_int_equal(rg_tokenize(t, "", 0, true, false, ids, 8, &err), 1);
    assert_int_equal(rg_tokenize(t, "", 0, false, false, ids, 8, &err), 0);
    /* a fragment after a special token gets the space prefix again: <s> ▁Hello */
    assert_int_equal(rg_tokenize(t, "<s>Hello", 8, false, true, ids, 8, &err), 2);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 15043);
    /* a short buffer gets a prefix and the full count */
    ids[1] = -7;
    assert_int_equal(rg_tokenize(t, "Hello world", 11, true, false, ids, 1, &err), 3);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], -7);
    assert_int_equal(rg_tokenize(t, "Hello world", 11, true, false, NULL, 0, &err), 3);
    assert_int_equal(rg_tokenize(t, NULL, 3, true, false, ids, 8, &err), -1);
    assert_int_equal(err.status, RG_E_INVALID);
    /* pieces: ▁ is a space, byte tokens are bytes, control tokens only when asked */
    char buf[16];
    assert_int_equal(rg_token_to_piece(t, 15043, false, buf, sizeof buf), 6);
    assert_memory_equal(buf, " Hello", 6);
    assert_int_equal(rg_token_to_piece(t, 3 + 0x41, false, buf, sizeof buf), 1); /* <0x41> */
    assert_int_equal(buf[0], 'A');
    assert_int_equal(rg_token_to_piece(t, 1, false, buf, sizeof buf), 0);
    assert_int_equal(rg_token_to_piece(t, 1, true, buf, sizeof buf), 3);
    assert_memory_equal(buf, "<s>", 3);
    assert_int_equal(rg_token_to_piece(t, 15043, false, buf, 2), 6); /* truncated, full length */
    assert_int_equal(rg_token_to_piece(t, -1, false, buf, sizeof buf), -1);
    assert_int_equal(rg_token_to_piece(t, rg_tokenizer_n_vocab(t), false, buf, sizeof buf), -1);
    assert_int_equal(rg_token_attr_of(t, 3), RG_TOKEN_BYTE);
    assert_int_equal(rg_token_attr_of(t, 99999), RG_TOKEN_UNDEFINED);
    assert_null(rg_token_text(t, 99999));
    rg_tokenizer_free(t);
}

/* ---- streaming decode ---- */

/* Push ids one by one; every output must be whole UTF-8 characters. Returns the concatenation. */
static char *stream_all(const rg_tokenizer *t, const int32_t *ids, int64_t n, int *n_empty) {
    char *all = calloc(1, 1 << 16), out[256];
    size_t len = 0;
    rg_detok_stream s = {0};
    *n_empty = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t k = rg_detok_stream_push(t, &s, ids[i], out, sizeof out);
        assert_true(k >= 0 && k < (int64_t)sizeof out);
        assert_int_equal(out[k], '\0');
        /* no partial character ever comes out */
        for (int64_t j = 0; j < k;) {
            unsigned char c = (unsigned char)out[j];
            int cl = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
            assert_true(j + cl <= k);
            j += cl;
        }
        *n_empty += k == 0;
        memcpy(all + len, out, (size_t)k);
        len += (size_t)k;
    }
    int64_t k = rg_detok_stream_flush(&s, out, sizeof out);
    memcpy(all + len, out, (size_t)k);
    return all;
}

static void test_stream_split_characters(void **state) {
    (void)state;
    static const char *vocabs[] = {"refdata/vocab/ggml-vocab-llama-spm.gguf", "refdata/vocab/ggml-vocab-gpt-2.gguf"};
    for (int v = 0; v < 2; v++) {
        rg_tokenizer *t = load(vocabs[v]);
        const char *text = "a\xf0\x9f\xa6\x99 \xc3\xbc \xe4\xbd\xa0\xe5\xa5\xbd"; /* a🦙 ü 你好 */
        int64_t n;
        int32_t *ids = tokenize(t, text, strlen(text), false, false, &n);
        int n_empty;
        char *all = stream_all(t, ids, n, &n_empty);
        /* the llama emoji has no token in either vocabulary: it is split over byte
         * tokens, so some pushes must have held bytes back */
        assert_true(n_empty > 0);
        const char *want = v == 0 ? " a\xf0\x9f\xa6\x99 \xc3\xbc \xe4\xbd\xa0\xe5\xa5\xbd" : text;
        assert_string_equal(all, want);
        free(all);
        free(ids);
        rg_tokenizer_free(t);
    }
    /* held bytes that never complete flush as U+FFFD; an invalid byte comes out at once */
    rg_tokenizer *t = load("refdata/vocab/ggml-vocab-llama-spm.gguf");
    char out[16];
    rg_detok_stream s = {0};
    assert_int_equal(rg_detok_stream_push(t, &s, 3 + 0xf0, out, sizeof out), 0);
    assert_int_equal(rg_detok_stream_push(t, &s, 3 + 0x9f, out, sizeof out), 0);
    assert_int_equal(rg_detok_stream_flush(&s, out, sizeof out), 3);
    assert_string_equal(out, "\xef\xbf\xbd");
    assert_int_equal(rg_detok_stream_push(t, &s, 3 + 0xff, out, sizeof out), 3);
    assert_string_equal(out, "\xef\xbf\xbd");
    assert_int_equal(rg_detok_stream_push(t, &s, 3 + 0xe4, out, sizeof out), 0); /* 你 cut short by 'A' */
    assert_int_equal(rg_detok_stream_push(t, &s, 3 + 0x41, out, sizeof out), 4);
    assert_string_equal(out, "\xef\xbf\xbd"
                             "A");
    assert_int_equal(rg_detok_stream_push(t, &s, -3, out, sizeof out), -1);
    rg_tokenizer_free(t);
}

/* ---- malformed vocabularies ---- */

typedef struct tiny {
    const char *model, *pre;
    const char *const *tokens;
    int n_tokens;
    const char *const *merges;
    int n_merges;
    int64_t bos; /* < -1: key absent */
    bool types_f32;
} tiny;

/* Write a vocabulary-only GGUF and try to load it. */
static rg_status load_tiny(const tiny *v, rg_tokenizer **out, rg_err *err) {
    char path[] = "/tmp/ridge-tok-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    rg_gguf_writer *w = rg_gguf_writer_new();
    assert_non_null(w);
    if (v->model) assert_int_equal(rg_gguf_set_str(w, "tokenizer.ggml.model", v->model), RG_OK);
    if (v->pre) assert_int_equal(rg_gguf_set_str(w, "tokenizer.ggml.pre", v->pre), RG_OK);
    assert_int_equal(rg_gguf_set_arr_str(w, "tokenizer.ggml.tokens", v->tokens, (uint64_t)v->n_tokens), RG_OK);
    int32_t types[16];
    float scores[16];
    for (int i = 0; i < v->n_tokens; i++)
        types[i] = 1, scores[i] = -(float)i;
    if (v->types_f32)
        assert_int_equal(rg_gguf_set_arr(w, "tokenizer.ggml.token_type", RG_GGUF_F32, scores, (uint64_t)v->n_tokens),
                         RG_OK);
    else
        assert_int_equal(rg_gguf_set_arr(w, "tokenizer.ggml.token_type", RG_GGUF_I32, types, (uint64_t)v->n_tokens),
                         RG_OK);
    assert_int_equal(rg_gguf_set_arr(w, "tokenizer.ggml.scores", RG_GGUF_F32, scores, (uint64_t)v->n_tokens), RG_OK);
    if (v->merges)
        assert_int_equal(rg_gguf_set_arr_str(w, "tokenizer.ggml.merges", v->merges, (uint64_t)v->n_merges), RG_OK);
    if (v->bos >= -1) assert_int_equal(rg_gguf_set_i32(w, "tokenizer.ggml.bos_token_id", (int32_t)v->bos), RG_OK);
    rg_err werr = {0};
    if (rg_gguf_write(w, path, 0, &werr)) fail_msg("write %s: %s", path, werr.msg);
    rg_gguf_writer_free(w);
    rg_gguf *g;
    if (rg_gguf_open(path, &g, err)) fail_msg("reopen %s: %s", path, err->msg);
    rg_status s = rg_tokenizer_load(g, out, err);
    rg_gguf_close(g);
    unlink(path);
    return s;
}

static const char *const TINY_TOKENS[] = {"a", "b", "ab", "<s>", "\xc4\xa0"}; /* "Ġ" is the byte-level space */
static const char *const TINY_MERGES[] = {"a b"};
static const char *const BAD_MERGES[] = {"a b", "a c"};
static const char *const DUP_TOKENS[] = {"a", "b", "a"};

static void expect_error(const tiny *v, rg_status want, const char *needle) {
    rg_tokenizer *t = (rg_tokenizer *)1;
    rg_err err = {0};
    rg_status s = load_tiny(v, &t, &err);
    if (s != want) fail_msg("want status %s, got %s (%s)", rg_status_name(want), rg_status_name(s), err.msg);
    assert_null(t);
    if (!strstr(err.msg, needle)) fail_msg("message '%s' does not mention '%s'", err.msg, needle);
}

static void test_bad_vocabularies(void **state) {
    (void)state;
    /* a good one first: "ab" merges, " " is the byte-level Ġ */
    tiny ok = {"gpt2", "gpt-2", TINY_TOKENS, 5, TINY_MERGES, 1, -2, false};
    rg_tokenizer *t;
    rg_err err = {0};
    assert_int_equal(load_tiny(&ok, &t, &err), RG_OK);
    int32_t ids[8];
    assert_int_equal(rg_tokenize(t, "ab a", 4, true, false, ids, 8, &err), 3);
    assert_int_equal(ids[0], 2);
    assert_int_equal(ids[1], 4);
    assert_int_equal(ids[2], 0);
    assert_int_equal(rg_token_bos(t), -1);
    rg_tokenizer_free(t);

    tiny v = ok;
    v.pre = "no-such-pre";
    expect_error(&v, RG_E_UNSUPPORTED, "no-such-pre");
    v = ok, v.model = "wordpiece";
    expect_error(&v, RG_E_UNSUPPORTED, "wordpiece");
    v = ok, v.model = NULL;
    expect_error(&v, RG_E_FORMAT, "tokenizer.ggml.model");
    v = ok, v.merges = BAD_MERGES, v.n_merges = 2;
    expect_error(&v, RG_E_FORMAT, "a c");
    v = ok, v.merges = NULL;
    expect_error(&v, RG_E_FORMAT, "merges");
    v = ok, v.bos = 5;
    expect_error(&v, RG_E_FORMAT, "bos_token_id");
    v = ok, v.types_f32 = true;
    expect_error(&v, RG_E_FORMAT, "token_type");
    v = ok, v.tokens = DUP_TOKENS, v.n_tokens = 3, v.merges = NULL, v.model = "llama";
    expect_error(&v, RG_E_FORMAT, "duplicate");
    /* SentencePiece defaults to BOS id 1, which a 1-token vocabulary lacks while add_bos defaults to true */
    v = ok, v.model = "llama", v.n_tokens = 1, v.merges = NULL;
    expect_error(&v, RG_E_FORMAT, "BOS");
}

static void test_corpus_files(void **state) {
    (void)state;
    static const char *bad[] = {"bad-tok-bad-utf8-token", "bad-tok-bos-out-of-range", "bad-tok-model-unknown",
                                "bad-tok-pre-unknown",    "bad-tok-scores-short",     "bad-tok-tokens-not-strings"};
    char rel[256];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(rel, sizeof rel, "../corpus/gguf/%s.gguf", bad[i]);
        rg_gguf *g;
        rg_tokenizer *t = NULL;
        rg_err err = {0};
        if (rg_gguf_open(rg_test_path(rel), &g, &err)) fail_msg("%s: %s", rel, err.msg);
        rg_status s = rg_tokenizer_load(g, &t, &err);
        rg_gguf_close(g);
        if (!s) fail_msg("%s loaded", rel);
        assert_null(t);
        assert_true(err.msg[0] != '\0');
    }
    rg_tokenizer_free(load("../corpus/gguf/ok-vocab-only.gguf"));
    rg_tokenizer_free(load("../corpus/gguf/ok-tiny-llama.gguf"));
}

/* ---- hostile text ---- */

static void test_random_bytes(void **state) {
    (void)state;
    static const char *vocabs[] = {
        "refdata/vocab/ggml-vocab-llama-spm.gguf",      "refdata/vocab/ggml-vocab-phi-3.gguf",
        "refdata/vocab/ggml-vocab-gpt-2.gguf",          "refdata/vocab/ggml-vocab-falcon.gguf",
        "refdata/vocab/ggml-vocab-deepseek-coder.gguf", "refdata/vocab/ggml-vocab-mpt.gguf",
    };
    /* pieces that stress decoders: truncated, overlong, surrogate, out of range, stray continuation */
    static const char *nasty[] = {"\xff",
                                  "\xc3",
                                  "\xe2\x96",
                                  "\x80",
                                  "\xed\xa0\x80",
                                  "\xc0\xaf",
                                  "\xf4\x90\x80\x80",
                                  "\xf7\xbf\xbf\xbf",
                                  "\xf0\x9f\x98",
                                  "\x00",
                                  " ",
                                  "\n",
                                  "<s>",
                                  "<|endoftext|>",
                                  "a"};
    uint64_t rng = rg_test_seed();
    for (size_t v = 0; v < sizeof vocabs / sizeof *vocabs; v++) {
        rg_tokenizer *t = load(vocabs[v]);
        for (int iter = 0; iter < 300; iter++) {
            char text[256];
            size_t len = 0;
            while (len < 200) {
                if (rg_test_rand_u64(&rng) % 2) {
                    text[len++] = (char)(rg_test_rand_u64(&rng) & 0xff);
                } else {
                    const char *p = nasty[rg_test_rand_u64(&rng) % (sizeof nasty / sizeof *nasty)];
                    size_t pl = p[0] ? strlen(p) : 1;
                    memcpy(text + len, p, pl);
                    len += pl;
                }
            }
            bool add = iter & 1, parse = iter & 2;
            int64_t n;
            int32_t *ids = tokenize(t, text, len, add, parse, &n);
            int64_t dl;
            free(detokenize(t, ids, n, parse, &dl));
            int n_empty;
            free(stream_all(t, ids, n, &n_empty));
            free(ids);
        }
        rg_tokenizer_free(t);
    }
}

int main(void) {
    struct CMUnitTest tests[sizeof SETS / sizeof *SETS + 6];
    size_t n = 0;
    for (size_t i = 0; i < sizeof SETS / sizeof *SETS; i++) {
        tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(test_vectors, (void *)&SETS[i]);
        tests[n++].name = SETS[i].vectors;
    }
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_smollm2_chatml);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_spm_bos_and_prefix);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_stream_split_characters);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_bad_vocabularies);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_corpus_files);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_random_bytes);
    return _cmocka_run_group_tests("tokenizer", tests, n, NULL, NULL);
}
