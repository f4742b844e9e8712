/* cmd_tokenize.c — `ridge tokenize`: text to token ids with a model's tokenizer.
 *
 * Default output is one "id<TAB>'piece'" line per token; --ids prints only the
 * ids on one line, space-separated, so scripts can compare tokenizations. By
 * default BOS/EOS are added as the model says and special-token texts are
 * parsed; --no-bos and --no-parse-special turn each off (the refdata vectors use
 * both). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "formats/gguf.h"
#include "tok/tokenizer.h"

#define MAX_INPUT_BYTES (INT64_C(1) << 30)

static void print_usage(FILE *f) {
    fprintf(f, "usage: ridge tokenize -m FILE [--no-bos] [--no-parse-special] [--ids] [-f INPUT_FILE | TEXT]\n");
}

static char *read_all(const char *path, size_t *len, rg_err *err) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) return rg_fail(err, RG_E_IO, "cannot open: %m"), NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        if ((int64_t)cap >= MAX_INPUT_BYTES) {
            free(buf);
            buf = NULL;
            rg_fail(err, RG_E_INVALID, "input larger than %lld bytes", (long long)MAX_INPUT_BYTES);
            break;
        }
        char *nb = realloc(buf, cap * 2);
        if (!nb) free(buf);
        buf = nb, cap *= 2;
    }
    if (!buf && !err->msg[0]) rg_fail(err, RG_E_NOMEM, "out of memory");
    if (f != stdin) fclose(f);
    *len = n;
    return buf;
}

/* Print a piece with control and non-printable bytes escaped. */
static void print_piece(const char *p, int64_t n) {
    putchar('\'');
    for (int64_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c == '\'' || c == '\\') printf("\\%c", c);
        else if (c < 0x20 || c == 0x7f) printf("\\x%02x", c);
        else putchar(c);
    }
    putchar('\'');
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *input_file = NULL, *text = NULL;
    bool add_special = true, parse_special = true, ids_only = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-m") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "-f") && i + 1 < argc) input_file = argv[++i];
        else if (!strcmp(argv[i], "--no-bos")) add_special = false;
        else if (!strcmp(argv[i], "--no-parse-special")) parse_special = false;
        else if (!strcmp(argv[i], "--ids")) ids_only = true;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return print_usage(stdout), 0;
        else if (argv[i][0] == '-' && argv[i][1]) return print_usage(stderr), RG_EXIT_USAGE;
        else if (text) return print_usage(stderr), RG_EXIT_USAGE;
        else text = argv[i];
    }
    if (!model || (!text == !input_file)) return print_usage(stderr), RG_EXIT_USAGE;

    rg_err err = {0};
    char *owned = NULL;
    size_t len;
    if (input_file) {
        owned = read_all(input_file, &len, &err);
        if (!owned) return cli_report(input_file, &err);
        text = owned;
    } else {
        len = strlen(text);
    }
    rg_gguf *g;
    if (rg_gguf_open(model, &g, &err)) return free(owned), cli_report(model, &err);
    rg_tokenizer *tok;
    rg_status s = rg_tokenizer_load(g, &tok, &err);
    rg_gguf_close(g);
    if (s) return free(owned), cli_report(model, &err);

    int64_t cap = (int64_t)len + 16;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    int64_t n = ids ? rg_tokenize(tok, text, len, add_special, parse_special, ids, cap, &err) : -1;
    if (n > cap) { /* cannot happen for these tokenizers (<= 1 token per byte + specials), but be exact */
        int32_t *more = realloc(ids, (size_t)n * sizeof *ids);
        n = more ? rg_tokenize(tok, text, len, add_special, parse_special, more, n, &err) : -1;
        ids = more;
    }
    int rc = 0;
    if (n < 0) {
        if (!ids) rg_fail(&err, RG_E_NOMEM, "out of memory");
        rc = cli_report(input_file ? input_file : "text", &err);
    } else if (ids_only) {
        for (int64_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        putchar('\n');
    } else {
        char piece[256];
        for (int64_t i = 0; i < n; i++) {
            int64_t pn = rg_token_to_piece(tok, ids[i], true, piece, sizeof piece);
            printf("%6d ", ids[i]);
            /* negative: no piece; larger than the buffer: print what fits */
            print_piece(piece, pn < 0 ? 0 : pn < (int64_t)sizeof piece ? pn : (int64_t)sizeof piece);
            putchar('\n');
        }
    }
    free(ids);
    free(owned);
    rg_tokenizer_free(tok);
    return rc;
}
