/* tokenize.c — rg_tokenize: text -> ids, as llama.cpp's llama_tokenize.
 *
 * The idea: special-token texts are cut out first (special.c); the raw
 * fragments between them go to the model's tokenizer (spm.c or bpe.c); BOS and
 * EOS wrap the result when asked. One SentencePiece rule lives here because it
 * spans fragments: a raw fragment gets the "▁" prefix only when it starts the
 * text or follows a special token. */
#include <string.h>

#include "tok/tok_internal.h"

bool tok_reserve(void **p, size_t *cap, size_t n, size_t elem) {
    if (n <= *cap) return true;
    size_t c = *cap ? *cap : 16;
    while (c < n) {
        if (c > SIZE_MAX / 2) return false;
        c *= 2;
    }
    if (c > SIZE_MAX / elem) return false;
    void *q = realloc(*p, c * elem);
    if (!q) return false;
    *p = q, *cap = c;
    return true;
}

static bool push(tok_ids *out, int32_t id, rg_err *err) {
    if (tok_ids_push(out, id)) return true;
    rg_fail(err, RG_E_NOMEM, "out of memory");
    return false;
}

int64_t rg_tokenize(const rg_tokenizer *t, const char *text, size_t len, bool add_special, bool parse_special,
                    int32_t *tokens, int64_t max_tokens, rg_err *err) {
    if (!t || (!text && len) || max_tokens < 0 || (!tokens && max_tokens > 0)) {
        rg_fail(err, RG_E_INVALID, "rg_tokenize: invalid arguments");
        return -1;
    }
    tok_frag *frags;
    int64_t n_frags = tok_partition(t, text, len, parse_special, &frags);
    if (n_frags < 0) {
        rg_fail(err, RG_E_NOMEM, "out of memory");
        return -1;
    }
    tok_ids out = {0};
    tok_scratch s = {0};
    bool ok = true, prev_special = true; /* SPM: prefix a space to the first raw fragment */
    if (add_special && t->add_bos) ok = push(&out, t->bos, err);
    for (int64_t i = 0; ok && i < n_frags; i++) {
        const tok_frag *f = &frags[i];
        if (f->id >= 0) {
            ok = push(&out, f->id, err);
            prev_special = true;
        } else if (t->kind == TOK_SPM) {
            ok = tok_spm_encode(t, text + f->off, f->len, t->add_space_prefix && prev_special, &s, &out, err);
            prev_special = false;
        } else {
            ok = tok_bpe_encode(t, text + f->off, f->len, &s, &out, err);
        }
    }
    if (ok && add_special && t->add_eos) ok = push(&out, t->eos, err);
    tok_scratch_free(&s);
    free(frags);
    if (!ok) {
        free(out.v);
        return -1;
    }
    if (out.n && max_tokens > 0)
        memcpy(tokens, out.v, (out.n < (size_t)max_tokens ? out.n : (size_t)max_tokens) * sizeof *tokens);
    free(out.v);
    return (int64_t)out.n;
}
