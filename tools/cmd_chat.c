/* cmd_chat.c — `ridge chat`: an interactive conversation with an instruct model.
 *
 * Each turn the whole conversation is formatted with the model's chat template
 * (tokenizer.chat_template, or --chat-template NAME), tokenized, and compared
 * with the tokens already in the KV cache: only the new suffix is prefilled. So
 * the cache is kept across turns, and where re-tokenizing the previous reply
 * differs from the tokens that were sampled, the session rewinds to the common
 * prefix rather than attending to text the template would not produce.
 *
 * Lines come from stdin ("> " prompt when it is a terminal); /reset starts a new
 * conversation, /exit or end of input quits. -p TEXT sends TEXT as the first
 * user message. Replies stream to stdout, timings go to stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "gen_opts.h"
#include "tok/chat_template.h"

typedef struct chat_log {
    rg_chat_msg *msgs;
    char **owned; /* the malloc'd contents, freed with the log */
    size_t n, cap;
} chat_log;

static int chat_log_add(chat_log *c, const char *role, const char *content) {
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 16;
        rg_chat_msg *m = realloc(c->msgs, cap * sizeof *m);
        if (!m) return -1;
        c->msgs = m;
        char **o = realloc(c->owned, cap * sizeof *o);
        if (!o) return -1;
        c->owned = o, c->cap = cap;
    }
    char *copy = strdup(content);
    if (!copy) return -1;
    c->owned[c->n] = copy;
    c->msgs[c->n++] = (rg_chat_msg){role, copy};
    return 0;
}

static void chat_log_truncate(chat_log *c, size_t n) {
    while (c->n > n) free(c->owned[--c->n]);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int load_template(const gen_opts *o, const rg_model *m, rg_chat_template *t) {
    rg_err err = {0};
    rg_status st = gen_chat_template(o, m, t, &err);
    if (st == RG_E_NOT_FOUND) {
        fprintf(stderr, "ridge: %s has no chat template; name one with --chat-template NAME\n", o->model);
        return RG_EXIT_BAD_INPUT;
    }
    return st ? cli_report(o->chat_template ? "--chat-template" : "chat template", &err) : 0;
}

/* Bring the session to the formatted conversation: keep the cached prefix that
 * matches, feed the rest. Returns 0, or an exit code (message printed). */
static int sync_session(rg_session *s, const rg_model *m, const rg_chat_template *t, const chat_log *c,
                        int64_t n_ctx, int n_predict, int64_t *n_fed) {
    rg_err err = {0};
    char *text = NULL;
    if (rg_chat_format(t, c->msgs, c->n, true, &text, &err)) return cli_report("chat template", &err);
    int32_t *ids = NULL;
    int64_t n = cli_tokenize(m->tok, text, true, &ids);
    free(text);
    if (n < 0) return RG_EXIT_BAD_INPUT;
    int rc = 0;
    if (n + n_predict > n_ctx) {
        fprintf(stderr, "ridge: the conversation needs %lld + %d tokens, the context holds %lld; /reset to start over\n",
                (long long)n, n_predict, (long long)n_ctx);
        rc = RG_EXIT_BAD_INPUT;
    } else {
        int64_t keep = 0;
        while (keep < n && keep < s->n_history && s->history[keep] == ids[keep]) keep++;
        if (keep == n) keep--; /* the last token must be fed again to get its logits */
        rg_session_rewind(s, keep);
        *n_fed = n - keep;
        if (rg_session_feed(s, ids + keep, n - keep, &err)) rc = cli_report("prefill", &err);
    }
    free(ids);
    return rc;
}

/* Append n bytes of piece to the growing text; false when out of memory. */
static bool text_append(char **text, size_t *len, size_t *cap, const char *piece, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 256;
        while (*len + n + 1 > c) c *= 2;
        char *t = realloc(*text, c);
        if (!t) return false;
        *text = t, *cap = c;
    }
    memcpy(*text + *len, piece, n);
    (*text)[*len += n] = 0;
    return true;
}

/* Sample a reply, streaming it to stdout; *reply gets the text (malloc'd). */
static int generate_reply(rg_session *s, const rg_model *m, rg_sampler *sampler, int n_predict, char **reply,
                          int *n_gen) {
    char *text = NULL, piece[1024];
    size_t len = 0, cap = 0;
    rg_detok_stream stream = {0};
    rg_err err = {0};
    int rc = 0;
    /* greedy: after the first token (from the prompt's logits) each next one is the
     * argmax taken where the logits are (rg_session_feed_greedy) */
    const bool greedy = rg_sampler_is_greedy(sampler);
    int32_t next = -1;
    for (*n_gen = 0; *n_gen < n_predict && !rc; ++*n_gen) {
        int32_t tok = greedy && next >= 0 ? next : rg_sampler_sample(sampler, s->logits, s->history, s->n_history);
        if (rg_token_is_eog(m->tok, tok)) break;
        int64_t pn = rg_detok_stream_push(m->tok, &stream, tok, piece, sizeof piece);
        if (pn > (int64_t)sizeof piece - 1) pn = (int64_t)sizeof piece - 1; /* a piece longer than 1 KiB: cut */
        if (pn > 0 && !text_append(&text, &len, &cap, piece, (size_t)pn)) rc = RG_EXIT_BAD_INPUT;
        fwrite(piece, 1, pn > 0 ? (size_t)pn : 0, stdout);
        fflush(stdout);
        if (!rc && (greedy ? rg_session_feed_greedy(s, &tok, 1, &next, &err) : rg_session_feed(s, &tok, 1, &err)))
            rc = cli_report("decode", &err);
    }
    int64_t pn = rg_detok_stream_flush(&stream, piece, sizeof piece);
    if (pn > (int64_t)sizeof piece - 1) pn = (int64_t)sizeof piece - 1;
    if (pn > 0 && !text_append(&text, &len, &cap, piece, (size_t)pn)) rc = RG_EXIT_BAD_INPUT;
    if (!text && !text_append(&text, &len, &cap, "", 0)) rc = RG_EXIT_BAD_INPUT;
    fwrite(piece, 1, pn > 0 ? (size_t)pn : 0, stdout);
    putchar('\n');
    fflush(stdout);
    if (rc == RG_EXIT_BAD_INPUT && !err.status) fprintf(stderr, "ridge: out of memory\n");
    *reply = text;
    return rc;
}

static void strip_newline(char *line) {
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
}

int cmd_chat(int argc, char **argv) {
    gen_opts o;
    gen_opts_default(&o);
    o.n_predict = 512;
    for (int i = 1; i < argc; i++) {
        int r = gen_opts_parse(&o, argc, argv, &i);
        if (r < 0) return RG_EXIT_USAGE;
        if (r == 0) {
            bool help = !strcmp(argv[i], "-h") || !strcmp(argv[i], "--help");
            if (!help) fprintf(stderr, "ridge chat: unknown option '%s'\n", argv[i]);
            fprintf(stderr,
                    "usage: ridge chat -m FILE [--system TEXT] [--chat-template NAME] [-p FIRST_MESSAGE] [options]\n"
                    "  reads one user message per line; /reset starts over, /exit quits\n%s",
                    gen_opts_help());
            return help ? 0 : RG_EXIT_USAGE;
        }
    }
    rg_model *m;
    rg_ctx *ctx;
    int rc = gen_load(&o, &m, &ctx);
    if (rc) return rc;
    rg_chat_template tmpl = {0};
    rg_session s = {0};
    rg_sampler *sampler = NULL;
    chat_log log = {0};
    rg_err err = {0};
    char *line = NULL;
    size_t line_cap = 0;
    if ((rc = load_template(&o, m, &tmpl))) goto done;
    if (rg_session_init(&s, ctx, !o.no_cache, &err) ||
        rg_sampler_create(&o.sampling, (int32_t)m->hp.n_vocab, &sampler, &err)) {
        rc = cli_report("chat", &err);
        goto done;
    }
    size_t n_base = 0; /* messages kept by /reset: the system prompt */
    if (o.system && (chat_log_add(&log, "system", o.system) || (n_base = 1, 0))) goto oom;
    bool tty = isatty(STDIN_FILENO);
    if (!o.quiet)
        fprintf(stderr, "chat template %s; /reset starts over, /exit or end of input quits\n",
                rg_chat_family_name(tmpl.family));
    const char *first = o.prompt;
    for (;;) {
        const char *msg = first;
        if (msg) {
            first = NULL;
            if (!tty) printf("> %s\n", msg);
        } else {
            if (tty) fputs("> ", stdout), fflush(stdout);
            if (getline(&line, &line_cap, stdin) < 0) break;
            strip_newline(line);
            msg = line;
        }
        if (!strcmp(msg, "/exit")) break;
        if (!strcmp(msg, "/reset")) {
            chat_log_truncate(&log, n_base);
            continue;
        }
        if (!msg[0]) continue;
        if (chat_log_add(&log, "user", msg)) goto oom;
        int64_t n_fed = 0;
        double t0 = now_s();
        int r = sync_session(&s, m, &tmpl, &log, rg_ctx_n_ctx(ctx), o.n_predict, &n_fed);
        if (r) { /* the message did not fit or did not format: drop it, keep chatting */
            chat_log_truncate(&log, log.n - 1);
            if (!tty) rc = r;
            continue;
        }
        double t1 = now_s();
        char *reply = NULL;
        int n_gen = 0;
        r = generate_reply(&s, m, sampler, o.n_predict, &reply, &n_gen);
        double t2 = now_s();
        if (reply && chat_log_add(&log, "assistant", reply)) r = RG_EXIT_BAD_INPUT;
        free(reply);
        if (r) {
            rc = r;
            break;
        }
        if (!o.quiet)
            fprintf(stderr, "[prefill %lld new tokens in %.2f s, %d tokens at %.1f tok/s, %lld in context]\n",
                    (long long)n_fed, t1 - t0, n_gen, n_gen > 0 ? n_gen / (t2 - t1) : 0.0, (long long)s.n_history);
    }
    goto done;
oom:
    fprintf(stderr, "ridge: out of memory\n");
    rc = RG_EXIT_BAD_INPUT;
done:
    free(line);
    chat_log_truncate(&log, 0);
    free(log.msgs), free(log.owned);
    rg_sampler_free(sampler);
    if (s.ctx) rg_session_free(&s);
    rg_chat_template_clear(&tmpl);
    rg_ctx_free(ctx);
    rg_model_free(m);
    return rc;
}
