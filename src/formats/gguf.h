/* gguf.h — reading and writing GGUF files (versions 2 and 3).
 *
 * A GGUF file is: header (magic "GGUF", version, tensor count, metadata count),
 * metadata key/value pairs, tensor infos (name, dims, type, offset), padding to
 * `general.alignment`, then the tensor data. The reader maps the file and
 * validates every count, length and offset against the file size before use, so a
 * hostile file yields an error, never an out-of-bounds read. Strings and arrays
 * are not copied: accessors return pointers into the mapping, valid until
 * rg_gguf_close. */
#ifndef RG_FORMATS_GGUF_H
#define RG_FORMATS_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/error.h"

#define RG_GGUF_MAX_DIMS 4
#define RG_GGUF_DEFAULT_ALIGNMENT 32

typedef enum rg_gguf_type {
    RG_GGUF_U8 = 0,
    RG_GGUF_I8 = 1,
    RG_GGUF_U16 = 2,
    RG_GGUF_I16 = 3,
    RG_GGUF_U32 = 4,
    RG_GGUF_I32 = 5,
    RG_GGUF_F32 = 6,
    RG_GGUF_BOOL = 7,
    RG_GGUF_STRING = 8,
    RG_GGUF_ARRAY = 9,
    RG_GGUF_U64 = 10,
    RG_GGUF_I64 = 11,
    RG_GGUF_F64 = 12,
    RG_GGUF_TYPE_COUNT
} rg_gguf_type;

typedef struct rg_gguf rg_gguf;

/* A string inside the file: not NUL-terminated. */
typedef struct rg_gguf_str {
    const char *ptr;
    uint64_t len;
} rg_gguf_str;

typedef struct rg_gguf_tensor {
    char *name;                        /* NUL-terminated copy */
    uint32_t n_dims;
    int64_t ne[RG_GGUF_MAX_DIMS];      /* ne[0] is the row length (fastest dim); unused dims = 1 */
    rg_dtype type;
    uint64_t offset;                   /* relative to the start of the data section */
    int64_t n_elements;
    int64_t n_bytes;
    const void *data;                  /* into the mapping */
} rg_gguf_tensor;

/* Open and validate a file (memory-mapped). On failure returns NULL-handle status
 * with a message naming the problem (the caller adds the file name).
 * Ownership: *out is the caller's; free with rg_gguf_close. */
rg_status rg_gguf_open(const char *path, rg_gguf **out, rg_err *err);

/* Parse a GGUF image already in memory (not copied: buf must outlive the handle).
 * Used by the fuzzers and tests. */
rg_status rg_gguf_open_memory(const void *buf, size_t size, rg_gguf **out, rg_err *err);

void rg_gguf_close(rg_gguf *g);

uint32_t rg_gguf_version(const rg_gguf *g);
uint64_t rg_gguf_alignment(const rg_gguf *g);
uint64_t rg_gguf_data_offset(const rg_gguf *g); /* file offset of the data section */
uint64_t rg_gguf_file_size(const rg_gguf *g);

/* ---- metadata ---- */
int64_t rg_gguf_kv_count(const rg_gguf *g);
int64_t rg_gguf_find_key(const rg_gguf *g, const char *key); /* index or -1 */
const char *rg_gguf_key(const rg_gguf *g, int64_t i);
rg_gguf_type rg_gguf_kv_type(const rg_gguf *g, int64_t i);

/* Scalar values. Each returns false if the type does not match exactly, except
 * the widening getters (_int, _float) that accept any integer / float type. */
bool rg_gguf_get_u32(const rg_gguf *g, int64_t i, uint32_t *out);
bool rg_gguf_get_i64(const rg_gguf *g, int64_t i, int64_t *out);   /* any integer type fitting int64 */
bool rg_gguf_get_f64(const rg_gguf *g, int64_t i, double *out);    /* f32 or f64 */
bool rg_gguf_get_bool(const rg_gguf *g, int64_t i, bool *out);
bool rg_gguf_get_str(const rg_gguf *g, int64_t i, rg_gguf_str *out);

/* Arrays: element type (RG_GGUF_ARRAY for nested arrays), length, raw element
 * pointer for fixed-size element types (little-endian, possibly unaligned:
 * read with memcpy), and string elements. */
bool rg_gguf_get_arr(const rg_gguf *g, int64_t i, rg_gguf_type *elem_type, uint64_t *n);
const void *rg_gguf_arr_data(const rg_gguf *g, int64_t i);
bool rg_gguf_arr_str(const rg_gguf *g, int64_t i, uint64_t j, rg_gguf_str *out);

/* Convenience lookups by key; false when absent or of another type. */
bool rg_gguf_find_i64(const rg_gguf *g, const char *key, int64_t *out);
bool rg_gguf_find_f64(const rg_gguf *g, const char *key, double *out);
bool rg_gguf_find_bool(const rg_gguf *g, const char *key, bool *out);
bool rg_gguf_find_str(const rg_gguf *g, const char *key, rg_gguf_str *out);

/* Format a value for display (arrays summarized: type, length, first items). */
void rg_gguf_format_value(const rg_gguf *g, int64_t i, char *buf, size_t size);
const char *rg_gguf_type_name(rg_gguf_type t);
size_t rg_gguf_type_size(rg_gguf_type t); /* 0 for string/array */

/* ---- tensors ---- */
int64_t rg_gguf_tensor_count(const rg_gguf *g);
const rg_gguf_tensor *rg_gguf_tensor_at(const rg_gguf *g, int64_t i);
const rg_gguf_tensor *rg_gguf_find_tensor(const rg_gguf *g, const char *name);

/* ---- writing ---- */
typedef struct rg_gguf_writer rg_gguf_writer;

rg_gguf_writer *rg_gguf_writer_new(void);
void rg_gguf_writer_free(rg_gguf_writer *w);

/* Metadata setters copy their arguments. Setting an existing key replaces it. */
rg_status rg_gguf_set_u32(rg_gguf_writer *w, const char *key, uint32_t v);
rg_status rg_gguf_set_i32(rg_gguf_writer *w, const char *key, int32_t v);
rg_status rg_gguf_set_u64(rg_gguf_writer *w, const char *key, uint64_t v);
rg_status rg_gguf_set_f32(rg_gguf_writer *w, const char *key, float v);
rg_status rg_gguf_set_bool(rg_gguf_writer *w, const char *key, bool v);
rg_status rg_gguf_set_str(rg_gguf_writer *w, const char *key, const char *v);
/* Any scalar type as raw little-endian bytes (for the types without a setter). */
rg_status rg_gguf_set_scalar(rg_gguf_writer *w, const char *key, rg_gguf_type t, const void *v);
/* Array of fixed-size elements (elem_type not STRING/ARRAY). */
rg_status rg_gguf_set_arr(rg_gguf_writer *w, const char *key, rg_gguf_type elem_type, const void *data, uint64_t n);
rg_status rg_gguf_set_arr_str(rg_gguf_writer *w, const char *key, const char *const *strs, uint64_t n);

/* Add a tensor; data (rg_dtype_row_bytes(type, ne[0]) * rows bytes) is copied.
 * ne[0] must be a multiple of the type's block size. */
rg_status rg_gguf_add_tensor(rg_gguf_writer *w, const char *name, rg_dtype type, uint32_t n_dims,
                             const int64_t *ne, const void *data, rg_err *err);

/* Write everything (version 3, given alignment, 0 = default 32). */
rg_status rg_gguf_write(rg_gguf_writer *w, const char *path, uint32_t alignment, rg_err *err);

#endif
