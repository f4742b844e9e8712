/* gguf_read.c — validating GGUF parser over a memory image (mmap'd or given).
 *
 * Every read goes through a cursor that checks the bytes remain; every count is
 * bounded by the bytes left before anything is allocated (a count of n elements
 * needs at least n * min_element_size bytes), so a file claiming 2^60 keys fails
 * at once instead of allocating. Tensor extents are checked for overflow and
 * against the file size; offsets must respect the alignment and not overlap. */
#include "formats/gguf.h"

#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_ARRAY_DEPTH 4       /* nested arrays deeper than this are rejected */
#define MAX_KEY_BYTES 65535     /* keys are short identifiers */
#define MAX_TENSORS 65536       /* a 405B model has ~1,100; far more means a hostile file */

typedef struct kv {
    char *key;
    rg_gguf_type type;
    const uint8_t *val;         /* scalar bytes, or string (len,bytes), or array payload */
    /* arrays */
    rg_gguf_type elem_type;
    uint64_t n;
    uint64_t *str_offsets;      /* for arrays of strings: offset of each element's (len,bytes) from val */
} kv;

struct rg_gguf {
    const uint8_t *base;
    size_t size;
    bool mapped;
    uint32_t version;
    uint64_t alignment;
    uint64_t data_offset;
    int64_t n_kv;
    kv *kvs;
    int64_t n_tensors;
    rg_gguf_tensor *tensors;
};

typedef struct cursor {
    const uint8_t *base;
    size_t size, pos;
    rg_err *err;
} cursor;

static size_t remaining(const cursor *c) { return c->size - c->pos; }

static rg_status need(cursor *c, uint64_t n, const char *what) {
    if (n > remaining(c))
        return rg_fail(c->err, RG_E_FORMAT, "truncated file: %s needs %llu bytes at offset %zu, only %zu left",
                       what, (unsigned long long)n, c->pos, remaining(c));
    return RG_OK;
}

static rg_status rd(cursor *c, void *out, size_t n, const char *what) {
    rg_status s = need(c, n, what);
    if (s) return s;
    memcpy(out, c->base + c->pos, n);
    c->pos += n;
    return RG_OK;
}

static rg_status rd_u32(cursor *c, uint32_t *v, const char *what) { return rd(c, v, 4, what); }
static rg_status rd_u64(cursor *c, uint64_t *v, const char *what) { return rd(c, v, 8, what); }

/* A string: u64 length + bytes. Returns a view into the buffer. */
static rg_status rd_str(cursor *c, rg_gguf_str *s, const char *what) {
    uint64_t len;
    rg_status st = rd_u64(c, &len, what);
    if (st) return st;
    if ((st = need(c, len, what))) return st;
    s->ptr = (const char *)c->base + c->pos;
    s->len = len;
    c->pos += len;
    return RG_OK;
}

size_t rg_gguf_type_size(rg_gguf_type t) {
    switch (t) {
    case RG_GGUF_U8: case RG_GGUF_I8: case RG_GGUF_BOOL: return 1;
    case RG_GGUF_U16: case RG_GGUF_I16: return 2;
    case RG_GGUF_U32: case RG_GGUF_I32: case RG_GGUF_F32: return 4;
    case RG_GGUF_U64: case RG_GGUF_I64: case RG_GGUF_F64: return 8;
    default: return 0;
    }
}

const char *rg_gguf_type_name(rg_gguf_type t) {
    static const char *names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                  "bool", "string", "array", "u64", "i64", "f64"};
    return (unsigned)t < RG_GGUF_TYPE_COUNT ? names[t] : "?";
}

/* Skip over one value of type t (validating it), used for nested arrays and to
 * measure string arrays. depth guards against recursion bombs. */
static rg_status skip_value(cursor *c, rg_gguf_type t, int depth, const char *key) {
    if ((unsigned)t >= RG_GGUF_TYPE_COUNT)
        return rg_fail(c->err, RG_E_FORMAT, "metadata '%s': unknown value type %u", key, (unsigned)t);
    if (t == RG_GGUF_STRING) {
        rg_gguf_str s;
        return rd_str(c, &s, "string value");
    }
    if (t == RG_GGUF_ARRAY) {
        if (depth >= MAX_ARRAY_DEPTH)
            return rg_fail(c->err, RG_E_FORMAT, "metadata '%s': arrays nested deeper than %d", key, MAX_ARRAY_DEPTH);
        uint32_t et;
        uint64_t n;
        rg_status s;
        if ((s = rd_u32(c, &et, "array type")) || (s = rd_u64(c, &n, "array length"))) return s;
        if (et >= RG_GGUF_TYPE_COUNT)
            return rg_fail(c->err, RG_E_FORMAT, "metadata '%s': unknown array element type %u", key, et);
        size_t es = rg_gguf_type_size((rg_gguf_type)et);
        size_t min_es = es ? es : (et == RG_GGUF_STRING ? 8 : 12);
        if (n > remaining(c) / min_es)
            return rg_fail(c->err, RG_E_FORMAT, "metadata '%s': array of %llu elements exceeds the file", key,
                           (unsigned long long)n);
        if (es) {
            c->pos += n * es;
            return RG_OK;
        }
        for (uint64_t i = 0; i < n; i++)
            if ((s = skip_value(c, (rg_gguf_type)et, depth + 1, key))) return s;
        return RG_OK;
    }
    rg_status s = need(c, rg_gguf_type_size(t), "scalar value");
    if (!s) c->pos += rg_gguf_type_size(t);
    return s;
}

static rg_status parse_kv(cursor *c, kv *out) {
    rg_gguf_str key;
    rg_status s = rd_str(c, &key, "metadata key");
    if (s) return s;
    if (key.len == 0 || key.len > MAX_KEY_BYTES || memchr(key.ptr, 0, key.len))
        return rg_fail(c->err, RG_E_FORMAT, "metadata key at offset %zu is empty, too long or contains NUL",
                       c->pos - key.len);
    out->key = malloc(key.len + 1);
    if (!out->key) return rg_fail(c->err, RG_E_NOMEM, "out of memory");
    memcpy(out->key, key.ptr, key.len);
    out->key[key.len] = 0;

    uint32_t t;
    if ((s = rd_u32(c, &t, "metadata value type"))) return s;
    if (t >= RG_GGUF_TYPE_COUNT)
        return rg_fail(c->err, RG_E_FORMAT, "metadata '%s': unknown value type %u", out->key, t);
    out->type = (rg_gguf_type)t;
    if (t != RG_GGUF_ARRAY) {
        out->val = c->base + c->pos;
        if ((s = skip_value(c, out->type, 0, out->key))) return s;
        if (t == RG_GGUF_BOOL && *out->val > 1)
            return rg_fail(c->err, RG_E_FORMAT, "metadata '%s': bool value %u is not 0 or 1", out->key, *out->val);
        return RG_OK;
    }
    uint32_t et;
    if ((s = rd_u32(c, &et, "array type")) || (s = rd_u64(c, &out->n, "array length"))) return s;
    if (et >= RG_GGUF_TYPE_COUNT)
        return rg_fail(c->err, RG_E_FORMAT, "metadata '%s': unknown array element type %u", out->key, et);
    out->elem_type = (rg_gguf_type)et;
    size_t es = rg_gguf_type_size(out->elem_type);
    size_t min_es = es ? es : (et == RG_GGUF_STRING ? 8 : 12);
    if (out->n > remaining(c) / min_es)
        return rg_fail(c->err, RG_E_FORMAT, "metadata '%s': array of %llu elements exceeds the file", out->key,
                       (unsigned long long)out->n);
    out->val = c->base + c->pos;
    if (es) {
        c->pos += out->n * es;
        return RG_OK;
    }
    if (et == RG_GGUF_STRING) {
        out->str_offsets = malloc((out->n ? out->n : 1) * sizeof *out->str_offsets);
        if (!out->str_offsets) return rg_fail(c->err, RG_E_NOMEM, "out of memory");
    }
    for (uint64_t i = 0; i < out->n; i++) {
        if (out->str_offsets) out->str_offsets[i] = (uint64_t)(c->base + c->pos - out->val);
        if ((s = skip_value(c, out->elem_type, 1, out->key))) return s;
    }
    return RG_OK;
}

static rg_status parse_tensor_info(cursor *c, rg_gguf_tensor *t, int64_t index) {
    rg_gguf_str name;
    rg_status s = rd_str(c, &name, "tensor name");
    if (s) return s;
    if (name.len == 0 || name.len > 4096 || memchr(name.ptr, 0, name.len))
        return rg_fail(c->err, RG_E_FORMAT, "tensor #%lld: name is empty, too long or contains NUL",
                       (long long)index);
    t->name = malloc(name.len + 1);
    if (!t->name) return rg_fail(c->err, RG_E_NOMEM, "out of memory");
    memcpy(t->name, name.ptr, name.len);
    t->name[name.len] = 0;

    if ((s = rd_u32(c, &t->n_dims, "tensor dims"))) return s;
    if (t->n_dims == 0 || t->n_dims > RG_GGUF_MAX_DIMS)
        return rg_fail(c->err, RG_E_FORMAT, "tensor '%s': %u dimensions (1..%d allowed)", t->name, t->n_dims,
                       RG_GGUF_MAX_DIMS);
    int64_t n_elements = 1;
    for (int d = 0; d < RG_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t ne;
        if ((s = rd_u64(c, &ne, "tensor dim"))) return s;
        if (ne == 0 || ne > (uint64_t)INT64_MAX || (uint64_t)n_elements > (uint64_t)INT64_MAX / ne)
            return rg_fail(c->err, RG_E_FORMAT, "tensor '%s': dimension %u = %llu is zero or overflows",
                           t->name, d, (unsigned long long)ne);
        t->ne[d] = (int64_t)ne;
        n_elements *= (int64_t)ne;
    }
    t->n_elements = n_elements;
    uint32_t type;
    if ((s = rd_u32(c, &type, "tensor type")) || (s = rd_u64(c, &t->offset, "tensor offset"))) return s;
    const rg_dtype_info *info = rg_dtype_get(type);
    if (!info)
        return rg_fail(c->err, RG_E_UNSUPPORTED, "tensor '%s': unknown type id %u", t->name, type);
    t->type = (rg_dtype)type;
    if (t->ne[0] % info->block_size)
        return rg_fail(c->err, RG_E_FORMAT, "tensor '%s': row length %lld is not a multiple of %s's block size %lld",
                       t->name, (long long)t->ne[0], info->name, (long long)info->block_size);
    /* n_elements / block_size * type_size cannot overflow: n_elements <= INT64_MAX
     * and type_size <= block_size * 8 for every type, but check anyway. */
    int64_t blocks = n_elements / info->block_size;
    if (blocks > INT64_MAX / info->type_size)
        return rg_fail(c->err, RG_E_FORMAT, "tensor '%s': byte size overflows", t->name);
    t->n_bytes = blocks * info->type_size;
    return RG_OK;
}

static int cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* First name occurring twice among n records of `stride` bytes whose char* name
 * sits at `name_offset`; NULL if none, (char*)-1 when out of memory. Sorting keeps
 * this O(n log n) so a file with 100k keys cannot stall the parser. */
static const char *first_duplicate(const void *records, size_t n, size_t stride, size_t name_offset) {
    if (n < 2) return NULL;
    char **names = malloc(n * sizeof *names);
    if (!names) return (const char *)-1;
    for (size_t i = 0; i < n; i++) memcpy(&names[i], (const char *)records + i * stride + name_offset, sizeof(char *));
    qsort(names, n, sizeof *names, cmp_name);
    const char *dup = NULL;
    for (size_t i = 1; i < n && !dup; i++)
        if (!strcmp(names[i - 1], names[i])) dup = names[i];
    free(names);
    return dup;
}

static int cmp_offset(const void *a, const void *b) {
    const rg_gguf_tensor *x = *(rg_gguf_tensor *const *)a, *y = *(rg_gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static rg_status parse(rg_gguf *g, rg_err *err) {
    cursor c = {g->base, g->size, 0, err};
    char magic[4];
    rg_status s;
    if ((s = rd(&c, magic, 4, "magic"))) return s;
    if (memcmp(magic, "GGUF", 4))
        return rg_fail(err, RG_E_FORMAT, "not a GGUF file (magic is not \"GGUF\")");
    if ((s = rd_u32(&c, &g->version, "version"))) return s;
    if (g->version == 1)
        return rg_fail(err, RG_E_UNSUPPORTED, "GGUF version 1 is not supported (convert it to v3)");
    if (g->version != 2 && g->version != 3)
        return rg_fail(err, RG_E_UNSUPPORTED, "unknown GGUF version %u (ridge reads 2 and 3)", g->version);
    uint64_t n_tensors, n_kv;
    if ((s = rd_u64(&c, &n_tensors, "tensor count")) || (s = rd_u64(&c, &n_kv, "metadata count"))) return s;
    /* each kv needs >= 8 (key len) + 1 (key) + 4 (type) + 1 bytes; each tensor info >= 8+1+4+8+4+8 */
    if (n_kv > remaining(&c) / 14)
        return rg_fail(err, RG_E_FORMAT, "metadata count %llu exceeds the file", (unsigned long long)n_kv);
    if (n_tensors > remaining(&c) / 33)
        return rg_fail(err, RG_E_FORMAT, "tensor count %llu exceeds the file", (unsigned long long)n_tensors);
    if (n_tensors > MAX_TENSORS)
        return rg_fail(err, RG_E_UNSUPPORTED, "%llu tensors: more than ridge's limit of %d",
                       (unsigned long long)n_tensors, MAX_TENSORS);

    g->kvs = calloc(n_kv ? n_kv : 1, sizeof *g->kvs);
    if (!g->kvs) return rg_fail(err, RG_E_NOMEM, "out of memory");
    for (uint64_t i = 0; i < n_kv; i++) {
        g->n_kv = (int64_t)i + 1; /* so close() frees what was parsed */
        if ((s = parse_kv(&c, &g->kvs[i]))) return s;
    }
    g->n_kv = (int64_t)n_kv;
    const char *dup = first_duplicate(g->kvs, (size_t)n_kv, sizeof *g->kvs, offsetof(kv, key));
    if (dup == (const char *)-1) return rg_fail(err, RG_E_NOMEM, "out of memory");
    if (dup) return rg_fail(err, RG_E_FORMAT, "duplicate metadata key '%s'", dup);

    g->alignment = RG_GGUF_DEFAULT_ALIGNMENT;
    int64_t ai = rg_gguf_find_key(g, "general.alignment");
    if (ai >= 0) {
        uint32_t a;
        if (!rg_gguf_get_u32(g, ai, &a) || a == 0 || (a & (a - 1)))
            return rg_fail(err, RG_E_FORMAT, "general.alignment must be a power-of-two u32");
        g->alignment = a;
    }

    g->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *g->tensors);
    if (!g->tensors) return rg_fail(err, RG_E_NOMEM, "out of memory");
    for (uint64_t i = 0; i < n_tensors; i++) {
        g->n_tensors = (int64_t)i + 1;
        if ((s = parse_tensor_info(&c, &g->tensors[i], (int64_t)i))) return s;
    }
    g->n_tensors = (int64_t)n_tensors;

    uint64_t data_offset = (c.pos + g->alignment - 1) / g->alignment * g->alignment;
    if (n_tensors && data_offset > g->size)
        return rg_fail(err, RG_E_FORMAT, "truncated file: data section starts at %llu past the end (%zu bytes)",
                       (unsigned long long)data_offset, g->size);
    g->data_offset = data_offset;
    uint64_t data_size = g->size > data_offset ? g->size - data_offset : 0;

    /* Tensors sorted by offset: alignment, bounds and overlap in one pass. */
    rg_gguf_tensor **order = malloc((n_tensors ? n_tensors : 1) * sizeof *order);
    if (!order) return rg_fail(err, RG_E_NOMEM, "out of memory");
    for (uint64_t i = 0; i < n_tensors; i++) order[i] = &g->tensors[i];
    qsort(order, n_tensors, sizeof *order, cmp_offset);
    uint64_t end_prev = 0;
    for (uint64_t i = 0; i < n_tensors; i++) {
        rg_gguf_tensor *t = order[i];
        if (t->offset % g->alignment) {
            s = rg_fail(err, RG_E_FORMAT, "tensor '%s': offset %llu is not aligned to %llu", t->name,
                        (unsigned long long)t->offset, (unsigned long long)g->alignment);
            break;
        }
        if (t->offset > data_size || (uint64_t)t->n_bytes > data_size - t->offset) {
            s = rg_fail(err, RG_E_FORMAT, "tensor '%s': data [%llu, +%lld) lies past the end of the file", t->name,
                        (unsigned long long)t->offset, (long long)t->n_bytes);
            break;
        }
        if (t->offset < end_prev) {
            s = rg_fail(err, RG_E_FORMAT, "tensor '%s': data overlaps the previous tensor", t->name);
            break;
        }
        end_prev = t->offset + (uint64_t)t->n_bytes;
        t->data = g->base + data_offset + t->offset;
    }
    free(order);
    if (s) return s;
    dup = first_duplicate(g->tensors, (size_t)n_tensors, sizeof *g->tensors, offsetof(rg_gguf_tensor, name));
    if (dup == (const char *)-1) return rg_fail(err, RG_E_NOMEM, "out of memory");
    if (dup) return rg_fail(err, RG_E_FORMAT, "duplicate tensor name '%s'", dup);
    return RG_OK;
}

rg_status rg_gguf_open_memory(const void *buf, size_t size, rg_gguf **out, rg_err *err) {
    *out = NULL;
    rg_gguf *g = calloc(1, sizeof *g);
    if (!g) return rg_fail(err, RG_E_NOMEM, "out of memory");
    g->base = buf;
    g->size = size;
    rg_status s = parse(g, err);
    if (s) {
        rg_gguf_close(g);
        return s;
    }
    *out = g;
    return RG_OK;
}

rg_status rg_gguf_open(const char *path, rg_gguf **out, rg_err *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return rg_fail(err, RG_E_IO, "cannot open: %m");
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return rg_fail(err, RG_E_IO, "not a regular file");
    }
    size_t size = (size_t)st.st_size;
    if (size == 0) {
        close(fd);
        return rg_fail(err, RG_E_FORMAT, "empty file");
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return rg_fail(err, RG_E_IO, "cannot map the file: %m");
    rg_status s = rg_gguf_open_memory(map, size, out, err);
    if (s) {
        munmap(map, size);
        return s;
    }
    (*out)->mapped = true;
    return RG_OK;
}

void rg_gguf_close(rg_gguf *g) {
    if (!g) return;
    for (int64_t i = 0; i < g->n_kv; i++) {
        free(g->kvs[i].key);
        free(g->kvs[i].str_offsets);
    }
    free(g->kvs);
    for (int64_t i = 0; i < g->n_tensors; i++) free(g->tensors[i].name);
    free(g->tensors);
    if (g->mapped) munmap((void *)g->base, g->size);
    free(g);
}

uint32_t rg_gguf_version(const rg_gguf *g) { return g->version; }
uint64_t rg_gguf_alignment(const rg_gguf *g) { return g->alignment; }
uint64_t rg_gguf_data_offset(const rg_gguf *g) { return g->data_offset; }
uint64_t rg_gguf_file_size(const rg_gguf *g) { return g->size; }
int64_t rg_gguf_kv_count(const rg_gguf *g) { return g->n_kv; }
int64_t rg_gguf_tensor_count(const rg_gguf *g) { return g->n_tensors; }

int64_t rg_gguf_find_key(const rg_gguf *g, const char *key) {
    for (int64_t i = 0; i < g->n_kv; i++)
        if (g->kvs[i].key && !strcmp(g->kvs[i].key, key)) return i;
    return -1;
}

const char *rg_gguf_key(const rg_gguf *g, int64_t i) { return g->kvs[i].key; }
rg_gguf_type rg_gguf_kv_type(const rg_gguf *g, int64_t i) { return g->kvs[i].type; }

static bool scalar_i64(rg_gguf_type t, const uint8_t *p, int64_t *out) {
    switch (t) {
    case RG_GGUF_U8: *out = *p; return true;
    case RG_GGUF_I8: *out = (int8_t)*p; return true;
    case RG_GGUF_U16: { uint16_t v; memcpy(&v, p, 2); *out = v; return true; }
    case RG_GGUF_I16: { int16_t v; memcpy(&v, p, 2); *out = v; return true; }
    case RG_GGUF_U32: { uint32_t v; memcpy(&v, p, 4); *out = v; return true; }
    case RG_GGUF_I32: { int32_t v; memcpy(&v, p, 4); *out = v; return true; }
    case RG_GGUF_I64: { int64_t v; memcpy(&v, p, 8); *out = v; return true; }
    case RG_GGUF_U64: {
        uint64_t v;
        memcpy(&v, p, 8);
        if (v > (uint64_t)INT64_MAX) return false;
        *out = (int64_t)v;
        return true;
    }
    default: return false;
    }
}

bool rg_gguf_get_u32(const rg_gguf *g, int64_t i, uint32_t *out) {
    if (g->kvs[i].type != RG_GGUF_U32) return false;
    memcpy(out, g->kvs[i].val, 4);
    return true;
}

bool rg_gguf_get_i64(const rg_gguf *g, int64_t i, int64_t *out) {
    return scalar_i64(g->kvs[i].type, g->kvs[i].val, out);
}

bool rg_gguf_get_f64(const rg_gguf *g, int64_t i, double *out) {
    if (g->kvs[i].type == RG_GGUF_F32) {
        float f;
        memcpy(&f, g->kvs[i].val, 4);
        *out = f;
        return true;
    }
    if (g->kvs[i].type == RG_GGUF_F64) {
        memcpy(out, g->kvs[i].val, 8);
        return true;
    }
    return false;
}

bool rg_gguf_get_bool(const rg_gguf *g, int64_t i, bool *out) {
    if (g->kvs[i].type != RG_GGUF_BOOL) return false;
    *out = *g->kvs[i].val != 0;
    return true;
}

static void str_at(const uint8_t *p, rg_gguf_str *out) {
    memcpy(&out->len, p, 8);
    out->ptr = (const char *)p + 8;
}

bool rg_gguf_get_str(const rg_gguf *g, int64_t i, rg_gguf_str *out) {
    if (g->kvs[i].type != RG_GGUF_STRING) return false;
    str_at(g->kvs[i].val, out);
    return true;
}

bool rg_gguf_get_arr(const rg_gguf *g, int64_t i, rg_gguf_type *elem_type, uint64_t *n) {
    if (g->kvs[i].type != RG_GGUF_ARRAY) return false;
    if (elem_type) *elem_type = g->kvs[i].elem_type;
    if (n) *n = g->kvs[i].n;
    return true;
}

const void *rg_gguf_arr_data(const rg_gguf *g, int64_t i) {
    return g->kvs[i].type == RG_GGUF_ARRAY ? g->kvs[i].val : NULL;
}

bool rg_gguf_arr_str(const rg_gguf *g, int64_t i, uint64_t j, rg_gguf_str *out) {
    const kv *k = &g->kvs[i];
    if (k->type != RG_GGUF_ARRAY || k->elem_type != RG_GGUF_STRING || j >= k->n) return false;
    str_at(k->val + k->str_offsets[j], out);
    return true;
}

bool rg_gguf_find_i64(const rg_gguf *g, const char *key, int64_t *out) {
    int64_t i = rg_gguf_find_key(g, key);
    return i >= 0 && rg_gguf_get_i64(g, i, out);
}
bool rg_gguf_find_f64(const rg_gguf *g, const char *key, double *out) {
    int64_t i = rg_gguf_find_key(g, key);
    return i >= 0 && rg_gguf_get_f64(g, i, out);
}
bool rg_gguf_find_bool(const rg_gguf *g, const char *key, bool *out) {
    int64_t i = rg_gguf_find_key(g, key);
    return i >= 0 && rg_gguf_get_bool(g, i, out);
}
bool rg_gguf_find_str(const rg_gguf *g, const char *key, rg_gguf_str *out) {
    int64_t i = rg_gguf_find_key(g, key);
    return i >= 0 && rg_gguf_get_str(g, i, out);
}

/* Print a scalar at p of type t. */
static int format_scalar(rg_gguf_type t, const uint8_t *p, char *buf, size_t size) {
    int64_t iv;
    if (t == RG_GGUF_BOOL) return snprintf(buf, size, "%s", *p ? "true" : "false");
    if (t == RG_GGUF_F32) { float f; memcpy(&f, p, 4); return snprintf(buf, size, "%g", f); }
    if (t == RG_GGUF_F64) { double d; memcpy(&d, p, 8); return snprintf(buf, size, "%g", d); }
    if (t == RG_GGUF_U64) { uint64_t u; memcpy(&u, p, 8); return snprintf(buf, size, "%llu", (unsigned long long)u); }
    if (scalar_i64(t, p, &iv)) return snprintf(buf, size, "%lld", (long long)iv);
    return snprintf(buf, size, "?");
}

/* Quote a string for display, escaping control bytes, truncated to max_chars. */
static int format_str(rg_gguf_str s, char *buf, size_t size, uint64_t max_chars) {
    size_t o = 0;
    if (size < 8) return 0;
    buf[o++] = '"';
    for (uint64_t k = 0; k < s.len && k < max_chars && o + 6 < size; k++) {
        unsigned char ch = (unsigned char)s.ptr[k];
        if (ch == '\n') { buf[o++] = '\\'; buf[o++] = 'n'; }
        else if (ch < 0x20 || ch == 0x7f) o += (size_t)snprintf(buf + o, size - o, "\\x%02x", ch);
        else buf[o++] = (char)ch;
    }
    if (s.len > max_chars && o + 4 < size) { memcpy(buf + o, "...", 3); o += 3; }
    buf[o++] = '"';
    buf[o] = 0;
    return (int)o;
}

void rg_gguf_format_value(const rg_gguf *g, int64_t i, char *buf, size_t size) {
    const kv *k = &g->kvs[i];
    if (size == 0) return;
    buf[0] = 0;
    if (k->type == RG_GGUF_STRING) {
        rg_gguf_str s;
        str_at(k->val, &s);
        format_str(s, buf, size, 60);
        return;
    }
    if (k->type != RG_GGUF_ARRAY) {
        format_scalar(k->type, k->val, buf, size);
        return;
    }
    size_t o = (size_t)snprintf(buf, size, "[%s x %llu]", rg_gguf_type_name(k->elem_type), (unsigned long long)k->n);
    size_t es = rg_gguf_type_size(k->elem_type);
    for (uint64_t j = 0; j < k->n && j < 4 && o + 16 < size; j++) {
        o += (size_t)snprintf(buf + o, size - o, j ? ", " : " ");
        if (es) o += (size_t)format_scalar(k->elem_type, k->val + j * es, buf + o, size - o);
        else if (k->elem_type == RG_GGUF_STRING) {
            rg_gguf_str s;
            str_at(k->val + k->str_offsets[j], &s);
            o += (size_t)format_str(s, buf + o, size - o, 20);
        } else o += (size_t)snprintf(buf + o, size - o, "[...]");
        if (o >= size) { o = size - 1; break; }
    }
    if (k->n > 4 && o + 5 < size) snprintf(buf + o, size - o, ", ...");
}

const rg_gguf_tensor *rg_gguf_tensor_at(const rg_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const rg_gguf_tensor *rg_gguf_find_tensor(const rg_gguf *g, const char *name) {
    for (int64_t i = 0; i < g->n_tensors; i++)
        if (!strcmp(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}
