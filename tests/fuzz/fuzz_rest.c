/* Fuzz target: the orchestrator's REST request handling, below
 * libmicrohttpd (actors/orchestrator/http.c, on_request).
 *
 * The input reads as an HTTP request:
 *   METHOD SP PATH [SP anything] LF
 *   Name: value LF            (any number of headers)
 *   LF
 *   body                      (the rest)
 * (CR before LF is dropped.) The path stops at '?' (MHD hands the
 * callback the path without its query) and at a NUL, as every MHD string
 * does. Host and Content-Type are the headers the handler reads; an
 * "X-Allowed-Host" header is the server's --allowed-host name (the guard's
 * configuration, also untrusted text). What http.c does with them is done
 * here: the Host rule of guard.h first, then, for /api/ and /metrics,
 * api_handle with the body (one over API_MAX_BODY is passed as http.c
 * passes it: no bytes and a length of API_MAX_BODY + 1).
 *
 * The registry starts every input the same: one swarm, "demo", known from
 * a controller status-full, so the routes that name a swarm reach its
 * projection. A response must have a status in 200..599 and, when JSON, be
 * JSON. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "fuzz_check.h"
#include "guard.h"
#include "ph/log.h"
#include "registry.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW_NS 5000000000000ull
#define REAL_NS 1795744800123000000ull

static json_t *status_full;
/* One registry for the process (its outcome ring is a 1.4 MB allocation):
 * every input finds it as fresh_registry() leaves it. */
static struct registry reg;
static struct reg_cfg cfg;

static void free_registry(void)
{
    reg_free(&reg);
    json_decref(status_full);
}

static const char status_full_text[] =
    "{\"timestamp\":\"2026-12-01T12:00:00.000Z\",\"version\":\"1\",\"kind\":\"metric\","
    "\"type\":\"status-full\",\"origin\":\"demo-controller\","
    "\"scope\":{\"swarmId\":\"demo\",\"role\":\"swarm-controller\",\"instance\":\"demo-"
    "controller\"},"
    "\"correlationId\":null,\"idempotencyKey\":null,"
    "\"data\":{\"enabled\":true,\"tps\":20,\"startedAt\":\"2026-12-01T11:00:00.000Z\","
    "\"config\":{},\"io\":{},\"ioState\":{\"work\":{\"input\":\"ok\",\"output\":\"ok\"}},"
    "\"context\":{\"swarmStatus\":\"RUNNING\",\"state\":\"RUNNING\","
    "\"totals\":{\"desired\":2,\"healthy\":2,\"running\":2,\"enabled\":2},"
    "\"watermark\":\"2026-12-01T12:00:00.000Z\",\"maxStalenessSec\":0.5,\"scenario\":{},"
    "\"roles\":{\"generator\":{\"count\":2,\"desired\":2,\"enabled\":2,\"tps\":20}},"
    "\"workers\":[{\"role\":\"generator\",\"instance\":\"gen-0\",\"enabled\":true,\"tps\":10,"
    "\"ioState\":{\"work\":{\"input\":\"ok\",\"output\":\"ok\"}},"
    "\"lastSeenAt\":\"2026-12-01T12:00:00.000Z\",\"stale\":false,"
    "\"queues\":{\"in\":[\"ph.work.demo.gen\"],\"out\":[]}}]}}}";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ph_log_set_level(PH_LOG_ERROR);
    json_error_t je;
    status_full = json_loads(status_full_text, 0, &je);
    if (status_full == NULL) {
        fprintf(stderr, "fuzz: the status-full fixture does not parse: %s\n", je.text);
        exit(1);
    }
    reg_cfg_defaults(&cfg);
    if (reg_init(&reg, &cfg) != PH_OK) {
        fprintf(stderr, "fuzz: out of memory for the registry\n");
        exit(1);
    }
    atexit(free_registry);
    return 0;
}

static int publish(void *ctx, const char *type, const char *swarm, const char *role,
                   const char *instance, const char *cid, const char *ikey, json_t *data)
{
    (void)ctx, (void)swarm, (void)role, (void)instance, (void)ikey;
    FUZZ_CHECK(type != NULL && cid != NULL && cid[0] != '\0');
    json_decref(data);
    return 0;
}

/* A NUL-terminated copy of [s, s + n), cut at its first NUL. */
static char *text(const uint8_t *s, size_t n)
{
    const uint8_t *z = memchr(s, '\0', n);
    if (z != NULL) n = (size_t)(z - s);
    char *t = malloc(n + 1);
    FUZZ_CHECK(t != NULL);
    memcpy(t, s, n);
    t[n] = '\0';
    return t;
}

/* The next line of [*p, end) without its LF (and CR); NULL at the end. */
static const uint8_t *line(const uint8_t **p, const uint8_t *end, size_t *n)
{
    if (*p >= end) return NULL;
    const uint8_t *s = *p;
    const uint8_t *lf = memchr(s, '\n', (size_t)(end - s));
    const uint8_t *e = lf != NULL ? lf : end;
    *p = lf != NULL ? lf + 1 : end;
    *n = (size_t)(e - s);
    if (*n > 0 && s[*n - 1] == '\r') (*n)--;
    return s;
}

static bool is_api(const char *path)
{
    return strncmp(path, "/api/", 5) == 0 || strcmp(path, "/api") == 0 ||
           strcmp(path, "/metrics") == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    size_t n;
    const uint8_t *first = line(&p, end, &n);
    if (first == NULL) return 0;
    const uint8_t *sp = memchr(first, ' ', n);
    if (sp == NULL) return 0;
    char *method = text(first, (size_t)(sp - first));
    const uint8_t *ps = sp + 1;
    size_t plen = n - (size_t)(ps - first);
    const uint8_t *cut = memchr(ps, ' ', plen);
    if (cut != NULL) plen = (size_t)(cut - ps);
    cut = memchr(ps, '?', plen);
    if (cut != NULL) plen = (size_t)(cut - ps);
    char *path = text(ps, plen);

    char *host = NULL, *ctype = NULL, *allowed = NULL;
    const uint8_t *h;
    while ((h = line(&p, end, &n)) != NULL && n > 0) {
        const uint8_t *colon = memchr(h, ':', n);
        if (colon == NULL) continue;
        size_t klen = (size_t)(colon - h);
        const uint8_t *v = colon + 1;
        size_t vlen = n - klen - 1;
        while (vlen > 0 && (*v == ' ' || *v == '\t'))
            v++, vlen--;
        char **slot = NULL;
        if (klen == 4 && strncasecmp((const char *)h, "host", 4) == 0) slot = &host;
        if (klen == 12 && strncasecmp((const char *)h, "content-type", 12) == 0) slot = &ctype;
        if (klen == 14 && strncasecmp((const char *)h, "x-allowed-host", 14) == 0) slot = &allowed;
        if (slot != NULL && *slot == NULL) *slot = text(v, vlen);
    }
    const char *body = (const char *)p;
    size_t body_len = (size_t)(end - p);

    struct guard_hosts g;
    char err[256] = "";
    const char *names[1] = {allowed};
    if (guard_hosts_init(&g, true, names, allowed != NULL ? 1 : 0, err, sizeof err) &&
        guard_host_allowed(&g, host) && is_api(path)) {
        const uint32_t out_first = reg.out_next;
        struct reg_effect eff;
        FUZZ_CHECK(reg_feed(&reg, "event.metric.status-full.demo.swarm-controller.demo-controller",
                            status_full, NOW_NS - 1000000000ull, &eff));
        struct api a;
        api_init(&a, &reg, publish, NULL);
        struct api_resp resp;
        if (body_len > API_MAX_BODY)
            api_handle(&a, method, path, ctype, NULL, API_MAX_BODY + 1, NOW_NS, REAL_NS, &resp);
        else
            api_handle(&a, method, path, ctype, body_len > 0 ? body : NULL, body_len, NOW_NS,
                       REAL_NS, &resp);
        FUZZ_CHECK(resp.status >= 200 && resp.status <= 599);
        FUZZ_CHECK(resp.body != NULL || resp.len == 0);
        if (resp.content_type != NULL && strcmp(resp.content_type, "application/json") == 0) {
            json_error_t je;
            json_t *j = json_loadb(resp.body, resp.len, 0, &je);
            FUZZ_CHECK(j != NULL);
            json_decref(j);
        }
        api_resp_free(&resp);
        /* Back to the state every input starts from: no swarm, and the
         * outcome entries this request wrote (at most a few) cleared. */
        reg_reset(&reg);
        for (uint32_t i = out_first; i != reg.out_next; i = (i + 1) % REG_MAX_OUTCOMES) {
            json_decref(reg.out[i].env);
            memset(&reg.out[i], 0, sizeof reg.out[i]);
        }
        reg.out_next = 0;
        reg.resets = reg.docs = reg.ignored = 0;
    }
    free(method);
    free(path);
    free(host);
    free(ctype);
    free(allowed);
    return 0;
}
