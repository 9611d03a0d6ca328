/* The bridge core (bridge/bridge.c) against a real channel in /dev/shm,
 * playing the controller from the test: documents are published or refused
 * and counted in the channel header, signals reach the in ring in order even
 * when it is full, bad signals raise one rate-limited alert, and a
 * controller restart (a re-created channel) is followed. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "bridge.h"
#include "ph/log.h"
#include "ph/record.h"
#include "sample_docs.h"

/* ---- a sink that keeps what it gets ----------------------------------- */

/* Like the AMQP sink, it keeps outcomes, alerts and events (and status once
 * confirm_all is set) until the test confirms them; status is delivered at
 * once and holds nothing. */
#define MEM_KEPT_MAX 256
struct mem_sink {
    struct sink base;
    json_t *got; /* [{rk, env, confirmed, hold}] */
    uint64_t session;
    uint64_t settled[64];
    int nsettled;
    size_t unconfirmed; /* kept documents not yet confirmed */
    struct {
        size_t got;       /* index in `got` */
        uint64_t hold;    /* 0 once released, or for the bridge's own */
    } kept[MEM_KEPT_MAX]; /* oldest first */
    size_t full_at;       /* full while this many are kept (0: never) */
    bool busy;            /* not quiet: something of its own to do */
};

static int mem_publish(struct sink *s, const char *rk, const json_t *env, const char *text,
                       enum contract_kind kind, uint64_t hold, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    struct mem_sink *m = (struct mem_sink *)s;
    /* What a transport would carry: the serialised text when there is one. */
    json_t *carried = text != NULL ? json_loads(text, 0, NULL) : json_incref((json_t *)env);
    assert_non_null(carried);
    json_array_append_new(m->got, json_pack("{s:s,s:o,s:b,s:I}", "rk", rk, "env", carried,
                                            "confirmed", s->confirm_all, "hold", (json_int_t)hold));
    if (kind != CK_METRIC || s->confirm_all) {
        assert_true(m->unconfirmed < MEM_KEPT_MAX);
        m->kept[m->unconfirmed].got = json_array_size(m->got) - 1;
        m->kept[m->unconfirmed].hold = hold;
        m->unconfirmed++;
    }
    return PH_OK;
}

static size_t mem_unconfirmed(struct sink *s)
{
    return ((struct mem_sink *)s)->unconfirmed;
}

static uint64_t mem_held(struct sink *s)
{
    struct mem_sink *m = (struct mem_sink *)s;
    for (size_t i = 0; i < m->unconfirmed; i++)
        if (m->kept[i].hold != 0) return m->kept[i].hold;
    return 0;
}

static void mem_release_holds(struct sink *s)
{
    struct mem_sink *m = (struct mem_sink *)s;
    for (size_t i = 0; i < m->unconfirmed; i++)
        m->kept[i].hold = 0;
}

static bool mem_full(struct sink *s)
{
    struct mem_sink *m = (struct mem_sink *)s;
    return m->full_at != 0 && m->unconfirmed >= m->full_at;
}

/* The broker confirms the kept document published as got[index]. */
static void mem_confirm(struct mem_sink *m, size_t index)
{
    for (size_t i = 0; i < m->unconfirmed; i++) {
        if (m->kept[i].got != index) continue;
        memmove(&m->kept[i], &m->kept[i + 1], (m->unconfirmed - i - 1) * sizeof m->kept[0]);
        m->unconfirmed--;
        return;
    }
    fail_msg("document %zu is not waiting for a confirm", index);
}

static void mem_confirm_all(struct mem_sink *m)
{
    m->unconfirmed = 0;
}

static int mem_flush(struct sink *s, char *err, size_t errlen)
{
    (void)s, (void)err, (void)errlen;
    return PH_OK;
}

static void mem_close(struct sink *s)
{
    (void)s;
}

static void mem_settle(struct sink *s, uint64_t delivery)
{
    struct mem_sink *m = (struct mem_sink *)s;
    assert_true(m->nsettled < 64);
    m->settled[m->nsettled++] = delivery;
}

static uint64_t mem_session(struct sink *s)
{
    return ((struct mem_sink *)s)->session;
}

static bool mem_quiet(struct sink *s)
{
    const struct mem_sink *m = (const struct mem_sink *)s;
    return !m->busy && m->unconfirmed == 0;
}

static const struct sink_ops mem_ops = {.quiet = mem_quiet,
                                        .publish = mem_publish,
                                        .flush = mem_flush,
                                        .close = mem_close,
                                        .settle = mem_settle,
                                        .session = mem_session,
                                        .unconfirmed = mem_unconfirmed,
                                        .held = mem_held,
                                        .release_holds = mem_release_holds,
                                        .full = mem_full};

struct fixture {
    char swarm[32];
    struct ph_channel ch; /* the controller's side */
    ph_ring_producer out;
    ph_ring_consumer in;
    uint8_t *scratch;
    struct mem_sink sink;
    struct bridge b;
    uint64_t now;
};

static int setup_with(void **state, uint32_t in_ring)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->swarm, sizeof f->swarm, "pht-brunit-%d", (int)getpid());
    char err[256];
    if (ph_channel_create(&f->ch, f->swarm, 1u << 16, in_ring, err, sizeof err) != PH_OK)
        fail_msg("%s", err);
    assert_int_equal(
        ph_ring_producer_init(&f->out, &f->ch.hdr->out, f->ch.out_data, f->ch.out_ring), PH_OK);
    assert_int_equal(ph_ring_consumer_init(&f->in, &f->ch.hdr->in, f->ch.in_data, f->ch.in_ring),
                     PH_OK);
    f->scratch = malloc(f->ch.in_ring);
    f->sink.base.ops = &mem_ops;
    snprintf(f->sink.base.spec, sizeof f->sink.base.spec, "mem");
    f->sink.got = json_array();
    const struct bridge_cfg cfg = {
        .swarm = f->swarm,
        .controller_instance = "ctl-1",
        .check_interval_ns = 1,          /* look at the channel on every tick */
        .alert_interval_ns = 1000000000, /* one alert per code per second */
    };
    assert_int_equal(bridge_init(&f->b, &cfg, &f->sink.base, err, sizeof err), PH_OK);
    f->now = 1000000000;
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, 1u << 16);
}

static int setup_small_in_ring(void **state)
{
    return setup_with(state, 4096);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    bridge_destroy(&f->b);
    json_decref(f->sink.got);
    char err[256];
    ph_channel_close(&f->ch);
    ph_channel_unlink(f->swarm, err, sizeof err);
    free(f->scratch);
    free(f);
    return 0;
}

static void tick(struct fixture *f)
{
    f->now += 5000000;
    bridge_tick(&f->b, f->now);
}

static void write_doc(struct fixture *f, json_t *doc)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    sample_pack(doc, &sb);
    json_decref(doc);
    assert_true(ph_ring_write(&f->out, PH_DOC_RECORD, sb.data, (uint32_t)sb.size));
    msgpack_sbuffer_destroy(&sb);
}

static uint64_t hdr(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* Signal documents waiting in the in ring, by correlationId. */
struct got_signals {
    int n;
    char cid[64][32];
};

static int on_signal(void *ctx, uint16_t type, const uint8_t *body, uint32_t len)
{
    struct got_signals *g = ctx;
    assert_int_equal(type, PH_DOC_RECORD);
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    msgpack_object o;
    char err[128];
    assert_int_equal(ph_mp_decode(body, len, true, &zone, &o, err, sizeof err), PH_OK);
    assert_true(g->n < 64);
    assert_true(ph_mp_str(ph_mp_map_get(&o, "cid"), g->cid[g->n], sizeof g->cid[0]));
    g->n++;
    msgpack_zone_destroy(&zone);
    return 0;
}

static void signal_line(struct fixture *f, const char *cid, json_t *data)
{
    char *line = sample_signal_line("config-update", f->swarm, "generator", NULL, cid, NULL, data);
    bridge_signal_line(&f->b, line, strlen(line), strlen(line), 0);
    free(line);
}

static void signal_line_at(struct fixture *f, const char *cid, uint64_t line_end)
{
    char *line =
        sample_signal_line("config-update", f->swarm, "generator", NULL, cid, NULL, json_object());
    bridge_signal_line(&f->b, line, strlen(line), strlen(line), line_end);
    free(line);
}

/* ---- tests --------------------------------------------------------------- */

static void test_registers_and_beats_the_heartbeat(void **state)
{
    struct fixture *f = *state;
    tick(f);
    assert_true(f->b.attached);
    assert_int_equal(atomic_load(&f->ch.hdr->bridge_pid), getpid());
    assert_int_equal(atomic_load(&f->ch.hdr->bridge_generation), 1);
    assert_int_equal(hdr(&f->ch.hdr->bridge_heartbeat_ns), f->now);
    tick(f);
    assert_int_equal(hdr(&f->ch.hdr->bridge_heartbeat_ns), f->now);
    bridge_stop(&f->b);
    assert_int_equal(atomic_load(&f->ch.hdr->bridge_pid), 0); /* unregistered */
}

static void test_valid_documents_are_published_and_invalid_ones_counted(void **state)
{
    struct fixture *f = *state;
    write_doc(f, sample_controller_full(f->swarm, "ctl-1", "c-1", NULL));
    write_doc(f, sample_worker_delta(f->swarm, "generator", "gen-1", "ctl-1"));
    json_t *bad = sample_worker_delta(f->swarm, "generator", "gen-1", "ctl-1");
    json_object_set_new(json_object_get(bad, "data"), "config", json_object());
    write_doc(f, bad);
    assert_true(ph_ring_write(&f->out, 77, "junk", 4)); /* not a document record */
    assert_true(ph_ring_write(&f->out, PH_DOC_RECORD, "\xc1", 1));
    tick(f);
    assert_int_equal(json_array_size(f->sink.got), 2);
    assert_int_equal(hdr(&f->ch.hdr->docs_published), 2);
    assert_int_equal(hdr(&f->ch.hdr->docs_refused), 3);
    assert_int_equal(f->b.st.secrets_dropped, 3);
    json_t *first = json_array_get(f->sink.got, 0);
    char want[128];
    snprintf(want, sizeof want, "event.metric.status-full.%s.swarm-controller.ctl-1", f->swarm);
    assert_string_equal(json_string_value(json_object_get(first, "rk")), want);
}

static void test_good_signals_reach_the_in_ring_in_order(void **state)
{
    struct fixture *f = *state;
    tick(f);
    char cid[16];
    for (int i = 0; i < 5; i++) {
        snprintf(cid, sizeof cid, "c-%d", i);
        signal_line(f, cid, json_pack("{s:b}", "enabled", i % 2));
    }
    struct got_signals g = {0};
    assert_int_equal(ph_ring_drain(&f->in, on_signal, &g, f->scratch, 0), 5);
    for (int i = 0; i < 5; i++) {
        snprintf(cid, sizeof cid, "c-%d", i);
        assert_string_equal(g.cid[i], cid);
    }
    assert_int_equal(f->b.st.forwarded, 5);
    assert_int_equal(hdr(&f->ch.hdr->signals_rejected), 0);
    assert_int_equal(json_array_size(f->sink.got), 0); /* no alert */
}

static void test_signals_wait_when_the_in_ring_is_full_and_none_is_lost(void **state)
{
    struct fixture *f = *state;
    tick(f);
    char pad[700];
    memset(pad, 'p', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    char cid[16];
    for (int i = 0; i < 20; i++) {
        snprintf(cid, sizeof cid, "c-%02d", i);
        signal_line(f, cid, json_pack("{s:s}", "note", pad));
    }
    assert_true(bridge_signals_pending(&f->b) > 0);             /* 4 KiB ring: most wait */
    assert_int_equal(atomic_load(&f->ch.hdr->in.overflows), 0); /* waiting is not dropping */
    struct got_signals g = {0};
    for (int round = 0; round < 50 && g.n < 20; round++) {
        ph_ring_drain(&f->in, on_signal, &g, f->scratch, 0);
        tick(f);
    }
    assert_int_equal(g.n, 20);
    for (int i = 0; i < 20; i++) {
        snprintf(cid, sizeof cid, "c-%02d", i);
        assert_string_equal(g.cid[i], cid);
    }
    assert_int_equal(bridge_signals_pending(&f->b), 0);
}

static void test_bad_signals_raise_one_alert_per_second_with_the_suppressed_count(void **state)
{
    struct fixture *f = *state;
    tick(f);
    const char *bad[] = {"not json", "[1]", "{\"routingKey\":\"x\",\"envelope\":{}}"};
    for (int i = 0; i < 3; i++)
        bridge_signal_line(&f->b, bad[i], strlen(bad[i]), strlen(bad[i]), 0);
    assert_int_equal(hdr(&f->ch.hdr->signals_rejected), 3);
    assert_int_equal(json_array_size(f->sink.got), 1);
    json_t *env = json_object_get(json_array_get(f->sink.got, 0), "env");
    char why[256];
    assert_int_equal(contract_check_envelope(env, why, sizeof why), PH_OK);
    json_t *data = json_object_get(env, "data");
    assert_string_equal(json_string_value(json_object_get(data, "code")),
                        "control.invalid-message");
    assert_string_equal(json_string_value(json_object_get(data, "level")), "warn");
    json_t *ctx = json_object_get(data, "context");
    assert_string_equal(json_string_value(json_object_get(ctx, "bodyPrefix")), "not json");
    assert_true(json_is_null(json_object_get(ctx, "routingKey")));
    assert_string_equal(json_string_value(json_object_get(env, "origin")), "ctl-1");
    json_t *scope = json_object_get(env, "scope");
    assert_string_equal(json_string_value(json_object_get(scope, "role")), "swarm-controller");
    assert_string_equal(json_string_value(json_object_get(scope, "instance")), "ctl-1");
    assert_string_equal(json_string_value(json_object_get(scope, "swarmId")), f->swarm);
    /* nothing reached the controller */
    assert_false(ph_ring_pending(&f->in));
    assert_int_equal(f->b.st.published, 0); /* the bridge's own alert is not a document */

    /* A second later the next bad one alerts again and reports the two held back. */
    f->b.alerts.e[0].last_ns -= 1000000000;
    bridge_signal_line(&f->b, "{}", 2, 2, 0);
    assert_int_equal(json_array_size(f->sink.got), 2);
    env = json_object_get(json_array_get(f->sink.got, 1), "env");
    ctx = json_object_get(json_object_get(env, "data"), "context");
    assert_int_equal(json_integer_value(json_object_get(ctx, "suppressed")), 2);
}

static void test_controller_restart_is_followed_and_pending_signals_survive(void **state)
{
    struct fixture *f = *state;
    tick(f);
    assert_int_equal(f->b.st.attaches, 1);
    /* The controller dies; signals arriving meanwhile are kept. */
    char err[256];
    ph_channel_close(&f->ch);
    ph_channel_unlink(f->swarm, err, sizeof err);
    tick(f);
    assert_true(f->b.attached); /* old mapping kept until a new channel exists */
    /* A new controller creates a new channel. */
    assert_int_equal(ph_channel_create(&f->ch, f->swarm, 1u << 16, 1u << 16, err, sizeof err),
                     PH_OK);
    assert_int_equal(
        ph_ring_producer_init(&f->out, &f->ch.hdr->out, f->ch.out_data, f->ch.out_ring), PH_OK);
    assert_int_equal(ph_ring_consumer_init(&f->in, &f->ch.hdr->in, f->ch.in_data, f->ch.in_ring),
                     PH_OK);
    write_doc(f, sample_controller_delta(f->swarm, "ctl-1"));
    tick(f);
    assert_int_equal(f->b.st.attaches, 2);
    assert_int_equal(atomic_load(&f->ch.hdr->bridge_pid), getpid());
    assert_int_equal(hdr(&f->ch.hdr->docs_published), 1);
    signal_line(f, "after-restart", json_object());
    struct got_signals g = {0};
    assert_int_equal(ph_ring_drain(&f->in, on_signal, &g, f->scratch, 0), 1);
    assert_string_equal(g.cid[0], "after-restart");
}

static void test_signals_before_any_channel_wait_for_it(void **state)
{
    struct fixture *f = *state;
    /* No tick yet: not attached. */
    signal_line(f, "early", json_object());
    assert_int_equal(bridge_signals_pending(&f->b), 1);
    tick(f);
    struct got_signals g = {0};
    assert_int_equal(ph_ring_drain(&f->in, on_signal, &g, f->scratch, 0), 1);
    assert_string_equal(g.cid[0], "early");
}

static void test_message_path_returns_the_verdict_for_the_transport(void **state)
{
    struct fixture *f = *state;
    tick(f);
    json_t *env = sample_signal_envelope("swarm-start", f->swarm, "swarm-controller", "ctl-1",
                                         "m-1", "k-1", json_object());
    char *body = json_dumps(env, JSON_COMPACT);
    json_decref(env);
    char rk[128];
    snprintf(rk, sizeof rk, "signal.swarm-start.%s.swarm-controller.ctl-1", f->swarm);
    assert_int_equal(bridge_signal_message(&f->b, rk, strlen(rk), body, strlen(body), 0), SIG_OK);
    snprintf(rk, sizeof rk, "signal.swarm-stop.%s.swarm-controller.ctl-1", f->swarm);
    assert_int_equal(bridge_signal_message(&f->b, rk, strlen(rk), body, strlen(body), 0),
                     SIG_TYPE_MISMATCH);
    free(body);
    struct got_signals g = {0};
    assert_int_equal(ph_ring_drain(&f->in, on_signal, &g, f->scratch, 0), 1);
    assert_string_equal(g.cid[0], "m-1");
    assert_int_equal(hdr(&f->ch.hdr->signals_rejected), 1);
}

/* ---- delivery: settled only once the controller has the signal (item 3) --- */

static uint64_t delivery(uint64_t session, uint64_t tag)
{
    return (session << SINK_SESSION_SHIFT) | tag;
}

static enum sigcheck_verdict message(struct fixture *f, const char *type, const char *cid,
                                     json_t *data, uint64_t dl)
{
    json_t *env =
        sample_signal_envelope(type, f->swarm, "swarm-controller", "ctl-1", cid, "ik-1", data);
    char *body = json_dumps(env, JSON_COMPACT);
    json_decref(env);
    char rk[128];
    snprintf(rk, sizeof rk, "signal.%s.%s.swarm-controller.ctl-1", type, f->swarm);
    enum sigcheck_verdict v = bridge_signal_message(&f->b, rk, strlen(rk), body, strlen(body), dl);
    free(body);
    return v;
}

static void item03_a_signal_is_settled_only_after_the_controller_consumed_it(void **state)
{
    struct fixture *f = *state;
    tick(f);
    assert_int_equal(message(f, "swarm-start", "m-1", json_object(), delivery(0, 7)), SIG_OK);
    assert_int_equal(message(f, "swarm-stop", "m-2", json_object(), delivery(0, 8)), SIG_OK);
    tick(f);
    /* In the ring, not consumed: nothing is acknowledged to the broker. */
    assert_int_equal(f->sink.nsettled, 0);
    assert_int_equal(bridge_signals_unconsumed(&f->b), 2);
    /* Read but held by the controller (not yet journaled): still nothing. */
    struct got_signals g = {0};
    assert_int_equal(ph_ring_drain_held(&f->in, on_signal, &g, f->scratch, 1), 1);
    tick(f);
    assert_int_equal(f->sink.nsettled, 0);
    /* Handed back: the first is settled, the second is not. */
    ph_ring_commit(&f->in);
    tick(f);
    assert_int_equal(f->sink.nsettled, 1);
    assert_int_equal(f->sink.settled[0], delivery(0, 7));
    assert_int_equal(ph_ring_drain(&f->in, on_signal, &g, f->scratch, 0), 1);
    tick(f);
    assert_int_equal(f->sink.nsettled, 2);
    assert_int_equal(f->sink.settled[1], delivery(0, 8));
    assert_int_equal(bridge_signals_unconsumed(&f->b), 0);
}

static void item03_signals_unconsumed_by_a_dead_controller_go_to_the_next_one(void **state)
{
    struct fixture *f = *state;
    tick(f);
    assert_int_equal(message(f, "swarm-start", "m-a", json_object(), delivery(0, 1)), SIG_OK);
    assert_int_equal(message(f, "swarm-stop", "m-b", json_object(), delivery(0, 2)), SIG_OK);
    tick(f);
    /* The controller consumed m-a, then died before reading m-b. */
    struct got_signals g = {0};
    assert_int_equal(ph_ring_drain(&f->in, on_signal, &g, f->scratch, 1), 1);
    tick(f);
    assert_int_equal(f->sink.nsettled, 1);
    char err[256];
    ph_channel_close(&f->ch);
    assert_int_equal(ph_channel_create(&f->ch, f->swarm, 1u << 16, 1u << 16, err, sizeof err),
                     PH_OK);
    ph_ring_producer_init(&f->out, &f->ch.hdr->out, f->ch.out_data, f->ch.out_ring);
    assert_int_equal(ph_ring_consumer_init(&f->in, &f->ch.hdr->in, f->ch.in_data, f->ch.in_ring),
                     PH_OK);
    tick(f);
    assert_int_equal(f->b.st.attaches, 2);
    assert_int_equal(f->b.st.reforwarded, 1);
    struct got_signals g2 = {0};
    assert_int_equal(ph_ring_drain(&f->in, on_signal, &g2, f->scratch, 0), 1);
    assert_string_equal(g2.cid[0], "m-b");
    tick(f);
    assert_int_equal(f->sink.nsettled, 2);
    assert_int_equal(f->sink.settled[1], delivery(0, 2));
}

static void item14_signal_file_progress_counts_only_lines_the_controller_consumed(void **state)
{
    struct fixture *f = *state;
    tick(f);
    signal_line_at(f, "f-1", 100);
    signal_line_at(f, "f-2", 220);
    signal_line_at(f, "f-3", 300);
    tick(f);
    /* Written into the ring, none consumed: a restart reads all three again. */
    assert_int_equal(bridge_signals_unconsumed(&f->b), 3);
    assert_int_equal(f->b.line_settled, 0);
    struct got_signals g = {0};
    assert_int_equal(ph_ring_drain(&f->in, on_signal, &g, f->scratch, 2), 2);
    tick(f);
    assert_int_equal(f->b.line_settled, 220);
    assert_int_equal(bridge_signals_unconsumed(&f->b), 1);
    assert_int_equal(ph_ring_drain(&f->in, on_signal, &g, f->scratch, 0), 1);
    tick(f);
    assert_int_equal(f->b.line_settled, 300);
    /* A transport's signals do not move it. */
    assert_int_equal(message(f, "swarm-start", "m-1", json_object(), delivery(1, 1)), SIG_OK);
    tick(f);
    assert_int_equal(ph_ring_drain(&f->in, on_signal, &g, f->scratch, 0), 1);
    tick(f);
    assert_int_equal(f->b.line_settled, 300);
}

static void item03_after_a_reconnect_waiting_copies_of_the_old_session_are_dropped(void **state)
{
    struct fixture *f = *state;
    /* Not attached yet: both wait in the bridge. */
    assert_int_equal(message(f, "swarm-start", "s-1", json_object(), delivery(1, 1)), SIG_OK);
    assert_int_equal(message(f, "swarm-stop", "s-2", json_object(), delivery(1, 2)), SIG_OK);
    assert_int_equal(bridge_signals_pending(&f->b), 2);
    /* The connection dropped: the broker delivers them again on session 2. */
    f->sink.session = 2;
    tick(f);
    assert_int_equal(bridge_signals_pending(&f->b), 0);
    struct got_signals g = {0};
    assert_int_equal(ph_ring_drain(&f->in, on_signal, &g, f->scratch, 0), 0);
    assert_int_equal(message(f, "swarm-start", "s-1", json_object(), delivery(2, 1)), SIG_OK);
    tick(f);
    assert_int_equal(ph_ring_drain(&f->in, on_signal, &g, f->scratch, 0), 1);
    tick(f);
    assert_int_equal(f->sink.nsettled, 1);
    assert_int_equal(f->sink.settled[0], delivery(2, 1));
}

/* ---- refused signals that say whom to answer get a failed outcome (4) ----- */

static json_t *outcome_for(struct fixture *f, const char *cid)
{
    json_t *found = NULL;
    for (size_t i = 0; i < json_array_size(f->sink.got); i++) {
        json_t *env = json_object_get(json_array_get(f->sink.got, i), "env");
        if (strcmp(json_string_value(json_object_get(env, "kind")), "outcome") != 0) continue;
        if (strcmp(json_string_value(json_object_get(env, "correlationId")), cid) != 0) continue;
        assert_null(found);
        found = env;
    }
    return found;
}

static void
item04_refused_but_identifiable_signal_gets_a_failed_outcome_with_the_reason(void **state)
{
    struct fixture *f = *state;
    tick(f);
    /* data beyond the controller's limits: a 120,000-character string. */
    char *big = malloc(120001);
    memset(big, 'x', 120000);
    big[120000] = '\0';
    assert_int_equal(message(f, "config-update", "m-big", json_pack("{s:s}", "note", big), 9),
                     SIG_TOO_COMPLEX);
    free(big);
    json_t *o = outcome_for(f, "m-big");
    assert_non_null(o);
    char why[256];
    assert_int_equal(contract_check_envelope(o, why, sizeof why), PH_OK);
    json_t *data = json_object_get(o, "data");
    assert_string_equal(json_string_value(json_object_get(data, "status")), "failed");
    assert_false(json_is_true(json_object_get(data, "retryable")));
    assert_non_null(
        strstr(json_string_value(json_object_get(json_object_get(data, "context"), "message")),
               "exceeds"));
    assert_string_equal(json_string_value(json_object_get(o, "idempotencyKey")), "ik-1");
    assert_string_equal(json_string_value(json_object_get(o, "type")), "config-update");
    assert_string_equal(json_string_value(json_object_get(o, "origin")), "ctl-1");
    /* Oversize, within what is still read to find the sender. */
    char *pad = malloc(300001);
    memset(pad, 'p', 300000);
    pad[300000] = '\0';
    json_t *d = json_pack("{s:[s,s]}", "pad", pad, pad);
    free(pad);
    assert_int_equal(message(f, "swarm-start", "m-huge", d, 10), SIG_OVERSIZE);
    assert_non_null(outcome_for(f, "m-huge"));
    /* Nothing to answer: another swarm, no correlationId. */
    json_t *env = sample_signal_envelope("swarm-start", "other", "swarm-controller", "ctl-1",
                                         "m-other", NULL, json_object());
    char *body = json_dumps(env, JSON_COMPACT);
    json_decref(env);
    const char *rk = "signal.swarm-start.other.swarm-controller.ctl-1";
    assert_int_equal(bridge_signal_message(&f->b, rk, strlen(rk), body, strlen(body), 11),
                     SIG_OTHER_SWARM);
    free(body);
    assert_null(outcome_for(f, "m-other"));
    assert_int_equal(f->b.st.answered, 2);
    /* Refused ones are never settled (the transport rejects them). */
    assert_int_equal(f->sink.nsettled, 0);
}

/* ---- a corrupt channel is re-created, not left silent (15) ---------------- */

static void item15_corrupt_out_ring_asks_the_controller_for_a_new_channel(void **state)
{
    struct fixture *f = *state;
    tick(f);
    /* A hostile writer moves the out ring's tail to an unaligned spot. */
    atomic_store(&f->ch.hdr->out.tail, 13);
    tick(f);
    assert_true(f->b.quarantined);
    assert_int_equal(atomic_load(&f->ch.hdr->reset_request), PH_CHAN_RESET_OUT_CORRUPT);
    /* The controller re-creates it; the bridge follows and publishes again. */
    char err[256];
    ph_channel_close(&f->ch);
    assert_int_equal(ph_channel_create(&f->ch, f->swarm, 1u << 16, 1u << 16, err, sizeof err),
                     PH_OK);
    ph_ring_producer_init(&f->out, &f->ch.hdr->out, f->ch.out_data, f->ch.out_ring);
    ph_ring_consumer_init(&f->in, &f->ch.hdr->in, f->ch.in_data, f->ch.in_ring);
    write_doc(f, sample_controller_delta(f->swarm, "ctl-1"));
    tick(f);
    assert_false(f->b.quarantined);
    assert_int_equal(hdr(&f->ch.hdr->docs_published), 1);
    assert_int_equal(atomic_load(&f->ch.hdr->reset_request), 0);
}

static void item15_corrupt_signal_ring_position_asks_for_a_new_channel(void **state)
{
    struct fixture *f = *state;
    tick(f);
    atomic_store(&f->ch.hdr->in.head, 1ull << 40); /* beyond anything written */
    assert_int_equal(message(f, "swarm-start", "m-x", json_object(), 5), SIG_OK);
    tick(f);
    assert_int_equal(atomic_load(&f->ch.hdr->reset_request), PH_CHAN_RESET_IN_CORRUPT);
    assert_int_equal(bridge_signals_pending(&f->b), 1); /* kept for the next channel */
}

/* ---- removal: the last documents are confirmed before anyone stops ------ */

static void closing_last_documents_are_confirmed_before_the_ack_and_the_exit(void **state)
{
    struct fixture *f = *state;
    atomic_store(&f->ch.hdr->controller_pid, (int32_t)getpid());
    write_doc(f, sample_controller_delta(f->swarm, "ctl-1"));
    tick(f);
    assert_int_equal(json_array_size(f->sink.got), 1);
    assert_false(json_is_true(json_object_get(json_array_get(f->sink.got, 0), "confirmed")));

    /* The controller closes: the flag, the final pair, then the mark. */
    atomic_store_explicit(&f->ch.hdr->closing, 1, memory_order_release);
    write_doc(f, sample_controller_delta(f->swarm, "ctl-1"));
    write_doc(f, sample_controller_full(f->swarm, "ctl-1", NULL, "final"));
    const uint64_t mark = f->out.tail;
    atomic_store_explicit(&f->ch.hdr->close_mark, mark, memory_order_release);
    tick(f);
    assert_int_equal(json_array_size(f->sink.got), 3);
    for (size_t i = 1; i < 3; i++)
        assert_true(json_is_true(json_object_get(json_array_get(f->sink.got, i), "confirmed")));
    /* Published, not yet confirmed by the broker: no ack, not finished. */
    tick(f);
    assert_int_equal(atomic_load(&f->ch.hdr->close_ack), 0);
    assert_false(bridge_finished(&f->b));

    /* Confirmed: the ack lets the controller stop; the bridge waits for it. */
    mem_confirm_all(&f->sink);
    tick(f);
    assert_int_equal(atomic_load(&f->ch.hdr->close_ack), mark);
    assert_false(bridge_finished(&f->b));
    atomic_store_explicit(&f->ch.hdr->controller_pid, 0, memory_order_release);
    tick(f);
    assert_true(bridge_finished(&f->b));
}

static void a_close_mark_moved_after_the_ack_is_not_finished(void **state)
{
    struct fixture *f = *state;
    atomic_store_explicit(&f->ch.hdr->closing, 1, memory_order_release);
    write_doc(f, sample_controller_full(f->swarm, "ctl-1", NULL, "final"));
    atomic_store_explicit(&f->ch.hdr->close_mark, f->out.tail, memory_order_release);
    tick(f);
    mem_confirm_all(&f->sink);
    tick(f);
    assert_true(bridge_finished(&f->b)); /* no controller pid: it is gone */
    /* The final documents are sent again (a re-registration) before the
     * controller stopped: the new mark must be acknowledged first. */
    write_doc(f, sample_controller_full(f->swarm, "ctl-1", NULL, "final-again"));
    atomic_store_explicit(&f->ch.hdr->close_mark, f->out.tail, memory_order_release);
    assert_false(bridge_finished(&f->b));
    tick(f);
    assert_false(bridge_finished(&f->b));
    mem_confirm_all(&f->sink);
    tick(f);
    assert_true(bridge_finished(&f->b));
    assert_int_equal(atomic_load(&f->ch.hdr->close_ack), f->out.tail);
}

static void item15_a_corrupt_signal_ring_head_settles_nothing_in_flight(void **state)
{
    struct fixture *f = *state;
    tick(f);
    assert_int_equal(message(f, "swarm-start", "m-1", json_object(), 21), SIG_OK);
    assert_int_equal(message(f, "swarm-stop", "m-2", json_object(), 22), SIG_OK);
    tick(f);
    assert_int_equal(bridge_signals_unconsumed(&f->b), 2);
    /* A head beyond anything written must not be taken as "consumed". */
    atomic_store(&f->ch.hdr->in.head, 1ull << 40);
    tick(f);
    assert_int_equal(f->sink.nsettled, 0);
    assert_int_equal(atomic_load(&f->ch.hdr->reset_request), PH_CHAN_RESET_IN_CORRUPT);
    /* The controller re-creates the channel: both go into the new one. */
    char err[256];
    ph_channel_close(&f->ch);
    assert_int_equal(ph_channel_create(&f->ch, f->swarm, 1u << 16, 1u << 16, err, sizeof err),
                     PH_OK);
    ph_ring_producer_init(&f->out, &f->ch.hdr->out, f->ch.out_data, f->ch.out_ring);
    ph_ring_consumer_init(&f->in, &f->ch.hdr->in, f->ch.in_data, f->ch.in_ring);
    tick(f);
    struct got_signals g = {0};
    assert_int_equal(ph_ring_drain(&f->in, on_signal, &g, f->scratch, 0), 2);
    assert_string_equal(g.cid[0], "m-1");
    tick(f);
    assert_int_equal(f->sink.nsettled, 2);
}

/* ---- the out ring is handed back only up to what the sink delivered ---- */

static uint64_t out_head(struct fixture *f)
{
    return atomic_load_explicit(&f->ch.hdr->out.head, memory_order_acquire);
}

static uint64_t write_outcome(struct fixture *f, const char *cid)
{
    write_doc(f, sample_outcome(f->swarm, "ctl-1", "swarm-start", cid, NULL, "Running"));
    return f->out.tail;
}

static uint64_t write_status(struct fixture *f)
{
    write_doc(f, sample_controller_delta(f->swarm, "ctl-1"));
    return f->out.tail;
}

static const char *got_cid(struct fixture *f, size_t i)
{
    json_t *env = json_object_get(json_array_get(f->sink.got, i), "env");
    return json_string_value(json_object_get(env, "correlationId"));
}

static const char *got_kind(struct fixture *f, size_t i)
{
    json_t *env = json_object_get(json_array_get(f->sink.got, i), "env");
    return json_string_value(json_object_get(env, "kind"));
}

static void unconfirmed_documents_keep_the_ring_head_back_until_confirmed(void **state)
{
    struct fixture *f = *state;
    tick(f);
    write_outcome(f, "o-1");
    const uint64_t s_end = write_status(f);
    const uint64_t o2_end = write_outcome(f, "o-2");
    tick(f);
    assert_int_equal(json_array_size(f->sink.got), 3);
    assert_false(ph_ring_pending(&f->b.out)); /* all read */
    /* Published, not confirmed: the controller may not reuse the space, and
     * a bridge starting now would begin with o-1. */
    assert_int_equal(out_head(f), 0);
    tick(f);
    assert_int_equal(out_head(f), 0);
    /* o-1 confirmed: up to o-2, the status before it included. */
    mem_confirm(&f->sink, 0);
    tick(f);
    assert_int_equal(out_head(f), s_end);
    mem_confirm(&f->sink, 2);
    tick(f);
    assert_int_equal(out_head(f), o2_end);
    /* Status holds nothing back. */
    write_status(f);
    const uint64_t end = write_status(f);
    tick(f);
    assert_int_equal(json_array_size(f->sink.got), 5);
    assert_int_equal(out_head(f), end);
    assert_int_equal(f->sink.unconfirmed, 0);
}

static void confirms_read_from_the_socket_hand_the_ring_back_at_once(void **state)
{
    struct fixture *f = *state;
    tick(f);
    const uint64_t end = write_outcome(f, "o-1");
    tick(f);
    assert_int_equal(out_head(f), 0);
    mem_confirm(&f->sink, 0);
    bridge_service(&f->b); /* no tick needed */
    assert_int_equal(out_head(f), end);
}

/* The bridge killed before the broker confirmed: what it had published is
 * still in the ring, and the next bridge publishes it again. */
static void a_new_bridge_publishes_again_what_was_not_confirmed(void **state)
{
    struct fixture *f = *state;
    tick(f);
    write_outcome(f, "o-1");
    const uint64_t o2_start = write_status(f);
    write_outcome(f, "o-2");
    write_status(f);
    write_status(f);
    tick(f);
    assert_int_equal(json_array_size(f->sink.got), 5);
    mem_confirm(&f->sink, 0); /* o-1 only */
    tick(f);
    assert_int_equal(out_head(f), o2_start);

    /* The process ends without a clean stop; a new one starts with a new
     * sink (the old one's outbox is gone). */
    bridge_destroy(&f->b);
    json_array_clear(f->sink.got);
    f->sink.unconfirmed = 0;
    char err[256];
    const struct bridge_cfg cfg = {
        .swarm = f->swarm, .controller_instance = "ctl-1", .check_interval_ns = 1};
    assert_int_equal(bridge_init(&f->b, &cfg, &f->sink.base, err, sizeof err), PH_OK);
    const uint64_t o3_end = write_outcome(f, "o-3");
    tick(f);
    /* o-2 again (o-1 was confirmed); the status the first bridge had read
     * is stale and not published again; o-3 is new. */
    assert_int_equal(json_array_size(f->sink.got), 2);
    assert_string_equal(got_cid(f, 0), "o-2");
    assert_string_equal(got_cid(f, 1), "o-3");
    assert_int_equal(f->b.st.republished, 1);
    assert_int_equal(f->b.st.status_skipped, 2);
    assert_int_equal(out_head(f), o2_start); /* o-2 is still not confirmed */
    mem_confirm(&f->sink, 0);
    mem_confirm(&f->sink, 1);
    tick(f);
    assert_int_equal(out_head(f), o3_end);
    /* Status the first bridge never read is published as usual. */
    write_status(f);
    tick(f);
    assert_int_equal(json_array_size(f->sink.got), 3);
    assert_string_equal(got_kind(f, 2), "metric");
}

static void holds_of_an_old_channel_do_not_hold_the_new_one(void **state)
{
    struct fixture *f = *state;
    tick(f);
    /* Far into the old ring: its position lies beyond anything the new
     * ring will hold. */
    for (int i = 0; i < 12; i++)
        write_status(f);
    write_outcome(f, "old-1");
    tick(f);
    assert_int_equal(json_array_size(f->sink.got), 13);
    assert_int_equal(f->sink.unconfirmed, 1);
    /* The controller re-creates the channel before the broker confirms. */
    char err[256];
    ph_channel_close(&f->ch);
    assert_int_equal(ph_channel_create(&f->ch, f->swarm, 1u << 16, 1u << 16, err, sizeof err),
                     PH_OK);
    assert_int_equal(
        ph_ring_producer_init(&f->out, &f->ch.hdr->out, f->ch.out_data, f->ch.out_ring), PH_OK);
    write_outcome(f, "new-1");
    const uint64_t end = write_status(f);
    tick(f);
    assert_int_equal(f->b.st.attaches, 2);
    assert_int_equal(json_array_size(f->sink.got), 15);
    assert_int_equal(out_head(f), 0); /* new-1 waits for its confirm */
    mem_confirm(&f->sink, 13);
    tick(f);
    /* old-1 is still unconfirmed (and still kept by the sink), but it holds
     * nothing of the new ring. */
    assert_int_equal(f->sink.unconfirmed, 1);
    assert_int_equal(out_head(f), end);
}

/* A restarted controller sends again the outcomes its journal cannot show
 * delivered: one this bridge delivered (confirmed) is dropped; one it
 * published but never saw confirmed is published again (its only copy
 * would otherwise be this process's memory while the ring moves past it);
 * the others go out. */
static void item03_outcomes_a_restarted_controller_sends_again_are_published_once(void **state)
{
    struct fixture *f = *state;
    tick(f);
    write_outcome(f, "r-1");
    write_outcome(f, "r-2");
    tick(f);
    assert_int_equal(json_array_size(f->sink.got), 2);
    mem_confirm(&f->sink, 0); /* r-2 stays unconfirmed */
    tick(f);
    /* The controller dies; the next one creates a new channel and sends r-1
     * and r-2 again, then r-3, the one its predecessor never handed over. */
    char err[256];
    ph_channel_close(&f->ch);
    ph_channel_unlink(f->swarm, err, sizeof err);
    tick(f);
    assert_int_equal(ph_channel_create(&f->ch, f->swarm, 1u << 16, 1u << 16, err, sizeof err),
                     PH_OK);
    assert_int_equal(
        ph_ring_producer_init(&f->out, &f->ch.hdr->out, f->ch.out_data, f->ch.out_ring), PH_OK);
    write_outcome(f, "r-1");
    write_outcome(f, "r-2");
    const uint64_t end = write_outcome(f, "r-3");
    tick(f);
    assert_int_equal(f->b.st.attaches, 2);
    assert_int_equal(json_array_size(f->sink.got), 4);
    assert_string_equal(got_cid(f, 2), "r-2");
    assert_string_equal(got_cid(f, 3), "r-3");
    assert_int_equal(f->b.st.outcomes_repeated, 1);
    /* Both confirmed: the ring goes back to the end, and r-2 and r-3 are
     * known delivered from now on. */
    mem_confirm_all(&f->sink);
    tick(f);
    assert_int_equal(out_head(f), end);
    write_outcome(f, "r-3");
    tick(f);
    assert_int_equal(json_array_size(f->sink.got), 4);
    assert_int_equal(f->b.st.outcomes_repeated, 2);
}

static void a_full_sink_leaves_documents_in_the_ring(void **state)
{
    struct fixture *f = *state;
    tick(f);
    f->sink.full_at = 2;
    char cid[16];
    for (int i = 0; i < 5; i++) {
        snprintf(cid, sizeof cid, "o-%d", i);
        write_outcome(f, cid);
    }
    tick(f);
    /* Read up to the one that filled the sink; the rest wait in the ring. */
    assert_int_equal(json_array_size(f->sink.got), 2);
    assert_true(ph_ring_pending(&f->b.out));
    tick(f);
    assert_int_equal(json_array_size(f->sink.got), 2);
    mem_confirm(&f->sink, 0);
    tick(f);
    assert_int_equal(json_array_size(f->sink.got), 3);
    mem_confirm_all(&f->sink);
    tick(f);
    mem_confirm_all(&f->sink);
    tick(f);
    assert_int_equal(json_array_size(f->sink.got), 5);
    for (int i = 0; i < 5; i++) {
        snprintf(cid, sizeof cid, "o-%d", i);
        assert_string_equal(got_cid(f, (size_t)i), cid);
    }
    assert_int_equal(out_head(f), f->out.tail);
}

/* The bell (ph/channel.h): an idle bridge arms it and may sleep; a document
 * written afterwards makes the controller's side ring it, once, and the
 * byte arrives on the bridge's socket; a document that came first keeps it
 * awake; anything to do (a signal, the sink, an older controller) keeps it
 * on the short tick; a stopped bridge leaves no bell to ring. */
static bool bell_heard(struct fixture *f)
{
    char byte;
    return recv(f->b.bell_fd, &byte, 1, MSG_DONTWAIT) == 1;
}

static void an_idle_bridge_sleeps_on_its_bell_and_a_document_rings_it(void **state)
{
    struct fixture *f = *state;
    assert_true(f->b.bell_fd >= 0);
    tick(f);
    assert_true(f->b.attached);
    assert_int_equal(hdr(&f->ch.hdr->bell_token), f->b.bell_token);
    assert_true(f->b.bell_token != 0);
    /* A controller that does not ring (bell 0, as an older one) keeps it awake. */
    assert_false(bridge_sleep(&f->b));
    assert_int_equal(atomic_load(&f->ch.hdr->bridge_asleep), 0);

    atomic_store(&f->ch.hdr->bell, 1);
    assert_true(bridge_sleep(&f->b));
    assert_int_equal(atomic_load(&f->ch.hdr->bridge_asleep), 1);

    write_doc(f, sample_worker_delta(f->swarm, "generator", "gen-1", "ctl-1"));
    assert_true(ph_channel_bell_due(&f->ch));
    assert_false(ph_channel_bell_due(&f->ch)); /* one ring per sleep */
    int fd = -1;
    uint64_t rung = 0;
    assert_int_equal(ph_channel_bell_ring(&f->ch, f->swarm, &fd, &rung), 0);
    assert_int_equal(rung, f->b.bell_token);
    assert_true(bell_heard(f));
    assert_false(bell_heard(f));

    bridge_wake(&f->b);
    tick(f);
    assert_int_equal(json_array_size(f->sink.got), 1);
    assert_true(bridge_sleep(&f->b));

    /* A document written before the bell is armed: no sleep, no ring due. */
    bridge_wake(&f->b);
    write_doc(f, sample_worker_delta(f->swarm, "generator", "gen-1", "ctl-1"));
    assert_false(bridge_sleep(&f->b));
    assert_int_equal(atomic_load(&f->ch.hdr->bridge_asleep), 0);
    assert_false(ph_channel_bell_due(&f->ch));
    tick(f);
    assert_int_equal(json_array_size(f->sink.got), 2);

    /* A sink with work of its own, a signal not yet taken in by the
     * controller: awake. */
    f->sink.busy = true;
    assert_false(bridge_sleep(&f->b));
    f->sink.busy = false;
    signal_line(f, "c-1", json_object());
    assert_false(bridge_sleep(&f->b));
    tick(f);
    assert_false(bridge_sleep(&f->b)); /* in the ring, not consumed */
    struct got_signals g = {0};
    assert_int_equal(ph_ring_drain(&f->in, on_signal, &g, f->scratch, 0), 1);
    tick(f);
    assert_true(bridge_sleep(&f->b));

    /* A controller that could not ring this bridge's token: awake. */
    atomic_store(&f->ch.hdr->bell_refused, f->b.bell_token);
    assert_false(bridge_sleep(&f->b));
    atomic_store(&f->ch.hdr->bell_refused, f->b.bell_token + 1); /* another bridge's */
    assert_true(bridge_sleep(&f->b));

    /* Rung, it looks at the channel at its next tick, check interval or not. */
    f->b.next_check_ns = f->now + 60 * 1000000000ull;
    bridge_rung(&f->b);
    assert_int_equal(f->b.next_check_ns, 0);

    /* A stopped bridge takes its bell with it: nobody is bound to the name. */
    const uint64_t token = f->b.bell_token;
    bridge_stop(&f->b);
    assert_int_equal(hdr(&f->ch.hdr->bell_token), 0);
    assert_int_equal(ph_channel_bell_ring(&f->ch, f->swarm, &fd, NULL), -EDESTADDRREQ);
    close(f->b.bell_fd); /* as bridge_destroy() does */
    f->b.bell_fd = -1;
    assert_int_equal(ph_channel_bell_send(f->swarm, token, &fd), -ECONNREFUSED);
    close(fd);
}

int main(void)
{
    ph_log_init("test_bridge_core", "unit");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_registers_and_beats_the_heartbeat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_valid_documents_are_published_and_invalid_ones_counted,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_good_signals_reach_the_in_ring_in_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_signals_wait_when_the_in_ring_is_full_and_none_is_lost,
                                        setup_small_in_ring, teardown),
        cmocka_unit_test_setup_teardown(
            test_bad_signals_raise_one_alert_per_second_with_the_suppressed_count, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_controller_restart_is_followed_and_pending_signals_survive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signals_before_any_channel_wait_for_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_message_path_returns_the_verdict_for_the_transport,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            item03_a_signal_is_settled_only_after_the_controller_consumed_it, setup, teardown),
        cmocka_unit_test_setup_teardown(
            item03_signals_unconsumed_by_a_dead_controller_go_to_the_next_one, setup, teardown),
        cmocka_unit_test_setup_teardown(
            item14_signal_file_progress_counts_only_lines_the_controller_consumed, setup, teardown),
        cmocka_unit_test_setup_teardown(
            item03_after_a_reconnect_waiting_copies_of_the_old_session_are_dropped, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            item04_refused_but_identifiable_signal_gets_a_failed_outcome_with_the_reason, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            item15_corrupt_out_ring_asks_the_controller_for_a_new_channel, setup, teardown),
        cmocka_unit_test_setup_teardown(item15_corrupt_signal_ring_position_asks_for_a_new_channel,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(item15_a_corrupt_signal_ring_head_settles_nothing_in_flight,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            closing_last_documents_are_confirmed_before_the_ack_and_the_exit, setup, teardown),
        cmocka_unit_test_setup_teardown(a_close_mark_moved_after_the_ack_is_not_finished, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            unconfirmed_documents_keep_the_ring_head_back_until_confirmed, setup, teardown),
        cmocka_unit_test_setup_teardown(confirms_read_from_the_socket_hand_the_ring_back_at_once,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_new_bridge_publishes_again_what_was_not_confirmed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            item03_outcomes_a_restarted_controller_sends_again_are_published_once, setup, teardown),
        cmocka_unit_test_setup_teardown(holds_of_an_old_channel_do_not_hold_the_new_one, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_full_sink_leaves_documents_in_the_ring, setup, teardown),
        cmocka_unit_test_setup_teardown(an_idle_bridge_sleeps_on_its_bell_and_a_document_rings_it,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
