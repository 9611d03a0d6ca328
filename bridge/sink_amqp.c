/* AMQP sink and signal source (sink.h): RabbitMQ through rabbitmq-c.
 *
 * One connection, one channel in confirm mode:
 *   - declares the ph.control exchange (topic, durable) and the controller's
 *     control queue ph.control.<swarm>.swarm-controller.<instance> (durable),
 *     bound to the keys amqp_topo.c derives from what is published, and
 *     re-binds as workers come and go;
 *   - publishes every envelope with its routing key, content type
 *     application/json; outcomes, alerts (and signals) are persistent and
 *     kept in a bounded outbox until the broker confirms them, and resent
 *     after a reconnect; status goes out once, and status published while
 *     disconnected is dropped: a fresh status-full is asked of the
 *     controller after every reconnect (take_resync), and it supersedes
 *     every delta missed;
 *   - consumes the control queue with manual acks and a prefetch of 50: each
 *     delivery goes to the bridge's receiver; a rejected one is rejected
 *     without requeue (the bridge has logged and alerted); an accepted one
 *     is acknowledged only when the bridge settles it, once the controller
 *     has taken it in. Unsettled deliveries count against the prefetch, so
 *     a stalled controller stops the broker's deliveries (flow control)
 *     instead of growing the bridge; after a reconnect the broker delivers
 *     them again (the controller recognises repeats by correlationId);
 *   - reconnects with capped exponential backoff (0.5 s doubling to 30 s),
 *     attempted from flush() only when due, so a missing broker costs one
 *     refused connect per backoff period.
 * Everything runs on the bridge's loop thread. Reads never block: the loop
 * polls the socket (poll_fd) and calls service(), which drains whole frames
 * with amqp_simple_wait_frame_noblock and a zero timeout. Writes and the
 * connect/declare RPCs are blocking with short timeouts (local broker).
 *
 * The URL (amqp://user:pass@host:port/vhost) comes from PH_AMQP_URL or from
 * a file, never from the command line, and only host, port, vhost and user
 * are ever logged. */
#include "sink.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>

#include "amqp_topo.h"
#include "envelope.h"
#include "ph/log.h"

#define EXCHANGE "ph.control"
#define CHANNEL 1
#define PREFETCH 50
#define OUTBOX_MAX_ENTRIES 10000u
#define OUTBOX_MAX_BYTES (64u << 20)
#define BACKOFF_MIN_NS 500000000ull
#define BACKOFF_MAX_NS 30000000000ull
#define CONNECT_TIMEOUT_S 2
#define RPC_TIMEOUT_S 5
#define HEARTBEAT_S 30
#define FRAMES_PER_SERVICE 512
#define CLOSE_CONFIRM_WAIT_NS 2000000000ull
#define URL_MAX 2048

/* An outcome, alert or signal until the broker confirms it. */
struct obx {
    struct obx *next;
    uint64_t tag; /* publish sequence number on the current connection; 0: not sent */
    size_t len;
    char rk[CONTRACT_RK_MAX];
    char body[];
};

struct amqp_sink {
    struct sink base;
    char url[URL_MAX]; /* parsed in place: ci's strings point into it */
    struct amqp_connection_info ci;
    char where[256]; /* "user@host:port vhost '/'" for logs */
    char queue[CONTRACT_RK_MAX];

    amqp_connection_state_t conn;
    bool up;
    uint64_t gen; /* connections made */
    uint64_t next_tag;
    uint64_t next_try_ns;
    uint64_t backoff_ns;
    bool resync;
    bool in_service;

    struct obx *head, *tail;
    size_t n, bytes;

    struct amqp_topo topo;
    json_t *bound; /* {key: true} bound on the current connection */
    bool topo_dirty;

    uint64_t published, confirmed, nacked, status_dropped, status_dropped_since, outbox_dropped,
        acked, rejected, held;
};

/* ---- helpers ---------------------------------------------------------- */

static amqp_bytes_t bytes_of(const char *s)
{
    return amqp_cstring_bytes(s);
}

static void describe_reply(amqp_rpc_reply_t r, char *buf, size_t n)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL: snprintf(buf, n, "ok"); break;
    case AMQP_RESPONSE_NONE: snprintf(buf, n, "no reply from the broker"); break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        snprintf(buf, n, "%s", amqp_error_string2(r.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            const amqp_connection_close_t *m = r.reply.decoded;
            snprintf(buf, n, "broker closed the connection: %u %.*s", m->reply_code,
                     (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            const amqp_channel_close_t *m = r.reply.decoded;
            snprintf(buf, n, "broker closed the channel: %u %.*s", m->reply_code,
                     (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        } else {
            snprintf(buf, n, "unexpected broker method 0x%08x", r.reply.id);
        }
        break;
    }
}

/* Drops the connection (no protocol close: it failed) and schedules the
 * next attempt. */
static void lose(struct amqp_sink *s, const char *what, const char *why)
{
    const bool was_up = s->up;
    if (s->conn != NULL) {
        amqp_destroy_connection(s->conn);
        s->conn = NULL;
    }
    s->up = false;
    const uint64_t now = ph_mono_ns();
    s->next_try_ns = now + s->backoff_ns;
    size_t unconfirmed = s->n;
    if (was_up)
        ph_warn("AMQP connection to %s lost (%s: %s); %zu outcome/alert(s) kept for resending; "
                "reconnecting in %.1f s",
                s->where, what, why, unconfirmed, (double)s->backoff_ns / 1e9);
    else
        ph_warn("AMQP broker %s unavailable (%s: %s); retrying in %.1f s", s->where, what, why,
                (double)s->backoff_ns / 1e9);
    s->backoff_ns *= 2;
    if (s->backoff_ns > BACKOFF_MAX_NS) s->backoff_ns = BACKOFF_MAX_NS;
    /* Whatever was sent is resent on the next connection; deliveries not
     * yet acknowledged are requeued by the broker. */
    for (struct obx *e = s->head; e != NULL; e = e->next)
        e->tag = 0;
    s->held = 0;
}

static bool rpc_ok(struct amqp_sink *s, const char *what)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(s->conn);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) return true;
    char why[300];
    describe_reply(r, why, sizeof why);
    lose(s, what, why);
    return false;
}

/* ---- outbox ------------------------------------------------------------- */

static void outbox_remove_next(struct amqp_sink *s, struct obx *prev, struct obx *e)
{
    if (prev == NULL)
        s->head = e->next;
    else
        prev->next = e->next;
    if (s->tail == e) s->tail = prev;
    s->n--;
    s->bytes -= e->len;
    free(e);
}

static int outbox_add(struct amqp_sink *s, const char *rk, const char *body, size_t len)
{
    while (s->head != NULL && (s->n >= OUTBOX_MAX_ENTRIES || s->bytes + len > OUTBOX_MAX_BYTES)) {
        s->outbox_dropped++;
        if (s->outbox_dropped == 1 || s->outbox_dropped % 1000 == 0)
            ph_error("AMQP outbox full (%zu messages, %zu bytes unconfirmed): dropping the "
                     "oldest, %s (%" PRIu64 " dropped so far)",
                     s->n, s->bytes, s->head->rk, s->outbox_dropped);
        outbox_remove_next(s, NULL, s->head);
    }
    struct obx *e = malloc(sizeof *e + len);
    if (e == NULL) return PH_ERR_SYS;
    e->next = NULL;
    e->tag = 0;
    e->len = len;
    snprintf(e->rk, sizeof e->rk, "%s", rk);
    memcpy(e->body, body, len);
    if (s->tail != NULL)
        s->tail->next = e;
    else
        s->head = e;
    s->tail = e;
    s->n++;
    s->bytes += len;
    return PH_OK;
}

/* basic.ack / basic.nack from the broker for publish sequence `tag`. */
static void confirm(struct amqp_sink *s, uint64_t tag, bool multiple, bool ack)
{
    struct obx *prev = NULL, *e = s->head;
    while (e != NULL) {
        struct obx *next = e->next;
        if (e->tag != 0 && (multiple ? e->tag <= tag : e->tag == tag)) {
            if (ack) {
                s->confirmed++;
                outbox_remove_next(s, prev, e);
                e = next;
                continue;
            }
            s->nacked++;
            e->tag = 0; /* the broker refused it: send again */
            ph_warn("AMQP broker nacked %s; it will be sent again", e->rk);
        }
        prev = e;
        e = next;
    }
}

/* ---- publishing ------------------------------------------------------- */

/* One basic.publish; the sequence number it got, or 0 when the connection
 * failed (then it is gone). */
static uint64_t send_one(struct amqp_sink *s, const char *rk, const char *body, size_t len,
                         bool persistent)
{
    amqp_basic_properties_t p;
    memset(&p, 0, sizeof p);
    p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    p.content_type = bytes_of("application/json");
    p.delivery_mode = persistent ? 2 : 1;
    amqp_bytes_t b = {.len = len, .bytes = (void *)body};
    int rc = amqp_basic_publish(s->conn, CHANNEL, bytes_of(EXCHANGE), bytes_of(rk), 0, 0, &p, b);
    if (rc != AMQP_STATUS_OK) {
        lose(s, "publish", amqp_error_string2(rc));
        return 0;
    }
    s->published++;
    return s->next_tag++;
}

static void outbox_send(struct amqp_sink *s)
{
    for (struct obx *e = s->head; e != NULL && s->up; e = e->next) {
        if (e->tag != 0) continue;
        e->tag = send_one(s, e->rk, e->body, e->len, true);
    }
}

/* ---- topology --------------------------------------------------------- */

static void apply_topology(struct amqp_sink *s)
{
    json_t *want = amqp_topo_keys(&s->topo);
    if (want == NULL) return;
    const char *key;
    json_t *v;
    void *tmp;
    json_object_foreach(want, key, v)
    {
        if (json_object_get(s->bound, key) != NULL) continue;
        amqp_queue_bind(s->conn, CHANNEL, bytes_of(s->queue), bytes_of(EXCHANGE), bytes_of(key),
                        amqp_empty_table);
        if (!rpc_ok(s, "queue.bind")) goto out;
        json_object_set_new(s->bound, key, json_true());
        ph_debug("bound %s to %s", s->queue, key);
    }
    json_object_foreach_safe(s->bound, tmp, key, v)
    {
        if (json_object_get(want, key) != NULL) continue;
        amqp_queue_unbind(s->conn, CHANNEL, bytes_of(s->queue), bytes_of(EXCHANGE), bytes_of(key),
                          amqp_empty_table);
        if (!rpc_ok(s, "queue.unbind")) goto out;
        ph_debug("unbound %s from %s", s->queue, key);
        json_object_del(s->bound, key);
    }
    s->topo_dirty = false;
out:
    json_decref(want);
}

/* ---- connection ------------------------------------------------------- */

static void connect_now(struct amqp_sink *s)
{
    s->conn = amqp_new_connection();
    amqp_socket_t *sock = s->conn != NULL ? amqp_tcp_socket_new(s->conn) : NULL;
    if (sock == NULL) {
        lose(s, "connect", "out of memory");
        return;
    }
    struct timeval cto = {.tv_sec = CONNECT_TIMEOUT_S}, rto = {.tv_sec = RPC_TIMEOUT_S};
    int rc = amqp_socket_open_noblock(sock, s->ci.host, s->ci.port, &cto);
    if (rc != AMQP_STATUS_OK) {
        lose(s, "connect", amqp_error_string2(rc));
        return;
    }
    amqp_set_handshake_timeout(s->conn, &rto);
    amqp_set_rpc_timeout(s->conn, &rto);
    amqp_rpc_reply_t r = amqp_login(s->conn, s->ci.vhost, 0, 131072, HEARTBEAT_S,
                                    AMQP_SASL_METHOD_PLAIN, s->ci.user, s->ci.password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        char why[300];
        describe_reply(r, why, sizeof why);
        lose(s, "login", why);
        return;
    }
    amqp_channel_open(s->conn, CHANNEL);
    if (!rpc_ok(s, "channel.open")) return;
    amqp_basic_qos(s->conn, CHANNEL, 0, PREFETCH, 0);
    if (!rpc_ok(s, "basic.qos")) return;
    amqp_confirm_select(s->conn, CHANNEL);
    if (!rpc_ok(s, "confirm.select")) return;
    amqp_exchange_declare(s->conn, CHANNEL, bytes_of(EXCHANGE), bytes_of("topic"), 0, 1, 0, 0,
                          amqp_empty_table);
    if (!rpc_ok(s, "exchange.declare " EXCHANGE)) return;
    amqp_queue_declare(s->conn, CHANNEL, bytes_of(s->queue), 0, 1, 0, 0, amqp_empty_table);
    if (!rpc_ok(s, "queue.declare")) return;
    s->up = true; /* for apply_topology's error path */
    json_object_clear(s->bound);
    apply_topology(s);
    if (!s->up) return;
    amqp_basic_consume(s->conn, CHANNEL, bytes_of(s->queue), amqp_empty_bytes, 0, 0, 0,
                       amqp_empty_table);
    if (!rpc_ok(s, "basic.consume")) return;
    s->gen++;
    s->next_tag = 1;
    s->backoff_ns = BACKOFF_MIN_NS;
    /* A reconnect, or status dropped before the first connect: the
     * controller's next status-full brings every consumer up to date. */
    s->resync = s->gen > 1 || s->status_dropped_since > 0;
    ph_info("AMQP connected to %s (connection %" PRIu64 "), consuming %s; %zu outcome/alert(s) "
            "to (re)send, %" PRIu64 " status message(s) dropped while disconnected",
            s->where, s->gen, s->queue, s->n, s->status_dropped_since);
    s->status_dropped_since = 0;
    outbox_send(s);
}

/* ---- receiving -------------------------------------------------------- */

static void on_deliver(struct amqp_sink *s, const amqp_frame_t *f)
{
    const amqp_basic_deliver_t *d = f->payload.method.decoded;
    const uint64_t tag = d->delivery_tag;
    const amqp_channel_t ch = f->channel;
    char rk[CONTRACT_RK_MAX];
    size_t rklen = d->routing_key.len < sizeof rk - 1 ? d->routing_key.len : sizeof rk - 1;
    memcpy(rk, d->routing_key.bytes, rklen);
    rk[rklen] = '\0';
    amqp_message_t msg;
    amqp_rpc_reply_t r = amqp_read_message(s->conn, ch, &msg, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        char why[300];
        describe_reply(r, why, sizeof why);
        lose(s, "reading a delivery", why);
        return;
    }
    /* An AMQP routing key (shortstr) is at most 255 bytes: rk holds any. */
    const uint64_t delivery = (s->gen << SINK_SESSION_SHIFT) | (tag & ((1ull << SINK_SESSION_SHIFT) - 1));
    int verdict = s->base.receive != NULL ? s->base.receive(s->base.receive_ctx, rk, rklen,
                                                            msg.body.bytes, msg.body.len, delivery)
                                          : 1;
    amqp_destroy_message(&msg);
    if (!s->up) return; /* the alert's publish lost the connection: redelivered later */
    if (verdict == 0) {
        s->held++; /* acknowledged by amqp_settle() */
        return;
    }
    int rc = amqp_basic_reject(s->conn, ch, tag, 0);
    if (rc != AMQP_STATUS_OK) {
        lose(s, "basic.reject", amqp_error_string2(rc));
        return;
    }
    s->rejected++;
}

static void amqp_settle(struct sink *sb, uint64_t delivery)
{
    struct amqp_sink *s = (struct amqp_sink *)sb;
    /* A delivery of an earlier connection: the broker has requeued it and
     * delivers it again on this one. */
    if (!s->up || sink_delivery_session(delivery) != s->gen) return;
    const uint64_t tag = delivery & ((1ull << SINK_SESSION_SHIFT) - 1);
    int rc = amqp_basic_ack(s->conn, CHANNEL, tag, 0);
    if (rc != AMQP_STATUS_OK) {
        lose(s, "basic.ack", amqp_error_string2(rc));
        return;
    }
    s->acked++;
    if (s->held > 0) s->held--;
}

static uint64_t amqp_session(struct sink *sb)
{
    return ((struct amqp_sink *)sb)->gen;
}

static void amqp_service(struct sink *sb)
{
    struct amqp_sink *s = (struct amqp_sink *)sb;
    if (!s->up || s->in_service) return;
    s->in_service = true;
    for (int i = 0; i < FRAMES_PER_SERVICE && s->up; i++) {
        amqp_frame_t f;
        struct timeval zero = {0, 0};
        int rc = amqp_simple_wait_frame_noblock(s->conn, &f, &zero);
        if (rc == AMQP_STATUS_TIMEOUT) break;
        if (rc != AMQP_STATUS_OK) {
            lose(s, "read", amqp_error_string2(rc));
            break;
        }
        if (f.frame_type != AMQP_FRAME_METHOD) continue;
        switch (f.payload.method.id) {
        case AMQP_BASIC_DELIVER_METHOD: on_deliver(s, &f); break;
        case AMQP_BASIC_ACK_METHOD: {
            const amqp_basic_ack_t *a = f.payload.method.decoded;
            confirm(s, a->delivery_tag, a->multiple, true);
            break;
        }
        case AMQP_BASIC_NACK_METHOD: {
            const amqp_basic_nack_t *a = f.payload.method.decoded;
            confirm(s, a->delivery_tag, a->multiple, false);
            break;
        }
        case AMQP_BASIC_RETURN_METHOD: {
            amqp_message_t msg;
            amqp_rpc_reply_t r = amqp_read_message(s->conn, f.channel, &msg, 0);
            if (r.reply_type == AMQP_RESPONSE_NORMAL) amqp_destroy_message(&msg);
            break;
        }
        case AMQP_CHANNEL_CLOSE_METHOD: {
            const amqp_channel_close_t *m = f.payload.method.decoded;
            char why[300];
            snprintf(why, sizeof why, "%u %.*s", m->reply_code, (int)m->reply_text.len,
                     (const char *)m->reply_text.bytes);
            lose(s, "broker closed the channel", why);
            break;
        }
        case AMQP_CONNECTION_CLOSE_METHOD: {
            const amqp_connection_close_t *m = f.payload.method.decoded;
            char why[300];
            snprintf(why, sizeof why, "%u %.*s", m->reply_code, (int)m->reply_text.len,
                     (const char *)m->reply_text.bytes);
            amqp_connection_close_ok_t ok = {0};
            amqp_send_method(s->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
            lose(s, "broker closed the connection", why);
            break;
        }
        case AMQP_BASIC_CANCEL_METHOD:
            lose(s, "consumer cancelled by the broker", "control queue deleted?");
            break;
        default: break;
        }
    }
    if (s->up && !amqp_frames_enqueued(s->conn)) amqp_maybe_release_buffers(s->conn);
    s->in_service = false;
}

/* ---- sink ops --------------------------------------------------------- */

static int amqp_publish(struct sink *sb, const char *rk, const json_t *env, enum contract_kind kind,
                        char *err, size_t errlen)
{
    struct amqp_sink *s = (struct amqp_sink *)sb;
    if (amqp_topo_observe(&s->topo, rk, env)) s->topo_dirty = true;
    /* Status is sent once and dropped while disconnected (the next full
     * supersedes it), except the last documents of a removed swarm: no
     * later full will come, so they are kept until confirmed. */
    const bool status = kind == CK_METRIC && !s->base.confirm_all;
    if (status && !s->up) {
        s->status_dropped++;
        s->status_dropped_since++;
        return PH_OK;
    }
    char *body = json_dumps(env, ENVELOPE_DUMP_FLAGS);
    if (body == NULL) {
        snprintf(err, errlen, "sink amqp: cannot serialise the envelope for %s", rk);
        return PH_ERR_SYS;
    }
    const size_t len = strlen(body);
    int rc = PH_OK;
    if (status) {
        send_one(s, rk, body, len, false);
        if (!s->up) {
            s->status_dropped++;
            s->status_dropped_since++;
        }
    } else if (outbox_add(s, rk, body, len) != PH_OK) {
        snprintf(err, errlen, "sink amqp: out of memory keeping %s", rk);
        rc = PH_ERR_SYS;
    } else if (s->up) {
        outbox_send(s);
    }
    free(body);
    return rc;
}

static int amqp_flush(struct sink *sb, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    struct amqp_sink *s = (struct amqp_sink *)sb;
    if (!s->up) {
        if (ph_mono_ns() < s->next_try_ns) return PH_OK;
        connect_now(s);
        if (!s->up) return PH_OK; /* logged by lose() */
    }
    amqp_service(sb);
    if (s->up && s->topo_dirty) apply_topology(s);
    if (s->up) outbox_send(s);
    return PH_OK;
}

static size_t amqp_unconfirmed(struct sink *sb)
{
    return ((struct amqp_sink *)sb)->n;
}

static int amqp_poll_fd(struct sink *sb, uint64_t *gen)
{
    struct amqp_sink *s = (struct amqp_sink *)sb;
    *gen = s->gen;
    return s->up ? amqp_get_sockfd(s->conn) : -1;
}

static bool amqp_take_resync(struct sink *sb)
{
    struct amqp_sink *s = (struct amqp_sink *)sb;
    bool r = s->resync;
    s->resync = false;
    return r;
}

static void amqp_close_sink(struct sink *sb)
{
    struct amqp_sink *s = (struct amqp_sink *)sb;
    /* Give the broker a moment to confirm what is outstanding. */
    const uint64_t until = ph_mono_ns() + CLOSE_CONFIRM_WAIT_NS;
    while (s->up && s->head != NULL && ph_mono_ns() < until) {
        outbox_send(s);
        if (!s->up) break;
        amqp_frame_t f;
        struct timeval tv = {0, 100000};
        int rc = amqp_simple_wait_frame_noblock(s->conn, &f, &tv);
        if (rc == AMQP_STATUS_TIMEOUT) continue;
        if (rc != AMQP_STATUS_OK) break;
        if (f.frame_type != AMQP_FRAME_METHOD) continue;
        if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            const amqp_basic_ack_t *a = f.payload.method.decoded;
            confirm(s, a->delivery_tag, a->multiple, true);
        } else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
            const amqp_basic_nack_t *a = f.payload.method.decoded;
            confirm(s, a->delivery_tag, a->multiple, false);
        }
        /* Deliveries are left unacked: the broker requeues them at close. */
    }
    if (s->head != NULL)
        ph_warn("AMQP: %zu outcome/alert(s) were not confirmed by the broker before exit", s->n);
    if (s->conn != NULL) {
        if (s->up) {
            amqp_channel_close(s->conn, CHANNEL, AMQP_REPLY_SUCCESS);
            amqp_connection_close(s->conn, AMQP_REPLY_SUCCESS);
        }
        amqp_destroy_connection(s->conn);
    }
    ph_info("AMQP sink closed: %" PRIu64 " published, %" PRIu64 " confirmed, %" PRIu64
            " nacked, %" PRIu64 " status dropped while disconnected, %" PRIu64
            " outbox drops, %" PRIu64 " signals acked, %" PRIu64 " rejected, %" PRIu64
            " connection(s)",
            s->published, s->confirmed, s->nacked, s->status_dropped, s->outbox_dropped, s->acked,
            s->rejected, s->gen);
    while (s->head != NULL)
        outbox_remove_next(s, NULL, s->head);
    amqp_topo_free(&s->topo);
    json_decref(s->bound);
    memset(s->url, 0, sizeof s->url); /* the password */
    free(s);
}

static const struct sink_ops amqp_ops = {
    .publish = amqp_publish,
    .flush = amqp_flush,
    .close = amqp_close_sink,
    .poll_fd = amqp_poll_fd,
    .service = amqp_service,
    .take_resync = amqp_take_resync,
    .settle = amqp_settle,
    .session = amqp_session,
    .unconfirmed = amqp_unconfirmed,
};

/* ---- opening ---------------------------------------------------------- */

static int read_url(const struct sink_cfg *cfg, char *url, size_t n, char *err, size_t errlen)
{
    if (cfg->amqp_url_file != NULL) {
        FILE *f = fopen(cfg->amqp_url_file, "re");
        if (f == NULL) {
            snprintf(err, errlen, "cannot open the AMQP URL file %s: %s", cfg->amqp_url_file,
                     strerror(errno));
            return PH_ERR_SYS;
        }
        bool ok = fgets(url, (int)n, f) != NULL;
        fclose(f);
        if (!ok) url[0] = '\0';
    } else {
        const char *env = getenv("PH_AMQP_URL");
        if (env == NULL || env[0] == '\0') {
            snprintf(err, errlen,
                     "sink amqp needs the broker's URL: set PH_AMQP_URL or give "
                     "--amqp-url-file PATH (deploy/rabbitmq start writes one)");
            return PH_ERR_INVAL;
        }
        if (strlen(env) >= n) {
            snprintf(err, errlen, "PH_AMQP_URL is too long");
            return PH_ERR_INVAL;
        }
        snprintf(url, n, "%s", env);
    }
    url[strcspn(url, "\r\n")] = '\0';
    if (url[0] == '\0') {
        snprintf(err, errlen, "the AMQP URL%s%s is empty",
                 cfg->amqp_url_file ? " file " : "", cfg->amqp_url_file ? cfg->amqp_url_file : "");
        return PH_ERR_INVAL;
    }
    return PH_OK;
}

int sink_amqp_open(const struct sink_cfg *cfg, struct sink **out, char *err, size_t errlen)
{
    *out = NULL;
    if (cfg == NULL || cfg->swarm == NULL || cfg->controller_instance == NULL) {
        snprintf(err, errlen, "sink amqp: swarm and controller instance are required");
        return PH_ERR_INVAL;
    }
    struct amqp_sink *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return PH_ERR_SYS;
    }
    int rc = read_url(cfg, s->url, sizeof s->url, err, errlen);
    if (rc != PH_OK) {
        free(s);
        return rc;
    }
    amqp_default_connection_info(&s->ci);
    if (amqp_parse_url(s->url, &s->ci) != AMQP_STATUS_OK) {
        /* Not quoted: it may hold a password. */
        snprintf(err, errlen,
                 "the AMQP URL%s is not amqp://user:password@host:port/vhost (not shown: it "
                 "may hold a password)",
                 cfg->amqp_url_file ? " in the file" : " in PH_AMQP_URL");
        memset(s->url, 0, sizeof s->url);
        free(s);
        return PH_ERR_INVAL;
    }
    if (s->ci.ssl) {
        snprintf(err, errlen, "amqps:// URLs are not supported by this build; use amqp://");
        memset(s->url, 0, sizeof s->url);
        free(s);
        return PH_ERR_INVAL;
    }
    snprintf(s->where, sizeof s->where, "%s@%s:%d vhost '%s'", s->ci.user, s->ci.host, s->ci.port,
             s->ci.vhost);
    snprintf(s->queue, sizeof s->queue, "ph.control.%s.%s.%s", cfg->swarm,
             CONTRACT_CONTROLLER_ROLE, cfg->controller_instance);
    s->bound = json_object();
    if (s->bound == NULL || amqp_topo_init(&s->topo, cfg->swarm, cfg->controller_instance) != PH_OK) {
        snprintf(err, errlen, "out of memory");
        json_decref(s->bound);
        amqp_topo_free(&s->topo);
        free(s);
        return PH_ERR_SYS;
    }
    s->backoff_ns = BACKOFF_MIN_NS;
    s->next_try_ns = 0;
    s->base.ops = &amqp_ops;
    snprintf(s->base.spec, sizeof s->base.spec, "amqp");
    ph_info("AMQP sink: broker %s, exchange " EXCHANGE ", control queue %s", s->where, s->queue);
    *out = &s->base;
    return PH_OK;
}
