/* The orchestrator's HTTP API as plain functions: a request (method, path,
 * body) in, a response (status, JSON or text) out. No sockets here (http.c
 * serves it), so every route is a unit test.
 *
 *   GET  /api/swarms                          every swarm's projection
 *   GET  /api/swarms/{id}                     one swarm (404 when unknown); its
 *                                             workers are those of the latest
 *                                             controller status-full, taken at
 *                                             fullAt (fullAgeSec ago)
 *   POST /api/swarms/{id}/start|stop|remove|status-request
 *                                             publishes the signal; 202 with its ids
 *   GET  /api/swarms/{id}/outcomes/{cid}      200 the outcome, 202 still pending, 404
 *   POST /api/control-plane/refresh           status-request to every known swarm
 *   POST /api/control-plane/reset             wipe the projections, then the same
 *   GET  /api/ui-config                       what the web UI needs (STOMP, observer)
 *   GET  /metrics                             Prometheus text exposition
 * Every POST carries Content-Type: application/json (parameters such as
 * charset allowed), with or without a body: a page of another site cannot
 * make a browser send that without a CORS preflight, which is never granted,
 * so it cannot start, stop or remove a swarm (guard.h).
 * Errors are JSON {"error": "..."}: 404 unknown route or swarm, 405 wrong
 * method, 415 a POST without that Content-Type, 400 bad body, 413 body too
 * large, 503 broker unreachable. http.c adds 403 for a Host header the
 * server does not answer (DNS rebinding, guard.h). */
#ifndef PH_ORCH_API_H
#define PH_ORCH_API_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "registry.h"

#define API_MAX_BODY 65536
#define API_THROTTLE_NS 2000000000ull

/* Publishes one signal; 0 when handed to the broker client. */
typedef int (*api_publish_fn)(void *ctx, const char *type, const char *swarm, const char *role,
                              const char *instance, const char *cid, const char *ikey,
                              json_t *data);

struct api_broadcast {
    uint64_t at_ns; /* 0: never */
    char cid[64], ikey[64], issued_at[32];
};

struct api {
    struct registry *reg;
    api_publish_fn publish;
    void *publish_ctx;
    json_t *ui_config; /* borrowed; NULL: none */
    struct api_broadcast refresh, reset;
    uint64_t requests, errors;
};

struct api_resp {
    int status;
    const char *content_type;
    char *body; /* malloc'd */
    size_t len;
};

void api_init(struct api *a, struct registry *reg, api_publish_fn publish, void *ctx);
/* Handles one request at (mono_ns, real_ns); content_type is the request's
 * Content-Type header (NULL: none). Never fails: an internal problem is a
 * 500 with a message. */
void api_handle(struct api *a, const char *method, const char *path, const char *content_type,
                const char *body, size_t body_len, uint64_t now_ns, uint64_t real_ns,
                struct api_resp *out);
void api_resp_free(struct api_resp *r);

/* A status-request to every known swarm (or to every controller when none
 * is known). `reset` wipes the registry first; `throttled` (the API's calls)
 * answers a call within 2 s of the previous one without sending anything.
 * Returns the 202 body. */
json_t *api_broadcast(struct api *a, bool reset, bool throttled, uint64_t now_ns,
                      uint64_t real_ns);

/* A fresh random id ("orch-" and 32 hex digits). */
void api_new_id(char *buf, size_t n, const char *prefix);

/* Prometheus text of every swarm's aggregate. */
char *api_metrics(const struct api *a, uint64_t now_ns);

#endif
