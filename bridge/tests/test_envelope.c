/* Controller documents -> envelopes (bridge/envelope.c): what goes out is in
 * the contract's shape, and every way a document can break the contract
 * keeps it from going out, for the right reason. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "envelope.h"
#include "ph/doc.h"
#include "ph/mpjson.h"
#include "sample_docs.h"

#define SWARM "demo"
#define CTL "demo-controller"
/* 2026-11-27T02:00:00.123Z */
#define NOW_NS 1795744800123000000ull

static int convert(json_t *doc, struct envelope *e, char *why, size_t n)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    sample_pack(doc, &sb);
    json_decref(doc);
    why[0] = '\0';
    int rc = envelope_from_doc((const uint8_t *)sb.data, sb.size, NOW_NS, e, why, n);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* Converts and expects a refusal whose reason mentions `needle`. */
static void expect_refused(json_t *doc, const char *needle)
{
    struct envelope e;
    char why[512];
    int rc = convert(doc, &e, why, sizeof why);
    if (rc == PH_OK || strstr(why, needle) == NULL)
        fail_msg("expected a refusal mentioning '%s', got rc=%d why='%s'", needle, rc, why);
    assert_null(e.env);
}

static json_t *data_of(json_t *doc)
{
    return json_object_get(doc, "data");
}

static void test_envelope_keys_are_in_contract_order_and_both_ids_written_as_null(void **state)
{
    (void)state;
    struct envelope e;
    char why[512];
    assert_int_equal(
        convert(sample_worker_delta(SWARM, "generator", "gen-1", CTL), &e, why, sizeof why), PH_OK);
    const char *want[] = {"timestamp", "version",       "kind",           "type", "origin",
                          "scope",     "correlationId", "idempotencyKey", "data"};
    size_t i = 0;
    for (void *it = json_object_iter(e.env); it; it = json_object_iter_next(e.env, it), i++) {
        assert_true(i < 9);
        assert_string_equal(json_object_iter_key(it), want[i]);
    }
    assert_int_equal(i, 9);
    assert_true(json_is_null(json_object_get(e.env, "correlationId")));
    assert_true(json_is_null(json_object_get(e.env, "idempotencyKey")));
    assert_string_equal(json_string_value(json_object_get(e.env, "timestamp")),
                        "2026-11-27T02:00:00.123Z");
    assert_string_equal(json_string_value(json_object_get(e.env, "version")), "1");
    assert_string_equal(json_string_value(json_object_get(e.env, "kind")), "metric");
    assert_string_equal(json_string_value(json_object_get(e.env, "origin")), CTL);
    json_t *scope = json_object_get(e.env, "scope");
    assert_string_equal(json_string_value(json_object_get(scope, "swarmId")), SWARM);
    assert_string_equal(json_string_value(json_object_get(scope, "role")), "generator");
    assert_string_equal(json_string_value(json_object_get(scope, "instance")), "gen-1");
    /* The serialised form keeps the order too (what the sink writes). */
    char *s = json_dumps(e.env, JSON_COMPACT);
    assert_non_null(strstr(s, "{\"timestamp\":"));
    assert_true(strstr(s, "\"correlationId\":null,\"idempotencyKey\":null,\"data\":") != NULL);
    free(s);
    envelope_clear(&e);
}

static void test_ids_are_echoed_when_present(void **state)
{
    (void)state;
    struct envelope e;
    char why[512];
    assert_int_equal(convert(sample_outcome(SWARM, CTL, "swarm-start", "c-1", "i-1", "Running"), &e,
                             why, sizeof why),
                     PH_OK);
    assert_string_equal(json_string_value(json_object_get(e.env, "correlationId")), "c-1");
    assert_string_equal(json_string_value(json_object_get(e.env, "idempotencyKey")), "i-1");
    assert_string_equal(e.rk, "event.outcome.swarm-start.demo.swarm-controller.demo-controller");
    assert_int_equal(e.kind, CK_OUTCOME);
    envelope_clear(&e);
}

/* A document's own time ("ts", ph/doc.h) is the envelope's timestamp, so
 * that an outcome sent again after a restart is the same message; without
 * it the bridge stamps the time it reads the document. */
static void test_document_time_is_the_envelope_timestamp(void **state)
{
    (void)state;
    struct envelope e;
    char why[512];
    json_t *d = sample_outcome(SWARM, CTL, "swarm-start", "c-ts", "i-ts", "Running");
    json_object_set_new(d, "ts", json_integer(1795744790007)); /* 10.116 s before NOW_NS */
    assert_int_equal(convert(d, &e, why, sizeof why), PH_OK);
    assert_string_equal(json_string_value(json_object_get(e.env, "timestamp")),
                        "2026-11-27T01:59:50.007Z");
    envelope_clear(&e);
    d = sample_outcome(SWARM, CTL, "swarm-start", "c-ts", "i-ts", "Running");
    json_object_set_new(d, "ts", json_integer(0));
    expect_refused(d, "'ts' is not a time in milliseconds");
    d = sample_outcome(SWARM, CTL, "swarm-start", "c-ts", "i-ts", "Running");
    json_object_set_new(d, "ts", json_integer(-5));
    expect_refused(d, "'ts' is not a time in milliseconds");
    d = sample_outcome(SWARM, CTL, "swarm-start", "c-ts", "i-ts", "Running");
    json_object_set_new(d, "ts", json_string("2026-11-27T01:59:50.007Z"));
    expect_refused(d, "'ts' is not a time in milliseconds");
    d = sample_outcome(SWARM, CTL, "swarm-start", "c-ts", "i-ts", "Running");
    json_object_set_new(d, "ts", json_integer((json_int_t)PH_DOC_TS_MAX + 1));
    expect_refused(d, "'ts' is not a time in milliseconds");
}

static void test_routing_keys_follow_kind_type_and_scope(void **state)
{
    (void)state;
    struct envelope e;
    char why[512];
    assert_int_equal(convert(sample_controller_full(SWARM, CTL, "c-9", NULL), &e, why, sizeof why),
                     PH_OK);
    assert_string_equal(e.rk, "event.metric.status-full.demo.swarm-controller.demo-controller");
    envelope_clear(&e);
    assert_int_equal(convert(sample_controller_delta(SWARM, CTL), &e, why, sizeof why), PH_OK);
    assert_string_equal(e.rk, "event.metric.status-delta.demo.swarm-controller.demo-controller");
    envelope_clear(&e);
    assert_int_equal(
        convert(sample_worker_full(SWARM, "generator", "gen-1", CTL), &e, why, sizeof why), PH_OK);
    assert_string_equal(e.rk, "event.metric.status-full.demo.generator.gen-1");
    envelope_clear(&e);
    assert_int_equal(convert(sample_alert(SWARM, "generator", "gen-1", CTL), &e, why, sizeof why),
                     PH_OK);
    assert_string_equal(e.rk, "event.alert.alert.demo.generator.gen-1");
    envelope_clear(&e);
}

static void test_nil_scope_segments_become_null_and_ALL(void **state)
{
    (void)state;
    struct envelope e;
    char why[512];
    assert_int_equal(convert(sample_alert(SWARM, NULL, NULL, CTL), &e, why, sizeof why), PH_OK);
    assert_string_equal(e.rk, "event.alert.alert.demo.ALL.ALL");
    json_t *scope = json_object_get(e.env, "scope");
    assert_true(json_is_null(json_object_get(scope, "role")));
    assert_true(json_is_null(json_object_get(scope, "instance")));
    envelope_clear(&e);
    assert_int_equal(convert(sample_alert(NULL, NULL, NULL, CTL), &e, why, sizeof why), PH_OK);
    assert_string_equal(e.rk, "event.alert.alert.ALL.ALL.ALL");
    envelope_clear(&e);
}

/* Item 20: a worker status-full whose config holds a password under a
 * non-listed name (dbPass), an auth header value and a URL with credentials
 * goes out without any of the three values; the ordinary keys stay. */
static void test_item20_worker_status_full_is_published_without_secret_values(void **state)
{
    (void)state;
    json_t *doc = sample_worker_full(SWARM, "generator", "gen-1", CTL);
    json_object_set_new(data_of(doc), "config",
                        json_pack("{s:i,s:s,s:s,s:s,s:[s]}", "ratePerSec", 5, "dbPass", "hunter2",
                                  "auth", "Basic dTpwNHNz", "url", "amqp://u:p4ss@h/", "fallbacks",
                                  "https://t0k3n@mirror.example/"));
    struct envelope e;
    char why[512];
    assert_int_equal(convert(doc, &e, why, sizeof why), PH_OK);
    assert_string_equal(e.rk, "event.metric.status-full.demo.generator.gen-1");
    char *s = json_dumps(e.env, JSON_COMPACT);
    const char *secrets[] = {"hunter2", "dTpwNHNz", "p4ss", "t0k3n"};
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
        if (strstr(s, secrets[i]) != NULL) fail_msg("'%s' published in %s", secrets[i], s);
    free(s);
    json_t *config = json_object_get(data_of(e.env), "config");
    assert_null(json_object_get(config, "dbPass"));
    assert_null(json_object_get(config, "auth"));
    assert_string_equal(json_string_value(json_object_get(config, "url")), "amqp://u:***@h/");
    assert_string_equal(json_string_value(json_array_get(json_object_get(config, "fallbacks"), 0)),
                        "https://***@mirror.example/");
    assert_int_equal(json_integer_value(json_object_get(config, "ratePerSec")), 5);
    assert_int_equal(e.secrets_dropped, 2);
    assert_int_equal(e.credentials_stripped, 2);
    envelope_clear(&e);
}

static void test_secret_keys_are_removed_from_config_at_every_depth(void **state)
{
    (void)state;
    struct envelope e;
    char why[512];
    assert_int_equal(convert(sample_controller_full(SWARM, CTL, NULL, NULL), &e, why, sizeof why),
                     PH_OK);
    assert_int_equal(e.secrets_dropped, 3);
    json_t *config = json_object_get(json_object_get(e.env, "data"), "config");
    assert_null(json_object_get(config, "password"));
    assert_non_null(json_object_get(config, "ratePerSec"));
    json_t *target = json_object_get(config, "target");
    assert_null(json_object_get(target, "apiKey"));
    assert_non_null(json_object_get(target, "tls"));
    json_t *h0 = json_array_get(json_object_get(config, "headers"), 0);
    assert_int_equal(json_object_size(h0), 0);
    char *s = json_dumps(e.env, JSON_COMPACT);
    assert_null(strstr(s, "hunter2"));
    assert_null(strstr(s, "xyz"));
    assert_null(strstr(s, "Bearer"));
    free(s);
    envelope_clear(&e);
}

static void test_every_valid_kind_is_published(void **state)
{
    (void)state;
    json_t *docs[] = {
        sample_controller_full(SWARM, CTL, "c-1", "t"),
        sample_controller_delta(SWARM, CTL),
        sample_worker_full(SWARM, "moderator", "mod-1", CTL),
        sample_worker_delta(SWARM, "moderator", "mod-1", CTL),
        sample_outcome(SWARM, CTL, "config-update", "c-2", NULL, "applied"),
        sample_alert(SWARM, "swarm-controller", CTL, CTL),
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        struct envelope e;
        char why[512];
        if (convert(docs[i], &e, why, sizeof why) != PH_OK) fail_msg("doc %zu: %s", i, why);
        envelope_clear(&e);
    }
}

/* ---- refusals ----------------------------------------------------------- */

static void test_refuses_status_delta_with_config(void **state)
{
    (void)state;
    json_t *d = sample_worker_delta(SWARM, "generator", "gen-1", CTL);
    json_object_set_new(data_of(d), "config", json_object());
    expect_refused(d, "status-delta must not carry");
}

static void test_refuses_status_delta_with_heavy_field_nested_in_context(void **state)
{
    (void)state;
    json_t *d = sample_controller_delta(SWARM, CTL);
    json_object_set_new(json_object_get(data_of(d), "context"), "startedAt",
                        json_string(SAMPLE_TS));
    expect_refused(d, "found data.context.startedAt");
}

static void test_refuses_controller_delta_with_workers_list(void **state)
{
    (void)state;
    json_t *d = sample_controller_delta(SWARM, CTL);
    json_object_set_new(json_object_get(data_of(d), "context"), "workers", json_array());
    expect_refused(d, "found data.context.workers");
}

static void test_refuses_status_full_without_startedAt(void **state)
{
    (void)state;
    json_t *d = sample_worker_full(SWARM, "generator", "gen-1", CTL);
    json_object_del(data_of(d), "startedAt");
    expect_refused(d, "lacks the required 'startedAt'");
}

static void test_refuses_status_full_with_bad_startedAt(void **state)
{
    (void)state;
    json_t *d = sample_worker_full(SWARM, "generator", "gen-1", CTL);
    json_object_set_new(data_of(d), "startedAt", json_string("yesterday"));
    expect_refused(d, "startedAt must be an RFC 3339");
}

static void test_refuses_unknown_ioState_value(void **state)
{
    (void)state;
    json_t *d = sample_worker_delta(SWARM, "generator", "gen-1", CTL);
    json_object_set_new(data_of(d), "ioState", sample_iostate("sleepy", "ok"));
    expect_refused(d, "data.ioState.work.input must be");
    d = sample_worker_delta(SWARM, "generator", "gen-1", CTL);
    json_object_set_new(data_of(d), "ioState", sample_iostate("ok", "out-of-data"));
    expect_refused(d, "data.ioState.work.output must be");
}

static void test_refuses_ioState_with_unknown_section(void **state)
{
    (void)state;
    json_t *d = sample_worker_delta(SWARM, "generator", "gen-1", CTL);
    json_object_set_new(json_object_get(data_of(d), "ioState"), "traffic",
                        json_pack("{s:s,s:s}", "input", "ok", "output", "ok"));
    expect_refused(d, "data.ioState has key 'traffic'");
}

static void test_refuses_negative_or_fractional_tps(void **state)
{
    (void)state;
    json_t *d = sample_worker_delta(SWARM, "generator", "gen-1", CTL);
    json_object_set_new(data_of(d), "tps", json_integer(-1));
    expect_refused(d, "tps must be an integer >= 0 (got a negative number)");
    d = sample_worker_delta(SWARM, "generator", "gen-1", CTL);
    json_object_set_new(data_of(d), "tps", json_real(2.5));
    expect_refused(d, "tps must be an integer >= 0 (got a fraction)");
}

static void test_refuses_unknown_status_data_key(void **state)
{
    (void)state;
    json_t *d = sample_worker_delta(SWARM, "generator", "gen-1", CTL);
    json_object_set_new(data_of(d), "mood", json_string("fine"));
    expect_refused(d, "has key 'mood'");
}

static void test_refuses_unknown_kind_and_wrong_types(void **state)
{
    (void)state;
    json_t *d = sample_worker_delta(SWARM, "generator", "gen-1", CTL);
    json_object_set_new(d, "kind", json_string("gossip"));
    expect_refused(d, "kind is not signal, outcome, metric or event");
    d = sample_worker_delta(SWARM, "generator", "gen-1", CTL);
    json_object_set_new(d, "type", json_string("status-partial"));
    expect_refused(d, "neither status-full nor status-delta");
    d = sample_outcome(SWARM, CTL, "swarm-explode", "c", NULL, "ok");
    expect_refused(d, "not one of the seven signal types");
    d = sample_alert(SWARM, NULL, NULL, CTL);
    json_object_set_new(d, "type", json_string("alarm"));
    expect_refused(d, "is not 'alert'");
}

static void test_refuses_bad_identifier_in_scope(void **state)
{
    (void)state;
    expect_refused(sample_worker_delta(SWARM, "generator", "gen.1", CTL), "contains '.'");
    expect_refused(sample_worker_delta(SWARM, "gen erator", "gen-1", CTL), "contains ' '");
    expect_refused(sample_worker_delta(SWARM, "ALL", "gen-1", CTL), "routing wildcard");
    expect_refused(sample_worker_delta("", "generator", "gen-1", CTL), "is empty");
    expect_refused(sample_worker_delta(SWARM, "generator", "a#", CTL), "contains '#'");
}

static void test_refuses_alert_without_code_or_with_bad_level(void **state)
{
    (void)state;
    json_t *d = sample_alert(SWARM, NULL, NULL, CTL);
    json_object_del(data_of(d), "code");
    expect_refused(d, "data.code must be a non-empty string");
    d = sample_alert(SWARM, NULL, NULL, CTL);
    json_object_set_new(data_of(d), "level", json_string("fatal"));
    expect_refused(d, "level must be info, warn or error");
    d = sample_alert(SWARM, NULL, NULL, CTL);
    json_object_set_new(data_of(d), "stackTrace", json_string("at x.y()"));
    expect_refused(d, "alert data has key 'stackTrace'");
}

static void test_refuses_outcome_without_correlationId_or_status(void **state)
{
    (void)state;
    expect_refused(sample_outcome(SWARM, CTL, "swarm-stop", NULL, "i", "Stopped"),
                   "correlationId is required");
    expect_refused(sample_outcome(SWARM, CTL, "swarm-stop", "c", NULL, ""),
                   "data.status must be a non-empty string");
}

static void test_refuses_empty_id_strings(void **state)
{
    (void)state;
    expect_refused(sample_outcome(SWARM, CTL, "swarm-stop", "", NULL, "Stopped"),
                   "correlationId is an empty string");
    expect_refused(sample_outcome(SWARM, CTL, "swarm-stop", "c", "", "Stopped"),
                   "idempotencyKey is an empty string");
}

static void test_refuses_workers_list_in_a_worker_status(void **state)
{
    (void)state;
    json_t *d = sample_worker_full(SWARM, "generator", "gen-1", CTL);
    json_object_set_new(json_object_get(data_of(d), "context"), "workers", json_array());
    expect_refused(d, "a worker's status must not carry a workers list");
}

static void test_refuses_controller_full_with_unsorted_or_incomplete_workers(void **state)
{
    (void)state;
    json_t *d = sample_controller_full(SWARM, CTL, NULL, NULL);
    json_t *w = json_object_get(json_object_get(data_of(d), "context"), "workers");
    json_t *first = json_incref(json_array_get(w, 0));
    json_array_remove(w, 0);
    json_array_append_new(w, first);
    expect_refused(d, "not sorted by role then instance");

    d = sample_controller_full(SWARM, CTL, NULL, NULL);
    w = json_object_get(json_object_get(data_of(d), "context"), "workers");
    json_object_del(json_array_get(w, 1), "lastSeenAt");
    expect_refused(d, "workers[1] lacks the required 'lastSeenAt'");

    d = sample_controller_full(SWARM, CTL, NULL, NULL);
    json_object_del(json_object_get(data_of(d), "context"), "workers");
    expect_refused(d, "must list its workers");
}

static void test_refuses_controller_status_without_aggregate(void **state)
{
    (void)state;
    json_t *d = sample_controller_delta(SWARM, CTL);
    json_object_del(data_of(d), "context");
    expect_refused(d, "swarm aggregate");
    d = sample_controller_delta(SWARM, CTL);
    json_object_set_new(json_object_get(data_of(d), "context"), "swarmStatus",
                        json_string("DANCING"));
    expect_refused(d, "swarmStatus must be");
}

static void test_refuses_io_outside_the_closed_shape(void **state)
{
    (void)state;
    json_t *d = sample_worker_full(SWARM, "generator", "gen-1", CTL);
    json_object_set_new(json_object_get(data_of(d), "io"), "traffic", json_object());
    expect_refused(d, "data.io has key 'traffic'");
    d = sample_worker_full(SWARM, "generator", "gen-1", CTL);
    json_t *qs =
        json_object_get(json_object_get(json_object_get(data_of(d), "io"), "work"), "queueStats");
    json_object_set_new(json_object_get(qs, "ph.demo.gen"), "depth", json_integer(-3));
    expect_refused(d, "depth must be an integer >= 0");
}

static void test_refuses_malformed_documents(void **state)
{
    (void)state;
    struct envelope e;
    char why[512];
    const uint8_t garbage[] = {0xc1, 0x00, 0x01};
    assert_int_equal(envelope_from_doc(garbage, sizeof garbage, NOW_NS, &e, why, sizeof why),
                     PH_ERR_CORRUPT);
    assert_non_null(strstr(why, "not well-formed"));
    /* an array, not a map */
    const uint8_t arr[] = {0x91, 0x01};
    assert_int_equal(envelope_from_doc(arr, sizeof arr, NOW_NS, &e, why, sizeof why), PH_ERR_INVAL);
    /* an empty buffer */
    assert_int_equal(envelope_from_doc(arr, 0, NOW_NS, &e, why, sizeof why), PH_ERR_CORRUPT);

    json_t *d = sample_worker_delta(SWARM, "generator", "gen-1", CTL);
    json_object_set_new(d, "priority", json_integer(1));
    expect_refused(d, "unknown key 'priority'");
    d = sample_worker_delta(SWARM, "generator", "gen-1", CTL);
    json_object_set_new(d, "data", json_array());
    expect_refused(d, "'data' is not a map");
    d = sample_worker_delta(SWARM, "generator", "gen-1", CTL);
    json_object_del(d, "origin");
    expect_refused(d, "lacks 'origin'");
    d = sample_worker_delta(SWARM, "generator", "gen-1", CTL);
    json_object_set_new(d, "role", json_integer(7));
    expect_refused(d, "'role' is not a string or nil");
}

/* A msgpack map with the same key twice: JSON would keep only one of them. */
static void test_refuses_duplicate_keys_in_data(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    json_t *d = sample_worker_delta(SWARM, "generator", "gen-1", CTL);
    json_object_del(d, "data");
    msgpack_pack_map(&pk, 9);
    const char *k;
    json_t *v;
    json_object_foreach(d, k, v)
    {
        msgpack_pack_str(&pk, strlen(k));
        msgpack_pack_str_body(&pk, k, strlen(k));
        if (json_is_string(v)) {
            msgpack_pack_str(&pk, json_string_length(v));
            msgpack_pack_str_body(&pk, json_string_value(v), json_string_length(v));
        } else {
            msgpack_pack_nil(&pk);
        }
    }
    msgpack_pack_str(&pk, 4);
    msgpack_pack_str_body(&pk, "data", 4);
    msgpack_pack_map(&pk, 4);
    msgpack_pack_str(&pk, 7);
    msgpack_pack_str_body(&pk, "enabled", 7);
    msgpack_pack_true(&pk);
    msgpack_pack_str(&pk, 3);
    msgpack_pack_str_body(&pk, "tps", 3);
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_str(&pk, 3);
    msgpack_pack_str_body(&pk, "tps", 3);
    msgpack_pack_uint64(&pk, 2);
    msgpack_pack_str(&pk, 7);
    msgpack_pack_str_body(&pk, "ioState", 7);
    json_t *io = sample_iostate("ok", "ok");
    ph_json_pack(&pk, io, false);
    json_decref(io);
    json_decref(d);
    struct envelope e;
    char why[512];
    assert_int_equal(
        envelope_from_doc((const uint8_t *)sb.data, sb.size, NOW_NS, &e, why, sizeof why),
        PH_ERR_INVAL);
    assert_non_null(strstr(why, "duplicate key"));
    msgpack_sbuffer_destroy(&sb);
}

static void test_refusal_reason_names_the_document(void **state)
{
    (void)state;
    json_t *d = sample_worker_delta(SWARM, "generator", "gen-1", CTL);
    json_object_set_new(data_of(d), "config", json_object());
    expect_refused(d, "metric status-delta for demo.generator.gen-1 from demo-controller: ");
}

/* ---- a long worker list: checked and written in one pass (mprender.h) ---- */

/* A controller status-full listing `n` workers, each entry with the
 * contract's keys and extras that exercise the writer: escapes, non-ASCII
 * text, reals of every size, nested maps, bin-free msgpack. */
static json_t *long_full(int n)
{
    json_t *doc = sample_controller_full(SWARM, CTL, NULL, NULL);
    json_t *ws = json_array();
    static const double reals[] = {0.786,   0.1,      1.0 / 3, 1e21, 1e-7, -2.5e-300, 123456.0,
                                   1e15,    0.30000000000000004, 5e-324, 1e300};
    /* Around the writer's eight-byte steps: an escape or a non-ASCII
     * byte just before, on and after a step's edge. */
    static const char *const notes[] = {"",
                                        "abcdefgh",
                                        "abcdefg\"",
                                        "abcdefgh\\",
                                        "abcdefghi\x1f",
                                        "0123456789abcde\x7f~ ",
                                        "01234567\xc3\xa9" "89abcdef",
                                        "0123456\n89abcdef\t",
                                        "abc\\defghijklmnop",
                                        "a\x01" "bcdefghij",
                                        "plain text of more than sixteen bytes, then \"quoted\""};
    for (int i = 0; i < n; i++) {
        char inst[32];
        snprintf(inst, sizeof inst, "gen-%05d", i);
        json_t *w = json_pack(
            "{s:s,s:s,s:b,s:i,s:o,s:s,s:b,s:s,s:f,s:{s:s,s:[i,f,n,b]}}", "role", "generator",
            "instance", inst, "enabled", i % 2, "tps", i * 7, "ioState",
            sample_iostate(i % 3 ? "ok" : "backpressure", "ok"), "lastSeenAt", SAMPLE_TS, "stale",
            i % 5 == 0, "location", "h\xc3\xb4te \"one\"\\\n\t\x01\x1f/\xe2\x80\xa8\xf0\x9f\x90\x9d",
            "load", reals[i % 11], "extra", "k", "v", "a", -i, reals[(i + 3) % 11], 1);
        assert_non_null(w);
        json_object_set_new(w, "note", json_string(notes[i % 11]));
        json_object_set_new(w, "big", json_integer(i % 2 ? INT64_MIN : INT64_MAX));
        assert_non_null(w);
        json_array_append_new(ws, w);
    }
    json_object_set_new(json_object_get(data_of(doc), "context"), "workers", ws);
    return doc;
}

static void a_long_worker_list_reads_as_the_document_and_as_jansson_writes_it(void **state)
{
    (void)state;
    struct envelope e;
    char why[512];
    json_t *doc = long_full(300);
    /* As jansson would write the list (reals at 15 digits), read back. */
    char *want_text = json_dumps(json_object_get(json_object_get(data_of(doc), "context"), "workers"),
                                 ENVELOPE_DUMP_FLAGS);
    json_t *want = json_loads(want_text, 0, NULL);
    assert_non_null(want);
    /* Its bytes are those of the list in the envelope. */
    assert_non_null(strstr(want_text, "\"load\":0.786,"));
    assert_int_equal(convert(doc, &e, why, sizeof why), PH_OK);
    assert_non_null(e.text);
    assert_int_equal(strlen(e.text), e.text_len);
    assert_non_null(strstr(e.text, want_text));
    free(want_text);
    json_error_t je;
    json_t *got = json_loads(e.text, 0, &je);
    if (got == NULL) fail_msg("the text does not parse: %s", je.text);
    /* The list as the controller sent it... */
    assert_true(json_equal(json_object_get(json_object_get(json_object_get(got, "data"), "context"),
                                           "workers"),
                           want));
    /* ...the rest as the tree has it... */
    json_t *rest = json_deep_copy(got);
    json_object_del(json_object_get(json_object_get(rest, "data"), "context"), "workers");
    json_t *tree = json_deep_copy(e.env);
    json_object_del(json_object_get(json_object_get(tree, "data"), "context"), "workers");
    assert_true(json_equal(rest, tree));
    /* ...and byte for byte what jansson writes for the same values. */
    char *again = json_dumps(got, ENVELOPE_DUMP_FLAGS);
    assert_string_equal(again, e.text);
    /* The tree keeps who the workers are, for the bindings. */
    json_t *ids = json_object_get(json_object_get(json_object_get(e.env, "data"), "context"),
                                  "workers");
    assert_int_equal(json_array_size(ids), 300);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ids, 7), "instance")),
                        "gen-00007");
    free(again);
    json_decref(rest);
    json_decref(tree);
    json_decref(got);
    json_decref(want);
    envelope_clear(&e);
    assert_null(e.text);
}

static void a_short_worker_list_goes_the_tree_way(void **state)
{
    (void)state;
    struct envelope e;
    char why[512];
    assert_int_equal(convert(long_full(ENVELOPE_FAST_WORKERS - 1), &e, why, sizeof why), PH_OK);
    assert_null(e.text);
    envelope_clear(&e);
}

/* Worker entry `i` of a long full changed by `edit`, then refused for
 * `needle`. */
static void refused_entry(int i, void (*edit)(json_t *w), const char *needle)
{
    json_t *doc = long_full(20);
    edit(json_array_get(json_object_get(json_object_get(data_of(doc), "context"), "workers"), i));
    expect_refused(doc, needle);
}

static void drop_tps(json_t *w) { json_object_del(w, "tps"); }
static void neg_tps(json_t *w) { json_object_set_new(w, "tps", json_integer(-1)); }
static void real_tps(json_t *w) { json_object_set_new(w, "tps", json_real(1.5)); }
static void bad_role(json_t *w) { json_object_set_new(w, "role", json_string("gen.erator")); }
static void bad_time(json_t *w) { json_object_set_new(w, "lastSeenAt", json_string("yesterday")); }
static void str_stale(json_t *w) { json_object_set_new(w, "stale", json_string("no")); }
static void bad_input(json_t *w)
{
    json_object_set_new(json_object_get(json_object_get(w, "ioState"), "work"), "input",
                        json_string("sideways"));
}
static void open_iostate(json_t *w)
{
    json_object_set_new(json_object_get(w, "ioState"), "surprise", json_object());
}
static void same_instance(json_t *w) { json_object_set_new(w, "instance", json_string("gen-00004")); }

static void every_worker_entry_is_held_to_the_contract_on_the_one_pass_path(void **state)
{
    (void)state;
    refused_entry(3, drop_tps, "data.context.workers[3] lacks the required 'tps'");
    refused_entry(4, neg_tps, "data.context.workers[4].tps must be an integer >= 0 (got a negative");
    refused_entry(4, real_tps, "data.context.workers[4].tps must be an integer >= 0 (got a fraction");
    refused_entry(6, bad_role, "data.context.workers[6].role 'gen.erator' contains '.'");
    refused_entry(9, bad_time, "data.context.workers[9].lastSeenAt must be an RFC 3339");
    refused_entry(9, str_stale, "data.context.workers[9].stale must be a boolean");
    refused_entry(2, bad_input, "data.context.workers[2].ioState.work.input must be ok");
    refused_entry(2, open_iostate, "ioState has key 'surprise', which the contract does not allow");
    refused_entry(5, same_instance, "not sorted by role then instance (or lists a worker twice) at entry 5");
}

/* What jansson would merge, cut or refuse, refused on this path too: a
 * duplicate key, invalid UTF-8 (alone, and inside the writer's eight-byte
 * step) and NaN inside an entry (patched into the packed bytes: jansson
 * cannot build them). */
static void a_duplicate_key_bad_utf8_or_nan_in_an_entry_is_refused(void **state)
{
    (void)state;
    for (int bad = 0; bad < 4; bad++) {
        json_t *doc = long_full(10);
        json_t *w = json_array_get(
            json_object_get(json_object_get(data_of(doc), "context"), "workers"), 1);
        /* A placeholder the packed bytes are patched through. */
        if (bad < 2) json_object_set_new(w, "zzzz", json_string(bad == 0 ? "dup" : "AB"));
        else if (bad == 3) json_object_set_new(w, "zzzz", json_string("xxABxxxxxxxxxxxx"));
        else json_object_set_new(w, "load", json_real(12345.678));
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        sample_pack(doc, &sb);
        json_decref(doc);
        if (bad == 0) {
            char *p = memmem(sb.data, sb.size, "zzzz", 4); /* a second "role" key */
            assert_non_null(p);
            memcpy(p, "role", 4);
        } else if (bad == 1) {
            char *p = memmem(sb.data, sb.size, "\xa2" "AB", 3); /* "AB" -> 0xC3 0x28 */
            assert_non_null(p);
            memcpy(p + 1, "\xc3\x28", 2);
        } else if (bad == 3) {
            char *p = memmem(sb.data, sb.size, "xxABxxxx", 8);
            assert_non_null(p);
            memcpy(p + 2, "\xc3\x28", 2);
        } else {
            const double v = 12345.678;
            uint64_t bits;
            memcpy(&bits, &v, sizeof bits);
            unsigned char be[8];
            for (int k = 0; k < 8; k++) be[k] = (unsigned char)(bits >> (56 - 8 * k));
            unsigned char *p = memmem(sb.data, sb.size, be, 8);
            assert_non_null(p);
            const uint64_t nan_bits = 0x7ff8000000000000ull;
            for (int k = 0; k < 8; k++) p[k] = (unsigned char)(nan_bits >> (56 - 8 * k));
        }
        struct envelope e;
        char why[512] = "";
        int rc = envelope_from_doc((const uint8_t *)sb.data, sb.size, NOW_NS, &e, why, sizeof why);
        msgpack_sbuffer_destroy(&sb);
        assert_int_not_equal(rc, PH_OK);
        if (strstr(why, "data.context.workers[1] holds a value JSON cannot carry") == NULL)
            fail_msg("case %d: %s", bad, why);
        assert_null(e.text);
    }
}

/* Found by a review of the one-pass path: a map key that is not a string
 * inside an entry is refused (not read as a string); an empty string and a
 * long but valid lastSeenAt are taken as contract.c takes them. */
static void one_pass_edge_cases_are_judged_as_the_tree_judges_them(void **state)
{
    (void)state;
    /* A long fraction of a second is a valid RFC 3339 date-time. */
    json_t *doc = long_full(10);
    json_t *ws = json_object_get(json_object_get(data_of(doc), "context"), "workers");
    json_object_set_new(json_array_get(ws, 2), "lastSeenAt",
                        json_string("2026-12-01T19:52:17.123456789012345678901234567890123456789"
                                    "012345678901234567890Z"));
    json_object_set_new(json_array_get(ws, 3), "location", json_string(""));
    json_object_set_new(json_array_get(ws, 3), "", json_string("empty key"));
    struct envelope e;
    char why[512];
    assert_int_equal(convert(doc, &e, why, sizeof why), PH_OK);
    assert_non_null(e.text);
    assert_non_null(strstr(e.text, "\"location\":\"\","));
    assert_non_null(strstr(e.text, ",\"\":\"empty key\"}"));
    envelope_clear(&e);

    /* An integer key in an entry's ioState (patched into the packed bytes
     * through a placeholder). */
    doc = long_full(10);
    ws = json_object_get(json_object_get(data_of(doc), "context"), "workers");
    json_object_set_new(json_object_get(json_array_get(ws, 4), "ioState"), "zz", json_string("x"));
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    sample_pack(doc, &sb);
    json_decref(doc);
    char *p = memmem(sb.data, sb.size, "\xa2zz\xa1x", 5);
    assert_non_null(p);
    /* "zz": "x" (a2 7a 7a a1 78) -> 7: "zzx" (07 a3 7a 7a 78): same length,
     * a well-formed map with an integer key. */
    memcpy(p, "\x07\xa3zzx", 5);
    char why2[512] = "";
    int rc = envelope_from_doc((const uint8_t *)sb.data, sb.size, NOW_NS, &e, why2, sizeof why2);
    msgpack_sbuffer_destroy(&sb);
    assert_int_not_equal(rc, PH_OK);
    if (strstr(why2, "data.context.workers[4]") == NULL) fail_msg("refused for: %s", why2);
    assert_null(e.text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_long_worker_list_reads_as_the_document_and_as_jansson_writes_it),
        cmocka_unit_test(a_short_worker_list_goes_the_tree_way),
        cmocka_unit_test(one_pass_edge_cases_are_judged_as_the_tree_judges_them),
        cmocka_unit_test(every_worker_entry_is_held_to_the_contract_on_the_one_pass_path),
        cmocka_unit_test(a_duplicate_key_bad_utf8_or_nan_in_an_entry_is_refused),
        cmocka_unit_test(test_envelope_keys_are_in_contract_order_and_both_ids_written_as_null),
        cmocka_unit_test(test_ids_are_echoed_when_present),
        cmocka_unit_test(test_document_time_is_the_envelope_timestamp),
        cmocka_unit_test(test_routing_keys_follow_kind_type_and_scope),
        cmocka_unit_test(test_nil_scope_segments_become_null_and_ALL),
        cmocka_unit_test(test_secret_keys_are_removed_from_config_at_every_depth),
        cmocka_unit_test(test_item20_worker_status_full_is_published_without_secret_values),
        cmocka_unit_test(test_every_valid_kind_is_published),
        cmocka_unit_test(test_refuses_status_delta_with_config),
        cmocka_unit_test(test_refuses_status_delta_with_heavy_field_nested_in_context),
        cmocka_unit_test(test_refuses_controller_delta_with_workers_list),
        cmocka_unit_test(test_refuses_status_full_without_startedAt),
        cmocka_unit_test(test_refuses_status_full_with_bad_startedAt),
        cmocka_unit_test(test_refuses_unknown_ioState_value),
        cmocka_unit_test(test_refuses_ioState_with_unknown_section),
        cmocka_unit_test(test_refuses_negative_or_fractional_tps),
        cmocka_unit_test(test_refuses_unknown_status_data_key),
        cmocka_unit_test(test_refuses_unknown_kind_and_wrong_types),
        cmocka_unit_test(test_refuses_bad_identifier_in_scope),
        cmocka_unit_test(test_refuses_alert_without_code_or_with_bad_level),
        cmocka_unit_test(test_refuses_outcome_without_correlationId_or_status),
        cmocka_unit_test(test_refuses_empty_id_strings),
        cmocka_unit_test(test_refuses_workers_list_in_a_worker_status),
        cmocka_unit_test(test_refuses_controller_full_with_unsorted_or_incomplete_workers),
        cmocka_unit_test(test_refuses_controller_status_without_aggregate),
        cmocka_unit_test(test_refuses_io_outside_the_closed_shape),
        cmocka_unit_test(test_refuses_malformed_documents),
        cmocka_unit_test(test_refuses_duplicate_keys_in_data),
        cmocka_unit_test(test_refusal_reason_names_the_document),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
