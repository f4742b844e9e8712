/* fuzz_request.c — libFuzzer target for the OpenAI request bodies the server
 * parses (src/server/openai_request.c).
 *
 * The first input byte picks the endpoint (completions or chat) and a chat
 * template family; the rest is the JSON body. Each run parses; a body that parses
 * is turned into engine parameters and a request, and a chat body is formatted
 * with the template, as the server would before tokenizing. Parse errors must
 * name a message and leave nothing allocated (the sanitizers check both). */
#include <stdlib.h>
#include <string.h>

#include "engine/request.h"
#include "server/openai_request.h"
#include "tok/chat_template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 65536) return 0;
    bool chat = data[0] & 1;
    rg_oai_request r;
    rg_err err = {0};
    rg_status st = rg_oai_parse((const char *)data + 1, size - 1, chat, &r, &err);
    if (st) {
        if (!err.msg[0]) abort(); /* every refusal says why */
        return 0;
    }
    if (r.n < 1 || r.n > 16 || r.n_stop > RG_OAI_MAX_STOP || (chat && !r.n_msgs) ||
        (!chat && !r.prompt && !r.prompt_ids))
        abort(); /* parse promised these */
    if (chat) {
        rg_chat_template t = {(rg_chat_family)((data[0] >> 1) % RG_CHAT_N_FAMILIES), NULL};
        char *text = NULL;
        if (!rg_chat_format(&t, r.msgs, r.n_msgs, true, &text, &err) && !text) abort();
        free(text);
    }
    rg_request_params p = rg_oai_request_params(&r);
    int32_t prompt[2] = {1, 2};
    rg_request *req;
    if (!rg_request_create(prompt, 2, &p, NULL, NULL, &req, &err)) rg_request_free(req);
    rg_oai_request_clear(&r);
    return 0;
}
