/* The orchestrator's projection (registry.c) and HTTP API (api.c), on a
 * simulated clock: a registry built from controller aggregates only, health
 * from heartbeats, refresh and reset (throttled), commands and their
 * outcomes, errors, Prometheus text, and no crash on any request. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api.h"
#include "guard.h"
#include "registry.h"

#define SEC 1000000000ull

/* ---- envelopes as a controller's bridge publishes them ------------------ */

static json_t *envelope(const char *kind, const char *type, const char *swarm, const char *role,
                        const char *instance, const char *cid, json_t *data)
{
    json_t *e = json_object();
    json_object_set_new(e, "timestamp", json_string("2026-12-01T12:00:00.000Z"));
    json_object_set_new(e, "version", json_string("1"));
    json_object_set_new(e, "kind", json_string(kind));
    json_object_set_new(e, "type", json_string(type));
    json_object_set_new(e, "origin", json_string(instance ? instance : "x"));
    json_object_set_new(e, "scope", json_pack("{s:s, s:s, s:s}", "swarmId", swarm, "role", role,
                                              "instance", instance));
    json_object_set_new(e, "correlationId", cid ? json_string(cid) : json_null());
    json_object_set_new(e, "idempotencyKey", json_null());
    json_object_set_new(e, "data", data);
    return e;
}

static json_t *ctl_data(const char *status, int workers, bool full)
{
    json_t *ctx = json_pack(
        "{s:s, s:s, s:{s:i, s:i, s:i, s:i}, s:s, s:f, s:{}, s:{s:{s:i,s:i,s:i,s:i}}}",
        "swarmStatus", status, "state", status, "totals", "desired", workers, "healthy", workers,
        "running", workers, "enabled", workers, "watermark", "2026-12-01T12:00:00.000Z",
        "maxStalenessSec", 0.5, "scenario", "roles", "generator", "count", workers, "desired",
        workers, "enabled", workers, "tps", 10 * workers);
    json_t *d = json_pack("{s:b, s:i, s:{s:{s:s, s:s}}}", "enabled", 1, "tps", 10 * workers,
                          "ioState", "work", "input", "ok", "output", "ok");
    if (full) {
        json_t *ws = json_array();
        for (int i = 0; i < workers; i++) {
            char inst[32];
            snprintf(inst, sizeof inst, "gen-%d", i);
            json_array_append_new(
                ws, json_pack("{s:s, s:s, s:b, s:i, s:{s:{s:s, s:s}}, s:s, s:b, s:{s:[s], s:[s]}}",
                              "role", "generator", "instance", inst, "enabled", 1, "tps", 10,
                              "ioState", "work", "input", "ok", "output", "ok", "lastSeenAt",
                              "2026-12-01T12:00:00.000Z", "stale", i == 0, "queues", "in",
                              "ph.work.s.in", "out", "ph.work.s.out"));
        }
        json_object_set_new(ctx, "workers", ws);
        json_object_set_new(d, "config", json_object());
        json_object_set_new(d, "io", json_object());
        json_object_set_new(d, "startedAt", json_string("2026-12-01T11:00:00.000Z"));
    }
    json_object_set_new(d, "context", ctx);
    return d;
}

static bool feed(struct registry *r, json_t *env, uint64_t now, struct reg_effect *eff)
{
    struct reg_effect dummy;
    char rk[256];
    const json_t *sc = json_object_get(env, "scope");
    snprintf(rk, sizeof rk, "event.%s.%s.%s.%s.%s",
             strcmp(json_string_value(json_object_get(env, "kind")), "metric") == 0 ? "metric" : "outcome",
             json_string_value(json_object_get(env, "type")),
             json_string_value(json_object_get(sc, "swarmId")),
             json_string_value(json_object_get(sc, "role")),
             json_string_value(json_object_get(sc, "instance")));
    bool ok = reg_feed(r, rk, env, now, eff ? eff : &dummy);
    json_decref(env);
    return ok;
}

static void ctl_status(struct registry *r, const char *swarm, const char *type, const char *status,
                       int workers, uint64_t now, struct reg_effect *eff)
{
    char inst[96];
    snprintf(inst, sizeof inst, "%s-controller", swarm);
    bool full = strcmp(type, "status-full") == 0;
    assert_true(feed(r, envelope("metric", type, swarm, "swarm-controller", inst, NULL,
                                 ctl_data(status, workers, full)),
                     now, eff));
}

static int setup(void **state)
{
    struct registry *r = calloc(1, sizeof *r);
    struct reg_cfg cfg;
    reg_cfg_defaults(&cfg);
    assert_int_equal(reg_init(r, &cfg), PH_OK);
    *state = r;
    return 0;
}

static int teardown(void **state)
{
    reg_free(*state);
    free(*state);
    return 0;
}

/* ---- registry -------------------------------------------------------------- */

static void a_swarm_first_seen_in_a_delta_is_registered_and_asks_for_its_full(void **state)
{
    struct registry *r = *state;
    struct reg_effect eff;
    ctl_status(r, "s1", "status-delta", "RUNNING", 3, 1 * SEC, &eff);
    assert_true(eff.request_full);
    assert_string_equal(eff.swarm, "s1");
    assert_string_equal(eff.controller, "s1-controller");
    struct reg_swarm *s = reg_find(r, "s1");
    assert_non_null(s);
    json_t *j = reg_swarm_json(r, s, 1 * SEC, 0);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "RUNNING");
    assert_int_equal(json_array_size(json_object_get(j, "workers")), 0); /* no full yet */
    assert_false(json_is_true(json_object_get(j, "complete")));
    json_decref(j);
    /* A second delta does not ask again; the full brings the workers. */
    ctl_status(r, "s1", "status-delta", "RUNNING", 3, 2 * SEC, &eff);
    assert_false(eff.request_full);
    ctl_status(r, "s1", "status-full", "RUNNING", 3, 3 * SEC, &eff);
    j = reg_swarm_json(r, s, 3 * SEC, 0);
    assert_int_equal(json_array_size(json_object_get(j, "workers")), 3);
    assert_true(json_is_true(json_object_get(j, "complete")));
    assert_int_equal(json_array_size(json_object_get(j, "queues")), 1);
    json_decref(j);
}

static void health_is_degraded_after_20_s_and_failed_after_40_s_of_silence(void **state)
{
    struct registry *r = *state;
    ctl_status(r, "s1", "status-full", "RUNNING", 1, 0, NULL);
    struct reg_swarm *s = reg_find(r, "s1");
    assert_int_equal(reg_health(r, s, 20 * SEC), REG_HEALTHY);
    assert_int_equal(reg_health(r, s, 21 * SEC), REG_DEGRADED);
    assert_int_equal(reg_health(r, s, 41 * SEC), REG_FAILED);
    ctl_status(r, "s1", "status-delta", "RUNNING", 1, 42 * SEC, NULL);
    assert_int_equal(reg_health(r, s, 43 * SEC), REG_HEALTHY);
}

static void a_removed_swarm_leaves_the_registry(void **state)
{
    struct registry *r = *state;
    ctl_status(r, "a", "status-full", "RUNNING", 1, 0, NULL);
    ctl_status(r, "b", "status-full", "RUNNING", 1, 0, NULL);
    struct reg_effect eff;
    ctl_status(r, "a", "status-delta", "REMOVED", 0, SEC, &eff);
    assert_true(eff.removed);
    assert_null(reg_find(r, "a"));
    assert_non_null(reg_find(r, "b"));
    /* Its last full after the removal does not bring it back. */
    ctl_status(r, "a", "status-full", "REMOVED", 0, 2 * SEC, &eff);
    assert_null(reg_find(r, "a"));
}

static void after_a_reset_the_registry_is_rebuilt_from_fulls_with_stale_workers(void **state)
{
    struct registry *r = *state;
    ctl_status(r, "a", "status-full", "RUNNING", 3, 0, NULL);
    reg_reset(r);
    assert_int_equal(r->n, 0);
    /* The replies: one worker stale, one missing (2 of 3 listed). */
    ctl_status(r, "a", "status-full", "RUNNING", 2, SEC, NULL);
    struct reg_swarm *s = reg_find(r, "a");
    assert_non_null(s);
    json_t *j = reg_swarm_json(r, s, SEC, 0);
    json_t *ws = json_object_get(j, "workers");
    assert_int_equal(json_array_size(ws), 2);
    assert_true(json_is_true(json_object_get(json_array_get(ws, 0), "stale")));
    json_decref(j);
}

static void worker_status_and_malformed_envelopes_are_ignored(void **state)
{
    struct registry *r = *state;
    json_t *d = json_pack("{s:b, s:i, s:{s:{s:s, s:s}}}", "enabled", 1, "tps", 1, "ioState", "work",
                          "input", "ok", "output", "ok");
    assert_false(feed(r, envelope("metric", "status-delta", "s1", "generator", "gen-1", NULL, d), 0,
                      NULL));
    json_t *bad = envelope("metric", "status-delta", "s1", "swarm-controller", "c", NULL,
                           json_pack("{s:s}", "nonsense", "x"));
    assert_false(feed(r, bad, 0, NULL));
    assert_int_equal(r->n, 0);
    assert_int_equal(r->ignored, 2);
}

static void outcomes_are_kept_by_correlation_id(void **state)
{
    struct registry *r = *state;
    reg_issued(r, "c-1", "s1", 0);
    const struct reg_outcome *o = reg_outcome(r, "c-1");
    assert_non_null(o);
    assert_null(o->env);
    assert_true(feed(r, envelope("outcome", "swarm-start", "s1", "swarm-controller", "s1-controller",
                                 "c-1", json_pack("{s:s}", "status", "Running")),
                     SEC, NULL));
    o = reg_outcome(r, "c-1");
    assert_non_null(o->env);
    assert_null(reg_outcome(r, "c-2"));
}

static void a_swarm_without_its_full_is_asked_again_after_10_s(void **state)
{
    struct registry *r = *state;
    ctl_status(r, "s1", "status-delta", "RUNNING", 1, 0, NULL);
    char ids[4][PH_ID_MAX], ctl[4][PH_ID_MAX];
    assert_int_equal(reg_wanting_full(r, 5 * SEC, ids, ctl, 4), 0);
    assert_int_equal(reg_wanting_full(r, 11 * SEC, ids, ctl, 4), 1);
    assert_string_equal(ids[0], "s1");
    reg_full_requested(r, "s1", 11 * SEC);
    assert_int_equal(reg_wanting_full(r, 12 * SEC, ids, ctl, 4), 0);
    ctl_status(r, "s1", "status-full", "RUNNING", 1, 13 * SEC, NULL);
    assert_int_equal(reg_wanting_full(r, 40 * SEC, ids, ctl, 4), 0);
}

/* ---- API ------------------------------------------------------------------- */

static void the_projection_says_when_its_worker_list_was_taken(void **state)
{
    struct registry *r = *state;
    ctl_status(r, "s1", "status-delta", "RUNNING", 3, 1 * SEC, NULL);
    struct reg_swarm *s = reg_find(r, "s1");
    json_t *j = reg_swarm_json(r, s, 1 * SEC, 0);
    assert_true(json_is_null(json_object_get(j, "fullAt")));
    assert_true(json_is_null(json_object_get(j, "fullAgeSec")));
    json_decref(j);
    ctl_status(r, "s1", "status-full", "RUNNING", 3, 3 * SEC, NULL);
    /* A later delta refreshes the aggregate, not the worker list's age. */
    json_t *d = envelope("metric", "status-delta", "s1", "swarm-controller", "s1-controller", NULL,
                         ctl_data("RUNNING", 3, false));
    json_object_set_new(d, "timestamp", json_string("2026-12-01T12:00:04.500Z"));
    assert_true(feed(r, d, 4 * SEC, NULL));
    j = reg_swarm_json(r, s, 5 * SEC + 250000000ull, 0);
    assert_string_equal(json_string_value(json_object_get(j, "fullAt")),
                        "2026-12-01T12:00:00.000Z");
    assert_true(json_real_value(json_object_get(j, "fullAgeSec")) > 2.249 &&
                json_real_value(json_object_get(j, "fullAgeSec")) < 2.251);
    assert_string_equal(json_string_value(json_object_get(j, "lastStatusAt")),
                        "2026-12-01T12:00:04.500Z");
    json_decref(j);
}

struct published {
    int n;
    char type[16][32], swarm[16][64], role[16][64], instance[16][64], cid[16][64];
    bool fail;
};

static int fake_publish(void *ctx, const char *type, const char *swarm, const char *role,
                        const char *instance, const char *cid, const char *ikey, json_t *data)
{
    (void)ikey;
    struct published *p = ctx;
    json_decref(data);
    if (p->fail) return -1;
    assert_true(p->n < 16);
    snprintf(p->type[p->n], 32, "%s", type);
    snprintf(p->swarm[p->n], 64, "%s", swarm ? swarm : "ALL");
    snprintf(p->role[p->n], 64, "%s", role ? role : "ALL");
    snprintf(p->instance[p->n], 64, "%s", instance ? instance : "ALL");
    snprintf(p->cid[p->n], 64, "%s", cid);
    p->n++;
    return 0;
}

/* A request with the given Content-Type (NULL: none). */
static json_t *call_typed(struct api *a, const char *method, const char *path, const char *type,
                          const char *body, uint64_t now, int want_status)
{
    struct api_resp resp;
    api_handle(a, method, path, type, body, body ? strlen(body) : 0, now, 0, &resp);
    if (resp.status != want_status)
        fail_msg("%s %s: status %d, wanted %d: %s", method, path, resp.status, want_status,
                 resp.body ? resp.body : "");
    json_t *j = NULL;
    if (resp.content_type != NULL && strcmp(resp.content_type, "application/json") == 0) {
        j = json_loadb(resp.body, resp.len, 0, NULL);
        assert_non_null(j);
    }
    api_resp_free(&resp);
    return j;
}

/* A request as the UI sends it: a POST says its body is JSON. */
static json_t *call(struct api *a, const char *method, const char *path, const char *body,
                    uint64_t now, int want_status)
{
    const char *type = strcmp(method, "POST") == 0 ? "application/json" : NULL;
    return call_typed(a, method, path, type, body, now, want_status);
}

static void get_swarms_lists_each_projection_with_the_documented_fields(void **state)
{
    struct registry *r = *state;
    struct api a;
    struct published p = {0};
    api_init(&a, r, fake_publish, &p);
    json_t *j = call(&a, "GET", "/api/swarms", NULL, 0, 200);
    assert_int_equal(json_array_size(j), 0);
    json_decref(j);
    ctl_status(r, "s1", "status-full", "RUNNING", 2, 0, NULL);
    j = call(&a, "GET", "/api/swarms", NULL, SEC, 200);
    assert_int_equal(json_array_size(j), 1);
    json_t *s = json_array_get(j, 0);
    static const char *const keys[] = {"id", "status", "health", "workEnabled", "totals",
                                       "workers", "tps", "ioState", "heartbeatAgeSec", "roles",
                                       "queues"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        if (json_object_get(s, keys[k]) == NULL) fail_msg("no '%s' in %s", keys[k], "a swarm");
    assert_string_equal(json_string_value(json_object_get(s, "health")), "healthy");
    json_decref(j);
    j = call(&a, "GET", "/api/swarms/s1", NULL, SEC, 200);
    assert_string_equal(json_string_value(json_object_get(j, "id")), "s1");
    json_decref(j);
}

static void refresh_asks_every_known_swarm_and_a_second_call_within_2_s_is_throttled(void **state)
{
    struct registry *r = *state;
    struct api a;
    struct published p = {0};
    api_init(&a, r, fake_publish, &p);
    ctl_status(r, "s1", "status-full", "RUNNING", 1, 0, NULL);
    ctl_status(r, "s2", "status-full", "RUNNING", 1, 0, NULL);
    json_t *j = call(&a, "POST", "/api/control-plane/refresh", NULL, 10 * SEC, 202);
    assert_string_equal(json_string_value(json_object_get(j, "mode")), "refresh");
    assert_int_equal(json_integer_value(json_object_get(j, "signalsPublished")), 2);
    assert_false(json_is_true(json_object_get(j, "throttled")));
    assert_non_null(json_string_value(json_object_get(j, "correlationId")));
    assert_non_null(json_string_value(json_object_get(j, "idempotencyKey")));
    assert_non_null(json_string_value(json_object_get(j, "issuedAt")));
    json_decref(j);
    assert_int_equal(p.n, 2);
    assert_string_equal(p.type[0], "status-request");
    assert_string_equal(p.swarm[0], "s1");
    assert_string_equal(p.role[0], "ALL");
    assert_string_equal(p.instance[0], "ALL");
    /* No wipe: both still there. */
    assert_int_equal(r->n, 2);
    j = call(&a, "POST", "/api/control-plane/refresh", NULL, 11 * SEC, 202);
    assert_true(json_is_true(json_object_get(j, "throttled")));
    assert_int_equal(json_integer_value(json_object_get(j, "signalsPublished")), 0);
    json_decref(j);
    assert_int_equal(p.n, 2);
    j = call(&a, "POST", "/api/control-plane/refresh", NULL, 13 * SEC, 202);
    assert_false(json_is_true(json_object_get(j, "throttled")));
    json_decref(j);
}

static void the_orchestrators_own_rebuild_does_not_throttle_a_callers_refresh(void **state)
{
    struct registry *r = *state;
    struct api a;
    struct published p = {0};
    api_init(&a, r, fake_publish, &p);
    json_decref(api_broadcast(&a, false, false, 10 * SEC, 0)); /* on (re)connect */
    json_t *j = call(&a, "POST", "/api/control-plane/refresh", NULL, 10 * SEC + 1, 202);
    assert_false(json_is_true(json_object_get(j, "throttled")));
    json_decref(j);
    assert_int_equal(p.n, 2);
}

static void reset_wipes_the_projection_then_asks_every_controller(void **state)
{
    struct registry *r = *state;
    struct api a;
    struct published p = {0};
    api_init(&a, r, fake_publish, &p);
    ctl_status(r, "s1", "status-full", "RUNNING", 1, 0, NULL);
    json_t *j = call(&a, "POST", "/api/control-plane/reset", NULL, SEC, 202);
    assert_string_equal(json_string_value(json_object_get(j, "mode")), "reset");
    json_decref(j);
    assert_int_equal(r->n, 0);
    assert_int_equal(p.n, 1);
    assert_string_equal(p.swarm[0], "ALL");
    assert_string_equal(p.role[0], "swarm-controller");
    j = call(&a, "GET", "/api/swarms", NULL, SEC, 200);
    assert_int_equal(json_array_size(j), 0);
    json_decref(j);
}

static void start_publishes_to_the_controller_and_its_outcome_can_be_fetched(void **state)
{
    struct registry *r = *state;
    struct api a;
    struct published p = {0};
    api_init(&a, r, fake_publish, &p);
    ctl_status(r, "s1", "status-full", "READY", 1, 0, NULL);
    json_t *j = call(&a, "POST", "/api/swarms/s1/start", NULL, SEC, 202);
    const char *cid = json_string_value(json_object_get(j, "correlationId"));
    assert_non_null(cid);
    char c[64];
    snprintf(c, sizeof c, "%s", cid);
    json_decref(j);
    assert_string_equal(p.type[0], "swarm-start");
    assert_string_equal(p.role[0], "swarm-controller");
    assert_string_equal(p.instance[0], "s1-controller");
    char path[160];
    snprintf(path, sizeof path, "/api/swarms/s1/outcomes/%s", c);
    j = call(&a, "GET", path, NULL, SEC, 202);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "pending");
    json_decref(j);
    assert_true(feed(r, envelope("outcome", "swarm-start", "s1", "swarm-controller", "s1-controller",
                                 c, json_pack("{s:s}", "status", "Running")),
                     2 * SEC, NULL));
    j = call(&a, "GET", path, NULL, 2 * SEC, 200);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "data"), "status")),
                        "Running");
    json_decref(j);
    /* A retry with a given idempotencyKey carries it. */
    j = call(&a, "POST", "/api/swarms/s1/stop", "{\"idempotencyKey\": \"k-1\"}", 3 * SEC, 202);
    assert_string_equal(json_string_value(json_object_get(j, "idempotencyKey")), "k-1");
    json_decref(j);
    /* The broker away: 503, nothing issued. */
    p.fail = true;
    json_decref(call(&a, "POST", "/api/swarms/s1/stop", NULL, 4 * SEC, 503));
}

static void errors_are_json_with_the_right_status(void **state)
{
    struct registry *r = *state;
    struct api a;
    struct published p = {0};
    api_init(&a, r, fake_publish, &p);
    ctl_status(r, "s1", "status-full", "READY", 1, 0, NULL);
    json_t *j = call(&a, "GET", "/api/nothing", NULL, 0, 404);
    assert_non_null(json_string_value(json_object_get(j, "error")));
    json_decref(j);
    json_decref(call(&a, "GET", "/", NULL, 0, 404));
    json_decref(call(&a, "GET", "/api/swarms/unknown", NULL, 0, 404));
    json_decref(call(&a, "GET", "/api/swarms/bad.id", NULL, 0, 400));
    json_decref(call(&a, "DELETE", "/api/swarms", NULL, 0, 405));
    json_decref(call(&a, "GET", "/api/control-plane/refresh", NULL, 0, 405));
    json_decref(call(&a, "POST", "/api/swarms/s1/start", "{not json", 0, 400));
    json_decref(call(&a, "POST", "/api/swarms/s1/start", "[1]", 0, 400));
    json_decref(call(&a, "POST", "/api/swarms/s1/start", "{\"x\": 1}", 0, 400));
    json_decref(call(&a, "POST", "/api/swarms/s1/start", "{\"idempotencyKey\": \"\"}", 0, 400));
    json_decref(call(&a, "POST", "/api/swarms/s1/explode", NULL, 0, 404));
    json_decref(call(&a, "GET", "/api/swarms/s1/outcomes/nope", NULL, 0, 404));
    json_decref(call(&a, "GET", "/api/ui-config", NULL, 0, 404));
    char *big = malloc(API_MAX_BODY + 2);
    memset(big, ' ', API_MAX_BODY + 1);
    big[API_MAX_BODY + 1] = '\0';
    json_decref(call(&a, "POST", "/api/swarms/s1/start", big, 0, 413));
    free(big);
    assert_int_equal(p.n, 0);
}

static void metrics_carry_the_swarm_label_on_every_swarm_series(void **state)
{
    struct registry *r = *state;
    struct api a;
    struct published p = {0};
    api_init(&a, r, fake_publish, &p);
    ctl_status(r, "s1", "status-full", "RUNNING", 2, 0, NULL);
    ctl_status(r, "s2", "status-full", "STOPPED", 1, 0, NULL);
    struct api_resp resp;
    api_handle(&a, "GET", "/metrics", NULL, NULL, 0, 25 * SEC, 0, &resp);
    assert_int_equal(resp.status, 200);
    assert_non_null(strstr(resp.content_type, "text/plain"));
    assert_non_null(strstr(resp.body, "ph_swarm_tps{swarm=\"s1\"} 20\n"));
    assert_non_null(strstr(resp.body, "ph_swarm_workers{swarm=\"s2\",kind=\"desired\"} 1\n"));
    assert_non_null(strstr(resp.body, "health=\"degraded\""));
    char *save = NULL;
    for (char *line = strtok_r(resp.body, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        if (strncmp(line, "ph_swarm_", 9) == 0 && strstr(line, "{swarm=\"") == NULL)
            fail_msg("series without a swarm label: %s", line);
        /* name{labels} value */
        assert_non_null(strchr(line, ' '));
    }
    api_resp_free(&resp);
}

static void no_request_of_any_shape_crashes_the_api(void **state)
{
    struct registry *r = *state;
    struct api a;
    struct published p = {0};
    api_init(&a, r, fake_publish, &p);
    ctl_status(r, "s1", "status-full", "RUNNING", 2, 0, NULL);
    static const char *const methods[] = {"GET", "POST", "PUT", "DELETE", "HEAD", "", "G\x01T"};
    static const char *const parts[] = {"api", "swarms", "s1", "start", "outcomes", "metrics",
                                        "control-plane", "refresh", "reset", "..", "%00", "",
                                        "ALL", "a.b", "\xff\xfe", "?x=1"};
    static const char *const bodies[] = {NULL, "", "{", "{}", "[]", "null", "\"x\"",
                                         "{\"idempotencyKey\": 5}", "{\"idempotencyKey\": \"ok\"}"};
    static const char *const types[] = {NULL, "application/json", "text/plain", "",
                                        "application/json; charset=\xff"};
    uint32_t seed = 7;
    for (int i = 0; i < 20000; i++) {
        char path[512] = "";
        int n = (int)(seed % 7);
        for (int k = 0; k < n; k++) {
            seed = seed * 1103515245u + 12345u;
            strcat(path, "/");
            strcat(path, parts[(seed >> 8) % (sizeof parts / sizeof parts[0])]);
        }
        seed = seed * 1103515245u + 12345u;
        const char *m = methods[(seed >> 8) % (sizeof methods / sizeof methods[0])];
        const char *b = bodies[(seed >> 16) % (sizeof bodies / sizeof bodies[0])];
        struct api_resp resp;
        const char *t = types[(seed >> 20) % (sizeof types / sizeof types[0])];
        api_handle(&a, m, path[0] ? path : "/", t, b, b ? strlen(b) : 0, (uint64_t)i * SEC / 10, 0,
                   &resp);
        assert_true(resp.status >= 200 && resp.status < 600);
        assert_non_null(resp.body);
        api_resp_free(&resp);
        seed = seed * 1103515245u + 12345u;
    }
}

static void a_post_without_a_json_content_type_is_refused_415_and_changes_nothing(void **state)
{
    struct registry *r = *state;
    struct api a;
    struct published p = {0};
    api_init(&a, r, fake_publish, &p);
    ctl_status(r, "s1", "status-full", "READY", 1, 0, NULL);
    /* What a form or a preflight-free fetch of another site can send. */
    static const char *const refused[] = {NULL,
                                          "",
                                          "text/plain",
                                          "text/plain; charset=utf-8",
                                          "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x",
                                          "application/jsonp",
                                          "application/json-patch+json",
                                          "json"};
    static const char *const paths[] = {
        "/api/swarms/s1/start",          "/api/swarms/s1/stop",        "/api/swarms/s1/remove",
        "/api/swarms/s1/status-request", "/api/control-plane/refresh", "/api/control-plane/reset"};
    for (size_t t = 0; t < sizeof refused / sizeof refused[0]; t++)
        for (size_t k = 0; k < sizeof paths / sizeof paths[0]; k++) {
            json_t *j = call_typed(&a, "POST", paths[k], refused[t], "{}", SEC, 415);
            assert_non_null(strstr(json_string_value(json_object_get(j, "error")),
                                   "Content-Type: application/json"));
            json_decref(j);
        }
    assert_int_equal(p.n, 0);
    assert_int_equal(r->n, 1); /* no reset happened */
    /* The type in any case, with parameters. */
    json_decref(call_typed(&a, "POST", "/api/swarms/s1/start", "Application/JSON; charset=UTF-8",
                           NULL, SEC, 202));
    json_decref(call_typed(&a, "POST", "/api/swarms/s1/stop", " application/json ;charset=utf-8",
                           "{}", SEC, 202));
    assert_int_equal(p.n, 2);
    /* A wrong method stays a 405, whatever its type; GETs need none. */
    json_decref(call_typed(&a, "DELETE", "/api/swarms/s1/start", NULL, NULL, SEC, 405));
    json_decref(call_typed(&a, "GET", "/api/swarms/s1", NULL, NULL, SEC, 200));
}

static void json_content_types_are_recognised_with_parameters_only(void **state)
{
    (void)state;
    assert_true(guard_json_type("application/json"));
    assert_true(guard_json_type("application/json;charset=utf-8"));
    assert_true(guard_json_type("APPLICATION/Json ; charset=\"utf-8\""));
    assert_true(guard_json_type("  application/json\t"));
    assert_false(guard_json_type(NULL));
    assert_false(guard_json_type(""));
    assert_false(guard_json_type("application/jsonx"));
    assert_false(guard_json_type("application/json+x"));
    assert_false(guard_json_type("application/json, text/plain"));
    assert_false(guard_json_type("text/plain; application/json"));
    assert_false(guard_json_type("application/js"));
}

static void loopback_host_headers_are_recognised_with_or_without_a_port(void **state)
{
    (void)state;
    static const char *const yes[] = {
        "localhost",       "LocalHost:8088",       "127.0.0.1",
        "127.0.0.1:8088",  "127.255.3.4:1",        "[::1]",
        "[::1]:8088",      "[0:0:0:0:0:0:0:1]:80", "[::ffff:127.0.0.1]:8088",
        " localhost:8088 "};
    static const char *const no[] = {"evil.example",
                                     "evil.example:8088",
                                     "localhost.evil.example",
                                     "127.0.0.1.evil.example",
                                     "foo.localhost",
                                     "localhost.",
                                     "128.0.0.1",
                                     "10.0.0.1:8088",
                                     "0.0.0.0",
                                     "[::2]",
                                     "::1",
                                     "[::1",
                                     "127.1",
                                     "localhost:",
                                     "localhost:99999",
                                     "localhost:80x",
                                     "localhost:8088:1",
                                     "[::1]x",
                                     "",
                                     " ",
                                     "local host",
                                     "localhost@evil.example"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (!guard_host_is_loopback(yes[i])) fail_msg("'%s' is loopback", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (guard_host_is_loopback(no[i])) fail_msg("'%s' is not loopback", no[i]);
    assert_false(guard_host_is_loopback(NULL));
}

static void on_loopback_only_loopback_and_allowed_hosts_are_answered(void **state)
{
    (void)state;
    struct guard_hosts g;
    char err[256];
    /* Listening on 127.0.0.1: the DNS-rebinding case is refused. */
    assert_true(guard_hosts_init(&g, true, NULL, 0, err, sizeof err));
    assert_true(guard_host_allowed(&g, "127.0.0.1:8088"));
    assert_true(guard_host_allowed(&g, "localhost:8088"));
    assert_true(guard_host_allowed(&g, NULL)); /* HTTP/1.0: no browser */
    assert_false(guard_host_allowed(&g, "evil.example"));
    assert_false(guard_host_allowed(&g, "evil.example:8088"));
    assert_false(guard_host_allowed(&g, ""));
    /* Names given: those too, port and case aside. */
    const char *names[] = {"Orch.Example", "proxy.lan:443", "[fd00::1]"};
    assert_true(guard_hosts_init(&g, true, names, 3, err, sizeof err));
    assert_true(guard_host_allowed(&g, "orch.example"));
    assert_true(guard_host_allowed(&g, "ORCH.example:8088"));
    assert_true(guard_host_allowed(&g, "proxy.lan"));
    assert_true(guard_host_allowed(&g, "[FD00::1]:8088"));
    assert_true(guard_host_allowed(&g, "[::1]"));
    assert_false(guard_host_allowed(&g, "evil.example"));
    assert_false(guard_host_allowed(&g, "orch.example.evil.example"));
    /* Another address: any Host, unless names are given. */
    assert_true(guard_hosts_init(&g, false, NULL, 0, err, sizeof err));
    assert_true(guard_host_allowed(&g, "evil.example"));
    assert_true(guard_host_allowed(&g, "10.1.2.3:8088"));
    assert_true(guard_hosts_init(&g, false, names, 1, err, sizeof err));
    assert_true(guard_host_allowed(&g, "orch.example:8088"));
    assert_true(guard_host_allowed(&g, "localhost"));
    assert_false(guard_host_allowed(&g, "10.1.2.3:8088"));
    /* Names that are not names, too many. */
    const char *bad[] = {"a b", "fd00::1", "x:port", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_false(guard_hosts_init(&g, true, &bad[i], 1, err, sizeof err));
        assert_non_null(strstr(err, "--allowed-host"));
    }
    const char *many[GUARD_HOSTS_MAX + 1];
    for (size_t i = 0; i < GUARD_HOSTS_MAX + 1; i++)
        many[i] = "h.example";
    assert_false(guard_hosts_init(&g, true, many, GUARD_HOSTS_MAX + 1, err, sizeof err));
}

/* Every identifier that cannot be a routing-key segment, as the swarm of
 * each route that takes one (libmicrohttpd hands the API the decoded
 * path): 400 with a JSON error, nothing published. */
static void bad_swarm_ids_in_every_route_are_refused_with_400(void **state)
{
    struct registry *r = *state;
    struct api a;
    struct published p = {0};
    api_init(&a, r, fake_publish, &p);
    ctl_status(r, "s1", "status-full", "RUNNING", 1, 0, NULL);
    char long_id[201];
    memset(long_id, 'x', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    const char *bad[] = {"a.b", "a#", "*", "", long_id, "a b", "\xc3\xa9", "../x", "ALL"};
    /* method, then the path around the id */
    static const char *const routes[][2] = {
        {"GET", ""},         {"POST", "/start"},          {"POST", "/stop"},
        {"POST", "/remove"}, {"POST", "/status-request"}, {"GET", "/outcomes/c-1"},
    };
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
        for (size_t k = 0; k < sizeof routes / sizeof routes[0]; k++) {
            char path[512];
            /* "/api/swarms/" is the list itself, not an empty id. */
            if (bad[b][0] == '\0' && routes[k][1][0] == '\0') continue;
            snprintf(path, sizeof path, "/api/swarms/%s%s", bad[b], routes[k][1]);
            struct api_resp resp;
            const char *type = strcmp(routes[k][0], "POST") == 0 ? "application/json" : NULL;
            api_handle(&a, routes[k][0], path, type, NULL, 0, SEC, 0, &resp);
            /* 400 says the id itself is refused (an unknown swarm is 404);
             * an empty one makes another route: any 4xx. */
            if (bad[b][0] != '\0' ? resp.status != 400 : resp.status < 400 || resp.status > 499)
                fail_msg("%s %.60s: status %d, wanted %s", routes[k][0], path, resp.status,
                         bad[b][0] != '\0' ? "400" : "4xx");
            json_t *j = json_loadb(resp.body, resp.len, 0, NULL);
            if (!json_is_string(json_object_get(j, "error")))
                fail_msg("%s %.60s: no JSON error in %.*s", routes[k][0], path, (int)resp.len,
                         resp.body ? resp.body : "");
            json_decref(j);
            api_resp_free(&resp);
        }
    }
    assert_int_equal(p.n, 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(a_swarm_first_seen_in_a_delta_is_registered_and_asks_for_its_full),
        T(health_is_degraded_after_20_s_and_failed_after_40_s_of_silence),
        T(a_removed_swarm_leaves_the_registry),
        T(after_a_reset_the_registry_is_rebuilt_from_fulls_with_stale_workers),
        T(worker_status_and_malformed_envelopes_are_ignored),
        T(outcomes_are_kept_by_correlation_id),
        T(a_swarm_without_its_full_is_asked_again_after_10_s),
        T(the_projection_says_when_its_worker_list_was_taken),
        T(get_swarms_lists_each_projection_with_the_documented_fields),
        T(refresh_asks_every_known_swarm_and_a_second_call_within_2_s_is_throttled),
        T(the_orchestrators_own_rebuild_does_not_throttle_a_callers_refresh),
        T(reset_wipes_the_projection_then_asks_every_controller),
        T(start_publishes_to_the_controller_and_its_outcome_can_be_fetched),
        T(errors_are_json_with_the_right_status),
        T(metrics_carry_the_swarm_label_on_every_swarm_series),
        T(no_request_of_any_shape_crashes_the_api),
        T(bad_swarm_ids_in_every_route_are_refused_with_400),
        T(a_post_without_a_json_content_type_is_refused_415_and_changes_nothing),
        T(json_content_types_are_recognised_with_parameters_only),
        T(loopback_host_headers_are_recognised_with_or_without_a_port),
        T(on_loopback_only_loopback_and_allowed_hosts_are_answered),
    };
    return cmocka_run_group_tests_name("orchestrator registry and API", tests, NULL, NULL);
}
