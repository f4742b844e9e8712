/* bench_cuda.c — the CUDA backend's decode kernels against the copy-bandwidth
 * ceiling measured in the same run: matmul (GEMV) per weight type on the
 * llama3.2-1b / llama3-8b matrix shapes, and split-KV decode attention over the
 * paged pool at batch 1 and 16 with long contexts; the fused decode ops
 * (QKV, gate+up+SwiGLU, down+residual) against the unfused ops they replace. Each figure: median of 5
 * timings of 20 back-to-back calls (wall clock around a synchronize), bytes =
 * the resident weight bytes (or K+V bytes read), reported as GB/s and as a
 * fraction of the device-to-device copy rate (bytes read + written).
 * Then prefill attention (the tensor-core kernel): one sequence of L tokens, bf16
 * KV, causal and non-causal (every token's n_ctx = L), in ms and TFLOP/s with
 * 4·L²·head_dim·n_head FLOPs non-causal and half that causal (the count FlashAttention
 * and bench/peers/sdpa_prefill.py use); lines start with "prefill".
 * Usage: bench_cuda [device [SECTIONS]] — SECTIONS a comma list of gemv, fused,
 * attn, prefill (default all); gemv=TYPE:K:N runs only that matrix at 1 token
 * (for a profiler: ncu -k regex:gemv bench_cuda 0 gemv=BF16:2048:8192).
 * Exits 2 without a GPU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"
#include "core/fp16.h"
#include "core/quant.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static uint64_t rng = 88172645463325252ull;
static float frand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 40) & 0xffffff) / 16777216.0f - 0.5f;
}

typedef void (*bench_fn)(void *arg);

static double time_calls_n(rg_backend *be, bench_fn f, void *arg, int n) {
    double t[5];
    for (int i = 0; i < 3; i++) f(arg);
    be->sync(be, NULL);
    for (int r = 0; r < 5; r++) {
        double t0 = now_s();
        for (int i = 0; i < n; i++) f(arg);
        be->sync(be, NULL);
        t[r] = (now_s() - t0) / n;
    }
    qsort(t, 5, sizeof *t, cmp_d);
    return t[2];
}

static double time_calls(rg_backend *be, bench_fn f, void *arg) { return time_calls_n(be, f, arg, 20); }

typedef struct replay_arg {
    rg_backend *be;
    int64_t key;
} replay_arg;
static void replay_call(void *p) {
    replay_arg *a = p;
    a->be->graph_replay(a->be, a->key);
}

/* Seconds per call of f with the launches' host cost taken out: n calls recorded
 * once as a CUDA graph (backend graph key `key`, unused by anything else), the
 * graph replayed as time_calls_n times a call, divided by n. Back-to-back calls
 * (time_calls) also pay the host's launch path whenever it is slower than the
 * kernels; the PyTorch peers are timed both ways too. 0 where the backend does
 * not record graphs. */
static double time_graphed(rg_backend *be, bench_fn f, void *arg, int64_t key, int n) {
    if (!be->graph_record_begin || !be->graph_replay) return 0;
    be->graph_record_begin(be, key);
    for (int i = 0; i < n; i++) f(arg);
    be->graph_record_end(be, key); /* also runs the recording once */
    if (!be->graph_replay(be, key)) return 0;
    replay_arg r = {be, key};
    return time_calls_n(be, replay_call, &r, 1) / n;
}

typedef struct mm_arg {
    rg_backend *be;
    rg_weight *w;
    float *x, *y;
    int64_t n_tok;
    int n_copy, next;
} mm_arg;
static void mm_call(void *p) {
    mm_arg *a = p;
    a->be->matmul(a->be, &a->w[a->next], NULL, a->x, a->n_tok, a->y);
    a->next = (a->next + 1) % a->n_copy;
}

typedef struct at_arg {
    rg_backend *be;
    rg_backend_attn a;
} at_arg;
static void at_call(void *p) {
    at_arg *a = p;
    a->be->attention(a->be, &a->a);
}

static size_t resident_bytes(rg_dtype t, int64_t k, int64_t n) {
    /* the quantized bytes as stored in the file (what "counting quantized bytes" means) */
    return (size_t)rg_dtype_row_bytes(t, k) * (size_t)n;
}


/* ---- fused ops vs the ops they replace, on one layer's matrices (1 token) */

typedef struct layer_w {
    rg_weight q, k, v, gate, up, down;
} layer_w;

typedef struct fu_arg {
    rg_backend *be;
    layer_w *l;
    int n_copy, next, which; /* which: 0 qkv, 1 qkv fused, 2 gate/up/swiglu, 3 fused, 4 down+add, 5 fused */
    float *x, *xf, *q, *k, *v, *g, *u, *res;
} fu_arg;

static void fu_call(void *p) {
    fu_arg *a = p;
    rg_backend *be = a->be;
    layer_w *l = &a->l[a->next];
    switch (a->which) {
    case 0:
        be->matmul(be, &l->q, NULL, a->x, 1, a->q), be->matmul(be, &l->k, NULL, a->x, 1, a->k);
        be->matmul(be, &l->v, NULL, a->x, 1, a->v);
        break;
    case 1:
        be->matmul_multi(be, 3, (const rg_weight *const[]){&l->q, &l->k, &l->v}, (const float *const[]){0, 0, 0},
                         a->x, 1, (float *const[]){a->q, a->k, a->v});
        break;
    case 2:
        be->matmul(be, &l->gate, NULL, a->x, 1, a->g), be->matmul(be, &l->up, NULL, a->x, 1, a->u);
        be->swiglu(be, a->g, a->u, l->gate.n_out, a->g);
        break;
    case 3: be->matmul_swiglu(be, &l->gate, &l->up, a->x, 1, a->g, NULL); break;
    case 4:
        be->matmul(be, &l->down, NULL, a->xf, 1, a->q);
        be->add(be, a->res, a->q, l->down.n_out);
        break;
    case 5: be->matmul_add(be, &l->down, NULL, a->xf, 1, a->res); break;
    }
    a->next = (a->next + 1) % a->n_copy;
}

static bool load_random(rg_backend *be, rg_dtype t, int64_t k, int64_t n, rg_weight *out, rg_err *err) {
    size_t row = (size_t)rg_dtype_row_bytes(t, k);
    uint8_t *wq = malloc(row * (size_t)n);
    float *rowf = malloc((size_t)k * sizeof *rowf);
    for (int64_t r = 0; r < n; r++) {
        for (int64_t i = 0; i < k; i++) rowf[i] = frand();
        if (t == RG_BF16) for (int64_t i = 0; i < k; i++) ((uint16_t *)(wq + r * row))[i] = rg_f32_to_bf16(rowf[i]);
        else rg_quantize_ref(t, rowf, wq + r * row, k, err);
    }
    rg_weight hw = {.type = t, .k = k, .n_out = n, .data = wq};
    bool ok = !be->load_weight(be, &hw, out, err);
    free(wq), free(rowf);
    return ok;
}

static void bench_fused(rg_backend *be, double bw) {
    rg_err err = {0};
    const int64_t shapes[][3] = {{2048, 512, 8192}, {4096, 1024, 14336}}; /* d, kv width, ff: 1B and 8B */
    const rg_dtype types[] = {RG_BF16, RG_Q4_0};
    printf("%-6s %-34s %10s %10s %9s %7s\n", "type", "fused op (1 token)", "unfused us", "fused us", "fused GB/s",
           "of copy");
    for (size_t si = 0; si < 2; si++)
        for (size_t ti = 0; ti < 2; ti++) {
            int64_t d = shapes[si][0], kv = shapes[si][1], ff = shapes[si][2];
            rg_dtype t = types[ti];
            size_t layer_bytes = (size_t)rg_dtype_row_bytes(t, d) * (size_t)(2 * d + 2 * kv + 2 * ff) +
                                 (size_t)rg_dtype_row_bytes(t, ff) * (size_t)d;
            int n_copy = (int)((256u << 20) / layer_bytes) + 1;
            if (n_copy > 16) n_copy = 16;
            layer_w l[16];
            bool ok = true;
            for (int c = 0; c < n_copy && ok; c++)
                ok = load_random(be, t, d, d, &l[c].q, &err) && load_random(be, t, d, kv, &l[c].k, &err) &&
                     load_random(be, t, d, kv, &l[c].v, &err) && load_random(be, t, d, ff, &l[c].gate, &err) &&
                     load_random(be, t, d, ff, &l[c].up, &err) && load_random(be, t, ff, d, &l[c].down, &err);
            if (!ok) {
                fprintf(stderr, "bench_cuda: %s\n", err.msg);
                return;
            }
            float *hx = malloc((size_t)ff * sizeof *hx);
            for (int64_t i = 0; i < ff; i++) hx[i] = frand();
            fu_arg a = {.be = be, .l = l, .n_copy = n_copy};
            a.x = be->alloc(be, (size_t)d * 4), a.xf = be->alloc(be, (size_t)ff * 4);
            a.q = be->alloc(be, (size_t)d * 4), a.k = be->alloc(be, (size_t)kv * 4), a.v = be->alloc(be, (size_t)kv * 4);
            a.g = be->alloc(be, (size_t)ff * 4), a.u = be->alloc(be, (size_t)ff * 4), a.res = be->alloc(be, (size_t)d * 4);
            be->upload(be, a.x, hx, (size_t)d * 4), be->upload(be, a.xf, hx, (size_t)ff * 4);
            be->upload(be, a.res, hx, (size_t)d * 4);
            const char *names[3] = {"QKV (matmul_multi)", "gate+up+SwiGLU (matmul_swiglu)", "down + residual (matmul_add)"};
            const size_t bytes[3] = {(size_t)rg_dtype_row_bytes(t, d) * (size_t)(d + 2 * kv),
                                     (size_t)rg_dtype_row_bytes(t, d) * (size_t)(2 * ff),
                                     (size_t)rg_dtype_row_bytes(t, ff) * (size_t)d};
            for (int op = 0; op < 3; op++) {
                a.which = 2 * op;
                double s0 = time_calls(be, fu_call, &a);
                a.which = 2 * op + 1;
                double s1 = time_calls(be, fu_call, &a);
                char label[80];
                snprintf(label, sizeof label, "%s d=%lld", names[op], (long long)d);
                printf("%-6s %-34s %10.1f %10.1f %9.1f %6.0f%%\n", rg_dtype_name(t), label, s0 * 1e6, s1 * 1e6,
                       (double)bytes[op] / s1 / 1e9, 100 * (double)bytes[op] / s1 / bw);
            }
            be->free(be, a.x), be->free(be, a.xf), be->free(be, a.q), be->free(be, a.k), be->free(be, a.v);
            be->free(be, a.g), be->free(be, a.u), be->free(be, a.res);
            free(hx);
            for (int c = 0; c < n_copy; c++) {
                rg_weight *w[6] = {&l[c].q, &l[c].k, &l[c].v, &l[c].gate, &l[c].up, &l[c].down};
                for (int i = 0; i < 6; i++) be->unload_weight(be, w[i]);
            }
        }
}

/* Prefill attention of one sequence of each length over a fresh backend sized for
 * it (n_head query heads over n_head_kv KV heads, bf16 KV); false on a failure. */
static bool bench_prefill(int dev, int64_t n_head, int64_t n_head_kv, int64_t hd) {
    const int64_t L_max = 16384, lens[] = {1024, 4096, 16384};
    rg_err err = {0};
    rg_backend *be;
    rg_kv_pool *pool;
    rg_kv_config kc = {.n_layer = 1, .n_head_kv = n_head_kv, .head_dim = hd, .block_size = 16,
                       .n_blocks = L_max / 16 + 4, .dtype = RG_BF16};
    rg_backend_limits lim = {.max_tokens = L_max, .k_max = 64, .n_out_max = 64, .n_head = n_head,
                             .n_head_kv = n_head_kv, .head_dim = hd, .max_ctx = L_max};
    if (rg_backend_cuda_create(dev, &be, &err)) goto fail_early;
    if (rg_kv_pool_create(&kc, &pool, &err)) {
        be->destroy(be);
        goto fail_early;
    }
    if (be->reserve(be, &lim, pool, &err)) goto fail;
    int64_t n_kv = L_max * n_head_kv * hd, n_q = L_max * n_head * hd;
    float *h = malloc((size_t)n_q * sizeof *h);
    for (int64_t i = 0; i < n_q; i++) h[i] = frand();
    float *dk = be->alloc(be, (size_t)n_kv * 4), *dv = be->alloc(be, (size_t)n_kv * 4);
    float *dq = be->alloc(be, (size_t)n_q * 4), *dout = be->alloc(be, (size_t)n_q * 4);
    int32_t *pos = malloc((size_t)L_max * sizeof *pos), *nctx = malloc((size_t)L_max * sizeof *nctx);
    const int32_t **tables = malloc((size_t)L_max * sizeof *tables);
    if (!dk || !dv || !dq || !dout) {
        fprintf(stderr, "bench_cuda: out of GPU memory for the prefill buffers\n");
        return false;
    }
    be->upload(be, dk, h, (size_t)n_kv * 4);
    be->upload(be, dv, h + n_kv / 2, (size_t)n_kv / 2 * 4);
    be->upload(be, dv + n_kv / 2, h, (size_t)n_kv / 2 * 4);
    be->upload(be, dq, h, (size_t)n_q * 4);
    for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
        int64_t L = lens[li];
        rg_kv_seq seq = {0};
        if (rg_kv_seq_reserve(pool, &seq, L, &err)) goto fail;
        for (int64_t i = 0; i < L; i++) pos[i] = (int32_t)i, nctx[i] = (int32_t)i + 1, tables[i] = seq.blocks;
        be->begin_step(be, &(rg_step){.n_tok = L, .pos = pos, .tables = tables, .n_ctx = nctx, .ctx_max = L});
        be->kv_store(be, 0, dk, dv);
        for (int causal = 1; causal >= 0; causal--) {
            if (!causal) {
                for (int64_t i = 0; i < L; i++) nctx[i] = (int32_t)L;
                be->begin_step(be, &(rg_step){.n_tok = L, .pos = pos, .tables = tables, .n_ctx = nctx, .ctx_max = L});
            }
            at_arg a = {be, {.layer = 0, .n_head = n_head, .q = dq, .out = dout, .scale = 1.0f / sqrtf((float)hd)}};
            double s = time_calls_n(be, at_call, &a, L >= 16384 ? 5 : 20);
            /* QKᵀ and PV: 2 matmuls of 2·L·L·hd FLOPs per head; causal: half the pairs */
            double flops = 4.0 * (double)L * (double)L * (double)hd * (double)n_head * (causal ? 0.5 : 1.0);
            printf("prefill hd %3lld heads %2lld/%-2lld L %5lld %-10s %9.3f ms %7.1f TFLOP/s\n", (long long)hd,
                   (long long)n_head, (long long)n_head_kv, (long long)L, causal ? "causal" : "non-causal", s * 1e3,
                   flops / s / 1e12);
        }
        rg_kv_seq_free(pool, &seq);
    }
    be->free(be, dk), be->free(be, dv), be->free(be, dq), be->free(be, dout);
    free(h), free(pos), free(nctx), free(tables);
    if (be->sync(be, &err)) goto fail;
    be->destroy(be);
    rg_kv_pool_free(pool);
    return true;
fail:
    be->destroy(be);
    rg_kv_pool_free(pool);
fail_early:
    fprintf(stderr, "bench_cuda: prefill: %s\n", err.msg);
    return false;
}

static const char *sections = "gemv,fused,attn,prefill,stream";
static bool want(const char *name) {
    size_t n = strlen(name);
    for (const char *p = sections; (p = strstr(p, name)); p += n)
        if ((p == sections || p[-1] == ',') && (p[n] == ',' || p[n] == '=' || !p[n])) return true;
    return false;
}

int main(int argc, char **argv) {
    int dev = argc > 1 ? atoi(argv[1]) : 0;
    if (argc > 2) sections = argv[2];
    /* gemv=TYPE:K:N: just that matrix */
    char only_type[16] = "";
    long long only_k = 0, only_n = 0;
    const char *g = strstr(sections, "gemv=");
    if (g && sscanf(g + 5, "%15[^:]:%lld:%lld", only_type, &only_k, &only_n) != 3) {
        fprintf(stderr, "bench_cuda: gemv=TYPE:K:N expected\n");
        return 1;
    }
    rg_err err = {0};
    rg_backend *be;
    if (rg_backend_cuda_create(dev, &be, &err)) {
        fprintf(stderr, "bench_cuda: %s\n", err.msg);
        return 2;
    }
    double bw = rg_backend_cuda_copy_bandwidth(dev, (size_t)1 << 30, 10);
    printf("copy bandwidth %.1f GB/s (read + written)\n", bw / 1e9);
    /* a pool only for reserve; the attention benches make their own contexts below */
    const int64_t shapes[][3] = {/* k, n_out, count in one layer of llama3-8b-style decode */
                                 {2048, 2048, 0}, {2048, 8192, 0}, {8192, 2048, 0}, {2048, 128256, 0},
                                 {4096, 4096, 0}, {4096, 14336, 0}, {14336, 4096, 0}};
    const rg_dtype types[] = {RG_BF16, RG_Q8_0, RG_Q4_0, RG_Q4_K, RG_Q6_K};
    rg_kv_config kc = {.n_layer = 1, .n_head_kv = 8, .head_dim = 128, .block_size = 16, .n_blocks = 17000,
                       .dtype = RG_BF16};
    rg_kv_pool *pool;
    rg_backend_limits lim = {.max_tokens = 512, .k_max = 14336, .n_out_max = 128256, .n_head = 32, .n_head_kv = 8,
                             .head_dim = 128, .max_ctx = 32768};
    if (rg_kv_pool_create(&kc, &pool, &err) || be->reserve(be, &lim, pool, &err)) {
        fprintf(stderr, "bench_cuda: %s\n", err.msg);
        return 1;
    }
    printf("%-6s %-16s %5s %10s %9s %7s\n", "type", "k x n_out", "n_tok", "us/call", "GB/s", "of copy");
    float *hx = malloc((size_t)16 * 14336 * sizeof *hx);
    for (int64_t i = 0; i < 16 * 14336; i++) hx[i] = frand();
    float *x = be->alloc(be, (size_t)16 * 14336 * 4), *y = be->alloc(be, (size_t)16 * 128256 * 4);
    be->upload(be, x, hx, (size_t)16 * 14336 * 4);
    for (size_t ti = 0; want("gemv") && ti < sizeof types / sizeof *types; ti++) {
        for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
            int64_t k = shapes[si][0], n = shapes[si][1];
            rg_dtype t = types[ti];
            if (only_type[0] && (strcmp(only_type, rg_dtype_name(t)) || k != only_k || n != only_n)) continue;
            size_t row = (size_t)rg_dtype_row_bytes(t, k);
            uint8_t *wq = malloc(row * (size_t)n);
            /* random bytes are valid weights for every format but the scales: quantize a
             * random row and repeat it with per-row noise in the quantized values */
            float *rowf = malloc((size_t)k * sizeof *rowf);
            for (int64_t i = 0; i < k; i++) rowf[i] = frand();
            if (t == RG_BF16) for (int64_t i = 0; i < k; i++) ((uint16_t *)wq)[i] = rg_f32_to_bf16(rowf[i]);
            else rg_quantize_ref(t, rowf, wq, k, &err);
            for (int64_t r = 1; r < n; r++) memcpy(wq + r * row, wq, row);
            /* copies to rotate through, so that repeated calls stream from HBM, not the 50 MB L2 */
            int n_copy = (int)((256u << 20) / (row * (size_t)n)) + 1;
            if (n_copy > 32) n_copy = 32;
            rg_weight hw = {.type = t, .k = k, .n_out = n, .data = wq}, dw[32];
            for (int cpy = 0; cpy < n_copy; cpy++)
                if (be->load_weight(be, &hw, &dw[cpy], &err)) {
                    fprintf(stderr, "bench_cuda: %s\n", err.msg);
                    return 1;
                }
            free(wq), free(rowf);
            const int64_t toks[] = {1, 8, 16};
            for (int ni = 0; ni < (only_type[0] ? 1 : 3); ni++) {
                mm_arg a = {be, dw, x, y, toks[ni], n_copy, 0};
                double s = time_calls(be, mm_call, &a);
                double gbs = (double)resident_bytes(t, k, n) / s / 1e9;
                printf("%-6s %6lld x %-7lld %5lld %10.1f %9.1f %6.0f%%\n", rg_dtype_name(t), (long long)k,
                       (long long)n, (long long)toks[ni], s * 1e6, gbs, 100 * gbs * 1e9 / bw);
            }
            for (int cpy = 0; cpy < n_copy; cpy++) be->unload_weight(be, &dw[cpy]);
        }
    }
    if (want("fused")) bench_fused(be, bw);
    if (want("stream")) { /* streaming into shared memory: what the layer-stack kernel's ring can draw */
        printf("%-44s %9s %7s\n", "stream 1 GiB into shared memory (1 block/SM)", "GB/s", "of copy");
        const double ldg = rg_backend_cuda_stream_probe(dev, 2, 0, 0, 1);
        printf("%-44s %9.1f %6.0f%%\n", "plain 16-byte loads (4 in flight a thread)", ldg / 1e9, 100 * ldg / bw);
        const int cfg[][3] = {{4096, 32, 1}, {8192, 24, 1}, {16384, 12, 1}, {16384, 6, 1}, {16384, 12, 4},
                              {32768, 6, 1}, {65536, 3, 1}};
        for (int mode = 0; mode < 2; mode++)
            for (size_t i = 0; i < sizeof cfg / sizeof *cfg; i++) {
                const double r = rg_backend_cuda_stream_probe(dev, mode, cfg[i][0], cfg[i][1], cfg[i][2]);
                char label[96];
                snprintf(label, sizeof label, "TMA ring %s: %2d x %5d B, %d cop%s", mode ? "items" : "share ",
                         cfg[i][1], cfg[i][0], cfg[i][2], cfg[i][2] > 1 ? "ies" : "y");
                printf("%-44s %9.1f %6.0f%%\n", label, r / 1e9, 100 * r / bw);
            }
        for (int mode = 3; mode < 5; mode++) {
            const double r = rg_backend_cuda_stream_probe(dev, mode, 16384, 12, 1);
            printf("%-44s %9.1f %6.0f%%\n",
                   mode == 3 ? "TMA ring share, 12 x 16 KB, dot + reduce" : "TMA ring share, 12 x 16 KB, dot only",
                   r / 1e9, 100 * r / bw);
        }
    }
    /* decode attention: fill the pool through kv_store, then time one layer's attention */
    printf("%-28s %10s %9s %7s %10s %7s\n", "attention (bf16 KV, 32/8 heads, hd 128)", "us/call", "GB/s", "of copy",
           "graphed us", "of copy");
    const int64_t cases[][2] = {{1, 4096}, {1, 16384}, {1, 32768}, {16, 4096}, {16, 16384}};
    for (size_t ci = 0; want("attn") && ci < sizeof cases / sizeof *cases; ci++) {
        int64_t B = cases[ci][0], ctx = cases[ci][1];
        rg_kv_seq *seqs = calloc((size_t)B, sizeof *seqs);
        int32_t pos[512], nctx[512];
        const int32_t *tables[512];
        float *hk = malloc((size_t)512 * 1024 * sizeof *hk);
        for (int64_t i = 0; i < 512 * 1024; i++) hk[i] = frand();
        float *dk = be->alloc(be, (size_t)512 * 1024 * 4), *dq = be->alloc(be, (size_t)B * 4096 * 4),
              *dout = be->alloc(be, (size_t)B * 4096 * 4);
        be->upload(be, dk, hk, (size_t)512 * 1024 * 4);
        be->upload(be, dq, hk, (size_t)B * 4096 * 4);
        bool ok = true;
        for (int64_t b = 0; b < B && ok; b++) {
            ok = !rg_kv_seq_reserve(pool, &seqs[b], ctx, &err);
            for (int64_t p0 = 0; p0 < ctx && ok; p0 += 512) {
                for (int i = 0; i < 512; i++) pos[i] = (int32_t)(p0 + i), nctx[i] = pos[i] + 1, tables[i] = seqs[b].blocks;
                be->begin_step(be, &(rg_step){.n_tok = 512, .pos = pos, .tables = tables, .n_ctx = nctx, .ctx_max = p0 + 512});
                be->kv_store(be, 0, dk, dk);
            }
        }
        if (!ok) {
            fprintf(stderr, "bench_cuda: %s\n", err.msg);
            return 1;
        }
        for (int64_t b = 0; b < B; b++) pos[b] = (int32_t)(ctx - 1), nctx[b] = (int32_t)ctx, tables[b] = seqs[b].blocks;
        be->begin_step(be, &(rg_step){.n_tok = B, .pos = pos, .tables = tables, .n_ctx = nctx, .ctx_max = ctx});
        at_arg a = {be, {.layer = 0, .n_head = 32, .q = dq, .out = dout, .scale = 0.088f}};
        double s = time_calls(be, at_call, &a);
        double sg = time_graphed(be, at_call, &a, (int64_t)ci + 1, 20);
        double bytes = (double)B * (double)ctx * 8 * 128 * 2 * 2;
        char label[64];
        snprintf(label, sizeof label, "batch %lld, context %lld", (long long)B, (long long)ctx);
        printf("%-40s %10.1f %9.1f %6.0f%% %10.1f %6.0f%%\n", label, s * 1e6, bytes / s / 1e9, 100 * bytes / s / bw,
               sg * 1e6, sg > 0 ? 100 * bytes / sg / bw : 0);
        for (int64_t b = 0; b < B; b++) rg_kv_seq_free(pool, &seqs[b]);
        free(seqs), free(hk);
        be->free(be, dk), be->free(be, dq), be->free(be, dout);
    }
    rg_status s = be->sync(be, &err);
    if (s) fprintf(stderr, "bench_cuda: %s\n", err.msg);
    be->free(be, x), be->free(be, y);
    be->destroy(be);
    rg_kv_pool_free(pool);
    free(hx);
    /* prefill attention, each shape on its own backend (the step buffers are sized per shape) */
    bool ok = !s && (!want("prefill") || (bench_prefill(dev, 32, 8, 128) && bench_prefill(dev, 32, 8, 64) && bench_prefill(dev, 16, 16, 64)));
    return ok ? 0 : 1;
}
