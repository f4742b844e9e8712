/* roofline_json.c — the saved form of rg_roofline (cJSON), and where it lives.
 *
 *   {"version": 1, "cpu": "...", "threads": 2, "mem_bytes": ..., "quick": false,
 *    "measured_at": "...",
 *    "memory": {"read": {"1t": GB/s, "all": GB/s}, "write": {...}, "triad": {...}},
 *    "caches": [{"level": 1, "size_bytes": 32768, "shared_by": 1, "read": {"1t": .., "all": ..}}],
 *    "f32_fma": {"isa": "avx2+fma", "1t": GFLOP/s, "all": GFLOP/s},
 *    "int8_dot": {"isa": "avx2", "1t": GOP/s, "all": GOP/s},
 *    "ridge_points": {...derived, for readers; ignored on load...},
 *    "gpu": null | {"name": .., "mem_gbs": .., "bf16_tflops": .., "fp16_tflops": .., "launch_us": .., "mem_bytes": ..}}
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "perf/roofline.h"

static cJSON *pair(double one, double all) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "1t", one);
    cJSON_AddNumberToObject(o, "all", all);
    return o;
}

char *rg_roofline_to_json(const rg_roofline *r) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    cJSON_AddNumberToObject(root, "version", 1);
    cJSON_AddStringToObject(root, "cpu", r->cpu);
    cJSON_AddNumberToObject(root, "threads", r->n_threads);
    cJSON_AddNumberToObject(root, "mem_bytes", (double)r->mem_bytes);
    cJSON_AddBoolToObject(root, "quick", r->quick);
    cJSON_AddStringToObject(root, "measured_at", r->measured_at);
    cJSON *mem = cJSON_AddObjectToObject(root, "memory");
    for (int k = 0; k < RG_STREAM_COUNT; k++)
        cJSON_AddItemToObject(mem, rg_stream_kind_name((rg_stream_kind)k), pair(r->mem_gbs[k][0], r->mem_gbs[k][1]));
    cJSON *caches = cJSON_AddArrayToObject(root, "caches");
    for (int i = 0; i < r->n_cache; i++) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddNumberToObject(c, "level", r->cache[i].level);
        cJSON_AddNumberToObject(c, "size_bytes", (double)r->cache[i].size_bytes);
        cJSON_AddNumberToObject(c, "shared_by", r->cache[i].shared_by);
        cJSON_AddItemToObject(c, "read", pair(r->cache[i].read_gbs[0], r->cache[i].read_gbs[1]));
        cJSON_AddItemToArray(caches, c);
    }
    cJSON *f = pair(r->f32_gflops[0], r->f32_gflops[1]);
    cJSON_AddStringToObject(f, "isa", r->f32_isa);
    cJSON_AddItemToObject(root, "f32_fma", f);
    cJSON *q = pair(r->int8_gops[0], r->int8_gops[1]);
    cJSON_AddStringToObject(q, "isa", r->int8_isa);
    cJSON_AddItemToObject(root, "int8_dot", q);
    /* derived, so a reader of the file sees them without arithmetic */
    cJSON *rp = cJSON_AddObjectToObject(root, "ridge_points");
    for (int w = 0; w < 2; w++) {
        double bw = r->mem_gbs[RG_STREAM_READ][w];
        cJSON_AddNumberToObject(rp, w ? "f32_over_mem_read_all" : "f32_over_mem_read_1t",
                                bw > 0 ? r->f32_gflops[w] / bw : 0);
        cJSON_AddNumberToObject(rp, w ? "int8_over_mem_read_all" : "int8_over_mem_read_1t",
                                bw > 0 ? r->int8_gops[w] / bw : 0);
    }
    if (r->has_gpu) {
        cJSON *g = cJSON_AddObjectToObject(root, "gpu");
        cJSON_AddStringToObject(g, "name", r->gpu_name);
        cJSON_AddNumberToObject(g, "mem_gbs", r->gpu_mem_gbs);
        cJSON_AddNumberToObject(g, "bf16_tflops", r->gpu_bf16_tflops);
        cJSON_AddNumberToObject(g, "fp16_tflops", r->gpu_fp16_tflops);
        cJSON_AddNumberToObject(g, "launch_us", r->gpu_launch_us);
        cJSON_AddNumberToObject(g, "mem_bytes", (double)r->gpu_mem_bytes);
    } else {
        cJSON_AddNullToObject(root, "gpu");
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    return text;
}

/* A number field, or fail naming it. */
static bool num(const cJSON *o, const char *key, double *out, rg_err *err, const char *where) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0) {
        rg_fail(err, RG_E_FORMAT, "roofline JSON: %s%s\"%s\" missing or not a finite number >= 0", where,
                *where ? "." : "", key);
        return false;
    }
    *out = v->valuedouble;
    return true;
}

static bool get_pair(const cJSON *o, const char *key, double out[2], rg_err *err) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsObject(p)) {
        rg_fail(err, RG_E_FORMAT, "roofline JSON: \"%s\" missing or not an object", key);
        return false;
    }
    return num(p, "1t", &out[0], err, key) && num(p, "all", &out[1], err, key);
}

static void get_str(const cJSON *o, const char *key, char *buf, size_t n) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    snprintf(buf, n, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

rg_status rg_roofline_from_json(const char *text, rg_roofline *r, rg_err *err) {
    memset(r, 0, sizeof *r);
    cJSON *root = cJSON_Parse(text);
    if (!root) return rg_fail(err, RG_E_FORMAT, "roofline JSON: not valid JSON");
    rg_status s = RG_E_FORMAT;
    double v, threads, mem;
    const cJSON *memory = cJSON_GetObjectItemCaseSensitive(root, "memory");
    const cJSON *caches = cJSON_GetObjectItemCaseSensitive(root, "caches");
    if (!num(root, "version", &v, err, "") || !num(root, "threads", &threads, err, "") ||
        !num(root, "mem_bytes", &mem, err, ""))
        goto done;
    if (v != 1) {
        rg_fail(err, RG_E_FORMAT, "roofline JSON: version %g, expected 1", v);
        goto done;
    }
    if (!cJSON_IsObject(memory) || !cJSON_IsArray(caches)) {
        rg_fail(err, RG_E_FORMAT, "roofline JSON: \"memory\" or \"caches\" missing");
        goto done;
    }
    /* counts that become integers: in range before the cast */
    if (threads < 1 || threads > 1 << 20 || mem > 0x1p62) {
        rg_fail(err, RG_E_FORMAT, "roofline JSON: threads or mem_bytes out of range");
        goto done;
    }
    r->n_threads = (int)threads;
    r->mem_bytes = (int64_t)mem;
    get_str(root, "cpu", r->cpu, sizeof r->cpu);
    get_str(root, "measured_at", r->measured_at, sizeof r->measured_at);
    r->quick = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "quick"));
    for (int k = 0; k < RG_STREAM_COUNT; k++)
        if (!get_pair(memory, rg_stream_kind_name((rg_stream_kind)k), r->mem_gbs[k], err)) goto done;
    const cJSON *c;
    cJSON_ArrayForEach(c, caches) {
        if (r->n_cache == RG_MAX_CACHE_LEVELS) break;
        rg_cache_level *L = &r->cache[r->n_cache++];
        double lv, size, sh;
        if (!num(c, "level", &lv, err, "caches[]") || !num(c, "size_bytes", &size, err, "caches[]") ||
            !num(c, "shared_by", &sh, err, "caches[]") || !get_pair(c, "read", L->read_gbs, err))
            goto done;
        if (lv > 8 || size > 0x1p62 || sh < 1 || sh > 1 << 20) {
            rg_fail(err, RG_E_FORMAT, "roofline JSON: a cache level out of range");
            goto done;
        }
        L->level = (int)lv, L->size_bytes = (int64_t)size, L->shared_by = (int)sh;
    }
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "f32_fma"),
                *q = cJSON_GetObjectItemCaseSensitive(root, "int8_dot");
    if (!get_pair(root, "f32_fma", r->f32_gflops, err) || !get_pair(root, "int8_dot", r->int8_gops, err)) goto done;
    get_str(f, "isa", r->f32_isa, sizeof r->f32_isa);
    get_str(q, "isa", r->int8_isa, sizeof r->int8_isa);
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(root, "gpu");
    if (cJSON_IsObject(g)) {
        double gm = 0;
        r->has_gpu = true;
        get_str(g, "name", r->gpu_name, sizeof r->gpu_name);
        if (!num(g, "mem_gbs", &r->gpu_mem_gbs, err, "gpu") ||
            !num(g, "bf16_tflops", &r->gpu_bf16_tflops, err, "gpu") ||
            !num(g, "fp16_tflops", &r->gpu_fp16_tflops, err, "gpu") ||
            !num(g, "launch_us", &r->gpu_launch_us, err, "gpu") || !num(g, "mem_bytes", &gm, err, "gpu"))
            goto done;
        if (gm > 0x1p62) {
            rg_fail(err, RG_E_FORMAT, "roofline JSON: gpu.mem_bytes out of range");
            goto done;
        }
        r->gpu_mem_bytes = (int64_t)gm;
    }
    if (r->mem_gbs[RG_STREAM_READ][RG_ALL] <= 0 || r->f32_gflops[RG_ALL] <= 0) {
        rg_fail(err, RG_E_FORMAT, "roofline JSON: memory read or f32 peak is not positive");
        goto done;
    }
    s = RG_OK;
done:
    cJSON_Delete(root);
    return s;
}

bool rg_roofline_default_path(char *buf, size_t n) {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int w;
    if (xdg && *xdg)
        w = snprintf(buf, n, "%s/ridge/roofline.json", xdg);
    else if (home && *home)
        w = snprintf(buf, n, "%s/.cache/ridge/roofline.json", home);
    else
        return false;
    return w > 0 && (size_t)w < n;
}

/* mkdir -p of path's directory part */
static bool make_parent_dirs(const char *path) {
    char dir[1024];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir) return false;
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) return true;
    *slash = 0;
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(dir, 0755) && errno != EEXIST) return false;
        *p = '/';
    }
    return !mkdir(dir, 0755) || errno == EEXIST;
}

rg_status rg_roofline_save(const rg_roofline *r, const char *path, rg_err *err) {
    char *text = rg_roofline_to_json(r);
    if (!text) return rg_fail(err, RG_E_NOMEM, "out of memory");
    rg_status s = RG_OK;
    FILE *f = make_parent_dirs(path) ? fopen(path, "w") : NULL;
    if (!f || fputs(text, f) < 0 || fputc('\n', f) < 0) s = rg_fail(err, RG_E_IO, "cannot write %s", path);
    if (f && fclose(f) && !s) s = rg_fail(err, RG_E_IO, "cannot write %s", path);
    free(text);
    return s;
}

rg_status rg_roofline_load(const char *path, rg_roofline *r, rg_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return rg_fail(err, RG_E_IO, "cannot open %s", path);
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? 2 * cap : 8192;
            if (cap > ((size_t)16 << 20)) break; /* a roofline file is a few KB */
            char *t = realloc(text, cap);
            if (!t) break;
            text = t;
        }
        size_t got = fread(text + len, 1, 4096, f);
        len += got;
        if (got < 4096) break;
    }
    fclose(f);
    if (!text) return rg_fail(err, RG_E_NOMEM, "out of memory reading %s", path);
    text[len] = 0;
    rg_status s = rg_roofline_from_json(text, r, err);
    free(text);
    return s;
}
