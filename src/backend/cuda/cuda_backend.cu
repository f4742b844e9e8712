/* cuda_backend.cu — the CUDA backend's table: device memory, one stream, the
 * cuBLAS handle, resident weights (repacked on the host into the layouts of
 * cuda_internal.h, then copied once), the KV storage and the per-step upload
 * of positions and block tables. Every CUDA and cuBLAS status is checked; the
 * first failure is kept and reported by sync(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_internal.h"

extern "C" {
#include "core/fp16.h"
#include "core/quant.h"
}

void rg_cuda_fail(cuda_backend *c, const char *what, const char *detail) {
    if (c->status != RG_OK) return;
    c->status = RG_E_IO;
    snprintf(c->msg, sizeof c->msg, "cuda: %s: %s", what, detail);
}

bool rg_cuda_check(cuda_backend *c, cudaError_t e, const char *what) {
    if (e == cudaSuccess) return true;
    rg_cuda_fail(c, what, cudaGetErrorString(e));
    return false;
}

static rg_status sync_status(rg_backend *be, rg_err *err) {
    cuda_backend *c = cuda_of(be);
    rg_cuda_check(c, cudaStreamSynchronize(c->stream), "stream synchronize");
    if (c->status) return rg_fail(err, c->status, "%s", c->msg);
    return RG_OK;
}

static void *cuda_alloc(rg_backend *be, size_t bytes) {
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) {
        cudaGetLastError(); /* an allocation failure is reported by the caller, not sticky */
        return NULL;
    }
    return p;
}

/* An A/B lever: "0" turns it off, "1" on, anything else (or unset) leaves the default. */
static bool lever(const char *name, bool dflt) {
    const char *v = getenv(name);
    return v && !strcmp(v, "0") ? false : v && !strcmp(v, "1") ? true : dflt;
}

static void cuda_free(rg_backend *be, void *p) {
    if (p) rg_cuda_check(cuda_of(be), cudaFree(p), "cudaFree");
}

static void cuda_upload(rg_backend *be, void *dst, const void *src, size_t bytes) {
    cuda_backend *c = cuda_of(be);
    /* On the backend's stream, then waited for: a plain cudaMemcpy runs on the
     * legacy stream, which the backend's non-blocking stream does not wait on,
     * and from pageable memory it may return before its DMA has landed — kernels
     * queued right after read stale data (test_cuda_ops' argmax rows did). The
     * wait keeps upload synchronous: the host buffer may be reused at once. */
    rg_cuda_forget_prepared(c); /* it may overwrite a prepared input's source */
    if (bytes && rg_cuda_check(c, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream), "upload"))
        rg_cuda_check(c, cudaStreamSynchronize(c->stream), "upload");
}

static void *cuda_host_alloc(rg_backend *be, size_t bytes) {
    void *p = NULL;
    if (cudaMallocHost(&p, bytes) != cudaSuccess) p = NULL, cudaGetLastError(); /* NULL: the caller reports it */
    return p;
}

static void cuda_host_free(rg_backend *be, void *p) {
    if (p) rg_cuda_check(cuda_of(be), cudaFreeHost(p), "cudaFreeHost");
}

/* dst is page-locked host memory (cuda_host_alloc's): the DMA lands there directly */
static bool is_pinned(const void *p) {
    cudaPointerAttributes a;
    if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
        cudaGetLastError();
        return false;
    }
    return a.type == cudaMemoryTypeHost;
}

static void cuda_download(rg_backend *be, void *dst, const void *src, size_t bytes) {
    cuda_backend *c = cuda_of(be);
    if (!bytes) return;
    if (is_pinned(dst)) {
        if (rg_cuda_check(c, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream), "download"))
            rg_cuda_check(c, cudaStreamSynchronize(c->stream), "download");
        if (c->status) memset(dst, 0, bytes);
        return;
    }
    /* through the pinned buffer when there is one (a pageable copy is staged by the
     * driver, slower for the logits a decode step returns), else directly */
    for (size_t off = 0; off < bytes && !c->status;) {
        size_t n = c->h_out ? (bytes - off < c->h_out_bytes ? bytes - off : c->h_out_bytes) : bytes;
        void *to = c->h_out ? c->h_out : dst;
        if (rg_cuda_check(c, cudaMemcpyAsync(to, (const uint8_t *)src + off, n, cudaMemcpyDeviceToHost, c->stream),
                          "download") &&
            rg_cuda_check(c, cudaStreamSynchronize(c->stream), "download") && c->h_out)
            memcpy((uint8_t *)dst + off, c->h_out, n);
        off += n;
    }
    if (c->status) memset(dst, 0, bytes); /* never hand back stale or partial data as if it were a result */
}

static void cuda_copy(rg_backend *be, void *dst, const void *src, size_t bytes) {
    cuda_backend *c = cuda_of(be);
    rg_cuda_forget_prepared(c); /* dst may be a prepared input's source */
    if (bytes) rg_cuda_check(c, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, c->stream), "copy");
}

/* ---- resident weights */

bool rg_cuda_kept_type(rg_dtype t) {
    return t == RG_F32 || t == RG_F16 || t == RG_BF16 || t == RG_Q8_0 || t == RG_Q4_0 || t == RG_Q4_1 ||
           t == RG_Q4_K || t == RG_Q6_K;
}

static size_t align16(size_t n) { return (n + 15) & ~(size_t)15; }

/* Plane sizes of the resident layout, in bytes, for n = k * n_out elements. */
static void plane_bytes(rg_dtype t, int64_t k, int64_t n_out, size_t b[4]) {
    size_t n = (size_t)k * (size_t)n_out;
    b[0] = b[1] = b[2] = b[3] = 0;
    switch (t) {
    case RG_F32: b[0] = 4 * n; break;
    case RG_F16:
    case RG_BF16: b[0] = 2 * n; break;
    case RG_Q8_0: b[0] = n, b[1] = n / 32 * 2; break;
    case RG_Q4_0: b[0] = n / 2, b[1] = n / 32 * 2; break;
    case RG_Q4_1: b[0] = n / 2, b[1] = n / 32 * 4; break; /* (d, m) as one f16 pair a block */
    case RG_Q4_K: b[0] = n / 2, b[1] = n / 256 * 4, b[2] = n / 32 * 2; break;
    case RG_Q6_K: b[0] = n / 2, b[1] = n / 4, b[2] = n / 16, b[3] = n / 256 * 2; break;
    default: break;
    }
}

size_t rg_cuda_resident_bytes(rg_dtype t, int64_t k, int64_t n_out) {
    size_t b[4];
    plane_bytes(t, k, n_out, b);
    return align16(b[0]) + align16(b[1]) + align16(b[2]) + align16(b[3]);
}

wplanes rg_cuda_planes(const rg_weight *w) {
    size_t b[4];
    plane_bytes(w->type, w->k, w->n_out, b);
    const uint8_t *p = (const uint8_t *)w->data;
    wplanes r = {w->k, w->n_out, p, NULL, NULL, NULL};
    r.p1 = r.p0 + align16(b[0]);
    r.p2 = r.p1 + align16(b[1]);
    r.p3 = r.p2 + align16(b[2]);
    return r;
}

static void put_nibble(uint8_t *plane, size_t e, unsigned q) {
    plane[e / 2] |= (uint8_t)((q & 15) << (4 * (e & 1)));
}

/* A Q4_0 / Q4_1 block's 16 bytes (element j low, j + 16 high) as elements e0.. of the nibble plane. */
static void put_block_nibbles(uint8_t *plane, size_t e0, const uint8_t *qs) {
    for (int j = 0; j < 16; j++) {
        put_nibble(plane, e0 + j, qs[j] & 15);
        put_nibble(plane, e0 + j + 16, qs[j] >> 4);
    }
}

/* Host repack of one row (k elements, GGUF blocks at src) into the planes at row r. */
static void repack_row(rg_dtype t, const uint8_t *src, int64_t k, int64_t r, uint8_t *pl[4]) {
    size_t base = (size_t)r * (size_t)k;
    if (t == RG_Q8_0) {
        for (int64_t b = 0; b < k / 32; b++) {
            rg_block_q8_0 blk;
            memcpy(&blk, src + b * sizeof blk, sizeof blk);
            memcpy(pl[0] + base + 32 * b, blk.qs, 32);
            memcpy(pl[1] + 2 * (base / 32 + b), &blk.d, 2);
        }
    } else if (t == RG_Q4_0) {
        for (int64_t b = 0; b < k / 32; b++) {
            rg_block_q4_0 blk;
            memcpy(&blk, src + b * sizeof blk, sizeof blk);
            put_block_nibbles(pl[0], base + 32 * b, blk.qs);
            memcpy(pl[1] + 2 * (base / 32 + b), &blk.d, 2);
        }
    } else if (t == RG_Q4_1) { /* Q4_0's nibble plane; d and m side by side */
        for (int64_t b = 0; b < k / 32; b++) {
            rg_block_q4_1 blk;
            memcpy(&blk, src + b * sizeof blk, sizeof blk);
            put_block_nibbles(pl[0], base + 32 * b, blk.qs);
            memcpy(pl[1] + 4 * (base / 32 + b), &blk.d, 2);
            memcpy(pl[1] + 4 * (base / 32 + b) + 2, &blk.m, 2);
        }
    } else if (t == RG_Q4_K) {
        for (int64_t b = 0; b < k / 256; b++) {
            rg_block_q4_K blk;
            memcpy(&blk, src + b * sizeof blk, sizeof blk);
            size_t e0 = base + 256 * b;
            memcpy(pl[1] + 4 * (base / 256 + b), &blk.d, 2);
            memcpy(pl[1] + 4 * (base / 256 + b) + 2, &blk.dmin, 2);
            const uint8_t *q = blk.scales;
            for (int j = 0; j < 8; j++) {
                uint8_t sc, m;
                if (j < 4) sc = q[j] & 63, m = q[j + 4] & 63;
                else sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
                pl[2][2 * (e0 / 32 + j)] = sc;
                pl[2][2 * (e0 / 32 + j) + 1] = m;
            }
            for (int c = 0; c < 4; c++)
                for (int l = 0; l < 32; l++) {
                    uint8_t v = blk.qs[32 * c + l];
                    put_nibble(pl[0], e0 + 64 * c + l, v & 15);
                    put_nibble(pl[0], e0 + 64 * c + 32 + l, v >> 4);
                }
        }
    } else if (t == RG_Q6_K) {
        for (int64_t b = 0; b < k / 256; b++) {
            rg_block_q6_K blk;
            memcpy(&blk, src + b * sizeof blk, sizeof blk);
            size_t e0 = base + 256 * b;
            memcpy(pl[3] + 2 * (base / 256 + b), &blk.d, 2);
            for (int s = 0; s < 16; s++) pl[2][e0 / 16 + s] = (uint8_t)blk.scales[s];
            for (int n = 0; n < 2; n++)
                for (int l = 0; l < 32; l++) {
                    const uint8_t *ql = blk.ql + 64 * n, *qh = blk.qh + 32 * n;
                    unsigned q[4] = {(unsigned)(ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4),
                                     (unsigned)(ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4),
                                     (unsigned)(ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4),
                                     (unsigned)(ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)};
                    for (int g = 0; g < 4; g++) {
                        size_t e = e0 + 128 * n + 32 * g + l;
                        put_nibble(pl[0], e, q[g] & 15);
                        pl[1][e / 4] |= (uint8_t)((q[g] >> 4) << (2 * (e & 3)));
                    }
                }
        }
    }
}

static rg_status cuda_load_weight(rg_backend *be, const rg_weight *host, rg_weight *dev, rg_err *err) {
    cuda_backend *c = cuda_of(be);
    *dev = *host;
    dev->data = NULL;
    const rg_dtype_info *info = rg_dtype_get(host->type);
    if (!info || !info->supported || host->k % info->block_size)
        return rg_fail(err, RG_E_UNSUPPORTED, "cuda: weight type %s", rg_dtype_name(host->type));
    if (host->k % 8)
        return rg_fail(err, RG_E_UNSUPPORTED, "cuda: rows of %lld elements (want a multiple of 8)",
                       (long long)host->k);
    dev->type = rg_cuda_kept_type(host->type) ? host->type : RG_F16; /* others: dequantized at load */
    size_t bytes = rg_cuda_resident_bytes(dev->type, host->k, host->n_out);
    size_t row_in = (size_t)rg_dtype_row_bytes(host->type, host->k);
    void *d = cuda_alloc(be, bytes);
    if (!d)
        return rg_fail(err, RG_E_NOMEM, "cuda: out of GPU memory for a %lld x %lld %s weight (%zu bytes)",
                       (long long)host->n_out, (long long)host->k, rg_dtype_name(host->type), bytes);
    const uint8_t *src = (const uint8_t *)host->data;
    rg_status s = RG_OK;
    if (dev->type == host->type && (host->type == RG_F32 || host->type == RG_F16 || host->type == RG_BF16)) {
        cuda_upload(be, d, src, bytes);
    } else {
        /* repack (or dequantize) a slab of rows at a time on the host, then copy */
        int64_t slab = host->n_out < 256 ? host->n_out : 256;
        size_t slab_bytes = rg_cuda_resident_bytes(dev->type, host->k, slab);
        uint8_t *h = (uint8_t *)malloc(slab_bytes);
        float *tmp = (float *)malloc((size_t)host->k * sizeof(float));
        if (!h || !tmp) s = rg_fail(err, RG_E_NOMEM, "out of memory");
        size_t full[4], part[4];
        plane_bytes(dev->type, host->k, host->n_out, full);
        for (int64_t r0 = 0; r0 < host->n_out && !s; r0 += slab) {
            int64_t nr = host->n_out - r0 < slab ? host->n_out - r0 : slab;
            plane_bytes(dev->type, host->k, nr, part);
            memset(h, 0, slab_bytes);
            uint8_t *pl[4] = {h, h + part[0], h + part[0] + part[1], h + part[0] + part[1] + part[2]};
            for (int64_t r = 0; r < nr && !s; r++) {
                const uint8_t *row = src + (size_t)(r0 + r) * row_in;
                if (dev->type == RG_F16) {
                    s = rg_dequantize_ref(host->type, row, tmp, host->k, err);
                    for (int64_t i = 0; i < host->k; i++) {
                        uint16_t v = rg_f32_to_f16(tmp[i]);
                        memcpy(pl[0] + 2 * (r * host->k + i), &v, 2);
                    }
                } else {
                    repack_row(dev->type, row, host->k, r, pl);
                }
            }
            /* each plane of the slab goes to its place in the full planes */
            uint8_t *dst = (uint8_t *)d;
            size_t off = 0, in = 0;
            for (int p = 0; p < 4 && !s; p++) {
                size_t row_part = full[p] / (size_t)host->n_out;
                if (part[p]) cuda_upload(be, dst + off + (size_t)r0 * row_part, h + in, part[p]);
                off += align16(full[p]);
                in += part[p];
            }
        }
        free(h), free(tmp);
    }
    if (!s && c->status) s = rg_fail(err, c->status, "%s", c->msg);
    if (s) {
        cuda_free(be, d);
        return s;
    }
    dev->data = d;
    return RG_OK;
}

static void cuda_unload_weight(rg_backend *be, rg_weight *dev) {
    cuda_free(be, (void *)dev->data);
    dev->data = NULL;
}

/* ---- step state, scratch and KV storage */

static rg_status cuda_reserve(rg_backend *be, const rg_backend_limits *lim, rg_kv_pool *pool, rg_err *err) {
    cuda_backend *c = cuda_of(be);
    c->kv = pool;
    c->kvc = *rg_kv_pool_config(pool);
    if (c->kvc.block_size > RG_CUDA_ATTN_TILE || RG_CUDA_ATTN_TILE % c->kvc.block_size)
        return rg_fail(err, RG_E_UNSUPPORTED, "cuda: KV block size %lld (want a divisor of %d)",
                       (long long)c->kvc.block_size, RG_CUDA_ATTN_TILE);
    if (lim->head_dim > 256 || lim->head_dim % 8 || lim->n_head % lim->n_head_kv || lim->n_head / lim->n_head_kv > 16)
        return rg_fail(err, RG_E_UNSUPPORTED, "cuda: attention with head_dim %lld, %lld heads over %lld KV heads",
                       (long long)lim->head_dim, (long long)lim->n_head, (long long)lim->n_head_kv);
    if (!rg_cuda_attention_setup(c, lim->n_head, lim->n_head_kv, lim->head_dim) || !rg_cuda_attention_prefill_setup(c) ||
        !rg_cuda_layer_stack_setup(c))
        return rg_fail(err, c->status, "%s", c->msg);
    size_t elem = c->kvc.dtype == RG_F32 ? 4 : 2;
    c->kv_head_bytes = (size_t)c->kvc.block_size * (size_t)c->kvc.head_dim * elem;
    c->kv_kv_bytes = (size_t)c->kvc.n_head_kv * c->kv_head_bytes;
    c->kv_unit_bytes = (2 * c->kv_kv_bytes + 63) & ~(size_t)63;
    c->kv_layer_bytes = (size_t)c->kvc.n_blocks * c->kv_unit_bytes;
    c->kv_data = (uint8_t *)cuda_alloc(be, (size_t)c->kvc.n_layer * c->kv_layer_bytes);

    c->max_tokens = lim->max_tokens;
    c->max_table_blocks = (lim->max_ctx + c->kvc.block_size - 1) / c->kvc.block_size;
    /* pos | n_ctx | row | tables (one row per token at most) | 2 id slots */
    c->stage_ints = (size_t)(3 * lim->max_tokens + lim->max_tokens * c->max_table_blocks + 2 * lim->max_tokens);
    int32_t *d_stage = (int32_t *)cuda_alloc(be, c->stage_ints * 4);
    bool pinned = cudaMallocHost((void **)&c->h_stage, c->stage_ints * 4) == cudaSuccess;
    if (!pinned) c->h_stage = NULL, cudaGetLastError();
    if (d_stage) {
        c->d_pos = d_stage;
        c->d_n_ctx = c->d_pos + lim->max_tokens;
        c->d_row = c->d_n_ctx + lim->max_tokens;
        c->d_tables = c->d_row + lim->max_tokens;
        c->d_ids = c->d_tables + lim->max_tokens * c->max_table_blocks;
    }
    /* cuBLAS operands: activations as 16-bit, and a tile of dequantized weight rows */
    c->k_max = lim->k_max;
    c->x16 = cuda_alloc(be, (size_t)lim->max_tokens * (size_t)lim->k_max * 2);
    size_t full = (size_t)lim->n_out_max * (size_t)lim->k_max * 2;
    c->w16_bytes = full < ((size_t)64 << 20) ? full : ((size_t)64 << 20);
    c->w16 = cuda_alloc(be, c->w16_bytes);
    c->xq = (float *)cuda_alloc(be, (size_t)16 * (size_t)lim->k_max * 4);
    c->d_argmax = (int32_t *)cuda_alloc(be, (size_t)lim->max_tokens * 4);
    /* split-KV partials: enough for every token of a full step with a few splits each,
     * and for a decode batch to split its context finely */
    c->attn_entries = lim->max_tokens * lim->n_head * 4;
    if (c->attn_entries < 4096 * lim->n_head) c->attn_entries = 4096 * lim->n_head;
    c->attn_o = (float *)cuda_alloc(be, (size_t)c->attn_entries * (size_t)lim->head_dim * 4);
    c->attn_ml = (float2 *)cuda_alloc(be, (size_t)c->attn_entries * sizeof(float2));
    c->stack_q_max = lim->n_head * lim->head_dim, c->stack_h_max = lim->n_out_max;
    c->stack_q = (float *)cuda_alloc(be, (size_t)(2 * c->stack_q_max + c->stack_h_max) * 4);
    c->stack_att = c->stack_q ? c->stack_q + c->stack_q_max : NULL;
    c->stack_h = c->stack_q ? c->stack_att + c->stack_q_max : NULL;
    c->stack_bar = (unsigned *)cuda_alloc(be, (2 + RG_CUDA_STACK_CLAIMS) * sizeof(unsigned));
    c->stack_claims = c->stack_bar ? (int *)(c->stack_bar + 2) : NULL;
    if (c->stack_bar)
        rg_cuda_check(c, cudaMemset(c->stack_bar, 0, (2 + RG_CUDA_STACK_CLAIMS) * sizeof(unsigned)), "reserve");
    /* pinned landing buffer for downloads into pageable memory: 8 rows of the widest
     * output (logits buffers from host_alloc are pinned and skip it) */
    c->h_out_bytes = (size_t)8 * (size_t)lim->n_out_max * 4;
    if (cudaMallocHost(&c->h_out, c->h_out_bytes) != cudaSuccess) c->h_out = NULL, cudaGetLastError();
    c->row_src = (const int32_t **)malloc((size_t)lim->max_tokens * sizeof *c->row_src);
    c->row_ctx = (int64_t *)malloc((size_t)lim->max_tokens * sizeof *c->row_ctx);
    if (!c->row_src || !c->row_ctx || !c->kv_data || !d_stage || !pinned || !c->x16 || !c->w16 || !c->xq || !c->attn_o ||
        !c->attn_ml || !c->d_argmax || !c->stack_q || !c->stack_bar)
        return rg_fail(err, RG_E_NOMEM, "cuda: out of GPU memory for the KV pool (%zu bytes) and step buffers",
                       (size_t)c->kvc.n_layer * c->kv_layer_bytes);
    return c->status ? rg_fail(err, c->status, "%s", c->msg) : RG_OK;
}

static void cuda_begin_step(rg_backend *be, const rg_step *s) {
    cuda_backend *c = cuda_of(be);
    /* the staging buffer may still feed the previous step's copies */
    rg_cuda_check(c, cudaStreamSynchronize(c->stream), "step");
    int64_t n = s->n_tok, T = c->max_tokens, W = c->max_table_blocks;
    int32_t *h = c->h_stage;
    int32_t *pos = h, *n_ctx = h + T, *row = h + 2 * T, *tab = h + 3 * T;
    /* one table row per distinct sequence (a sequence's tokens are usually adjacent) */
    int64_t n_rows = 0;
    for (int64_t t = 0; t < n; t++) {
        pos[t] = s->pos[t];
        n_ctx[t] = s->n_ctx ? s->n_ctx[t] : 0;
        row[t] = 0;
        if (!s->tables) continue; /* a step without attention (op tests) */
        int64_t r = n_rows - 1;
        if (r < 0 || c->row_src[r] != s->tables[t])
            for (r = 0; r < n_rows && c->row_src[r] != s->tables[t]; r++) {
            }
        if (r == n_rows) c->row_src[n_rows] = s->tables[t], c->row_ctx[n_rows++] = 0;
        if (s->n_ctx[t] > c->row_ctx[r]) c->row_ctx[r] = s->n_ctx[t];
        row[t] = (int32_t)r;
    }
    for (int64_t r = 0; r < n_rows; r++)
        memcpy(tab + r * W, c->row_src[r], (size_t)((c->row_ctx[r] + c->kvc.block_size - 1) / c->kvc.block_size) * 4);
    c->n_tok = n;
    c->ctx_max = s->ctx_max;
    rg_cuda_forget_prepared(c);
    c->ids_used = 0;
    /* one copy: pos, n_ctx, row are contiguous, then the used table rows */
    rg_cuda_check(c, cudaMemcpyAsync(c->d_pos, h, (size_t)(3 * T + n_rows * W) * 4, cudaMemcpyHostToDevice, c->stream),
                  "step upload");
}

const int32_t *rg_cuda_stage_ids(cuda_backend *c, const int32_t *ids, int64_t n) {
    if (c->ids_used >= 2 || n > c->max_tokens) {
        rg_cuda_fail(c, "get_rows", "more id uploads in one step than staged");
        return NULL;
    }
    int64_t T = c->max_tokens, W = c->max_table_blocks;
    int32_t *h = c->h_stage + 3 * T + T * W + c->ids_used * T;
    int32_t *d = c->d_ids + c->ids_used * T;
    c->ids_used++;
    memcpy(h, ids, (size_t)n * 4);
    if (!rg_cuda_check(c, cudaMemcpyAsync(d, h, (size_t)n * 4, cudaMemcpyHostToDevice, c->stream), "ids upload"))
        return NULL;
    return d;
}

static void cuda_kv_copy_block(rg_backend *be, int32_t dst, int32_t src) {
    cuda_backend *c = cuda_of(be);
    for (int64_t l = 0; l < c->kvc.n_layer; l++) {
        uint8_t *base = c->kv_data + (size_t)l * c->kv_layer_bytes;
        rg_cuda_check(c,
                      cudaMemcpyAsync(base + (size_t)dst * c->kv_unit_bytes, base + (size_t)src * c->kv_unit_bytes,
                                      c->kv_unit_bytes, cudaMemcpyDeviceToDevice, c->stream),
                      "kv block copy");
    }
}

/* ---- decode-step graphs */

static bool graph_replay(rg_backend *be, int64_t key) {
    cuda_backend *c = cuda_of(be);
    if (key < 1 || key > RG_CUDA_GRAPHS || !c->graphs[key] || c->status) return false;
    rg_cuda_check(c, cudaGraphLaunch(c->graphs[key], c->stream), "graph launch");
    return true;
}

static void graph_record_begin(rg_backend *be, int64_t key) {
    cuda_backend *c = cuda_of(be);
    if (key < 1 || key > RG_CUDA_GRAPHS) return;
    rg_cuda_check(c, cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal), "graph capture");
}

static void graph_record_end(rg_backend *be, int64_t key) {
    cuda_backend *c = cuda_of(be);
    if (key < 1 || key > RG_CUDA_GRAPHS) return;
    cudaGraph_t g = NULL;
    if (!rg_cuda_check(c, cudaStreamEndCapture(c->stream, &g), "graph capture")) return;
    if (c->status) { /* an op failed while recording: keep the first error, drop the graph */
        cudaGraphDestroy(g);
        return;
    }
    cudaGraphExec_t exec = NULL;
    bool ok = rg_cuda_check(c, cudaGraphInstantiate(&exec, g, 0), "graph instantiate");
    cudaGraphDestroy(g);
    if (!ok) return;
    c->graphs[key] = exec;
    rg_cuda_check(c, cudaGraphLaunch(exec, c->stream), "graph launch");
}

static void cuda_destroy(rg_backend *be) {
    cuda_backend *c = cuda_of(be);
    if (!c) return;
    for (int i = 0; i <= RG_CUDA_GRAPHS; i++)
        if (c->graphs[i]) cudaGraphExecDestroy(c->graphs[i]);
    cudaFree(c->kv_data);
    cudaFree(c->d_pos);
    cudaFreeHost(c->h_stage);
    if (c->h_out) cudaFreeHost(c->h_out);
    free(c->row_src), free(c->row_ctx);
    cudaFree(c->x16), cudaFree(c->w16), cudaFree(c->xq);
    cudaFree(c->attn_o), cudaFree(c->attn_ml);
    cudaFree(c->stack_q), cudaFree(c->stack_bar);
    cudaFree(c->d_argmax);
    if (c->cublas) cublasDestroy(c->cublas);
    if (c->stream) cudaStreamDestroy(c->stream);
    free(c);
}

extern "C" rg_status rg_backend_cuda_create(int device, rg_backend **out, rg_err *err) {
    *out = NULL;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0)
        return rg_fail(err, RG_E_UNSUPPORTED, "cuda: no usable GPU (%s)",
                       e != cudaSuccess ? cudaGetErrorString(e) : "none found");
    if (device < 0 || device >= n)
        return rg_fail(err, RG_E_INVALID, "cuda: device %d does not exist (%d found)", device, n);
    cuda_backend *c = (cuda_backend *)calloc(1, sizeof *c);
    if (!c) return rg_fail(err, RG_E_NOMEM, "out of memory");
    c->device = device;
    cudaDeviceProp prop;
    if ((e = cudaSetDevice(device)) != cudaSuccess || (e = cudaGetDeviceProperties(&prop, device)) != cudaSuccess ||
        (e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking)) != cudaSuccess) {
        cuda_destroy(&c->be);
        return rg_fail(err, RG_E_IO, "cuda: device %d: %s", device, cudaGetErrorString(e));
    }
    c->n_sm = prop.multiProcessorCount;
    /* the levers (docs/ARCHITECTURE.md, "CUDA levers"); opt-in: the quantized
     * GEMV's long-row mapping (measured neutral to slower) */
    c->pdl = prop.major >= 9 && lever("RIDGE_CUDA_PDL", true);
    c->gemv_q_short = lever("RIDGE_CUDA_GEMV_Q_SHORT", true);
    c->gemv_q_u2 = lever("RIDGE_CUDA_GEMV_Q_U2", false);
    c->norm_quant = lever("RIDGE_CUDA_NORM_QUANT", true);
    c->prefill_inputs = lever("RIDGE_CUDA_PREFILL_INPUTS", true);
    c->prefill_gu16 = lever("RIDGE_CUDA_PREFILL_GU16", true);
    c->pf_mt2 = lever("RIDGE_CUDA_PF_MT2", false);
    c->pf_wgmma = prop.major == 9 && lever("RIDGE_CUDA_PF_WGMMA", true); /* and the binary has it: setup */
    c->gemv_mma = lever("RIDGE_CUDA_GEMV_MMA", true);
    /* opt-in: measured slower than the per-op path so far (decode_stack.cu) */
    c->stack_require = getenv("RIDGE_CUDA_STACK") && !strcmp(getenv("RIDGE_CUDA_STACK"), "require");
    c->stack = prop.major == 9 && (lever("RIDGE_CUDA_STACK", false) || c->stack_require); /* and the binary has it */
    if (cublasCreate(&c->cublas) != CUBLAS_STATUS_SUCCESS ||
        cublasSetStream(c->cublas, c->stream) != CUBLAS_STATUS_SUCCESS) {
        cuda_destroy(&c->be);
        return rg_fail(err, RG_E_IO, "cuda: cannot create the cuBLAS handle");
    }
    c->be.name = "cuda";
    c->be.destroy = cuda_destroy;
    c->be.alloc = cuda_alloc;
    c->be.free = cuda_free;
    c->be.upload = cuda_upload;
    c->be.download = cuda_download;
    /* RIDGE_CUDA_HOST_ALLOC=0: logits buffers from malloc (downloads staged through h_out) */
    if (lever("RIDGE_CUDA_HOST_ALLOC", true)) c->be.host_alloc = cuda_host_alloc, c->be.host_free = cuda_host_free;
    c->be.copy = cuda_copy;
    c->be.sync = sync_status;
    c->be.load_weight = cuda_load_weight;
    c->be.unload_weight = cuda_unload_weight;
    c->be.reserve = cuda_reserve;
    c->be.begin_step = cuda_begin_step;
    c->be.kv_copy_block = cuda_kv_copy_block;
    c->be.graph_replay = graph_replay;
    c->be.graph_record_begin = graph_record_begin;
    c->be.graph_record_end = graph_record_end;
    c->be.get_rows = rg_cuda_get_rows;
    c->be.matmul = rg_cuda_matmul;
    c->be.rmsnorm = rg_cuda_rmsnorm;
    c->be.rope = rg_cuda_rope;
    c->be.kv_store = rg_cuda_kv_store;
    c->be.attention = rg_cuda_attention_op;
    c->be.swiglu = rg_cuda_swiglu;
    c->be.add = rg_cuda_add;
    c->be.add_sinusoidal = rg_cuda_add_sinusoidal;
    c->be.matmul_multi = rg_cuda_matmul_multi;
    c->be.matmul_add = rg_cuda_matmul_add;
    c->be.matmul_swiglu = rg_cuda_matmul_swiglu;
    c->be.rope_kv_store = rg_cuda_rope_kv_store;
    c->be.rmsnorm_prepare = rg_cuda_rmsnorm_prepare;
    c->be.swiglu_into = rg_cuda_swiglu_into;
    c->be.holds_input_form = rg_cuda_holds_input_form;
    /* RIDGE_CUDA_QKV_ROPE=0: QKV and RoPE + KV store as two launches (the lever to measure the fusion by) */
    if (lever("RIDGE_CUDA_QKV_ROPE", true)) c->be.qkv_rope_kv_store = rg_cuda_qkv_rope_kv_store;
    c->be.argmax_rows = rg_cuda_argmax_rows;
    c->be.layer_stack = rg_cuda_layer_stack;
    *out = &c->be;
    return RG_OK;
}

extern "C" double rg_backend_cuda_copy_bandwidth(int device, size_t bytes, int reps) {
    /* device-to-device copy, counting bytes read plus bytes written; median-free
     * best of reps after a warm-up */
    void *a = NULL, *b = NULL;
    cudaEvent_t e0, e1;
    double best = 0;
    if (cudaSetDevice(device) != cudaSuccess || cudaMalloc(&a, bytes) != cudaSuccess ||
        cudaMalloc(&b, bytes) != cudaSuccess || cudaEventCreate(&e0) != cudaSuccess ||
        cudaEventCreate(&e1) != cudaSuccess) {
        cudaFree(a), cudaFree(b);
        return 0;
    }
    cudaMemset(a, 1, bytes);
    cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);
    for (int r = 0; r < reps; r++) {
        float ms = 0;
        cudaEventRecord(e0);
        cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice);
        cudaEventRecord(e1);
        if (cudaEventSynchronize(e1) != cudaSuccess || cudaEventElapsedTime(&ms, e0, e1) != cudaSuccess) break;
        double bw = 2.0 * (double)bytes / (ms * 1e-3);
        if (bw > best) best = bw;
    }
    cudaEventDestroy(e0), cudaEventDestroy(e1);
    cudaFree(a), cudaFree(b);
    return best;
}
