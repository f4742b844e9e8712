/* server.c — the libmicrohttpd daemon: routing, request bodies, the small
 * endpoints (/health, /v1/models, /metrics), the engine thread, shutdown.
 *
 * Shutdown order matters: `stopping` makes every waiting connection thread give
 * up (cancelling its request), MHD_stop_daemon joins those threads, then the
 * engine thread is stopped and joined, and the scheduler is stepped here until
 * the cancelled requests have delivered their last outputs — after which no job
 * is left that could call back into the server. */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "server/server_internal.h"

typedef struct body_buf {
    char *p;
    size_t len, cap;
    bool too_large;
} body_buf;

enum MHD_Result rg_http_json(struct MHD_Connection *c, unsigned status, const char *body) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result q = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return q;
}

enum MHD_Result rg_http_error(struct MHD_Connection *c, unsigned status, const char *type, const char *message,
                              const char *param) {
    cJSON *root = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(e, "message", message);
    cJSON_AddStringToObject(e, "type", type);
    if (param)
        cJSON_AddStringToObject(e, "param", param);
    else
        cJSON_AddNullToObject(e, "param");
    cJSON_AddNullToObject(e, "code");
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    enum MHD_Result q = s ? rg_http_json(c, status, s) : MHD_NO;
    cJSON_free(s);
    return q;
}

static enum MHD_Result text_response(struct MHD_Connection *c, unsigned status, const char *type, const char *body) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result q = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return q;
}

static enum MHD_Result handle_models(rg_server *s, struct MHD_Connection *c) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(root, "data"), *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", s->model_name);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)s->created);
    cJSON_AddStringToObject(m, "owned_by", "ridge");
    cJSON_AddItemToArray(data, m);
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    enum MHD_Result q = text ? rg_http_json(c, 200, text) : MHD_NO;
    cJSON_free(text);
    return q;
}

static enum MHD_Result handle_metrics(rg_server *s, struct MHD_Connection *c) {
    rg_sched_stats st = rg_sched_get_stats(s->sched);
    char *text = rg_metrics_render(&s->metrics, &st, rg_now_s());
    if (!text) return rg_http_error(c, 500, "server_error", "out of memory", NULL);
    enum MHD_Result q = text_response(c, 200, "text/plain; version=0.0.4", text);
    free(text);
    return q;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **state) {
    rg_server *s = cls;
    bool post = !strcmp(method, "POST");
    bool is_completion = !strcmp(url, "/v1/completions"), is_chat = !strcmp(url, "/v1/chat/completions");
    if (post && (is_completion || is_chat)) {
        body_buf *b = *state;
        if (!b) { /* first call: headers only */
            if (!(b = calloc(1, sizeof *b))) return MHD_NO;
            *state = b;
            return MHD_YES;
        }
        if (*upload_size) {
            if (b->len + *upload_size > RG_SERVER_MAX_BODY) {
                b->too_large = true;
            } else if (!b->too_large) {
                size_t need = b->len + *upload_size + 1, cap = b->cap ? b->cap : 4096;
                while (cap < need)
                    cap *= 2;
                if (cap != b->cap) {
                    char *p = realloc(b->p, cap);
                    if (!p) return MHD_NO;
                    b->p = p, b->cap = cap;
                }
                memcpy(b->p + b->len, upload, *upload_size);
                b->len += *upload_size;
            }
            *upload_size = 0;
            return MHD_YES;
        }
        if (b->too_large) return rg_http_error(c, 413, "invalid_request_error", "the request body exceeds 8 MiB", NULL);
        return rg_handle_completion(s, c, b->p ? b->p : "", b->len, is_chat);
    }
    if (*state == NULL && post) { /* some other POST: take the body, then answer */
        *state = s;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0;
        return MHD_YES;
    }
    bool get = !strcmp(method, "GET");
    if (get && !strcmp(url, "/health")) return rg_http_json(c, 200, "{\"status\":\"ok\"}");
    if (get && !strcmp(url, "/v1/models")) return handle_models(s, c);
    if (get && !strcmp(url, "/metrics")) return handle_metrics(s, c);
    if (is_completion || is_chat || !strcmp(url, "/health") || !strcmp(url, "/v1/models") || !strcmp(url, "/metrics"))
        return rg_http_error(c, 405, "invalid_request_error", "method not allowed", NULL);
    return rg_http_error(c, 404, "invalid_request_error", "no such endpoint", NULL);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode code) {
    rg_server *s = cls;
    if (*state && *state != s) {
        body_buf *b = *state;
        free(b->p);
        free(b);
    }
    *state = NULL;
}

static void *engine_main(void *arg) {
    rg_sched_run(arg);
    return NULL;
}

rg_status rg_server_start(rg_scheduler *sched, const rg_model *m, const rg_chat_template *tmpl,
                          const rg_server_params *p, rg_server **out, rg_err *err) {
    *out = NULL;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p->port)};
    const char *host = p->host ? p->host : "127.0.0.1";
    if (p->port < 0 || p->port > 65535) return rg_fail(err, RG_E_INVALID, "port %d out of range", p->port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        return rg_fail(err, RG_E_INVALID, "host '%s' is not an IPv4 address", host);
    rg_server *s = calloc(1, sizeof *s);
    if (!s) return rg_fail(err, RG_E_NOMEM, "out of memory");
    s->sched = sched;
    s->m = m;
    s->tmpl = tmpl;
    s->created = (long)time(NULL);
    snprintf(s->model_name, sizeof s->model_name, "%s", p->model_name ? p->model_name : "ridge");
    atomic_init(&s->stopping, false);
    atomic_init(&s->next_id, 1);
    rg_metrics_init(&s->metrics);
    unsigned limit = p->max_connections > 0 ? (unsigned)p->max_connections : 512;
    s->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, (uint16_t)p->port,
                                 NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_LIMIT, limit,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600, MHD_OPTION_END);
    if (!s->daemon) {
        rg_metrics_destroy(&s->metrics);
        free(s);
        return rg_fail(err, RG_E_IO, "cannot listen on %s:%d (in use?)", host, p->port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : p->port;
    if (pthread_create(&s->engine, NULL, engine_main, sched)) {
        MHD_stop_daemon(s->daemon);
        rg_metrics_destroy(&s->metrics);
        free(s);
        return rg_fail(err, RG_E_NOMEM, "cannot start the engine thread");
    }
    s->engine_started = true;
    *out = s;
    return RG_OK;
}

int rg_server_port(const rg_server *s) { return s->port; }

void rg_server_stop(rg_server *s) {
    if (!s) return;
    atomic_store(&s->stopping, true);
    MHD_stop_daemon(s->daemon);
    rg_sched_stop(s->sched);
    if (s->engine_started) pthread_join(s->engine, NULL);
    /* deliver the cancelled requests' last outputs while the server still exists */
    rg_err err = {0};
    bool did;
    while (!rg_sched_idle(s->sched))
        rg_sched_step(s->sched, &did, &err);
    rg_metrics_destroy(&s->metrics);
    free(s);
}
