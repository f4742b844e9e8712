/* bpe.c — byte-level BPE (tokenizer.ggml.model "gpt2"): words -> token ids.
 *
 * The idea: each word from the pre-tokenizer is rewritten byte by byte into
 * GPT-2's printable alphabet (bytes that are not printable Latin-1 move to
 * U+0100..U+0143), which is the alphabet the vocabulary is written in. The word
 * starts as one symbol per byte; a heap (heap.c) holds every adjacent pair that
 * has a merge, ordered by (rank, position), exactly llama.cpp's queue; popping the
 * best pair merges it and queues the pairs it forms with its neighbours. Stale
 * entries are recognized because symbols only grow: if the two symbols' sizes
 * no longer add up to the entry's size, one of them has changed. */
#include <string.h>

#include "tok/tok_internal.h"

uint32_t tok_byte_to_cpt(unsigned char b) {
    if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae) return b;
    /* the other 68 bytes, in order, follow U+0100 */
    if (b <= 0x20) return 0x100 + b;
    if (b <= 0xa0) return 0x100 + 33 + (b - 0x7f);
    return 0x100 + 67; /* 0xad */
}

int tok_cpt_to_byte(uint32_t cpt) {
    if ((cpt >= 0x21 && cpt <= 0x7e) || (cpt >= 0xa1 && cpt <= 0xac) || (cpt >= 0xae && cpt <= 0xff)) return (int)cpt;
    if (cpt < 0x100 || cpt > 0x143) return -1;
    uint32_t k = cpt - 0x100;
    if (k <= 32) return (int)k;
    if (k <= 66) return (int)(0x7f + k - 33);
    return 0xad;
}

typedef struct sym {
    int32_t prev, next, id;
    uint32_t n; /* bytes of the original word it covers; 0 once merged away */
} sym;

static bool add_pair(const rg_tokenizer *t, tok_scratch *s, size_t *n_heap, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return true;
    const sym *y = s->sym;
    if (y[l].id < 0 || y[r].id < 0) return true;
    int32_t result;
    int32_t rank = tok_merge_rank(t, y[l].id, y[r].id, &result);
    if (rank < 0) return true;
    return tok_heap_push(s, n_heap, (tok_pair){rank, l, r, result, y[l].n + y[r].n});
}

/* One word (bytes of the re-encoded input) -> ids. */
static bool encode_word(const rg_tokenizer *t, const unsigned char *w, size_t n, tok_scratch *s, tok_ids *out) {
    if (t->ignore_merges) {
        /* the whole word, in the byte-level alphabet, may be a token itself */
        if (n > (SIZE_MAX - 1) / 2 || !tok_reserve((void **)&s->word, &s->word_cap, 2 * n + 1, 1)) return false;
        size_t el = 0;
        for (size_t i = 0; i < n; i++)
            el += tok_utf8_encode(tok_byte_to_cpt(w[i]), s->word + el);
        int32_t id = tok_lookup(t, s->word, el);
        if (id >= 0) return tok_ids_push(out, id);
    }
    if (n > INT32_MAX || !tok_reserve(&s->sym, &s->sym_cap, n, sizeof(sym))) return false;
    sym *y = s->sym;
    for (size_t i = 0; i < n; i++)
        y[i] = (sym){(int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1, t->bpe_byte_id[w[i]], 1};
    size_t n_heap = 0;
    for (size_t i = 1; i < n; i++)
        if (!add_pair(t, s, &n_heap, (int32_t)i - 1, (int32_t)i)) return false;
    while (n_heap) {
        tok_pair p = tok_heap_pop(s, &n_heap);
        y = s->sym;
        sym *l = &y[p.left], *r = &y[p.right];
        if (!l->n || !r->n || l->n + r->n != p.size) continue; /* stale */
        l->n += r->n;
        l->id = p.result;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) y[r->next].prev = p.left;
        if (!add_pair(t, s, &n_heap, l->prev, p.left) || !add_pair(t, s, &n_heap, p.left, l->next)) return false;
    }
    y = s->sym;
    for (int32_t i = 0; i >= 0; i = y[i].next) {
        if (y[i].id >= 0) {
            if (!tok_ids_push(out, y[i].id)) return false;
            continue;
        }
        /* A byte whose character is not in the vocabulary: llama.cpp tries each
         * byte of the character's UTF-8 as a one-byte token, else drops it. */
        char c[4];
        size_t cl = tok_utf8_encode(tok_byte_to_cpt(w[i]), c);
        for (size_t j = 0; j < cl; j++) {
            int32_t id = t->raw_byte_id[(unsigned char)c[j]];
            if (id >= 0 && !tok_ids_push(out, id)) return false;
        }
    }
    return true;
}

bool tok_bpe_encode(const rg_tokenizer *t, const char *text, size_t len, tok_scratch *s, tok_ids *out, rg_err *err) {
    int64_t n_words = tok_pretok_split(t, text, len, s, err);
    if (n_words < 0) return false;
    for (int64_t k = 0; k < n_words; k++) {
        size_t a = s->spans[2 * k], b = s->spans[2 * k + 1];
        if (!encode_word(t, (const unsigned char *)s->ub + a, b - a, s, out)) {
            rg_fail(err, RG_E_NOMEM, "out of memory");
            return false;
        }
    }
    return true;
}
