/* kv_internal.h — the pool's private state, shared by kv_pool.c (blocks,
 * refcounts, storage) and kv_seq.c (block tables). Not for use outside src/kv. */
#ifndef RG_KV_INTERNAL_H
#define RG_KV_INTERNAL_H

#include "kv/kv_pool.h"

struct rg_kv_pool {
    rg_kv_config cfg;   /* block_size resolved (never 0) */
    size_t elem_bytes;  /* 4 (f32) or 2 (f16, bf16) */
    size_t head_bytes;  /* one head's rows in a block: block_size * head_dim elements */
    size_t kv_bytes;    /* K (or V) of one layer: n_head_kv * head_bytes */
    size_t unit_bytes;  /* K then V of one (layer, block): 2 * kv_bytes, rounded up to 64 */
    size_t layer_bytes; /* one layer of every block: n_blocks * unit_bytes */
    size_t data_bytes;  /* n_layer * layer_bytes */
    uint8_t *data;      /* 64-byte aligned */
    int32_t *refcount;  /* per block; 0 = on the free list */
    int32_t *free_ids;  /* stack of free blocks, n_free of them */
    int64_t n_free;
    void (*copy_fn)(void *user, int32_t dst, int32_t src); /* NULL: copy_storage */
    void *copy_user;
};

/* Copy every layer of block src into block dst: through copy_fn when a backend
 * installed one (its storage is elsewhere), else in the pool's own storage. */
void rg_kv_copy_block(rg_kv_pool *pool, int32_t dst, int32_t src);

#endif
