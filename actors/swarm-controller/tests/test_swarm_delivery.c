/* Delivery guarantees of the swarm controller: every attempt (correlation
 * id) gets exactly one outcome, however often it is delivered or retried;
 * a worker that (re)joins is brought to the swarm's state; a restarted
 * controller takes up the swarm from its journal.
 *
 * Test names carry the number of the defect they guard against (issue
 * "Faults and hostile input still lose commands..."). */
#include "fixture.h"

#include <string.h>
#include <unistd.h>

#define CTL "swarm-controller"

static void start_swarm(struct fx *f, struct fx_three *t, const char *cid)
{
    fx_signal(f, "swarm-start", CTL, f->ctl_instance, cid, NULL, NULL);
    assert_int_equal(wk_apply(t->g, true, NULL, NULL), 1);
    assert_int_equal(wk_apply(t->p1, true, NULL, NULL), 1);
    assert_int_equal(wk_apply(t->p2, true, NULL, NULL), 1);
    fx_step(f, 10 * MS);
    assert_int_equal(f->sw.status, SW_RUNNING);
}

/* Outcomes from `mark` on, each checked for a non-empty status; returns how
 * many name `cid`. */
static size_t outcomes_for(struct fx *f, size_t mark, const char *cid)
{
    size_t n = 0;
    for (size_t i = mark; i < fx_ndocs(f); i++) {
        json_t *d = fx_doc(f, i);
        if (strcmp(jstr(d, "kind"), "outcome") != 0) continue;
        const char *st = jstr(d, "data.status");
        assert_non_null(st);
        assert_true(st[0] != '\0');
        if (strcmp(jstr(d, "cid"), cid) == 0) n++;
    }
    return n;
}

/* ---- 1: replays keep their answer --------------------------------------- */

static void item01_every_replay_of_an_idempotency_key_is_answered_with_its_status(void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    size_t mark = fx_ndocs(f);
    fx_signal(f, "config-update", "processor", "p-1", "cid-1", "ik-r", "{\"ratePerSec\": 3}");
    assert_int_equal(wk_apply(t.p1, true, NULL, NULL), 1);
    fx_step(f, 10 * MS);
    const char *cids[] = {"cid-2", "cid-3", "cid-4", "cid-5"};
    for (int i = 0; i < 4; i++)
        fx_signal(f, "config-update", "processor", "p-1", cids[i], "ik-r", "{\"ratePerSec\": 3}");
    fx_step(f, 10 * MS);
    assert_int_equal(outcomes_for(f, mark, "cid-1"), 1);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(outcomes_for(f, mark, cids[i]), 1);
        size_t k = fx_find(f, mark, "outcome", NULL, NULL);
        (void)k;
    }
    json_t *last = fx_last(f, mark, "outcome", "config-update", NULL);
    assert_string_equal(jstr(last, "cid"), "cid-5");
    assert_string_equal(jstr(last, "data.status"), "applied");
    /* Applied once. */
    assert_int_equal(wk_apply(t.p1, true, NULL, NULL), 0);
    assert_int_equal(f->violations, 0);
}

/* ---- 2: concurrent retries ----------------------------------------------- */

static void item02_fifty_concurrent_attempts_of_one_key_each_get_one_outcome(void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    size_t mark = fx_ndocs(f);
    char cid[32];
    for (int i = 0; i < 50; i++) {
        snprintf(cid, sizeof cid, "try-%02d", i);
        fx_signal(f, "config-update", "processor", NULL, cid, "ik-50", "{\"ratePerSec\": 9}");
    }
    fx_step(f, 10 * MS);
    assert_int_equal(fx_count(f, mark, "outcome", NULL, NULL), 0);
    /* Applied once: one command per worker of the role. */
    assert_int_equal(wk_apply(t.p1, true, NULL, NULL), 1);
    assert_int_equal(wk_apply(t.p2, true, NULL, NULL), 1);
    assert_int_equal(wk_apply(t.g, true, NULL, NULL), 0);
    fx_step(f, 10 * MS);
    assert_int_equal(fx_count(f, mark, "outcome", NULL, NULL), 50);
    for (int i = 0; i < 50; i++) {
        snprintf(cid, sizeof cid, "try-%02d", i);
        assert_int_equal(outcomes_for(f, mark, cid), 1);
    }
    /* Later retries are answered from the cache, still once each. */
    fx_signal(f, "config-update", "processor", NULL, "try-late", "ik-50", "{\"ratePerSec\": 9}");
    assert_int_equal(outcomes_for(f, mark, "try-late"), 1);
    assert_int_equal(f->violations, 0);
}

/* ---- 5: one answer per attempt, also when delivered again ---------------- */

static void item05_redelivered_attempt_is_neither_applied_nor_answered_again(void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    size_t mark = fx_ndocs(f);
    /* Delivered twice while in flight (a broker redelivery after a lost ack). */
    fx_signal(f, "config-update", "processor", "p-1", "cid-once", "ik-once", "{\"ratePerSec\": 4}");
    fx_signal(f, "config-update", "processor", "p-1", "cid-once", "ik-once", "{\"ratePerSec\": 4}");
    assert_int_equal(wk_apply(t.p1, true, NULL, NULL), 1);
    fx_step(f, 10 * MS);
    assert_int_equal(outcomes_for(f, mark, "cid-once"), 1);
    /* And again after it was answered, with or without a key. */
    fx_signal(f, "config-update", "processor", "p-1", "cid-once", "ik-once", "{\"ratePerSec\": 4}");
    fx_signal(f, "config-update", "processor", "p-1", "cid-nokey", NULL, "{\"ratePerSec\": 5}");
    assert_int_equal(wk_apply(t.p1, true, NULL, NULL), 1);
    fx_step(f, 10 * MS);
    fx_signal(f, "config-update", "processor", "p-1", "cid-nokey", NULL, "{\"ratePerSec\": 5}");
    fx_step(f, 10 * MS);
    assert_int_equal(wk_apply(t.p1, true, NULL, NULL), 0);
    assert_int_equal(outcomes_for(f, mark, "cid-once"), 1);
    assert_int_equal(outcomes_for(f, mark, "cid-nokey"), 1);
    /* A status-request delivered twice is answered by one full. */
    size_t m2 = fx_ndocs(f);
    fx_signal(f, "status-request", CTL, f->ctl_instance, "cid-sr", NULL, NULL);
    fx_signal(f, "status-request", CTL, f->ctl_instance, "cid-sr", NULL, NULL);
    fx_step(f, 10 * MS);
    size_t fulls = 0;
    for (size_t i = m2; i < fx_ndocs(f); i++) {
        json_t *d = fx_doc(f, i);
        if (strcmp(jstr(d, "type"), "status-full") == 0 && json_is_string(jget(d, "cid")) &&
            strcmp(jstr(d, "cid"), "cid-sr") == 0)
            fulls++;
    }
    assert_int_equal(fulls, 1);
    assert_int_equal(f->sw.duplicates, 4);
    assert_true(fx_journal_find(f, 0, "duplicate", NULL, NULL) >= 0);
}

/* ---- 6: a (re)joining worker resumes ------------------------------------- */

static json_t *join_patch(struct fx *f, const char *role, const char *instance, ph_worker **out)
{
    ph_worker *w = fx_attach(f, role, instance);
    fx_step(f, 10 * MS);
    json_t *patch = NULL;
    int type = -1;
    int n = wk_apply(w, true, &patch, &type);
    fx_step(f, 10 * MS);
    if (out) *out = w;
    if (n == 0) return NULL;
    assert_int_equal(n, 1);
    assert_int_equal(type, PH_COMMAND_CONFIG_PATCH);
    return patch;
}

static void item06_joining_worker_gets_the_enabled_flag_and_patches_in_force(void **state)
{
    struct fx *f = *state;
    /* Before anything was asked of the swarm, a joining worker gets nothing. */
    ph_worker *first = NULL;
    assert_null(join_patch(f, "generator", "g-0", &first));
    fx_detach(f, first);
    struct fx_three t;
    fx_attach_three(f, &t);
    start_swarm(f, &t, "start-1");
    fx_signal(f, "config-update", "processor", NULL, "c-role", NULL, "{\"ratePerSec\": 7}");
    wk_apply(t.p1, true, NULL, NULL);
    wk_apply(t.p2, true, NULL, NULL);
    fx_step(f, 10 * MS);
    fx_signal(f, "config-update", "processor", "p-1", "c-one", NULL,
              "{\"enabled\": false, \"note\": \"x\"}");
    wk_apply(t.p1, true, NULL, NULL);
    fx_step(f, 10 * MS);

    /* p-1 restarts (a supervisor restart from its swarm-file config). */
    size_t mark = fx_ndocs(f);
    fx_detach(f, t.p1);
    fx_step(f, 10 * MS);
    json_t *p = join_patch(f, "processor", "p-1", NULL);
    assert_non_null(p);
    assert_false(json_is_true(json_object_get(p, "enabled")));
    assert_int_equal(json_integer_value(json_object_get(p, "ratePerSec")), 7);
    assert_string_equal(json_string_value(json_object_get(p, "note")), "x");
    assert_int_equal(json_object_size(p), 3);
    json_decref(p);
    /* An internal command: no outcome, and its status-full follows. */
    assert_int_equal(fx_count(f, mark, "outcome", NULL, NULL), 0);
    assert_true(fx_journal_find(f, 0, "resync", NULL, "p-1") >= 0);

    /* A new processor gets the role's patch and the swarm's enabled flag. */
    p = join_patch(f, "processor", "p-3", NULL);
    assert_non_null(p);
    assert_true(json_is_true(json_object_get(p, "enabled")));
    assert_int_equal(json_integer_value(json_object_get(p, "ratePerSec")), 7);
    assert_int_equal(json_object_size(p), 2);
    json_decref(p);
    /* A generator only the enabled flag. */
    p = join_patch(f, "generator", "g-2", NULL);
    assert_non_null(p);
    assert_int_equal(json_object_size(p), 1);
    assert_true(json_is_true(json_object_get(p, "enabled")));
    json_decref(p);
    assert_int_equal(fx_count(f, mark, "event", "alert", NULL), 0);
    assert_int_equal(f->violations, 0);
}

static void item06_a_later_swarm_wide_patch_overrides_an_earlier_instance_one(void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    fx_signal(f, "config-update", "processor", "p-1", "c-off", NULL, "{\"enabled\": false}");
    wk_apply(t.p1, true, NULL, NULL);
    fx_step(f, 10 * MS);
    start_swarm(f, &t, "start-after");
    fx_detach(f, t.p1);
    fx_step(f, 10 * MS);
    json_t *p = join_patch(f, "processor", "p-1", NULL);
    assert_non_null(p);
    assert_true(json_is_true(json_object_get(p, "enabled")));
    assert_int_equal(json_object_size(p), 1);
    json_decref(p);
    /* swarm-stop: a joining worker stays off. */
    fx_signal(f, "swarm-stop", CTL, f->ctl_instance, "stop-1", NULL, NULL);
    for (int i = 0; i < f->nwk; i++)
        wk_apply(f->wk[i], true, NULL, NULL);
    fx_step(f, 10 * MS);
    assert_int_equal(f->sw.status, SW_STOPPED);
    p = join_patch(f, "generator", "g-9", NULL);
    assert_non_null(p);
    assert_false(json_is_true(json_object_get(p, "enabled")));
    json_decref(p);
}

static void item06_joining_worker_refusing_the_swarm_config_raises_an_alert(void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    start_swarm(f, &t, "start-r");
    ph_worker *w = fx_attach(f, "generator", "g-5");
    fx_step(f, 10 * MS);
    size_t mark = fx_ndocs(f);
    assert_int_equal(wk_apply(w, false, NULL, NULL), 1);
    fx_step(f, 10 * MS);
    json_t *a = fx_first(f, mark, "event", "alert", NULL);
    assert_non_null(a);
    assert_string_equal(jstr(a, "data.code"), "command.failed");
    assert_non_null(strstr(jstr(a, "data.message"), "joining worker"));
    assert_int_equal(fx_count(f, mark, "outcome", NULL, NULL), 0);
}

static void item06_a_patch_the_desired_table_has_no_room_for_is_said_aloud(void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    /* Instance scopes of workers long gone fill the table. */
    json_t *filler = json_pack("{s:i}", "ratePerSec", 1);
    char inst[32];
    for (int i = 0; f->sw.desired.n < DESIRED_MAX_ENTRIES; i++) {
        snprintf(inst, sizeof inst, "gone-%d", i);
        assert_true(desired_apply(&f->sw.desired, "processor", inst, filler));
    }
    json_decref(filler);
    size_t mark = fx_ndocs(f);
    fx_signal(f, "config-update", "processor", "p-1", "c-full", NULL, "{\"ratePerSec\": 5}");
    wk_apply(t.p1, true, NULL, NULL);
    fx_step(f, 10 * MS);
    /* Applied to the worker that runs, and the loss of memory told. */
    json_t *o = fx_last(f, mark, "outcome", "config-update", NULL);
    assert_non_null(o);
    assert_string_equal(jstr(o, "data.status"), "applied");
    json_t *a = fx_first(f, mark, "event", "alert", NULL);
    assert_non_null(a);
    assert_string_equal(jstr(a, "data.code"), "config.not-remembered");
    assert_non_null(strstr(jstr(a, "data.message"), "processor/p-1"));
    assert_int_equal(f->violations, 0);
}

/* ---- 3: a restarted controller takes up what it had taken in ------------- */

static void item03_restarted_controller_answers_a_signal_its_predecessor_took_in(void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    start_swarm(f, &t, "start-x");
    fx_signal(f, "config-update", "processor", NULL, "c-done", "ik-done", "{\"ratePerSec\": 6}");
    wk_apply(t.p1, true, NULL, NULL);
    wk_apply(t.p2, true, NULL, NULL);
    fx_step(f, 10 * MS);
    /* Taken in, sent to the worker, not yet acked: then the controller dies. */
    fx_signal(f, "config-update", "processor", "p-2", "c-open", "ik-open", "{\"ratePerSec\": 8}");
    fx_step(f, 10 * MS);
    size_t mark = fx_ndocs(f);
    assert_true(fx_restart_controller(f) > 0);
    /* The adopter asks every worker to report again; their configs are what
     * the swarm wants, so nothing else is sent to them. */
    assert_int_equal(wk_apply(t.p1, true, NULL, NULL), 1);
    assert_int_equal(wk_apply(t.g, true, NULL, NULL), 1);

    /* The swarm is where it was. */
    assert_int_equal(f->sw.status, SW_RUNNING);
    assert_true(f->sw.workloads_enabled);
    /* The open signal was sent again; the worker applies both copies (the
     * first from the dead controller) and the adopter's status-request, and
     * the new controller answers once. */
    assert_int_equal(wk_apply(t.p2, true, NULL, NULL), 3);
    fx_step(f, 10 * MS);
    assert_int_equal(outcomes_for(f, mark, "c-open"), 1);
    assert_string_equal(jstr(fx_first(f, mark, "outcome", NULL, NULL), "data.status"), "applied");
    /* Answered before the restart: a redelivery is ignored... */
    fx_signal(f, "config-update", "processor", NULL, "c-done", "ik-done", "{\"ratePerSec\": 6}");
    /* ...and a retry with the same key is a replay, not applied again. */
    fx_signal(f, "config-update", "processor", NULL, "c-retry", "ik-done", "{\"ratePerSec\": 6}");
    fx_step(f, 10 * MS);
    assert_int_equal(wk_apply(t.p1, true, NULL, NULL), 0);
    assert_int_equal(outcomes_for(f, mark, "c-done"), 0);
    assert_int_equal(outcomes_for(f, mark, "c-retry"), 1);
    /* The desired config survived too: a restarted worker resumes. */
    fx_detach(f, t.p1);
    fx_step(f, 10 * MS);
    json_t *p = join_patch(f, "processor", "p-1", NULL);
    assert_non_null(p);
    assert_true(json_is_true(json_object_get(p, "enabled")));
    assert_int_equal(json_integer_value(json_object_get(p, "ratePerSec")), 6);
    json_decref(p);
    assert_int_equal(f->violations, 0);
}

static void item19_restart_after_rotation_recovers_from_the_checkpoint(void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    start_swarm(f, &t, "start-cp");
    fx_signal(f, "config-update", "processor", NULL, "c-cp-done", "ik-cp", "{\"ratePerSec\": 5}");
    wk_apply(t.p1, true, NULL, NULL);
    wk_apply(t.p2, true, NULL, NULL);
    fx_step(f, 10 * MS);
    fx_signal(f, "config-update", "processor", "p-1", "c-cp-open", "ik-cp-open",
              "{\"ratePerSec\": 6}");
    fx_step(f, 10 * MS);
    /* The journal was rotated: the new file holds only a checkpoint. */
    json_t *cp = swarm_checkpoint_json(&f->sw);
    json_object_set_new(cp, "event", json_string("checkpoint"));
    json_array_clear(f->journal);
    json_array_append_new(f->journal, cp);
    size_t mark = fx_ndocs(f);
    assert_true(fx_restart_controller(f) > 0);
    assert_int_equal(f->sw.status, SW_RUNNING);
    /* the open one, sent again, and the adopter's status-request */
    assert_int_equal(wk_apply(t.p1, true, NULL, NULL), 3);
    assert_int_equal(wk_apply(t.p2, true, NULL, NULL), 1); /* the status-request */
    fx_step(f, 10 * MS);
    assert_int_equal(outcomes_for(f, mark, "c-cp-open"), 1);
    /* Answered before the rotation: still known. */
    fx_signal(f, "config-update", "processor", NULL, "c-cp-done", "ik-cp", "{\"ratePerSec\": 5}");
    fx_signal(f, "config-update", "processor", NULL, "c-cp-retry", "ik-cp", "{\"ratePerSec\": 5}");
    fx_step(f, 10 * MS);
    assert_int_equal(outcomes_for(f, mark, "c-cp-done"), 0);
    assert_int_equal(outcomes_for(f, mark, "c-cp-retry"), 1);
    assert_int_equal(wk_apply(t.p2, true, NULL, NULL), 0);
}

/* The rotation crash window: the controller dies right
 * after a rotation, before the new file holds a whole checkpoint (`current`
 * is what <path> holds then: a checkpoint cut short, nothing, or no file at
 * all). What the old file, now <path>.1, recorded is taken up: the open
 * signal is answered once, the answered ones stay answered. */
static void restart_right_after_a_rotation(struct fx *f, const char *current)
{
    struct fx_three t;
    fx_attach_three(f, &t);
    start_swarm(f, &t, "start-rw");
    fx_signal(f, "config-update", "processor", NULL, "c-rw-done", "ik-rw", "{\"ratePerSec\": 5}");
    wk_apply(t.p1, true, NULL, NULL);
    wk_apply(t.p2, true, NULL, NULL);
    fx_step(f, 10 * MS);
    fx_signal(f, "config-update", "processor", "p-1", "c-rw-open", "ik-rw-open",
              "{\"ratePerSec\": 6}");
    fx_step(f, 10 * MS);
    char path[128], older[160];
    snprintf(path, sizeof path, "/tmp/%s.rotated.jsonl", f->id);
    snprintf(older, sizeof older, "%s.1", path);
    fx_write_journal(f, older);
    unlink(path);
    if (current != NULL) {
        FILE *cf = fopen(path, "w");
        assert_non_null(cf);
        fputs(current, cf);
        fclose(cf);
    }
    size_t mark = fx_ndocs(f);
    assert_true(fx_restart_controller_from(f, path) > 0);
    unlink(path);
    unlink(older);
    assert_int_equal(f->sw.status, SW_RUNNING);
    /* the open one, sent again, and the adopter's status-request */
    assert_int_equal(wk_apply(t.p1, true, NULL, NULL), 3);
    assert_int_equal(wk_apply(t.p2, true, NULL, NULL), 1);
    fx_step(f, 10 * MS);
    assert_int_equal(outcomes_for(f, mark, "c-rw-open"), 1);
    fx_signal(f, "config-update", "processor", NULL, "c-rw-done", "ik-rw", "{\"ratePerSec\": 5}");
    fx_signal(f, "config-update", "processor", NULL, "c-rw-retry", "ik-rw", "{\"ratePerSec\": 5}");
    fx_step(f, 10 * MS);
    assert_int_equal(outcomes_for(f, mark, "c-rw-done"), 0);
    assert_int_equal(outcomes_for(f, mark, "c-rw-retry"), 1);
    assert_int_equal(wk_apply(t.p2, true, NULL, NULL), 0);
    assert_int_equal(f->violations, 0);
}

static void rotation_crash_with_a_checkpoint_cut_short_recovers_from_the_older_file(void **state)
{
    restart_right_after_a_rotation(*state, "{\"ts\":\"2026-01-01T00:00:00.000Z\",\"stateSeq\":9,"
                                           "\"status\":\"RUNNING\",\"idem\":[{\"idem");
}

static void rotation_crash_with_an_empty_new_file_recovers_from_the_older_file(void **state)
{
    restart_right_after_a_rotation(*state, "");
}

static void rotation_crash_between_the_renames_recovers_from_the_older_file(void **state)
{
    restart_right_after_a_rotation(*state, NULL);
}

/* A complete checkpoint at the start of <path> sums up <path>.1: the older
 * file is not needed, and what it says is superseded (here: a signal it
 * shows open was answered before the checkpoint). */
static void a_complete_checkpoint_supersedes_the_older_file(void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    start_swarm(f, &t, "start-sp");
    fx_signal(f, "config-update", "processor", "p-1", "c-sp", "ik-sp", "{\"ratePerSec\": 4}");
    fx_step(f, 10 * MS);
    char path[128], older[160];
    snprintf(path, sizeof path, "/tmp/%s.rotated.jsonl", f->id);
    snprintf(older, sizeof older, "%s.1", path);
    /* <path>.1 as the controller left it with c-sp open. */
    fx_write_journal(f, older);
    wk_apply(t.p1, true, NULL, NULL);
    fx_step(f, 10 * MS);
    fx_step(f, 10 * MS); /* the broker confirmed the outcome */
    size_t mark = fx_ndocs(f);
    /* The outcome went out; the rotation wrote a checkpoint of it. */
    json_t *cp = swarm_checkpoint_json(&f->sw);
    json_object_set_new(cp, "event", json_string("checkpoint"));
    json_array_clear(f->journal);
    json_array_append_new(f->journal, cp);
    fx_write_journal(f, path);
    assert_true(fx_restart_controller_from(f, path) > 0);
    unlink(path);
    unlink(older);
    assert_int_equal(f->sw.status, SW_RUNNING);
    /* Only the adopter's status-request: c-sp is not applied again. */
    assert_int_equal(wk_apply(t.p1, true, NULL, NULL), 1);
    fx_step(f, 10 * MS);
    assert_int_equal(outcomes_for(f, mark, "c-sp"), 0);
    assert_int_equal(f->violations, 0);
}

/* {"blob": [n strings of 100 characters]}: large, within the decoder's
 * per-string limit. */
static char *big_data(int n)
{
    size_t cap = (size_t)n * 104 + 32;
    char *d = malloc(cap);
    assert_non_null(d);
    size_t len = (size_t)snprintf(d, cap, "{\"blob\": [");
    for (int i = 0; i < n; i++) {
        len += (size_t)snprintf(d + len, cap - len, "%s\"", i ? "," : "");
        memset(d + len, 'a' + i % 26, 100);
        len += 100;
        d[len++] = '"';
    }
    snprintf(d + len, cap - len, "]}");
    return d;
}

/* Item 6, continued: a worker restarted while no controller ran must
 * not be taken as already synced by the controller that adopts the segment. */
static void item06_a_worker_restarted_while_no_controller_ran_is_brought_up_to_date(void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    start_swarm(f, &t, "start-z");
    fx_signal(f, "config-update", "processor", NULL, "c-z", NULL, "{\"ratePerSec\": 7}");
    wk_apply(t.p1, true, NULL, NULL);
    wk_apply(t.p2, true, NULL, NULL);
    fx_step(f, 10 * MS);
    /* The controller is gone; p-1 dies and comes back from its file config. */
    fx_detach(f, t.p1);
    ph_worker *p1 = fx_attach(f, "processor", "p-1");
    fx_restart_controller(f);
    /* It reports its config (the status-request the adopter sends), which
     * lacks what the swarm wants: it gets the swarm's config. */
    int type = -1;
    json_t *patch = NULL;
    for (int i = 0; i < 30 && patch == NULL; i++) {
        wk_apply(p1, true, &patch, &type);
        fx_step(f, 100 * MS);
    }
    assert_non_null(patch);
    assert_true(json_is_true(json_object_get(patch, "enabled")));
    assert_int_equal(json_integer_value(json_object_get(patch, "ratePerSec")), 7);
    json_decref(patch);
    /* The generator reports what the swarm wants: left alone. */
    patch = NULL;
    wk_apply(t.g, true, &patch, NULL);
    fx_step(f, 3 * SEC);
    wk_apply(t.g, true, &patch, NULL);
    assert_null(patch);
}

static void item19_large_signal_data_is_journaled_as_size_and_hash(void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    char *data = big_data(1000);
    fx_signal(f, "config-update", "processor", "p-1", "c-big", NULL, data);
    free(data);
    long k = fx_journal_find(f, 0, "signal", NULL, NULL);
    assert_true(k >= 0);
    json_t *e = NULL;
    for (size_t i = 0; i < json_array_size(f->journal); i++) {
        json_t *x = json_array_get(f->journal, i);
        const char *cid = json_string_value(json_object_get(x, "correlationId"));
        const char *ev = json_string_value(json_object_get(x, "event"));
        if (cid && strcmp(cid, "c-big") == 0 && strcmp(ev, "signal") == 0) e = x;
    }
    assert_non_null(e);
    assert_true(json_is_true(jget(e, "data.truncated")));
    assert_true(jint(e, "data.bytes") > 100000);
    assert_int_equal(fx_journal_find(f, 0, "signal", NULL, NULL), k);
    assert_non_null(jstr(e, "data.fnv1a64"));
    assert_false(jbool(e, "dataComplete"));
    char *line = json_dumps(e, JSON_COMPACT);
    assert_true(strlen(line) < 1024);
    free(line);
}

/* Index of the outcome doc for `cid` at or after `mark` and its emitter
 * sequence number; (size_t)-1 when none. */
static size_t outcome_doc(struct fx *f, size_t mark, const char *cid, uint64_t *seq)
{
    for (size_t i = mark; i < fx_ndocs(f); i++) {
        json_t *d = fx_doc(f, i);
        if (strcmp(jstr(d, "kind"), "outcome") != 0 || strcmp(jstr(d, "cid"), cid) != 0) continue;
        if (seq != NULL)
            *seq = (uint64_t)json_integer_value(json_object_get(json_array_get(f->docs, i), "seq"));
        return i;
    }
    return (size_t)-1;
}

/* The controller died between journaling an outcome and handing it to the
 * bridge (or before the broker confirmed it): the next one sends it again,
 * as it was and with its sequence number, and does not apply the signal
 * again. Once confirmed, a further restart sends nothing. */
static void
item03_an_outcome_journaled_but_not_confirmed_is_sent_again_after_a_restart(void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    start_swarm(f, &t, "start-u");
    f->hold_confirms = true;
    fx_signal(f, "config-update", "processor", "p-1", "c-unconf", "ik-unconf",
              "{\"ratePerSec\": 9}");
    assert_int_equal(wk_apply(t.p1, true, NULL, NULL), 1);
    fx_step(f, 10 * MS);
    uint64_t seq = 0, seq2 = 0;
    const size_t first = outcome_doc(f, 0, "c-unconf", &seq);
    assert_true(first != (size_t)-1);
    assert_true(seq > 0);
    json_t *orig = json_deep_copy(fx_doc(f, first));
    /* The journal entry keeps the stamp under its own key: "ts" is the
     * journal line's time (journal.c), which an entry key would replace. */
    const json_t *entry = NULL;
    for (long je = 0; (je = fx_journal_find(f, je, "outcome", NULL, NULL)) >= 0; je++)
        if (strcmp(jstr(json_array_get(f->journal, (size_t)je), "correlationId"), "c-unconf") == 0)
            entry = json_array_get(f->journal, (size_t)je);
    assert_non_null(entry);
    assert_null(json_object_get(entry, "ts"));
    assert_true(json_equal(json_object_get(entry, "madeMs"), json_object_get(orig, "ts")));

    size_t mark = fx_ndocs(f);
    usleep(3000); /* a restamped copy would differ in "ts" */
    assert_true(fx_restart_controller(f) > 0);
    assert_int_equal(outcomes_for(f, mark, "c-unconf"), 1);
    const size_t again = outcome_doc(f, mark, "c-unconf", &seq2);
    assert_int_equal(seq2, seq);
    json_t *resent = fx_doc(f, again);
    /* The same document, its time included: a receiver sees a replay of
     * the message, not a second answer. */
    assert_true(json_is_integer(json_object_get(orig, "ts")));
    assert_true(json_equal(resent, orig));
    assert_string_equal(jstr(resent, "ikey"), "ik-unconf");
    json_decref(orig);
    /* Not applied again: the worker gets the adopter's status-request only. */
    assert_int_equal(wk_apply(t.p1, true, NULL, NULL), 1);
    /* A new outcome follows it in sequence. */
    fx_signal(f, "config-update", "processor", "p-2", "c-next", "ik-next", "{\"ratePerSec\": 3}");
    wk_apply(t.p2, true, NULL, NULL);
    fx_step(f, 10 * MS);
    assert_true(outcome_doc(f, mark, "c-next", &seq2) != (size_t)-1);
    assert_true(seq2 > seq);

    /* The bridge confirms both; the next tick journals it. */
    f->hold_confirms = false;
    fx_step(f, 10 * MS);
    assert_true(fx_journal_find(f, 0, "delivered", NULL, NULL) >= 0);
    mark = fx_ndocs(f);
    assert_true(fx_restart_controller(f) > 0);
    assert_int_equal(fx_count(f, mark, "outcome", NULL, NULL), 0);
    assert_int_equal(f->violations, 0);
}

/* A journal written before outcomes were stamped: the outcome sent again
 * carries no "ts" (the bridge stamps it when it reads it), and the rest of
 * it is as it was. */
static void an_unstamped_outcome_from_an_older_journal_is_sent_again_without_ts(void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    start_swarm(f, &t, "start-o");
    f->hold_confirms = true;
    fx_signal(f, "config-update", "processor", "p-1", "c-old", "ik-old", "{\"ratePerSec\": 4}");
    assert_int_equal(wk_apply(t.p1, true, NULL, NULL), 1);
    fx_step(f, 10 * MS);
    json_t *orig = json_deep_copy(fx_doc(f, outcome_doc(f, 0, "c-old", NULL)));
    for (long je = 0; (je = fx_journal_find(f, je, "outcome", NULL, NULL)) >= 0; je++)
        json_object_del(json_array_get(f->journal, (size_t)je), "madeMs");
    f->unstamped_ok = true;
    const size_t mark = fx_ndocs(f);
    assert_true(fx_restart_controller(f) > 0);
    assert_int_equal(outcomes_for(f, mark, "c-old"), 1);
    json_t *resent = fx_doc(f, outcome_doc(f, mark, "c-old", NULL));
    assert_null(json_object_get(resent, "ts"));
    json_object_del(orig, "ts");
    assert_true(json_equal(resent, orig));
    json_decref(orig);
    assert_int_equal(f->violations, 0);
}

/* A rotation's checkpoint carries the outcomes not yet confirmed. */
static void a_checkpoint_carries_the_outcomes_not_yet_confirmed(void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    start_swarm(f, &t, "start-k");
    fx_step(f, 10 * MS); /* the start's outcome confirmed */
    f->hold_confirms = true;
    fx_signal(f, "config-update", "processor", "p-2", "c-cpu", "ik-cpu", "{\"ratePerSec\": 2}");
    assert_int_equal(wk_apply(t.p2, true, NULL, NULL), 1);
    fx_step(f, 10 * MS);
    json_t *orig = json_deep_copy(fx_doc(f, outcome_doc(f, 0, "c-cpu", NULL)));
    usleep(3000); /* a restamped copy would differ in "ts" */
    json_t *cp = swarm_checkpoint_json(&f->sw);
    assert_int_equal(json_array_size(json_object_get(cp, "undelivered")), 1);
    json_object_set_new(cp, "event", json_string("checkpoint"));
    json_array_clear(f->journal);
    json_array_append_new(f->journal, cp);
    char path[128];
    snprintf(path, sizeof path, "/tmp/%s.cp-undelivered.jsonl", f->id);
    fx_write_journal(f, path);
    const size_t mark = fx_ndocs(f);
    assert_true(fx_restart_controller_from(f, path) > 0);
    unlink(path);
    assert_int_equal(outcomes_for(f, mark, "c-cpu"), 1);
    assert_true(json_equal(fx_doc(f, outcome_doc(f, mark, "c-cpu", NULL)), orig)); /* ts too */
    json_decref(orig);
    assert_int_equal(wk_apply(t.p2, true, NULL, NULL), 1); /* the status-request only */
    assert_int_equal(f->violations, 0);
}

static void
item03_signal_too_large_to_journal_is_answered_failed_retryable_after_restart(void **state)
{
    struct fx *f = *state;
    struct fx_three t;
    fx_attach_three(f, &t);
    char *data = big_data(100);
    fx_signal(f, "config-update", "processor", "p-1", "c-bigopen", "ik-bigopen", data);
    free(data);
    fx_step(f, 10 * MS);
    size_t mark = fx_ndocs(f);
    fx_restart_controller(f);
    assert_int_equal(outcomes_for(f, mark, "c-bigopen"), 1);
    json_t *o = fx_first(f, mark, "outcome", NULL, NULL);
    assert_string_equal(jstr(o, "data.status"), "failed");
    assert_true(jbool(o, "data.retryable"));
    /* The retry, with the same key, is applied for real. */
    wk_drop_commands(t.p1);
    fx_signal(f, "config-update", "processor", "p-1", "c-bigretry", "ik-bigopen",
              "{\"blob\": \"small\"}");
    assert_int_equal(wk_apply(t.p1, true, NULL, NULL), 1);
    fx_step(f, 10 * MS);
    assert_int_equal(outcomes_for(f, mark, "c-bigretry"), 1);
}

/* ---- building blocks ------------------------------------------------------- */

static void cidset_remembers_the_newest_ids_and_forgets_the_oldest(void **state)
{
    (void)state;
    struct ph_cidset s;
    assert_int_equal(ph_cidset_init(&s, 100), 0);
    char id[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof id, "c-%d", i);
        assert_false(ph_cidset_has(&s, id));
        assert_true(ph_cidset_add(&s, id));
        assert_true(ph_cidset_has(&s, id));
        assert_true(ph_cidset_add(&s, id)); /* again: no change */
    }
    assert_int_equal(s.n, 100);
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof id, "c-%d", i);
        assert_int_equal(ph_cidset_has(&s, id), i >= 900);
    }
    ph_cidset_free(&s);
}

static void desired_folds_patches_in_order_and_forgets_overridden_keys(void **state)
{
    (void)state;
    struct desired d;
    desired_init(&d);
    json_t *p;
    p = json_pack("{s:b, s:i}", "enabled", 0, "rate", 1);
    desired_apply(&d, "proc", "p-1", p);
    json_decref(p);
    p = json_pack("{s:i}", "rate", 2);
    desired_apply(&d, "proc", NULL, p);
    json_decref(p);
    p = json_pack("{s:b}", "enabled", 1);
    desired_apply(&d, NULL, NULL, p);
    json_decref(p);
    /* The instance entry lost both keys to broader, later patches. */
    assert_int_equal(d.n, 2);
    json_t *c = desired_for(&d, "proc", "p-1");
    assert_true(json_is_true(json_object_get(c, "enabled")));
    assert_int_equal(json_integer_value(json_object_get(c, "rate")), 2);
    json_decref(c);
    c = desired_for(&d, "gen", "g-1");
    assert_int_equal(json_object_size(c), 1);
    json_decref(c);
    /* Round trip through the journal form. */
    json_t *j = desired_to_json(&d);
    struct desired d2;
    desired_init(&d2);
    assert_int_equal(desired_from_json(&d2, j), 2);
    c = desired_for(&d2, "proc", "p-9");
    assert_int_equal(json_integer_value(json_object_get(c, "rate")), 2);
    json_decref(c);
    json_decref(j);
    desired_clear(&d);
    desired_clear(&d2);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(item01_every_replay_of_an_idempotency_key_is_answered_with_its_status),
        T(item02_fifty_concurrent_attempts_of_one_key_each_get_one_outcome),
        T(item05_redelivered_attempt_is_neither_applied_nor_answered_again),
        T(item06_joining_worker_gets_the_enabled_flag_and_patches_in_force),
        T(item06_a_later_swarm_wide_patch_overrides_an_earlier_instance_one),
        T(item06_joining_worker_refusing_the_swarm_config_raises_an_alert),
        T(item06_a_patch_the_desired_table_has_no_room_for_is_said_aloud),
        T(item06_a_worker_restarted_while_no_controller_ran_is_brought_up_to_date),
        T(item03_restarted_controller_answers_a_signal_its_predecessor_took_in),
        T(item03_an_outcome_journaled_but_not_confirmed_is_sent_again_after_a_restart),
        T(an_unstamped_outcome_from_an_older_journal_is_sent_again_without_ts),
        T(a_checkpoint_carries_the_outcomes_not_yet_confirmed),
        cmocka_unit_test_setup_teardown(
            item03_signal_too_large_to_journal_is_answered_failed_retryable_after_restart,
            fx_setup_big_commands, fx_teardown),
        T(item19_large_signal_data_is_journaled_as_size_and_hash),
        T(item19_restart_after_rotation_recovers_from_the_checkpoint),
        T(rotation_crash_with_a_checkpoint_cut_short_recovers_from_the_older_file),
        T(rotation_crash_with_an_empty_new_file_recovers_from_the_older_file),
        T(rotation_crash_between_the_renames_recovers_from_the_older_file),
        T(a_complete_checkpoint_supersedes_the_older_file),
        cmocka_unit_test(cidset_remembers_the_newest_ids_and_forgets_the_oldest),
        cmocka_unit_test(desired_folds_patches_in_order_and_forgets_overridden_keys),
    };
    return cmocka_run_group_tests_name("swarm controller delivery", tests, NULL, NULL);
}
