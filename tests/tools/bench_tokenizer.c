/* bench_tokenizer.c — load time and tokenizing speed of one vocabulary.
 *
 * usage: bench_tokenizer MODEL.gguf [TEXT_FILE] [REPEAT]
 * Times rg_gguf_open + rg_tokenizer_load, then tokenizes TEXT_FILE (default:
 * the GPL-3 text Debian ships) concatenated REPEAT times (default 30) in one
 * call (then again with special-token parsing), and decodes it back. Build (not part of the CMake targets):
 *   gcc -std=gnu11 -O2 -D_GNU_SOURCE -Isrc -Iinclude tests/tools/bench_tokenizer.c src/tok/[a-z]*.c \
 *       src/formats/gguf_read.c src/formats/gguf_write.c src/core/dtype.c src/core/error.c -lpcre2-8 -lm \
 *       -o /tmp/bench_tokenizer */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "formats/gguf.h"
#include "tok/tokenizer.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf [TEXT_FILE] [REPEAT]\n", argv[0]);
        return 2;
    }
    const char *text_path = argc > 2 ? argv[2] : "/usr/share/common-licenses/GPL-3";
    int repeat = argc > 3 ? atoi(argv[3]) : 30;
    FILE *f = fopen(text_path, "rb");
    if (!f) return perror(text_path), 1;
    fseek(f, 0, SEEK_END);
    size_t one = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc(one * (size_t)repeat + 1);
    if (!text || fread(text, 1, one, f) != one) return fprintf(stderr, "cannot read %s\n", text_path), 1;
    fclose(f);
    for (int r = 1; r < repeat; r++)
        memcpy(text + one * (size_t)r, text, one);
    size_t len = one * (size_t)repeat;

    rg_err err = {0};
    rg_gguf *g;
    rg_tokenizer *t;
    double t0 = now_s();
    if (rg_gguf_open(argv[1], &g, &err)) return fprintf(stderr, "%s: %s\n", argv[1], err.msg), 1;
    double t1 = now_s();
    if (rg_tokenizer_load(g, &t, &err)) return fprintf(stderr, "%s: %s\n", argv[1], err.msg), 1;
    double t2 = now_s();
    rg_gguf_close(g);

    int32_t *ids = malloc((len + 16) * sizeof *ids);
    double t3 = now_s();
    int64_t n = rg_tokenize(t, text, len, false, false, ids, (int64_t)len + 16, &err);
    double t4 = now_s();
    if (n < 0) return fprintf(stderr, "tokenize: %s\n", err.msg), 1;
    char *back = malloc(len + 1);
    int64_t bl = rg_detokenize(t, ids, n, false, back, len + 1);
    double t5 = now_s();
    int64_t n_sp = rg_tokenize(t, text, len, true, true, ids, (int64_t)len + 16, &err);
    double t6 = now_s();

    printf("vocabulary   %d tokens (%s%s%s)\n", rg_tokenizer_n_vocab(t), rg_tokenizer_model(t),
           rg_tokenizer_pre(t)[0] ? ", " : "", rg_tokenizer_pre(t));
    printf("gguf open    %.1f ms\n", 1e3 * (t1 - t0));
    printf("tokenizer    %.1f ms load\n", 1e3 * (t2 - t1));
    printf("tokenize     %zu bytes -> %lld tokens in %.1f ms: %.2f M tokens/s, %.1f MB/s\n", len, (long long)n,
           1e3 * (t4 - t3), (double)n / (t4 - t3) / 1e6, (double)len / (t4 - t3) / 1e6);
    printf("  + special  %lld tokens in %.1f ms with add_special and parse_special\n", (long long)n_sp,
           1e3 * (t6 - t5));
    printf("detokenize   %.1f ms, round trip %s\n", 1e3 * (t5 - t4),
           bl == (int64_t)len && !memcmp(back, text, len) ? "exact" : "DIFFERS");
    free(back);
    free(ids);
    free(text);
    rg_tokenizer_free(t);
    return 0;
}
