/* The RabbitMQ client of the project's processes (ph/amqp.h). Everything
 * runs on the caller's loop thread. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <amqp_tcp_socket.h>

#include "ph/amqp.h"
#include "ph/common.h"
#include "ph/log.h"

#define CHANNEL 1
#define DEFAULT_PREFETCH 50
#define OUTBOX_MAX_ENTRIES 10000u
#define OUTBOX_MAX_BYTES (64u << 20)
#define BACKOFF_MIN_NS 500000000ull
#define BACKOFF_MAX_NS 30000000000ull
#define CONNECT_TIMEOUT_S 2
#define RPC_TIMEOUT_S 5
#define HEARTBEAT_S 30
#define FRAMES_PER_SERVICE 512
#define RK_MAX 256

/* A reliable message until the broker confirms it. */
struct obx {
    struct obx *next;
    uint64_t tag;    /* publish sequence number on the current connection; 0: not sent */
    uint64_t cookie; /* the caller's, reported until confirmed (0: none) */
    bool keep;       /* published with a cookie: never dropped, even once forgotten */
    size_t len;
    char rk[RK_MAX];
    char body[];
};

/* One broker of the URL list. */
struct broker {
    char url[PH_AMQP_URL_MAX]; /* parsed in place: ci's strings point into it */
    struct amqp_connection_info ci;
    char where[PH_AMQP_WHERE_MAX];
};

struct ph_amqp {
    struct ph_amqp_cfg cfg;
    char name[32];
    char queue[RK_MAX];
    struct broker *brokers;
    size_t nbrokers;
    size_t cur;      /* the broker connected to, or tried next */
    bool quorum;     /* the consumed queue is a quorum queue */
    bool passive;    /* the queue exists with another type: declared passively */

    amqp_connection_state_t conn;
    bool up;
    uint64_t next_tag;
    uint64_t next_try_ns;
    uint64_t backoff_ns;
    uint64_t jitter; /* xorshift64 state for the reconnect jitter (never 0) */
    bool in_service;

    struct obx *head, *tail;
    size_t n, bytes;

    json_t *want;  /* {key: true} the queue should be bound to */
    json_t *bound; /* {key: true} bound on the current connection */
    bool bind_dirty;

    uint64_t held; /* accepted deliveries not yet settled */
    struct ph_amqp_stats st;
};

static amqp_bytes_t bytes_of(const char *s)
{
    return amqp_cstring_bytes(s);
}

/* Drops the connection (no protocol close: it failed) and schedules the
 * next attempt. */
/* The connection's purpose in its log lines: "AMQP (remote workers) ...". */
#define TAG(a) ((a)->cfg.purpose ? " (" : ""), ((a)->cfg.purpose ? (a)->cfg.purpose : ""), \
               ((a)->cfg.purpose ? ")" : "")

static void lose(struct ph_amqp *a, const char *what, const char *why)
{
    const bool was_up = a->up;
    if (a->conn != NULL) {
        amqp_destroy_connection(a->conn);
        a->conn = NULL;
    }
    a->up = false;
    /* Jitter: between half and all of the backoff, so that many clients
     * that lost the broker together (a thousand remote workers, a node
     * restart) do not all come back in the same instant and time out each
     * other's declares again. xorshift64, seeded per client. */
    a->jitter ^= a->jitter << 13;
    a->jitter ^= a->jitter >> 7;
    a->jitter ^= a->jitter << 17;
    const uint64_t wait = a->backoff_ns / 2 + a->jitter % (a->backoff_ns / 2 + 1);
    a->next_try_ns = ph_mono_ns() + wait;
    /* With several brokers, the next one (round robin). */
    const struct broker *was = &a->brokers[a->cur];
    if (a->nbrokers > 1) a->cur = (a->cur + 1) % a->nbrokers;
    const struct broker *next = &a->brokers[a->cur];
    char then[PH_AMQP_WHERE_MAX + 64] = "";
    if (a->nbrokers > 1)
        snprintf(then, sizeof then, " (broker %zu of %zu, %s)", a->cur + 1, a->nbrokers,
                 next->where);
    if (was_up)
        ph_warn("AMQP%s%s%s connection to %s lost (%s: %s); %zu message(s) kept for resending; "
                "reconnecting in %.1f s%s",
                TAG(a), was->where, what, why, a->n, (double)wait / 1e9, then);
    else
        ph_warn("AMQP%s%s%s broker %s unavailable (%s: %s); retrying in %.1f s%s", TAG(a),
                was->where, what, why, (double)wait / 1e9, then);
    a->backoff_ns *= 2;
    if (a->backoff_ns > BACKOFF_MAX_NS) a->backoff_ns = BACKOFF_MAX_NS;
    /* Whatever was sent is sent again on the next connection; deliveries
     * not yet acknowledged are requeued by the broker. */
    for (struct obx *e = a->head; e != NULL; e = e->next) e->tag = 0;
    a->held = 0;
}

static bool rpc_ok(struct ph_amqp *a, const char *what)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(a->conn);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) return true;
    char why[300];
    ph_amqp_describe_reply(r, why, sizeof why);
    lose(a, what, why);
    return false;
}

/* ---- outbox ------------------------------------------------------------- */

static void outbox_remove_next(struct ph_amqp *a, struct obx *prev, struct obx *e)
{
    if (prev == NULL)
        a->head = e->next;
    else
        prev->next = e->next;
    if (a->tail == e) a->tail = prev;
    a->n--;
    a->bytes -= e->len;
    free(e);
}

static int outbox_add(struct ph_amqp *a, const char *rk, const char *body, size_t len,
                      uint64_t cookie)
{
    while (a->n >= OUTBOX_MAX_ENTRIES || a->bytes + len > OUTBOX_MAX_BYTES) {
        /* The oldest published without a cookie: the caller of one with a
         * cookie relies on its confirm, and bounds those itself. */
        struct obx *prev = NULL, *e = a->head;
        while (e != NULL && e->keep) {
            prev = e;
            e = e->next;
        }
        if (e == NULL) break;
        a->st.outbox_dropped++;
        if (a->st.outbox_dropped == 1 || a->st.outbox_dropped % 1000 == 0)
            ph_error("AMQP outbox full (%zu messages, %zu bytes unconfirmed): dropping the "
                     "oldest, %s (%" PRIu64 " dropped so far)",
                     a->n, a->bytes, e->rk, a->st.outbox_dropped);
        outbox_remove_next(a, prev, e);
    }
    struct obx *e = malloc(sizeof *e + len);
    if (e == NULL) return PH_ERR_SYS;
    e->next = NULL;
    e->tag = 0;
    e->cookie = cookie;
    e->keep = cookie != 0;
    e->len = len;
    snprintf(e->rk, sizeof e->rk, "%s", rk);
    memcpy(e->body, body, len);
    if (a->tail != NULL)
        a->tail->next = e;
    else
        a->head = e;
    a->tail = e;
    a->n++;
    a->bytes += len;
    return PH_OK;
}

/* basic.ack / basic.nack from the broker for publish sequence `tag`. */
static void confirm(struct ph_amqp *a, uint64_t tag, bool multiple, bool ack)
{
    struct obx *prev = NULL, *e = a->head;
    while (e != NULL) {
        struct obx *next = e->next;
        if (e->tag != 0 && (multiple ? e->tag <= tag : e->tag == tag)) {
            if (ack) {
                a->st.confirmed++;
                outbox_remove_next(a, prev, e);
                e = next;
                continue;
            }
            a->st.nacked++;
            e->tag = 0; /* the broker refused it: send again */
            ph_warn("AMQP broker nacked %s; it will be sent again", e->rk);
        }
        prev = e;
        e = next;
    }
}

/* ---- publishing --------------------------------------------------------- */

/* One basic.publish; the sequence number it got, or 0 when the connection
 * failed (it is then gone). */
static uint64_t send_one(struct ph_amqp *a, const char *rk, const char *body, size_t len,
                         bool persistent)
{
    amqp_basic_properties_t p;
    memset(&p, 0, sizeof p);
    p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    p.content_type = bytes_of("application/json");
    p.delivery_mode = persistent ? 2 : 1;
    amqp_bytes_t b = {.len = len, .bytes = (void *)body};
    int rc = amqp_basic_publish(a->conn, CHANNEL, bytes_of(PH_AMQP_EXCHANGE), bytes_of(rk), 0, 0,
                                &p, b);
    if (rc != AMQP_STATUS_OK) {
        lose(a, "publish", amqp_error_string2(rc));
        return 0;
    }
    a->st.published++;
    return a->next_tag++;
}

static void outbox_send(struct ph_amqp *a)
{
    for (struct obx *e = a->head; e != NULL && a->up; e = e->next) {
        if (e->tag != 0) continue;
        e->tag = send_one(a, e->rk, e->body, e->len, true);
    }
}

int ph_amqp_publish(struct ph_amqp *a, const char *rk, const char *body, size_t len, bool reliable)
{
    if (!reliable) {
        if (a->up) send_one(a, rk, body, len, false);
        if (a->up) return PH_OK;
        a->st.dropped_down++;
        return PH_ERR_NOENT;
    }
    if (outbox_add(a, rk, body, len, 0) != PH_OK) return PH_ERR_SYS;
    if (a->up) outbox_send(a);
    return PH_OK;
}

int ph_amqp_publish_cookie(struct ph_amqp *a, const char *rk, const char *body, size_t len,
                           uint64_t cookie)
{
    if (outbox_add(a, rk, body, len, cookie) != PH_OK) return PH_ERR_SYS;
    if (a->up) outbox_send(a);
    return PH_OK;
}

uint64_t ph_amqp_oldest_cookie(const struct ph_amqp *a)
{
    /* Confirmed messages leave the list wherever they are; the first one
     * left with a cookie is the oldest unconfirmed. */
    for (const struct obx *e = a->head; e != NULL; e = e->next)
        if (e->cookie != 0) return e->cookie;
    return 0;
}

void ph_amqp_forget_cookies(struct ph_amqp *a)
{
    for (struct obx *e = a->head; e != NULL; e = e->next)
        e->cookie = 0;
}

bool ph_amqp_outbox_full(const struct ph_amqp *a)
{
    return a->n >= OUTBOX_MAX_ENTRIES || a->bytes >= OUTBOX_MAX_BYTES;
}

/* ---- bindings ----------------------------------------------------------- */

/* queue.unbind round trips per call; the rest wait for the next flush. */
#define UNBIND_BATCH 32

/* Binds go out with nowait: no bind-ok to wait for. The broker applies a
 * channel's methods in order (a signal published after a bind is routed by
 * it), and a bind that fails closes the channel, which this client takes
 * as a lost connection: the next connection binds everything again. So a
 * swarm of 10,000 workers joining costs no round trip per worker (with a
 * round trip each, 1,000 joins stalled the bridge's loop for 2 s).
 * queue.unbind has no nowait in AMQP 0-9-1: at most UNBIND_BATCH per call,
 * so that workers leaving do not stall the loop either. */
/* Sends one queue.bind (nowait) unless the key is bound already. False
 * when the connection went. */
static bool bind_one(struct ph_amqp *a, const char *key)
{
    if (json_object_get(a->bound, key) != NULL) return true;
    amqp_queue_bind_t req = {.queue = bytes_of(a->queue),
                             .exchange = bytes_of(PH_AMQP_EXCHANGE),
                             .routing_key = bytes_of(key),
                             .nowait = 1,
                             .arguments = amqp_empty_table};
    const int rc = amqp_send_method(a->conn, CHANNEL, AMQP_QUEUE_BIND_METHOD, &req);
    if (rc != AMQP_STATUS_OK) {
        lose(a, "queue.bind", amqp_error_string2(rc));
        return false;
    }
    json_object_set_new(a->bound, key, json_true());
    ph_debug("bound %s to %s", a->queue, key);
    return true;
}

static void apply_bindings(struct ph_amqp *a)
{
    if (a->queue[0] == '\0' || a->want == NULL) {
        a->bind_dirty = false;
        return;
    }
    const char *key;
    json_t *v;
    void *tmp;
    json_object_foreach(a->want, key, v)
    {
        if (!bind_one(a, key)) return;
    }
    unsigned unbinds = 0;
    json_object_foreach_safe(a->bound, tmp, key, v)
    {
        if (json_object_get(a->want, key) != NULL) continue;
        if (unbinds++ == UNBIND_BATCH) return; /* bind_dirty stays: the next flush goes on */
        amqp_queue_unbind(a->conn, CHANNEL, bytes_of(a->queue), bytes_of(PH_AMQP_EXCHANGE),
                          bytes_of(key), amqp_empty_table);
        if (!rpc_ok(a, "queue.unbind")) return;
        ph_debug("unbound %s from %s", a->queue, key);
        json_object_del(a->bound, key);
    }
    a->bind_dirty = false;
}

void ph_amqp_bind(struct ph_amqp *a, json_t *keys)
{
    json_decref(a->want);
    a->want = keys;
    a->bind_dirty = true;
    if (a->up) apply_bindings(a);
}

void ph_amqp_bind_add(struct ph_amqp *a, json_t *keys)
{
    if (keys == NULL) return;
    if (a->want == NULL) a->want = json_object();
    if (a->want != NULL) json_object_update(a->want, keys);
    /* Only these keys: a join costs its own bindings, not a walk of all. */
    const char *key;
    json_t *v;
    json_object_foreach(keys, key, v)
    {
        if (!a->up || a->queue[0] == '\0' || !bind_one(a, key)) break;
    }
    json_decref(keys);
}

/* ---- connection --------------------------------------------------------- */

/* channel.open, basic.qos and confirm.select on CHANNEL. */
static bool open_channel(struct ph_amqp *a)
{
    amqp_channel_open(a->conn, CHANNEL);
    if (!rpc_ok(a, "channel.open")) return false;
    amqp_basic_qos(a->conn, CHANNEL, 0, a->cfg.prefetch ? a->cfg.prefetch : DEFAULT_PREFETCH, 0);
    if (!rpc_ok(a, "basic.qos")) return false;
    amqp_confirm_select(a->conn, CHANNEL);
    return rpc_ok(a, "confirm.select");
}

/* Declares the consumed queue. A durable queue that exists with another
 * type or other arguments makes the broker close the channel with 406
 * PRECONDITION_FAILED: said once, and the queue is then used as it is
 * (declared passively, on a new channel), on this connection and the next
 * ones. */
static bool declare_queue(struct ph_amqp *a)
{
    const bool durable = a->cfg.durable_queue;
    const char *type = a->quorum ? "quorum" : "classic";
    if (durable && a->passive) {
        amqp_queue_declare(a->conn, CHANNEL, bytes_of(a->queue), 1, 0, 0, 0, amqp_empty_table);
        amqp_rpc_reply_t r = amqp_get_rpc_reply(a->conn);
        if (r.reply_type == AMQP_RESPONSE_NORMAL) return true;
        /* Gone (deleted, or its node is down): declared as configured next time. */
        a->passive = false;
        char why[300];
        ph_amqp_describe_reply(r, why, sizeof why);
        lose(a, "queue.declare (passive)", why);
        return false;
    }
    amqp_table_entry_t arg = {.key = bytes_of("x-queue-type"),
                              .value = {.kind = AMQP_FIELD_KIND_UTF8,
                                        .value = {.bytes = bytes_of("quorum")}}};
    const amqp_table_t args = {.num_entries = 1, .entries = &arg};
    amqp_queue_declare(a->conn, CHANNEL, bytes_of(a->queue), 0, durable, !durable, !durable,
                       durable && a->quorum ? args : amqp_empty_table);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(a->conn);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) return true;
    const amqp_channel_close_t *m = r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
                                            r.reply.id == AMQP_CHANNEL_CLOSE_METHOD
                                        ? r.reply.decoded
                                        : NULL;
    if (!durable || m == NULL || m->reply_code != AMQP_PRECONDITION_FAILED) {
        char why[300];
        ph_amqp_describe_reply(r, why, sizeof why);
        lose(a, "queue.declare", why);
        return false;
    }
    ph_error("AMQP%s%s%s the queue %s exists on %s with another type or other arguments than "
             "this %s declares (a durable %s queue): %u %.*s. Using the existing queue as it is. "
             "To give it the new type, stop its consumers and delete it (rabbitmqctl "
             "delete_queue %s), or set PH_QUEUE_TYPE to the existing queue's type",
             TAG(a), a->queue, a->brokers[a->cur].where, a->name, type, m->reply_code,
             (int)m->reply_text.len, (const char *)m->reply_text.bytes, a->queue);
    a->passive = true;
    amqp_channel_close_ok_t ok = {0};
    const int rc = amqp_send_method(a->conn, CHANNEL, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
    if (rc != AMQP_STATUS_OK) {
        lose(a, "channel.close-ok", amqp_error_string2(rc));
        return false;
    }
    return open_channel(a) && declare_queue(a);
}

static void connect_now(struct ph_amqp *a)
{
    const struct broker *b = &a->brokers[a->cur];
    a->conn = amqp_new_connection();
    amqp_socket_t *sock = a->conn != NULL ? amqp_tcp_socket_new(a->conn) : NULL;
    if (sock == NULL) {
        lose(a, "connect", "out of memory");
        return;
    }
    struct timeval cto = {.tv_sec = CONNECT_TIMEOUT_S}, rto = {.tv_sec = RPC_TIMEOUT_S};
    int rc = amqp_socket_open_noblock(sock, b->ci.host, b->ci.port, &cto);
    if (rc != AMQP_STATUS_OK) {
        lose(a, "connect", amqp_error_string2(rc));
        return;
    }
    amqp_set_handshake_timeout(a->conn, &rto);
    amqp_set_rpc_timeout(a->conn, &rto);
    amqp_rpc_reply_t r = amqp_login(a->conn, b->ci.vhost, 0, 131072, HEARTBEAT_S,
                                    AMQP_SASL_METHOD_PLAIN, b->ci.user, b->ci.password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        char why[300];
        ph_amqp_describe_reply(r, why, sizeof why);
        lose(a, "login", why);
        return;
    }
    if (!open_channel(a)) return;
    amqp_exchange_declare(a->conn, CHANNEL, bytes_of(PH_AMQP_EXCHANGE), bytes_of("topic"), 0, 1, 0,
                          0, amqp_empty_table);
    if (!rpc_ok(a, "exchange.declare " PH_AMQP_EXCHANGE)) return;
    if (a->queue[0] != '\0' && !declare_queue(a)) return;
    a->up = true; /* for apply_bindings' error path */
    json_object_clear(a->bound);
    apply_bindings(a);
    if (!a->up) return;
    if (a->queue[0] != '\0') {
        amqp_basic_consume(a->conn, CHANNEL, bytes_of(a->queue), amqp_empty_bytes, 0,
                           a->cfg.auto_ack, 0, amqp_empty_table);
        if (!rpc_ok(a, "basic.consume")) return;
    }
    a->st.connections++;
    a->next_tag = 1;
    a->backoff_ns = BACKOFF_MIN_NS;
    char which[64] = "";
    if (a->nbrokers > 1)
        snprintf(which, sizeof which, ", broker %zu of %zu", a->cur + 1, a->nbrokers);
    ph_info("AMQP%s%s%s connected to %s (connection %" PRIu64 "%s)%s%s%s; %zu message(s) to "
            "(re)send",
            TAG(a), b->where, a->st.connections, which, a->queue[0] ? ", consuming " : "",
            a->queue, a->queue[0] == '\0' ? "" : a->passive ? " (existing queue, as it is)"
                                            : a->quorum     ? " (quorum queue)"
                                                            : "",
            a->n);
    outbox_send(a);
}

/* ---- receiving ---------------------------------------------------------- */

static void on_deliver(struct ph_amqp *a, const amqp_frame_t *f)
{
    const amqp_basic_deliver_t *d = f->payload.method.decoded;
    const uint64_t tag = d->delivery_tag;
    char rk[RK_MAX];
    size_t rklen = d->routing_key.len < sizeof rk - 1 ? d->routing_key.len : sizeof rk - 1;
    memcpy(rk, d->routing_key.bytes, rklen);
    rk[rklen] = '\0';
    amqp_message_t msg;
    amqp_rpc_reply_t r = amqp_read_message(a->conn, f->channel, &msg, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        char why[300];
        ph_amqp_describe_reply(r, why, sizeof why);
        lose(a, "reading a delivery", why);
        return;
    }
    a->st.delivered++;
    const uint64_t delivery = (a->st.connections << PH_AMQP_SESSION_SHIFT) |
                              (tag & ((1ull << PH_AMQP_SESSION_SHIFT) - 1));
    /* An AMQP routing key (shortstr) is at most 255 bytes: rk holds any. */
    int verdict = a->cfg.deliver != NULL ? a->cfg.deliver(a->cfg.deliver_ctx, rk, rklen,
                                                          msg.body.bytes, msg.body.len, delivery)
                                         : 1;
    amqp_destroy_message(&msg);
    if (!a->up || a->cfg.auto_ack) return; /* lost meanwhile: delivered again later */
    if (verdict == 0) {
        a->held++; /* acknowledged by ph_amqp_settle() */
        return;
    }
    int rc = amqp_basic_reject(a->conn, f->channel, tag, 0);
    if (rc != AMQP_STATUS_OK) {
        lose(a, "basic.reject", amqp_error_string2(rc));
        return;
    }
    a->st.rejected++;
}

void ph_amqp_settle(struct ph_amqp *a, uint64_t delivery)
{
    /* A delivery of an earlier connection: the broker has requeued it and
     * delivers it again on this one. */
    if (!a->up || a->cfg.auto_ack || ph_amqp_delivery_session(delivery) != a->st.connections)
        return;
    const uint64_t tag = delivery & ((1ull << PH_AMQP_SESSION_SHIFT) - 1);
    int rc = amqp_basic_ack(a->conn, CHANNEL, tag, 0);
    if (rc != AMQP_STATUS_OK) {
        lose(a, "basic.ack", amqp_error_string2(rc));
        return;
    }
    a->st.acked++;
    if (a->held > 0) a->held--;
}

static void closed_by_broker(struct ph_amqp *a, const char *what, uint16_t code,
                             amqp_bytes_t text)
{
    char why[300];
    snprintf(why, sizeof why, "%u %.*s", code, (int)text.len, (const char *)text.bytes);
    lose(a, what, why);
}

void ph_amqp_service(struct ph_amqp *a)
{
    if (!a->up || a->in_service) return;
    a->in_service = true; /* a deliver callback may publish, which may service */
    for (int i = 0; i < FRAMES_PER_SERVICE && a->up; i++) {
        amqp_frame_t f;
        struct timeval zero = {0, 0};
        int rc = amqp_simple_wait_frame_noblock(a->conn, &f, &zero);
        if (rc == AMQP_STATUS_TIMEOUT) break;
        if (rc != AMQP_STATUS_OK) {
            lose(a, "read", amqp_error_string2(rc));
            break;
        }
        if (f.frame_type != AMQP_FRAME_METHOD) continue;
        switch (f.payload.method.id) {
        case AMQP_BASIC_DELIVER_METHOD: on_deliver(a, &f); break;
        case AMQP_BASIC_ACK_METHOD: {
            const amqp_basic_ack_t *m = f.payload.method.decoded;
            confirm(a, m->delivery_tag, m->multiple, true);
            break;
        }
        case AMQP_BASIC_NACK_METHOD: {
            const amqp_basic_nack_t *m = f.payload.method.decoded;
            confirm(a, m->delivery_tag, m->multiple, false);
            break;
        }
        case AMQP_BASIC_RETURN_METHOD: {
            amqp_message_t msg;
            amqp_rpc_reply_t r = amqp_read_message(a->conn, f.channel, &msg, 0);
            if (r.reply_type == AMQP_RESPONSE_NORMAL) amqp_destroy_message(&msg);
            break;
        }
        case AMQP_CHANNEL_CLOSE_METHOD: {
            const amqp_channel_close_t *m = f.payload.method.decoded;
            closed_by_broker(a, "broker closed the channel", m->reply_code, m->reply_text);
            break;
        }
        case AMQP_CONNECTION_CLOSE_METHOD: {
            const amqp_connection_close_t *m = f.payload.method.decoded;
            amqp_connection_close_ok_t ok = {0};
            amqp_send_method(a->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
            closed_by_broker(a, "broker closed the connection", m->reply_code, m->reply_text);
            break;
        }
        case AMQP_BASIC_CANCEL_METHOD:
            lose(a, "consumer cancelled by the broker", "queue deleted?");
            break;
        default: break;
        }
    }
    if (a->up && !amqp_frames_enqueued(a->conn)) amqp_maybe_release_buffers(a->conn);
    a->in_service = false;
}

void ph_amqp_flush(struct ph_amqp *a)
{
    if (!a->up) {
        if (ph_mono_ns() < a->next_try_ns) return;
        connect_now(a);
        if (!a->up) return; /* logged by lose() */
    }
    ph_amqp_service(a);
    if (a->up && a->bind_dirty) apply_bindings(a);
    if (a->up) outbox_send(a);
}

/* ---- life --------------------------------------------------------------- */

/* Overwrites a broker's URL (it holds the password). */
static void wipe_broker(struct broker *b)
{
    volatile char *p = b->url;
    for (size_t i = 0; i < sizeof b->url; i++) p[i] = 0;
}

int ph_amqp_open(struct ph_amqp **out, struct ph_amqp_url *url, const struct ph_amqp_cfg *cfg,
                 char *err, size_t errlen)
{
    *out = NULL;
    struct ph_amqp *a = calloc(1, sizeof *a);
    if (a == NULL || (a->bound = json_object()) == NULL) {
        free(a);
        ph_amqp_url_wipe(url);
        snprintf(err, errlen, "out of memory");
        return PH_ERR_SYS;
    }
    a->cfg = *cfg;
    snprintf(a->name, sizeof a->name, "%s", cfg->name ? cfg->name : "amqp");
    snprintf(a->queue, sizeof a->queue, "%s", cfg->queue ? cfg->queue : "");
    a->cfg.name = a->name;
    a->cfg.queue = a->queue;
    /* The URLs move in: parsed again here, so each ci points into our copy.
     * A list filled by hand (count 0) is the single URL of raw. */
    const size_t n = url->count > 0 ? url->count : 1;
    int rc = PH_OK;
    a->brokers = n <= PH_AMQP_URLS_MAX ? calloc(n, sizeof *a->brokers) : NULL;
    if (a->brokers == NULL) {
        snprintf(err, errlen, n <= PH_AMQP_URLS_MAX ? "out of memory" : "too many broker URLs");
        rc = n <= PH_AMQP_URLS_MAX ? PH_ERR_SYS : PH_ERR_INVAL;
    }
    for (size_t i = 0; rc == PH_OK && i < n; i++) {
        struct broker *b = &a->brokers[i];
        memcpy(b->url, url->count > 0 ? url->list[i] : url->raw, sizeof b->url);
        b->url[sizeof b->url - 1] = '\0';
        snprintf(b->where, sizeof b->where, "%s", url->count > 0 ? url->list_where[i] : url->where);
        amqp_default_connection_info(&b->ci);
        if (amqp_parse_url(b->url, &b->ci) != AMQP_STATUS_OK) {
            snprintf(err, errlen, "AMQP URL %zu is not valid", i + 1);
            rc = PH_ERR_INVAL;
        }
    }
    a->nbrokers = n;
    ph_amqp_url_wipe(url);
    /* A durable queue's type. */
    enum ph_amqp_queue_type type = cfg->queue_type;
    const char *env = getenv("PH_QUEUE_TYPE");
    if (rc == PH_OK && type == PH_AMQP_QUEUE_AUTO && env != NULL && env[0] != '\0') {
        if (strcmp(env, "quorum") == 0) {
            type = PH_AMQP_QUEUE_QUORUM;
        } else if (strcmp(env, "classic") == 0) {
            type = PH_AMQP_QUEUE_CLASSIC;
        } else {
            snprintf(err, errlen, "PH_QUEUE_TYPE is '%.32s': use quorum or classic (or unset it: "
                                  "quorum with several brokers, classic with one)",
                     env);
            rc = PH_ERR_INVAL;
        }
    }
    if (rc != PH_OK) {
        if (a->brokers != NULL) {
            for (size_t i = 0; i < n; i++) wipe_broker(&a->brokers[i]);
            free(a->brokers);
        }
        json_decref(a->bound);
        free(a);
        return rc;
    }
    if (type == PH_AMQP_QUEUE_AUTO) type = n > 1 ? PH_AMQP_QUEUE_QUORUM : PH_AMQP_QUEUE_CLASSIC;
    a->quorum = cfg->durable_queue && type == PH_AMQP_QUEUE_QUORUM;
    a->backoff_ns = BACKOFF_MIN_NS;
    a->jitter = (ph_mono_ns() ^ (uint64_t)(uintptr_t)a ^ ((uint64_t)getpid() << 32)) | 1u;
    *out = a;
    return PH_OK;
}

void ph_amqp_close(struct ph_amqp *a, uint64_t confirm_wait_ns)
{
    if (a == NULL) return;
    /* Give the broker a moment to confirm what is outstanding. */
    const uint64_t until = ph_mono_ns() + confirm_wait_ns;
    while (a->up && a->head != NULL && ph_mono_ns() < until) {
        outbox_send(a);
        if (!a->up) break;
        amqp_frame_t f;
        struct timeval tv = {0, 100000};
        int rc = amqp_simple_wait_frame_noblock(a->conn, &f, &tv);
        if (rc == AMQP_STATUS_TIMEOUT) continue;
        if (rc != AMQP_STATUS_OK) break;
        if (f.frame_type != AMQP_FRAME_METHOD) continue;
        if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            const amqp_basic_ack_t *m = f.payload.method.decoded;
            confirm(a, m->delivery_tag, m->multiple, true);
        } else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
            const amqp_basic_nack_t *m = f.payload.method.decoded;
            confirm(a, m->delivery_tag, m->multiple, false);
        }
        /* Deliveries are left unacked: the broker requeues them at close. */
    }
    if (a->head != NULL)
        ph_warn("AMQP: %zu message(s) were not confirmed by the broker before exit", a->n);
    if (a->conn != NULL) {
        if (a->up) {
            amqp_channel_close(a->conn, CHANNEL, AMQP_REPLY_SUCCESS);
            amqp_connection_close(a->conn, AMQP_REPLY_SUCCESS);
        }
        amqp_destroy_connection(a->conn);
    }
    while (a->head != NULL) outbox_remove_next(a, NULL, a->head);
    json_decref(a->want);
    json_decref(a->bound);
    for (size_t i = 0; i < a->nbrokers; i++) wipe_broker(&a->brokers[i]);
    free(a->brokers);
    free(a);
}

int ph_amqp_fd(const struct ph_amqp *a, uint64_t *session)
{
    *session = a->st.connections;
    return a->up ? amqp_get_sockfd(a->conn) : -1;
}

bool ph_amqp_buffered(const struct ph_amqp *a)
{
    return a->up && (amqp_frames_enqueued(a->conn) || amqp_data_in_buffer(a->conn));
}

bool ph_amqp_settled(const struct ph_amqp *a)
{
    return a->up && !a->bind_dirty && a->n == 0 && !ph_amqp_buffered(a);
}

bool ph_amqp_up(const struct ph_amqp *a)
{
    return a->up;
}

uint64_t ph_amqp_session(const struct ph_amqp *a)
{
    return a->st.connections;
}

size_t ph_amqp_unconfirmed(const struct ph_amqp *a)
{
    return a->n;
}

const struct ph_amqp_stats *ph_amqp_stats(const struct ph_amqp *a)
{
    return &a->st;
}

const char *ph_amqp_where(const struct ph_amqp *a)
{
    return a->brokers[a->cur].where;
}

size_t ph_amqp_broker(const struct ph_amqp *a, size_t *count)
{
    if (count != NULL) *count = a->nbrokers;
    return a->cur;
}

bool ph_amqp_quorum(const struct ph_amqp *a)
{
    return a->quorum;
}
