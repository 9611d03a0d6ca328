/* Status rules of the swarm controller (swarm.c, status.c): staleness and
 * the status-request it triggers, ioState priority, the state rules, delta
 * coalescing and the watermark cadence, the contents of deltas and fulls,
 * dead workers' grace period, and worker alerts. */
#include "fixture.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define CTL "swarm-controller"

static void set_roles(struct fx *f, const char *r1, uint32_t n1, const char *r2, uint32_t n2)
{
    struct swarm_role roles[2];
    uint32_t n = 0;
    if (r1) {
        snprintf(roles[n].role, sizeof roles[n].role, "%s", r1);
        roles[n++].count = n1;
    }
    if (r2) {
        snprintf(roles[n].role, sizeof roles[n].role, "%s", r2);
        roles[n++].count = n2;
    }
    swarm_set_roles(&f->sw, roles, n);
}

static void wk_state(ph_worker *w, bool enabled, enum ph_io_in in, enum ph_io_out out)
{
    ph_worker_set_enabled(w, enabled);
    ph_worker_set_io_state(w, in, out);
    assert_true(ph_worker_publish_status(w));
}

/* The controller's status-full now, answering a status-request (cid). */
static json_t *controller_full(struct fx *f, const char *cid)
{
    size_t mark = fx_ndocs(f);
    fx_signal(f, "status-request", CTL, f->ctl_instance, cid, NULL, NULL);
    assert_int_equal(fx_count(f, mark, "outcome", NULL, NULL), 0);
    fx_step(f, 1 * MS);
    json_t *full = fx_last(f, mark, "metric", "status-full", CTL);
    assert_non_null(full);
    assert_string_equal(jstr(full, "cid"), cid);
    return full;
}

static const json_t *worker_entry(const json_t *full, const char *instance)
{
    const json_t *ws = jget(full, "data.context.workers");
    assert_true(json_is_array(ws));
    for (size_t i = 0; i < json_array_size(ws); i++) {
        const json_t *e = json_array_get(ws, i);
        if (strcmp(jstr(e, "instance"), instance) == 0) return e;
    }
    return NULL;
}

/* ---- startup ---------------------------------------------------------- */

static void startup_emits_a_controller_full_and_a_delta(void **state)
{
    struct fx *f = *state;
    json_t *full = fx_first(f, 0, "metric", "status-full", CTL);
    json_t *delta = fx_first(f, 0, "metric", "status-delta", CTL);
    assert_non_null(full);
    assert_non_null(delta);
    assert_true(json_is_null(jget(full, "cid")));
    assert_string_equal(jstr(full, "instance"), f->ctl_instance);
    assert_string_equal(jstr(full, "origin"), f->ctl_instance);
    assert_string_equal(jstr(full, "swarm"), f->id);
    assert_int_equal(json_array_size(jget(full, "data.context.workers")), 0);
    /* No worker reported: unknown, by the priority rules. */
    assert_string_equal(jstr(delta, "data.ioState.work.input"), "unknown");
    assert_string_equal(jstr(delta, "data.ioState.work.output"), "unknown");
    assert_int_equal(jint(delta, "data.tps"), 0);
}

/* ---- staleness -------------------------------------------------------- */

static void stale_after_ttl_requests_status_once_per_spell_and_recovers(void **state)
{
    struct fx *f = *state;
    set_roles(f, "generator", 1, NULL, 0);
    struct raw r;
    raw_claim(f, &r, "generator", "g-1");
    raw_status(&r, f->now, 0, true, PH_IN_OK, PH_OUT_OK);
    fx_step(f, 100 * MS);
    const uint64_t seen = f->now;
    struct ctl_worker *w = &f->ctl.w[r.index];
    assert_true(w->tracked);
    assert_int_equal(w->last_seen_ns, seen);
    assert_true(swarm_worker_healthy(&f->sw, w, f->now));

    /* Healthy up to and including the TTL. */
    struct raw_cmd cmds[8];
    for (int i = 0; i < 15; i++) fx_step(f, 1 * SEC);
    assert_int_equal(f->now - seen, 15 * SEC);
    assert_true(swarm_worker_healthy(&f->sw, w, f->now));
    assert_int_equal(raw_commands(&r, cmds, 8), 0);
    assert_int_equal(fx_journal_find(f, 0, "health", "stale", "g-1"), -1);

    /* Stale 1 ms later: unhealthy, one real status-request command. */
    size_t mark = fx_ndocs(f);
    fx_step(f, 1 * MS);
    assert_false(swarm_worker_healthy(&f->sw, w, f->now));
    int n = raw_commands(&r, cmds, 8);
    assert_int_equal(n, 1);
    assert_int_equal(cmds[0].type, PH_CMD_STATUS_REQUEST);
    assert_true(cmds[0].token > 0);
    assert_null(cmds[0].patch);
    raw_cmds_free(cmds, n);
    long js = fx_journal_find(f, 0, "health", "stale", "g-1");
    assert_true(js >= 0);
    /* The delta (within one coalescing period) shows it unhealthy. */
    for (int i = 0; i < 10; i++) fx_step(f, 10 * MS);
    json_t *d = fx_last(f, mark, "metric", "status-delta", CTL);
    assert_non_null(d);
    assert_int_equal(jint(d, "data.context.totals.healthy"), 0);
    assert_int_equal(jint(d, "data.context.totals.running"), 0);
    assert_int_equal(jint(d, "data.context.totals.desired"), 1);
    assert_string_equal(jstr(d, "data.context.state"), "Unknown");

    /* Still stale 10 s later: no second request in the same spell. */
    for (int i = 0; i < 10; i++) fx_step(f, 1 * SEC);
    assert_int_equal(raw_commands(&r, cmds, 8), 0);

    /* The controller full lists it stale. */
    json_t *full = controller_full(f, "cid-stale");
    const json_t *e = worker_entry(full, "g-1");
    assert_non_null(e);
    assert_true(jbool(e, "stale"));
    assert_int_equal(jint(full, "data.context.totals.healthy"), 0);

    /* A record arrives: healthy again, journal says recovered after stale. */
    mark = fx_ndocs(f);
    raw_status(&r, f->now, 0, true, PH_IN_OK, PH_OUT_OK);
    fx_step(f, 100 * MS);
    assert_true(swarm_worker_healthy(&f->sw, w, f->now));
    long jr = fx_journal_find(f, js, "health", "recovered", "g-1");
    assert_true(jr > js);
    d = fx_last(f, mark, "metric", "status-delta", CTL);
    assert_non_null(d);
    assert_int_equal(jint(d, "data.context.totals.healthy"), 1);
    full = controller_full(f, "cid-recovered");
    assert_false(jbool(worker_entry(full, "g-1"), "stale"));

    /* A second stale spell gets its own (single) request. */
    for (int i = 0; i < 17; i++) fx_step(f, 1 * SEC);
    assert_false(swarm_worker_healthy(&f->sw, w, f->now));
    n = raw_commands(&r, cmds, 8);
    assert_int_equal(n, 1);
    assert_int_equal(cmds[0].type, PH_CMD_STATUS_REQUEST);
    raw_cmds_free(cmds, n);
    assert_true(fx_journal_find(f, jr, "health", "stale", "g-1") > jr);
}

static void stale_sdk_worker_answers_the_status_request_and_recovers(void **state)
{
    struct fx *f = *state;
    ph_worker *g = fx_attach(f, "generator", "g-1");
    fx_step(f, 300 * MS);
    struct ctl_worker *w = &f->ctl.w[ph_worker_slot(g)];
    assert_true(swarm_worker_healthy(&f->sw, w, f->now));
    for (int i = 0; i < 16; i++) fx_step(f, 1 * SEC);
    assert_false(swarm_worker_healthy(&f->sw, w, f->now));
    /* The SDK sees a real STATUS_REQUEST (not an empty payload) and answers it. */
    int type = -1;
    assert_int_equal(wk_apply(g, true, NULL, &type), 1);
    assert_int_equal(type, PH_COMMAND_STATUS_REQUEST);
    fx_step(f, 10 * MS);
    assert_true(swarm_worker_healthy(&f->sw, w, f->now));
    assert_true(fx_journal_find(f, fx_journal_find(f, 0, "health", "stale", "g-1"), "health",
                                "recovered", "g-1") > 0);
    /* Answered: no further request. */
    for (int i = 0; i < 5; i++) fx_step(f, 1 * SEC);
    assert_int_equal(wk_drop_commands(g), 0);
}

static void worker_that_never_reported_turns_stale_after_ttl(void **state)
{
    struct fx *f = *state;
    struct raw r;
    raw_claim(f, &r, "generator", "g-1");
    fx_step(f, 100 * MS);
    struct ctl_worker *w = &f->ctl.w[r.index];
    assert_true(w->tracked);
    assert_false(swarm_worker_healthy(&f->sw, w, f->now));
    struct raw_cmd cmds[4];
    fx_step(f, 14 * SEC);
    assert_int_equal(raw_commands(&r, cmds, 4), 0); /* not stale yet: just joined */
    fx_step(f, 2 * SEC);
    int n = raw_commands(&r, cmds, 4);
    assert_int_equal(n, 1);
    assert_int_equal(cmds[0].type, PH_CMD_STATUS_REQUEST);
    raw_cmds_free(cmds, n);
}

/* ---- ioState priority -------------------------------------------------- */

static void combine_in_follows_the_contract_priority(void **state)
{
    (void)state;
    /* Highest first, as CONTRACT.md §3 lists them. */
    static const char *const order[] = {"upstream-error", "out-of-data", "backpressure", "ok",
                                        "unknown"};
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++) {
            int a = ph_io_in_parse(order[i]), b = ph_io_in_parse(order[j]);
            assert_true(a >= 0 && b >= 0);
            const char *want = order[i < j ? i : j];
            assert_string_equal(ph_io_in_name(swarm_combine_in((uint8_t)a, (uint8_t)b)), want);
        }
}

static void combine_out_follows_the_contract_priority(void **state)
{
    (void)state;
    static const char *const order[] = {"downstream-error", "blocked", "throttled", "ok",
                                        "unknown"};
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++) {
            int a = ph_io_out_parse(order[i]), b = ph_io_out_parse(order[j]);
            assert_true(a >= 0 && b >= 0);
            const char *want = order[i < j ? i : j];
            assert_string_equal(ph_io_out_name(swarm_combine_out((uint8_t)a, (uint8_t)b)), want);
        }
}

static void swarm_iostate_is_the_highest_priority_of_healthy_workers(void **state)
{
    struct fx *f = *state;
    ph_worker *a = fx_attach(f, "generator", "g-1");
    ph_worker *b = fx_attach(f, "processor", "p-1");
    ph_worker *c = fx_attach(f, "processor", "p-2");
    fx_step(f, 300 * MS);
    struct swarm_agg agg;
    /* All three attached but reported nothing about io: unknown. */
    swarm_aggregate(&f->sw, f->now, &agg);
    assert_int_equal(agg.healthy, 3);
    assert_int_equal(agg.io_in, PH_IN_UNKNOWN);
    assert_int_equal(agg.io_out, PH_OUT_UNKNOWN);

    /* unknown + ok -> ok */
    wk_state(a, true, PH_IN_OK, PH_OUT_OK);
    fx_step(f, 100 * MS);
    json_t *d = fx_last(f, 0, "metric", "status-delta", CTL);
    assert_string_equal(jstr(d, "data.ioState.work.input"), "ok");
    assert_string_equal(jstr(d, "data.ioState.work.output"), "ok");

    size_t mark = fx_ndocs(f);
    wk_state(a, true, PH_IN_OK, PH_OUT_THROTTLED);
    wk_state(b, true, PH_IN_BACKPRESSURE, PH_OUT_OK);
    wk_state(c, true, PH_IN_OK, PH_OUT_BLOCKED);
    fx_step(f, 100 * MS);
    d = fx_last(f, mark, "metric", "status-delta", CTL);
    assert_non_null(d);
    assert_string_equal(jstr(d, "data.ioState.work.input"), "backpressure");
    assert_string_equal(jstr(d, "data.ioState.work.output"), "blocked");

    mark = fx_ndocs(f);
    wk_state(c, true, PH_IN_OUT_OF_DATA, PH_OUT_OK);
    fx_step(f, 100 * MS);
    d = fx_last(f, mark, "metric", "status-delta", CTL);
    assert_non_null(d);
    assert_string_equal(jstr(d, "data.ioState.work.input"), "out-of-data");
    assert_string_equal(jstr(d, "data.ioState.work.output"), "throttled");

    mark = fx_ndocs(f);
    wk_state(b, true, PH_IN_UPSTREAM_ERROR, PH_OUT_DOWNSTREAM_ERROR);
    fx_step(f, 100 * MS);
    d = fx_last(f, mark, "metric", "status-delta", CTL);
    assert_non_null(d);
    assert_string_equal(jstr(d, "data.ioState.work.input"), "upstream-error");
    assert_string_equal(jstr(d, "data.ioState.work.output"), "downstream-error");
    /* The full carries the same swarm ioState and each worker's own. */
    json_t *full = controller_full(f, "cid-io");
    assert_string_equal(jstr(full, "data.ioState.work.input"), "upstream-error");
    assert_string_equal(jstr(worker_entry(full, "p-2"), "ioState.work.input"), "out-of-data");
    assert_string_equal(jstr(worker_entry(full, "g-1"), "ioState.work.output"), "throttled");
}

/* ---- state rules ------------------------------------------------------- */

static void state_is_unknown_then_degraded_then_the_swarm_status(void **state)
{
    struct fx *f = *state;
    set_roles(f, "generator", 1, "processor", 1);
    fx_step(f, 100 * MS);
    struct swarm_agg a;
    swarm_aggregate(&f->sw, f->now, &a);
    assert_int_equal(a.desired, 2);
    assert_string_equal(a.state, "Unknown");
    assert_string_equal(jstr(fx_last(f, 0, "metric", "status-delta", CTL), "data.context.state"),
                        "Unknown");

    ph_worker *g = fx_attach(f, "generator", "g-1");
    fx_step(f, 100 * MS);
    swarm_aggregate(&f->sw, f->now, &a);
    assert_int_equal(a.healthy, 1);
    assert_string_equal(a.state, "Degraded");
    assert_string_equal(jstr(fx_last(f, 0, "metric", "status-delta", CTL), "data.context.state"),
                        "Degraded");

    fx_attach(f, "processor", "p-1");
    fx_step(f, 100 * MS);
    swarm_aggregate(&f->sw, f->now, &a);
    assert_int_equal(a.healthy, 2);
    assert_string_equal(a.state, swarm_status_name(f->sw.status));
    json_t *d = fx_last(f, 0, "metric", "status-delta", CTL);
    assert_string_equal(jstr(d, "data.context.state"), jstr(d, "data.context.swarmStatus"));
    assert_string_equal(jstr(d, "data.context.swarmStatus"), "READY");

    /* p-1 goes silent past the TTL while g-1 keeps reporting: Degraded. */
    for (int i = 0; i < 16; i++) {
        assert_true(ph_worker_publish_status(g));
        fx_step(f, 1 * SEC);
    }
    swarm_aggregate(&f->sw, f->now, &a);
    assert_int_equal(a.healthy, 1);
    assert_string_equal(a.state, "Degraded");
    /* Both silent: Unknown again. */
    for (int i = 0; i < 16; i++) fx_step(f, 1 * SEC);
    swarm_aggregate(&f->sw, f->now, &a);
    assert_int_equal(a.healthy, 0);
    assert_string_equal(a.state, "Unknown");
    assert_string_equal(jstr(fx_last(f, 0, "metric", "status-delta", CTL), "data.context.state"),
                        "Unknown");
    /* Health transitions are journalled, not every tick. */
    long n = 0;
    for (long i = fx_journal_find(f, 0, "health", NULL, NULL); i >= 0;
         i = fx_journal_find(f, i + 1, "health", NULL, NULL))
        if (jstr(json_array_get(f->journal, (size_t)i), "state") != NULL) n++;
    assert_true(n >= 4 && n <= 8);
}

static void state_is_the_swarm_status_when_nothing_is_desired(void **state)
{
    struct fx *f = *state;
    struct swarm_agg a;
    swarm_aggregate(&f->sw, f->now, &a);
    assert_int_equal(a.desired, 0);
    assert_string_equal(a.state, swarm_status_name(f->sw.status));
    fx_attach(f, "generator", "g-1");
    fx_step(f, 100 * MS);
    swarm_aggregate(&f->sw, f->now, &a);
    assert_string_equal(a.state, swarm_status_name(f->sw.status));
}

/* ---- coalescing -------------------------------------------------------- */

static void settle_raw(struct fx *f, struct raw *r)
{
    f->sw.cfg.watermark_ns = 60 * SEC; /* keep the heartbeat out of the way */
    set_roles(f, "generator", 1, NULL, 0);
    raw_claim(f, r, "generator", "g-1");
    raw_status(r, f->now, 0, true, PH_IN_OK, PH_OUT_OK);
    for (int i = 0; i < 10; i++) fx_step(f, 100 * MS); /* joined, settled */
}

static void change_after_a_quiet_period_goes_out_on_the_next_tick(void **state)
{
    struct fx *f = *state;
    struct raw r;
    settle_raw(f, &r);
    for (int i = 0; i < 100; i++) fx_step(f, 10 * MS); /* 1 s quiet */
    size_t mark = fx_ndocs(f);
    assert_int_equal(fx_count(f, mark, "metric", "status-delta", CTL), 0);
    raw_status(&r, f->now, 0, true, PH_IN_BACKPRESSURE, PH_OUT_OK);
    fx_step(f, 10 * MS);
    assert_int_equal(fx_count(f, mark, "metric", "status-delta", CTL), 1);
    size_t i = fx_find(f, mark, "metric", "status-delta", CTL);
    assert_int_equal(fx_doc_at(f, i), f->now - f->t0);
    assert_string_equal(jstr(fx_doc(f, i), "data.ioState.work.input"), "backpressure");
}

static void a_burst_after_quiet_goes_out_at_once_then_deltas_are_paced(void **state)
{
    struct fx *f = *state;
    f->sw.cfg.coalesce_ns = 50 * MS; /* the figures below are for 50 ms */
    struct raw r;
    settle_raw(f, &r);
    for (int i = 0; i < 100; i++) fx_step(f, 10 * MS);
    /* After a quiet second the credit is full: the first SWARM_DELTA_BURST
     * changes, one per tick, each go out at that tick. */
    static const uint8_t ins[] = {PH_IN_BACKPRESSURE, PH_IN_OK, PH_IN_OUT_OF_DATA, PH_IN_OK,
                                  PH_IN_BACKPRESSURE, PH_IN_OK, PH_IN_UPSTREAM_ERROR};
    size_t mark = fx_ndocs(f);
    for (int k = 0; k < SWARM_DELTA_BURST; k++) {
        raw_status(&r, f->now, 0, k % 2 == 0, ins[k], PH_OUT_OK);
        fx_step(f, 10 * MS);
        assert_int_equal(fx_count(f, mark, "metric", "status-delta", CTL), (size_t)k + 1);
    }
    /* The credit is spent (30 ms left): further changes, one per tick, wait
     * for it to reach one delta's worth (50 ms): the next delta goes out two
     * ticks later, the one after 50 ms after that, and the last carries the
     * latest state. */
    const size_t before = fx_count(f, mark, "metric", "status-delta", CTL);
    for (int k = SWARM_DELTA_BURST; k < 7; k++) {
        raw_status(&r, f->now, 0, k % 2 == 0, ins[k], PH_OUT_OK);
        fx_step(f, 10 * MS);
    }
    for (int i = 0; i < 20; i++) fx_step(f, 10 * MS);
    assert_int_equal(fx_count(f, mark, "metric", "status-delta", CTL), before + 2);
    size_t i1 = fx_find(f, mark, "metric", "status-delta", CTL);
    for (size_t k = 0; k < before; k++) i1 = fx_find(f, i1 + 1, "metric", "status-delta", CTL);
    const size_t i2 = fx_find(f, i1 + 1, "metric", "status-delta", CTL);
    assert_true(fx_doc_at(f, i2) - fx_doc_at(f, i1) >= 50 * MS);
    json_t *d = fx_last(f, mark, "metric", "status-delta", CTL);
    assert_string_equal(jstr(d, "data.ioState.work.input"), "upstream-error");
    assert_int_equal(jint(d, "data.context.totals.enabled"), 1);
    /* Then quiet: no more deltas. */
    for (int i = 0; i < 20; i++) fx_step(f, 10 * MS);
    assert_int_equal(fx_count(f, mark, "metric", "status-delta", CTL), before + 2);
}

static void sustained_changes_average_one_delta_per_coalesce_period(void **state)
{
    struct fx *f = *state;
    f->sw.cfg.coalesce_ns = 50 * MS; /* the figures below are for 50 ms */
    struct raw r;
    settle_raw(f, &r);
    for (int i = 0; i < 100; i++) fx_step(f, 10 * MS);
    size_t mark = fx_ndocs(f);
    /* A change on every 10 ms tick for 2 s. */
    for (int i = 0; i < 200; i++) {
        raw_status(&r, f->now, 0, true, i % 2 ? PH_IN_OK : PH_IN_BACKPRESSURE, PH_OUT_OK);
        fx_step(f, 10 * MS);
    }
    size_t n = fx_count(f, mark, "metric", "status-delta", CTL);
    assert_in_range(n, 30, 2 * SEC / (50 * MS) + SWARM_DELTA_BURST + 1);
    /* Once the burst's credit is spent, deltas are 50 ms apart at least. */
    uint64_t prev = 0;
    size_t seen = 0;
    for (size_t i = mark; i < fx_ndocs(f); i++) {
        json_t *d = fx_doc(f, i);
        if (strcmp(jstr(d, "type"), "status-delta") != 0 || strcmp(jstr(d, "role"), CTL) != 0)
            continue;
        uint64_t at = fx_doc_at(f, i);
        if (seen > SWARM_DELTA_BURST) assert_true(at - prev >= 50 * MS);
        prev = at;
        seen++;
    }
}

static void agg_changed_ignores_tps_wander_but_not_big_moves(void **state)
{
    (void)state;
    struct swarm_agg a, b;
    memset(&a, 0, sizeof a);
    a.desired = 2;
    a.healthy = 2;
    a.running = 2;
    a.enabled = 2;
    a.live = 2;
    a.io_in = PH_IN_OK;
    a.io_out = PH_OUT_OK;
    a.status = SW_RUNNING;
    a.state = "RUNNING";
    a.tps = 1000;
    b = a;
    assert_false(swarm_agg_changed(&a, &b));
    static const uint64_t wander[] = {950, 1050, 900, 1100, 1001, 999};
    for (size_t i = 0; i < sizeof wander / sizeof wander[0]; i++) {
        b.tps = wander[i];
        assert_false(swarm_agg_changed(&b, &a));
        assert_false(swarm_agg_changed(&a, &b));
    }
    static const uint64_t moves[] = {1300, 700, 2000, 500, 1, 0};
    for (size_t i = 0; i < sizeof moves / sizeof moves[0]; i++) {
        b.tps = moves[i];
        assert_true(swarm_agg_changed(&b, &a));
    }
    /* From zero to anything is news. */
    a.tps = 0;
    b = a;
    b.tps = 3;
    assert_true(swarm_agg_changed(&b, &a));
    /* Every other field is news at once. */
    b = a;
    b.healthy = 1;
    assert_true(swarm_agg_changed(&b, &a));
    b = a;
    b.running = 1;
    assert_true(swarm_agg_changed(&b, &a));
    b = a;
    b.enabled = 1;
    assert_true(swarm_agg_changed(&b, &a));
    b = a;
    b.live = 3;
    assert_true(swarm_agg_changed(&b, &a));
    b = a;
    b.desired = 3;
    assert_true(swarm_agg_changed(&b, &a));
    b = a;
    b.io_in = PH_IN_BACKPRESSURE;
    assert_true(swarm_agg_changed(&b, &a));
    b = a;
    b.io_out = PH_OUT_BLOCKED;
    assert_true(swarm_agg_changed(&b, &a));
    b = a;
    b.status = SW_STOPPED;
    assert_true(swarm_agg_changed(&b, &a));
    b = a;
    b.state = "Degraded";
    assert_true(swarm_agg_changed(&b, &a));
    b = a;
    b.plan_fired = 1;
    assert_true(swarm_agg_changed(&b, &a));
}

static void agg_changed_flags_a_move_of_exactly_20_percent(void **state)
{
    (void)state;
    struct swarm_agg a, b;
    memset(&a, 0, sizeof a);
    a.state = "RUNNING";
    a.tps = 1000; /* last sent */
    b = a;
    b.tps = 1200;
    assert_true(swarm_agg_changed(&b, &a));
    b.tps = 1250;
    assert_true(swarm_agg_changed(&b, &a));
    b.tps = 800;
    assert_true(swarm_agg_changed(&b, &a));
}

/* ---- watermark --------------------------------------------------------- */

static void watermark_delta_every_5s_when_nothing_changes(void **state)
{
    struct fx *f = *state;
    set_roles(f, "generator", 1, NULL, 0);
    struct raw r;
    raw_claim(f, &r, "generator", "g-1");
    raw_status(&r, f->now, 0, true, PH_IN_OK, PH_OUT_OK);
    for (int i = 0; i < 10; i++) fx_step(f, 100 * MS);
    size_t last = fx_ndocs(f);
    while (last-- > 0)
        if (strcmp(jstr(fx_doc(f, last), "type"), "status-delta") == 0 &&
            strcmp(jstr(fx_doc(f, last), "role"), CTL) == 0)
            break;
    const uint64_t L = fx_doc_at(f, last);
    assert_true(f->now - f->t0 - L < 5 * SEC);
    size_t mark = fx_ndocs(f);
    /* 20 s of ticks every 100 ms; the worker reports once a second, unchanged. */
    for (int i = 1; i <= 200; i++) {
        if (i % 10 == 0) raw_status(&r, f->now, 0, true, PH_IN_OK, PH_OUT_OK);
        fx_step(f, 100 * MS);
    }
    assert_int_equal(fx_count(f, mark, "metric", "status-delta", CTL), 4);
    uint64_t prev = L;
    for (size_t i = mark; i < fx_ndocs(f); i++) {
        json_t *d = fx_doc(f, i);
        if (strcmp(jstr(d, "type"), "status-delta") != 0 || strcmp(jstr(d, "role"), CTL) != 0)
            continue;
        uint64_t at = fx_doc_at(f, i);
        assert_in_range(at - prev, 5 * SEC, 5 * SEC + 100 * MS);
        prev = at;
        /* The heartbeat's watermark tells how fresh the oldest worker is. */
        assert_non_null(jstr(d, "data.context.watermark"));
        assert_true(json_is_number(jget(d, "data.context.maxStalenessSec")));
        assert_true(json_number_value(jget(d, "data.context.maxStalenessSec")) <= 1.0);
    }
    /* No per-worker delta flood either: one per worker per 5 s heartbeat. */
    assert_true(fx_count(f, mark, "metric", "status-delta", "generator") <= 4);
}

static void watermark_period_is_configurable(void **state)
{
    struct fx *f = *state;
    f->sw.cfg.watermark_ns = 2 * SEC;
    fx_step(f, 2 * SEC);
    size_t mark = fx_ndocs(f);
    for (int i = 0; i < 100; i++) fx_step(f, 100 * MS);
    assert_int_equal(fx_count(f, mark, "metric", "status-delta", CTL), 5);
}

/* ---- contents ---------------------------------------------------------- */

static void delta_carries_the_small_aggregate_only(void **state)
{
    struct fx *f = *state;
    snprintf(f->sw.cfg.run_id, sizeof f->sw.cfg.run_id, "run-42");
    set_roles(f, "generator", 1, "processor", 2);
    fx_attach(f, "generator", "g-1");
    fx_attach(f, "processor", "p-1");
    fx_attach(f, "processor", "p-2");
    for (int i = 0; i < 60; i++) fx_step(f, 100 * MS);
    size_t n = 0;
    for (size_t i = 0; i < fx_ndocs(f); i++) {
        json_t *d = fx_doc(f, i);
        if (strcmp(jstr(d, "type"), "status-delta") != 0 || strcmp(jstr(d, "role"), CTL) != 0)
            continue;
        n++;
        assert_false(jhas(d, "data.config"));
        assert_false(jhas(d, "data.io"));
        assert_false(jhas(d, "data.startedAt"));
        assert_false(jhas(d, "data.context.workers"));
        assert_true(json_is_null(jget(d, "cid")));
        assert_true(json_is_null(jget(d, "ikey")));
    }
    assert_true(n >= 2);
    json_t *d = fx_last(f, 0, "metric", "status-delta", CTL);
    static const char *const keys[] = {"swarmStatus", "state",    "totals", "watermark",
                                       "maxStalenessSec", "scenario", "roles"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        assert_true(jhas(jget(d, "data.context"), keys[i]));
    assert_string_equal(jstr(d, "data.context.journal.runId"), "run-42");
    assert_int_equal(jint(d, "data.context.totals.desired"), 3);
    assert_int_equal(jint(d, "data.context.totals.healthy"), 3);
    assert_int_equal(json_object_size(jget(d, "data.context.scenario")), 0);
    assert_int_equal(jint(d, "data.context.roles.processor.count"), 2);
    assert_int_equal(jint(d, "data.context.roles.processor.desired"), 2);
}

/* Formerly a journal that could not take entries was silent in the
 * controller's status. Its failing shows in data.context.journal, in the
 * next delta, and clears the same way. */
static void a_failing_journal_shows_in_the_controller_status(void **state)
{
    struct fx *f = *state;
    snprintf(f->sw.cfg.run_id, sizeof f->sw.cfg.run_id, "run-43");
    fx_step(f, 300 * MS);
    size_t mark = fx_ndocs(f);
    fx_signal(f, "status-request", CTL, f->ctl_instance, "c-j", NULL, NULL);
    fx_step(f, 1 * MS);
    json_t *d = fx_last(f, mark, "metric", "status-full", CTL);
    assert_non_null(d);
    assert_false(jbool(d, "data.context.journal.failing"));
    mark = fx_ndocs(f);
    swarm_set_journal_failing(&f->sw, true);
    fx_step(f, 100 * MS);
    d = fx_first(f, mark, "metric", "status-delta", CTL);
    assert_non_null(d);
    assert_string_equal(jstr(d, "data.context.journal.runId"), "run-43");
    assert_true(jbool(d, "data.context.journal.failing"));
    mark = fx_ndocs(f);
    swarm_set_journal_failing(&f->sw, false);
    fx_step(f, 100 * MS);
    d = fx_first(f, mark, "metric", "status-delta", CTL);
    assert_non_null(d);
    assert_false(jbool(d, "data.context.journal.failing"));
    assert_int_equal(f->violations, 0);
}

/* A journal that starts failing raises journal.failing once, sent at once
 * (not reliable: the outbox would hold it until the journal works again);
 * its recovery raises journal.recovered through the journal as usual. */
static void a_failing_journal_raises_an_alert_and_its_recovery_another(void **state)
{
    struct fx *f = *state;
    fx_step(f, 300 * MS);
    size_t mark = fx_ndocs(f);
    swarm_set_journal_failing(&f->sw, true);
    fx_step(f, 100 * MS);
    swarm_set_journal_failing(&f->sw, true);
    fx_step(f, 100 * MS);
    assert_int_equal(fx_count(f, mark, "event", "alert", CTL), 1);
    size_t i = fx_find(f, mark, "event", "alert", CTL);
    json_t *a = fx_doc(f, i);
    assert_string_equal(jstr(a, "data.code"), "journal.failing");
    assert_string_equal(jstr(a, "data.level"), "error");
    assert_false(json_is_true(json_object_get(json_array_get(f->docs, i), "reliable")));
    mark = fx_ndocs(f);
    swarm_set_journal_failing(&f->sw, false);
    fx_step(f, 100 * MS);
    assert_int_equal(fx_count(f, mark, "event", "alert", CTL), 1);
    i = fx_find(f, mark, "event", "alert", CTL);
    a = fx_doc(f, i);
    assert_string_equal(jstr(a, "data.code"), "journal.recovered");
    assert_true(json_is_true(json_object_get(json_array_get(f->docs, i), "reliable")));
    assert_int_equal(f->violations, 0);
}

static void controller_full_lists_live_workers_sorted_by_role_then_instance(void **state)
{
    struct fx *f = *state;
    /* Claimed in an order unlike the sorted one. */
    fx_attach(f, "processor", "p-2");
    fx_attach(f, "generator", "g-1");
    fx_attach(f, "processor", "p-1");
    ph_worker *m = fx_attach(f, "moderator", "m-1");
    wk_state(m, true, PH_IN_OK, PH_OUT_OK);
    fx_step(f, 300 * MS);
    json_t *full = controller_full(f, "cid-full");
    assert_true(json_is_object(jget(full, "data.config")));
    assert_string_equal(jstr(full, "data.config.swarmId"), f->id);
    assert_true(json_is_object(jget(full, "data.io")));
    assert_non_null(jstr(full, "data.startedAt"));
    assert_true(json_is_null(jget(full, "ikey")));
    const json_t *ws = jget(full, "data.context.workers");
    assert_int_equal(json_array_size(ws), 4);
    static const char *const want[][2] = {
        {"generator", "g-1"}, {"moderator", "m-1"}, {"processor", "p-1"}, {"processor", "p-2"}};
    for (size_t i = 0; i < 4; i++) {
        const json_t *e = json_array_get(ws, i);
        assert_string_equal(jstr(e, "role"), want[i][0]);
        assert_string_equal(jstr(e, "instance"), want[i][1]);
        assert_true(json_is_boolean(jget(e, "enabled")));
        assert_true(json_is_integer(jget(e, "tps")));
        assert_non_null(jstr(e, "ioState.work.input"));
        assert_non_null(jstr(e, "ioState.work.output"));
        assert_non_null(jstr(e, "lastSeenAt"));
        assert_false(jbool(e, "stale"));
        assert_false(jhas(e, "dead"));
    }
    assert_true(jbool(worker_entry(full, "m-1"), "enabled"));
    assert_false(jbool(worker_entry(full, "g-1"), "enabled"));
}

static void clean_detach_removes_the_worker_from_the_list(void **state)
{
    struct fx *f = *state;
    fx_attach(f, "generator", "g-1");
    ph_worker *p = fx_attach(f, "processor", "p-1");
    fx_step(f, 300 * MS);
    size_t mark = fx_ndocs(f);
    fx_detach(f, p);
    fx_step(f, 100 * MS);
    assert_true(fx_journal_find(f, 0, "health", "left", "p-1") >= 0);
    assert_int_equal(fx_count(f, mark, "event", "alert", NULL), 0);
    json_t *full = controller_full(f, "cid-left");
    assert_int_equal(json_array_size(jget(full, "data.context.workers")), 1);
    assert_null(worker_entry(full, "p-1"));
}

/* A worker in a child process (SDK attach), blocked until killed. */
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
        for (;;) pause();
    }
    close(pfd[1]);
    char c = 0;
    assert_int_equal(read(pfd[0], &c, 1), 1);
    close(pfd[0]);
    assert_int_equal(c, 'y');
    return pid;
}

static void kill_worker(struct fx *f, pid_t pid)
{
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    /* What the daemon's pidfd (or periodic check) does. */
    ctl_check_liveness(&f->ctl, true);
}

static void dead_worker_is_listed_stale_and_dead_within_grace_then_dropped(void **state)
{
    struct fx *f = *state;
    f->sw.cfg.dead_grace_ns = 2 * SEC;
    fx_attach(f, "generator", "g-1");
    pid_t pid = fork_worker(f, "processor", "p-9");
    fx_step(f, 300 * MS);
    json_t *full = controller_full(f, "cid-before");
    assert_non_null(worker_entry(full, "p-9"));
    assert_false(jbool(worker_entry(full, "p-9"), "stale"));

    /* kill -9; the liveness check (pidfd in the daemon) reports it. */
    size_t mark = fx_ndocs(f);
    kill_worker(f, pid);
    fx_step(f, 100 * MS);
    json_t *al = fx_first(f, mark, "event", "alert", "processor");
    assert_non_null(al);
    assert_string_equal(jstr(al, "data.code"), "worker.died");
    assert_true(fx_journal_find(f, 0, "health", "died", "p-9") >= 0);
    full = controller_full(f, "cid-dead");
    const json_t *e = worker_entry(full, "p-9");
    assert_non_null(e);
    assert_true(jbool(e, "stale"));
    assert_true(jbool(e, "dead"));
    assert_int_equal(json_array_size(jget(full, "data.context.workers")), 2);
    /* Sorted with the live ones. */
    assert_string_equal(jstr(full, "data.context.workers.0.instance"), "g-1");
    assert_string_equal(jstr(full, "data.context.workers.1.instance"), "p-9");
    /* Not counted as healthy or live. */
    assert_int_equal(jint(full, "data.context.totals.healthy"), 1);

    /* After the grace period it is gone. */
    for (int i = 0; i < 21; i++) fx_step(f, 100 * MS);
    full = controller_full(f, "cid-after");
    assert_null(worker_entry(full, "p-9"));
    assert_int_equal(json_array_size(jget(full, "data.context.workers")), 1);
}

static void worker_status_never_contains_a_workers_list(void **state)
{
    struct fx *f = *state;
    ph_worker *g = fx_attach(f, "generator", "g-1");
    fx_attach(f, "processor", "p-1");
    /* The join status-full waits up to 250 ms for the io record. */
    fx_step(f, 100 * MS);
    fx_step(f, 300 * MS);
    assert_int_equal(fx_count(f, 0, "metric", "status-full", "generator"), 1);
    /* Join fulls, a status-request to the whole swarm, and a delta after a change. */
    size_t mark = fx_ndocs(f);
    fx_signal(f, "status-request", NULL, NULL, "cid-all", NULL, NULL);
    fx_step(f, 1 * MS);
    assert_int_equal(fx_count(f, mark, "metric", "status-full", "generator"), 1);
    assert_int_equal(fx_count(f, mark, "metric", "status-full", "processor"), 1);
    assert_int_equal(fx_count(f, mark, "metric", "status-full", CTL), 1);
    assert_int_equal(fx_count(f, mark, "outcome", NULL, NULL), 0);
    wk_state(g, true, PH_IN_OK, PH_OUT_OK);
    for (int i = 0; i < 60; i++) fx_step(f, 100 * MS);
    assert_true(fx_count(f, mark, "metric", "status-delta", "generator") >= 1);
    size_t nworker = 0;
    for (size_t i = 0; i < fx_ndocs(f); i++) {
        json_t *d = fx_doc(f, i);
        if (strcmp(jstr(d, "kind"), "metric") != 0 || strcmp(jstr(d, "role"), CTL) == 0) continue;
        nworker++;
        assert_false(jhas(d, "data.workers"));
        assert_false(jhas(d, "data.context.workers"));
        assert_string_equal(jstr(d, "origin"), jstr(d, "instance"));
        if (strcmp(jstr(d, "type"), "status-full") == 0) {
            /* Secrets never leave the worker. */
            assert_false(jhas(d, "data.config.password"));
        }
    }
    assert_true(nworker >= 5);
    json_t *gf = fx_first(f, mark, "metric", "status-full", "generator");
    assert_string_equal(jstr(gf, "cid"), "cid-all");
    assert_int_equal(jint(gf, "data.config.ratePerSec"), 1);
}

static void restarted_worker_replaces_its_dead_entry_and_is_healthy(void **state)
{
    struct fx *f = *state;
    fx_attach(f, "generator", "g-1");
    pid_t pid = fork_worker(f, "processor", "p-9");
    fx_step(f, 300 * MS);
    kill_worker(f, pid);
    fx_step(f, 100 * MS);
    json_t *full = controller_full(f, "cid-dead");
    assert_true(jbool(worker_entry(full, "p-9"), "dead"));
    /* The same worker comes back (within the grace period). */
    fx_attach(f, "processor", "p-9");
    fx_step(f, 100 * MS);
    full = controller_full(f, "cid-back");
    const json_t *ws = jget(full, "data.context.workers");
    assert_int_equal(json_array_size(ws), 2);
    const json_t *e = worker_entry(full, "p-9");
    assert_false(jbool(e, "stale"));
    assert_false(jhas(e, "dead"));
    assert_int_equal(jint(full, "data.context.totals.healthy"), 2);
    long died = fx_journal_find(f, 0, "health", "died", "p-9");
    assert_true(died >= 0);
    assert_true(fx_journal_find(f, died, "health", "joined", "p-9") > died);
}

static void worker_deltas_can_be_switched_off(void **state)
{
    struct fx *f = *state;
    f->sw.cfg.worker_deltas = false;
    ph_worker *g = fx_attach(f, "generator", "g-1");
    fx_step(f, 100 * MS);
    fx_step(f, 300 * MS);
    assert_int_equal(fx_count(f, 0, "metric", "status-full", "generator"), 1);
    size_t mark = fx_ndocs(f);
    for (int i = 0; i < 200; i++) {
        if (i % 10 == 0) wk_state(g, i % 20 == 0, PH_IN_OK, PH_OUT_OK);
        fx_step(f, 100 * MS);
    }
    assert_int_equal(fx_count(f, mark, "metric", "status-delta", "generator"), 0);
    assert_true(fx_count(f, mark, "metric", "status-delta", CTL) >= 10);
}

static void worker_delta_on_change_at_most_once_per_worker_delta_period(void **state)
{
    struct fx *f = *state;
    ph_worker *g = fx_attach(f, "generator", "g-1");
    fx_step(f, 100 * MS);
    fx_step(f, 300 * MS);
    size_t mark = fx_ndocs(f);
    /* A change every second for 20 s: deltas at most every 5 s. */
    for (int i = 0; i < 200; i++) {
        if (i % 10 == 0) wk_state(g, i % 20 == 0, PH_IN_OK, PH_OUT_OK);
        fx_step(f, 100 * MS);
    }
    size_t n = fx_count(f, mark, "metric", "status-delta", "generator");
    assert_in_range(n, 3, 5);
    uint64_t prev = 0;
    bool first = true;
    for (size_t i = mark; i < fx_ndocs(f); i++) {
        json_t *d = fx_doc(f, i);
        if (strcmp(jstr(d, "type"), "status-delta") != 0 || strcmp(jstr(d, "role"), "generator"))
            continue;
        assert_string_equal(jstr(d, "instance"), "g-1");
        if (!first) assert_true(fx_doc_at(f, i) - prev >= 5 * SEC);
        prev = fx_doc_at(f, i);
        first = false;
    }
}

/* ---- alerts ------------------------------------------------------------ */

static void worker_alert_becomes_one_alert_and_repeats_within_5s_are_suppressed(void **state)
{
    struct fx *f = *state;
    ph_worker *g = fx_attach(f, "generator", "g-1");
    fx_step(f, 300 * MS);
    size_t mark = fx_ndocs(f);
    assert_true(ph_worker_alert(g, "warn", "io.out-of-data", "dataset users.csv exhausted"));
    fx_step(f, 10 * MS);
    assert_int_equal(fx_count(f, mark, "event", "alert", NULL), 1);
    json_t *a = fx_first(f, mark, "event", "alert", NULL);
    assert_string_equal(jstr(a, "role"), "generator");
    assert_string_equal(jstr(a, "instance"), "g-1");
    assert_string_equal(jstr(a, "swarm"), f->id);
    assert_string_equal(jstr(a, "data.level"), "warn");
    assert_string_equal(jstr(a, "data.code"), "io.out-of-data");
    assert_string_equal(jstr(a, "data.message"), "dataset users.csv exhausted");
    /* Alerts are reliable documents: the emitter must not drop them. */
    size_t i = fx_find(f, mark, "event", "alert", NULL);
    assert_true(json_is_true(json_object_get(json_array_get(f->docs, i), "reliable")));
    assert_true(fx_journal_find(f, 0, "alert", NULL, NULL) >= 0);

    /* The same code again (well within 5 s, on any clock): suppressed. */
    assert_true(ph_worker_alert(g, "warn", "io.out-of-data", "dataset users.csv exhausted"));
    assert_true(ph_worker_alert(g, "warn", "io.out-of-data", "dataset users.csv exhausted"));
    fx_step(f, 10 * MS);
    assert_int_equal(fx_count(f, mark, "event", "alert", NULL), 1);

    /* Another code is news. */
    assert_true(ph_worker_alert(g, "error", "runtime.exception", "NullPointer in step 3"));
    fx_step(f, 10 * MS);
    assert_int_equal(fx_count(f, mark, "event", "alert", NULL), 2);
    a = fx_last(f, mark, "event", "alert", NULL);
    assert_string_equal(jstr(a, "data.code"), "runtime.exception");
    assert_string_equal(jstr(a, "data.level"), "error");
}

static void same_alert_code_from_two_workers_is_not_suppressed(void **state)
{
    struct fx *f = *state;
    ph_worker *g = fx_attach(f, "generator", "g-1");
    ph_worker *h = fx_attach(f, "generator", "g-2");
    fx_step(f, 300 * MS);
    size_t mark = fx_ndocs(f);
    assert_true(ph_worker_alert(g, "warn", "io.out-of-data", "done"));
    assert_true(ph_worker_alert(h, "warn", "io.out-of-data", "done"));
    fx_step(f, 10 * MS);
    assert_int_equal(fx_count(f, mark, "event", "alert", NULL), 2);
}

/* Consumers draw the pipeline from the controller's full (issue 8). */
static void controller_full_carries_each_workers_queues_for_the_pipeline(void **state)
{
    struct fx *f = *state;
    ph_worker *g = fx_attach(f, "generator", "g-1");
    ph_worker *p = fx_attach(f, "processor", "p-1");
    json_t *io = json_pack("{s:{s:{s:[s], s:[s]}}}", "work", "queues", "in", "ph.work.s.generator",
                           "out", "ph.work.s.processor");
    ph_worker_publish_io(g, io);
    json_decref(io);
    /* A worker's nonsense is not passed on. */
    io = json_pack("{s:{s:{s:[i, i]}}}", "work", "queues", "in", 1, 2);
    ph_worker_publish_io(p, io);
    json_decref(io);
    fx_step(f, 300 * MS);
    size_t mark = fx_ndocs(f);
    fx_signal(f, "status-request", "swarm-controller", f->ctl_instance, "c-q", NULL, NULL);
    fx_step(f, 1 * MS);
    json_t *full = fx_last(f, mark, "metric", "status-full", "swarm-controller");
    assert_non_null(full);
    json_t *ws = jget(full, "data.context.workers");
    assert_int_equal(json_array_size(ws), 2);
    json_t *gq = json_object_get(json_array_get(ws, 0), "queues");
    assert_non_null(gq);
    assert_string_equal(json_string_value(json_array_get(json_object_get(gq, "in"), 0)),
                        "ph.work.s.generator");
    assert_string_equal(json_string_value(json_array_get(json_object_get(gq, "out"), 0)),
                        "ph.work.s.processor");
    assert_null(json_object_get(json_array_get(ws, 1), "queues"));
    assert_int_equal(f->violations, 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(startup_emits_a_controller_full_and_a_delta),
        T(stale_after_ttl_requests_status_once_per_spell_and_recovers),
        T(stale_sdk_worker_answers_the_status_request_and_recovers),
        T(worker_that_never_reported_turns_stale_after_ttl),
        cmocka_unit_test(combine_in_follows_the_contract_priority),
        cmocka_unit_test(combine_out_follows_the_contract_priority),
        T(swarm_iostate_is_the_highest_priority_of_healthy_workers),
        T(state_is_unknown_then_degraded_then_the_swarm_status),
        T(state_is_the_swarm_status_when_nothing_is_desired),
        T(change_after_a_quiet_period_goes_out_on_the_next_tick),
        T(a_burst_after_quiet_goes_out_at_once_then_deltas_are_paced),
        T(sustained_changes_average_one_delta_per_coalesce_period),
        cmocka_unit_test(agg_changed_ignores_tps_wander_but_not_big_moves),
        cmocka_unit_test(agg_changed_flags_a_move_of_exactly_20_percent),
        T(watermark_delta_every_5s_when_nothing_changes),
        T(watermark_period_is_configurable),
        T(delta_carries_the_small_aggregate_only),
        T(a_failing_journal_shows_in_the_controller_status),
        T(a_failing_journal_raises_an_alert_and_its_recovery_another),
        T(controller_full_lists_live_workers_sorted_by_role_then_instance),
        T(clean_detach_removes_the_worker_from_the_list),
        T(controller_full_carries_each_workers_queues_for_the_pipeline),
        T(dead_worker_is_listed_stale_and_dead_within_grace_then_dropped),
        T(restarted_worker_replaces_its_dead_entry_and_is_healthy),
        T(worker_status_never_contains_a_workers_list),
        T(worker_deltas_can_be_switched_off),
        T(worker_delta_on_change_at_most_once_per_worker_delta_period),
        T(worker_alert_becomes_one_alert_and_repeats_within_5s_are_suppressed),
        T(same_alert_code_from_two_workers_is_not_suppressed),
    };
    return cmocka_run_group_tests_name("swarm controller status rules", tests, NULL, NULL);
}
