/* heap.c — the priority queue both merge loops (spm.c, bpe.c) pop pairs from.
 *
 * A binary min-heap of candidate merges ordered by (key, left position): BPE
 * uses the merge rank as key, SentencePiece the negated token score, so the
 * smallest key is the best merge and ties go to the leftmost pair, which is the
 * order llama.cpp's priority queues produce. A double holds every rank and
 * every float score exactly. */
#include "tok/tok_internal.h"

static bool before(const tok_pair *a, const tok_pair *b) {
    return a->key < b->key || (a->key == b->key && a->left < b->left);
}

bool tok_heap_push(tok_scratch *s, size_t *n, tok_pair p) {
    if (!tok_reserve(&s->heap, &s->heap_cap, *n + 1, sizeof p)) return false;
    tok_pair *h = s->heap;
    size_t i = (*n)++;
    while (i > 0 && before(&p, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = p;
    return true;
}

tok_pair tok_heap_pop(tok_scratch *s, size_t *n) {
    tok_pair *h = s->heap, top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && before(&h[c + 1], &h[c])) c++;
        if (!before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}
