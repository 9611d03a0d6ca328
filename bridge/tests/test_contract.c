/* The contract's vocabulary (bridge/contract.c): routing keys, RFC 3339
 * times, secret removal and the envelope outline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "contract.h"

static void test_routing_keys_per_kind_with_ALL_for_null(void **state)
{
    (void)state;
    char rk[CONTRACT_RK_MAX], why[256];
    assert_int_equal(contract_rk_build(rk, sizeof rk, CK_SIGNAL, "swarm-start", "demo", NULL, NULL,
                                       why, sizeof why),
                     PH_OK);
    assert_string_equal(rk, "signal.swarm-start.demo.ALL.ALL");
    assert_int_equal(contract_rk_build(rk, sizeof rk, CK_METRIC, "status-delta", "demo",
                                       "swarm-controller", "demo-controller", why, sizeof why),
                     PH_OK);
    assert_string_equal(rk, "event.metric.status-delta.demo.swarm-controller.demo-controller");
    assert_int_equal(contract_rk_build(rk, sizeof rk, CK_OUTCOME, "config-update", "demo",
                                       "generator", "gen-1", why, sizeof why),
                     PH_OK);
    assert_string_equal(rk, "event.outcome.config-update.demo.generator.gen-1");
    assert_int_equal(
        contract_rk_build(rk, sizeof rk, CK_EVENT, "alert", NULL, NULL, NULL, why, sizeof why),
        PH_OK);
    assert_string_equal(rk, "event.alert.alert.ALL.ALL.ALL");
}

static void test_routing_key_refuses_unroutable_identifiers_and_types(void **state)
{
    (void)state;
    char rk[CONTRACT_RK_MAX], why[256];
    const char *bad[] = {"a.b", "a*", "a#", "a b", "", "ALL", "tab\t"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(contract_rk_build(rk, sizeof rk, CK_EVENT, "alert", "demo", bad[i], NULL,
                                           why, sizeof why),
                         PH_ERR_INVAL);
    assert_int_equal(
        contract_rk_build(rk, sizeof rk, CK_METRIC, "alert", "demo", NULL, NULL, why, sizeof why),
        PH_ERR_INVAL);
    assert_int_equal(contract_rk_build(rk, sizeof rk, CK_EVENT, "status-full", "demo", NULL, NULL,
                                       why, sizeof why),
                     PH_ERR_INVAL);
}

static void test_routing_key_parse_round_trips_and_maps_ALL_to_empty(void **state)
{
    (void)state;
    struct contract_rk k;
    char why[256];
    assert_int_equal(contract_rk_parse("signal.config-update.demo.ALL.gen-1", &k, why, sizeof why),
                     PH_OK);
    assert_int_equal(k.kind, CK_SIGNAL);
    assert_string_equal(k.type, "config-update");
    assert_string_equal(k.swarm, "demo");
    assert_string_equal(k.role, "");
    assert_string_equal(k.instance, "gen-1");
    assert_int_equal(
        contract_rk_parse("event.metric.status-full.demo.swarm-controller.c1", &k, why, sizeof why),
        PH_OK);
    assert_int_equal(k.kind, CK_METRIC);
    assert_int_equal(contract_rk_parse("event.alert.alert.ALL.ALL.ALL", &k, why, sizeof why),
                     PH_OK);
    assert_int_equal(k.kind, CK_EVENT);

    const char *bad[] = {"",
                         "signal",
                         "signal.swarm-start.demo.ALL",
                         "signal.swarm-start.demo.ALL.ALL.extra",
                         "signal.swarm-start.demo..ALL",
                         "signal.swarm-start.de mo.ALL.ALL",
                         "signal.swarm-start.*.ALL.ALL",
                         "command.swarm-start.demo.ALL.ALL",
                         "event.gossip.x.demo.ALL.ALL",
                         "event.metric.status-full.demo.ALL",
                         "signal.a.b.c.d.e.f.g.h"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (contract_rk_parse(bad[i], &k, why, sizeof why) != PH_ERR_INVAL)
            fail_msg("routing key '%s' was accepted", bad[i]);
    char longkey[400];
    memset(longkey, 'a', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    assert_int_equal(contract_rk_parse(longkey, &k, why, sizeof why), PH_ERR_INVAL);
}

static void test_rfc3339_accepts_the_contract_forms_and_refuses_near_misses(void **state)
{
    (void)state;
    const char *good[] = {"2026-11-26T12:00:00.123Z", "2026-11-26T12:00:00Z",
                          "2024-02-29T23:59:60+01:00", "2026-01-01t00:00:00.1z",
                          "2026-12-31T23:59:59.999999-05:30"};
    const char *bad[] = {"",
                         "2026-11-26",
                         "2026-11-26 12:00:00Z",
                         "2026-11-26T12:00:00",
                         "2026-13-01T00:00:00Z",
                         "2025-02-29T00:00:00Z",
                         "2026-11-26T24:00:00Z",
                         "2026-11-26T12:60:00Z",
                         "2026-11-26T12:00:00.Z",
                         "2026-11-26T12:00:00+0100",
                         "2026-11-26T12:00:00Zjunk",
                         "26-11-26T12:00:00Z"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (!contract_rfc3339_valid(good[i])) fail_msg("'%s' refused", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (contract_rfc3339_valid(bad[i])) fail_msg("'%s' accepted", bad[i]);
    assert_false(contract_rfc3339_valid(NULL));
}

static void test_secret_removal_recurses_through_objects_and_arrays(void **state)
{
    (void)state;
    json_t *v =
        json_pack("{s:s,s:{s:s,s:i},s:[{s:s},{s:s}],s:s}", "Password", "p", "db", "client_secret",
                  "s", "port", 5, "list", "token", "t", "name", "n", "API-KEY", "k");
    assert_int_equal(contract_drop_secrets(v), 4);
    char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s, "{\"db\":{\"port\":5},\"list\":[{},{\"name\":\"n\"}]}");
    free(s);
    json_decref(v);
}

static json_t *minimal_signal(void)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:{s:s,s:n,s:n},s:s,s:n,s:{}}", "timestamp",
                     "2026-11-26T12:00:00.123Z", "version", "1", "kind", "signal", "type",
                     "swarm-stop", "origin", "o", "scope", "swarmId", "demo", "role", "instance",
                     "correlationId", "c", "idempotencyKey", "data");
}

static void test_envelope_outline_keys_exact_and_ordered(void **state)
{
    (void)state;
    char why[256];
    json_t *env = minimal_signal();
    assert_int_equal(contract_check_envelope(env, why, sizeof why), PH_OK);

    json_object_set_new(env, "extra", json_true());
    assert_int_equal(contract_check_envelope(env, why, sizeof why), PH_ERR_INVAL);
    assert_non_null(strstr(why, "'extra'"));
    json_decref(env);

    env = minimal_signal();
    json_t *ts = json_incref(json_object_get(env, "timestamp"));
    json_object_del(env, "timestamp");
    json_object_set_new(env, "timestamp", ts); /* now last */
    assert_int_equal(contract_check_envelope(env, why, sizeof why), PH_ERR_INVAL);
    assert_non_null(strstr(why, "envelope key #1 is 'version'"));
    json_decref(env);

    env = minimal_signal();
    json_object_del(env, "idempotencyKey");
    assert_int_equal(contract_check_envelope(env, why, sizeof why), PH_ERR_INVAL);
    assert_non_null(strstr(why, "lacks 'idempotencyKey'"));
    json_decref(env);

    env = minimal_signal();
    json_object_set_new(env, "version", json_string("2"));
    assert_int_equal(contract_check_envelope(env, why, sizeof why), PH_ERR_INVAL);
    json_decref(env);

    env = minimal_signal();
    json_object_set_new(env, "origin", json_string(""));
    assert_int_equal(contract_check_envelope(env, why, sizeof why), PH_ERR_INVAL);
    json_decref(env);

    env = minimal_signal();
    json_object_set_new(json_object_get(env, "scope"), "extra", json_null());
    assert_int_equal(contract_check_envelope(env, why, sizeof why), PH_ERR_INVAL);
    json_decref(env);

    env = minimal_signal();
    json_object_set_new(env, "correlationId", json_null());
    assert_int_equal(contract_check_envelope(env, why, sizeof why), PH_ERR_INVAL);
    assert_non_null(strstr(why, "correlationId is required"));
    json_decref(env);

    assert_int_equal(contract_check_envelope(NULL, why, sizeof why), PH_ERR_INVAL);
}

static void test_kinds_and_signal_types(void **state)
{
    (void)state;
    assert_int_equal(contract_kind_parse("signal"), CK_SIGNAL);
    assert_int_equal(contract_kind_parse("event"), CK_EVENT);
    assert_int_equal(contract_kind_parse("Signal"), -1);
    assert_int_equal(contract_kind_parse(NULL), -1);
    for (int i = 0; i < CONTRACT_SIGNAL_TYPES; i++)
        assert_true(contract_signal_type_known(contract_signal_types[i]));
    assert_false(contract_signal_type_known("swarm-create"));
    assert_false(contract_signal_type_known(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routing_keys_per_kind_with_ALL_for_null),
        cmocka_unit_test(test_routing_key_refuses_unroutable_identifiers_and_types),
        cmocka_unit_test(test_routing_key_parse_round_trips_and_maps_ALL_to_empty),
        cmocka_unit_test(test_rfc3339_accepts_the_contract_forms_and_refuses_near_misses),
        cmocka_unit_test(test_secret_removal_recurses_through_objects_and_arrays),
        cmocka_unit_test(test_envelope_outline_keys_exact_and_ordered),
        cmocka_unit_test(test_kinds_and_signal_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
