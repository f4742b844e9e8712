/* openai_request.c — OpenAI request bodies into rg_oai_request, with cJSON. */
#include "server/openai_request.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_N 16
#define MAX_MESSAGES 4096

static rg_status bad(rg_oai_request *r, rg_err *err, const char *param, const char *fmt, const char *detail) {
    rg_oai_request_clear(r);
    snprintf(r->param, sizeof r->param, "%s", param ? param : "");
    return rg_fail(err, RG_E_INVALID, fmt, detail ? detail : "");
}

/* A number field within [lo, hi]; absent or null leaves *out. */
static bool get_num(const cJSON *o, const char *key, double lo, double hi, double *out, bool *bad_value) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return false;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi) {
        *bad_value = true;
        return false;
    }
    *out = v->valuedouble;
    return true;
}

static bool get_bool(const cJSON *o, const char *key, bool *out, bool *bad_value) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return false;
    if (!cJSON_IsBool(v)) {
        *bad_value = true;
        return false;
    }
    *out = cJSON_IsTrue(v);
    return true;
}

/* Message content: a string, or an array of {"type":"text","text":...} parts
 * joined. NULL when neither (or out of memory). */
static char *content_text(const cJSON *c) {
    if (cJSON_IsString(c)) return strdup(c->valuestring);
    if (!cJSON_IsArray(c)) return NULL;
    size_t len = 0;
    const cJSON *part;
    cJSON_ArrayForEach(part, c) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") || !cJSON_IsString(text)) return NULL;
        len += strlen(text->valuestring);
    }
    char *out = malloc(len + 1), *p = out;
    if (!out) return NULL;
    cJSON_ArrayForEach(part, c) {
        const char *t = cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring;
        size_t n = strlen(t);
        memcpy(p, t, n);
        p += n;
    }
    *p = 0;
    return out;
}

static rg_status parse_messages(const cJSON *root, rg_oai_request *r, rg_err *err) {
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!cJSON_IsArray(msgs)) return bad(r, err, "messages", "'messages' must be an array of messages%s", NULL);
    int n = cJSON_GetArraySize(msgs);
    if (n < 1 || n > MAX_MESSAGES) return bad(r, err, "messages", "'messages' must hold 1 to 4096 messages%s", NULL);
    r->msgs = calloc((size_t)n, sizeof *r->msgs);
    if (!r->msgs) return rg_fail(err, RG_E_NOMEM, "out of memory");
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsString(role) || (strcmp(role->valuestring, "system") && strcmp(role->valuestring, "user") &&
                                      strcmp(role->valuestring, "assistant") && strcmp(role->valuestring, "developer")))
            return bad(r, err, "messages", "each message needs a role: system, developer, user or assistant%s", NULL);
        /* OpenAI's "developer" role is the newer name of "system" */
        const char *role_name = strcmp(role->valuestring, "developer") ? role->valuestring : "system";
        char *text = content_text(content);
        if (!text) return bad(r, err, "messages", "each message needs a content string or text parts%s", NULL);
        char *role_copy = strdup(role_name);
        r->msgs[r->n_msgs++] = (rg_chat_msg){role_copy, text};
        if (!role_copy) {
            rg_oai_request_clear(r);
            return rg_fail(err, RG_E_NOMEM, "out of memory");
        }
    }
    return RG_OK;
}

static rg_status parse_prompt(const cJSON *root, rg_oai_request *r, rg_err *err) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    if (cJSON_IsString(p)) {
        r->prompt = strdup(p->valuestring);
        return r->prompt ? RG_OK : rg_fail(err, RG_E_NOMEM, "out of memory");
    }
    if (cJSON_IsArray(p)) {
        int n = cJSON_GetArraySize(p);
        const cJSON *first = cJSON_GetArrayItem(p, 0);
        if (n == 1 && cJSON_IsString(first)) { /* ["text"]: one prompt */
            r->prompt = strdup(first->valuestring);
            return r->prompt ? RG_OK : rg_fail(err, RG_E_NOMEM, "out of memory");
        }
        if (n >= 1 && cJSON_IsNumber(first)) { /* token ids */
            r->prompt_ids = malloc((size_t)n * sizeof *r->prompt_ids);
            if (!r->prompt_ids) return rg_fail(err, RG_E_NOMEM, "out of memory");
            const cJSON *id;
            cJSON_ArrayForEach(id, p) {
                if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > INT32_MAX ||
                    id->valuedouble != floor(id->valuedouble))
                    return bad(r, err, "prompt", "'prompt' token ids must be non-negative integers%s", NULL);
                r->prompt_ids[r->n_prompt_ids++] = (int32_t)id->valuedouble;
            }
            return RG_OK;
        }
        return bad(r, err, "prompt", "'prompt' must be a string, an array of one string, or token ids%s", NULL);
    }
    return bad(r, err, "prompt", "'prompt' is required (a string or token ids)%s", NULL);
}

static rg_status parse_stop(const cJSON *root, rg_oai_request *r, rg_err *err) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "stop");
    if (!s || cJSON_IsNull(s)) return RG_OK;
    if (cJSON_IsString(s)) {
        if (!s->valuestring[0]) return RG_OK;
        if (!(r->stop[r->n_stop++] = strdup(s->valuestring))) return rg_fail(err, RG_E_NOMEM, "out of memory");
        return RG_OK;
    }
    if (!cJSON_IsArray(s) || cJSON_GetArraySize(s) > RG_OAI_MAX_STOP)
        return bad(r, err, "stop", "'stop' must be a string or an array of up to 4 strings%s", NULL);
    const cJSON *e;
    cJSON_ArrayForEach(e, s) {
        if (!cJSON_IsString(e))
            return bad(r, err, "stop", "'stop' must be a string or an array of up to 4 strings%s", NULL);
        if (!e->valuestring[0]) continue;
        if (!(r->stop[r->n_stop++] = strdup(e->valuestring))) return rg_fail(err, RG_E_NOMEM, "out of memory");
    }
    return RG_OK;
}

rg_status rg_oai_parse(const char *body, size_t len, bool chat, rg_oai_request *r, rg_err *err) {
    memset(r, 0, sizeof *r);
    r->chat = chat;
    r->n = 1;
    r->sampling = rg_sampling_default();
    r->sampling.temperature = 1.0f;
    r->sampling.top_k = 0;
    r->sampling.top_p = 1.0f;
    r->sampling.min_p = 0.0f;
    r->sampling.seed = 0;
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root) return bad(r, err, NULL, "the body is not valid JSON%s", NULL);
    rg_status st = RG_OK;
    if (!cJSON_IsObject(root)) {
        st = bad(r, err, NULL, "the body must be a JSON object%s", NULL);
        goto done;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (cJSON_IsString(model) && !(r->model = strdup(model->valuestring))) {
        st = rg_fail(err, RG_E_NOMEM, "out of memory");
        goto done;
    }
    st = chat ? parse_messages(root, r, err) : parse_prompt(root, r, err);
    if (!st) st = parse_stop(root, r, err);
    if (st) goto done;
    bool badv = false;
    double v;
    const char *field = NULL;
#define NUM(key, lo, hi, assign)                                                                                       \
    do {                                                                                                               \
        if (get_num(root, key, lo, hi, &v, &badv)) assign;                                                             \
        if (badv && !field) field = key;                                                                               \
    } while (0)
    NUM("max_tokens", 1, 1 << 24, r->max_tokens = (int32_t)v);
    NUM("max_completion_tokens", 1, 1 << 24, r->max_tokens = (int32_t)v);
    NUM("n", 1, MAX_N, r->n = (int32_t)v);
    NUM("temperature", 0, 2, r->sampling.temperature = (float)v);
    NUM("top_p", 0, 1, r->sampling.top_p = v > 0 ? (float)v : 1e-6f);
    NUM("top_k", -1, 1 << 20, r->sampling.top_k = (int32_t)v);
    NUM("min_p", 0, 1, r->sampling.min_p = (float)v);
    NUM("frequency_penalty", -2, 2, r->sampling.frequency_penalty = (float)v);
    NUM("presence_penalty", -2, 2, r->sampling.presence_penalty = (float)v);
    NUM("repetition_penalty", 1e-3, 10, r->sampling.repeat_penalty = (float)v);
    NUM("repeat_penalty", 1e-3, 10, r->sampling.repeat_penalty = (float)v);
    NUM("seed", -9.2e18, 9.2e18, (r->sampling.seed = (uint64_t)(int64_t)v, r->seed_given = true));
#undef NUM
    if (!field && get_bool(root, "stream", &r->stream, &badv) == false && badv) field = "stream";
    if (!field && get_bool(root, "ignore_eos", &r->ignore_eos, &badv) == false && badv) field = "ignore_eos";
    if (field) {
        char msg[96];
        snprintf(msg, sizeof msg, "'%s'", field);
        st = bad(r, err, field, "%s is out of range or of the wrong type", msg);
        goto done;
    }
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    if (cJSON_IsObject(so)) get_bool(so, "include_usage", &r->include_usage, &badv);
    const cJSON *n_json = cJSON_GetObjectItemCaseSensitive(root, "n");
    if (cJSON_IsNumber(n_json) && n_json->valuedouble != floor(n_json->valuedouble))
        st = bad(r, err, "n", "'n' must be an integer%s", NULL);
done:
    cJSON_Delete(root);
    return st;
}

void rg_oai_request_clear(rg_oai_request *r) {
    free(r->model);
    free(r->prompt);
    free(r->prompt_ids);
    for (size_t i = 0; i < r->n_msgs; i++) {
        free((void *)r->msgs[i].role);
        free((void *)r->msgs[i].content);
    }
    free(r->msgs);
    for (int32_t i = 0; i < r->n_stop; i++)
        free(r->stop[i]);
    char param[sizeof r->param];
    memcpy(param, r->param, sizeof param);
    bool chat = r->chat;
    memset(r, 0, sizeof *r);
    memcpy(r->param, param, sizeof param);
    r->chat = chat;
}

rg_request_params rg_oai_request_params(const rg_oai_request *r) {
    return (rg_request_params){
        .sampling = r->sampling,
        .max_tokens = r->max_tokens,
        .n = r->n,
        .ignore_eos = r->ignore_eos,
        .stop = (const char *const *)r->stop,
        .n_stop = r->n_stop,
    };
}
