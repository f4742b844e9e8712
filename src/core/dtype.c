/* dtype.c — the table of element types (block sizes as GGUF defines them). */
#include "core/dtype.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static const rg_dtype_info dtypes[RG_DTYPE_COUNT] = {
    [RG_F32] = {"F32", 1, 4, true},
    [RG_F16] = {"F16", 1, 2, true},
    [RG_Q4_0] = {"Q4_0", 32, 18, true},
    [RG_Q4_1] = {"Q4_1", 32, 20, true},
    [RG_Q5_0] = {"Q5_0", 32, 22, true},
    [RG_Q5_1] = {"Q5_1", 32, 24, true},
    [RG_Q8_0] = {"Q8_0", 32, 34, true},
    [RG_Q8_1] = {"Q8_1", 32, 36, false},
    [RG_Q2_K] = {"Q2_K", 256, 84, false},
    [RG_Q3_K] = {"Q3_K", 256, 110, false},
    [RG_Q4_K] = {"Q4_K", 256, 144, true},
    [RG_Q5_K] = {"Q5_K", 256, 176, true},
    [RG_Q6_K] = {"Q6_K", 256, 210, true},
    [RG_Q8_K] = {"Q8_K", 256, 292, true},
    [16] = {"IQ2_XXS", 256, 66, false},
    [17] = {"IQ2_XS", 256, 74, false},
    [18] = {"IQ3_XXS", 256, 98, false},
    [19] = {"IQ1_S", 256, 50, false},
    [20] = {"IQ4_NL", 32, 18, false},
    [21] = {"IQ3_S", 256, 110, false},
    [22] = {"IQ2_S", 256, 82, false},
    [23] = {"IQ4_XS", 256, 136, false},
    [RG_I8] = {"I8", 1, 1, false},
    [RG_I16] = {"I16", 1, 2, false},
    [RG_I32] = {"I32", 1, 4, false},
    [RG_I64] = {"I64", 1, 8, false},
    [RG_F64] = {"F64", 1, 8, false},
    [29] = {"IQ1_M", 256, 56, false},
    [RG_BF16] = {"BF16", 1, 2, true},
    [34] = {"TQ1_0", 256, 54, false},
    [35] = {"TQ2_0", 256, 66, false},
    [39] = {"MXFP4", 32, 17, false},
};

const rg_dtype_info *rg_dtype_get(uint32_t id) {
    if (id >= RG_DTYPE_COUNT || !dtypes[id].name) return NULL;
    return &dtypes[id];
}

const char *rg_dtype_name(uint32_t id) {
    static _Thread_local char buf[24];
    const rg_dtype_info *info = rg_dtype_get(id);
    if (info) return info->name;
    snprintf(buf, sizeof buf, "type#%u", id);
    return buf;
}

bool rg_dtype_from_name(const char *name, rg_dtype *out) {
    for (uint32_t id = 0; id < RG_DTYPE_COUNT; id++) {
        const char *n = dtypes[id].name;
        if (!n) continue;
        size_t i = 0;
        while (n[i] && name[i] && toupper((unsigned char)name[i]) == n[i]) i++;
        if (!n[i] && !name[i]) {
            *out = (rg_dtype)id;
            return true;
        }
    }
    return false;
}

int64_t rg_dtype_row_bytes(rg_dtype type, int64_t n) {
    const rg_dtype_info *info = rg_dtype_get((uint32_t)type);
    if (!info || n < 0 || n % info->block_size) return -1;
    return n / info->block_size * info->type_size;
}
