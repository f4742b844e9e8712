/* special.c — special tokens: their ids, which of them end generation, and
 * finding them inside text.
 *
 * The idea: llama.cpp decides much of this from token *texts* (an "<|im_end|>"
 * is an end-of-turn token even when the metadata does not say so, and becomes
 * a control token), and partitions text by searching each special token in
 * turn, longest first, splitting every raw fragment at its occurrences. Both
 * are reproduced here rule for rule so that token ids match; where llama.cpp's
 * choice depends on hash-map order (several EOT candidates), the first in the
 * list below wins. */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "tok/tok_internal.h"

/* Metadata keys of special ids, in the order llama.cpp reads them (later keys override). */
static const struct {
    const char *key;
    size_t field;
} ID_KEYS[] = {
    {"tokenizer.ggml.bos_token_id", offsetof(rg_tokenizer, bos)},
    {"tokenizer.ggml.eos_token_id", offsetof(rg_tokenizer, eos)},
    {"tokenizer.ggml.eot_token_id", offsetof(rg_tokenizer, eot)},
    {"tokenizer.ggml.eom_token_id", offsetof(rg_tokenizer, eom)},
    {"tokenizer.ggml.unknown_token_id", offsetof(rg_tokenizer, unk)},
    {"tokenizer.ggml.seperator_token_id", offsetof(rg_tokenizer, sep)}, /* sic */
    {"tokenizer.ggml.padding_token_id", offsetof(rg_tokenizer, pad)},
    {"tokenizer.ggml.mask_token_id", offsetof(rg_tokenizer, mask)},
    {"tokenizer.ggml.fim_pre_token_id", offsetof(rg_tokenizer, fim_pre)},
    {"tokenizer.ggml.fim_suf_token_id", offsetof(rg_tokenizer, fim_suf)},
    {"tokenizer.ggml.fim_mid_token_id", offsetof(rg_tokenizer, fim_mid)},
    {"tokenizer.ggml.fim_pad_token_id", offsetof(rg_tokenizer, fim_pad)},
    {"tokenizer.ggml.fim_rep_token_id", offsetof(rg_tokenizer, fim_rep)},
    {"tokenizer.ggml.fim_sep_token_id", offsetof(rg_tokenizer, fim_sep)},
    {"tokenizer.ggml.prefix_token_id", offsetof(rg_tokenizer, fim_pre)}, /* deprecated names */
    {"tokenizer.ggml.suffix_token_id", offsetof(rg_tokenizer, fim_suf)},
    {"tokenizer.ggml.middle_token_id", offsetof(rg_tokenizer, fim_mid)},
};

/* Texts that identify a special token when its id key is absent (llama.cpp's lists). */
static const char *const EOT_TEXTS[] = {
    "<|eot_id|>",         "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
    "<|end_of_text|>",    "<EOT>",      "_<EOT>",  "[EOT]",         "<\uFF5Cend\u2581of\u2581sentence\uFF5C>",
    "<end_of_utterance>", NULL};
static const char *const EOM_TEXTS[] = {"<|eom_id|>", NULL};
static const char *const FIM_PRE_TEXTS[] = {"<|fim_prefix|>",
                                            "<fim-prefix>",
                                            "<fim_prefix>",
                                            "<\uFF5Cfim\u2581begin\uFF5C>",
                                            "<PRE>",
                                            "\u2581<PRE>",
                                            "<|code_prefix|>",
                                            "<|prefix|>",
                                            NULL};
static const char *const FIM_SUF_TEXTS[] = {"<|fim_suffix|>",
                                            "<fim-suffix>",
                                            "<fim_suffix>",
                                            "<\uFF5Cfim\u2581hole\uFF5C>",
                                            "<SUF>",
                                            "\u2581<SUF>",
                                            "<|code_suffix|>",
                                            "<|suffix|>",
                                            NULL};
static const char *const FIM_MID_TEXTS[] = {"<|fim_middle|>",
                                            "<fim-middle>",
                                            "<fim_middle>",
                                            "<\uFF5Cfim\u2581end\uFF5C>",
                                            "<MID>",
                                            "\u2581<MID>",
                                            "<|code_middle|>",
                                            "<|middle|>",
                                            NULL};
static const char *const FIM_PAD_TEXTS[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL};
static const char *const FIM_REP_TEXTS[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>",
                                            "<REPO>",       "<reponame>",    NULL};
static const char *const FIM_SEP_TEXTS[] = {"<|file_sep|>", NULL};
/* Every token with one of these texts ends generation. */
static const char *const EOG_TEXTS[] = {"<|eot_id|>",
                                        "<|im_end|>",
                                        "<|end|>",
                                        "<|return|>",
                                        "<|call|>",
                                        "<|flush|>",
                                        "<|calls|>",
                                        "<end_of_turn>",
                                        "<|endoftext|>",
                                        "</s>",
                                        "<|eom_id|>",
                                        "<EOT>",
                                        "_<EOT>",
                                        "[EOT]",
                                        "[EOS]",
                                        "<|end_of_text|>",
                                        "<end_of_utterance>",
                                        "<eos>",
                                        "<turn|>",
                                        "<|tool_response>",
                                        "<\uFF5Cend\u2581of\u2581sentence\uFF5C>",
                                        "[e~[",
                                        NULL};

static int32_t find_text(const rg_tokenizer *t, const char *s) { return tok_lookup(t, s, strlen(s)); }

static rg_status read_ids(rg_tokenizer *t, const rg_gguf *g, rg_err *err) {
    int32_t *fields[] = {&t->bos,  &t->eos,     &t->eot,     &t->eom,     &t->unk,     &t->sep,     &t->pad,
                         &t->mask, &t->fim_pre, &t->fim_suf, &t->fim_mid, &t->fim_pad, &t->fim_rep, &t->fim_sep};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        *fields[i] = -1;
    if (t->kind == TOK_SPM) { /* llama.cpp's defaults; gpt2 vocabularies get none */
        t->bos = 1 < t->n_vocab ? 1 : -1;
        t->eos = 2 < t->n_vocab ? 2 : -1;
        t->unk = 0;
    }
    for (size_t i = 0; i < sizeof ID_KEYS / sizeof *ID_KEYS; i++) {
        int64_t ki = rg_gguf_find_key(g, ID_KEYS[i].key), v;
        if (ki < 0) continue;
        if (!rg_gguf_get_i64(g, ki, &v)) return rg_fail(err, RG_E_FORMAT, "%s is not an integer", ID_KEYS[i].key);
        int32_t *id = (int32_t *)((char *)t + ID_KEYS[i].field);
        if (v == -1 || v == UINT32_MAX)
            *id = -1; /* "none" */
        else if (v < 0 || v >= t->n_vocab)
            return rg_fail(err, RG_E_FORMAT, "%s = %lld is out of range (the vocabulary has %d tokens)", ID_KEYS[i].key,
                           (long long)v, t->n_vocab);
        else
            *id = (int32_t)v;
    }
    if (t->add_bos && t->bos < 0)
        return rg_fail(err, RG_E_FORMAT, "tokenizer.ggml.add_bos_token is true but there is no BOS token");
    if (t->add_eos && t->eos < 0)
        return rg_fail(err, RG_E_FORMAT, "tokenizer.ggml.add_eos_token is true but there is no EOS token");
    return RG_OK;
}

/* Fill an unset special id from its texts; the token becomes a control token. */
static void detect(rg_tokenizer *t, int32_t *id, const char *const *texts) {
    for (; *id < 0 && *texts; texts++) {
        *id = find_text(t, *texts);
        if (*id >= 0) t->attr[*id] |= TA_CONTROL;
    }
}

static void set_eog(rg_tokenizer *t, int32_t id) {
    if (id >= 0) t->eog[id] = 1;
}

static rg_status find_eog(rg_tokenizer *t, rg_err *err) {
    t->eog = calloc((size_t)t->n_vocab, 1);
    if (!t->eog) return rg_fail(err, RG_E_NOMEM, "out of memory");
    set_eog(t, t->fim_pad);
    set_eog(t, t->fim_rep);
    set_eog(t, t->fim_sep);
    for (const char *const *s = EOG_TEXTS; *s; s++) {
        int32_t id = find_text(t, *s);
        if (id < 0) continue;
        set_eog(t, id);
        t->attr[id] |= TA_CONTROL;
    }
    /* gpt-oss: these are rendered and parsed like user-defined tokens */
    static const char *const harmony[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"};
    for (size_t i = 0; i < 4; i++) {
        int32_t id = find_text(t, harmony[i]);
        if (id >= 0) t->attr[id] = TA_USER_DEFINED;
    }
    set_eog(t, t->eos);
    set_eog(t, t->eot);
    set_eog(t, t->eom);
    /* o200k_harmony / solar-open: "<|end|>" ends a message, not the generation */
    int32_t ret = find_text(t, "<|return|>"), call = find_text(t, "<|call|>"), calls = find_text(t, "<|calls|>");
    int32_t flush = find_text(t, "<|flush|>"), end = find_text(t, "<|end|>");
    bool has_call = (call >= 0 && t->eog[call]) || (calls >= 0 && t->eog[calls]);
    if (end >= 0 && t->eog[end] && has_call && ((ret >= 0 && t->eog[ret]) || (flush >= 0 && t->eog[flush]))) {
        t->eog[end] = 0;
        t->attr[end] = TA_USER_DEFINED;
    }
    /* gemma 4 / plamo: "</s>" is an ordinary token there */
    int32_t tool = find_text(t, "<|tool_response>"), plamo = find_text(t, "<|plamo:eos|>"), s = find_text(t, "</s>");
    if (s >= 0 && t->eog[s] && ((tool >= 0 && t->eog[tool]) || (plamo >= 0 && t->eog[plamo]))) {
        t->eog[s] = 0;
        t->attr[s] = TA_NORMAL;
    }
    return RG_OK;
}

/* Longest text first; equal lengths by id (llama.cpp's std::sort leaves those unordered). */
typedef struct {
    size_t len;
    int32_t id;
} by_len;
static int by_length_desc(const void *a, const void *b) {
    const by_len *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static rg_status build_special_list(rg_tokenizer *t, rg_err *err) {
    int32_t n = 0;
    for (int32_t id = 0; id < t->n_vocab; id++)
        n += (t->attr[id] & (TA_CONTROL | TA_USER_DEFINED | TA_UNKNOWN)) != 0;
    by_len *tmp = malloc((size_t)(n ? n : 1) * sizeof *tmp);
    t->special = malloc((size_t)(n ? n : 1) * sizeof *t->special);
    if (!tmp || !t->special) {
        free(tmp);
        return rg_fail(err, RG_E_NOMEM, "out of memory");
    }
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (t->attr[id] & (TA_CONTROL | TA_USER_DEFINED | TA_UNKNOWN))
            tmp[t->n_special++] = (by_len){t->text_off[id + 1] - t->text_off[id], id};
    qsort(tmp, (size_t)t->n_special, sizeof *tmp, by_length_desc);
    for (int32_t i = 0; i < t->n_special; i++)
        t->special[i] = tmp[i].id;
    free(tmp);
    return RG_OK;
}

/* llama.cpp marks special tokens of Phi-3 models (by general.name) to eat the whitespace after them. */
static void phi3_rstrip(rg_tokenizer *t, const rg_gguf *g) {
    rg_gguf_str name;
    if (!rg_gguf_find_str(g, "general.name", &name)) return;
    char low[256];
    size_t n = name.len < sizeof low - 1 ? name.len : sizeof low - 1;
    for (size_t i = 0; i < n; i++)
        low[i] = (char)tolower((unsigned char)name.ptr[i]);
    low[n] = '\0';
    if (!strstr(low, "phi-3") && !strstr(low, "phi3")) return;
    for (int32_t i = 0; i < t->n_special; i++)
        t->attr[t->special[i]] |= TA_RSTRIP;
    int32_t id = find_text(t, "</s>");
    if (id >= 0) t->attr[id] |= TA_RSTRIP;
    static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
    for (size_t i = 0; i < 3; i++)
        if ((id = find_text(t, keep[i])) >= 0) t->attr[id] &= (uint16_t)~TA_RSTRIP;
}

rg_status tok_load_special(rg_tokenizer *t, const rg_gguf *g, rg_err *err) {
    rg_status s = read_ids(t, g, err);
    if (s) return s;
    detect(t, &t->eot, EOT_TEXTS);
    detect(t, &t->eom, EOM_TEXTS);
    detect(t, &t->fim_pre, FIM_PRE_TEXTS);
    detect(t, &t->fim_suf, FIM_SUF_TEXTS);
    detect(t, &t->fim_mid, FIM_MID_TEXTS);
    detect(t, &t->fim_pad, FIM_PAD_TEXTS);
    detect(t, &t->fim_rep, FIM_REP_TEXTS);
    detect(t, &t->fim_sep, FIM_SEP_TEXTS);
    if ((s = find_eog(t, err))) return s;
    if ((s = build_special_list(t, err))) return s;
    phi3_rstrip(t, g);
    return RG_OK;
}

static bool is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

static bool push_frag(tok_frag **v, size_t *n, size_t *cap, int32_t id, size_t off, size_t len) {
    if (!tok_reserve((void **)v, cap, *n + 1, sizeof **v)) return false;
    (*v)[(*n)++] = (tok_frag){id, off, len};
    return true;
}

int64_t tok_partition(const rg_tokenizer *t, const char *text, size_t len, bool parse_special, tok_frag **frags) {
    tok_frag *cur = NULL, *next = NULL;
    size_t n_cur = 0, cap_cur = 0, n_next = 0, cap_next = 0;
    *frags = NULL;
    if (len && !push_frag(&cur, &n_cur, &cap_cur, -1, 0, len)) return -1;
    for (int32_t k = 0; k < t->n_special && len; k++) {
        int32_t id = t->special[k];
        uint16_t attr = t->attr[id];
        /* Without parse_special only user-defined tokens are split out (as Hugging Face does). */
        if (!parse_special && (attr & (TA_CONTROL | TA_UNKNOWN))) continue;
        size_t tl;
        const char *tt = tok_text(t, id, &tl);
        n_next = 0;
        bool changed = false;
        for (size_t f = 0; f < n_cur; f++) {
            if (cur[f].id >= 0) {
                if (!push_frag(&next, &n_next, &cap_next, cur[f].id, 0, 0)) goto oom;
                continue;
            }
            size_t pos = cur[f].off, end = cur[f].off + cur[f].len;
            for (;;) {
                const char *m = memmem(text + pos, end - pos, tt, tl);
                if (!m) {
                    if (pos < end && !push_frag(&next, &n_next, &cap_next, -1, pos, end - pos)) goto oom;
                    break;
                }
                changed = true;
                size_t at = (size_t)(m - text), left = at - pos;
                if (attr & TA_LSTRIP)
                    while (left > 0 && is_space(text[pos + left - 1]))
                        left--;
                if (left > 0 && !push_frag(&next, &n_next, &cap_next, -1, pos, left)) goto oom;
                if (!push_frag(&next, &n_next, &cap_next, id, 0, 0)) goto oom;
                pos = at + tl;
                if (attr & TA_RSTRIP)
                    while (pos < end && is_space(text[pos]))
                        pos++;
            }
        }
        if (!changed) continue;
        tok_frag *tmp = cur;
        size_t tcap = cap_cur;
        cur = next, n_cur = n_next, cap_cur = cap_next;
        next = tmp, cap_next = tcap;
    }
    free(next);
    *frags = cur;
    return (int64_t)n_cur;
oom:
    free(cur);
    free(next);
    return -1;
}
