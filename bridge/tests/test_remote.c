/* Remote workers stood in for in a real segment (bridge/remote.h): what a
 * worker's contract status writes into its proxy slot, how the controller's
 * commands leave as signals and come back as acks, and what is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "contract.h"
#include "ph/log.h"
#include "ph/record.h"
#include "ph/ring.h"
#include "ph/shm.h"
#include "ph/worker.h"
#include "remote.h"

#define S 1000000000ull

struct sent {
    char rk[CONTRACT_RK_MAX];
    json_t *env;
    bool reliable;
};

struct fx {
    char swarm[PH_ID_MAX];
    struct ph_segment seg;
    struct remote *r;
    struct sent sent[32];
    int nsent;
};

static int capture(void *ctx, const char *rk, const char *body, size_t len, bool reliable)
{
    struct fx *f = ctx;
    if (f->nsent == 32) return -1;
    struct sent *s = &f->sent[f->nsent++];
    snprintf(s->rk, sizeof s->rk, "%s", rk);
    s->env = json_loadb(body, len, 0, NULL);
    s->reliable = reliable;
    return 0;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    snprintf(f->swarm, sizeof f->swarm, "pht-remote-%d", (int)getpid());
    const struct ph_segment_params p = {.slots = 8};
    bool adopted;
    char err[256];
    ph_segment_unlink(f->swarm, err, sizeof err);
    assert_int_equal(ph_segment_create(&f->seg, f->swarm, &p, &adopted, err, sizeof err), PH_OK);
    const struct remote_cfg cfg = {.swarm = f->swarm,
                                   .controller_instance = "ctl-1",
                                   .publish = capture,
                                   .publish_ctx = f};
    assert_int_equal(remote_open(&f->r, &cfg, err, sizeof err), PH_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    remote_close(f->r);
    for (int i = 0; i < f->nsent; i++) json_decref(f->sent[i].env);
    char err[256];
    ph_segment_close(&f->seg);
    ph_segment_unlink(f->swarm, err, sizeof err);
    free(f);
    return 0;
}

/* A contract status envelope of worker `inst` (role processor). */
static char *status_env(const struct fx *f, const char *type, const char *inst, bool enabled,
                        int tps, const char *cid)
{
    json_t *data = json_pack("{s:b, s:i, s:{s:{s:s, s:s}}}", "enabled", enabled, "tps", tps,
                             "ioState", "work", "input", "ok", "output", "throttled");
    if (strcmp(type, "status-full") == 0) {
        json_object_set_new(data, "config", json_pack("{s:i}", "ratePerSec", 7));
        json_object_set_new(data, "io", json_object());
        json_object_set_new(data, "startedAt", json_string("2026-12-01T10:00:00.000Z"));
    }
    json_object_set_new(data, "context", json_pack("{s:s}", "location", "host-b"));
    json_t *env = json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s}, s:s?, s:n, s:o}",
                            "timestamp", "2026-12-01T10:00:01.000Z", "version", "1", "kind",
                            "metric", "type", type, "origin", inst, "scope", "swarmId", f->swarm,
                            "role", "processor", "instance", inst, "correlationId", cid,
                            "idempotencyKey", "data", data);
    char *s = json_dumps(env, JSON_COMPACT);
    json_decref(env);
    return s;
}

static int feed(struct fx *f, const char *kind_type, const char *inst, const char *body,
                uint64_t now)
{
    char rk[CONTRACT_RK_MAX];
    snprintf(rk, sizeof rk, "event.%s.%s.processor.%s", kind_type, f->swarm, inst);
    return remote_on_message(f->r, rk, strlen(rk), body, strlen(body), now);
}

static int feed_status(struct fx *f, const char *type, const char *inst, bool enabled, int tps,
                       const char *cid, uint64_t now)
{
    char *b = status_env(f, type, inst, enabled, tps, cid);
    char kt[64];
    snprintf(kt, sizeof kt, "metric.%s", type);
    int rc = feed(f, kt, inst, b, now);
    free(b);
    return rc;
}

/* The slot that holds `inst`, or -1. */
static int slot_of(const struct fx *f, const char *inst)
{
    for (uint32_t i = 0; i < f->seg.slots; i++) {
        struct ph_slot_identity id;
        if (ph_slot_identity_read(ph_segment_slot(&f->seg, i), &id) &&
            ph_slot_state_of(id.state) == PH_SLOT_ACTIVE && strcmp(id.instance, inst) == 0)
            return (int)i;
    }
    return -1;
}

struct drained {
    bool meta;
    struct ph_rec_meta m;
    struct ph_rec_status st;
    int statuses, configs;
    struct ph_rec_ack acks[8];
    int nacks;
};

static int on_rec(void *ctx, uint16_t type, const uint8_t *body, uint32_t len)
{
    struct drained *d = ctx;
    if (type == PH_REC_META) d->meta = ph_rec_meta_decode(body, len, &d->m) == PH_OK;
    if (type == PH_REC_STATUS && ph_rec_status_decode(body, len, &d->st) == PH_OK) d->statuses++;
    if (type == PH_REC_CONFIG) d->configs++;
    if (type == PH_REC_ACK && d->nacks < 8) ph_rec_ack_decode(body, len, &d->acks[d->nacks++]);
    return 0;
}

/* Drains the slot's status ring as the controller would. */
static void drain(struct fx *f, int slot, struct drained *d)
{
    struct ph_slot *s = ph_segment_slot(&f->seg, (uint32_t)slot);
    ph_ring_consumer c;
    assert_int_equal(ph_ring_consumer_init(&c, &s->status, ph_slot_status_data(&f->seg, s),
                                           f->seg.status_ring),
                     PH_OK);
    static uint8_t scratch[1 << 20];
    memset(d, 0, sizeof *d);
    assert_true(ph_ring_drain(&c, on_rec, d, scratch, 1000) >= 0);
}

/* Writes a command into the slot's command ring, as the controller does. */
static void command(struct fx *f, int slot, uint16_t type, uint64_t token, const char *patch)
{
    struct ph_slot *s = ph_segment_slot(&f->seg, (uint32_t)slot);
    ph_ring_producer p;
    assert_int_equal(ph_ring_producer_init(&p, &s->command, ph_slot_command_data(&f->seg, s),
                                           f->seg.command_ring),
                     PH_OK);
    msgpack_sbuffer pb, sb;
    msgpack_sbuffer_init(&pb);
    msgpack_sbuffer_init(&sb);
    if (patch != NULL) {
        /* {enabled: false} or {ratePerSec: 9} */
        msgpack_packer pk;
        msgpack_packer_init(&pk, &pb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        msgpack_pack_str(&pk, strlen(patch));
        msgpack_pack_str_body(&pk, patch, strlen(patch));
        msgpack_pack_int(&pk, 9);
    }
    ph_cmd_encode(&sb, token, patch ? (const uint8_t *)pb.data : NULL, pb.size);
    assert_true(ph_ring_write(&p, type, sb.data, (uint32_t)sb.size));
    msgpack_sbuffer_destroy(&pb);
    msgpack_sbuffer_destroy(&sb);
}

static void a_remote_workers_status_claims_a_proxy_slot_with_its_location_and_transport(void **state)
{
    struct fx *f = *state;
    assert_int_equal(feed_status(f, "status-full", "ext-1", true, 40, NULL, 1 * S), 0);
    int slot = slot_of(f, "ext-1");
    assert_true(slot >= 0);
    struct drained d;
    drain(f, slot, &d);
    assert_true(d.meta);
    assert_string_equal(d.m.location, "host-b");
    assert_string_equal(d.m.transport, "amqp");
    assert_int_equal(d.configs, 1);
    assert_true(d.statuses >= 1);
    assert_true(d.st.flags & PH_STATUS_ENABLED);
    assert_int_equal(d.st.io_out, PH_OUT_THROTTLED);
    /* The rate is integrated into the cumulative count between statuses. */
    assert_int_equal(feed_status(f, "status-delta", "ext-1", true, 40, NULL, 3 * S), 0);
    drain(f, slot, &d);
    assert_int_equal(d.st.processed, 80);
    assert_int_equal(remote_count(f->r), 1);
    /* A nonsense rate is clamped: the count grows, it does not wrap. */
    char *big = status_env(f, "status-delta", "ext-1", true, 0, NULL);
    char *at = strstr(big, "\"tps\":0");
    assert_non_null(at);
    char *huge = NULL;
    assert_true(asprintf(&huge, "%.*s\"tps\":4000000000000000000%s", (int)(at - big), big,
                         at + strlen("\"tps\":0")) > 0);
    assert_int_equal(feed(f, "metric.status-delta", "ext-1", huge, 5 * S), 0);
    free(big);
    free(huge);
    drain(f, slot, &d);
    assert_int_equal(d.st.processed, 80 + 2 * (uint64_t)REMOTE_MAX_TPS);
}

static void a_config_patch_goes_out_as_a_signal_and_the_outcome_acks_it(void **state)
{
    struct fx *f = *state;
    assert_int_equal(feed_status(f, "status-full", "ext-1", true, 0, NULL, 1 * S), 0);
    int slot = slot_of(f, "ext-1");
    struct drained d;
    drain(f, slot, &d);
    command(f, slot, PH_CMD_CONFIG_PATCH, 77, "ratePerSec");
    remote_tick(f->r, 2 * S);
    assert_int_equal(f->nsent, 1);
    const struct sent *s = &f->sent[0];
    char want[CONTRACT_RK_MAX];
    snprintf(want, sizeof want, "signal.config-update.%s.processor.ext-1", f->swarm);
    assert_string_equal(s->rk, want);
    assert_true(s->reliable);
    char why[256];
    assert_int_equal(contract_check_envelope(s->env, why, sizeof why), PH_OK);
    assert_string_equal(json_string_value(json_object_get(s->env, "origin")), "ctl-1");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(s->env, "data"), "ratePerSec")), 9);
    const char *cid = json_string_value(json_object_get(s->env, "correlationId"));
    /* The worker answers. */
    json_t *out = json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s}, s:s, s:s, s:{s:s, s:b}}",
                            "timestamp", "2026-12-01T10:00:02.000Z", "version", "1", "kind",
                            "outcome", "type", "config-update", "origin", "ext-1", "scope",
                            "swarmId", f->swarm, "role", "processor", "instance", "ext-1",
                            "correlationId", cid, "idempotencyKey", cid, "data", "status",
                            "applied", "enabled", 1);
    char *body = json_dumps(out, JSON_COMPACT);
    assert_int_equal(feed(f, "outcome.config-update", "ext-1", body, 2 * S), 0);
    free(body);
    json_decref(out);
    drain(f, slot, &d);
    assert_int_equal(d.nacks, 1);
    assert_int_equal(d.acks[0].token, 77);
    assert_true(d.acks[0].ok);
}

static void a_status_request_is_acked_by_the_workers_status_full_not_by_the_proxy(void **state)
{
    struct fx *f = *state;
    assert_int_equal(feed_status(f, "status-full", "ext-1", true, 0, NULL, 1 * S), 0);
    int slot = slot_of(f, "ext-1");
    struct drained d;
    drain(f, slot, &d);
    command(f, slot, PH_CMD_STATUS_REQUEST, 5, NULL);
    remote_tick(f->r, 2 * S);
    drain(f, slot, &d);
    /* Nothing written for it yet: a silent worker must not look alive. */
    assert_int_equal(d.statuses, 0);
    assert_int_equal(d.nacks, 0);
    assert_int_equal(f->nsent, 1);
    assert_string_equal(json_string_value(json_object_get(f->sent[0].env, "type")),
                        "status-request");
    const char *cid = json_string_value(json_object_get(f->sent[0].env, "correlationId"));
    assert_int_equal(feed_status(f, "status-full", "ext-1", true, 0, cid, 3 * S), 0);
    drain(f, slot, &d);
    assert_int_equal(d.nacks, 1);
    assert_int_equal(d.acks[0].token, 5);
    assert_true(d.acks[0].ok);
}

static void an_unanswered_command_is_acked_failed_after_the_timeout(void **state)
{
    struct fx *f = *state;
    assert_int_equal(feed_status(f, "status-full", "ext-1", true, 0, NULL, 1 * S), 0);
    int slot = slot_of(f, "ext-1");
    struct drained d;
    drain(f, slot, &d);
    command(f, slot, PH_CMD_CONFIG_PATCH, 8, "ratePerSec");
    remote_tick(f->r, 2 * S);
    remote_tick(f->r, 2 * S + REMOTE_CMD_TIMEOUT_NS - 1);
    drain(f, slot, &d);
    assert_int_equal(d.nacks, 0);
    remote_tick(f->r, 2 * S + REMOTE_CMD_TIMEOUT_NS);
    drain(f, slot, &d);
    assert_int_equal(d.nacks, 1);
    assert_false(d.acks[0].ok);
    assert_int_equal(remote_stats(f->r)->timeouts, 1);
}

static void stop_disables_the_worker_and_leaves_the_slot(void **state)
{
    struct fx *f = *state;
    assert_int_equal(feed_status(f, "status-full", "ext-1", true, 0, NULL, 1 * S), 0);
    int slot = slot_of(f, "ext-1");
    struct drained d;
    drain(f, slot, &d);
    command(f, slot, PH_CMD_STOP, 9, NULL);
    remote_tick(f->r, 2 * S);
    assert_int_equal(remote_count(f->r), 0);
    assert_int_equal(f->nsent, 1);
    assert_false(json_is_true(json_object_get(json_object_get(f->sent[0].env, "data"), "enabled")));
    assert_int_equal(slot_of(f, "ext-1"), -1);
    /* Its later heartbeats do not bring it back at once. */
    assert_int_equal(feed_status(f, "status-delta", "ext-1", false, 0, NULL, 3 * S), 0);
    assert_int_equal(slot_of(f, "ext-1"), -1);
}

static void a_local_workers_own_status_is_left_to_the_controller(void **state)
{
    struct fx *f = *state;
    char err[256];
    ph_worker *w = ph_worker_attach(
        &(struct ph_worker_opts){.swarm_id = f->swarm, .role = "processor", .instance = "loc-1"},
        err, sizeof err);
    assert_non_null(w);
    assert_int_equal(feed_status(f, "status-delta", "loc-1", true, 0, NULL, 1 * S), 0);
    assert_int_equal(remote_count(f->r), 0);
    assert_int_equal(remote_stats(f->r)->local_skipped, 1);
    /* Within the recheck period its messages are not even parsed. */
    assert_int_equal(feed(f, "metric.status-delta", "loc-1", "not json", 2 * S), 0);
    ph_worker_detach(w);
    /* A status the bridge itself published for a worker is known before
     * its echo arrives: no claim is even tried. */
    remote_note_local(f->r, "processor", "loc-2", 3 * S);
    assert_int_equal(feed(f, "metric.status-delta", "loc-2", "not json", 4 * S), 0);
    assert_int_equal(remote_stats(f->r)->local_skipped, 1);
    assert_int_equal(remote_count(f->r), 0);
}

static void invalid_messages_are_refused_and_nothing_is_claimed(void **state)
{
    struct fx *f = *state;
    assert_int_equal(feed(f, "metric.status-delta", "ext-2", "not json", 1 * S), -1);
    /* scope naming another worker than the routing key */
    char *b = status_env(f, "status-delta", "ext-3", true, 0, NULL);
    assert_int_equal(feed(f, "metric.status-delta", "ext-2", b, 1 * S), -1);
    free(b);
    /* a delta carrying config breaks the contract */
    char *full = status_env(f, "status-full", "ext-2", true, 0, NULL);
    json_t *env = json_loads(full, 0, NULL);
    free(full);
    json_object_set_new(env, "type", json_string("status-delta"));
    char *d = json_dumps(env, JSON_COMPACT);
    assert_int_equal(feed(f, "metric.status-delta", "ext-2", d, 1 * S), -1);
    free(d);
    json_decref(env);
    assert_int_equal(slot_of(f, "ext-2"), -1);
    assert_int_equal(remote_count(f->r), 0);
    /* the controller's own status and other swarms are not ours */
    const char *rk = "event.metric.status-delta.other.processor.x";
    assert_int_equal(remote_on_message(f->r, rk, strlen(rk), "{}", 2, 1 * S), 0);
}

static void a_silent_worker_leaves_its_slot_after_the_forget_period(void **state)
{
    struct fx *f = *state;
    assert_int_equal(feed_status(f, "status-full", "ext-1", true, 0, NULL, 1 * S), 0);
    remote_tick(f->r, 1 * S + REMOTE_FORGET_NS);
    assert_int_equal(remote_count(f->r), 1);
    remote_tick(f->r, 1 * S + REMOTE_FORGET_NS + 1);
    assert_int_equal(remote_count(f->r), 0);
    assert_int_equal(slot_of(f, "ext-1"), -1);
    /* and comes back with its next status */
    assert_int_equal(feed_status(f, "status-delta", "ext-1", true, 0, NULL, 100 * S), 0);
    assert_int_equal(remote_count(f->r), 1);
}


/* relay.<swarm>.r1.up with the given JSON body. */
static int feed_relay(struct fx *f, const char *body, uint64_t now)
{
    char rk[CONTRACT_RK_MAX];
    snprintf(rk, sizeof rk, "relay.%s.r1.up", f->swarm);
    return remote_on_message(f->r, rk, strlen(rk), body, strlen(body), now);
}

static char *relay_batch_json(bool full, const char *workers, const char *left, const char *acks)
{
    char *s = NULL;
    if (asprintf(&s,
                 "{\"relay\": \"r1\", \"host\": \"host-r\", \"seq\": 1, \"full\": %s, "
                 "\"workers\": [%s], \"left\": [%s], \"acks\": [%s], \"alerts\": []}",
                 full ? "true" : "false", workers, left, acks) < 0)
        return NULL;
    return s;
}

#define RW(inst, processed)                                                                    \
    "{\"role\": \"generator\", \"instance\": \"" inst "\", \"enabled\": true, \"input\": "    \
    "\"ok\", \"output\": \"ok\", \"processed\": " #processed ", \"errors\": 0}"

static void a_relay_batch_stands_in_for_each_of_its_workers_with_transport_relay(void **state)
{
    struct fx *f = *state;
    char *b = relay_batch_json(true, RW("h1", 100) "," RW("h2", 5), "", "");
    assert_int_equal(feed_relay(f, b, 1 * S), 0);
    free(b);
    assert_int_equal(remote_count(f->r), 2);
    int slot = slot_of(f, "h1");
    assert_true(slot >= 0);
    struct drained d;
    drain(f, slot, &d);
    assert_true(d.meta);
    assert_string_equal(d.m.transport, "relay");
    assert_string_equal(d.m.location, "host-r");
    /* The first count is the baseline: the proxy adds only the growth. */
    assert_int_equal(d.st.processed, 0);
    b = relay_batch_json(false, RW("h1", 130), "", "");
    assert_int_equal(feed_relay(f, b, 2 * S), 0);
    free(b);
    drain(f, slot, &d);
    assert_int_equal(d.st.processed, 30);
    /* One leaves; a later full table without h2 drops it too. */
    b = relay_batch_json(false, "", "{\"role\": \"generator\", \"instance\": \"h1\", \"dead\": true}", "");
    assert_int_equal(feed_relay(f, b, 3 * S), 0);
    free(b);
    assert_int_equal(slot_of(f, "h1"), -1);
    b = relay_batch_json(true, "", "", "");
    assert_int_equal(feed_relay(f, b, 4 * S), 0);
    free(b);
    assert_int_equal(remote_count(f->r), 0);
    /* Nothing goes back to a relay that sent its full table. */
    assert_int_equal(f->nsent, 0);
}

static void a_command_for_a_relayed_worker_goes_to_its_relay_and_the_ack_comes_back(void **state)
{
    struct fx *f = *state;
    /* A bridge that first hears a relay mid-stream asks for its full table. */
    char *b = relay_batch_json(false, RW("h1", 1), "", "");
    assert_int_equal(feed_relay(f, b, 1 * S), 0);
    free(b);
    assert_int_equal(f->nsent, 1);
    char want[CONTRACT_RK_MAX];
    snprintf(want, sizeof want, "relay.%s.r1.down", f->swarm);
    assert_string_equal(f->sent[0].rk, want);
    assert_true(json_is_true(json_object_get(f->sent[0].env, "full")));
    int slot = slot_of(f, "h1");
    struct drained d;
    drain(f, slot, &d);
    command(f, slot, PH_CMD_CONFIG_PATCH, 4242, "ratePerSec");
    remote_tick(f->r, 2 * S);
    assert_int_equal(f->nsent, 2);
    assert_string_equal(f->sent[1].rk, want);
    const json_t *c = json_array_get(json_object_get(f->sent[1].env, "cmds"), 0);
    assert_string_equal(json_string_value(json_object_get(c, "instance")), "h1");
    assert_string_equal(json_string_value(json_object_get(c, "type")), "config-update");
    assert_int_equal(json_integer_value(json_object_get(c, "token")), 4242);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(c, "patch"), "ratePerSec")),
                     9);
    b = relay_batch_json(false, "", "",
                         "{\"role\": \"generator\", \"instance\": \"h1\", \"token\": 4242, "
                         "\"ok\": true, \"message\": \"applied\"}");
    assert_int_equal(feed_relay(f, b, 3 * S), 0);
    free(b);
    drain(f, slot, &d);
    assert_int_equal(d.nacks, 1);
    assert_int_equal(d.acks[0].token, 4242);
    assert_true(d.acks[0].ok);
    /* Not a relay message: refused, nothing changes. */
    assert_int_equal(feed_relay(f, "{\"relay\": \"other\"}", 4 * S), -1);
    assert_int_equal(remote_count(f->r), 1);
}

int main(void)
{
    ph_log_init("test_bridge_remote", "unit");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            a_remote_workers_status_claims_a_proxy_slot_with_its_location_and_transport, setup,
            teardown),
        cmocka_unit_test_setup_teardown(a_config_patch_goes_out_as_a_signal_and_the_outcome_acks_it,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            a_status_request_is_acked_by_the_workers_status_full_not_by_the_proxy, setup,
            teardown),
        cmocka_unit_test_setup_teardown(an_unanswered_command_is_acked_failed_after_the_timeout,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(stop_disables_the_worker_and_leaves_the_slot, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_local_workers_own_status_is_left_to_the_controller,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(invalid_messages_are_refused_and_nothing_is_claimed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_silent_worker_leaves_its_slot_after_the_forget_period,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            a_relay_batch_stands_in_for_each_of_its_workers_with_transport_relay, setup, teardown),
        cmocka_unit_test_setup_teardown(
            a_command_for_a_relayed_worker_goes_to_its_relay_and_the_ack_comes_back, setup,
            teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
