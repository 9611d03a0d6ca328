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

/* The desired config journaled in state entries and checkpoints leaves out
 * whole every value it cannot keep (secret-named keys, URLs with
 * credentials) and names them: a controller that recovers it sends a worker
 * joining later the rest, never a masked URL in place of the worker's own
 * (which it used to: the state held "amqp://u:***@h/"). */
static void a_recovered_desired_config_sends_no_masked_value_to_a_joining_worker(void **state)
{
    struct fx *f = *state;
    ph_worker *w = fx_attach(f, "processor", "p-1");
    fx_step(f, 300 * MS);
    fx_signal(f, "config-update", "processor", NULL, "cid-d", "ik-d", LEAKY_PATCH);
    assert_int_equal(wk_apply(w, true, NULL, NULL), 1);
    fx_step(f, 10 * MS);

    long k = -1, next;
    while ((next = fx_journal_find(f, k + 1, "state", NULL, NULL)) >= 0)
        k = next;
    assert_true(k >= 0);
    json_t *st = json_array_get(f->journal, (size_t)k);
    json_t *entry = json_array_get(jget(st, "desired"), 0);
    assert_non_null(entry);
    assert_int_equal(jint(entry, "patch.ratePerSec"), 5);
    assert_false(jhas(entry, "patch.url"));
    assert_false(jhas(entry, "patch.mirrors"));
    assert_false(jhas(entry, "patch.dbPass"));
    assert_false(jhas(entry, "patch.auth"));
    assert_int_equal(json_array_size(jget(entry, "withheld")), 4);
    assert_no_secret_value(f->journal, "the journal");

    assert_true(fx_restart_controller(f) > 0);
    wk_apply(w, true, NULL, NULL); /* the adopter's status-request */
    fx_step(f, 10 * MS);
    ph_worker *late = fx_attach(f, "processor", "p-2");
    fx_step(f, 10 * MS);
    json_t *patch = NULL;
    int type = -1;
    assert_int_equal(wk_apply(late, true, &patch, &type), 1);
    assert_int_equal(type, PH_COMMAND_CONFIG_PATCH);
    assert_int_equal(json_integer_value(json_object_get(patch, "ratePerSec")), 5);
    assert_null(json_object_get(patch, "url"));
    assert_null(json_object_get(patch, "mirrors"));
    assert_null(json_object_get(patch, "dbPass"));
    assert_null(json_object_get(patch, "auth"));
    json_decref(patch);
    assert_int_equal(f->violations, 0);
}

/* A signal still unanswered when the controller died cannot be applied
 * again without the secrets its journal entry lacks: it is answered failed,
 * retryable, saying so (it used to say its data was too large). */
static void an_open_signal_with_secrets_is_answered_failed_retryable_after_a_restart(void **state)
{
    struct fx *f = *state;
    ph_worker *w = fx_attach(f, "processor", "p-1");
    fx_step(f, 300 * MS);
    fx_signal(f, "config-update", "processor", "p-1", "cid-o", "ik-o", LEAKY_PATCH);
    fx_step(f, 10 * MS);
    long k = fx_journal_find(f, 0, "signal", NULL, NULL);
    assert_true(k >= 0);
    assert_false(jbool(json_array_get(f->journal, (size_t)k), "dataComplete"));
    size_t mark = fx_ndocs(f);
    assert_true(fx_restart_controller(f) > 0);
    fx_step(f, 10 * MS);
    json_t *o = fx_first(f, mark, "outcome", "config-update", NULL);
    assert_non_null(o);
    assert_string_equal(jstr(o, "cid"), "cid-o");
    assert_string_equal(jstr(o, "data.status"), "failed");
    assert_true(jbool(o, "data.retryable"));
    assert_non_null(strstr(jstr(o, "data.context.message"), "secrets"));
    assert_int_equal(fx_count(f, mark, "outcome", NULL, NULL), 1);
    wk_apply(w, true, NULL, NULL);
    assert_int_equal(f->violations, 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(item20_config_update_secrets_stay_out_of_journal_and_worker_full),
        T(a_recovered_desired_config_sends_no_masked_value_to_a_joining_worker),
        T(an_open_signal_with_secrets_is_answered_failed_retryable_after_a_restart),
    };
    return cmocka_run_group_tests_name("swarm controller secrets (item 20)", tests, NULL, NULL);
}
