/* ph-relay's batches (relay.h) over a real segment with SDK workers: one
 * message per batch for the whole host, only what changed, commands in
 * and acks out with the bridge's tokens, departures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ph/log.h"
#include "ph/shm.h"
#include "ph/worker.h"
#include "relay.h"

struct fx {
    char seg_id[PH_ID_MAX];
    struct ph_segment seg;
    struct ctl ctl;
    struct relay *r;
    json_t *sent[16];
    bool reliable[16];
    char rk[16][128];
    int nsent;
    ph_worker *w1, *w2;
};

static int capture(void *ctx, const char *rk, const char *body, size_t len, bool reliable)
{
    struct fx *f = ctx;
    if (f->nsent == 16) return -1;
    f->sent[f->nsent] = json_loadb(body, len, 0, NULL);
    f->reliable[f->nsent] = reliable;
    snprintf(f->rk[f->nsent], sizeof f->rk[0], "%s", rk);
    f->nsent++;
    return 0;
}

static ph_worker *attach(struct fx *f, const char *inst)
{
    char err[256];
    ph_worker *w = ph_worker_attach(&(struct ph_worker_opts){.swarm_id = f->seg_id,
                                                             .role = "generator",
                                                             .instance = inst,
                                                             .config_json = "{\"ratePerSec\": 5}"},
                                    err, sizeof err);
    assert_non_null(w);
    return w;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    snprintf(f->seg_id, sizeof f->seg_id, "pht-relay-%d", (int)getpid());
    char err[256];
    ph_segment_unlink(f->seg_id, err, sizeof err);
    bool adopted;
    const struct ph_segment_params p = {.slots = 8};
    assert_int_equal(ph_segment_create(&f->seg, f->seg_id, &p, &adopted, err, sizeof err), PH_OK);
    assert_int_equal(ctl_init(&f->ctl, &f->seg, NULL), PH_OK);
    f->ctl.use_pidfd = false;
    const struct relay_cfg cfg = {.swarm = "demo",
                                  .relay_id = "host-b",
                                  .host = "host-b.example",
                                  .publish = capture,
                                  .publish_ctx = f};
    assert_int_equal(relay_open(&f->r, &cfg, &f->ctl, err, sizeof err), PH_OK);
    f->w1 = attach(f, "g1");
    f->w2 = attach(f, "g2");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    ph_worker_detach(f->w1);
    ph_worker_detach(f->w2);
    relay_close(f->r);
    ctl_destroy(&f->ctl);
    for (int i = 0; i < f->nsent; i++) json_decref(f->sent[i]);
    char err[256];
    ph_segment_close(&f->seg);
    ph_segment_unlink(f->seg_id, err, sizeof err);
    free(f);
    return 0;
}

static const json_t *last(const struct fx *f)
{
    assert_true(f->nsent > 0);
    return f->sent[f->nsent - 1];
}

static const json_t *entry(const json_t *batch, const char *key, const char *inst)
{
    size_t i;
    const json_t *e;
    json_array_foreach(json_object_get(batch, key), i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "instance")), inst) == 0) return e;
    }
    return NULL;
}

static void the_first_batch_is_the_full_host_table_in_one_message(void **state)
{
    struct fx *f = *state;
    ctl_scan(&f->ctl, ph_mono_ns());
    assert_int_equal(relay_batch(f->r, ph_mono_ns()), 1);
    assert_int_equal(f->nsent, 1);
    assert_string_equal(f->rk[0], "relay.demo.host-b.up");
    const json_t *b = last(f);
    assert_true(json_is_true(json_object_get(b, "full")));
    assert_string_equal(json_string_value(json_object_get(b, "host")), "host-b.example");
    assert_int_equal(json_array_size(json_object_get(b, "workers")), 2);
    const json_t *g1 = entry(b, "workers", "g1");
    assert_non_null(g1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(g1, "config"), "ratePerSec")),
                     5);
    assert_string_equal(json_string_value(json_object_get(g1, "input")), "unknown");
}

static void later_batches_list_only_what_changed_and_nothing_when_quiet(void **state)
{
    struct fx *f = *state;
    uint64_t now = ph_mono_ns();
    ctl_scan(&f->ctl, now);
    relay_batch(f->r, now);
    /* Quiet: no message before the heartbeat period. */
    assert_int_equal(relay_batch(f->r, now + 1000), 0);
    ph_worker_count(f->w1, 42);
    ph_worker_set_io_state(f->w1, PH_IN_OK, PH_OUT_THROTTLED);
    ph_worker_publish_status(f->w1);
    ctl_scan(&f->ctl, now + 2000);
    assert_int_equal(relay_batch(f->r, now + 3000), 1);
    const json_t *b = last(f);
    assert_false(json_is_true(json_object_get(b, "full")));
    assert_int_equal(json_array_size(json_object_get(b, "workers")), 1);
    const json_t *g1 = entry(b, "workers", "g1");
    assert_non_null(g1);
    assert_int_equal(json_integer_value(json_object_get(g1, "processed")), 42);
    assert_string_equal(json_string_value(json_object_get(g1, "output")), "throttled");
    /* Only a status changed: no config or io in the entry. */
    assert_null(json_object_get(g1, "config"));
    /* The heartbeat: an empty batch once the period passed. */
    assert_int_equal(relay_batch(f->r, now + 3000 + RELAY_HEARTBEAT_NS), 1);
    assert_int_equal(json_array_size(json_object_get(last(f), "workers")), 0);
}

static void a_command_reaches_the_worker_and_its_ack_returns_with_the_bridges_token(void **state)
{
    struct fx *f = *state;
    uint64_t now = ph_mono_ns();
    ctl_scan(&f->ctl, now);
    relay_batch(f->r, now);
    const char *down = "{\"cmds\": [{\"role\": \"generator\", \"instance\": \"g2\", \"token\": 991,"
                       " \"type\": \"config-update\", \"patch\": {\"ratePerSec\": 12}},"
                       " {\"role\": \"generator\", \"instance\": \"nobody\", \"token\": 992,"
                       " \"type\": \"status-request\"}]}";
    assert_int_equal(relay_on_down(f->r, down, strlen(down)), 0);
    struct ph_command cmd;
    assert_int_equal(ph_worker_poll_command(f->w2, &cmd), 1);
    assert_int_equal(cmd.type, PH_COMMAND_CONFIG_PATCH);
    assert_int_equal(json_integer_value(json_object_get(cmd.patch, "ratePerSec")), 12);
    ph_worker_ack(f->w2, cmd.token, true, "applied");
    ctl_scan(&f->ctl, now + 1000);
    assert_int_equal(relay_batch(f->r, now + 2000), 1);
    const json_t *b = last(f);
    assert_true(f->reliable[f->nsent - 1]);
    const json_t *ack = entry(b, "acks", "g2");
    assert_non_null(ack);
    assert_int_equal(json_integer_value(json_object_get(ack, "token")), 991);
    assert_true(json_is_true(json_object_get(ack, "ok")));
    const json_t *nack = entry(b, "acks", "nobody");
    assert_non_null(nack);
    assert_int_equal(json_integer_value(json_object_get(nack, "token")), 992);
    assert_false(json_is_true(json_object_get(nack, "ok")));
    assert_int_equal(relay_on_down(f->r, "not json", 8), -1);
}

static void a_command_left_unanswered_is_acked_failed_after_the_timeout(void **state)
{
    struct fx *f = *state;
    uint64_t now = ph_mono_ns();
    ctl_scan(&f->ctl, now);
    relay_batch(f->r, now);
    const char *down = "{\"cmds\": [{\"role\": \"generator\", \"instance\": \"g1\", \"token\": 77,"
                       " \"type\": \"config-update\", \"patch\": {\"ratePerSec\": 3}}]}";
    assert_int_equal(relay_on_down(f->r, down, strlen(down)), 0);
    /* g1 never polls its commands. */
    ctl_scan(&f->ctl, now + 1000);
    relay_batch(f->r, now + RELAY_HEARTBEAT_NS + 1);
    assert_null(entry(last(f), "acks", "g1"));
    assert_int_equal(relay_batch(f->r, ph_mono_ns() + RELAY_CMD_TIMEOUT_NS + 1), 1);
    const json_t *ack = entry(last(f), "acks", "g1");
    assert_non_null(ack);
    assert_int_equal(json_integer_value(json_object_get(ack, "token")), 77);
    assert_false(json_is_true(json_object_get(ack, "ok")));
}

static void a_worker_that_leaves_is_reported_once(void **state)
{
    struct fx *f = *state;
    uint64_t now = ph_mono_ns();
    ctl_scan(&f->ctl, now);
    relay_batch(f->r, now);
    ph_worker_detach(f->w1);
    f->w1 = NULL;
    ctl_scan(&f->ctl, now + 1000);
    assert_int_equal(relay_batch(f->r, now + 2000), 1);
    const json_t *gone = entry(last(f), "left", "g1");
    assert_non_null(gone);
    assert_false(json_is_true(json_object_get(gone, "dead")));
    assert_int_equal(relay_batch(f->r, now + 3000), 0);
    /* A full asked by the bridge lists who is left. */
    relay_want_full(f->r);
    assert_int_equal(relay_batch(f->r, now + 4000), 1);
    assert_int_equal(json_array_size(json_object_get(last(f), "workers")), 1);
    assert_non_null(entry(last(f), "workers", "g2"));
}

int main(void)
{
    ph_log_init("test_relay", "unit");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(the_first_batch_is_the_full_host_table_in_one_message,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            later_batches_list_only_what_changed_and_nothing_when_quiet, setup, teardown),
        cmocka_unit_test_setup_teardown(
            a_command_reaches_the_worker_and_its_ack_returns_with_the_bridges_token, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            a_command_left_unanswered_is_acked_failed_after_the_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(a_worker_that_leaves_is_reported_once, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
