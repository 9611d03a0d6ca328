/* Signal intake (bridge/sigcheck.c): a good signal becomes the controller's
 * document; every kind of bad message is rejected with its own verdict and
 * a reason, and what is quoted from it never shows a secret. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ph/doc.h"
#include "ph/mpjson.h"
#include "ph/record.h"
#include "sample_docs.h"
#include "sigcheck.h"

static const struct sigcheck_cfg CFG = {.swarm = "demo", .max_bytes = 4096};

static enum sigcheck_verdict check_line(const char *line, struct sigcheck_result *r)
{
    return sigcheck_line(&CFG, line, strlen(line), strlen(line), r);
}

/* Checks a line built from an envelope after `mutate` changed it. */
static enum sigcheck_verdict check_env(json_t *env, const char *rk, struct sigcheck_result *r)
{
    json_t *line = json_pack("{s:s,s:o}", "routingKey", rk, "envelope", env);
    char *s = json_dumps(line, JSON_COMPACT);
    json_decref(line);
    enum sigcheck_verdict v = check_line(s, r);
    free(s);
    return v;
}

static json_t *good_env(void)
{
    return sample_signal_envelope("config-update", "demo", "generator", NULL, "c-1", "i-1",
                                  json_pack("{s:b}", "enabled", 0));
}

#define GOOD_RK "signal.config-update.demo.generator.ALL"

static void expect(enum sigcheck_verdict got, enum sigcheck_verdict want,
                   const struct sigcheck_result *r)
{
    if (got != want)
        fail_msg("verdict %s, expected %s (reason: %s)", sigcheck_verdict_name(got),
                 sigcheck_verdict_name(want), r->reason);
    assert_int_equal(r->verdict, want);
    if (want != SIG_OK) {
        assert_true(strlen(r->reason) > 0);
        assert_int_equal(r->doc.size, 0); /* nothing to forward */
    }
}

static void test_good_signal_becomes_a_controller_document(void **state)
{
    (void)state;
    struct sigcheck_result r;
    sigcheck_result_init(&r);
    expect(check_env(good_env(), GOOD_RK, &r), SIG_OK, &r);
    assert_string_equal(r.type, "config-update");
    assert_string_equal(r.cid, "c-1");

    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    msgpack_object o;
    char err[128];
    /* The controller decodes with the default limits: the document fits them. */
    assert_int_equal(
        ph_mp_decode((const uint8_t *)r.doc.data, r.doc.size, true, &zone, &o, err, sizeof err),
        PH_OK);
    assert_int_equal(o.via.map.size, 9);
    char buf[256];
    assert_true(ph_mp_str(ph_mp_map_get(&o, PH_DOC_TYPE), buf, sizeof buf));
    assert_string_equal(buf, "config-update");
    assert_true(ph_mp_str(ph_mp_map_get(&o, PH_DOC_SWARM), buf, sizeof buf));
    assert_string_equal(buf, "demo");
    assert_true(ph_mp_str(ph_mp_map_get(&o, PH_DOC_ROLE), buf, sizeof buf));
    assert_string_equal(buf, "generator");
    assert_int_equal(ph_mp_map_get(&o, PH_DOC_INSTANCE)->type, MSGPACK_OBJECT_NIL);
    assert_true(ph_mp_str(ph_mp_map_get(&o, PH_DOC_ORIGIN), buf, sizeof buf));
    assert_string_equal(buf, "orchestrator-1");
    assert_true(ph_mp_str(ph_mp_map_get(&o, PH_DOC_CID), buf, sizeof buf));
    assert_string_equal(buf, "c-1");
    assert_true(ph_mp_str(ph_mp_map_get(&o, PH_DOC_IKEY), buf, sizeof buf));
    assert_string_equal(buf, "i-1");
    assert_true(ph_mp_str(ph_mp_map_get(&o, PH_DOC_RK), buf, sizeof buf));
    assert_string_equal(buf, GOOD_RK);
    const msgpack_object *data = ph_mp_map_get(&o, PH_DOC_DATA);
    assert_int_equal(data->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(ph_mp_map_get(data, "enabled")->type, MSGPACK_OBJECT_BOOLEAN);
    msgpack_zone_destroy(&zone);
    sigcheck_result_free(&r);
}

static void test_null_idempotency_key_and_all_wildcards_are_accepted(void **state)
{
    (void)state;
    struct sigcheck_result r;
    sigcheck_result_init(&r);
    json_t *env = sample_signal_envelope("status-request", NULL, "swarm-controller", NULL, "c-2",
                                         NULL, json_object());
    expect(check_env(env, "signal.status-request.ALL.swarm-controller.ALL", &r), SIG_OK, &r);
    sigcheck_result_free(&r);
}

static void test_message_form_takes_routing_key_and_body(void **state)
{
    (void)state;
    struct sigcheck_result r;
    sigcheck_result_init(&r);
    json_t *env = good_env();
    char *body = json_dumps(env, JSON_COMPACT);
    json_decref(env);
    expect(sigcheck_message(&CFG, GOOD_RK, strlen(GOOD_RK), body, strlen(body), &r), SIG_OK, &r);
    const char *wrong = "signal.config-update.demo.ALL.ALL";
    expect(sigcheck_message(&CFG, wrong, strlen(wrong), body, strlen(body), &r), SIG_SCOPE_MISMATCH,
           &r);
    assert_string_equal(r.rk, wrong);
    expect(sigcheck_message(&CFG, GOOD_RK, strlen(GOOD_RK), "[1]", 3, &r), SIG_NOT_OBJECT, &r);
    free(body);
    sigcheck_result_free(&r);
}

static void test_rejects_what_is_not_json(void **state)
{
    (void)state;
    struct sigcheck_result r;
    sigcheck_result_init(&r);
    expect(check_line("this is not json", &r), SIG_NOT_JSON, &r);
    expect(check_line("{\"routingKey\": \"x\", ", &r), SIG_NOT_JSON, &r);
    expect(check_line("{\"a\":1}{\"b\":2}", &r), SIG_NOT_JSON, &r);
    expect(check_line("{\"a\":1,\"a\":2}", &r), SIG_NOT_JSON, &r); /* duplicate key */
    const char bad_utf8[] = "{\"routingKey\":\"\xff\xfe\"}";
    expect(check_line(bad_utf8, &r), SIG_NOT_JSON, &r);
    sigcheck_result_free(&r);
}

static void test_rejects_json_that_is_not_an_object(void **state)
{
    (void)state;
    struct sigcheck_result r;
    sigcheck_result_init(&r);
    expect(check_line("[1,2,3]", &r), SIG_NOT_OBJECT, &r);
    expect(check_line("\"signal\"", &r), SIG_NOT_OBJECT, &r);
    expect(check_line("{\"routingKey\":\"" GOOD_RK "\",\"envelope\":[1]}", &r), SIG_NOT_OBJECT, &r);
    sigcheck_result_free(&r);
}

static void test_rejects_a_line_without_routing_key_and_envelope(void **state)
{
    (void)state;
    struct sigcheck_result r;
    sigcheck_result_init(&r);
    expect(check_line("{\"envelope\":{}}", &r), SIG_BAD_LINE, &r);
    expect(check_line("{\"routingKey\":7,\"envelope\":{}}", &r), SIG_BAD_LINE, &r);
    expect(check_line("{\"routingKey\":\"" GOOD_RK "\",\"envelope\":{},\"x\":1}", &r), SIG_BAD_LINE,
           &r);
    sigcheck_result_free(&r);
}

static void test_rejects_bad_routing_keys(void **state)
{
    (void)state;
    struct sigcheck_result r;
    sigcheck_result_init(&r);
    expect(check_env(good_env(), "signal.config-update.demo.generator", &r), SIG_BAD_ROUTING_KEY,
           &r);
    expect(check_env(good_env(), "event.outcome.config-update.demo.generator.ALL", &r),
           SIG_BAD_ROUTING_KEY, &r);
    expect(check_env(good_env(), "signal.config-update.demo.gen#.ALL", &r), SIG_BAD_ROUTING_KEY,
           &r);
    sigcheck_result_free(&r);
}

/* Every identifier that cannot be a routing-key segment, in each of the
 * three positions, in the routing key and in the envelope's scope, through
 * both intake forms (a signal line, an AMQP message): refused with a
 * reason, never forwarded. */
static void test_rejects_bad_identifiers_in_routing_key_and_scope(void **state)
{
    (void)state;
    char long_id[201];
    memset(long_id, 'x', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    const char *bad[] = {"a.b", "a#", "*", "", long_id, "a b", "\xc3\xa9", "../x", "ALL"};
    static const char *const fields[] = {"swarmId", "role", "instance"};
    struct sigcheck_result r;
    sigcheck_result_init(&r);
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
        for (int f = 0; f < 3; f++) {
            /* The scope names the bad id; the key names it too, except
             * "ALL", which is the key's wildcard (the scope must then say
             * null, and says "ALL"). */
            const char *seg[3] = {"demo", "generator", "gen-1"};
            seg[f] = bad[b];
            char rk[512];
            snprintf(rk, sizeof rk, "signal.config-update.%s.%s.%s", seg[0], seg[1], seg[2]);
            for (int form = 0; form < 2; form++) {
                json_t *env = good_env();
                json_t *scope = json_object_get(env, "scope");
                json_object_set_new(scope, "instance", json_string("gen-1"));
                json_object_set_new(scope, fields[f], json_string(bad[b]));
                enum sigcheck_verdict v;
                if (form == 0) {
                    v = check_env(env, rk, &r);
                } else {
                    char *body = json_dumps(env, JSON_COMPACT);
                    json_decref(env);
                    v = sigcheck_message(&CFG, rk, strlen(rk), body, strlen(body), &r);
                    free(body);
                }
                if (v == SIG_OK || r.doc.size != 0 || r.reason[0] == '\0')
                    fail_msg("%s '%.20s' (%s form) was accepted (verdict %s)", fields[f], bad[b],
                             form == 0 ? "line" : "message", sigcheck_verdict_name(v));
                /* The key alone good, the scope alone bad. */
                env = good_env();
                scope = json_object_get(env, "scope");
                json_object_set_new(scope, fields[f], json_string(bad[b]));
                v = check_env(env, GOOD_RK, &r);
                if (v == SIG_OK || r.doc.size != 0)
                    fail_msg("scope.%s '%.20s' under a good key was accepted", fields[f], bad[b]);
            }
        }
    }
    sigcheck_result_free(&r);
}

static void test_rejects_envelopes_with_missing_or_extra_keys(void **state)
{
    (void)state;
    struct sigcheck_result r;
    sigcheck_result_init(&r);
    json_t *env = good_env();
    json_object_del(env, "timestamp");
    expect(check_env(env, GOOD_RK, &r), SIG_NOT_ENVELOPE, &r);
    env = good_env();
    json_object_set_new(env, "priority", json_integer(1));
    expect(check_env(env, GOOD_RK, &r), SIG_NOT_ENVELOPE, &r);
    env = good_env();
    json_object_set_new(env, "version", json_string("2"));
    expect(check_env(env, GOOD_RK, &r), SIG_NOT_ENVELOPE, &r);
    env = good_env();
    json_object_set_new(env, "timestamp", json_string("now"));
    expect(check_env(env, GOOD_RK, &r), SIG_NOT_ENVELOPE, &r);
    env = good_env();
    json_object_set_new(env, "origin", json_string(""));
    expect(check_env(env, GOOD_RK, &r), SIG_NOT_ENVELOPE, &r);
    sigcheck_result_free(&r);
}

static void test_rejects_wrong_kind(void **state)
{
    (void)state;
    struct sigcheck_result r;
    sigcheck_result_init(&r);
    json_t *env = good_env();
    json_object_set_new(env, "kind", json_string("outcome"));
    expect(check_env(env, GOOD_RK, &r), SIG_WRONG_KIND, &r);
    assert_non_null(strstr(r.reason, "'outcome'"));
    sigcheck_result_free(&r);
}

static void test_rejects_unknown_type_and_type_mismatch(void **state)
{
    (void)state;
    struct sigcheck_result r;
    sigcheck_result_init(&r);
    json_t *env = good_env();
    json_object_set_new(env, "type", json_string("swarm-explode"));
    expect(check_env(env, "signal.swarm-explode.demo.generator.ALL", &r), SIG_UNKNOWN_TYPE, &r);
    env = good_env();
    expect(check_env(env, "signal.swarm-stop.demo.generator.ALL", &r), SIG_TYPE_MISMATCH, &r);
    sigcheck_result_free(&r);
}

static void test_rejects_scope_that_disagrees_with_routing_key(void **state)
{
    (void)state;
    struct sigcheck_result r;
    sigcheck_result_init(&r);
    /* role null in the key position ALL <=> null: here the key names a role */
    expect(check_env(good_env(), "signal.config-update.demo.ALL.ALL", &r), SIG_SCOPE_MISMATCH, &r);
    expect(check_env(good_env(), "signal.config-update.demo.generator.gen-1", &r),
           SIG_SCOPE_MISMATCH, &r);
    expect(check_env(good_env(), "signal.config-update.demo.moderator.ALL", &r), SIG_SCOPE_MISMATCH,
           &r);
    /* "ALL" written in the scope is not null: the scope must say null */
    json_t *env = good_env();
    json_object_set_new(json_object_get(env, "scope"), "instance", json_string("ALL"));
    expect(check_env(env, GOOD_RK, &r), SIG_BAD_SCOPE, &r);
    env = good_env();
    json_object_del(json_object_get(env, "scope"), "role");
    expect(check_env(env, GOOD_RK, &r), SIG_BAD_SCOPE, &r);
    sigcheck_result_free(&r);
}

static void test_rejects_signals_for_another_swarm(void **state)
{
    (void)state;
    struct sigcheck_result r;
    sigcheck_result_init(&r);
    json_t *env = good_env();
    json_object_set_new(json_object_get(env, "scope"), "swarmId", json_string("other"));
    expect(check_env(env, "signal.config-update.other.generator.ALL", &r), SIG_OTHER_SWARM, &r);
    sigcheck_result_free(&r);
}

static void test_rejects_missing_correlation_id(void **state)
{
    (void)state;
    struct sigcheck_result r;
    sigcheck_result_init(&r);
    json_t *env = good_env();
    json_object_set_new(env, "correlationId", json_null());
    expect(check_env(env, GOOD_RK, &r), SIG_NO_CORRELATION_ID, &r);
    env = good_env();
    json_object_set_new(env, "correlationId", json_string(""));
    expect(check_env(env, GOOD_RK, &r), SIG_NO_CORRELATION_ID, &r);
    env = good_env();
    json_object_set_new(env, "correlationId", json_integer(5));
    expect(check_env(env, GOOD_RK, &r), SIG_NO_CORRELATION_ID, &r);
    env = good_env();
    json_object_set_new(env, "idempotencyKey", json_string(""));
    expect(check_env(env, GOOD_RK, &r), SIG_BAD_IDEMPOTENCY_KEY, &r);
    sigcheck_result_free(&r);
}

static void test_rejects_data_that_is_not_an_object(void **state)
{
    (void)state;
    struct sigcheck_result r;
    sigcheck_result_init(&r);
    json_t *env = good_env();
    json_object_set_new(env, "data", json_string("enabled=false"));
    expect(check_env(env, GOOD_RK, &r), SIG_BAD_DATA, &r);
    env = good_env();
    json_object_set_new(env, "data", json_null());
    expect(check_env(env, GOOD_RK, &r), SIG_BAD_DATA, &r);
    sigcheck_result_free(&r);
}

static void test_rejects_data_the_controller_could_not_decode(void **state)
{
    (void)state;
    struct sigcheck_result r;
    sigcheck_result_init(&r);
    json_t *deep = json_object();
    for (int i = 0; i < 40; i++)
        deep = json_pack("{s:o}", "x", deep);
    json_t *env = good_env();
    json_object_set_new(env, "data", deep);
    expect(check_env(env, GOOD_RK, &r), SIG_TOO_COMPLEX, &r);
    sigcheck_result_free(&r);
}

static void test_rejects_oversize_messages_before_parsing(void **state)
{
    (void)state;
    struct sigcheck_result r;
    sigcheck_result_init(&r);
    /* A line cut short by the reader: only its first bytes are present. */
    const char *prefix = "{\"routingKey\":\"" GOOD_RK "\"";
    expect(sigcheck_line(&CFG, prefix, strlen(prefix), 10000, &r), SIG_OVERSIZE, &r);
    assert_non_null(strstr(r.reason, "10000"));
    assert_string_equal(r.prefix, prefix);
    char *big = malloc(5000);
    memset(big, ' ', 5000);
    expect(sigcheck_message(&CFG, GOOD_RK, strlen(GOOD_RK), big, 5000, &r), SIG_OVERSIZE, &r);
    free(big);
    sigcheck_result_free(&r);
}

static void test_every_rejection_has_its_own_verdict_name(void **state)
{
    (void)state;
    for (int i = 0; i < SIG_VERDICT_COUNT_; i++)
        for (int j = i + 1; j < SIG_VERDICT_COUNT_; j++)
            assert_string_not_equal(sigcheck_verdict_name(i), sigcheck_verdict_name(j));
}

static void test_quoted_prefix_never_shows_a_secret(void **state)
{
    (void)state;
    struct sigcheck_result r;
    sigcheck_result_init(&r);
    /* Parsed JSON: the value is replaced. */
    json_t *env = good_env();
    json_object_set_new(env, "kind", json_string("outcome"));
    json_object_set_new(env, "data", json_pack("{s:s}", "password", "hunter2"));
    expect(check_env(env, GOOD_RK, &r), SIG_WRONG_KIND, &r);
    assert_null(strstr(r.prefix, "hunter2"));
    assert_true(strlen(r.prefix) <= SIGCHECK_PREFIX_MAX);
    /* Unparseable: the quote stops after the secret's name, and the
     * parser's "near 'token'" is not repeated in the reason. */
    expect(check_line("{\"apiKey\": s3cr3t}", &r), SIG_NOT_JSON, &r);
    assert_null(strstr(r.prefix, "s3cr3t"));
    assert_null(strstr(r.reason, "s3cr3t"));
    /* Control characters are escaped, the quote stays one line. */
    expect(check_line("bad\x01line\ttab", &r), SIG_NOT_JSON, &r);
    assert_string_equal(r.prefix, "bad\\x01line\\x09tab");
    sigcheck_result_free(&r);
}

/* Item 20: a rejected message quoted in the log shows neither a password
 * under a key the old name list missed (dbPass) nor a URL's credentials. */
static void test_item20_quoted_prefix_never_shows_dbpass_or_url_credentials(void **state)
{
    (void)state;
    struct sigcheck_result r;
    sigcheck_result_init(&r);
    /* Parsed JSON, short enough to be quoted whole: the password is masked
     * and the URL quoted without its credentials. */
    expect(check_line("{\"dbPass\": \"hunter2\", \"url\": \"amqp://u:p4ss@h/\"}", &r),
           SIG_BAD_LINE, &r);
    assert_null(strstr(r.prefix, "hunter2"));
    assert_null(strstr(r.prefix, "p4ss"));
    assert_non_null(strstr(r.prefix, "amqp://u:***@h/"));
    /* Unparseable: the quote stops at the URL, before its userinfo. */
    expect(check_line("{\"url\": amqp://u:p4ss@h/}", &r), SIG_NOT_JSON, &r);
    assert_null(strstr(r.prefix, "p4ss"));
    assert_null(strstr(r.reason, "p4ss"));
    sigcheck_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_signal_becomes_a_controller_document),
        cmocka_unit_test(test_null_idempotency_key_and_all_wildcards_are_accepted),
        cmocka_unit_test(test_message_form_takes_routing_key_and_body),
        cmocka_unit_test(test_rejects_what_is_not_json),
        cmocka_unit_test(test_rejects_json_that_is_not_an_object),
        cmocka_unit_test(test_rejects_a_line_without_routing_key_and_envelope),
        cmocka_unit_test(test_rejects_bad_routing_keys),
        cmocka_unit_test(test_rejects_bad_identifiers_in_routing_key_and_scope),
        cmocka_unit_test(test_rejects_envelopes_with_missing_or_extra_keys),
        cmocka_unit_test(test_rejects_wrong_kind),
        cmocka_unit_test(test_rejects_unknown_type_and_type_mismatch),
        cmocka_unit_test(test_rejects_scope_that_disagrees_with_routing_key),
        cmocka_unit_test(test_rejects_signals_for_another_swarm),
        cmocka_unit_test(test_rejects_missing_correlation_id),
        cmocka_unit_test(test_rejects_data_that_is_not_an_object),
        cmocka_unit_test(test_rejects_data_the_controller_could_not_decode),
        cmocka_unit_test(test_rejects_oversize_messages_before_parsing),
        cmocka_unit_test(test_every_rejection_has_its_own_verdict_name),
        cmocka_unit_test(test_quoted_prefix_never_shows_a_secret),
        cmocka_unit_test(test_item20_quoted_prefix_never_shows_dbpass_or_url_credentials),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
