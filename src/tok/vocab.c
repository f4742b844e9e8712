/* vocab.c — building a tokenizer from GGUF metadata, and the lookups it serves.
 *
 * The idea: copy the vocabulary out of the file once into one text arena, then
 * index it twice — token text -> id (open addressing, FNV-1a) and, for BPE, merge
 * pair -> rank, keyed by the two token ids. Every merge must name tokens of the
 * vocabulary (left, right and their concatenation), as Hugging Face's BPE
 * requires; that lets BPE work on ids and makes a merge that names an unknown
 * token a load error instead of a silent no-op. */
#include <stdio.h>
#include <string.h>

#include "tok/tok_internal.h"

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3u;
    return h;
}

static uint64_t hash_pair(uint64_t key) { return (key * 0x9e3779b97f4a7c15u) ^ (key >> 29); }

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n)
        c *= 2;
    return c;
}

int32_t tok_lookup(const rg_tokenizer *t, const char *s, size_t len) {
    for (size_t i = hash_bytes(s, len) & t->map.mask;; i = (i + 1) & t->map.mask) {
        int32_t id = t->map.slots[i];
        if (id < 0) return -1;
        size_t tl;
        const char *tt = tok_text(t, id, &tl);
        if (tl == len && !memcmp(tt, s, len)) return id;
    }
}

int32_t tok_merge_rank(const rg_tokenizer *t, int32_t left, int32_t right, int32_t *result) {
    if (!t->merges.keys) return -1;
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    for (size_t i = hash_pair(key) & t->merges.mask;; i = (i + 1) & t->merges.mask) {
        if (t->merges.keys[i] == UINT64_MAX) return -1;
        if (t->merges.keys[i] == key) {
            *result = t->merges.result[i];
            return t->merges.rank[i];
        }
    }
}

/* tokenizer.ggml.model: which family. */
static rg_status load_model(rg_tokenizer *t, const rg_gguf *g, rg_err *err) {
    int64_t ki = rg_gguf_find_key(g, "tokenizer.ggml.model");
    rg_gguf_str s;
    if (ki < 0) return rg_fail(err, RG_E_FORMAT, "no tokenizer: tokenizer.ggml.model is missing");
    if (!rg_gguf_get_str(g, ki, &s)) return rg_fail(err, RG_E_FORMAT, "tokenizer.ggml.model is not a string");
    if (s.len == 5 && !memcmp(s.ptr, "llama", 5))
        t->kind = TOK_SPM;
    else if (s.len == 4 && !memcmp(s.ptr, "gpt2", 4))
        t->kind = TOK_BPE;
    else
        return rg_fail(err, RG_E_UNSUPPORTED, "unsupported tokenizer model '%.*s' (ridge knows 'llama' and 'gpt2')",
                       (int)(s.len > 64 ? 64 : s.len), s.ptr);
    snprintf(t->model, sizeof t->model, "%s", t->kind == TOK_SPM ? "llama" : "gpt2");
    return RG_OK;
}

/* tokenizer.ggml.tokens into the arena, plus the text -> id hash. */
static rg_status load_tokens(rg_tokenizer *t, const rg_gguf *g, rg_err *err) {
    int64_t ki = rg_gguf_find_key(g, "tokenizer.ggml.tokens");
    rg_gguf_type et;
    uint64_t n;
    if (ki < 0) return rg_fail(err, RG_E_FORMAT, "tokenizer.ggml.tokens is missing");
    if (!rg_gguf_get_arr(g, ki, &et, &n) || et != RG_GGUF_STRING)
        return rg_fail(err, RG_E_FORMAT, "tokenizer.ggml.tokens is not a string array");
    if (n == 0 || n >= INT32_MAX)
        return rg_fail(err, RG_E_FORMAT, "tokenizer.ggml.tokens has %llu entries", (unsigned long long)n);
    t->n_vocab = (int32_t)n;

    /* Empty strings become "[EMPTY_<id>]", as llama.cpp names them. */
    size_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        rg_gguf_str s;
        if (!rg_gguf_arr_str(g, ki, i, &s))
            return rg_fail(err, RG_E_FORMAT, "tokenizer.ggml.tokens[%llu] unreadable", (unsigned long long)i);
        if (s.len > SIZE_MAX / 2 - total - 32) return rg_fail(err, RG_E_FORMAT, "tokenizer.ggml.tokens too large");
        total += (s.len ? s.len : 24) + 1;
    }
    t->text = malloc(total);
    t->text_off = malloc((n + 1) * sizeof *t->text_off);
    if (!t->text || !t->text_off)
        return rg_fail(err, RG_E_NOMEM, "out of memory for %llu tokens", (unsigned long long)n);
    size_t off = 0;
    for (uint64_t i = 0; i < n; i++) {
        rg_gguf_str s;
        rg_gguf_arr_str(g, ki, i, &s);
        t->text_off[i] = off;
        if (s.len) {
            if (!tok_utf8_valid(s.ptr, s.len))
                return rg_fail(err, RG_E_FORMAT, "tokenizer.ggml.tokens[%llu] is not valid UTF-8",
                               (unsigned long long)i);
            memcpy(t->text + off, s.ptr, s.len);
            off += s.len;
        } else {
            off += (size_t)snprintf(t->text + off, 24, "[EMPTY_%llu]", (unsigned long long)i);
        }
        t->text[off++] = '\0';
    }
    t->text_off[n] = off;

    t->map.mask = pow2_at_least(2 * n) - 1;
    t->map.slots = malloc((t->map.mask + 1) * sizeof *t->map.slots);
    if (!t->map.slots) return rg_fail(err, RG_E_NOMEM, "out of memory for the token hash");
    memset(t->map.slots, 0xff, (t->map.mask + 1) * sizeof *t->map.slots);
    for (int32_t id = 0; id < t->n_vocab; id++) {
        size_t len;
        const char *s = tok_text(t, id, &len);
        size_t i = hash_bytes(s, len) & t->map.mask;
        for (; t->map.slots[i] >= 0; i = (i + 1) & t->map.mask) {
            size_t ol;
            const char *o = tok_text(t, t->map.slots[i], &ol);
            if (ol == len && !memcmp(o, s, len))
                return rg_fail(err, RG_E_FORMAT, "duplicate token in vocabulary: ids %d and %d are both '%.*s'",
                               t->map.slots[i], id, (int)(len > 64 ? 64 : len), s);
        }
        t->map.slots[i] = id;
    }
    return RG_OK;
}

/* tokenizer.ggml.scores (f32 or i32) and tokenizer.ggml.token_type (i32), both optional. */
static rg_status load_scores_types(rg_tokenizer *t, const rg_gguf *g, rg_err *err) {
    size_t n = (size_t)t->n_vocab;
    t->score = calloc(n, sizeof *t->score);
    t->attr = malloc(n * sizeof *t->attr);
    if (!t->score || !t->attr) return rg_fail(err, RG_E_NOMEM, "out of memory");
    rg_gguf_type et;
    uint64_t na;
    int64_t ki = rg_gguf_find_key(g, "tokenizer.ggml.scores");
    if (ki >= 0) {
        if (!rg_gguf_get_arr(g, ki, &et, &na) || (et != RG_GGUF_F32 && et != RG_GGUF_I32))
            return rg_fail(err, RG_E_FORMAT, "tokenizer.ggml.scores is not an f32 or i32 array");
        if (na < n)
            return rg_fail(err, RG_E_FORMAT, "tokenizer.ggml.scores has %llu entries for %zu tokens",
                           (unsigned long long)na, n);
        const char *p = rg_gguf_arr_data(g, ki);
        for (size_t i = 0; i < n; i++) {
            if (et == RG_GGUF_F32) {
                memcpy(&t->score[i], p + 4 * i, 4);
            } else {
                int32_t v;
                memcpy(&v, p + 4 * i, 4);
                t->score[i] = (float)v;
            }
        }
    }
    ki = rg_gguf_find_key(g, "tokenizer.ggml.token_type");
    if (ki < 0) {
        for (size_t i = 0; i < n; i++)
            t->attr[i] = TA_NORMAL;
        return RG_OK;
    }
    if (!rg_gguf_get_arr(g, ki, &et, &na) || et != RG_GGUF_I32)
        return rg_fail(err, RG_E_FORMAT, "tokenizer.ggml.token_type is not an i32 array");
    if (na < n)
        return rg_fail(err, RG_E_FORMAT, "tokenizer.ggml.token_type has %llu entries for %zu tokens",
                       (unsigned long long)na, n);
    const char *p = rg_gguf_arr_data(g, ki);
    static const uint16_t by_type[7] = {TA_UNDEFINED,    TA_NORMAL, TA_UNKNOWN, TA_CONTROL,
                                        TA_USER_DEFINED, TA_UNUSED, TA_BYTE};
    for (size_t i = 0; i < n; i++) {
        int32_t v;
        memcpy(&v, p + 4 * i, 4);
        t->attr[i] = v >= 0 && v < 7 ? by_type[v] : TA_UNDEFINED;
    }
    return RG_OK;
}

/* tokenizer.ggml.merges: "left right" strings, rank = position. */
static rg_status load_merges(rg_tokenizer *t, const rg_gguf *g, rg_err *err) {
    int64_t ki = rg_gguf_find_key(g, "tokenizer.ggml.merges");
    rg_gguf_type et;
    uint64_t n;
    if (ki < 0) return rg_fail(err, RG_E_FORMAT, "tokenizer.ggml.merges is missing (needed by model 'gpt2')");
    if (!rg_gguf_get_arr(g, ki, &et, &n) || et != RG_GGUF_STRING)
        return rg_fail(err, RG_E_FORMAT, "tokenizer.ggml.merges is not a string array");
    if (n >= INT32_MAX)
        return rg_fail(err, RG_E_FORMAT, "tokenizer.ggml.merges has %llu entries", (unsigned long long)n);
    size_t cap = pow2_at_least(2 * (size_t)n);
    t->merges.mask = cap - 1;
    t->merges.keys = malloc(cap * sizeof *t->merges.keys);
    t->merges.rank = malloc(cap * sizeof *t->merges.rank);
    t->merges.result = malloc(cap * sizeof *t->merges.result);
    if (!t->merges.keys || !t->merges.rank || !t->merges.result) return rg_fail(err, RG_E_NOMEM, "out of memory");
    memset(t->merges.keys, 0xff, cap * sizeof *t->merges.keys);

    char *joined = NULL;
    size_t joined_cap = 0;
    rg_status st = RG_OK;
    for (uint64_t r = 0; r < n && !st; r++) {
        rg_gguf_str s;
        rg_gguf_arr_str(g, ki, r, &s);
        int shown = (int)(s.len > 64 ? 64 : s.len);
        /* split at the first space after the first byte, as llama.cpp does */
        const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', s.len - 1) : NULL;
        if (!sp) {
            st = rg_fail(err, RG_E_FORMAT, "tokenizer.ggml.merges[%llu] '%.*s' is not 'left right'",
                         (unsigned long long)r, shown, s.ptr);
            break;
        }
        size_t ll = (size_t)(sp - s.ptr), rl = s.len - ll - 1;
        if (!tok_reserve((void **)&joined, &joined_cap, ll + rl + 1, 1)) {
            st = rg_fail(err, RG_E_NOMEM, "out of memory");
            break;
        }
        memcpy(joined, s.ptr, ll);
        memcpy(joined + ll, sp + 1, rl);
        int32_t left = tok_lookup(t, s.ptr, ll), right = tok_lookup(t, sp + 1, rl);
        int32_t res = tok_lookup(t, joined, ll + rl);
        if (left < 0 || right < 0 || res < 0) {
            st = rg_fail(err, RG_E_FORMAT, "tokenizer.ggml.merges[%llu] '%.*s' names a token not in the vocabulary",
                         (unsigned long long)r, shown, s.ptr);
            break;
        }
        uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
        size_t i = hash_pair(key) & t->merges.mask;
        while (t->merges.keys[i] != UINT64_MAX && t->merges.keys[i] != key)
            i = (i + 1) & t->merges.mask;
        if (t->merges.keys[i] == key) continue; /* a repeated pair keeps its first (lowest) rank */
        t->merges.keys[i] = key;
        t->merges.rank[i] = (int32_t)r;
        t->merges.result[i] = res;
    }
    free(joined);
    return st;
}

/* A bool key: absent keeps *v; present with another type is an error. */
static rg_status get_flag(const rg_gguf *g, const char *key, bool *v, rg_err *err) {
    int64_t ki = rg_gguf_find_key(g, key);
    if (ki >= 0 && !rg_gguf_get_bool(g, ki, v)) return rg_fail(err, RG_E_FORMAT, "%s is not a bool", key);
    return RG_OK;
}

static void build_byte_tables(rg_tokenizer *t) {
    for (int b = 0; b < 256; b++) {
        char buf[8], c = (char)b;
        snprintf(buf, sizeof buf, "<0x%02X>", b);
        int32_t id = tok_lookup(t, buf, 6);
        t->raw_byte_id[b] = tok_lookup(t, &c, 1);
        t->spm_byte_id[b] = id >= 0 ? id : t->raw_byte_id[b] >= 0 ? t->raw_byte_id[b] : t->unk;
        t->bpe_byte_id[b] = tok_lookup(t, buf, tok_utf8_encode(tok_byte_to_cpt((unsigned char)b), buf));
    }
}

static rg_status load(rg_tokenizer *t, const rg_gguf *g, rg_err *err) {
    rg_status s = load_model(t, g, err);
    if (!s) s = load_tokens(t, g, err);
    if (!s) s = load_scores_types(t, g, err);
    if (s) return s;
    /* Defaults by family, then the keys (llama.cpp's order). */
    t->add_space_prefix = t->kind == TOK_SPM;
    t->add_bos = t->kind == TOK_SPM;
    t->add_eos = false;
    if (t->kind == TOK_BPE) {
        int64_t ki = rg_gguf_find_key(g, "tokenizer.ggml.pre");
        rg_gguf_str pre = {"default", 7}; /* llama.cpp's choice when the key is absent */
        if (ki >= 0 && !rg_gguf_get_str(g, ki, &pre))
            return rg_fail(err, RG_E_FORMAT, "tokenizer.ggml.pre is not a string");
        if (pre.len >= sizeof t->pre || memchr(pre.ptr, '\0', pre.len))
            return rg_fail(err, RG_E_UNSUPPORTED, "unsupported pre-tokenizer '%.*s'",
                           (int)(pre.len > 64 ? 64 : pre.len), pre.ptr);
        memcpy(t->pre, pre.ptr, pre.len);
        t->pre[pre.len] = '\0';
        if ((s = tok_pretok_init(t, t->pre, err))) return s;
        t->add_bos = t->pretok->add_bos;
        t->ignore_merges = t->pretok->ignore_merges;
        if ((s = load_merges(t, g, err))) return s;
    }
    if ((s = get_flag(g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix, err))) return s;
    if ((s = get_flag(g, "tokenizer.ggml.add_bos_token", &t->add_bos, err))) return s;
    if ((s = get_flag(g, "tokenizer.ggml.add_eos_token", &t->add_eos, err))) return s;
    if ((s = tok_load_special(t, g, err))) return s;
    build_byte_tables(t);
    if (t->kind == TOK_SPM) tok_spm_init(t);
    return tok_build_pieces(t, err);
}

rg_status rg_tokenizer_load(const rg_gguf *g, rg_tokenizer **out, rg_err *err) {
    if (!out) return rg_fail(err, RG_E_INVALID, "rg_tokenizer_load: no output pointer");
    *out = NULL;
    if (!g) return rg_fail(err, RG_E_INVALID, "rg_tokenizer_load: no GGUF handle");
    rg_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return rg_fail(err, RG_E_NOMEM, "out of memory");
    rg_status s = load(t, g, err);
    if (s) {
        rg_tokenizer_free(t);
        return s;
    }
    *out = t;
    return RG_OK;
}

void rg_tokenizer_free(rg_tokenizer *t) {
    if (!t) return;
    tok_pretok_free(t);
    free(t->text);
    free(t->text_off);
    free(t->score);
    free(t->attr);
    free(t->piece);
    free(t->piece_off);
    free(t->map.slots);
    free(t->merges.keys);
    free(t->merges.rank);
    free(t->merges.result);
    free(t->special);
    free(t->eog);
    free(t);
}

int32_t rg_tokenizer_n_vocab(const rg_tokenizer *t) { return t->n_vocab; }
const char *rg_tokenizer_model(const rg_tokenizer *t) { return t->model; }
const char *rg_tokenizer_pre(const rg_tokenizer *t) { return t->pre; }

const char *rg_token_text(const rg_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab ? t->text + t->text_off[id] : NULL;
}

rg_token_attr rg_token_attr_of(const rg_tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->n_vocab) return RG_TOKEN_UNDEFINED;
    uint16_t a = t->attr[id];
    if (a & TA_CONTROL) return RG_TOKEN_CONTROL;
    if (a & TA_USER_DEFINED) return RG_TOKEN_USER_DEFINED;
    if (a & TA_UNKNOWN) return RG_TOKEN_UNKNOWN;
    if (a & TA_BYTE) return RG_TOKEN_BYTE;
    if (a & TA_UNUSED) return RG_TOKEN_UNUSED;
    if (a & TA_NORMAL) return RG_TOKEN_NORMAL;
    return RG_TOKEN_UNDEFINED;
}

int32_t rg_token_bos(const rg_tokenizer *t) { return t->bos; }
int32_t rg_token_eos(const rg_tokenizer *t) { return t->eos; }
int32_t rg_token_eot(const rg_tokenizer *t) { return t->eot; }
bool rg_tokenizer_add_bos(const rg_tokenizer *t) { return t->add_bos; }
bool rg_tokenizer_add_eos(const rg_tokenizer *t) { return t->add_eos; }
bool rg_token_is_eog(const rg_tokenizer *t, int32_t id) { return id >= 0 && id < t->n_vocab && t->eog[id]; }
