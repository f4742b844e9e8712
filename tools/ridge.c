/* ridge.c — entry point: dispatch to the subcommand named by argv[1]. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"info", cmd_info, "show a GGUF file: hyper-parameters, tokenizer, tensors, sizes"},
    {"tokenize", cmd_tokenize, "turn text into token ids with a model's tokenizer"},
    {"run", cmd_run, "generate text from a prompt"},
    {"chat", cmd_chat, "talk with an instruct model (its chat template, KV cache kept across turns)"},
    {"eval", cmd_eval, "prompt ids, top logits and greedy steps (JSON with --json)"},
    {"perplexity", cmd_perplexity, "perplexity of a model on a text file (compare weight and cache types)"},
    {"synth", cmd_synth, "write a random-weight model of a given shape and weight type"},
    {"bench", cmd_bench, "prefill/decode tokens per second against the memory roofline"},
    {"roofline", cmd_roofline, "measure this machine's bandwidth and compute ceilings (saved for reuse)"},
    {"profile", cmd_profile, "per-op time, GB/s, GFLOP/s and roofline bound of a run; trace and SVG plot"},
    {"plan", cmd_plan, "napkin math: weights, KV, max sequences, decode/prefill floors on a machine"},
    {"serve", cmd_serve, "OpenAI-compatible HTTP server with continuous batching and prefix caching"},
    {"loadgen", cmd_loadgen, "load a completions server: throughput, TTFT and inter-token latency percentiles"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: ridge COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n'ridge COMMAND --help' shows a command's options.\n");
}

void cli_json_string(const char *s) {
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') printf("\\%c", *p);
        else if (*p == '\n') fputs("\\n", stdout);
        else if (*p == '\t') fputs("\\t", stdout);
        else if (*p < 0x20) printf("\\u%04x", *p);
        else putchar(*p);
    }
    putchar('"');
}

int cli_report(const char *what, const rg_err *err) {
    fprintf(stderr, "ridge: %s: %s\n", what, err->msg[0] ? err->msg : rg_status_name(err->status));
    return err->status == RG_E_INVALID ? RG_EXIT_USAGE : RG_EXIT_BAD_INPUT;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? RG_EXIT_USAGE : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "ridge: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return RG_EXIT_USAGE;
}
