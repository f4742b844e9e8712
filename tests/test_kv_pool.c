/* test_kv_pool.c — the paged KV pool and block tables.
 *
 *  * allocation: every block handed out once, -1 when exhausted, 64-byte aligned;
 *  * random workloads of reserve/truncate/fork/copy-on-write/free over several
 *    sequences: after every step each block's refcount equals the number of
 *    tables holding it and the free count matches; at the end all are free;
 *  * a failed reserve (pool exhausted, table growth included) changes nothing;
 *  * truncate releases whole blocks; fork shares, copy-on-write unshares, and a
 *    write to a fork's last partial block leaves the original's data alone;
 *  * store then read back through rg_kv_k/rg_kv_v: f32 exact, f16/bf16 equal to
 *    the portable round-to-nearest-even helpers (so within 2^-11 / 2^-8 relative);
 *  * hostile arguments: bad configs, reserve beyond the pool or of INT64_MAX
 *    tokens, out-of-range positions, fork into a non-empty sequence. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/fp16.h"
#include "kv/kv_pool.h"
#include "testutil.h"

static uint64_t rng;

static int64_t rand_below(int64_t n) { return (int64_t)(rg_test_rand_u64(&rng) % (uint64_t)n); }

static rg_kv_pool *make_pool(int64_t n_layer, int64_t n_head_kv, int64_t head_dim, int64_t block_size, int64_t n_blocks,
                             rg_dtype dtype) {
    rg_kv_config c = {n_layer, n_head_kv, head_dim, block_size, n_blocks, dtype};
    rg_kv_pool *p = NULL;
    rg_err err = {0};
    if (rg_kv_pool_create(&c, &p, &err)) fail_msg("pool: %s", err.msg);
    return p;
}

/* Every block's refcount equals the number of table entries naming it. */
static void check_refcounts(const rg_kv_pool *pool, rg_kv_seq *seqs, int n_seq) {
    int64_t n_blocks = rg_kv_pool_config(pool)->n_blocks, bs = rg_kv_pool_config(pool)->block_size, n_free = 0;
    int32_t *expect = calloc((size_t)n_blocks, sizeof *expect);
    assert_non_null(expect);
    for (int s = 0; s < n_seq; s++) {
        assert_true(seqs[s].n_blocks * bs >= seqs[s].n_tokens);
        assert_true(seqs[s].n_blocks <= seqs[s].cap_blocks || seqs[s].n_blocks == 0);
        for (int64_t i = 0; i < seqs[s].n_blocks; i++) {
            int32_t b = seqs[s].blocks[i];
            assert_true(b >= 0 && b < n_blocks);
            expect[b]++;
        }
    }
    for (int64_t b = 0; b < n_blocks; b++) {
        assert_int_equal(rg_kv_block_refcount(pool, (int32_t)b), expect[b]);
        n_free += expect[b] == 0;
    }
    assert_int_equal(rg_kv_pool_free_blocks(pool), n_free);
    free(expect);
}

static void test_create_rejects_bad_configs(void **state) {
    (void)state;
    rg_err err = {0};
    rg_kv_pool *p = NULL;
    const rg_kv_config bad[] = {
        {0, 2, 64, 16, 8, RG_F16},
        {1, 0, 64, 16, 8, RG_F16},
        {1, 2, 0, 16, 8, RG_F16},
        {1, 2, 64, -1, 8, RG_F16},
        {1, 2, 64, 16, 0, RG_F16},
        {1, 2, 64, 16, -5, RG_F32},
        {1, 2, 64, 16, 8, RG_Q4_0},
        {1, 2, 64, 16, (int64_t)INT32_MAX + 1, RG_F32},
        {INT64_MAX / 2, 2, 64, 16, 8, RG_F32},                /* block bytes overflow */
        {1 << 20, 1 << 10, 1 << 12, 1 << 8, 1 << 20, RG_F32}, /* pool bytes overflow */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = (rg_kv_pool *)(uintptr_t)1; /* must be reset to NULL on failure */
        err.msg[0] = 0;
        assert_int_not_equal(rg_kv_pool_create(&bad[i], &p, &err), RG_OK);
        assert_null(p);
        assert_true(strlen(err.msg) > 0);
    }
    /* block_size 0 means the default */
    rg_kv_config ok = {2, 2, 64, 0, 4, RG_BF16};
    assert_int_equal(rg_kv_pool_create(&ok, &p, &err), RG_OK);
    assert_int_equal(rg_kv_pool_config(p)->block_size, RG_KV_DEFAULT_BLOCK_SIZE);
    assert_true(rg_kv_pool_bytes(p) >= (size_t)(4 * 2 * 2 * 2 * 64 * 16 * 2));
    rg_kv_pool_free(p);
    rg_kv_pool_free(NULL);
}

static void test_alloc_all_then_free(void **state) {
    (void)state;
    /* 7 rows of 20 f16 per slab: 3360-byte blocks, padded to 3392 so each starts on a cache line */
    rg_kv_pool *p = make_pool(3, 2, 20, 7, 37, RG_F16);
    int32_t ids[37];
    char seen[37] = {0};
    for (int i = 0; i < 37; i++) {
        ids[i] = rg_kv_alloc_block(p);
        assert_true(ids[i] >= 0 && ids[i] < 37);
        assert_int_equal(seen[ids[i]]++, 0);
        assert_int_equal(rg_kv_block_refcount(p, ids[i]), 1);
        assert_int_equal(rg_kv_pool_free_blocks(p), 36 - i);
    }
    assert_int_equal(rg_kv_alloc_block(p), -1);
    assert_int_equal(rg_kv_block_refcount(p, -1), -1);
    assert_int_equal(rg_kv_block_refcount(p, 37), -1);
    /* every (block, layer, K|V, head) slab lies inside the pool, none overlaps
     * another, and each (layer, block) unit starts on a cache line */
    enum { NSLAB = 37 * 3 * 2 * 2 };
    uintptr_t start[NSLAB];
    int n = 0;
    for (int32_t b = 0; b < 37; b++)
        for (int64_t l = 0; l < 3; l++) {
            assert_int_equal((uintptr_t)rg_kv_k(p, b, l, 0) % 64, 0);
            for (int64_t h = 0; h < 2; h++) {
                start[n++] = (uintptr_t)rg_kv_k(p, b, l, h);
                start[n++] = (uintptr_t)rg_kv_v(p, b, l, h);
            }
        }
    for (int i = 1; i < NSLAB; i++) /* insertion sort */
        for (int j = i; j > 0 && start[j - 1] > start[j]; j--) {
            uintptr_t x = start[j];
            start[j] = start[j - 1], start[j - 1] = x;
        }
    size_t slab = 7 * 20 * 2;
    for (int i = 1; i < NSLAB; i++)
        assert_true(start[i - 1] + slab <= start[i]);
    assert_true(start[NSLAB - 1] + slab - start[0] <= rg_kv_pool_bytes(p));
    rg_kv_block_ref(p, ids[3]);
    rg_kv_block_unref(p, ids[3]);
    assert_int_equal(rg_kv_block_refcount(p, ids[3]), 1);
    for (int i = 36; i >= 0; i--)
        rg_kv_block_unref(p, ids[i]);
    assert_int_equal(rg_kv_pool_free_blocks(p), 37);
    for (int i = 0; i < 37; i++)
        assert_int_equal(rg_kv_block_refcount(p, i), 0);
    rg_kv_pool_free(p);
}

static void test_reserve_failure_changes_nothing(void **state) {
    (void)state;
    rg_kv_pool *p = make_pool(1, 1, 8, 4, 6, RG_F32);
    rg_err err = {0};
    rg_kv_seq a = {0}, b = {0};
    assert_int_equal(rg_kv_seq_reserve(p, &a, 10, &err), RG_OK); /* 3 blocks */
    assert_int_equal(a.n_blocks, 3);
    assert_int_equal(a.n_tokens, 0); /* reserve does not claim the positions */
    a.n_tokens = 10;
    int32_t before[3];
    memcpy(before, a.blocks, sizeof before);
    int64_t cap = a.cap_blocks;
    assert_int_equal(rg_kv_seq_reserve(p, &a, 25, &err), RG_E_NOMEM); /* needs 4 more, 3 free */
    assert_int_equal(a.n_blocks, 3);
    assert_int_equal(a.cap_blocks, cap);
    assert_memory_equal(a.blocks, before, sizeof before);
    assert_int_equal(a.n_tokens, 10);
    assert_int_equal(rg_kv_pool_free_blocks(p), 3);
    assert_int_equal(rg_kv_seq_reserve(p, &a, INT64_MAX, &err), RG_E_NOMEM);
    assert_int_equal(rg_kv_seq_reserve(p, &a, -1, &err), RG_E_INVALID);
    assert_int_equal(rg_kv_seq_reserve(p, &a, 24, &err), RG_OK); /* exactly the pool */
    assert_int_equal(rg_kv_pool_free_blocks(p), 0);
    assert_int_equal(rg_kv_seq_reserve(p, &a, 5, &err), RG_OK); /* already has room */
    assert_int_equal(rg_kv_seq_reserve(p, &b, 1, &err), RG_E_NOMEM);
    assert_int_equal(b.n_blocks, 0);

    /* A fork whose next write needs a copy-on-write fails too when no block is free. */
    rg_kv_seq_truncate(p, &a, 10);
    assert_int_equal(rg_kv_pool_free_blocks(p), 3);
    assert_int_equal(rg_kv_seq_fork(p, &a, &b, &err), RG_OK);
    int32_t x = rg_kv_alloc_block(p), y = rg_kv_alloc_block(p), z = rg_kv_alloc_block(p);
    assert_int_equal(rg_kv_seq_reserve(p, &b, 11, &err), RG_E_NOMEM); /* block 2 is shared */
    assert_int_equal(rg_kv_block_refcount(p, b.blocks[2]), 2);
    assert_int_equal(rg_kv_seq_make_writable(p, &b, 9, &err), RG_E_NOMEM);
    assert_int_equal(b.blocks[2], a.blocks[2]);
    rg_kv_block_unref(p, z);
    assert_int_equal(rg_kv_seq_reserve(p, &b, 12, &err), RG_OK);
    assert_int_not_equal(b.blocks[2], a.blocks[2]);
    assert_int_equal(b.blocks[1], a.blocks[1]);
    rg_kv_block_unref(p, x), rg_kv_block_unref(p, y);
    rg_kv_seq s[2] = {a, b};
    check_refcounts(p, s, 2);
    rg_kv_seq_free(p, &a);
    rg_kv_seq_free(p, &b);
    assert_int_equal(rg_kv_pool_free_blocks(p), 6);
    rg_kv_pool_free(p);
}

static void test_truncate(void **state) {
    (void)state;
    rg_kv_pool *p = make_pool(1, 1, 4, 16, 8, RG_F16);
    rg_err err = {0};
    rg_kv_seq s = {0};
    assert_int_equal(rg_kv_seq_reserve(p, &s, 50, &err), RG_OK);
    s.n_tokens = 50;
    assert_int_equal(s.n_blocks, 4);
    rg_kv_seq_truncate(p, &s, 33);
    assert_int_equal(s.n_blocks, 3);
    assert_int_equal(s.n_tokens, 33);
    rg_kv_seq_truncate(p, &s, 32);
    assert_int_equal(s.n_blocks, 2);
    rg_kv_seq_truncate(p, &s, 40); /* past n_tokens: nothing to drop */
    assert_int_equal(s.n_blocks, 2);
    assert_int_equal(s.n_tokens, 32);
    assert_int_equal(rg_kv_seq_reserve(p, &s, 100, &err), RG_OK);
    assert_int_equal(s.n_blocks, 7);
    rg_kv_seq_truncate(p, &s, s.n_tokens); /* releases the reserved tail */
    assert_int_equal(s.n_blocks, 2);
    assert_int_equal(rg_kv_pool_free_blocks(p), 6);
    rg_kv_seq_truncate(p, &s, -3);
    assert_int_equal(s.n_blocks, 0);
    assert_int_equal(s.n_tokens, 0);
    assert_int_equal(rg_kv_pool_free_blocks(p), 8);
    rg_kv_seq_free(p, &s);
    rg_kv_pool_free(p);
}

/* Fill positions [from, to) of every layer/head of seq with a value that names them. */
static float mark(int64_t seq_id, int64_t pos, int64_t l, int64_t h, int64_t d, int kv) {
    return (float)(seq_id * 100000 + pos * 100 + l * 20 + h * 4 + kv * 2) + (float)d * 0.001f;
}

static void write_marks(rg_kv_pool *p, const rg_kv_seq *s, int64_t id, int64_t from, int64_t to) {
    const rg_kv_config *c = rg_kv_pool_config(p);
    float *k = malloc((size_t)(c->n_head_kv * c->head_dim) * sizeof *k);
    float *v = malloc((size_t)(c->n_head_kv * c->head_dim) * sizeof *v);
    const int32_t *tables[1] = {s->blocks};
    for (int64_t pos = from; pos < to; pos++)
        for (int64_t l = 0; l < c->n_layer; l++) {
            for (int64_t h = 0; h < c->n_head_kv; h++)
                for (int64_t d = 0; d < c->head_dim; d++) {
                    k[h * c->head_dim + d] = mark(id, pos, l, h, d, 0);
                    v[h * c->head_dim + d] = mark(id, pos, l, h, d, 1);
                }
            int32_t p32 = (int32_t)pos;
            rg_kv_store(p, l, k, v, 1, tables, &p32);
        }
    free(k);
    free(v);
}

/* Positions [0, n) of seq hold id's marks (f32 pool: exact). */
static void check_marks(const rg_kv_pool *p, const rg_kv_seq *s, int64_t id, int64_t n) {
    const rg_kv_config *c = rg_kv_pool_config(p);
    for (int64_t pos = 0; pos < n; pos++)
        for (int64_t l = 0; l < c->n_layer; l++)
            for (int64_t h = 0; h < c->n_head_kv; h++) {
                int32_t b = s->blocks[pos / c->block_size];
                const float *k = (const float *)rg_kv_k(p, b, l, h) + pos % c->block_size * c->head_dim;
                const float *v = (const float *)rg_kv_v(p, b, l, h) + pos % c->block_size * c->head_dim;
                for (int64_t d = 0; d < c->head_dim; d++) {
                    if (k[d] != mark(id, pos, l, h, d, 0) || v[d] != mark(id, pos, l, h, d, 1))
                        fail_msg("seq %lld pos %lld layer %lld head %lld dim %lld: got %g/%g", (long long)id,
                                 (long long)pos, (long long)l, (long long)h, (long long)d, k[d], v[d]);
                }
            }
}

static void test_fork_and_copy_on_write(void **state) {
    (void)state;
    rg_kv_pool *p = make_pool(2, 2, 8, 16, 16, RG_F32);
    rg_err err = {0};
    rg_kv_seq a = {0}, b = {0}, c = {0};
    assert_int_equal(rg_kv_seq_reserve(p, &a, 40, &err), RG_OK); /* 2 full blocks + 8 positions */
    write_marks(p, &a, 1, 0, 40);
    a.n_tokens = 40;
    assert_int_equal(rg_kv_seq_reserve(p, &a, 60, &err), RG_OK); /* a reserved tail, not shared */
    assert_int_equal(a.n_blocks, 4);

    assert_int_equal(rg_kv_seq_fork(p, &a, &b, &err), RG_OK);
    assert_int_equal(b.n_tokens, 40);
    assert_int_equal(b.n_blocks, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rg_kv_block_refcount(p, a.blocks[i]), 2);
    assert_int_equal(rg_kv_block_refcount(p, a.blocks[3]), 1);
    assert_int_equal(rg_kv_seq_fork(p, &a, &b, &err), RG_E_INVALID); /* b not empty */
    assert_int_equal(rg_kv_seq_fork(p, &a, &a, &err), RG_E_INVALID);

    /* b continues past 40: reserve unshares the partial block 2, b writes 40..47
     * into its copy (and overwrites 39 after an explicit make_writable, a no-op now) */
    int32_t shared = a.blocks[2];
    assert_int_equal(rg_kv_seq_reserve(p, &b, 48, &err), RG_OK);
    assert_int_not_equal(b.blocks[2], shared);
    assert_int_equal(a.blocks[2], shared);
    assert_int_equal(rg_kv_block_refcount(p, shared), 1);
    assert_int_equal(b.blocks[0], a.blocks[0]);
    check_marks(p, &b, 1, 40); /* the copy carries a's positions, every layer */
    assert_int_equal(rg_kv_seq_make_writable(p, &b, 39, &err), RG_OK);
    write_marks(p, &b, 2, 32, 48);
    b.n_tokens = 48;
    check_marks(p, &a, 1, 40); /* the original is untouched */

    /* explicit copy-on-write of a shared full block */
    assert_int_equal(rg_kv_seq_fork(p, &b, &c, &err), RG_OK);
    assert_int_equal(rg_kv_block_refcount(p, b.blocks[0]), 3);
    assert_int_equal(rg_kv_seq_make_writable(p, &c, 5, &err), RG_OK);
    assert_int_equal(rg_kv_block_refcount(p, b.blocks[0]), 2);
    assert_int_equal(rg_kv_block_refcount(p, c.blocks[0]), 1);
    write_marks(p, &c, 3, 0, 16);
    check_marks(p, &a, 1, 40);
    check_marks(p, &b, 1, 32);
    assert_int_equal(rg_kv_seq_make_writable(p, &c, 48, &err), RG_E_INVALID); /* past c's blocks */
    assert_int_equal(rg_kv_seq_make_writable(p, &c, -1, &err), RG_E_INVALID);

    rg_kv_seq all[3] = {a, b, c};
    check_refcounts(p, all, 3);
    rg_kv_seq_free(p, &a);
    rg_kv_seq_free(p, &b);
    rg_kv_seq_free(p, &c);
    assert_null(a.blocks);
    assert_int_equal(rg_kv_pool_free_blocks(p), 16);
    rg_kv_pool_free(p);
}

static void test_random_workload(void **state) {
    (void)state;
    enum { NSEQ = 6, STEPS = 3000 };
    int64_t bs = 1 + rand_below(20), n_blocks = 20 + rand_below(40);
    rg_kv_pool *p = make_pool(1, 1, 4, bs, n_blocks, RG_F16);
    rg_kv_seq s[NSEQ];
    memset(s, 0, sizeof s);
    rg_err err = {0};
    int n_fail = 0, n_cow = 0;
    for (int step = 0; step < STEPS; step++) {
        int i = (int)rand_below(NSEQ), j = (int)rand_below(NSEQ);
        switch (rand_below(6)) {
        case 0:
        case 1: { /* grow, as a forward step would */
            int64_t n = s[i].n_tokens + 1 + rand_below(3 * bs);
            int64_t free_before = rg_kv_pool_free_blocks(p), nb = s[i].n_blocks;
            rg_status st = rg_kv_seq_reserve(p, &s[i], n, &err);
            if (st == RG_OK)
                s[i].n_tokens = n;
            else {
                assert_int_equal(st, RG_E_NOMEM);
                assert_int_equal(rg_kv_pool_free_blocks(p), free_before);
                assert_int_equal(s[i].n_blocks, nb);
                n_fail++;
            }
            break;
        }
        case 2: rg_kv_seq_truncate(p, &s[i], rand_below(s[i].n_tokens + 1)); break;
        case 3:
            if (i != j && s[j].n_blocks == 0) assert_int_equal(rg_kv_seq_fork(p, &s[i], &s[j], &err), RG_OK);
            break;
        case 4:
            if (s[i].n_tokens > 0) {
                int64_t pos = rand_below(s[i].n_tokens);
                bool shared = rg_kv_block_refcount(p, s[i].blocks[pos / bs]) > 1;
                rg_status st = rg_kv_seq_make_writable(p, &s[i], pos, &err);
                if (st == RG_OK)
                    assert_int_equal(rg_kv_block_refcount(p, s[i].blocks[pos / bs]), 1);
                else
                    assert_true(shared && rg_kv_pool_free_blocks(p) == 0);
                n_cow += shared && st == RG_OK;
            }
            break;
        case 5:
            if (rand_below(4) == 0) rg_kv_seq_free(p, &s[i]);
            break;
        }
        check_refcounts(p, s, NSEQ);
    }
    print_message("block_size %lld, %lld blocks: %d reserve failures, %d copies on write\n", (long long)bs,
                  (long long)n_blocks, n_fail, n_cow);
    for (int i = 0; i < NSEQ; i++)
        rg_kv_seq_free(p, &s[i]);
    assert_int_equal(rg_kv_pool_free_blocks(p), n_blocks);
    for (int64_t b = 0; b < n_blocks; b++)
        assert_int_equal(rg_kv_block_refcount(p, (int32_t)b), 0);
    rg_kv_pool_free(p);
}

/* Many sequences with interleaved (so non-contiguous) blocks; tokens stored in a
 * shuffled batch; read back through the block tables. */
static void store_read_back(rg_dtype dtype) {
    enum { NSEQ = 4, NL = 3, NKV = 3, HD = 20, BS = 7 };
    const int64_t len[NSEQ] = {1, 7, 23, 50};
    int64_t total = 0;
    rg_kv_pool *p = make_pool(NL, NKV, HD, BS, 40, dtype);
    rg_err err = {0};
    rg_kv_seq s[NSEQ];
    memset(s, 0, sizeof s);
    for (int64_t n = 1; n <= 50; n++) /* one block at a time, round robin */
        for (int i = 0; i < NSEQ; i++)
            if (n <= len[i]) assert_int_equal(rg_kv_seq_reserve(p, &s[i], n, &err), RG_OK);
    for (int i = 0; i < NSEQ; i++)
        total += len[i];
    const int32_t **tables = malloc((size_t)total * sizeof *tables);
    int32_t *pos = malloc((size_t)total * sizeof *pos), *owner = malloc((size_t)total * sizeof *owner);
    for (int i = 0, t = 0; i < NSEQ; i++)
        for (int64_t q = 0; q < len[i]; q++, t++)
            tables[t] = s[i].blocks, pos[t] = (int32_t)q, owner[t] = i;
    for (int64_t t = total - 1; t > 0; t--) { /* shuffle the batch */
        int64_t u = rand_below(t + 1);
        const int32_t *tt = tables[t];
        int32_t pp = pos[t], oo = owner[t];
        tables[t] = tables[u], pos[t] = pos[u], owner[t] = owner[u];
        tables[u] = tt, pos[u] = pp, owner[u] = oo;
    }
    size_t n = (size_t)(total * NKV * HD);
    float *k = malloc(n * sizeof *k), *v = malloc(n * sizeof *v);
    for (int64_t l = 0; l < NL; l++) {
        for (size_t i = 0; i < n; i++)
            k[i] = rg_test_rand_normal(&rng) * 10, v[i] = rg_test_rand_normal(&rng);
        if (l == 0) k[0] = 1e-6f; /* an f16 subnormal */
        rg_kv_store(p, l, k, v, total, tables, pos);
        for (int64_t t = 0; t < total; t++)
            for (int64_t h = 0; h < NKV; h++) {
                int32_t b = tables[t][pos[t] / BS];
                size_t off = (size_t)(pos[t] % BS * HD);
                const float *sk = k + (t * NKV + h) * HD, *sv = v + (t * NKV + h) * HD;
                for (int64_t d = 0; d < HD; d++) {
                    float gk, gv, wk = sk[d], wv = sv[d];
                    if (dtype == RG_F32) {
                        gk = ((const float *)rg_kv_k(p, b, l, h))[off + d];
                        gv = ((const float *)rg_kv_v(p, b, l, h))[off + d];
                    } else {
                        uint16_t hk = ((const uint16_t *)rg_kv_k(p, b, l, h))[off + d];
                        uint16_t hv = ((const uint16_t *)rg_kv_v(p, b, l, h))[off + d];
                        bool f16 = dtype == RG_F16;
                        gk = f16 ? rg_f16_to_f32(hk) : rg_bf16_to_f32(hk);
                        gv = f16 ? rg_f16_to_f32(hv) : rg_bf16_to_f32(hv);
                        /* bit-equal to the reference rounding ... */
                        assert_int_equal(hk, f16 ? rg_f32_to_f16(wk) : rg_f32_to_bf16(wk));
                        assert_int_equal(hv, f16 ? rg_f32_to_f16(wv) : rg_f32_to_bf16(wv));
                        /* ... which is within half an ulp of the format (plus subnormal spacing) */
                        double rel = f16 ? 1.0 / 2048 : 1.0 / 256, abs_min = f16 ? 3e-8 : 0;
                        wk = fabsf(wk - gk) <= rel * fabsf(wk) + abs_min ? gk : NAN;
                        wv = fabsf(wv - gv) <= rel * fabsf(wv) + abs_min ? gv : NAN;
                    }
                    if (gk != wk || gv != wv)
                        fail_msg("%s layer %lld token %lld head %lld dim %lld: %g/%g stored as %g/%g",
                                 rg_dtype_name(dtype), (long long)l, (long long)t, (long long)h, (long long)d, sk[d],
                                 sv[d], gk, gv);
                }
            }
    }
    for (int i = 0; i < NSEQ; i++)
        rg_kv_seq_free(p, &s[i]);
    free(k), free(v), free(tables), free(pos), free(owner);
    rg_kv_pool_free(p);
}

static void test_store_read_back_f32(void **state) { (void)state, store_read_back(RG_F32); }
static void test_store_read_back_f16(void **state) { (void)state, store_read_back(RG_F16); }
static void test_store_read_back_bf16(void **state) { (void)state, store_read_back(RG_BF16); }

int main(void) {
    rng = rg_test_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_rejects_bad_configs),
        cmocka_unit_test(test_alloc_all_then_free),
        cmocka_unit_test(test_reserve_failure_changes_nothing),
        cmocka_unit_test(test_truncate),
        cmocka_unit_test(test_fork_and_copy_on_write),
        cmocka_unit_test(test_random_workload),
        cmocka_unit_test(test_store_read_back_f32),
        cmocka_unit_test(test_store_read_back_f16),
        cmocka_unit_test(test_store_read_back_bf16),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
