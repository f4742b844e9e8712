/* machine.c — datasheet presets and the measured machine (machine.h). */
#include "perf/machine.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *key, *name;
    double tflops, tb_s, gb;
} presets[] = {
    /* NVIDIA datasheets, SXM parts, dense (no 2:4 sparsity) bf16 tensor throughput */
    {"a100", "A100 SXM 80GB", 312, 2.0, 80},
    {"h100", "H100 SXM", 989, 3.35, 80},
    {"h200", "H200 SXM", 989, 4.8, 141},
    {"b200", "B200", 2250, 8.0, 192},
};

bool rg_machine_preset(const char *name, rg_machine *out) {
    for (size_t i = 0; i < sizeof presets / sizeof *presets; i++) {
        if (strcasecmp(name, presets[i].key)) continue;
        memset(out, 0, sizeof *out);
        snprintf(out->name, sizeof out->name, "%s", presets[i].name);
        out->peak_flops = presets[i].tflops * 1e12;
        out->mem_bw = presets[i].tb_s * 1e12;
        out->capacity_bytes = presets[i].gb * 1e9;
        snprintf(out->peak_what, sizeof out->peak_what, "dense bf16, datasheet");
        snprintf(out->bw_what, sizeof out->bw_what, "HBM, datasheet");
        return true;
    }
    return false;
}

const char *rg_machine_preset_names(void) { return "a100, h100, h200, b200"; }

void rg_machine_from_roofline(const rg_roofline *r, bool use_int8, rg_machine *out) {
    memset(out, 0, sizeof *out);
    if (r->has_gpu) {
        snprintf(out->name, sizeof out->name, "%.63s", r->gpu_name);
        out->peak_flops = r->gpu_bf16_tflops * 1e12;
        out->mem_bw = r->gpu_mem_gbs * 1e9;
        out->capacity_bytes = (double)r->gpu_mem_bytes;
        snprintf(out->peak_what, sizeof out->peak_what, "bf16 GEMM, measured");
        snprintf(out->bw_what, sizeof out->bw_what, "device memory, measured");
        return;
    }
    snprintf(out->name, sizeof out->name, "this (%.56s)", r->cpu);
    bool int8 = use_int8 && r->int8_gops[RG_ALL] > 0;
    out->peak_flops = (int8 ? r->int8_gops[RG_ALL] : r->f32_gflops[RG_ALL]) * 1e9;
    out->mem_bw = r->mem_gbs[RG_STREAM_READ][RG_ALL] * 1e9;
    out->capacity_bytes = (double)r->mem_bytes;
    snprintf(out->peak_what, sizeof out->peak_what, "%s %s, %d threads, measured", int8 ? "int8 dot" : "f32 FMA",
             int8 ? r->int8_isa : r->f32_isa, r->n_threads);
    snprintf(out->bw_what, sizeof out->bw_what, "memory read, %d threads, measured", r->n_threads);
}

double rg_machine_ridge_point(const rg_machine *m) { return m->mem_bw > 0 ? m->peak_flops / m->mem_bw : 0; }
