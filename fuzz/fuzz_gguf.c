/* fuzz_gguf.c — libFuzzer target for the GGUF parser and what reads its metadata.
 *
 * Parses the input as a GGUF image, then exercises everything a command does
 * with an opened file: every metadata accessor and formatter, the tensor table,
 * hyper-parameters, the tokenizer built from the metadata, and a dequantization of
 * each tensor's first row (reads inside the mapping only). ASan/UBSan turn any
 * out-of-bounds read or overflow into a finding. */
#include <stdlib.h>
#include <string.h>

#include "core/quant.h"
#include "formats/gguf.h"
#include "model/hparams.h"
#include "tok/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rg_gguf *g;
    rg_err err = {0};
    if (rg_gguf_open_memory(data, size, &g, &err)) return 0;
    char buf[512];
    for (int64_t i = 0; i < rg_gguf_kv_count(g); i++) {
        rg_gguf_format_value(g, i, buf, sizeof buf);
        rg_gguf_type et;
        uint64_t n;
        if (rg_gguf_get_arr(g, i, &et, &n) && et == RG_GGUF_STRING) {
            rg_gguf_str s;
            for (uint64_t j = 0; j < n && j < 64; j++)
                if (rg_gguf_arr_str(g, i, j, &s) && s.len) buf[0] ^= s.ptr[s.len - 1];
        }
    }
    rg_hparams hp;
    if (!rg_hparams_read(g, &hp, &err)) rg_hparams_kv_bytes_per_token(&hp, RG_F16);
    rg_tokenizer *tok;
    if (!rg_tokenizer_load(g, &tok, &err)) {
        int32_t ids[64];
        int64_t n = rg_tokenize(tok, "Hello world <s> 123", 19, true, true, ids, 64, &err);
        for (int64_t i = 0; i < n && i < 64; i++) rg_token_to_piece(tok, ids[i], true, buf, sizeof buf);
        rg_tokenizer_free(tok);
    }
    for (int64_t i = 0; i < rg_gguf_tensor_count(g); i++) {
        const rg_gguf_tensor *t = rg_gguf_tensor_at(g, i);
        const rg_dtype_info *info = rg_dtype_get(t->type);
        if (!info->supported || t->ne[0] > 4096) continue;
        float *row = malloc((size_t)t->ne[0] * sizeof *row);
        if (row) rg_dequantize_ref(t->type, t->data, row, t->ne[0], &err);
        free(row);
    }
    rg_gguf_close(g);
    return 0;
}
