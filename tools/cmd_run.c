/* cmd_run.c — `ridge run`: generate text from a prompt, streaming it as it comes.
 *
 * The prompt is tokenized with the model's BOS rule and special tokens parsed,
 * fed as one prefill, then tokens are sampled one by one until -n tokens or an
 * end-of-generation token. Timings go to stderr so stdout is only the text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "gen_opts.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Tokenize text into a malloc'd array; returns count or -1 (message printed). */
int64_t cli_tokenize(const rg_tokenizer *tok, const char *text, bool add_special, int32_t **out) {
    size_t len = strlen(text);
    int64_t cap = (int64_t)len + 8;
    rg_err err = {0};
    *out = malloc((size_t)cap * sizeof **out);
    int64_t n = *out ? rg_tokenize(tok, text, len, add_special, true, *out, cap, &err) : -1;
    if (n > cap) {
        int32_t *more = realloc(*out, (size_t)n * sizeof **out);
        if (more) *out = more, n = rg_tokenize(tok, text, len, add_special, true, *out, n, &err);
        else n = -1;
    }
    if (n < 0) {
        fprintf(stderr, "ridge: cannot tokenize the prompt: %s\n", err.msg[0] ? err.msg : "out of memory");
        free(*out);
        *out = NULL;
    }
    return n;
}

char *cli_read_text_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap) {
            char *b = realloc(buf, cap *= 2);
            if (!b) free(buf);
            buf = b;
        }
    }
    fclose(f);
    if (buf) buf[n] = 0;
    return buf;
}

int cmd_run(int argc, char **argv) {
    gen_opts o;
    gen_opts_default(&o);
    for (int i = 1; i < argc; i++) {
        int r = gen_opts_parse(&o, argc, argv, &i);
        if (r < 0) return RG_EXIT_USAGE;
        if (r == 0) {
            if (strcmp(argv[i], "-h") && strcmp(argv[i], "--help"))
                fprintf(stderr, "ridge run: unknown option '%s'\n", argv[i]);
            fprintf(stderr, "usage: ridge run -m FILE -p PROMPT [options]\n%s", gen_opts_help());
            return strcmp(argv[i], "-h") && strcmp(argv[i], "--help") ? RG_EXIT_USAGE : 0;
        }
    }
    char *file_text = NULL;
    if (o.prompt_file && !(file_text = cli_read_text_file(o.prompt_file))) {
        fprintf(stderr, "ridge: %s: cannot read the prompt file\n", o.prompt_file);
        return RG_EXIT_BAD_INPUT;
    }
    const char *prompt = file_text ? file_text : o.prompt ? o.prompt : "";
    rg_model *m;
    rg_ctx *ctx;
    int rc = gen_load(&o, &m, &ctx);
    if (rc) return free(file_text), rc;

    rg_err err = {0};
    int32_t *ids = NULL;
    int64_t n_prompt = cli_tokenize(m->tok, prompt, true, &ids);
    rg_session s = {0};
    rg_sampler *sampler = NULL;
    if (n_prompt < 0) rc = RG_EXIT_BAD_INPUT;
    else if (n_prompt == 0) rc = (fprintf(stderr, "ridge: the prompt is empty and the model adds no BOS\n"), RG_EXIT_USAGE);
    else if (rg_session_init(&s, ctx, !o.no_cache, &err) ||
             rg_sampler_create(&o.sampling, (int32_t)m->hp.n_vocab, &sampler, &err))
        rc = cli_report("run", &err);
    if (rc) goto done;

    fputs(prompt, stdout);
    fflush(stdout);
    /* greedy sampling takes the argmax where the logits are (on the GPU: one id
     * a token crosses to the host); any other sampler needs the logits here */
    bool greedy = rg_sampler_is_greedy(sampler);
    int32_t tok = 0;
    double t0 = now_s();
    if (greedy ? rg_session_feed_greedy(&s, ids, n_prompt, &tok, &err) : rg_session_feed(&s, ids, n_prompt, &err)) {
        rc = cli_report("prefill", &err);
        goto done;
    }
    double t1 = now_s();
    rg_detok_stream stream = {0};
    char piece[1024];
    int n_gen = 0;
    for (; n_gen < o.n_predict; n_gen++) {
        if (!greedy) tok = rg_sampler_sample(sampler, s.logits, s.history, s.n_history);
        if (rg_token_is_eog(m->tok, tok)) break;
        rg_detok_stream_push(m->tok, &stream, tok, piece, sizeof piece);
        fputs(piece, stdout);
        fflush(stdout);
        if (n_gen + 1 < o.n_predict &&
            (greedy ? rg_session_feed_greedy(&s, &tok, 1, &tok, &err) : rg_session_feed(&s, &tok, 1, &err))) {
            rc = cli_report("decode", &err);
            break;
        }
    }
    rg_detok_stream_flush(&stream, piece, sizeof piece);
    fputs(piece, stdout);
    putchar('\n');
    double t2 = now_s();
    fprintf(stderr, "\nprompt %lld tokens in %.3f s (%.1f tok/s); generated %d tokens in %.3f s (%.1f tok/s)%s\n",
            (long long)n_prompt, t1 - t0, (double)n_prompt / (t1 - t0), n_gen, t2 - t1,
            n_gen > 1 ? (double)(n_gen - 1) / (t2 - t1) : 0.0, o.no_cache ? " [no KV cache]" : "");
done:
    rg_sampler_free(sampler);
    if (s.ctx) rg_session_free(&s);
    free(ids);
    free(file_text);
    rg_ctx_free(ctx);
    rg_model_free(m);
    return rc;
}
