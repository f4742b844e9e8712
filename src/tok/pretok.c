/* pretok.c — byte-level BPE pre-tokenizers: the regexes named by
 * tokenizer.ggml.pre, and splitting text into words with them (PCRE2).
 *
 * The idea (llama.cpp's unicode_regex_split): the regexes of one pre-tokenizer
 * run in sequence, each splitting every piece the previous one produced; inside
 * a piece, each match becomes a word and so does every unmatched stretch
 * between matches, so no byte is ever dropped. Each piece is matched as a
 * subject of its own, so lookaheads and `$` see the piece's end, not the text's.
 *
 * The regex strings are llama.cpp's (src/llama-vocab.cpp). Three details make
 * PCRE2 see what llama.cpp's matcher sees:
 *  - llama.cpp hands its regex engine every non-ASCII whitespace character as
 *    U+000B, so such a character matches `\s` but no explicit class member
 *    (U+3000 is not in deepseek's "\x{3000}-\x{3002}" there). The subject
 *    given to PCRE2 therefore carries the stand-in U+E001 for each 3-byte
 *    whitespace character (the 2-byte ones, U+0085 and U+00A0, appear in no
 *    class and stay), and `\s` is rewritten to the explicit whitespace set of
 *    llama.cpp's tables plus U+E001 (PCRE2's own `\s` also takes U+180E).
 *    Surrogates, which llama.cpp's lenient decoder lets through but PCRE2
 *    cannot take, and literal U+E001, stand in as U+E000; both are
 *    three-byte characters, so byte offsets are unchanged and the words are
 *    cut from the unmodified bytes.
 *  - llama.cpp's Unicode tables are version 15.1, PCRE2 10.42's are 14: the
 *    letters, digits and punctuation added in between are appended to
 *    `\p{L}`, `\p{N}`, `\p{P}` (the lists below came from comparing the two).
 *  - Input is decoded as llama.cpp decodes it: each undecodable byte is U+FFFD. */
#include <stdio.h>
#include <string.h>

#include "tok/tok_internal.h"

/* llama.cpp's unicode_set_whitespace as class members, with U+E001 standing in for its 3-byte members. */
#define WS_MEMBERS "\\t\\n\\x0B\\f\\r \\x{85}\\x{A0}\\x{E001}"
#define WS_STANDIN 0xe001u
#define OTHER_STANDIN 0xe000u
#define L_ADDED                                                                                                        \
    "\\x{1123F}-\\x{11240}\\x{11F02}\\x{11F04}-\\x{11F10}\\x{11F12}-\\x{11F33}\\x{1342F}\\x{13441}-\\x{13446}"         \
    "\\x{1B132}\\x{1B155}\\x{1DF25}-\\x{1DF2A}\\x{1E030}-\\x{1E06D}\\x{1E4D0}-\\x{1E4EB}\\x{2B739}"                    \
    "\\x{2EBF0}-\\x{2EE5D}\\x{31350}-\\x{323AF}"
#define N_ADDED "\\x{11F50}-\\x{11F59}\\x{1D2C0}-\\x{1D2D3}\\x{1E4F0}-\\x{1E4F9}"
#define P_ADDED "\\x{11B00}-\\x{11B09}\\x{11F43}-\\x{11F4F}"

#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RE_LLAMA3                                                                                                      \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "            \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                                                       \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "                 \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* CJK, Hangul and the block from U+0800 up to the first CJK ideograph, as deepseek writes it */
#define RE_DEEPSEEK_CJK "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"

static const char *const re_default[] = {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"};
static const char *const re_gpt2[] = {RE_GPT2};
static const char *const re_llama3[] = {RE_LLAMA3};
static const char *const re_qwen2[] = {RE_QWEN2};
static const char *const re_falcon[] = {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"};
static const char *const re_starcoder[] = {"\\p{N}", RE_GPT2};
static const char *const re_deepseek_coder[] = {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RE_DEEPSEEK_CJK, "\\p{N}"};
/* clang-format off */
static const char *const re_deepseek_llm[] = {
    "[\r\n]",
    /* cased letters of many scripts */
    "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}"
    "\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}"
    "\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}"
    "\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}"
    "\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}"
    "\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}"
    "\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}"
    "\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}"
    "\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}"
    "\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}"
    "\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}"
    "\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}"
    "\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}"
    "\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}"
    "\\x{1E900}-\\x{1E943}]+",
    /* ASCII and full-width punctuation, quotes, ideographic space and stops */
    "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
    "\\s+$",
    RE_DEEPSEEK_CJK,
    "\\p{N}+",
};
/* clang-format on */

#define N(a) (int)(sizeof a / sizeof *a)
/* tokenizer.ggml.pre values and their llama.cpp pre-tokenizer types. */
static const tok_pretok_def PRETOKS[] = {
    {"default", re_default, N(re_default), false, false},
    {"gpt-2", re_gpt2, 1, false, false},
    {"phi-2", re_gpt2, 1, false, false},
    {"mpt", re_gpt2, 1, false, false},
    {"olmo", re_gpt2, 1, false, false},
    {"llama-bpe", re_llama3, 1, true, true}, /* Llama 3 */
    {"llama3", re_llama3, 1, true, true},
    {"llama-v3", re_llama3, 1, true, true},
    {"falcon3", re_llama3, 1, true, true},
    {"pixtral", re_llama3, 1, true, true},
    {"dbrx", re_llama3, 1, false, false},
    {"smaug-bpe", re_llama3, 1, false, false},
    {"qwen2", re_qwen2, 1, false, false},
    {"deepseek-r1-qwen", re_qwen2, 1, false, false},
    {"stablelm2", re_qwen2, 1, false, false},
    {"falcon", re_falcon, N(re_falcon), false, false},
    {"deepseek-llm", re_deepseek_llm, N(re_deepseek_llm), false, false},
    {"deepseek-coder", re_deepseek_coder, N(re_deepseek_coder), false, false},
    {"starcoder", re_starcoder, 2, false, false},
    {"refact", re_starcoder, 2, false, false},
    {"smollm", re_starcoder, 2, false, false},
    {"command-r", re_starcoder, 2, false, false},
    {"codeshell", re_starcoder, 2, false, false},
    {"exaone", re_starcoder, 2, false, false},
    {"minerva-7b", re_starcoder, 2, false, false},
};

/* Class members a pattern item stands for, or NULL if it is kept as written. */
static const char *members(char c, char cat) {
    if (c == 's') return WS_MEMBERS;
    if (c != 'p') return NULL;
    if (cat == 'L') return "\\p{L}" L_ADDED;
    if (cat == 'N') return "\\p{N}" N_ADDED;
    if (cat == 'P') return "\\p{P}" P_ADDED;
    return NULL;
}

/* Rewrite \s, \S, \p{L}, \p{N}, \p{P} as described on top; NULL for \S inside a class (unused). */
static char *rewrite(const char *re) {
    size_t n = strlen(re), cap = n * 64 + 64, o = 0;
    char *out = malloc(cap);
    if (!out) return NULL;
    bool in_class = false;
    for (size_t i = 0; i < n;) {
        const char *m = NULL;
        size_t used = 1;
        bool negate = false;
        if (re[i] == '\\' && i + 1 < n) {
            used = 2;
            bool prop = re[i + 1] == 'p' && i + 4 < n && re[i + 2] == '{' && re[i + 4] == '}';
            if (re[i + 1] == 'S') {
                if (in_class) return free(out), NULL;
                m = WS_MEMBERS, negate = true;
            } else if ((m = members(re[i + 1], prop ? re[i + 3] : 0)) && prop) {
                used = 5;
            }
        } else if (re[i] == '[' && !in_class) {
            in_class = true;
        } else if (re[i] == ']' && in_class) {
            in_class = false;
        }
        char buf[16];
        const char *add = buf;
        if (!m) {
            memcpy(buf, re + i, used);
            buf[used] = '\0';
        } else if (in_class) {
            add = m;
        }
        size_t al = strlen(add) + (m && !in_class ? 3 : 0);
        if (o + al + 1 > cap) return free(out), NULL; /* cannot happen: 64x covers the longest expansion */
        if (m && !in_class)
            o += (size_t)sprintf(out + o, "[%s%s]", negate ? "^" : "", m);
        else
            memcpy(out + o, add, strlen(add)), o += strlen(add);
        i += used;
    }
    out[o] = '\0';
    return out;
}

rg_status tok_pretok_init(rg_tokenizer *t, const char *name, rg_err *err) {
    for (size_t i = 0; i < sizeof PRETOKS / sizeof *PRETOKS; i++) {
        if (strcmp(PRETOKS[i].name, name)) continue;
        t->pretok = &PRETOKS[i];
        for (int k = 0; k < PRETOKS[i].n_regex; k++) {
            char *pat = rewrite(PRETOKS[i].regex[k]);
            if (!pat) return rg_fail(err, RG_E_NOMEM, "pre-tokenizer '%s': cannot prepare regex %d", name, k);
            int code;
            PCRE2_SIZE at;
            pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                                           PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &code, &at, NULL);
            free(pat);
            if (!re) {
                PCRE2_UCHAR msg[160];
                pcre2_get_error_message(code, msg, sizeof msg);
                return rg_fail(err, RG_E_INVALID, "pre-tokenizer '%s': regex %d does not compile at %zu: %s", name, k,
                               (size_t)at, (const char *)msg);
            }
            pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* when JIT is unavailable, matching interprets */
            t->re[t->n_re++] = re;
        }
        return RG_OK;
    }
    return rg_fail(err, RG_E_UNSUPPORTED, "unsupported pre-tokenizer '%s' (tokenizer.ggml.pre)", name);
}

void tok_pretok_free(rg_tokenizer *t) {
    for (int k = 0; k < t->n_re; k++)
        pcre2_code_free(t->re[k]);
    t->n_re = 0;
}

void tok_scratch_free(tok_scratch *s) {
    free(s->u);
    free(s->ub);
    free(s->spans);
    free(s->spans2);
    if (s->md) pcre2_match_data_free(s->md);
    free(s->word);
    free(s->sym);
    free(s->heap);
    memset(s, 0, sizeof *s);
}

static bool push_span(size_t **v, size_t *n, size_t *cap, size_t a, size_t b) {
    if (!tok_reserve((void **)v, cap, *n + 2, sizeof **v)) return false;
    (*v)[(*n)++] = a;
    (*v)[(*n)++] = b;
    return true;
}

/* Split each span of s->spans by re into s->spans2 (matches and the gaps between them). */
static int64_t split_by(pcre2_code *re, tok_scratch *s, size_t n_in, rg_err *err) {
    size_t n_out = 0;
    for (size_t k = 0; k < n_in; k += 2) {
        size_t start = s->spans[k], len = s->spans[k + 1] - start, prev = 0, off = 0;
        const PCRE2_SPTR subj = (PCRE2_SPTR)s->u + start;
        while (off < len) {
            int rc = pcre2_match(re, subj, len, off, PCRE2_NO_UTF_CHECK, s->md, NULL);
            if (rc == PCRE2_ERROR_JIT_STACKLIMIT) /* deep backtracking: let the interpreter (heap) do it */
                rc = pcre2_match(re, subj, len, off, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, s->md, NULL);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) {
                PCRE2_UCHAR msg[160];
                pcre2_get_error_message(rc, msg, sizeof msg);
                rg_fail(err, RG_E_UNSUPPORTED, "pre-tokenizer regex failed on a %zu-byte piece: %s", len,
                        (const char *)msg);
                return -1;
            }
            const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->md);
            size_t ms = ov[0], me = ov[1];
            if (me == ms) { /* empty match: step over one character */
                off = ms + tok_utf8_len((unsigned char)s->u[start + ms]);
                continue;
            }
            if (ms > prev && !push_span(&s->spans2, &n_out, &s->spans2_cap, start + prev, start + ms)) goto oom;
            if (!push_span(&s->spans2, &n_out, &s->spans2_cap, start + ms, start + me)) goto oom;
            prev = off = me;
        }
        if (prev < len && !push_span(&s->spans2, &n_out, &s->spans2_cap, start + prev, start + len)) goto oom;
    }
    return (int64_t)n_out;
oom:
    rg_fail(err, RG_E_NOMEM, "out of memory");
    return -1;
}

int64_t tok_pretok_split(const rg_tokenizer *t, const char *text, size_t len, tok_scratch *s, rg_err *err) {
    /* Decode and re-encode: at most 3 output bytes per input byte (a bad byte becomes U+FFFD). */
    if (len > SIZE_MAX / 3 - 4 || !tok_reserve((void **)&s->u, &s->u_cap, 3 * len + 4, 1) ||
        !tok_reserve((void **)&s->ub, &s->ub_cap, 3 * len + 4, 1))
        goto oom;
    size_t ulen = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cpt = tok_utf8_decode_lenient((const unsigned char *)text, len, &i), re = cpt;
        if ((cpt >= 0x1680 && cpt <= 0x3000) && (cpt == 0x1680 || (cpt >= 0x2000 && cpt <= 0x200a) || cpt == 0x2028 ||
                                                 cpt == 0x2029 || cpt == 0x202f || cpt == 0x205f || cpt == 0x3000))
            re = WS_STANDIN;
        else if ((cpt >= 0xd800 && cpt <= 0xdfff) || cpt == WS_STANDIN)
            re = OTHER_STANDIN;
        size_t n = tok_utf8_encode(cpt, s->ub + ulen);
        if (re == cpt)
            memcpy(s->u + ulen, s->ub + ulen, n);
        else
            tok_utf8_encode(re, s->u + ulen); /* same length: all of these are 3-byte characters */
        ulen += n;
    }
    if (!s->md && !(s->md = pcre2_match_data_create(1, NULL))) goto oom;
    size_t n = 0;
    if (!push_span(&s->spans, &n, &s->spans_cap, 0, ulen)) goto oom;
    for (int k = 0; k < t->n_re; k++) {
        int64_t m = split_by(t->re[k], s, n, err);
        if (m < 0) return -1;
        size_t *tmp = s->spans, tcap = s->spans_cap;
        s->spans = s->spans2, s->spans_cap = s->spans2_cap;
        s->spans2 = tmp, s->spans2_cap = tcap;
        n = (size_t)m;
    }
    return (int64_t)(n / 2);
oom:
    rg_fail(err, RG_E_NOMEM, "out of memory");
    return -1;
}
