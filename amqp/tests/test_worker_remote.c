/* The worker SDK's remote mode without a broker (ph/worker_remote.h):
 *   - the envelopes the agent publishes have the contract's exact shapes
 *     (key order, closed status data, routing keys);
 *   - the signal parser accepts what the contract allows (data.enabled as
 *     a bool or "true"/"false", the patch nested as data.data, ALL scopes),
 *     refuses malformed envelopes and leaves config-updates of other
 *     origins to the swarm controller;
 *   - a worker in remote mode with an unreachable broker attaches at once,
 *     counts, publishes, polls and detaches cleanly, leaving nothing in
 *     /dev/shm. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ph/common.h"
#include "ph/worker.h"
#include "ph/worker_remote.h"

static const struct ph_wr_ident ID = {.swarm = "sw1",
                                      .role = "generator",
                                      .instance = "g1",
                                      .controller = "sw1-controller",
                                      .location = "host-a",
                                      .heartbeat_ms = 5000};

/* The object's keys, comma-separated, in order. */
static void keys_of(const json_t *o, char *buf, size_t n)
{
    buf[0] = '\0';
    for (void *it = json_object_iter((json_t *)o); it != NULL;
         it = json_object_iter_next((json_t *)o, it)) {
        if (buf[0] != '\0') strncat(buf, ",", n - strlen(buf) - 1);
        strncat(buf, json_object_iter_key(it), n - strlen(buf) - 1);
    }
}

static void assert_keys(const json_t *o, const char *want)
{
    char got[512];
    keys_of(o, got, sizeof got);
    assert_string_equal(got, want);
}

#define ENVELOPE_KEYS "timestamp,version,kind,type,origin,scope,correlationId,idempotencyKey,data"

static void assert_envelope(const json_t *env, const char *kind, const char *type)
{
    assert_non_null(env);
    assert_keys(env, ENVELOPE_KEYS);
    const char *ts = json_string_value(json_object_get(env, "timestamp"));
    assert_non_null(ts);
    assert_int_equal(strlen(ts), 24);
    assert_int_equal(ts[23], 'Z');
    assert_string_equal(json_string_value(json_object_get(env, "version")), "1");
    assert_string_equal(json_string_value(json_object_get(env, "kind")), kind);
    assert_string_equal(json_string_value(json_object_get(env, "type")), type);
    assert_string_equal(json_string_value(json_object_get(env, "origin")), "g1");
    const json_t *scope = json_object_get(env, "scope");
    assert_keys(scope, "swarmId,role,instance");
    assert_string_equal(json_string_value(json_object_get(scope, "swarmId")), "sw1");
    assert_string_equal(json_string_value(json_object_get(scope, "role")), "generator");
    assert_string_equal(json_string_value(json_object_get(scope, "instance")), "g1");
}

static void status_full_has_the_contract_shape(void **state)
{
    (void)state;
    json_t *config = json_pack("{s:i,s:s}", "ratePerSec", 10, "inQueue", "q");
    json_t *io = json_pack("{s:{s:{s:[s]}}}", "work", "queues", "in", "q");
    const struct ph_wr_view v = {.enabled = true,
                                 .tps = 42,
                                 .io_in = PH_IN_OK,
                                 .io_out = PH_OUT_THROTTLED,
                                 .config = config,
                                 .io = io,
                                 .started_real_ns = 1700000000123000000ull};
    char rk[256];
    json_t *env =
        ph_wr_status_envelope(1700000001000000000ull, &ID, &v, true, "cid-7", rk, sizeof rk);
    assert_envelope(env, "metric", "status-full");
    assert_string_equal(rk, "event.metric.status-full.sw1.generator.g1");
    assert_string_equal(json_string_value(json_object_get(env, "correlationId")), "cid-7");
    assert_true(json_is_null(json_object_get(env, "idempotencyKey")));
    const json_t *d = json_object_get(env, "data");
    assert_keys(d, "enabled,tps,ioState,config,io,startedAt,context");
    assert_true(json_is_true(json_object_get(d, "enabled")));
    assert_int_equal(json_integer_value(json_object_get(d, "tps")), 42);
    json_t *want_io_state =
        json_pack("{s:{s:s,s:s}}", "work", "input", "ok", "output", "throttled");
    assert_true(json_equal(json_object_get(d, "ioState"), want_io_state));
    json_decref(want_io_state);
    assert_true(json_equal(json_object_get(d, "config"), config));
    assert_true(json_equal(json_object_get(d, "io"), io));
    assert_string_equal(json_string_value(json_object_get(d, "startedAt")),
                        "2023-11-14T22:13:20.123Z");
    const json_t *ctx = json_object_get(d, "context");
    assert_keys(ctx, "location,transport,intervalSeconds");
    assert_string_equal(json_string_value(json_object_get(ctx, "location")), "host-a");
    assert_string_equal(json_string_value(json_object_get(ctx, "transport")), "amqp");
    assert_int_equal(json_integer_value(json_object_get(ctx, "intervalSeconds")), 5);
    json_decref(env);

    /* No config or io yet: empty objects, never missing. */
    const struct ph_wr_view empty = {.io_in = PH_IN_UNKNOWN, .io_out = PH_OUT_UNKNOWN};
    env = ph_wr_status_envelope(1, &ID, &empty, true, NULL, rk, sizeof rk);
    assert_non_null(env);
    d = json_object_get(env, "data");
    assert_true(json_is_object(json_object_get(d, "config")));
    assert_int_equal(json_object_size(json_object_get(d, "config")), 0);
    assert_int_equal(json_object_size(json_object_get(d, "io")), 0);
    assert_true(json_is_null(json_object_get(env, "correlationId")));
    json_decref(env);
    json_decref(config);
    json_decref(io);
}

static void status_delta_carries_no_config_io_or_start(void **state)
{
    (void)state;
    json_t *config = json_pack("{s:i}", "ratePerSec", 10);
    const struct ph_wr_view v = {.enabled = false,
                                 .tps = 0,
                                 .io_in = PH_IN_OUT_OF_DATA,
                                 .io_out = PH_OUT_OK,
                                 .config = config,
                                 .io = config,
                                 .started_real_ns = 1};
    char rk[256];
    json_t *env = ph_wr_status_envelope(2, &ID, &v, false, NULL, rk, sizeof rk);
    assert_envelope(env, "metric", "status-delta");
    assert_string_equal(rk, "event.metric.status-delta.sw1.generator.g1");
    assert_true(json_is_null(json_object_get(env, "correlationId")));
    const json_t *d = json_object_get(env, "data");
    assert_keys(d, "enabled,tps,ioState,context");
    assert_true(json_is_false(json_object_get(d, "enabled")));
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_object_get(d, "ioState"), "work"), "input")),
                        "out-of-data");
    assert_keys(json_object_get(d, "context"), "location,transport");
    json_decref(env);
    json_decref(config);
}

static void outcomes_and_alerts_have_the_contract_shape(void **state)
{
    (void)state;
    char rk[256];
    json_t *env =
        ph_wr_outcome_envelope(3, &ID, true, true, false, "ignored", "c1", "k1", rk, sizeof rk);
    assert_envelope(env, "outcome", "config-update");
    assert_string_equal(rk, "event.outcome.config-update.sw1.generator.g1");
    assert_string_equal(json_string_value(json_object_get(env, "correlationId")), "c1");
    assert_string_equal(json_string_value(json_object_get(env, "idempotencyKey")), "k1");
    const json_t *d = json_object_get(env, "data");
    assert_keys(d, "status,enabled,retryable");
    assert_string_equal(json_string_value(json_object_get(d, "status")), "applied");
    assert_true(json_is_true(json_object_get(d, "enabled")));
    assert_true(json_is_false(json_object_get(d, "retryable")));
    json_decref(env);

    env = ph_wr_outcome_envelope(3, &ID, false, false, true, "no ack", "c2", NULL, rk, sizeof rk);
    assert_envelope(env, "outcome", "config-update");
    assert_true(json_is_null(json_object_get(env, "idempotencyKey")));
    d = json_object_get(env, "data");
    assert_keys(d, "status,enabled,retryable,context");
    assert_string_equal(json_string_value(json_object_get(d, "status")), "failed");
    assert_true(json_is_true(json_object_get(d, "retryable")));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(d, "context"), "message")), "no ack");
    json_decref(env);

    env =
        ph_wr_alert_envelope(4, &ID, "warn", "io.out-of-data", "dataset exhausted", rk, sizeof rk);
    assert_envelope(env, "event", "alert");
    assert_string_equal(rk, "event.alert.alert.sw1.generator.g1");
    assert_true(json_is_null(json_object_get(env, "correlationId")));
    d = json_object_get(env, "data");
    assert_keys(d, "level,code,message");
    assert_string_equal(json_string_value(json_object_get(d, "code")), "io.out-of-data");
    json_decref(env);
}

/* ---- signals ------------------------------------------------------------ */

static char *signal_body(const char *type, const char *origin, const char *role,
                         const char *instance, const char *cid, const char *data_json)
{
    json_t *data = json_loads(data_json, 0, NULL);
    assert_non_null(data);
    json_t *env = ph_wr_envelope(5, "signal", type, origin, "sw1", role, instance, cid, NULL, data);
    assert_non_null(env);
    char *s = json_dumps(env, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(env);
    return s;
}

static enum ph_wr_sig parse(const char *rk, const char *body, struct ph_wr_signal *s)
{
    return ph_wr_signal_parse(&ID, rk, strlen(rk), body, strlen(body), s);
}

static enum ph_wr_sig parse_signal(const char *type, const char *origin, const char *role,
                                   const char *instance, const char *data_json,
                                   struct ph_wr_signal *s)
{
    char rk[256];
    snprintf(rk, sizeof rk, "signal.%s.sw1.%s.%s", type, role ? role : "ALL",
             instance ? instance : "ALL");
    char *body = signal_body(type, origin, role, instance, "cid-1", data_json);
    enum ph_wr_sig v = parse(rk, body, s);
    free(body);
    return v;
}

static void config_update_from_the_controller_is_applied(void **state)
{
    (void)state;
    struct ph_wr_signal s;
    assert_int_equal(parse_signal("config-update", "sw1-controller", "generator", "g1",
                                  "{\"enabled\": true, \"ratePerSec\": 5}", &s),
                     PH_WR_SIG_CONFIG_UPDATE);
    assert_string_equal(s.cid, "cid-1");
    assert_false(s.has_ikey);
    assert_true(json_is_true(json_object_get(s.patch, "enabled")));
    assert_int_equal(json_integer_value(json_object_get(s.patch, "ratePerSec")), 5);
    ph_wr_signal_clear(&s);

    /* "true" / "false" strings become booleans. */
    assert_int_equal(parse_signal("config-update", "sw1-controller", "generator", "g1",
                                  "{\"enabled\": \"false\"}", &s),
                     PH_WR_SIG_CONFIG_UPDATE);
    assert_true(json_is_false(json_object_get(s.patch, "enabled")));
    ph_wr_signal_clear(&s);

    /* The upstream nesting: data.data is the patch. */
    assert_int_equal(parse_signal("config-update", "sw1-controller", "generator", "g1",
                                  "{\"data\": {\"enabled\": \"true\", \"ratePerSec\": 7}}", &s),
                     PH_WR_SIG_CONFIG_UPDATE);
    assert_true(json_is_true(json_object_get(s.patch, "enabled")));
    assert_int_equal(json_integer_value(json_object_get(s.patch, "ratePerSec")), 7);
    assert_null(json_object_get(s.patch, "data"));
    ph_wr_signal_clear(&s);

    /* Addressed to the role and to the whole swarm. */
    assert_int_equal(parse_signal("config-update", "sw1-controller", "generator", NULL,
                                  "{\"enabled\": false}", &s),
                     PH_WR_SIG_CONFIG_UPDATE);
    ph_wr_signal_clear(&s);
    assert_int_equal(
        parse_signal("config-update", "sw1-controller", NULL, NULL, "{\"enabled\": false}", &s),
        PH_WR_SIG_CONFIG_UPDATE);
    ph_wr_signal_clear(&s);

    /* An enabled that is neither: a failed outcome, not a rejection. */
    assert_int_equal(parse_signal("config-update", "sw1-controller", "generator", "g1",
                                  "{\"enabled\": \"maybe\"}", &s),
                     PH_WR_SIG_CONFIG_INVALID);
    assert_null(s.patch);
    assert_non_null(strstr(s.why, "enabled"));
    ph_wr_signal_clear(&s);
}

static void config_update_from_another_origin_is_ignored(void **state)
{
    (void)state;
    struct ph_wr_signal s;
    assert_int_equal(parse_signal("config-update", "orchestrator-1", "generator", "g1",
                                  "{\"enabled\": true}", &s),
                     PH_WR_SIG_IGNORE);
    assert_null(s.patch);
    ph_wr_signal_clear(&s);
    /* Another role's or another instance's. */
    assert_int_equal(parse_signal("config-update", "sw1-controller", "moderator", NULL,
                                  "{\"enabled\": true}", &s),
                     PH_WR_SIG_IGNORE);
    assert_int_equal(parse_signal("config-update", "sw1-controller", "generator", "g2",
                                  "{\"enabled\": true}", &s),
                     PH_WR_SIG_IGNORE);
}

static void status_request_from_any_origin_is_answered(void **state)
{
    (void)state;
    struct ph_wr_signal s;
    assert_int_equal(parse_signal("status-request", "orchestrator-1", "generator", "g1", "{}", &s),
                     PH_WR_SIG_STATUS_REQUEST);
    assert_string_equal(s.cid, "cid-1");
    assert_string_equal(s.origin, "orchestrator-1");
    assert_int_equal(parse_signal("status-request", "ui", NULL, NULL, "{}", &s),
                     PH_WR_SIG_STATUS_REQUEST);
}

static void malformed_signals_are_rejected(void **state)
{
    (void)state;
    struct ph_wr_signal s;
    const char *rk = "signal.config-update.sw1.generator.g1";
    char *good = signal_body("config-update", "sw1-controller", "generator", "g1", "c", "{}");
    assert_int_equal(parse(rk, good, &s), PH_WR_SIG_CONFIG_UPDATE);
    ph_wr_signal_clear(&s);

    struct {
        const char *rk, *body;
    } bad[] = {
        {rk, "not json"},
        {rk, "[1,2]"},
        {rk, "{}"},
        /* correlationId empty, missing; extra key; wrong kind; version */
        {rk, "{\"timestamp\":\"2026-01-01T00:00:00.000Z\",\"version\":\"1\",\"kind\":\"signal\","
             "\"type\":\"config-update\",\"origin\":\"sw1-controller\",\"scope\":{\"swarmId\":"
             "\"sw1\",\"role\":\"generator\",\"instance\":\"g1\"},\"correlationId\":\"\","
             "\"idempotencyKey\":null,\"data\":{}}"},
        {rk, "{\"timestamp\":\"2026-01-01T00:00:00.000Z\",\"version\":\"1\",\"kind\":\"signal\","
             "\"type\":\"config-update\",\"origin\":\"sw1-controller\",\"scope\":{\"swarmId\":"
             "\"sw1\",\"role\":\"generator\",\"instance\":\"g1\"},"
             "\"idempotencyKey\":null,\"data\":{}}"},
        {rk, "{\"timestamp\":\"2026-01-01T00:00:00.000Z\",\"version\":\"1\",\"kind\":\"signal\","
             "\"type\":\"config-update\",\"origin\":\"sw1-controller\",\"scope\":{\"swarmId\":"
             "\"sw1\",\"role\":\"generator\",\"instance\":\"g1\"},\"correlationId\":\"c\","
             "\"idempotencyKey\":null,\"data\":{},\"extra\":1}"},
        {rk, "{\"timestamp\":\"2026-01-01T00:00:00.000Z\",\"version\":\"1\",\"kind\":\"outcome\","
             "\"type\":\"config-update\",\"origin\":\"sw1-controller\",\"scope\":{\"swarmId\":"
             "\"sw1\",\"role\":\"generator\",\"instance\":\"g1\"},\"correlationId\":\"c\","
             "\"idempotencyKey\":null,\"data\":{}}"},
        {rk, "{\"timestamp\":\"2026-01-01T00:00:00.000Z\",\"version\":\"2\",\"kind\":\"signal\","
             "\"type\":\"config-update\",\"origin\":\"sw1-controller\",\"scope\":{\"swarmId\":"
             "\"sw1\",\"role\":\"generator\",\"instance\":\"g1\"},\"correlationId\":\"c\","
             "\"idempotencyKey\":null,\"data\":{}}"},
        /* data not an object; timestamp not a time; idempotencyKey empty */
        {rk, "{\"timestamp\":\"2026-01-01T00:00:00.000Z\",\"version\":\"1\",\"kind\":\"signal\","
             "\"type\":\"config-update\",\"origin\":\"sw1-controller\",\"scope\":{\"swarmId\":"
             "\"sw1\",\"role\":\"generator\",\"instance\":\"g1\"},\"correlationId\":\"c\","
             "\"idempotencyKey\":null,\"data\":[]}"},
        {rk, "{\"timestamp\":\"yesterday\",\"version\":\"1\",\"kind\":\"signal\","
             "\"type\":\"config-update\",\"origin\":\"sw1-controller\",\"scope\":{\"swarmId\":"
             "\"sw1\",\"role\":\"generator\",\"instance\":\"g1\"},\"correlationId\":\"c\","
             "\"idempotencyKey\":null,\"data\":{}}"},
        {rk, "{\"timestamp\":\"2026-01-01T00:00:00.000Z\",\"version\":\"1\",\"kind\":\"signal\","
             "\"type\":\"config-update\",\"origin\":\"sw1-controller\",\"scope\":{\"swarmId\":"
             "\"sw1\",\"role\":\"generator\",\"instance\":\"g1\"},\"correlationId\":\"c\","
             "\"idempotencyKey\":\"\",\"data\":{}}"},
        /* routing key: wrong family, too few segments, type or scope disagreeing */
        {"event.config-update.sw1.generator.g1", good},
        {"signal.config-update.sw1.generator", good},
        {"signal.status-request.sw1.generator.g1", good},
        {"signal.config-update.sw1.generator.ALL", good},
        {"signal.config-update.sw1.generator.g2", good},
        {"signal.reboot.sw1.generator.g1", good},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const enum ph_wr_sig v = parse(bad[i].rk, bad[i].body, &s);
        if (v != PH_WR_SIG_REJECT) fail_msg("case %zu accepted (%d): %s", i, (int)v, s.why);
        assert_true(s.why[0] != '\0');
        assert_null(s.patch);
    }
    free(good);
}

static void rejected_messages_are_quoted_without_secrets(void **state)
{
    (void)state;
    char out[121];
    const char *body = "{\"data\":{\"dbPassword\":\"hunter2\"}}";
    ph_wr_log_prefix(body, strlen(body), out, sizeof out);
    assert_null(strstr(out, "hunter2"));
    assert_non_null(strstr(out, "dbPassword"));
    body = "{\"url\":\"amqp://user:s3cret@host/\"}";
    ph_wr_log_prefix(body, strlen(body), out, sizeof out);
    assert_null(strstr(out, "s3cret"));
    body = "plain\x01text";
    ph_wr_log_prefix(body, strlen(body), out, sizeof out);
    assert_string_equal(out, "plain?text");
}

/* ---- the private plane ------------------------------------------------- */

static void unreachable_broker(void)
{
    /* Port 1 on loopback: every connection is refused at once. */
    setenv("PH_AMQP_URL", "amqp://u:p@127.0.0.1:1/", 1);
    unsetenv("PH_AMQP_URL_FILE");
    unsetenv("PH_WORKER_MODE");
}

static bool shm_exists(const char *swarm)
{
    char path[128];
    snprintf(path, sizeof path, "/dev/shm/ph.%s", swarm);
    return access(path, F_OK) == 0;
}

static void remote_worker_runs_without_a_broker(void **state)
{
    (void)state;
    unreachable_broker();
    char swarm[64];
    snprintf(swarm, sizeof swarm, "pht-wr-%d", (int)getpid());
    char err[256] = "";
    const uint64_t t0 = ph_mono_ns();
    ph_worker *w = ph_worker_attach(&(struct ph_worker_opts){.swarm_id = swarm,
                                                             .role = "generator",
                                                             .instance = "g1",
                                                             .config_json = "{\"ratePerSec\": 3, "
                                                                            "\"apiKey\": \"x\"}",
                                                             .mode = PH_WORKER_REMOTE,
                                                             .location = "test-host"},
                                    err, sizeof err);
    if (w == NULL) fail_msg("attach: %s", err);
    assert_true(ph_mono_ns() - t0 < 1000000000ull);
    assert_true(ph_worker_remote(w));
    assert_false(shm_exists(swarm));
    assert_false(ph_worker_controller_alive(w, 1000));
    ph_worker_set_enabled(w, true);
    ph_worker_set_io_state(w, PH_IN_OK, PH_OUT_OK);
    for (int i = 0; i < 200; i++) {
        ph_worker_count(w, 5);
        ph_worker_tick(w);
        if (i % 50 == 0) {
            json_t *io = json_pack("{s:{}}", "work");
            assert_int_equal(ph_worker_publish_io(w, io), PH_OK);
            json_decref(io);
            assert_true(ph_worker_alert(w, "info", "test.alert", "a test alert"));
        }
        struct ph_command cmd;
        assert_int_equal(ph_worker_poll_command(w, &cmd), 0);
        usleep(1000);
    }
    /* The agent drains the ring: far more than it holds (64 KiB) goes
     * through without a drop. Paced so that the ring fills only if the
     * agent stops draining, not when it is slow: the agent looks every
     * PH_WR_POLL_MS (20 ms), and in that time about 80 alerts of ~100
     * bytes arrive, an eighth of the ring; a TSan build on a loaded
     * machine once fell behind at a 50 us pace. */
    for (int i = 0; i < 3000; i++) {
        if (!ph_worker_alert(w, "info", "test.flood", "a test alert of a few dozen bytes"))
            fail_msg("alert %d dropped: the agent does not drain the status ring", i);
        usleep(250);
    }
    assert_true(ph_worker_publish_status(w));
    assert_int_equal(ph_worker_processed(w), 1000);
    assert_int_equal(ph_worker_overflows(w), 0);
    const uint64_t t1 = ph_mono_ns();
    ph_worker_detach(w);
    assert_true(ph_mono_ns() - t1 < 2000000000ull);
    assert_false(shm_exists(swarm));
}

static void auto_mode_goes_remote_only_with_a_broker(void **state)
{
    (void)state;
    unreachable_broker();
    char err[256];
    struct ph_worker_opts o = {.swarm_id = "pht-wr-none", .role = "r", .instance = "i1"};
    /* AUTO: no segment, a broker URL: remote. */
    ph_worker *w = ph_worker_attach(&o, err, sizeof err);
    if (w == NULL) fail_msg("attach: %s", err);
    assert_true(ph_worker_remote(w));
    ph_worker_detach(w);
    /* LOCAL: never remote. */
    o.mode = PH_WORKER_LOCAL;
    assert_null(ph_worker_attach(&o, err, sizeof err));
    assert_non_null(strstr(err, "does not exist"));
    /* AUTO without a broker URL: today's error. */
    o.mode = PH_WORKER_AUTO;
    unsetenv("PH_AMQP_URL");
    assert_null(ph_worker_attach(&o, err, sizeof err));
    assert_non_null(strstr(err, "does not exist"));
    /* PH_WORKER_MODE=remote chooses for AUTO; no URL is then an error. */
    setenv("PH_WORKER_MODE", "remote", 1);
    assert_null(ph_worker_attach(&o, err, sizeof err));
    assert_non_null(strstr(err, "PH_AMQP_URL"));
    unreachable_broker();
    setenv("PH_WORKER_MODE", "remote", 1);
    w = ph_worker_attach(&o, err, sizeof err);
    if (w == NULL) fail_msg("attach: %s", err);
    assert_true(ph_worker_remote(w));
    ph_worker_detach(w);
    setenv("PH_WORKER_MODE", "sideways", 1);
    assert_null(ph_worker_attach(&o, err, sizeof err));
    assert_non_null(strstr(err, "PH_WORKER_MODE"));
    unsetenv("PH_WORKER_MODE");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(status_full_has_the_contract_shape),
        cmocka_unit_test(status_delta_carries_no_config_io_or_start),
        cmocka_unit_test(outcomes_and_alerts_have_the_contract_shape),
        cmocka_unit_test(config_update_from_the_controller_is_applied),
        cmocka_unit_test(config_update_from_another_origin_is_ignored),
        cmocka_unit_test(status_request_from_any_origin_is_answered),
        cmocka_unit_test(malformed_signals_are_rejected),
        cmocka_unit_test(rejected_messages_are_quoted_without_secrets),
        cmocka_unit_test(remote_worker_runs_without_a_broker),
        cmocka_unit_test(auto_mode_goes_remote_only_with_a_broker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
