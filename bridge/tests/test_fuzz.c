/* Fuzz-ish robustness: the bridge never crashes, whatever the controller's
 * ring or a sender's line holds. Valid inputs are mutated byte-wise and
 * structurally with a fixed-seed generator (reproducible); whatever is
 * accepted must still satisfy the contract. Run it under the address
 * sanitizer build (PH_SANITIZE=address) to catch what does not crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "envelope.h"
#include "ph/record.h"
#include "sample_docs.h"
#include "sigcheck.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    /* xorshift64*: plenty for mutation choices. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static size_t below(size_t n)
{
    return n ? (size_t)(rnd() % n) : 0;
}

static json_t *sample(int i)
{
    switch (i % 7) {
    case 0:
        return sample_controller_full("demo", "demo-controller", "c", "t");
    case 1:
        return sample_controller_delta("demo", "demo-controller");
    case 2:
        return sample_worker_full("demo", "generator", "gen-1", "demo-controller");
    case 3:
        return sample_worker_delta("demo", "generator", "gen-1", "demo-controller");
    case 4:
        return sample_outcome("demo", "demo-controller", "swarm-start", "c", "i", "Running");
    case 5:
        return sample_alert("demo", NULL, NULL, "demo-controller");
    default:
        return sample_alert(NULL, "x", NULL, "demo-controller");
    }
}

static json_t *random_value(int depth)
{
    switch (below(depth > 2 ? 6 : 8)) {
    case 0:
        return json_null();
    case 1:
        return json_integer((json_int_t)(rnd() % 2000) - 1000);
    case 2:
        return json_real((double)(rnd() % 1000) / 7.0);
    case 3:
        return json_boolean(below(2));
    case 4: {
        static const char *const s[] = {
            "",        "ok", "ALL", "a.b", "status-full", "unknown", "2026-11-26T12:00:00Z",
            "workers", "\t"};
        return json_string(s[below(sizeof s / sizeof s[0])]);
    }
    case 5:
        return json_string("x");
    case 6: {
        json_t *a = json_array();
        for (size_t i = below(3); i > 0; i--)
            json_array_append_new(a, random_value(depth + 1));
        return a;
    }
    default: {
        static const char *const k[] = {"config", "workers", "io", "input", "output",  "tps",
                                        "status", "code",    "x",  "work",  "password"};
        json_t *o = json_object();
        for (size_t i = below(3); i > 0; i--)
            json_object_set_new(o, k[below(sizeof k / sizeof k[0])], random_value(depth + 1));
        return o;
    }
    }
}

/* Replaces, adds or deletes one member somewhere in v. */
static void mutate_json(json_t *v, int depth)
{
    if (json_is_object(v) && json_object_size(v) > 0) {
        size_t pick = below(json_object_size(v));
        void *it = json_object_iter(v);
        while (pick-- > 0)
            it = json_object_iter_next(v, it);
        const char *key = json_object_iter_key(it);
        json_t *child = json_object_iter_value(it);
        switch (below(depth < 6 ? 4 : 3)) {
        case 0:
            json_object_iter_set_new(v, it, random_value(depth));
            break;
        case 1: {
            char copy[64];
            snprintf(copy, sizeof copy, "%s", key);
            json_object_del(v, copy);
            break;
        }
        case 2:
            json_object_set_new(v, "extra", random_value(depth));
            break;
        default:
            mutate_json(child, depth + 1);
            break;
        }
    } else if (json_is_array(v) && json_array_size(v) > 0) {
        size_t i = below(json_array_size(v));
        if (below(2))
            json_array_set_new(v, i, random_value(depth));
        else
            mutate_json(json_array_get(v, i), depth + 1);
    }
}

static void check_accepted(const struct envelope *e)
{
    char why[512];
    /* Whatever came out must pass the contract check again and have a key. */
    if (contract_check_envelope(e->env, why, sizeof why) != PH_OK)
        fail_msg("accepted an envelope that fails the contract: %s", why);
    assert_true(strlen(e->rk) > 10);
}

static void test_documents_with_flipped_bytes_never_crash(void **state)
{
    (void)state;
    for (int i = 0; i < 20000; i++) {
        json_t *d = sample(i);
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        sample_pack(d, &sb);
        json_decref(d);
        size_t len = sb.size;
        uint8_t *buf = (uint8_t *)sb.data;
        for (size_t m = 1 + below(4); m > 0; m--) {
            switch (below(3)) {
            case 0:
                buf[below(len)] ^= (uint8_t)(1u << below(8));
                break;
            case 1:
                buf[below(len)] = (uint8_t)rnd();
                break;
            default:
                len = below(len + 1);
                break;
            }
        }
        struct envelope e;
        char why[512];
        if (envelope_from_doc(buf, len, 1795744800123000000ull, &e, why, sizeof why) == PH_OK) {
            check_accepted(&e);
            envelope_clear(&e);
        } else {
            assert_true(strlen(why) > 0);
        }
        msgpack_sbuffer_destroy(&sb);
    }
}

static void test_random_bytes_never_crash(void **state)
{
    (void)state;
    uint8_t buf[512];
    for (int i = 0; i < 20000; i++) {
        size_t len = below(sizeof buf);
        for (size_t j = 0; j < len; j++)
            buf[j] = (uint8_t)rnd();
        /* Bias towards maps so the decoder gets past the first byte. */
        if (len > 0 && below(2)) buf[0] = (uint8_t)(0x80 | below(16));
        struct envelope e;
        char why[512];
        if (envelope_from_doc(buf, len, 0, &e, why, sizeof why) == PH_OK) {
            check_accepted(&e);
            envelope_clear(&e);
        }
    }
}

static void test_structurally_mutated_documents_are_refused_or_valid(void **state)
{
    (void)state;
    int accepted = 0;
    for (int i = 0; i < 20000; i++) {
        json_t *d = sample(i);
        for (size_t m = 1 + below(3); m > 0; m--)
            mutate_json(d, 0);
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        sample_pack(d, &sb);
        json_decref(d);
        struct envelope e;
        char why[512];
        if (envelope_from_doc((const uint8_t *)sb.data, sb.size, 1795744800123000000ull, &e, why,
                              sizeof why) == PH_OK) {
            check_accepted(&e);
            accepted++;
            envelope_clear(&e);
        }
        msgpack_sbuffer_destroy(&sb);
    }
    /* Some mutations are harmless (a context value): both paths ran. */
    assert_true(accepted > 0 && accepted < 20000);
}

static void test_mutated_signal_lines_never_crash(void **state)
{
    (void)state;
    const struct sigcheck_cfg cfg = {.swarm = "demo", .max_bytes = 2048};
    struct sigcheck_result r;
    sigcheck_result_init(&r);
    int accepted = 0;
    for (int i = 0; i < 20000; i++) {
        json_t *env = sample_signal_envelope("config-update", "demo", below(2) ? "generator" : NULL,
                                             NULL, "c-1", below(2) ? "i-1" : NULL,
                                             json_pack("{s:b}", "enabled", 1));
        if (below(2)) mutate_json(env, 0);
        json_t *scope = json_object_get(env, "scope");
        char rk[128];
        snprintf(rk, sizeof rk, "signal.config-update.demo.%s.ALL",
                 json_is_string(json_object_get(scope, "role"))
                     ? json_string_value(json_object_get(scope, "role"))
                     : "ALL");
        json_t *line = json_pack("{s:s,s:o}", "routingKey", rk, "envelope", env);
        char *s = json_dumps(line, JSON_COMPACT);
        json_decref(line);
        size_t len = strlen(s);
        if (below(2)) {
            for (size_t m = 1 + below(3); m > 0; m--) {
                switch (below(3)) {
                case 0:
                    s[below(len)] = (char)rnd();
                    break;
                case 1:
                    s[below(len)] = "{}[]\",:\\ \x01\xff"[below(12)];
                    break;
                default:
                    len = below(len + 1);
                    break;
                }
            }
        }
        if (sigcheck_line(&cfg, s, len, len, &r) == SIG_OK) {
            accepted++;
            char err[128];
            assert_int_equal(
                ph_mp_check((const uint8_t *)r.doc.data, r.doc.size, NULL, err, sizeof err), PH_OK);
        } else {
            assert_true(strlen(r.reason) > 0);
            assert_true(strlen(r.prefix) <= SIGCHECK_PREFIX_MAX);
        }
        sigcheck_result_free(&r);
        free(s);
    }
    assert_true(accepted > 0 && accepted < 20000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_documents_with_flipped_bytes_never_crash),
        cmocka_unit_test(test_random_bytes_never_crash),
        cmocka_unit_test(test_structurally_mutated_documents_are_refused_or_valid),
        cmocka_unit_test(test_mutated_signal_lines_never_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
