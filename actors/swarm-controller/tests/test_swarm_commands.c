/* Commands of the swarm controller (swarm.c): config-update at every scope
 * and every accepted form of `enabled`, lifecycle commands, outcomes after
 * worker acks, timeouts, idempotent replays, status-requests and plans.
 *
 * Signals are built as the bridge hands them over (ph/doc.h); workers are
 * real SDK workers that poll their command ring and ack (wk_apply). */
#include "fixture.h"

#include <string.h>

#define CTL "swarm-controller"


static json_t *only_outcome(struct fx *f, size_t mark, const char *type)
{
    assert_int_equal(fx_count(f, mark, "outcome", NULL, NULL), 1);
    json_t *o = fx_first(f, mark, "outcome", type, NULL);
    assert_non_null(o);
    return o;
}

/* ---- config-update to workers ------------------------------------------- */

static void config_update_to_one_instance_patches_only_it_and_answers_after_its_ack(void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    size_t mark = fx_ndocs(f);
    fx_signal(f, "config-update", "processor", "p-1", "cid-1", "ik-1",
              "{\"enabled\": true, \"ratePerSec\": 5}");
    fx_step(f, 10 * MS);
    /* Nothing is answered before the worker acks. */
    assert_int_equal(fx_count(f, mark, "outcome", NULL, NULL), 0);
    assert_int_equal(wk_apply(t.g, true, NULL, NULL), 0);
    assert_int_equal(wk_apply(t.p2, true, NULL, NULL), 0);
    json_t *patch = NULL;
    int type = -1;
    assert_int_equal(wk_apply(t.p1, true, &patch, &type), 1);
    assert_int_equal(type, PH_COMMAND_CONFIG_PATCH);
    assert_non_null(patch);
    assert_true(json_is_true(json_object_get(patch, "enabled")));
    assert_int_equal(json_integer_value(json_object_get(patch, "ratePerSec")), 5);
    assert_int_equal(json_object_size(patch), 2);
    json_decref(patch);
    assert_int_equal(fx_count(f, mark, "outcome", NULL, NULL), 0);
    fx_step(f, 10 * MS);

    json_t *o = only_outcome(f, mark, "config-update");
    assert_string_equal(jstr(o, "cid"), "cid-1");
    assert_string_equal(jstr(o, "ikey"), "ik-1");
    assert_string_equal(jstr(o, "data.status"), "applied");
    assert_true(jbool(o, "data.enabled"));
    assert_string_equal(jstr(o, "swarm"), f->id);
    assert_string_equal(jstr(o, "role"), "processor");
    assert_string_equal(jstr(o, "instance"), "p-1");
    assert_string_equal(jstr(o, "origin"), f->ctl_instance);
    size_t i = fx_find(f, mark, "outcome", NULL, NULL);
    assert_true(json_is_true(json_object_get(json_array_get(f->docs, i), "reliable")));
    /* The applied worker's status-full follows, with its new state. */
    json_t *wf = fx_first(f, mark, "metric", "status-full", "processor");
    assert_non_null(wf);
    assert_string_equal(jstr(wf, "instance"), "p-1");
    assert_true(jbool(wf, "data.enabled"));
    assert_int_equal(jint(wf, "data.config.ratePerSec"), 5);
    assert_int_equal(fx_count(f, mark, "metric", "status-full", "generator"), 0);
    /* Journal: the signal and its outcome. */
    assert_true(fx_journal_find(f, 0, "signal", NULL, NULL) >= 0);
    assert_true(fx_journal_find(f, 0, "outcome", NULL, NULL) >= 0);
}

static void config_update_to_a_role_patches_every_worker_of_the_role(void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    size_t mark = fx_ndocs(f);
    fx_signal(f, "config-update", "processor", NULL, "cid-r", "ik-r", "{\"ratePerSec\": 2}");
    assert_int_equal(wk_apply(t.g, true, NULL, NULL), 0);
    assert_int_equal(wk_apply(t.p1, true, NULL, NULL), 1);
    fx_step(f, 10 * MS);
    assert_int_equal(fx_count(f, mark, "outcome", NULL, NULL), 0); /* p-2 has not acked */
    assert_int_equal(wk_apply(t.p2, true, NULL, NULL), 1);
    fx_step(f, 10 * MS);
    json_t *o = only_outcome(f, mark, "config-update");
    assert_string_equal(jstr(o, "data.status"), "applied");
    assert_string_equal(jstr(o, "role"), "processor");
    assert_true(json_is_null(jget(o, "instance")));
    /* No enabled in the patch: none in the outcome. */
    assert_false(jhas(o, "data.enabled"));
}

struct enabled_case {
    const char *data;
    int want; /* 1 true, 0 false, -1 absent */
    const char *extra_key;
    long long extra_val;
};

static void config_update_accepts_enabled_at_both_places_as_bool_or_string(void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    static const struct enabled_case cases[] = {
        {"{\"enabled\": true}", 1, NULL, 0},
        {"{\"enabled\": false}", 0, NULL, 0},
        {"{\"enabled\": \"true\"}", 1, NULL, 0},
        {"{\"enabled\": \"false\"}", 0, NULL, 0},
        {"{\"data\": {\"enabled\": true}}", 1, NULL, 0},
        {"{\"data\": {\"enabled\": \"false\"}}", 0, NULL, 0},
        {"{\"data\": {\"enabled\": \"true\", \"ratePerSec\": 7}}", 1, "ratePerSec", 7},
        {"{\"enabled\": false, \"data\": {\"ratePerSec\": 9}}", 0, "ratePerSec", 9},
        {"{\"ratePerSec\": 3}", -1, "ratePerSec", 3},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char cid[32], ikey[32];
        snprintf(cid, sizeof cid, "cid-en-%zu", k);
        snprintf(ikey, sizeof ikey, "ik-en-%zu", k);
        size_t mark = fx_ndocs(f);
        fx_signal(f, "config-update", "processor", "p-1", cid, ikey, cases[k].data);
        json_t *patch = NULL;
        assert_int_equal(wk_apply(t.p1, true, &patch, NULL), 1);
        assert_non_null(patch);
        const json_t *en = json_object_get(patch, "enabled");
        if (cases[k].want < 0) {
            assert_null(en);
        } else {
            /* Normalised to a boolean for the worker. */
            assert_true(json_is_boolean(en));
            assert_int_equal(json_is_true(en), cases[k].want);
        }
        assert_null(json_object_get(patch, "data"));
        if (cases[k].extra_key)
            assert_int_equal(json_integer_value(json_object_get(patch, cases[k].extra_key)),
                             cases[k].extra_val);
        json_decref(patch);
        fx_step(f, 10 * MS);
        json_t *o = only_outcome(f, mark, "config-update");
        assert_string_equal(jstr(o, "cid"), cid);
        assert_string_equal(jstr(o, "ikey"), ikey);
        assert_string_equal(jstr(o, "data.status"), "applied");
        if (cases[k].want < 0)
            assert_false(jhas(o, "data.enabled"));
        else
            assert_int_equal(jbool(o, "data.enabled"), cases[k].want);
        if (cases[k].want >= 0)
            assert_int_equal(f->ctl.w[ph_worker_slot(t.p1)].st.flags & PH_STATUS_ENABLED,
                             cases[k].want ? PH_STATUS_ENABLED : 0);
    }
}

static void config_update_with_enabled_maybe_fails_with_an_alert_and_sends_nothing(void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    static const char *const bad[] = {"{\"enabled\": \"maybe\"}",
                                      "{\"data\": {\"enabled\": \"maybe\"}}",
                                      "{\"enabled\": 1}"};
    for (size_t k = 0; k < 3; k++) {
        char cid[32];
        snprintf(cid, sizeof cid, "cid-bad-%zu", k);
        size_t mark = fx_ndocs(f);
        fx_signal(f, "config-update", "processor", "p-1", cid, NULL, bad[k]);
        json_t *o = only_outcome(f, mark, "config-update");
        assert_string_equal(jstr(o, "cid"), cid);
        assert_true(json_is_null(jget(o, "ikey")));
        assert_string_equal(jstr(o, "data.status"), "failed");
        assert_false(jbool(o, "data.retryable"));
        assert_int_equal(fx_count(f, mark, "event", "alert", CTL), 1);
        assert_string_equal(jstr(fx_first(f, mark, "event", "alert", CTL), "data.code"),
                            "command.failed");
        assert_int_equal(wk_apply(t.p1, true, NULL, NULL), 0);
        assert_int_equal(wk_apply(t.p2, true, NULL, NULL), 0);
        assert_int_equal(wk_apply(t.g, true, NULL, NULL), 0);
        fx_step(f, 10 * MS);
        assert_int_equal(fx_count(f, mark, "outcome", NULL, NULL), 1);
    }
}

static void config_update_for_an_absent_instance_fails(void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    size_t mark = fx_ndocs(f);
    fx_signal(f, "config-update", "processor", "p-7", "cid-none", "ik-none", "{\"enabled\": true}");
    json_t *o = only_outcome(f, mark, "config-update");
    assert_string_equal(jstr(o, "data.status"), "failed");
    assert_string_equal(jstr(o, "instance"), "p-7");
    assert_int_equal(wk_apply(t.p1, true, NULL, NULL), 0);
}

static void worker_refusing_a_patch_yields_failed_not_retryable_and_an_alert(void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    size_t mark = fx_ndocs(f);
    fx_signal(f, "config-update", "processor", "p-1", "cid-ref", "ik-ref", "{\"ratePerSec\": -1}");
    assert_int_equal(wk_apply(t.p1, false, NULL, NULL), 1);
    fx_step(f, 10 * MS);
    json_t *o = only_outcome(f, mark, "config-update");
    assert_string_equal(jstr(o, "data.status"), "failed");
    assert_false(jbool(o, "data.retryable"));
    assert_non_null(strstr(jstr(o, "data.context.message"), "refused"));
    json_t *a = fx_first(f, mark, "event", "alert", CTL);
    assert_non_null(a);
    assert_string_equal(jstr(a, "data.code"), "command.failed");
    assert_string_equal(jstr(a, "data.level"), "error");
}

/* ---- controller scope and lifecycle ------------------------------------- */

static void controller_scope_config_update_toggles_every_worker(void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    assert_int_equal(f->sw.status, SW_READY);
    size_t mark = fx_ndocs(f);
    fx_signal(f, "config-update", CTL, f->ctl_instance, "cid-on", "ik-on", "{\"enabled\": true}");
    json_t *patch = NULL;
    assert_int_equal(wk_apply(t.g, true, &patch, NULL), 1);
    assert_true(json_is_true(json_object_get(patch, "enabled")));
    json_decref(patch);
    patch = NULL;
    assert_int_equal(wk_apply(t.p1, true, NULL, NULL), 1);
    fx_step(f, 10 * MS);
    assert_int_equal(fx_count(f, mark, "outcome", NULL, NULL), 0); /* p-2 pending */
    assert_int_equal(wk_apply(t.p2, true, &patch, NULL), 1);
    assert_true(json_is_true(json_object_get(patch, "enabled")));
    json_decref(patch);
    fx_step(f, 10 * MS);
    json_t *o = only_outcome(f, mark, "config-update");
    assert_string_equal(jstr(o, "cid"), "cid-on");
    assert_string_equal(jstr(o, "data.status"), "applied");
    assert_true(jbool(o, "data.enabled"));
    assert_string_equal(jstr(o, "role"), CTL);
    assert_string_equal(jstr(o, "instance"), f->ctl_instance);
    assert_int_equal(f->sw.status, SW_RUNNING);
    for (int i = 0; i < 10; i++) fx_step(f, 10 * MS);
    json_t *d = fx_last(f, mark, "metric", "status-delta", CTL);
    assert_true(jbool(d, "data.enabled"));
    assert_int_equal(jint(d, "data.context.totals.enabled"), 3);
    assert_int_equal(jint(d, "data.context.totals.running"), 3);

    /* And off again, upstream's nested form, addressed to the controller role only. */
    mark = fx_ndocs(f);
    fx_signal(f, "config-update", CTL, NULL, "cid-off", "ik-off",
              "{\"data\": {\"enabled\": \"false\"}}");
    assert_int_equal(wk_apply(t.g, true, NULL, NULL), 1);
    assert_int_equal(wk_apply(t.p1, true, NULL, NULL), 1);
    assert_int_equal(wk_apply(t.p2, true, NULL, NULL), 1);
    fx_step(f, 10 * MS);
    o = only_outcome(f, mark, "config-update");
    assert_false(jbool(o, "data.enabled"));
    assert_int_equal(f->sw.status, SW_STOPPED);
    for (int i = 0; i < 10; i++) fx_step(f, 10 * MS);
    d = fx_last(f, mark, "metric", "status-delta", CTL);
    assert_false(jbool(d, "data.enabled"));
    assert_int_equal(jint(d, "data.context.totals.enabled"), 0);
    assert_string_equal(jstr(d, "data.context.swarmStatus"), "STOPPED");
}

static void controller_scope_config_update_without_enabled_is_answered_at_once(void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    size_t mark = fx_ndocs(f);
    fx_signal(f, "config-update", CTL, f->ctl_instance, "cid-set", NULL, "{\"note\": \"x\"}");
    json_t *o = only_outcome(f, mark, "config-update");
    assert_string_equal(jstr(o, "data.status"), "applied");
    /* Nothing for the workers to ack (it used to time out after 5 s). */
    assert_int_equal(wk_apply(t.g, true, NULL, NULL), 0);
    assert_int_equal(wk_apply(t.p1, true, NULL, NULL), 0);
    assert_string_equal(json_string_value(json_object_get(f->sw.controller_config, "note")), "x");
}

static void swarm_start_answers_running_after_acks_then_sends_a_full(void **state)
{
    struct fx *f = *state;
    struct swarm_role roles[] = {{"generator", 1}, {"processor", 2}};
    swarm_set_roles(&f->sw, roles, 2);
    struct fx_three t;
    fx_attach_three(f, &t);
    assert_int_equal(f->sw.status, SW_READY);
    size_t mark = fx_ndocs(f);
    fx_signal(f, "swarm-start", CTL, f->ctl_instance, "cid-start", "ik-start", NULL);
    assert_int_equal(f->sw.status, SW_STARTING);
    fx_step(f, 100 * MS);
    assert_int_equal(fx_count(f, mark, "outcome", NULL, NULL), 0);
    assert_string_equal(jstr(fx_last(f, mark, "metric", "status-delta", CTL),
                             "data.context.swarmStatus"),
                        "STARTING");
    json_t *patch = NULL;
    assert_int_equal(wk_apply(t.g, true, &patch, NULL), 1);
    assert_true(json_is_true(json_object_get(patch, "enabled")));
    json_decref(patch);
    assert_int_equal(wk_apply(t.p1, true, NULL, NULL), 1);
    assert_int_equal(wk_apply(t.p2, true, NULL, NULL), 1);
    size_t before = fx_ndocs(f);
    fx_step(f, 10 * MS);
    json_t *o = only_outcome(f, mark, "swarm-start");
    assert_string_equal(jstr(o, "cid"), "cid-start");
    assert_string_equal(jstr(o, "ikey"), "ik-start");
    assert_string_equal(jstr(o, "data.status"), "Running");
    assert_string_equal(jstr(o, "role"), CTL);
    assert_string_equal(jstr(o, "instance"), f->ctl_instance);
    assert_int_equal(f->sw.status, SW_RUNNING);
    /* The controller status-full follows the outcome. */
    size_t io = fx_find(f, before, "outcome", NULL, NULL);
    size_t ifull = fx_find(f, io, "metric", "status-full", CTL);
    assert_true(ifull != (size_t)-1);
    json_t *full = fx_doc(f, ifull);
    assert_string_equal(jstr(full, "data.context.swarmStatus"), "RUNNING");
    assert_string_equal(jstr(full, "data.context.state"), "RUNNING");
    assert_true(jbool(full, "data.enabled"));
    assert_int_equal(jint(full, "data.context.totals.running"), 3);
    assert_int_equal(json_array_size(jget(full, "data.context.workers")), 3);

    /* swarm-stop: Stopped, workloads off, resources kept. */
    mark = fx_ndocs(f);
    fx_signal(f, "swarm-stop", CTL, f->ctl_instance, "cid-stop", "ik-stop", NULL);
    assert_int_equal(f->sw.status, SW_STOPPING);
    patch = NULL;
    assert_int_equal(wk_apply(t.g, true, &patch, NULL), 1);
    assert_true(json_is_false(json_object_get(patch, "enabled")));
    json_decref(patch);
    assert_int_equal(wk_apply(t.p1, true, NULL, NULL), 1);
    assert_int_equal(wk_apply(t.p2, true, NULL, NULL), 1);
    fx_step(f, 10 * MS);
    o = only_outcome(f, mark, "swarm-stop");
    assert_string_equal(jstr(o, "data.status"), "Stopped");
    assert_false(jbool(o, "data.enabled"));
    assert_int_equal(f->sw.status, SW_STOPPED);
    assert_int_equal(f->ctl.live, 3);
    for (int i = 0; i < 10; i++) fx_step(f, 10 * MS);
    json_t *d = fx_last(f, mark, "metric", "status-delta", CTL);
    assert_string_equal(jstr(d, "data.context.swarmStatus"), "STOPPED");
    assert_int_equal(jint(d, "data.context.totals.running"), 0);
}

static void swarm_remove_stops_workers_and_answers_removed(void **state)
{
#if defined(__SANITIZE_ADDRESS__)
#endif
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    size_t mark = fx_ndocs(f);
    fx_signal(f, "swarm-remove", CTL, f->ctl_instance, "cid-rm", "ik-rm", NULL);
    int type = -1;
    assert_int_equal(wk_apply(t.g, true, NULL, &type), 1);
    assert_int_equal(type, PH_COMMAND_STOP);
    assert_int_equal(wk_apply(t.p1, true, NULL, NULL), 1);
    assert_int_equal(wk_apply(t.p2, true, NULL, NULL), 1);
    fx_step(f, 10 * MS);
    json_t *o = only_outcome(f, mark, "swarm-remove");
    assert_string_equal(jstr(o, "data.status"), "Removed");
    assert_int_equal(f->sw.status, SW_REMOVED);
    /* A removed swarm ends once its workers left (test_swarm_consumers:
     * the final documents): a later swarm-start is neither applied nor
     * answered. */
    fx_detach(f, t.p1);
    fx_detach(f, t.p2);
    fx_step(f, 5 * SEC);
    assert_true(swarm_finished(&f->sw));
    mark = fx_ndocs(f);
    fx_signal(f, "swarm-start", CTL, f->ctl_instance, "cid-st2", "ik-st2", NULL);
    fx_step(f, 10 * MS);
    assert_int_equal(fx_ndocs(f), mark);
    assert_int_equal(wk_apply(t.g, true, NULL, NULL), 0);
}

static void swarm_template_after_remove_is_refused(void **state)
{
    struct fx *f = *state;
    /* No workers: the removal completes at once; the template arrives
     * before the next tick ends the swarm. */
    fx_signal(f, "swarm-remove", CTL, f->ctl_instance, "cid-rm", "ik-rm", NULL);
    assert_int_equal(f->sw.status, SW_REMOVED);
    size_t mark = fx_ndocs(f);
    fx_signal(f, "swarm-template", CTL, f->ctl_instance, "cid-tpl", "ik-tpl",
              "{\"roles\": [{\"role\": \"generator\", \"count\": 1}]}");
    json_t *o = only_outcome(f, mark, "swarm-template");
    assert_string_equal(jstr(o, "data.status"), "failed");
    assert_non_null(strstr(jstr(o, "data.context.message"), "removed"));
    assert_int_equal(f->sw.status, SW_REMOVED);
}

static void swarm_template_sets_desired_roles_and_answers_ready(void **state)
{
    struct fx *f = *state;
    size_t mark = fx_ndocs(f);
    fx_signal(f, "swarm-template", CTL, f->ctl_instance, "cid-tpl", "ik-tpl",
              "{\"roles\": [{\"role\": \"generator\", \"count\": 2}, {\"role\": \"processor\"}]}");
    json_t *o = only_outcome(f, mark, "swarm-template");
    assert_string_equal(jstr(o, "data.status"), "Ready");
    fx_step(f, 100 * MS);
    json_t *d = fx_last(f, mark, "metric", "status-delta", CTL);
    assert_int_equal(jint(d, "data.context.totals.desired"), 3);
    assert_string_equal(jstr(d, "data.context.state"), "Unknown");
}

/* ---- timeouts ----------------------------------------------------------- */

static void command_without_acks_fails_after_the_timeout_as_retryable_with_an_alert(void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    assert_int_equal(f->sw.cfg.cmd_timeout_ns, 5 * SEC);
    size_t mark = fx_ndocs(f);
    fx_signal(f, "config-update", "processor", "p-1", "cid-to", "ik-to", "{\"enabled\": true}");
    for (int i = 0; i < 49; i++) fx_step(f, 100 * MS);
    assert_int_equal(fx_count(f, mark, "outcome", NULL, NULL), 0);
    fx_step(f, 100 * MS);
    json_t *o = only_outcome(f, mark, "config-update");
    assert_string_equal(jstr(o, "cid"), "cid-to");
    assert_string_equal(jstr(o, "ikey"), "ik-to");
    assert_string_equal(jstr(o, "data.status"), "failed");
    assert_true(jbool(o, "data.retryable"));
    json_t *a = fx_first(f, mark, "event", "alert", CTL);
    assert_non_null(a);
    assert_string_equal(jstr(a, "data.code"), "command.failed");
    assert_non_null(strstr(jstr(a, "data.message"), "timed out"));
    /* A late ack changes nothing: still exactly one outcome. */
    assert_int_equal(wk_apply(t.p1, true, NULL, NULL), 1);
    fx_step(f, 10 * MS);
    assert_int_equal(fx_count(f, mark, "outcome", NULL, NULL), 1);
}

/* The controller stopped for longer than the timeout (SIGSTOP, a paused
 * VM) while the worker's ack waited: the wait counts only the time the
 * controller ran, so the late-read ack still makes the outcome. */
static void a_stalled_controller_does_not_time_out_commands_it_could_not_hear(void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    size_t mark = fx_ndocs(f);
    fx_signal(f, "config-update", "processor", "p-1", "cid-st", "ik-st", "{\"ratePerSec\": 9}");
    fx_step(f, 100 * MS);
    fx_step(f, 8 * SEC); /* the controller was away for 8 s */
    assert_int_equal(fx_count(f, mark, "outcome", NULL, NULL), 0);
    assert_int_equal(wk_apply(t.p1, true, NULL, NULL), 1);
    fx_step(f, 10 * MS);
    json_t *o = only_outcome(f, mark, "config-update");
    assert_string_equal(jstr(o, "data.status"), "applied");
    /* Running on, the timeout still holds for a worker that never answers. */
    mark = fx_ndocs(f);
    fx_signal(f, "config-update", "processor", "p-2", "cid-st2", "ik-st2", "{\"ratePerSec\": 8}");
    for (int i = 0; i < 51; i++) fx_step(f, 100 * MS);
    o = only_outcome(f, mark, "config-update");
    assert_string_equal(jstr(o, "data.status"), "failed");
    assert_int_equal(f->violations, 0);
}

static void swarm_start_without_acks_fails_the_swarm(void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    size_t mark = fx_ndocs(f);
    fx_signal(f, "swarm-start", CTL, f->ctl_instance, "cid-st", "ik-st", NULL);
    assert_int_equal(wk_apply(t.g, true, NULL, NULL), 1);
    assert_int_equal(wk_apply(t.p1, true, NULL, NULL), 1);
    /* p-2 never answers */
    for (int i = 0; i < 51; i++) fx_step(f, 100 * MS);
    json_t *o = only_outcome(f, mark, "swarm-start");
    assert_string_equal(jstr(o, "data.status"), "failed");
    assert_true(jbool(o, "data.retryable"));
    assert_int_equal(f->sw.status, SW_FAILED);
    assert_string_equal(jstr(o, "data.context.swarmStatus"), "FAILED");
    assert_int_equal(fx_count(f, mark, "event", "alert", CTL), 1);
}

/* ---- idempotency -------------------------------------------------------- */

static void replayed_idempotency_key_is_answered_again_without_resending(void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    size_t mark = fx_ndocs(f);
    fx_signal(f, "config-update", "processor", "p-1", "cid-a", "ik-same",
              "{\"enabled\": true}");
    assert_int_equal(wk_apply(t.p1, true, NULL, NULL), 1);
    fx_step(f, 10 * MS);
    json_t *o1 = only_outcome(f, mark, "config-update");
    assert_string_equal(jstr(o1, "data.status"), "applied");

    /* Retry of the same action: new cid, same ikey. */
    mark = fx_ndocs(f);
    fx_signal(f, "config-update", "processor", "p-1", "cid-b", "ik-same",
              "{\"enabled\": true}");
    json_t *o2 = only_outcome(f, mark, "config-update");
    assert_string_equal(jstr(o2, "cid"), "cid-b");
    assert_string_equal(jstr(o2, "ikey"), "ik-same");
    assert_string_equal(jstr(o2, "data.status"), "applied");
    assert_true(jbool(o2, "data.enabled"));
    /* Applied once: no second command reached any worker. */
    assert_int_equal(wk_apply(t.p1, true, NULL, NULL), 0);
    assert_int_equal(wk_apply(t.p2, true, NULL, NULL), 0);
    assert_int_equal(wk_apply(t.g, true, NULL, NULL), 0);
    fx_step(f, 10 * MS);
    assert_int_equal(fx_count(f, mark, "outcome", NULL, NULL), 1);
    assert_true(fx_journal_find(f, 0, "replay", NULL, NULL) >= 0);

    /* A different key is a different action. */
    mark = fx_ndocs(f);
    fx_signal(f, "config-update", "processor", "p-1", "cid-c", "ik-other",
              "{\"enabled\": true}");
    assert_int_equal(wk_apply(t.p1, true, NULL, NULL), 1);
    fx_step(f, 10 * MS);
    assert_string_equal(jstr(only_outcome(f, mark, "config-update"), "cid"), "cid-c");
}

static void replayed_lifecycle_command_is_answered_with_the_same_status(void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    fx_signal(f, "swarm-start", CTL, f->ctl_instance, "cid-s1", "ik-s", NULL);
    assert_int_equal(wk_apply(t.g, true, NULL, NULL), 1);
    assert_int_equal(wk_apply(t.p1, true, NULL, NULL), 1);
    assert_int_equal(wk_apply(t.p2, true, NULL, NULL), 1);
    fx_step(f, 10 * MS);
    size_t mark = fx_ndocs(f);
    fx_signal(f, "swarm-start", CTL, f->ctl_instance, "cid-s2", "ik-s", NULL);
    json_t *o = only_outcome(f, mark, "swarm-start");
    assert_string_equal(jstr(o, "cid"), "cid-s2");
    assert_string_equal(jstr(o, "data.status"), "Running");
    assert_int_equal(f->sw.status, SW_RUNNING);
    assert_int_equal(wk_apply(t.g, true, NULL, NULL), 0);
}

static void replay_while_in_flight_gets_its_own_outcome_when_the_command_completes(void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    size_t mark = fx_ndocs(f);
    fx_signal(f, "config-update", "processor", "p-1", "cid-1", "ik-fly", "{\"enabled\": true}");
    fx_step(f, 10 * MS);
    fx_signal(f, "config-update", "processor", "p-1", "cid-2", "ik-fly", "{\"enabled\": true}");
    fx_step(f, 10 * MS);
    assert_int_equal(fx_count(f, mark, "outcome", NULL, NULL), 0);
    /* One command only. */
    assert_int_equal(wk_apply(t.p1, true, NULL, NULL), 1);
    fx_step(f, 10 * MS);
    assert_int_equal(fx_count(f, mark, "outcome", NULL, NULL), 2);
    json_t *a = fx_first(f, mark, "outcome", NULL, NULL);
    json_t *b = fx_last(f, mark, "outcome", NULL, NULL);
    assert_string_equal(jstr(a, "cid"), "cid-1");
    assert_string_equal(jstr(b, "cid"), "cid-2");
    assert_string_equal(jstr(a, "data.status"), "applied");
    assert_string_equal(jstr(b, "data.status"), "applied");
    assert_string_equal(jstr(b, "ikey"), "ik-fly");
}

static void retry_after_a_retryable_failure_is_applied_again(void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    size_t mark = fx_ndocs(f);
    fx_signal(f, "config-update", "processor", "p-1", "cid-try1", "ik-retry",
              "{\"enabled\": true}");
    for (int i = 0; i < 51; i++) fx_step(f, 100 * MS);
    json_t *o = only_outcome(f, mark, "config-update");
    assert_string_equal(jstr(o, "data.status"), "failed");
    assert_true(jbool(o, "data.retryable"));
    /* The worker was stuck; it catches up and drops the stale command. */
    assert_int_equal(wk_drop_commands(t.p1), 1);
    /* The client retries, as told. */
    mark = fx_ndocs(f);
    fx_signal(f, "config-update", "processor", "p-1", "cid-try2", "ik-retry",
              "{\"enabled\": true}");
    assert_int_equal(wk_apply(t.p1, true, NULL, NULL), 1);
    fx_step(f, 10 * MS);
    o = only_outcome(f, mark, "config-update");
    assert_string_equal(jstr(o, "cid"), "cid-try2");
    assert_string_equal(jstr(o, "data.status"), "applied");
}

/* ---- status-request ----------------------------------------------------- */

static void status_request_to_the_controller_yields_its_full_with_the_cid_and_no_outcome(
    void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    size_t mark = fx_ndocs(f);
    fx_signal(f, "status-request", CTL, f->ctl_instance, "cid-sr", "ik-sr", NULL);
    fx_step(f, 1 * MS);
    assert_int_equal(fx_count(f, mark, "outcome", NULL, NULL), 0);
    assert_int_equal(fx_count(f, mark, "metric", "status-full", CTL), 1);
    json_t *full = fx_first(f, mark, "metric", "status-full", CTL);
    assert_string_equal(jstr(full, "cid"), "cid-sr");
    assert_int_equal(json_array_size(jget(full, "data.context.workers")), 3);
    /* Addressed to the controller only: no worker fulls. */
    assert_int_equal(fx_count(f, mark, "metric", "status-full", "processor"), 0);
    assert_int_equal(fx_count(f, mark, "metric", "status-full", "generator"), 0);
    /* The next full (e.g. a bridge registering) carries no stale cid. */
    mark = fx_ndocs(f);
    swarm_on_bridge(&f->sw);
    fx_step(f, 1 * MS);
    full = fx_first(f, mark, "metric", "status-full", CTL);
    assert_non_null(full);
    assert_true(json_is_null(jget(full, "cid")));
}

static void status_request_to_one_instance_yields_that_workers_full_with_the_cid(void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    size_t mark = fx_ndocs(f);
    fx_signal(f, "status-request", "processor", "p-2", "cid-p2", NULL, NULL);
    fx_step(f, 1 * MS);
    assert_int_equal(fx_count(f, mark, "outcome", NULL, NULL), 0);
    assert_int_equal(fx_count(f, mark, "metric", "status-full", NULL), 1);
    json_t *wf = fx_first(f, mark, "metric", "status-full", "processor");
    assert_non_null(wf);
    assert_string_equal(jstr(wf, "instance"), "p-2");
    assert_string_equal(jstr(wf, "origin"), "p-2");
    assert_string_equal(jstr(wf, "cid"), "cid-p2");
    /* Role scope: every worker of the role. */
    mark = fx_ndocs(f);
    fx_signal(f, "status-request", "processor", NULL, "cid-proc", NULL, NULL);
    fx_step(f, 1 * MS);
    assert_int_equal(fx_count(f, mark, "metric", "status-full", "processor"), 2);
    assert_int_equal(fx_count(f, mark, "metric", "status-full", NULL), 2);
}

static void signals_for_another_swarm_are_ignored(void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    size_t mark = fx_ndocs(f);
    fx_signal_swarm(f, "config-update", "other-swarm", "processor", "p-1", "cid-x", "ik-x",
                    "{\"enabled\": true}");
    fx_signal_swarm(f, "swarm-start", "other-swarm", CTL, NULL, "cid-y", "ik-y", NULL);
    fx_step(f, 10 * MS);
    assert_int_equal(fx_count(f, mark, "outcome", NULL, NULL), 0);
    assert_int_equal(wk_apply(t.p1, true, NULL, NULL), 0);
    assert_int_equal(wk_apply(t.g, true, NULL, NULL), 0);
}

/* ---- swarm-plan --------------------------------------------------------- */

static void swarm_plan_fires_steps_at_their_offsets_and_reports_progress(void **state)
{
    struct fx *f = *state;
    ph_worker *g = fx_attach(f, "generator", "g-1");
    ph_worker *p = fx_attach(f, "processor", "p-1");
    fx_step(f, 300 * MS);
    size_t mark = fx_ndocs(f);
    fx_signal(f, "swarm-plan", CTL, f->ctl_instance, "cid-plan", "ik-plan",
              "{\"steps\": ["
              "{\"id\": \"warmup\", \"atMs\": 1000, \"role\": \"generator\","
              " \"data\": {\"ratePerSec\": 10}},"
              "{\"id\": \"stop-all\", \"atMs\": 3000, \"type\": \"config-update\","
              " \"data\": {\"enabled\": false}}], \"runs\": 1}");
    json_t *o = only_outcome(f, mark, "swarm-plan");
    assert_string_equal(jstr(o, "data.status"), "applied");
    assert_string_equal(jstr(o, "cid"), "cid-plan");

    fx_step(f, 500 * MS);
    mark = fx_ndocs(f);
    fx_signal(f, "status-request", CTL, f->ctl_instance, "cid-sc1", NULL, NULL);
    fx_step(f, 0);
    json_t *full = fx_first(f, mark, "metric", "status-full", CTL);
    assert_non_null(full);
    assert_true(json_is_null(jget(full, "data.context.scenario.lastStepId")));
    assert_string_equal(jstr(full, "data.context.scenario.nextStepId"), "warmup");
    assert_int_equal(jint(full, "data.context.scenario.nextDueMillis"), 500);
    assert_int_equal(jint(full, "data.context.scenario.elapsedMillis"), 500);
    assert_int_equal(json_array_size(jget(full, "data.context.scenario.firedStepIds")), 0);
    assert_int_equal(jint(full, "data.context.scenario.totalRuns"), 1);
    assert_int_equal(jint(full, "data.context.scenario.runsRemaining"), 1);

    /* Not before its offset ... */
    fx_step(f, 499 * MS);
    assert_int_equal(wk_apply(g, true, NULL, NULL), 0);
    /* ... at it, as a config-update to the generator only. */
    mark = fx_ndocs(f);
    fx_step(f, 1 * MS);
    json_t *patch = NULL;
    int type = -1;
    assert_int_equal(wk_apply(g, true, &patch, &type), 1);
    assert_int_equal(type, PH_COMMAND_CONFIG_PATCH);
    assert_int_equal(json_integer_value(json_object_get(patch, "ratePerSec")), 10);
    json_decref(patch);
    patch = NULL;
    assert_int_equal(wk_apply(p, true, NULL, NULL), 0);
    for (int i = 0; i < 10; i++) fx_step(f, 10 * MS);
    json_t *d = fx_last(f, mark, "metric", "status-delta", CTL);
    assert_non_null(d);
    assert_string_equal(jstr(d, "data.context.scenario.lastStepId"), "warmup");
    assert_string_equal(jstr(d, "data.context.scenario.nextStepId"), "stop-all");
    assert_int_equal(json_array_size(jget(d, "data.context.scenario.firedStepIds")), 1);
    assert_string_equal(jstr(d, "data.context.scenario.firedStepIds.0"), "warmup");
    assert_int_equal(jint(d, "data.context.scenario.runsRemaining"), 1);

    /* Second step at 3 s: everyone disabled. */
    mark = fx_ndocs(f);
    while (f->now < f->sw.plan.started_ns + 3 * SEC) fx_step(f, 100 * MS);
    assert_int_equal(wk_apply(g, true, &patch, NULL), 1);
    assert_true(json_is_false(json_object_get(patch, "enabled")));
    json_decref(patch);
    assert_int_equal(wk_apply(p, true, NULL, NULL), 1);
    for (int i = 0; i < 10; i++) fx_step(f, 10 * MS);
    d = fx_last(f, mark, "metric", "status-delta", CTL);
    assert_non_null(d);
    assert_string_equal(jstr(d, "data.context.scenario.lastStepId"), "stop-all");
    assert_true(json_is_null(jget(d, "data.context.scenario.nextStepId")));
    assert_int_equal(json_array_size(jget(d, "data.context.scenario.firedStepIds")), 2);
    assert_int_equal(jint(d, "data.context.scenario.runsRemaining"), 0);
    assert_int_equal(jint(d, "data.context.totals.enabled"), 0);
    /* Plan steps are internal commands: no outcomes, and no failures. */
    assert_int_equal(fx_count(f, 0, "outcome", "config-update", NULL), 0);
    assert_int_equal(fx_count(f, 0, "event", "alert", NULL), 0);
    assert_true(fx_journal_find(f, 0, "plan-step", NULL, NULL) >= 0);
}

static void each_status_request_cid_is_answered_by_a_full(void **state)
{
    struct fx *f = *state;
    size_t mark = fx_ndocs(f);
    fx_signal(f, "status-request", CTL, f->ctl_instance, "cid-first", NULL, NULL);
    fx_signal(f, "status-request", NULL, NULL, "cid-second", NULL, NULL);
    fx_step(f, 1 * MS);
    bool first = false, second = false;
    for (size_t i = mark; i < fx_ndocs(f); i++) {
        json_t *d = fx_doc(f, i);
        if (strcmp(jstr(d, "type"), "status-full") != 0 || strcmp(jstr(d, "role"), CTL) != 0)
            continue;
        const char *cid = jstr(d, "cid");
        first |= cid != NULL && strcmp(cid, "cid-first") == 0;
        second |= cid != NULL && strcmp(cid, "cid-second") == 0;
    }
    assert_true(second);
    assert_true(first);
}

static void swarm_plan_acceptance_shows_in_the_next_delta(void **state)
{
    struct fx *f = *state;
    fx_step(f, 1 * SEC);
    size_t mark = fx_ndocs(f);
    fx_signal(f, "swarm-plan", CTL, f->ctl_instance, "cid-p", "ik-p",
              "{\"steps\": [{\"id\": \"s1\", \"atMs\": 10000, \"data\": {\"x\": 1}}]}");
    for (int i = 0; i < 10; i++) fx_step(f, 10 * MS);
    json_t *d = fx_last(f, mark, "metric", "status-delta", CTL);
    assert_non_null(d);
    assert_string_equal(jstr(d, "data.context.scenario.nextStepId"), "s1");
}

static void swarm_plan_with_bad_steps_is_refused(void **state)
{
    struct fx *f = *state;
    size_t mark = fx_ndocs(f);
    fx_signal(f, "swarm-plan", CTL, f->ctl_instance, "cid-bp", "ik-bp",
              "{\"steps\": [{\"id\": \"x\", \"atMs\": -5, \"data\": {}}]}");
    json_t *o = only_outcome(f, mark, "swarm-plan");
    assert_string_equal(jstr(o, "data.status"), "failed");
    assert_false(f->sw.plan.active);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(config_update_to_one_instance_patches_only_it_and_answers_after_its_ack),
        T(config_update_to_a_role_patches_every_worker_of_the_role),
        T(config_update_accepts_enabled_at_both_places_as_bool_or_string),
        T(config_update_with_enabled_maybe_fails_with_an_alert_and_sends_nothing),
        T(config_update_for_an_absent_instance_fails),
        T(worker_refusing_a_patch_yields_failed_not_retryable_and_an_alert),
        T(controller_scope_config_update_toggles_every_worker),
        T(controller_scope_config_update_without_enabled_is_answered_at_once),
        T(swarm_start_answers_running_after_acks_then_sends_a_full),
        T(swarm_remove_stops_workers_and_answers_removed),
        T(swarm_template_after_remove_is_refused),
        T(swarm_template_sets_desired_roles_and_answers_ready),
        T(command_without_acks_fails_after_the_timeout_as_retryable_with_an_alert),
        T(a_stalled_controller_does_not_time_out_commands_it_could_not_hear),
        T(swarm_start_without_acks_fails_the_swarm),
        T(replayed_idempotency_key_is_answered_again_without_resending),
        T(replayed_lifecycle_command_is_answered_with_the_same_status),
        T(replay_while_in_flight_gets_its_own_outcome_when_the_command_completes),
        T(retry_after_a_retryable_failure_is_applied_again),
        T(status_request_to_the_controller_yields_its_full_with_the_cid_and_no_outcome),
        T(status_request_to_one_instance_yields_that_workers_full_with_the_cid),
        T(each_status_request_cid_is_answered_by_a_full),
        T(signals_for_another_swarm_are_ignored),
        T(swarm_plan_fires_steps_at_their_offsets_and_reports_progress),
        T(swarm_plan_acceptance_shows_in_the_next_delta),
        T(swarm_plan_with_bad_steps_is_refused),
    };
    return cmocka_run_group_tests_name("swarm controller commands", tests, NULL, NULL);
}
