/* prefix_cache.h — full KV blocks kept after their request ends, found again by
 * the token ids they hold (RadixAttention-style prefix reuse).
 *
 * A cached block is a node of a tree over blocks: its key is
 * hash(parent's key, the block's block_size token ids) (xxHash64 seeded with the
 * parent's key), so a node stands for the whole token prefix up to its end and
 * two prompts share exactly the nodes of their common full-block prefix. A hash
 * map from key to node makes a lookup one probe per block; tokens and parent are
 * compared too, so a hash collision can never hand out the wrong K/V.
 *
 * The cache holds one reference on each cached block. A block nobody else holds
 * (refcount 1) on a leaf node is evictable; eviction takes the least recently used
 * such leaf first (its parent may become a leaf and go next). */
#ifndef RG_KV_PREFIX_CACHE_H
#define RG_KV_PREFIX_CACHE_H

#include <stdint.h>

#include "kv/kv_pool.h"

typedef struct rg_prefix_cache rg_prefix_cache;

typedef struct rg_prefix_stats {
    int64_t n_cached_blocks; /* blocks the cache holds */
    int64_t lookup_tokens;   /* prompt tokens looked up (rg_prefix_cache_count_lookup) */
    int64_t hit_tokens;      /* of which found in the cache */
    int64_t n_evicted;       /* blocks given back to the pool */
} rg_prefix_stats;

/* The cache can hold as many nodes as the pool has blocks. Ownership: the
 * caller's; rg_prefix_cache_free releases every block it holds (call it before
 * rg_kv_pool_free). */
rg_status rg_prefix_cache_create(rg_kv_pool *pool, rg_prefix_cache **out, rg_err *err);
void rg_prefix_cache_free(rg_prefix_cache *c);

/* Give seq the cached blocks of the longest full-block prefix of
 * tokens[0, n_tokens) beyond the blocks it holds, each with a new reference, and
 * advance seq->n_tokens over them. seq must end on a block boundary with no block
 * reserved past it (an empty seq does); its own blocks are kept. Returns the
 * tokens added (0 on a miss, or when the table cannot grow). Matched nodes become
 * most recently used. */
int64_t rg_prefix_cache_attach(rg_prefix_cache *c, rg_kv_seq *seq, const int32_t *tokens, int64_t n_tokens);

/* Count a lookup that was used (attach may be tried and undone when a request
 * does not fit yet; only the admitted attempt counts toward the hit rate). */
void rg_prefix_cache_count_lookup(rg_prefix_cache *c, int64_t n_tokens, int64_t n_hit);

/* Offer seq's full blocks holding tokens[0, n_tokens) (n_tokens <= seq->n_tokens)
 * to the cache: each block whose prefix is not cached yet gains a node and a
 * reference; prefixes already cached are just marked used. */
void rg_prefix_cache_insert(rg_prefix_cache *c, const rg_kv_seq *seq, const int32_t *tokens, int64_t n_tokens);

/* Evict up to n blocks (LRU evictable leaves); returns how many went back to the
 * pool. */
int64_t rg_prefix_cache_evict(rg_prefix_cache *c, int64_t n);

/* Cached blocks only the cache holds: an upper bound on what evict can free. */
int64_t rg_prefix_cache_n_evictable(const rg_prefix_cache *c);

/* Drop every node whose block only the cache holds. */
void rg_prefix_cache_clear(rg_prefix_cache *c);

rg_prefix_stats rg_prefix_cache_stats(const rg_prefix_cache *c);

#endif
