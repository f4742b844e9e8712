/* spm.c — SentencePiece-style tokenizing (tokenizer.ggml.model "llama").
 *
 * The idea (llama.cpp's llm_tokenizer_spm): spaces become U+2581 ("▁"), the
 * text starts as one symbol per UTF-8 character, and the adjacent pairs whose
 * concatenation is a token are merged greedily, highest token score first
 * (ties: leftmost first; heap.c). Adjacent symbols are always contiguous
 * in the buffer, so a pair's text is a plain slice. A final symbol that is not
 * a token falls back to one <0xNN> byte token per byte. */
#include <string.h>

#include "tok/tok_internal.h"

#define SPACE "\xe2\x96\x81" /* U+2581, SentencePiece's visible space */

typedef struct sym {
    int32_t prev, next;
    uint32_t off, n; /* n = 0 once merged away */
} sym;

static bool add_pair(const rg_tokenizer *t, tok_scratch *s, size_t *n_heap, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return true;
    const sym *y = s->sym;
    uint32_t size = y[l].n + y[r].n;
    int32_t id = tok_lookup(t, s->word + y[l].off, size);
    if (id < 0) return true;
    return tok_heap_push(s, n_heap, (tok_pair){-(double)t->score[id], l, r, id, size});
}

static bool is_space_sym(const char *w, const sym *y) { return y->n == 3 && !memcmp(w + y->off, SPACE, 3); }

void tok_spm_init(rg_tokenizer *t) {
    /* Cutting the text before each "▁" that follows another character is exact
     * when no token has a "▁" right after anything but "▁": then no pair across
     * such a cut is ever a token, and the greedy merges on either side never
     * meet. It keeps the heap small (a long text would otherwise thrash the cache). */
    t->spm_cut_at_space = true;
    for (int32_t id = 0; id < t->n_vocab && t->spm_cut_at_space; id++) {
        size_t len;
        const char *s = tok_text(t, id, &len);
        for (size_t i = 1; i + 3 <= len; i++)
            if (!memcmp(s + i, SPACE, 3) && (i < 3 || memcmp(s + i - 3, SPACE, 3))) t->spm_cut_at_space = false;
    }
}

/* Merge symbols [first, end) to their final tokens and append them. */
static bool encode_run(const rg_tokenizer *t, tok_scratch *s, int32_t first, int32_t end, tok_ids *out) {
    sym *y = s->sym;
    y[first].prev = -1;
    y[end - 1].next = -1;
    size_t n_heap = 0;
    for (int32_t i = first + 1; i < end; i++)
        if (!add_pair(t, s, &n_heap, i - 1, i)) return false;
    while (n_heap) {
        tok_pair p = tok_heap_pop(s, &n_heap);
        y = s->sym;
        sym *l = &y[p.left], *r = &y[p.right];
        if (!l->n || !r->n || l->n + r->n != p.size) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) y[r->next].prev = p.left;
        if (!add_pair(t, s, &n_heap, l->prev, p.left) || !add_pair(t, s, &n_heap, p.left, l->next)) return false;
    }
    y = s->sym;
    for (int32_t i = first; i >= 0; i = y[i].next) {
        const char *p = s->word + y[i].off;
        int32_t id = tok_lookup(t, p, y[i].n);
        if (id >= 0) {
            if (!tok_ids_push(out, id)) return false;
            continue;
        }
        for (uint32_t j = 0; j < y[i].n; j++) {
            id = t->spm_byte_id[(unsigned char)p[j]];
            if (id >= 0 && !tok_ids_push(out, id)) return false;
        }
    }
    return true;
}

bool tok_spm_encode(const rg_tokenizer *t, const char *text, size_t len, bool space_prefix, tok_scratch *s,
                    tok_ids *out, rg_err *err) {
    /* escape: ' ' -> U+2581 (3 bytes), optionally one more in front */
    if (len > (UINT32_MAX - 3) / 3 || !tok_reserve((void **)&s->word, &s->word_cap, 3 * len + 3, 1)) goto oom;
    size_t wl = 0;
    if (space_prefix) memcpy(s->word, SPACE, 3), wl = 3;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ')
            memcpy(s->word + wl, SPACE, 3), wl += 3;
        else
            s->word[wl++] = text[i];
    }
    if (!wl) return true;
    /* one symbol per character, by the lead byte's length (clamped at the end) */
    if (!tok_reserve(&s->sym, &s->sym_cap, wl, sizeof(sym))) goto oom;
    sym *y = s->sym;
    int32_t n_sym = 0;
    for (size_t off = 0; off < wl;) {
        size_t n = tok_utf8_len((unsigned char)s->word[off]);
        if (n > wl - off) n = wl - off;
        y[n_sym] = (sym){n_sym - 1, n_sym + 1, (uint32_t)off, (uint32_t)n};
        n_sym++;
        off += n;
    }
    int32_t first = 0;
    for (int32_t i = 1; i <= n_sym; i++) {
        bool cut =
            i == n_sym || (t->spm_cut_at_space && is_space_sym(s->word, &y[i]) && !is_space_sym(s->word, &y[i - 1]));
        if (!cut) continue;
        if (!encode_run(t, s, first, i, out)) goto oom;
        y = s->sym;
        first = i;
    }
    return true;
oom:
    rg_fail(err, RG_E_NOMEM, "out of memory");
    return false;
}
