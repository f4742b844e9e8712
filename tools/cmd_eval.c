/* cmd_eval.c — `ridge eval`: the debugging view for "the outputs look wrong".
 *
 * Prints the prompt's token ids (BOS as the model's metadata says), the top-K
 * logits after the prompt, and K greedy steps each with its token, logit, margin
 * over the runner-up and the token's bytes in hex. --json uses exactly the field
 * names of tests/data/refdata/outputs, so one script compares ridge with any
 * reference (tests/tools/compare_eval.py). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "gen_opts.h"


typedef struct top_entry { int32_t id; float logit; } top_entry;

static int cmp_top(const void *a, const void *b) {
    const top_entry *x = a, *y = b;
    if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
    return x->id - y->id;
}

int cmd_eval(int argc, char **argv) {
    gen_opts o;
    gen_opts_default(&o);
    for (int i = 1; i < argc; i++) {
        int r = gen_opts_parse(&o, argc, argv, &i);
        if (r < 0) return RG_EXIT_USAGE;
        if (r) continue;
        if (!strcmp(argv[i], "--top") && i + 1 < argc) o.top = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--greedy") && i + 1 < argc) o.greedy = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: ridge eval -m FILE -p PROMPT [--top 20] [--greedy 32] [--json] [options]\n%s",
                    gen_opts_help());
            return strcmp(argv[i], "-h") && strcmp(argv[i], "--help") ? RG_EXIT_USAGE : 0;
        }
    }
    if (o.top < 1 || o.greedy < 0 || !o.prompt) {
        fprintf(stderr, "ridge eval: needs -p PROMPT, --top >= 1, --greedy >= 0\n");
        return RG_EXIT_USAGE;
    }
    o.quiet = true;
    rg_model *m;
    rg_ctx *ctx;
    int rc = gen_load(&o, &m, &ctx);
    if (rc) return rc;
    rg_err err = {0};
    int32_t *ids = NULL;
    int64_t n = cli_tokenize(m->tok, o.prompt, true, &ids);
    rg_session s = {0};
    int32_t n_vocab = (int32_t)m->hp.n_vocab;
    top_entry *top = malloc((size_t)n_vocab * sizeof *top);
    if (n <= 0 || !top) {
        rc = n == 0 ? (fprintf(stderr, "ridge eval: empty prompt\n"), RG_EXIT_USAGE) : RG_EXIT_BAD_INPUT;
        goto done;
    }
    if (rg_session_init(&s, ctx, !o.no_cache, &err) || rg_session_feed(&s, ids, n, &err)) {
        rc = cli_report("eval", &err);
        goto done;
    }
    const char *base = strrchr(o.model, '/') ? strrchr(o.model, '/') + 1 : o.model;
    bool add_bos = rg_tokenizer_add_bos(m->tok);
    if (o.json) {
        printf("{\n \"model\": ");
        cli_json_string(base);
        printf(",\n \"prompt\": ");
        cli_json_string(o.prompt);
        printf(",\n \"add_bos\": %s,\n \"prompt_tokens\": [", add_bos ? "true" : "false");
    } else {
        printf("model %s\nprompt tokens (%lld):", base, (long long)n);
    }
    for (int64_t i = 0; i < n; i++) printf(o.json ? (i ? ", %d" : "%d") : " %d", ids[i]);
    for (int32_t i = 0; i < n_vocab; i++) top[i] = (top_entry){i, s.logits[i]};
    qsort(top, (size_t)n_vocab, sizeof *top, cmp_top);
    int k = o.top < n_vocab ? o.top : n_vocab;
    printf(o.json ? "],\n \"top%d_after_prompt\": [" : "\ntop %d logits after the prompt:\n", k);
    char piece[256];
    for (int i = 0; i < k; i++) {
        if (o.json) printf("%s[%d, %.6f]", i ? ", " : "", top[i].id, top[i].logit);
        else {
            int64_t pn = rg_token_to_piece(m->tok, top[i].id, true, piece, sizeof piece - 1);
            piece[pn < 0 ? 0 : pn < (int64_t)sizeof piece - 1 ? pn : (int64_t)sizeof piece - 1] = 0;
            printf("  %6d %12.6f  '%s'\n", top[i].id, top[i].logit, piece);
        }
    }
    printf(o.json ? "],\n \"greedy\": [" : "greedy steps:\n");
    for (int step = 0; step < o.greedy; step++) {
        int32_t second;
        int32_t tok = rg_argmax(s.logits, n_vocab, &second);
        float logit = s.logits[tok], margin = logit - s.logits[second];
        int64_t pn = rg_token_to_piece(m->tok, tok, true, piece, sizeof piece);
        if (pn > (int64_t)sizeof piece) pn = sizeof piece;
        if (o.json) {
            printf("%s\n  {\"token\": %d, \"logit\": %.6f, \"margin\": %.6f, \"piece_hex\": \"", step ? "," : "", tok,
                   logit, margin);
            for (int64_t j = 0; j < pn; j++) printf("%02x", (unsigned char)piece[j]);
            printf("\"}");
        } else {
            printf("  %2d %6d %12.6f  margin %9.6f  '%.*s'\n", step, tok, logit, margin, (int)(pn < 0 ? 0 : pn), piece);
        }
        if (step + 1 < o.greedy && rg_session_feed(&s, &tok, 1, &err)) {
            rc = cli_report("eval", &err);
            break;
        }
    }
    printf(o.json ? "\n ]\n}\n" : "");
done:
    free(top);
    free(ids);
    if (s.ctx) rg_session_free(&s);
    rg_ctx_free(ctx);
    rg_model_free(m);
    return rc;
}
