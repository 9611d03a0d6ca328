/* Item 20 in the controller: a config-update that carries credentials
 * reaches its worker whole (the worker needs them), while neither the
 * journal (swarm.c redacted()) nor the worker's status-full (the SDK's
 * config record) holds a secret value: not under a name the old list
 * missed (dbPass, auth), not inside a URL (amqp://u:p4ss@h/). */
#include "fixture.h"

#include <string.h>

#define LEAKY_PATCH                                                                                \
    "{\"ratePerSec\": 5, \"dbPass\": \"hunter2\", \"auth\": \"Basic dTpwNHNz\","                   \
    " \"url\": \"amqp://u:p4ss@h/\", \"mirrors\": [\"https://t0k3n@m.example/\"]}"

static void assert_no_secret_value(const json_t *v, const char *where)
{
    static const char *const secrets[] = {"hunter2", "dTpwNHNz", "p4ss", "t0k3n"};
    char *s = json_dumps(v, JSON_COMPACT);
    assert_non_null(s);
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
        if (strstr(s, secrets[i]) != NULL) fail_msg("'%s' found in %s: %s", secrets[i], where, s);
    free(s);
}

static void item20_config_update_secrets_stay_out_of_journal_and_worker_full(void **state)
{
    struct fx *f = *state;
    ph_worker *w = fx_attach(f, "processor", "p-1");
    fx_step(f, 300 * MS);
    size_t mark = fx_ndocs(f);
    fx_signal(f, "config-update", "processor", "p-1", "cid-s", "ik-s", LEAKY_PATCH);
    fx_step(f, 10 * MS);

    /* The worker gets its credentials unchanged. */
    json_t *patch = NULL;
    int type = -1;
    assert_int_equal(wk_apply(w, true, &patch, &type), 1);
    assert_int_equal(type, PH_COMMAND_CONFIG_PATCH);
    assert_string_equal(json_string_value(json_object_get(patch, "dbPass")), "hunter2");
    assert_string_equal(json_string_value(json_object_get(patch, "url")), "amqp://u:p4ss@h/");
    json_decref(patch);
    fx_step(f, 10 * MS);

    /* The journal records the signal, its secrets removed or masked. */
    long j = fx_journal_find(f, 0, "signal", NULL, NULL);
    assert_true(j >= 0);
    json_t *entry = json_array_get(f->journal, (size_t)j);
    assert_false(jhas(entry, "data.dbPass"));
    assert_false(jhas(entry, "data.auth"));
    assert_string_equal(jstr(entry, "data.url"), "amqp://u:***@h/");
    assert_int_equal(jint(entry, "data.ratePerSec"), 5);
    assert_no_secret_value(f->journal, "the journal");

    /* The worker's status-full after the update carries its new config,
     * as the SDK wrote it: without the secrets. */
    json_t *wf = fx_first(f, mark, "metric", "status-full", "processor");
    assert_non_null(wf);
    assert_int_equal(jint(wf, "data.config.ratePerSec"), 5);
    assert_string_equal(jstr(wf, "data.config.url"), "amqp://u:***@h/");
    assert_false(jhas(wf, "data.config.dbPass"));
    for (size_t i = 0; i < fx_ndocs(f); i++)
        assert_no_secret_value(fx_doc(f, i), "a controller document");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(item20_config_update_secrets_stay_out_of_journal_and_worker_full),
    };
    return cmocka_run_group_tests_name("swarm controller secrets (item 20)", tests, NULL, NULL);
}
