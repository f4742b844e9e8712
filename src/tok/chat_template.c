/* chat_template.c — chat message formatting for the common template families.
 *
 * Detection looks for each family's special markers in tokenizer.chat_template (the
 * order and markers follow llama.cpp's llm_chat_detect_template). Formatting
 * reproduces what transformers renders from the reference templates, minus the
 * leading BOS; the expected strings in tests/test_chat_template.c were checked
 * against jinja2 renders of those templates. Where this code deliberately differs
 * from a template, it is because the template would fail or silently drop text:
 *   - mistral-legacy raises on a system message; we prepend it to the first user
 *     message followed by "\n\n", as mistral-v1 does.
 *   - mistral-v3 drops the system message when the chat ends on an assistant turn;
 *     we keep it in the last user turn.
 *   - Llama 3.1+ templates add a "Cutting Knowledge Date" preamble to the system
 *     turn; not reproduced (llama.cpp's formatter does not either).
 *   - Jinja's trim/strip remove Unicode whitespace; we strip ASCII whitespace only. */
#include "tok/chat_template.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const FAMILY_NAMES[RG_CHAT_N_FAMILIES] = {
    [RG_CHAT_CHATML] = "chatml",
    [RG_CHAT_LLAMA3] = "llama3",
    [RG_CHAT_LLAMA2] = "llama2",
    [RG_CHAT_MISTRAL_LEGACY] = "mistral-legacy",
    [RG_CHAT_MISTRAL_V1] = "mistral-v1",
    [RG_CHAT_MISTRAL_V3] = "mistral-v3",
    [RG_CHAT_MISTRAL_V3_TEKKEN] = "mistral-v3-tekken",
    [RG_CHAT_MISTRAL_V7] = "mistral-v7",
};

/* ---- growable output buffer; an allocation failure is sticky and reported once */

typedef struct buf {
    char *p;
    size_t len, cap;
    bool oom;
} buf;

static void put_n(buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (n > SIZE_MAX / 2 - b->len) {
        b->oom = true;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void put(buf *b, const char *s) { put_n(b, s, strlen(s)); }

static bool is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* Jinja's `trim` / Python's str.strip() applied to everything written since mark. */
static void strip_since(buf *b, size_t mark) {
    if (b->oom || !b->p) return;
    while (b->len > mark && is_space(b->p[b->len - 1]))
        b->len--;
    size_t lead = 0;
    while (mark + lead < b->len && is_space(b->p[mark + lead]))
        lead++;
    memmove(b->p + mark, b->p + mark + lead, b->len - mark - lead);
    b->len -= lead;
    b->p[b->len] = 0;
}

static bool role_is(const rg_chat_msg *m, const char *role) { return strcmp(m->role, role) == 0; }

/* ---- ChatML and Llama 3: one header per message, any order of roles */

static void format_chatml(buf *b, const rg_chat_msg *m, size_t n, bool gen) {
    for (size_t i = 0; i < n; i++) {
        put(b, "<|im_start|>");
        put(b, m[i].role);
        put(b, "\n");
        put(b, m[i].content);
        put(b, "<|im_end|>\n");
    }
    if (gen) put(b, "<|im_start|>assistant\n");
}

static void format_llama3(buf *b, const rg_chat_msg *m, size_t n, bool gen) {
    for (size_t i = 0; i < n; i++) {
        put(b, "<|start_header_id|>");
        put(b, m[i].role);
        put(b, "<|end_header_id|>\n\n");
        size_t mark = b->len;
        put(b, m[i].content);
        strip_since(b, mark);
        put(b, "<|eot_id|>");
    }
    if (gen) put(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

/* ---- the [INST] families differ only in spacing, stripping and where the system
 * message goes, so one loop renders them all from a row of this table. */

typedef struct inst_style {
    const char *turn_bos;               /* before every [INST] but the first (Llama 2: "<s>") */
    const char *inst_open, *inst_close; /* around a user turn */
    const char *sys_open, *sys_close;   /* around the system text, inside a user turn */
    const char *asst_open, *asst_close; /* around an assistant turn */
    bool strip_user;                    /* strip (system block + user text) as one string */
    bool strip_asst;                    /* strip the assistant text */
    bool sys_in_last_turn;              /* system goes to the last user turn, not the first */
} inst_style;

/* One row per family; kept as a table by hand. */
/* clang-format off */
static const inst_style INST_STYLES[] = {
    [RG_CHAT_LLAMA2] = {.turn_bos = "<s>", .inst_open = "[INST] ", .inst_close = " [/INST]",
        .sys_open = "<<SYS>>\n", .sys_close = "\n<</SYS>>\n\n", .asst_open = " ", .asst_close = " </s>",
        .strip_user = true, .strip_asst = true},
    [RG_CHAT_MISTRAL_LEGACY] = {.turn_bos = "", .inst_open = "[INST] ", .inst_close = " [/INST]",
        .sys_open = "", .sys_close = "\n\n", .asst_open = "", .asst_close = "</s>"},
    [RG_CHAT_MISTRAL_V1] = {.turn_bos = "", .inst_open = " [INST] ", .inst_close = " [/INST]",
        .sys_open = "", .sys_close = "\n\n", .asst_open = " ", .asst_close = "</s>"},
    [RG_CHAT_MISTRAL_V3] = {.turn_bos = "", .inst_open = "[INST] ", .inst_close = "[/INST]",
        .sys_open = "", .sys_close = "\n\n", .asst_open = " ", .asst_close = "</s>",
        .strip_asst = true, .sys_in_last_turn = true},
    [RG_CHAT_MISTRAL_V3_TEKKEN] = {.turn_bos = "", .inst_open = "[INST]", .inst_close = "[/INST]",
        .sys_open = "", .sys_close = "\n\n", .asst_open = "", .asst_close = "</s>",
        .sys_in_last_turn = true},
};
/* clang-format on */

static rg_status format_inst(buf *b, rg_chat_family f, const rg_chat_msg *m, size_t n, rg_err *err) {
    const inst_style *st = &INST_STYLES[f];
    size_t first = role_is(&m[0], "system") ? 1 : 0;
    if (first == n)
        return rg_fail(err, RG_E_INVALID, "%s chat template: a system message must be followed by a user message",
                       FAMILY_NAMES[f]);
    size_t sys_turn = first;
    for (size_t i = first; i < n; i++) {
        const char *want = (i - first) % 2 == 0 ? "user" : "assistant";
        if (!role_is(&m[i], want))
            return rg_fail(err, RG_E_INVALID,
                           "%s chat template: message %zu is '%s' but must be '%s' (an optional first system "
                           "message, then user and assistant alternating)",
                           FAMILY_NAMES[f], i, m[i].role, want);
        if (st->sys_in_last_turn && want[0] == 'u') sys_turn = i;
    }
    for (size_t i = first; i < n; i++) {
        size_t mark;
        if (role_is(&m[i], "user")) {
            if (i > first) put(b, st->turn_bos);
            put(b, st->inst_open);
            mark = b->len;
            if (first && i == sys_turn) {
                put(b, st->sys_open);
                put(b, m[0].content);
                put(b, st->sys_close);
            }
            put(b, m[i].content);
            if (st->strip_user) strip_since(b, mark);
            put(b, st->inst_close);
        } else {
            put(b, st->asst_open);
            mark = b->len;
            put(b, m[i].content);
            if (st->strip_asst) strip_since(b, mark);
            put(b, st->asst_close);
        }
    }
    return RG_OK;
}

/* Mistral v7 gives the system prompt its own markers, so any order is expressible. */
static void format_mistral_v7(buf *b, const rg_chat_msg *m, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (role_is(&m[i], "system")) {
            put(b, "[SYSTEM_PROMPT] ");
            put(b, m[i].content);
            put(b, "[/SYSTEM_PROMPT]");
        } else if (role_is(&m[i], "user")) {
            put(b, "[INST] ");
            put(b, m[i].content);
            put(b, "[/INST]");
        } else {
            put(b, " ");
            put(b, m[i].content);
            put(b, "</s>");
        }
    }
}

rg_status rg_chat_format(const rg_chat_template *t, const rg_chat_msg *msgs, size_t n, bool add_generation_prompt,
                         char **out, rg_err *err) {
    if (out) *out = NULL;
    if (!t || !out || (!msgs && n))
        return rg_fail(err, RG_E_INVALID, "rg_chat_format: NULL template, messages or output");
    if ((unsigned)t->family >= RG_CHAT_N_FAMILIES)
        return rg_fail(err, RG_E_INVALID, "rg_chat_format: unknown chat family %d", (int)t->family);
    if (n == 0) return rg_fail(err, RG_E_INVALID, "chat has no messages");
    for (size_t i = 0; i < n; i++) {
        if (!msgs[i].role || !msgs[i].content)
            return rg_fail(err, RG_E_INVALID, "chat message %zu has no %s", i, msgs[i].role ? "content" : "role");
        if (!role_is(&msgs[i], "system") && !role_is(&msgs[i], "user") && !role_is(&msgs[i], "assistant"))
            return rg_fail(err, RG_E_INVALID, "chat message %zu has role '%s'; expected system, user or assistant", i,
                           msgs[i].role);
    }

    /* A template's default system message acts as if the caller had sent it first. */
    rg_chat_msg *with_sys = NULL;
    if (t->default_system && !role_is(&msgs[0], "system")) {
        if (n > SIZE_MAX / sizeof *with_sys - 1 || !(with_sys = malloc((n + 1) * sizeof *with_sys)))
            return rg_fail(err, RG_E_NOMEM, "out of memory formatting the chat");
        with_sys[0] = (rg_chat_msg){"system", t->default_system};
        memcpy(with_sys + 1, msgs, n * sizeof *msgs);
        msgs = with_sys;
        n++;
    }

    buf b = {0};
    rg_status st = RG_OK;
    switch (t->family) {
    case RG_CHAT_CHATML: format_chatml(&b, msgs, n, add_generation_prompt); break;
    case RG_CHAT_LLAMA3: format_llama3(&b, msgs, n, add_generation_prompt); break;
    case RG_CHAT_MISTRAL_V7: format_mistral_v7(&b, msgs, n); break;
    default: st = format_inst(&b, t->family, msgs, n, err); break;
    }
    free(with_sys);
    if (st == RG_OK && b.oom) st = rg_fail(err, RG_E_NOMEM, "out of memory formatting the chat");
    if (st != RG_OK) {
        free(b.p);
        return st;
    }
    *out = b.p;
    return RG_OK;
}

/* ---- detection */

static bool has(const char *text, const char *needle) { return strstr(text, needle) != NULL; }

/* Decode the Jinja string literal whose opening quote is at q (Python escapes:
 * \n \t \r \\ \' \"; any other backslash stays as written, as in Python). Returns
 * false if it is not terminated. */
static bool read_literal(const char *q, buf *b) {
    char quote = *q;
    for (const char *p = q + 1; *p; p++) {
        if (*p == quote) return true;
        if (*p != '\\' || !p[1]) {
            put_n(b, p, 1);
            continue;
        }
        p++;
        switch (*p) {
        case 'n': put(b, "\n"); break;
        case 't': put(b, "\t"); break;
        case 'r': put(b, "\r"); break;
        case '\\':
        case '\'':
        case '"': put_n(b, p, 1); break;
        default: put_n(b, p - 1, 2); break;
        }
    }
    return false;
}

/* ChatML templates that inject a default system message (SmolLM2, Qwen2, Qwen2.5)
 * hold it as one literal '<|im_start|>system\n{text}<|im_end|>\n', emitted when
 * messages[0] is not a system message. A literal that is only the header (Qwen2.5
 * builds the caller's system turn from '<|im_start|>system\n' + content) is skipped.
 * *out stays NULL when there is none. */
static rg_status chatml_default_system(const char *text, char **out, rg_err *err) {
    static const char head[] = "<|im_start|>system\n", tail[] = "<|im_end|>";
    for (const char *p = strstr(text, "<|im_start|>system"); p; p = strstr(p + 1, "<|im_start|>system")) {
        if (p == text || (p[-1] != '\'' && p[-1] != '"')) continue;
        buf lit = {0};
        bool closed = read_literal(p - 1, &lit);
        if (lit.oom) {
            free(lit.p);
            return rg_fail(err, RG_E_NOMEM, "out of memory reading the chat template");
        }
        char *end = closed && lit.p && strncmp(lit.p, head, sizeof head - 1) == 0 ? strstr(lit.p, tail) : NULL;
        if (end && end > lit.p + sizeof head - 1) {
            size_t len = (size_t)(end - lit.p) - (sizeof head - 1);
            memmove(lit.p, lit.p + sizeof head - 1, len);
            lit.p[len] = 0;
            *out = lit.p;
            return RG_OK;
        }
        free(lit.p);
    }
    return RG_OK;
}

/* "chatml, llama3, ..." for error messages. */
static void list_names(char *dst, size_t cap) {
    dst[0] = 0;
    for (int f = 0; f < RG_CHAT_N_FAMILIES; f++) {
        size_t used = strlen(dst);
        snprintf(dst + used, cap - used, "%s%s", f ? ", " : "", FAMILY_NAMES[f]);
    }
}

static rg_status unsupported(rg_err *err, const char *why) {
    char names[256];
    list_names(names, sizeof names);
    return rg_fail(err, RG_E_UNSUPPORTED,
                   "chat template not recognized (%s); ridge knows %s; choose one with --chat-template NAME", why,
                   names);
}

rg_status rg_chat_template_detect(const char *text, rg_chat_template *out, rg_err *err) {
    if (!out) return rg_fail(err, RG_E_INVALID, "rg_chat_template_detect: NULL output");
    *out = (rg_chat_template){RG_CHAT_CHATML, NULL};
    if (!text || !*text)
        return rg_fail(err, RG_E_NOT_FOUND, "the model has no chat template; choose one with --chat-template NAME");

    if (has(text, "<|im_start|>")) {
        if (has(text, "<|im_sep|>")) return unsupported(err, "it uses <|im_sep|> like Phi-4, not ChatML");
        if (has(text, "<end_of_utterance>")) return unsupported(err, "it is SmolVLM's, not ChatML");
        out->family = RG_CHAT_CHATML;
        return chatml_default_system(text, &out->default_system, err);
    }
    if (has(text, "<|start_header_id|>") && has(text, "<|end_header_id|>")) {
        out->family = RG_CHAT_LLAMA3;
    } else if (has(text, "[SYSTEM_PROMPT]")) {
        out->family = RG_CHAT_MISTRAL_V7;
    } else if (has(text, "[INST]")) {
        if (has(text, "<<SYS>>"))
            out->family = RG_CHAT_LLAMA2;
        else if (has(text, "[AVAILABLE_TOOLS]"))
            out->family =
                has(text, "\"[INST]\"") || has(text, "'[INST]'") ? RG_CHAT_MISTRAL_V3_TEKKEN : RG_CHAT_MISTRAL_V3;
        else if (has(text, "' [INST] '") || has(text, "\" [INST] \""))
            out->family = RG_CHAT_MISTRAL_V1;
        else
            out->family = RG_CHAT_MISTRAL_LEGACY;
    } else {
        return unsupported(err, "no ChatML, Llama 3 or [INST] markers");
    }
    return RG_OK;
}

rg_status rg_chat_template_from_name(const char *name, rg_chat_template *out, rg_err *err) {
    if (!out) return rg_fail(err, RG_E_INVALID, "rg_chat_template_from_name: NULL output");
    *out = (rg_chat_template){RG_CHAT_CHATML, NULL};
    for (int f = 0; name && f < RG_CHAT_N_FAMILIES; f++) {
        if (strcmp(name, FAMILY_NAMES[f]) == 0) {
            out->family = (rg_chat_family)f;
            return RG_OK;
        }
    }
    char names[256];
    list_names(names, sizeof names);
    return rg_fail(err, RG_E_INVALID, "unknown chat template name '%s' (known: %s)", name ? name : "(null)", names);
}

void rg_chat_template_clear(rg_chat_template *t) {
    if (!t) return;
    free(t->default_system);
    *t = (rg_chat_template){RG_CHAT_CHATML, NULL};
}

const char *rg_chat_family_name(rg_chat_family f) { return (unsigned)f < RG_CHAT_N_FAMILIES ? FAMILY_NAMES[f] : "?"; }
