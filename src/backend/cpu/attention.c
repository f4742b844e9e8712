/* attention.c — rg_cpu_attention: checks the arguments, plans the work items,
 * lays out the scratch, and runs the items on the thread pool.
 *
 * Flash work items are (token, range of its KV blocks) with every head: a
 * thread then reads each block's K and V for all KV heads, [K heads][V heads]
 * contiguous in the pool, as two forward streams. The first version made items
 * of (token, KV head), reading one 2 KiB slab out of every 32 KiB block: decode
 * at n_ctx 8192 (32/8 heads, head_dim 64, f16) took 5.1 ms against 2.1 ms now
 * (3.3 vs 8.1 GB/s of KV; one thread, CPU time, Zen 3). A token's context is
 * split into ranges (split-K, merged by the online-softmax rule) only when
 * there are fewer tokens than SPLIT_ITEMS_PER_THREAD * n_threads, i.e. in
 * decode; prefill batches have parallelism across tokens.
 *
 * Naive items are (token, query head), as the baseline is usually written.
 * Items of either kind differ in cost as their n_ctx do, so threads claim them
 * one at a time from an atomic counter instead of taking fixed ranges. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend/cpu/attention_internal.h"

#define SPLIT_ITEMS_PER_THREAD 4
/* A range's merge costs ~1/100 of its attention at 64 positions; short ranges
 * keep decode at a few thousand positions spread over all threads, and let the
 * calling thread take over the items of a worker the OS has descheduled. */
#define SPLIT_MIN_POSITIONS 64

typedef struct attn_task {
    rg_attn_job job;
    float *thread_scratch;
    int64_t scratch_floats; /* per thread, a multiple of 16 (one cache line) */
    int64_t n_items;
    /* flash split-K: token t owns items [first_item[t], first_item[t + 1]), each
     * of chunk_blocks blocks with a partial record in part; chunk_blocks 0 means
     * one item per token and no partials */
    int64_t chunk_blocks;
    int64_t *first_item;
    float *part;
    int64_t *split_tok, n_split;
    _Atomic int64_t next;
} attn_task;

/* Byte offsets of the scratch sections, each 64-byte aligned. */
typedef struct scratch_layout {
    size_t first_item, split_tok, part, threads, total;
} scratch_layout;

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

static scratch_layout layout(int64_t n_tok_split, int64_t n_items_split, int64_t part_floats, int64_t thread_floats,
                             int nth) {
    scratch_layout s;
    s.first_item = 0;
    s.split_tok = align64((size_t)(n_tok_split + 1) * sizeof(int64_t));
    s.part = s.split_tok + align64((size_t)n_tok_split * sizeof(int64_t));
    s.threads = s.part + align64((size_t)(n_items_split * part_floats) * sizeof(float));
    s.total = s.threads + (size_t)nth * (size_t)thread_floats * sizeof(float);
    return s;
}

static int64_t n_blocks_of(const rg_attn_job *j, int64_t t) {
    int64_t n = j->a->n_ctx[t];
    return n > 0 ? (n + j->block_size - 1) / j->block_size : 0;
}

/* Items of token t in split-K: ranges of chunk_blocks blocks, at least one. */
static int64_t n_ranges_of(const rg_attn_job *j, int64_t t, int64_t chunk_blocks) {
    int64_t n = (n_blocks_of(j, t) + chunk_blocks - 1) / chunk_blocks;
    return n > 1 ? n : 1;
}

/* The whole context of token t in one item: straight into out. */
static void flash_whole(const rg_attn_job *j, int64_t t, float *scratch) {
    int64_t n_head = j->a->n_head, hd = j->head_dim;
    float *out = j->a->out + t * n_head * hd, *m = scratch + rg_attn_flash_scratch(j), *l = m + n_head;
    rg_attn_flash_range(j, t, 0, n_blocks_of(j, t), out, m, l, scratch);
    /* n_ctx == 0 leaves l = 0 and out = 0: the output is zeros */
    for (int64_t h = 0; h < n_head; h++)
        j->isa->scale(out + h * hd, hd, l[h] > 0 ? 1.0f / l[h] : 0.0f);
}

static void attn_run(void *arg, int ith, int nth) {
    attn_task *tk = arg;
    const rg_attn_job *j = &tk->job;
    (void)nth;
    float *scratch = tk->thread_scratch + ith * tk->scratch_floats;
    int64_t t = 0;
    for (;;) {
        int64_t i = atomic_fetch_add_explicit(&tk->next, 1, memory_order_relaxed);
        if (i >= tk->n_items) break;
        if (j->a->kind == RG_ATTN_NAIVE) {
            rg_attn_naive_item(j, i / j->a->n_head, i % j->a->n_head, scratch);
        } else if (!tk->chunk_blocks) {
            flash_whole(j, i, scratch);
        } else {
            while (tk->first_item[t + 1] <= i)
                t++; /* items are claimed in increasing order */
            int64_t c = i - tk->first_item[t], n_chunks = tk->first_item[t + 1] - tk->first_item[t];
            if (n_chunks == 1) {
                flash_whole(j, t, scratch);
                continue;
            }
            int64_t b0 = c * tk->chunk_blocks, b1 = b0 + tk->chunk_blocks, nb = n_blocks_of(j, t);
            float *rec = tk->part + i * rg_attn_flash_part_floats(j), *m = rec + j->a->n_head * j->head_dim;
            rg_attn_flash_range(j, t, b0, b1 < nb ? b1 : nb, rec, m, m + j->a->n_head, scratch);
        }
    }
}

static void merge_all(const attn_task *tk) {
    const rg_attn_job *j = &tk->job;
    int64_t n_head = j->a->n_head;
    for (int64_t i = 0; i < tk->n_split; i++) {
        int64_t t = tk->split_tok[i], first = tk->first_item[t], n_part = tk->first_item[t + 1] - first;
        for (int64_t h = 0; h < n_head; h++)
            rg_attn_flash_merge(j, n_part, tk->part + first * rg_attn_flash_part_floats(j), h,
                                j->a->out + (t * n_head + h) * j->head_dim);
    }
}

static rg_attn_job make_job(const rg_kv_pool *pool, const rg_attn_args *a, int64_t n_head) {
    const rg_kv_config *c = rg_kv_pool_config(pool);
    rg_attn_job j = {
        .a = a,
        .isa = rg_attn_isa_get(),
        .n_head_kv = c->n_head_kv,
        .head_dim = c->head_dim,
        .block_size = c->block_size,
        .group = n_head / c->n_head_kv,
        .dtype = c->dtype,
    };
    return j;
}

/* Per-thread floats, rounded to a cache line so threads never share one. */
static int64_t thread_floats(const rg_attn_job *j, int64_t n_head, rg_attn_kind kind, int64_t max_ctx) {
    int64_t n = kind == RG_ATTN_FLASH ? rg_attn_flash_scratch(j) + 2 * n_head : rg_attn_naive_scratch(j, max_ctx);
    return (n + 15) & ~(int64_t)15;
}

rg_status rg_cpu_attention_reserve(rg_cpu_ctx *ctx, const rg_kv_pool *pool, int64_t n_head, int64_t max_ctx,
                                   rg_err *err) {
    rg_attn_args a = {.pool = pool, .n_head = n_head};
    rg_attn_job j = make_job(pool, &a, n_head);
    int nth = rg_threadpool_size(ctx->pool);
    /* split-K only with fewer than `target` tokens, and then at most 2 * target items */
    int64_t target = SPLIT_ITEMS_PER_THREAD * nth;
    scratch_layout flash = layout(target, 2 * target, rg_attn_flash_part_floats(&j),
                                  thread_floats(&j, n_head, RG_ATTN_FLASH, max_ctx), nth);
    scratch_layout naive = layout(0, 0, 0, thread_floats(&j, n_head, RG_ATTN_NAIVE, max_ctx), nth);
    size_t bytes = flash.total > naive.total ? flash.total : naive.total;
    if (!rg_cpu_scratch_grow(ctx, bytes))
        return rg_fail(err, RG_E_NOMEM, "out of memory for %zu bytes of attention scratch", bytes);
    return RG_OK;
}

void rg_cpu_attention(rg_cpu_ctx *ctx, const rg_attn_args *a) {
    const rg_kv_config *c = rg_kv_pool_config(a->pool);
    if (a->n_head <= 0 || a->n_head % c->n_head_kv || a->layer < 0 || a->layer >= c->n_layer ||
        (a->kind != RG_ATTN_FLASH && a->kind != RG_ATTN_NAIVE)) {
        /* the model loader rejects such shapes; reaching here is a bug */
        fprintf(stderr, "rg_cpu_attention: %lld heads over %lld kv heads, layer %lld of %lld, kind %d\n",
                (long long)a->n_head, (long long)c->n_head_kv, (long long)a->layer, (long long)c->n_layer,
                (int)a->kind);
        abort();
    }
    if (a->n_tok <= 0) return;
    attn_task tk = {.job = make_job(a->pool, a, a->n_head)};
    const rg_attn_job *j = &tk.job;
    int nth = rg_threadpool_size(ctx->pool);
    int64_t max_ctx = 0, total_blocks = 0, target = SPLIT_ITEMS_PER_THREAD * nth;
    for (int64_t t = 0; t < a->n_tok; t++) {
        max_ctx = a->n_ctx[t] > max_ctx ? a->n_ctx[t] : max_ctx;
        total_blocks += n_blocks_of(j, t);
    }
    bool split = a->kind == RG_ATTN_FLASH && nth > 1 && a->n_tok < target;
    if (split) {
        int64_t min_chunk = SPLIT_MIN_POSITIONS / j->block_size;
        tk.chunk_blocks = (total_blocks + target - 1) / target;
        if (tk.chunk_blocks < min_chunk) tk.chunk_blocks = min_chunk;
        if (tk.chunk_blocks < 1) tk.chunk_blocks = 1;
        for (int64_t t = 0; t < a->n_tok; t++)
            tk.n_items += n_ranges_of(j, t, tk.chunk_blocks);
    } else {
        tk.n_items = a->kind == RG_ATTN_FLASH ? a->n_tok : a->n_tok * a->n_head;
    }
    tk.scratch_floats = thread_floats(j, a->n_head, a->kind, max_ctx);
    scratch_layout s = split ? layout(a->n_tok, tk.n_items, rg_attn_flash_part_floats(j), tk.scratch_floats, nth)
                             : layout(0, 0, 0, tk.scratch_floats, nth);
    if (!rg_cpu_scratch_grow(ctx, s.total)) {
        fprintf(stderr, "rg_cpu_attention: out of memory for %zu bytes of scratch\n", s.total);
        abort();
    }
    uint8_t *base = ctx->scratch;
    tk.thread_scratch = (float *)(void *)(base + s.threads);
    if (split) {
        tk.first_item = (int64_t *)(void *)(base + s.first_item);
        tk.split_tok = (int64_t *)(void *)(base + s.split_tok);
        tk.part = (float *)(void *)(base + s.part);
        tk.first_item[0] = 0;
        for (int64_t t = 0; t < a->n_tok; t++) {
            int64_t n = n_ranges_of(j, t, tk.chunk_blocks);
            tk.first_item[t + 1] = tk.first_item[t] + n;
            if (n > 1) tk.split_tok[tk.n_split++] = t;
        }
    }
    atomic_init(&tk.next, 0);
    rg_threadpool_run(ctx->pool, attn_run, &tk);
    /* at most 2 * SPLIT_ITEMS_PER_THREAD * n_threads records: cheaper here than
     * another fork-join */
    merge_all(&tk);
}
