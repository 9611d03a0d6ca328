/* Unit tests of the worker SDK (shm/worker.c). The test process is both the
 * worker (through the SDK) and the controller: it creates the segment, reads
 * the worker's status ring with ph_ring_consumer and writes commands into the
 * worker's command ring with ph_ring_producer, as ph-swarm-controller does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ph/mpjson.h"
#include "ph/shm.h"
#include "ph/worker.h"

/* ---- fixtures ----------------------------------------------------------- */

#define MAX_IDS 64
static char ids[MAX_IDS][PH_ID_MAX];
static int n_ids;

static const char *new_id(void)
{
    assert_true(n_ids < MAX_IDS);
    snprintf(ids[n_ids], sizeof ids[n_ids], "pht-ut-wk-%d-%d", (int)getpid(), n_ids);
    return ids[n_ids++];
}

static int remove_all(void **state)
{
    (void)state;
    char err[256];
    for (int i = 0; i < n_ids; i++)
        ph_segment_unlink(ids[i], err, sizeof err);
    return 0;
}

/* Records drained from a status ring, in order. */
#define RECS_MAX 1024
#define BODY_MAX 4096
struct rec {
    uint16_t type;
    uint32_t len;
    uint8_t body[BODY_MAX];
};
struct recs {
    int n;
    struct rec r[RECS_MAX];
};

static int collect(void *ctx, uint16_t type, const uint8_t *body, uint32_t len)
{
    struct recs *rs = ctx;
    assert_true(rs->n < RECS_MAX);
    assert_true(len <= BODY_MAX);
    struct rec *r = &rs->r[rs->n++];
    r->type = type;
    r->len = len;
    memcpy(r->body, body, len);
    return 0;
}

/* The controller's side of one slot. */
struct ctl {
    const char *id;
    struct ph_segment seg;
    struct ph_slot *slot;
    ph_ring_consumer status;
    ph_ring_producer cmd;
    uint8_t scratch[1u << 14];
    struct recs *recs;
};

static struct ctl *ctl_new(uint32_t status_ring)
{
    struct ctl *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->recs = calloc(1, sizeof *c->recs);
    assert_non_null(c->recs);
    c->id = new_id();
    char err[256];
    bool adopted;
    struct ph_segment_params p = {.slots = 4, .status_ring = status_ring};
    if (ph_segment_create(&c->seg, c->id, &p, &adopted, err, sizeof err) != PH_OK)
        fail_msg("create: %s", err);
    return c;
}

static void ctl_free(struct ctl *c)
{
    ph_segment_close(&c->seg);
    free(c->recs);
    free(c);
}

/* Starts consuming the worker's slot (the controller does this once it sees
 * the slot ACTIVE). */
static void ctl_watch(struct ctl *c, const ph_worker *w)
{
    uint32_t idx = ph_worker_slot(w);
    assert_true(idx < c->seg.slots);
    c->slot = ph_segment_slot(&c->seg, idx);
    assert_int_equal(ph_slot_state_of(atomic_load(&c->slot->state)), PH_SLOT_ACTIVE);
    assert_int_equal(ph_ring_consumer_init(&c->status, &c->slot->status,
                                           ph_slot_status_data(&c->seg, c->slot),
                                           c->seg.status_ring),
                     PH_OK);
    assert_int_equal(ph_ring_producer_init(&c->cmd, &c->slot->command,
                                           ph_slot_command_data(&c->seg, c->slot),
                                           c->seg.command_ring),
                     PH_OK);
}

/* Drains into a fresh c->recs; returns the number of records. */
static int ctl_drain(struct ctl *c, uint32_t max)
{
    c->recs->n = 0;
    int n = ph_ring_drain(&c->status, collect, c->recs, c->scratch, max);
    assert_true(n >= 0);
    assert_int_equal(n, c->recs->n);
    return n;
}

static ph_worker *attach(struct ctl *c, const char *role, const char *inst, const char *config,
                         uint32_t heartbeat_ms)
{
    char err[256];
    ph_worker *w = ph_worker_attach(&(struct ph_worker_opts){.swarm_id = c->id,
                                                             .role = role,
                                                             .instance = inst,
                                                             .config_json = config,
                                                             .heartbeat_ms = heartbeat_ms},
                                    err, sizeof err);
    if (w == NULL) fail_msg("attach %s/%s: %s", role, inst, err);
    ctl_watch(c, w);
    return w;
}

static struct ph_rec_status status_of(const struct rec *r)
{
    assert_int_equal(r->type, PH_REC_STATUS);
    struct ph_rec_status s;
    assert_int_equal(ph_rec_status_decode(r->body, r->len, &s), PH_OK);
    return s;
}

static json_t *json_of(const struct rec *r)
{
    char err[128];
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    msgpack_object o;
    assert_int_equal(ph_mp_decode(r->body, r->len, true, &zone, &o, err, sizeof err), PH_OK);
    json_t *j = ph_mp_to_json(&o);
    assert_non_null(j);
    msgpack_zone_destroy(&zone);
    return j;
}

static void assert_json(json_t *got, const char *want_text)
{
    json_error_t je;
    json_t *want = json_loads(want_text, 0, &je);
    assert_non_null(want);
    if (!json_equal(got, want)) {
        char *s = json_dumps(got, JSON_SORT_KEYS);
        fail_msg("got %s, want %s", s, want_text);
    }
    json_decref(want);
    json_decref(got);
}

/* Controller -> worker: one command record. */
static void send_cmd(struct ctl *c, uint16_t type, uint64_t token, const char *patch_json)
{
    msgpack_sbuffer patch, body;
    msgpack_sbuffer_init(&patch);
    msgpack_sbuffer_init(&body);
    if (patch_json != NULL) {
        json_error_t je;
        json_t *p = json_loads(patch_json, 0, &je);
        assert_non_null(p);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &patch, msgpack_sbuffer_write);
        assert_int_equal(ph_json_pack(&pk, p, false), 0);
        json_decref(p);
    }
    assert_int_equal(
        ph_cmd_encode(&body, token, patch_json ? (const uint8_t *)patch.data : NULL, patch.size),
        PH_OK);
    assert_true(ph_ring_write(&c->cmd, type, body.data, (uint32_t)body.size));
    msgpack_sbuffer_destroy(&patch);
    msgpack_sbuffer_destroy(&body);
}

static void send_raw(struct ctl *c, uint16_t type, const void *body, uint32_t len)
{
    assert_true(ph_ring_write(&c->cmd, type, body, len));
}

/* Ticks once the coarse clock has moved on: records that wait for room are
 * looked after at most once per coarse-clock tick. */
static void tick_later(ph_worker *w)
{
    const uint64_t t = ph_mono_coarse_ns();
    struct timespec ts = {0, 500 * 1000L};
    while (ph_mono_coarse_ns() == t) nanosleep(&ts, NULL);
    ph_worker_tick(w);
}

static uint64_t ms_since(uint64_t t0)
{
    return (ph_mono_ns() - t0) / 1000000u;
}

/* ---- attach, status, config -------------------------------------------- */

static void worker_attach_publishes_config_without_secrets_then_status(void **state)
{
    (void)state;
    struct ctl *c = ctl_new(0);
    ph_worker *w = attach(c, "generator", "gen-1",
                          "{\"ratePerSec\": 10, \"password\": \"hunter2\","
                          " \"db\": {\"apiKey\": \"k-hunter3\", \"host\": \"h\"}}",
                          0);
    /* The slot names the worker. */
    struct ph_slot_identity ident;
    assert_true(ph_slot_identity_read(c->slot, &ident));
    assert_string_equal(ident.role, "generator");
    assert_string_equal(ident.instance, "gen-1");
    assert_int_equal(ident.pid, getpid());
    uint64_t st;
    assert_int_equal(ph_proc_start_time((int32_t)getpid(), &st), PH_OK);
    assert_int_equal(ident.start_time, st);

    assert_int_equal(ctl_drain(c, 0), 2);
    assert_int_equal(c->recs->r[0].type, PH_REC_CONFIG);
    assert_json(json_of(&c->recs->r[0]), "{\"ratePerSec\": 10, \"db\": {\"host\": \"h\"}}");
    struct ph_rec_status s = status_of(&c->recs->r[1]);
    assert_int_equal(s.seq, 1);
    assert_int_equal(s.processed, 0);
    assert_int_equal(s.errors, 0);
    assert_int_equal(s.flags, 0);
    assert_int_equal(s.io_in, PH_IN_UNKNOWN);
    assert_int_equal(s.io_out, PH_OUT_UNKNOWN);
    assert_true(s.mono_ns > 0);
    /* No byte of the segment holds a secret value. */
    assert_null(memmem(c->seg.base, c->seg.size, "hunter2", 7));
    assert_null(memmem(c->seg.base, c->seg.size, "hunter3", 7));
    ph_worker_detach(w);
    ctl_free(c);
}

static void worker_tick_publishes_counts_enabled_and_io_state(void **state)
{
    (void)state;
    struct ctl *c = ctl_new(0);
    /* A long heartbeat: only state changes publish in this test. */
    ph_worker *w = attach(c, "processor", "proc-1", NULL, 600000);
    assert_int_equal(ctl_drain(c, 0), 1);

    ph_worker_count(w, 5);
    ph_worker_count(w, 2);
    ph_worker_count_errors(w, 1);
    /* Counting alone writes nothing to the segment. */
    assert_int_equal(ctl_drain(c, 0), 0);
    assert_int_equal(atomic_load(&c->slot->w_processed), 0);
    assert_int_equal(ph_worker_processed(w), 7);

    ph_worker_set_enabled(w, true);
    ph_worker_set_io_state(w, PH_IN_OUT_OF_DATA, PH_OUT_THROTTLED);
    assert_true(ph_worker_enabled(w));
    assert_int_equal(ctl_drain(c, 0), 0);
    ph_worker_tick(w);
    assert_int_equal(ctl_drain(c, 0), 1);
    struct ph_rec_status s = status_of(&c->recs->r[0]);
    assert_int_equal(s.seq, 2);
    assert_int_equal(s.processed, 7);
    assert_int_equal(s.errors, 1);
    assert_int_equal(s.flags, PH_STATUS_ENABLED);
    assert_int_equal(s.io_in, PH_IN_OUT_OF_DATA);
    assert_int_equal(s.io_out, PH_OUT_THROTTLED);
    /* The mirror for tools says the same. */
    assert_int_equal(atomic_load(&c->slot->w_processed), 7);
    assert_int_equal(atomic_load(&c->slot->w_errors), 1);
    assert_int_equal(atomic_load(&c->slot->w_state),
                     ph_w_state_pack(1, PH_IN_OUT_OF_DATA, PH_OUT_THROTTLED));

    /* Nothing changed, heartbeat not due: no record. */
    ph_worker_tick(w);
    ph_worker_set_enabled(w, true);
    ph_worker_set_io_state(w, PH_IN_OUT_OF_DATA, PH_OUT_THROTTLED);
    ph_worker_count(w, 1); /* counts alone wait for the heartbeat */
    ph_worker_tick(w);
    assert_int_equal(ctl_drain(c, 0), 0);

    /* Disabling is a change; out-of-range io values are published as unknown. */
    ph_worker_set_enabled(w, false);
    ph_worker_tick(w);
    assert_int_equal(ctl_drain(c, 0), 1);
    s = status_of(&c->recs->r[0]);
    assert_int_equal(s.flags, 0);
    assert_int_equal(s.processed, 8);
    ph_worker_set_io_state(w, (enum ph_io_in)9, (enum ph_io_out)200);
    ph_worker_tick(w);
    assert_int_equal(ctl_drain(c, 0), 1);
    s = status_of(&c->recs->r[0]);
    assert_int_equal(s.io_in, PH_IN_UNKNOWN);
    assert_int_equal(s.io_out, PH_OUT_UNKNOWN);
    assert_int_equal(s.seq, 4);
    ph_worker_detach(w);
    ctl_free(c);
}

static void worker_tick_publishes_heartbeat_when_due(void **state)
{
    (void)state;
    struct ctl *c = ctl_new(0);
    ph_worker *w = attach(c, "processor", "proc-1", NULL, 1);
    assert_int_equal(ctl_drain(c, 0), 1);
    ph_worker_count(w, 3);
    /* Well past the 1 ms heartbeat even on the coarse clock. */
    struct timespec ts = {0, 60 * 1000000L};
    nanosleep(&ts, NULL);
    ph_worker_tick(w);
    assert_int_equal(ctl_drain(c, 0), 1);
    assert_int_equal(status_of(&c->recs->r[0]).processed, 3);
    ph_worker_detach(w);
    ctl_free(c);
}

static void worker_full_status_ring_counts_overflows_and_never_blocks(void **state)
{
    (void)state;
    struct ctl *c = ctl_new(0);
    ph_worker *w = attach(c, "generator", "gen-1", "{\"v\": 1}", 600000);
    const int attempts = 1000;
    int ok = 0;
    for (int i = 0; i < attempts; i++) {
        ph_worker_count(w, 1);
        if (ph_worker_publish_status(w)) ok++;
    }
    assert_true(ok > 0 && ok < attempts);
    assert_int_equal(ph_worker_overflows(w), attempts - ok);
    assert_int_equal(atomic_load(&c->slot->status.overflows), attempts - ok);
    assert_true(ph_ring_used(&c->slot->status, c->seg.status_ring) >
                c->seg.status_ring - (8 + PH_REC_STATUS_SIZE));

    /* While full: state changes, a new config and a tick are all dropped or
     * deferred, never waited for. */
    ph_worker_count(w, 500);
    ph_worker_set_enabled(w, true);
    ph_worker_set_io_state(w, PH_IN_BACKPRESSURE, PH_OUT_BLOCKED);
    /* Larger than a status record, so it cannot slip into the last bytes. */
    json_t *cfg = json_pack("{s:i, s:s, s:s}", "v", 2, "token", "secret-value", "pad",
                            "0123456789012345678901234567890123456789");
    assert_int_equal(ph_worker_publish_config(w, cfg), PH_OK);
    json_decref(cfg);
    ph_worker_tick(w);
    /* Only a dropped record counts: the config waits for room (it is not
     * lost, so neither its first try nor the tick's retry counts), and so
     * does the status change: the last failed publish above counted it
     * once, the tick only looks for room. */
    assert_int_equal(ph_worker_overflows(w), attempts - ok);
    assert_int_equal(atomic_load(&c->slot->status.overflows), attempts - ok);

    /* Everything that got in is intact and in order: config, then statuses
     * with consecutive seq and increasing processed. */
    int n = ctl_drain(c, 0);
    assert_int_equal(n, 2 + ok);
    assert_int_equal(c->recs->r[0].type, PH_REC_CONFIG);
    for (int i = 1; i < n; i++) {
        struct ph_rec_status s = status_of(&c->recs->r[i]);
        assert_int_equal(s.seq, (uint32_t)i);
        assert_int_equal(s.processed, (uint64_t)(i - 1));
    }
    assert_int_equal(atomic_load(&c->slot->status.published), (uint64_t)n);

    /* Space again: the next tick restores the latest absolute state, and the
     * config published while full is delivered first. */
    tick_later(w);
    assert_int_equal(ctl_drain(c, 0), 2);
    assert_int_equal(c->recs->r[0].type, PH_REC_CONFIG);
    assert_json(json_of(&c->recs->r[0]),
                "{\"v\": 2, \"pad\": \"0123456789012345678901234567890123456789\"}");
    struct ph_rec_status s = status_of(&c->recs->r[1]);
    assert_int_equal(s.processed, (uint64_t)attempts + 500);
    assert_int_equal(s.flags, PH_STATUS_ENABLED);
    assert_int_equal(s.io_in, PH_IN_BACKPRESSURE);
    assert_int_equal(s.io_out, PH_OUT_BLOCKED);
    assert_int_equal(s.seq, (uint32_t)ok + 2);
    /* Delivered once: the next tick has nothing to send. */
    tick_later(w);
    assert_int_equal(ctl_drain(c, 0), 0);
    ph_worker_detach(w);
    ctl_free(c);
}

/* Item 16: a status change that finds the ring full is one overflow, not
 * one per tick. It waits; ticks look for room (without counting) at most
 * once per coarse-clock tick, and the change is written once there is room.
 * Here nothing drains while 100,000 ticks go by. */
static void item16_a_waiting_status_change_counts_one_overflow(void **state)
{
    (void)state;
    struct ctl *c = ctl_new(0);
    ph_worker *w = attach(c, "processor", "proc-1", NULL, 600000); /* no heartbeat due */
    /* Fill the ring with status records without dropping any: no consumer,
     * so the tail only grows and nothing wraps. */
    const uint64_t rec = (8 + PH_REC_STATUS_SIZE + 7) & ~7ull;
    while (c->seg.status_ring - ph_ring_used(&c->slot->status, c->seg.status_ring) >= rec)
        assert_true(ph_worker_publish_status(w));
    assert_int_equal(ph_worker_overflows(w), 0);

    ph_worker_set_enabled(w, true);
    for (int i = 0; i < 100000; i++) ph_worker_tick(w);
    const uint64_t overflows = ph_worker_overflows(w);
    if (overflows > 1)
        fail_msg("%llu overflows for one waiting change", (unsigned long long)overflows);

    /* The consumer drains: the change arrives, once. */
    const int old = ctl_drain(c, 0);
    assert_true(old > 0);
    for (int i = 0; i < old; i++) assert_int_equal(status_of(&c->recs->r[i]).flags, 0);
    int enabled = 0;
    for (int round = 0; round < 10000 && enabled == 0; round++) {
        tick_later(w);
        const int n = ctl_drain(c, 0);
        for (int i = 0; i < n; i++) enabled += status_of(&c->recs->r[i]).flags == PH_STATUS_ENABLED;
    }
    assert_int_equal(enabled, 1);
    tick_later(w);
    assert_int_equal(ctl_drain(c, 0), 0);
    assert_int_equal(ph_worker_overflows(w), overflows);
    ph_worker_detach(w);
    ctl_free(c);
}

/* While a status waits for room, the mirror for tools still follows the
 * worker at its heartbeat: a stalled controller does not freeze the
 * figures phctl shm-dump shows. */
static void a_full_status_ring_keeps_the_mirror_current(void **state)
{
    (void)state;
    struct ctl *c = ctl_new(0);
    ph_worker *w = attach(c, "processor", "proc-1", NULL, 1); /* heartbeat every ms */
    const uint64_t rec = (8 + PH_REC_STATUS_SIZE + 7) & ~7ull;
    while (c->seg.status_ring - ph_ring_used(&c->slot->status, c->seg.status_ring) >= rec)
        assert_true(ph_worker_publish_status(w));
    ph_worker_count(w, 5);
    assert_false(ph_worker_publish_status(w)); /* waits: the ring is full */
    assert_int_equal(atomic_load(&c->slot->w_processed), 5);
    const uint64_t hb = atomic_load(&c->slot->w_heartbeat_ns);
    ph_worker_count(w, 37);
    struct timespec ts = {0, 2 * 1000000L};
    nanosleep(&ts, NULL);
    tick_later(w);
    assert_int_equal(atomic_load(&c->slot->w_processed), 42);
    assert_true(atomic_load(&c->slot->w_heartbeat_ns) > hb);
    ph_worker_detach(w);
    ctl_free(c);
}

static void worker_publish_config_refuses_non_object_and_oversized(void **state)
{
    (void)state;
    struct ctl *c = ctl_new(0);
    ph_worker *w = attach(c, "generator", "gen-1", NULL, 600000);
    assert_int_equal(ctl_drain(c, 0), 1);
    json_t *arr = json_array();
    assert_int_equal(ph_worker_publish_config(w, arr), PH_ERR_INVAL);
    json_decref(arr);
    /* Larger than a record of this ring can be. */
    char *big = malloc(c->seg.status_ring);
    memset(big, 'x', c->seg.status_ring - 1);
    big[c->seg.status_ring - 1] = '\0';
    json_t *cfg = json_pack("{s:s}", "blob", big);
    assert_int_equal(ph_worker_publish_config(w, cfg), PH_ERR_INVAL);
    json_decref(cfg);
    free(big);
    ph_worker_tick(w);
    assert_int_equal(ctl_drain(c, 0), 0);
    ph_worker_detach(w);
    ctl_free(c);
}

static void worker_publish_io_and_alert_records(void **state)
{
    (void)state;
    struct ctl *c = ctl_new(0);
    ph_worker *w = attach(c, "moderator", "mod-1", NULL, 600000);
    assert_int_equal(ctl_drain(c, 0), 1);
    json_t *io =
        json_pack("{s:{s:{s:[s], s:[s]}}}", "work", "queues", "in", "ph.gen", "out", "ph.mod");
    assert_int_equal(ph_worker_publish_io(w, io), PH_OK);
    json_decref(io);
    assert_true(ph_worker_alert(w, "warn", "io.out-of-data", "dataset exhausted"));
    assert_false(ph_worker_alert(w, "fatal", "x", "bad level"));
    assert_int_equal(ctl_drain(c, 0), 2);
    assert_int_equal(c->recs->r[0].type, PH_REC_IO);
    assert_json(json_of(&c->recs->r[0]),
                "{\"work\": {\"queues\": {\"in\": [\"ph.gen\"], \"out\": [\"ph.mod\"]}}}");
    assert_int_equal(c->recs->r[1].type, PH_REC_ALERT);
    struct ph_rec_alert a;
    assert_int_equal(ph_rec_alert_decode(c->recs->r[1].body, c->recs->r[1].len, &a), PH_OK);
    assert_string_equal(a.level, "warn");
    assert_string_equal(a.code, "io.out-of-data");
    assert_string_equal(a.message, "dataset exhausted");
    ph_worker_detach(w);
    ctl_free(c);
}

/* ---- commands ------------------------------------------------------------ */

static void worker_polls_config_patch_status_request_and_stop(void **state)
{
    (void)state;
    struct ctl *c = ctl_new(0);
    ph_worker *w = attach(c, "processor", "proc-1", "{\"ratePerSec\": 1}", 600000);
    assert_int_equal(ctl_drain(c, 0), 2);
    struct ph_command cmd;
    assert_int_equal(ph_worker_poll_command(w, &cmd), 0);

    send_cmd(c, PH_CMD_CONFIG_PATCH, 11, "{\"ratePerSec\": 50, \"nested\": {\"a\": [1, \"b\"]}}");
    send_cmd(c, PH_CMD_STATUS_REQUEST, 12, NULL);
    send_cmd(c, PH_CMD_STOP, 13, NULL);

    assert_int_equal(ph_worker_poll_command(w, &cmd), 1);
    assert_int_equal(cmd.type, PH_COMMAND_CONFIG_PATCH);
    assert_int_equal(cmd.token, 11);
    assert_non_null(cmd.patch);
    assert_json(json_incref(cmd.patch), "{\"ratePerSec\": 50, \"nested\": {\"a\": [1, \"b\"]}}");
    /* Polling a command publishes nothing by itself. */
    assert_int_equal(ctl_drain(c, 0), 0);
    assert_true(ph_worker_ack(w, 11, true, "applied"));
    assert_int_equal(ctl_drain(c, 0), 1);
    struct ph_rec_ack ack;
    assert_int_equal(c->recs->r[0].type, PH_REC_ACK);
    assert_int_equal(ph_rec_ack_decode(c->recs->r[0].body, c->recs->r[0].len, &ack), PH_OK);
    assert_int_equal(ack.token, 11);
    assert_true(ack.ok);
    assert_string_equal(ack.message, "applied");

    ph_worker_count(w, 9);
    assert_int_equal(ph_worker_poll_command(w, &cmd), 1);
    assert_int_equal(cmd.type, PH_COMMAND_STATUS_REQUEST);
    assert_int_equal(cmd.token, 12);
    assert_null(cmd.patch);
    /* Answered by the SDK: config, status and an ack. */
    assert_int_equal(ctl_drain(c, 0), 3);
    assert_int_equal(c->recs->r[0].type, PH_REC_CONFIG);
    assert_json(json_of(&c->recs->r[0]), "{\"ratePerSec\": 1}");
    assert_int_equal(status_of(&c->recs->r[1]).processed, 9);
    assert_int_equal(c->recs->r[2].type, PH_REC_ACK);
    assert_int_equal(ph_rec_ack_decode(c->recs->r[2].body, c->recs->r[2].len, &ack), PH_OK);
    assert_int_equal(ack.token, 12);
    assert_true(ack.ok);

    assert_int_equal(ph_worker_poll_command(w, &cmd), 1);
    assert_int_equal(cmd.type, PH_COMMAND_STOP);
    assert_int_equal(cmd.token, 13);
    assert_int_equal(ph_worker_poll_command(w, &cmd), 0);
    assert_int_equal(atomic_load(&c->slot->command.consumed), 3);
    ph_worker_detach(w);
    ctl_free(c);
}

static void worker_skips_malformed_commands(void **state)
{
    (void)state;
    struct ctl *c = ctl_new(0);
    ph_worker *w = attach(c, "processor", "proc-1", NULL, 600000);
    assert_int_equal(ctl_drain(c, 0), 1);

    const uint8_t garbage[] = {0xc1, 0x00};
    send_raw(c, PH_CMD_CONFIG_PATCH, garbage, sizeof garbage);
    send_cmd(c, PH_CMD_CONFIG_PATCH, 1, NULL); /* patch missing */
    const uint8_t patch_array[] = {0x82, 0xa5, 't', 'o', 'k', 'e', 'n',  0x01,
                                   0xa5, 'p',  'a', 't', 'c', 'h', 0x91, 0x01};
    send_raw(c, PH_CMD_CONFIG_PATCH, patch_array, sizeof patch_array);
    const uint8_t patch_intkey[] = {0x82, 0xa5, 't', 'o', 'k', 'e',  'n',  0x01, 0xa5,
                                    'p',  'a',  't', 'c', 'h', 0x81, 0x01, 0x02};
    send_raw(c, PH_CMD_CONFIG_PATCH, patch_intkey, sizeof patch_intkey);
    const uint8_t neg_token[] = {0x81, 0xa5, 't', 'o', 'k', 'e', 'n', 0xff};
    send_raw(c, PH_CMD_STATUS_REQUEST, neg_token, sizeof neg_token);
    const uint8_t no_token[] = {0x80};
    send_raw(c, PH_CMD_STOP, no_token, sizeof no_token);
    const uint8_t not_map[] = {0x91, 0x01};
    send_raw(c, PH_CMD_STOP, not_map, sizeof not_map);
    const uint8_t trailing[] = {0x81, 0xa5, 't', 'o', 'k', 'e', 'n', 0x01, 0xc0};
    send_raw(c, PH_CMD_STOP, trailing, sizeof trailing);
    send_raw(c, PH_CMD_STOP, NULL, 0);
    send_cmd(c, 99, 1, NULL); /* unknown command type, well-formed */
    send_cmd(c, PH_CMD_STOP, 5, NULL);

    struct ph_command cmd;
    assert_int_equal(ph_worker_poll_command(w, &cmd), 1);
    assert_int_equal(cmd.type, PH_COMMAND_STOP);
    assert_int_equal(cmd.token, 5);
    assert_int_equal(ph_worker_poll_command(w, &cmd), 0);
    /* Skipped commands are not answered, and the ring still works. */
    assert_int_equal(ctl_drain(c, 0), 0);
    send_cmd(c, PH_CMD_CONFIG_PATCH, 6, "{\"x\": true}");
    assert_int_equal(ph_worker_poll_command(w, &cmd), 1);
    assert_int_equal(cmd.token, 6);
    assert_json(json_incref(cmd.patch), "{\"x\": true}");
    ph_worker_detach(w);
    ctl_free(c);
}

static void worker_reports_corrupt_command_ring_and_stays_away(void **state)
{
    (void)state;
    struct ctl *c = ctl_new(0);
    ph_worker *w = attach(c, "processor", "proc-1", NULL, 600000);
    send_cmd(c, PH_CMD_STOP, 1, NULL);
    atomic_store(&c->slot->command.tail, 12); /* unaligned: a broken controller */
    struct ph_command cmd;
    assert_int_equal(ph_worker_poll_command(w, &cmd), PH_ERR_CORRUPT);
    /* Even once the position looks sane again, the ring is not trusted. */
    atomic_store(&c->slot->command.tail, 32);
    assert_int_equal(ph_worker_poll_command(w, &cmd), PH_ERR_CORRUPT);
    /* Status still flows. */
    ph_worker_set_enabled(w, true);
    ph_worker_tick(w);
    assert_int_equal(ctl_drain(c, 0), 2);
    ph_worker_detach(w);
    ctl_free(c);
}

/* Acks queued while the ring is full are all delivered, each once and in the
 * order they were given, as soon as there is room again. */
static void worker_delivers_every_pending_ack_in_order(void **state)
{
    (void)state;
    struct ctl *c = ctl_new(0);
    ph_worker *w = attach(c, "processor", "proc-1", NULL, 600000);
    while (ph_worker_publish_status(w)) {
    }
    /* Acks until one has to wait (the ring's tail stops moving), then two more. */
    uint64_t token = 0;
    for (;;) {
        uint64_t before = atomic_load(&c->slot->status.tail);
        assert_true(ph_worker_ack(w, ++token, true, ""));
        if (atomic_load(&c->slot->status.tail) == before) break;
        assert_true(token < 100);
    }
    const uint64_t first_waiting = token;
    assert_true(ph_worker_ack(w, ++token, true, ""));
    assert_true(ph_worker_ack(w, ++token, true, ""));

    uint64_t seen[64];
    int nseen = 0;
    /* Room for one record only (a status record is larger than an ack). */
    assert_int_equal(ctl_drain(c, 1), 1);
    assert_int_equal(c->recs->r[0].type, PH_REC_STATUS);
    for (int round = 0; round < 4; round++) {
        tick_later(w);
        int n = ctl_drain(c, 0);
        for (int i = 0; i < n; i++) {
            if (c->recs->r[i].type != PH_REC_ACK) continue;
            struct ph_rec_ack a;
            assert_int_equal(ph_rec_ack_decode(c->recs->r[i].body, c->recs->r[i].len, &a), PH_OK);
            assert_true(nseen < 64);
            seen[nseen++] = a.token;
        }
        if (round == 0 && nseen >= (int)token)
            fail_msg("scenario not reached: all %d waiting acks fit after one record was drained",
                     (int)(token - first_waiting + 1));
    }
    /* A new ack after the backlog cleared goes after the older ones. */
    assert_true(ph_worker_ack(w, ++token, true, ""));
    tick_later(w);
    int n = ctl_drain(c, 0);
    for (int i = 0; i < n; i++) {
        struct ph_rec_ack a;
        if (c->recs->r[i].type != PH_REC_ACK) continue;
        assert_int_equal(ph_rec_ack_decode(c->recs->r[i].body, c->recs->r[i].len, &a), PH_OK);
        seen[nseen++] = a.token;
    }
    char got[512] = "";
    for (int i = 0; i < nseen; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), " %llu", (unsigned long long)seen[i]);
    /* Acks before first_waiting went straight in; all of them are in the ring. */
    assert_true(first_waiting >= 1);
    if (nseen != (int)token)
        fail_msg("acks 1..%llu expected once each, in order, got:%s", (unsigned long long)token,
                 got);
    for (int i = 0; i < nseen; i++)
        if (seen[i] != (uint64_t)i + 1)
            fail_msg("acks 1..%llu expected once each, in order, got:%s", (unsigned long long)token,
                     got);
    ph_worker_detach(w);
    ctl_free(c);
}

/* ---- detach and attach failures ----------------------------------------- */

static void worker_detach_publishes_final_status_and_leaves_slot_detached(void **state)
{
    (void)state;
    struct ctl *c = ctl_new(0);
    ph_worker *w = attach(c, "processor", "proc-1", NULL, 600000);
    assert_int_equal(ctl_drain(c, 0), 1);
    ph_worker_count(w, 3);
    const uint32_t idx = ph_worker_slot(w);
    const uint64_t active = atomic_load(&c->slot->state);
    ph_worker_detach(w);
    const uint64_t word = atomic_load(&c->slot->state);
    assert_int_equal(ph_slot_state_of(word), PH_SLOT_DETACHED);
    assert_int_equal(ph_slot_seq_of(word), ph_slot_seq_of(active));
    assert_int_equal(ph_slot_pid_of(word), getpid());
    assert_int_equal(ctl_drain(c, 0), 1);
    assert_int_equal(status_of(&c->recs->r[0]).processed, 3);
    /* The controller frees it; the instance can attach again. */
    assert_true(ph_slot_free(&c->seg, idx, word));
    ph_worker *w2 = attach(c, "processor", "proc-1", NULL, 0);
    ph_worker_detach(w2);
    ph_worker_detach(NULL);
    ctl_free(c);
}

/* Item 17: a worker whose slot was taken over (the controller freed it,
 * another process claimed it) must not detach the new owner, nor write its
 * final status into the new owner's ring, when it finally detaches. */
static void item17_worker_detach_after_takeover_leaves_the_new_owner_active(void **state)
{
    (void)state;
    struct ctl *c = ctl_new(0);
    ph_worker *w = attach(c, "processor", "proc-1", NULL, 600000);
    const uint32_t idx = ph_worker_slot(w);
    assert_int_equal(ctl_drain(c, 0), 1);
    /* Judged gone and freed by the controller, then claimed by another. */
    assert_true(ph_slot_free(&c->seg, idx, atomic_load(&c->slot->state)));
    uint64_t start;
    assert_int_equal(ph_proc_start_time((int32_t)getpid(), &start), PH_OK);
    char err[256];
    uint32_t idx2;
    assert_int_equal(ph_slot_claim(&c->seg, "other", "other-1", (int32_t)getpid(), start, &idx2,
                                   NULL, err, sizeof err),
                     PH_OK);
    assert_int_equal(idx2, idx);
    const uint64_t new_owner = atomic_load(&c->slot->state);
    assert_int_equal(ph_slot_state_of(new_owner), PH_SLOT_ACTIVE);

    ph_worker_count(w, 5);
    ph_worker_detach(w);
    assert_int_equal(atomic_load(&c->slot->state), new_owner);
    /* Nothing of the old worker's in the new owner's ring. */
    assert_int_equal(atomic_load(&c->slot->status.tail), 0);
    struct ph_slot_identity id;
    assert_true(ph_slot_identity_read(c->slot, &id));
    assert_string_equal(id.instance, "other-1");
    ctl_free(c);
}

static void worker_attach_refuses_instance_already_attached(void **state)
{
    (void)state;
    struct ctl *c = ctl_new(0);
    ph_worker *w = attach(c, "processor", "proc-1", NULL, 0);
    char err[256] = "";
    ph_worker *w2 = ph_worker_attach(
        &(struct ph_worker_opts){.swarm_id = c->id, .role = "processor", .instance = "proc-1"}, err,
        sizeof err);
    assert_null(w2);
    assert_non_null(strstr(err, "already attached"));
    ph_worker_detach(w);
    ctl_free(c);
}

/* Mappings of the segment named by `id` in this process: those whose object
 * is still named, and those of an object since removed ("(deleted)"). */
static void count_mappings(const char *id, int *named, int *deleted)
{
    char want[PH_ID_MAX + 16], line[1024];
    snprintf(want, sizeof want, "/dev/shm/ph.%s", id);
    *named = *deleted = 0;
    FILE *f = fopen("/proc/self/maps", "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f) != NULL) {
        char *p = strstr(line, want);
        if (p == NULL) continue;
        p += strlen(want);
        if (*p == '\n') (*named)++;
        else if (strncmp(p, " (deleted)", 10) == 0) (*deleted)++;
    }
    fclose(f);
}

static void workers_of_one_process_share_one_mapping_and_a_new_segment_gets_its_own(void **state)
{
    (void)state;
    struct ctl *c = ctl_new(0); /* the test's controller mapping: one of its own */
    int named, deleted;
    ph_worker *w1 = attach(c, "processor", "proc-1", NULL, 0);
    ph_worker *w2 = attach(c, "processor", "proc-2", NULL, 0);
    count_mappings(c->id, &named, &deleted);
    assert_int_equal(named, 2); /* the controller's and the workers' one */
    assert_int_equal(deleted, 0);

    /* The segment is made anew under the same name: a worker attaching now
     * maps the new object; the old mapping stays for w1 and w2. */
    char err[256];
    assert_int_equal(ph_segment_unlink(c->id, err, sizeof err), PH_OK);
    struct ph_segment again;
    bool adopted;
    struct ph_segment_params p = {.slots = 4};
    if (ph_segment_create(&again, c->id, &p, &adopted, err, sizeof err) != PH_OK)
        fail_msg("create again: %s", err);
    ph_worker *w3 = ph_worker_attach(
        &(struct ph_worker_opts){.swarm_id = c->id, .role = "processor", .instance = "proc-3"}, err,
        sizeof err);
    if (w3 == NULL) fail_msg("attach to the new segment: %s", err);
    count_mappings(c->id, &named, &deleted);
    assert_int_equal(named, 2);   /* the new object: its controller, w3 */
    assert_int_equal(deleted, 2); /* the old one: its controller, w1 and w2 */

    ph_worker_detach(w1);
    count_mappings(c->id, &named, &deleted);
    assert_int_equal(deleted, 2); /* w2 still uses it */
    ph_worker_detach(w2);
    count_mappings(c->id, &named, &deleted);
    assert_int_equal(deleted, 1); /* the old controller's only */
    ph_worker_detach(w3);
    count_mappings(c->id, &named, &deleted);
    assert_int_equal(named, 1);
    ph_segment_close(&again);
    ctl_free(c);
}

static void worker_attach_to_missing_swarm_fails_after_timeout(void **state)
{
    (void)state;
    const char *id = new_id();
    char err[256] = "";
    uint64_t t0 = ph_mono_ns();
    ph_worker *w = ph_worker_attach(
        &(struct ph_worker_opts){
            .swarm_id = id, .role = "r", .instance = "i", .attach_timeout_ms = 300},
        err, sizeof err);
    const uint64_t waited = ms_since(t0);
    assert_null(w);
    assert_true(waited >= 300);
    assert_true(waited < 10000);
    assert_non_null(strstr(err, id));
    assert_non_null(strstr(err, "no swarm"));
    /* Without a timeout it does not wait. */
    err[0] = '\0';
    w = ph_worker_attach(&(struct ph_worker_opts){.swarm_id = id, .role = "r", .instance = "i"},
                         err, sizeof err);
    assert_null(w);
    assert_non_null(strstr(err, "no swarm"));
}

static void worker_attach_waits_for_segment_created_later(void **state)
{
    (void)state;
    const char *id = new_id();
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
        struct ph_segment seg;
        char err[256];
        bool adopted;
        struct ph_segment_params p = {.slots = 2};
        _exit(ph_segment_create(&seg, id, &p, &adopted, err, sizeof err) == PH_OK ? 0 : 1);
    }
    char err[256] = "";
    ph_worker *w = ph_worker_attach(
        &(struct ph_worker_opts){
            .swarm_id = id, .role = "r", .instance = "i", .attach_timeout_ms = 20000},
        err, sizeof err);
    int ws;
    assert_int_equal(waitpid(child, &ws, 0), child);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    if (w == NULL) fail_msg("attach: %s", err);
    assert_int_equal(ph_worker_slot(w), 0);
    ph_worker_detach(w);
}

/* A controller caught between creating the object and sizing it: the object
 * exists with 0 bytes. An attach that waits must keep waiting, as it does for
 * an object whose magic is not yet published. */
static void worker_attach_waits_while_segment_is_being_created(void **state)
{
    (void)state;
    const char *id = new_id();
    char name[PH_ID_MAX + 8], err[256] = "";
    assert_int_equal(ph_segment_name(id, name, sizeof name, err, sizeof err), PH_OK);
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        /* The steps of ph_segment_create(), with a pause after the first. */
        int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
        if (fd < 0) _exit(1);
        if (write(pipefd[1], "c", 1) != 1) _exit(1);
        struct timespec ts = {0, 300 * 1000000L};
        nanosleep(&ts, NULL);
        const uint32_t slots = 2;
        const uint64_t size =
            ph_segment_size_for(slots, PH_DEFAULT_STATUS_RING, PH_DEFAULT_COMMAND_RING);
        if (ftruncate(fd, (off_t)size) != 0) _exit(1);
        struct ph_shm_header *h = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (h == MAP_FAILED) _exit(1);
        h->layout_version = PH_LAYOUT_VERSION;
        h->header_size = PH_SHM_HEADER_SIZE;
        h->segment_size = size;
        h->slot_capacity = slots;
        h->status_ring = PH_DEFAULT_STATUS_RING;
        h->command_ring = PH_DEFAULT_COMMAND_RING;
        h->slot_size = PH_SLOT_META_SIZE + h->status_ring + h->command_ring;
        snprintf(h->swarm_id, sizeof h->swarm_id, "%s", id);
        atomic_store_explicit(&h->magic, PH_SHM_MAGIC, memory_order_release);
        _exit(0);
    }
    char c;
    assert_int_equal(read(pipefd[0], &c, 1), 1); /* the object exists, 0 bytes long */
    close(pipefd[0]);
    close(pipefd[1]);
    ph_worker *w = ph_worker_attach(
        &(struct ph_worker_opts){
            .swarm_id = id, .role = "r", .instance = "i", .attach_timeout_ms = 20000},
        err, sizeof err);
    int ws;
    assert_int_equal(waitpid(child, &ws, 0), child);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    if (w == NULL) fail_msg("attach gave up on a segment being created: %s", err);
    ph_worker_detach(w);
}

static void worker_attach_refuses_invalid_ids_and_config(void **state)
{
    (void)state;
    struct ctl *c = ctl_new(0);
    struct {
        const char *swarm, *role, *inst, *config, *msg;
    } bad[] = {
        {"a.b", "r", "i", NULL, "swarm id"},   {c->id, "", "i", NULL, "role"},
        {c->id, "r", "ALL", NULL, "instance"}, {c->id, "r#", "i", NULL, "role"},
        {c->id, "r", "i j", NULL, "instance"}, {c->id, NULL, "i", NULL, "required"},
        {c->id, "r", "i", "[1, 2]", "config"}, {c->id, "r", "i", "{\"unterminated\": ", "config"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "";
        ph_worker *w = ph_worker_attach(&(struct ph_worker_opts){.swarm_id = bad[i].swarm,
                                                                 .role = bad[i].role,
                                                                 .instance = bad[i].inst,
                                                                 .config_json = bad[i].config},
                                        err, sizeof err);
        if (w != NULL) fail_msg("case %zu attached", i);
        if (strstr(err, bad[i].msg) == NULL)
            fail_msg("case %zu: message '%s' does not mention '%s'", i, err, bad[i].msg);
    }
    assert_null(ph_worker_attach(NULL, (char[64]){0}, 64));
    /* Nothing was claimed by the refused attaches. */
    for (uint32_t i = 0; i < c->seg.slots; i++)
        assert_int_equal(atomic_load(&ph_segment_slot(&c->seg, i)->state), 0);
    ctl_free(c);
}

static void worker_sees_controller_heartbeat(void **state)
{
    (void)state;
    struct ctl *c = ctl_new(0);
    ph_worker *w = attach(c, "r", "i", NULL, 0);
    assert_false(ph_worker_controller_alive(w, 60000)); /* no controller yet */
    uint64_t st;
    assert_int_equal(ph_proc_start_time((int32_t)getpid(), &st), PH_OK);
    ph_segment_set_controller(&c->seg, (int32_t)getpid(), st);
    assert_true(ph_worker_controller_alive(w, 60000));
    /* A heartbeat from long ago is stale. */
    if (ph_mono_ns() > 120ull * 1000000000ull) {
        atomic_store(&c->seg.hdr->controller_heartbeat_ns, ph_mono_ns() - 120ull * 1000000000ull);
        assert_false(ph_worker_controller_alive(w, 60000));
    }
    ph_segment_heartbeat(&c->seg);
    assert_true(ph_worker_controller_alive(w, 60000));
    ph_worker_detach(w);
    ctl_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(worker_attach_publishes_config_without_secrets_then_status),
        cmocka_unit_test(workers_of_one_process_share_one_mapping_and_a_new_segment_gets_its_own),
        cmocka_unit_test(worker_tick_publishes_counts_enabled_and_io_state),
        cmocka_unit_test(worker_tick_publishes_heartbeat_when_due),
        cmocka_unit_test(worker_full_status_ring_counts_overflows_and_never_blocks),
        cmocka_unit_test(item16_a_waiting_status_change_counts_one_overflow),
        cmocka_unit_test(a_full_status_ring_keeps_the_mirror_current),
        cmocka_unit_test(worker_publish_config_refuses_non_object_and_oversized),
        cmocka_unit_test(worker_publish_io_and_alert_records),
        cmocka_unit_test(worker_polls_config_patch_status_request_and_stop),
        cmocka_unit_test(worker_skips_malformed_commands),
        cmocka_unit_test(worker_reports_corrupt_command_ring_and_stays_away),
        cmocka_unit_test(worker_delivers_every_pending_ack_in_order),
        cmocka_unit_test(worker_detach_publishes_final_status_and_leaves_slot_detached),
        cmocka_unit_test(item17_worker_detach_after_takeover_leaves_the_new_owner_active),
        cmocka_unit_test(worker_attach_refuses_instance_already_attached),
        cmocka_unit_test(worker_attach_to_missing_swarm_fails_after_timeout),
        cmocka_unit_test(worker_attach_waits_for_segment_created_later),
        cmocka_unit_test(worker_attach_waits_while_segment_is_being_created),
        cmocka_unit_test(worker_attach_refuses_invalid_ids_and_config),
        cmocka_unit_test(worker_sees_controller_heartbeat),
    };
    return cmocka_run_group_tests(tests, NULL, remove_all);
}
