/* server.h — the OpenAI-compatible HTTP server in front of a scheduler.
 *
 * Endpoints: POST /v1/completions and /v1/chat/completions (non-streaming JSON or
 * server-sent events with "stream": true), GET /v1/models, /health and /metrics
 * (Prometheus text). libmicrohttpd runs one thread per connection; a handler
 * parses the body, tokenizes (chat: the model's chat template), submits a request
 * and then waits for the engine thread, which runs the scheduler loop and hands
 * each sample's text to the connection as it is released. A client that goes
 * away (seen by a failed write or a hung-up socket) cancels its request, which
 * frees its KV blocks at the next step. A full queue answers 503 with
 * Retry-After; malformed JSON or bad parameters 400 with an OpenAI error object. */
#ifndef RG_SERVER_SERVER_H
#define RG_SERVER_SERVER_H

#include <stdint.h>

#include "engine/scheduler.h"
#include "model/model.h"
#include "tok/chat_template.h"

typedef struct rg_server_params {
    const char *host;       /* NULL: 127.0.0.1 */
    int port;               /* 0: any free port (see rg_server_port) */
    const char *model_name; /* the id /v1/models reports */
    int max_connections;    /* 0: 512 */
} rg_server_params;

typedef struct rg_server rg_server;

/* Start listening and start the engine thread. tmpl may be NULL (the model has no
 * chat template: chat requests get 400). The scheduler, model and template must
 * outlive the server; the scheduler must not be stepped by anyone else. */
rg_status rg_server_start(rg_scheduler *sched, const rg_model *m, const rg_chat_template *tmpl,
                          const rg_server_params *p, rg_server **out, rg_err *err);
int rg_server_port(const rg_server *s);
/* Stop accepting, cancel what runs, join the engine thread, free the server. */
void rg_server_stop(rg_server *s);

#endif
