/* kv_pool.c — the block pool: one 64-byte aligned allocation holding every
 * block, a refcount per block and a LIFO stack of free block ids (alloc and free
 * are O(1) pushes and pops).
 *
 * Memory layout, layer-major:
 *   [n_layer][n_blocks][K|V][n_head_kv][block_size][head_dim] elements of dtype
 * with each (layer, block) unit padded to 64 bytes. One layer's K/V for the
 * whole pool is then one region, and a sequence whose blocks are in order reads
 * a layer's context as one stream; copy-on-write copies n_layer units. (Block-
 * major order measured the same on bench_attention's decode shapes, within the
 * noise of a shared 2-core machine; so did asking for transparent huge pages.)
 *
 * The storage is not zeroed: a pool sized for the full context of every
 * sequence commits pages only as blocks are written, and positions past a
 * sequence's n_ctx are never read. The per-sequence operations live in
 * kv_seq.c. */
#include "kv/kv_pool.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/fp16.h"
#include "kv/kv_internal.h"

static size_t elem_bytes(rg_dtype t) { return t == RG_F32 ? 4 : 2; }

rg_status rg_kv_pool_create(const rg_kv_config *cfg, rg_kv_pool **out, rg_err *err) {
    *out = NULL;
    rg_kv_config c = *cfg;
    if (c.block_size == 0) c.block_size = RG_KV_DEFAULT_BLOCK_SIZE;
    if (c.n_layer <= 0 || c.n_head_kv <= 0 || c.head_dim <= 0 || c.block_size <= 0 || c.n_blocks <= 0)
        return rg_fail(err, RG_E_INVALID,
                       "kv pool: n_layer %lld, n_head_kv %lld, head_dim %lld, block_size %lld, n_blocks %lld must "
                       "all be positive",
                       (long long)c.n_layer, (long long)c.n_head_kv, (long long)c.head_dim, (long long)c.block_size,
                       (long long)c.n_blocks);
    if (c.dtype != RG_F32 && c.dtype != RG_F16 && c.dtype != RG_BF16)
        return rg_fail(err, RG_E_UNSUPPORTED, "kv pool: dtype %s (want f32, f16 or bf16)", rg_dtype_name(c.dtype));
    if (c.n_blocks > INT32_MAX || c.block_size > INT32_MAX)
        return rg_fail(err, RG_E_INVALID, "kv pool: %lld blocks of %lld tokens exceeds the 32-bit block ids",
                       (long long)c.n_blocks, (long long)c.block_size);

    /* Sizes multiply five caller-chosen numbers: check each step against SIZE_MAX. */
    size_t sz = elem_bytes(c.dtype);
    const int64_t factors[] = {c.head_dim, c.block_size, c.n_head_kv, 2};
    size_t bytes[4];
    for (int i = 0; i < 4; i++) {
        if ((uint64_t)factors[i] > (SIZE_MAX - 63) / sz)
            return rg_fail(err, RG_E_NOMEM,
                           "kv pool: a block overflows (head_dim %lld, block_size %lld, n_head_kv %lld)",
                           (long long)c.head_dim, (long long)c.block_size, (long long)c.n_head_kv);
        sz *= (size_t)factors[i];
        bytes[i] = sz;
    }
    size_t unit_bytes = (sz + 63) & ~(size_t)63;
    if ((uint64_t)c.n_blocks > SIZE_MAX / unit_bytes ||
        (uint64_t)c.n_layer > SIZE_MAX / unit_bytes / (uint64_t)c.n_blocks)
        return rg_fail(err, RG_E_NOMEM, "kv pool: %lld layers of %lld blocks of %zu bytes overflow",
                       (long long)c.n_layer, (long long)c.n_blocks, unit_bytes);

    rg_kv_pool *p = calloc(1, sizeof *p);
    if (!p) return rg_fail(err, RG_E_NOMEM, "kv pool: out of memory");
    p->cfg = c;
    p->elem_bytes = elem_bytes(c.dtype);
    p->head_bytes = bytes[1];
    p->kv_bytes = bytes[2];
    p->unit_bytes = unit_bytes;
    p->layer_bytes = (size_t)c.n_blocks * unit_bytes;
    p->data_bytes = (size_t)c.n_layer * p->layer_bytes;
    p->refcount = calloc((size_t)c.n_blocks, sizeof *p->refcount);
    p->free_ids = malloc((size_t)c.n_blocks * sizeof *p->free_ids);
    size_t data_bytes = p->data_bytes;
    if (!p->refcount || !p->free_ids || posix_memalign((void **)&p->data, 64, data_bytes)) {
        p->data = NULL;
        rg_kv_pool_free(p);
        return rg_fail(err, RG_E_NOMEM, "kv pool: cannot allocate %lld blocks (%zu bytes)", (long long)c.n_blocks,
                       data_bytes);
    }
    /* Stack top hands out block 0 first, then 1, 2...: a fresh sequence gets
     * ascending blocks, the contiguous special case. */
    for (int64_t i = 0; i < c.n_blocks; i++)
        p->free_ids[i] = (int32_t)(c.n_blocks - 1 - i);
    p->n_free = c.n_blocks;
    *out = p;
    return RG_OK;
}

void rg_kv_pool_free(rg_kv_pool *pool) {
    if (!pool) return;
    free(pool->data);
    free(pool->refcount);
    free(pool->free_ids);
    free(pool);
}

const rg_kv_config *rg_kv_pool_config(const rg_kv_pool *pool) { return &pool->cfg; }
int64_t rg_kv_pool_free_blocks(const rg_kv_pool *pool) { return pool->n_free; }
size_t rg_kv_pool_bytes(const rg_kv_pool *pool) { return pool->data_bytes; }

static bool valid_block(const rg_kv_pool *pool, int32_t block) { return block >= 0 && block < pool->cfg.n_blocks; }

int32_t rg_kv_alloc_block(rg_kv_pool *pool) {
    if (pool->n_free == 0) return -1;
    int32_t b = pool->free_ids[--pool->n_free];
    assert(pool->refcount[b] == 0);
    pool->refcount[b] = 1;
    return b;
}

/* Referencing a free or out-of-range block is a caller bug: it asserts in debug
 * builds and is ignored in release ones, so it can never push a block onto the
 * free list twice. */
void rg_kv_block_ref(rg_kv_pool *pool, int32_t block) {
    bool ok = valid_block(pool, block) && pool->refcount[block] > 0;
    assert(ok);
    if (ok) pool->refcount[block]++;
}

void rg_kv_block_unref(rg_kv_pool *pool, int32_t block) {
    bool ok = valid_block(pool, block) && pool->refcount[block] > 0;
    assert(ok);
    if (!ok) return;
    if (--pool->refcount[block] == 0) pool->free_ids[pool->n_free++] = block;
}

int32_t rg_kv_block_refcount(const rg_kv_pool *pool, int32_t block) {
    return valid_block(pool, block) ? pool->refcount[block] : -1;
}

void *rg_kv_k(const rg_kv_pool *pool, int32_t block, int64_t layer, int64_t head) {
    return pool->data + (size_t)layer * pool->layer_bytes + (size_t)block * pool->unit_bytes +
           (size_t)head * pool->head_bytes;
}

void *rg_kv_v(const rg_kv_pool *pool, int32_t block, int64_t layer, int64_t head) {
    return (uint8_t *)rg_kv_k(pool, block, layer, head) + pool->kv_bytes;
}

void rg_kv_pool_set_copy_fn(rg_kv_pool *pool, void (*fn)(void *user, int32_t dst, int32_t src), void *user) {
    pool->copy_fn = fn;
    pool->copy_user = user;
}

void rg_kv_copy_block(rg_kv_pool *pool, int32_t dst, int32_t src) {
    if (pool->copy_fn) pool->copy_fn(pool->copy_user, dst, src);
    else rg_kv_pool_copy_storage(pool, dst, src);
}

void rg_kv_pool_copy_storage(rg_kv_pool *pool, int32_t dst, int32_t src) {
    for (int64_t l = 0; l < pool->cfg.n_layer; l++)
        memcpy(rg_kv_k(pool, dst, l, 0), rg_kv_k(pool, src, l, 0), pool->unit_bytes);
}

/* Conversion is scalar on purpose: a store moves n_tok * n_head_kv * head_dim
 * elements per layer, thousands of times fewer than attention reads, and the
 * portable helpers round exactly as the tests' reference does. */
static void store_row(rg_dtype t, void *dst, const float *src, int64_t n) {
    if (t == RG_F32) {
        memcpy(dst, src, (size_t)n * sizeof(float));
    } else if (t == RG_F16) {
        uint16_t *d = dst;
        for (int64_t i = 0; i < n; i++)
            d[i] = rg_f32_to_f16(src[i]);
    } else {
        uint16_t *d = dst;
        for (int64_t i = 0; i < n; i++)
            d[i] = rg_f32_to_bf16(src[i]);
    }
}

void rg_kv_store(rg_kv_pool *pool, int64_t layer, const float *k, const float *v, int64_t n_tok,
                 const int32_t *const *tables, const int32_t *pos) {
    const rg_kv_config *c = &pool->cfg;
    assert(layer >= 0 && layer < c->n_layer);
    size_t row_bytes = (size_t)c->head_dim * pool->elem_bytes;
    for (int64_t t = 0; t < n_tok; t++) {
        assert(pos[t] >= 0);
        int32_t block = tables[t][pos[t] / c->block_size];
        assert(valid_block(pool, block) && pool->refcount[block] > 0);
        size_t slot = (size_t)(pos[t] % c->block_size) * row_bytes;
        for (int64_t h = 0; h < c->n_head_kv; h++) {
            int64_t off = (t * c->n_head_kv + h) * c->head_dim;
            store_row(c->dtype, (uint8_t *)rg_kv_k(pool, block, layer, h) + slot, k + off, c->head_dim);
            store_row(c->dtype, (uint8_t *)rg_kv_v(pool, block, layer, h) + slot, v + off, c->head_dim);
        }
    }
}
