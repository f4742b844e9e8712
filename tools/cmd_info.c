/* cmd_info.c — `ridge info FILE`: what is in a GGUF file and what it will cost.
 *
 * Prints the file header, hyper-parameters, tokenizer, parameter count and bytes
 * by dtype, the KV-cache bytes per token (f16 and int8 caches), then the
 * metadata and tensor tables. Vocabulary-only files (no tensors) are fine: the
 * sections that need a model say why they are empty. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "formats/gguf.h"
#include "model/hparams.h"
#include "tok/tokenizer.h"

static void print_usage(FILE *f) {
    fprintf(f, "usage: ridge info [--no-tensors] [--no-metadata] FILE\n");
}

static void human_bytes(double b, char *buf, size_t size) {
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024 && u < 4) b /= 1024, u++;
    snprintf(buf, size, u ? "%.2f %s" : "%.0f %s", b, units[u]);
}

static void print_shape(const rg_gguf_tensor *t, char *buf, size_t size) {
    size_t o = 0;
    for (uint32_t d = 0; d < t->n_dims && o < size; d++)
        o += (size_t)snprintf(buf + o, size - o, d ? " x %lld" : "%lld", (long long)t->ne[d]);
}

/* Prints what it can; a failure is left in *err for the caller to judge. */
static void print_hparams(const rg_gguf *g, rg_err *err) {
    rg_hparams hp;
    printf("\nhyper-parameters\n");
    if (rg_hparams_read(g, &hp, err)) {
        printf("  unavailable: %s\n", err->msg);
        return;
    }
    printf("  architecture      %s\n", hp.arch);
    if (hp.name[0]) printf("  name              %s\n", hp.name);
    printf("  n_layer           %lld\n", (long long)hp.n_layer);
    printf("  n_embd            %lld\n", (long long)hp.n_embd);
    printf("  n_ff              %lld\n", (long long)hp.n_ff);
    printf("  n_head            %lld\n", (long long)hp.n_head);
    printf("  n_head_kv         %lld  (%s, %lld query heads per KV head)\n", (long long)hp.n_head_kv,
           hp.n_head_kv == hp.n_head ? "MHA" : hp.n_head_kv == 1 ? "MQA" : "GQA",
           (long long)(hp.n_head / hp.n_head_kv));
    printf("  head_dim          %lld\n", (long long)hp.head_dim);
    printf("  n_vocab           %lld\n", (long long)hp.n_vocab);
    printf("  n_ctx_train       %lld\n", (long long)hp.n_ctx_train);
    printf("  rope              %s, n_rot %lld, freq_base %g", hp.rope_type == RG_ROPE_NEOX ? "neox" : "normal",
           (long long)hp.n_rot, hp.rope_freq_base);
    static const char *scaling[] = {"", "linear", "yarn", "llama3"};
    if (hp.rope_scaling) printf(", scaling %s x%g", scaling[hp.rope_scaling], hp.rope_scale_factor);
    printf("\n  rms_eps           %g\n", hp.rms_eps);
    if (hp.has_qkv_bias) printf("  qkv bias          yes\n");

    printf("\nKV cache (K and V, all layers)\n");
    const rg_dtype caches[] = {RG_F32, RG_F16, RG_Q8_0};
    const char *names[] = {"f32", "f16", "int8 (q8_0 blocks)"};
    for (int i = 0; i < 3; i++) {
        int64_t b = rg_hparams_kv_bytes_per_token(&hp, caches[i]);
        char h[32], full[32];
        if (b < 0) {
            printf("  %-20s n/a (head_dim %lld is not a multiple of 32)\n", names[i], (long long)hp.head_dim);
            continue;
        }
        human_bytes((double)b, h, sizeof h);
        human_bytes((double)b * (double)hp.n_ctx_train, full, sizeof full);
        printf("  %-20s %10lld bytes/token (%s); %s at n_ctx_train %lld\n", names[i], (long long)b, h, full,
               (long long)hp.n_ctx_train);
    }
    printf("  formula: 2 * n_layer %lld * n_head_kv %lld * head_dim %lld * bytes/element\n", (long long)hp.n_layer,
           (long long)hp.n_head_kv, (long long)hp.head_dim);
}

static void print_tokenizer(const rg_gguf *g, rg_err *err) {
    printf("\ntokenizer\n");
    rg_tokenizer *tok;
    if (rg_tokenizer_load(g, &tok, err)) {
        printf("  unavailable: %s\n", err->msg);
        return;
    }
    printf("  model             %s%s%s\n", rg_tokenizer_model(tok), rg_tokenizer_pre(tok)[0] ? ", pre-tokenizer " : "",
           rg_tokenizer_pre(tok));
    printf("  n_vocab           %d\n", rg_tokenizer_n_vocab(tok));
    int32_t ids[3] = {rg_token_bos(tok), rg_token_eos(tok), rg_token_eot(tok)};
    const char *labels[3] = {"bos", "eos", "eot"};
    for (int i = 0; i < 3; i++) {
        if (ids[i] < 0) printf("  %-17s none\n", labels[i]);
        else printf("  %-17s %d '%s'\n", labels[i], ids[i], rg_token_text(tok, ids[i]));
    }
    printf("  add_bos / add_eos %s / %s\n", rg_tokenizer_add_bos(tok) ? "yes" : "no",
           rg_tokenizer_add_eos(tok) ? "yes" : "no");
    rg_tokenizer_free(tok);
}

/* Parameters and bytes grouped by dtype. */
static void print_sizes(const rg_gguf *g) {
    int64_t params[RG_DTYPE_COUNT] = {0}, bytes[RG_DTYPE_COUNT] = {0}, count[RG_DTYPE_COUNT] = {0};
    int64_t total_params = 0, total_bytes = 0;
    for (int64_t i = 0; i < rg_gguf_tensor_count(g); i++) {
        const rg_gguf_tensor *t = rg_gguf_tensor_at(g, i);
        params[t->type] += t->n_elements, bytes[t->type] += t->n_bytes, count[t->type]++;
        total_params += t->n_elements, total_bytes += t->n_bytes;
    }
    printf("\nparameters        %lld (%.1f M)\n", (long long)total_params, (double)total_params / 1e6);
    if (!total_params) return;
    char h[32];
    human_bytes((double)total_bytes, h, sizeof h);
    printf("weight bytes      %lld (%s, %.2f bits/parameter)\n", (long long)total_bytes, h,
           8.0 * (double)total_bytes / (double)total_params);
    printf("\n  %-6s %8s %14s %14s %7s\n", "dtype", "tensors", "parameters", "bytes", "share");
    for (int d = 0; d < RG_DTYPE_COUNT; d++) {
        if (!count[d]) continue;
        printf("  %-6s %8lld %14lld %14lld %6.1f%%\n", rg_dtype_name((uint32_t)d), (long long)count[d],
               (long long)params[d], (long long)bytes[d], 100.0 * (double)bytes[d] / (double)total_bytes);
    }
}

int cmd_info(int argc, char **argv) {
    bool tensors = true, metadata = true;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-tensors")) tensors = false;
        else if (!strcmp(argv[i], "--no-metadata")) metadata = false;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return print_usage(stdout), 0;
        else if (!strcmp(argv[i], "-m") && i + 1 < argc) path = argv[++i];
        else if (argv[i][0] == '-' || path) return print_usage(stderr), RG_EXIT_USAGE;
        else path = argv[i];
    }
    if (!path) return print_usage(stderr), RG_EXIT_USAGE;

    rg_gguf *g;
    rg_err err = {0};
    if (rg_gguf_open(path, &g, &err)) return cli_report(path, &err);
    char size[32];
    human_bytes((double)rg_gguf_file_size(g), size, sizeof size);
    printf("file              %s\n", path);
    printf("format            GGUF v%u, %s, %lld tensors, %lld metadata keys, alignment %llu\n", rg_gguf_version(g),
           size, (long long)rg_gguf_tensor_count(g), (long long)rg_gguf_kv_count(g),
           (unsigned long long)rg_gguf_alignment(g));
    rg_err hp_err = {0}, tok_err = {0};
    print_hparams(g, &hp_err);
    print_tokenizer(g, &tok_err);
    print_sizes(g);

    if (metadata) {
        printf("\nmetadata\n");
        for (int64_t i = 0; i < rg_gguf_kv_count(g); i++) {
            char buf[256];
            rg_gguf_format_value(g, i, buf, sizeof buf);
            printf("  %-40s %s\n", rg_gguf_key(g, i), buf);
        }
    }
    if (tensors && rg_gguf_tensor_count(g)) {
        printf("\ntensors\n  %-5s %-36s %-6s %-22s %12s\n", "#", "name", "dtype", "shape", "bytes");
        for (int64_t i = 0; i < rg_gguf_tensor_count(g); i++) {
            const rg_gguf_tensor *t = rg_gguf_tensor_at(g, i);
            char shape[96];
            print_shape(t, shape, sizeof shape);
            printf("  %-5lld %-36s %-6s %-22s %12lld\n", (long long)i, t->name, rg_dtype_name(t->type), shape,
                   (long long)t->n_bytes);
        }
    }
    /* A file of tensors that no model can be built from, or tokenizer metadata
     * that does not load, is bad input (exit 2) even after the listing; a
     * vocabulary-only file without hyper-parameters is not. */
    const rg_err *bad = hp_err.status && rg_gguf_tensor_count(g) ? &hp_err
                        : tok_err.status && rg_gguf_find_key(g, "tokenizer.ggml.model") >= 0 ? &tok_err
                                                                                           : NULL;
    int rc = 0;
    if (bad) {
        fprintf(stderr, "ridge: %s: %s\n", path, bad->msg[0] ? bad->msg : rg_status_name(bad->status));
        rc = RG_EXIT_BAD_INPUT;
    }
    rg_gguf_close(g);
    return rc;
}
