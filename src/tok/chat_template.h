/* chat_template.h — turn a list of chat messages into the prompt text a model was
 * trained on, for the common template families.
 *
 * There is no Jinja engine: the family is recognized from marker strings in the
 * model's tokenizer.chat_template (as llama.cpp does), and each family's layout is
 * written out in C to reproduce what the Hugging Face template renders. What the
 * template text itself decides beyond the family (today: ChatML's default system
 * message, as in SmolLM2 and Qwen2) is read from that text, not hard-coded per model.
 *
 * The output never starts with BOS: the tokenizer adds it (add_bos), as with
 * llama.cpp's formatter. Special-token markers (<|im_start|>, [INST], and the "<s>"
 * Llama 2 puts between turns) are plain text here; tokenize the prompt with special
 * tokens parsed. Message contents are copied verbatim, never escaped, so a user who
 * types "<|im_end|>" gets that token, exactly as with llama.cpp and transformers. */
#ifndef RG_TOK_CHAT_TEMPLATE_H
#define RG_TOK_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"

typedef enum rg_chat_family {
    RG_CHAT_CHATML,            /* "chatml": SmolLM2, Qwen2/2.5, OpenHermes, ... */
    RG_CHAT_LLAMA3,            /* "llama3": Llama 3 / 3.1 / 3.2 instruct (content trimmed) */
    RG_CHAT_LLAMA2,            /* "llama2": Llama-2-chat, [INST] <<SYS>> ... <</SYS>> */
    RG_CHAT_MISTRAL_LEGACY,    /* "mistral-legacy": first Mistral-7B-Instruct v0.1/v0.2 template */
    RG_CHAT_MISTRAL_V1,        /* "mistral-v1":  " [INST] u [/INST] a</s>" */
    RG_CHAT_MISTRAL_V3,        /* "mistral-v3":  "[INST] u[/INST] a</s>", system in the last turn */
    RG_CHAT_MISTRAL_V3_TEKKEN, /* "mistral-v3-tekken": "[INST]u[/INST]a</s>" (Mistral Nemo) */
    RG_CHAT_MISTRAL_V7,        /* "mistral-v7":  "[SYSTEM_PROMPT] s[/SYSTEM_PROMPT][INST] u[/INST] a</s>" */
    RG_CHAT_N_FAMILIES,
} rg_chat_family;

/* One message. role is "system", "user" or "assistant"; content is any NUL-terminated
 * text. Both are borrowed for the duration of the call. */
typedef struct rg_chat_msg {
    const char *role;
    const char *content;
} rg_chat_msg;

/* A recognized template. Plain value, owned by the caller; release with
 * rg_chat_template_clear. A caller may also fill one by hand, e.g.
 * (rg_chat_template){RG_CHAT_LLAMA3, NULL}. */
typedef struct rg_chat_template {
    rg_chat_family family;
    /* System text the template inserts when the first message is not a system
     * message; NULL for none. malloc'd, owned by the struct. */
    char *default_system;
} rg_chat_template;

/* Recognize tokenizer.chat_template's text. Errors: RG_E_NOT_FOUND for NULL or ""
 * (the model has no template); RG_E_UNSUPPORTED for a template of another family,
 * with a message listing the known families and pointing at --chat-template NAME;
 * RG_E_NOMEM. On error *out is left empty ({RG_CHAT_CHATML, NULL}). */
rg_status rg_chat_template_detect(const char *template_text, rg_chat_template *out, rg_err *err);

/* Choose a family by name (the names in rg_chat_family's comments), for a CLI
 * override. No default system message. RG_E_INVALID for an unknown name. */
rg_status rg_chat_template_from_name(const char *name, rg_chat_template *out, rg_err *err);

/* Free default_system and reset *t; t itself is not freed. NULL is fine. */
void rg_chat_template_clear(rg_chat_template *t);

/* The family's name as rg_chat_template_from_name takes it; "?" if out of range. */
const char *rg_chat_family_name(rg_chat_family f);

/* Format n >= 1 messages. add_generation_prompt appends the assistant header for
 * ChatML and Llama 3; the [INST] families have none (their user turn already ends
 * with the cue "[/INST]"), so it changes nothing there.
 * The [INST] families (llama2, mistral-legacy/v1/v3/v3-tekken) accept what their
 * templates accept: an optional first system message, then user/assistant turns
 * alternating from user. Errors (RG_E_INVALID): n == 0, NULL role or content, a role
 * other than the three, a sequence the family cannot express; RG_E_NOMEM.
 * On success *out is a malloc'd NUL-terminated string the caller frees; on error
 * *out is NULL. */
rg_status rg_chat_format(const rg_chat_template *t, const rg_chat_msg *msgs, size_t n, bool add_generation_prompt,
                         char **out, rg_err *err);

#endif
