/* prefix_cache.c — the block tree of prefix_cache.h: nodes in one array (as many
 * as the pool has blocks), a chained hash map from key to node, parent links and
 * child counts (a node is a leaf when its count is 0).
 *
 * Eviction scans the nodes for the least recently used evictable leaf: O(nodes)
 * per evicted block, a few microseconds for pools of thousands of blocks, next to
 * a forward step of milliseconds; an ordered structure would pay off only for
 * far larger pools. */
#include "kv/prefix_cache.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define ROOT_KEY 0x9E3779B97F4A7C15ULL /* the seed of a first block's key */

typedef struct node {
    uint64_t key;
    uint64_t last_used;
    int32_t block;
    int32_t parent; /* node index, -1 for a first block */
    int32_t n_children;
    int32_t hnext; /* next node in the hash bucket, or the free list */
    bool used;
} node;

struct rg_prefix_cache {
    rg_kv_pool *pool;
    int64_t block_size, cap;
    node *nodes;
    int32_t *tokens;    /* [cap][block_size]: each node's token ids */
    int32_t *buckets;   /* n_buckets heads, -1 empty */
    uint64_t n_buckets; /* a power of two */
    int32_t free_head;
    uint64_t clock;
    rg_prefix_stats st;
};

rg_status rg_prefix_cache_create(rg_kv_pool *pool, rg_prefix_cache **out, rg_err *err) {
    *out = NULL;
    const rg_kv_config *kc = rg_kv_pool_config(pool);
    rg_prefix_cache *c = calloc(1, sizeof *c);
    if (!c) return rg_fail(err, RG_E_NOMEM, "prefix cache: out of memory");
    c->pool = pool;
    c->block_size = kc->block_size;
    c->cap = kc->n_blocks;
    c->n_buckets = 16;
    while (c->n_buckets < (uint64_t)c->cap * 2)
        c->n_buckets *= 2;
    c->nodes = calloc((size_t)c->cap, sizeof *c->nodes);
    c->tokens = malloc((size_t)c->cap * (size_t)c->block_size * sizeof *c->tokens);
    c->buckets = malloc(c->n_buckets * sizeof *c->buckets);
    if (!c->nodes || !c->tokens || !c->buckets) {
        int64_t cap = c->cap;
        rg_prefix_cache_free(c);
        return rg_fail(err, RG_E_NOMEM, "prefix cache: out of memory for %lld nodes", (long long)cap);
    }
    for (uint64_t i = 0; i < c->n_buckets; i++)
        c->buckets[i] = -1;
    for (int64_t i = 0; i < c->cap; i++)
        c->nodes[i].hnext = i + 1 < c->cap ? (int32_t)(i + 1) : -1;
    c->free_head = 0;
    *out = c;
    return RG_OK;
}

void rg_prefix_cache_free(rg_prefix_cache *c) {
    if (!c) return;
    for (int64_t i = 0; c->nodes && i < c->cap; i++)
        if (c->nodes[i].used) rg_kv_block_unref(c->pool, c->nodes[i].block);
    free(c->nodes);
    free(c->tokens);
    free(c->buckets);
    free(c);
}

static uint64_t block_key(uint64_t parent_key, const int32_t *tok, int64_t bs) {
    return XXH64(tok, (size_t)bs * sizeof *tok, parent_key);
}

static int32_t find(const rg_prefix_cache *c, uint64_t key, int32_t parent, const int32_t *tok) {
    for (int32_t i = c->buckets[key & (c->n_buckets - 1)]; i >= 0; i = c->nodes[i].hnext) {
        const node *n = &c->nodes[i];
        if (n->key == key && n->parent == parent &&
            !memcmp(c->tokens + (size_t)i * c->block_size, tok, (size_t)c->block_size * sizeof *tok))
            return i;
    }
    return -1;
}

int64_t rg_prefix_cache_attach(rg_prefix_cache *c, rg_kv_seq *seq, const int32_t *tokens, int64_t n_tokens) {
    int64_t bs = c->block_size, n_full = n_tokens / bs, have = seq->n_blocks;
    /* only a sequence that ends on a block boundary, with no block reserved past
     * it, can take more whole blocks */
    if (seq->n_tokens != have * bs || n_full <= have) return 0;
    if (seq->cap_blocks < n_full) {
        int32_t *b = realloc(seq->blocks, (size_t)n_full * sizeof *b);
        if (!b) return 0;
        seq->blocks = b, seq->cap_blocks = n_full;
    }
    uint64_t key = ROOT_KEY;
    int32_t parent = -1;
    c->clock++;
    int64_t n = 0;
    for (; n < n_full; n++) {
        const int32_t *tok = tokens + n * bs;
        key = block_key(key, tok, bs);
        int32_t i = find(c, key, parent, tok);
        if (i < 0) break;
        c->nodes[i].last_used = c->clock;
        if (n >= have) { /* the blocks seq holds already stay (they hold the same K/V) */
            rg_kv_block_ref(c->pool, c->nodes[i].block);
            seq->blocks[n] = c->nodes[i].block;
        }
        parent = i;
    }
    if (n <= have) return 0;
    seq->n_blocks = n;
    seq->n_tokens = n * bs;
    return (n - have) * bs;
}

void rg_prefix_cache_count_lookup(rg_prefix_cache *c, int64_t n_tokens, int64_t n_hit) {
    c->st.lookup_tokens += n_tokens;
    c->st.hit_tokens += n_hit;
}

void rg_prefix_cache_insert(rg_prefix_cache *c, const rg_kv_seq *seq, const int32_t *tokens, int64_t n_tokens) {
    int64_t bs = c->block_size;
    if (n_tokens > seq->n_tokens) n_tokens = seq->n_tokens;
    int64_t n_full = n_tokens / bs;
    uint64_t key = ROOT_KEY;
    int32_t parent = -1;
    c->clock++;
    for (int64_t b = 0; b < n_full; b++) {
        const int32_t *tok = tokens + b * bs;
        key = block_key(key, tok, bs);
        int32_t i = find(c, key, parent, tok);
        if (i < 0) {
            if (c->free_head < 0) return; /* cannot happen: one node per pool block at most */
            i = c->free_head;
            node *n = &c->nodes[i];
            c->free_head = n->hnext;
            *n = (node){.key = key, .block = seq->blocks[b], .parent = parent, .used = true};
            memcpy(c->tokens + (size_t)i * bs, tok, (size_t)bs * sizeof *tok);
            uint64_t h = key & (c->n_buckets - 1);
            n->hnext = c->buckets[h];
            c->buckets[h] = i;
            rg_kv_block_ref(c->pool, n->block);
            if (parent >= 0) c->nodes[parent].n_children++;
            c->st.n_cached_blocks++;
        }
        c->nodes[i].last_used = c->clock;
        parent = i;
    }
}

static bool evictable(const rg_prefix_cache *c, const node *n) {
    return n->used && n->n_children == 0 && rg_kv_block_refcount(c->pool, n->block) == 1;
}

static void remove_node(rg_prefix_cache *c, int32_t i) {
    node *n = &c->nodes[i];
    int32_t *link = &c->buckets[n->key & (c->n_buckets - 1)];
    while (*link != i)
        link = &c->nodes[*link].hnext;
    *link = n->hnext;
    if (n->parent >= 0) c->nodes[n->parent].n_children--;
    rg_kv_block_unref(c->pool, n->block);
    n->used = false;
    n->hnext = c->free_head;
    c->free_head = i;
    c->st.n_cached_blocks--;
    c->st.n_evicted++;
}

int64_t rg_prefix_cache_evict(rg_prefix_cache *c, int64_t n) {
    int64_t done = 0;
    while (done < n) {
        int32_t victim = -1;
        for (int64_t i = 0; i < c->cap; i++)
            if (evictable(c, &c->nodes[i]) && (victim < 0 || c->nodes[i].last_used < c->nodes[victim].last_used))
                victim = (int32_t)i;
        if (victim < 0) break;
        remove_node(c, victim);
        done++;
    }
    return done;
}

int64_t rg_prefix_cache_n_evictable(const rg_prefix_cache *c) {
    int64_t n = 0;
    for (int64_t i = 0; i < c->cap; i++)
        n += c->nodes[i].used && rg_kv_block_refcount(c->pool, c->nodes[i].block) == 1;
    return n;
}

void rg_prefix_cache_clear(rg_prefix_cache *c) {
    while (rg_prefix_cache_evict(c, c->cap) > 0) {
    }
}

rg_prefix_stats rg_prefix_cache_stats(const rg_prefix_cache *c) { return c->st; }
