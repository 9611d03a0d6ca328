/* What consumers (orchestrator, UIs) need from the controller (swarm.c,
 * status.c), on the simulated clock:
 *   - a controller status-full whenever the worker set changes (join, leave,
 *     death, end of a dead worker's grace), at most one per second;
 *   - per-worker heartbeat deltas every 5 s by default, configurable, none
 *     in an aggregate-only swarm (workerDeltas false);
 *   - removal ends: the final REMOVED delta and full, then nothing, and the
 *     process is told it may stop (swarm_finished, the closing hook);
 *   - data.context.intervalSeconds states the status cadence;
 *   - numbers reach the wire as written (0.786, no binary noise). */
#include "fixture.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "envelope.h"
#include "ph/mpjson.h"

#define CTL "swarm-controller"

/* Controller status-fulls without a correlationId (not answers to a
 * status-request) from `from` on: their indices into f->docs. */
static size_t plain_fulls(const struct fx *f, size_t from, size_t *idx, size_t max)
{
    size_t n = 0;
    for (size_t i = from; i < fx_ndocs(f); i++) {
        const json_t *d = fx_doc(f, i);
        if (strcmp(jstr(d, "type"), "status-full") != 0 || strcmp(jstr(d, "role"), CTL) != 0 ||
            !json_is_null(jget(d, "cid")))
            continue;
        if (n < max) idx[n] = i;
        n++;
    }
    return n;
}

static bool lists(const json_t *full, const char *instance)
{
    const json_t *ws = jget(full, "data.context.workers");
    for (size_t i = 0; i < json_array_size(ws); i++)
        if (strcmp(jstr(json_array_get(ws, i), "instance"), instance) == 0) return true;
    return false;
}

/* A worker in a child process, blocked until killed (a real death). */
static pid_t fork_worker(struct fx *f, const char *role, const char *instance)
{
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(pfd[0]);
        char err[256];
        struct ph_worker_opts o = {.swarm_id = f->id, .role = role, .instance = instance};
        ph_worker *w = ph_worker_attach(&o, err, sizeof err);
        char c = w != NULL ? 'y' : 'n';
        if (write(pfd[1], &c, 1) != 1) _exit(2);
        for (;;)
            pause();
    }
    close(pfd[1]);
    char c = 0;
    assert_int_equal(read(pfd[0], &c, 1), 1);
    close(pfd[0]);
    assert_int_equal(c, 'y');
    return pid;
}

/* ---- membership-change fulls -------------------------------------------- */

static void membership_change_fulls_are_coalesced_to_one_per_second(void **state)
{
    struct fx *f = *state;
    fx_step(f, 2 * SEC); /* well past the startup full */
    size_t mark = fx_ndocs(f);

    /* One worker joins: a full lists it once its first status is in (with
     * its join status-full, which waits up to 250 ms for its io record). */
    fx_attach(f, "generator", "g-1");
    fx_step(f, 10 * MS);
    fx_step(f, 300 * MS);
    size_t idx[32];
    assert_int_equal(plain_fulls(f, mark, idx, 32), 1);
    assert_true(lists(fx_doc(f, idx[0]), "g-1"));

    /* Five more join and one leaves within the next second: one full,
     * a second after the previous one, with the set as it is then (every
     * join counted once its first status is in). */
    ph_worker *gone = fx_attach(f, "processor", "p-1");
    fx_step(f, 300 * MS);
    fx_attach(f, "processor", "p-2");
    fx_attach(f, "processor", "p-3");
    fx_step(f, 300 * MS);
    fx_attach(f, "moderator", "m-1");
    fx_attach(f, "moderator", "m-2");
    fx_detach(f, gone);
    for (int i = 0; i < 30; i++)
        fx_step(f, 100 * MS);
    size_t n = plain_fulls(f, mark, idx, 32);
    assert_int_equal(n, 2);
    assert_in_range(fx_doc_at(f, idx[1]) - fx_doc_at(f, idx[0]), 1 * SEC, 1 * SEC + 100 * MS);
    const json_t *last = fx_doc(f, idx[n - 1]);
    assert_int_equal(json_array_size(jget(last, "data.context.workers")), 5);
    assert_false(lists(last, "p-1"));
    assert_true(lists(last, "m-2"));

    /* Nothing changes: no more fulls (deltas carry the aggregate). */
    size_t quiet = fx_ndocs(f);
    for (int i = 0; i < 100; i++)
        fx_step(f, 100 * MS);
    assert_int_equal(plain_fulls(f, quiet, idx, 32), 0);
}

static void a_worker_death_and_the_end_of_its_grace_each_send_a_full(void **state)
{
    struct fx *f = *state;
    f->sw.cfg.dead_grace_ns = 3 * SEC;
    fx_attach(f, "generator", "g-1");
    pid_t pid = fork_worker(f, "processor", "p-9");
    for (int i = 0; i < 20; i++)
        fx_step(f, 100 * MS);
    size_t mark = fx_ndocs(f);
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    ctl_check_liveness(&f->ctl, true); /* what the daemon's pidfd reports */
    fx_step(f, 10 * MS);
    size_t idx[8];
    assert_int_equal(plain_fulls(f, mark, idx, 8), 1);
    const json_t *full = fx_doc(f, idx[0]);
    assert_true(lists(full, "p-9"));
    const json_t *ws = jget(full, "data.context.workers");
    assert_true(jbool(json_array_get(ws, 1), "dead"));

    /* Its grace ends: the entry leaves the list, and a full says so. */
    mark = fx_ndocs(f);
    for (int i = 0; i < 31; i++)
        fx_step(f, 100 * MS);
    assert_int_equal(plain_fulls(f, mark, idx, 8), 1);
    full = fx_doc(f, idx[0]);
    assert_false(lists(full, "p-9"));
    assert_true(lists(full, "g-1"));
}

/* ---- worker heartbeats ------------------------------------------------- */

/* A worker that reports every second and never changes, for `secs`: the
 * indices of its deltas from `from` on. */
static size_t steady_worker_deltas(struct fx *f, struct raw *r, int secs, size_t *idx, size_t max)
{
    size_t from = fx_ndocs(f);
    for (int i = 0; i < secs * 10; i++) {
        if (i % 10 == 0) raw_status(r, f->now, 0, true, PH_IN_OK, PH_OUT_OK);
        fx_step(f, 100 * MS);
    }
    size_t n = 0;
    for (size_t i = from; i < fx_ndocs(f); i++) {
        const json_t *d = fx_doc(f, i);
        if (strcmp(jstr(d, "type"), "status-delta") == 0 &&
            strcmp(jstr(d, "role"), "generator") == 0) {
            if (n < max) idx[n] = i;
            n++;
        }
    }
    return n;
}

static void worker_heartbeat_deltas_go_out_every_5s_by_default(void **state)
{
    struct fx *f = *state;
    struct raw r;
    raw_claim(f, &r, "generator", "g-1");
    raw_status(&r, f->now, 0, true, PH_IN_OK, PH_OUT_OK);
    for (int i = 0; i < 5; i++)
        fx_step(f, 100 * MS); /* its join full */
    size_t idx[16];
    size_t n = steady_worker_deltas(f, &r, 30, idx, 16);
    assert_int_equal(n, 6);
    for (size_t i = 1; i < n; i++)
        assert_in_range(fx_doc_at(f, idx[i]) - fx_doc_at(f, idx[i - 1]), 5 * SEC,
                        5 * SEC + 100 * MS);
    /* Each says how often to expect the next. */
    assert_int_equal(jint(fx_doc(f, idx[0]), "data.context.intervalSeconds"), 5);
    assert_false(jbool(fx_doc(f, idx[0]), "data.context.stale"));
}

static void worker_heartbeat_period_is_configurable(void **state)
{
    struct fx *f = *state;
    f->sw.cfg.worker_heartbeat_ns = 2 * SEC;
    struct raw r;
    raw_claim(f, &r, "generator", "g-1");
    raw_status(&r, f->now, 0, true, PH_IN_OK, PH_OUT_OK);
    for (int i = 0; i < 5; i++)
        fx_step(f, 100 * MS);
    size_t idx[32];
    size_t n = steady_worker_deltas(f, &r, 20, idx, 32);
    assert_int_equal(n, 10);
    for (size_t i = 1; i < n; i++)
        assert_in_range(fx_doc_at(f, idx[i]) - fx_doc_at(f, idx[i - 1]), 2 * SEC,
                        2 * SEC + 100 * MS);
    assert_int_equal(jint(fx_doc(f, idx[0]), "data.context.intervalSeconds"), 2);
}

static void aggregate_only_swarm_sends_no_worker_heartbeats(void **state)
{
    struct fx *f = *state;
    f->sw.cfg.worker_deltas = false;
    struct raw r;
    raw_claim(f, &r, "generator", "g-1");
    raw_status(&r, f->now, 0, true, PH_IN_OK, PH_OUT_OK);
    for (int i = 0; i < 5; i++)
        fx_step(f, 100 * MS);
    /* The join full still goes out, without a cadence to announce. */
    json_t *wf = fx_last(f, 0, "metric", "status-full", "generator");
    assert_non_null(wf);
    assert_false(jhas(wf, "data.context.intervalSeconds"));
    size_t mark = fx_ndocs(f);
    size_t idx[4];
    assert_int_equal(steady_worker_deltas(f, &r, 30, idx, 4), 0);
    /* The swarm's own heartbeat goes on: every 5 s. */
    assert_int_equal(fx_count(f, mark, "metric", "status-delta", CTL), 6);
}

/* ---- removal ends ------------------------------------------------------- */

static void removal_sends_the_final_removed_delta_and_full_then_nothing(void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    fx_signal(f, "swarm-remove", CTL, f->ctl_instance, "cid-rm", "ik-rm", NULL);
    assert_int_equal(f->closings, 0);
    size_t mark = fx_ndocs(f);
    wk_apply(t.g, true, NULL, NULL);
    wk_apply(t.p1, true, NULL, NULL);
    wk_apply(t.p2, true, NULL, NULL);
    fx_step(f, 10 * MS);
    size_t out = fx_find(f, mark, "outcome", "swarm-remove", NULL);
    assert_true(out != (size_t)-1);
    assert_string_equal(jstr(fx_doc(f, out), "data.status"), "Removed");
    /* Stopped workers exit right after their ack: the final list waits for
     * them to leave. */
    assert_false(swarm_finished(&f->sw));
    fx_detach(f, t.g);
    fx_detach(f, t.p1);
    fx_detach(f, t.p2);
    fx_step(f, 10 * MS);
    /* Then (after the closing hook) the final pair, full last. */
    assert_true(swarm_finished(&f->sw));
    assert_int_equal(f->closings, 1);
    assert_true(f->closing_at > out);
    assert_int_equal(fx_ndocs(f) - f->closing_at, 2);
    const json_t *delta = fx_doc(f, f->closing_at);
    const json_t *full = fx_doc(f, f->closing_at + 1);
    assert_string_equal(jstr(delta, "type"), "status-delta");
    assert_string_equal(jstr(delta, "role"), CTL);
    assert_string_equal(jstr(delta, "data.context.swarmStatus"), "REMOVED");
    assert_string_equal(jstr(full, "type"), "status-full");
    assert_string_equal(jstr(full, "role"), CTL);
    assert_string_equal(jstr(full, "data.context.swarmStatus"), "REMOVED");
    assert_false(jbool(full, "data.enabled"));
    /* Reliable: kept in order behind the outcome, never dropped. */
    for (size_t i = f->closing_at; i < fx_ndocs(f); i++)
        assert_true(json_is_true(json_object_get(json_array_get(f->docs, i), "reliable")));
    assert_int_equal(jint(full, "data.context.totals.desired"), 0);
    assert_int_equal(json_array_size(jget(full, "data.context.workers")), 0);
    assert_true(fx_journal_find(f, 0, "lifecycle", "final-status", NULL) >= 0);

    /* Nothing after them: no heartbeats of a swarm that is gone. */
    size_t end = fx_ndocs(f);
    for (int i = 0; i < 300; i++)
        fx_step(f, 100 * MS);
    assert_int_equal(fx_ndocs(f), end);
}

static void a_worker_that_does_not_leave_holds_the_final_status_5s_at_most(void **state)
{
    struct fx *f = *state;
    ph_worker *g = fx_attach(f, "generator", "g-1");
    fx_step(f, 300 * MS);
    fx_signal(f, "swarm-remove", CTL, f->ctl_instance, "cid-rm", "ik-rm", NULL);
    wk_apply(g, true, NULL, NULL); /* acks its stop, then hangs */
    fx_step(f, 10 * MS);
    assert_int_equal(f->sw.status, SW_REMOVED);
    for (int i = 0; i < 49; i++)
        fx_step(f, 100 * MS);
    assert_false(swarm_finished(&f->sw));
    fx_step(f, 100 * MS);
    assert_true(swarm_finished(&f->sw));
    /* The final list shows it as it is. */
    json_t *full = fx_last(f, 0, "metric", "status-full", CTL);
    assert_string_equal(jstr(full, "data.context.workers.0.instance"), "g-1");
}

static void the_final_status_waits_for_every_outcome(void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    /* A config-update p-1 never acknowledges is in flight. */
    fx_signal(f, "config-update", "processor", "p-1", "cid-cu", "ik-cu", "{\"ratePerSec\": 5}");
    assert_int_equal(wk_drop_commands(t.p1), 1);
    fx_signal(f, "swarm-remove", CTL, f->ctl_instance, "cid-rm", "ik-rm", NULL);
    wk_apply(t.g, true, NULL, NULL);
    wk_apply(t.p1, true, NULL, NULL); /* its stop, not the patch it dropped */
    wk_apply(t.p2, true, NULL, NULL);
    fx_detach(f, t.g);
    fx_detach(f, t.p2);
    fx_step(f, 10 * MS);
    assert_int_equal(f->sw.status, SW_REMOVED);
    assert_false(swarm_finished(&f->sw));
    assert_int_equal(f->closings, 0);
    /* Its timeout answers it; the final pair follows that answer. */
    for (int i = 0; i < 60; i++)
        fx_step(f, 100 * MS);
    assert_true(swarm_finished(&f->sw));
    size_t cu = fx_find(f, 0, "outcome", "config-update", NULL);
    assert_true(cu != (size_t)-1);
    assert_string_equal(jstr(fx_doc(f, cu), "data.status"), "failed");
    assert_true(f->closing_at > cu);
    assert_int_equal(fx_ndocs(f) - f->closing_at, 2);
}

static void a_new_bridge_while_closing_gets_the_final_status_again(void **state)
{
    struct fx *f = *state;
    fx_signal(f, "swarm-remove", CTL, f->ctl_instance, "cid-rm", "ik-rm", NULL);
    fx_step(f, 10 * MS);
    assert_true(swarm_finished(&f->sw));
    size_t end = fx_ndocs(f);
    /* The bridge that read the final pair died before publishing it. */
    swarm_on_bridge(&f->sw);
    fx_step(f, 10 * MS);
    assert_true(swarm_finished(&f->sw));
    assert_int_equal(f->closings, 2);
    assert_int_equal(fx_ndocs(f) - end, 2);
    assert_string_equal(jstr(fx_doc(f, end), "data.context.swarmStatus"), "REMOVED");
    assert_string_equal(jstr(fx_doc(f, end + 1), "type"), "status-full");
    fx_step(f, 10 * SEC);
    assert_int_equal(fx_ndocs(f), end + 2);
}

static void a_controller_restarted_on_a_removed_swarm_ends_it(void **state)
{
    struct fx *f = *state;
    f->hold_confirms = true;
    fx_signal(f, "swarm-remove", CTL, f->ctl_instance, "cid-rm", "ik-rm", NULL);
    fx_step(f, 10 * MS);
    assert_true(swarm_finished(&f->sw));
    /* Killed before the bridge confirmed: the next controller reads REMOVED
     * from the journal and sends the final status again. */
    f->closings = 0;
    size_t mark = fx_ndocs(f);
    assert_true(fx_restart_controller(f) > 0);
    assert_true(swarm_finished(&f->sw));
    assert_int_equal(f->closings, 1);
    json_t *full = fx_last(f, mark, "metric", "status-full", CTL);
    assert_non_null(full);
    assert_string_equal(jstr(full, "data.context.swarmStatus"), "REMOVED");
    /* Nothing confirmed the removal's outcome: it goes out again (the
     * bridge drops it if it was published), before the final status. */
    assert_int_equal(fx_count(f, mark, "outcome", NULL, NULL), 1);
    assert_true(fx_find(f, mark, "outcome", "swarm-remove", NULL) <
                fx_find(f, mark, "metric", "status-full", CTL));
}

static void a_removed_swarm_whose_outcome_was_confirmed_is_not_answered_again(void **state)
{
    struct fx *f = *state;
    fx_signal(f, "swarm-remove", CTL, f->ctl_instance, "cid-rm", "ik-rm", NULL);
    fx_step(f, 10 * MS);
    assert_true(swarm_finished(&f->sw));
    fx_step(f, 10 * MS); /* the bridge confirmed it */
    size_t mark = fx_ndocs(f);
    assert_true(fx_restart_controller(f) > 0);
    assert_true(swarm_finished(&f->sw));
    assert_int_equal(fx_count(f, mark, "outcome", NULL, NULL), 0);
}

/* ---- cadence and numbers ------------------------------------------------ */

static void interval_seconds_states_the_status_cadence(void **state)
{
    struct fx *f = *state;
    json_t *d = fx_first(f, 0, "metric", "status-delta", CTL);
    json_t *full = fx_first(f, 0, "metric", "status-full", CTL);
    assert_int_equal(jint(d, "data.context.intervalSeconds"), 5);
    assert_int_equal(jint(full, "data.context.intervalSeconds"), 5);
    assert_int_equal(jint(full, "data.config.workerHeartbeatSec"), 5);
    assert_int_equal(jint(full, "data.config.watermarkSec"), 5);
    /* A worker's full and deltas: its heartbeat cadence. */
    ph_worker *g = fx_attach(f, "generator", "g-1");
    fx_step(f, 10 * MS);
    fx_step(f, 300 * MS);
    assert_int_equal(
        jint(fx_last(f, 0, "metric", "status-full", "generator"), "data.context.intervalSeconds"),
        5);
    ph_worker_set_enabled(g, true);
    assert_true(ph_worker_publish_status(g));
    for (int i = 0; i < 60; i++)
        fx_step(f, 100 * MS);
    assert_int_equal(
        jint(fx_last(f, 0, "metric", "status-delta", "generator"), "data.context.intervalSeconds"),
        5);
    /* Fractions stay fractions. */
    f->sw.cfg.watermark_ns = 2500 * MS;
    size_t mark = fx_ndocs(f);
    for (int i = 0; i < 30; i++)
        fx_step(f, 100 * MS);
    d = fx_last(f, mark, "metric", "status-delta", CTL);
    assert_non_null(d);
    assert_true(json_is_real(jget(d, "data.context.intervalSeconds")));
    assert_true(json_real_value(jget(d, "data.context.intervalSeconds")) == 2.5);
}

static void a_rendered_envelope_carries_numbers_without_float_noise(void **state)
{
    struct fx *f = *state;
    f->sw.cfg.watermark_ns = 300 * MS; /* 0.3: 0.29999999999999999 at 17 digits */
    struct raw r;
    raw_claim(f, &r, "generator", "g-1");
    raw_status(&r, f->now, 0, true, PH_IN_OK, PH_OUT_OK);
    fx_step(f, 10 * MS);
    /* The oldest heartbeat is 786 ms old when the delta is built. */
    struct swarm_agg a;
    swarm_aggregate(&f->sw, f->now, &a);
    a.oldest_seen_ns = f->now - 786 * MS;
    assert_true(swarm_emit_controller_delta(&f->sw, &a, f->now));
    json_t *doc = fx_last(f, 0, "metric", "status-delta", CTL);
    assert_true(json_real_value(jget(doc, "data.context.maxStalenessSec")) == 0.786);

    /* Through the bridge: document -> envelope -> the sinks' rendering. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(ph_json_pack(&pk, doc, false), 0);
    struct envelope e;
    char why[512] = "";
    int rc =
        envelope_from_doc((const uint8_t *)sb.data, sb.size, ph_real_ns(), &e, why, sizeof why);
    msgpack_sbuffer_destroy(&sb);
    if (rc != PH_OK) fail_msg("envelope refused: %s", why);
    char *text = json_dumps(e.env, ENVELOPE_DUMP_FLAGS);
    envelope_clear(&e);
    assert_non_null(text);
    if (strstr(text, "\"maxStalenessSec\":0.786,") == NULL ||
        strstr(text, "\"intervalSeconds\":0.3,") == NULL || strstr(text, "0000000") != NULL ||
        strstr(text, "9999999") != NULL)
        fail_msg("float noise in %s", text);
    free(text);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(membership_change_fulls_are_coalesced_to_one_per_second),
        T(a_worker_death_and_the_end_of_its_grace_each_send_a_full),
        T(worker_heartbeat_deltas_go_out_every_5s_by_default),
        T(worker_heartbeat_period_is_configurable),
        T(aggregate_only_swarm_sends_no_worker_heartbeats),
        T(removal_sends_the_final_removed_delta_and_full_then_nothing),
        T(a_worker_that_does_not_leave_holds_the_final_status_5s_at_most),
        T(the_final_status_waits_for_every_outcome),
        T(a_new_bridge_while_closing_gets_the_final_status_again),
        T(a_controller_restarted_on_a_removed_swarm_ends_it),
        T(a_removed_swarm_whose_outcome_was_confirmed_is_not_answered_again),
        T(interval_seconds_states_the_status_cadence),
        T(a_rendered_envelope_carries_numbers_without_float_noise),
    };
    return cmocka_run_group_tests_name("what consumers need from the controller", tests, NULL,
                                       NULL);
}
