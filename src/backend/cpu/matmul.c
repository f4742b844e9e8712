/* matmul.c — y[t][r] = W[r] · act(x[t]): quantize the n_tok activation rows
 * once into ctx->scratch (kernels.h formats), then run the dot kernels over
 * rows × tokens, each call covering 1-2 weight rows × up to 4 tokens.
 *   decode (n_tok <= 4): threads stream runs of weight rows, each row read
 *     exactly once — bandwidth-bound, the weight bytes are the cost;
 *   prefill: tiles of ~TILE_WEIGHT_BYTES of rows × TOKENS_PER_TILE tokens;
 *     within a tile, 4 activation rows at a time run against every row of the
 *     tile, which stays in L2, so DRAM sees each weight byte once per
 *     TOKENS_PER_TILE tokens and the kernel is compute-bound.
 * Tiles of both kinds are handed out through an atomic counter. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/kernels.h"
#include "backend/cpu/ops.h"

#define TILE_WEIGHT_BYTES (160 * 1024) /* half of Zen 3's 512 KiB L2, leaving room for activations */
/* Tokens per tile: the weight tile is reused this many times from L2 before
 * the next is fetched. 128 vs 64 (activations then spill from L2 to L3 for f32
 * rows): f32/f16/q8_0/q4_0 prefill at k=2048, 1 thread, 52/64/62/95 -> 54/63/67/103
 * GFLOP/s; capping activations at 192 KiB (24 f32 tokens) was worse, 40/48/57/90. */
#define TOKENS_PER_TILE 128
#define DECODE_TILE_BYTES (64 * 1024)

bool rg_cpu_scratch_grow(rg_cpu_ctx *ctx, size_t bytes) {
    if (ctx->scratch && ctx->scratch_bytes >= bytes) return true;
    bytes = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, bytes);
    if (!p) return false;
    free(ctx->scratch);
    ctx->scratch = p;
    ctx->scratch_bytes = bytes;
    return true;
}

rg_status rg_cpu_reserve(rg_cpu_ctx *ctx, int64_t k, int64_t n_tok, rg_err *err) {
    /* f32 rows are the widest activation format */
    size_t bytes = rg_cpu_act_row_bytes(RG_ACT_F32, k) * (size_t)n_tok;
    if (!rg_cpu_scratch_grow(ctx, bytes))
        return rg_fail(err, RG_E_NOMEM, "out of memory for %zu bytes of matmul scratch", bytes);
    return RG_OK;
}

typedef struct mm_job {
    rg_dot_fn dot;
    rg_act_fn act;
    const uint8_t *w;
    size_t w_row;
    uint8_t *a;
    size_t a_row;
    const float *x;
    int64_t k, n_out, n_tok;
    float *y;
    int64_t tile_rows, tile_tokens, n_row_tiles, n_tiles;
    _Atomic int64_t next_tile;
} mm_job;

/* rows [r0, r1) × tokens [t0, t1): 4 tokens at a time, 1 or 2 rows at a time against them */
static void run_block(const mm_job *j, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t += RG_DOT_MAX_NT) {
        int nt = (int)(t1 - t < RG_DOT_MAX_NT ? t1 - t : RG_DOT_MAX_NT);
        const uint8_t *a = j->a + (size_t)t * j->a_row;
        float *y = j->y + t * j->n_out;
        /* 2 rows per call only for prefill: in decode two interleaved row streams
         * per thread cost f16/bf16 ~5 points of the read probe (A/B, 5 runs) */
        const int64_t nr_max = j->n_tok <= RG_DOT_MAX_NT ? 1 : RG_DOT_MAX_NR;
        for (int64_t r = r0; r < r1; r += nr_max) {
            int nr = (int)(r1 - r < nr_max ? r1 - r : nr_max);
            j->dot(j->k, j->w + (size_t)r * j->w_row, j->w_row, nr, a, j->a_row, nt, y + r, (size_t)j->n_out);
        }
    }
}

static void quantize_task(void *arg, int ith, int nth) {
    mm_job *j = arg;
    int64_t lo, hi;
    rg_split_range(j->n_tok, ith, nth, &lo, &hi);
    for (int64_t t = lo; t < hi; t++)
        j->act(j->x + t * j->k, j->a + (size_t)t * j->a_row, j->k);
}

/* Both paths hand out tiles through an atomic counter rather than a fixed
 * split, so a thread that is descheduled or slower leaves its share to the
 * others instead of stalling the step. Decode tiles are all tokens × a run of
 * rows; prefill tiles go token-block-major, so threads working at the same
 * time share the activations in L3. */
static void tiles_task(void *arg, int ith, int nth) {
    mm_job *j = arg;
    (void)ith, (void)nth;
    for (;;) {
        int64_t i = atomic_fetch_add_explicit(&j->next_tile, 1, memory_order_relaxed);
        if (i >= j->n_tiles) break;
        int64_t tb = i / j->n_row_tiles, rb = i % j->n_row_tiles;
        int64_t r0 = rb * j->tile_rows, r1 = r0 + j->tile_rows < j->n_out ? r0 + j->tile_rows : j->n_out;
        int64_t t0 = tb * j->tile_tokens, t1 = t0 + j->tile_tokens < j->n_tok ? t0 + j->tile_tokens : j->n_tok;
        run_block(j, r0, r1, t0, t1);
    }
}

void rg_cpu_matmul(rg_cpu_ctx *ctx, rg_dtype wtype, const void *w, int64_t k, int64_t n_out, const float *x,
                   int64_t n_tok, float *y) {
    const rg_cpu_kernels *kern = rg_cpu_kernels_get();
    int64_t w_row = rg_dtype_row_bytes(wtype, k);
    if ((unsigned)wtype >= RG_DTYPE_COUNT || !kern->dot[wtype] || w_row < 0) {
        /* the model loader admits only types with kernels; reaching here is a bug */
        fprintf(stderr, "rg_cpu_matmul: no kernel for %s with k=%lld\n", rg_dtype_name(wtype), (long long)k);
        abort();
    }
    if (n_tok <= 0 || n_out <= 0) return;
    if (k == 0) { /* empty dot products */
        memset(y, 0, (size_t)(n_tok * n_out) * sizeof *y);
        return;
    }
    rg_act_fmt fmt = kern->fmt[wtype];
    mm_job j = {
        .dot = kern->dot[wtype],
        .act = kern->act[fmt],
        .w = w,
        .w_row = (size_t)w_row,
        .a_row = rg_cpu_act_row_bytes(fmt, k),
        .x = x,
        .k = k,
        .n_out = n_out,
        .n_tok = n_tok,
        .y = y,
    };
    if (!rg_cpu_scratch_grow(ctx, j.a_row * (size_t)n_tok)) {
        fprintf(stderr, "rg_cpu_matmul: out of memory for %zu bytes of scratch\n", j.a_row * (size_t)n_tok);
        abort();
    }
    j.a = ctx->scratch;
    int nth = rg_threadpool_size(ctx->pool);
    int64_t rows;
    if (n_tok <= RG_DOT_MAX_NT) {
        quantize_task(&j, 0, 1); /* a few microseconds: not worth waking the pool twice */
        /* decode: each weight byte is read once; ~8 tiles per thread of at least
         * DECODE_TILE_BYTES (long enough runs for the prefetchers) */
        rows = n_out / (8 * nth);
        if (rows * w_row < DECODE_TILE_BYTES) rows = DECODE_TILE_BYTES / w_row;
        j.tile_tokens = n_tok;
    } else {
        rg_threadpool_run(ctx->pool, quantize_task, &j);
        rows = TILE_WEIGHT_BYTES / w_row;
        rows = rows > 256 ? 256 : rows;
        j.tile_tokens = TOKENS_PER_TILE;
    }
    j.tile_rows = rows < 4 ? 4 : rows;
    j.n_row_tiles = (n_out + j.tile_rows - 1) / j.tile_rows;
    j.n_tiles = j.n_row_tiles * ((n_tok + j.tile_tokens - 1) / j.tile_tokens);
    atomic_init(&j.next_tile, 0);
    rg_threadpool_run(ctx->pool, tiles_task, &j);
}
