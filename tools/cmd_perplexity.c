/* cmd_perplexity.c — `ridge perplexity -m FILE -f TEXT [-c 512]`: the model's
 * perplexity on a text file (engine/perplexity.h says how it is scored), the
 * number to compare weight types and KV cache types by. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "engine/perplexity.h"
#include "gen_opts.h"

static void show_progress(int64_t done, int64_t total, double ppl, void *user) {
    if (*(const bool *)user) return;
    fprintf(stderr, "\rwindow %lld/%lld  perplexity so far %.4f", (long long)done, (long long)total, ppl);
    if (done == total) fputc('\n', stderr);
}

int cmd_perplexity(int argc, char **argv) {
    gen_opts o;
    gen_opts_default(&o);
    o.n_ctx = 512;
    for (int i = 1; i < argc; i++) {
        int r = gen_opts_parse(&o, argc, argv, &i);
        if (r < 0) return RG_EXIT_USAGE;
        if (r == 0) {
            bool help = !strcmp(argv[i], "-h") || !strcmp(argv[i], "--help");
            if (!help) fprintf(stderr, "ridge perplexity: unknown option '%s'\n", argv[i]);
            fprintf(stderr, "usage: ridge perplexity -m FILE -f TEXT_FILE [-c WINDOW (default 512)] [--json] [options]\n%s",
                    gen_opts_help());
            return help ? 0 : RG_EXIT_USAGE;
        }
    }
    if (!o.prompt_file && !o.prompt) {
        fprintf(stderr, "ridge perplexity: give the text with -f FILE (or -p TEXT)\n");
        return RG_EXIT_USAGE;
    }
    char *text = o.prompt_file ? cli_read_text_file(o.prompt_file) : strdup(o.prompt);
    if (!text) {
        fprintf(stderr, "ridge: %s: cannot read the text\n", o.prompt_file ? o.prompt_file : "-p");
        return RG_EXIT_BAD_INPUT;
    }
    rg_model *m;
    rg_ctx *ctx;
    int rc = gen_load(&o, &m, &ctx);
    if (rc) return free(text), rc;
    int32_t *ids = NULL;
    int64_t n = cli_tokenize(m->tok, text, true, &ids);
    rg_ppl_result res;
    rg_err err = {0};
    if (n < 0) rc = RG_EXIT_BAD_INPUT;
    else if (rg_perplexity(ctx, ids, n, rg_ctx_n_ctx(ctx), show_progress, &o.quiet, &res, &err))
        rc = cli_report("perplexity", &err);
    else if (o.json)
        printf("{\"model\": "), cli_json_string(o.model),
            printf(", \"tokens\": %lld, \"window\": %lld, \"scored\": %lld, \"perplexity\": %.6f, "
               "\"perplexity_stderr\": %.6f, \"mean_nll\": %.6f}\n",
               (long long)n, (long long)rg_ctx_n_ctx(ctx), (long long)res.n_scored, res.ppl, res.ppl_stderr,
               res.nll_sum / (double)res.n_scored);
    else
        printf("perplexity %.4f +/- %.4f over %lld scored tokens (%lld tokens, windows of %lld)\n", res.ppl,
               res.ppl_stderr, (long long)res.n_scored, (long long)n, (long long)rg_ctx_n_ctx(ctx));
    free(ids);
    free(text);
    rg_ctx_free(ctx);
    rg_model_free(m);
    return rc;
}
