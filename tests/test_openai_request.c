/* test_openai_request.c — parsing OpenAI request bodies (src/server/openai_request.c):
 * fields and OpenAI's defaults, the accepted shapes of prompt/messages/stop, and
 * a refusal naming the field for each kind of bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "server/openai_request.h"

static rg_oai_request parse_ok(const char *body, bool chat) {
    rg_oai_request r;
    rg_err err = {0};
    if (rg_oai_parse(body, strlen(body), chat, &r, &err)) fail_msg("%s: %s", body, err.msg);
    return r;
}

static void test_completion_fields(void **state) {
    rg_oai_request r = parse_ok("{\"model\":\"m\",\"prompt\":\"hi\"}", false);
    assert_string_equal(r.prompt, "hi");
    assert_string_equal(r.model, "m");
    /* OpenAI's defaults, not the CLI's */
    assert_true(r.sampling.temperature == 1.0f && r.sampling.top_p == 1.0f);
    assert_int_equal(r.sampling.top_k, 0);
    assert_true(r.sampling.min_p == 0.0f);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.max_tokens, 0);
    assert_false(r.stream || r.seed_given || r.ignore_eos);
    rg_oai_request_clear(&r);

    r = parse_ok("{\"prompt\":[\"one\"],\"max_tokens\":7,\"n\":3,\"temperature\":0,\"top_p\":0.5,\"top_k\":9,"
                 "\"min_p\":0.1,\"seed\":42,\"stop\":[\"a\",\"\",\"bc\"],\"stream\":true,"
                 "\"stream_options\":{\"include_usage\":true},\"ignore_eos\":true,\"repetition_penalty\":1.2}",
                 false);
    assert_string_equal(r.prompt, "one");
    assert_int_equal(r.max_tokens, 7);
    assert_int_equal(r.n, 3);
    assert_true(r.sampling.temperature == 0 && r.sampling.top_p == 0.5f && r.sampling.min_p == 0.1f);
    assert_int_equal(r.sampling.top_k, 9);
    assert_true(r.seed_given && r.sampling.seed == 42);
    assert_int_equal(r.n_stop, 2); /* the empty stop string is dropped */
    assert_string_equal(r.stop[1], "bc");
    assert_true(r.stream && r.include_usage && r.ignore_eos);
    assert_true(r.sampling.repeat_penalty == 1.2f);
    rg_request_params p = rg_oai_request_params(&r);
    assert_int_equal(p.n_stop, 2);
    assert_int_equal(p.max_tokens, 7);
    rg_oai_request_clear(&r);

    r = parse_ok("{\"prompt\":[1,2,3],\"stop\":\"x\",\"max_completion_tokens\":5}", false);
    assert_int_equal(r.n_prompt_ids, 3);
    assert_int_equal(r.prompt_ids[2], 3);
    assert_int_equal(r.n_stop, 1);
    assert_int_equal(r.max_tokens, 5);
    rg_oai_request_clear(&r);
}

static void test_chat_messages(void **state) {
    rg_oai_request r = parse_ok("{\"messages\":[{\"role\":\"developer\",\"content\":\"be brief\"},"
                                "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
                                "{\"type\":\"text\",\"text\":\"b\"}]}]}",
                                true);
    assert_int_equal(r.n_msgs, 2);
    assert_string_equal(r.msgs[0].role, "system"); /* developer is the newer name */
    assert_string_equal(r.msgs[1].content, "ab");
    rg_oai_request_clear(&r);
}

static void test_refusals(void **state) {
    const struct {
        const char *body;
        bool chat;
        const char *param;
    } cases[] = {
        {"{not json", false, ""},
        {"[1]", false, ""},
        {"{}", false, "prompt"},
        {"{\"prompt\":7}", false, "prompt"},
        {"{\"prompt\":[1,-2]}", false, "prompt"},
        {"{\"prompt\":[1.5]}", false, "prompt"},
        {"{\"prompt\":[\"a\",\"b\"]}", false, "prompt"},
        {"{\"prompt\":\"x\",\"temperature\":2.5}", false, "temperature"},
        {"{\"prompt\":\"x\",\"max_tokens\":0}", false, "max_tokens"},
        {"{\"prompt\":\"x\",\"n\":17}", false, "n"},
        {"{\"prompt\":\"x\",\"n\":1.5}", false, "n"},
        {"{\"prompt\":\"x\",\"top_p\":\"high\"}", false, "top_p"},
        {"{\"prompt\":\"x\",\"stream\":1}", false, "stream"},
        {"{\"prompt\":\"x\",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", false, "stop"},
        {"{\"prompt\":\"x\",\"stop\":[1]}", false, "stop"},
        {"{\"messages\":{}}", true, "messages"},
        {"{\"messages\":[]}", true, "messages"},
        {"{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}", true, "messages"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":null}]}", true, "messages"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}", true, "messages"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        rg_oai_request r;
        rg_err err = {0};
        rg_status st = rg_oai_parse(cases[i].body, strlen(cases[i].body), cases[i].chat, &r, &err);
        if (st != RG_E_INVALID) fail_msg("%s: status %d, want RG_E_INVALID", cases[i].body, st);
        if (!err.msg[0]) fail_msg("%s: no message", cases[i].body);
        if (strcmp(r.param, cases[i].param))
            fail_msg("%s: param '%s', want '%s'", cases[i].body, r.param, cases[i].param);
        assert_null(r.prompt);
        assert_null(r.msgs);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_completion_fields),
        cmocka_unit_test(test_chat_messages),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
