/* The tick visits only what changed: the aggregate it keeps from visits
 * (swarm_agg_build) must equal a full pass over the table
 * (swarm_aggregate) after every tick, whatever happens in between; and a
 * tick in which nothing arrives and no deadline passes visits no worker. */
#include <stdatomic.h>
#include <string.h>

#include "fixture.h"
#include "ph/record.h"

#define NRAW 48

struct rng {
    uint64_t s;
};

static uint32_t rnd(struct rng *r, uint32_t n)
{
    /* xorshift64*: reproducible from the seed, good enough to pick events. */
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return (uint32_t)((r->s * 2685821657736338717ull) >> 33) % n;
}

static const struct swarm_role_sum *find_role(const struct swarm_agg *a, const char *role)
{
    for (uint32_t k = 0; k < a->nroles; k++)
        if (strcmp(a->roles[k].role, role) == 0) return &a->roles[k];
    return NULL;
}

/* Roles that say something (a desired count or a live worker), as a set. */
static uint32_t roles_that_count(const struct swarm_agg *a)
{
    uint32_t n = 0;
    for (uint32_t k = 0; k < a->nroles; k++)
        n += a->roles[k].count > 0 || a->roles[k].desired > 0;
    return n;
}

static void assert_same_aggregate(struct fx *f, const char *when)
{
    struct swarm_agg inc, full;
    swarm_agg_build(&f->sw, f->now, &inc);
    swarm_aggregate(&f->sw, f->now, &full);
    if (inc.live != full.live || inc.healthy != full.healthy || inc.running != full.running ||
        inc.enabled != full.enabled || inc.desired != full.desired || inc.tps != full.tps ||
        inc.io_in != full.io_in || inc.io_out != full.io_out || strcmp(inc.state, full.state) != 0)
        fail_msg("%s: kept live %u healthy %u running %u enabled %u desired %u tps %llu in %u out "
                 "%u %s; full pass live %u healthy %u running %u enabled %u desired %u tps %llu "
                 "in %u out %u %s",
                 when, inc.live, inc.healthy, inc.running, inc.enabled, inc.desired,
                 (unsigned long long)inc.tps, inc.io_in, inc.io_out, inc.state, full.live,
                 full.healthy, full.running, full.enabled, full.desired,
                 (unsigned long long)full.tps, full.io_in, full.io_out, full.state);
    assert_int_equal(swarm_oldest_seen(&f->sw), full.oldest_seen_ns);
    assert_int_equal(roles_that_count(&inc), roles_that_count(&full));
    for (uint32_t k = 0; k < full.nroles; k++) {
        const struct swarm_role_sum *b = &full.roles[k];
        if (b->count == 0 && b->desired == 0) continue;
        const struct swarm_role_sum *a = find_role(&inc, b->role);
        if (a == NULL) fail_msg("%s: role %s missing from the kept aggregate", when, b->role);
        if (a->count != b->count || a->enabled != b->enabled || a->desired != b->desired ||
            a->tps != b->tps)
            fail_msg("%s: role %s kept %u/%u/%u/%llu, full pass %u/%u/%u/%llu", when, b->role,
                     a->count, a->enabled, a->desired, (unsigned long long)a->tps, b->count,
                     b->enabled, b->desired, (unsigned long long)b->tps);
    }
    /* Each worker's rate is current too (tools read it from the slot). */
    for (uint32_t i = 0; i < f->seg.slots; i++) {
        const struct ctl_worker *w = &f->ctl.w[i];
        if (w->tracked) assert_int_equal(w->tps, ctl_worker_tps(w, f->now, f->ctl.tps_window_ns));
    }
}

struct sim {
    struct raw r[NRAW];
    bool live[NRAW];
    uint64_t processed[NRAW];
    int gen; /* instance names stay unique across re-claims */
};

static void claim(struct fx *f, struct sim *m, int i, struct rng *g)
{
    static const char *const roles[] = {"generator", "processor", "moderator", "sink", "tap"};
    char inst[PH_ID_MAX];
    snprintf(inst, sizeof inst, "w-%d", ++m->gen);
    raw_claim(f, &m->r[i], roles[rnd(g, 5)], inst);
    m->live[i] = true;
    m->processed[i] = 0;
}

static void run_random_events(struct fx *f, uint64_t seed, int steps)
{
    struct rng g = {seed};
    struct sim *m = calloc(1, sizeof *m);
    assert_non_null(m);
    /* Two desired roles, one of which no worker ever takes. */
    struct swarm_role want[2] = {{"generator", 4}, {"absent", 2}};
    swarm_set_roles(&f->sw, want, 2);
    for (int i = 0; i < NRAW / 2; i++)
        claim(f, m, i, &g);
    fx_step(f, 1 * MS);
    assert_same_aggregate(f, "after the first claims");
    static const uint64_t steps_ns[] = {1 * MS,  10 * MS, 100 * MS, 260 * MS,
                                        2 * SEC, 5 * SEC, 6 * SEC,  16 * SEC};
    char when[96];
    for (int step = 0; step < steps; step++) {
        const int nevents = (int)rnd(&g, 12);
        for (int e = 0; e < nevents; e++) {
            const int i = (int)rnd(&g, NRAW);
            const uint32_t what = rnd(&g, 20);
            if (!m->live[i]) {
                if (what < 6) claim(f, m, i, &g);
                continue;
            }
            struct raw *r = &m->r[i];
            if (what < 14) {
                m->processed[i] += rnd(&g, 3) == 0 ? 0 : rnd(&g, 5000);
                raw_status(r, f->now, m->processed[i], rnd(&g, 3) != 0,
                           (uint8_t)rnd(&g, PH_IN_UPSTREAM_ERROR + 1),
                           (uint8_t)rnd(&g, PH_OUT_DOWNSTREAM_ERROR + 1));
            } else if (what < 16) {
                /* Clean detach. */
                const uint64_t word = atomic_load(&r->slot->state);
                assert_true(ph_slot_detach(&f->seg, r->index, word));
                m->live[i] = false;
            } else if (what < 18) {
                /* Death, as a pidfd reports it (after the scan has seen it). */
                fx_tick(f);
                const struct ctl_worker *w = &f->ctl.w[r->index];
                if (w->tracked) ctl_owner_died(&f->ctl, r->index, w->word);
                m->live[i] = false;
            } else if (what == 18) {
                /* A record the controller refuses: quarantine. */
                assert_true(ph_ring_write(&r->st, PH_REC_STATUS, "bad", 3));
            } else {
                /* An io record: the join status-full need not wait. */
                static const uint8_t io[] = {0x81, 0xa4, 'w', 'o', 'r', 'k', 0x80};
                assert_true(ph_ring_write(&r->st, PH_REC_IO, io, sizeof io));
            }
        }
        fx_step(f, steps_ns[rnd(&g, 8)]);
        snprintf(when, sizeof when, "seed %llu step %d", (unsigned long long)seed, step);
        assert_same_aggregate(f, when);
    }
    /* Slots freed by the controller after a detach are claimed again with
     * fresh instance names; the rest leave at teardown. */
    free(m);
}

static void the_kept_aggregate_equals_a_full_pass_after_every_tick(void **state)
{
    struct fx *f = *state;
    run_random_events(f, 0x9e3779b97f4a7c15ull, 300);
}

static void the_same_with_another_seed_and_worker_deltas_off(void **state)
{
    struct fx *f = *state;
    f->sw.cfg.worker_deltas = false;
    run_random_events(f, 20261202ull, 300);
}

static void a_quiet_tick_visits_no_worker_and_a_busy_one_only_the_reporting(void **state)
{
    struct fx *f = *state;
    enum { N = 200 };
    struct raw *r = calloc(N, sizeof *r);
    assert_non_null(r);
    char inst[PH_ID_MAX];
    for (int i = 0; i < N; i++) {
        snprintf(inst, sizeof inst, "p-%d", i);
        raw_claim(f, &r[i], "processor", inst);
        raw_status(&r[i], f->now, 100, true, PH_IN_OK, PH_OUT_OK);
    }
    fx_step(f, 1 * MS);
    fx_step(f, 300 * MS); /* the join status-fulls (no io record: after 250 ms) */
    struct swarm_agg a;
    swarm_agg_build(&f->sw, f->now, &a);
    assert_int_equal(a.live, N);
    assert_int_equal(a.healthy, N);

    /* Nothing arrives, no deadline is near: no visit at all. */
    uint64_t before = f->sw.visits;
    for (int t = 0; t < 20; t++)
        fx_step(f, 10 * MS);
    assert_int_equal(f->sw.visits - before, 0);

    /* Three workers report in each tick: three visits a tick. */
    before = f->sw.visits;
    for (int t = 0; t < 20; t++) {
        for (int k = 0; k < 3; k++)
            raw_status(&r[(t * 3 + k) % N], f->now, 200 + (uint64_t)t, true, PH_IN_OK, PH_OUT_OK);
        fx_step(f, 10 * MS);
    }
    assert_int_equal(f->sw.visits - before, 60);
    assert_same_aggregate(f, "after the busy ticks");

    /* Past the tps window, every worker's rate falls to 0 without any record:
     * those are deadlines, visited once each. */
    before = f->sw.visits;
    fx_step(f, 5 * SEC);
    assert_in_range(f->sw.visits - before, 1, 2 * N);
    swarm_agg_build(&f->sw, f->now, &a);
    assert_int_equal(a.tps, 0);
    assert_same_aggregate(f, "past the tps window");

    /* Past the TTL the swarm is stale, again from deadlines alone. */
    fx_step(f, 16 * SEC);
    swarm_agg_build(&f->sw, f->now, &a);
    assert_int_equal(a.healthy, 0);
    assert_int_equal(a.live, N);
    assert_same_aggregate(f, "past the ttl");
    free(r);
}

/* Over SWARM_MAX_ROLES distinct roles the summary cannot hold them all:
 * the kept aggregate must still say what a full pass says. */
static void more_roles_than_the_summary_holds_still_match_a_full_pass(void **state)
{
    struct fx *f = *state;
    enum { N = SWARM_MAX_ROLES + 6 };
    struct raw *r = calloc(N, sizeof *r);
    assert_non_null(r);
    struct swarm_role want[3] = {{"r-1", 1}, {"desired-only", 2}, {"r-68", 1}};
    swarm_set_roles(&f->sw, want, 3);
    char role[PH_ID_MAX], inst[PH_ID_MAX];
    for (int i = 0; i < N; i++) {
        snprintf(role, sizeof role, "r-%d", i);
        snprintf(inst, sizeof inst, "w-%d", i);
        raw_claim(f, &r[i], role, inst);
        raw_status(&r[i], f->now, 10, i % 2 == 0, PH_IN_OK, PH_OUT_OK);
    }
    fx_step(f, 10 * MS);
    assert_same_aggregate(f, "70 roles");
    /* The first workers leave: their roles' entries free up. */
    for (int i = 0; i < 8; i++) {
        const uint64_t word = atomic_load(&r[i].slot->state);
        assert_true(ph_slot_detach(&f->seg, r[i].index, word));
    }
    fx_step(f, 10 * MS);
    assert_same_aggregate(f, "after eight left");
    fx_step(f, 16 * SEC);
    assert_same_aggregate(f, "stale");
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(the_kept_aggregate_equals_a_full_pass_after_every_tick,
                                        fx_setup_many_slots, fx_teardown),
        cmocka_unit_test_setup_teardown(the_same_with_another_seed_and_worker_deltas_off,
                                        fx_setup_many_slots, fx_teardown),
        cmocka_unit_test_setup_teardown(
            a_quiet_tick_visits_no_worker_and_a_busy_one_only_the_reporting, fx_setup_many_slots,
            fx_teardown),
        cmocka_unit_test_setup_teardown(more_roles_than_the_summary_holds_still_match_a_full_pass,
                                        fx_setup_many_slots, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
