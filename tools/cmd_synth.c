/* cmd_synth.c — `ridge synth`: write a random-weight model of a named or given
 * shape in any weight type (for tests and benchmarks; see src/model/synth.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "model/synth.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: ridge synth -o FILE [--shape NAME] [--type T] [--embd-type T] [--layers N] [--embd N]\n"
            "                   [--heads N] [--heads-kv N] [--ff N] [--vocab N] [--ctx N] [--rope-base F]\n"
            "                   [--pos rope|alibi|sinusoidal|learned] [--tied] [--qkv-bias] [--seed S]\n"
            "shapes: %s (default tiny)\ntypes: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q4_k q5_k q6_k (default f16)\n",
            rg_synth_shape_names());
}

static void progress(double f, void *user) {
    (void)user;
    fprintf(stderr, "\rgenerating %3.0f%%", 100 * f);
    if (f >= 1) fputc('\n', stderr);
}

int cmd_synth(int argc, char **argv) {
    rg_synth_params p = {.type = RG_F16, .seed = 1};
    rg_synth_shape_named("tiny", &p.shape);
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t *dim = !strcmp(a, "--layers") ? &p.shape.n_layer : !strcmp(a, "--embd") ? &p.shape.n_embd
                     : !strcmp(a, "--heads") ? &p.shape.n_head : !strcmp(a, "--heads-kv") ? &p.shape.n_head_kv
                     : !strcmp(a, "--ff") ? &p.shape.n_ff : !strcmp(a, "--vocab") ? &p.shape.n_vocab
                     : !strcmp(a, "--ctx") ? &p.shape.n_ctx : NULL;
        if (dim && v) {
            char *end;
            long long x = strtoll(v, &end, 10);
            if (!*v || *end || x < 1 || x > (1 << 24)) return fprintf(stderr, "ridge synth: bad %s\n", a), RG_EXIT_USAGE;
            *dim = x, i++;
        } else if (!strcmp(a, "-o") && v) out = v, i++;
        else if (!strcmp(a, "--shape") && v) {
            if (!rg_synth_shape_named(v, &p.shape))
                return fprintf(stderr, "ridge synth: unknown shape '%s' (%s)\n", v, rg_synth_shape_names()), RG_EXIT_USAGE;
            i++;
        } else if ((!strcmp(a, "--type") || !strcmp(a, "--embd-type")) && v) {
            rg_dtype t;
            if (!rg_dtype_from_name(v, &t) || !rg_dtype_get(t)->supported || t == RG_Q8_K)
                return fprintf(stderr, "ridge synth: unsupported type '%s'\n", v), RG_EXIT_USAGE;
            *(a[2] == 't' ? &p.type : &p.embd_type) = t, i++;
        } else if (!strcmp(a, "--rope-base") && v) p.shape.rope_freq_base = atof(v), i++;
        else if (!strcmp(a, "--pos") && v) p.pos_encoding = v, i++;
        else if (!strcmp(a, "--seed") && v) p.seed = strtoull(v, NULL, 10), i++;
        else if (!strcmp(a, "--tied")) p.tied_output = true;
        else if (!strcmp(a, "--qkv-bias")) p.qkv_bias = true;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage(stdout), 0;
        else return usage(stderr), RG_EXIT_USAGE;
    }
    if (!out) return usage(stderr), RG_EXIT_USAGE;
    if (p.pos_encoding && strcmp(p.pos_encoding, "rope") && strcmp(p.pos_encoding, "alibi") &&
        strcmp(p.pos_encoding, "sinusoidal") && strcmp(p.pos_encoding, "learned"))
        return fprintf(stderr, "ridge synth: unknown --pos '%s'\n", p.pos_encoding), RG_EXIT_USAGE;
    if (isatty(STDERR_FILENO)) p.progress = progress;
    rg_err err = {0};
    if (rg_synth_write(&p, out, &err)) return cli_report(out, &err);
    return 0;
}
