/* test_chat_template.c — chat template detection and message formatting.
 *
 * The fixtures are real tokenizer.chat_template texts: SmolLM2-135M-Instruct's as
 * stored in its GGUF; Qwen2-Instruct, Qwen2.5 (tool branch trimmed), Meta-Llama-3-
 * Instruct, Llama-2-chat and the Mistral templates from their tokenizer_config.json
 * (the Mistral v3 ones shortened to the parts that decide the layout). Every
 * expected string is what jinja2 renders from that fixture for the same messages
 * (trim_blocks/lstrip_blocks, as transformers does), minus the leading BOS, except
 * where chat_template.c documents a deliberate difference. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tok/chat_template.h"

static const char SMOLLM2[] = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
                              "'<|im_start|>system\n"
                              "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
                              "' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n"
                              "' + message['content'] + '<|im_end|>' + '\n"
                              "'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n"
                              "' }}{% endif %}";

static const char QWEN2[] =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
    "'<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' "
    "+ message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if "
    "add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

static const char QWEN25[] =
    "{%- if tools %}\n"
    "    {{- '<|im_start|>system\\n' }}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- messages[0]['content'] }}\n"
    "    {%- else %}\n"
    "        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n"
    "    {%- endif %}\n"
    "{%- else %}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
    "    {%- else %}\n"
    "        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
    "assistant.<|im_end|>\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or "
    "(message.role == \"assistant\" and not message.tool_calls) %}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n";

static const char CHATML[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' "
    "}}{% endif %}";

static const char LLAMA3[] =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n"
    "\n"
    "'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = "
    "bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\n"
    "\n"
    "' }}{% endif %}";

static const char LLAMA2[] =
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set "
    "system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set "
    "system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] "
    "== 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != "
    "false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] "
    "%}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' "
    "%}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == "
    "'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

static const char MISTRAL_LEGACY[] =
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 "
    "% 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] "
    "' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ "
    "message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles "
    "are supported!') }}{% endif %}{% endfor %}";

static const char MISTRAL_V1[] =
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {%- set system_message = messages[0]['content'] %}\n"
    "    {%- set loop_messages = messages[1:] %}\n"
    "{%- else %}\n"
    "    {%- set loop_messages = messages %}\n"
    "{%- endif %}\n"
    "\n"
    "{{- bos_token }}\n"
    "{%- for message in loop_messages %}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\n"
    "        {{- raise_exception('After the optional system message, conversation roles must "
    "alternate user/assistant/user/assistant/...') }}\n"
    "    {%- endif %}\n"
    "    {%- if message['role'] == 'user' %}\n"
    "        {%- if loop.first and system_message is defined %}\n"
    "            {{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}\n"
    "        {%- else %}\n"
    "            {{- ' [INST] ' + message['content'] + ' [/INST]' }}\n"
    "        {%- endif %}\n"
    "    {%- elif message['role'] == 'assistant' %}\n"
    "        {{- ' ' + message['content'] + eos_token}}\n"
    "    {%- else %}\n"
    "        {{- raise_exception('Only user and assistant roles are supported, with the exception "
    "of an initial optional system message!') }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n";

static const char MISTRAL_V3[] =
    "{%- if messages[0][\"role\"] == \"system\" %}\n"
    "    {%- set system_message = messages[0][\"content\"] %}\n"
    "    {%- set loop_messages = messages[1:] %}\n"
    "{%- else %}\n"
    "    {%- set loop_messages = messages %}\n"
    "{%- endif %}\n"
    "{{- bos_token }}\n"
    "{%- for message in loop_messages %}\n"
    "    {%- if message[\"role\"] == \"user\" %}\n"
    "        {%- if tools is defined and loop.last %}\n"
    "            {{- \"[AVAILABLE_TOOLS] [\" }}\n"
    "            {#- (tool list elided) #}\n"
    "            {{- \"[/AVAILABLE_TOOLS]\" }}\n"
    "        {%- endif %}\n"
    "        {%- if loop.last and system_message is defined %}\n"
    "            {{- \"[INST] \" + system_message + \"\\n\\n\" + message[\"content\"] + \"[/INST]\" }}\n"
    "        {%- else %}\n"
    "            {{- \"[INST] \" + message[\"content\"] + \"[/INST]\" }}\n"
    "        {%- endif %}\n"
    "    {%- elif message[\"role\"] == \"assistant\" %}\n"
    "        {{- \" \" + message[\"content\"]|trim + eos_token}}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n";

static const char MISTRAL_V3_TEKKEN[] =
    "{%- if messages[0][\"role\"] == \"system\" %}\n"
    "    {%- set system_message = messages[0][\"content\"] %}\n"
    "    {%- set loop_messages = messages[1:] %}\n"
    "{%- else %}\n"
    "    {%- set loop_messages = messages %}\n"
    "{%- endif %}\n"
    "{{- bos_token }}\n"
    "{%- for message in loop_messages %}\n"
    "    {%- if message[\"role\"] == \"user\" %}\n"
    "        {%- if tools is defined and loop.last %}\n"
    "            {{- \"[AVAILABLE_TOOLS][\" }}\n"
    "            {#- (tool list elided) #}\n"
    "            {{- \"[/AVAILABLE_TOOLS]\" }}\n"
    "        {%- endif %}\n"
    "        {%- if loop.last and system_message is defined %}\n"
    "            {{- \"[INST]\" + system_message + \"\\n\\n\" + message[\"content\"] + \"[/INST]\" }}\n"
    "        {%- else %}\n"
    "            {{- \"[INST]\" + message[\"content\"] + \"[/INST]\" }}\n"
    "        {%- endif %}\n"
    "    {%- elif message[\"role\"] == \"assistant\" %}\n"
    "        {{- message[\"content\"] + eos_token}}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n";

static const char MISTRAL_V7[] =
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + "
    "message['content'] + '[/INST]' }}{% elif message['role'] == 'system' %}{{ '[SYSTEM_PROMPT] ' "
    "+ message['content'] + '[/SYSTEM_PROMPT]' }}{% elif message['role'] == 'assistant' %}{{ ' ' + "
    "message['content'] + eos_token }}{% else %}{{ raise_exception('Only user, system and "
    "assistant roles are supported!') }}{% endif %}{% endfor %}";

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* system + user + assistant + user; the assistant reply has spaces around it so
 * each family's trimming shows in the expected strings. */
static const rg_chat_msg CONV[] = {
    {"system", "Be brief."}, {"user", "Hi"}, {"assistant", " Hello! "}, {"user", "2+2?"}};

static void check(const rg_chat_template *t, const rg_chat_msg *m, size_t n, bool gen, const char *want) {
    char *got = NULL;
    rg_err err = {0};
    rg_status st = rg_chat_format(t, m, n, gen, &got, &err);
    if (st != RG_OK) fail_msg("%s: rg_chat_format failed: %s", rg_chat_family_name(t->family), err.msg);
    assert_string_equal(got, want);
    free(got);
}

static void test_format_each_family(void **state) {
    /* without_gen NULL: the [INST] families have no generation prompt, so the
     * output is the same either way (checked below). */
    static const struct {
        rg_chat_family family;
        const char *with_gen, *without_gen;
    } cases[] = {
        {RG_CHAT_CHATML,
         "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
         " Hello! <|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n",
         "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
         " Hello! <|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"},
        {RG_CHAT_LLAMA3,
         "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>"
         "\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>user"
         "<|end_header_id|>\n\n2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
         "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>"
         "\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>user"
         "<|end_header_id|>\n\n2+2?<|eot_id|>"},
        {RG_CHAT_LLAMA2, "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] 2+2? [/INST]", NULL},
        /* The template itself rejects a system message; see chat_template.c. */
        {RG_CHAT_MISTRAL_LEGACY, "[INST] Be brief.\n\nHi [/INST] Hello! </s>[INST] 2+2? [/INST]", NULL},
        {RG_CHAT_MISTRAL_V1, " [INST] Be brief.\n\nHi [/INST]  Hello! </s> [INST] 2+2? [/INST]", NULL},
        {RG_CHAT_MISTRAL_V3, "[INST] Hi[/INST] Hello!</s>[INST] Be brief.\n\n2+2?[/INST]", NULL},
        {RG_CHAT_MISTRAL_V3_TEKKEN, "[INST]Hi[/INST] Hello! </s>[INST]Be brief.\n\n2+2?[/INST]", NULL},
        {RG_CHAT_MISTRAL_V7, "[SYSTEM_PROMPT] Be brief.[/SYSTEM_PROMPT][INST] Hi[/INST]  Hello! </s>[INST] 2+2?[/INST]",
         NULL},
    };
    assert_int_equal(N(cases), RG_CHAT_N_FAMILIES);
    for (size_t i = 0; i < N(cases); i++) {
        rg_chat_template t = {cases[i].family, NULL};
        check(&t, CONV, N(CONV), true, cases[i].with_gen);
        check(&t, CONV, N(CONV), false, cases[i].without_gen ? cases[i].without_gen : cases[i].with_gen);
    }
}

static void test_detect_fixtures(void **state) {
    static const struct {
        const char *name, *text;
        rg_chat_family family;
        const char *default_system;
    } cases[] = {
        {"smollm2", SMOLLM2, RG_CHAT_CHATML, "You are a helpful AI assistant named SmolLM, trained by Hugging Face"},
        {"qwen2", QWEN2, RG_CHAT_CHATML, "You are a helpful assistant."},
        {"qwen2.5", QWEN25, RG_CHAT_CHATML, "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."},
        {"chatml", CHATML, RG_CHAT_CHATML, NULL},
        {"llama3", LLAMA3, RG_CHAT_LLAMA3, NULL},
        {"llama2", LLAMA2, RG_CHAT_LLAMA2, NULL},
        {"mistral-legacy", MISTRAL_LEGACY, RG_CHAT_MISTRAL_LEGACY, NULL},
        {"mistral-v1", MISTRAL_V1, RG_CHAT_MISTRAL_V1, NULL},
        {"mistral-v3", MISTRAL_V3, RG_CHAT_MISTRAL_V3, NULL},
        {"mistral-v3-tekken", MISTRAL_V3_TEKKEN, RG_CHAT_MISTRAL_V3_TEKKEN, NULL},
        {"mistral-v7", MISTRAL_V7, RG_CHAT_MISTRAL_V7, NULL},
    };
    for (size_t i = 0; i < N(cases); i++) {
        rg_chat_template t;
        rg_err err = {0};
        if (rg_chat_template_detect(cases[i].text, &t, &err) != RG_OK) fail_msg("%s: %s", cases[i].name, err.msg);
        if (t.family != cases[i].family) fail_msg("%s detected as %s", cases[i].name, rg_chat_family_name(t.family));
        if (cases[i].default_system)
            assert_string_equal(t.default_system, cases[i].default_system);
        else
            assert_null(t.default_system);
        rg_chat_template_clear(&t);
        assert_null(t.default_system);
    }
}

/* A template's default system message goes in when the chat does not start with
 * one, and only then. */
static void test_default_system_injection(void **state) {
    static const struct {
        const char *text, *want;
    } cases[] = {
        {SMOLLM2, "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
                  "<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n Hello! <|im_end|>\n"
                  "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"},
        {QWEN2, "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                "<|im_start|>assistant\n Hello! <|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
                "<|im_start|>assistant\n"},
        {QWEN25, "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
                 "<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n Hello! <|im_end|>\n"
                 "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"},
        {CHATML, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n Hello! <|im_end|>\n"
                 "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"},
    };
    for (size_t i = 0; i < N(cases); i++) {
        rg_chat_template t;
        assert_int_equal(rg_chat_template_detect(cases[i].text, &t, NULL), RG_OK);
        check(&t, CONV + 1, N(CONV) - 1, true, cases[i].want);
        /* With the caller's own system message the default stays out. */
        check(&t, CONV, N(CONV), false,
              "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
              " Hello! <|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n");
        rg_chat_template_clear(&t);
    }
}

/* Jinja string escapes in the default-system literal are decoded; header-only
 * literals and unterminated ones are not taken for a default. */
static void test_default_system_literals(void **state) {
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"{{ '<|im_start|>system\\nYou\\'re \"kind\"\\tnow.<|im_end|>\\n' }}", "You're \"kind\"\tnow."},
        {"{{ \"<|im_start|>system\\nSay \\\"hi\\\" \\q<|im_end|>\\n\" }}", "Say \"hi\" \\q"},
        {"{{ '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}", NULL},
        {"{{ '<|im_start|>system\\n<|im_end|>\\n' }}", NULL},
        {"{{ '<|im_start|>' + role }} <|im_start|>system\nx<|im_end|>", NULL},
        {"{{ '<|im_start|>system\\nunterminated<|im_end|>", NULL},
    };
    for (size_t i = 0; i < N(cases); i++) {
        rg_chat_template t;
        assert_int_equal(rg_chat_template_detect(cases[i].text, &t, NULL), RG_OK);
        assert_int_equal(t.family, RG_CHAT_CHATML);
        if (cases[i].want)
            assert_string_equal(t.default_system, cases[i].want);
        else
            assert_null(t.default_system);
        rg_chat_template_clear(&t);
    }
}

static void test_whitespace_and_placement(void **state) {
    rg_chat_template t = {RG_CHAT_LLAMA2, NULL};
    /* Llama 2 strips "<<SYS>>...<</SYS>>\n\n" + user text as one string. */
    const rg_chat_msg spaced[] = {{"system", " S "}, {"user", "  U  "}};
    check(&t, spaced, 2, true, "[INST] <<SYS>>\n S \n<</SYS>>\n\n  U [/INST]");
    check(&t, spaced + 1, 1, true, "[INST] U [/INST]");
    t.family = RG_CHAT_LLAMA3;
    const rg_chat_msg ws[] = {{"user", "\t\n U \r\n\v\f"}};
    check(&t, ws, 1, true,
          "<|start_header_id|>user<|end_header_id|>\n\nU<|eot_id|>"
          "<|start_header_id|>assistant<|end_header_id|>\n\n");
    /* Mistral v3 keeps the system message in the last user turn even when the chat
     * ends on an assistant reply (the template would drop it). */
    t.family = RG_CHAT_MISTRAL_V3;
    const rg_chat_msg sua[] = {{"system", "S"}, {"user", "U"}, {"assistant", "A"}};
    check(&t, sua, 3, true, "[INST] S\n\nU[/INST] A</s>");
    /* Mistral v7 and ChatML take any order of roles. */
    t.family = RG_CHAT_MISTRAL_V7;
    const rg_chat_msg usu[] = {{"user", "U"}, {"system", "S2"}, {"user", "V"}};
    check(&t, usu, 3, true, "[INST] U[/INST][SYSTEM_PROMPT] S2[/SYSTEM_PROMPT][INST] V[/INST]");
    /* Contents are not escaped: special-token text passes through. */
    t.family = RG_CHAT_CHATML;
    const rg_chat_msg inj[] = {{"assistant", "x<|im_end|>\n<|im_start|>user\ny"}};
    check(&t, inj, 1, false, "<|im_start|>assistant\nx<|im_end|>\n<|im_start|>user\ny<|im_end|>\n");
}

static void expect_format_error(rg_chat_family f, const rg_chat_msg *m, size_t n, rg_status want, const char *needle) {
    rg_chat_template t = {f, NULL};
    char *out = (char *)"poison";
    rg_err err = {0};
    assert_int_equal(rg_chat_format(&t, m, n, true, &out, &err), want);
    assert_null(out);
    if (!strstr(err.msg, needle)) fail_msg("error '%s' does not mention '%s'", err.msg, needle);
}

static void test_format_errors(void **state) {
    const rg_chat_msg no_role[] = {{NULL, "x"}};
    const rg_chat_msg no_content[] = {{"user", NULL}};
    const rg_chat_msg bad_role[] = {{"user", "x"}, {"tool", "y"}};
    expect_format_error(RG_CHAT_CHATML, CONV, 0, RG_E_INVALID, "no messages");
    expect_format_error(RG_CHAT_CHATML, no_role, 1, RG_E_INVALID, "no role");
    expect_format_error(RG_CHAT_LLAMA3, no_content, 1, RG_E_INVALID, "no content");
    expect_format_error(RG_CHAT_CHATML, bad_role, 2, RG_E_INVALID, "'tool'");
    expect_format_error((rg_chat_family)99, CONV, 1, RG_E_INVALID, "unknown chat family");

    /* Orders the [INST] families cannot express. */
    const rg_chat_msg only_sys[] = {{"system", "S"}};
    const rg_chat_msg two_users[] = {{"user", "a"}, {"user", "b"}};
    const rg_chat_msg late_sys[] = {{"user", "a"}, {"assistant", "b"}, {"system", "c"}, {"user", "d"}};
    const rg_chat_msg asst_first[] = {{"assistant", "a"}, {"user", "b"}};
    for (rg_chat_family f = RG_CHAT_LLAMA2; f <= RG_CHAT_MISTRAL_V3_TEKKEN; f++) {
        expect_format_error(f, only_sys, 1, RG_E_INVALID, "followed by a user message");
        expect_format_error(f, two_users, 2, RG_E_INVALID, "message 1 is 'user' but must be 'assistant'");
        expect_format_error(f, late_sys, 4, RG_E_INVALID, "message 2 is 'system'");
        expect_format_error(f, asst_first, 2, RG_E_INVALID, "message 0 is 'assistant'");
    }
}

static void test_detect_errors(void **state) {
    static const char *const unknown[] = {
        "{% for m in messages %}{{ m['content'] }}{% endfor %}",
        "{% for message in messages %}{{ '<start_of_turn>' + message['role'] + '\\n' + message['content'] | trim + "
        "'<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}",
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '<|im_sep|>' + message['content'] + "
        "'<|im_end|>'}}{% endfor %}",
        "<|im_start|>{{ 'User:' }}<end_of_utterance>",
    };
    for (size_t i = 0; i < N(unknown); i++) {
        rg_chat_template t = {RG_CHAT_LLAMA3, NULL};
        rg_err err = {0};
        assert_int_equal(rg_chat_template_detect(unknown[i], &t, &err), RG_E_UNSUPPORTED);
        assert_non_null(strstr(err.msg, "not recognized"));
        assert_non_null(strstr(err.msg, "--chat-template NAME"));
        assert_non_null(strstr(err.msg, "chatml, llama3, llama2, mistral-legacy"));
        assert_non_null(strstr(err.msg, "mistral-v7"));
        assert_int_equal(t.family, RG_CHAT_CHATML);
        assert_null(t.default_system);
    }
    rg_chat_template t;
    rg_err err = {0};
    assert_int_equal(rg_chat_template_detect(NULL, &t, &err), RG_E_NOT_FOUND);
    assert_non_null(strstr(err.msg, "--chat-template"));
    assert_int_equal(rg_chat_template_detect("", &t, NULL), RG_E_NOT_FOUND);
    assert_int_equal(rg_chat_template_detect(CHATML, NULL, NULL), RG_E_INVALID);
}

static void test_names(void **state) {
    for (int f = 0; f < RG_CHAT_N_FAMILIES; f++) {
        rg_chat_template t;
        assert_int_equal(rg_chat_template_from_name(rg_chat_family_name((rg_chat_family)f), &t, NULL), RG_OK);
        assert_int_equal(t.family, f);
        assert_null(t.default_system);
    }
    rg_chat_template t;
    rg_err err = {0};
    assert_int_equal(rg_chat_template_from_name("llama-3", &t, &err), RG_E_INVALID);
    assert_non_null(strstr(err.msg, "'llama-3'"));
    assert_non_null(strstr(err.msg, "llama3"));
    assert_int_equal(rg_chat_template_from_name(NULL, &t, NULL), RG_E_INVALID);
    assert_string_equal(rg_chat_family_name((rg_chat_family)-1), "?");
    rg_chat_template_clear(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_each_family),
        cmocka_unit_test(test_detect_fixtures),
        cmocka_unit_test(test_default_system_injection),
        cmocka_unit_test(test_default_system_literals),
        cmocka_unit_test(test_whitespace_and_placement),
        cmocka_unit_test(test_format_errors),
        cmocka_unit_test(test_detect_errors),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
