/* Where envelopes go. One small interface, one backend per transport, chosen
 * by a spec string (`--sink` or PH_SINK):
 *   file:PATH  JSON lines {"routingKey": "...", "envelope": {...}} (sink_file.c)
 *   amqp       RabbitMQ: the ph.control exchange, the controller's control
 *              queue, publisher confirms (sink_amqp.c); URL from
 *              PH_AMQP_URL or a file (sink_cfg.amqp_url_file)
 *
 * publish() hands one checked envelope over (the sink may buffer it);
 * flush() pushes what is buffered, once per loop tick. A document of the
 * controller's comes with a hold: the bridge keeps it in the out ring until
 * the sink reports it delivered (held()), so that a bridge that dies before
 * then leaves it for the next one; full() tells the bridge to stop reading
 * the ring while the sink keeps as much as it should. Once `confirm_all`
 * is set (the controller is closing a removed swarm: its last documents
 * must not be lost), status is kept and confirmed like outcomes, and
 * unconfirmed() says whether anything handed over is still unconfirmed.
 * A backend that also receives signals (AMQP) feeds them to the receiver
 * the bridge installs (bridge_signal_message), from flush() or service(). */
#ifndef PH_BRIDGE_SINK_H
#define PH_BRIDGE_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "contract.h"

struct sink;

/* The bridge's intake for a received signal: returns its verdict. 0
 * (SIG_OK): accepted; the transport must NOT acknowledge it yet: the bridge
 * settles `delivery` (sink_settle) once the controller has taken the signal
 * in, so a signal is never acknowledged to the broker before the
 * controller has it. Anything else: rejected (already logged and alerted);
 * the transport rejects it without requeue. `delivery` is the transport's
 * handle for the message, 0 when it has nothing to acknowledge. */
typedef int (*sink_receive_fn)(void *ctx, const char *rk, size_t rklen, const char *body,
                               size_t len, uint64_t delivery);

/* A delivery handle carries the transport session (connection) it belongs
 * to in its top bits (as ph/amqp.h's do): after a reconnect the broker
 * redelivers what was not acknowledged, and handles of the old session can
 * no longer be settled. */
#define SINK_SESSION_SHIFT 40
static inline uint64_t sink_delivery_session(uint64_t delivery)
{
    return delivery >> SINK_SESSION_SHIFT;
}

struct sink_ops {
    /* `env` is borrowed. `kind` lets a transport treat outcomes and alerts
     * (must not be lost) differently from status (the latest wins). `hold`
     * is non-zero for a document the bridge keeps in the out ring until
     * the sink has delivered it (file: written; AMQP: confirmed by the
     * broker); a document the sink does not keep (AMQP status) holds
     * nothing. Holds grow in publish order; 0 for the bridge's own alerts
     * and answers. `text`: the envelope already serialised (a long
     * controller status-full, envelope.h), written as it is; NULL: the sink
     * serialises env. */
    int (*publish)(struct sink *s, const char *rk, const json_t *env, const char *text,
                   enum contract_kind kind, uint64_t hold, char *err, size_t errlen);
    int (*flush)(struct sink *s, char *err, size_t errlen);
    void (*close)(struct sink *s);
    /* Optional (NULL for one-way sinks). */
    /* The socket to poll for readability, or -1 while there is none; *gen
     * changes with every new connection (a poll armed on an older one is
     * stale and must be removed). */
    int (*poll_fd)(struct sink *s, uint64_t *gen);
    /* Reads what arrived (signals, confirms) without blocking. */
    void (*service)(struct sink *s);
    /* True once after the transport (re)connected: the bridge asks the
     * controller for a fresh status-full. */
    bool (*take_resync)(struct sink *s);
    /* Acknowledges an accepted delivery; one of an older session is ignored. */
    void (*settle)(struct sink *s, uint64_t delivery);
    /* The current session (changes on every reconnect). */
    uint64_t (*session)(struct sink *s);
    /* What is handed over but not yet written (file: bytes) or confirmed
     * by the broker (AMQP: messages it keeps, outcomes and alerts, and
     * everything once confirm_all is set); 0 when nothing is. */
    size_t (*unconfirmed)(struct sink *s);
    /* The hold of the oldest document published with one and not yet
     * delivered; 0 when there is none. NULL: delivered on publish. */
    uint64_t (*held)(struct sink *s);
    /* Forgets every hold (the bridge left the ring they refer to); the
     * documents are delivered all the same, and never dropped. */
    void (*release_holds)(struct sink *s);
    /* True while the sink keeps as much undelivered as it should: the
     * bridge reads no further document (the ring keeps them meanwhile).
     * NULL: never. */
    bool (*full)(struct sink *s);
    /* True when the sink needs no tick until its socket (poll_fd) or the
     * bridge wakes it: connected, nothing unsent or unconfirmed, nothing
     * read and unhandled, no timer of its own due soon. NULL: never (the
     * bridge keeps its short tick). */
    bool (*quiet)(struct sink *s);
};

struct sink {
    const struct sink_ops *ops;
    char spec[64]; /* for logs: "file:/path" shortened, "amqp" */
    sink_receive_fn receive; /* installed by bridge_init */
    void *receive_ctx;
    /* Set by the bridge when the controller closes a removed swarm: from
     * then on status envelopes, too, are kept until written or confirmed
     * (AMQP: persistent, resent after a reconnect). Never cleared. */
    bool confirm_all;
};

/* What a backend may need beyond its spec. */
struct sink_cfg {
    const char *swarm;               /* the swarm served (topology) */
    const char *controller_instance; /* the controller's instance (its control queue) */
    const char *amqp_url_file;       /* NULL: PH_AMQP_URL */
    /* amqp: do not merge workers that publish their own contract status
     * (remote.h); by default their status is consumed on a second
     * connection and they are stood in for in the segment. */
    bool no_remote_workers;
};

/* Opens the sink named by `spec`. PH_ERR_INVAL for a spec this build does not
 * provide (with the reason), PH_ERR_SYS when the backend cannot start. */
int sink_open(const char *spec, const struct sink_cfg *cfg, struct sink **out, char *err,
              size_t errlen);

static inline int sink_publish(struct sink *s, const char *rk, const json_t *env,
                               const char *text, enum contract_kind kind, uint64_t hold, char *err,
                               size_t errlen)
{
    return s->ops->publish(s, rk, env, text, kind, hold, err, errlen);
}
static inline int sink_flush(struct sink *s, char *err, size_t errlen)
{
    return s->ops->flush(s, err, errlen);
}
static inline void sink_close(struct sink *s)
{
    if (s != NULL) s->ops->close(s);
}
static inline int sink_poll_fd(struct sink *s, uint64_t *gen)
{
    return s->ops->poll_fd != NULL ? s->ops->poll_fd(s, gen) : -1;
}
static inline void sink_service(struct sink *s)
{
    if (s->ops->service != NULL) s->ops->service(s);
}
static inline bool sink_take_resync(struct sink *s)
{
    return s->ops->take_resync != NULL && s->ops->take_resync(s);
}
static inline void sink_settle(struct sink *s, uint64_t delivery)
{
    if (s->ops->settle != NULL && delivery != 0) s->ops->settle(s, delivery);
}
static inline uint64_t sink_session(struct sink *s)
{
    return s->ops->session != NULL ? s->ops->session(s) : 0;
}
static inline size_t sink_unconfirmed(struct sink *s)
{
    return s->ops->unconfirmed != NULL ? s->ops->unconfirmed(s) : 0;
}
static inline uint64_t sink_held(struct sink *s)
{
    return s->ops->held != NULL ? s->ops->held(s) : 0;
}
static inline void sink_release_holds(struct sink *s)
{
    if (s->ops->release_holds != NULL) s->ops->release_holds(s);
}
static inline bool sink_full(struct sink *s)
{
    return s->ops->full != NULL && s->ops->full(s);
}

/* The AMQP sink sends its heartbeats (30 s) from flush(): a bridge with
 * this sink never sleeps longer than this between ticks. */
#define AMQP_IDLE_TICK_MAX_MS 5000u

static inline bool sink_quiet(struct sink *s)
{
    return s->ops->quiet != NULL && s->ops->quiet(s);
}

/* Backends. */
int sink_file_open(const char *path, struct sink **out, char *err, size_t errlen);
int sink_amqp_open(const struct sink_cfg *cfg, struct sink **out, char *err, size_t errlen);

#endif
