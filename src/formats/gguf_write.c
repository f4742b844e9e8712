/* gguf_write.c — building a GGUF v3 file in memory and writing it out.
 *
 * Metadata values are kept as their serialized bytes (exactly what goes after the
 * type tag in the file), so writing is a concatenation and the reader's parser is
 * the single definition of the format that both sides are tested against. */
#include "formats/gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct wkv {
    char *key;
    rg_gguf_type type;
    uint8_t *bytes;   /* serialized value (after the type tag) */
    size_t n_bytes;
} wkv;

typedef struct wtensor {
    char *name;
    rg_dtype type;
    uint32_t n_dims;
    int64_t ne[RG_GGUF_MAX_DIMS];
    void *data;
    size_t n_bytes;
} wtensor;

struct rg_gguf_writer {
    wkv *kvs;
    size_t n_kv, cap_kv;
    wtensor *tensors;
    size_t n_tensors, cap_tensors;
};

rg_gguf_writer *rg_gguf_writer_new(void) { return calloc(1, sizeof(rg_gguf_writer)); }

void rg_gguf_writer_free(rg_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) free(w->kvs[i].key), free(w->kvs[i].bytes);
    for (size_t i = 0; i < w->n_tensors; i++) free(w->tensors[i].name), free(w->tensors[i].data);
    free(w->kvs);
    free(w->tensors);
    free(w);
}

/* Take ownership of bytes as the value of key (replacing an existing key). */
static rg_status put(rg_gguf_writer *w, const char *key, rg_gguf_type type, uint8_t *bytes, size_t n) {
    if (!bytes) return RG_E_NOMEM;
    for (size_t i = 0; i < w->n_kv; i++) {
        if (!strcmp(w->kvs[i].key, key)) {
            free(w->kvs[i].bytes);
            w->kvs[i].type = type, w->kvs[i].bytes = bytes, w->kvs[i].n_bytes = n;
            return RG_OK;
        }
    }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? 2 * w->cap_kv : 32;
        wkv *k = realloc(w->kvs, cap * sizeof *k);
        if (!k) return free(bytes), RG_E_NOMEM;
        w->kvs = k, w->cap_kv = cap;
    }
    char *kcopy = strdup(key);
    if (!kcopy) return free(bytes), RG_E_NOMEM;
    w->kvs[w->n_kv++] = (wkv){kcopy, type, bytes, n};
    return RG_OK;
}

static uint8_t *dup_bytes(const void *p, size_t n) {
    uint8_t *b = malloc(n ? n : 1);
    if (b) memcpy(b, p, n);
    return b;
}

rg_status rg_gguf_set_scalar(rg_gguf_writer *w, const char *key, rg_gguf_type t, const void *v) {
    size_t n = rg_gguf_type_size(t);
    if (!n) return RG_E_INVALID;
    return put(w, key, t, dup_bytes(v, n), n);
}

rg_status rg_gguf_set_u32(rg_gguf_writer *w, const char *key, uint32_t v) { return rg_gguf_set_scalar(w, key, RG_GGUF_U32, &v); }
rg_status rg_gguf_set_i32(rg_gguf_writer *w, const char *key, int32_t v) { return rg_gguf_set_scalar(w, key, RG_GGUF_I32, &v); }
rg_status rg_gguf_set_u64(rg_gguf_writer *w, const char *key, uint64_t v) { return rg_gguf_set_scalar(w, key, RG_GGUF_U64, &v); }
rg_status rg_gguf_set_f32(rg_gguf_writer *w, const char *key, float v) { return rg_gguf_set_scalar(w, key, RG_GGUF_F32, &v); }
rg_status rg_gguf_set_bool(rg_gguf_writer *w, const char *key, bool v) {
    uint8_t b = v;
    return rg_gguf_set_scalar(w, key, RG_GGUF_BOOL, &b);
}

rg_status rg_gguf_set_str(rg_gguf_writer *w, const char *key, const char *v) {
    uint64_t len = strlen(v);
    uint8_t *b = malloc(8 + len);
    if (!b) return RG_E_NOMEM;
    memcpy(b, &len, 8);
    memcpy(b + 8, v, len);
    return put(w, key, RG_GGUF_STRING, b, 8 + len);
}

rg_status rg_gguf_set_arr(rg_gguf_writer *w, const char *key, rg_gguf_type elem_type, const void *data, uint64_t n) {
    size_t es = rg_gguf_type_size(elem_type);
    if (!es || n > (SIZE_MAX - 12) / es) return RG_E_INVALID;
    uint8_t *b = malloc(12 + n * es);
    if (!b) return RG_E_NOMEM;
    uint32_t et = elem_type;
    memcpy(b, &et, 4);
    memcpy(b + 4, &n, 8);
    if (n) memcpy(b + 12, data, n * es);
    return put(w, key, RG_GGUF_ARRAY, b, 12 + n * es);
}

rg_status rg_gguf_set_arr_str(rg_gguf_writer *w, const char *key, const char *const *strs, uint64_t n) {
    size_t total = 12;
    for (uint64_t i = 0; i < n; i++) total += 8 + strlen(strs[i]);
    uint8_t *b = malloc(total);
    if (!b) return RG_E_NOMEM;
    uint32_t et = RG_GGUF_STRING;
    memcpy(b, &et, 4);
    memcpy(b + 4, &n, 8);
    size_t o = 12;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len = strlen(strs[i]);
        memcpy(b + o, &len, 8);
        memcpy(b + o + 8, strs[i], len);
        o += 8 + len;
    }
    return put(w, key, RG_GGUF_ARRAY, b, total);
}

rg_status rg_gguf_add_tensor(rg_gguf_writer *w, const char *name, rg_dtype type, uint32_t n_dims,
                             const int64_t *ne, const void *data, rg_err *err) {
    if (n_dims == 0 || n_dims > RG_GGUF_MAX_DIMS)
        return rg_fail(err, RG_E_INVALID, "tensor '%s': %u dims", name, n_dims);
    int64_t rows = 1;
    for (uint32_t d = 1; d < n_dims; d++) {
        if (ne[d] <= 0) return rg_fail(err, RG_E_INVALID, "tensor '%s': dim %u is %lld", name, d, (long long)ne[d]);
        rows *= ne[d];
    }
    int64_t row_bytes = ne[0] > 0 ? rg_dtype_row_bytes(type, ne[0]) : -1;
    if (row_bytes < 0)
        return rg_fail(err, RG_E_INVALID, "tensor '%s': row of %lld is not whole blocks of %s", name,
                       (long long)ne[0], rg_dtype_name(type));
    for (size_t i = 0; i < w->n_tensors; i++)
        if (!strcmp(w->tensors[i].name, name)) return rg_fail(err, RG_E_INVALID, "duplicate tensor '%s'", name);
    if (w->n_tensors == w->cap_tensors) {
        size_t cap = w->cap_tensors ? 2 * w->cap_tensors : 64;
        wtensor *t = realloc(w->tensors, cap * sizeof *t);
        if (!t) return rg_fail(err, RG_E_NOMEM, "out of memory");
        w->tensors = t, w->cap_tensors = cap;
    }
    wtensor t = {.name = strdup(name), .type = type, .n_dims = n_dims, .n_bytes = (size_t)(row_bytes * rows)};
    for (int d = 0; d < RG_GGUF_MAX_DIMS; d++) t.ne[d] = d < (int)n_dims ? ne[d] : 1;
    t.data = dup_bytes(data, t.n_bytes);
    if (!t.name || !t.data) {
        free(t.name), free(t.data);
        return rg_fail(err, RG_E_NOMEM, "out of memory");
    }
    w->tensors[w->n_tensors++] = t;
    return RG_OK;
}

static bool put_bytes(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n; }

static bool put_str(FILE *f, const char *s) {
    uint64_t len = strlen(s);
    return put_bytes(f, &len, 8) && put_bytes(f, s, len);
}

static bool pad_to(FILE *f, uint64_t *pos, uint64_t align) {
    static const uint8_t zeros[256];
    uint64_t pad = (align - *pos % align) % align;
    *pos += pad;
    while (pad) {
        size_t n = pad < sizeof zeros ? (size_t)pad : sizeof zeros;
        if (!put_bytes(f, zeros, n)) return false;
        pad -= n;
    }
    return true;
}

rg_status rg_gguf_write(rg_gguf_writer *w, const char *path, uint32_t alignment, rg_err *err) {
    if (alignment == 0) alignment = RG_GGUF_DEFAULT_ALIGNMENT;
    if (alignment & (alignment - 1)) return rg_fail(err, RG_E_INVALID, "alignment %u is not a power of two", alignment);
    if (alignment != RG_GGUF_DEFAULT_ALIGNMENT) {
        rg_status s = rg_gguf_set_u32(w, "general.alignment", alignment);
        if (s) return rg_fail(err, s, "out of memory");
    }
    FILE *f = fopen(path, "wb");
    if (!f) return rg_fail(err, RG_E_IO, "cannot create %s: %m", path);
    bool ok = true;
    uint32_t version = 3;
    uint64_t n_tensors = w->n_tensors, n_kv = w->n_kv;
    uint64_t pos = 0;
    ok = ok && put_bytes(f, "GGUF", 4) && put_bytes(f, &version, 4) && put_bytes(f, &n_tensors, 8) &&
         put_bytes(f, &n_kv, 8);
    pos += 24;
    for (size_t i = 0; ok && i < w->n_kv; i++) {
        uint32_t t = w->kvs[i].type;
        ok = put_str(f, w->kvs[i].key) && put_bytes(f, &t, 4) && put_bytes(f, w->kvs[i].bytes, w->kvs[i].n_bytes);
        pos += 8 + strlen(w->kvs[i].key) + 4 + w->kvs[i].n_bytes;
    }
    uint64_t offset = 0;
    for (size_t i = 0; ok && i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        uint32_t type = t->type;
        ok = put_str(f, t->name) && put_bytes(f, &t->n_dims, 4);
        for (uint32_t d = 0; ok && d < t->n_dims; d++) ok = put_bytes(f, &t->ne[d], 8);
        ok = ok && put_bytes(f, &type, 4) && put_bytes(f, &offset, 8);
        pos += 8 + strlen(t->name) + 4 + 8 * t->n_dims + 4 + 8;
        offset += (t->n_bytes + alignment - 1) / alignment * alignment;
    }
    ok = ok && pad_to(f, &pos, alignment);
    for (size_t i = 0; ok && i < w->n_tensors; i++) {
        ok = put_bytes(f, w->tensors[i].data, w->tensors[i].n_bytes);
        pos += w->tensors[i].n_bytes;
        ok = ok && pad_to(f, &pos, alignment);
    }
    if (fclose(f) != 0) ok = false;
    if (!ok) {
        remove(path);
        return rg_fail(err, RG_E_IO, "writing %s failed: %m", path);
    }
    return RG_OK;
}
