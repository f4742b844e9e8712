/* dtype.h — element types of tensors, numbered as GGUF numbers them.
 *
 * A quantized type stores `block_size` consecutive elements of a row in
 * `type_size` bytes; a row of n elements (n a multiple of block_size) takes
 * n / block_size * type_size bytes. Plain types have block_size 1. */
#ifndef RG_CORE_DTYPE_H
#define RG_CORE_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum rg_dtype {
    RG_F32 = 0,
    RG_F16 = 1,
    RG_Q4_0 = 2,
    RG_Q4_1 = 3,
    RG_Q5_0 = 6,
    RG_Q5_1 = 7,
    RG_Q8_0 = 8,
    RG_Q8_1 = 9,
    RG_Q2_K = 10,
    RG_Q3_K = 11,
    RG_Q4_K = 12,
    RG_Q5_K = 13,
    RG_Q6_K = 14,
    RG_Q8_K = 15,
    RG_I8 = 24,
    RG_I16 = 25,
    RG_I32 = 26,
    RG_I64 = 27,
    RG_F64 = 28,
    RG_BF16 = 30,
    RG_DTYPE_COUNT = 40, /* upper bound of the ids ridge knows by name */
} rg_dtype;

typedef struct rg_dtype_info {
    const char *name;   /* "Q4_K"; NULL for ids nobody assigned */
    int64_t block_size; /* elements per block */
    int64_t type_size;  /* bytes per block */
    bool supported;     /* ridge can dequantize it (and so load it) */
} rg_dtype_info;

/* Traits of a type id; NULL when the id is unknown (out of range or unassigned). */
const rg_dtype_info *rg_dtype_get(uint32_t id);

/* Name of any id, "type#N" style text for unknown ones (static or thread-local storage). */
const char *rg_dtype_name(uint32_t id);

/* Parse "q4_k", "Q8_0", "f16", "bf16"... Returns false when unknown. */
bool rg_dtype_from_name(const char *name, rg_dtype *out);

/* Bytes of a row of n elements; -1 if n is not a multiple of the block size
 * or the type is unknown. */
int64_t rg_dtype_row_bytes(rg_dtype type, int64_t n);

#endif
