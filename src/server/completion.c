/* completion.c — one generation request over HTTP: parse, tokenize, submit, then
 * either wait for the whole answer (JSON) or stream it (server-sent events).
 *
 * A `job` is shared by the connection's thread and the engine thread, under its
 * own mutex. The engine thread appends each sample's released text and finish
 * reason (job_on_output); the connection thread turns what is new into OpenAI
 * chunks. The job is reference-counted: one reference for the engine (dropped
 * with the request's last output) and one for the connection (dropped when the
 * response is done or the client is gone), so whichever side ends last frees it.
 * While waiting, the connection thread checks every 100 ms whether the client
 * hung up, and cancels the request if so. */
#include <cjson/cJSON.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "server/openai_request.h"
#include "server/server_internal.h"

typedef struct choice {
    char *text;
    size_t len, cap, sent;
    rg_finish_reason finish;
    bool finish_sent;
    int64_t n_generated;
    double t_last; /* time of the last token, for inter-token latency */
} choice;

typedef struct job {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    rg_server *srv;
    rg_request *req;
    rg_oai_request oai;
    char id[48];
    long created;
    int fd; /* the client socket, to notice a hang-up */
    choice *ch;
    int32_t n;
    bool done, oom, any_token;
    int64_t n_prompt, n_cached;
    double t_submit;
    char error[512];
    /* streaming: the SSE bytes built and not yet handed to MHD */
    char *out;
    size_t out_len, out_cap, out_pos;
    bool stream_started, stream_finished;
} job;

static void job_release(job *j) {
    pthread_mutex_lock(&j->mu);
    bool last = --j->refs == 0;
    pthread_mutex_unlock(&j->mu);
    if (!last) return;
    rg_request_free(j->req);
    rg_oai_request_clear(&j->oai);
    for (int32_t i = 0; j->ch && i < j->n; i++)
        free(j->ch[i].text);
    free(j->ch);
    free(j->out);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

static bool grow(char **p, size_t *cap, size_t need) {
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    char *q = realloc(*p, c);
    if (!q) return false;
    *p = q, *cap = c;
    return true;
}

/* Engine thread: record what the scheduler released. */
static void job_on_output(void *user, const rg_output *o) {
    job *j = user;
    rg_metrics *met = &j->srv->metrics;
    double now = rg_now_s();
    pthread_mutex_lock(&j->mu);
    choice *c = &j->ch[o->index];
    if (o->text_len) {
        if (grow(&c->text, &c->cap, c->len + o->text_len + 1)) {
            memcpy(c->text + c->len, o->text, o->text_len);
            c->len += o->text_len;
            c->text[c->len] = 0;
        } else {
            j->oom = true;
        }
    }
    if (o->token >= 0) {
        if (!j->any_token)
            rg_metrics_observe_ttft(met, now - j->t_submit);
        else if (c->t_last > 0)
            rg_metrics_observe_itl(met, now - c->t_last);
        j->any_token = true;
        c->t_last = now;
        rg_metrics_token(met, now);
    }
    c->n_generated = o->n_generated;
    j->n_prompt = o->n_prompt;
    j->n_cached = o->n_cached;
    if (o->finish) c->finish = o->finish;
    if (o->error) snprintf(j->error, sizeof j->error, "%s", o->error);
    bool done = o->done;
    if (done) {
        j->done = true;
        int64_t n_gen = 0;
        rg_finish_reason worst = RG_FINISH_STOP;
        for (int32_t i = 0; i < j->n; i++) {
            n_gen += j->ch[i].n_generated;
            if (j->ch[i].finish == RG_FINISH_ERROR || j->ch[i].finish == RG_FINISH_CANCELLED) worst = j->ch[i].finish;
        }
        rg_metrics_request_done(met, worst, now - j->t_submit, j->n_prompt, n_gen);
    }
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    if (done) job_release(j); /* the engine's reference: it never touches the request again */
}

static bool client_gone(int fd) {
    if (fd < 0) return false;
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* Wait (mu held) up to 100 ms for the engine. */
static void wait_a_little(job *j) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 100 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&j->cv, &j->mu, &ts);
}

static const char *finish_name(rg_finish_reason f) {
    return f == RG_FINISH_LENGTH ? "length" : f == RG_FINISH_ERROR ? "error" : "stop";
}

static cJSON *usage_json(const job *j) {
    int64_t n_gen = 0;
    for (int32_t i = 0; i < j->n; i++)
        n_gen += j->ch[i].n_generated;
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", (double)j->n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", (double)n_gen);
    cJSON_AddNumberToObject(u, "total_tokens", (double)(j->n_prompt + n_gen));
    cJSON *details = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(details, "cached_tokens", (double)j->n_cached);
    return u;
}

static cJSON *response_base(const job *j, const char *object) {
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "id", j->id);
    cJSON_AddStringToObject(r, "object", object);
    cJSON_AddNumberToObject(r, "created", (double)j->created);
    cJSON_AddStringToObject(r, "model", j->srv->model_name);
    return r;
}

/* The whole answer, once done. */
static char *full_response(const job *j) {
    bool chat = j->oai.chat;
    cJSON *r = response_base(j, chat ? "chat.completion" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(r, "choices");
    for (int32_t i = 0; i < j->n; i++) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddNumberToObject(c, "index", i);
        const char *text = j->ch[i].text ? j->ch[i].text : "";
        if (chat) {
            cJSON *m = cJSON_AddObjectToObject(c, "message");
            cJSON_AddStringToObject(m, "role", "assistant");
            cJSON_AddStringToObject(m, "content", text);
        } else {
            cJSON_AddStringToObject(c, "text", text);
        }
        cJSON_AddNullToObject(c, "logprobs");
        cJSON_AddStringToObject(c, "finish_reason", finish_name(j->ch[i].finish));
        cJSON_AddItemToArray(choices, c);
    }
    cJSON_AddItemToObject(r, "usage", usage_json(j));
    char *s = cJSON_PrintUnformatted(r);
    cJSON_Delete(r);
    return s;
}

static void out_event(job *j, cJSON *obj) {
    char *s = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    size_t n = s ? strlen(s) : 0;
    if (!s || !grow(&j->out, &j->out_cap, j->out_len + n + 9)) {
        j->oom = true;
    } else {
        memcpy(j->out + j->out_len, "data: ", 6);
        memcpy(j->out + j->out_len + 6, s, n);
        memcpy(j->out + j->out_len + 6 + n, "\n\n", 2);
        j->out_len += n + 8;
    }
    cJSON_free(s);
}

/* One streamed chunk for choice i: text (may be NULL), role (chat's first chunk),
 * finish reason (NULL while running). */
static cJSON *chunk(const job *j, int32_t i, const char *text, size_t len, bool role, const char *finish) {
    bool chat = j->oai.chat;
    cJSON *r = response_base(j, chat ? "chat.completion.chunk" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(r, "choices");
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", i);
    char *t = malloc(len + 1);
    if (t) {
        memcpy(t, text ? text : "", len);
        t[len] = 0;
    }
    if (chat) {
        cJSON *d = cJSON_AddObjectToObject(c, "delta");
        if (role) cJSON_AddStringToObject(d, "role", "assistant");
        if (text || role) cJSON_AddStringToObject(d, "content", t ? t : "");
    } else {
        cJSON_AddStringToObject(c, "text", t ? t : "");
    }
    free(t);
    cJSON_AddNullToObject(c, "logprobs");
    if (finish)
        cJSON_AddStringToObject(c, "finish_reason", finish);
    else
        cJSON_AddNullToObject(c, "finish_reason");
    cJSON_AddItemToArray(choices, c);
    return r;
}

static bool has_news(const job *j) {
    if (j->done || !j->stream_started) return true;
    for (int32_t i = 0; i < j->n; i++)
        if (j->ch[i].sent < j->ch[i].len || (j->ch[i].finish && !j->ch[i].finish_sent)) return true;
    return false;
}

/* Turn what is new into SSE events (mu held). */
static void build_events(job *j) {
    if (!j->stream_started) {
        j->stream_started = true;
        if (j->oai.chat)
            for (int32_t i = 0; i < j->n; i++)
                out_event(j, chunk(j, i, NULL, 0, true, NULL));
    }
    bool all_finished = true;
    for (int32_t i = 0; i < j->n; i++) {
        choice *c = &j->ch[i];
        if (c->sent < c->len) {
            out_event(j, chunk(j, i, c->text + c->sent, c->len - c->sent, false, NULL));
            c->sent = c->len;
        }
        if (c->finish && !c->finish_sent) {
            if (c->finish == RG_FINISH_ERROR) {
                cJSON *e = cJSON_CreateObject(), *o = cJSON_AddObjectToObject(e, "error");
                cJSON_AddStringToObject(o, "message", j->error[0] ? j->error : "generation failed");
                cJSON_AddStringToObject(o, "type", "server_error");
                out_event(j, e);
            }
            out_event(j, chunk(j, i, NULL, 0, false, finish_name(c->finish)));
            c->finish_sent = true;
        }
        all_finished &= c->finish_sent;
    }
    if (j->done && all_finished) {
        if (j->oai.include_usage) {
            cJSON *r = response_base(j, j->oai.chat ? "chat.completion.chunk" : "text_completion");
            cJSON_AddArrayToObject(r, "choices");
            cJSON_AddItemToObject(r, "usage", usage_json(j));
            out_event(j, r);
        }
        if (grow(&j->out, &j->out_cap, j->out_len + 14)) {
            memcpy(j->out + j->out_len, "data: [DONE]\n\n", 14);
            j->out_len += 14;
        }
        j->stream_finished = true;
    }
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    job *j = cls;
    for (;;) {
        if (j->out_pos < j->out_len) {
            size_t n = j->out_len - j->out_pos < max ? j->out_len - j->out_pos : max;
            memcpy(buf, j->out + j->out_pos, n);
            j->out_pos += n;
            return (ssize_t)n;
        }
        if (j->stream_finished || j->oom)
            return j->oom ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
        j->out_len = j->out_pos = 0;
        pthread_mutex_lock(&j->mu);
        while (!has_news(j)) {
            if (atomic_load(&j->srv->stopping) || client_gone(j->fd)) {
                pthread_mutex_unlock(&j->mu);
                return MHD_CONTENT_READER_END_WITH_ERROR; /* stream_free cancels */
            }
            wait_a_little(j);
        }
        build_events(j);
        pthread_mutex_unlock(&j->mu);
    }
}

/* MHD is done with the streamed response: finished, or the client went away. */
static void stream_free(void *cls) {
    job *j = cls;
    pthread_mutex_lock(&j->mu);
    bool done = j->done;
    pthread_mutex_unlock(&j->mu);
    if (!done) rg_request_cancel(j->req);
    job_release(j);
}

/* Prompt tokens for the request: chat through the template, text through the
 * tokenizer (BOS as the model wants, special-token texts parsed). */
static int64_t prompt_tokens(rg_server *s, const rg_oai_request *o, int32_t **out, char *msg, size_t msg_size) {
    *out = NULL;
    if (o->prompt_ids) {
        if (!(*out = malloc((size_t)o->n_prompt_ids * sizeof **out))) return -1;
        memcpy(*out, o->prompt_ids, (size_t)o->n_prompt_ids * sizeof **out);
        return o->n_prompt_ids;
    }
    rg_err err = {0};
    char *text = NULL;
    if (o->chat) {
        if (!s->tmpl) {
            snprintf(msg, msg_size, "the model has no chat template; use /v1/completions");
            return -2;
        }
        if (rg_chat_format(s->tmpl, o->msgs, o->n_msgs, true, &text, &err)) {
            snprintf(msg, msg_size, "%s", err.msg);
            return err.status == RG_E_NOMEM ? -1 : -2;
        }
    }
    const char *t = o->chat ? text : o->prompt;
    size_t len = strlen(t);
    int64_t cap = (int64_t)len + 8, n = -1;
    for (int pass = 0; pass < 2; pass++) {
        free(*out);
        if (!(*out = malloc((size_t)cap * sizeof **out))) break;
        n = rg_tokenize(s->m->tok, t, len, true, true, *out, cap, &err);
        if (n < 0) {
            snprintf(msg, msg_size, "cannot tokenize the prompt: %s", err.msg);
            n = -2;
            break;
        }
        if (n <= cap) break;
        cap = n;
    }
    free(text);
    return n;
}

static job *job_create(rg_server *s, struct MHD_Connection *c) {
    job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->refs = 1;
    j->srv = s;
    j->created = (long)time(NULL);
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    j->fd = ci ? ci->connect_fd : -1;
    return j;
}

enum MHD_Result rg_handle_completion(rg_server *s, struct MHD_Connection *c, const char *body, size_t len, bool chat) {
    job *j = job_create(s, c);
    if (!j) return rg_http_error(c, 500, "server_error", "out of memory", NULL);
    rg_err err = {0};
    if (rg_oai_parse(body, len, chat, &j->oai, &err)) {
        enum MHD_Result r = err.status == RG_E_NOMEM ? rg_http_error(c, 500, "server_error", "out of memory", NULL)
                                                     : rg_http_error(c, 400, "invalid_request_error", err.msg,
                                                                     j->oai.param[0] ? j->oai.param : NULL);
        job_release(j);
        return r;
    }
    snprintf(j->id, sizeof j->id, "%s-%llu", chat ? "chatcmpl" : "cmpl",
             (unsigned long long)atomic_fetch_add(&s->next_id, 1));
    char msg[600] = "";
    int32_t *ids = NULL;
    int64_t n_ids = prompt_tokens(s, &j->oai, &ids, msg, sizeof msg);
    if (n_ids == 0) snprintf(msg, sizeof msg, "the prompt is empty"), n_ids = -2;
    if (n_ids < 0) {
        free(ids);
        job_release(j);
        return n_ids == -1 ? rg_http_error(c, 500, "server_error", "out of memory", NULL)
                           : rg_http_error(c, 400, "invalid_request_error", msg, chat ? "messages" : "prompt");
    }
    rg_request_params rp = rg_oai_request_params(&j->oai);
    if (!j->oai.max_tokens && !chat) rp.max_tokens = 16; /* OpenAI's default for completions */
    if (!j->oai.seed_given) {                            /* as OpenAI: sampled answers vary unless a seed is given */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        rp.sampling.seed = ((uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec) * 0x9E3779B97F4A7C15ULL ^
                           (uint64_t)atomic_load(&s->next_id);
    }
    j->n = rp.n;
    j->ch = calloc((size_t)rp.n, sizeof *j->ch);
    if (!j->ch || rg_request_create(ids, n_ids, &rp, job_on_output, j, &j->req, &err)) {
        bool oom = !j->ch || err.status == RG_E_NOMEM;
        free(ids);
        job_release(j);
        return oom ? rg_http_error(c, 500, "server_error", "out of memory", NULL)
                   : rg_http_error(c, 400, "invalid_request_error", err.msg, NULL);
    }
    free(ids);
    j->t_submit = rg_now_s();
    j->refs = 2; /* the engine's and ours */
    rg_status st = rg_sched_submit(s->sched, j->req, &err);
    if (st) {
        j->refs = 1;
        enum MHD_Result r;
        if (st == RG_E_NOMEM) {
            rg_metrics_rejected(&s->metrics);
            struct MHD_Response *resp = NULL;
            char buf[700];
            snprintf(buf, sizeof buf,
                     "{\"error\":{\"message\":\"server overloaded: %s\",\"type\":\"server_error\",\"param\":null,"
                     "\"code\":\"overloaded\"}}",
                     "the request queue is full, retry later");
            resp = MHD_create_response_from_buffer(strlen(buf), buf, MHD_RESPMEM_MUST_COPY);
            MHD_add_response_header(resp, "Content-Type", "application/json");
            MHD_add_response_header(resp, "Retry-After", "1");
            r = MHD_queue_response(c, 503, resp);
            MHD_destroy_response(resp);
        } else {
            r = rg_http_error(c, 400, "invalid_request_error", err.msg, chat ? "messages" : "prompt");
        }
        job_release(j);
        return r;
    }
    if (j->oai.stream) {
        struct MHD_Response *resp =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_reader, j, stream_free);
        if (!resp) {
            rg_request_cancel(j->req);
            job_release(j);
            return MHD_NO;
        }
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        enum MHD_Result r = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        return r;
    }
    /* non-streaming: wait here (this connection's own thread) for the answer */
    pthread_mutex_lock(&j->mu);
    bool gone = false;
    while (!j->done && !gone) {
        wait_a_little(j);
        gone = atomic_load(&s->stopping) || client_gone(j->fd);
    }
    char *text = j->done && !j->oom ? full_response(j) : NULL;
    bool error = j->done && j->ch[0].finish == RG_FINISH_ERROR;
    char error_msg[512];
    snprintf(error_msg, sizeof error_msg, "%s", j->error[0] ? j->error : "generation failed");
    pthread_mutex_unlock(&j->mu);
    enum MHD_Result r;
    if (gone) {
        rg_request_cancel(j->req);
        r = MHD_NO; /* nobody to answer */
    } else if (error) {
        r = rg_http_error(c, 500, "server_error", error_msg, NULL);
    } else {
        r = text ? rg_http_json(c, 200, text) : rg_http_error(c, 500, "server_error", "out of memory", NULL);
    }
    cJSON_free(text);
    job_release(j);
    return r;
}
