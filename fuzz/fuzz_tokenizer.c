/* fuzz_tokenizer.c — libFuzzer target for the tokenizers and detokenizer.
 *
 * The first input byte picks a vocabulary (SentencePiece and each byte-level BPE
 * pre-tokenizer in tests/data) and two flag bits; the rest is text, often
 * invalid UTF-8. Each run tokenizes, decodes the ids back (whole and streamed),
 * and for the byte-level vocabularies checks that valid UTF-8 text round-trips. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "tok/tok_internal.h"
#include "tok/tokenizer.h"

static const char *vocab_files[] = {
    "refdata/vocab/ggml-vocab-llama-spm.gguf", "refdata/vocab/ggml-vocab-phi-3.gguf",
    "refdata/vocab/ggml-vocab-gpt-2.gguf",     "refdata/vocab/ggml-vocab-falcon.gguf",
    "refdata/vocab/ggml-vocab-deepseek-coder.gguf", "refdata/vocab/ggml-vocab-mpt.gguf",
};
#define N_VOCABS (sizeof vocab_files / sizeof *vocab_files)
static rg_tokenizer *toks[N_VOCABS];
/* byte_ok[v][b]: vocabulary v has a token for byte b alone. Some vocabularies lack
 * tokens for a few control bytes, and then (as in llama.cpp) the byte is dropped,
 * so the round-trip check below only applies to text made of bytes they have. */
static bool byte_ok[N_VOCABS][256];

static void load_all(void) {
    for (size_t i = 0; i < N_VOCABS; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", RIDGE_TEST_DATA, vocab_files[i]);
        rg_gguf *g;
        rg_err err = {0};
        if (rg_gguf_open(path, &g, &err) || rg_tokenizer_load(g, &toks[i], &err)) {
            fprintf(stderr, "fuzz_tokenizer: %s: %s\n", path, err.msg);
            abort();
        }
        rg_gguf_close(g);
        /* the vocabulary's own byte-level token for each byte (tokenizing a lone byte
         * is no test: an invalid byte comes back as U+FFFD's tokens) */
        for (int b = 1; b < 256; b++) byte_ok[i][b] = toks[i]->bpe_byte_id[b] >= 0;
    }
}

static bool all_bytes_ok(size_t v, const char *text, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (!byte_ok[v][(unsigned char)text[i]]) return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!toks[0]) load_all();
    if (size < 1 || size > 4096) return 0;
    size_t v = data[0] % N_VOCABS;
    const rg_tokenizer *t = toks[v];
    bool add_special = data[0] & 0x40, parse_special = data[0] & 0x80;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;

    int64_t cap = (int64_t)len * 2 + 8;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    rg_err err = {0};
    int64_t n = rg_tokenize(t, text, len, add_special, parse_special, ids, cap, &err);
    if (n > cap) abort(); /* the tokenizers never emit more than ~1 token per byte */
    if (n >= 0) {
        size_t out_size = len * 4 + 64;
        char *out = malloc(out_size), piece[64];
        int64_t out_len = rg_detokenize(t, ids, n, parse_special, out, out_size);
        /* Byte-level BPE loses nothing: valid UTF-8 without special-token parsing
         * or BOS/EOS must come back byte for byte. (SentencePiece adds a leading
         * space and normalizes spaces, so it is exempt.) */
        if (!add_special && !parse_special && !strcmp(rg_tokenizer_model(t), "gpt2") && tok_utf8_valid(text, len) &&
            all_bytes_ok(v, text, len) &&
            (out_len != (int64_t)len || memcmp(out, text, len) != 0)) {
            fprintf(stderr, "fuzz_tokenizer: round trip changed the text (%zu bytes in, %lld out)\n", len,
                    (long long)out_len);
            abort();
        }
        rg_detok_stream st = {0};
        for (int64_t i = 0; i < n; i++) {
            if (rg_token_to_piece(t, ids[i], true, piece, sizeof piece) < 0) abort();
            rg_detok_stream_push(t, &st, ids[i], piece, sizeof piece);
        }
        rg_detok_stream_flush(&st, piece, sizeof piece);
        free(out);
    }
    free(ids);
    return 0;
}
