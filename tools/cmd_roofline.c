/* cmd_roofline.c — `ridge roofline`: measure this machine's ceilings, print them
 * with the ridge point of each compute/bandwidth pair, and save them as JSON so
 * profile, plan and bench reuse them (cli_roofline below). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "perf/machine.h"
#include "perf/roofline.h"

static void progress(int step, int n_steps, const char *what, void *user) {
    (void)user;
    bool tty = isatty(STDERR_FILENO);
    if (step >= n_steps) {
        if (tty) fprintf(stderr, "\r%-60s\r", "");
        return;
    }
    fprintf(stderr, tty ? "\rmeasuring [%2d/%d] %-40s" : "measuring [%d/%d] %s\n", step + 1, n_steps, what);
    fflush(stderr);
}

int cli_roofline(const char *path, int n_threads, bool quick, bool quiet, rg_roofline *out) {
    char def[1024];
    if (!path) path = rg_roofline_default_path(def, sizeof def) ? def : NULL;
    rg_err err = {0};
    if (path && !rg_roofline_load(path, out, &err)) {
        if (!quiet) fprintf(stderr, "ridge: using the roofline measured %s (%s)\n", out->measured_at, path);
        return 0;
    }
    if (path && err.status != RG_E_IO) return cli_report(path, &err); /* exists but unusable: say so */
    if (!quiet)
        fprintf(stderr, "ridge: no saved roofline%s%s; measuring this machine (ridge roofline)\n", path ? " at " : "",
                path ? path : "");
    rg_probe_opts po = {.n_threads = n_threads, .quick = quick, .progress = quiet ? NULL : progress};
    if (rg_roofline_measure(&po, out, &err)) return cli_report("roofline", &err);
    rg_roofline_measure_gpu(out, &err); /* fills the gpu section on a CUDA build, a no-op otherwise */
    if (path && rg_roofline_save(out, path, &err)) fprintf(stderr, "ridge: %s (not saved)\n", err.msg);
    return 0;
}

static void size_name(int64_t bytes, char *buf, size_t n) {
    if (bytes >= (1 << 20))
        snprintf(buf, n, "%lld MiB", (long long)(bytes >> 20));
    else
        snprintf(buf, n, "%lld KiB", (long long)(bytes >> 10));
}

static void print_table(const rg_roofline *r) {
    printf("machine   %s, %d threads%s, measured %s\n", r->cpu, r->n_threads, r->quick ? " (--quick)" : "",
           r->measured_at);
    printf("\n%-34s %14s %14s\n", "ceiling", "1 thread", "all threads");
    for (int k = 0; k < RG_STREAM_COUNT; k++)
        printf("%-34s %9.1f GB/s %9.1f GB/s\n",
               k == RG_STREAM_READ    ? "memory read"
               : k == RG_STREAM_WRITE ? "memory write"
                                      : "memory triad (2 reads + 1 write)",
               r->mem_gbs[k][0], r->mem_gbs[k][1]);
    for (int i = 0; i < r->n_cache; i++) {
        char label[64], sz[32];
        size_name(r->cache[i].size_bytes, sz, sizeof sz);
        snprintf(label, sizeof label, "L%d read (%s%s)", r->cache[i].level, sz,
                 r->cache[i].shared_by > 1 ? ", shared" : "");
        printf("%-34s %9.1f GB/s %9.1f GB/s\n", label, r->cache[i].read_gbs[0], r->cache[i].read_gbs[1]);
    }
    char label[64];
    snprintf(label, sizeof label, "f32 FMA (%s)", r->f32_isa);
    printf("%-34s %6.1f GFLOP/s %6.1f GFLOP/s\n", label, r->f32_gflops[0], r->f32_gflops[1]);
    snprintf(label, sizeof label, "int8 dot (%s)", r->int8_isa);
    if (r->int8_gops[1] > 0)
        printf("%-34s %8.1f GOP/s %8.1f GOP/s\n", label, r->int8_gops[0], r->int8_gops[1]);
    else
        printf("%-34s %14s %14s\n", label, "n/a", "n/a");
    if (r->has_gpu)
        printf("gpu       %s: %.0f GB/s device memory, %.1f TFLOP/s bf16, %.1f TFLOP/s fp16, launch %.1f us\n",
               r->gpu_name, r->gpu_mem_gbs, r->gpu_bf16_tflops, r->gpu_fp16_tflops, r->gpu_launch_us);

    printf("\nridge points (FLOP/byte = compute / bandwidth; an op of lower intensity is bound by the bandwidth)\n");
    printf("%-34s %14s %14s\n", "pair", "1 thread", "all threads");
    const char *cname[2] = {"f32 FMA", "int8 dot"};
    for (int c = 0; c < 2; c++) {
        const double *peak = c ? r->int8_gops : r->f32_gflops;
        if (peak[1] <= 0) continue;
        printf("%-34s %14.2f %14.2f\n", c ? "int8 dot / memory read" : "f32 FMA / memory read",
               peak[0] / r->mem_gbs[RG_STREAM_READ][0], peak[1] / r->mem_gbs[RG_STREAM_READ][1]);
        for (int i = 0; i < r->n_cache; i++) {
            char pl[64];
            snprintf(pl, sizeof pl, "%s / L%d read", cname[c], r->cache[i].level);
            printf("%-34s %14.2f %14.2f\n", pl, peak[0] / r->cache[i].read_gbs[0], peak[1] / r->cache[i].read_gbs[1]);
        }
    }
    printf("\ndatasheet presets (ridge plan --machine NAME)\n");
    printf("%-8s %-16s %14s %10s %10s %12s\n", "preset", "part", "bf16 TFLOP/s", "TB/s", "GB", "FLOP/byte");
    const char *names[] = {"a100", "h100", "h200", "b200"};
    for (int i = 0; i < 4; i++) {
        rg_machine m;
        rg_machine_preset(names[i], &m);
        printf("%-8s %-16s %14.0f %10.2f %10.0f %12.1f\n", names[i], m.name, m.peak_flops / 1e12, m.mem_bw / 1e12,
               m.capacity_bytes / 1e9, rg_machine_ridge_point(&m));
    }
}

int cmd_roofline(int argc, char **argv) {
    const char *out_path = NULL;
    int n_threads = 0;
    bool quick = false, json = false, save = true, show = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--quick"))
            quick = true;
        else if (!strcmp(a, "--json"))
            json = true;
        else if (!strcmp(a, "--no-save"))
            save = false;
        else if (!strcmp(a, "--show"))
            show = true;
        else if (!strcmp(a, "--out") && i + 1 < argc)
            out_path = argv[++i];
        else if ((!strcmp(a, "-t") || !strcmp(a, "--threads")) && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 256) {
                fprintf(stderr, "ridge roofline: bad value '%s' for %s\n", argv[i], a);
                return RG_EXIT_USAGE;
            }
            n_threads = (int)v;
        } else {
            bool help = !strcmp(a, "-h") || !strcmp(a, "--help");
            fprintf(help ? stdout : stderr,
                    "usage: ridge roofline [--quick] [-t N] [--out FILE] [--json] [--no-save] [--show]\n"
                    "  measures memory (read, write, triad), cache and compute (f32 FMA, int8 dot) ceilings,\n"
                    "  one thread and all threads, and saves them (default ~/.cache/ridge/roofline.json)\n"
                    "  --quick    small buffers and short runs (seconds; less exact)\n"
                    "  --show     print the saved results instead of measuring\n"
                    "  --json     print the JSON instead of the table\n");
            return help ? 0 : RG_EXIT_USAGE;
        }
    }
    char def[1024];
    const char *path = out_path ? out_path : rg_roofline_default_path(def, sizeof def) ? def : NULL;
    rg_roofline r;
    rg_err err = {0};
    if (show) {
        if (!path) return fprintf(stderr, "ridge roofline: no HOME to find the saved results in\n"), RG_EXIT_USAGE;
        if (rg_roofline_load(path, &r, &err)) return cli_report(path, &err);
    } else {
        rg_probe_opts po = {.n_threads = n_threads, .quick = quick, .progress = progress};
        if (rg_roofline_measure(&po, &r, &err)) return cli_report("roofline", &err);
        rg_roofline_measure_gpu(&r, &err); /* CUDA builds only; the message is not an error here */
        if (save && path) {
            if (rg_roofline_save(&r, path, &err)) return cli_report("roofline", &err);
            fprintf(stderr, "saved %s\n", path);
        }
    }
    if (json) {
        char *text = rg_roofline_to_json(&r);
        if (!text) return fprintf(stderr, "ridge: out of memory\n"), RG_EXIT_BAD_INPUT;
        printf("%s\n", text);
        free(text);
    } else {
        print_table(&r);
    }
    return 0;
}
