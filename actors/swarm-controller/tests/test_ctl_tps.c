/* tps window of the controller's slot table (ctl.c): integer items per
 * second from the cumulative counter, the claim-time baseline, the sliding
 * window, silence and huge counters.
 *
 * Raw workers write status records with exact timestamps: the baseline
 * sample is the slot's claimed_mono_ns, so a record stamped claimed + 1 s
 * with 100 items is "100 items in the first second". */
#include "fixture.h"

#include <string.h>

#define WINDOW (5 * SEC)

static struct ctl_worker *cw(struct fx *f, const struct raw *r)
{
    struct ctl_worker *w = &f->ctl.w[r->index];
    assert_true(w->tracked);
    return w;
}

/* ---- the first report counts --------------------------------------------- */

static void first_report_counts_from_the_claim_baseline(void **state)
{
    struct fx *f = *state;
    struct raw r;
    raw_claim(f, &r, "generator", "g-1");
    /* 100 items reported one second after the claim: ~100/s, not 0. */
    raw_status(&r, r.claimed_ns + 1 * SEC, 100, true, PH_IN_OK, PH_OUT_OK);
    fx_step(f, 1 * SEC);
    struct ctl_worker *w = cw(f, &r);
    assert_true(w->have_status);
    assert_int_equal(ctl_worker_tps(w, r.claimed_ns + 1 * SEC, WINDOW), 100);
    /* The figure the table keeps (computed on drain) agrees. */
    assert_int_equal(w->tps, 100);
    /* And it reaches the aggregate and the worker's status. */
    struct swarm_agg a;
    swarm_aggregate(&f->sw, f->now, &a);
    assert_int_equal(a.tps, 100);
}

static void first_report_half_a_second_after_claim_gives_double_rate(void **state)
{
    struct fx *f = *state;
    struct raw r;
    raw_claim(f, &r, "generator", "g-1");
    raw_status(&r, r.claimed_ns + 500 * MS, 100, true, PH_IN_OK, PH_OUT_OK);
    fx_step(f, 500 * MS);
    assert_int_equal(ctl_worker_tps(cw(f, &r), r.claimed_ns + 500 * MS, WINDOW), 200);
}

static void no_report_yet_gives_zero(void **state)
{
    struct fx *f = *state;
    struct raw r;
    raw_claim(f, &r, "generator", "g-1");
    fx_step(f, 100 * MS);
    struct ctl_worker *w = cw(f, &r);
    assert_false(w->have_status);
    assert_int_equal(ctl_worker_tps(w, f->now, WINDOW), 0);
    assert_int_equal(w->tps, 0);
}

/* ---- steady rates --------------------------------------------------------- */

static void steady_rate_reported_every_second_gives_the_rate(void **state)
{
    struct fx *f = *state;
    struct raw r;
    raw_claim(f, &r, "generator", "g-1");
    uint64_t t = r.claimed_ns, n = 0;
    for (int i = 0; i < 12; i++) {
        t += 1 * SEC;
        n += 250;
        raw_status(&r, t, n, true, PH_IN_OK, PH_OUT_OK);
        fx_step(f, 1 * SEC);
        assert_int_equal(ctl_worker_tps(cw(f, &r), t, WINDOW), 250);
    }
    assert_int_equal(cw(f, &r)->tps, 250);
    /* The rate changes: after one window of the new rate it is the new rate. */
    for (int i = 0; i < 6; i++) {
        t += 1 * SEC;
        n += 1000;
        raw_status(&r, t, n, true, PH_IN_OK, PH_OUT_OK);
        fx_step(f, 1 * SEC);
    }
    assert_int_equal(ctl_worker_tps(cw(f, &r), t, WINDOW), 1000);
    assert_int_equal(cw(f, &r)->tps, 1000);
}

static void steady_rate_reported_every_50ms_gives_the_rate(void **state)
{
    struct fx *f = *state;
    struct raw r;
    raw_claim(f, &r, "generator", "g-1");
    uint64_t t = r.claimed_ns, n = 0;
    /* 40 items per second, 2 per 50 ms, for 12 s: samples are thinned to a
     * sixteenth of the window, the rate must not be. */
    for (int i = 0; i < 240; i++) {
        t += 50 * MS;
        n += 2;
        raw_status(&r, t, n, true, PH_IN_OK, PH_OUT_OK);
        fx_step(f, 50 * MS);
        if (i >= 5) {
            uint64_t tps = ctl_worker_tps(cw(f, &r), t, WINDOW);
            assert_in_range(tps, 39, 40);
        }
    }
    assert_true(cw(f, &r)->win_len <= CTL_TPS_SAMPLES);
}

static void two_workers_tps_sum_in_the_aggregate(void **state)
{
    struct fx *f = *state;
    struct raw a, b;
    raw_claim(f, &a, "generator", "g-1");
    raw_claim(f, &b, "processor", "p-1");
    uint64_t ta = a.claimed_ns, tb = b.claimed_ns;
    for (int i = 1; i <= 6; i++) {
        raw_status(&a, ta + (uint64_t)i * SEC, (uint64_t)i * 30, true, PH_IN_OK, PH_OUT_OK);
        raw_status(&b, tb + (uint64_t)i * SEC, (uint64_t)i * 70, true, PH_IN_OK, PH_OUT_OK);
        fx_step(f, 1 * SEC);
    }
    struct swarm_agg agg;
    swarm_aggregate(&f->sw, f->now, &agg);
    assert_int_equal(agg.tps, 100);
}

/* ---- silence ----------------------------------------------------------- */

static void tps_falls_to_zero_when_reports_stop_longer_than_the_window(void **state)
{
    struct fx *f = *state;
    struct raw r;
    raw_claim(f, &r, "generator", "g-1");
    uint64_t t = r.claimed_ns;
    for (int i = 1; i <= 8; i++) {
        t += 1 * SEC;
        raw_status(&r, t, (uint64_t)i * 100, true, PH_IN_OK, PH_OUT_OK);
        fx_step(f, 1 * SEC);
    }
    struct ctl_worker *w = cw(f, &r);
    assert_int_equal(ctl_worker_tps(w, t, WINDOW), 100);
    assert_int_equal(ctl_worker_tps(w, t + WINDOW - 1, WINDOW), 100);
    assert_int_equal(ctl_worker_tps(w, t + WINDOW, WINDOW), 100);
    assert_int_equal(ctl_worker_tps(w, t + WINDOW + 1, WINDOW), 0);
    assert_int_equal(ctl_worker_tps(w, t + 60 * SEC, WINDOW), 0);
}

static void reports_without_progress_bring_tps_to_zero(void **state)
{
    struct fx *f = *state;
    struct raw r;
    raw_claim(f, &r, "generator", "g-1");
    uint64_t t = r.claimed_ns;
    for (int i = 1; i <= 6; i++) {
        t += 1 * SEC;
        raw_status(&r, t, (uint64_t)i * 100, true, PH_IN_OK, PH_OUT_OK);
        fx_step(f, 1 * SEC);
    }
    /* Heartbeats keep coming, the counter stands still (a disabled worker). */
    for (int i = 0; i < 6; i++) {
        t += 1 * SEC;
        raw_status(&r, t, 600, false, PH_IN_OK, PH_OUT_OK);
        fx_step(f, 1 * SEC);
    }
    assert_int_equal(cw(f, &r)->tps, 0);
    struct swarm_agg a;
    swarm_aggregate(&f->sw, f->now, &a);
    assert_int_equal(a.tps, 0);
}

static void controller_tps_falls_to_zero_when_a_live_worker_goes_silent(void **state)
{
    struct fx *f = *state;
    struct raw r;
    raw_claim(f, &r, "generator", "g-1");
    uint64_t t = r.claimed_ns;
    for (int i = 1; i <= 8; i++) {
        t += 1 * SEC;
        raw_status(&r, t, (uint64_t)i * 100, true, PH_IN_OK, PH_OUT_OK);
        fx_step(f, 1 * SEC);
    }
    struct swarm_agg a;
    swarm_aggregate(&f->sw, f->now, &a);
    assert_int_equal(a.tps, 100);
    /* 8 s of silence: past the 5 s window, within the 15 s TTL (still healthy). */
    for (int i = 0; i < 80; i++) fx_step(f, 100 * MS);
    assert_true(swarm_worker_healthy(&f->sw, cw(f, &r), f->now));
    assert_int_equal(ctl_worker_tps(cw(f, &r), f->now, WINDOW), 0);
    swarm_aggregate(&f->sw, f->now, &a);
    assert_int_equal(a.tps, 0);
    size_t mark = fx_ndocs(f);
    fx_signal(f, "status-request", "swarm-controller", f->ctl_instance, "c-tps", NULL, NULL);
    fx_step(f, 1 * MS);
    json_t *full = fx_last(f, mark, "metric", "status-full", "swarm-controller");
    assert_non_null(full);
    assert_int_equal(jint(full, "data.tps"), 0);
    assert_int_equal(jint(full, "data.context.workers.0.tps"), 0);
}

/* Item 7 of the defects issue: phctl shm-dump reads the slot's c_tps. */
static void item07_slot_tps_for_tools_falls_to_zero_with_the_controllers_figure(void **state)
{
    struct fx *f = *state;
    struct raw r;
    raw_claim(f, &r, "generator", "g-1");
    uint64_t t = r.claimed_ns;
    for (int i = 1; i <= 8; i++) {
        t += 1 * SEC;
        raw_status(&r, t, (uint64_t)i * 100, true, PH_IN_OK, PH_OUT_OK);
        fx_step(f, 1 * SEC);
    }
    assert_int_equal(atomic_load(&r.slot->c_tps), 100);
    /* Frozen (SIGSTOP): no record for 8 s. */
    for (int i = 0; i < 80; i++) fx_step(f, 100 * MS);
    assert_int_equal(cw(f, &r)->tps, 0);
    assert_int_equal(atomic_load(&r.slot->c_tps), 0);
}

/* ---- huge counters ------------------------------------------------------- */

static struct ctl_worker two_samples(uint64_t t0, uint64_t p0, uint64_t t1, uint64_t p1)
{
    struct ctl_worker w;
    memset(&w, 0, sizeof w);
    w.win[0] = (struct ctl_sample){t0, p0};
    w.win[1] = (struct ctl_sample){t1, p1};
    w.win_len = 2;
    return w;
}

static void huge_absolute_counters_do_not_overflow(void **state)
{
    struct fx *f = *state;
    struct raw r;
    raw_claim(f, &r, "generator", "g-1");
    /* A counter near 2^63 that moves by 100 a second: the rate is 100. */
    const uint64_t base = (1ull << 63) + 12345;
    uint64_t t = r.claimed_ns;
    for (int i = 1; i <= 12; i++) {
        t += 1 * SEC;
        raw_status(&r, t, base + (uint64_t)i * 100, true, PH_IN_OK, PH_OUT_OK);
        fx_step(f, 1 * SEC);
    }
    assert_int_equal(cw(f, &r)->quarantine, PH_Q_NONE);
    assert_int_equal(ctl_worker_tps(cw(f, &r), t, WINDOW), 100);
    assert_int_equal(cw(f, &r)->tps, 100);

    /* Directly: counters at the very top of the range. */
    struct ctl_worker w = two_samples(1 * SEC, UINT64_MAX - 1000, 2 * SEC, UINT64_MAX);
    assert_int_equal(ctl_worker_tps(&w, 2 * SEC, WINDOW), 1000);
    /* A delta that would overflow dp * 1e9 still yields a large, non-wrapped rate. */
    w = two_samples(0, 0, 1 * SEC, UINT64_MAX);
    assert_true(ctl_worker_tps(&w, 1 * SEC, WINDOW) >= UINT64_MAX / 2);
    /* Just under the overflow threshold: exact. */
    w = two_samples(0, 0, 5 * SEC, 18000000000ull);
    assert_int_equal(ctl_worker_tps(&w, 5 * SEC, WINDOW), 3600000000ull);
}

static void huge_rates_are_accurate_and_monotonic(void **state)
{
    (void)state;
    struct ctl_worker w = two_samples(0, 0, 2 * SEC, 40000000000ull);
    uint64_t tps = ctl_worker_tps(&w, 2 * SEC, WINDOW);
    assert_in_range(tps, 19800000000ull, 20200000000ull);
    struct ctl_worker lo = two_samples(0, 0, 5 * SEC, 18000000000ull);
    struct ctl_worker hi = two_samples(0, 0, 5 * SEC, 19000000000ull);
    assert_true(ctl_worker_tps(&hi, 5 * SEC, WINDOW) >= ctl_worker_tps(&lo, 5 * SEC, WINDOW));
}

static void counter_going_backwards_quarantines_the_worker(void **state)
{
    struct fx *f = *state;
    struct raw r;
    raw_claim(f, &r, "generator", "g-1");
    raw_status(&r, r.claimed_ns + 1 * SEC, 500, true, PH_IN_OK, PH_OUT_OK);
    fx_step(f, 1 * SEC);
    raw_status(&r, r.claimed_ns + 2 * SEC, 400, true, PH_IN_OK, PH_OUT_OK);
    fx_step(f, 1 * SEC);
    assert_int_equal(cw(f, &r)->quarantine, PH_Q_RECORD);
    assert_false(swarm_worker_healthy(&f->sw, cw(f, &r), f->now));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(first_report_counts_from_the_claim_baseline, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(first_report_half_a_second_after_claim_gives_double_rate,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(no_report_yet_gives_zero, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(steady_rate_reported_every_second_gives_the_rate,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(steady_rate_reported_every_50ms_gives_the_rate, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(two_workers_tps_sum_in_the_aggregate, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(tps_falls_to_zero_when_reports_stop_longer_than_the_window,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(reports_without_progress_bring_tps_to_zero, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(controller_tps_falls_to_zero_when_a_live_worker_goes_silent,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(
            item07_slot_tps_for_tools_falls_to_zero_with_the_controllers_figure, fx_setup,
            fx_teardown),
        cmocka_unit_test_setup_teardown(huge_absolute_counters_do_not_overflow, fx_setup,
                                        fx_teardown),
        cmocka_unit_test(huge_rates_are_accurate_and_monotonic),
        cmocka_unit_test_setup_teardown(counter_going_backwards_quarantines_the_worker, fx_setup,
                                        fx_teardown),
    };
    return cmocka_run_group_tests_name("controller tps window", tests, NULL, NULL);
}
