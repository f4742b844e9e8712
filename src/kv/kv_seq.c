/* kv_seq.c — a sequence's block table over the pool: reserve, truncate, fork
 * and copy-on-write.
 *
 * Invariant: seq->blocks[0, n_blocks) each hold one reference of the pool, and
 * n_blocks * block_size >= n_tokens. Blocks past ceil(n_tokens / block_size) are
 * reserved for positions about to be written. Every function that can fail
 * checks everything it needs (free blocks, table room) before touching the pool
 * or the table, so a failure leaves both as they were. */
#include <stdlib.h>
#include <string.h>

#include "kv/kv_internal.h"
#include "kv/kv_pool.h"

static int64_t blocks_for(const rg_kv_pool *pool, int64_t n_tokens) {
    int64_t bs = pool->cfg.block_size;
    return n_tokens / bs + (n_tokens % bs != 0); /* no n + bs - 1: n may be near INT64_MAX */
}

/* Grow the table to hold at least n blocks; the contents are kept. */
static rg_status grow_table(rg_kv_seq *seq, int64_t n, rg_err *err) {
    if (n <= seq->cap_blocks) return RG_OK;
    int64_t cap = seq->cap_blocks * 2 > n ? seq->cap_blocks * 2 : n;
    if (cap < 8) cap = 8;
    int32_t *b = realloc(seq->blocks, (size_t)cap * sizeof *b);
    if (!b) return rg_fail(err, RG_E_NOMEM, "kv: out of memory for a block table of %lld entries", (long long)cap);
    seq->blocks = b;
    seq->cap_blocks = cap;
    return RG_OK;
}

/* Replace table entry i, which the caller knows is shared, by a private copy.
 * The caller has checked that a block is free. */
static void copy_on_write(rg_kv_pool *pool, rg_kv_seq *seq, int64_t i) {
    int32_t old = seq->blocks[i], fresh = rg_kv_alloc_block(pool);
    rg_kv_copy_block(pool, fresh, old);
    rg_kv_block_unref(pool, old);
    seq->blocks[i] = fresh;
}

rg_status rg_kv_seq_reserve(rg_kv_pool *pool, rg_kv_seq *seq, int64_t n_tokens_total, rg_err *err) {
    if (n_tokens_total < 0)
        return rg_fail(err, RG_E_INVALID, "kv: cannot reserve %lld tokens", (long long)n_tokens_total);
    if (n_tokens_total <= seq->n_tokens) return RG_OK;
    int64_t need = blocks_for(pool, n_tokens_total);
    int64_t n_new = need > seq->n_blocks ? need - seq->n_blocks : 0;
    /* Existing blocks that positions [n_tokens, n_tokens_total) fall in must be
     * private before anything is stored there: a forked sequence shares its
     * last, partial block with its parent. */
    int64_t first = seq->n_tokens / pool->cfg.block_size, last = need < seq->n_blocks ? need : seq->n_blocks;
    int64_t n_cow = 0;
    for (int64_t i = first; i < last; i++)
        n_cow += rg_kv_block_refcount(pool, seq->blocks[i]) > 1;
    if (n_new > pool->n_free - n_cow)
        return rg_fail(err, RG_E_NOMEM, "kv: %lld tokens need %lld more blocks, %lld free", (long long)n_tokens_total,
                       (long long)(n_new + n_cow), (long long)pool->n_free);
    rg_status s = grow_table(seq, need, err);
    if (s) return s;
    for (int64_t i = first; i < last; i++)
        if (rg_kv_block_refcount(pool, seq->blocks[i]) > 1) copy_on_write(pool, seq, i);
    while (seq->n_blocks < need)
        seq->blocks[seq->n_blocks++] = rg_kv_alloc_block(pool);
    return RG_OK;
}

rg_status rg_kv_seq_make_writable(rg_kv_pool *pool, rg_kv_seq *seq, int64_t pos, rg_err *err) {
    if (pos < 0 || pos / pool->cfg.block_size >= seq->n_blocks)
        return rg_fail(err, RG_E_INVALID, "kv: position %lld is outside the %lld reserved blocks", (long long)pos,
                       (long long)seq->n_blocks);
    int64_t i = pos / pool->cfg.block_size;
    if (rg_kv_block_refcount(pool, seq->blocks[i]) == 1) return RG_OK;
    if (pool->n_free == 0) return rg_fail(err, RG_E_NOMEM, "kv: no free block for copy-on-write");
    copy_on_write(pool, seq, i);
    return RG_OK;
}

void rg_kv_seq_truncate(rg_kv_pool *pool, rg_kv_seq *seq, int64_t n_tokens) {
    if (n_tokens < 0) n_tokens = 0;
    int64_t keep = blocks_for(pool, n_tokens);
    while (seq->n_blocks > keep)
        rg_kv_block_unref(pool, seq->blocks[--seq->n_blocks]);
    if (seq->n_tokens > n_tokens) seq->n_tokens = n_tokens;
}

rg_status rg_kv_seq_fork(rg_kv_pool *pool, const rg_kv_seq *src, rg_kv_seq *dst, rg_err *err) {
    if (dst == src || dst->n_blocks != 0)
        return rg_fail(err, RG_E_INVALID, "kv: fork into a sequence that holds %lld blocks", (long long)dst->n_blocks);
    /* Only the written blocks are shared; src's reserved tail stays its own. */
    int64_t n = blocks_for(pool, src->n_tokens);
    rg_status s = grow_table(dst, n, err);
    if (s) return s;
    for (int64_t i = 0; i < n; i++) {
        rg_kv_block_ref(pool, src->blocks[i]);
        dst->blocks[i] = src->blocks[i];
    }
    dst->n_blocks = n;
    dst->n_tokens = src->n_tokens;
    return RG_OK;
}

void rg_kv_seq_free(rg_kv_pool *pool, rg_kv_seq *seq) {
    rg_kv_seq_truncate(pool, seq, 0);
    free(seq->blocks);
    memset(seq, 0, sizeof *seq);
}
