/* gen_opts.h — options shared by the commands that run a model (run, chat, eval,
 * bench), parsed the way llama.cpp's tools spell them where they overlap. */
#ifndef RG_TOOLS_GEN_OPTS_H
#define RG_TOOLS_GEN_OPTS_H

#include <stdbool.h>

#include "engine/sampler.h"
#include "model/forward.h"
#include "tok/chat_template.h"

typedef struct gen_opts {
    const char *model;
    const char *prompt;
    const char *prompt_file;
    const char *system;
    int n_predict;
    int n_threads;
    int n_ctx;
    int n_ubatch;            /* -ub: tokens per forward step (a longer prompt runs in steps of this many) */
    bool no_cache;           /* --kv none */
    rg_attn_kind attn;       /* --attn flash|naive */
    rg_dtype kv_type;        /* --cache-type f32|f16|bf16 */
    rg_backend_kind backend; /* --gpu / -ngl N (N > 0): CUDA */
    int device;              /* --device N: CUDA device ordinal */
    bool no_graphs;          /* --no-graphs: no CUDA graph replay of decode steps */
    bool no_fusion;          /* --no-fuse: the unfused op sequence (the baseline fusions are measured against) */
    rg_sampling_params sampling;
    bool json;
    bool quiet;              /* no load progress */
    /* bench */
    int bench_prompt, bench_gen, bench_reps;
    /* eval */
    int top, greedy;
    const char *chat_template;
} gen_opts;

void gen_opts_default(gen_opts *o);

/* Try to consume argv[*i] (and its value). Returns 1 if consumed, 0 if not an
 * option of this set, -1 on a bad value (message printed). */
int gen_opts_parse(gen_opts *o, int argc, char **argv, int *i);

/* Usage text for the shared options. */
const char *gen_opts_help(void);

/* Load the model (with a progress bar on stderr unless quiet) and create a
 * context sized for one sequence of n_ctx. Prints the error and returns the exit
 * code on failure, 0 on success. */
int gen_load(const gen_opts *o, rg_model **model, rg_ctx **ctx);

/* The chat template named by --chat-template, else the model's own
 * (tokenizer.chat_template). Errors: RG_E_INVALID for an unknown --chat-template
 * name, RG_E_NOT_FOUND when the model has no template, RG_E_UNSUPPORTED when
 * ridge does not know its family (err says so); *t is then empty. The caller
 * frees *t with rg_chat_template_clear. (ridge chat refuses to start without a
 * template, ridge serve only turns /v1/chat/completions off.) */
rg_status gen_chat_template(const gen_opts *o, const rg_model *m, rg_chat_template *t, rg_err *err);

/* A fixed pseudo-random walk over ordinary (non-special) ids, n long, for
 * benchmarks and profiles (same tokens every run). malloc'd; NULL when out of
 * memory. */
int32_t *gen_synthetic_prompt(const rg_model *m, int n);

#endif
