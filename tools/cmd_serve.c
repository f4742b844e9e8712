/* cmd_serve.c — `ridge serve`: an OpenAI-compatible HTTP server with continuous
 * batching (src/server, src/engine/scheduler.h).
 *
 * The KV pool is sized once at start: --kv-blocks N, or --kv-memory MiB, or by
 * default enough for every sequence's full context capped at 2 GiB. SIGINT or
 * SIGTERM stops the server cleanly (requests in flight are cancelled). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "engine/scheduler.h"
#include "gen_opts.h"
#include "perf/machine.h"
#include "perf/plan.h"
#include "server/server.h"
#include "tok/chat_template.h"

static int parse_i64(const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *out) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) {
        fprintf(stderr, "ridge serve: bad value '%s' for %s\n", s, opt);
        return -1;
    }
    *out = v;
    return 1;
}

static void usage(FILE *f) {
    fprintf(f, "usage: ridge serve -m FILE [options]\n"
               "  --host ADDR            IPv4 address to listen on (default 127.0.0.1)\n"
               "  --port N               (default 8080; 0 = any free port, printed at start)\n"
               "  --max-seqs N           sequences generating at once (default 64)\n"
               "  --max-batch-tokens N   tokens per engine step, decode + prefill chunks (default 256)\n"
               "  --max-queue N          queued requests before 503 (default 256)\n"
               "  --kv-blocks N          KV pool size in 16-token blocks\n"
               "  --kv-memory MIB        KV pool size in MiB (default: full context per sequence, at most 2048)\n"
               "  --no-prefix-cache      do not keep and reuse prompt blocks across requests\n"
               "  --static-batching      baseline: admit new requests only when the running batch is done\n"
               "  --logits-on-host       baseline: bring every logits row to the host even on all-greedy steps\n"
               "                         (which otherwise get only argmax ids, taken on the device)\n"
               "  --model-name NAME      id reported by /v1/models (default: the file name)\n"
               "  -t N, -c N, --cache-type T, --attn A, --chat-template NAME, --gpu, --device N, --no-graphs\n"
               "                         (as for ridge run)\n"
               "With a saved roofline (`ridge roofline`), /metrics adds each step's predicted floor for its\n"
               "batch mix (ridge_engine_step_floor_seconds_total) next to its measured time.\n");
}

/* The model's chat template, or none (chat requests then get 400). */
static int load_template(const gen_opts *o, const rg_model *m, rg_chat_template *t, bool *have) {
    rg_err err = {0};
    rg_status st = gen_chat_template(o, m, t, &err);
    *have = st == RG_OK;
    if (!o->chat_template && (st == RG_E_NOT_FOUND || st == RG_E_UNSUPPORTED)) {
        fprintf(stderr, "ridge serve: %s; /v1/chat/completions is off (name one with --chat-template)\n",
                st == RG_E_NOT_FOUND ? "the model has no chat template" : err.msg);
        return 0;
    }
    return st ? cli_report(o->chat_template ? "--chat-template" : "chat template", &err) : 0;
}

/* The model's shape and this machine's saved ceilings (`ridge roofline`), so
 * the scheduler can add up each step's predicted floor for /metrics. Nothing is
 * measured here: without a saved roofline (or, on the GPU, one without GPU
 * ceilings) there is no prediction, and the server says so. */
static bool load_floor_model(const gen_opts *o, rg_plan_shape *shape, rg_machine *mach) {
    char path[1024];
    rg_roofline r;
    rg_err err = {0};
    bool gpu = o->backend == RG_BACKEND_CUDA;
    if (!rg_roofline_default_path(path, sizeof path) || rg_roofline_load(path, &r, &err) || (gpu && !r.has_gpu)) {
        fprintf(stderr, "ridge serve: no saved %sroofline (run `ridge roofline%s` once): no predicted step floors\n",
                gpu ? "GPU " : "", gpu ? " --quick` in a CUDA build" : " --quick");
        return false;
    }
    if (rg_plan_shape_from_file(o->model, shape, &err)) {
        fprintf(stderr, "ridge serve: %s: no predicted step floors\n", err.msg);
        return false;
    }
    r.has_gpu = r.has_gpu && gpu; /* the CPU backend runs against the CPU's ceilings */
    /* quantized weights run their matmuls as int8 dots on the CPU (as ridge plan) */
    bool int8 = strncmp(shape->weight_desc, "F", 1) && strncmp(shape->weight_desc, "BF", 2);
    rg_machine_from_roofline(&r, int8, mach);
    fprintf(stderr, "ridge serve: step floors against %s: %.1f GB/s (%s), %.1f GFLOP/s (%s)\n", mach->name,
            mach->mem_bw / 1e9, mach->bw_what, mach->peak_flops / 1e9, mach->peak_what);
    return true;
}

int cmd_serve(int argc, char **argv) {
    gen_opts o;
    gen_opts_default(&o);
    rg_server_params sp = {.host = "127.0.0.1", .port = 8080};
    rg_sched_params sch = {.max_seqs = 64, .max_batch_tokens = 256, .max_waiting = 256, .prefix_cache = true};
    int64_t kv_blocks = 0, kv_mib = 0, port = 8080;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int r = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--no-prefix-cache"))
            sch.prefix_cache = false, r = 1;
        else if (!strcmp(a, "--static-batching"))
            sch.static_batching = true, r = 1;
        else if (!strcmp(a, "--logits-on-host"))
            sch.logits_on_host = true, r = 1;
        else if (v && !strcmp(a, "--host"))
            sp.host = v, r = 1, i++;
        else if (v && !strcmp(a, "--model-name"))
            sp.model_name = v, r = 1, i++;
        else if (v && !strcmp(a, "--port"))
            r = parse_i64(a, v, 0, 65535, &port), i++;
        else if (v && !strcmp(a, "--max-seqs"))
            r = parse_i64(a, v, 1, 4096, &sch.max_seqs), i++;
        else if (v && !strcmp(a, "--max-batch-tokens"))
            r = parse_i64(a, v, 1, 1 << 16, &sch.max_batch_tokens), i++;
        else if (v && !strcmp(a, "--max-queue"))
            r = parse_i64(a, v, 1, 1 << 20, &sch.max_waiting), i++;
        else if (v && !strcmp(a, "--kv-blocks"))
            r = parse_i64(a, v, 2, (int64_t)1 << 30, &kv_blocks), i++;
        else if (v && !strcmp(a, "--kv-memory"))
            r = parse_i64(a, v, 1, (int64_t)1 << 30, &kv_mib), i++;
        else
            r = gen_opts_parse(&o, argc, argv, &i);
        if (r < 0) return RG_EXIT_USAGE;
        if (r == 0) {
            fprintf(stderr, "ridge serve: unknown option '%s'\n", a);
            usage(stderr);
            return RG_EXIT_USAGE;
        }
    }
    if (!o.model) {
        fprintf(stderr, "ridge serve: no model given (-m FILE)\n");
        return RG_EXIT_USAGE;
    }
    sp.port = (int)port;
    if (sch.max_batch_tokens < sch.max_seqs) sch.max_batch_tokens = sch.max_seqs;
    rg_err err = {0};
    rg_model *m = NULL;
    if (rg_model_load(o.model, NULL, NULL, &m, &err)) return cli_report(o.model, &err);
    const rg_hparams *hp = &m->hp;
    int64_t n_ctx = o.n_ctx < hp->n_ctx_train ? o.n_ctx : hp->n_ctx_train;
    int64_t bytes_per_block =
        hp->n_layer * 2 * hp->n_head_kv * hp->head_dim * RG_KV_DEFAULT_BLOCK_SIZE * (o.kv_type == RG_F32 ? 4 : 2);
    if (!kv_blocks) {
        int64_t cap = (kv_mib ? kv_mib : 2048) * ((int64_t)1 << 20) / bytes_per_block;
        kv_blocks = sch.max_seqs * ((n_ctx + RG_KV_DEFAULT_BLOCK_SIZE - 1) / RG_KV_DEFAULT_BLOCK_SIZE);
        if (kv_mib || kv_blocks > cap) kv_blocks = cap;
        if (kv_blocks < 2) kv_blocks = 2;
    }
    rg_plan_shape floor_shape;
    rg_machine floor_machine;
    if (load_floor_model(&o, &floor_shape, &floor_machine))
        sch.floor_shape = &floor_shape, sch.floor_machine = &floor_machine;
    rg_ctx_params cp = {
        .n_threads = o.n_threads,
        .n_ctx = n_ctx,
        .n_seq_max = sch.max_seqs,
        .max_batch_tokens = sch.max_batch_tokens,
        .kv_blocks = kv_blocks,
        .kv_type = o.kv_type,
        .attn = o.attn,
        .backend = o.backend,
        .device = o.device,
        .no_graphs = o.no_graphs,
    };
    rg_ctx *ctx = NULL;
    rg_scheduler *sched = NULL;
    rg_server *srv = NULL;
    rg_chat_template tmpl = {0};
    bool have_tmpl = false;
    int rc = load_template(&o, m, &tmpl, &have_tmpl);
    if (rc) goto done;
    if (rg_ctx_create(m, &cp, &ctx, &err) || rg_sched_create(ctx, &sch, &sched, &err)) {
        rc = cli_report(o.model, &err);
        goto done;
    }
    const char *base = strrchr(o.model, '/');
    if (!sp.model_name) sp.model_name = base ? base + 1 : o.model;
    /* SIGINT/SIGTERM are taken by sigwait below: block them before any thread starts */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (rg_server_start(sched, m, have_tmpl ? &tmpl : NULL, &sp, &srv, &err)) {
        rc = cli_report("serve", &err);
        goto done;
    }
    fprintf(stderr,
            "ridge serve: listening on http://%s:%d (model %s; %lld KV blocks of %d tokens = %.0f MiB; max %lld "
            "sequences, %lld tokens per step; prefix cache %s)\n",
            sp.host, rg_server_port(srv), sp.model_name, (long long)kv_blocks, RG_KV_DEFAULT_BLOCK_SIZE,
            (double)kv_blocks * (double)bytes_per_block / (1 << 20), (long long)sch.max_seqs,
            (long long)sch.max_batch_tokens, sch.prefix_cache ? "on" : "off");
    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "ridge serve: signal %d, shutting down\n", sig);
    rg_server_stop(srv);
done:
    rg_sched_free(sched);
    rg_chat_template_clear(&tmpl);
    rg_ctx_free(ctx);
    rg_model_free(m);
    return rc;
}
