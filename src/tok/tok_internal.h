/* tok_internal.h — the private tokenizer struct shared by the files of src/tok/.
 *
 * One idea: every lookup the hot loops make is a hash probe into arrays built
 * once at load (token text -> id, merge pair (left id, right id) -> rank and
 * result id); nothing scans the vocabulary per call. Token attributes use
 * llama.cpp's bit layout so its rules (which tokens are special, which strip
 * neighbouring spaces) translate one to one. */
#ifndef RG_TOK_INTERNAL_H
#define RG_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>

#include "tok/tokenizer.h"

/* Token attribute bits (llama.cpp's llama_token_attr values). */
enum {
    TA_UNDEFINED = 0,
    TA_UNKNOWN = 1 << 0,
    TA_UNUSED = 1 << 1,
    TA_NORMAL = 1 << 2,
    TA_CONTROL = 1 << 3,
    TA_USER_DEFINED = 1 << 4,
    TA_BYTE = 1 << 5,
    TA_LSTRIP = 1 << 7, /* partitioning eats whitespace left of this special token */
    TA_RSTRIP = 1 << 8, /* ... and right of it */
};

typedef enum tok_kind { TOK_SPM, TOK_BPE } tok_kind;

#define TOK_MAX_REGEX 8

/* Open-addressing hash, token text -> id (slot value -1 = empty). */
typedef struct tok_text_map {
    int32_t *slots;
    size_t mask;
} tok_text_map;

/* Open-addressing hash, (left id, right id) -> (rank, merged id). */
typedef struct tok_merge_map {
    uint64_t *keys; /* left << 32 | right; UINT64_MAX = empty */
    int32_t *rank;
    int32_t *result;
    size_t mask;
} tok_merge_map;

/* A pre-tokenizer: the regexes llama.cpp applies in sequence for one tokenizer.ggml.pre value. */
typedef struct tok_pretok_def {
    const char *name;
    const char *const *regex;
    int n_regex;
    bool ignore_merges; /* a word that is a whole token skips BPE (llama.cpp: Llama 3) */
    bool add_bos;       /* default for tokenizer.ggml.add_bos_token */
} tok_pretok_def;

struct rg_tokenizer {
    tok_kind kind;
    char model[8];
    char pre[64];
    int32_t n_vocab;

    char *text;       /* token i: text + text_off[i], length text_off[i+1] - text_off[i] - 1, NUL-terminated */
    size_t *text_off; /* n_vocab + 1 */
    float *score;
    uint16_t *attr;
    char *piece;       /* decoded bytes of each token (control tokens included), same layout as text */
    size_t *piece_off; /* n_vocab + 1 */
    tok_text_map map;
    tok_merge_map merges;

    int32_t spm_byte_id[256]; /* SPM byte fallback: <0xXX>, else the 1-byte token, else unk, else -1 */
    int32_t bpe_byte_id[256]; /* BPE: token of the byte-level character for each byte, or -1 */
    int32_t raw_byte_id[256]; /* token whose text is exactly this one byte, or -1 */

    int32_t bos, eos, eot, eom, unk, sep, pad, mask;
    int32_t fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;
    bool add_bos, add_eos, add_space_prefix, ignore_merges;
    bool spm_cut_at_space; /* spm.c: the text may be cut before each word's "▁" */

    int32_t *special; /* control / user-defined / unknown ids, longest text first */
    int32_t n_special;
    uint8_t *eog; /* n_vocab flags: stop generation at this token */

    const tok_pretok_def *pretok;
    pcre2_code *re[TOK_MAX_REGEX];
    int n_re;
};

/* ---- small helpers ---- */

static inline const char *tok_text(const rg_tokenizer *t, int32_t id, size_t *len) {
    *len = t->text_off[id + 1] - t->text_off[id] - 1;
    return t->text + t->text_off[id];
}

typedef struct tok_ids {
    int32_t *v;
    size_t n, cap;
} tok_ids;

static inline bool tok_ids_push(tok_ids *a, int32_t id) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        int32_t *v = realloc(a->v, cap * sizeof *v);
        if (!v) return false;
        a->v = v, a->cap = cap;
    }
    a->v[a->n++] = id;
    return true;
}

/* Grow *p (elements of size elem) to hold at least n; false on overflow or OOM. */
bool tok_reserve(void **p, size_t *cap, size_t n, size_t elem);

/* ---- utf8.c ---- */

/* Sequence length implied by a lead byte's high nibble (llama.cpp's unicode_len_utf8). */
static inline size_t tok_utf8_len(unsigned char c) {
    static const unsigned char lut[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lut[c >> 4];
}
/* Decode one code point at s[*i] as llama.cpp does (lenient: overlong forms and
 * surrogates pass); an invalid sequence yields U+FFFD and consumes one byte.
 * Values past U+10FFFF also yield U+FFFD (llama.cpp aborts on them). */
uint32_t tok_utf8_decode_lenient(const unsigned char *s, size_t n, size_t *i);
size_t tok_utf8_encode(uint32_t cpt, char *out); /* 1..4 bytes */
/* Strict check of the sequence at s: > 0 its length, 0 a valid but incomplete
 * prefix (needs more bytes), < 0 invalid: -k bytes form one ill-formed subpart. */
int tok_utf8_check(const unsigned char *s, size_t n);
bool tok_utf8_valid(const char *s, size_t n);

/* ---- vocab.c ---- */

int32_t tok_lookup(const rg_tokenizer *t, const char *s, size_t len); /* -1 if absent */
/* Rank of merging (left, right), or -1; *result gets the merged token. */
int32_t tok_merge_rank(const rg_tokenizer *t, int32_t left, int32_t right, int32_t *result);

/* ---- special.c ---- */

rg_status tok_load_special(rg_tokenizer *t, const rg_gguf *g, rg_err *err);

/* A piece of the input: raw text to tokenize (id < 0) or a special token. */
typedef struct tok_frag {
    int32_t id;
    size_t off, len;
} tok_frag;
/* Split text at special-token texts, longest token first (llama.cpp's
 * tokenizer_st_partition). *frags is malloc'd; returns the count or -1 on OOM. */
int64_t tok_partition(const rg_tokenizer *t, const char *text, size_t len, bool parse_special, tok_frag **frags);

/* ---- pretok.c ---- */

rg_status tok_pretok_init(rg_tokenizer *t, const char *name, rg_err *err);
void tok_pretok_free(rg_tokenizer *t);

/* Scratch a tokenize call reuses across fragments and words. */
typedef struct tok_scratch {
    char *u;  /* the pre-tokenizer's regex subject (pretok.c) */
    char *ub; /* the same text as bytes the words are cut from */
    size_t u_cap, ub_cap;
    size_t *spans, *spans2; /* [start, end) pairs into u and ub */
    size_t spans_cap, spans2_cap;
    pcre2_match_data *md;
    char *word; /* byte-level encoded word */
    size_t word_cap;
    void *sym, *heap;
    size_t sym_cap, heap_cap;
} tok_scratch;
void tok_scratch_free(tok_scratch *s);

/* Split text into words with the pre-tokenizer's regexes; the words are the
 * n_spans pairs s->spans[2k], s->spans[2k+1] into s->ub. Returns n_spans or -1. */
int64_t tok_pretok_split(const rg_tokenizer *t, const char *text, size_t len, tok_scratch *s, rg_err *err);

/* ---- heap.c ---- */

/* A candidate merge of the adjacent symbols left and right (size: their total length). */
typedef struct tok_pair {
    double key; /* BPE: merge rank; SPM: -score. Smallest first, then leftmost. */
    int32_t left, right, result;
    uint32_t size;
} tok_pair;
bool tok_heap_push(tok_scratch *s, size_t *n, tok_pair p);
tok_pair tok_heap_pop(tok_scratch *s, size_t *n); /* *n must be > 0 */

/* ---- bpe.c / spm.c ---- */

uint32_t tok_byte_to_cpt(unsigned char b); /* GPT-2 byte -> printable code point */
int tok_cpt_to_byte(uint32_t cpt);         /* inverse, -1 if cpt is not one of the 256 */
bool tok_bpe_encode(const rg_tokenizer *t, const char *text, size_t len, tok_scratch *s, tok_ids *out, rg_err *err);
void tok_spm_init(rg_tokenizer *t);
bool tok_spm_encode(const rg_tokenizer *t, const char *text, size_t len, bool space_prefix, tok_scratch *s,
                    tok_ids *out, rg_err *err);

/* ---- detok.c ---- */

rg_status tok_build_pieces(rg_tokenizer *t, rg_err *err);

#endif
