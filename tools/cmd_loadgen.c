/* cmd_loadgen.c — `ridge loadgen`: load an OpenAI-compatible completions server
 * and report the serving numbers the field quotes: throughput (requests/s,
 * output tokens/s), time to first token and inter-token latency percentiles, and
 * errors.
 *
 * Requests arrive as a Poisson process at --rate per second (0: all at once),
 * each on its own connection and thread. Prompts are token ids (so their lengths
 * are exact whatever the tokenizer): the first --shared-prefix ids are the same
 * for every request (a shared system prompt), the rest random. Outputs are
 * exactly --output-len tokens (ignore_eos), streamed; the time of each streamed
 * event is a token time. The client speaks HTTP/1.0 over a plain socket: the
 * server then streams the body unchunked and closes, and nothing but reading
 * lines is needed. */
#include <cjson/cJSON.h>
#include <math.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* A length distribution: uniform in [lo, hi] (lo == hi: fixed), or lognormal
 * with the given mean and log-space sigma, rounded and clamped to [lo, hi]. */
typedef struct range {
    int lo, hi;
    bool lognormal;
    double mean, sigma;
} range;

typedef struct req_result {
    int status; /* HTTP status, 0 = connection failed */
    double t_start, t_first, t_end;
    double *event_times;
    int n_events, cap_events;
    int completion_tokens;
    char error[160];
} req_result;

typedef struct loadgen {
    char host[256], port[16], path[256];
    int n, vocab, shared_prefix;
    double rate;
    range prompt_len, output_len;
    uint64_t seed;
    double temperature; /* sent with every request: 0 = greedy (the server may then argmax on the device) */
    int32_t *prefix;
    req_result *res;
} loadgen;

typedef struct job {
    loadgen *lg;
    int index;
    int32_t *prompt;
    int n_prompt, n_out;
} job;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t next_u64(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *rng) { return (double)(next_u64(rng) >> 11) * (1.0 / 9007199254740992.0); }

static int draw(range r, uint64_t *rng) {
    if (!r.lognormal) return r.lo + (int)(next_u64(rng) % (uint64_t)(r.hi - r.lo + 1));
    /* Box-Muller; mu such that the unclamped mean is r.mean */
    double z = sqrt(-2.0 * log(1.0 - uniform01(rng))) * cos(2.0 * M_PI * uniform01(rng));
    double x = exp(log(r.mean) - 0.5 * r.sigma * r.sigma + r.sigma * z);
    return x < r.lo ? r.lo : x > r.hi ? r.hi : (int)lround(x);
}

/* "L", "A:B", or "lognormal:MEAN[:SIGMA[:MAX]]" (SIGMA default 1, MAX default 2048). */
static bool parse_range(const char *s, range *r) {
    char *end;
    if (!strncmp(s, "lognormal:", 10)) {
        *r = (range){.lo = 1, .hi = 2048, .lognormal = true, .sigma = 1.0};
        r->mean = strtod(s + 10, &end);
        if (*end == ':') r->sigma = strtod(end + 1, &end);
        if (*end == ':') r->hi = (int)strtol(end + 1, &end, 10);
        return !*end && r->mean >= 1 && r->mean <= r->hi && r->sigma >= 0 && r->sigma <= 4 && r->hi <= 1 << 20;
    }
    long a = strtol(s, &end, 10), b = a;
    if (*end == ':') b = strtol(end + 1, &end, 10);
    if (*end || a < 1 || b < a || b > 1 << 20) return false;
    *r = (range){.lo = (int)a, .hi = (int)b};
    return true;
}

static bool parse_url(const char *url, loadgen *lg) {
    if (strncmp(url, "http://", 7)) return false;
    const char *h = url + 7, *slash = strchr(h, '/'), *colon = strchr(h, ':');
    size_t hlen = colon && (!slash || colon < slash) ? (size_t)(colon - h) : slash ? (size_t)(slash - h) : strlen(h);
    if (!hlen || hlen >= sizeof lg->host) return false;
    memcpy(lg->host, h, hlen);
    lg->host[hlen] = 0;
    if (colon && (!slash || colon < slash)) {
        size_t plen = slash ? (size_t)(slash - colon - 1) : strlen(colon + 1);
        if (!plen || plen >= sizeof lg->port) return false;
        memcpy(lg->port, colon + 1, plen);
        lg->port[plen] = 0;
    } else {
        snprintf(lg->port, sizeof lg->port, "80");
    }
    /* the base URL may end in /v1 or not */
    snprintf(lg->path, sizeof lg->path, "%s", slash && strcmp(slash, "/") ? slash : "");
    size_t pl = strlen(lg->path);
    if (pl && lg->path[pl - 1] == '/') lg->path[--pl] = 0;
    if (pl < 3 || strcmp(lg->path + pl - 3, "/v1")) strncat(lg->path, "/v1", sizeof lg->path - pl - 1);
    strncat(lg->path, "/completions", sizeof lg->path - strlen(lg->path) - 1);
    return true;
}

static void add_event(req_result *r, double t) {
    if (r->n_events == r->cap_events) {
        int cap = r->cap_events ? 2 * r->cap_events : 64;
        double *e = realloc(r->event_times, (size_t)cap * sizeof *e);
        if (!e) return;
        r->event_times = e, r->cap_events = cap;
    }
    r->event_times[r->n_events++] = t;
}

/* One SSE data line: a text event is a token time; the usage chunk has the count. */
static void on_line(req_result *r, const char *line) {
    if (strncmp(line, "data: ", 6) || !strcmp(line + 6, "[DONE]")) return;
    cJSON *e = cJSON_Parse(line + 6);
    if (!e) return;
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(e, "choices");
    const cJSON *c0 = cJSON_GetArrayItem(choices, 0);
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(c0, "text");
    if (cJSON_IsString(text) && text->valuestring[0]) {
        double t = now_s();
        if (!r->n_events) r->t_first = t;
        add_event(r, t);
    }
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(e, "usage");
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens");
    if (cJSON_IsNumber(ct)) r->completion_tokens = ct->valueint;
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(e, "error");
    if (err) snprintf(r->error, sizeof r->error, "error event");
    cJSON_Delete(e);
}

static int connect_to(const loadgen *lg) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(lg->host, lg->port, &hints, &ai)) return -1;
    int fd = -1;
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen)) close(fd), fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

static void *run_request(void *arg) {
    job *j = arg;
    loadgen *lg = j->lg;
    req_result *r = &lg->res[j->index];
    cJSON *body = cJSON_CreateObject();
    cJSON *ids = cJSON_AddArrayToObject(body, "prompt");
    for (int i = 0; i < j->n_prompt; i++)
        cJSON_AddItemToArray(ids, cJSON_CreateNumber(j->prompt[i]));
    cJSON_AddNumberToObject(body, "max_tokens", j->n_out);
    cJSON_AddNumberToObject(body, "temperature", lg->temperature);
    cJSON_AddTrueToObject(body, "ignore_eos");
    cJSON_AddTrueToObject(body, "stream");
    cJSON_AddTrueToObject(cJSON_AddObjectToObject(body, "stream_options"), "include_usage");
    char *json = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    size_t jlen = json ? strlen(json) : 0;
    char head[1024];
    int hlen = snprintf(head, sizeof head,
                        "POST %s HTTP/1.0\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                        lg->path, lg->host, jlen);
    r->t_start = now_s();
    int fd = json ? connect_to(lg) : -1;
    if (fd < 0) {
        snprintf(r->error, sizeof r->error, "cannot connect");
        r->t_end = now_s();
        cJSON_free(json);
        return NULL;
    }
    bool ok = send(fd, head, (size_t)hlen, MSG_NOSIGNAL) == hlen && send(fd, json, jlen, MSG_NOSIGNAL) == (ssize_t)jlen;
    cJSON_free(json);
    char buf[8192], line[65536];
    size_t llen = 0;
    bool in_body = false;
    for (ssize_t n; ok && (n = recv(fd, buf, sizeof buf, 0)) > 0;) {
        for (ssize_t i = 0; i < n; i++) {
            char ch = buf[i];
            if (ch != '\n') {
                if (llen + 1 < sizeof line) line[llen++] = ch;
                continue;
            }
            if (llen && line[llen - 1] == '\r') llen--;
            line[llen] = 0;
            if (!r->status)
                sscanf(line, "HTTP/%*s %d", &r->status);
            else if (!in_body && !llen)
                in_body = true;
            else if (in_body)
                on_line(r, line);
            llen = 0;
        }
    }
    close(fd);
    r->t_end = now_s();
    if (r->status != 200 && !r->error[0]) snprintf(r->error, sizeof r->error, "HTTP %d", r->status);
    return NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(const double *v, int n, double p) {
    if (!n) return NAN;
    int i = (int)ceil(p / 100.0 * n) - 1;
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

static void usage(FILE *f) {
    fprintf(f, "usage: ridge loadgen --url http://HOST:PORT [options]\n"
               "  --n N               requests (default 64)\n"
               "  --rate R            Poisson arrivals per second (default 0: all at once)\n"
               "  --prompt-len DIST   prompt tokens: L (fixed), A:B (uniform in [A, B]) or\n"
               "                      lognormal:MEAN[:SIGMA[:MAX]] (log-space SIGMA default 1, clamped to\n"
               "                      [1, MAX], MAX default 2048) (default 128)\n"
               "  --output-len DIST   generated tokens per request, the same forms (default 64)\n"
               "  --sharegpt          lengths shaped like ShareGPT conversations as vLLM's paper reports\n"
               "                      them (mean prompt 161, mean output 338 tokens): the same as\n"
               "                      --prompt-len lognormal:161:1:1024 --output-len lognormal:338:1:1024\n"
               "  --shared-prefix P   the first P prompt tokens are the same in every request (default 0)\n"
               "  --vocab V           prompt token ids are drawn from [100, V) (default 20000)\n"
               "  --seed S            (default 1)\n"
               "  --temperature T     sampling temperature of every request (default 0: greedy)\n");
}

int cmd_loadgen(int argc, char **argv) {
    loadgen lg = {.n = 64, .vocab = 20000, .prompt_len = {.lo = 128, .hi = 128}, .output_len = {.lo = 64, .hi = 64}, .seed = 1};
    const char *url = NULL;
    for (int i = 1; i < argc; i += 2) { /* every option but --help and --sharegpt takes a value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = v != NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--sharegpt")) {
            parse_range("lognormal:161:1:1024", &lg.prompt_len);
            parse_range("lognormal:338:1:1024", &lg.output_len);
            i--; /* takes no value */
        } else if (v && !strcmp(a, "--url"))
            url = v;
        else if (v && !strcmp(a, "--n"))
            ok = (lg.n = atoi(v)) >= 1 && lg.n <= 100000;
        else if (v && !strcmp(a, "--rate"))
            ok = (lg.rate = atof(v)) >= 0;
        else if (v && !strcmp(a, "--prompt-len"))
            ok = parse_range(v, &lg.prompt_len);
        else if (v && !strcmp(a, "--output-len"))
            ok = parse_range(v, &lg.output_len);
        else if (v && !strcmp(a, "--shared-prefix"))
            ok = (lg.shared_prefix = atoi(v)) >= 0;
        else if (v && !strcmp(a, "--vocab"))
            ok = (lg.vocab = atoi(v)) > 100;
        else if (v && !strcmp(a, "--seed"))
            lg.seed = strtoull(v, NULL, 10);
        else if (v && !strcmp(a, "--temperature"))
            ok = (lg.temperature = atof(v)) >= 0 && lg.temperature <= 100;
        else {
            fprintf(stderr, "ridge loadgen: %s '%s'\n", v ? "unknown option" : "unknown option or missing value for",
                    a);
            usage(stderr);
            return RG_EXIT_USAGE;
        }
        if (!ok) {
            fprintf(stderr, "ridge loadgen: bad value for %s\n", a);
            return RG_EXIT_USAGE;
        }
    }
    if (!url || !parse_url(url, &lg)) {
        fprintf(stderr, "ridge loadgen: --url http://HOST[:PORT][/v1] is required\n");
        return RG_EXIT_USAGE;
    }
    uint64_t rng = lg.seed;
    int max_prompt = lg.prompt_len.hi + lg.shared_prefix;
    lg.prefix = malloc((size_t)(lg.shared_prefix + 1) * sizeof *lg.prefix);
    lg.res = calloc((size_t)lg.n, sizeof *lg.res);
    job *jobs = calloc((size_t)lg.n, sizeof *jobs);
    pthread_t *th = calloc((size_t)lg.n, sizeof *th);
    if (!lg.prefix || !lg.res || !jobs || !th) {
        fprintf(stderr, "ridge loadgen: out of memory\n");
        return RG_EXIT_BAD_INPUT;
    }
    for (int i = 0; i < lg.shared_prefix; i++)
        lg.prefix[i] = 100 + (int32_t)(next_u64(&rng) % (uint64_t)(lg.vocab - 100));
    for (int k = 0; k < lg.n; k++) {
        job *j = &jobs[k];
        j->lg = &lg, j->index = k;
        j->n_prompt = lg.shared_prefix + draw(lg.prompt_len, &rng);
        j->n_out = draw(lg.output_len, &rng);
        j->prompt = malloc((size_t)max_prompt * sizeof *j->prompt);
        if (!j->prompt) return RG_EXIT_BAD_INPUT;
        memcpy(j->prompt, lg.prefix, (size_t)lg.shared_prefix * sizeof *j->prompt);
        for (int i = lg.shared_prefix; i < j->n_prompt; i++)
            j->prompt[i] = 100 + (int32_t)(next_u64(&rng) % (uint64_t)(lg.vocab - 100));
    }
    double t0 = now_s(), next = t0;
    for (int k = 0; k < lg.n; k++) {
        if (lg.rate > 0) {
            double u = uniform01(&rng);
            next += -log(1.0 - u) / lg.rate; /* exponential gaps: a Poisson process */
            double wait = next - now_s();
            if (wait > 0) usleep((useconds_t)(wait * 1e6));
        }
        if (pthread_create(&th[k], NULL, run_request, &jobs[k])) {
            fprintf(stderr, "ridge loadgen: cannot start request thread %d\n", k);
            return RG_EXIT_BAD_INPUT;
        }
    }
    for (int k = 0; k < lg.n; k++)
        pthread_join(th[k], NULL);
    double t_end = now_s();

    double *ttft = calloc((size_t)lg.n, sizeof *ttft), *e2e = calloc((size_t)lg.n, sizeof *e2e);
    int64_t n_itl = 0, out_tokens = 0, prompt_tokens = 0;
    for (int k = 0; k < lg.n; k++)
        n_itl += lg.res[k].n_events > 1 ? lg.res[k].n_events - 1 : 0;
    double *itl = calloc((size_t)(n_itl + 1), sizeof *itl);
    int n_ok = 0, n_err = 0;
    n_itl = 0;
    for (int k = 0; k < lg.n; k++) {
        req_result *r = &lg.res[k];
        if (r->status != 200 || r->error[0] || !r->n_events) {
            if (n_err < 5) fprintf(stderr, "request %d: %s\n", k, r->error[0] ? r->error : "no tokens");
            n_err++;
            continue;
        }
        ttft[n_ok] = r->t_first - r->t_start;
        e2e[n_ok++] = r->t_end - r->t_start;
        for (int e = 1; e < r->n_events; e++)
            itl[n_itl++] = r->event_times[e] - r->event_times[e - 1];
        out_tokens += r->completion_tokens;
        prompt_tokens += jobs[k].n_prompt;
    }
    qsort(ttft, (size_t)n_ok, sizeof *ttft, cmp_double);
    qsort(e2e, (size_t)n_ok, sizeof *e2e, cmp_double);
    qsort(itl, (size_t)n_itl, sizeof *itl, cmp_double);
    double dur = t_end - t0, mean_ttft = 0;
    for (int k = 0; k < n_ok; k++)
        mean_ttft += ttft[k] / n_ok;
    printf("requests      %d ok, %d errors, in %.2f s\n", n_ok, n_err, dur);
    printf("lengths       prompt mean %.1f tokens, output mean %.1f tokens\n", n_ok ? (double)prompt_tokens / n_ok : 0,
           n_ok ? (double)out_tokens / n_ok : 0);
    printf("throughput    %.2f requests/s, %.1f output tokens/s, %.1f prompt tokens/s\n", n_ok / dur,
           (double)out_tokens / dur, (double)prompt_tokens / dur);
    printf("TTFT (ms)     mean %.1f  p50 %.1f  p90 %.1f  p99 %.1f\n", 1e3 * mean_ttft, 1e3 * pct(ttft, n_ok, 50),
           1e3 * pct(ttft, n_ok, 90), 1e3 * pct(ttft, n_ok, 99));
    printf("ITL (ms)      p50 %.1f  p90 %.1f  p99 %.1f\n", 1e3 * pct(itl, (int)n_itl, 50),
           1e3 * pct(itl, (int)n_itl, 90), 1e3 * pct(itl, (int)n_itl, 99));
    printf("latency (s)   p50 %.2f  p90 %.2f  p99 %.2f\n", pct(e2e, n_ok, 50), pct(e2e, n_ok, 90), pct(e2e, n_ok, 99));
    for (int k = 0; k < lg.n; k++)
        free(jobs[k].prompt), free(lg.res[k].event_times);
    free(jobs), free(th), free(lg.res), free(lg.prefix), free(ttft), free(e2e), free(itl);
    return n_err ? RG_EXIT_BAD_INPUT : 0;
}
