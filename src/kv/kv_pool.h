/* kv_pool.h — the paged KV cache: a pool of fixed-size blocks shared by all
 * sequences, each sequence reaching its K/V through a block table.
 *
 * A block holds `block_size` consecutive token positions (default 16) of every
 * layer and KV head. Storage per block and layer is [n_head_kv][block_size][head_dim]
 * for K and the same for V, so attention streams one head's keys contiguously
 * within a block. Position p of a sequence lives in block table[p / block_size],
 * slot p % block_size. Blocks are refcounted: a shared prefix is one block with
 * several owners; writing into a block with refcount > 1 needs copy-on-write by
 * the caller (rg_kv_seq_make_writable). A contiguous cache is the special case of
 * one sequence whose blocks are in order. */
#ifndef RG_KV_POOL_H
#define RG_KV_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/error.h"

#define RG_KV_DEFAULT_BLOCK_SIZE 16

typedef struct rg_kv_config {
    int64_t n_layer, n_head_kv, head_dim;
    int64_t block_size;  /* tokens per block, 0 = default 16 */
    int64_t n_blocks;    /* blocks in the pool */
    rg_dtype dtype;      /* RG_F32, RG_F16 or RG_BF16 */
} rg_kv_config;

typedef struct rg_kv_pool rg_kv_pool;

/* One sequence's view of the pool. Owned by the caller; zero-initialize. */
typedef struct rg_kv_seq {
    int32_t *blocks;     /* block table */
    int64_t n_blocks, cap_blocks;
    int64_t n_tokens;    /* positions [0, n_tokens) are written */
} rg_kv_seq;

/* Allocates every block up front (one 64-byte aligned allocation, not zeroed).
 * RG_E_INVALID for non-positive sizes, RG_E_UNSUPPORTED for another dtype,
 * RG_E_NOMEM when the sizes overflow or the allocation fails. The caller owns
 * *out and frees it with rg_kv_pool_free (sequences must be freed first). */
rg_status rg_kv_pool_create(const rg_kv_config *cfg, rg_kv_pool **out, rg_err *err);
void rg_kv_pool_free(rg_kv_pool *pool);
/* The configuration with block_size resolved (never 0). */
const rg_kv_config *rg_kv_pool_config(const rg_kv_pool *pool);
int64_t rg_kv_pool_free_blocks(const rg_kv_pool *pool);
size_t rg_kv_pool_bytes(const rg_kv_pool *pool); /* block storage, all blocks */

/* Block allocation and sharing, O(1) each. alloc returns -1 when the pool is
 * exhausted, else a block with refcount 1. ref/unref of a free or out-of-range
 * block is a caller bug (asserts; ignored in release builds). refcount is 0 for
 * a free block and -1 for an id outside the pool. */
int32_t rg_kv_alloc_block(rg_kv_pool *pool);
void rg_kv_block_ref(rg_kv_pool *pool, int32_t block);
void rg_kv_block_unref(rg_kv_pool *pool, int32_t block); /* frees at zero */
int32_t rg_kv_block_refcount(const rg_kv_pool *pool, int32_t block);

/* Make room for positions [0, n_tokens_total): allocates blocks as needed, and
 * copies-on-write any shared block that positions [seq->n_tokens, n_tokens_total)
 * fall in (a fork's last partial block), so the caller may store there at once.
 * Does not change seq->n_tokens (the caller sets it once the K/V are stored).
 * RG_E_NOMEM (with nothing changed) when the pool lacks free blocks. */
rg_status rg_kv_seq_reserve(rg_kv_pool *pool, rg_kv_seq *seq, int64_t n_tokens_total, rg_err *err);
/* Ensure the block holding position pos is owned by seq alone (copy-on-write). */
rg_status rg_kv_seq_make_writable(rg_kv_pool *pool, rg_kv_seq *seq, int64_t pos, rg_err *err);
/* Drop positions >= n_tokens: unrefs the blocks past ceil(n_tokens / block_size),
 * reserved ones included; seq->n_tokens becomes min(seq->n_tokens, n_tokens). */
void rg_kv_seq_truncate(rg_kv_pool *pool, rg_kv_seq *seq, int64_t n_tokens);
/* Share src's written blocks (those holding [0, src->n_tokens)) with dst, for
 * n > 1 samples / prefix reuse; dst->n_tokens = src->n_tokens. dst must hold no
 * blocks (RG_E_INVALID otherwise); RG_E_NOMEM if its table cannot grow. */
rg_status rg_kv_seq_fork(rg_kv_pool *pool, const rg_kv_seq *src, rg_kv_seq *dst, rg_err *err);
/* Release all of seq's blocks and its table; seq is zeroed, ready for reuse. */
void rg_kv_seq_free(rg_kv_pool *pool, rg_kv_seq *seq);

/* Base of a block's K (or V) rows for one layer and KV head:
 * block_size rows of head_dim elements of the pool's dtype. */
void *rg_kv_k(const rg_kv_pool *pool, int32_t block, int64_t layer, int64_t head);
void *rg_kv_v(const rg_kv_pool *pool, int32_t block, int64_t layer, int64_t head);

/* Copy-on-write copies a block's K/V (every layer) through fn when one is
 * installed: a backend whose KV storage is not the pool's own (GPU memory)
 * installs its block copy here; NULL restores the default, copy_storage. */
void rg_kv_pool_set_copy_fn(rg_kv_pool *pool, void (*fn)(void *user, int32_t dst, int32_t src), void *user);
/* Copy every layer of block src into block dst in the pool's own storage. */
void rg_kv_pool_copy_storage(rg_kv_pool *pool, int32_t dst, int32_t src);

/* Store K and V for n_tok tokens of one layer: k, v are [n_tok][n_head_kv][head_dim]
 * f32; token t goes to position pos[t] of the sequence whose block table is
 * tables[t] (converted to the pool dtype). The blocks must be reserved. */
void rg_kv_store(rg_kv_pool *pool, int64_t layer, const float *k, const float *v, int64_t n_tok,
                 const int32_t *const *tables, const int32_t *pos);

#endif
