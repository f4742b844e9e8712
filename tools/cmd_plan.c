/* cmd_plan.c — `ridge plan`: the napkin math for a model (file or named shape)
 * on a machine (datasheet preset or this machine's measured roofline). Every
 * number is printed with the inputs of its formula so a reader can check it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "model/synth.h"
#include "perf/machine.h"
#include "perf/plan.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: ridge plan (-m FILE | --shape NAME) [options]\n"
            "  -m FILE            a GGUF model (exact tensor sizes; weights not read)\n"
            "  --shape NAME       a published shape: %s\n"
            "  --weights T        weight dtype of a named shape: f16 (default), bf16, f32, q8_0, q4_0, q4_k ...\n"
            "  --machine M        %s, or this (measured, default)\n"
            "  --roofline FILE    this machine's saved roofline (default ~/.cache/ridge/roofline.json)\n"
            "  --ctx N            context length per sequence (default 4096)\n"
            "  --batch N          sequences decoding together / prompts prefilled together (default 1)\n"
            "  --cache-type T     KV cache dtype: f16 (default), bf16, f32, q8_0\n"
            "  --alpha A --gamma G  speculative decoding acceptance rate and draft length (default 0.8, 4)\n"
            "  --tp N             tensor-parallel ways (default 1)\n"
            "  --json             one JSON object\n",
            rg_synth_shape_names(), rg_machine_preset_names());
}

/* 13,476,831,232 */
static const char *commas(double v, char *buf) {
    char tmp[40];
    snprintf(tmp, sizeof tmp, "%.0f", v);
    int len = (int)strlen(tmp), neg = tmp[0] == '-', o = 0;
    for (int i = 0; i < len; i++) {
        buf[o++] = tmp[i];
        int left = len - 1 - i;
        if (i >= neg && left > 0 && left % 3 == 0) buf[o++] = ',';
    }
    buf[o] = 0;
    return buf;
}

static bool parse_num(const char *opt, const char *s, double lo, double hi, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "ridge plan: bad value '%s' for %s\n", s, opt);
        return false;
    }
    *out = v;
    return true;
}

int cmd_plan(int argc, char **argv) {
    const char *model = NULL, *shape = NULL, *machine = "this", *roof_path = NULL;
    rg_dtype wtype = RG_F16;
    rg_plan_inputs in = {
        .ctx = 4096, .batch = 1, .cache_type = RG_F16, .alpha = 0.8, .gamma = 4, .tp = 1, .act_bytes = 2};
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        double x;
        if (!strcmp(a, "--json"))
            json = true;
        else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && v)
            model = argv[++i];
        else if (!strcmp(a, "--shape") && v)
            shape = argv[++i];
        else if (!strcmp(a, "--machine") && v)
            machine = argv[++i];
        else if (!strcmp(a, "--roofline") && v)
            roof_path = argv[++i];
        else if ((!strcmp(a, "--weights") || !strcmp(a, "--cache-type")) && v) {
            rg_dtype t;
            if (!rg_dtype_from_name(argv[++i], &t) || !rg_dtype_get(t) || !rg_dtype_get(t)->supported) {
                fprintf(stderr, "ridge plan: unknown dtype '%s' for %s\n", argv[i], a);
                return RG_EXIT_USAGE;
            }
            *(a[2] == 'w' ? &wtype : &in.cache_type) = t;
        } else if (!strcmp(a, "--ctx") && v) {
            if (!parse_num(a, argv[++i], 1, 1 << 30, &x)) return RG_EXIT_USAGE;
            in.ctx = (int64_t)x;
        } else if (!strcmp(a, "--batch") && v) {
            if (!parse_num(a, argv[++i], 1, 1 << 24, &x)) return RG_EXIT_USAGE;
            in.batch = (int64_t)x;
        } else if (!strcmp(a, "--tp") && v) {
            if (!parse_num(a, argv[++i], 1, 4096, &x)) return RG_EXIT_USAGE;
            in.tp = (int64_t)x;
        } else if (!strcmp(a, "--gamma") && v) {
            if (!parse_num(a, argv[++i], 0, 1024, &x)) return RG_EXIT_USAGE;
            in.gamma = (int64_t)x;
        } else if (!strcmp(a, "--alpha") && v) {
            if (!parse_num(a, argv[++i], 0, 1, &in.alpha)) return RG_EXIT_USAGE;
        } else if (!shape && !model && a[0] != '-') {
            shape = a; /* `ridge plan llama2-7b` */
        } else {
            bool help = !strcmp(a, "-h") || !strcmp(a, "--help");
            usage(help ? stdout : stderr);
            return help ? 0 : RG_EXIT_USAGE;
        }
    }
    if (!model == !shape) {
        fprintf(stderr, "ridge plan: give a model file (-m FILE) or a shape (--shape NAME), one of them\n");
        return RG_EXIT_USAGE;
    }
    rg_plan_shape s;
    rg_err err = {0};
    if (model) {
        if (rg_plan_shape_from_file(model, &s, &err)) return cli_report(model, &err);
    } else if (!rg_plan_shape_named(shape, wtype, &s)) {
        fprintf(stderr, "ridge plan: unknown shape '%s' (or %s does not fit its rows); shapes: %s\n", shape,
                rg_dtype_name(wtype), rg_synth_shape_names());
        return RG_EXIT_USAGE;
    }
    rg_machine m;
    if (!strcmp(machine, "this")) {
        rg_roofline r;
        int rc = cli_roofline(roof_path, 0, false, json, &r);
        if (rc) return rc;
        /* quantized weights run their matmuls as int8 dots on the CPU */
        bool int8 = model ? strncmp(s.weight_desc, "F", 1) && strncmp(s.weight_desc, "BF", 2)
                          : wtype != RG_F32 && wtype != RG_F16 && wtype != RG_BF16;
        rg_machine_from_roofline(&r, int8, &m);
    } else if (!rg_machine_preset(machine, &m)) {
        fprintf(stderr, "ridge plan: unknown machine '%s' (%s, this)\n", machine, rg_machine_preset_names());
        return RG_EXIT_USAGE;
    }
    rg_plan p;
    if (rg_plan_compute(&s, &m, &in, &p, &err)) return cli_report("plan", &err);

    if (json) {
        printf("{\"model\": \"%s\", \"machine\": \"%s\", \"ctx\": %lld, \"batch\": %lld, \"cache_type\": \"%s\", "
               "\"tp\": %lld, \"alpha\": %g, \"gamma\": %lld, \"peak_flops\": %.6g, \"mem_bw_bytes_s\": %.6g, "
               "\"capacity_bytes\": %.0f, \"weight_bytes\": %.0f, \"stream_bytes\": %.0f, \"matmul_params\": %.0f, "
               "\"kv_bytes_per_token\": %.0f, \"kv_bytes_per_sequence\": %.0f, \"max_sequences\": %lld, "
               "\"decode_bytes_per_step\": %.0f, \"decode_flops_per_step\": %.6g, \"decode_mem_ms\": %.6g, "
               "\"decode_compute_ms\": %.6g, \"decode_floor_ms\": %.6g, \"decode_tok_s\": %.6g, "
               "\"prefill_flops\": %.6g, \"prefill_floor_ms\": %.6g, \"ridge_point_flop_per_byte\": %.6g, "
               "\"compute_bound_batch\": %.6g, \"compute_bound_batch_no_kv\": %.6g, \"spec_expected_tokens\": %.6g, "
               "\"tp_allreduce_bytes_per_token\": %.0f, \"tp_ring_bytes_per_gpu_per_token\": %.0f}\n",
               s.name, m.name, (long long)in.ctx, (long long)in.batch, rg_dtype_name(in.cache_type), (long long)in.tp,
               in.alpha, (long long)in.gamma, m.peak_flops, m.mem_bw, m.capacity_bytes, p.weight_bytes, p.stream_bytes,
               p.matmul_params, p.kv_bytes_per_token, p.kv_bytes_per_sequence, (long long)p.max_sequences,
               p.decode_bytes, p.decode_flops, p.decode_mem_ms, p.decode_compute_ms, p.decode_floor_ms, p.decode_tok_s,
               p.prefill_flops, p.prefill_floor_ms, p.ridge_point, p.compute_bound_batch, p.compute_bound_batch_no_kv,
               p.spec_expected_tokens, p.tp_allreduce_bytes_per_token, p.tp_ring_bytes_per_gpu_per_token);
        return 0;
    }
    char b1[48], b2[48], b3[48];
    int64_t kv_elem = rg_dtype_row_bytes(in.cache_type, s.head_dim);
    printf("model     %s: %lld layers, n_embd %lld, %lld heads / %lld KV heads of %lld, n_ff %lld, vocab %lld, "
           "weights %s%s\n",
           s.name, (long long)s.n_layer, (long long)s.n_embd, (long long)s.n_head, (long long)s.n_head_kv,
           (long long)s.head_dim, (long long)s.n_ff, (long long)s.n_vocab, s.weight_desc,
           s.tied_output ? ", output tied to the embedding" : "");
    printf("machine   %s: peak %.4g TFLOP/s (%s), bandwidth %.4g GB/s (%s), capacity %.1f GB\n", m.name,
           m.peak_flops / 1e12, m.peak_what, m.mem_bw / 1e9, m.bw_what, m.capacity_bytes / 1e9);
    printf("inputs    ctx %lld, batch %lld, KV cache %s, tp %lld, alpha %g, gamma %lld\n\n", (long long)in.ctx,
           (long long)in.batch, rg_dtype_name(in.cache_type), (long long)in.tp, in.alpha, (long long)in.gamma);

    printf("weight bytes          %s B (%.2f GB; a decode step streams %.2f GB of them)\n", commas(p.weight_bytes, b1),
           p.weight_bytes / 1e9, p.stream_bytes / 1e9);
    printf("KV bytes per token    %s B = 2 (K,V) x %lld layers x %lld KV heads x %lld bytes per head (%lld x %s)\n",
           commas(p.kv_bytes_per_token, b1), (long long)s.n_layer, (long long)s.n_head_kv, (long long)kv_elem,
           (long long)s.head_dim, rg_dtype_name(in.cache_type));
    printf("KV per sequence       %s B (%.3g GB) = %s B x %lld tokens\n", commas(p.kv_bytes_per_sequence, b1),
           p.kv_bytes_per_sequence / 1e9, commas(p.kv_bytes_per_token, b2), (long long)in.ctx);
    printf("max sequences         %lld = floor((%.1f GB x %lld - %.2f GB weights) / %.3g GB per sequence)\n",
           (long long)p.max_sequences, m.capacity_bytes / 1e9, (long long)in.tp, p.weight_bytes / 1e9,
           p.kv_bytes_per_sequence / 1e9);
    printf(
        "decode floor          %.4g ms per step (%.4g tok/s over the batch) = max(memory %.4g ms, compute %.4g ms)\n",
        p.decode_floor_ms, p.decode_tok_s, p.decode_mem_ms, p.decode_compute_ms);
    printf("  memory                %s B = %.2f GB streamed + %lld x %.3g GB KV, / (%.4g GB/s x %lld)\n",
           commas(p.decode_bytes, b1), p.stream_bytes / 1e9, (long long)in.batch, p.kv_bytes_per_sequence / 1e9,
           m.mem_bw / 1e9, (long long)in.tp);
    printf("  compute               %.4g FLOP = %lld x (2 x %s params + 4 x %lld layers x %lld heads x %lld x %lld "
           "ctx), / (%.4g TFLOP/s x %lld)\n",
           p.decode_flops, (long long)in.batch, commas(p.matmul_params, b2), (long long)s.n_layer, (long long)s.n_head,
           (long long)s.head_dim, (long long)in.ctx, m.peak_flops / 1e12, (long long)in.tp);
    printf("prefill floor         %.4g ms for %lld x %lld tokens = max(compute %.4g ms, memory %.4g ms)\n",
           p.prefill_floor_ms, (long long)in.batch, (long long)in.ctx, p.prefill_compute_ms, p.prefill_mem_ms);
    printf("  compute               %.4g FLOP = %lld x (%lld x 2 x params + causal attention 4 x layers x heads x "
           "head_dim x ctx(ctx+1)/2), logits for the last token only\n",
           p.prefill_flops, (long long)in.batch, (long long)in.ctx);
    printf("ridge point           %.1f FLOP/byte = %.4g TFLOP/s / %.4g TB/s\n", p.ridge_point, m.peak_flops / 1e12,
           m.mem_bw / 1e12);
    printf("decode intensity      %.3g FLOP/byte at batch %lld (%s)\n", p.decode_intensity, (long long)in.batch,
           p.decode_intensity < p.ridge_point ? "memory-bound" : "compute-bound");
    printf("compute-bound batch   %.0f ignoring KV (= %.1f x %.2f GB / (2 x %s params))", p.compute_bound_batch_no_kv,
           p.ridge_point, p.stream_bytes / 1e9, commas(p.matmul_params, b3));
    if (p.compute_bound_batch > 0)
        printf("; %.0f with each sequence's KV at ctx %lld\n", p.compute_bound_batch, (long long)in.ctx);
    else
        printf("; never with KV at ctx %lld (each sequence's KV bytes outgrow its FLOPs at this ridge point)\n",
               (long long)in.ctx);
    printf("speculative decoding  %.4g tokens per target step = (1 - %g^(%lld+1)) / (1 - %g)\n", p.spec_expected_tokens,
           in.alpha, (long long)in.gamma, in.alpha);
    printf("tensor parallel       %s B all-reduced per token = 2 per layer x %lld layers x %lld n_embd x %lld B",
           commas(p.tp_allreduce_bytes_per_token, b1), (long long)s.n_layer, (long long)s.n_embd,
           (long long)in.act_bytes);
    if (in.tp > 1)
        printf("; ring: %s B sent per GPU = 2 (%lld-1)/%lld x that\n", commas(p.tp_ring_bytes_per_gpu_per_token, b2),
               (long long)in.tp, (long long)in.tp);
    else
        printf(" (--tp 1: none sent)\n");
    return 0;
}
