/* server_internal.h — what server.c (daemon, routing, small endpoints) and
 * completion.c (generation requests) share. Not for use outside src/server. */
#ifndef RG_SERVER_INTERNAL_H
#define RG_SERVER_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "server/metrics.h"
#include "server/server.h"

#define RG_SERVER_MAX_BODY (8u << 20) /* request bodies above 8 MiB get 413 */

struct rg_server {
    struct MHD_Daemon *daemon;
    rg_scheduler *sched;
    const rg_model *m;
    const rg_chat_template *tmpl;
    char model_name[256];
    long created; /* unix time the server started, for /v1/models */
    pthread_t engine;
    bool engine_started;
    atomic_bool stopping;
    atomic_uint_fast64_t next_id; /* for response ids */
    rg_metrics metrics;
    int port;
};

/* Queue a JSON response (body copied) with the given status. */
enum MHD_Result rg_http_json(struct MHD_Connection *c, unsigned status, const char *body);
/* An OpenAI-style error object: {"error":{"message","type","param","code"}}. */
enum MHD_Result rg_http_error(struct MHD_Connection *c, unsigned status, const char *type, const char *message,
                              const char *param);

/* POST /v1/completions (chat false) and /v1/chat/completions: body is the whole
 * request body. */
enum MHD_Result rg_handle_completion(rg_server *s, struct MHD_Connection *c, const char *body, size_t len, bool chat);

#endif
