/* gen_opts.c — shared option parsing and model loading for the generating commands. */
#include "gen_opts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

void gen_opts_default(gen_opts *o) {
    memset(o, 0, sizeof *o);
    o->n_predict = 128;
    o->n_threads = 0;
    o->n_ctx = 4096;
    o->attn = RG_ATTN_FLASH;
    o->kv_type = RG_F32;
    o->sampling = rg_sampling_default();
    o->bench_prompt = 128, o->bench_gen = 64, o->bench_reps = 3;
    o->top = 20, o->greedy = 32;
}

const char *gen_opts_help(void) {
    return "  -m FILE             model (GGUF)\n"
           "  -p TEXT             prompt            -f FILE   prompt from a file\n"
           "  -n N                tokens to generate (default 128)\n"
           "  -t N                threads (default: all cores)\n"
           "  -c N                context length (default 4096, at most the model's)\n"
           "  -ub N               tokens per forward step; longer prompts run in steps of N (default 512)\n"
           "  --temp T            temperature, 0 = greedy (default 0.8)\n"
           "  --top-k K           (default 40)    --top-p P (default 0.95)    --min-p P (default 0.05)\n"
           "  --repeat-penalty R  (default 1 = off)  --repeat-last-n N (default 64)\n"
           "  --frequency-penalty F  --presence-penalty P\n"
           "  --seed S            sampling seed (default fixed, so runs repeat)\n"
           "  --attn flash|naive  attention kernel (default flash)\n"
           "  --kv paged|none     paged KV cache, or recompute the prefix every step (baseline)\n"
           "  --cache-type T      KV cache dtype: f32 (default), f16, bf16\n"
           "  --gpu               run every op on the GPU (CUDA backend; -ngl N with N > 0 says the same)\n"
           "  --device N          CUDA device (default 0)\n"
           "  --no-graphs         launch each op of a GPU decode step (default: replay a CUDA graph)\n"
           "  --no-fuse           run every op separately (default: the backend's fused ops, e.g. QKV in one matmul)\n";
}

static int bad(const char *opt, const char *val) {
    fprintf(stderr, "ridge: bad value '%s' for %s\n", val, opt);
    return -1;
}

static int parse_int(const char *opt, const char *s, int lo, int hi, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end || v < lo || v > hi) return bad(opt, s);
    *out = (int)v;
    return 1;
}

static int parse_float(const char *opt, const char *s, float lo, float hi, float *out) {
    char *end;
    float v = strtof(s, &end);
    if (*s == 0 || *end || !(v >= lo && v <= hi)) return bad(opt, s);
    *out = v;
    return 1;
}

int gen_opts_parse(gen_opts *o, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
#define TAKES(name) (!strcmp(a, name) && v && ++*i)
    if (TAKES("-m") || TAKES("--model")) return o->model = v, 1;
    if (TAKES("-p") || TAKES("--prompt")) return o->prompt = v, 1;
    if (TAKES("-f") || TAKES("--file")) return o->prompt_file = v, 1;
    if (TAKES("-n") || TAKES("--n-predict")) return parse_int(a, v, 0, 1 << 24, &o->n_predict);
    if (TAKES("-t") || TAKES("--threads")) return parse_int(a, v, 1, 1024, &o->n_threads);
    if (TAKES("-c") || TAKES("--ctx-size")) return parse_int(a, v, 1, 1 << 24, &o->n_ctx);
    if (TAKES("-ub") || TAKES("--ubatch-size")) return parse_int(a, v, 1, 1 << 16, &o->n_ubatch);
    if (TAKES("--temp")) return parse_float(a, v, 0, 100, &o->sampling.temperature);
    if (TAKES("--top-k")) return parse_int(a, v, 0, 1 << 24, &o->sampling.top_k);
    if (TAKES("--top-p")) return parse_float(a, v, 0, 1, &o->sampling.top_p);
    if (TAKES("--min-p")) return parse_float(a, v, 0, 1, &o->sampling.min_p);
    if (TAKES("--repeat-penalty")) return parse_float(a, v, 0.01f, 100, &o->sampling.repeat_penalty);
    if (TAKES("--repeat-last-n")) return parse_int(a, v, 0, 1 << 24, &o->sampling.penalty_last_n);
    if (TAKES("--frequency-penalty")) return parse_float(a, v, -10, 10, &o->sampling.frequency_penalty);
    if (TAKES("--presence-penalty")) return parse_float(a, v, -10, 10, &o->sampling.presence_penalty);
    if (TAKES("--seed")) {
        char *end;
        unsigned long long s = strtoull(v, &end, 10);
        if (!*v || *end) return bad(a, v);
        o->sampling.seed = s;
        return 1;
    }
    if (TAKES("--attn")) {
        if (!strcmp(v, "flash")) o->attn = RG_ATTN_FLASH;
        else if (!strcmp(v, "naive")) o->attn = RG_ATTN_NAIVE;
        else return bad(a, v);
        return 1;
    }
    if (TAKES("--kv")) {
        if (!strcmp(v, "paged")) o->no_cache = false;
        else if (!strcmp(v, "none")) o->no_cache = true;
        else return bad(a, v);
        return 1;
    }
    if (TAKES("--cache-type") || TAKES("-ctk")) {
        if (!strcmp(v, "f32")) o->kv_type = RG_F32;
        else if (!strcmp(v, "f16")) o->kv_type = RG_F16;
        else if (!strcmp(v, "bf16")) o->kv_type = RG_BF16;
        else return bad(a, v);
        return 1;
    }
    if (!strcmp(a, "--gpu")) return o->backend = RG_BACKEND_CUDA, 1;
    if (TAKES("-ngl") || TAKES("--n-gpu-layers")) {
        /* all layers or none: a split between CPU and GPU is not implemented */
        int n;
        if (parse_int(a, v, 0, 1 << 24, &n) < 0) return -1;
        o->backend = n > 0 ? RG_BACKEND_CUDA : RG_BACKEND_CPU;
        return 1;
    }
    if (TAKES("--device")) return parse_int(a, v, 0, 1024, &o->device);
    if (!strcmp(a, "--no-graphs")) return o->no_graphs = true, 1;
    if (!strcmp(a, "--no-fuse")) return o->no_fusion = true, 1;
    if (TAKES("--system") || TAKES("-sys")) return o->system = v, 1;
    if (TAKES("--chat-template")) return o->chat_template = v, 1;
    if (!strcmp(a, "--json")) return o->json = true, 1;
    if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) return o->quiet = true, 1;
#undef TAKES
    return 0;
}

static void progress_bar(double f, void *user) {
    (void)user;
    int w = 40, filled = (int)(f * w + 0.5);
    fprintf(stderr, "\rloading [%.*s%*s] %3.0f%%", filled, "########################################", w - filled, "",
            100 * f);
    if (f >= 1.0) fputc('\n', stderr);
}

int gen_load(const gen_opts *o, rg_model **model, rg_ctx **ctx) {
    rg_err err = {0};
    *model = NULL, *ctx = NULL;
    if (!o->model) {
        fprintf(stderr, "ridge: no model given (-m FILE)\n");
        return RG_EXIT_USAGE;
    }
    bool show = !o->quiet && isatty(STDERR_FILENO);
    if (rg_model_load(o->model, show ? progress_bar : NULL, NULL, model, &err)) return cli_report(o->model, &err);
    rg_ctx_params cp = {
        .n_threads = o->n_threads,
        .n_ctx = o->n_ctx < (*model)->hp.n_ctx_train ? o->n_ctx : (*model)->hp.n_ctx_train,
        .n_seq_max = 1,
        .max_batch_tokens = o->n_ubatch,
        .kv_type = o->kv_type,
        .attn = o->attn,
        .backend = o->backend,
        .device = o->device,
        .no_graphs = o->no_graphs,
        .no_fusion = o->no_fusion,
    };
    if (rg_ctx_create(*model, &cp, ctx, &err)) {
        rg_model_free(*model);
        *model = NULL;
        return cli_report(o->model, &err);
    }
    return 0;
}

int32_t *gen_synthetic_prompt(const rg_model *m, int n) {
    int32_t *prompt = malloc((size_t)(n > 0 ? n : 1) * sizeof *prompt);
    if (!prompt) return NULL;
    uint64_t x = 12345;
    for (int i = 0; i < n; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        prompt[i] = (int32_t)(m->hp.n_vocab / 4 + (int64_t)((x >> 33) % (uint64_t)(m->hp.n_vocab / 2)));
    }
    return prompt;
}

rg_status gen_chat_template(const gen_opts *o, const rg_model *m, rg_chat_template *t, rg_err *err) {
    if (o->chat_template) return rg_chat_template_from_name(o->chat_template, t, err);
    rg_gguf_str s = {0};
    char *text = NULL;
    if (rg_gguf_find_str(m->file, "tokenizer.chat_template", &s)) {
        if (!(text = malloc(s.len + 1))) return rg_fail(err, RG_E_NOMEM, "out of memory for the chat template");
        memcpy(text, s.ptr, s.len);
        text[s.len] = 0;
    }
    rg_status st = rg_chat_template_detect(text, t, err);
    free(text);
    return st;
}
