/* RabbitMQ for the project's processes, through rabbitmq-c: the bridge,
 * the orchestrator and phctl speak to the broker through this.
 *
 * The broker's URL (amqp://user:password@host:port/vhost) comes from a file
 * or from PH_AMQP_URL, never from a command line, and only its user, host,
 * port and vhost are ever shown. Either may list several brokers (the
 * nodes of a cluster): the file one URL per line (blank lines and lines
 * starting with '#' ignored), PH_AMQP_URL separated by commas (a comma
 * inside a URL is written %2C).
 *
 * The client (struct ph_amqp) keeps one connection with one channel in
 * confirm mode for a single-threaded event loop:
 *   - it (re)connects with capped exponential backoff (0.5 s doubling to
 *     30 s), attempted from ph_amqp_flush() only when due, so a missing
 *     broker costs one refused connect per period; with several brokers,
 *     each lost or refused connection moves to the next one of the list
 *     (round robin, with the same backoff): the outbox is sent again, the
 *     bindings applied again and deliveries numbered with the new session
 *     there, as after any reconnect;
 *   - it declares the ph.control exchange (topic, durable) and, when asked,
 *     a queue it consumes with manual acks and a prefetch: durable and named
 *     (a control queue), or exclusive and auto-deleted (a consumer's own).
 *     A durable queue is a quorum queue (x-queue-type quorum, replicated
 *     over the cluster) when the URL lists more than one broker, a classic
 *     one otherwise (see ph_amqp_cfg.queue_type); when a queue of that name
 *     exists with another type the broker refuses the declaration
 *     (PRECONDITION_FAILED): the client says so, once, and consumes the
 *     existing queue as it is (declared passively);
 *     the queue's bindings follow the set of keys given to ph_amqp_bind();
 *   - reads never block: the loop polls ph_amqp_fd() and calls
 *     ph_amqp_service(), which drains whole frames with a zero timeout;
 *     writes and the connect/declare RPCs block with short timeouts (the
 *     broker is local or near);
 *   - reliable publishes (outcomes, alerts, signals) are persistent and kept
 *     in a bounded outbox until the broker confirms them, and sent again
 *     after a reconnect; others (status) go out once or are dropped, counted,
 *     while disconnected. A full outbox drops its oldest message, except
 *     those published with a cookie: their caller keeps the message's
 *     source until the confirm (ph_amqp_oldest_cookie says how far that is)
 *     and bounds them itself (ph_amqp_outbox_full), so they are never
 *     dropped;
 *   - a delivery the receiver accepts is acknowledged only when the caller
 *     settles it (ph_amqp_settle), unless the queue is consumed with
 *     auto-ack; a refused one is rejected without requeue. */
#ifndef PH_AMQP_H
#define PH_AMQP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <amqp.h>
#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PH_AMQP_EXCHANGE "ph.control"
#define PH_AMQP_URL_MAX 2048

/* ---- the broker's address --------------------------------------------- */

/* Brokers in one URL list at most. */
#define PH_AMQP_URLS_MAX 8
#define PH_AMQP_WHERE_MAX 320

struct ph_amqp_url {
    /* The first broker of the list (the only one, usually). */
    char raw[PH_AMQP_URL_MAX]; /* as read */
    char url[PH_AMQP_URL_MAX]; /* a copy parsed in place: ci's strings point into it */
    struct amqp_connection_info ci;
    char where[PH_AMQP_WHERE_MAX]; /* "user@host:port vhost '/'" for messages: no password */
    /* Every broker, in the order given, the first included. */
    size_t count;
    char list[PH_AMQP_URLS_MAX][PH_AMQP_URL_MAX];         /* as read */
    char list_where[PH_AMQP_URLS_MAX][PH_AMQP_WHERE_MAX]; /* as `where` */
};

/* Reads the URL list from `file`, or from PH_AMQP_URL when file is NULL,
 * and parses it (see the top of this file). PH_ERR_INVAL (missing, empty,
 * too many, one not an amqp:// URL, amqps://) or PH_ERR_SYS (the file) with
 * a message that never quotes a URL. */
int ph_amqp_url_load(struct ph_amqp_url *u, const char *file, char *err, size_t errlen);
/* Parses `text`: URLs separated by newlines or commas; blank entries and
 * lines starting with '#' are skipped. `source` names where the text came
 * from in messages ("PH_AMQP_URL", "the file F"). As ph_amqp_url_load. */
int ph_amqp_url_parse(struct ph_amqp_url *u, const char *text, const char *source, char *err,
                      size_t errlen);
/* Overwrites the URLs (they hold the password). */
void ph_amqp_url_wipe(struct ph_amqp_url *u);

/* A broker reply as a sentence ("broker closed the channel: 403 ..."). */
void ph_amqp_describe_reply(amqp_rpc_reply_t r, char *buf, size_t n);

/* ---- the client ----------------------------------------------------------- */

/* A delivery handle carries the connection (session) it arrived on in its
 * top bits: after a reconnect the broker delivers again what was not
 * acknowledged, and handles of an old session can no longer be settled. */
#define PH_AMQP_SESSION_SHIFT 40
static inline uint64_t ph_amqp_delivery_session(uint64_t delivery)
{
    return delivery >> PH_AMQP_SESSION_SHIFT;
}

/* A delivery: 0 accepts it (settled later unless the queue is auto-ack),
 * anything else rejects it without requeue. */
typedef int (*ph_amqp_deliver_fn)(void *ctx, const char *rk, size_t rklen, const char *body,
                                  size_t len, uint64_t delivery);

/* The type of a durable queue. */
enum ph_amqp_queue_type {
    /* PH_QUEUE_TYPE (quorum or classic) when set; else quorum when the URL
     * lists more than one broker, classic otherwise. */
    PH_AMQP_QUEUE_AUTO = 0,
    PH_AMQP_QUEUE_CLASSIC,
    PH_AMQP_QUEUE_QUORUM,
};

struct ph_amqp_cfg {
    const char *name;   /* who speaks, for logs ("bridge", "orchestrator") */
    /* A second connection of the same process: its purpose, in its log
     * lines ("AMQP (remote workers) connected ..."); NULL for the main one.
     * Must outlive the client. */
    const char *purpose;
    const char *queue;  /* the queue to consume; NULL: publish only */
    bool durable_queue; /* durable and shared (a control queue); else exclusive, auto-deleted */
    /* A durable queue's type; an exclusive one is always classic. */
    enum ph_amqp_queue_type queue_type;
    uint16_t prefetch;  /* unsettled deliveries at most (0: 50) */
    bool auto_ack;      /* the broker needs no acknowledgement */
    ph_amqp_deliver_fn deliver;
    void *deliver_ctx;
};

struct ph_amqp_stats {
    uint64_t connections, published, confirmed, nacked, dropped_down, outbox_dropped, acked,
        rejected, delivered;
};

struct ph_amqp;

/* Takes the URL list (wiped from *url) and the settings; connects at the
 * first ph_amqp_flush(), to the first broker of the list. PH_ERR_INVAL when
 * PH_QUEUE_TYPE is neither quorum nor classic. */
int ph_amqp_open(struct ph_amqp **out, struct ph_amqp_url *url, const struct ph_amqp_cfg *cfg,
                 char *err, size_t errlen);
/* Waits up to `confirm_wait_ns` for outstanding confirms, closes, frees.
 * Deliveries not settled are left for the broker to deliver again. */
void ph_amqp_close(struct ph_amqp *a, uint64_t confirm_wait_ns);

/* The binding keys the consumed queue should have (a {key: true} object,
 * stolen); applied now when connected, else on connect. */
void ph_amqp_bind(struct ph_amqp *a, json_t *keys);
/* Adds `keys` ({key: true}, stolen) to the bindings wanted and sends the
 * missing ones now (nowait: no round trip), without waiting for the next
 * ph_amqp_bind(): a binding that must be in place before what follows on
 * the connection (the broker applies a channel's methods in order). */
void ph_amqp_bind_add(struct ph_amqp *a, json_t *keys);
/* Publishes one message (content type application/json) to ph.control.
 * reliable: persistent, kept until confirmed (PH_OK) or PH_ERR_SYS when out
 * of memory; otherwise sent now, or dropped and counted while down
 * (PH_ERR_NOENT then). */
int ph_amqp_publish(struct ph_amqp *a, const char *rk, const char *body, size_t len,
                    bool reliable);
/* As a reliable ph_amqp_publish(), with a non-zero `cookie` of the caller's
 * kept with the message until the broker confirms it. Such a message is
 * never dropped from a full outbox: the caller stops publishing while
 * ph_amqp_outbox_full() says so. */
int ph_amqp_publish_cookie(struct ph_amqp *a, const char *rk, const char *body, size_t len,
                           uint64_t cookie);
/* The cookie of the oldest message still waiting for its confirm that has
 * one (messages are kept in publish order); 0 when none has. */
uint64_t ph_amqp_oldest_cookie(const struct ph_amqp *a);
/* Forgets every cookie: the messages are still sent, confirmed and never
 * dropped, but no longer reported (their caller no longer tracks them). */
void ph_amqp_forget_cookies(struct ph_amqp *a);
/* True while the outbox holds as many messages or bytes as it is meant to. */
bool ph_amqp_outbox_full(const struct ph_amqp *a);
/* Once per loop tick: connects when due, reads what arrived, applies
 * bindings, sends what waits. */
void ph_amqp_flush(struct ph_amqp *a);
/* Reads what arrived (deliveries, confirms) without blocking. */
void ph_amqp_service(struct ph_amqp *a);
/* The socket to poll, or -1 while disconnected; *session changes with every
 * connection (a poll armed on an older one is stale). */
int ph_amqp_fd(const struct ph_amqp *a, uint64_t *session);
/* Whether rabbitmq-c holds bytes or frames it has read from the socket and
 * nobody has handled yet (more than one ph_amqp_service() takes, or read
 * while waiting for an RPC's reply): a poll of the socket does not report
 * them, so the caller services again without waiting for it. */
bool ph_amqp_buffered(const struct ph_amqp *a);
/* Acknowledges an accepted delivery; one of an older session is ignored. */
void ph_amqp_settle(struct ph_amqp *a, uint64_t delivery);
bool ph_amqp_up(const struct ph_amqp *a);
/* Connected with nothing for a flush to do now: no message waiting to be
 * sent or confirmed, no bindings left to apply, nothing read and unhandled.
 * A caller that sleeps meanwhile wakes on the socket, and must still flush
 * well within the heartbeat (30 s) to keep the connection. */
bool ph_amqp_settled(const struct ph_amqp *a);
/* The current connection's number (1 for the first; 0 before any). */
uint64_t ph_amqp_session(const struct ph_amqp *a);
/* Messages waiting for a confirm. */
size_t ph_amqp_unconfirmed(const struct ph_amqp *a);
const struct ph_amqp_stats *ph_amqp_stats(const struct ph_amqp *a);
/* "user@host:port vhost '/'" of the broker connected to, or tried next. */
const char *ph_amqp_where(const struct ph_amqp *a);
/* The index in the URL list of that broker, and the list's length. */
size_t ph_amqp_broker(const struct ph_amqp *a, size_t *count);
/* Whether the consumed queue is declared as a quorum queue. */
bool ph_amqp_quorum(const struct ph_amqp *a);

#ifdef __cplusplus
}
#endif
#endif
